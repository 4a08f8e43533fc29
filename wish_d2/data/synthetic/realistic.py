"""The realistic profile's renderer: the benchmark's world at the scale of real data. A frame is painted at
``1 / work_scale`` of its size (masks, outlines and proposals are computed there) and written at full size, with
the polygons and proposal masks scaled up, so a 1080p frame costs about what a 270 x 480 one does. Proposals
imitate an automatic mask generator: whole objects, their parts, fragments, merges and background regions, 40 to
100 per frame (see docs/SYNTHETIC.md)."""
import math
from typing import Dict, List, Tuple

import cv2
import numpy as np

from ...classes import SIDES
from ...utils.masks import polygons_to_rle
from .drawing import SHIFT, to_cv
from .layout import SPLITS
from .outlines import trace_scaled_polygons
from .profiles import SyntheticProfile
from .render import apply_lighting, paint_scene, touching, visible_entities
from .segmenter import jitter_mask

__all__ = ["render_realistic_frame"]

STREAM = 2  # last element of the per-frame random stream, apart from the benchmark's [seed, split, index]
MIN_PROPOSAL_PX = 6  # at working resolution
P_MISS_WHOLE = 0.03  # an entity gets no whole-mask proposal (automatic mask generators rarely miss an object)
P_MERGE = 0.3  # per entity: one proposal of it merged with an entity it touches
MAX_FILL_ROUNDS = 8  # fragment / background rounds when a frame has too few candidates


def _part_masks(ent: Dict, shape: Tuple[int, int]) -> List[np.ndarray]:
    """The visible pixels of each silhouette part of an object (handle, blade...) or hand (arm, palm, fingers)."""
    if "parts" in ent:
        R, c = ent["R"], ent["c"]
        polys = [p[1] @ R.T + c for p in ent["parts"] if p[0] == "poly"]
    else:
        polys = list(ent["base"]) + list(ent["top"])
    if len(polys) < 2:
        return []
    total = np.count_nonzero(ent["mask"])
    out = []
    for pts in polys:
        canvas = np.zeros(shape, np.uint8)
        cv2.fillPoly(canvas, [to_cv(pts)], 1, cv2.LINE_8, SHIFT)
        part = canvas.astype(bool) & ent["mask"]
        if MIN_PROPOSAL_PX <= np.count_nonzero(part) < total:
            out.append(part)
    return out


def _fragment(rng, mask: np.ndarray) -> np.ndarray:
    """A piece of a mask: the side of a random line through a random pixel, or a random disc around it."""
    ys, xs = np.nonzero(mask)
    k = int(rng.integers(len(ys)))
    cy, cx = float(ys[k]), float(xs[k])
    H, W = mask.shape
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * math.pi)
        yy, xx = np.ogrid[0:H, 0:W]
        return mask & (((xx - cx) * math.cos(a) + (yy - cy) * math.sin(a)) > 0)
    r = rng.uniform(0.15, 0.5) * math.sqrt(len(ys))
    disc = np.zeros((H, W), np.uint8)
    cv2.circle(disc, (int(cx), int(cy)), max(2, int(r)), 1, -1)
    return mask & disc.astype(bool)


def _background_region(rng, bg: np.ndarray) -> np.ndarray:
    """A patch of counter or wall: a random convex blob intersected with the background."""
    H, W = bg.shape
    c = np.array([rng.uniform(0, W), rng.uniform(0, H)])
    pts = c + rng.normal(0, rng.uniform(0.03, 0.2) * min(H, W), (7, 2))
    blob = np.zeros((H, W), np.uint8)
    cv2.fillConvexPoly(blob, cv2.convexHull(to_cv(pts)), 1, cv2.LINE_8, SHIFT)
    return blob.astype(bool) & bg


