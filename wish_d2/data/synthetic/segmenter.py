"""Imitation of a class-agnostic segmenter on the benchmark frames: proposals that miss, wobble, split and merge
the true masks the way real mask generators do, so that the method never sees perfect masks (docs/SYNTHETIC.md)."""
import math
from typing import List

import cv2
import numpy as np

from .drawing import SHIFT, to_cv

__all__ = ["jitter_mask", "imitate_segmenter"]

P_MISS = 0.04  # an entity gets no proposal
JITTER_SIGMA = 0.15  # std of the boundary noise field (in mask units, threshold 0.5)
P_OVERSEG = 0.12  # an entity is split in two by a line
P_UNDERSEG = 0.12  # an entity is merged with one it touches


def jitter_mask(mask, rng):
    """Boundary jitter of about a pixel: a 1 px dilation or erosion (p = 0.3 each, masks >= 400 px), then a
    smoothed random field added to the blurred mask before re-thresholding."""
    m = mask.astype(np.uint8)
    area = int(m.sum())
    r = rng.random()
    k3 = np.ones((3, 3), np.uint8)
    if area >= 400 and r < 0.3:
        m = cv2.dilate(m, k3)
    elif area >= 400 and r < 0.6:
        m = cv2.erode(m, k3)
    H, W = m.shape
    field = cv2.resize(rng.normal(0, JITTER_SIGMA, (max(2, H // 8), max(2, W // 8))).astype(np.float32), (W, H),
                       interpolation=cv2.INTER_LINEAR)
    soft = cv2.GaussianBlur(m.astype(np.float32), (3, 3), 0.8) + field
    out = soft > 0.5
    return out if out.sum() >= 10 else mask


def imitate_segmenter(rng, masks: List[np.ndarray], adjacency, H, W, bg: np.ndarray):
    """Class-agnostic proposals from the visible entity masks (misses, jitter, splits, merges, spurious blobs),
    sorted by score. ``adjacency[i]``: the entities that touch entity ``i``; ``bg``: the background pixels."""
    props, scores = [], []
    for i, m in enumerate(masks):
        if rng.random() < P_MISS:
            continue
        area = int(m.sum())
        jm = jitter_mask(m, rng)
        if area >= 150 and rng.random() < P_OVERSEG:
            ys, xs = np.nonzero(jm)
            cy, cx = ys.mean(), xs.mean()
            a = rng.uniform(0, math.pi)
            yy, xx = np.mgrid[0:H, 0:W]
            side = ((xx - cx) * math.cos(a) + (yy - cy) * math.sin(a)) > 0
            for part in (jm & side, jm & ~side):
                if part.sum() >= 10:
                    props.append(part)
                    scores.append(rng.uniform(0.5, 0.9))
            if rng.random() < 0.5:
                props.append(jm)
                scores.append(rng.uniform(0.7, 1.0))
        else:
            props.append(jm)
            scores.append(rng.uniform(0.7, 1.0))
        if adjacency[i] and rng.random() < P_UNDERSEG:
            j = adjacency[i][int(rng.integers(len(adjacency[i])))]
            props.append(jitter_mask(m | masks[j], rng))
            scores.append(rng.uniform(0.5, 0.9))
    for _ in range(int(rng.integers(0, 4))):
        blob = np.zeros((H, W), np.uint8)
        c = (float(rng.uniform(0, W)), float(rng.uniform(0, H)))
        ax = (float(rng.uniform(4, 20)), float(rng.uniform(3, 14)))
        if rng.random() < 0.5:
            cv2.ellipse(blob, (c, (2 * ax[0], 2 * ax[1]), float(rng.uniform(0, 180))), 1, -1)
        else:
            pts = np.array(c) + rng.normal(0, ax[0], (5, 2))
            cv2.fillPoly(blob, [to_cv(pts)], 1, cv2.LINE_8, SHIFT)
            blob &= bg.astype(np.uint8)
        if blob.sum() >= 10:
            props.append(blob.astype(bool))
            scores.append(rng.uniform(0.3, 0.8))
    order = sorted(range(len(props)), key=lambda k: -scores[k])
    return [props[k] for k in order], [round(float(scores[k]), 4) for k in order]
