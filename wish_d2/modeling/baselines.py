"""Training-free baselines, as per-pair scores ``[B, N, 2]`` that the matching-only rule turns into predictions.
Plain torch."""
import torch
import torch.nn.functional as F

from .geometry import NEAR_HAND_FRAC_OF_OBJ


def nearest_to_hand_scores(geom: torch.Tensor) -> torch.Tensor:
    """Nearest-to-hand: the proposal with the largest overlap with the dilated hand.
    Its geometry channel ``near_hand_frac_of_obj`` is that overlap as a fraction of the proposal (see
    :func:`.geometry.pair_geometry`)."""
    return geom[..., NEAR_HAND_FRAC_OF_OBJ]


def clip_zero_shot_scores(v: torch.Tensor, zero_shot: torch.Tensor) -> torch.Tensor:
    """CLIP zero-shot: cosine of each proposal's pooled embedding with "an object held in the {side} hand".
    ``v`` [B, N, D], ``zero_shot`` [2, D] -> [B, N, 2] scaled by CLIP's usual logit scale of 100."""
    return 100.0 * F.normalize(v, dim=-1) @ F.normalize(zero_shot, dim=-1).T


def open_vocab_scores(v: torch.Tensor, geom: torch.Tensor, vocabulary: torch.Tensor, num_nouns: int,
                      logit_scale: float = 100.0) -> torch.Tensor:
    """Open-vocabulary, narration-free: the most object-like proposal near each hand (docs/METHOD.md section 12).

    ``vocabulary`` [K, D] holds the text embeddings of the dataset's nouns (the first ``num_nouns`` rows) followed by
    background prompts (a hand, the counter). A proposal's objectness ``o_i`` is the probability mass CLIP puts on the
    nouns, ``softmax(logit_scale * cos(v_i, vocabulary))`` summed over the noun rows; its nearness to hand ``s`` is
    the geometry channel ``near_hand_frac_of_obj``, the fraction of the proposal inside the dilated hand. Returns
    ``log(o_i * near_{i,s})`` (floored), so the matching-only rule picks ``argmax_i o_i * near_{i,s}`` and scores it
    by its share of that product.
    """
    cos = F.normalize(v, dim=-1) @ F.normalize(vocabulary, dim=-1).T  # [B, N, K]
    objectness = torch.softmax(logit_scale * cos, dim=-1)[..., :num_nouns].sum(-1)  # [B, N]
    return torch.log((objectness[..., None] * geom[..., NEAR_HAND_FRAC_OF_OBJ].clamp_min(0.0)).clamp_min(1e-12))
