"""Pinned outputs of the core on fixed tiny inputs, the way Detectron2's ``tests/modeling/test_roi_heads.py`` pins
its losses: the Stage 1 and Stage 2 losses, the pseudo-labels, the inference rules and E-mIoU.

Every expected value is derived by hand in the comment next to it (closed forms, not numbers read off the code), so
a changed formula (another aggregation, reduction, tie rule, fusion or IoU definition) fails here. Plain torch only.
"""
import math

import pytest
import torch

from wish_d2.evaluation.metrics import InHandIoU, paint_label_map
from wish_d2.modeling.inference import select_in_hand
from wish_d2.modeling.losses import (NEG, contact_loss, image_narration_scores, image_narration_valid,
                                     matching_loss, symmetric_info_nce)
from wish_d2.modeling.pseudo_labels import assign_pseudo_labels, calibrate_threshold

E0, E1, D = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.6, 0.8])  # unit vectors
TAU = 0.5


def softplus(x: float) -> float:
    """log(1 + e^x): the cross-entropy of a 2-way softmax whose wrong logit exceeds the right one by x."""
    return math.log1p(math.exp(x))


# ---- Stage 1: S(I, N) and the symmetric InfoNCE ----------------------------------------------------------------
def _stage1_batch():
    """2 images x 2 objects x 2 hands, one phrase per narration, E = 2.

    image 0: both hands present; pairs (obj 0, L) = e0, (obj 0, R) = d, (obj 1, L) = d, (obj 1, R) = d.
    image 1: left hand only; (obj 0, L) = e1, (obj 0, R) = e0 (absent hand), obj 1 is padding (= e0, must not count).
    narration 0: "e0"; narration 1: "e1" (the same phrase vector for both sides)."""
    w = torch.zeros(2, 2, 2, 2)
    w[0, 0, 0], w[0, 0, 1], w[0, 1, 0], w[0, 1, 1] = E0, D, D, D
    w[1, 0, 0], w[1, 0, 1], w[1, 1, 0], w[1, 1, 1] = E1, E0, E0, E0
    obj_valid = torch.tensor([[True, True], [True, False]])
    hands = torch.tensor([[True, True], [True, False]])
    p = torch.stack([E0.expand(1, 2, 2), E1.expand(1, 2, 2)])  # [B=2, M=1, 2, E=2]
    return w, obj_valid, hands, p, torch.ones(2, 1, dtype=torch.bool)


def test_stage1_scores_and_loss_pinned():
    w, ov, hp, p, pv = _stage1_batch()
    S = image_narration_scores(w, ov, hp, p, pv, TAU)
    # S[a, b] = mean_j max_{valid i, present s} cos / tau:
    #   image 0 vs "e0": max(1, .6, .6, .6) / .5 = 2;   vs "e1": max(0, .8, .8, .8) / .5 = 1.6
    #   image 1 vs "e0": only (0, L) = e1 counts: 0;    vs "e1": 1 / .5 = 2
    assert S.flatten().tolist() == pytest.approx([2.0, 1.6, 0.0, 2.0])
    assert image_narration_valid(ov, hp, pv).tolist() == [True, True]
    # rows (image -> narration), target the diagonal:  r0 = softplus(1.6 - 2), r1 = softplus(0 - 2)
    # columns (narration -> image):                    c0 = softplus(0 - 2),   c1 = softplus(1.6 - 2)
    # loss = (mean(r) + mean(c)) / 2 = (softplus(-0.4) + softplus(-2)) / 2 = (0.513015 + 0.126928) / 2
    expected = (softplus(-0.4) + softplus(-2.0)) / 2
    assert expected == pytest.approx(0.3199715, abs=1e-6)
    assert symmetric_info_nce(S).item() == pytest.approx(expected, abs=1e-6)


