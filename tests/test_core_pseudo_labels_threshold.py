"""Pseudo-label acceptance is inclusive: a hand whose best score equals the threshold is accepted (score >= t)."""
import math

import torch

from wish_d2.modeling.pseudo_labels import assign_pseudo_labels


def _scores(left, right):
    """[N=2 objects, M=1 phrase, 2 hands] with the given (object 0, object 1) scores per hand."""
    return torch.tensor([[[left[0], right[0]]], [[left[1], right[1]]]], dtype=torch.float32)


def _labels(scores, threshold, **kw):
    return assign_pseudo_labels(scores, torch.ones(2, dtype=torch.bool), torch.ones(1, dtype=torch.bool),
                                torch.ones(2, dtype=torch.bool), threshold=threshold, **kw)


def test_score_equal_to_threshold_is_accepted():
    s = _scores(left=(1.5, 0.25), right=(0.5, 1.25))
    assert _labels(s, 1.5, both_rule=False).obj_idx.tolist() == [0, -1]
    assert _labels(s, 1.25, both_rule=False).obj_idx.tolist() == [0, 1]
    assert _labels(s, 1.5 + 1e-6, both_rule=False).obj_idx.tolist() == [-1, -1]


def test_both_rule_margin_is_inclusive():
    """Right hand's own best is the left hand's accepted object; its score sits exactly at threshold - margin."""
    s = _scores(left=(0.0, 3.0), right=(0.5, 1.0))
    labels = _labels(s, 2.0, both_rule=True, both_margin=1.0)
    assert labels.obj_idx.tolist() == [1, 1] and labels.via_both_rule.tolist() == [False, True]
    assert _labels(s, 2.0, both_rule=True, both_margin=0.5).obj_idx.tolist() == [1, -1]
    assert _labels(s, 2.0, both_rule=True, both_margin=math.inf).obj_idx.tolist() == [1, 1]
