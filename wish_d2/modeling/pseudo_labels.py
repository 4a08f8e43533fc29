"""Stage 1 -> Stage 2 pseudo-labels under the one-object-per-hand prior, and threshold calibration (docs/METHOD.md §8).

For each visible hand s the candidate is the best (object i, phrase j) by ``s_{i,j,s}``; it is accepted when its score
clears a threshold calibrated on the VALIDATION split, otherwise the hand is "no contact".

Both-hands rule. The ``max_{i,s}`` aggregation of Stage 1 lets one hand win a phrase, so for an object held by both
hands the second hand's score often falls under the threshold. Rule: if hand s is accepted with object i*, and the
other hand's OWN best object is also i*, the other hand is accepted too (i* becomes a "both" object) provided its score
is at least ``threshold - both_margin``. The default ``both_margin = inf`` is the plain rule: agreement on the argmax is
the evidence, the score is not re-checked. A finite margin (e.g. 1.0 in units of cos/tau) makes the rule stricter.

Several objects per hand (``max_objects > 1``, ``MODEL.WISH.MAX_OBJECTS_PER_HAND``). Beyond its accepted object, a
hand takes further objects, one at a time, each the best (object, phrase) pair among the objects no hand has taken
and the phrases this hand has not used yet, while its score clears a second threshold (``extra_threshold``,
calibrated like the first). WHY a fresh phrase: a narration names each held object once ("take knife and
carrot"), and the pieces of one object (a split proposal) all score high against its noun, so only another noun is
evidence of another object. A hand stops at its first refusal. With ``max_objects = 1`` nothing of this runs.
"""
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import torch

from .losses import NEG

__all__ = ["PseudoLabels", "pseudo_labels_batched", "assign_pseudo_labels", "extra_pseudo_objects",
           "calibrate_threshold", "threshold_grid"]


@dataclass
class PseudoLabels:
    """Pseudo-labels of one image (tensors ``[2]``) or a batch (``[B, 2]``); hands ordered [left, right].

    obj_idx:       accepted object per hand, -1 = no contact / hand absent.
    score:         the hand's best score s_{i,j,s} (whether accepted or not; ``NEG`` when it has no candidate).
    phrase_idx:    phrase j of that best pair (-1 when no candidate).
    candidate_idx: the hand's best object BEFORE thresholding (-1 when no candidate); for calibration / analysis.
    via_both_rule: the hand was accepted only thanks to the both-hands rule.
    extra_idx:     ``[..., 2, K-1]`` further accepted objects per hand (-1 = none); ``None`` with one object per hand.
    extra_score:   ``[..., 2, K-1]`` the score of each further candidate, accepted or not (``NEG`` = none).
    """

    obj_idx: torch.Tensor
    score: torch.Tensor
    phrase_idx: torch.Tensor
    candidate_idx: torch.Tensor
    via_both_rule: torch.Tensor
    extra_idx: Optional[torch.Tensor] = None
    extra_score: Optional[torch.Tensor] = None

    @property
    def both(self) -> torch.Tensor:
        """``[...]`` bool: both hands hold the same accepted object."""
        return (self.obj_idx[..., 0] >= 0) & (self.obj_idx[..., 0] == self.obj_idx[..., 1])

    def __getitem__(self, b) -> "PseudoLabels":
        """Per-image view of a batched result."""
        return PseudoLabels(*(None if getattr(self, f) is None else getattr(self, f)[b]
                              for f in self.__dataclass_fields__))


