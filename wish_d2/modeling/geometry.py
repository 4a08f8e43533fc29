"""Geometric relations g(m_i, H_s) between object proposals and hands, and the contact zone of each pair.

Algorithm: docs/ARCHITECTURE.md ("Core tensors"). These features carry most of the signal of the method, so they are
computed carefully but cheaply: nothing here ever works at the frame's full resolution once the frame is larger than
the working resolution. :func:`to_working_res` area-averages masks once to a working size (long side
``working_side``, a no-op for smaller frames); every function below takes masks at any resolution, as booleans or as
area fractions in [0, 1], and all its features are fractions of areas or offsets divided by the image diagonal, so
they do not depend on the resolution they are computed at. Dilations are separable (window max or count) and every
feature is a matrix product or a reduction over all masks at once. Absent hands and empty proposals give all-zero
features (never NaN).
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = ["GEOMETRY_DIM", "GEOMETRY_NAMES", "GEOMETRY_INDEX", "NEAR_HAND_FRAC_OF_OBJ", "MIN_WORKING_SIDE",
           "working_size", "to_working_res", "pair_geometry", "hand_overlap_fraction", "masks_to_boxes",
           "contact_region_masks"]

#: Names of the G features, in order.
GEOMETRY_NAMES = (
    "near_hand_frac_of_obj",    # area(m ∩ dilate(H)) / area(m): how much of the object lies next to / under the hand
    "near_hand_frac_of_hand",   # area(m ∩ dilate(H)) / area(dilate(H)): how much of the hand's surroundings it fills
    "dx",                       # (centroid_x(m) - centroid_x(H)) / diagonal
    "dy",                       # (centroid_y(m) - centroid_y(H)) / diagonal
    "log_area_ratio",           # log(area(m) / area(H)), clamped to [-8, 8], divided by 4
    "box_iou",                  # IoU of the bounding boxes of m and H
    "box_gap",                  # distance between the two bounding boxes (0 if they touch) / diagonal
    "obj_size",                 # sqrt(area(m) / image area)
)
GEOMETRY_DIM = len(GEOMETRY_NAMES)
#: Channel of each feature in the last axis of ``pair_geometry``'s output: read channels by name, never by number.
GEOMETRY_INDEX = {name: k for k, name in enumerate(GEOMETRY_NAMES)}
NEAR_HAND_FRAC_OF_OBJ = GEOMETRY_INDEX["near_hand_frac_of_obj"]  # the one the baselines and Stage 1 pairs read

_EPS = 1e-6


#: Smallest long side of the working resolution. Frames up to this size are processed at their own resolution, so
#: their features are exactly those of the full-resolution computation; larger frames are area-averaged down to it.
MIN_WORKING_SIDE = 224

#: Masks are converted to float in chunks of at most this many full-resolution pixels (bounds peak memory).
_MAX_CHUNK_ELEMS = 1 << 24


def working_size(height: int, width: int, side: int) -> Tuple[int, int]:
    """The frame's own size if its long side is at most ``side``; else the grid of ``f x f`` pixel blocks with the
    smallest integer ``f`` that brings the long side to ``side`` or less (a shorter last row / column of blocks)."""
    height, width = int(height), int(width)
    if max(height, width) <= side:
        return height, width
    f = -(-max(height, width) // side)
    return -(-height // f), -(-width // f)


def to_working_res(masks: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """``[K, H, W]`` bool/float -> float ``[K, h, w]``: the fraction of each working pixel the mask covers.

    At ``size == (H, W)`` it is the plain float copy. At a :func:`working_size` it is the exact mean of each pixel
    block, summed in uint8 for boolean masks (one read of the full-resolution bytes, never a float copy of them).
    Any other size resamples block means with exact overlap weights (areas exact, boundaries blurred by at most one
    block). Done in chunks, so a stack of full-HD masks never exists as float.
    """
    K, H, W = masks.shape
    size = (int(size[0]), int(size[1]))
    if size == (H, W):
        return masks.float()
    if K == 0:
        return torch.zeros((0, *size), device=masks.device)
    f = -(-H // size[0])
    exact = f > 1 and (-(-H // f), -(-W // f)) == size
    if not exact:
        f = max(1, min(H // size[0], W // size[1]))
        rows = _area_weights(H, f, size[0], masks.device)  # [h, ceil(H/f)]
        cols = _area_weights(W, f, size[1], masks.device)  # [w, ceil(W/f)]
    out = torch.empty((K, *size), dtype=torch.float32, device=masks.device)
    step = max(1, _MAX_CHUNK_ELEMS // max(1, H * W))
    for k in range(0, K, step):
        x = _block_means(masks[k:k + step], f) if f > 1 else masks[k:k + step].float()
        out[k:k + step] = x if exact else rows @ x @ cols.T
    return out


def _area_weights(n: int, f: int, m: int, device) -> torch.Tensor:
    """``[m, ceil(n/f)]``: weight of each input block (``f`` pixels, the last one shorter) in each of ``m`` equal
    output bins over ``[0, n)``: the length of their overlap / the bin length."""
    blocks = -(-n // f)
    b_edges = torch.clamp(torch.arange(blocks + 1, dtype=torch.float64) * f, max=n)
    o_edges = torch.arange(m + 1, dtype=torch.float64) * (n / m)
    lo = torch.maximum(o_edges[:-1, None], b_edges[None, :-1])
    hi = torch.minimum(o_edges[1:, None], b_edges[None, 1:])
    w = (hi - lo) / (n / m)
    return torch.where(w > 1e-9, w, 0.0).float().to(device)  # no rounding-level overlap: "inside" stays exact


def _block_sum(x: torch.Tensor, f: int, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """Sums of ``f`` consecutive entries along ``dim`` (1 or 2) of ``[K, A, B]``; a shorter last block keeps its sum."""
    n = x.shape[dim]
    full = (n // f) * f
    main = x.narrow(dim, 0, full)
    shape = list(main.shape)
    shape[dim:dim + 1] = [n // f, f]
    parts = [main.reshape(shape).sum(dim + 1, dtype=dtype)]
    if full < n:
        parts.append(x.narrow(dim, full, n - full).sum(dim, keepdim=True, dtype=dtype))
    return torch.cat(parts, dim) if len(parts) > 1 else parts[0]


def _block_means(masks: torch.Tensor, f: int) -> torch.Tensor:
    """``[K, H, W]`` -> float ``[K, ceil(H/f), ceil(W/f)]``: the covered fraction of each ``f x f`` block."""
    K, H, W = masks.shape
    if masks.dtype == torch.bool and f <= 255:
        x = _block_sum(masks.view(torch.uint8), f, 2, torch.uint8)  # [K, H, ceil(W/f)], no widening copy
    else:
        x = _block_sum(masks.float(), f, 2, torch.float32)
    x = _block_sum(x, f, 1, torch.float32 if x.dtype == torch.float32 else torch.int32)  # [K, ceil(H/f), ...]
    rows = torch.full((x.shape[1],), float(f), device=x.device)
    cols = torch.full((x.shape[2],), float(f), device=x.device)
    rows[-1], cols[-1] = H - f * (x.shape[1] - 1), W - f * (x.shape[2] - 1)
    return x.float() / (rows[:, None] * cols[None, :])


def _to_working_res(masks: torch.Tensor, max_side: int) -> torch.Tensor:
    """[K, H, W] bool/float -> float [K, h, w] with long side <= max_side (area averaging keeps fractions exact)."""
    m = masks.float()
    H, W = m.shape[-2:]
    if max(H, W) <= max_side or m.shape[0] == 0:
        return m
    s = max_side / max(H, W)
    size = (max(1, round(H * s)), max(1, round(W * s)))
    return F.adaptive_avg_pool2d(m.unsqueeze(1), size).squeeze(1)


def centroids_xy(x: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
    """``[K, h, w]`` float masks (or coverage fractions) and their areas ``[K]`` -> ``[K, 2]`` centroids ``(x, y)`` in
    pixel-centre coordinates (``col + 0.5``); an empty mask gives 0."""
    h, w = x.shape[-2:]
    ys = torch.arange(h, device=x.device, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=x.device, dtype=torch.float32) + 0.5
    cy = (x.sum(2) * ys).sum(1) / area.clamp_min(_EPS)
    cx = (x.sum(1) * xs).sum(1) / area.clamp_min(_EPS)
    return torch.stack([cx, cy], 1)


def masks_to_boxes(masks: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """[K, H, W] (nonzero = inside) -> (boxes [K, 4] as x0, y0, x1, y1 in pixel edges, nonempty [K] bool).

    Vectorised via first/last index of any-row / any-column; empty masks get a zero box.
    """
    K, H, W = masks.shape
    inside = masks > 0
    rows = inside.any(dim=2)  # [K, H]
    cols = inside.any(dim=1)  # [K, W]
    nonempty = rows.any(dim=1)
    y0 = rows.float().argmax(dim=1)
    y1 = H - rows.flip(1).float().argmax(dim=1)
    x0 = cols.float().argmax(dim=1)
    x1 = W - cols.flip(1).float().argmax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float() * nonempty.unsqueeze(1)
    return boxes, nonempty


def pair_geometry(
    masks: torch.Tensor,
    hand_masks: torch.Tensor,
    hand_present: torch.Tensor,
    dilation: float = 0.04,
    max_side: int = 128,
) -> torch.Tensor:
    """g(m_i, H_s) for all proposals and both hands.

    Args:
        masks: ``[N, H, W]`` proposal masks (bool or float in [0, 1]).
        hand_masks: ``[2, H, W]`` hand masks ordered [left, right] (anything where absent).
        hand_present: ``[2]`` bool.
        dilation: hand dilation radius as a fraction of the image diagonal (cfg.MODEL.WISH.HANDS.DILATION).
        max_side: long side of the working resolution.
    Returns:
        ``[N, 2, GEOMETRY_DIM]`` float32; zeros for absent hands and empty proposals.
    """
    N = masks.shape[0]
    device = masks.device
    if hand_masks.shape[0] != 2:
        raise ValueError(f"hand_masks must be [2, H, W] ordered [left, right], got {tuple(hand_masks.shape)}")
    if N == 0:
        return torch.zeros((0, 2, GEOMETRY_DIM), device=device)
    if masks.shape[-2:] != hand_masks.shape[-2:]:
        raise ValueError(f"mask size {tuple(masks.shape[-2:])} != hand mask size {tuple(hand_masks.shape[-2:])}")

    m = _to_working_res(masks, max_side)  # [N, h, w]
    hd = _to_working_res(hand_masks.to(device), max_side)  # [2, h, w]
    h, w = m.shape[-2:]
    diag = math.hypot(h, w)
    r = int(round(dilation * diag))
    hd_dil = F.max_pool2d(hd.unsqueeze(1), 2 * r + 1, stride=1, padding=r).squeeze(1) if r > 0 else hd

    mf, hf, hdf = m.flatten(1), hd.flatten(1), hd_dil.flatten(1)
    area_m = mf.sum(1)  # [N]
    area_h = hf.sum(1)  # [2]
    area_hd = hdf.sum(1)
    overlap = mf @ hdf.T  # [N, 2]

    c_m, c_h = centroids_xy(m, area_m), centroids_xy(hd, area_h)  # [N, 2(xy)], [2, 2(xy)]
    offset = (c_m[:, None, :] - c_h[None, :, :]) / diag  # [N, 2 hands, 2 xy]

    b_m, _ = masks_to_boxes(m)
    b_h, _ = masks_to_boxes(hd)
    bm, bh = b_m[:, None, :], b_h[None, :, :]
    iw = (torch.minimum(bm[..., 2], bh[..., 2]) - torch.maximum(bm[..., 0], bh[..., 0])).clamp_min(0)
    ih = (torch.minimum(bm[..., 3], bh[..., 3]) - torch.maximum(bm[..., 1], bh[..., 1])).clamp_min(0)
    inter = iw * ih
    box_area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    box_iou = inter / (box_area(bm) + box_area(bh) - inter).clamp_min(_EPS)
    gx = torch.maximum(bm[..., 0] - bh[..., 2], bh[..., 0] - bm[..., 2]).clamp_min(0)
    gy = torch.maximum(bm[..., 1] - bh[..., 3], bh[..., 1] - bm[..., 3]).clamp_min(0)
    box_gap = torch.sqrt(gx * gx + gy * gy) / diag

    log_ratio = (torch.log((area_m[:, None] + _EPS) / (area_h[None, :] + _EPS)).clamp(-8.0, 8.0)) / 4.0
    by_name = {
        "near_hand_frac_of_obj": overlap / area_m[:, None].clamp_min(_EPS),
        "near_hand_frac_of_hand": overlap / area_hd[None, :].clamp_min(_EPS),
        "dx": offset[..., 0],
        "dy": offset[..., 1],
        "log_area_ratio": log_ratio,
        "box_iou": box_iou,
        "box_gap": box_gap,
        "obj_size": torch.sqrt(area_m / (h * w))[:, None].expand(N, 2),
    }
    feats = torch.stack([by_name[n] for n in GEOMETRY_NAMES], dim=-1)  # [N, 2, G], channels in GEOMETRY_NAMES order
    valid = (area_m > 0)[:, None] & (hand_present.to(device).bool() & (area_h > 0))[None, :]
    return torch.where(valid[..., None], feats, torch.zeros_like(feats))


def hand_overlap_fraction(masks: torch.Tensor, hand_masks: torch.Tensor) -> torch.Tensor:
    """Fraction of each proposal's area covered by the union of the hands: ``[N, H, W], [K, H, W] -> [N]``.

    Used to drop proposals that are mostly hand (cfg.MODEL.WISH.PROPOSALS.MAX_HAND_FRACTION). Masks may be booleans
    (exact) or working-resolution area fractions, where a pixel's overlap is the product of the two fractions (exact
    wherever either mask covers the whole pixel, i.e. everywhere but along both boundaries). Empty proposals give 0.
    """
    N = masks.shape[0]
    if N == 0 or hand_masks.shape[0] == 0:
        return torch.zeros((N,), device=masks.device)
    union = hand_masks.to(masks.device).float().clamp(0, 1).amax(dim=0).flatten()
    m = masks.float().flatten(1)
    return (m @ union) / m.sum(1).clamp_min(1)


def _dilate(x: torch.Tensor, r: int) -> torch.Tensor:
    """Square dilation of ``[K, h, w]`` (nonzero = inside) by radius ``r`` -> bool, as two 1-D passes that count the
    inside pixels of each window by cumulative sums: the same result as a max-pool, at a cost that does not grow
    with ``r`` (a max-pool's does, and it dominated the contact zones of a frame with 100+ proposals)."""
    x = (x > 0).float()
    if r == 0 or x.shape[0] == 0:
        return x > 0
    return _window_count(_window_count(x, r, 2).gt(0).float(), r, 1) > 0


def _window_count(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Sum of ``x`` over the window ``[j - r, j + r]`` along ``dim`` (1 or 2) of ``[K, h, w]``, zeros outside
    (exact for 0/1 inputs: integer float sums)."""
    n = x.shape[dim]
    c = torch.cumsum(F.pad(x, (r + 1, r) if dim == 2 else (0, 0, r + 1, r)), dim)
    return c.narrow(dim, 2 * r + 1, n) - c.narrow(dim, 0, n)


def contact_region_masks(
    masks: torch.Tensor, hand_masks: torch.Tensor, hand_present: torch.Tensor, dilation: float = 0.04
) -> torch.Tensor:
    """The contact zone of every (object, hand) pair: ``(m_i ∩ dilate(H_s)) ∪ (H_s ∩ dilate(m_i))``.

    These are the pixels where the object and the hand meet: the object's edge next to the hand and the part of the
    hand (fingers, palm edge) lying on or next to the object. It is the visual evidence of HOW a hand touches an
    object (fingers wrapped over a held object vs. a palm resting on a surface), which the geometry features cannot
    see: overlap and distance are the same for "held" and "resting on". Mask-pooling this zone with the same
    one-pass CLIP pooling (:mod:`.clip_pooling`) gives ``v_contact``, a third visual input of the pair features.

    Meant for working-resolution masks (:func:`to_working_res`): the dilation radius is a fraction of the diagonal
    of whatever resolution it gets, so the zone's footprint does not depend on it, and the cost does not grow with
    the frame. A pixel's zone value is the larger of its object and hand fractions (each kept where the other mask's
    dilation reaches), so boolean masks give exactly the 0/1 zone.

    Args:
        masks: ``[N, h, w]`` proposal masks, bool or area fractions in [0, 1].
        hand_masks: ``[2, h, w]`` ordered [left, right], same kind; hand_present ``[2]``.
        dilation: radius as a fraction of the image diagonal (the geometry features' hand dilation).
    Returns:
        float ``[N, 2, h, w]`` in [0, 1]; all zero for absent hands (an empty mask pools to a finite embedding).
    """
    N, h, w = masks.shape
    device = masks.device
    if N == 0:
        return torch.zeros((0, 2, h, w), device=device)
    r = int(round(dilation * math.hypot(h, w)))
    m = masks.float()
    hd = hand_masks.to(device).float() * hand_present.to(device).float()[:, None, None]
    m_d, h_d = _dilate(m, r), _dilate(hd, r)
    obj_part = m[:, None] * h_d[None]  # [N, 2, h, w]: object pixels the dilated hand reaches
    hand_part = hd[None] * m_d[:, None]  # hand pixels the dilated object reaches
    return torch.maximum(obj_part, hand_part)
