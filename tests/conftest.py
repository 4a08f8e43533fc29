"""Shared pytest setup: register the plugin once and keep torch to the 2 CI cores."""
import os

import torch

os.environ.setdefault("DETECTRON2_DATASETS", os.path.join(os.path.dirname(__file__), "..", "datasets"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

import wish_d2  # noqa: E402,F401  registers everything, installs Detectron2 compat shims
