"""WISH model parts. Importing this package registers them with Detectron2 (meta-architecture, ROI heads, proposal
generators) and with WISH's own registries (segmenters, CLIP encoders, hand sources: :mod:`wish_d2.registry`).

The builders a user calls, re-exported here the way ``detectron2.modeling`` re-exports ``build_model``::

    from wish_d2.modeling import WISH, build_clip_encoder, build_segmenter, build_hand_source
"""
from . import segmenters  # noqa: F401,E402  registers SAM / GSAM in SEGMENTER_REGISTRY
from . import proposal_generators  # noqa: F401,E402  registers PrecomputedMaskProposals, SAMProposals, GSAMProposals
from . import clip_encoder  # noqa: F401,E402  registers OpenCLIPEncoder in CLIP_ENCODER_REGISTRY
from . import hands  # noqa: F401,E402  registers hand sources
from . import roi_heads  # noqa: F401,E402  registers WISHROIHeads
from . import meta_arch  # noqa: F401,E402  registers the WISH meta-architecture
from .clip_encoder import build_clip_encoder, build_mask_pooled_clip, build_open_clip
from .hands import DatasetHands, DetectorHands, PrecomputedHands, build_hand_source
from .meta_arch import WISH
from .proposal_generators import GSAMProposals, PrecomputedMaskProposals, SAMProposals
from .segmenters import GSAMSegmenter, SAMSegmenter, build_sam, build_segmenter, load_grounding_dino
from .weights import WeightsUnavailableError

__all__ = [
    "WISH",
    "build_clip_encoder",
    "build_open_clip",
    "build_mask_pooled_clip",
    "build_segmenter",
    "build_sam",
    "load_grounding_dino",
    "SAMSegmenter",
    "GSAMSegmenter",
    "PrecomputedMaskProposals",
    "SAMProposals",
    "GSAMProposals",
    "build_hand_source",
    "DatasetHands",
    "PrecomputedHands",
    "DetectorHands",
    "WeightsUnavailableError",
]
