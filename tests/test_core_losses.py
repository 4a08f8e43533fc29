"""Losses: hand-computed InfoNCE, S(I, N) aggregation, NaN-freedom with empty objects / hands / phrases."""
import math

import torch
import torch.nn.functional as F

from wish_d2.modeling.losses import (
    alignment_scores,
    contact_loss,
    image_narration_scores,
    matching_loss,
    image_narration_valid,
    pair_scores,
    symmetric_info_nce,
)


def test_info_nce_hand_computed_2x2():
    S = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    row = 0.5 * ((-2 + math.log(math.exp(2) + 1)) + (-3 + math.log(math.e + math.exp(3))))
    col = 0.5 * ((-2 + math.log(math.exp(2) + math.e)) + (-3 + math.log(1 + math.exp(3))))
    assert abs(symmetric_info_nce(S).item() - 0.5 * (row + col)) < 1e-6
    # invalid rows/cols are excluded
    S3 = torch.tensor([[2.0, 0.0, 9.0], [1.0, 3.0, 9.0], [9.0, 9.0, 9.0]])
    assert abs(symmetric_info_nce(S3, torch.tensor([True, True, False])).item() - 0.5 * (row + col)) < 1e-6


def test_image_narration_scores_aggregation():
    # E = 2, one object per image, vectors chosen so cosines are known
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    w = torch.zeros(2, 2, 2, 2)
    w[0, 0, 0], w[0, 0, 1] = e0, e1  # image 0, object 0: left ~ e0, right ~ e1
    w[0, 1] = e1  # image 0, object 1 (invalid)
    w[1, 0, 0], w[1, 0, 1] = e1, e1
    obj_valid = torch.tensor([[True, False], [True, False]])
    hand_present = torch.tensor([[True, False], [True, True]])
    p = torch.zeros(2, 2, 2, 2)
    p[0, 0, :] = e0  # narration 0 phrase 0
    p[0, 1, :] = e1  # narration 0 phrase 1
    p[1, 0, :] = e1  # narration 1 phrase 0; phrase 1 invalid
    p[1, 1, :] = e0
    phrase_valid = torch.tensor([[True, True], [True, False]])
    tau = 0.5
    S = image_narration_scores(w, obj_valid, hand_present, p, phrase_valid, tau)
    valid = image_narration_valid(obj_valid, hand_present, phrase_valid)
    # image 0 only has (obj 0, left) = e0: narration 0 -> mean(1, 0)/tau; narration 1 -> 0
    # image 1 has (obj 0, left/right) = e1: narration 0 -> mean(0, 1)/tau; narration 1 -> 1/tau
    expected = torch.tensor([[0.5 / tau, 0.0], [0.5 / tau, 1.0 / tau]])
    assert torch.allclose(S, expected) and valid.all()
    s = alignment_scores(w, p, tau)
    assert s.shape == (2, 2, 2, 2, 2)
    assert torch.allclose(pair_scores(w, p, tau), torch.stack([s[0, 0], s[1, 1]]))


def test_no_nan_with_empty_objects_hands_phrases():
    torch.manual_seed(0)
    B, N, M, E = 4, 3, 2, 8
    w = F.normalize(torch.randn(B, N, 2, E), dim=-1).requires_grad_()
    p = F.normalize(torch.randn(B, M, 2, E), dim=-1).requires_grad_()
    obj_valid = torch.tensor([[True] * 3, [False] * 3, [True] * 3, [True, False, False]])
    hand_present = torch.tensor([[True, True], [True, True], [False, False], [False, True]])
    phrase_valid = torch.tensor([[True, True], [True, False], [True, True], [False, False]])
    S = image_narration_scores(w, obj_valid, hand_present, p, phrase_valid, 0.07)
    valid = image_narration_valid(obj_valid, hand_present, phrase_valid)
    assert torch.isfinite(S).all()
    assert valid.tolist() == [True, False, False, False]
    loss = symmetric_info_nce(S, valid)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(w.grad).all() and torch.isfinite(p.grad).all()
    # zero objects at all
    S0 = image_narration_scores(w[:, :0], obj_valid[:, :0], hand_present, p, phrase_valid, 0.07)
    v0 = image_narration_valid(obj_valid[:, :0], hand_present, phrase_valid)
    assert torch.isfinite(S0).all() and not v0.any()
    assert symmetric_info_nce(S0, v0).item() == 0.0


def test_contact_loss():
    logits = torch.tensor([[[0.0, 2.0], [-1.0, 5.0]]], requires_grad=True)
    tgt = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    valid = torch.tensor([[[True, True], [False, False]]])
    expected = F.binary_cross_entropy_with_logits(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0]))
    assert torch.allclose(contact_loss(logits, tgt, valid), expected)
    z = contact_loss(logits, tgt, torch.zeros_like(valid))
    assert z.item() == 0.0
    z.backward()


def test_matching_loss_softmax_over_valid_objects_and_skips():
    logits = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [50.0, 0.0]]], requires_grad=True)  # [B=1, N=3, 2]
    obj_valid = torch.tensor([[True, True, False]])  # object 2 (huge logit) is padding
    target = torch.tensor([[0, -1]])  # right hand has no pseudo object
    present = torch.tensor([[True, True]])
    loss = matching_loss(logits, target, obj_valid, present)
    expected = -torch.log_softmax(torch.tensor([1.0, 2.0]), 0)[0]
    assert torch.allclose(loss, expected)
    loss.backward()
    assert logits.grad[0, 2].abs().max() == 0 and logits.grad[0, :, 1].abs().max() == 0
    # absent hand or invalid target: nothing to learn -> 0, no NaN
    assert matching_loss(logits, target, obj_valid, torch.tensor([[False, True]])).item() == 0.0
    assert matching_loss(logits, torch.tensor([[2, -1]]), obj_valid, present).item() == 0.0
    assert matching_loss(logits[:, :0], target, obj_valid[:, :0], present).item() == 0.0


def test_matching_loss_null_class_trains_hands_without_target():
    logits = torch.zeros(1, 3, 2, requires_grad=True)
    obj_valid = torch.tensor([[True, True, False]])
    present = torch.tensor([[True, True]])
    target = torch.tensor([[1, -1]])
    # plain: only the left hand counts, uniform over 2 valid objects
    assert abs(matching_loss(logits, target, obj_valid, present).item() - math.log(2)) < 1e-6
    # null class: both hands count, uniform over 2 valid objects + "no object" -> log 3 each
    loss = matching_loss(logits, target, obj_valid, present, null_class=True)
    assert abs(loss.item() - math.log(3)) < 1e-6
    loss.backward()
    assert logits.grad[0, :, 1].abs().sum() > 0 and logits.grad[0, 2].abs().sum() == 0  # padding gets no gradient
    # absent hand and a padding target are still skipped
    assert matching_loss(logits, torch.tensor([[2, -1]]), obj_valid, torch.tensor([[True, False]]),
                         null_class=True).item() == 0.0
