"""The script of one synthetic egocentric video: persistent objects on a counter, a slowly moving camera, and two
hands that reach for, grasp, carry, hand over (left -> both -> right, or the mirror) and release objects. The script
is a list of per-frame states (hand poses, postures, what each hand holds, object poses) plus the clean action
intervals that the narrations are written from (docs/VIDEO.md). Rendering is ``video_render.py``'s job."""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...classes import SIDES
from .drawing import hsv, rot, shade
from .shapes import object_parts
from .taxonomy import CATEGORIES

__all__ = ["VideoParams", "Action", "script_video", "held_of"]

REACH_S = (0.8, 1.4)  # seconds a hand takes to reach an object
CARRY_S = (1.0, 2.0)  # seconds of carrying before a handover or a put-down
FAST_CARRY_S = (0.3, 0.5)  # a fast carry (fast motion)
P_FAST = 0.2  # an episode carries fast
P_HANDOVER = 0.5  # an episode hands the object over to the other hand
BOTH_S = (0.5, 1.0)  # seconds both hands hold during a handover
RETURN_S = (0.6, 1.0)  # seconds a free hand takes back to rest
GAP_S = (0.3, 1.2)  # idle seconds between episodes
CAMERA_AMPLITUDE = 0.05  # camera sway, fraction of S
GRIP_AHEAD = 0.45  # the grip point lies this many palm lengths ahead of the palm centre (as in the frame world)


@dataclass(frozen=True)
class VideoParams:
    """Length, rate and size of the videos of a split."""

    seconds: float = 8.0
    fps: int = 10
    image_size: Tuple[int, int] = (160, 160)
    objects: Tuple[int, int] = (3, 5)  # objects on the counter (inclusive range)

    @property
    def num_frames(self) -> int:
        return int(round(self.seconds * self.fps))


@dataclass
class Action:
    """A clean narration interval in frames [start, stop] (inclusive) of the sampled video."""

    start: int
    stop: int
    verb: str
    oid: int
    point: int  # the frame an Ego4D-style point narration is stamped at
    text_ego4d: str


def _smooth(a: float) -> float:
    a = min(1.0, max(0.0, a))
    return a * a * (3 - 2 * a)


def _unit(v):
    return v / (np.linalg.norm(v) + 1e-9)


