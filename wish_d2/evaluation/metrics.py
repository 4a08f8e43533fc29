"""In-hand segmentation metrics (core: plain torch/numpy, no Detectron2).

E-mIoU follows EgoHOS's dataset-level mIoU (docs/METHOD.md):

1. Predictions and ground truth are painted into per-image label maps with
   ``0`` background, ``1`` left-hand object, ``2`` right-hand object, ``3`` both-hands object
   (:func:`paint_label_map`; instance class ids are ``0 left, 1 right, 2 both``, so label = class + 1).
2. Intersection and union of every class 1..3 are summed over the whole dataset (:class:`InHandIoU`).
3. ``IoU_c = ΣI_c / ΣU_c`` and ``E-mIoU`` is the mean of the per-class IoUs, all in percent.

A class whose union is zero over the whole dataset (neither ground truth nor prediction ever paints it) has no
defined IoU. It is **excluded** from the mean and its ``IoU_<name>`` key is **absent** from the result, with a logged
warning; nothing is reported as NaN. If no class has a union (an empty evaluation), ``E-mIoU`` is absent as well.
(Absent rather than ``None``: Detectron2's ``EvalHook`` casts every reported metric to ``float``.)
"""
import logging
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

from ..utils.masks import segmentation_to_mask
from ..classes import CLASS_NAMES

__all__ = [
    "CLASS_NAMES",
    "NUM_LABELS",
    "paint_label_map",
    "gt_label_map",
    "InHandIoU",
    "hand_side_accuracy",
]

logger = logging.getLogger(__name__)

#: Number of label-map values: the class ids + 1, and 0 for background.
NUM_LABELS = len(CLASS_NAMES) + 1

ArrayLike = Union[torch.Tensor, np.ndarray]


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    return torch.as_tensor(np.asarray(x))


def paint_label_map(
    masks: ArrayLike,
    classes: ArrayLike,
    scores: Optional[ArrayLike],
    height: int,
    width: int,
) -> torch.Tensor:
    """Paint instance masks into one ``uint8 [height, width]`` label map.

    Args:
        masks: ``[K, H, W]`` bool (non-bool masks are thresholded at 0.5), torch or numpy; ``K`` may be 0.
        classes: ``[K]`` instance class ids, 0 left, 1 right, 2 both.
        scores: ``[K]`` confidences, or ``None`` (ground truth).
        height, width: size of the map; the masks must have this size.

    Returns:
        ``torch.uint8 [height, width]`` with 0 background, 1 left-hand object, 2 right-hand object,
        3 both-hands object.

    Overlaps: instances are painted in increasing score order, so where masks overlap the pixel takes the class of
    the highest-scoring instance. Equal scores (and ``scores=None``) keep the given order: a later instance is painted
    over an earlier one.
    """
    masks = _as_tensor(masks)
    classes = _as_tensor(classes).reshape(-1).long()
    out = torch.zeros((height, width), dtype=torch.uint8)
    k = int(classes.numel())
    if masks.numel() == 0 and k == 0:
        return out
    if masks.dim() != 3 or masks.shape[0] != k:
        raise ValueError(f"masks must be [K, H, W] with K={k} (len(classes)); got {tuple(masks.shape)}")
    if tuple(masks.shape[1:]) != (height, width):
        raise ValueError(f"masks are {tuple(masks.shape[1:])}, expected the map size ({height}, {width})")
    if k and (int(classes.min()) < 0 or int(classes.max()) >= len(CLASS_NAMES)):
        raise ValueError(f"class ids must be in [0, {len(CLASS_NAMES) - 1}], got {classes.tolist()}")
    if masks.dtype != torch.bool:
        masks = masks.float() >= 0.5
    if scores is not None:
        scores = _as_tensor(scores).reshape(-1).float()
        if scores.numel() != k:
            raise ValueError(f"scores has {scores.numel()} entries for {k} masks")
        order = torch.sort(scores, stable=True).indices.tolist()
    else:
        order = range(k)
    labels = (classes + 1).to(torch.uint8)
    for i in order:
        out[masks[i]] = labels[i]
    return out


def gt_label_map(annotations: Optional[Sequence[Dict]], height: int, width: int) -> torch.Tensor:
    """Ground-truth ``uint8 [height, width]`` label map of dataset-dict ``annotations``
    (see :func:`paint_label_map`)."""
    anns = list(annotations or [])
    if not anns:
        return torch.zeros((height, width), dtype=torch.uint8)
    masks = torch.stack([torch.from_numpy(segmentation_to_mask(a["segmentation"], height, width)) for a in anns])
    classes = torch.tensor([int(a["category_id"]) for a in anns], dtype=torch.long)
    return paint_label_map(masks, classes, None, height, width)


