"""Hand sides: the vertical-split heuristic and its accuracy where ground-truth sides exist.

Heuristic (``docs/METHOD.md``): in a head-mounted egocentric view the left arm enters from the left, so a hand whose
mask centroid lies left of the image centre (``x_c < width / 2``) is the left hand, otherwise the right.
:func:`assign_sides` applies it to the hands of one frame and keeps "at most one hand per side"
(``docs/ARCHITECTURE.md``): when two hands fall on the same side, the one with the smaller centroid x becomes ``left``.
The heuristic is switched by ``MODEL.WISH.HANDS.SIDE_HEURISTIC`` so other camera mounts can replace it.

A second rule, ``entry``, places a hand by where its arm enters the frame (the mean x of its mask's pixels on the
left, right and bottom edges) instead of its centroid: with a chest-mounted camera the palms cross the midline but
each arm still enters on its own side (``tools/hand_benchmark.py`` measures both). A mask touching no edge falls
back to its centroid.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..classes import SIDES
from ..utils.masks import decode_rle

__all__ = ["SIDE_RULES", "mask_centroid_x", "mask_entry_x", "side_from_mask", "assign_sides", "apply_side_heuristic",
           "hand_side_accuracy"]

#: How a side-less hand is placed: by its centroid (the paper's vertical split) or by where its arm enters.
SIDE_RULES = ("vertical_split", "entry")


def _as_numpy(mask) -> np.ndarray:
    if isinstance(mask, dict):
        return decode_rle(mask)
    if isinstance(mask, torch.Tensor):
        return mask.detach().cpu().numpy().astype(bool)
    return np.asarray(mask).astype(bool)


def mask_centroid_x(mask) -> Optional[float]:
    """Centroid x (in pixel-centre coordinates, ``col + 0.5``) of a binary mask or RLE; ``None`` if empty."""
    m = _as_numpy(mask)
    cols = np.nonzero(m.any(axis=0))[0]
    if len(cols) == 0:
        return None
    counts = m.sum(axis=0)[cols]
    return float((cols + 0.5) @ counts / counts.sum())


def mask_entry_x(mask) -> Optional[float]:
    """Mean x (pixel centres) of the mask's pixels on the left, right and bottom edges of the frame, where an arm
    enters; ``None`` if the mask touches none of them."""
    m = _as_numpy(mask)
    if m.size == 0:
        return None
    h, w = m.shape
    xs = np.concatenate([np.nonzero(m[-1])[0] + 0.5, np.full(int(m[:, 0].sum()), 0.5),
                         np.full(int(m[:, -1].sum()), w - 0.5)])
    return float(xs.mean()) if len(xs) else None


def _hand_x(mask, rule: str) -> Optional[float]:
    if rule not in SIDE_RULES:
        raise ValueError(f"unknown side rule {rule!r}; choose one of {SIDE_RULES}")
    x = mask_entry_x(mask) if rule == "entry" else None
    return mask_centroid_x(mask) if x is None else x


def side_from_mask(mask, width: Optional[int] = None) -> Optional[str]:
    """``"left"`` if the centroid is left of ``width / 2`` (default: the mask's own width), else ``"right"``.
    An empty mask gives ``None``."""
    m = _as_numpy(mask)
    cx = mask_centroid_x(m)
    if cx is None:
        return None
    w = m.shape[1] if width is None else width
    return "left" if cx < w / 2.0 else "right"


def assign_sides(masks: Sequence, width: Optional[int] = None, rule: str = "vertical_split"
                 ) -> List[Optional[str]]:
    """Sides for the hands of one frame by the vertical split (or the ``entry`` rule), at most one hand per side.

    With two hands on the same side, the smaller centroid x is ``left`` and the other ``right``. More than two
    hands: only the leftmost and rightmost get a side, the rest ``None``. Empty masks get ``None``."""
    cxs = [_hand_x(m, rule) for m in masks]
    sides: List[Optional[str]] = [None] * len(masks)
    valid = [i for i, c in enumerate(cxs) if c is not None]
    if not valid:
        return sides
    if width is None:
        width = _as_numpy(masks[valid[0]]).shape[1]
    if len(valid) == 1:
        i = valid[0]
        sides[i] = "left" if cxs[i] < width / 2.0 else "right"
        return sides
    raw = {i: ("left" if cxs[i] < width / 2.0 else "right") for i in valid}
    if len(valid) == 2 and raw[valid[0]] != raw[valid[1]]:
        sides[valid[0]], sides[valid[1]] = raw[valid[0]], raw[valid[1]]
        return sides
    order = sorted(valid, key=lambda i: cxs[i])
    sides[order[0]], sides[order[-1]] = "left", "right"
    return sides


def apply_side_heuristic(hands: List[Dict], width: int) -> List[Dict]:
    """Copies of dataset-dict hand entries with ``side`` from the heuristic and ``side_source="heuristic"``
    (the original side, if any, is kept under ``gt_side``). Hands the heuristic cannot place are dropped."""
    sides = assign_sides([h["segmentation"] for h in hands], width)
    out = []
    for h, s in zip(hands, sides):
        if s is None:
            continue
        new = dict(h, side=s, side_source="heuristic")
        if h.get("side") in SIDES:
            new["gt_side"] = h["side"]
        out.append(new)
    return out


def hand_side_accuracy(dataset_dicts: Sequence[Dict], per_frame: bool = True, rule: str = "vertical_split"
                       ) -> Dict[str, float]:
    """Accuracy of the vertical-split heuristic against ground-truth sides.

    Uses every hand with ``side_source == "gt"``. With ``per_frame`` (default) the sides come from
    :func:`assign_sides` over the frame's GT hands (the rule actually used); otherwise each hand alone.
    ``rule``: one of :data:`SIDE_RULES`.
    Returns ``{"accuracy", "num_hands", "left_accuracy", "right_accuracy"}`` (NaN where there is no hand).
    """
    correct = {"left": 0, "right": 0}
    total = {"left": 0, "right": 0}
    for d in dataset_dicts:
        hands = [h for h in d.get("hands", []) if h.get("side_source") == "gt" and h.get("side") in total]
        if not hands:
            continue
        width = int(d["width"])
        if per_frame:
            pred = assign_sides([h["segmentation"] for h in hands], width, rule)
        else:
            pred = [assign_sides([h["segmentation"]], width, rule)[0] for h in hands]
        for h, p in zip(hands, pred):
            total[h["side"]] += 1
            correct[h["side"]] += int(p == h["side"])

    def ratio(a, b):
        return float(a) / b if b else float("nan")

    n = total["left"] + total["right"]
    return {
        "accuracy": ratio(correct["left"] + correct["right"], n),
        "num_hands": n,
        "left_accuracy": ratio(correct["left"], total["left"]),
        "right_accuracy": ratio(correct["right"], total["right"]),
    }
