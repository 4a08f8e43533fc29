"""Registries for WISH's interchangeable external parts, in the style of PointRend's POINT_HEAD_REGISTRY.

Each registered builder takes the full cfg and returns a module, and is registered once, under the name a config
uses. The frozen models (CLIP, SAM) have tiny, randomly initialised variants that go through the same loading code
as real weights, so tests and the embedded default exercise the real path.
"""
from detectron2.utils.registry import Registry

CLIP_ENCODER_REGISTRY = Registry("WISH_CLIP_ENCODER")
CLIP_ENCODER_REGISTRY.__doc__ = "Frozen CLIP image/text encoders (MODEL.WISH.CLIP.ENCODER): ``fn(cfg) -> nn.Module``."

SEGMENTER_REGISTRY = Registry("WISH_SEGMENTER")
SEGMENTER_REGISTRY.__doc__ = (
    "Frozen class-agnostic segmenters (MODEL.WISH.SEGMENTER.NAME: SAM | GSAM): ``fn(cfg) -> nn.Module``."
)

HAND_SOURCE_REGISTRY = Registry("WISH_HAND_SOURCE")
HAND_SOURCE_REGISTRY.__doc__ = (
    "Where hand masks come from (MODEL.WISH.HANDS.SOURCE: dataset | precomputed | detector): ``fn(cfg) -> callable``."
)
