"""In-hand metrics on two subsets of a split: frames where every hand holds at most one object (``single``) and
frames where a hand holds two or more (``multi``), from a COCO results export and the split's dataset dicts.
WHY: the overall E-mIoU of a benchmark where few frames have a multi-object grip hides what a second object per
hand changes; the two subsets show the gain where it is expected and the cost where it is not.
Plain numpy / pycocotools / torch (the core's :class:`.metrics.InHandIoU`)."""
from collections import defaultdict
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util

from ..classes import CLASS_BOTH, CLASS_LEFT, CLASS_RIGHT
from .metrics import InHandIoU, gt_label_map, paint_label_map

__all__ = ["SUBSETS", "objects_per_hand", "frame_subset", "has_multi_object_frames", "subset_metrics"]

SUBSETS = ("single", "multi")


def objects_per_hand(annotations: Iterable[Mapping]) -> Tuple[int, int]:
    """(left, right): the ground-truth objects each hand holds (a "both" object counts for each hand)."""
    left = right = 0
    for a in annotations or ():
        c = int(a["category_id"])
        left += c in (CLASS_LEFT, CLASS_BOTH)
        right += c in (CLASS_RIGHT, CLASS_BOTH)
    return left, right


def frame_subset(annotations: Iterable[Mapping]) -> str:
    """``"multi"`` if a hand holds two or more objects, else ``"single"``."""
    return "multi" if max(objects_per_hand(annotations)) >= 2 else "single"


def has_multi_object_frames(dicts: Sequence[Mapping]) -> bool:
    return any(frame_subset(d.get("annotations")) == "multi" for d in dicts)


def _decode(segm: Mapping, h: int, w: int) -> np.ndarray:
    rle = {"size": list(segm["size"]), "counts": segm["counts"].encode("ascii") if isinstance(segm["counts"], str)
           else segm["counts"]}
    if tuple(rle["size"]) != (h, w):
        raise ValueError(f"a predicted mask is {tuple(rle['size'])}, its image is ({h}, {w})")
    return mask_util.decode(rle).astype(bool)


def subset_metrics(predictions: Sequence[Mapping], dicts: Sequence[Mapping]) -> Dict[str, Dict[str, float]]:
    """``{"single": {...}, "multi": {...}}`` with ``E-mIoU``, ``IoU_left``, ``IoU_right``, ``IoU_both`` and
    ``frames`` of each subset. ``predictions``: COCO result entries with contiguous class ids (0 left, 1 right,
    2 both), as ``inhand_predictions_coco.json`` holds them for the synthetic and VISOR splits."""
    by_image: Dict[str, List[Mapping]] = defaultdict(list)
    for p in predictions:
        by_image[str(p["image_id"])].append(p)
    acc = {s: InHandIoU() for s in SUBSETS}
    frames = {s: 0 for s in SUBSETS}
    for d in dicts:
        h, w = int(d["height"]), int(d["width"])
        preds = by_image.get(str(d["image_id"]), [])
        masks = np.stack([_decode(p["segmentation"], h, w) for p in preds]) if preds else np.zeros((0, h, w), bool)
        pred = paint_label_map(masks, [int(p["category_id"]) for p in preds], [float(p["score"]) for p in preds],
                               h, w)
        subset = frame_subset(d.get("annotations"))
        acc[subset].update(pred, gt_label_map(d.get("annotations"), h, w))
        frames[subset] += 1
    return {s: {**acc[s].compute(), "frames": frames[s]} for s in SUBSETS}
