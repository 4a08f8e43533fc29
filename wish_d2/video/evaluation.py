"""Video metrics (docs/VIDEO.md): E-mIoU over all frames of the videos (the frame metric, dataset-level), and
``switches_per_min``: spurious changes of a hand's held object per minute of video; E-mIoU also per kind of frame
(:func:`frame_conditions`: steady, near a change of what a hand holds, handover), to show where smoothing gains and
where it lags.

A hand's predicted identity in a frame is the ground-truth entity its predicted mask mostly covers (at least half of
the predicted pixels), ``OTHER`` when none does, ``None`` when the hand is predicted to hold nothing. A change of
identity between consecutive frames (including on/off) is spurious when the ground truth of that hand has no
change within +-1 frame of it.
"""
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..classes import CLASS_BOTH, SIDES
from ..data.synthetic.outlines import xy_polygons_to_rle
from ..utils.masks import decode_rle

__all__ = ["OTHER", "NEAR_CHANGE", "predicted_identity", "spurious_switches", "switches_per_minute",
           "frame_conditions", "VisorEntities", "hand_identities"]

OTHER = -1  # a predicted mask that covers no ground-truth entity
MIN_COVER = 0.5  # fraction of the predicted pixels that must lie on one entity to take its identity
NEAR_CHANGE = 3  # frames on either side of a true change of a hand's held object that count as "near_change"


def predicted_identity(mask: Optional[torch.Tensor], entities: Dict[int, torch.Tensor]) -> Optional[int]:
    """Entity id under most of ``mask`` (``OTHER`` if under half of it), ``None`` for no mask."""
    if mask is None:
        return None
    area = float(mask.sum())
    if area == 0:
        return OTHER
    best, best_cover = OTHER, 0.0
    for eid, m in entities.items():
        cover = float((mask & m).sum()) / area
        if cover > best_cover:
            best, best_cover = eid, cover
    return best if best_cover >= MIN_COVER else OTHER


def spurious_switches(pred: Sequence[Optional[int]], gt: Sequence[Optional[int]], tolerance: int = 1) -> int:
    """Changes of ``pred`` between consecutive frames with no change of ``gt`` within ``tolerance`` frames."""
    if len(pred) != len(gt):
        raise ValueError(f"prediction has {len(pred)} frames, ground truth {len(gt)}")
    gt_change = [t for t in range(1, len(gt)) if gt[t] != gt[t - 1]]
    count = 0
    for t in range(1, len(pred)):
        if pred[t] != pred[t - 1] and not any(abs(t - g) <= tolerance for g in gt_change):
            count += 1
    return count


def switches_per_minute(count: int, frames: int, fps: float) -> float:
    minutes = frames / float(fps) / 60.0
    return count / minutes if minutes > 0 else 0.0


def frame_conditions(held: Sequence[Dict], near: int = NEAR_CHANGE) -> List[List[str]]:
    """Per frame of one video's held timeline (``[{"left", "right"}]``, the generator's ``held_timeline.json``):
    ``"near_change"`` within ``near`` frames of a change of either hand's held object (grasp, release, handover),
    else ``"steady"``; plus ``"handover"`` while both hands hold one object."""
    changes = [t for t in range(1, len(held))
               if any(held[t][s] != held[t - 1][s] for s in SIDES)]
    out = []
    for t, h in enumerate(held):
        kinds = ["near_change" if any(abs(t - g) <= near for g in changes) else "steady"]
        if h["left"] is not None and h["left"] == h["right"]:
            kinds.append("handover")
        out.append(kinds)
    return out


def hand_identities(selection, entities: Dict[int, torch.Tensor]) -> List[Optional[int]]:
    """``[left, right]`` identities of a frame's selection ``[(mask, class, score)]`` (class 2 = both hands)."""
    out: List[Optional[int]] = [None, None]
    for mask, cls, _ in selection:
        ident = predicted_identity(mask, entities)
        for s in ((0, 1) if cls == CLASS_BOTH else (int(cls),)):
            out[s] = ident
    return out


class VisorEntities:
    """Every entity mask of every frame of a split's VISOR JSON files, rasterised on demand (ids persist across
    a video's frames in the synthetic videos)."""

    def __init__(self, annotations_dir: str, height: int, width: int):
        self.h, self.w = int(height), int(width)
        self.frames: Dict[str, List[Dict]] = {}
        for name in sorted(os.listdir(annotations_dir)):
            if not name.endswith(".json"):
                continue
            with open(os.path.join(annotations_dir, name)) as f:
                for fr in json.load(f)["video_annotations"]:
                    self.frames[os.path.splitext(fr["image"]["name"])[0]] = fr["annotations"]

    def masks(self, image_id: str) -> Dict[int, torch.Tensor]:
        """``{entity id: bool [H, W]}`` of the objects (not the hands) of one frame."""
        out = {}
        for e in self.frames.get(image_id, []):
            if "hand" in str(e.get("name", "")) or not e.get("segments"):
                continue
            rle = xy_polygons_to_rle(e["segments"], self.h, self.w)
            out[int(e["id"])] = torch.as_tensor(np.asarray(decode_rle(rle)).astype(bool))
        return out
