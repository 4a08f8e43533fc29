"""Frozen class-agnostic segmenters that produce the proposal masks ``m_i`` (DESIGN §2.1).

Two segmenters are registered in :data:`wish_d2.registry.SEGMENTER_REGISTRY` (``fn(cfg) -> nn.Module``), selected
by ``MODEL.WISH.SEGMENTER.NAME``:

``SAM``
    Segment Anything's automatic mask generation (a grid of point prompts, quality and stability filters, box NMS).
``GSAM``
    Grounded-SAM: Grounding DINO (``transformers``) detects boxes for a text prompt made of the dataset's object
    taxonomy (``MetadataCatalog.get(name).nouns`` joined as ``"a . b . c ."``); each box above
    ``BOX_THRESHOLD`` whose phrase clears ``TEXT_THRESHOLD`` becomes a SAM box prompt. The paper found it better
    than plain SAM.

Both take one RGB ``uint8`` image ``[H, W, 3]`` (numpy or tensor) and return ``(masks, scores)``: a bool tensor
``[N, H, W]`` at the input resolution and a float tensor ``[N]``.

**Weights are never downloaded.** Real SAM weights are a local ``sam_vit_{b,l,h}_*.pth`` file, Grounding DINO a local
``transformers`` folder. Every model has a tiny random variant (``SAM_TYPE: "tiny"``, or a tiny Grounding DINO saved
with ``save_pretrained``) that goes through the very same loading functions, so tests exercise the real path. An
empty checkpoint gives a randomly initialised model with a logged warning: that is only for tests and the embedded
synthetic default.

All models are frozen (``requires_grad=False``) and stay in eval mode even when the surrounding meta-architecture is
put in training mode.
"""
import logging
import os
import re
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from detectron2.config import configurable

from ..registry import SEGMENTER_REGISTRY

logger = logging.getLogger(__name__)

__all__ = [
    "SAM_TYPES",
    "build_sam",
    "load_sam_checkpoint",
    "build_tiny_sam",
    "load_grounding_dino",
    "taxonomy_prompt",
    "SAMSegmenter",
    "GSAMSegmenter",
    "build_segmenter",
]

SAM_TYPES = ("vit_b", "vit_l", "vit_h", "tiny")
_SAM_WEIGHTS_HINT = (
    "SAM weights are not downloadable on these machines: download them where you can "
    "(https://github.com/facebookresearch/segment-anything#model-checkpoints: sam_vit_b_01ec64.pth, "
    "sam_vit_l_0b3195.pth, sam_vit_h_4b8939.pth), copy the file here and set MODEL.WISH.SEGMENTER.SAM_CHECKPOINT "
    "to its local path (and SAM_TYPE to the matching vit_b / vit_l / vit_h)."
)
_GDINO_HINT = (
    "Grounding DINO is loaded from a local transformers folder (config.json, model.safetensors, processor and "
    "tokenizer files), e.g. made elsewhere with GroundingDinoForObjectDetection.from_pretrained("
    "'IDEA-Research/grounding-dino-tiny').save_pretrained(DIR) and AutoProcessor.from_pretrained(...)"
    ".save_pretrained(DIR). Set MODEL.WISH.SEGMENTER.GDINO_PATH to DIR."
)


def _freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# ----------------------------------------------------------------------------------------------------------------- SAM
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
    """Load a local SAM state dict into ``model``. ``torch.load(..., weights_only=True)``, so a checkpoint file can
    never execute code. Raises ``FileNotFoundError`` (missing file, with where to get SAM weights) or
    ``RuntimeError`` (unreadable file, or weights of another SAM size), always naming the path."""
    path = os.path.expanduser(checkpoint)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SAM checkpoint not found: {path}. {_SAM_WEIGHTS_HINT}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle / zip / EOF errors of a truncated or foreign file
        raise RuntimeError(
            f"Could not read SAM checkpoint {path} (corrupt, truncated, or not a torch state dict): "
            f"{type(e).__name__}: {e}"
        ) from e
    if isinstance(state, dict):
        for key in ("model", "state_dict"):  # tolerate {"model": sd} wrappers written by training scripts
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RuntimeError(f"SAM checkpoint {path} does not hold a state dict of tensors")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise RuntimeError(
            f"SAM checkpoint {path} does not match SAM_TYPE={sam_type!r} (wrong model size?): {e}"
        ) from e
    return model


