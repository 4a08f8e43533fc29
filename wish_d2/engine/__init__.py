"""Training glue: the ``DefaultTrainer`` subclass, the feature-cache data path and the two-stage pipeline."""
from .trainer import WISHTrainer
from .pipeline import run_pipeline

__all__ = ["WISHTrainer", "run_pipeline"]