def test_stage1_touching_pairs_and_window_weights_pinned():
    w, ov, hp, p, pv = _stage1_batch()
    pairs = torch.ones(2, 2, 2, dtype=torch.bool)
    pairs[0, 0, 0] = False  # image 0's (obj 0, L) = e0 does not touch: it may not explain narration 0 any more
    S = image_narration_scores(w, ov, hp, p, pv, TAU, pairs)
    # image 0 vs "e0": max(.6, .6, .6) / .5 = 1.2; the rest as before
    assert S.flatten().tolist() == pytest.approx([1.2, 1.6, 0.0, 2.0])
    r0, r1 = softplus(1.6 - 1.2), softplus(0.0 - 2.0)  # rows
    c0, c1 = softplus(0.0 - 1.2), softplus(1.6 - 2.0)  # columns
    assert symmetric_info_nce(S).item() == pytest.approx(((r0 + r1) / 2 + (c0 + c1) / 2) / 2, abs=1e-6)
    # narration-window weights [1, 3]: pair k's two terms count in proportion: 0.5 * sum_k w_k (r_k + c_k) / sum w
    weighted = 0.5 * (1 * (r0 + c0) + 3 * (r1 + c1)) / 4
    assert weighted == pytest.approx(0.3870159, abs=1e-6)  # vs 0.4540602 unweighted
    assert symmetric_info_nce(S, weights=torch.tensor([1.0, 3.0])).item() == pytest.approx(weighted, abs=1e-6)
    # no touching pair left in image 1: it leaves the loss, one pair is left, and one pair has no negative -> 0
    pairs[1] = False
    valid = image_narration_valid(ov, hp, pv, pairs)
    assert valid.tolist() == [True, False]
    assert symmetric_info_nce(image_narration_scores(w, ov, hp, p, pv, TAU, pairs), valid).item() == 0.0


# ---- Stage 2: contactness BCE and matching CE ------------------------------------------------------------------
def test_stage2_contact_loss_pinned():
    ln3 = math.log(3.0)
    # 1 image, 2 objects; right hand absent (its column is not valid, whatever its logits say)
    logits = torch.tensor([[[ln3, 9.0], [0.0, -9.0]]])
    target = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    valid = torch.tensor([[[True, False], [True, False]]])
    # (obj 0, L): sigmoid(ln 3) = 3/4, target 1 -> -ln(3/4);  (obj 1, L): sigmoid(0) = 1/2, target 0 -> ln 2
    # mean over the 2 valid pairs = (ln(4/3) + ln 2) / 2 = ln(8/3) / 2 = 0.490415
    expected = math.log(8 / 3) / 2
    assert contact_loss(logits, target, valid).item() == pytest.approx(expected, abs=1e-6)


def test_stage2_matching_loss_pinned():
    ln2 = math.log(2.0)
    # 1 image, 3 objects (obj 2 is padding with a huge logit), both hands present; left holds obj 0, right nothing
    logits = torch.tensor([[[ln2, 0.0], [0.0, 0.0], [50.0, 50.0]]])
    ov = torch.tensor([[True, True, False]])
    hp = torch.tensor([[True, True]])
    target = torch.tensor([[0, -1]])
    # plain: only the left hand has a target; softmax over the valid objects: e^ln2 : e^0 = 2 : 1 -> -ln(2/3)
    assert matching_loss(logits, target, ov, hp).item() == pytest.approx(math.log(1.5), abs=1e-6)
    # null class (a "no object" column of logit 0): left softmax over (2, 1, 1) -> -ln(2/4) = ln 2;
    # right (logits 0, 0, null 0) is trained towards "no object": -ln(1/3) = ln 3.  mean = (ln 2 + ln 3) / 2
    expected = (ln2 + math.log(3.0)) / 2
    assert matching_loss(logits, target, ov, hp, null_class=True).item() == pytest.approx(expected, abs=1e-6)


# ---- pseudo-labels -----------------------------------------------------------------------------------------------
def test_pseudo_labels_pinned_with_a_second_object_per_hand():
    # scores [N=3 objects, M=2 phrases, 2 hands]
    s = torch.zeros(3, 2, 2)
    s[0, 0, 0] = 5.0  # left's best pair: (obj 0, phrase 0)
    s[1, 0, 0] = 4.5  # a second piece of the same noun (phrase 0): not evidence of a second object
    s[2, 1, 0] = 3.0  # another noun (phrase 1): a second object
    s[1, 1, 1] = 1.0  # right's best pair, under the threshold
    ones = torch.ones(3, dtype=torch.bool)
    lab = assign_pseudo_labels(s, ones, torch.ones(2, dtype=torch.bool), torch.tensor([True, True]), threshold=4.0,
                               max_objects=2, extra_threshold=2.5)
    # left: 5 >= 4 -> obj 0 via phrase 0. right: best 1.0 < 4 -> none (candidate obj 1 via phrase 1);
    # the both-hands rule does not apply (right's own best, obj 1, is not left's obj 0)
    assert lab.obj_idx.tolist() == [0, -1]
    assert lab.candidate_idx.tolist() == [0, 1] and lab.phrase_idx.tolist() == [0, 1]
    assert lab.score.tolist() == [5.0, 1.0] and lab.via_both_rule.tolist() == [False, False]
    # left's second object: the best pair among objects not taken and phrases left has not used (phrase 1 only):
    # (obj 2, phrase 1) = 3.0 >= 2.5 -> obj 2, although (obj 1, phrase 0) scores 4.5. Right took nothing: no extra.
    assert lab.extra_idx.tolist() == [[2], [-1]]
    assert lab.extra_score.tolist() == [[3.0], [NEG]]