class InHandIoU:
    """Dataset-level accumulator of per-class intersection and union (EgoHOS-style mIoU).

    The state is the ``int64 [4, 4]`` confusion matrix ``C[gt, pred]`` over label-map values 0..3 (pixel counts).
    For class ``c`` in 1..3: ``I_c = C[c, c]`` and ``U_c = ΣC[c, :] + ΣC[:, c] - C[c, c]``. The matrix also shows
    left/right swaps. For distributed evaluation, sum :meth:`state` tensors across processes (``all_reduce`` or
    gather + :meth:`merge`) and :meth:`compute` once.
    """

    def __init__(self):
        self.confusion = torch.zeros((NUM_LABELS, NUM_LABELS), dtype=torch.int64)

    def reset(self) -> None:
        self.confusion.zero_()

    def update(self, pred_map: ArrayLike, gt_map: ArrayLike) -> None:
        """Add one label map (or a batch ``[B, H, W]``) of predictions and ground truth with equal shapes."""
        pred = _as_tensor(pred_map).long()
        gt = _as_tensor(gt_map).long()
        if pred.shape != gt.shape:
            raise ValueError(f"pred_map {tuple(pred.shape)} and gt_map {tuple(gt.shape)} differ in shape")
        if pred.numel() == 0:
            return
        for name, m in (("pred_map", pred), ("gt_map", gt)):
            lo, hi = int(m.min()), int(m.max())
            if lo < 0 or hi >= NUM_LABELS:
                raise ValueError(f"{name} values must be in [0, {NUM_LABELS - 1}], got range [{lo}, {hi}]")
        counts = torch.bincount((gt * NUM_LABELS + pred).reshape(-1), minlength=NUM_LABELS * NUM_LABELS)
        self.confusion += counts.reshape(NUM_LABELS, NUM_LABELS)

    # ---- state for distributed reduction -------------------------------------------------------------------
    def state(self) -> torch.Tensor:
        """A copy of the ``int64 [4, 4]`` state; summing states of several accumulators merges them."""
        return self.confusion.clone()

    def load_state(self, state: torch.Tensor) -> None:
        self.confusion = _as_tensor(state).to(torch.int64).reshape(NUM_LABELS, NUM_LABELS).clone()

    def merge(self, other: Union["InHandIoU", torch.Tensor]) -> "InHandIoU":
        """Add another accumulator (or its :meth:`state` tensor) into this one; returns ``self``."""
        state = other.confusion if isinstance(other, InHandIoU) else _as_tensor(other)
        self.confusion += state.to(torch.int64).reshape(NUM_LABELS, NUM_LABELS)
        return self

    # ---- results ---------------------------------------------------------------------------------------------
    @property
    def intersection(self) -> torch.Tensor:
        """``int64 [3]``: summed intersections of classes left, right, both."""
        return torch.diagonal(self.confusion)[1:].clone()

    @property
    def union(self) -> torch.Tensor:
        """``int64 [3]``: summed unions of classes left, right, both."""
        c = self.confusion
        return (c.sum(dim=1) + c.sum(dim=0) - torch.diagonal(c))[1:]

    def compute(self) -> Dict[str, float]:
        """``{"E-mIoU", "IoU_left", "IoU_right", "IoU_both"}`` in percent.

        Classes with zero union over the dataset are left out of the mean and their key is absent (warning logged);
        ``E-mIoU`` is absent when no class has a union.
        """
        inter, union = self.intersection.tolist(), self.union.tolist()
        per_class = {}
        missing = []
        for name, i, u in zip(CLASS_NAMES, inter, union):
            if u > 0:
                per_class[name] = 100.0 * i / u
            else:
                missing.append(name)
        if missing:
            logger.warning(
                "E-mIoU: class(es) %s have no ground truth and no prediction in the whole evaluation; "
                "their IoU is undefined, not reported, and excluded from the mean.",
                missing,
            )
        results = {}
        if per_class:
            results["E-mIoU"] = float(sum(per_class.values()) / len(per_class))
        for name in CLASS_NAMES:
            if name in per_class:
                results[f"IoU_{name}"] = float(per_class[name])
        return results


def hand_side_accuracy(pred_sides: Sequence, gt_sides: Sequence) -> Optional[float]:
    """Percent of hands whose predicted side equals the ground-truth side.

    Sides are compared as given (``"left"``/``"right"`` strings are compared case-insensitively; ints as ints).
    Returns ``None`` when there is nothing to compare (no ground-truth sides): an accuracy over zero hands is
    undefined, and callers should leave the metric out.
    """
    pred_sides, gt_sides = list(pred_sides), list(gt_sides)
    if len(pred_sides) != len(gt_sides):
        raise ValueError(f"{len(pred_sides)} predicted sides for {len(gt_sides)} ground-truth sides")
    if not gt_sides:
        return None

    def norm(s):
        return s.strip().lower() if isinstance(s, str) else int(s)

    correct = sum(norm(p) == norm(g) for p, g in zip(pred_sides, gt_sides))
    return 100.0 * correct / len(gt_sides)
