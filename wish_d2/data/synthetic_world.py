"""The synthetic world: taxonomy, hands, grips, scene sampling and frame rendering (the rules are documented in
:mod:`wish_d2.data.synthetic`). Deterministic by ``(seed, split, index)``."""
import colorsys
import math
from dataclasses import dataclass
from typing import Dict, List, Tuple

import cv2
import numpy as np

from ..utils.masks import polygons_to_rle
from .narrations import epic_noun_to_phrase

GENERATOR_VERSION = 2
SPLITS = {"train": 0, "val": 1, "test": 2}
PARTICIPANTS = {"train": "P90", "val": "P91", "test": "P92"}
FRAMES_PER_VIDEO = 50
FRAME_STRIDE = 100
NARRATION_HALF_WIDTH = 20
FPS = 50
SHIFT = 4  # sub-pixel bits for cv2 drawing
ONE = float(1 << SHIFT)

# probabilities of the world (documented in the module docstring)
P_HAND = 0.85
P_BOTH = 0.15
P_HOLD = 0.55
P_FLAT_WHEN_FREE = 0.7
P_SURFACE = 0.35
P_TOUCH = 0.3
P_SAME_CATEGORY = 0.4
FREE_COUNTS = (0.15, 0.35, 0.3, 0.2)
# narration noise
P_OMIT = 0.1
P_DISTRACTOR = 0.2
P_SYNONYM = 0.1
P_NEIGHBOUR = 0.1
P_MENTION_WHEN_EMPTY = 0.7
# segmenter imitation
P_MISS = 0.04
JITTER_SIGMA = 0.15  # std of the boundary noise field (in mask units, threshold 0.5)
GRIP_REACH = 0.45  # grip fingers cover this fraction of the held object's extent along the hand
P_OVERSEG = 0.12
P_UNDERSEG = 0.12


@dataclass(frozen=True)
class Category:
    name: str  # phrase used in the taxonomy / metadata
    key: str  # EPIC noun key written in CSV and VISOR names
    synonyms: Tuple[str, ...]  # EPIC keys of synonyms (narration noise)
    verbs: Tuple[str, ...]
    length: Tuple[float, float]  # long side, fraction of S
    hold: float
    both: float
    surface: float
    scene: float
    grip: str  # handle | edge | body


CATEGORIES: List[Category] = [
    Category("knife", "knife", ("blade",), ("cut", "take", "hold", "wash", "put down"), (0.26, 0.34), 1.0, 0, 0, 1.0,
             "handle"),
    Category("spoon", "spoon", ("teaspoon",), ("stir", "take", "scoop", "wash", "hold"), (0.22, 0.30), 0.9, 0, 0,
             0.8, "handle"),
    Category("cup", "cup", ("mug",), ("take", "drink from", "fill", "wash", "hold"), (0.15, 0.19), 1.0, 0, 0, 1.0,
             "body"),
    Category("bowl", "bowl", ("dish",), ("take", "hold", "wash", "move", "pour"), (0.20, 0.25), 0.6, 1.0, 0.1, 0.8,
             "edge"),
    Category("plate", "plate", ("dish:flat",), ("take", "hold", "wash", "move", "put down"), (0.24, 0.30), 0.4, 1.0,
             0.5, 0.8, "edge"),
    Category("chopping board", "board:chopping", ("board:cutting",), ("lift", "move", "wash", "hold", "put down"),
             (0.40, 0.50), 0.04, 0.3, 1.0, 0.6, "edge"),
    Category("frying pan", "pan:frying", ("skillet",), ("lift", "move", "hold", "wash", "shake"), (0.38, 0.48), 0.12,
             0.5, 0.6, 0.6, "handle"),
    Category("bottle", "bottle", ("flask",), ("open", "pour", "take", "shake", "hold"), (0.22, 0.28), 0.8, 0, 0,
             0.8, "handle"),
    Category("tomato", "tomato", ("tomato:cherry",), ("take", "wash", "cut", "hold", "put down"), (0.08, 0.10), 0.8,
             0, 0, 0.9, "body"),
    Category("onion", "onion", ("onion:red",), ("take", "peel", "cut", "hold", "put down"), (0.09, 0.12), 0.8, 0, 0,
             0.8, "body"),
    Category("sponge", "sponge", ("scrubber",), ("take", "squeeze", "wipe with", "rinse", "hold"), (0.12, 0.15), 0.9,
             0, 0, 0.7, "handle"),
    Category("jar", "jar", ("container:glass",), ("open", "close", "take", "shake", "hold"), (0.14, 0.18), 0.7, 0,
             0, 0.7, "handle"),
    Category("carrot", "carrot", ("carrot:baby",), ("take", "peel", "cut", "wash", "hold"), (0.20, 0.26), 0.8, 0, 0,
             0.8, "handle"),
]
NOUNS = [c.name for c in CATEGORIES]
SYNONYM_KEYS = {c.key: c.synonyms for c in CATEGORIES}
_KEY_TO_CLASS = {c.key: i for i, c in enumerate(CATEGORIES)}
for _i, _c in enumerate(CATEGORIES):
    for _s in _c.synonyms:
        _KEY_TO_CLASS[_s] = _i