def test_threshold_calibration_pinned():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8])
    correct = torch.tensor([False, True, False, True])
    # grid: below all, midpoints, above all = [-0.9, 0.225, 0.375, 0.6, 1.8]
    # accuracy of "accept if score >= t": 2/4, 3/4, 4/4, 3/4, 2/4 -> t = 0.375 alone is best
    assert calibrate_threshold(scores, correct) == pytest.approx((0.375, 1.0))
    # balanced accuracy: 0.5 * (TPR + TNR) = .5, .75, 1, .75, .5 -> the same threshold
    assert calibrate_threshold(scores, correct, metric="balanced_accuracy") == pytest.approx((0.375, 1.0))
    # ties pick the middle of the best thresholds: scores (0.1, 0.9), correct (T, F): accuracy .5, 0, .5 on
    # (-0.9, 0.5, 1.9): best {-0.9, 1.9} -> index 1 of the two -> 1.9
    assert calibrate_threshold(torch.tensor([0.1, 0.9]), torch.tensor([True, False])) == pytest.approx((1.9, 0.5))


# ---- inference rules ----------------------------------------------------------------------------------------------
def _stage2_outputs():
    """3 objects x 2 hands: contactness probabilities c and matching logits a chosen so that the rules disagree.

    left:  c = (.5, .9, .8),  a = (ln 2, 0, 0) -> softmax(a) = (.5, .25, .25)
    right: c = (.36, .1, .72), a = (0, 0, ln 2) -> softmax(a) = (.25, .25, .5)"""
    c = torch.logit(torch.tensor([[0.5, 0.36], [0.9, 0.1], [0.8, 0.72]], dtype=torch.float64)).float()
    ln2 = math.log(2.0)
    a = torch.tensor([[ln2, 0.0], [0.0, 0.0], [0.0, ln2]])
    return c, a, torch.ones(3, dtype=torch.bool), torch.tensor([True, True])


def _rounded(out):
    return [(i, k, round(p, 5)) for i, k, p in out]


def test_inference_rules_pinned():
    c, a, ov, hp = _stage2_outputs()
    # product fusion: q = sqrt(c * softmax(a))
    #   left:  sqrt(.25) = .5, sqrt(.225) = .474, sqrt(.2) = .447  -> obj 0, q = .5
    #   right: sqrt(.09) = .3, sqrt(.025) = .158, sqrt(.36) = .6   -> obj 2, q = .6
    assert _rounded(select_in_hand(c, a, ov, hp, "wish", 0.45)) == [(0, 0, 0.5), (2, 1, 0.6)]
    # theta applies to q: at .55 left's q = .5 fails (its c of obj 0, .5, is irrelevant to the product rule)
    assert _rounded(select_in_hand(c, a, ov, hp, "wish", 0.55)) == [(2, 1, 0.6)]
    # chain: argmax a (left obj 0, right obj 2), then theta on sigmoid(c): .5 fails .55, .72 passes; score = c
    assert _rounded(select_in_hand(c, a, ov, hp, "wish", 0.55, fusion="chain")) == [(2, 1, 0.72)]
    # contactness only: argmax c (left obj 1 at .9, right obj 2 at .72), kept if >= theta
    assert _rounded(select_in_hand(c, a, ov, hp, "contactness_only", 0.55)) == [(1, 0, 0.9), (2, 1, 0.72)]
    # matching only: argmax a, always kept, score = softmax(a) of the pick: .5 and .5
    assert _rounded(select_in_hand(c, a, ov, hp, "matching_only", 0.99)) == [(0, 0, 0.5), (2, 1, 0.5)]
    # a second object per hand by contactness: left keeps obj 0, right obj 2; left's best untaken object is obj 1
    # (c = .9 >= .85) -> admitted in left's class; right has no untaken object left
    assert _rounded(select_in_hand(c, a, ov, hp, "wish", 0.45, max_objects=2, extra_threshold=0.85)) == [
        (0, 0, 0.5), (2, 1, 0.6), (1, 0, 0.9)]
    assert _rounded(select_in_hand(c, a, ov, hp, "wish", 0.45, max_objects=2, extra_threshold=0.95)) == [
        (0, 0, 0.5), (2, 1, 0.6)]


