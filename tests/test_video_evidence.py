"""The per-hand evidence filter on hand-made evidence: alpha 1 without hysteresis is the per-frame rule, flicker of
the held object is absorbed, a sustained grasp or release on weak evidence is followed within a frame or two (the
switch-price HMM waits much longer), hysteresis stops chatter at the threshold, an absent hand holds nothing, and a
track that is no longer live is forgotten."""
import pytest

from wish_d2.video.evidence import EvidenceFilter
from wish_d2.video.smoothing import NOTHING, HandHMM

THETA = 0.35


def _per_frame(evidence, theta=THETA):
    best = max(evidence.items(), key=lambda kv: kv[1], default=(NOTHING, 0.0))
    return best[0] if best[1] >= theta else NOTHING


def _run(f, seq):
    return [f.step(e) for e in seq]


def test_alpha_one_without_margin_is_the_per_frame_rule():
    seq = [{1: 0.9}, {1: 0.3}, {1: 0.6, 2: 0.7}, {1: 0.2, 2: 0.2}, {1: 0.51, 2: 0.1}, {1: 0.1, 2: 0.36}]
    assert _run(EvidenceFilter(THETA, alpha=1.0, margin=0.0), seq) == [_per_frame(e) for e in seq]


def test_flicker_of_the_held_object_is_absorbed():
    # held object 1; in frames 5 and 9 the segmenter's split makes its q dip and another track peak
    seq = [{1: 0.6, 2: 0.1}] * 5 + [{1: 0.2, 2: 0.5}] + [{1: 0.6, 2: 0.1}] * 3 + [{1: 0.1, 2: 0.45}] + \
          [{1: 0.6, 2: 0.1}] * 3
    smooth = _run(EvidenceFilter(THETA, alpha=0.5, margin=0.1), seq)
    per_frame = [_per_frame(e) for e in seq]
    assert per_frame[5] == 2 and per_frame[9] == 2
    assert smooth[3:] == [1] * (len(seq) - 3)


@pytest.mark.parametrize("q_held", [0.45, 0.6])
def test_sustained_grasp_and_release_are_followed_quickly(q_held):
    seq = [{1: 0.1}] * 6 + [{1: q_held}] * 8 + [{1: 0.1}] * 8
    states = _run(EvidenceFilter(THETA, alpha=0.5, margin=0.1), seq)
    grasp = states.index(1)
    release = grasp + states[grasp:].index(NOTHING)
    assert grasp - 6 <= 2 and release - 14 <= 2
    # the switch-price HMM at the sticky end of its grid needs several frames of weak evidence to take the object
    hmm = HandHMM(THETA, p_switch=0.01, floor=0.05)
    hmm_states = [hmm.step(e) for e in seq]
    assert 1 not in hmm_states[6:9]


def test_hysteresis_stops_chatter_at_the_threshold():
    seq = [{1: 0.6}] * 4 + [{1: x} for x in (0.33, 0.37, 0.33, 0.37, 0.34, 0.36)]
    with_margin = _run(EvidenceFilter(THETA, alpha=1.0, margin=0.1), seq)
    without = _run(EvidenceFilter(THETA, alpha=1.0, margin=0.0), seq)
    changes = lambda s: sum(a != b for a, b in zip(s, s[1:]))  # noqa: E731
    assert changes(with_margin) == 0 and changes(without) >= 4
    # a better-looking other track takes over only when it beats the held one by the margin
    f = EvidenceFilter(THETA, alpha=1.0, margin=0.1)
    f.step({1: 0.6, 2: 0.1})
    assert f.step({1: 0.6, 2: 0.62}) == 1
    assert f.step({1: 0.6, 2: 0.7}) == 2


def test_absent_hand_unseen_and_forgotten_tracks():
    f = EvidenceFilter(THETA, alpha=0.5, margin=0.0)
    f.step({1: 0.8})
    assert f.step({}, live=[1]) == 1  # live but unseen: keeps its average, still held
    assert f.step({}, live=[]) == NOTHING and f.avg == {}  # no longer live: forgotten
    f.step({2: 0.8})
    assert f.step({2: 0.8}, present=False) == NOTHING and f.avg == {}


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="alpha"):
        EvidenceFilter(THETA, alpha=0.0)
    with pytest.raises(ValueError, match="theta"):
        EvidenceFilter(1.0)
    with pytest.raises(ValueError, match="margin"):
        EvidenceFilter(THETA, margin=1.0)
