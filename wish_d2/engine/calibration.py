"""Threshold calibration on the validation split (never the test split), and E-mIoU of any selection rule.

Both WISH thresholds (the Stage 1 pseudo-label score threshold and the Stage 2 contactness threshold) are chosen
by a grid search that maximises validation E-mIoU against the validation ground truth, or, with
``MODEL.WISH.CALIBRATION "label_free"``, without any label (:mod:`.label_free`). The scores come from
:mod:`.scoring`, computed once per split; each grid point only re-applies a threshold.
"""
import logging
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..evaluation import metrics
from ..evaluation.metrics import InHandIoU, paint_label_map
from ..modeling.inference import select_in_hand
from ..modeling.pseudo_labels import assign_pseudo_labels
from ..utils.masks import decode_rles
from .data import dataset_dicts
from .label_free import label_free_contact_threshold, label_free_pseudo_threshold
from .scoring import pseudo_score_split, pseudo_selection, split_scores, unwrap_model

logger = logging.getLogger(__name__)
# Contactness thresholds tried on val: probabilities, evenly spaced, leaving out the degenerate 0 and 1.
CONTACT_THRESHOLD_GRID = np.linspace(0.05, 0.95, 19)
# Pseudo-label thresholds tried on val: these quantiles of each visible hand's best Stage 1 score (scores are
# cos/tau, unbounded, so the grid follows their distribution; 0.95 keeps at least 5 % of the hands).
PSEUDO_THRESHOLD_QUANTILES = np.linspace(0.0, 0.95, 20)
Selection = List[Tuple[int, int, float]]  # (proposal index, class id, score) per kept instance


def gt_label_map(d: Dict) -> torch.Tensor:
    """Ground-truth label map of a dataset dict."""
    return metrics.gt_label_map(d.get("annotations"), d["height"], d["width"])


def pred_label_map(selection: Selection, record: Dict, memo: Optional[Dict] = None) -> torch.Tensor:
    """Label map of a selection. ``memo`` (a dict kept across calls) stores the decoded masks of the proposals that
    some selection used, so a threshold grid search decodes each of them once instead of once per grid point, and
    never holds the masks no grid point selects (most of an image's proposals)."""
    h, w = record["height"], record["width"]
    idx = [i for i, _, _ in selection]
    if memo is None:
        masks = decode_rles([record["proposal_rles"][i] for i in idx], h, w)
    else:
        key = str(record["image_id"])
        missing = sorted({i for i in idx if (key, i) not in memo})
        for i, m in zip(missing, decode_rles([record["proposal_rles"][i] for i in missing], h, w)):
            memo[(key, i)] = m
        masks = torch.stack([memo[(key, i)] for i in idx]) if idx else decode_rles([], h, w)
    return paint_label_map(masks, [c for _, c, _ in selection], [s for _, _, s in selection], h, w)


def selection_emiou(pairs: Iterable[Tuple[Selection, Dict, torch.Tensor]], memo: Optional[Dict] = None
                    ) -> Dict[str, float]:
    """E-mIoU of (selection, record, gt_map) triples (``memo``: see :func:`pred_label_map`)."""
    acc = InHandIoU()
    for selection, record, gt in pairs:
        acc.update(pred_label_map(selection, record, memo), gt)
    return acc.compute()


def grid_search(candidates: Sequence[float], evaluate: Callable[[float], float], what: str) -> float:
    """The candidate with the best ``evaluate`` (ties: the first), logged as a small table."""
    results = [(float(t), evaluate(float(t))) for t in candidates]
    best_t, best_v = max(results, key=lambda r: r[1])
    logger.info(f"calibrated {what} on val: {best_t:.4g} (val E-mIoU {best_v:.2f}); grid: "
                + ", ".join(f"{t:.3g}:{v:.1f}" for t, v in results))
    return best_t


def calibrate_pseudo_threshold(cfg, model, val_name: str) -> float:
    """The Stage 1 pseudo-label threshold: the best of quantiles of each visible hand's best score on val."""
    heads = unwrap_model(model).roi_heads
    if cfg.MODEL.WISH.CALIBRATION == "label_free":  # no pixel label: Otsu on the train split's Stage 1 scores
        return label_free_pseudo_threshold(cfg, model, cfg.DATASETS.TRAIN[0], both_rule=heads.both_rule)
    gts = {str(d["image_id"]): gt_label_map(d) for d in dataset_dicts(val_name)}
    scored = pseudo_score_split(cfg, model, val_name)
    memo = {}

    def labels_at(t):
        return [(i, assign_pseudo_labels(s, ov, pv, hp, threshold=t, both_rule=heads.both_rule), rec)
                for i, s, ov, pv, hp, rec in scored]

    probe = labels_at(-1e9)  # every visible hand's best, unthresholded
    best = [float(s) for _, lab, _ in probe for o, s in zip(lab.obj_idx, lab.score) if int(o) >= 0]
    candidates = np.unique(np.quantile(best, PSEUDO_THRESHOLD_QUANTILES)) if best else [0.0]

    def val_emiou(t):
        return selection_emiou(((pseudo_selection(lab), rec, gts[i]) for i, lab, rec in labels_at(t)),
                               memo)["E-mIoU"]

    return grid_search(candidates, val_emiou, "pseudo-label threshold")


def calibrate_contact_threshold(cfg, model, val_name: str, method: Optional[str] = None) -> float:
    """The Stage 2 contactness threshold of ``method`` (default: the model's) on :data:`CONTACT_THRESHOLD_GRID`."""
    if cfg.MODEL.WISH.CALIBRATION == "label_free":  # no pixel label: Otsu on the split's Stage 2 probabilities
        return label_free_contact_threshold(cfg, model, [val_name], method)
    heads = unwrap_model(model).roi_heads
    method = method or heads.method
    gts = {str(d["image_id"]): gt_label_map(d) for d in dataset_dicts(val_name)}
    scores = split_scores(cfg, model, val_name)
    rule = {**heads.selection_rule(method), "max_objects": 1}  # the first object's threshold, alone
    memo = {}

    def val_emiou(t):
        return selection_emiou(
            ((select_in_hand(c, a, ov, hp, contact_threshold=t, **rule), rec, gts[i])
             for i, c, a, ov, hp, rec in scores), memo)["E-mIoU"]

    return grid_search(CONTACT_THRESHOLD_GRID, val_emiou, f"contact threshold ({method})")