def test_inference_both_hands_instance_pinned():
    # both hands' product pick is obj 0: left q = sqrt(.9 * .5) = .6708 keeps, right q = sqrt(.4 * .5) = .4472 fails
    # .5 but the both-hands rule accepts it -> one "both" instance (class 2) scored by the mean q = .5590
    c = torch.logit(torch.tensor([[0.9, 0.4], [0.1, 0.1]], dtype=torch.float64)).float()
    a = torch.zeros(2, 2)
    out = select_in_hand(c, a, torch.ones(2, dtype=torch.bool), torch.tensor([True, True]), "wish", 0.5)
    expected = (math.sqrt(0.45) + math.sqrt(0.2)) / 2
    assert expected == pytest.approx(0.5590170, abs=1e-6)
    assert [(i, k) for i, k, _ in out] == [(0, 2)] and out[0][2] == pytest.approx(expected, abs=1e-6)
    assert select_in_hand(c, a, torch.ones(2, dtype=torch.bool), torch.tensor([True, True]), "wish", 0.5,
                          both_rule=False) == [(0, 0, pytest.approx(math.sqrt(0.45), abs=1e-6))]


# ---- E-mIoU ----------------------------------------------------------------------------------------------------------
def test_emiou_pinned_from_overlapping_instances():
    def box(y0, y1, x0, x1):
        m = torch.zeros(4, 4, dtype=torch.bool)
        m[y0:y1, x0:x1] = True
        return m

    # predictions: left rows 0-1 cols 0-2 (score .9), right col 2 (score .5), both row 3 cols 2-3 (score .7);
    # overlaps go to the higher score:        ground truth:
    #   1 1 1 0                                 1 1 0 0
    #   1 1 1 0                                 1 1 0 0
    #   0 0 2 0                                 0 0 3 3
    #   0 0 3 3                                 0 0 3 3
    pred = paint_label_map(torch.stack([box(0, 2, 0, 3), box(0, 4, 2, 3), box(3, 4, 2, 4)]),
                           torch.tensor([0, 1, 2]), torch.tensor([0.9, 0.5, 0.7]), 4, 4)
    gt = paint_label_map(torch.stack([box(0, 2, 0, 2), box(2, 4, 2, 4)]), torch.tensor([0, 2]), None, 4, 4)
    assert pred.tolist() == [[1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 2, 0], [0, 0, 3, 3]]
    acc = InHandIoU()
    acc.update(pred, gt)
    # left:  I = 4, U = 6 + 4 - 4 = 6 -> 66.67;  right: I = 0, U = 1 (a false positive only) -> 0;
    # both:  I = 2, U = 2 + 4 - 2 = 4 -> 50.    E-mIoU = mean over the three classes = (200/3 + 0 + 50) / 3
    res = acc.compute()
    assert res["IoU_left"] == pytest.approx(200 / 3) and res["IoU_right"] == 0.0 and res["IoU_both"] == 50.0
    assert res["E-mIoU"] == pytest.approx(350 / 9)  # 38.89, not (66.67 + 50) / 2: a false-positive class counts
    # a second image adds its pixels before the division (dataset level): a left object fully missed (4 px)
    acc.update(torch.zeros(4, 4, dtype=torch.uint8), paint_label_map(box(0, 2, 0, 2)[None], torch.tensor([0]),
                                                                      None, 4, 4))
    # left: I = 4, U = 6 + 4 = 10 -> 40 (the per-image mean would be (66.67 + 0) / 2 = 33.3)
    assert acc.compute()["IoU_left"] == pytest.approx(40.0)
    assert acc.compute()["E-mIoU"] == pytest.approx((40 + 0 + 50) / 3)