_VERBS = sorted({v for c in CATEGORIES for v in c.verbs} | {"look at", "reach for", "look around", "point at"})
_EMPTY_VERBS = ("look at", "reach for", "point at")
_PREPS = ("on", "with", "into", "next to", "from")


def synonym_map() -> Dict[str, str]:
    """Synonym phrase -> taxonomy phrase (e.g. ``"mug"`` -> ``"cup"``), usable as a loader ``synonyms=``."""
    return {epic_noun_to_phrase(s): c.name for c in CATEGORIES for s in c.synonyms}


# ------------------------------------------------------------------------------------------------ colours


def _hsv(h: float, s: float, v: float) -> Tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1))
    return (int(b * 255), int(g * 255), int(r * 255))  # BGR for cv2


def _shade(c, f: float):
    return tuple(int(min(255, max(0, x * f))) for x in c)


# ------------------------------------------------------------------------------------------------ geometry


def _ellipse(cx, cy, a, b, n=28, a0=0.0, a1=2 * math.pi):
    t = np.linspace(a0, a1, n, endpoint=(a1 - a0) < 2 * math.pi - 1e-6)
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], 1)


def _rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _rounded_rect(x0, y0, x1, y1, r, n=5):
    r = min(r, (x1 - x0) / 2, (y1 - y0) / 2)
    pts = []
    for cx, cy, a in ((x1 - r, y0 + r, -math.pi / 2), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, math.pi / 2),
                      (x0 + r, y0 + r, math.pi)):
        t = np.linspace(a, a + math.pi / 2, n)
        pts.append(np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1))
    return np.concatenate(pts)


