"""Registries for WISH's interchangeable external parts, in the style of PointRend's POINT_HEAD_REGISTRY.

Each registered builder takes the full cfg and returns a module. Every registry has a tiny, randomly
initialised variant that goes through the same loading code as real weights, so tests and the embedded
default exercise the real path.
"""
from detectron2.utils.registry import Registry

CLIP_ENCODER_REGISTRY = Registry("WISH_CLIP_ENCODER")
CLIP_ENCODER_REGISTRY.__doc__ = "Frozen CLIP image/text encoders: ``fn(cfg) -> nn.Module``."

SEGMENTER_REGISTRY = Registry("WISH_SEGMENTER")
SEGMENTER_REGISTRY.__doc__ = "Frozen class-agnostic segmenters (SAM, Grounded-SAM): ``fn(cfg) -> nn.Module``."

HAND_SOURCE_REGISTRY = Registry("WISH_HAND_SOURCE")
HAND_SOURCE_REGISTRY.__doc__ = "Where hand masks come from (dataset, precomputed files, a detector)."
