"""Linking proposals across video frames into object tracks (docs/VIDEO.md).

WHY: per-frame WISH picks a proposal index, and indices mean nothing from one frame to the next. To smooth "which
object does this hand hold" over time, each frame's proposals must first be given identities that persist. A
proposal continues a track when its mask overlaps the track's last mask and its mask-pooled embedding looks like
the track's: ``score = IoU + emb_weight * cos``, one-to-one (greedy, best pairs first), accepted above
``min_score``. Tracks not
seen for ``max_age`` frames are forgotten, so memory and cost are bounded however long the video runs.

Plain torch; masks are compared at a small working size (``LINK_SIDE``), embeddings are L2-normalised.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

__all__ = ["LINK_SIDE", "mask_iou_matrix", "overlap_matrix", "shrink_masks", "Track", "ObjectLinker"]

LINK_SIDE = 64  # masks are area-averaged to at most this long side before IoUs: cost independent of frame size
SHRINK_CHUNK = 8  # masks converted to float at once when shrinking


def shrink_masks(masks: torch.Tensor, side: int = LINK_SIDE, soft: bool = False) -> torch.Tensor:
    """``[N, H, W]`` bool -> ``[N, h, w]`` bool at most ``side`` long (area average >= 0.5), unchanged if smaller;
    with ``soft`` the area averages themselves (float), which keep a thin object's centroid."""
    if masks.dim() != 3:
        raise ValueError(f"masks must be [N, H, W], got {tuple(masks.shape)}")
    H, W = masks.shape[-2:]
    scale = side / max(H, W)
    if scale >= 1 or masks.shape[0] == 0:
        return masks.float() if soft else masks.bool()
    size = (max(1, round(H * scale)), max(1, round(W * scale)))
    # a few masks at a time: 100 full-HD masks as float would take 0.8 GB at once
    occupancy = torch.cat([F.interpolate(chunk[:, None].float(), size=size, mode="area")[:, 0]
                           for chunk in masks.split(SHRINK_CHUNK)])
    return occupancy if soft else occupancy >= 0.5


def _intersections(a: torch.Tensor, b: torch.Tensor):
    """``(|a_i & b_j| [N, M], |a_i| [N, 1], |b_j| [1, M])`` of binary masks ``a [N, h, w]`` and ``b [M, h, w]``."""
    fa, fb = a.flatten(1).float(), b.flatten(1).float()
    return fa @ fb.t(), fa.sum(1)[:, None], fb.sum(1)[None, :]


def mask_iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every mask of ``a [N, h, w]`` with every mask of ``b [M, h, w]``: ``[N, M]`` (0 where both empty)."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return torch.zeros((a.shape[0], b.shape[0]))
    inter, area_a, area_b = _intersections(a, b)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


def overlap_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|a_i & b_j| / min(|a_i|, |b_j|)`` for ``a [N, h, w]``, ``b [M, h, w]``: 1 when one mask lies inside the
    other (a segmenter's split or merge of one object), 0 for disjoint or empty masks. ``[N, M]``."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return torch.zeros((a.shape[0], b.shape[0]))
    inter, area_a, area_b = _intersections(a, b)
    smaller = torch.minimum(area_a, area_b)
    return torch.where(smaller > 0, inter / smaller.clamp_min(1), torch.zeros_like(inter))


@dataclass
class Track:
    """One object's identity: its last (small) mask and embedding, and when it was last seen."""

    track_id: int
    mask: torch.Tensor
    embed: torch.Tensor
    last_seen: int
    payload: Dict = field(default_factory=dict)  # what the caller wants to keep of the last proposal (e.g. its RLE)


class ObjectLinker:
    """Online, causal proposal linking: :meth:`update` takes one frame's proposals and returns their track ids."""

    def __init__(self, emb_weight: float = 0.5, min_score: float = 0.5, max_age: int = 10):
        if max_age < 1:
            raise ValueError(f"max_age must be >= 1 frame, got {max_age}")
        self.emb_weight = float(emb_weight)
        self.min_score = float(min_score)
        self.max_age = int(max_age)
        self.tracks: Dict[int, Track] = {}
        self.next_id = 1
        self.t = -1

    def update(self, masks: torch.Tensor, embeds: torch.Tensor, payloads: Optional[List[Dict]] = None) -> List[int]:
        """``masks [N, h, w]`` bool (already small, see :func:`shrink_masks`), ``embeds [N, D]`` -> ``N`` track ids.
        Each track takes at most one proposal per frame."""
        self.t += 1
        n = int(masks.shape[0])
        if embeds.shape[0] != n:
            raise ValueError(f"{n} masks but {embeds.shape[0]} embeddings")
        payloads = payloads if payloads is not None else [{} for _ in range(n)]
        self.tracks = {k: tr for k, tr in self.tracks.items() if self.t - tr.last_seen <= self.max_age}
        ids = [-1] * n
        live = list(self.tracks.values())
        emb = F.normalize(embeds.float(), dim=-1) if n else embeds.float()
        if n and live:
            if embeds.shape[-1] != live[0].embed.shape[-1] or masks.shape[-2:] != live[0].mask.shape[-2:]:
                raise ValueError(f"frame {self.t}: embeddings {tuple(embeds.shape)} / masks {tuple(masks.shape)} do "
                                 f"not match the tracks' ({live[0].embed.shape[-1]}-d, {tuple(live[0].mask.shape)}); "
                                 "start a new linker (TemporalDecoder.reset) for each video")
            iou = mask_iou_matrix(masks, torch.stack([tr.mask for tr in live]))
            cos = emb @ F.normalize(torch.stack([tr.embed for tr in live]).float(), dim=-1).t()
            score = iou + self.emb_weight * cos.clamp_min(0)
            taken = set()
            for flat in torch.argsort(score.flatten(), descending=True, stable=True).tolist():
                r, c = divmod(flat, len(live))
                if float(score[r, c]) < self.min_score:
                    break
                if ids[r] < 0 and c not in taken:
                    ids[r] = live[c].track_id
                    taken.add(c)
        for i in range(n):
            if ids[i] < 0:
                ids[i] = self.next_id
                self.next_id += 1
            self.tracks[ids[i]] = Track(ids[i], masks[i].clone(), emb[i].clone(), self.t, payloads[i])
        return ids

    def track(self, track_id: int) -> Optional[Track]:
        return self.tracks.get(track_id)
