"""Hands of the synthetic world: where an arm enters and where its palm lies, the grip that closes the fingers over a
held object, the flat or fist posture of a free hand, and the two drawing layers that put the palm under a held
object and the fingers over it (the grip cue; see docs/SYNTHETIC.md)."""
import math

import cv2
import numpy as np

from .drawing import SHIFT, capsule, ellipse, fill, rot, shade, to_cv

__all__ = ["CAMERAS", "GRIP_REACH", "sample_hand_pose", "new_hand", "set_grip_fingers", "hand_geometry",
           "draw_hand_layer"]

GRIP_REACH = 0.45  # grip fingers cover this fraction of the held object's extent along the hand


#: Camera mounts: ``head`` (the benchmark; an arm enters from its own side or the bottom corner, the palm stays on
#: that side) and ``chest`` (arms enter from the bottom edge near the middle and the palms often cross the midline,
#: the case where the vertical split fails; docs/SYNTHETIC.md).
CAMERAS = ("head", "chest")


def sample_hand_pose(rng, side, H, W, S, camera="head"):
    """Arm entry point ``E`` (outside the frame) and palm centre ``P`` of one hand."""
    u = rng.uniform
    if camera == "chest":
        E = np.array([u(0.22, 0.48) * W, H + 0.06 * S])
        P = np.array([u(0.2, 0.85) * W, u(0.3, 0.7) * H])
        if side == "right":
            E[0], P[0] = W - E[0], W - P[0]
        return E, P
    if rng.random() < 0.3:
        E = np.array([-0.06 * S, u(0.65, 1.0) * H])
    else:
        E = np.array([u(-0.05, 0.4) * W, H + 0.06 * S])
    P = np.array([u(0.15, 0.6) * W, u(0.35, 0.72) * H])
    if side == "right":
        E[0], P[0] = W - E[0], W - P[0]
    return E, P


def new_hand(rng, side, E, P, S, skin, posture):
    d = P - E
    ang = math.atan2(d[1], d[0]) + rng.uniform(-0.26, 0.26)
    hand = {"side": side, "E": E, "P": P, "u": np.array([math.cos(ang), math.sin(ang)]),
            "pl": S * rng.uniform(0.13, 0.16), "pw": S * rng.uniform(0.12, 0.14),
            "skin": shade(skin, rng.uniform(0.93, 1.07)), "posture": posture, "held": None}
    hand["aw"] = hand["pw"] * rng.uniform(0.95, 1.1)
    return hand


def set_grip_fingers(hand, obj):
    """Fingers start on the visible palm just behind the object's near edge and reach ~45% across it."""
    local = np.concatenate([p[1] for p in obj["parts"] if p[0] == "poly"])
    pts = local @ obj["R"].T + obj["c"]
    along = (pts - hand["P"]) @ hand["u"]
    # object extent along the hand direction, near the fingers' lane
    near, far = float(along.min()), float(along.max())
    near = max(near, -hand["pl"] * 0.2)
    start = min(hand["pl"] * 0.35, near - 2.0)
    reach = near + max(hand["pl"] * 0.2, GRIP_REACH * (far - near))
    hand["grip_start"] = start
    hand["grip_len"] = max(hand["pl"] * 0.2, min(reach - start, hand["pl"] * 0.7))


def hand_geometry(hand, rng):
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
    palm = ellipse(0, 0, pl / 2, pw / 2, 24) @ rot(ang).T + P
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
            top.append(capsule(b, b + u_ * flen * (0.85 if k in (0, 3) else 1.0), fw))
        tb = P + v_ * thumb_sign * pw * 0.42 + u_ * pl * 0.05
        tdir = rot(-thumb_sign * 0.9) @ u_
        top.append(capsule(tb, tb + tdir * pl * 0.3, fw * 1.1))
    else:
        flen = pl * (rng.uniform(0.5, 0.62) if posture == "flat" else rng.uniform(0.22, 0.3))
        spread = 0.12 if posture == "flat" else 0.02
        for k, o in enumerate(offsets):
            b = P + u_ * pl * 0.35 + v_ * o
            dirk = rot((k - 1.5) * spread) @ u_
            top.append(capsule(b, b + dirk * flen * (0.85 if k in (0, 3) else 1.0),
                                fw * (1.0 if posture == "flat" else 1.15)))
        tb = P + v_ * thumb_sign * pw * 0.42 - u_ * pl * 0.1
        tdir = rot(-thumb_sign * (1.0 if posture == "flat" else 0.6)) @ u_
        top.append(capsule(tb, tb + tdir * pl * (0.45 if posture == "flat" else 0.3), fw * 1.1))
    hand["base"], hand["top"] = base, top


def draw_hand_layer(img, label, hand, layer):
    skin = hand["skin"]
    if layer == "base":
        for pts in hand["base"]:
            fill(img, label, pts, skin, hand["lab"])
        u_, P = hand["u"], hand["P"]
        v_ = np.array([-u_[1], u_[0]])
        for o in np.linspace(-0.3, 0.3, 4) * hand["pw"]:  # tendons on the back of the hand
            a = P + v_ * o - u_ * hand["pl"] * 0.25
            cv2.polylines(img, [to_cv(np.array([a, a + u_ * hand["pl"] * 0.4]))], False, shade(skin, 0.9), 1,
                          cv2.LINE_AA, SHIFT)
    else:
        edge = shade(skin, 0.62)
        for pts in hand["top"]:
            fill(img, label, pts, skin, hand["lab"])
            cv2.polylines(img, [to_cv(pts)], True, edge, 1, cv2.LINE_AA, SHIFT)