def pseudo_labels_batched(
    scores: torch.Tensor,
    hand_present: torch.Tensor,
    threshold: float,
    obj_valid: Optional[torch.Tensor] = None,
    phrase_valid: Optional[torch.Tensor] = None,
    both_rule: bool = True,
    both_margin: float = math.inf,
    max_objects: int = 1,
    extra_threshold: float = math.inf,
) -> PseudoLabels:
    """Pseudo-labels for a batch from each image's scores against its own narration.

    Args:
        scores: ``[B, N, M, 2]`` = s_{i,j,s} (e.g. ``losses.own_narration_scores``).
            Pairs scored ``NEG`` (``losses.NEG``) are not candidates.
        hand_present: ``[B, 2]`` bool.
        threshold: accept a hand's best pair if its score >= threshold.
        obj_valid: ``[B, N]`` bool (default all valid); phrase_valid: ``[B, M]`` bool (default all valid).
        both_rule / both_margin: see the module docstring.
        max_objects / extra_threshold: further objects per hand (see the module docstring); 1 = none.
    """
    B, N, M, _ = scores.shape
    device = scores.device
    obj_valid = torch.ones((B, N), dtype=torch.bool, device=device) if obj_valid is None else obj_valid.bool()
    phrase_valid = torch.ones((B, M), dtype=torch.bool, device=device) if phrase_valid is None else phrase_valid.bool()
    present = hand_present.bool()
    minus1 = torch.full((B, 2), -1, dtype=torch.long, device=device)
    if N == 0 or M == 0:
        no = torch.zeros((B, 2), dtype=torch.bool, device=device)
        labels = PseudoLabels(minus1, torch.full((B, 2), NEG, device=device), minus1.clone(), minus1.clone(), no)
        if max_objects > 1:
            labels.extra_idx, labels.extra_score = extra_pseudo_objects(scores, labels, extra_threshold, max_objects)
        return labels

    s = scores.masked_fill(~phrase_valid[:, None, :, None], NEG)
    per_obj, per_obj_phrase = s.max(dim=2)  # [B, N, 2]: best phrase for each (object, hand)
    per_obj = per_obj.masked_fill(~obj_valid[:, :, None], NEG)
    score, cand = per_obj.max(dim=1)  # [B, 2]
    phrase = per_obj_phrase.gather(1, cand[:, None, :]).squeeze(1)

    has = present & obj_valid.any(dim=1)[:, None] & phrase_valid.any(dim=1)[:, None]
    has = has & (score > NEG / 2)  # a hand whose every pair was masked out (scores at NEG) has no candidate
    score = torch.where(has, score, torch.full_like(score, NEG))
    accept = has & (score >= threshold)
    extra = torch.zeros_like(accept)
    if both_rule:
        other_accept, other_cand = accept.flip(-1), cand.flip(-1)
        extra = has & ~accept & other_accept & (cand == other_cand) & (score >= threshold - both_margin)
    accept = accept | extra
    labels = PseudoLabels(
        obj_idx=torch.where(accept, cand, minus1),
        score=score,
        phrase_idx=torch.where(has, phrase, minus1),
        candidate_idx=torch.where(has, cand, minus1),
        via_both_rule=extra,
    )
    if max_objects > 1:
        labels.extra_idx, labels.extra_score = extra_pseudo_objects(
            scores, labels, extra_threshold, max_objects, obj_valid, phrase_valid)
    return labels


