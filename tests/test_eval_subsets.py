"""Metrics by frame subset (single- vs multi-object frames) and their place in the table."""
import numpy as np
import pytest

from wish_d2.engine.table import _mean_rows, format_table
from wish_d2.evaluation.subsets import frame_subset, objects_per_hand, subset_metrics
from wish_d2.utils.masks import encode_rle

H = W = 16


def box(x, y, s=4):
    m = np.zeros((H, W), bool)
    m[y:y + s, x:x + s] = True
    return encode_rle(m)


@pytest.mark.parametrize("classes,counts,subset", [
    ([], (0, 0), "single"),
    ([0, 1], (1, 1), "single"),
    ([2], (1, 1), "single"),
    ([0, 0], (2, 0), "multi"),
    ([2, 1], (1, 2), "multi"),
])
def test_frame_subset(classes, counts, subset):
    anns = [{"category_id": c} for c in classes]
    assert objects_per_hand(anns) == counts and frame_subset(anns) == subset


def test_subset_metrics_split_the_frames():
    dicts = [
        {"image_id": "s", "height": H, "width": W, "annotations": [{"category_id": 0, "segmentation": box(0, 0)}]},
        {"image_id": "m", "height": H, "width": W, "annotations": [{"category_id": 0, "segmentation": box(0, 0)},
                                                                   {"category_id": 0, "segmentation": box(8, 8)}]},
    ]
    # the single frame is perfect; the multi frame finds one of its two left objects
    preds = [{"image_id": "s", "category_id": 0, "segmentation": box(0, 0), "score": 0.9},
             {"image_id": "m", "category_id": 0, "segmentation": box(0, 0), "score": 0.9}]
    res = subset_metrics(preds, dicts)
    assert res["single"]["IoU_left"] == pytest.approx(100.0) and res["single"]["frames"] == 1
    assert res["multi"]["IoU_left"] == pytest.approx(50.0) and res["multi"]["frames"] == 1


def test_table_means_and_prints_subsets():
    rows = [{"E-mIoU": 40.0, "subsets": {"single": {"E-mIoU": 42.0}, "multi": {"E-mIoU": 20.0}}},
            {"E-mIoU": 50.0, "subsets": {"single": {"E-mIoU": 44.0}, "multi": {"E-mIoU": 30.0}}}]
    mean = _mean_rows(rows)
    assert mean["E-mIoU"] == 45.0 and mean["subsets"] == {"single": {"E-mIoU": 43.0}, "multi": {"E-mIoU": 25.0}}
    text = format_table({"seeds": [0, 1], "wish": mean, "wish_multi": mean,
                         "per_seed": {0: {"wish": rows[0]}, 1: {"wish": rows[1]}}})
    assert "| wish_multi | 45.0 | 43.0 | 25.0 |" in text and "multi-object frames" in text
