"""The hand detector's training: Detectron2's own ``DefaultTrainer`` on a stock Mask R-CNN config
(``configs/hand_detector_*.yaml``) over hand-only splits (:mod:`wish_d2.data.hand_datasets`). Nothing WISH-specific
runs here but the dataset registrations; the weights it writes (``OUTPUT_DIR/model_final.pth``) are what
``MODEL.WISH.HANDS.DETECTOR_WEIGHTS`` names."""
import os

from detectron2.config import get_cfg
from detectron2.engine import DefaultTrainer
from detectron2.evaluation import COCOEvaluator

__all__ = ["HandDetectorTrainer", "hand_detector_cfg"]


def hand_detector_cfg(config_file: str, opts=()):
    """Detectron2's default config + the detector's yaml (read by the safe reader) + ``KEY VALUE`` overrides (no
    WISH keys)."""
    from ..config_file import merge_config_file, merge_config_overrides

    cfg = get_cfg()
    merge_config_file(cfg, config_file, "--config-file")
    merge_config_overrides(cfg, list(opts))
    return cfg


class HandDetectorTrainer(DefaultTrainer):
    """``DefaultTrainer`` whose evaluator is COCO mask/box AP of the two hand classes (pycocotools' reference
    implementation, so the numbers are the standard ones)."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False)
