"""The per-hand HMM on hand-made evidence: one-frame blips are ignored, sustained changes are followed, a short
gap of a held object is bridged, p_switch = 0.5 reproduces the per-frame threshold rule, an absent hand holds
nothing, and the state set stays bounded by the live tracks."""
import pytest

from wish_d2.video.smoothing import NOTHING, HandHMM, smooth_sequence

THETA = 0.5


def _per_frame(evidence):
    best = max(evidence.items(), key=lambda kv: kv[1], default=(NOTHING, 0.0))
    return best[0] if best[1] >= THETA else NOTHING


def test_blips_are_ignored_and_sustained_changes_followed():
    seq = [{1: 0.9, 2: 0.1}] * 6 + [{1: 0.2, 2: 0.8}] + [{1: 0.9, 2: 0.1}] * 4 + [{1: 0.1, 2: 0.9}] * 8
    states = smooth_sequence(seq, THETA, p_switch=0.05)
    assert states[6] == 1  # one-frame blip to track 2 ignored
    assert states[-1] == 2 and states[-4] == 2  # sustained change followed
    per_frame = [_per_frame(e) for e in seq]
    changes = lambda s: sum(a != b for a, b in zip(s, s[1:]))  # noqa: E731
    assert changes(states) < changes(per_frame)


def test_short_gap_of_a_held_object_is_bridged():
    hmm = HandHMM(THETA, p_switch=0.05)
    for _ in range(5):
        assert hmm.step({1: 0.9}) == 1
    assert hmm.step({}, live=[1]) == 1  # the segmenter missed it for one frame
    assert hmm.step({1: 0.9}, live=[1]) == 1


def test_p_switch_half_is_the_per_frame_rule():
    seq = [{1: 0.9}, {1: 0.3}, {1: 0.6, 2: 0.7}, {2: 0.2}, {1: 0.51}, {}]
    assert smooth_sequence(seq, THETA, p_switch=0.5) == [_per_frame(e) for e in seq]


def test_release_is_followed_to_nothing():
    seq = [{1: 0.9}] * 5 + [{1: 0.1}] * 6
    states = smooth_sequence(seq, THETA, p_switch=0.1)
    assert states[0] == 1 and states[-1] == NOTHING


def test_absent_hand_holds_nothing_and_states_stay_bounded():
    hmm = HandHMM(THETA)
    hmm.step({1: 0.9, 2: 0.2, 3: 0.3})
    assert hmm.step({1: 0.9}, present=False) == NOTHING
    hmm.step({4: 0.9}, live=[4])
    assert set(hmm.delta) <= {NOTHING, 4}


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="p_switch"):
        HandHMM(THETA, p_switch=0.0)
    with pytest.raises(ValueError, match="theta"):
        HandHMM(1.5)
