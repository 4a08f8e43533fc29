"""E-mIoU of a selection, with and without the grid-search memo of decoded proposal masks."""
import numpy as np
import torch

from wish_d2.engine.calibration import pred_label_map, selection_emiou
from wish_d2.utils.masks import encode_rle


def _record(n=5, h=16, w=20, seed=0):
    rng = np.random.default_rng(seed)
    masks = rng.random((n, h, w)) > 0.6
    return {"image_id": "img", "height": h, "width": w, "proposal_rles": [encode_rle(m) for m in masks]}, masks


def test_memo_gives_the_same_maps_and_keeps_only_selected_masks():
    record, masks = _record()
    memo = {}
    for selection in ([(3, 0, 0.9), (1, 1, 0.4)], [(3, 2, 0.7)], [], [(1, 0, 0.2), (3, 1, 0.8)]):
        assert torch.equal(pred_label_map(selection, record, memo), pred_label_map(selection, record))
    assert set(memo) == {("img", 1), ("img", 3)}
    assert torch.equal(memo[("img", 3)], torch.from_numpy(masks[3]))


def test_selection_emiou_same_with_memo():
    record, masks = _record(seed=1)
    gt = torch.zeros(16, 20, dtype=torch.long)
    gt[torch.from_numpy(masks[2])] = 1
    pairs = [([(2, 0, 0.9)], record, gt), ([(0, 1, 0.5)], record, gt)]
    assert selection_emiou(pairs, {}) == selection_emiou(pairs)
    assert selection_emiou(pairs[:1])["IoU_left"] == 100.0
