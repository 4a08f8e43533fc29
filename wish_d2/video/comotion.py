"""Co-motion: a held object moves with the hand that holds it (docs/VIDEO.md).

WHY: a single frame cannot tell an object in the hand from one lying under it, and that is where per-frame WISH
errs most. Between two frames the difference is visible: relative to the scene, a carried object is displaced as
its hand is, while objects at rest are displaced as the camera is. This is the one cue that only video has, and it
needs no training: it reweights the per-frame evidence ``q`` of each proposal for each hand.

Per frame and hand, with displacements measured between the previous frame and this one on mask centroids, as
fractions of the frame's long side (so the settings do not depend on the resolution):

- the camera's motion ``d_cam`` is the median displacement of the linked proposals (most of a scene is at rest);
- the hand moves by ``r_h = d_hand - d_cam``, a linked proposal by ``r_i = d_i - d_cam``;
- ``f_i = N(r_i; r_h, sigma) / (N(r_i; r_h, sigma) + N(r_i; 0, sigma))``, the posterior that proposal ``i``
  moves with the hand rather than with the scene, from even odds.

``f = 0.5`` (neutral) for a proposal without a track in the previous frame, for an absent hand, and for a hand that
moves less than ``min_motion``: a still hand says nothing about what it holds. The evidence becomes
``q' = min(1, q (2 f) ** weight)``; ``weight = 0`` switches the cue off. Causal: the state is the previous frame's
centroids and, with ``memory``, each track's decayed log-odds.
"""
from typing import Dict, Optional, Sequence

import torch

from ..modeling.geometry import centroids_xy

__all__ = ["mask_centroids", "CoMotion", "apply_comotion"]


def mask_centroids(masks: torch.Tensor) -> torch.Tensor:
    """``[N, h, w]`` bool or occupancy (``linking.shrink_masks(..., soft=True)``) -> ``[N, 2]`` centroids ``(x, y)``
    as fractions of the long side; NaN for empty masks."""
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros((0, 2))
    m = masks.float()
    area = m.sum(dim=(1, 2))
    c = centroids_xy(m, area) / float(max(h, w))
    c[area == 0] = float("nan")
    return c


class CoMotion:
    """Online co-motion factors for one video; call :meth:`reset` between videos."""

    def __init__(self, sigma: float = 0.01, min_motion: float = 0.006, memory: float = 0.0):
        if sigma <= 0:
            raise ValueError("sigma (the spread of displacements, fraction of the frame side) must be > 0, "
                             f"got {sigma}")
        if min_motion < 0:
            raise ValueError(f"min_motion must be >= 0, got {min_motion}")
        if not 0 <= memory < 1:
            raise ValueError(f"memory (the decay of a track's accumulated log-odds) must be in [0, 1), got {memory}")
        self.sigma, self.min_motion, self.memory = float(sigma), float(min_motion), float(memory)
        self.reset()

    def reset(self) -> None:
        self.prev_objects: Dict[int, torch.Tensor] = {}  # track id -> centroid in the previous frame
        self.prev_hands: Optional[torch.Tensor] = None  # [2, 2], NaN rows for absent hands
        self.log_odds: Dict[int, torch.Tensor] = {}  # track id -> [2] accumulated log-odds of moving with each hand

    def step(self, track_ids: Sequence[int], object_centroids: torch.Tensor, hand_centroids: torch.Tensor
             ) -> torch.Tensor:
        """``track_ids`` and ``object_centroids [N, 2]`` of this frame's proposals, ``hand_centroids [2, 2]`` (NaN
        rows for absent hands) -> ``[N, 2]`` factors ``f`` (0.5 = no evidence either way)."""
        n = len(track_ids)
        log_odds = torch.zeros((n, 2))
        moved = [i for i, k in enumerate(track_ids)
                 if k in self.prev_objects and not torch.isnan(object_centroids[i]).any()]
        if moved and self.prev_hands is not None:
            d = torch.stack([object_centroids[i] - self.prev_objects[track_ids[i]] for i in moved])  # [M, 2]
            cam = d.median(dim=0).values
            r = d - cam
            for s in (0, 1):
                r_h = hand_centroids[s] - self.prev_hands[s] - cam
                if torch.isnan(r_h).any() or float(r_h.norm()) < self.min_motion:
                    continue
                # log N(r; r_h) - log N(r; 0), then the posterior from even odds
                log_odds[moved, s] = (r.pow(2).sum(1) - (r - r_h).pow(2).sum(1)) / (2 * self.sigma ** 2)
        if self.memory:
            for i, k in enumerate(track_ids):
                if k in self.log_odds:
                    log_odds[i] += self.memory * self.log_odds[k]
            self.log_odds = {k: log_odds[i] for i, k in enumerate(track_ids)}
        self.prev_objects = {k: object_centroids[i] for i, k in enumerate(track_ids)
                             if not torch.isnan(object_centroids[i]).any()}
        self.prev_hands = hand_centroids.clone()
        return torch.sigmoid(log_odds)


def apply_comotion(q: torch.Tensor, f: torch.Tensor, weight: float) -> torch.Tensor:
    """``q' = min(1, q (2 f) ** weight)``: a proposal moving with the hand up to ``2 ** weight`` times more likely
    held, one moving with the scene less likely; ``weight = 0`` leaves ``q`` as it is."""
    if weight == 0 or q.numel() == 0:
        return q
    return (q * (2.0 * f).pow(weight)).clamp(max=1.0)

