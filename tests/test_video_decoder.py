"""TemporalDecoder on hand-made frames, with each smoother: a held object that moves keeps being selected through
one-frame score dropouts and a one-frame segmenter miss (its last mask is reused), a handover passes through one
"both" instance, the per-frame settings (alpha 1 + margin 0; p_switch 0.5) give the per-frame selections, and a
track unseen for longer than the carried masks last is no longer held."""
import pytest
import torch

from wish_d2.modeling.inference import select_in_hand
from wish_d2.utils.masks import encode_rle
from wish_d2.video.predictor import TemporalDecoder, TemporalParams, hand_probabilities

S = 48


def _box(x, y, w=10, h=10):
    m = torch.zeros(S, S, dtype=torch.bool)
    m[y:y + h, x:x + w] = True
    return m


def _record(masks, embeds):
    return {"height": S, "width": S, "proposal_rles": [encode_rle(m) for m in masks],
            "v": torch.stack(embeds) if embeds else torch.zeros(0, 4), "hand_present": torch.tensor([True, True])}


def _logits(n, held):
    """``held[s]`` = proposal index hand s holds (strongly), or None."""
    c = torch.full((n, 2), -5.0)
    a = torch.full((n, 2), -5.0)
    a[n - 1, :] = 0.0  # a free hand's best guess is the last proposal (never the held one)
    for s, i in enumerate(held):
        if i is not None:
            c[i, s], a[i, s] = 5.0, 5.0
    return c, a


E_CUP, E_BOX = torch.tensor([1.0, 0, 0, 0]), torch.tensor([0, 1.0, 0, 0])


def _frames():
    """12 frames: the cup (moving right) is held by the left hand; frame 4 drops the score, frame 7 misses it."""
    out = []
    for t in range(12):
        cup, box = _box(5 + t, 10), _box(30, 30)
        if t == 7:
            out.append((_record([box], [E_BOX]), _logits(1, [None, None])))
        else:
            out.append((_record([cup, box], [E_CUP, E_BOX]), _logits(2, [None if t == 4 else 0, None])))
    return out


SMOOTHERS = [TemporalParams(smoother="contact", alpha=0.5, margin=0.1),
             TemporalParams(smoother="evidence", alpha=0.5, margin=0.1), TemporalParams(smoother="hmm", p_switch=0.05)]
# bridging a dropout and, three frames later, a segmenter miss needs a longer memory than alpha 0.5
# (the "overlap" propagation does not bridge this case: the moving cup's evidence shrinks with its overlap)
BRIDGING = [TemporalParams(smoother="evidence", alpha=0.35, margin=0.2), TemporalParams(smoother="hmm", p_switch=0.05)]
PER_FRAME = [TemporalParams(smoother="contact", alpha=1.0, margin=0.0),
             TemporalParams(smoother="evidence", alpha=1.0, margin=0.0), TemporalParams(smoother="hmm", p_switch=0.5)]
IDS3 = ["contact", "evidence", "hmm"]


@pytest.mark.parametrize("params", BRIDGING, ids=["evidence", "hmm"])
def test_hold_survives_score_dropout_and_segmenter_miss(params):
    dec = TemporalDecoder(0.5, params)
    classes = []
    for t, (rec, (c, a)) in enumerate(_frames()):
        sel = dec.step(rec, c, a)["selection"]
        classes.append([k for _, k, _ in sel])
        if t == 7:  # the cup had no proposal: its last mask is carried
            assert sel and bool(sel[0][0][10:20, 11:21].all())
    assert classes == [[0]] * 12


@pytest.mark.parametrize("params", PER_FRAME, ids=IDS3)
def test_per_frame_rule_without_smoothing(params):
    dec = TemporalDecoder(0.5, params)
    for t, (rec, (c, a)) in enumerate(_frames()):
        got = sorted(k for _, k, _ in dec.step(rec, c, a)["selection"])
        n = len(rec["proposal_rles"])
        want = sorted(k for _, k, _ in select_in_hand(c, a, torch.ones(n, dtype=torch.bool), rec["hand_present"],
                                                        contact_threshold=0.5, null_class=True))
        assert got == want


@pytest.mark.parametrize("params", SMOOTHERS, ids=IDS3)
def test_handover_goes_through_both(params):
    dec = TemporalDecoder(0.5, params)
    plan = [(0, None)] * 4 + [(0, 0)] * 5 + [(None, 0)] * 5
    seen = []
    for left, right in plan:
        rec = _record([_box(20, 20), _box(2, 36)], [E_CUP, E_BOX])
        c, a = _logits(2, [left, right])
        seen.append(sorted(k for _, k, _ in dec.step(rec, c, a)["selection"]))
    assert seen[0] == [0] and 2 in {x[0] for x in seen if x} and seen[-1] == [1]


def test_track_unseen_longer_than_the_carried_masks_is_let_go():
    dec = TemporalDecoder(0.5, TemporalParams(alpha=0.35, margin=0.2, carry_frames=2))
    box = _box(30, 30)
    for _ in range(4):
        assert [k for _, k, _ in dec.step(_record([_box(5, 10), box], [E_CUP, E_BOX]), *_logits(2, [0, None]))[
            "selection"]] == [0]
    states = [dec.step(_record([box], [E_BOX]), *_logits(1, [None, None]))["states"][0] for _ in range(4)]
    assert states[0] != 0  # bridged (its last mask is carried)
    assert states[2:] == [0, 0]  # after carry_frames the cup's track is no longer holdable


def test_contact_smoother_bridges_the_contact_state_and_picks_the_object_per_frame():
    # without the both-hands rule: in the dropout frame the free right hand's best guess is the left hand's pick
    dec = TemporalDecoder(0.5, TemporalParams(smoother="contact", alpha=0.35, margin=0.2), both_rule=False)
    held = []
    for t, (rec, (c, a)) in enumerate(_frames()):
        out = dec.step(rec, c, a)
        assert [k for _, k, _ in out["selection"]] == [0]  # the left hand holds in every frame, dropout included
        best = int(hand_probabilities(c, a)[:, 0].argmax())
        assert out["states"][0] == out["track_ids"][best]  # ... and holds this frame's best proposal
        held.append(out["states"][0])
    assert held[4] != held[3]  # in the dropout frame the best proposal is the box: no object is made sticky


def test_contact_smoother_carries_the_held_mask_over_a_frame_without_proposals():
    dec = TemporalDecoder(0.5, TemporalParams(smoother="contact", alpha=0.35, margin=0.2, carry_frames=1))
    for _ in range(4):
        held = dec.step(_record([_box(5, 10)], [E_CUP]), *_logits(1, [0, None]))["states"][0]
    empty = _record([], [])
    out = dec.step(empty, torch.zeros(0, 2), torch.zeros(0, 2))
    assert out["states"][0] == held and bool(out["selection"][0][0][10:20, 5:15].all())
    assert dec.step(empty, torch.zeros(0, 2), torch.zeros(0, 2))["states"][0] == 0  # past carry_frames


def test_unknown_smoother_raises():
    with pytest.raises(ValueError, match="smoother"):
        TemporalDecoder(0.5, TemporalParams(smoother="kalman"))


def test_hand_probabilities_match_the_product_rule():
    c, a = torch.randn(5, 2), torch.randn(5, 2)
    q = hand_probabilities(c, a, null_class=False)
    assert torch.allclose(q, (torch.sigmoid(c) * torch.softmax(a, dim=0)).sqrt())
    assert hand_probabilities(torch.zeros(0, 2), torch.zeros(0, 2)).shape == (0, 2)
