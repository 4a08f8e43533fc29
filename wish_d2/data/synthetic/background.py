"""The counter top behind everything: one of five random textures, and often a back wall strip (see
docs/SYNTHETIC.md). Drawn first, so it never occludes anything and has no annotation."""
import math

import cv2
import numpy as np

from .drawing import SHIFT, hsv, shade, to_cv

__all__ = ["counter_background"]


def counter_background(rng, H: int, W: int) -> np.ndarray:
    u = rng.uniform
    kind = int(rng.integers(5))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    low = cv2.resize(rng.random((6, 6)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    if kind == 0:  # grey stone
        base = np.array(hsv(u(0, 1), u(0, 0.1), u(0.45, 0.7)), np.float32)
        img = base[None, None] * (0.85 + 0.3 * low[..., None])
    elif kind == 1:  # granite speckle
        base = np.array(hsv(u(0, 1), u(0, 0.15), u(0.2, 0.35)), np.float32)
        img = base[None, None] * (0.9 + 0.2 * low[..., None])
        speck = rng.random((H, W)) < 0.08
        img[speck] += u(40, 90)
    elif kind == 2:  # tiles
        base = np.array(hsv(u(0, 1), u(0.1, 0.4), u(0.5, 0.85)), np.float32)
        img = base[None, None] * (0.95 + 0.1 * low[..., None])
        step = int(rng.integers(max(8, H // 8), max(10, H // 4)))
        off = int(rng.integers(step))
        grout = ((xx.astype(int) + off) % step < 1) | ((yy.astype(int) + off) % step < 1)
        img[grout] = np.array(hsv(0, 0, u(0.3, 0.9)), np.float32)
    elif kind == 3:  # marble
        base = np.array(hsv(u(0, 1), u(0, 0.06), u(0.82, 0.95)), np.float32)
        img = base[None, None] * (0.95 + 0.08 * low[..., None])
        img = np.ascontiguousarray(img)
        for _ in range(int(rng.integers(2, 5))):
            pts = np.cumsum(rng.normal(0, W / 8, (6, 2)), 0) + [u(0, W), u(0, H)]
            cv2.polylines(img, [to_cv(pts)], False, shade(tuple(base), 0.7), 1, cv2.LINE_AA, SHIFT)
    else:  # dark wood
        base = np.array(hsv(u(0.05, 0.08), u(0.4, 0.6), u(0.3, 0.45)), np.float32)
        a = u(-0.2, 0.2)
        grain = np.sin((yy * math.cos(a) + xx * math.sin(a)) * u(0.4, 0.8) + 3 * low) * 0.06
        img = base[None, None] * (1.0 + grain[..., None] + 0.1 * low[..., None])
    img = np.ascontiguousarray(img)
    if rng.random() < 0.6:  # back wall
        wh = int(H * u(0.08, 0.25))
        wall = np.array(hsv(u(0, 1), u(0, 0.4), u(0.5, 0.95)), np.float32)
        img[:wh] = wall
        if rng.random() < 0.5:
            step = int(rng.integers(6, 14))
            img[:wh, ::step] *= 0.8
            img[:wh:step] *= 0.8
        img[max(0, wh - 1):wh + 1] *= 0.6
    return img
