"""Vertical-split hand-side heuristic and its accuracy helper."""
import math

import numpy as np
import torch

from wish_d2.data.hand_side import (
    apply_side_heuristic,
    assign_sides,
    hand_side_accuracy,
    mask_centroid_x,
    side_from_mask,
)
from wish_d2.utils.masks import encode_rle


def box(x0, x1, w=20, h=10):
    m = np.zeros((h, w), bool)
    m[2:8, x0:x1] = True
    return m


def test_side_from_mask():
    assert side_from_mask(box(0, 4)) == "left"
    assert side_from_mask(box(12, 20)) == "right"
    assert side_from_mask(torch.from_numpy(box(0, 4))) == "left"
    assert side_from_mask(encode_rle(box(12, 20))) == "right"
    assert side_from_mask(np.zeros((10, 20), bool)) is None
    assert mask_centroid_x(box(9, 11)) == 10.0  # pixel centres 9.5 and 10.5: exactly the centre -> right
    assert side_from_mask(box(9, 11)) == "right"
    assert side_from_mask(box(0, 4), width=4) == "right"  # centroid 2.0 is not < 4 / 2


def test_assign_sides_one_per_side():
    assert assign_sides([box(0, 4), box(12, 20)]) == ["left", "right"]
    assert assign_sides([box(12, 14), box(15, 20)]) == ["left", "right"]  # both right of centre: split by x
    assert assign_sides([box(6, 8), box(0, 2)]) == ["right", "left"]
    assert assign_sides([np.zeros((10, 20), bool), box(12, 20)]) == [None, "right"]
    assert assign_sides([box(0, 2), box(5, 7), box(15, 20)]) == ["left", None, "right"]
    assert assign_sides([]) == []


def test_apply_and_accuracy():
    hands = [{"side": "right", "side_source": "gt", "segmentation": encode_rle(box(0, 4))}]
    out = apply_side_heuristic(hands, 20)
    assert out[0]["side"] == "left" and out[0]["side_source"] == "heuristic" and out[0]["gt_side"] == "right"
    dicts = [
        {"width": 20, "hands": [{"side": "left", "side_source": "gt", "segmentation": encode_rle(box(0, 4))},
                                {"side": "right", "side_source": "gt", "segmentation": encode_rle(box(12, 20))}]},
        {"width": 20, "hands": [{"side": "left", "side_source": "gt", "segmentation": encode_rle(box(14, 20))}]},
        {"width": 20, "hands": [{"side": "left", "side_source": "heuristic", "segmentation": encode_rle(box(0, 4))}]},
    ]
    acc = hand_side_accuracy(dicts)
    assert acc["num_hands"] == 3 and math.isclose(acc["accuracy"], 2 / 3)
    assert acc["left_accuracy"] == 0.5 and acc["right_accuracy"] == 1.0
    assert math.isnan(hand_side_accuracy([])["accuracy"])


def arm(x_bottom, x_top, w=20, h=10):
    """A diagonal band from the bottom edge at ``x_bottom`` to the top rows at ``x_top`` (an arm and its palm)."""
    m = np.zeros((h, w), bool)
    for y in range(2, h):
        x = round(x_top + (x_bottom - x_top) * (y - 2) / (h - 3))
        m[y, max(0, x - 1):x + 2] = True
    return m


def test_entry_rule_reads_where_the_arm_enters():
    from wish_d2.data.hand_side import mask_entry_x

    crossing = arm(6, 16)  # enters bottom-left, the palm is right of the centre (a chest camera)
    assert mask_centroid_x(crossing) > 10 and mask_entry_x(crossing) < 10
    assert assign_sides([crossing]) == ["right"]  # the vertical split is fooled
    assert assign_sides([crossing], rule="entry") == ["left"]
    assert mask_entry_x(box(2, 6)) is None  # touches no edge: the entry rule falls back to the centroid
    assert assign_sides([box(2, 6)], rule="entry") == ["left"]
    left_edge = np.zeros((10, 20), bool)
    left_edge[3:6, 0:15] = True  # enters from the left edge, reaches far right
    assert assign_sides([left_edge], rule="entry") == ["left"]
    assert assign_sides([crossing, arm(14, 4)], rule="entry") == ["left", "right"]  # crossed arms
    try:
        assign_sides([crossing], rule="centre")
    except ValueError as e:
        assert "entry" in str(e)
    else:
        raise AssertionError("an unknown rule must be refused")