def build_sam(sam_type: str, checkpoint: str = "", init_seed: int = 0) -> nn.Module:
    """Build a frozen, eval-mode ``segment_anything.Sam``.

    Args:
        sam_type: ``vit_b`` / ``vit_l`` / ``vit_h`` (``segment_anything.sam_model_registry``) or ``tiny``.
        checkpoint: local state-dict file, loaded by :func:`load_sam_checkpoint` for every type (``tiny``
            included). ``""`` gives random weights (seeded with ``init_seed``) and a warning: tests only.
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
            f"SAM ({sam_type}) has no checkpoint (MODEL.WISH.SEGMENTER.SAM_CHECKPOINT is empty): using RANDOM "
            f"weights. Fine for tests and the synthetic default, meaningless for real data. {_SAM_WEIGHTS_HINT}"
        )
    return _freeze(model)


def _to_rgb_uint8(image) -> np.ndarray:
    """RGB ``[H, W, 3]`` uint8 numpy from a numpy array or tensor (HWC)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


class _FrozenSegmenter(nn.Module):
    """Common behaviour: frozen weights, always eval mode, ``device`` property."""

    def train(self, mode: bool = True):  # frozen models stay in eval mode (Grounding DINO has dropout)
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


@SEGMENTER_REGISTRY.register()
class SAMSegmenter(_FrozenSegmenter):
    """SAM automatic mask generation: image ``[H, W, 3]`` RGB uint8 -> (masks bool ``[N, H, W]``, scores ``[N]``).

    The score of a mask is SAM's predicted IoU (a regression output: it may fall slightly outside ``[0, 1]``).
    Masks come sorted by decreasing score. Registered as ``SAM`` (and under its class name).
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

        self.sam = _freeze(sam)
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
            # Optional keys (not in every cfg): SAM's own defaults otherwise.
            "stability_score_thresh": S.STABILITY_SCORE_THRESH,
            "points_per_batch": S.POINTS_PER_BATCH,
            "box_nms_thresh": S.BOX_NMS_THRESH,
        }

    @torch.no_grad()
    def forward(self, image, **unused) -> Tuple[torch.Tensor, torch.Tensor]:
        image = _to_rgb_uint8(image)
        h, w = image.shape[:2]
        records = self.generator.generate(image)
        self.generator.predictor.reset_image()  # do not keep the last image embedding alive
        if not records:
            return torch.zeros((0, h, w), dtype=torch.bool), torch.zeros(0)
        records = sorted(records, key=lambda r: -r["predicted_iou"])
        masks = torch.from_numpy(np.stack([r["segmentation"] for r in records]).astype(bool))
        scores = torch.tensor([float(r["predicted_iou"]) for r in records], dtype=torch.float32)
        return masks, scores


# ------------------------------------------------------------------------------------------------------------ GSAM
def taxonomy_prompt(nouns: Sequence[str]) -> str:
    """Grounding DINO prompt from a noun taxonomy: ``["knife", "pan:frying"] -> "knife . frying pan ."``.

    EPIC-style colon keys (``pan:frying``) are read as "frying pan"; nouns are lower-cased, stripped, deduplicated.
    """
    return " ".join(f"{p} ." for p in _phrases(nouns))


def _phrases(nouns: Sequence[str]) -> List[str]:
    out: List[str] = []
    for noun in nouns:
        parts = [p.strip() for p in str(noun).lower().replace("_", " ").split(":") if p.strip()]
        phrase = re.sub(r"\s+", " ", " ".join(reversed(parts))).replace(".", " ").strip()
        if phrase and phrase not in out:
            out.append(phrase)
    return out


def load_grounding_dino(path: str):
    """``(model, processor)`` from a local ``transformers`` folder, with ``local_files_only=True`` (never the
    hub). The model is frozen and in eval mode."""
    folder = os.path.expanduser(path)
    if not path:
        raise ValueError(f"MODEL.WISH.SEGMENTER.GDINO_PATH is empty: GSAM needs a local Grounding DINO. {_GDINO_HINT}")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Grounding DINO folder not found: {folder}. {_GDINO_HINT}")
    try:
        from transformers import AutoProcessor, GroundingDinoForObjectDetection
    except ImportError as e:
        raise ImportError("GSAM needs transformers: pip install 'wish_d2[gsam]'") from e
    try:
        model = GroundingDinoForObjectDetection.from_pretrained(folder, local_files_only=True)
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as e:
        raise RuntimeError(f"Could not load Grounding DINO from {folder}: {e}. {_GDINO_HINT}") from e
    return _freeze(model), processor


@SEGMENTER_REGISTRY.register()
class GSAMSegmenter(_FrozenSegmenter):
    """Grounded-SAM: Grounding DINO boxes for the taxonomy prompt, then SAM box prompts.

    Steps for one image:

    1. Prompt = :func:`taxonomy_prompt` of ``nouns``. A taxonomy longer than Grounding DINO's text window
       (``config.max_text_len`` tokens, 256 for the released models; EPIC has ~300 nouns) is split into chunks of
       whole phrases; each chunk runs the detector once and the boxes are pooled.
    2. A box is kept when its score (max sigmoid over prompt tokens) is above ``box_threshold`` and some token
       of its phrase is above ``text_threshold`` (boxes whose phrase is empty are dropped).
    3. Class-agnostic box NMS at ``box_nms_thresh`` removes the duplicate queries; at most ``max_boxes`` remain.
    4. SAM embeds the image once (``SamPredictor.set_image``); all boxes go through ``predict_torch`` in batches,
       single-mask output.

    Score of a mask = its Grounding DINO box score. Masks come sorted by decreasing score. The detected phrases are
    available from :meth:`detect`. Registered as ``GSAM`` (and under its class name).
    """

    @configurable
    def __init__(
        self,
        *,
        sam: nn.Module,
        grounding_dino: nn.Module,
        processor,
        nouns: Optional[Sequence[str]] = None,
        box_threshold: float = 0.25,
        text_threshold: float = 0.25,
        box_nms_thresh: float = 0.7,
        max_boxes: int = 100,
        sam_batch_size: int = 64,
    ):
        super().__init__()
        from segment_anything import SamPredictor

        self.sam = _freeze(sam)
        self.grounding_dino = _freeze(grounding_dino)
        self.processor = processor
        self.nouns = list(nouns) if nouns is not None else None
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.box_nms_thresh = box_nms_thresh
        self.max_boxes = max_boxes
        self.sam_batch_size = sam_batch_size
        self.predictor = SamPredictor(self.sam)
        self._prompt_chunks: Dict[Tuple[str, ...], List[str]] = {}  # taxonomy -> prompts, tokenized once

    @classmethod
    def from_config(cls, cfg):
        S = cfg.MODEL.WISH.SEGMENTER
        gdino, processor = load_grounding_dino(S.GDINO_PATH)
        return {
            "sam": build_sam(S.SAM_TYPE, S.SAM_CHECKPOINT),
            "grounding_dino": gdino,
            "processor": processor,
            "box_threshold": S.BOX_THRESHOLD,
            "text_threshold": S.TEXT_THRESHOLD,
            "box_nms_thresh": S.BOX_NMS_THRESH,
        }

    def _chunks(self, nouns: Sequence[str]) -> List[str]:
        """Prompts of whole phrases that each fit the detector's text window (computed once per taxonomy: the
        taxonomy of a dataset, ~300 EPIC nouns, does not change from frame to frame)."""
        key = tuple(nouns)
        if key not in self._prompt_chunks:
            self._prompt_chunks[key] = self._split_into_chunks(nouns)
        return self._prompt_chunks[key]

    def _split_into_chunks(self, nouns: Sequence[str]) -> List[str]:
        phrases = _phrases(nouns)
        if not phrases:
            raise ValueError("GSAM needs a non-empty noun taxonomy (dataset metadata 'nouns')")
        budget = int(getattr(self.grounding_dino.config, "max_text_len", 256)) - 2  # [CLS] ... [SEP]
        tok = self.processor.tokenizer
        chunks, current, used = [], [], 0
        for phrase in phrases:
            n = len(tok.tokenize(f"{phrase} ."))
            if current and used + n > budget:
                chunks.append(" ".join(current))
                current, used = [], 0
            current.append(f"{phrase} .")
            used += n
        chunks.append(" ".join(current))
        return chunks

    @torch.no_grad()
    def detect(self, image, nouns: Optional[Sequence[str]] = None) -> Dict:
        """Grounding DINO alone: ``{"boxes": [K, 4] XYXY abs, "scores": [K], "phrases": [str]}`` after the
        thresholds and NMS, sorted by decreasing score."""
        from torchvision.ops import nms

        image = _to_rgb_uint8(image)
        h, w = image.shape[:2]
        nouns = nouns if nouns is not None else self.nouns
        if not nouns:
            raise ValueError("GSAM needs the dataset's noun taxonomy: pass nouns= or set metadata 'nouns'")
        boxes, scores, phrases = [], [], []
        for prompt in self._chunks(nouns):
            inputs = self.processor(images=image, text=prompt, return_tensors="pt").to(self.device)
            outputs = self.grounding_dino(**inputs)
            (res,) = self.processor.post_process_grounded_object_detection(
                outputs,
                inputs["input_ids"],
                threshold=self.box_threshold,
                text_threshold=self.text_threshold,
                target_sizes=[(h, w)],
            )
            labels = [re.sub(r"\[(SEP|CLS|PAD)\]|\.|\s+", " ", str(t)).strip() for t in res["text_labels"]]
            labels = [re.sub(r"\s+", " ", t) for t in labels]
            keep = [i for i, t in enumerate(labels) if t]
            boxes.append(res["boxes"][keep].float().cpu())
            scores.append(res["scores"][keep].float().cpu())
            phrases += [labels[i] for i in keep]
        boxes, scores = torch.cat(boxes), torch.cat(scores)
        if len(boxes):
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            idx = valid.nonzero().flatten()
            idx = idx[nms(boxes[idx], scores[idx], self.box_nms_thresh)][: self.max_boxes]  # sorted by score
            boxes, scores, phrases = boxes[idx], scores[idx], [phrases[i] for i in idx.tolist()]
        return {"boxes": boxes, "scores": scores, "phrases": phrases}

    @torch.no_grad()
    def forward(self, image, nouns: Optional[Sequence[str]] = None, **unused) -> Tuple[torch.Tensor, torch.Tensor]:
        image = _to_rgb_uint8(image)
        h, w = image.shape[:2]
        det = self.detect(image, nouns)
        boxes, scores = det["boxes"], det["scores"]
        if len(boxes) == 0:
            return torch.zeros((0, h, w), dtype=torch.bool), torch.zeros(0)
        self.predictor.set_image(image, image_format="RGB")
        masks = []
        for start in range(0, len(boxes), self.sam_batch_size):
            b = self.predictor.transform.apply_boxes_torch(boxes[start:start + self.sam_batch_size], (h, w))
            m, _, _ = self.predictor.predict_torch(
                point_coords=None, point_labels=None, boxes=b.to(self.predictor.device), multimask_output=False
            )
            masks.append(m[:, 0].cpu())
        self.predictor.reset_image()
        return torch.cat(masks).bool(), scores


# Short registry names used by MODEL.WISH.SEGMENTER.NAME.
@SEGMENTER_REGISTRY.register()
def SAM(cfg) -> nn.Module:  # noqa: N802 (the registry key is the function name)
    """``SEGMENTER_REGISTRY`` entry ``SAM``: :class:`SAMSegmenter` from cfg."""
    return SAMSegmenter(cfg)


@SEGMENTER_REGISTRY.register()
def GSAM(cfg) -> nn.Module:  # noqa: N802
    """``SEGMENTER_REGISTRY`` entry ``GSAM``: :class:`GSAMSegmenter` from cfg."""
    return GSAMSegmenter(cfg)


def build_segmenter(cfg, name: Optional[str] = None) -> nn.Module:
    """The segmenter ``name`` (default ``MODEL.WISH.SEGMENTER.NAME``) built from ``cfg``."""
    return SEGMENTER_REGISTRY.get(name or cfg.MODEL.WISH.SEGMENTER.NAME)(cfg)
