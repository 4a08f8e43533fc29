"""Class-agnostic mask proposal generators, registered in Detectron2's
``PROPOSAL_GENERATOR_REGISTRY``: ``PrecomputedMaskProposals``, ``SAMProposals``, ``GSAMProposals``.

**Calling convention (differs from Detectron2's stock generators on purpose).** The WISH meta-architecture calls

    generator(batched_inputs: list[dict]) -> list[Instances]

instead of the stock ``generator(images: ImageList, features: dict, gt_instances)``. RPN-style generators score
anchors on the detector's own backbone features; WISH's proposals come from *frozen, external, class-agnostic
segmenters* (SAM, Grounding DINO + SAM) that need the raw RGB ``uint8`` frame at its own resolution, or, for
precomputed proposals, only the ``image_id`` and the proposals file. Neither normalised padded ``ImageList`` tensors
nor backbone features are of any use to them, and WISH has no trainable backbone before the proposals.

Each input dict carries ``"image"`` (``uint8`` ``[3, H, W]`` tensor, channel order ``input_format``, RGB by
default), ``"image_id"``, ``"height"``, ``"width"``, and optionally ``"proposals_file"`` and ``"dataset_name"``.
Dicts without ``"image"`` (e.g. the feature-cache mapper) are fine for precomputed proposals: the output size is then
``(height, width)``.

Each output ``Instances`` has ``image_size = (H, W)`` of the dict's image and fields

* ``proposal_boxes``: :class:`Boxes` ``[N, 4]`` XYXY, the tight box of each mask (pycocotools ``toBbox``, the same
  box as ``BitMasks.get_bounding_boxes``);
* ``objectness_logits``: ``[N]`` ``logit(score)``, the score clamped to ``[1e-6, 1 - 1e-6]`` first;
* ``proposal_rles``: list of ``N`` COCO RLEs (``counts`` str) at ``(H, W)``, exact;
* ``proposal_masks``: bool ``[N, H, W]``, only from the online generators, whose segmenters produce dense masks
  anyway. Precomputed proposals stay RLE: a 1080p frame with 100 proposals would otherwise hold 200 MB of masks.

Use :func:`proposal_masks_at` for the masks at a working resolution (from either field) and
:func:`proposal_rles_of` for the RLEs of some proposals.

Post-processing shared by all generators (:func:`postprocess_rle_proposals`, :func:`postprocess_proposals`): drop
masks with fewer than ``min_area`` pixels, then keep the ``max_per_image`` best by score, sorted by decreasing score
(ties keep the input order). Areas and boxes come from the RLEs, so precomputed proposals are never decoded at full
resolution. Proposals that are mostly hand are *not* removed here: hands come from a separate source and the
meta-architecture removes them (``MODEL.WISH.PROPOSALS.MAX_HAND_FRACTION``).
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.modeling.proposal_generator import PROPOSAL_GENERATOR_REGISTRY
from detectron2.structures import Boxes, Instances

from ..data.proposals_io import ProposalStore
from ..data.taxonomy import config_taxonomy
from ..utils.masks import (check_rle, decode_rles, encode_rle, rle_area_fractions, rle_areas, rle_boxes_xyxy,
                           rle_to_str)
from .geometry import to_working_res
from .segmenters import build_segmenter

logger = logging.getLogger(__name__)

__all__ = [
    "postprocess_proposals",
    "postprocess_rle_proposals",
    "proposal_masks_at",
    "proposal_rles_of",
    "image_to_rgb_numpy",
    "PrecomputedMaskProposals",
    "SAMProposals",
    "GSAMProposals",
    "ONLINE_GENERATORS",
    "build_online_proposal_generator",
]

_EPS = 1e-6


def _ranked(areas: torch.Tensor, scores: torch.Tensor, min_area: int, max_per_image: int) -> torch.Tensor:
    """Indices of the proposals kept: area >= ``min_area``, by decreasing score (stable), the first
    ``max_per_image`` (``<= 0`` keeps all)."""
    idx = torch.nonzero(areas >= min_area).flatten()
    order = idx[torch.argsort(scores[idx], descending=True, stable=True)]
    return order[:max_per_image] if max_per_image > 0 else order


def _instances(h: int, w: int, rles: List[Dict], scores: torch.Tensor) -> Instances:
    inst = Instances((int(h), int(w)))
    inst.proposal_boxes = Boxes(torch.from_numpy(rle_boxes_xyxy(rles)).to(scores.device))  # XYXY, 0 masks ok
    inst.objectness_logits = torch.logit(scores.clamp(_EPS, 1 - _EPS))
    inst.proposal_rles = rles
    return inst


def _scores(scores, n: int, device=None) -> torch.Tensor:
    scores = torch.as_tensor(scores, dtype=torch.float32).reshape(-1).to(device)
    if len(scores) != n:
        raise ValueError(f"{n} masks but {len(scores)} scores")
    return scores


def postprocess_rle_proposals(rles: Sequence[Dict], scores, height: int, width: int, min_area: int = 0,
                              max_per_image: int = -1) -> Instances:
    """RLEs (validated, of size ``(height, width)``) + scores ``[N]`` -> proposal ``Instances`` without a
    ``proposal_masks`` field: areas (pycocotools ``area``), ranking and boxes (``toBbox``) all work on the RLEs."""
    scores = _scores(scores, len(rles))
    order = _ranked(torch.from_numpy(rle_areas(rles)), scores, min_area, max_per_image).tolist()
    return _instances(height, width, [rle_to_str(_str_counts(rles[i])) for i in order], scores[order])


def _str_counts(rle: Dict) -> Dict:
    """The RLE with str counts (an uncompressed list is compressed by ``check_rle``)."""
    return check_rle(rle) if isinstance(rle["counts"], list) else rle


def postprocess_proposals(
    masks: torch.Tensor, scores: torch.Tensor, min_area: int = 0, max_per_image: int = -1
) -> Instances:
    """Dense masks ``[N, H, W]`` + scores ``[N]`` -> proposal ``Instances`` of size ``(H, W)`` with both
    ``proposal_rles`` (only the kept masks are encoded) and ``proposal_masks``.

    Drops masks with area < ``min_area``, keeps the ``max_per_image`` highest scores (``<= 0`` keeps all), sorted
    by decreasing score. Zero masks give an empty ``Instances`` with correctly shaped fields.
    """
    if masks.ndim != 3:
        raise ValueError(f"masks must be [N, H, W], got {tuple(masks.shape)}")
    masks = masks.bool()
    scores = _scores(scores, len(masks), masks.device)
    h, w = masks.shape[-2:]
    # per-mask full reductions: a batched sum over dim 1 widens every pixel to int64 first (2 GB at 1080p x 128)
    areas = torch.tensor([int(m.count_nonzero()) for m in masks], dtype=torch.long, device=masks.device)
    order = _ranked(areas, scores, min_area, max_per_image)
    masks = masks[order]
    inst = _instances(h, w, [encode_rle(m) for m in masks], scores[order])
    inst.proposal_masks = masks
    return inst


def proposal_masks_at(props: Instances, size: Tuple[int, int]) -> torch.Tensor:
    """float ``[N, h, w]``: the area fraction of each working pixel each proposal covers
    (:func:`~wish_d2.modeling.geometry.to_working_res`). Dense masks are averaged as they are; RLEs are averaged
    from their runs, so a precomputed proposal is never decoded at full resolution."""
    if props.has("proposal_masks"):
        return to_working_res(props.proposal_masks, size)
    H, W = props.image_size
    size = (int(size[0]), int(size[1]))
    f = 1 if size == (H, W) else -(-H // size[0])  # the block factor to_working_res uses
    if f == 1 and size != (H, W) or (-(-H // f), -(-W // f)) != size:  # not a block grid: resample densely
        return to_working_res(decode_rles(props.proposal_rles, H, W), size)
    return rle_area_fractions(props.proposal_rles, H, W, f)


def proposal_rles_of(props: Instances, indices: Sequence[int]) -> List[Dict]:
    """The RLEs (str counts, full resolution) of the proposals at ``indices``; encoded from ``proposal_masks`` for a
    generator that gives only dense masks."""
    if props.has("proposal_rles"):
        return [props.proposal_rles[i] for i in indices]
    return [encode_rle(props.proposal_masks[i].to(torch.bool)) for i in indices]


def image_to_rgb_numpy(image: torch.Tensor, input_format: str = "RGB") -> np.ndarray:
    """A dataset-dict ``"image"`` (``[3, H, W]`` tensor, ``input_format`` channel order) -> RGB uint8 ``[H, W, 3]``."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an image tensor [3, H, W], got {tuple(image.shape)}")
    arr = image.detach().cpu().permute(1, 2, 0).numpy()
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if input_format == "BGR":
        arr = arr[:, :, ::-1]
    elif input_format != "RGB":
        raise ValueError(f"unsupported INPUT.FORMAT {input_format!r} for mask proposals (RGB or BGR)")
    return np.ascontiguousarray(arr)