def extra_pseudo_objects(
    scores: torch.Tensor,
    labels: PseudoLabels,
    threshold: float,
    max_objects: int,
    obj_valid: Optional[torch.Tensor] = None,
    phrase_valid: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each hand's further objects beyond its accepted one (module docstring): ``(extra_idx, extra_score)``, both
    ``[B, 2, max_objects - 1]``; ``extra_idx`` -1 where none is accepted, ``extra_score`` the candidate's score
    (``NEG`` where the hand has none). ``scores [B, N, M, 2]``; ``labels`` the batch's first objects."""
    B, N, M, _ = scores.shape
    E = max(0, int(max_objects) - 1)
    device = scores.device
    idx = torch.full((B, 2, E), -1, dtype=torch.long, device=device)
    best_scores = torch.full((B, 2, E), NEG, dtype=scores.dtype, device=device)
    if E == 0 or N == 0 or M == 0:
        return idx, best_scores
    obj_valid = torch.ones((B, N), dtype=torch.bool, device=device) if obj_valid is None else obj_valid.bool()
    phrase_valid = torch.ones((B, M), dtype=torch.bool, device=device) if phrase_valid is None else phrase_valid.bool()
    s = scores.masked_fill(~phrase_valid[:, None, :, None], NEG).masked_fill(~obj_valid[:, :, None, None], NEG)
    rows = torch.arange(B, device=device)
    taken = torch.zeros((B, N), dtype=torch.bool, device=device)
    used = torch.zeros((B, M, 2), dtype=torch.bool, device=device)  # phrases each hand has grounded
    active = labels.obj_idx >= 0
    for h in (0, 1):
        on = active[:, h]
        taken[rows[on], labels.obj_idx[on, h]] = True
        said = on & (labels.phrase_idx[:, h] >= 0)
        used[rows[said], labels.phrase_idx[said, h], h] = True
    for k in range(E):
        for h in (0, 1):
            sh = s[..., h].masked_fill(taken[:, :, None], NEG).masked_fill(used[:, None, :, h], NEG)
            best, arg = sh.reshape(B, N * M).max(dim=1)
            i, j = arg // M, arg % M
            has = active[:, h] & (best > NEG / 2)
            best_scores[:, h, k] = torch.where(has, best, torch.full_like(best, NEG))
            acc = has & (best >= threshold)
            idx[:, h, k] = torch.where(acc, i, torch.full_like(i, -1))
            taken[rows[acc], i[acc]] = True
            used[rows[acc], j[acc], h] = True
            active[:, h] = acc  # a hand stops at its first refusal
    return idx, best_scores


def assign_pseudo_labels(
    scores: torch.Tensor,
    obj_valid: torch.Tensor,
    phrase_valid: torch.Tensor,
    hand_present: torch.Tensor,
    threshold: float,
    both_rule: bool = True,
    both_margin: float = math.inf,
    max_objects: int = 1,
    extra_threshold: float = math.inf,
) -> PseudoLabels:
    """One image: ``scores [N, M, 2]``, ``obj_valid [N]``, ``phrase_valid [M]``, ``hand_present [2]`` ->
    ``PseudoLabels`` with ``[2]`` tensors (same rule as ``pseudo_labels_batched``)."""
    out = pseudo_labels_batched(
        scores[None], hand_present[None], threshold, obj_valid[None], phrase_valid[None], both_rule, both_margin,
        max_objects, extra_threshold,
    )
    return out[0]


def threshold_grid(candidate_scores: torch.Tensor, max_points: int = 201) -> torch.Tensor:
    """Candidate thresholds: midpoints between consecutive distinct scores, plus one below and one above all."""
    s = torch.as_tensor(candidate_scores, dtype=torch.float64).flatten()
    s = torch.unique(s[torch.isfinite(s) & (s > NEG / 2)])
    if s.numel() == 0:
        return torch.zeros(1, dtype=torch.float64)
    if s.numel() > max_points:
        s = torch.quantile(s, torch.linspace(0, 1, max_points, dtype=torch.float64))
    mids = (s[1:] + s[:-1]) / 2
    return torch.cat([s[:1] - 1.0, mids, s[-1:] + 1.0])


def calibrate_threshold(
    candidate_scores: torch.Tensor,
    correct: Optional[torch.Tensor] = None,
    objective: Optional[Callable[[float], float]] = None,
    grid: Optional[Sequence[float]] = None,
    metric: str = "accuracy",
) -> Tuple[float, float]:
    """Choose a threshold on the VALIDATION split (never test): returns ``(threshold, objective value)``.

    Two ways to say what is good:
      * ``correct [K]`` bool per candidate (a hand's best pair): True when accepting it would be right (e.g. its object
        matches the hand's ground-truth object), False when rejecting is right. ``metric`` over the accept decision
        ``score >= t``: "accuracy" (default), "balanced_accuracy" or "f1" (of accepting). Vectorised over the grid.
      * ``objective(t) -> float`` (higher is better), e.g. E-mIoU of the pseudo-labels on the validation frames.
    The grid defaults to ``threshold_grid(candidate_scores)``. Ties pick the middle of the best thresholds.
    """
    grid_t = threshold_grid(candidate_scores) if grid is None else torch.as_tensor(grid, dtype=torch.float64)
    if objective is not None:
        values = torch.tensor([float(objective(float(t))) for t in grid_t], dtype=torch.float64)
    elif correct is not None:
        s = torch.as_tensor(candidate_scores, dtype=torch.float64).flatten()
        c = torch.as_tensor(correct).flatten().bool()
        if s.numel() != c.numel():
            raise ValueError(f"{s.numel()} scores but {c.numel()} correctness flags")
        acc = s[None, :] >= grid_t[:, None]  # [T, K]
        tp = (acc & c).sum(1).double()
        tn = (~acc & ~c).sum(1).double()
        fp = (acc & ~c).sum(1).double()
        fn = (~acc & c).sum(1).double()
        if metric == "accuracy":
            values = (tp + tn) / max(1, s.numel())
        elif metric == "balanced_accuracy":
            values = 0.5 * (tp / (tp + fn).clamp_min(1) + tn / (tn + fp).clamp_min(1))
        elif metric == "f1":
            values = 2 * tp / (2 * tp + fp + fn).clamp_min(1)
        else:
            raise ValueError(f"unknown metric {metric!r}: accuracy | balanced_accuracy | f1")
    else:
        raise ValueError("calibrate_threshold needs `correct` flags or an `objective` callable")
    best = values.max()
    ties = torch.nonzero(values >= best - 1e-12).flatten()
    k = int(ties[len(ties) // 2])
    return float(grid_t[k]), float(values[k])
