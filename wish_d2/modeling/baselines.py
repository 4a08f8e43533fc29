"""Training-free baselines, as per-pair scores ``[B, N, 2]`` that the matching-only rule turns into predictions.
Plain torch."""
import torch
import torch.nn.functional as F


def nearest_to_hand_scores(geom: torch.Tensor) -> torch.Tensor:
    """Nearest-to-hand: the proposal with the largest overlap with the dilated hand.
    ``geom[..., 0]`` is that overlap as a fraction of the proposal (see :func:`.geometry.pair_geometry`)."""
    return geom[..., 0]


def clip_zero_shot_scores(v: torch.Tensor, zero_shot: torch.Tensor) -> torch.Tensor:
    """CLIP zero-shot: cosine of each proposal's pooled embedding with "an object held in the {side} hand".
    ``v`` [B, N, D], ``zero_shot`` [2, D] -> [B, N, 2] scaled by CLIP's usual logit scale of 100."""
    return 100.0 * F.normalize(v, dim=-1) @ F.normalize(zero_shot, dim=-1).T