def image_hw(x: Dict) -> Tuple[int, int]:
    """(height, width) of a dataset dict: of its loaded ``image`` if any, else the dict's own fields."""
    if "image" in x:
        return tuple(int(s) for s in x["image"].shape[-2:])
    return int(x["height"]), int(x["width"])


class _MaskProposalGenerator(nn.Module):
    """Shared post-processing (``min_area``, ``max_per_image``) and the WISH calling convention."""

    def __init__(self, *, min_area: int = 16, max_per_image: int = 32):
        super().__init__()
        self.min_area = int(min_area)
        self.max_per_image = int(max_per_image)

    @staticmethod
    def _common_from_config(cfg) -> Dict:
        P = cfg.MODEL.WISH.PROPOSALS
        return {"min_area": P.MIN_AREA, "max_per_image": P.MAX_PER_IMAGE}

    def _postprocess(self, masks: torch.Tensor, scores: torch.Tensor) -> Instances:
        return postprocess_proposals(masks, scores, self.min_area, self.max_per_image)

    def _postprocess_rles(self, rles: List[Dict], scores, height: int, width: int) -> Instances:
        return postprocess_rle_proposals(rles, scores, height, width, self.min_area, self.max_per_image)

    def forward(self, batched_inputs: List[Dict]) -> List[Instances]:
        return [self.propose_one(x) for x in batched_inputs]

    def propose_one(self, x: Dict) -> Instances:  # pragma: no cover - abstract
        raise NotImplementedError


