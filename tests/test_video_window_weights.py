"""Narration-window weights on hand-made windows, and the weighted InfoNCE: weights of 1 give the plain loss, a
zero weight removes a pair, and dicts without weights train exactly as before."""
import pytest
import torch

from wish_d2.data.epic_narrations import EpicNarration, VideoNarrations
from wish_d2.modeling.losses import symmetric_info_nce
from wish_d2.video.window_weights import attach_narration_weights, boundary_probability, frame_weight, window_weight


def test_boundary_probability_ramps_from_half_at_the_edge_to_one_inside():
    assert boundary_probability(0.0, 1.0) == 0.5
    assert boundary_probability(1.0, 1.0) == 1.0
    assert boundary_probability(-1.0, 1.0) == 0.0
    assert boundary_probability(0.5, 1.0) == 0.75
    assert boundary_probability(0.3, 0.0) == 1.0 and boundary_probability(-0.1, 0.0) == 0.0
    with pytest.raises(ValueError):
        boundary_probability(0.0, -1.0)


def test_window_weight_is_low_near_edges_and_one_in_the_middle():
    fps = 50
    start, stop = 100, 600  # a 10 s window
    assert window_weight(350, start, stop, fps, 1.0) == 1.0
    assert window_weight(100, start, stop, fps, 1.0) == 0.5
    assert window_weight(125, start, stop, fps, 1.0) == pytest.approx(0.75)
    assert window_weight(350, start, stop, fps, 0.0) == 1.0
    # a window shorter than the noise: even its middle is uncertain
    assert window_weight(125, 100, 150, fps, 1.0) < 0.6


def test_frame_weight_takes_the_best_covering_window():
    assert frame_weight(110, [(100, 600), (0, 400)], 50, 1.0) == 1.0
    assert frame_weight(110, [(100, 600)], 50, 1.0) == pytest.approx(0.6)
    assert frame_weight(50, [(100, 600)], 50, 1.0) == 1.0  # not covered: no phrase, weight irrelevant


def test_attach_narration_weights_uses_the_frame_position():
    narr = {"P01_01": VideoNarrations([EpicNarration("a", 100, 600, "take cup", ["cup"])])}
    dicts = [{"video_id": "P01_01", "frame": 100}, {"video_id": "P01_01", "frame": 350}, {"video_id": "X", "frame": 1}]
    attach_narration_weights(dicts, narr, fps=50, noise_s=1.0)
    assert [d["narration_weight"] for d in dicts] == [0.5, 1.0, 1.0]


def test_weighted_info_nce():
    torch.manual_seed(0)
    S = torch.randn(4, 4)
    valid = torch.tensor([True, True, False, True])
    plain = symmetric_info_nce(S, valid)
    ones = symmetric_info_nce(S, valid, torch.ones(4))
    assert torch.equal(plain, ones)  # weight 1.0 leaves the loss bit-identical
    w = torch.tensor([1.0, 0.0, 1.0, 1.0])
    weighted = symmetric_info_nce(S, valid, w)
    keep = torch.tensor([0, 2])  # positions among the valid pairs with weight 1
    Sk = S[valid][:, valid]
    ce = torch.nn.functional.cross_entropy
    t = torch.arange(3)
    rows = ce(Sk, t, reduction="none") + ce(Sk.t(), t, reduction="none")
    assert torch.allclose(weighted, 0.5 * rows[keep].sum() / 2, atol=1e-6)
    assert not torch.allclose(weighted, plain)
