"""WISH for Detectron2. ``import wish_d2`` registers the meta-architecture, heads, generators and datasets.

The public surface, like Detectron2's own re-exports::

    from wish_d2 import add_wish_config, WISH, WISHTrainer, WISHPredictor, InHandEvaluator
    from wish_d2.data import register_epic_visor, register_ego4d, register_coco_narrations
"""
try:
    from . import compat  # noqa: F401  (must run before any detectron2 submodule is imported)
except ImportError as e:  # pragma: no cover - only without detectron2
    raise ImportError(
        "wish_d2 needs Detectron2. Run `make setup`, or `bash tools/install_detectron2.sh` in your environment "
        f"(original error: {e})"
    ) from e

from .config import add_wish_config
from . import modeling  # noqa: F401  registers models
from . import data  # noqa: F401  registers datasets
from . import evaluation  # noqa: F401
from .modeling.meta_arch import WISH
from .engine.trainer import WISHTrainer
from .engine.predictor import WISHPredictor
from .evaluation.inhand_evaluator import InHandEvaluator

__all__ = ["add_wish_config", "WISH", "WISHTrainer", "WISHPredictor", "InHandEvaluator"]
__version__ = "0.1.0"
