"""Segment Anything (SAM) as a frozen, class-agnostic proposal segmenter: automatic mask generation over a grid of
point prompts, with SAM's own quality and stability filters and box NMS.

Registered in :data:`wish_d2.registry.SEGMENTER_REGISTRY` as ``SAM`` (``MODEL.WISH.SEGMENTER.NAME: "SAM"``).

Weights (``MODEL.WISH.SEGMENTER.SAM_CHECKPOINT``): a local ``sam_vit_{b,l,h}_*.pth`` file, or its http(s) URL,
downloaded once and cached by Detectron2's ``PathManager`` (see :mod:`wish_d2.modeling.weights`). ``SAM_TYPE: "tiny"``
is a tiny random SAM with the real architecture that goes through the very same loader, so tests exercise the real
path. An empty checkpoint gives random weights with a logged warning: only for tests and the synthetic default.
"""
import logging
from functools import partial
from typing import Tuple

import numpy as np
import torch
from torch import nn

from detectron2.config import configurable

from ...registry import SEGMENTER_REGISTRY
from ..weights import UnreadableWeightsError, resolve_weights_file
from .common import FrozenSegmenter, freeze, to_rgb_uint8

logger = logging.getLogger(__name__)

__all__ = ["SAM_TYPES", "SAM_WEIGHTS_HINT", "build_tiny_sam", "load_sam_checkpoint", "build_sam", "SAMSegmenter", "SAM"]

SAM_TYPES = ("vit_b", "vit_l", "vit_h", "tiny")
SAM_WEIGHTS_HINT = (
    "Set MODEL.WISH.SEGMENTER.SAM_CHECKPOINT to a local SAM checkpoint or its URL "
    "(https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth, "
    "sam_vit_h_4b8939.pth; see https://github.com/facebookresearch/segment-anything#model-checkpoints) "
    "and SAM_TYPE to the matching vit_b / vit_l / vit_h."
)
_KEY = "MODEL.WISH.SEGMENTER.SAM_CHECKPOINT"


