"""Benchmark statistics of a split: how often hands hold, how often the easy cues (nearest object, the noun, the
image side) would already give the answer, how good the proposals are, and how noisy the narrations are. The
numbers of the default benchmark are in docs/SYNTHETIC.md."""
import math
from typing import Dict, List, Sequence

import cv2
import numpy as np

from ...classes import CLASS_BOTH
from ...utils.masks import rle_area, rle_ious
from ..hand_side import assign_sides

__all__ = ["per_frame_stats", "compute_stats", "format_stats"]


def per_frame_stats(frame: Dict, hands_gt: List[Dict], anns: List[Dict], proposal_rles: List[Dict],
                    area_scale: int = 1) -> Dict:
    """Per-frame numbers for :func:`compute_stats`. Mask arithmetic runs on the rendered masks (``label_shape``);
    ``area_scale`` converts their pixel counts to the frame's (the realistic profile renders at a lower
    resolution than it writes)."""
    H, W = frame["label_shape"]
    objs = frame["objects"]
    hands = frame["hands"]
    held_ids = {id(h["held"]) for h in frame["all_hands"].values() if h.get("held") is not None}
    held_ids |= {id(o) for h in frame["all_hands"].values() for o in h.get("held_extra", ())}
    held_objs = [o for o in objs if id(o) in held_ids]
    held_cats = {o["cat"] for o in held_objs}
    st = {"objects": len(objs), "hands": len(hands), "held_objects": len(held_objs),
          "holding_hands": sum(1 for s in hands if frame["all_hands"][s].get("held") is not None),
          "both": any(a["category_id"] == CLASS_BOTH for a in anns),
          "same_category": any(o["cat"] in held_cats and id(o) not in held_ids for o in objs),
          "nonheld_touching": False, "nearest_correct": 0, "nearest_total": 0,
          "hole_fill_px": 0, "gt_px": 0, "side_correct": 0, "side_total": 0, "recall_hit": 0, "recall_total": 0,
          "proposals": len(proposal_rles)}
    diag = math.hypot(H, W)
    k = 2 * int(round(0.04 * diag / 2)) + 1
    kern = np.ones((k, k), np.uint8)
    k3 = np.ones((3, 3), np.uint8)
    for side, hand in hands.items():
        hm = hand["mask"].astype(np.uint8)
        touch = cv2.dilate(hm, k3).astype(bool)
        near = cv2.dilate(hm, kern).astype(bool)
        held = frame["all_hands"][side].get("held")
        if any(id(o) not in held_ids and (touch & o["mask"]).any() for o in objs):
            st["nonheld_touching"] = True
        if held is not None and objs:
            ov = [int((near & o["mask"]).sum()) for o in objs]
            st["nearest_total"] += 1
            st["nearest_correct"] += int(objs[int(np.argmax(ov))] is held)
    sides = [h["side"] for h in hands_gt]
    pred = assign_sides([hands[s]["mask"] for s in sides], W)
    st["side_total"] = len(sides)
    st["side_correct"] = sum(int(p == s) for p, s in zip(pred, sides))
    gts = [a["segmentation"] for a in anns]
    pixel_masks = []
    for side, hand in hands.items():
        held = frame["all_hands"][side].get("held")
        if held is not None and all(held is not p for p in pixel_masks):
            pixel_masks.append(held)
    for o in pixel_masks:
        st["gt_px"] += area_scale * int(o["mask"].sum())
    for a, o in zip(anns, pixel_masks):
        st["hole_fill_px"] += rle_area(a["segmentation"]) - area_scale * int(o["mask"].sum())
    if gts and proposal_rles:
        st["recall_total"] = len(gts)
        st["recall_hit"] = int((rle_ious(gts, proposal_rles).max(axis=1) >= 0.5).sum())
    elif gts:
        st["recall_total"] = len(gts)
    return st


def compute_stats(frame_stats: Sequence[Dict], narr_events: Sequence[Dict]) -> Dict:
    """Benchmark statistics of a split from the per-frame numbers (defined in docs/SYNTHETIC.md)."""
    n = max(1, len(frame_stats))
    s = lambda k: sum(f[k] for f in frame_stats)  # noqa: E731
    objs, held = s("objects"), s("held_objects")
    hands = s("hands")
    with_held = [e for e in narr_events if not e["no_held"]]
    n_mentions = sum(e["num_nouns"] for e in narr_events)
    ratio = lambda a, b: float(a) / b if b else float("nan")  # noqa: E731
    return {
        "frames": len(frame_stats),
        "objects_per_frame": ratio(objs, n),
        "hands_per_frame": ratio(hands, n),
        "frames_0_1_2_hands": [ratio(sum(1 for f in frame_stats if f["hands"] == k), n) for k in (0, 1, 2)],
        "held_object_fraction": ratio(held, objs),
        "holding_hand_fraction": ratio(s("holding_hands"), hands),
        "both_hands_frame_fraction": ratio(s("both"), n),
        "annotations_per_frame": ratio(s("held_objects"), n),
        "same_category_distractor_frame_fraction": ratio(s("same_category"), n),
        "nonheld_touching_hand_frame_fraction": ratio(s("nonheld_touching"), n),
        "nearest_to_hand_accuracy": ratio(s("nearest_correct"), s("nearest_total")),
        "hand_side_heuristic_accuracy": ratio(s("side_correct"), s("side_total")),
        "proposals_per_frame": ratio(s("proposals"), n),
        "proposal_recall_iou50": ratio(s("recall_hit"), s("recall_total")),
        "gt_hole_fill_fraction": ratio(s("hole_fill_px"), s("gt_px")),
        "narration_held_omitted_rate": ratio(sum(e["omitted"] for e in with_held), len(with_held)),
        "narration_nonheld_mentioned_rate": ratio(sum(e["distractor"] for e in narr_events), len(narr_events)),
        "narration_synonym_rate": ratio(sum(e["synonyms"] for e in narr_events), n_mentions),
        "narration_neighbour_rate": ratio(sum(e["neighbour"] for e in narr_events), len(narr_events)),
        "narration_without_held_noun_rate": ratio(sum(1 for e in with_held if not e["mentions_held"]),
                                                  len(with_held)),
        "frames_without_held_object": ratio(sum(1 for e in narr_events if e["no_held"]), len(narr_events)),
    }


def format_stats(stats: Dict) -> str:
    lines = []
    for k, v in stats.items():
        if isinstance(v, float):
            lines.append(f"  {k:42s} {v:.3f}")
        elif isinstance(v, list):
            lines.append(f"  {k:42s} " + " / ".join(f"{x:.3f}" for x in v))
        else:
            lines.append(f"  {k:42s} {v}")
    return "\n".join(lines)
