"""Scene sampling: which hands are present, what each holds and how, and what lies under, beside and away from
them. The probabilities below are the benchmark's rules (docs/SYNTHETIC.md); changing one changes every frame."""
import math
from typing import Dict, List

import numpy as np

from ...classes import SIDES
from .drawing import hsv, rot
from .hands import new_hand, sample_hand_pose, set_grip_fingers
from .shapes import object_parts
from .taxonomy import CATEGORIES

__all__ = ["FREE_COUNTS", "sample_scene"]

P_HAND = 0.85  # each of the left and right hands is present
P_BOTH = 0.15  # with both hands present: one object held by both
P_HOLD = 0.55  # otherwise each present hand holds an object
P_FLAT_WHEN_FREE = 0.7  # a free hand is flat, else a fist
P_SURFACE = 0.35  # per hand: a large surface lies under it
P_TOUCH = 0.3  # per hand: a small object touches it without being held
P_SAME_CATEGORY = 0.4  # per frame with a held object: another instance of a held category lies elsewhere
FREE_COUNTS = (0.15, 0.35, 0.3, 0.2)  # probabilities of 0, 1, 2, 3 free-standing objects


def weighted_choice(rng, weights, allowed=None):
    w = np.array([wt if (allowed is None or i in allowed) else 0.0 for i, wt in enumerate(weights)], float)
    if w.sum() <= 0:
        return None
    return int(rng.choice(len(w), p=w / w.sum()))


def new_object(rng, cat_idx, S, role):
    parts, grip, both, radius = object_parts(CATEGORIES[cat_idx], rng, S)
    return {"cat": cat_idx, "parts": parts, "grip": grip, "grips_both": both, "radius": radius, "role": role,
            "holders": []}


def set_pose(obj, centre, angle):
    obj["c"] = np.asarray(centre, float)
    obj["angle"] = angle
    obj["R"] = rot(angle)


def place_held(rng, obj, hand):
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
    R = rot(phi)
    set_pose(obj, G - R @ obj["grip"], phi)
    set_grip_fingers(hand, obj)


def place_second_held(rng, first, hand, S):
    """A second object in the same grip (multi-grip frames): a small item of another category laid along the first
    one near the grip point, drawn over it (a stacked pair, or two small items in one fist); the fingers, drawn
    last, cover both. ``None`` when no category fits."""
    small = [i for i, c in enumerate(CATEGORIES) if c.hold > 0 and c.length[1] <= 0.3 and i != first["cat"]]
    cat = weighted_choice(rng, [c.hold for c in CATEGORIES], small)
    if cat is None:
        return None
    obj = new_object(rng, cat, S, "held")
    v_ = np.array([-hand["u"][1], hand["u"][0]])
    G = hand["P"] + hand["u"] * hand["pl"] * 0.45
    c = G + hand["u"] * rng.uniform(-0.35, 0.35) * hand["pl"] + v_ * rng.uniform(-0.2, 0.2) * hand["pl"]
    set_pose(obj, c, first["angle"] + rng.uniform(-0.3, 0.3))
    return obj


def inside_frame(c, H, W, margin):
    return margin * W <= c[0] <= (1 - margin) * W and margin * H <= c[1] <= (1 - margin) * H


