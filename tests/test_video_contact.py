"""The per-hand contact filter on hand-made evidence: alpha 1 without hysteresis is the per-frame threshold, a dip of
the best evidence for a frame or two is bridged and a lone spike ignored, a sustained grasp or release is followed
within a few frames, hysteresis stops chatter at the threshold, a frame without proposals gives no support, and an
absent hand holds nothing and restarts."""
import pytest

from wish_d2.video.contact import ContactFilter

THETA = 0.35


def _run(f, seq, present=None):
    present = present or [True] * len(seq)
    return [f.step(p, pr) for p, pr in zip(seq, present)]


def test_alpha_one_without_margin_is_the_per_frame_threshold():
    seq = [0.9, 0.3, 0.35, 0.349, 0.7, 0.1]
    assert _run(ContactFilter(THETA, alpha=1.0, margin=0.0), seq) == [p >= THETA for p in seq]


def test_dips_are_bridged_and_spikes_ignored():
    held = [0.6] * 5 + [0.1] + [0.6] * 3 + [0.15, 0.2] + [0.6] * 3
    assert all(_run(ContactFilter(THETA, alpha=0.3, margin=0.1), held)[2:])
    free = [0.1] * 5 + [0.6] + [0.1] * 5
    assert not any(_run(ContactFilter(THETA, alpha=0.3, margin=0.1), free))


@pytest.mark.parametrize("alpha,within", [(0.5, 2), (0.3, 4)])
def test_sustained_grasp_and_release_are_followed(alpha, within):
    seq = [0.1] * 6 + [0.6] * 8 + [0.1] * 8
    states = _run(ContactFilter(THETA, alpha=alpha, margin=0.1), seq)
    assert not any(states[:6]) and all(states[6 + within:14]) and not any(states[14 + within:])


def test_hysteresis_stops_chatter_at_the_threshold():
    seq = [0.6] * 4 + [0.34, 0.36] * 6
    per_frame = _run(ContactFilter(THETA, alpha=1.0, margin=0.0), seq)
    hysteresis = _run(ContactFilter(THETA, alpha=1.0, margin=0.1), seq)
    changes = lambda s: sum(a != b for a, b in zip(s, s[1:]))  # noqa: E731
    assert changes(per_frame) == 12 and changes(hysteresis) == 0


def test_no_proposals_decays_and_absence_restarts():
    f = ContactFilter(THETA, alpha=0.5, margin=0.0)
    assert _run(f, [0.6, 0.6]) == [True, True]
    assert f.step(None) is False  # 0.3: no support this frame, the average decays below theta
    f.step(0.6)
    assert f.step(0.6, present=False) is False and f.avg is None
    assert f.step(0.2) is False  # restarted from the new frame's evidence, not the old average


def test_bad_parameters_raise():
    for kw in ({"alpha": 0.0}, {"alpha": 1.5}, {"theta": 1.0}, {"margin": 1.0}):
        args = {"theta": THETA, **kw}
        with pytest.raises(ValueError):
            ContactFilter(**args)