class _World:
    """Mutable state while the script is being written; ``snapshot`` freezes one frame."""

    def __init__(self, rng, p: VideoParams):
        H, W = p.image_size
        self.H, self.W, self.S = H, W, float(min(H, W))
        S = self.S
        self.rng = rng
        self.frames: List[Dict] = []
        self.cam_phase = rng.uniform(0, 2 * math.pi, 2)
        self.cam_freq = rng.uniform(0.05, 0.15, 2)  # Hz
        self.cam_amp = rng.uniform(0.3, 1.0, 2) * CAMERA_AMPLITUDE * S
        skin = hsv(rng.uniform(0.03, 0.08), rng.uniform(0.25, 0.6), rng.uniform(0.45, 0.95))
        self.hands = {}
        for k, side in enumerate(SIDES):
            sgn = 1.0 if side == "left" else -1.0
            x0 = W / 2 - sgn * rng.uniform(0.22, 0.32) * W
            E = np.array([x0 - sgn * 0.1 * W, H + 0.06 * S])
            rest = np.array([x0, rng.uniform(0.86, 0.95) * H])
            self.hands[side] = {"side": side, "E": E, "rest": rest, "P": rest.copy(), "held": None,
                                "jitter": rng.uniform(-0.2, 0.2), "pl": S * rng.uniform(0.13, 0.16),
                                "pw": S * rng.uniform(0.12, 0.14), "skin": shade(skin, rng.uniform(0.93, 1.07)),
                                "free_posture": "flat" if rng.random() < 0.7 else "fist",
                                "finger_seed": int(rng.integers(2 ** 31))}
            self.hands[side]["aw"] = self.hands[side]["pw"] * rng.uniform(0.95, 1.1)
        self.objects = []
        n = int(rng.integers(p.objects[0], p.objects[1] + 1))
        hold_w = np.array([c.hold + 0.5 * c.both for c in CATEGORIES])
        for oid in range(1, n + 1):
            cat = int(rng.choice(len(CATEGORIES), p=hold_w / hold_w.sum()))
            parts, grip, both, radius = object_parts(CATEGORIES[cat], rng, S)
            for _ in range(20):
                c = np.array([rng.uniform(0.15, 0.85) * W, rng.uniform(0.2, 0.65) * H])
                if all(np.linalg.norm(c - o["c"]) > 0.3 * S for o in self.objects):
                    break
            self.objects.append({"oid": oid, "cat": cat, "parts": parts, "grip": np.asarray(grip, float),
                                 "grips_both": both, "radius": radius, "c": c, "angle": rng.uniform(0, 2 * math.pi),
                                 "rel": None, "holder": None})

    # ---- geometry -------------------------------------------------------------------------------------------
    def t(self) -> int:
        return len(self.frames)

    def cam(self, t: int, fps: int) -> np.ndarray:
        return self.cam_amp * np.sin(2 * math.pi * self.cam_freq * t / fps + self.cam_phase)

    def hand_angle(self, hand) -> float:
        d = hand["P"] - hand["E"]
        return math.atan2(d[1], d[0]) + hand["jitter"]

    def grip_point(self, hand) -> np.ndarray:
        a = self.hand_angle(hand)
        return hand["P"] + np.array([math.cos(a), math.sin(a)]) * hand["pl"] * GRIP_AHEAD

    def palm_for(self, hand, target_img) -> np.ndarray:
        """The palm centre that puts the hand's grip point on ``target_img`` (image coordinates)."""
        a = math.atan2(*(target_img - hand["E"])[::-1]) + hand["jitter"]
        return target_img - np.array([math.cos(a), math.sin(a)]) * hand["pl"] * GRIP_AHEAD

    def obj_image_pose(self, obj, t: int, fps: int):
        """(centre, angle) of an object in the image at frame ``t``: held ones follow their holder's hand frame,
        resting ones stay put in the world while the camera moves."""
        if obj["holder"] is not None:
            hand = self.hands[obj["holder"]]
            a = self.hand_angle(hand)
            return hand["P"] + rot(a) @ obj["rel"][0], a + obj["rel"][1]
        return obj["c"] - self.cam(t, fps), obj["angle"]

    def attach(self, obj, side: str, t: int, fps: int) -> None:
        c, ang = self.obj_image_pose(obj, t, fps)
        hand = self.hands[side]
        a = self.hand_angle(hand)
        obj["rel"] = (rot(-a) @ (c - hand["P"]), ang - a)
        obj["holder"] = side

    def detach(self, obj, t: int, fps: int) -> None:
        c, ang = self.obj_image_pose(obj, t, fps)
        obj["c"], obj["angle"] = c + self.cam(t, fps), ang
        obj["holder"], obj["rel"] = None, None

    # ---- writing frames -------------------------------------------------------------------------------------
    def snapshot(self, fps: int) -> None:
        t = self.t()
        objs = []
        for o in self.objects:
            c, ang = self.obj_image_pose(o, t, fps)
            objs.append({"oid": o["oid"], "c": c.copy(), "angle": float(ang), "holder": o["holder"]})
        hands = {s: {"P": h["P"].copy(), "held": h["held"]} for s, h in self.hands.items()}
        self.frames.append({"objects": objs, "hands": hands, "cam": self.cam(t, fps)})

    def move(self, moves: Dict[str, object], n: int, fps: int) -> None:
        """Move hands over ``n`` frames. ``moves[side]`` is a fixed image point or a callable ``t -> point``
        (a moving target); the hand eases from where it is."""
        start = {s: self.hands[s]["P"].copy() for s in moves}
        for k in range(max(1, n)):
            a = _smooth((k + 1) / max(1, n))
            t = self.t()
            for s, target in moves.items():
                goal = target(t) if callable(target) else target
                self.hands[s]["P"] = (1 - a) * start[s] + a * np.asarray(goal, float)
            self.snapshot(fps)

    def hold_still(self, n: int, fps: int) -> None:
        for _ in range(n):
            self.snapshot(fps)


def _frames(rng, span, fps) -> int:
    return max(1, int(round(rng.uniform(*span) * fps)))