def _capsule(p0, p1, w, n=6):
    """Polygon of a thick segment with round ends from p0 to p1, width w."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    ang = math.atan2(d[1], d[0])
    r = w / 2
    t1 = np.linspace(ang - math.pi / 2, ang + math.pi / 2, n)
    t0 = np.linspace(ang + math.pi / 2, ang + 3 * math.pi / 2, n)
    return np.concatenate([np.stack([p1[0] + r * np.cos(t1), p1[1] + r * np.sin(t1)], 1),
                           np.stack([p0[0] + r * np.cos(t0), p0[1] + r * np.sin(t0)], 1)])


def _rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _to_cv(pts: np.ndarray) -> np.ndarray:
    return np.round(pts * ONE).astype(np.int32)


# ------------------------------------------------------------------------------------------------ shapes
# Each shape returns (parts, grip, grips_both, radius) in object-local coordinates (x along the long axis,
# origin at the object centre). parts: ("poly", pts, colour) filled (in the entity's mask), or ("line", pts,
# colour, thickness) / ("dot", centre, radius, colour) details drawn inside the silhouette (colour only).


def _shape(cat: Category, rng, S: float):
    L = S * rng.uniform(*cat.length)
    u = rng.uniform
    n = cat.name
    parts, grip, both = [], (0.0, 0.0), None
    if n == "knife":
        hw, bw = max(4.0, 0.13 * L), max(3.5, 0.11 * L)
        hx = -L / 2 + 0.4 * L
        handle = _hsv(u(0.03, 0.09), u(0.3, 0.6), u(0.1, 0.3))
        steel = _hsv(0.6, u(0.0, 0.08), u(0.72, 0.9))
        parts.append(("poly", _rounded_rect(-L / 2, -hw / 2, hx + 1, hw / 2, hw * 0.3), handle))
        blade = np.array([[hx, -bw / 2], [L / 2 - 0.12 * L, -bw / 2], [L / 2, bw * 0.35], [hx, bw / 2]])
        parts.append(("poly", blade, steel))
        parts.append(("line", np.array([[hx + 1, bw * 0.35], [L / 2 - 2, bw * 0.3]]), _shade(steel, 1.15), 1))
        parts.append(("dot", (-L / 2 + 0.15 * L, 0.0), 1.0, _shade(steel, 0.9)))
        grip = (-L / 2 + 0.2 * L, 0.0)
    elif n == "spoon":
        col = _hsv(u(0.48, 0.53), u(0.45, 0.75), u(0.6, 0.9))
        hw = max(3.0, 0.06 * L)
        parts.append(("poly", _rect(-L / 2, -hw / 2, 0.2 * L, hw / 2), col))
        parts.append(("poly", _ellipse(0.32 * L, 0, 0.18 * L, 0.11 * L * u(0.9, 1.2)), col))
        parts.append(("line", _ellipse(0.32 * L, 0, 0.11 * L, 0.06 * L, 12), _shade(col, 0.75), 1))
        grip = (-0.25 * L, 0.0)
    elif n == "cup":
        D = L / 1.25
        col = _hsv(u(0.57, 0.65), u(0.55, 0.85), u(0.5, 0.85))
        inner = _hsv(u(0.05, 0.1), u(0.5, 0.8), u(0.2, 0.35)) if rng.random() < 0.5 else _shade(col, 0.55)
        parts.append(("poly", _rounded_rect(0.42 * D, -0.13 * D, 0.66 * D, 0.13 * D, 0.06 * D), col))
        parts.append(("poly", _ellipse(0, 0, D / 2, D / 2), col))
        parts.append(("dot", (0.0, 0.0), 0.38 * D, inner))
        grip = (-0.12 * D, 0.0)
    elif n == "bowl":
        D = L
        col = _hsv(u(0.015, 0.05), u(0.55, 0.8), u(0.45, 0.7))
        parts.append(("poly", _ellipse(0, 0, D / 2, D / 2 * u(0.92, 1.0)), col))
        parts.append(("dot", (0.0, 0.0), 0.4 * D, _shade(col, 1.3)))
        if rng.random() < 0.5:
            food = _hsv(u(0, 1), u(0.3, 0.9), u(0.4, 0.9))
            parts.append(("dot", (u(-0.05, 0.05) * D, u(-0.05, 0.05) * D), 0.22 * D, food))
        grip, both = (-0.42 * D, 0.0), ((-0.45 * D, 0.0), (0.45 * D, 0.0))
    elif n == "plate":
        D = L
        col = _hsv(u(0, 1), u(0.0, 0.08), u(0.85, 0.97))
        parts.append(("poly", _ellipse(0, 0, D / 2, D / 2), col))
        parts.append(("line", _ellipse(0, 0, 0.37 * D, 0.37 * D, 24), _shade(col, 0.85), 1))
        grip, both = (-0.44 * D, 0.0), ((-0.46 * D, 0.0), (0.46 * D, 0.0))
    elif n == "chopping board":
        Wb = L * u(0.6, 0.7)
        col = _hsv(u(0.07, 0.1), u(0.35, 0.6), u(0.65, 0.85))
        parts.append(("poly", _rounded_rect(-L / 2, -Wb / 2, L / 2, Wb / 2, 0.06 * L), col))
        for _ in range(int(rng.integers(4, 8))):
            y = u(-0.42, 0.42) * Wb
            parts.append(("line", np.array([[-0.45 * L, y], [0.0, y + u(-1.5, 1.5)], [0.45 * L, y + u(-2, 2)]]),
                          _shade(col, u(0.8, 0.9)), 1))
        if rng.random() < 0.4:  # a hanging hole at one end
            parts.append(("dot", (0.4 * L, 0.0), 0.035 * L, _shade(col, 0.6)))
        grip, both = (-0.46 * L, 0.0), ((-0.47 * L, 0.0), (0.47 * L, 0.0))
    elif n == "frying pan":
        D = L / 1.6
        col = _hsv(u(0, 1), u(0.0, 0.2), u(0.1, 0.22))
        handle = col if rng.random() < 0.6 else _hsv(u(0.05, 0.09), u(0.4, 0.7), u(0.3, 0.5))
        cx = -L / 2 + D / 2
        parts.append(("poly", _rounded_rect(cx + 0.45 * D, -0.055 * D, L / 2, 0.055 * D, 0.04 * D), handle))
        parts.append(("poly", _ellipse(cx, 0, D / 2, D / 2), col))
        parts.append(("dot", (cx, 0.0), 0.42 * D, _shade(col, 1.35)))
        grip = (L / 2 - 0.18 * D, 0.0)
        both = ((cx - 0.47 * D, 0.0), (L / 2 - 0.18 * D, 0.0))
    elif n == "bottle":
        bw = 0.32 * L
        col = _hsv(u(0.25, 0.38), u(0.5, 0.85), u(0.35, 0.7))
        cap = _hsv(u(0, 1), u(0.5, 1.0), u(0.3, 0.95))
        parts.append(("poly", _rounded_rect(-L / 2, -bw / 2, 0.2 * L, bw / 2, 0.12 * L), col))
        parts.append(("poly", _rect(0.15 * L, -0.07 * L, 0.43 * L, 0.07 * L), col))
        parts.append(("poly", _rect(0.42 * L, -0.085 * L, L / 2, 0.085 * L), cap))
        parts.append(("line", np.array([[-0.42 * L, -0.08 * L], [0.12 * L, -0.08 * L]]), _shade(col, 1.4), 1))
        grip, both = (-0.1 * L, 0.0), ((-0.35 * L, 0.0), (0.3 * L, 0.0))
    elif n == "tomato":
        D = L
        col = _hsv(u(-0.03, 0.02), u(0.75, 0.95), u(0.7, 0.95))
        parts.append(("poly", _ellipse(0, 0, D / 2, D / 2 * u(0.9, 1.0)), col))
        star = []
        for k in range(10):
            r = (0.22 if k % 2 == 0 else 0.08) * D
            a = k * math.pi / 5
            star.append([r * math.cos(a), r * math.sin(a)])
        parts.append(("fill", np.array(star), _hsv(0.3, 0.8, 0.45)))
        parts.append(("dot", (-0.2 * D, -0.2 * D), 0.07 * D, _shade(col, 1.5)))
    elif n == "onion":
        D = L
        col = _hsv(u(0.8, 0.9), u(0.4, 0.7), u(0.45, 0.7))
        parts.append(("poly", _ellipse(0, 0, D / 2, D / 2 * u(0.8, 0.9)), col))
        for k in (-0.25, 0.0, 0.25):
            parts.append(("line", _ellipse(0, k * D, 0.45 * D, 0.12 * D, 10, 0.2, math.pi - 0.2),
                          _shade(col, 0.7), 1))
        parts.append(("poly", np.array([[0.45 * D, -0.05 * D], [0.62 * D, 0.0], [0.45 * D, 0.05 * D]]),
                      _shade(col, 0.8)))
    elif n == "sponge":
        Ws = L * u(0.55, 0.68)
        col = _hsv(u(0.13, 0.16), u(0.7, 0.95), u(0.85, 1.0))
        parts.append(("poly", _rect(-L / 2, -Ws / 2, L / 2, Ws / 2), col))
        parts.append(("fill", _rect(-L / 2, Ws / 2 - 0.28 * Ws, L / 2, Ws / 2), _hsv(u(0.3, 0.36), 0.8, 0.5)))
        for _ in range(5):
            parts.append(("dot", (u(-0.4, 0.4) * L, u(-0.35, 0.1) * Ws), 0.8, _shade(col, 0.7)))
    elif n == "jar":
        Wj = L * 0.72
        col = _hsv(u(0.06, 0.1), u(0.8, 1.0), u(0.35, 0.55))
        lid = _hsv(0.12, 0.5, u(0.7, 0.85)) if rng.random() < 0.6 else _hsv(u(0.97, 1.0), 0.8, 0.7)
        parts.append(("poly", _rounded_rect(-L / 2, -Wj / 2, 0.32 * L, Wj / 2, 0.1 * L), col))
        parts.append(("poly", _rect(0.3 * L, -0.4 * Wj, L / 2, 0.4 * Wj), lid))
        parts.append(("fill", _rect(-0.25 * L, -Wj / 2, 0.05 * L, Wj / 2), _hsv(u(0, 1), 0.1, 0.9)))
        grip, both = (-0.05 * L, 0.0), ((-0.32 * L, 0.0), (0.42 * L, 0.0))
    elif n == "carrot":
        col = _hsv(u(0.06, 0.09), u(0.85, 1.0), u(0.85, 1.0))
        bw = 0.2 * L
        body = np.array([[-0.3 * L, -bw / 2], [0.45 * L, -0.02 * L], [L / 2, 0.0], [0.45 * L, 0.02 * L],
                         [-0.3 * L, bw / 2], [-0.33 * L, 0.0]])
        leaf = _hsv(u(0.25, 0.33), 0.8, 0.5)
        for dy in (-0.05, 0.0, 0.05):
            parts.append(("poly", _capsule((-0.3 * L, dy * L), (-L / 2, dy * 2.2 * L), max(2.0, 0.04 * L)), leaf))
        parts.append(("poly", body, col))
        for x in (-0.1, 0.1, 0.25):
            parts.append(("line", np.array([[x * L, -0.06 * L], [x * L + 1, 0.05 * L]]), _shade(col, 0.75), 1))
        grip = (-0.1 * L, 0.0)
    else:  # pragma: no cover
        raise KeyError(n)
    radius = max(float(np.abs(p[1]).max()) if p[0] in ("poly", "fill") else 0 for p in parts) * 1.05
    return parts, np.array(grip, float), both, radius


# ------------------------------------------------------------------------------------------------ rendering


def _background(rng, H: int, W: int) -> np.ndarray:
    u = rng.uniform
    kind = int(rng.integers(5))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    low = cv2.resize(rng.random((6, 6)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    if kind == 0:  # grey stone
        base = np.array(_hsv(u(0, 1), u(0, 0.1), u(0.45, 0.7)), np.float32)
        img = base[None, None] * (0.85 + 0.3 * low[..., None])
    elif kind == 1:  # granite speckle
        base = np.array(_hsv(u(0, 1), u(0, 0.15), u(0.2, 0.35)), np.float32)
        img = base[None, None] * (0.9 + 0.2 * low[..., None])
        speck = rng.random((H, W)) < 0.08
        img[speck] += u(40, 90)
    elif kind == 2:  # tiles
        base = np.array(_hsv(u(0, 1), u(0.1, 0.4), u(0.5, 0.85)), np.float32)
        img = base[None, None] * (0.95 + 0.1 * low[..., None])
        step = int(rng.integers(max(8, H // 8), max(10, H // 4)))
        off = int(rng.integers(step))
        grout = ((xx.astype(int) + off) % step < 1) | ((yy.astype(int) + off) % step < 1)
        img[grout] = np.array(_hsv(0, 0, u(0.3, 0.9)), np.float32)
    elif kind == 3:  # marble
        base = np.array(_hsv(u(0, 1), u(0, 0.06), u(0.82, 0.95)), np.float32)
        img = base[None, None] * (0.95 + 0.08 * low[..., None])
        img = np.ascontiguousarray(img)
        for _ in range(int(rng.integers(2, 5))):
            pts = np.cumsum(rng.normal(0, W / 8, (6, 2)), 0) + [u(0, W), u(0, H)]
            cv2.polylines(img, [_to_cv(pts)], False, _shade(tuple(base), 0.7), 1, cv2.LINE_AA, SHIFT)
    else:  # dark wood
        base = np.array(_hsv(u(0.05, 0.08), u(0.4, 0.6), u(0.3, 0.45)), np.float32)
        a = u(-0.2, 0.2)
        grain = np.sin((yy * math.cos(a) + xx * math.sin(a)) * u(0.4, 0.8) + 3 * low) * 0.06
        img = base[None, None] * (1.0 + grain[..., None] + 0.1 * low[..., None])
    img = np.ascontiguousarray(img)
    if rng.random() < 0.6:  # back wall
        wh = int(H * u(0.08, 0.25))
        wall = np.array(_hsv(u(0, 1), u(0, 0.4), u(0.5, 0.95)), np.float32)
        img[:wh] = wall
        if rng.random() < 0.5:
            step = int(rng.integers(6, 14))
            img[:wh, ::step] *= 0.8
            img[:wh:step] *= 0.8
        img[max(0, wh - 1):wh + 1] *= 0.6
    return img


def _fill(img, label, pts, colour, lab):
    p = [_to_cv(pts)]
    cv2.fillPoly(img, p, colour, cv2.LINE_AA, SHIFT)
    if label is not None:
        cv2.fillPoly(label, p, int(lab), cv2.LINE_8, SHIFT)


def _draw_object(img, label, obj):
    R, c = obj["R"], obj["c"]
    for part in obj["parts"]:
        kind = part[0]
        if kind in ("poly", "fill"):
            pts = part[1] @ R.T + c
            _fill(img, label if kind == "poly" else None, pts, part[2], obj["lab"])
        elif kind == "line":
            pts = part[1] @ R.T + c
            cv2.polylines(img, [_to_cv(pts)], False, part[2], part[3], cv2.LINE_AA, SHIFT)
        elif kind == "dot":
            ctr = np.array(part[1]) @ R.T + c
            r = max(0.6, part[2])
            cv2.ellipse(img, ((float(ctr[0]), float(ctr[1])), (2 * r, 2 * r), 0.0), part[3], -1, cv2.LINE_AA)


def _hand_geometry(hand, rng):
    """Polygons of one hand: base (arm + palm) and top (fingers + thumb), from its pose and posture."""
    P, u_, pl, pw = hand["P"], hand["u"], hand["pl"], hand["pw"]
    v_ = np.array([-u_[1], u_[0]])
    E = hand["E"]
    aw = hand["aw"]
    wrist = P - u_ * pl * 0.45
    d = wrist - E
    n = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-6)
    arm = np.array([E + n * aw * 0.6, wrist + n * aw * 0.45, wrist - n * aw * 0.45, E - n * aw * 0.6])
    ang = math.atan2(u_[1], u_[0])
    palm = _ellipse(0, 0, pl / 2, pw / 2, 24) @ _rot(ang).T + P
    base = [arm, palm]
    thumb_sign = 1.0 if hand["side"] == "left" else -1.0  # thumb towards the body midline, palm down
    fw = pw * 0.2
    top = []
    posture = hand["posture"]
    offsets = np.linspace(-0.39, 0.39, 4) * pw
    if posture == "grip":
        start_u, flen = hand["grip_start"], hand["grip_len"]
        for k, o in enumerate(offsets):
            b = P + u_ * start_u + v_ * o
            top.append(_capsule(b, b + u_ * flen * (0.85 if k in (0, 3) else 1.0), fw))
        tb = P + v_ * thumb_sign * pw * 0.42 + u_ * pl * 0.05
        tdir = _rot(-thumb_sign * 0.9) @ u_
        top.append(_capsule(tb, tb + tdir * pl * 0.3, fw * 1.1))
    else:
        flen = pl * (rng.uniform(0.5, 0.62) if posture == "flat" else rng.uniform(0.22, 0.3))
        spread = 0.12 if posture == "flat" else 0.02
        for k, o in enumerate(offsets):
            b = P + u_ * pl * 0.35 + v_ * o
            dirk = _rot((k - 1.5) * spread) @ u_
            top.append(_capsule(b, b + dirk * flen * (0.85 if k in (0, 3) else 1.0),
                                fw * (1.0 if posture == "flat" else 1.15)))
        tb = P + v_ * thumb_sign * pw * 0.42 - u_ * pl * 0.1
        tdir = _rot(-thumb_sign * (1.0 if posture == "flat" else 0.6)) @ u_
        top.append(_capsule(tb, tb + tdir * pl * (0.45 if posture == "flat" else 0.3), fw * 1.1))
    hand["base"], hand["top"] = base, top


def _draw_hand_layer(img, label, hand, layer):
    skin = hand["skin"]
    if layer == "base":
        for pts in hand["base"]:
            _fill(img, label, pts, skin, hand["lab"])
        u_, P = hand["u"], hand["P"]
        v_ = np.array([-u_[1], u_[0]])
        for o in np.linspace(-0.3, 0.3, 4) * hand["pw"]:  # tendons on the back of the hand
            a = P + v_ * o - u_ * hand["pl"] * 0.25
            cv2.polylines(img, [_to_cv(np.array([a, a + u_ * hand["pl"] * 0.4]))], False, _shade(skin, 0.9), 1,
                          cv2.LINE_AA, SHIFT)
    else:
        edge = _shade(skin, 0.62)
        for pts in hand["top"]:
            _fill(img, label, pts, skin, hand["lab"])
            cv2.polylines(img, [_to_cv(pts)], True, edge, 1, cv2.LINE_AA, SHIFT)


# ------------------------------------------------------------------------------------------------ scene


def _choice(rng, weights, allowed=None):
    w = np.array([wt if (allowed is None or i in allowed) else 0.0 for i, wt in enumerate(weights)], float)
    if w.sum() <= 0:
        return None
    return int(rng.choice(len(w), p=w / w.sum()))


def _new_object(rng, cat_idx, S, role):
    parts, grip, both, radius = _shape(CATEGORIES[cat_idx], rng, S)
    return {"cat": cat_idx, "parts": parts, "grip": grip, "grips_both": both, "radius": radius, "role": role,
            "holders": []}


def _set_pose(obj, centre, angle):
    obj["c"] = np.asarray(centre, float)
    obj["angle"] = angle
    obj["R"] = _rot(angle)


def _sample_hand_pose(rng, side, H, W, S):
    u = rng.uniform
    if rng.random() < 0.3:
        E = np.array([-0.06 * S, u(0.65, 1.0) * H])
    else:
        E = np.array([u(-0.05, 0.4) * W, H + 0.06 * S])
    P = np.array([u(0.15, 0.6) * W, u(0.35, 0.72) * H])
    if side == "right":
        E[0], P[0] = W - E[0], W - P[0]
    return E, P


def _make_hand(rng, side, E, P, S, skin, posture):
    d = P - E
    ang = math.atan2(d[1], d[0]) + rng.uniform(-0.26, 0.26)
    hand = {"side": side, "E": E, "P": P, "u": np.array([math.cos(ang), math.sin(ang)]),
            "pl": S * rng.uniform(0.13, 0.16), "pw": S * rng.uniform(0.12, 0.14),
            "skin": _shade(skin, rng.uniform(0.93, 1.07)), "posture": posture, "held": None}
    hand["aw"] = hand["pw"] * rng.uniform(0.95, 1.1)
    return hand


def _object_extent_local(obj):
    pts = np.concatenate([p[1] for p in obj["parts"] if p[0] == "poly"])
    return pts


def _place_held(rng, obj, hand):
    """Grip the object with one hand: pose aligned with the hand, fingers cover it from the palm side."""
    cat = CATEGORIES[obj["cat"]]
    ang = math.atan2(hand["u"][1], hand["u"][0])
    jitter = rng.uniform(-0.26, 0.26)
    if cat.grip == "handle":
        phi = ang + math.pi / 2 + jitter + (math.pi if rng.random() < 0.5 else 0.0)
    elif cat.grip == "edge":
        phi = ang + jitter
    else:
        phi = rng.uniform(0, 2 * math.pi)
    G = hand["P"] + hand["u"] * hand["pl"] * 0.45
    R = _rot(phi)
    _set_pose(obj, G - R @ obj["grip"], phi)
    _set_grip_fingers(hand, obj)


def _set_grip_fingers(hand, obj):
    """Fingers start on the visible palm just behind the object's near edge and reach ~45% across it."""
    pts = _object_extent_local(obj) @ obj["R"].T + obj["c"]
    along = (pts - hand["P"]) @ hand["u"]
    # object extent along the hand direction, near the fingers' lane
    near, far = float(along.min()), float(along.max())
    near = max(near, -hand["pl"] * 0.2)
    start = min(hand["pl"] * 0.35, near - 2.0)
    reach = near + max(hand["pl"] * 0.2, GRIP_REACH * (far - near))
    hand["grip_start"] = start
    hand["grip_len"] = max(hand["pl"] * 0.2, min(reach - start, hand["pl"] * 0.7))


