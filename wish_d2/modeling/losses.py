"""Losses of both stages (docs/METHOD.md §7, §9), batched and free of per-sample Python loops.

Masked maxima use a large negative FINITE fill (``NEG``), never -inf, so a frame with no valid proposal, no hand or
no phrase yields finite numbers; such frames are then excluded from the loss through explicit validity masks. Every
loss returns a graph-connected zero (not a constant) when nothing is valid, so ``backward()`` always works.
"""
import torch
import torch.nn.functional as F

__all__ = [
    "NEG",
    "alignment_scores",
    "pair_scores",
    "image_narration_scores",
    "image_narration_valid",
    "symmetric_info_nce",
    "contact_loss",
    "matching_loss",
    "null_padded_logits",
]

#: Fill for masked-out scores / logits: far below any cos/tau (|cos/tau| <= 1/tau ~ 14 at tau = 0.07), but finite.
NEG = -1.0e4


def _zero(t: torch.Tensor) -> torch.Tensor:
    """A zero that keeps the autograd graph of ``t``."""
    return t.sum() * 0.0


def alignment_scores(w: torch.Tensor, p: torch.Tensor, temperature: float) -> torch.Tensor:
    """All image x narration scores ``s_{i,j,s} = cos(w_{a,i,s}, p_{b,j,s}) / tau``.

    ``w [Ba, N, 2, E]`` and ``p [Bb, M, 2, E]`` are unit-norm -> ``[Ba, Bb, N, M, 2]``.
    """
    return torch.einsum("anse,bmse->abnms", w, p) / temperature


def pair_scores(w: torch.Tensor, p: torch.Tensor, temperature: float) -> torch.Tensor:
    """Each image against its OWN narration only (for pseudo-labels): ``[B, N, 2, E], [B, M, 2, E] -> [B, N, M, 2]``."""
    return torch.einsum("bnse,bmse->bnms", w, p) / temperature


def image_narration_scores(
    w: torch.Tensor,
    obj_valid: torch.Tensor,
    hand_present: torch.Tensor,
    p: torch.Tensor,
    phrase_valid: torch.Tensor,
    temperature: float,
    pair_valid: torch.Tensor = None,
):
    """``S[a, b] = mean_{valid j of b} max_{valid i, present s of a} s_{i,j,s}`` (docs/METHOD.md §7).

    Args:
        w: ``[B, N, 2, E]`` pair embeddings; obj_valid ``[B, N]``; hand_present ``[B, 2]``.
        p: ``[B, M, 2, E]`` phrase embeddings per side; phrase_valid ``[B, M]``.
        pair_valid: optional ``[B, N, 2]`` bool: only these (object, hand) pairs may explain a narration
            (``MODEL.WISH.STAGE1.TOUCHING_PAIRS_ONLY``); ``None`` = every valid object with every present hand.
    Returns:
        ``S [B, B]``, finite everywhere. Entries involving an image without any (object, hand) pair or a narration
        without phrases are meaningless: drop them with ``image_narration_valid`` before the loss.
    """
    B, N = w.shape[:2]
    M = p.shape[1]
    pair_valid = _usable_pairs(obj_valid, hand_present, pair_valid)  # [B, N, 2]
    pv = phrase_valid.bool()
    if N == 0 or M == 0:
        best = w.new_full((B, B, M), NEG) + _zero(w) + _zero(p)
    else:
        s = alignment_scores(w, p, temperature)  # [a, b, n, m, s]
        s = s.masked_fill(~pair_valid[:, None, :, None, :], NEG)
        best = s.permute(0, 1, 3, 2, 4).reshape(B, B, M, N * 2).amax(dim=-1)  # [a, b, m]
    best = best * pv[None].to(best.dtype)
    return best.sum(-1) / pv.sum(-1).clamp_min(1).to(best.dtype)[None, :]


def image_narration_valid(obj_valid: torch.Tensor, hand_present: torch.Tensor, phrase_valid: torch.Tensor,
                          pair_valid: torch.Tensor = None):
    """``[B]`` bool: image b has a valid object AND a present hand (with ``pair_valid [B, N, 2]``: a valid pair),
    and narration b has a valid phrase."""
    return _usable_pairs(obj_valid, hand_present, pair_valid).flatten(1).any(dim=1) & phrase_valid.bool().any(dim=1)


def _usable_pairs(obj_valid: torch.Tensor, hand_present: torch.Tensor, pair_valid: torch.Tensor = None):
    """``[B, N, 2]`` bool: valid object with present hand, restricted to ``pair_valid`` when given."""
    pairs = obj_valid.bool()[:, :, None] & hand_present.bool()[:, None, :]
    return pairs if pair_valid is None else pairs & pair_valid.bool()