def sample_scene(rng, H, W, S, free_counts=FREE_COUNTS, camera="head", multi_grip=0.0):
    """Hands, held objects and resting objects (painter's order) of one frame; the rules are in docs/SYNTHETIC.md.
    ``free_counts``: probabilities of 0, 1, 2... free-standing objects; ``camera``: where arms enter
    (:data:`~.hands.CAMERAS`). ``multi_grip``: probability that a one-hand grip holds a second object
    (``hand["held_extra"]``); at 0 no random number is drawn for it, so the frames of the benchmark keep their
    bytes."""
    skin = hsv(rng.uniform(0.03, 0.08), rng.uniform(0.25, 0.6), rng.uniform(0.45, 0.95))
    present = {s: rng.random() < P_HAND for s in SIDES}
    hands: Dict[str, Dict] = {}
    objects: List[Dict] = []
    hold_w = [c.hold for c in CATEGORIES]
    both_w = [c.both for c in CATEGORIES]

    both_obj = None
    if present["left"] and present["right"] and rng.random() < P_BOTH:
        both_obj = new_object(rng, weighted_choice(rng, both_w), S, "both")
        for _ in range(10):
            c = np.array([rng.uniform(0.38, 0.62) * W, rng.uniform(0.38, 0.6) * H])
            phi = rng.uniform(-0.35, 0.35)
            set_pose(both_obj, c, phi)
            g0 = both_obj["R"] @ np.array(both_obj["grips_both"][0]) + c
            g1 = both_obj["R"] @ np.array(both_obj["grips_both"][1]) + c
            for side, G in (("left", g0), ("right", g1)):
                E, _ = sample_hand_pose(rng, side, H, W, S, camera)
                hand = new_hand(rng, side, E, G, S, skin, "grip")
                hand["u"] = (G - E) / (np.linalg.norm(G - E) + 1e-6)  # aim exactly at the grip point
                hand["P"] = G - hand["u"] * hand["pl"] * 0.45
                hands[side] = hand
            if np.linalg.norm(hands["left"]["P"] - hands["right"]["P"]) > 0.3 * S:
                break
        for side in SIDES:
            hands[side]["held"] = both_obj
            set_grip_fingers(hands[side], both_obj)
        both_obj["holders"] = ["left", "right"]
        objects.append(both_obj)
    else:
        for _ in range(10):
            hands = {}
            for side in SIDES:
                if not present[side]:
                    continue
                holds = rng.random() < P_HOLD
                posture = "grip" if holds else ("flat" if rng.random() < P_FLAT_WHEN_FREE else "fist")
                E, P = sample_hand_pose(rng, side, H, W, S, camera)
                hands[side] = new_hand(rng, side, E, P, S, skin, posture)
            if len(hands) < 2 or np.linalg.norm(hands["left"]["P"] - hands["right"]["P"]) > 0.3 * S:
                break
        for side, hand in hands.items():
            if hand["posture"] != "grip":
                continue
            obj = new_object(rng, weighted_choice(rng, hold_w), S, "held")
            for _ in range(6):
                place_held(rng, obj, hand)
                if inside_frame(obj["c"], H, W, 0.04):
                    break
            obj["holders"] = [side]
            hand["held"] = obj
            objects.append(obj)
            if multi_grip > 0 and rng.random() < multi_grip:
                second = place_second_held(rng, obj, hand, S)
                if second is not None:
                    second["holders"] = [side]
                    hand["held_extra"] = [second]
                    objects.append(second)

    resting: List[Dict] = []
    surf_w = [c.surface for c in CATEGORIES]
    small = [i for i, c in enumerate(CATEGORIES) if c.surface == 0 and c.length[1] <= 0.3]
    scene_w = [c.scene for c in CATEGORIES]
    for side, hand in hands.items():
        if rng.random() < P_SURFACE:
            obj = new_object(rng, weighted_choice(rng, surf_w), S, "surface")
            off = hand["u"] * rng.uniform(0, 0.3) * hand["pl"] + np.array([-hand["u"][1], hand["u"][0]]) * \
                rng.uniform(-0.3, 0.3) * obj["radius"]
            set_pose(obj, hand["P"] + off, rng.uniform(0, 2 * math.pi))
            resting.append(obj)
        if rng.random() < P_TOUCH:
            obj = new_object(rng, weighted_choice(rng, scene_w, small), S, "touch")
            v_ = np.array([-hand["u"][1], hand["u"][0]])
            if rng.random() < 0.6:  # near the finger tips
                c = hand["P"] + hand["u"] * (hand["pl"] * 0.75 + obj["radius"] * rng.uniform(0.2, 0.7)) + \
                    v_ * rng.uniform(-0.8, 0.8) * hand["pw"]
            else:  # beside the palm
                c = hand["P"] + v_ * np.sign(rng.uniform(-1, 1)) * (hand["pw"] * 0.45 + obj["radius"] * 0.5) + \
                    hand["u"] * rng.uniform(-0.3, 0.3) * hand["pl"]
            set_pose(obj, c, rng.uniform(0, 2 * math.pi))
            resting.append(obj)
    palms = [h["P"] for h in hands.values()]
    held_cats = [o["cat"] for o in objects]
    if held_cats and rng.random() < P_SAME_CATEGORY:
        obj = new_object(rng, held_cats[int(rng.integers(len(held_cats)))], S, "same_category")
        for _ in range(12):
            c = np.array([rng.uniform(0.1, 0.9) * W, rng.uniform(0.15, 0.85) * H])
            if all(np.linalg.norm(c - p) > 0.25 * S + obj["radius"] * 0.5 for p in palms):
                break
        set_pose(obj, c, rng.uniform(0, 2 * math.pi))
        resting.append(obj)
    n_free = int(rng.choice(len(free_counts), p=free_counts))
    for _ in range(n_free):
        obj = new_object(rng, weighted_choice(rng, scene_w), S, "free")
        set_pose(obj, np.array([rng.uniform(0.05, 0.95) * W, rng.uniform(0.1, 0.9) * H]), rng.uniform(0, 2 * math.pi))
        resting.append(obj)
    # surfaces first (largest first), then the rest in sampling order
    resting.sort(key=lambda o: (0 if CATEGORIES[o["cat"]].surface > 0 and o["role"] == "surface" else 1,
                                -o["radius"] if o["role"] == "surface" else 0))
    return hands, objects, resting
