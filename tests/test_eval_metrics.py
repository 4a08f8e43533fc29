"""Core in-hand metrics: label-map painting, dataset-level E-mIoU, hand-side accuracy (no Detectron2 objects)."""
import logging
import math

import numpy as np
import pytest
import torch

from wish_d2.evaluation.metrics import InHandIoU, hand_side_accuracy, paint_label_map


def _rect(h, w, y0, y1, x0, x1):
    m = torch.zeros((h, w), dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def test_paint_label_map_classes_and_background():
    masks = torch.stack([_rect(4, 6, 0, 2, 0, 2), _rect(4, 6, 2, 4, 4, 6), _rect(4, 6, 0, 1, 3, 5)])
    out = paint_label_map(masks, torch.tensor([0, 1, 2]), torch.tensor([0.9, 0.8, 0.7]), 4, 6)
    assert out.dtype == torch.uint8 and out.shape == (4, 6)
    expected = torch.tensor(
        [
            [1, 1, 0, 3, 3, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 0, 0, 2, 2],
            [0, 0, 0, 0, 2, 2],
        ],
        dtype=torch.uint8,
    )
    assert torch.equal(out, expected)


def test_paint_overlap_higher_score_wins_regardless_of_order():
    a = _rect(4, 4, 0, 4, 0, 3)  # left object, cols 0..2
    b = _rect(4, 4, 0, 4, 1, 4)  # right object, cols 1..3 (overlap cols 1..2)
    for masks, classes, scores in [
        (torch.stack([a, b]), torch.tensor([0, 1]), torch.tensor([0.9, 0.2])),
        (torch.stack([b, a]), torch.tensor([1, 0]), torch.tensor([0.2, 0.9])),
    ]:
        out = paint_label_map(masks, classes, scores, 4, 4)
        assert out[0].tolist() == [1, 1, 1, 2]
    # the other way round: right wins the overlap
    out = paint_label_map(torch.stack([a, b]), torch.tensor([0, 1]), torch.tensor([0.1, 0.2]), 4, 4)
    assert out[0].tolist() == [1, 2, 2, 2]
    # equal scores and scores=None: later instances are painted over earlier ones
    for scores in (torch.tensor([0.5, 0.5]), None):
        out = paint_label_map(torch.stack([a, b]), torch.tensor([0, 1]), scores, 4, 4)
        assert out[0].tolist() == [1, 2, 2, 2]


def test_paint_accepts_numpy_float_masks_and_empty():
    masks = np.zeros((1, 3, 3), dtype=np.float32)
    masks[0, 1, 1] = 0.7
    masks[0, 0, 0] = 0.3
    out = paint_label_map(masks, np.array([2]), None, 3, 3)
    assert out.tolist() == [[0, 0, 0], [0, 3, 0], [0, 0, 0]]
    empty = paint_label_map(torch.zeros((0, 3, 3), dtype=torch.bool), torch.zeros(0), torch.zeros(0), 3, 3)
    assert empty.sum() == 0 and empty.shape == (3, 3)


def test_paint_rejects_bad_inputs():
    m = torch.ones((1, 3, 3), dtype=torch.bool)
    with pytest.raises(ValueError):
        paint_label_map(m, torch.tensor([3]), None, 3, 3)  # class out of range
    with pytest.raises(ValueError):
        paint_label_map(m, torch.tensor([0]), None, 4, 3)  # size mismatch
    with pytest.raises(ValueError):
        paint_label_map(m, torch.tensor([0, 1]), None, 3, 3)  # K mismatch


def test_emiou_dataset_level_known_value():
    # Image 1 (2x4):                     Image 2 (2x4):
    #   gt   [[1,1,2,2],[0,0,3,3]]         gt   [[1,0,0,0],[0,0,0,0]]
    #   pred [[1,0,2,2],[0,3,3,0]]         pred [[1,1,1,1],[0,0,0,0]]
    gt1 = torch.tensor([[1, 1, 2, 2], [0, 0, 3, 3]], dtype=torch.uint8)
    pr1 = torch.tensor([[1, 0, 2, 2], [0, 3, 3, 0]], dtype=torch.uint8)
    gt2 = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.uint8)
    pr2 = torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.uint8)
    # Per image then summed:
    #   left : I = 1 + 1 = 2, U = 2 + 4 = 6           -> 1/3
    #   right: I = 2,         U = 2                   -> 1
    #   both : I = 1,         U = 3 (gt {6,7}, pred {5,6}) -> 1/3
    acc = InHandIoU()
    acc.update(pr1, gt1)
    acc.update(pr2, gt2)
    assert acc.intersection.tolist() == [2, 2, 1]
    assert acc.union.tolist() == [6, 2, 3]
    res = acc.compute()
    assert res["IoU_left"] == pytest.approx(100 / 3)
    assert res["IoU_right"] == pytest.approx(100.0)
    assert res["IoU_both"] == pytest.approx(100 / 3)
    assert res["E-mIoU"] == pytest.approx((100 / 3 + 100 + 100 / 3) / 3)
    # dataset-level, not the mean of per-image IoUs: image 2 alone would give left 1/4, image 1 alone left 1/2
    assert res["IoU_left"] != pytest.approx(100 * (0.5 + 0.25) / 2)


