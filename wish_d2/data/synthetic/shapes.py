"""Object appearance: the parts (silhouette polygons and painted details) of one instance of a taxonomy noun, with
its one-hand and two-hand grip points, in object-local coordinates (sizes are fractions of ``S = min(H, W)``)."""
import math

import numpy as np

from .drawing import capsule, ellipse, hsv, rect, rounded_rect, shade
from .taxonomy import Category

__all__ = ["object_parts"]



def object_parts(cat: Category, rng, S: float):
    """``(parts, grip, grips_both, radius)`` of a new instance, in object-local coordinates (x along the long
    axis, origin at the centre). ``parts``: ``("poly", pts, colour)`` silhouette polygons (the entity's mask),
    ``("fill", pts, colour)`` painted areas, ``("line", pts, colour, thickness)`` and ``("dot", centre, radius,
    colour)`` details (colour only). ``grips_both``: the two grip points of a two-hand hold, or ``None``."""
    L = S * rng.uniform(*cat.length)
    u = rng.uniform
    n = cat.name
    parts, grip, both = [], (0.0, 0.0), None
    if n == "knife":
        hw, bw = max(4.0, 0.13 * L), max(3.5, 0.11 * L)
        hx = -L / 2 + 0.4 * L
        handle = hsv(u(0.03, 0.09), u(0.3, 0.6), u(0.1, 0.3))
        steel = hsv(0.6, u(0.0, 0.08), u(0.72, 0.9))
        parts.append(("poly", rounded_rect(-L / 2, -hw / 2, hx + 1, hw / 2, hw * 0.3), handle))
        blade = np.array([[hx, -bw / 2], [L / 2 - 0.12 * L, -bw / 2], [L / 2, bw * 0.35], [hx, bw / 2]])
        parts.append(("poly", blade, steel))
        parts.append(("line", np.array([[hx + 1, bw * 0.35], [L / 2 - 2, bw * 0.3]]), shade(steel, 1.15), 1))
        parts.append(("dot", (-L / 2 + 0.15 * L, 0.0), 1.0, shade(steel, 0.9)))
        grip = (-L / 2 + 0.2 * L, 0.0)
    elif n == "spoon":
        col = hsv(u(0.48, 0.53), u(0.45, 0.75), u(0.6, 0.9))
        hw = max(3.0, 0.06 * L)
        parts.append(("poly", rect(-L / 2, -hw / 2, 0.2 * L, hw / 2), col))
        parts.append(("poly", ellipse(0.32 * L, 0, 0.18 * L, 0.11 * L * u(0.9, 1.2)), col))
        parts.append(("line", ellipse(0.32 * L, 0, 0.11 * L, 0.06 * L, 12), shade(col, 0.75), 1))
        grip = (-0.25 * L, 0.0)
    elif n == "cup":
        D = L / 1.25
        col = hsv(u(0.57, 0.65), u(0.55, 0.85), u(0.5, 0.85))
        inner = hsv(u(0.05, 0.1), u(0.5, 0.8), u(0.2, 0.35)) if rng.random() < 0.5 else shade(col, 0.55)
        parts.append(("poly", rounded_rect(0.42 * D, -0.13 * D, 0.66 * D, 0.13 * D, 0.06 * D), col))
        parts.append(("poly", ellipse(0, 0, D / 2, D / 2), col))
        parts.append(("dot", (0.0, 0.0), 0.38 * D, inner))
        grip = (-0.12 * D, 0.0)
    elif n == "bowl":
        D = L
        col = hsv(u(0.015, 0.05), u(0.55, 0.8), u(0.45, 0.7))
        parts.append(("poly", ellipse(0, 0, D / 2, D / 2 * u(0.92, 1.0)), col))
        parts.append(("dot", (0.0, 0.0), 0.4 * D, shade(col, 1.3)))
        if rng.random() < 0.5:
            food = hsv(u(0, 1), u(0.3, 0.9), u(0.4, 0.9))
            parts.append(("dot", (u(-0.05, 0.05) * D, u(-0.05, 0.05) * D), 0.22 * D, food))
        grip, both = (-0.42 * D, 0.0), ((-0.45 * D, 0.0), (0.45 * D, 0.0))
    elif n == "plate":
        D = L
        col = hsv(u(0, 1), u(0.0, 0.08), u(0.85, 0.97))
        parts.append(("poly", ellipse(0, 0, D / 2, D / 2), col))
        parts.append(("line", ellipse(0, 0, 0.37 * D, 0.37 * D, 24), shade(col, 0.85), 1))
        grip, both = (-0.44 * D, 0.0), ((-0.46 * D, 0.0), (0.46 * D, 0.0))
    elif n == "chopping board":
        Wb = L * u(0.6, 0.7)
        col = hsv(u(0.07, 0.1), u(0.35, 0.6), u(0.65, 0.85))
        parts.append(("poly", rounded_rect(-L / 2, -Wb / 2, L / 2, Wb / 2, 0.06 * L), col))
        for _ in range(int(rng.integers(4, 8))):
            y = u(-0.42, 0.42) * Wb
            parts.append(("line", np.array([[-0.45 * L, y], [0.0, y + u(-1.5, 1.5)], [0.45 * L, y + u(-2, 2)]]),
                          shade(col, u(0.8, 0.9)), 1))
        if rng.random() < 0.4:  # a hanging hole at one end
            parts.append(("dot", (0.4 * L, 0.0), 0.035 * L, shade(col, 0.6)))
        grip, both = (-0.46 * L, 0.0), ((-0.47 * L, 0.0), (0.47 * L, 0.0))
    elif n == "frying pan":
        D = L / 1.6
        col = hsv(u(0, 1), u(0.0, 0.2), u(0.1, 0.22))
        handle = col if rng.random() < 0.6 else hsv(u(0.05, 0.09), u(0.4, 0.7), u(0.3, 0.5))
        cx = -L / 2 + D / 2
        parts.append(("poly", rounded_rect(cx + 0.45 * D, -0.055 * D, L / 2, 0.055 * D, 0.04 * D), handle))
        parts.append(("poly", ellipse(cx, 0, D / 2, D / 2), col))
        parts.append(("dot", (cx, 0.0), 0.42 * D, shade(col, 1.35)))
        grip = (L / 2 - 0.18 * D, 0.0)
        both = ((cx - 0.47 * D, 0.0), (L / 2 - 0.18 * D, 0.0))
    elif n == "bottle":
        bw = 0.32 * L
        col = hsv(u(0.25, 0.38), u(0.5, 0.85), u(0.35, 0.7))
        cap = hsv(u(0, 1), u(0.5, 1.0), u(0.3, 0.95))
        parts.append(("poly", rounded_rect(-L / 2, -bw / 2, 0.2 * L, bw / 2, 0.12 * L), col))
        parts.append(("poly", rect(0.15 * L, -0.07 * L, 0.43 * L, 0.07 * L), col))
        parts.append(("poly", rect(0.42 * L, -0.085 * L, L / 2, 0.085 * L), cap))
        parts.append(("line", np.array([[-0.42 * L, -0.08 * L], [0.12 * L, -0.08 * L]]), shade(col, 1.4), 1))
        grip, both = (-0.1 * L, 0.0), ((-0.35 * L, 0.0), (0.3 * L, 0.0))
    elif n == "tomato":
        D = L
        col = hsv(u(-0.03, 0.02), u(0.75, 0.95), u(0.7, 0.95))
        parts.append(("poly", ellipse(0, 0, D / 2, D / 2 * u(0.9, 1.0)), col))
        star = []
        for k in range(10):
            r = (0.22 if k % 2 == 0 else 0.08) * D
            a = k * math.pi / 5
            star.append([r * math.cos(a), r * math.sin(a)])
        parts.append(("fill", np.array(star), hsv(0.3, 0.8, 0.45)))
        parts.append(("dot", (-0.2 * D, -0.2 * D), 0.07 * D, shade(col, 1.5)))
    elif n == "onion":
        D = L
        col = hsv(u(0.8, 0.9), u(0.4, 0.7), u(0.45, 0.7))
        parts.append(("poly", ellipse(0, 0, D / 2, D / 2 * u(0.8, 0.9)), col))
        for k in (-0.25, 0.0, 0.25):
            parts.append(("line", ellipse(0, k * D, 0.45 * D, 0.12 * D, 10, 0.2, math.pi - 0.2),
                          shade(col, 0.7), 1))
        parts.append(("poly", np.array([[0.45 * D, -0.05 * D], [0.62 * D, 0.0], [0.45 * D, 0.05 * D]]),
                      shade(col, 0.8)))
    elif n == "sponge":
        Ws = L * u(0.55, 0.68)
        col = hsv(u(0.13, 0.16), u(0.7, 0.95), u(0.85, 1.0))
        parts.append(("poly", rect(-L / 2, -Ws / 2, L / 2, Ws / 2), col))
        parts.append(("fill", rect(-L / 2, Ws / 2 - 0.28 * Ws, L / 2, Ws / 2), hsv(u(0.3, 0.36), 0.8, 0.5)))
        for _ in range(5):
            parts.append(("dot", (u(-0.4, 0.4) * L, u(-0.35, 0.1) * Ws), 0.8, shade(col, 0.7)))
    elif n == "jar":
        Wj = L * 0.72
        col = hsv(u(0.06, 0.1), u(0.8, 1.0), u(0.35, 0.55))
        lid = hsv(0.12, 0.5, u(0.7, 0.85)) if rng.random() < 0.6 else hsv(u(0.97, 1.0), 0.8, 0.7)
        parts.append(("poly", rounded_rect(-L / 2, -Wj / 2, 0.32 * L, Wj / 2, 0.1 * L), col))
        parts.append(("poly", rect(0.3 * L, -0.4 * Wj, L / 2, 0.4 * Wj), lid))
        parts.append(("fill", rect(-0.25 * L, -Wj / 2, 0.05 * L, Wj / 2), hsv(u(0, 1), 0.1, 0.9)))
        grip, both = (-0.05 * L, 0.0), ((-0.32 * L, 0.0), (0.42 * L, 0.0))
    elif n == "carrot":
        col = hsv(u(0.06, 0.09), u(0.85, 1.0), u(0.85, 1.0))
        bw = 0.2 * L
        body = np.array([[-0.3 * L, -bw / 2], [0.45 * L, -0.02 * L], [L / 2, 0.0], [0.45 * L, 0.02 * L],
                         [-0.3 * L, bw / 2], [-0.33 * L, 0.0]])
        leaf = hsv(u(0.25, 0.33), 0.8, 0.5)
        for dy in (-0.05, 0.0, 0.05):
            parts.append(("poly", capsule((-0.3 * L, dy * L), (-L / 2, dy * 2.2 * L), max(2.0, 0.04 * L)), leaf))
        parts.append(("poly", body, col))
        for x in (-0.1, 0.1, 0.25):
            parts.append(("line", np.array([[x * L, -0.06 * L], [x * L + 1, 0.05 * L]]), shade(col, 0.75), 1))
        grip = (-0.1 * L, 0.0)
    else:  # pragma: no cover
        raise KeyError(n)
    radius = max(float(np.abs(p[1]).max()) if p[0] in ("poly", "fill") else 0 for p in parts) * 1.05
    return parts, np.array(grip, float), both, radius
