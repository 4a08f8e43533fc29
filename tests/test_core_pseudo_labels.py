"""Pseudo-labels: one object per hand, threshold, both-hands rule, padding, calibration on validation scores."""
import math

import torch

from wish_d2.modeling.losses import NEG
from wish_d2.modeling.pseudo_labels import (
    calibrate_threshold,
    assign_pseudo_labels,
    pseudo_labels_batched,
    threshold_grid,
)


def _scores(N=3, M=2):
    return torch.zeros(N, M, 2)


def pseudo_label_image(s, present, threshold, obj_valid=None, phrase_valid=None, **kw):
    N, M, _ = s.shape
    ov = torch.ones(N, dtype=torch.bool) if obj_valid is None else obj_valid
    pv = torch.ones(M, dtype=torch.bool) if phrase_valid is None else phrase_valid
    return assign_pseudo_labels(s, ov, pv, present, threshold=threshold, **kw)


def test_one_object_per_hand_and_threshold():
    s = _scores()
    s[1, 0, 0] = 5.0  # left: object 1 via phrase 0
    s[2, 1, 1] = 3.0  # right: object 2 via phrase 1
    pl = pseudo_label_image(s, torch.tensor([True, True]), threshold=4.0)
    assert pl.obj_idx.tolist() == [1, -1]  # right below threshold -> no contact
    assert pl.candidate_idx.tolist() == [1, 2] and pl.phrase_idx.tolist() == [0, 1]
    assert pl.score.tolist() == [5.0, 3.0]
    pl = pseudo_label_image(s, torch.tensor([True, True]), threshold=2.0)
    assert pl.obj_idx.tolist() == [1, 2] and not pl.both


def test_absent_hand_and_invalid_padding():
    s = _scores()
    s[0, 0, :] = 9.0  # padding object with the best score
    s[1, 1, :] = 8.0  # padding phrase
    s[2, 0, :] = 1.0
    pl = pseudo_label_image(s, torch.tensor([False, True]), 0.5,
                            obj_valid=torch.tensor([False, True, True]), phrase_valid=torch.tensor([True, False]))
    assert pl.obj_idx.tolist() == [-1, 2] and pl.phrase_idx.tolist() == [-1, 0]
    assert pl.score[0].item() == NEG


def test_both_hands_rule():
    s = _scores()
    s[1, 0, 0] = 5.0  # left accepted with object 1
    s[1, 0, 1] = 2.0  # right's own best is also object 1, but below threshold
    present = torch.tensor([True, True])
    off = pseudo_label_image(s, present, 4.0, both_rule=False)
    assert off.obj_idx.tolist() == [1, -1]
    on = pseudo_label_image(s, present, 4.0)
    assert on.obj_idx.tolist() == [1, 1] and bool(on.both) and on.via_both_rule.tolist() == [False, True]
    # a finite margin makes the rule stricter: 2.0 < 4.0 - 1.0
    assert pseudo_label_image(s, present, 4.0, both_margin=1.0).obj_idx.tolist() == [1, -1]
    assert pseudo_label_image(s, present, 4.0, both_margin=2.5).obj_idx.tolist() == [1, 1]
    # other hand's own best is a different object: no rule
    s[2, 1, 1] = 3.0
    assert pseudo_label_image(s, present, 4.0).obj_idx.tolist() == [1, -1]
    # the other hand absent: no rule
    s[2, 1, 1] = 0.0
    assert pseudo_label_image(s, torch.tensor([True, False]), 4.0).obj_idx.tolist() == [1, -1]


def test_batched_matches_per_image_and_empty():
    torch.manual_seed(0)
    B, N, M = 6, 4, 3
    s = torch.randn(B, N, M, 2) * 3
    present = torch.rand(B, 2) > 0.3
    ov = torch.rand(B, N) > 0.2
    pv = torch.rand(B, M) > 0.2
    out = pseudo_labels_batched(s, present, 1.0, ov, pv)
    for b in range(B):
        one = pseudo_label_image(s[b], present[b], 1.0, ov[b], pv[b])
        for f in ("obj_idx", "score", "phrase_idx", "candidate_idx", "via_both_rule"):
            assert torch.equal(getattr(out, f)[b], getattr(one, f))
    e = pseudo_labels_batched(torch.zeros(2, 0, 3, 2), torch.ones(2, 2, dtype=torch.bool), 0.0)
    assert (e.obj_idx == -1).all() and not e.both.any()


def test_calibrate_threshold_with_correctness_and_objective():
    scores = torch.tensor([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    correct = torch.tensor([False, False, False, True, True, True])
    t, acc = calibrate_threshold(scores, correct)
    assert 0.3 < t <= 0.6 and acc == 1.0
    t_f1, f1 = calibrate_threshold(scores, correct, metric="f1")
    assert f1 == 1.0 and 0.3 < t_f1 <= 0.6
    t2, v2 = calibrate_threshold(scores, objective=lambda th: -abs(th - 0.25), grid=[0.0, 0.25, 0.5])
    assert t2 == 0.25 and v2 == 0.0
    grid = threshold_grid(torch.tensor([1.0, 2.0, NEG, math.inf]))
    assert grid.tolist() == [0.0, 1.5, 3.0]
