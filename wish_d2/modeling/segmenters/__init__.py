"""Frozen class-agnostic segmenters that produce the proposal masks, one per module, each registered once in
:data:`wish_d2.registry.SEGMENTER_REGISTRY` (``fn(cfg) -> nn.Module``) and selected by ``MODEL.WISH.SEGMENTER.NAME``:

* ``SAM`` (:mod:`.sam`): Segment Anything's automatic mask generation;
* ``GSAM`` (:mod:`.gsam`): Grounded-SAM, Grounding DINO boxes for the dataset taxonomy as SAM box prompts.

Each takes one RGB ``uint8`` image ``[H, W, 3]`` (numpy or tensor) and returns ``(masks, scores)``: a bool tensor
``[N, H, W]`` at the input resolution and a float tensor ``[N]``. All models are frozen and stay in eval mode.
"""
from typing import Optional

from torch import nn

from ...registry import SEGMENTER_REGISTRY
from .gsam import GSAMSegmenter, load_grounding_dino, taxonomy_phrases, taxonomy_prompt
from .sam import SAM_TYPES, SAMSegmenter, build_sam, build_tiny_sam, load_sam_checkpoint

__all__ = [
    "SAM_TYPES",
    "build_sam",
    "load_sam_checkpoint",
    "build_tiny_sam",
    "load_grounding_dino",
    "taxonomy_prompt",
    "taxonomy_phrases",
    "SAMSegmenter",
    "GSAMSegmenter",
    "build_segmenter",
]


def build_segmenter(cfg, name: Optional[str] = None) -> nn.Module:
    """The segmenter ``name`` (default ``MODEL.WISH.SEGMENTER.NAME``) built from ``cfg``."""
    return SEGMENTER_REGISTRY.get(name or cfg.MODEL.WISH.SEGMENTER.NAME)(cfg)