def build_tiny_sam() -> nn.Module:
    """A tiny, randomly initialised SAM with the real architecture (ViT image encoder, prompt encoder, two-way
    transformer mask decoder), small enough for CPU tests: 128-px input, 2 encoder blocks, 32-d prompt space."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    image_size, patch_size, prompt_dim = 128, 16, 32
    grid = image_size // patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=image_size,
            patch_size=patch_size,
            embed_dim=64,
            depth=2,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=prompt_dim,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=64, num_heads=2),
            transformer_dim=prompt_dim,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


def load_sam_checkpoint(model: nn.Module, checkpoint: str, sam_type: str = "") -> nn.Module:
    """Load a SAM state dict (local path or URL) into ``model``, with ``torch.load(..., weights_only=True)`` so a
    checkpoint file can never execute code.

    Raises ``FileNotFoundError`` (missing local file), :class:`~wish_d2.modeling.weights.WeightsUnavailableError`
    (URL not fetchable) or ``RuntimeError`` (unreadable file, or weights of another SAM size), always naming the
    path or URL.
    """
    path = resolve_weights_file(checkpoint, _KEY, SAM_WEIGHTS_HINT)
    where = path if path == checkpoint else f"{path} (from {checkpoint})"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle / zip / EOF errors of a truncated or foreign file
        raise UnreadableWeightsError(
            f"Could not read SAM checkpoint {where} (corrupt, truncated, or not a torch state dict): "
            f"{type(e).__name__}: {e}"
        ) from e
    if isinstance(state, dict):
        for key in ("model", "state_dict"):  # tolerate {"model": sd} wrappers written by training scripts
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnreadableWeightsError(f"SAM checkpoint {where} does not hold a state dict of tensors")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UnreadableWeightsError(
            f"SAM checkpoint {where} does not match SAM_TYPE={sam_type!r} (wrong model size?): {e}"
        ) from e
    return model


def build_sam(sam_type: str, checkpoint: str = "", init_seed: int = 0) -> nn.Module:
    """Build a frozen, eval-mode ``segment_anything.Sam``.

    Args:
        sam_type: ``vit_b`` / ``vit_l`` / ``vit_h`` (``segment_anything.sam_model_registry``) or ``tiny``.
        checkpoint: local state-dict file or http(s) URL, loaded by :func:`load_sam_checkpoint` for every type
            (``tiny`` included). ``""`` gives random weights (seeded with ``init_seed``) and a warning: tests only.
    """
    if sam_type not in SAM_TYPES:
        raise ValueError(f"Unknown SAM type {sam_type!r}; expected one of {SAM_TYPES}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        if sam_type == "tiny":
            model = build_tiny_sam()
        else:
            from segment_anything import sam_model_registry

            model = sam_model_registry[sam_type](checkpoint=None)  # never its own (unsafe, unchecked) torch.load
    if checkpoint:
        load_sam_checkpoint(model, checkpoint, sam_type)
    else:
        logger.warning(
            f"SAM ({sam_type}) has no checkpoint ({_KEY} is empty): using RANDOM weights. Fine for tests and the "
            f"synthetic default, meaningless for real data. {SAM_WEIGHTS_HINT}"
        )
    return freeze(model)


class SAMSegmenter(FrozenSegmenter):
    """SAM automatic mask generation: image ``[H, W, 3]`` RGB uint8 -> (masks bool ``[N, H, W]`` at the input
    resolution, scores ``[N]``).

    The score of a mask is SAM's predicted IoU (a regression output: it may fall slightly outside ``[0, 1]``).
    Masks come sorted by decreasing score.
    """

    @configurable
    def __init__(
        self,
        *,
        sam: nn.Module,
        points_per_side: int = 32,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        points_per_batch: int = 64,
        box_nms_thresh: float = 0.7,
        min_mask_region_area: int = 0,
    ):
        super().__init__()
        from segment_anything import SamAutomaticMaskGenerator

        self.sam = freeze(sam)
        self.amg_kwargs = dict(
            points_per_side=points_per_side,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            points_per_batch=points_per_batch,
            box_nms_thresh=box_nms_thresh,
            min_mask_region_area=min_mask_region_area,
            output_mode="binary_mask",
        )
        # The generator holds a SamPredictor, which follows the model's device (sam.device) on every call.
        self.generator = SamAutomaticMaskGenerator(self.sam, **self.amg_kwargs)

    @classmethod
    def from_config(cls, cfg):
        S = cfg.MODEL.WISH.SEGMENTER
        return {
            "sam": build_sam(S.SAM_TYPE, S.SAM_CHECKPOINT),
            "points_per_side": S.POINTS_PER_SIDE,
            "pred_iou_thresh": S.PRED_IOU_THRESH,
            "stability_score_thresh": S.STABILITY_SCORE_THRESH,
            "points_per_batch": S.POINTS_PER_BATCH,
            "box_nms_thresh": S.BOX_NMS_THRESH,
        }

    @torch.no_grad()
    def forward(self, image, **unused) -> Tuple[torch.Tensor, torch.Tensor]:
        image = to_rgb_uint8(image)
        h, w = image.shape[:2]
        records = self.generator.generate(image)
        self.generator.predictor.reset_image()  # do not keep the last image embedding alive
        if not records:
            return torch.zeros((0, h, w), dtype=torch.bool), torch.zeros(0)
        records = sorted(records, key=lambda r: -r["predicted_iou"])
        masks = torch.from_numpy(np.stack([r["segmentation"] for r in records]).astype(bool))
        scores = torch.tensor([float(r["predicted_iou"]) for r in records], dtype=torch.float32)
        return masks, scores


@SEGMENTER_REGISTRY.register()
def SAM(cfg) -> SAMSegmenter:  # noqa: N802 (fvcore registries key a builder by its __name__)
    """``MODEL.WISH.SEGMENTER.NAME: "SAM"``: :class:`SAMSegmenter` from ``MODEL.WISH.SEGMENTER.*``."""
    return SAMSegmenter(cfg)