def test_merge_and_state_equal_single_accumulator():
    g = torch.Generator().manual_seed(0)
    maps = [(torch.randint(0, 4, (5, 7), generator=g), torch.randint(0, 4, (5, 7), generator=g)) for _ in range(6)]
    full = InHandIoU()
    a, b = InHandIoU(), InHandIoU()
    for i, (p, t) in enumerate(maps):
        full.update(p, t)
        (a if i % 2 else b).update(p, t)
    state = a.state()
    assert state.dtype == torch.int64 and state.shape == (4, 4)
    merged = InHandIoU().merge(b).merge(state)
    assert torch.equal(merged.state(), full.state())
    loaded = InHandIoU()
    loaded.load_state(a.state() + b.state())  # what an all_reduce(SUM) of the states gives
    assert loaded.compute() == pytest.approx(full.compute())
    # batched update is the same as per-image updates
    batched = InHandIoU()
    batched.update(torch.stack([p for p, _ in maps]), torch.stack([t for _, t in maps]))
    assert torch.equal(batched.state(), full.state())


def test_zero_union_class_is_excluded_not_nan(caplog):
    gt = torch.tensor([[1, 1, 2, 0]], dtype=torch.uint8)
    pred = torch.tensor([[1, 0, 2, 2]], dtype=torch.uint8)
    acc = InHandIoU()
    acc.update(pred, gt)
    with caplog.at_level(logging.WARNING, logger="wish_d2.evaluation.metrics"):
        res = acc.compute()
    assert "IoU_both" not in res
    assert res["IoU_left"] == pytest.approx(50.0)
    assert res["IoU_right"] == pytest.approx(50.0)
    assert res["E-mIoU"] == pytest.approx(50.0)  # mean over the 2 defined classes, not 100/3
    assert all(math.isfinite(v) for v in res.values())
    assert "both" in caplog.text
    # nothing at all: no key, no NaN
    assert InHandIoU().compute() == {}


def test_empty_predictions_give_zero_for_gt_classes():
    gt = torch.tensor([[1, 2, 3, 0]], dtype=torch.uint8)
    acc = InHandIoU()
    acc.update(torch.zeros_like(gt), gt)
    res = acc.compute()
    assert res == {"E-mIoU": 0.0, "IoU_left": 0.0, "IoU_right": 0.0, "IoU_both": 0.0}


def test_false_positive_only_class_counts_as_zero():
    # a class predicted but absent from the ground truth has union > 0 and IoU 0: it is in the mean
    gt = torch.tensor([[1, 1, 0, 0]], dtype=torch.uint8)
    pred = torch.tensor([[1, 1, 3, 0]], dtype=torch.uint8)
    acc = InHandIoU()
    acc.update(pred, gt)
    res = acc.compute()
    assert res["IoU_both"] == 0.0 and res["IoU_left"] == 100.0 and "IoU_right" not in res
    assert res["E-mIoU"] == pytest.approx(50.0)


def test_update_validates():
    acc = InHandIoU()
    with pytest.raises(ValueError):
        acc.update(torch.zeros((2, 2)), torch.zeros((2, 3)))
    with pytest.raises(ValueError):
        acc.update(torch.full((2, 2), 4), torch.zeros((2, 2)))


def test_hand_side_accuracy():
    assert hand_side_accuracy(["left", "right", "Left", "left"], ["left", "left", "left", "right"]) == 50.0
    assert hand_side_accuracy([0, 1], [0, 1]) == 100.0
    assert hand_side_accuracy([], []) is None
    with pytest.raises(ValueError):
        hand_side_accuracy(["left"], [])


def test_gt_label_map_from_polygons_and_rles():
    from wish_d2.evaluation.metrics import gt_label_map
    from wish_d2.utils.masks import encode_rle, segmentation_to_mask

    square = [[2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0]]
    mask = segmentation_to_mask(square, 8, 10)
    assert mask.dtype == bool and mask.shape == (8, 10) and mask.sum() > 0
    assert np.array_equal(segmentation_to_mask(encode_rle(mask), 8, 10), mask)
    other = np.zeros((8, 10), bool)
    other[4:8, 5:9] = True  # overlaps the square; painted later, so it wins the overlap
    label = gt_label_map([{"segmentation": square, "category_id": 0},
                          {"segmentation": encode_rle(other), "category_id": 2}], 8, 10)
    assert label.dtype == torch.uint8
    assert bool((label[torch.from_numpy(other)] == 3).all())
    assert bool((label[torch.from_numpy(mask & ~other)] == 1).all())
    assert int(gt_label_map(None, 8, 10).sum()) == 0
    with pytest.raises(ValueError, match="the image is"):
        segmentation_to_mask(encode_rle(mask), 9, 10)
    with pytest.raises(TypeError):
        segmentation_to_mask("not a mask", 8, 10)


def test_rle_ious_matrix():
    from wish_d2.utils.masks import encode_rle, rle_area, rle_ious

    a = np.zeros((6, 6), bool)
    a[:3] = True  # 18 px
    b = np.zeros((6, 6), bool)
    b[:, :3] = True  # 18 px, 9 shared
    ious = rle_ious([encode_rle(a)], [encode_rle(a), encode_rle(b)])
    assert ious.shape == (1, 2) and ious[0, 0] == pytest.approx(1.0) and ious[0, 1] == pytest.approx(9 / 27)
    assert rle_ious([], [encode_rle(a)]).shape == (0, 1)
    assert rle_area(encode_rle(b)) == 18
