"""Co-motion on hand-made motion: centroids as fractions of the frame, a carried object moving with its hand under a
panning camera gets f near 1 and a resting one near 0, a still, absent or unseen hand and an untracked proposal
stay neutral (0.5), accumulated log-odds grow with consistent motion, and the decoder uses the cue to prefer the
carried object over a resting one that scores higher in each single frame."""
import math

import pytest
import torch

from wish_d2.utils.masks import encode_rle
from wish_d2.video.comotion import CoMotion, apply_comotion, mask_centroids
from wish_d2.video.linking import shrink_masks
from wish_d2.video.predictor import TemporalDecoder, TemporalParams

S = 48
NAN2 = torch.full((2,), float("nan"))


def _box(x, y, w=8, h=8):
    m = torch.zeros(S, S, dtype=torch.bool)
    m[y:y + h, x:x + w] = True
    return m


def test_centroids_are_fractions_of_the_long_side_and_nan_for_empty_masks():
    c = mask_centroids(torch.stack([_box(10, 20, 4, 2), torch.zeros(S, S, dtype=torch.bool)]))
    assert torch.allclose(c[0], torch.tensor([12.0, 21.0]) / S)
    assert torch.isnan(c[1]).all()
    soft = torch.stack([_box(10, 20, 4, 2)]).float() * 0.5  # an occupancy map weighs pixels, its centroid is the same
    assert torch.allclose(mask_centroids(soft)[0], c[0])
    faint = torch.zeros(1, S, S)
    faint[0, 30, 40] = 0.3  # an object thinner than one working pixel: its centroid is still where it is
    assert torch.allclose(mask_centroids(faint)[0], torch.tensor([40.5, 30.5]) / S)
    full = torch.zeros(1, 1080, 1920, dtype=torch.bool)
    full[0, 100:300, 150:450] = True  # at full-HD, through the linker's shrinking, the centroid stays within 0.1%
    assert torch.allclose(mask_centroids(shrink_masks(full, soft=True))[0], torch.tensor([300.0, 200.0]) / 1920,
                          atol=1e-3)


def _pan_frames(steps=3, pan=1, carry=3):
    """Camera pans ``pan`` px / frame; object 1 rests, object 2 rides with the left hand (``carry`` px more)."""
    cm = CoMotion(sigma=0.01, min_motion=0.006)
    out = []
    for t in range(steps):
        objects = torch.stack([_box(5 + pan * t, 30), _box(20 + (pan + carry) * t, 10), _box(35 + pan * t, 35)])
        hands = torch.stack([mask_centroids(_box(18 + (pan + carry) * t, 12)[None])[0],
                             mask_centroids(_box(38 + pan * t, 5)[None])[0]])  # the right hand is still
        out.append(cm.step([1, 2, 3], mask_centroids(objects), hands))
    return cm, out


def test_carried_object_moves_with_its_hand_under_a_panning_camera():
    _, fs = _pan_frames()
    assert torch.equal(fs[0], torch.full((3, 2), 0.5))  # the first frame has no motion
    f = fs[1]
    assert f[1, 0] > 0.99 and f[0, 0] < 0.01 and f[2, 0] < 0.01  # left hand: the carried one, not the resting ones
    assert torch.equal(f[:, 1], torch.full((3,), 0.5))  # the right hand moves with the camera: no evidence


def test_absent_hand_untracked_proposal_and_bad_parameters():
    cm = CoMotion()
    objs = mask_centroids(torch.stack([_box(5, 5), _box(30, 30)]))
    cm.step([1, 2], objs, torch.stack([NAN2, mask_centroids(_box(20, 20)[None])[0]]))
    moved = objs + torch.tensor([0.1, 0.0])
    f = cm.step([1, 7], moved, torch.stack([NAN2, mask_centroids(_box(25, 20)[None])[0]]))
    assert torch.equal(f[:, 0], torch.full((2,), 0.5))  # absent left hand
    assert f[1, 1] == 0.5  # track 7 was not there in the previous frame
    for kw in ({"sigma": 0.0}, {"min_motion": -1.0}, {"memory": 1.0}):
        with pytest.raises(ValueError):
            CoMotion(**kw)


def test_memory_accumulates_consistent_motion():
    def run(memory):
        cm = CoMotion(sigma=0.05, min_motion=0.0, memory=memory)
        hand, f = torch.tensor([0.5, 0.5]), None
        for t in range(4):
            objs = torch.tensor([[0.3 + 0.02 * t, 0.5], [0.8, 0.8]])  # object 1 drifts with the hand
            f = cm.step([1, 2], objs, torch.stack([torch.tensor([0.35 + 0.02 * t, 0.5]), hand]))
        return f[0, 0]

    one, many = run(0.0), run(0.8)
    assert 0.5 < one < many
    assert math.isclose(float(torch.logit(many)), float(torch.logit(one)) * (1 + 0.8 + 0.64), rel_tol=1e-4)


def test_apply_comotion():
    q = torch.tensor([[0.4, 0.9], [0.2, 0.6]])
    assert torch.equal(apply_comotion(q, torch.rand(2, 2), 0.0), q)
    assert torch.allclose(apply_comotion(q, torch.full((2, 2), 0.5), 2.0), q)
    out = apply_comotion(q, torch.tensor([[1.0, 1.0], [0.0, 0.5]]), 2.0)
    assert torch.allclose(out, torch.tensor([[1.0, 1.0], [0.0, 0.6]]))


def _record(masks, embeds, hand_masks):
    return {"height": S, "width": S, "proposal_rles": [encode_rle(m) for m in masks], "v": torch.stack(embeds),
            "hand_present": torch.tensor([True, True]), "hand_rles": [encode_rle(m) for m in hand_masks]}


@pytest.mark.parametrize("weight,expect_carried", [(0.0, False), (2.0, True)])
def test_decoder_prefers_the_object_that_moves_with_the_hand(weight, expect_carried):
    """The left hand carries a cup rightwards past a plate; per frame the plate scores higher."""
    params = TemporalParams(smoother="contact", alpha=1.0, margin=0.0, motion_weight=weight, motion_memory=0.5)
    dec = TemporalDecoder(0.3, params, both_rule=False)
    e_cup, e_plate = torch.tensor([1.0, 0, 0, 0]), torch.tensor([0, 1.0, 0, 0])
    picks = []
    for t in range(6):
        cup, plate = _box(4 + 3 * t, 20), _box(20, 30, 12, 8)
        hands = [_box(2 + 3 * t, 24, 8, 6), _box(40, 40, 6, 6)]
        c = torch.tensor([[2.0, -5.0], [2.0, -5.0]])
        a = torch.tensor([[0.0, 0.0], [0.8, 0.0]])  # the plate's match logit is higher in every frame
        out = dec.step(_record([cup, plate], [e_cup, e_plate], hands), c, a)
        picks.append([bool(m[21:27, 5 + 3 * t:11 + 3 * t].all()) for m, k, _ in out["selection"] if k == 0])
    carried = [p == [True] for p in picks[1:]]
    assert all(carried) if expect_carried else not any(carried)