def _sam_like_proposals(rng, masks: List[np.ndarray], parts: List[List[np.ndarray]], adjacency, bg: np.ndarray,
                        num: int) -> Tuple[List[np.ndarray], List[float]]:
    """``num`` masks (fewer only if the frame has nothing left to cut) with SAM-like scores: wholes first, then
    parts, merges, fragments and background regions."""
    props: List[Tuple[np.ndarray, float]] = []
    for m in masks:  # whole entities, rarely missed
        if rng.random() >= P_MISS_WHOLE:
            props.append((jitter_mask(m, rng), rng.uniform(0.85, 1.0)))
    optional: List[Tuple[np.ndarray, float]] = []
    for ps in parts:
        optional += [(p, rng.uniform(0.7, 0.98)) for p in ps]
    for i, adj in enumerate(adjacency):
        if adj and rng.random() < P_MERGE:
            optional.append((masks[i] | masks[adj[int(rng.integers(len(adj)))]], rng.uniform(0.6, 0.9)))
    order = rng.permutation(len(optional))
    props += [optional[k] for k in order[:max(0, num - len(props))]]
    big = [m for m in masks if np.count_nonzero(m) >= 4 * MIN_PROPOSAL_PX]
    for _ in range(MAX_FILL_ROUNDS):
        if len(props) >= num:
            break
        for _ in range(num - len(props)):
            if big and rng.random() < 0.6:
                cand, score = _fragment(rng, big[int(rng.integers(len(big)))]), rng.uniform(0.5, 0.9)
            else:
                cand, score = _background_region(rng, bg), rng.uniform(0.4, 0.95)
            if np.count_nonzero(cand) >= MIN_PROPOSAL_PX:
                props.append((cand, score))
    props = props[:num]
    props.sort(key=lambda p: -p[1])
    return [p[0] for p in props], [round(float(p[1]), 4) for p in props]


def _full_resolution_rles(masks: List[np.ndarray], scores: List[float], H: int, W: int, sx: float, sy: float):
    """Working-resolution masks as the RLEs of their scaled outlines (never rasterised at full resolution)."""
    rles, kept = [], []
    for m, score in zip(masks, scores):
        polys = [[c for pt in p for c in pt] for p in trace_scaled_polygons(m, sx, sy)]
        if polys:
            rles.append(polygons_to_rle(polys, H, W))
            kept.append(score)
    return rles, kept


def render_realistic_frame(seed: int, split: str, index: int, height: int, width: int,
                           profile: SyntheticProfile) -> Dict:
    """Render one frame of a realistic profile; same keys as :func:`render.render_frame` (``proposals`` as full
    resolution RLEs), plus ``area_scale``: full-resolution pixels per rendered pixel."""
    rng = np.random.default_rng([seed, SPLITS[split], index, STREAM])
    H, W = int(height), int(width)
    h, w = max(32, round(H / profile.work_scale)), max(32, round(W / profile.work_scale))
    sx, sy = W / w, H / h
    img, label, hands, ents = paint_scene(rng, h, w, profile.free_counts, multi_grip=profile.multi_grip)
    img = cv2.resize(apply_lighting(img, rng), (W, H), interpolation=cv2.INTER_LINEAR)
    if profile.image_format == "jpg":
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(profile.jpeg_quality)])
    else:
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError(f"cv2 could not encode synthetic frame {split}/{index} as {profile.image_format}")

    vis_objs, vis_hands = visible_entities(label, hands, ents, max(4, int(0.0002 * h * w)),
                                           trace=lambda m: trace_scaled_polygons(m, sx, sy))
    ent_list = vis_objs + [vis_hands[s] for s in SIDES if s in vis_hands]
    masks = [e["mask"] for e in ent_list]
    parts = [_part_masks(e, (h, w)) for e in ent_list]
    lo, hi = profile.num_proposals
    props, scores = _sam_like_proposals(rng, masks, parts, touching(masks), label == 0, int(rng.integers(lo, hi + 1)))
    rles, scores = _full_resolution_rles(props, scores, H, W, sx, sy)
    return {"image": buf.tobytes(), "image_ext": "." + profile.image_format, "objects": vis_objs,
            "hands": vis_hands, "all_hands": hands, "proposals": rles,
            "scores": scores, "label_shape": (h, w), "area_scale": sx * sy}
