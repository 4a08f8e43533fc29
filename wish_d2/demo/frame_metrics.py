"""Per-image scores of the demo: the in-hand IoU of one frame against its ground truth, per class and averaged."""
from collections import OrderedDict
from typing import Dict, Sequence, Tuple

import numpy as np

from wish_d2.evaluation.metrics import CLASS_NAMES, InHandIoU, gt_label_map, paint_label_map

__all__ = ["per_image_metrics"]


def per_image_metrics(pred_masks, pred_classes, pred_scores, annotations: Sequence[Dict], height: int,
                      width: int) -> Tuple["OrderedDict[str, object]", InHandIoU]:
    """-> (``{"E-mIoU", "IoU_<class>"...}`` over the classes present in prediction or ground truth, the frame's
    :class:`InHandIoU` accumulator, so the caller can also sum frames into a dataset-level score)."""
    pred_map = paint_label_map(pred_masks, pred_classes, pred_scores, height, width)
    gt_map = gt_label_map(annotations, height, width)
    acc = InHandIoU()
    acc.update(pred_map, gt_map)
    ious = {name: 100.0 * i / u
            for name, i, u in zip(CLASS_NAMES, acc.intersection.tolist(), acc.union.tolist()) if u > 0}
    metrics = OrderedDict()
    metrics["E-mIoU"] = float(np.mean(list(ious.values()))) if ious else "n/a (no object in GT or prediction)"
    for name, v in ious.items():
        metrics[f"IoU_{name}"] = float(v)
    return metrics, acc
