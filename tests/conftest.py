"""Shared pytest setup: register the plugin once, keep torch to the 2 CI cores, and isolate logger state."""
import logging
import os

import pytest
import torch

os.environ.setdefault("DETECTRON2_DATASETS", os.path.join(os.path.dirname(__file__), "..", "datasets"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

import wish_d2  # noqa: E402,F401  registers everything, installs Detectron2 compat shims


@pytest.fixture(autouse=True)
def _isolated_package_loggers():
    """Tools run in-process call Detectron2's ``setup_logger``, which stops ``wish_d2`` records from propagating to
    the root logger (where ``caplog`` listens) and adds handlers. Restore both after every test, so a test's log
    assertions do not depend on which tests ran before it."""
    names = ("wish_d2", "detectron2", "d2", "wish")
    saved = {n: (logging.getLogger(n).propagate, list(logging.getLogger(n).handlers), logging.getLogger(n).level)
             for n in names}
    yield
    for n, (propagate, handlers, level) in saved.items():
        lg = logging.getLogger(n)
        lg.propagate, lg.handlers[:], lg.level = propagate, handlers, level
