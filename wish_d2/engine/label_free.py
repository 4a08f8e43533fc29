"""Label-free calibration of WISH's two thresholds (``MODEL.WISH.CALIBRATION "label_free"``, docs/METHOD.md §11).

NS-iHOS allows no pixel label, so neither threshold may be grid-searched on ground-truth masks. Both decide the same
thing, "does this hand hold the object it scores best", and both scores are bimodal over hands: a hand whose
narrated object is in view scores high in Stage 1, a free hand scores low; after Stage 2 the fused probability
separates the same two groups. The threshold is the valley between the two modes, by Otsu's criterion (the cut
that maximises the between-class variance of the scores), computed on each visible hand's best score:

* pseudo-label threshold: Stage 1 best-pair scores ``s_{i,j,s}`` on the TRAIN split (the frames being labelled);
* contact threshold: the per-hand probability the inference rule thresholds, on the VAL split's images if there is
  one (held out from Stage 2's training, so not over-confident), else on TRAIN. No annotation is read.

The core (:func:`otsu_threshold`) is plain torch; the rest is thin glue over the scoring passes of :mod:`.scoring`.
"""
import logging
from typing import Optional, Sequence

import torch

from ..modeling.inference import select_per_hand
from ..modeling.pseudo_labels import assign_pseudo_labels
from .scoring import pseudo_score_split, split_scores, unwrap_model

__all__ = ["OTSU_BINS", "otsu_threshold", "label_free_pseudo_threshold", "label_free_contact_threshold"]

logger = logging.getLogger(__name__)
OTSU_BINS = 256  # histogram bins over the scores' range (Otsu's usual resolution)


def otsu_threshold(scores: torch.Tensor, bins: int = OTSU_BINS) -> float:
    """Otsu's threshold of 1-D ``scores``: the bin edge that maximises the between-class variance
    ``w0 w1 (mu0 - mu1)^2``; values ``>=`` it form the upper class. Non-finite scores are ignored. Degenerate inputs
    have no valley: no scores gives ``0.0``, identical scores give that value (everything accepted)."""
    x = scores.detach().flatten().double()
    x = x[torch.isfinite(x)]
    if x.numel() == 0:
        logger.warning("label-free threshold: no finite scores; using 0.0")
        return 0.0
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return lo
    hist = torch.histc(x, bins=bins, min=lo, max=hi)
    p = hist / hist.sum()
    centres = lo + (torch.arange(bins, dtype=torch.float64) + 0.5) * (hi - lo) / bins
    w0 = torch.cumsum(p, 0)[:-1]  # class 0 = bins 0..k, cut after bin k
    m0 = torch.cumsum(p * centres, 0)[:-1]
    w1 = 1.0 - w0
    mu_t = (p * centres).sum()
    between = (mu_t * w0 - m0) ** 2 / (w0 * w1).clamp_min(1e-12)
    between = torch.where((w0 > 0) & (w1 > 0), between, torch.full_like(between, -1.0))
    k = int(torch.argmax(between))
    return lo + (k + 1) * (hi - lo) / bins


def _log(what: str, scores: torch.Tensor, t: float, split: str) -> None:
    acc = float((scores >= t).double().mean()) if scores.numel() else 0.0
    logger.info(f"label-free {what} on {split} (Otsu over {scores.numel()} hands): {t:.4g}; "
                f"{100 * acc:.1f}% of the hands accepted")


def label_free_pseudo_threshold(cfg, model, split: str, both_rule: bool = True) -> float:
    """Otsu over each visible hand's best Stage 1 score on ``split`` (no annotation read)."""
    best = []
    for _, s, ov, pv, hp, _ in pseudo_score_split(cfg, model, split):
        lab = assign_pseudo_labels(s, ov, pv, hp, threshold=-1e9, both_rule=both_rule)
        best += [float(sc) for o, sc in zip(lab.obj_idx, lab.score) if int(o) >= 0]
    scores = torch.tensor(best, dtype=torch.float64)
    t = otsu_threshold(scores)
    _log("pseudo-label threshold", scores, t, split)
    return t


def label_free_contact_threshold(cfg, model, splits: Sequence[str], method: Optional[str] = None) -> float:
    """Otsu over the per-hand probability the inference rule thresholds, on the first of ``splits`` (no annotation
    read)."""
    heads = unwrap_model(model).roi_heads
    rule = heads.selection_rule(method)
    split = splits[0]
    probs = []
    for _, c, a, ov, hp, _ in split_scores(cfg, model, split):
        first = {k: v for k, v in rule.items() if k not in ("max_objects", "extra_threshold")}  # first objects
        sel = select_per_hand(c[None], a[None], ov[None], hp[None], contact_threshold=0.0,
                              **{**first, "both_rule": False})
        probs += [float(p) for o, p in zip(sel.obj_idx[0], sel.prob[0]) if int(o) >= 0]
    scores = torch.tensor(probs, dtype=torch.float64)
    t = otsu_threshold(scores)
    _log(f"contact threshold ({method or heads.method})", scores, t, split)
    return t
