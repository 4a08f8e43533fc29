"""The real formats a synthetic split is written in: VISOR sparse JSON entities (every visible object, hands with
their in-contact object), the EPIC-100 narration rows, and the dataset dicts the VISOR loader must read back."""
import csv
import json
from typing import Dict, List, Tuple

from ...classes import SIDES
from ...utils.atomic import atomic_path
from ..common import CATEGORY_IDS, make_annotation, make_hand
from .layout import FRAME_STRIDE, GENERATOR_VERSION, NARRATION_HALF_WIDTH, timestamp
from .outlines import xy_polygons_to_rle
from .taxonomy import CATEGORIES, VERBS

__all__ = ["visor_entities", "gt_record", "epic_row", "write_visor_json", "write_epic_csv"]


def visor_entities(frame: Dict) -> List[Dict]:
    """VISOR entities of a frame: every visible object by its EPIC noun key, then the hands (ids 1000/1001) with
    the id of the object they hold or ``hand-not-in-contact``."""
    out = []
    for o in frame["objects"]:
        cat = CATEGORIES[o["cat"]]
        out.append({"id": o["eid"], "name": cat.key, "class_id": o["cat"], "segments": o["polys"],
                    "exhaustive": "y"})
    for k, side in enumerate(SIDES):
        hand = frame["hands"].get(side)
        if hand is None:
            continue
        held = frame["all_hands"][side].get("held")
        contact = held["eid"] if held is not None else "hand-not-in-contact"
        extra = frame["all_hands"][side].get("held_extra")
        if held is not None and extra:  # a multi-grip hand lists every object it holds
            contact = [held["eid"]] + [o["eid"] for o in extra]
        out.append({"id": 1000 + k, "name": f"{side} hand", "class_id": 300 + k, "segments": hand["polys"],
                    "exhaustive": "y", "in_contact_object": contact})
    return out


def gt_record(frame: Dict, H: int, W: int) -> Tuple[List[Dict], List[Dict], Dict]:
    """``(hands, annotations, held)`` of the frame's dataset dict, rasterised from the same polygons the VISOR JSON
    carries (so they equal what the loader reads back); ``held``: side -> held object or ``None``."""
    hands = [make_hand(xy_polygons_to_rle(frame["hands"][s]["polys"], H, W), s, "gt")
             for s in SIDES if s in frame["hands"]]
    held = {s: frame["all_hands"][s].get("held") for s in frame["hands"]}
    anns = []
    lo, ro = held.get("left"), held.get("right")
    if lo is not None and lo is ro:
        anns.append(make_annotation(xy_polygons_to_rle(lo["polys"], H, W), CATEGORY_IDS["both"],
                                    CATEGORIES[lo["cat"]].name))
    else:
        for side, o in (("left", lo), ("right", ro)):
            if o is not None:
                anns.append(make_annotation(xy_polygons_to_rle(o["polys"], H, W), CATEGORY_IDS[side],
                                            CATEGORIES[o["cat"]].name))
                for extra in frame["all_hands"][side].get("held_extra", ()):  # multi-grip: one annotation each
                    anns.append(make_annotation(xy_polygons_to_rle(extra["polys"], H, W), CATEGORY_IDS[side],
                                                CATEGORIES[extra["cat"]].name))
    return hands, anns, held


def epic_row(video: str, fno: int, narr: Dict) -> Dict:
    """The EPIC-100 CSV row of one frame's narration, spanning ``[frame - 20, frame + 20]``."""
    start, stop = fno - NARRATION_HALF_WIDTH, fno + NARRATION_HALF_WIDTH
    return {
        "narration_id": f"{video}_{fno // FRAME_STRIDE}", "participant_id": video.split("_")[0],
        "video_id": video, "narration_timestamp": timestamp(start), "start_timestamp": timestamp(start),
        "stop_timestamp": timestamp(stop), "start_frame": start, "stop_frame": stop, "narration": narr["text"],
        "verb": narr["verb"], "verb_class": VERBS.index(narr["verb"]),
        "noun": narr["keys"][0] if narr["keys"] else "", "noun_class": narr["classes"][0] if narr["classes"] else -1,
        "all_nouns": repr(list(narr["keys"])), "all_noun_classes": repr(list(narr["classes"])),
    }


def write_visor_json(path: str, frames: List[Dict], seed: int, split: str) -> None:
    """One video's VISOR sparse JSON, written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:  # json.dumps: the C encoder (json.dump streams through the Python one)
            f.write(json.dumps({"info": {"generator": "wish_d2 synthetic", "version": GENERATOR_VERSION,
                                         "seed": int(seed), "split": split}, "video_annotations": frames}))


def write_epic_csv(path: str, rows: List[Dict]) -> None:
    """The EPIC-100 narration CSV of a split, written atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else ["video_id"], lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
