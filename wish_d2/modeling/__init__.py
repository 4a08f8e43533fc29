"""WISH model parts. Importing this package registers them with Detectron2."""
from . import segmenters  # noqa: F401,E402  registers SAM / GSAM in SEGMENTER_REGISTRY
from . import proposal_generators  # noqa: F401,E402  registers PrecomputedMaskProposals, SAMProposals, GSAMProposals
from . import clip_encoder  # noqa: F401,E402  registers OpenCLIPEncoder in CLIP_ENCODER_REGISTRY
from . import hands  # noqa: F401,E402  registers hand sources
from . import roi_heads  # noqa: F401,E402  registers WISHROIHeads
from . import meta_arch  # noqa: F401,E402  registers the WISH meta-architecture
