"""Frame rendering of the benchmark profile: paint the sampled scene layer by layer into the image and an instance
label map, keep what stays visible, outline it as polygons and run the segmenter imitation on it. Deterministic
by ``(seed, split, index)``: each frame has its own random stream, so a frame does not depend on the split size."""
from typing import Callable, Dict, List, Sequence, Tuple

import cv2
import numpy as np

from ...classes import SIDES
from ...utils.masks import encode_rle
from .background import counter_background
from .drawing import SHIFT, fill, to_cv
from .hands import draw_hand_layer, hand_geometry
from .layout import SPLITS
from .outlines import trace_polygons
from .scene import FREE_COUNTS, sample_scene
from .segmenter import imitate_segmenter

__all__ = ["draw_object", "paint_scene", "apply_lighting", "visible_entities", "touching", "render_frame"]


def draw_object(img, label, obj):
    R, c = obj["R"], obj["c"]
    for part in obj["parts"]:
        kind = part[0]
        if kind in ("poly", "fill"):
            pts = part[1] @ R.T + c
            fill(img, label if kind == "poly" else None, pts, part[2], obj["lab"])
        elif kind == "line":
            pts = part[1] @ R.T + c
            cv2.polylines(img, [to_cv(pts)], False, part[2], part[3], cv2.LINE_AA, SHIFT)
        elif kind == "dot":
            ctr = np.array(part[1]) @ R.T + c
            r = max(0.6, part[2])
            cv2.ellipse(img, ((float(ctr[0]), float(ctr[1])), (2 * r, 2 * r), 0.0), part[3], -1, cv2.LINE_AA)


def paint_scene(rng, H: int, W: int, free_counts: Sequence[float] = FREE_COUNTS, camera: str = "head",
                multi_grip: float = 0.0):
    """Background, then the painter's order: resting objects, arms and palms, held objects, fingers and thumbs.
    Returns ``(image, label map, hands, objects)``; object ``k`` of the list has label ``k + 1``, hands 1000/1001.
    ``multi_grip``: see :func:`.scene.sample_scene`."""
    S = float(min(H, W))
    img = np.clip(counter_background(rng, H, W) + 0.5, 0, 255).astype(np.uint8)
    label = np.zeros((H, W), np.int32)
    hands, held, resting = sample_scene(rng, H, W, S, free_counts, camera, multi_grip)

    ents: List[Dict] = []  # objects in drawing order; label id = position + 1
    for obj in resting + held:
        obj["lab"] = len(ents) + 1
        ents.append(obj)
    for k, side in enumerate(SIDES):
        if side in hands:
            hands[side]["lab"] = 1000 + k
            hand_geometry(hands[side], rng)

    for obj in resting:
        draw_object(img, label, obj)
    for side in SIDES:
        if side in hands:
            draw_hand_layer(img, label, hands[side], "base")
    for obj in held:
        draw_object(img, label, obj)
    for side in SIDES:
        if side in hands:
            draw_hand_layer(img, label, hands[side], "top")
    return img, label, hands, ents


def apply_lighting(img: np.ndarray, rng) -> np.ndarray:
    """A left-right lighting gradient and Gaussian pixel noise over the finished frame."""
    W = img.shape[1]
    gain = np.linspace(rng.uniform(0.85, 1.0), rng.uniform(0.95, 1.1), W, dtype=np.float32)
    if rng.random() < 0.5:
        gain = gain[::-1]
    img = img.astype(np.float32) * gain[None, :, None] + rng.normal(0, rng.uniform(2, 5), img.shape).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def visible_entities(label: np.ndarray, hands: Dict, ents: List[Dict], min_area: int,
                     trace: Callable[[np.ndarray], List] = trace_polygons) -> Tuple[List[Dict], Dict[str, Dict]]:
    """The objects and hands with at least ``min_area`` visible pixels and a polygon outline (``mask``, ``polys``,
    and ``eid`` for objects). A hand whose held object or own mask vanished holds nothing."""
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
        e["polys"] = trace(e["mask"])
    vis_objs = [o for o in vis_objs if o["polys"]]
    vis_hands = {s: h for s, h in vis_hands.items() if h["polys"]}
    for side, hand in hands.items():
        if hand.get("held") is not None and (side not in vis_hands or not hand["held"].get("polys")
                                             or all(hand["held"] is not o for o in vis_objs)):
            hand["held"] = None
    for side, hand in hands.items():  # multi-grip: a second object counts only while it and the hand are visible
        if "held_extra" in hand:
            extra = [o for o in hand["held_extra"] if side in vis_hands and any(o is v for v in vis_objs)]
            if hand.get("held") is None and side in vis_hands and extra:
                hand["held"] = extra.pop(0)
            hand["held_extra"] = extra
    for k, o in enumerate(vis_objs):
        o["eid"] = k + 1
    return vis_objs, vis_hands


def touching(masks: List[np.ndarray]) -> List[List[int]]:
    """For each mask, the other masks it touches (8-neighbourhood)."""
    k3 = np.ones((3, 3), np.uint8)
    dil = [cv2.dilate(m.astype(np.uint8), k3).astype(bool) for m in masks]
    return [[j for j in range(len(masks)) if j != i and (dil[i] & masks[j]).any()] for i in range(len(masks))]


def render_frame(seed: int, split: str, index: int, height: int, width: int, camera: str = "head",
                 multi_grip: float = 0.0) -> Dict:
    """Render one benchmark frame. Returns ``{"image": PNG bytes, "image_ext": ".png", "objects": [...],
    "hands": {side: hand}, "all_hands": {side: hand}, "proposals": [RLE], "scores": [...], "label_shape": (H, W),
    "area_scale": 1}``: visible
    objects and hands carry ``mask`` and ``polys`` (objects also ``cat`` and ``eid``); ``all_hands`` includes
    hands that ended up invisible, with ``held`` the object they hold or ``None`` (and, in multi-grip frames,
    ``held_extra``: the further objects of the grip). ``camera``: see :data:`~.hands.CAMERAS` (``head`` is the
    benchmark)."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    H, W = int(height), int(width)
    img, label, hands, ents = paint_scene(rng, H, W, camera=camera, multi_grip=multi_grip)
    img = apply_lighting(img, rng)
    ok, png = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError(f"cv2 could not encode synthetic frame {split}/{index} as PNG")

    vis_objs, vis_hands = visible_entities(label, hands, ents, max(12, int(0.0008 * H * W)))
    all_masks = [o["mask"] for o in vis_objs] + [vis_hands[s]["mask"] for s in SIDES if s in vis_hands]
    props, scores = imitate_segmenter(rng, all_masks, touching(all_masks), H, W, label == 0)
    return {"image": png.tobytes(), "image_ext": ".png", "objects": vis_objs, "hands": vis_hands,
            "all_hands": hands, "proposals": [encode_rle(p) for p in props], "scores": scores, "label_shape": (H, W),
            "area_scale": 1}
