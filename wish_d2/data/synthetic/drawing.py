"""Drawing primitives of the synthetic world: colours, polygon outlines of simple shapes, and filled polygons that
write the image and the instance label map in one go (so a mask is exactly what was painted)."""
import colorsys
import math
from typing import Tuple

import cv2
import numpy as np

__all__ = ["SHIFT", "hsv", "shade", "ellipse", "rect", "rounded_rect", "capsule", "rot", "to_cv", "fill"]

SHIFT = 4  # sub-pixel bits for cv2 drawing
ONE = float(1 << SHIFT)


def hsv(h: float, s: float, v: float) -> Tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1))
    return (int(b * 255), int(g * 255), int(r * 255))  # BGR for cv2


def shade(c, f: float):
    return tuple(int(min(255, max(0, x * f))) for x in c)


def ellipse(cx, cy, a, b, n=28, a0=0.0, a1=2 * math.pi):
    t = np.linspace(a0, a1, n, endpoint=(a1 - a0) < 2 * math.pi - 1e-6)
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], 1)


def rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def rounded_rect(x0, y0, x1, y1, r, n=5):
    r = min(r, (x1 - x0) / 2, (y1 - y0) / 2)
    pts = []
    for cx, cy, a in ((x1 - r, y0 + r, -math.pi / 2), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, math.pi / 2),
                      (x0 + r, y0 + r, math.pi)):
        t = np.linspace(a, a + math.pi / 2, n)
        pts.append(np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1))
    return np.concatenate(pts)


def capsule(p0, p1, w, n=6):
    """Polygon of a thick segment with round ends from p0 to p1, width w."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    ang = math.atan2(d[1], d[0])
    r = w / 2
    t1 = np.linspace(ang - math.pi / 2, ang + math.pi / 2, n)
    t0 = np.linspace(ang + math.pi / 2, ang + 3 * math.pi / 2, n)
    return np.concatenate([np.stack([p1[0] + r * np.cos(t1), p1[1] + r * np.sin(t1)], 1),
                           np.stack([p0[0] + r * np.cos(t0), p0[1] + r * np.sin(t0)], 1)])


def rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def to_cv(pts: np.ndarray) -> np.ndarray:
    return np.round(pts * ONE).astype(np.int32)


def fill(img, label, pts, colour, lab):
    p = [to_cv(pts)]
    cv2.fillPoly(img, p, colour, cv2.LINE_AA, SHIFT)
    if label is not None:
        cv2.fillPoly(label, p, int(lab), cv2.LINE_8, SHIFT)
