"""Rendering of a scripted video frame (``video_script.py``) with the frame world's painter: background (a crop of
one larger counter, so the camera can move over it), resting objects, arms and palms, held objects, fingers. The
result has the layout of ``render.render_frame``'s, with each object's ``eid`` its persistent id in the video, so
VISOR entity ids stay the same across frames."""
import math
from typing import Dict, List

import cv2
import numpy as np

from ...classes import SIDES
from ...utils.masks import encode_rle
from .background import counter_background
from .drawing import rot
from .hands import draw_hand_layer, hand_geometry, set_grip_fingers
from .render import draw_object, touching, visible_entities
from .segmenter import imitate_segmenter

__all__ = ["video_background", "render_video_frame"]

CAMERA_MARGIN = 0.08  # the background is this fraction of S larger on each side than the frame


def video_background(rng, H: int, W: int) -> np.ndarray:
    """One counter larger than the frame (float32), cropped per frame at the camera offset."""
    m = int(math.ceil(CAMERA_MARGIN * min(H, W)))
    return counter_background(rng, H + 2 * m, W + 2 * m)


def _lighting(img: np.ndarray, gain: np.ndarray, rng) -> np.ndarray:
    """A fixed left-right gradient of the video and fresh Gaussian pixel noise per frame (sensor noise)."""
    img = img.astype(np.float32) * gain[None, :, None] + rng.normal(0, 3.0, img.shape).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def render_video_frame(objects: List[Dict], hands: Dict[str, Dict], state: Dict, background: np.ndarray,
                       gain: np.ndarray, rng) -> Dict:
    """One frame -> ``{"image": PNG bytes, "image_ext", "objects", "hands", "all_hands", "proposals", "scores",
    "label_shape", "area_scale"}`` (see ``render.render_frame``); ``rng``: this frame's stream (pixel noise and
    segmenter imitation)."""
    H, W = background.shape[0] - 2 * _margin(background, gain), background.shape[1] - 2 * _margin(background, gain)
    m = _margin(background, gain)
    cx, cy = (int(round(v)) for v in np.clip(state["cam"], -m, m))
    img = np.clip(background[m + cy:m + cy + H, m + cx:m + cx + W] + 0.5, 0, 255).astype(np.uint8)
    label = np.zeros((H, W), np.int32)

    by_oid = {o["oid"]: o for o in objects}
    ents, held, resting = [], [], []
    for k, st in enumerate(state["objects"]):
        base = by_oid[st["oid"]]
        obj = {"cat": base["cat"], "parts": base["parts"], "c": np.asarray(st["c"], float), "angle": st["angle"],
               "R": rot(st["angle"]), "lab": k + 1, "oid": st["oid"], "holders": []}
        ents.append(obj)
        (held if st["holder"] is not None else resting).append(obj)
    by_state_oid = {o["oid"]: o for o in ents}
    frame_hands = {}
    for k, side in enumerate(SIDES):
        fixed, st = hands[side], state["hands"][side]
        P = np.asarray(st["P"], float)
        d = P - fixed["E"]
        a = math.atan2(d[1], d[0]) + fixed["jitter"]
        obj = by_state_oid.get(st["held"]) if st["held"] is not None else None
        hand = {"side": side, "E": fixed["E"], "P": P, "u": np.array([math.cos(a), math.sin(a)]), "pl": fixed["pl"],
                "pw": fixed["pw"], "aw": fixed["aw"], "skin": fixed["skin"], "lab": 1000 + k, "held": obj,
                "posture": "grip" if obj is not None else fixed["free_posture"]}
        if obj is not None:
            set_grip_fingers(hand, obj)
            obj["holders"].append(side)
        # the same finger lengths in every frame of the video: a fixed stream per hand
        hand_geometry(hand, np.random.default_rng([fixed["finger_seed"], 17]))
        frame_hands[side] = hand

    for obj in resting:
        draw_object(img, label, obj)
    for side in SIDES:
        draw_hand_layer(img, label, frame_hands[side], "base")
    for obj in held:
        draw_object(img, label, obj)
    for side in SIDES:
        draw_hand_layer(img, label, frame_hands[side], "top")
    img = _lighting(img, gain, rng)
    ok, png = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError("cv2 could not encode a synthetic video frame as PNG")

    vis_objs, vis_hands = visible_entities(label, frame_hands, ents, max(12, int(0.0008 * H * W)))
    for o in vis_objs:
        o["eid"] = o["oid"]  # persistent VISOR entity id
    all_masks = [o["mask"] for o in vis_objs] + [vis_hands[s]["mask"] for s in SIDES if s in vis_hands]
    props, scores = imitate_segmenter(rng, all_masks, touching(all_masks), H, W, label == 0)
    return {"image": png.tobytes(), "image_ext": ".png", "objects": vis_objs, "hands": vis_hands,
            "all_hands": frame_hands, "proposals": [encode_rle(p) for p in props], "scores": scores,
            "label_shape": (H, W), "area_scale": 1}


def _margin(background: np.ndarray, gain: np.ndarray) -> int:
    """The camera margin of a background made by :func:`video_background` for frames ``len(gain)`` wide."""
    return (background.shape[1] - len(gain)) // 2
