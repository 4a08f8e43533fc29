"""Side accuracy of detected hands against ground-truth hands."""
import math

import numpy as np
import pytest

from wish_d2.evaluation.hand_sides import SideAccuracy
from wish_d2.utils.masks import encode_rle


def _rle(x0, x1):
    m = np.zeros((10, 40), bool)
    m[2:8, x0:x1] = True
    return encode_rle(m)


L, R = _rle(0, 10), _rle(30, 40)
L_SHIFTED, R_SMALL = _rle(1, 10), _rle(30, 33)


@pytest.mark.parametrize("gt, det, expected", [
    ([(L, "left"), (R, "right")], [(R, "right"), (L, "left")], (1.0, 1.0)),
    ([(L, "left"), (R, "right")], [(L_SHIFTED, "right"), (R, "right")], (0.5, 1.0)),  # one wrong side
    ([(L, "left"), (R, "right")], [(L, "left"), (R_SMALL, "right")], (1.0, 0.5)),  # IoU 0.3: missed, not wrong
    ([(L, "left")], [(L, "left"), (L_SHIFTED, "right")], (1.0, 1.0)),  # a duplicate matches nothing
    ([(L, "left")], [], (math.nan, 0.0)),
])
def test_side_accuracy(gt, det, expected):
    acc = SideAccuracy()
    acc.add([g for g, _ in gt], [s for _, s in gt], [d for d, _ in det], [s for _, s in det])
    s = acc.summary()
    for got, want in zip((s["side_accuracy"], s["hand_recall"]), expected):
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)
    assert s["num_gt_hands"] == len(gt)
