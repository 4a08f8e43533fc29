"""Registries for WISH's interchangeable parts, in the style of PointRend's POINT_HEAD_REGISTRY: the frozen external
models, the hand sources, and the trainable heads, whose interface is not Detectron2's ``ROIHeads``.

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

WISH_HEADS_REGISTRY = Registry("WISH_HEADS")
WISH_HEADS_REGISTRY.__doc__ = (
    "WISH's trainable heads (MODEL.ROI_HEADS.NAME: WISHROIHeads): ``cls(cfg, {\"clip\": embed_dim})``. Not "
    "Detectron2's ROI_HEADS_REGISTRY: they score padded per-image proposal features, not ``ROIHeads``' "
    "``(images, features, proposals, targets)`` (see wish_d2.modeling.roi_heads)."
)

HAND_SOURCE_REGISTRY = Registry("WISH_HAND_SOURCE")
HAND_SOURCE_REGISTRY.__doc__ = (
    "Where hand masks come from (MODEL.WISH.HANDS.SOURCE: dataset | precomputed | detector): ``fn(cfg) -> callable``."
)
