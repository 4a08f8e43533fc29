"""Inference rule: from Stage 2 head outputs to at most one object per hand, class left / right / both
(docs/METHOD.md §10).

Rules (``method``, one of :data:`INFERENCE_RULES`):
  * "wish": both heads. ``fusion="product"`` (default) uses the fused probability
    ``q_{i,s} = sqrt(sigmoid(c_{i,s}) * softmax_i(a_{i,s}))`` for both decisions: ``i* = argmax_i q`` and keep it if
    ``q_{i*,s} >= theta``. ``fusion="chain"`` is the paper's literal rule: ``i* = argmax_i a``, then a threshold on
    ``sigmoid(c)``. Chaining lets a matching head trained on noisy pseudo-labels pick the object on its own, and
    thresholding ``c`` alone after the product argmax leaves the matching head nearly idle; thresholding ``q`` lets
    both heads vote on "held or not" too (measurements in docs/RESULTS.md). Both rules are kept so the ablation can
    show it.
  * "matching_only": ``i* = argmax_i a``, always kept.
  * "contactness_only": ``i* = argmax_i c``, kept if ``sigmoid(c) >= theta``.

Combination: the same object kept by both hands is ONE "both" instance. Both-hands rule at inference (mirrors the
pseudo-label rule): if hand s keeps i*, and the other hand's own selected object (under the same method) is also i*
but failed theta, the other hand is accepted too and i* becomes "both". Switch it off with ``both_rule=False``.

Matching probabilities: ``softmax_i(a)`` over the valid objects, or, with ``null_class=True`` (a matching head
trained with a "no object" option, see ``losses.matching_loss``), the softmax over objects and "no object",
restricted to the objects: then ``softmax(a)_i`` is an absolute probability that the hand holds i.

Several objects per hand (``max_objects > 1``, ``MODEL.WISH.MAX_OBJECTS_PER_HAND``): the rule above picks a hand's
first object; contactness then admits further ones, one at a time, each the object of highest ``sigmoid(c)`` that
no hand has taken, while it clears ``extra_threshold`` (calibrated like theta). A hand without a kept first object
takes none. Each further object is an instance of its hand's class, so the hand's class covers the union of its
masks. "matching_only" has no contactness and keeps one object. With ``max_objects = 1`` nothing of this runs.

Score of an instance = mean of the contributing hands' probabilities, where a hand's probability is the value its
keep decision thresholds: ``q`` for "wish"/product, ``sigmoid(c)`` for "wish"/chain and "contactness_only", and
``softmax_i(a)_{i*}`` for "matching_only" (always kept).
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from ..classes import CLASS_BOTH
from .losses import NEG, null_padded_logits

__all__ = ["INFERENCE_RULES", "FUSIONS", "HandSelection", "select_per_hand", "select_extra", "combine_hands",
           "select_in_hand"]

#: The selection rules of trained heads (the training-free baselines reuse "matching_only").
INFERENCE_RULES = ("wish", "matching_only", "contactness_only")
#: How "wish" fuses its two heads (``MODEL.WISH.INFERENCE.FUSION``).
FUSIONS = ("product", "chain")


@dataclass
class HandSelection:
    """Per-hand decisions for a batch, tensors ``[B, 2]`` (hands [left, right]).

    obj_idx: selected object (-1 when the hand is absent or there is no valid object); keep: whether it is kept;
    prob: the hand's probability for its selected object; via_both_rule: kept only thanks to the both-hands rule.
    """

    obj_idx: torch.Tensor
    keep: torch.Tensor
    prob: torch.Tensor
    via_both_rule: torch.Tensor


def select_per_hand(
    contact_logits: torch.Tensor,
    match_logits: torch.Tensor,
    obj_valid: torch.Tensor,
    hand_present: torch.Tensor,
    method: str = "wish",
    contact_threshold: float = 0.5,
    fusion: str = "product",
    both_rule: bool = True,
    null_class: bool = False,
) -> HandSelection:
    """Batched per-hand selection: ``[B, N, 2]`` logits, ``obj_valid [B, N]``, ``hand_present [B, 2]``."""
    if method not in INFERENCE_RULES:
        raise ValueError(f"unknown inference method {method!r}; expected one of {INFERENCE_RULES}")
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; expected one of {FUSIONS}")
    B, N, _ = contact_logits.shape
    device = contact_logits.device
    valid = obj_valid.bool()[:, :, None].expand(B, N, 2)
    has = hand_present.bool() & obj_valid.bool().any(dim=1)[:, None]  # [B, 2]
    if N == 0:
        z = torch.zeros((B, 2), dtype=torch.bool, device=device)
        return HandSelection(torch.full((B, 2), -1, dtype=torch.long, device=device), z, z.float(), z.clone())

    c = torch.sigmoid(contact_logits.float()).masked_fill(~valid, 0.0)
    if null_class:
        a = torch.softmax(null_padded_logits(match_logits.float(), obj_valid), dim=1)[:, :N]
    else:
        a = torch.softmax(match_logits.float().masked_fill(~valid, NEG), dim=1)
    a = a.masked_fill(~valid, 0.0)
    fused = method == "wish" and fusion == "product"
    if fused:
        crit = (c * a).sqrt().masked_fill(~valid, -1.0)
    elif method == "contactness_only":
        crit = c.masked_fill(~valid, -1.0)
    else:  # wish/chain and matching_only select by the matching head
        crit = a.masked_fill(~valid, -1.0)
    idx = crit.argmax(dim=1)  # [B, 2]
    c_sel = c.gather(1, idx[:, None, :]).squeeze(1)
    if method == "matching_only":
        prob = a.gather(1, idx[:, None, :]).squeeze(1)
        keep = has.clone()
    else:
        prob = crit.gather(1, idx[:, None, :]).squeeze(1) if fused else c_sel
        keep = has & (prob >= contact_threshold)
    extra = torch.zeros_like(keep)
    if both_rule:
        extra = has & ~keep & keep.flip(-1) & (idx == idx.flip(-1))
        keep = keep | extra
    idx = torch.where(has, idx, torch.full_like(idx, -1))
    return HandSelection(idx, keep, torch.where(has, prob, torch.zeros_like(prob)), extra)


def select_extra(contact_logits: torch.Tensor, sel: HandSelection, obj_valid: torch.Tensor, max_objects: int,
                 threshold: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Further objects of each hand that kept a first one (module docstring): ``(extra_idx, extra_prob)``, both
    ``[B, 2, max_objects - 1]``; ``extra_idx`` -1 where none is admitted, ``extra_prob`` the candidate's
    ``sigmoid(c)`` (0 where the hand has none), so ``threshold=0`` lists every hand's candidates."""
    B, N, _ = contact_logits.shape
    E = max(0, int(max_objects) - 1)
    idx = torch.full((B, 2, E), -1, dtype=torch.long, device=contact_logits.device)
    probs = torch.zeros((B, 2, E), device=contact_logits.device)
    if E == 0 or N == 0:
        return idx, probs
    c = torch.sigmoid(contact_logits.float()).masked_fill(~obj_valid.bool()[:, :, None], -1.0)
    rows = torch.arange(B, device=c.device)
    active = sel.keep & (sel.obj_idx >= 0)
    taken = torch.zeros((B, N), dtype=torch.bool, device=c.device)
    for h in (0, 1):
        taken[rows[active[:, h]], sel.obj_idx[active[:, h], h]] = True
    for k in range(E):
        for h in (0, 1):
            best, i = c[:, :, h].masked_fill(taken, -1.0).max(dim=1)
            has = active[:, h] & (best >= 0)
            probs[:, h, k] = torch.where(has, best, torch.zeros_like(best))
            acc = has & (best >= threshold)
            idx[:, h, k] = torch.where(acc, i, torch.full_like(i, -1))
            taken[rows[acc], i[acc]] = True
            active[:, h] = acc  # a hand stops at its first refusal
    return idx, probs


