"""The hand detector's training: Detectron2's own ``DefaultTrainer`` on a stock Mask R-CNN config
(``configs/hand_detector_*.yaml``) over hand-only splits (:mod:`wish_d2.data.hand_datasets`). Nothing WISH-specific
runs here but the dataset registrations; the weights it writes (``OUTPUT_DIR/model_final.pth``) are what
``MODEL.WISH.HANDS.DETECTOR_WEIGHTS`` names."""
import os

import torch
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
    implementation, so the numbers are the standard ones).

    ``SOLVER.AMP.ENABLED`` on ``MODEL.DEVICE cpu`` trains in bfloat16 mixed precision. Detectron2's own
    ``AMPTrainer`` needs CUDA, so here the model's forward (losses included) runs under
    ``torch.autocast("cpu", torch.bfloat16)`` and the backward and the optimizer step stay as ``SimpleTrainer`` runs
    them. The weights stay float32, so the checkpoint and inference are unchanged. On this project's 2-core test
    machine (bfloat16 instructions) it made a step of the hand benchmark's small detector 8-15% faster, and one run
    of 900 iterations ended at a lower mask AP than one float32 run (docs/RESULTS.md section 5), so the benchmark
    keeps float32.
    """

    def __init__(self, cfg):
        cpu_amp = bool(cfg.SOLVER.AMP.ENABLED) and cfg.MODEL.DEVICE == "cpu"
        if cpu_amp:
            cfg = cfg.clone()
            cfg.defrost()
            cfg.SOLVER.AMP.ENABLED = False  # not Detectron2's CUDA-only AMPTrainer
            cfg.freeze()
        super().__init__(cfg)
        if cpu_amp:
            self.model.forward = torch.autocast("cpu", dtype=torch.bfloat16)(self.model.forward)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False)
