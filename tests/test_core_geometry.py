"""g(m_i, H_s): hand-checked values, zeros for absent hands / empty masks, resolution independence."""
import torch

from wish_d2.modeling.geometry import (
    GEOMETRY_DIM,
    GEOMETRY_NAMES,
    hand_overlap_fraction,
    masks_to_boxes,
    pair_geometry,
)

F_ = {n: k for k, n in enumerate(GEOMETRY_NAMES)}


def _scene(H=100, W=100):
    masks = torch.zeros(3, H, W, dtype=torch.bool)
    masks[0, 40:60, 20:40] = True  # touching the left hand from above
    masks[1, 0:10, 90:100] = True  # far away
    hands = torch.zeros(2, H, W, dtype=torch.bool)
    hands[0, 60:80, 20:40] = True
    hands[1, 60:80, 70:90] = True
    return masks, hands


def test_shapes_and_hand_checked_values():
    masks, hands = _scene()
    g = pair_geometry(masks, hands, torch.tensor([True, True]), dilation=0.05)  # r = round(0.05 * 141.4) = 7
    assert g.shape == (3, 2, GEOMETRY_DIM) and torch.isfinite(g).all()
    diag = (100 ** 2 + 100 ** 2) ** 0.5
    # object 0 vs left hand: the dilated hand covers its last 7 rows -> 7/20 of the object
    assert abs(g[0, 0, F_["near_hand_frac_of_obj"]].item() - 7 / 20) < 1e-5
    assert abs(g[0, 0, F_["dx"]].item()) < 1e-6
    assert abs(g[0, 0, F_["dy"]].item() - (-20 / diag)) < 1e-5
    assert abs(g[0, 0, F_["log_area_ratio"]].item()) < 1e-5  # same areas
    assert g[0, 0, F_["box_gap"]].item() == 0.0
    assert abs(g[0, 0, F_["obj_size"]].item() - (400 / 10000) ** 0.5) < 1e-6
    # far object: no overlap, positive gap
    assert g[1, :, F_["near_hand_frac_of_obj"]].abs().max() == 0 and (g[1, :, F_["box_gap"]] > 0).all()
    # empty proposal: all zeros
    assert g[2].abs().max() == 0


def test_absent_hand_gives_zeros_and_no_nan():
    masks, hands = _scene()
    g = pair_geometry(masks, hands, torch.tensor([True, False]))
    assert g[:, 1].abs().max() == 0 and g[:2, 0].abs().sum() > 0
    hands[0] = False  # "present" but empty mask: treated as absent
    g = pair_geometry(masks, hands, torch.tensor([True, False]))
    assert g.abs().max() == 0
    assert pair_geometry(torch.zeros(0, 100, 100, dtype=torch.bool), hands, torch.tensor([True, True])).shape == (
        0, 2, GEOMETRY_DIM)


def test_resolution_independent():
    masks, hands = _scene(100, 100)
    big = lambda t: t.repeat_interleave(4, 1).repeat_interleave(4, 2)  # noqa: E731
    g1 = pair_geometry(masks, hands, torch.tensor([True, True]), dilation=0.05, max_side=512)
    g2 = pair_geometry(big(masks), big(hands), torch.tensor([True, True]), dilation=0.05, max_side=100)
    assert torch.allclose(g1, g2, atol=1e-5)


def test_masks_to_boxes_and_hand_overlap():
    m = torch.zeros(2, 10, 12, dtype=torch.bool)
    m[0, 2:5, 3:9] = True
    boxes, ne = masks_to_boxes(m)
    assert boxes[0].tolist() == [3, 2, 9, 5] and ne.tolist() == [True, False]
    hands = torch.zeros(2, 10, 12, dtype=torch.bool)
    hands[1, 2:5, 3:6] = True
    f = hand_overlap_fraction(m, hands)
    assert torch.allclose(f, torch.tensor([0.5, 0.0]))
    assert hand_overlap_fraction(m, hands[:0]).tolist() == [0.0, 0.0]


def test_contact_region_masks_is_the_meeting_zone():
    from wish_d2.modeling.geometry import contact_region_masks

    masks, hands = _scene()
    zones = contact_region_masks(masks, hands, torch.tensor([True, False]), dilation=0.03)  # r = 4 px
    assert zones.shape == (3, 2, 100, 100) and zones.dtype == torch.float32
    assert set(zones.unique().tolist()) <= {0.0, 1.0}  # boolean masks give the exact 0/1 zone
    zones = zones > 0
    z = zones[0, 0]
    # object pixels next to the hand, and hand pixels next to the object, nothing else
    assert z[56:60, 20:40].all() and z[60:64, 20:40].all()
    assert not z[:52].any() and not z[68:].any()
    assert not (z & ~(masks[0] | hands[0])).any()
    assert not zones[1].any()  # far object: no contact zone
    assert not zones[:, 1].any()  # absent hand: empty zones (pooled to a finite embedding)
    assert contact_region_masks(masks[:0], hands, torch.tensor([True, True])).shape == (0, 2, 100, 100)