def combine_hands(obj_idx: torch.Tensor, keep: torch.Tensor, prob: torch.Tensor,
                  extra_idx: Optional[torch.Tensor] = None, extra_prob: Optional[torch.Tensor] = None
                  ) -> List[Tuple[int, int, float]]:
    """One image's ``[2]`` decisions (and ``[2, K-1]`` further objects) -> ``[(obj_idx, class_id, score)]``; class
    0 left, 1 right, 2 both. Further objects follow the first ones, each in its hand's class."""
    kept = [s for s in (0, 1) if bool(keep[s]) and int(obj_idx[s]) >= 0]
    if len(kept) == 2 and int(obj_idx[0]) == int(obj_idx[1]):
        out = [(int(obj_idx[0]), CLASS_BOTH, float(prob[0] + prob[1]) / 2.0)]
    else:
        out = [(int(obj_idx[s]), s, float(prob[s])) for s in kept]
    if extra_idx is not None:
        out += [(int(i), s, float(p)) for s in (0, 1) for i, p in zip(extra_idx[s], extra_prob[s]) if int(i) >= 0]
    return out


def select_in_hand(
    contact_logits: torch.Tensor,
    match_logits: torch.Tensor,
    obj_valid: torch.Tensor,
    hand_present: torch.Tensor,
    method: str = "wish",
    contact_threshold: float = 0.5,
    fusion: str = "product",
    both_rule: bool = True,
    null_class: bool = False,
    max_objects: int = 1,
    extra_threshold: float = 0.5,
) -> List[Tuple[int, int, float]]:
    """One image: ``contact_logits, match_logits [N, 2]``, ``obj_valid [N]``, ``hand_present [2]`` ->
    ``[(obj_idx, class_id, score)]`` (at most ``max_objects`` instances per hand; a shared object is one "both"
    instance)."""
    sel = select_per_hand(
        contact_logits[None], match_logits[None], obj_valid[None], hand_present[None],
        method, contact_threshold, fusion, both_rule, null_class,
    )
    if max_objects <= 1 or method == "matching_only":
        return combine_hands(sel.obj_idx[0], sel.keep[0], sel.prob[0])
    extra_idx, extra_prob = select_extra(contact_logits[None], sel, obj_valid[None], max_objects, extra_threshold)
    return combine_hands(sel.obj_idx[0], sel.keep[0], sel.prob[0], extra_idx[0], extra_prob[0])