@PROPOSAL_GENERATOR_REGISTRY.register()
class PrecomputedMaskProposals(_MaskProposalGenerator):
    """Proposals read from a JSON-lines file of :mod:`wish_d2.data.proposals_io` (e.g. written by
    ``tools/extract_proposals.py``), looked up by ``image_id``.

    Which file, for each input dict, in this order:

    1. the dict's ``"proposals_file"`` (the mapper copies it from the dataset's metadata ``proposals_file``);
    2. the ``proposals_file`` constructor argument (one file for everything, e.g. in tests or demos);
    3. ``MetadataCatalog.get(dict["dataset_name"]).proposals_file``.

    One :class:`ProposalStore` (byte offsets only) is cached per file. An image without a record, or with zero
    masks, gets an empty ``Instances`` (the store logs a warning for a missing record). A record at the dict's image
    size is never decoded: its RLEs are ranked, boxed and passed on as they are. When a record's
    ``height``/``width`` differ from the dict's image size (e.g. proposals extracted at full resolution, frames
    loaded downscaled), masks are resized with nearest-neighbour interpolation: a mask is a label map, and
    nearest keeps it binary without a threshold to pick. ``min_area`` applies at the output resolution.
    """

    @configurable
    def __init__(self, *, proposals_file: Optional[str] = None, min_area: int = 16, max_per_image: int = 32):
        super().__init__(min_area=min_area, max_per_image=max_per_image)
        self.proposals_file = proposals_file or None
        self._stores: Dict[str, ProposalStore] = {}

    @classmethod
    def from_config(cls, cfg, input_shape=None):
        # The file is per dataset (metadata ``proposals_file``), resolved per dict: no cfg key.
        return cls._common_from_config(cfg)

    def _store(self, path: str) -> ProposalStore:
        if path not in self._stores:
            self._stores[path] = ProposalStore(path)
        return self._stores[path]

    def _resolve_file(self, x: Dict) -> str:
        path = x.get("proposals_file") or self.proposals_file
        if not path and x.get("dataset_name"):
            path = MetadataCatalog.get(x["dataset_name"]).get("proposals_file")
        if not path:
            raise ValueError(
                f"no precomputed proposals file for image {x.get('image_id')!r}: the dict has no 'proposals_file' "
                "or 'dataset_name' with metadata proposals_file, and the generator was built without one. "
                "Run tools/extract_proposals.py and set the dataset's metadata proposals_file."
            )
        return path

    def propose_one(self, x: Dict) -> Instances:
        h, w = image_hw(x)
        rec = self._store(self._resolve_file(x)).get(x["image_id"])
        rh, rw = int(rec.get("height", h)), int(rec.get("width", w))
        if rec["masks"]:
            rh, rw = (int(s) for s in rec["masks"][0]["size"])
        if (rh, rw) == (h, w):  # the usual case: ranked and measured as RLEs, never decoded here
            return self._postprocess_rles(rec["masks"], rec["scores"], h, w)
        masks = F.interpolate(decode_rles(rec["masks"], rh, rw)[None].float(), size=(h, w), mode="nearest")[0] > 0.5
        inst = self._postprocess(masks, torch.tensor(rec["scores"], dtype=torch.float32))
        inst.remove("proposal_masks")  # one contract for precomputed proposals: RLEs only
        return inst


