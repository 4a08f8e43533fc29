"""Calibration of the two further-object thresholds (``MODEL.WISH.MAX_OBJECTS_PER_HAND > 1``, docs/METHOD.md §14).

Each is calibrated after its stage's first threshold, which stays as it is, and the same way: ``val_labels`` grid-
searches validation E-mIoU, ``label_free`` takes Otsu's valley of the further candidates' scores (a hand's best
object after its first, among the objects no hand took), so real data needs no pixel label here either:

* pseudo-label threshold: Stage 1 scores of the further candidates, on VAL (``val_labels``) or TRAIN (label-free);
* contact threshold: ``sigmoid(c)`` of the further candidates of hands that kept a first object, on VAL.
"""
import logging
from typing import Optional

import numpy as np
import torch

from ..modeling.inference import select_in_hand, select_extra, select_per_hand
from ..modeling.losses import NEG
from ..modeling.pseudo_labels import assign_pseudo_labels
from .calibration import CONTACT_THRESHOLD_GRID, PSEUDO_THRESHOLD_QUANTILES, gt_label_map, grid_search, selection_emiou
from .data import dataset_dicts
from .label_free import otsu_threshold
from .scoring import pseudo_score_split, pseudo_selection, split_scores, unwrap_model

__all__ = ["calibrate_extra_pseudo_threshold", "calibrate_extra_contact_threshold"]

logger = logging.getLogger(__name__)


def _labels(scored, threshold: float, heads, extra_threshold: float):
    return [(i, assign_pseudo_labels(s, ov, pv, hp, threshold=threshold, both_rule=heads.both_rule,
                                     max_objects=heads.max_objects, extra_threshold=extra_threshold), rec)
            for i, s, ov, pv, hp, rec in scored]


def _candidates(labels) -> np.ndarray:
    """First-round further candidates' scores (the hands that accepted a first object and have one)."""
    return np.array([float(x) for _, lab, _ in labels if lab.extra_score is not None
                     for x in lab.extra_score[:, 0] if float(x) > NEG / 2], dtype=np.float64)


def calibrate_extra_pseudo_threshold(cfg, model, val_name: Optional[str], threshold: float) -> float:
    """The further-object pseudo-label threshold, the first one fixed at ``threshold``."""
    heads = unwrap_model(model).roi_heads
    if cfg.MODEL.WISH.CALIBRATION == "label_free":
        split = cfg.DATASETS.TRAIN[0]
        cands = _candidates(_labels(pseudo_score_split(cfg, model, split), threshold, heads, float("inf")))
        t = otsu_threshold(torch.from_numpy(cands))
        logger.info(f"label-free further-object pseudo-label threshold on {split} (Otsu over {len(cands)} "
                    f"candidates): {t:.4g}")
        return t
    scored = pseudo_score_split(cfg, model, val_name)
    gts = {str(d["image_id"]): gt_label_map(d) for d in dataset_dicts(val_name)}
    cands = _candidates(_labels(scored, threshold, heads, float("inf")))
    grid = list(np.unique(np.quantile(cands, PSEUDO_THRESHOLD_QUANTILES))) if len(cands) else []
    grid.append(float("inf"))  # "no further object" is always a candidate
    memo = {}

    def val_emiou(t):
        return selection_emiou(((pseudo_selection(lab), rec, gts[i]) for i, lab, rec in
                                _labels(scored, threshold, heads, t)), memo)["E-mIoU"]

    return grid_search(grid, val_emiou, "further-object pseudo-label threshold")


def calibrate_extra_contact_threshold(cfg, model, val_name: str, method: Optional[str] = None) -> float:
    """The further-object contact threshold, the model's first contact threshold fixed."""
    heads = unwrap_model(model).roi_heads
    rule = heads.selection_rule(method)
    theta = float(heads.contact_threshold)
    scores = split_scores(cfg, model, val_name)
    if cfg.MODEL.WISH.CALIBRATION == "label_free":
        first = {k: v for k, v in rule.items() if k not in ("max_objects", "extra_threshold")}
        probs = []
        for _, c, a, ov, hp, _ in scores:
            sel = select_per_hand(c[None], a[None], ov[None], hp[None], contact_threshold=theta, **first)
            _, p = select_extra(c[None], sel, ov[None], heads.max_objects, 0.0)
            probs += [float(x) for x in p[0, :, 0] if float(x) > 0]
        t = otsu_threshold(torch.tensor(probs, dtype=torch.float64))
        logger.info(f"label-free further-object contact threshold on {val_name} (Otsu over {len(probs)} "
                    f"candidates): {t:.4g}")
        return t
    gts = {str(d["image_id"]): gt_label_map(d) for d in dataset_dicts(val_name)}
    memo = {}

    def val_emiou(t):
        r = {**rule, "extra_threshold": t}
        return selection_emiou(((select_in_hand(c, a, ov, hp, contact_threshold=theta, **r), rec, gts[i])
                                for i, c, a, ov, hp, rec in scores), memo)["E-mIoU"]

    return grid_search(list(CONTACT_THRESHOLD_GRID) + [1.01], val_emiou, "further-object contact threshold")
