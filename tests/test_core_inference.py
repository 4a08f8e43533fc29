"""Inference rule: methods, fusion, both-hands combination and rule, empty inputs."""
import pytest
import torch

from wish_d2.modeling.inference import select_in_hand, select_per_hand

P = torch.tensor([True, True])


def _logit(p):
    return torch.logit(torch.tensor(p))


def _case():
    # 3 objects x 2 hands. contactness probabilities and matching logits chosen so methods disagree.
    c = _logit([[0.9, 0.2], [0.3, 0.3], [0.6, 0.8]])
    a = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.5, 2.0]])
    return c, a, torch.ones(3, dtype=torch.bool)


def test_methods_and_fusion():
    c, a, ov = _case()
    # product: q = sqrt(c * softmax(a)); left: 0.9*0.044 vs 0.3*0.884 vs 0.6*0.073 -> object 1, q = 0.515;
    # right: object 2, q = sqrt(0.8 * 0.787) = 0.794. The threshold applies to q, not to c (left's c is only 0.3).
    q = (torch.sigmoid(c) * torch.softmax(a, 0)).sqrt()
    assert select_in_hand(c, a, ov, P, "wish", 0.6, "product", both_rule=False) == [
        (2, 1, pytest.approx(q[2, 1].item()))]
    assert select_in_hand(c, a, ov, P, "wish", 0.5, "product", both_rule=False) == [
        (1, 0, pytest.approx(q[1, 0].item())), (2, 1, pytest.approx(q[2, 1].item()))]
    # chain: argmax a -> left 1 (c .3 fails), right 2 (c .8 passes)
    assert select_in_hand(c, a, ov, P, "wish", 0.5, "chain", both_rule=False) == [(2, 1, pytest.approx(0.8))]
    # contactness only: left 0 (0.9), right 2 (0.8)
    assert select_in_hand(c, a, ov, P, "contactness_only", 0.5) == [(0, 0, pytest.approx(0.9)),
                                                                   (2, 1, pytest.approx(0.8))]
    # matching only: always keep argmax a, score = softmax prob
    out = select_in_hand(c, a, ov, P, "matching_only", 0.99)
    assert [(i, k) for i, k, _ in out] == [(1, 0), (2, 1)]
    assert out[0][2] == pytest.approx(torch.softmax(a[:, 0], 0)[1].item())
    with pytest.raises(ValueError):
        select_in_hand(c, a, ov, P, "nope", 0.5)


def test_same_object_becomes_one_both_instance():
    c = _logit([[0.9, 0.7], [0.1, 0.1]])
    a = torch.zeros(2, 2)
    out = select_in_hand(c, a, torch.ones(2, dtype=torch.bool), P, "contactness_only", 0.5)
    assert out == [(0, 2, pytest.approx(0.8))]


def test_both_rule_at_inference():
    c = _logit([[0.9, 0.4], [0.1, 0.1]])  # right's own best is object 0 but fails theta
    a = torch.zeros(2, 2)
    ov = torch.ones(2, dtype=torch.bool)
    assert select_in_hand(c, a, ov, P, "contactness_only", 0.5, both_rule=False) == [(0, 0, pytest.approx(0.9))]
    assert select_in_hand(c, a, ov, P, "contactness_only", 0.5) == [(0, 2, pytest.approx(0.65))]
    # right absent: nothing to add
    assert select_in_hand(c, a, ov, torch.tensor([True, False]), "contactness_only", 0.5) == [
        (0, 0, pytest.approx(0.9))]
    sel = select_per_hand(c[None], a[None], ov[None], P[None], "contactness_only", 0.5)
    assert sel.via_both_rule[0].tolist() == [False, True]


def test_invalid_objects_absent_hands_and_empty():
    c = _logit([[0.99, 0.99], [0.6, 0.2]])
    a = torch.tensor([[9.0, 9.0], [0.0, 0.0]])
    ov = torch.tensor([False, True])  # object 0 is padding
    # the only valid object has softmax 1, so q = sqrt(0.6)
    assert select_in_hand(c, a, ov, torch.tensor([True, False]), "wish", 0.5) == [(1, 0, pytest.approx(0.6 ** 0.5))]
    assert select_in_hand(c, a, ov, torch.tensor([False, False]), "wish", 0.5) == []
    assert select_in_hand(c, a, torch.zeros(2, dtype=torch.bool), P, "wish", 0.0) == []
    assert select_in_hand(torch.zeros(0, 2), torch.zeros(0, 2), torch.zeros(0, dtype=torch.bool), P) == []
    sel = select_per_hand(torch.zeros(3, 0, 2), torch.zeros(3, 0, 2), torch.zeros(3, 0, dtype=torch.bool),
                          torch.ones(3, 2, dtype=torch.bool))
    assert (sel.obj_idx == -1).all() and not sel.keep.any()


def test_batched_equals_per_image():
    torch.manual_seed(0)
    B, N = 8, 5
    c, a = torch.randn(B, N, 2) * 2, torch.randn(B, N, 2) * 2
    ov, hp = torch.rand(B, N) > 0.2, torch.rand(B, 2) > 0.2
    for method, fusion in [("wish", "product"), ("wish", "chain"), ("contactness_only", "product"),
                           ("matching_only", "product")]:
        sel = select_per_hand(c, a, ov, hp, method, 0.5, fusion)
        for b in range(B):
            one = select_per_hand(c[b:b + 1], a[b:b + 1], ov[b:b + 1], hp[b:b + 1], method, 0.5, fusion)
            assert torch.equal(sel.obj_idx[b], one.obj_idx[0]) and torch.equal(sel.keep[b], one.keep[0])


def test_null_class_matching_probabilities():
    c = _logit([[0.9, 0.9], [0.1, 0.1]])
    a = torch.tensor([[-5.0, 2.0], [-5.0, 1.0]])
    ov = torch.ones(2, dtype=torch.bool)
    sel = select_per_hand(c[None], a[None], ov[None], P[None], "matching_only", null_class=True)
    # left hand: both objects far below "no object" (logit 0): probabilities small, not renormalised to sum 1
    assert sel.prob[0, 0] < 0.01
    sel_plain = select_per_hand(c[None], a[None], ov[None], P[None], "matching_only")
    assert abs(float(sel_plain.prob[0, 0]) - 0.5) < 1e-6
    assert sel.obj_idx[0].tolist() == [0, 0]