class _SegmenterProposals(_MaskProposalGenerator):
    """Runs a frozen segmenter on each dict's RGB image."""

    segmenter_name = ""

    def __init__(self, *, segmenter: nn.Module, input_format: str = "RGB", min_area: int = 16,
                 max_per_image: int = 32):
        super().__init__(min_area=min_area, max_per_image=max_per_image)
        self.segmenter = segmenter
        self.input_format = input_format

    @classmethod
    def from_config(cls, cfg, input_shape=None):
        ret = cls._common_from_config(cfg)
        ret.update(segmenter=build_segmenter(cfg, cls.segmenter_name), input_format=cfg.INPUT.FORMAT)
        return ret

    def _segment(self, image: np.ndarray, x: Dict) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.segmenter(image)

    def propose_one(self, x: Dict) -> Instances:
        if "image" not in x:
            raise ValueError(f"{type(self).__name__} needs the RGB 'image' in each input dict (online mapper)")
        masks, scores = self._segment(image_to_rgb_numpy(x["image"], self.input_format), x)
        return self._postprocess(masks, scores)


@PROPOSAL_GENERATOR_REGISTRY.register()
class SAMProposals(_SegmenterProposals):
    """SAM automatic masks (:class:`~wish_d2.modeling.segmenters.SAMSegmenter`) as proposals; score = SAM's
    predicted IoU. Config: ``MODEL.WISH.SEGMENTER.{SAM_TYPE, SAM_CHECKPOINT, POINTS_PER_SIDE, PRED_IOU_THRESH}``."""

    segmenter_name = "SAM"

    @configurable
    def __init__(self, *, segmenter: nn.Module, input_format: str = "RGB", min_area: int = 16,
                 max_per_image: int = 32):
        super().__init__(segmenter=segmenter, input_format=input_format, min_area=min_area,
                         max_per_image=max_per_image)


@PROPOSAL_GENERATOR_REGISTRY.register()
class GSAMProposals(_SegmenterProposals):
    """Grounded-SAM proposals (:class:`~wish_d2.modeling.segmenters.GSAMSegmenter`); score = Grounding DINO box
    score. Config: ``MODEL.WISH.SEGMENTER.{GDINO_PATH, BOX_THRESHOLD, TEXT_THRESHOLD, SAM_TYPE, SAM_CHECKPOINT}``.

    The text prompt is a taxonomy fixed before evaluation, never the metadata of the split being proposed for:
    the ``nouns`` constructor argument; else :func:`~wish_d2.data.taxonomy.config_taxonomy` of
    ``taxonomy_datasets`` and ``taxonomy_file`` (from_config: ``DATASETS.TRAIN`` and ``MODEL.WISH.TAXONOMY.FILE``),
    read at first use.
    """

    segmenter_name = "GSAM"

    @configurable
    def __init__(self, *, segmenter: nn.Module, nouns: Optional[Sequence[str]] = None,
                 taxonomy_datasets: Sequence[str] = (), taxonomy_file: str = "", input_format: str = "RGB",
                 min_area: int = 16, max_per_image: int = 32):
        super().__init__(segmenter=segmenter, input_format=input_format, min_area=min_area,
                         max_per_image=max_per_image)
        self.nouns = list(nouns) if nouns else None
        self.taxonomy_datasets = tuple(taxonomy_datasets)
        self.taxonomy_file = taxonomy_file

    @classmethod
    def from_config(cls, cfg, input_shape=None):
        ret = super().from_config(cfg, input_shape)
        ret.update(taxonomy_datasets=tuple(cfg.DATASETS.TRAIN), taxonomy_file=cfg.MODEL.WISH.TAXONOMY.FILE)
        return ret

    def _nouns(self) -> List[str]:
        if not self.nouns:
            self.nouns = config_taxonomy(self.taxonomy_datasets, self.taxonomy_file)
        return self.nouns

    def _segment(self, image: np.ndarray, x: Dict) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.segmenter(image, nouns=self._nouns())


# Online generators by segmenter name (MODEL.WISH.SEGMENTER.NAME), used by tools/extract_proposals.py.
ONLINE_GENERATORS = {"SAM": "SAMProposals", "GSAM": "GSAMProposals"}


def build_online_proposal_generator(cfg) -> nn.Module:
    """The online generator a cfg asks for: ``MODEL.PROPOSAL_GENERATOR.NAME`` when it is one of
    ``SAMProposals`` / ``GSAMProposals``, else the one for ``MODEL.WISH.SEGMENTER.NAME`` (a training cfg that reads
    precomputed proposals still names the segmenter that makes them)."""
    name = cfg.MODEL.PROPOSAL_GENERATOR.NAME
    if name not in ONLINE_GENERATORS.values():
        seg = cfg.MODEL.WISH.SEGMENTER.NAME
        if seg not in ONLINE_GENERATORS:
            raise ValueError(f"MODEL.WISH.SEGMENTER.NAME={seg!r} has no online generator; "
                             f"one of {list(ONLINE_GENERATORS)}")
        name = ONLINE_GENERATORS[seg]
    return PROPOSAL_GENERATOR_REGISTRY.get(name)(cfg)