def _inside(c, H, W, margin):
    return margin * W <= c[0] <= (1 - margin) * W and margin * H <= c[1] <= (1 - margin) * H


def _sample_scene(rng, H, W, S):
    skin = _hsv(rng.uniform(0.03, 0.08), rng.uniform(0.25, 0.6), rng.uniform(0.45, 0.95))
    present = {s: rng.random() < P_HAND for s in ("left", "right")}
    hands: Dict[str, Dict] = {}
    objects: List[Dict] = []
    hold_w = [c.hold for c in CATEGORIES]
    both_w = [c.both for c in CATEGORIES]

    both_obj = None
    if present["left"] and present["right"] and rng.random() < P_BOTH:
        both_obj = _new_object(rng, _choice(rng, both_w), S, "both")
        for _ in range(10):
            c = np.array([rng.uniform(0.38, 0.62) * W, rng.uniform(0.38, 0.6) * H])
            phi = rng.uniform(-0.35, 0.35)
            _set_pose(both_obj, c, phi)
            g0 = both_obj["R"] @ np.array(both_obj["grips_both"][0]) + c
            g1 = both_obj["R"] @ np.array(both_obj["grips_both"][1]) + c
            for side, G in (("left", g0), ("right", g1)):
                E, _ = _sample_hand_pose(rng, side, H, W, S)
                hand = _make_hand(rng, side, E, G, S, skin, "grip")
                hand["u"] = (G - E) / (np.linalg.norm(G - E) + 1e-6)  # aim exactly at the grip point
                hand["P"] = G - hand["u"] * hand["pl"] * 0.45
                hands[side] = hand
            if np.linalg.norm(hands["left"]["P"] - hands["right"]["P"]) > 0.3 * S:
                break
        for side in ("left", "right"):
            hands[side]["held"] = both_obj
            _set_grip_fingers(hands[side], both_obj)
        both_obj["holders"] = ["left", "right"]
        objects.append(both_obj)
    else:
        for _ in range(10):
            hands = {}
            for side in ("left", "right"):
                if not present[side]:
                    continue
                holds = rng.random() < P_HOLD
                posture = "grip" if holds else ("flat" if rng.random() < P_FLAT_WHEN_FREE else "fist")
                E, P = _sample_hand_pose(rng, side, H, W, S)
                hands[side] = _make_hand(rng, side, E, P, S, skin, posture)
            if len(hands) < 2 or np.linalg.norm(hands["left"]["P"] - hands["right"]["P"]) > 0.3 * S:
                break
        for side, hand in hands.items():
            if hand["posture"] != "grip":
                continue
            obj = _new_object(rng, _choice(rng, hold_w), S, "held")
            for _ in range(6):
                _place_held(rng, obj, hand)
                if _inside(obj["c"], H, W, 0.04):
                    break
            obj["holders"] = [side]
            hand["held"] = obj
            objects.append(obj)

    resting: List[Dict] = []
    surf_w = [c.surface for c in CATEGORIES]
    small = [i for i, c in enumerate(CATEGORIES) if c.surface == 0 and c.length[1] <= 0.3]
    scene_w = [c.scene for c in CATEGORIES]
    for side, hand in hands.items():
        if rng.random() < P_SURFACE:
            obj = _new_object(rng, _choice(rng, surf_w), S, "surface")
            off = hand["u"] * rng.uniform(0, 0.3) * hand["pl"] + np.array([-hand["u"][1], hand["u"][0]]) * \
                rng.uniform(-0.3, 0.3) * obj["radius"]
            _set_pose(obj, hand["P"] + off, rng.uniform(0, 2 * math.pi))
            resting.append(obj)
        if rng.random() < P_TOUCH:
            obj = _new_object(rng, _choice(rng, scene_w, small), S, "touch")
            v_ = np.array([-hand["u"][1], hand["u"][0]])
            if rng.random() < 0.6:  # near the finger tips
                c = hand["P"] + hand["u"] * (hand["pl"] * 0.75 + obj["radius"] * rng.uniform(0.2, 0.7)) + \
                    v_ * rng.uniform(-0.8, 0.8) * hand["pw"]
            else:  # beside the palm
                c = hand["P"] + v_ * np.sign(rng.uniform(-1, 1)) * (hand["pw"] * 0.45 + obj["radius"] * 0.5) + \
                    hand["u"] * rng.uniform(-0.3, 0.3) * hand["pl"]
            _set_pose(obj, c, rng.uniform(0, 2 * math.pi))
            resting.append(obj)
    palms = [h["P"] for h in hands.values()]
    held_cats = [o["cat"] for o in objects]
    if held_cats and rng.random() < P_SAME_CATEGORY:
        obj = _new_object(rng, held_cats[int(rng.integers(len(held_cats)))], S, "same_category")
        for _ in range(12):
            c = np.array([rng.uniform(0.1, 0.9) * W, rng.uniform(0.15, 0.85) * H])
            if all(np.linalg.norm(c - p) > 0.25 * S + obj["radius"] * 0.5 for p in palms):
                break
        _set_pose(obj, c, rng.uniform(0, 2 * math.pi))
        resting.append(obj)
    n_free = int(rng.choice(len(FREE_COUNTS), p=FREE_COUNTS))
    for _ in range(n_free):
        obj = _new_object(rng, _choice(rng, scene_w), S, "free")
        _set_pose(obj, np.array([rng.uniform(0.05, 0.95) * W, rng.uniform(0.1, 0.9) * H]), rng.uniform(0, 2 * math.pi))
        resting.append(obj)
    # surfaces first (largest first), then the rest in sampling order
    resting.sort(key=lambda o: (0 if CATEGORIES[o["cat"]].surface > 0 and o["role"] == "surface" else 1,
                                -o["radius"] if o["role"] == "surface" else 0))
    return hands, objects, resting


