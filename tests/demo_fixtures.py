"""Shared pieces of the demo tests: the demo tool loaded as a module, and a predictor that predicts nothing (the
tests that use it are about the demo's inputs and files, not the model)."""
import importlib.util
import os

import torch
from detectron2.structures import Instances

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_demo_tool(module_name: str):
    """``tools/demo.py`` as a fresh module under ``module_name``."""
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(REPO, "tools", "demo.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class EmptyPredictor:
    """The predictor's output contract with no hands and no predictions."""

    def __init__(self, cfg, weights=None):
        pass

    def __call__(self, image_rgb, hands=None, image_id="", extra=None):
        h, w = image_rgb.shape[:2]
        inst = Instances((h, w))
        inst.pred_masks = torch.zeros((0, h, w), dtype=torch.bool)
        inst.pred_classes = torch.zeros((0,), dtype=torch.long)
        inst.scores = torch.zeros((0,))
        return {"instances": inst, "record": {"proposal_rles": [], "hand_rles": [None, None]}}
