"""Threshold choices: the grid search keeps the best validation threshold, and an uncalibrated model keeps a hand's
object at even odds of contact (probability 0.5)."""
import math

import pytest
import torch
from wish_fixtures import tiny_cfg

from wish_d2.engine.calibration import CONTACT_THRESHOLD_GRID, grid_search


def test_grid_search_keeps_the_best_threshold_first_on_ties():
    val = {0.1: 20.0, 0.3: 35.0, 0.5: 41.0, 0.7: 41.0, 0.9: 12.0}
    assert grid_search(list(val), val.__getitem__, "t") == 0.5
    assert grid_search([0.9, 0.1], val.__getitem__, "t") == 0.1  # best, not worst and not the last


def test_contact_grid_is_a_probability_grid():
    grid = list(CONTACT_THRESHOLD_GRID)
    assert grid == sorted(grid) and 0 < grid[0] and grid[-1] < 1 and len(grid) == 19


def _heads(tmp_path):
    from wish_d2.modeling.roi_heads import build_wish_heads

    cfg = tiny_cfg(tmp_path)
    heads = build_wish_heads(cfg, {"clip": 8})
    assert float(heads.contact_threshold) < 0  # the default asks for calibration: nothing calibrated yet
    return heads


def test_uncalibrated_model_keeps_objects_at_probability_one_half(tmp_path, monkeypatch):
    """Left hand touches object 0 with p=0.7, right hand object 1 with p=0.6: kept at theta 0.5 (the
    uncalibrated default), dropped at 0.9. Only the heads' scores are fixed; the selection is the real one."""
    heads = _heads(tmp_path)
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    contact = torch.tensor([[[logit(0.7), logit(0.1)], [logit(0.2), logit(0.6)]]])  # [B=1, N=2, hands=2]
    monkeypatch.setattr(heads, "scores", lambda batch, method=None: (contact, contact))
    batch = {"obj_valid": torch.ones(1, 2, dtype=torch.bool), "hand_present": torch.ones(1, 2, dtype=torch.bool)}
    kept = heads.inference(batch, method="contactness_only")[0]
    assert [(i, c) for i, c, _ in kept] == [(0, 0), (1, 1)]
    assert kept == heads.inference(batch, method="contactness_only", contact_threshold=0.5)[0]
    assert heads.inference(batch, method="contactness_only", contact_threshold=0.9)[0] == []
    heads.contact_threshold.fill_(0.65)  # a calibrated threshold replaces the default
    assert [(i, c) for i, c, _ in heads.inference(batch, method="contactness_only")[0]] == [(0, 0)]
    with pytest.raises(ValueError):
        heads.inference(batch, method="no_such_method")