def _trace_polygons(mask: np.ndarray) -> List[List[List[float]]]:
    """Exact pixel outline polygons of a mask (outer boundaries only), VISOR style ``[[x, y], ...]``.

    Traced on the 2x nearest upsampling at pixel centres and simplified by at most a quarter pixel, so
    pycocotools rasterises them back to the same pixels (holes are filled; checked in the tests)."""
    up = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = cv2.approxPolyDP(c, 0.5, True)
        if len(c) < 3:
            continue
        pts = (c.reshape(-1, 2).astype(np.float64) + 0.5) / 2.0
        polys.append(pts.tolist())
    return polys


def _polys_rle(polys, H, W):
    """``[[(x, y), ...], ...]`` point lists -> one merged RLE."""
    return polygons_to_rle([[c for pt in p for c in pt] for p in polys], H, W)


def _jitter(mask, rng):
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


def _proposals(rng, masks: List[np.ndarray], adjacency, H, W, bg: np.ndarray):
    """Segmenter imitation over the visible entity masks (rules in the module docstring)."""
    props, scores = [], []
    for i, m in enumerate(masks):
        if rng.random() < P_MISS:
            continue
        area = int(m.sum())
        jm = _jitter(m, rng)
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
            props.append(_jitter(m | masks[j], rng))
            scores.append(rng.uniform(0.5, 0.9))
    for _ in range(int(rng.integers(0, 4))):
        blob = np.zeros((H, W), np.uint8)
        c = (float(rng.uniform(0, W)), float(rng.uniform(0, H)))
        ax = (float(rng.uniform(4, 20)), float(rng.uniform(3, 14)))
        if rng.random() < 0.5:
            cv2.ellipse(blob, (c, (2 * ax[0], 2 * ax[1]), float(rng.uniform(0, 180))), 1, -1)
        else:
            pts = np.array(c) + rng.normal(0, ax[0], (5, 2))
            cv2.fillPoly(blob, [_to_cv(pts)], 1, cv2.LINE_8, SHIFT)
            blob &= bg.astype(np.uint8)
        if blob.sum() >= 10:
            props.append(blob.astype(bool))
            scores.append(rng.uniform(0.3, 0.8))
    order = sorted(range(len(props)), key=lambda k: -scores[k])
    return [props[k] for k in order], [round(float(scores[k]), 4) for k in order]