def symmetric_info_nce(S: torch.Tensor, valid: torch.Tensor = None, weights: torch.Tensor = None) -> torch.Tensor:
    """Mean of row-wise (image -> narration) and column-wise (narration -> image) cross-entropy; targets: diagonal.

    Only valid images / narrations take part (``valid [B]``; default all). Fewer than two valid -> zero loss.
    ``weights [B]`` (optional, >= 0): each pair's two terms count in proportion to it (narration-window weighting,
    docs/VIDEO.md); ``None`` is the plain mean.
    """
    if valid is not None:
        keep = valid.bool()
        S = S[keep][:, keep]
        weights = weights[keep] if weights is not None else None
    k = S.shape[0]
    if k < 2:
        return _zero(S)
    target = torch.arange(k, device=S.device)
    if weights is not None and not bool((weights == 1).all()):  # all ones: the plain mean, bit for bit
        w = weights.to(S.dtype)
        ce = F.cross_entropy(S, target, reduction="none") + F.cross_entropy(S.t(), target, reduction="none")
        return 0.5 * (w * ce).sum() / w.sum().clamp_min(1e-6)
    return 0.5 * (F.cross_entropy(S, target) + F.cross_entropy(S.t(), target))


def contact_loss(contact_logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Contactness BCE averaged over valid (object, hand) pairs: ``[B, N, 2]`` each; none valid -> 0."""
    valid = valid.bool()
    if not bool(valid.any()):
        return _zero(contact_logits)
    return F.binary_cross_entropy_with_logits(contact_logits[valid], targets[valid].to(contact_logits.dtype))


def null_padded_logits(match_logits: torch.Tensor, obj_valid: torch.Tensor) -> torch.Tensor:
    """``[B, N, 2]`` matching logits -> ``[B, N + 1, 2]``: invalid objects masked, plus a "no object" column of
    fixed logit 0 (the MLP's own bias sets where objects stand against it)."""
    logits = match_logits.masked_fill(~obj_valid.bool()[:, :, None], NEG)
    return torch.cat([logits, logits.new_zeros(logits.shape[0], 1, logits.shape[2])], dim=1)


def matching_loss(
    match_logits: torch.Tensor,
    target_idx: torch.Tensor,
    obj_valid: torch.Tensor,
    hand_present: torch.Tensor,
    null_class: bool = False,
) -> torch.Tensor:
    """Per hand, softmax over valid objects i of ``a_{i,s}`` and cross-entropy to the target object.

    Args:
        match_logits: ``[B, N, 2]``; target_idx ``[B, 2]`` long, -1 = no target;
        obj_valid ``[B, N]``; hand_present ``[B, 2]``.
        null_class: the softmax also has a "no object" option (:func:`null_padded_logits`), and a present hand with
            no target is trained towards it instead of being skipped. This puts the one-object-per-hand prior
            (at most one object, possibly none) into the head: every visible hand teaches it, including the
            hands that hold nothing, which are exactly the ones that show resting / touching objects are NOT
            held. Its probabilities are then absolute ("hand s holds i"), not only a ranking of the objects.
    Hands that are absent or whose target is an invalid (padding) object are skipped; without ``null_class``,
    so are hands with no target.
    """
    B, N, _ = match_logits.shape
    if N == 0:
        return _zero(match_logits)
    tgt = target_idx.reshape(B * 2).long()
    safe = tgt.clamp(0, N - 1)
    target_ok = obj_valid.bool().repeat_interleave(2, dim=0).gather(1, safe[:, None]).squeeze(1)
    present = hand_present.bool().reshape(B * 2) & obj_valid.bool().any(dim=1).repeat_interleave(2)
    if null_class:
        logits = null_padded_logits(match_logits, obj_valid).permute(0, 2, 1).reshape(B * 2, N + 1)
        is_obj = (tgt >= 0) & (tgt < N)
        use = present & (~is_obj | target_ok) & (tgt < N)
        tgt = torch.where(is_obj, tgt, torch.full_like(tgt, N))
    else:
        logits = match_logits.masked_fill(~obj_valid.bool()[:, :, None], NEG).permute(0, 2, 1).reshape(B * 2, N)
        use = (tgt >= 0) & (tgt < N) & present & target_ok
    if not bool(use.any()):
        return _zero(match_logits)
    return F.cross_entropy(logits[use], tgt[use])
