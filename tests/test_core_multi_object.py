"""Several objects per hand (MODEL.WISH.MAX_OBJECTS_PER_HAND): Stage 1's aggregation grounds two nouns to one hand,
pseudo-labels take a further object under a fresh phrase and a second threshold, inference admits further objects by
contactness, and one object per hand is exactly the rule without the option."""
import json
import math

import pytest
import torch

from wish_d2.engine.data import load_pseudo_labels
from wish_d2.engine.pipeline import write_pseudo_labels
from wish_d2.engine.scoring import pseudo_selection
from wish_d2.modeling.inference import select_in_hand
from wish_d2.modeling.losses import NEG, image_narration_scores
from wish_d2.modeling.pseudo_labels import assign_pseudo_labels, pseudo_labels_batched

ALL2 = torch.ones(2, dtype=torch.bool)


def _grip_scores():
    """Objects: 0 knife, 1 carrot, 2 a piece of the knife, 3 a plate; phrases 0 "knife", 1 "carrot"; the left hand
    holds knife and carrot, the right hand nothing."""
    s = torch.full((4, 2, 2), -1.0)
    s[0, 0, 0] = 5.0  # knife ~ "knife" (left)
    s[2, 0, 0] = 4.5  # the knife's piece ~ "knife": high, but "knife" is already grounded
    s[1, 1, 0] = 3.0  # carrot ~ "carrot" (left)
    s[3, 1, 0] = 1.0
    s[3, :, 1] = 0.5  # the right hand: its best (the plate) does not clear the first threshold
    return s


@pytest.mark.parametrize("extra_threshold,expected", [(2.0, 1), (3.5, -1), (math.inf, -1)])
def test_further_pseudo_object_takes_a_fresh_phrase(extra_threshold, expected):
    lab = assign_pseudo_labels(_grip_scores(), torch.ones(4, dtype=torch.bool), ALL2, ALL2, threshold=2.0,
                               max_objects=2, extra_threshold=extra_threshold)
    assert lab.obj_idx.tolist() == [0, -1]
    assert lab.extra_idx.tolist() == [[expected], [-1]]  # never the knife's piece (2): its phrase is used
    assert lab.extra_score[0, 0].item() == pytest.approx(3.0) and lab.extra_score[1, 0].item() == NEG
    sel = pseudo_selection(lab)
    assert sel[0][:2] == (0, 0) and [(o, c) for o, c, _ in sel[1:]] == ([(1, 0)] if expected == 1 else [])


def test_one_object_per_hand_is_the_rule_without_the_option():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        s = torch.randn(3, 7, 4, 2, generator=g) * 3
        present = torch.rand(3, 2, generator=g) > 0.2
        a = pseudo_labels_batched(s, present, 0.5)
        b = pseudo_labels_batched(s, present, 0.5, max_objects=3, extra_threshold=math.inf)
        for f in ("obj_idx", "score", "phrase_idx", "candidate_idx", "via_both_rule"):
            assert torch.equal(getattr(a, f), getattr(b, f)), f
        assert a.extra_idx is None and (b.extra_idx == -1).all() and b.extra_idx.shape == (3, 2, 2)
        # every accepted further object is valid, distinct from every other object of the image
        c = pseudo_labels_batched(s, present, 0.5, max_objects=3, extra_threshold=0.0)
        for k in range(3):
            taken = [o for o in c.obj_idx[k].tolist() + c.extra_idx[k].flatten().tolist() if o >= 0]
            first = [o for o in c.obj_idx[k].tolist() if o >= 0]
            assert len(set(taken)) == len(taken) - (len(first) - len(set(first)))


def test_stage1_aggregation_grounds_two_nouns_to_one_hand():
    """S = mean over phrases of the max over (object, hand): each noun picks its own pair, so two nouns can be
    explained by two objects of the SAME hand; the narration scores higher than with one of them explained."""
    E = 4
    w = torch.zeros(1, 2, 2, E)
    w[0, 0, 0, 0] = 1.0  # object 0 with the left hand ~ direction 0
    w[0, 1, 0, 1] = 1.0  # object 1 with the left hand ~ direction 1
    w[0, :, 1, 3] = 1.0  # the right hand's pairs look elsewhere
    p = torch.zeros(1, 2, 2, E)
    p[0, 0, :, 0] = 1.0  # "knife"
    p[0, 1, :, 1] = 1.0  # "carrot"
    ok = torch.ones(1, 2, dtype=torch.bool)
    both = image_narration_scores(w, ok, ok, p, ok, 1.0)
    only_first = image_narration_scores(w, torch.tensor([[True, False]]), ok, p, ok, 1.0)
    assert both.item() == pytest.approx(1.0) and only_first.item() == pytest.approx(0.5)


def _logit(p):
    return torch.logit(torch.tensor(p))


def test_inference_admits_further_objects_by_contactness():
    # 4 objects; the left hand matches object 0 and also touches 1 (c .7) and 2 (c .4); the right hand holds 3
    c = _logit([[0.9, 0.1], [0.7, 0.2], [0.4, 0.1], [0.2, 0.9]])
    a = torch.tensor([[4.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 4.0]])
    ov = torch.ones(4, dtype=torch.bool)
    one = select_in_hand(c, a, ov, ALL2, "wish", 0.5)
    assert [(o, k) for o, k, _ in one] == [(0, 0), (3, 1)]
    two = select_in_hand(c, a, ov, ALL2, "wish", 0.5, max_objects=2, extra_threshold=0.5)
    assert [(o, k) for o, k, _ in two] == [(0, 0), (3, 1), (1, 0)]
    assert two[2][2] == pytest.approx(0.7)
    three = select_in_hand(c, a, ov, ALL2, "wish", 0.5, max_objects=3, extra_threshold=0.3)
    assert [(o, k) for o, k, _ in three] == [(0, 0), (3, 1), (1, 0), (2, 0)]
    # a threshold above every probability, or matching only, is the one-object rule
    assert select_in_hand(c, a, ov, ALL2, "wish", 0.5, max_objects=3, extra_threshold=1.01) == one
    assert select_in_hand(c, a, ov, ALL2, "matching_only", 0.5, max_objects=3, extra_threshold=0.0) == \
        select_in_hand(c, a, ov, ALL2, "matching_only", 0.5)
    # a hand that keeps no first object takes no further one
    none = select_in_hand(c, a, ov, ALL2, "wish", 0.99, max_objects=2, extra_threshold=0.0)
    assert none == []


def test_pseudo_label_file_carries_further_objects(tmp_path):
    lab = assign_pseudo_labels(_grip_scores(), torch.ones(4, dtype=torch.bool), ALL2, ALL2, threshold=2.0,
                               max_objects=2, extra_threshold=2.0)
    single = assign_pseudo_labels(_grip_scores(), torch.ones(4, dtype=torch.bool), ALL2, ALL2, threshold=2.0)
    path = str(tmp_path / "p.json")
    write_pseudo_labels([("a", lab, None)], path, 2.0)
    assert load_pseudo_labels(path) == {"a": [[0, -1], [1, -1]]}  # [K, 2]: first objects, then further ones
    write_pseudo_labels([("a", single, None)], path, 2.0)
    assert "extra" not in json.load(open(path))["labels"]["a"]
    assert load_pseudo_labels(path) == {"a": [0, -1]}
