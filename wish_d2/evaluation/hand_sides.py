"""How well detected hands match the ground-truth hands of a frame, and whether their sides are right.

Each ground-truth hand is matched to at most one detection (greedy by mask IoU, at least ``iou_thresh``); the side
accuracy counts matched hands whose detected side is the true one, so a missed hand lowers the recall, not the side
accuracy. Used by the hand-detector stress test (``tools/hand_benchmark.py``).
"""
from typing import Dict, Optional, Sequence

from ..utils.masks import rle_ious

__all__ = ["SideAccuracy"]


class SideAccuracy:
    """Accumulates ``add(gt_rles, gt_sides, det_rles, det_sides)`` per frame; :meth:`summary` gives
    ``{"side_accuracy", "hand_recall", "num_gt_hands", "num_matched"}`` (NaN where nothing was counted)."""

    def __init__(self, iou_thresh: float = 0.5):
        self.iou_thresh = float(iou_thresh)
        self.gt = self.matched = self.correct = 0

    def add(self, gt_rles: Sequence[Dict], gt_sides: Sequence[str], det_rles: Sequence[Dict],
            det_sides: Sequence[Optional[str]]) -> None:
        self.gt += len(gt_rles)
        if not gt_rles or not det_rles:
            return
        ious = rle_ious(list(gt_rles), list(det_rles))
        pairs = sorted(((ious[i, j], i, j) for i in range(len(gt_rles)) for j in range(len(det_rles))),
                       reverse=True)
        used_gt, used_det = set(), set()
        for iou, i, j in pairs:
            if iou < self.iou_thresh:
                break
            if i in used_gt or j in used_det:
                continue
            used_gt.add(i)
            used_det.add(j)
            self.matched += 1
            self.correct += int(det_sides[j] == gt_sides[i])

    def summary(self) -> Dict[str, float]:
        def ratio(a, b):
            return float(a) / b if b else float("nan")

        return {"side_accuracy": ratio(self.correct, self.matched), "hand_recall": ratio(self.matched, self.gt),
                "num_gt_hands": int(self.gt), "num_matched": int(self.matched)}