def script_video(rng, p: VideoParams) -> Tuple[List[Dict], List[Dict], List[Action], Dict[str, Dict]]:
    """``(objects, frames, actions, hands)`` of one video. ``objects``: the persistent instances (``oid``, ``cat``,
    ``parts``...); ``frames[t]``: ``{"objects": [{oid, c, angle, holder}], "hands": {side: {P, held}}, "cam"}``
    in image coordinates; ``actions``: clean narration intervals; ``hands``: each hand's fixed traits (arm entry
    ``E``, sizes, skin, posture when free)."""
    w = _World(rng, p)
    fps, T = p.fps, p.num_frames
    actions: List[Action] = []
    w.hold_still(_frames(rng, GAP_S, fps), fps)
    while w.t() < T:
        free = [o for o in w.objects if o["holder"] is None]
        if not free:
            break
        obj = free[int(rng.integers(len(free)))]
        a_side = "left" if rng.random() < 0.5 else "right"
        b_side = "right" if a_side == "left" else "left"
        name = CATEGORIES[obj["cat"]].name
        oid = obj["oid"]
        hand_a, hand_b = w.hands[a_side], w.hands[b_side]

        # reach and grasp
        t0 = w.t()
        target = lambda t, o=obj, h=hand_a: w.palm_for(h, w.obj_image_pose(o, t, fps)[0]
                                                      + rot(w.obj_image_pose(o, t, fps)[1]) @ o["grip"])
        w.move({a_side: target}, _frames(rng, REACH_S, fps), fps)
        hand_a["held"] = oid
        w.attach(obj, a_side, w.t(), fps)
        tg = w.t()
        actions.append(Action(t0, min(T - 1, tg + 2), "take", oid, tg, f"#C C takes the {name}"))

        # carry to a point in the middle of the frame
        t1 = w.t()
        carry = _frames(rng, FAST_CARRY_S if rng.random() < P_FAST else CARRY_S, fps)
        sgn = 1.0 if a_side == "left" else -1.0
        mid = np.array([w.W / 2 - sgn * rng.uniform(0.0, 0.15) * w.W, rng.uniform(0.4, 0.6) * w.H])
        w.move({a_side: mid}, carry, fps)
        holder = a_side
        if rng.random() < P_HANDOVER and w.t() < T:
            # the other hand reaches the far side of the object, both hold, the first lets go and withdraws
            def far_side(t, o=obj, ha=hand_a, hb=hand_b):
                c = w.obj_image_pose(o, t, fps)[0]
                return w.palm_for(hb, c + (c - w.grip_point(ha)) * 0.8)

            w.move({b_side: far_side}, _frames(rng, REACH_S, fps), fps)
            hand_b["held"] = oid
            w.hold_still(_frames(rng, BOTH_S, fps), fps)
            hand_a["held"] = None
            w.attach(obj, b_side, w.t(), fps)
            tr = w.t()
            dest = np.array([w.W / 2 + sgn * rng.uniform(0.1, 0.25) * w.W, rng.uniform(0.4, 0.6) * w.H])
            w.move({a_side: hand_a["rest"], b_side: dest}, _frames(rng, RETURN_S, fps), fps)
            actions.append(Action(t1, min(T - 1, w.t()), "move", oid, tr,
                                  f"#C C passes the {name} from the {a_side} hand to the {b_side} hand"))
            holder = b_side
        else:
            actions.append(Action(t1, min(T - 1, w.t()), "move", oid, (t1 + w.t()) // 2, f"#C C moves the {name}"))

        # put it down somewhere on the counter, let go, return to rest
        t2 = w.t()
        hand = w.hands[holder]
        spot = np.array([rng.uniform(0.2, 0.8) * w.W, rng.uniform(0.25, 0.6) * w.H])
        w.move({holder: w.palm_for(hand, spot)}, _frames(rng, REACH_S, fps), fps)
        hand["held"] = None
        w.detach(obj, w.t(), fps)
        tp = w.t()
        w.move({holder: hand["rest"]}, _frames(rng, RETURN_S, fps), fps)
        actions.append(Action(t2, min(T - 1, tp + 2), "put down", oid, tp, f"#C C puts down the {name}"))
        w.hold_still(_frames(rng, GAP_S, fps), fps)
    frames = w.frames[:T]
    while len(frames) < T:  # very short videos: pad with the last state
        frames.append(frames[-1])
    actions = [a for a in actions if a.start < T]
    objects = [{k: o[k] for k in ("oid", "cat", "parts", "grip", "grips_both", "radius")} for o in w.objects]
    return objects, frames, actions, {s: {k: h[k] for k in ("side", "E", "pl", "pw", "aw", "skin", "jitter",
                                                             "free_posture", "finger_seed")}
                                      for s, h in w.hands.items()}


def held_of(frame: Dict) -> Dict[str, Optional[int]]:
    """Which object id each hand holds in a scripted frame."""
    return {s: h["held"] for s, h in frame["hands"].items()}