def render_frame(seed: int, split: str, index: int, height: int, width: int) -> Dict:
    """Render one frame. Returns ``{"png": bytes, "entities": [...], "hands": {...}, "gt": {...},
    "proposals": (rles, scores), "scene": summary}`` (internal; ``generate_split`` writes the files)."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    H, W = int(height), int(width)
    S = float(min(H, W))
    img = np.clip(_background(rng, H, W) + 0.5, 0, 255).astype(np.uint8)
    label = np.zeros((H, W), np.int32)
    hands, held, resting = _sample_scene(rng, H, W, S)

    ents: List[Dict] = []  # objects in drawing order; label id = position + 1
    for obj in resting + held:
        obj["lab"] = len(ents) + 1
        ents.append(obj)
    for k, side in enumerate(("left", "right")):
        if side in hands:
            hands[side]["lab"] = 1000 + k
            _hand_geometry(hands[side], rng)

    for obj in resting:
        _draw_object(img, label, obj)
    for side in ("left", "right"):
        if side in hands:
            _draw_hand_layer(img, label, hands[side], "base")
    for obj in held:
        _draw_object(img, label, obj)
    for side in ("left", "right"):
        if side in hands:
            _draw_hand_layer(img, label, hands[side], "top")

    # lighting and noise
    gain = np.linspace(rng.uniform(0.85, 1.0), rng.uniform(0.95, 1.1), W, dtype=np.float32)
    if rng.random() < 0.5:
        gain = gain[::-1]
    img = img.astype(np.float32) * gain[None, :, None] + rng.normal(0, rng.uniform(2, 5), img.shape).astype(np.float32)
    img = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    assert ok

    min_area = max(12, int(0.0008 * H * W))
    vis_objs = []
    for obj in ents:
        m = label == obj["lab"]
        if m.sum() >= min_area:
            obj["mask"] = m
            vis_objs.append(obj)
    vis_hands = {}
    for side, hand in hands.items():
        m = label == hand["lab"]
        if m.sum() >= min_area:
            hand["mask"] = m
            vis_hands[side] = hand
    for side, hand in hands.items():
        if hand.get("held") is not None and ("mask" not in hand["held"] or side not in vis_hands):
            hand["held"] = None

    # polygons (exact outlines); entities without a polygon are dropped
    for e in vis_objs + list(vis_hands.values()):
        e["polys"] = _trace_polygons(e["mask"])
    vis_objs = [o for o in vis_objs if o["polys"]]
    vis_hands = {s: h for s, h in vis_hands.items() if h["polys"]}
    for side, hand in hands.items():
        if hand.get("held") is not None and (side not in vis_hands or not hand["held"].get("polys")
                                             or all(hand["held"] is not o for o in vis_objs)):
            hand["held"] = None
    for k, o in enumerate(vis_objs):
        o["eid"] = k + 1

    # proposals from the pixel masks
    all_masks = [o["mask"] for o in vis_objs] + [vis_hands[s]["mask"] for s in ("left", "right") if s in vis_hands]
    k3 = np.ones((3, 3), np.uint8)
    dil = [cv2.dilate(m.astype(np.uint8), k3).astype(bool) for m in all_masks]
    adjacency = [[j for j in range(len(all_masks)) if j != i and (dil[i] & all_masks[j]).any()]
                 for i in range(len(all_masks))]
    props, scores = _proposals(rng, all_masks, adjacency, H, W, label == 0)

    return {"png": png.tobytes(), "objects": vis_objs, "hands": vis_hands, "all_hands": hands,
            "proposals": props, "scores": scores, "label_shape": (H, W)}


