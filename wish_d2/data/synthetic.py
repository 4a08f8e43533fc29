"""The embedded synthetic NS-iHOS benchmark: egocentric kitchen-counter frames with hands, held objects and noisy
narrations, written in the real data formats (VISOR sparse JSON + EPIC-100 CSV + precomputed proposals) so that
the whole pipeline, loaders included, runs on it.

Everything is deterministic by seed: frame ``i`` of split ``s`` is drawn from its own generator
``numpy.random.default_rng([seed, split_code, i])`` (split codes: train 0, val 1, test 2), so the same seed gives
the same bytes, and a frame does not depend on how many frames the split has (a bigger split extends a smaller
one). Narration noise uses a second stream ``[seed, split_code, i, 1]``.

World (sizes are fractions of ``S = min(H, W)``)
-----------------------------------------------
* **Background.** A counter top filling the frame, one of five textures (grey stone with low-frequency mottling,
  speckled granite, square tiles with grout lines, white marble with veins, dark wood with grain), and with
  probability 0.6 a back wall strip across the top (0.08-0.25 H, its own colour and tiles or plain), all with
  random colours. A left-right lighting gradient (x0.85-1.1) and Gaussian pixel noise (sigma 2-5) are applied to
  the finished frame.
* **Taxonomy.** 13 kitchen nouns, each a distinct shape and colour family, varied per instance in size (ranges
  below), aspect, hue/saturation/value within the family and details:

  ============== ================================================= ============ ==== ==== ======= =====
  noun (key)     shape / colour family                             long side    hold both surface scene
  ============== ================================================= ============ ==== ==== ======= =====
  knife          steel tapered blade + dark handle                 0.26-0.34    1.0  0    0       1.0
  spoon          cyan oval bowl + thin handle                      0.22-0.30    0.9  0    0       0.8
  cup            blue disc, dark inner disc, side handle           0.15-0.19    1.0  0    0       1.0
  bowl           red-brown terracotta disc, lighter inside, food   0.20-0.25    0.6  1.0  0.1     0.8
  plate          white/off-white disc with rim line                0.24-0.30    0.4  1.0  0.5     0.8
  chopping board light-wood rounded rectangle with grain           0.40-0.50    0.04 0.3  1.0     0.6
  (board:chopping)
  frying pan     near-black disc + long handle                     0.38-0.48    0.12 0.5  0.6     0.6
  (pan:frying)
  bottle         green body + neck + coloured cap                  0.22-0.28    0.8  0    0       0.8
  tomato         bright red disc, green calyx star, highlight      0.08-0.10    0.8  0    0       0.9
  onion          purple ellipse with dark arcs                     0.09-0.12    0.8  0    0       0.8
  sponge         yellow rectangle with green scour layer, pores    0.12-0.15    0.9  0    0       0.7
  jar            amber glass rectangle, metal lid, pale label      0.14-0.18    0.7  0    0       0.7
  carrot         bright orange taper with ridges, green leaves     0.20-0.26    0.8  0    0       0.8
  ============== ================================================= ============ ==== ==== ======= =====

  ``hold``: relative weight to be the object one hand holds; ``both``: relative weight to be the object held by
  both hands; ``surface``: relative weight to be the large object a hand rests on; ``scene``: relative frequency
  as a free-standing object. So boards and pans are often under a hand but rarely held (category-specific
  holding priors).
* **Hands.** Each of the left and right hands is present with probability 0.85. A hand is an arm entering from
  the bottom edge (left hand: x in [-0.05, 0.4] W, or from the left edge low down with probability 0.3; the right
  hand mirrored), a palm ellipse (length 0.13-0.16, width 0.12-0.14), four fingers and a thumb (thumb towards the
  body midline, as seen palm-down from the head). The palm centre is drawn in x in [0.15, 0.6] W (left hand;
  mirrored for right), y in [0.35, 0.72] H, so a hand sometimes crosses the image centre (the side heuristic is
  not perfect). Skin colour: one tone per frame (H 0.03-0.08, S 0.25-0.6, V 0.45-0.95), each hand varied
  slightly; finger outlines and tendon lines on the back of the hand are darker. The hand points from the arm's
  entry towards the palm, +- 15 deg. Palms of the two hands are >= 0.3 S apart (up to 10 resamplings).
* **Postures.** A holding hand makes a grip: fingers that start on the visible palm just behind the held
  object's near edge and cover 45% of its extent along the hand (at least 0.2, at most 0.7 palm lengths), and a
  short thumb across it. A hand that holds nothing is flat (long, slightly spread fingers) with probability 0.7,
  else a fist (short fingers, no object) so that finger shape alone does not say "holding".
* **Holding.** If both hands are present, with probability 0.15 one object (``both`` prior) is held by both:
  centred in the middle of the frame, long axis within 20 deg of horizontal, each hand's grip at one of its two
  grip points. Otherwise each present hand holds an object with probability 0.55 (``hold`` prior). A held object
  is placed at the grip point ``G = palm + 0.45 * palm_length * forward`` so that it straddles the front of the
  palm; its orientation is aligned with the hand: handles (knife, spoon, pan, bottle, jar, carrot, sponge) lie
  across the palm (hand angle + 90 deg +- 15 deg, either way round), edge grips (bowl, plate, board) extend
  forward from the hand (hand angle +- 15 deg), round things (cup, tomato, onion) at any angle.
* **Distractors.** Per present hand, with probability 0.35 a large surface (``surface`` prior) lies under the
  hand (the hand rests on it, whether it holds something or not). Per present hand, with probability 0.3 a small
  object touches the hand without being held: it lies near the fingertips or beside the palm and the hand is
  drawn over part of it. With probability 0.4 per frame with a held object, another instance of a held category
  lies elsewhere (>= 0.25 S from both palms). Then 0-3 free objects (probabilities 0.15/0.35/0.3/0.2,
  ``scene`` prior) anywhere in the frame.
* **Layers (painter's order)** and the grip cue: background; resting objects (surfaces first, then the others);
  arms and palms; held objects; fingers and thumbs. So a held object covers the palm and is covered by the
  fingers, while a resting/touching object is covered by the whole hand (palm included) with flat or fist
  fingers. Hand overlap and proximity alone therefore cannot tell held from touched or rested-on; the layering,
  finger shape and category appearance can.
* **Visibility.** Masks are the visible pixels (after occlusion). An object or hand with fewer than
  ``max(12, 0.0008 H W)`` visible pixels is removed from the annotations; a hand whose held object vanished this
  way holds nothing.

Ground truth and files (per split folder ``<root>/wish_synth_seed{S}_{H}x{W}/{split}_n{N}/``)
-------------------------------------------------------------------------------------------
* ``images/<video>/<video>_frame_<10-digit frame>.png``: frames grouped 50 per video; videos ``P90_01``,
  ``P90_02``... (train), ``P91_*`` (val), ``P92_*`` (test); frame number ``100 j + 50`` for the ``j``-th frame.
* ``annotations/<video>.json``: VISOR sparse JSON. Every visible object is an entity named by its EPIC noun key,
  ``class_id`` its taxonomy index; hands are ``left hand`` / ``right hand`` (``class_id`` 300/301) with
  ``in_contact_object`` the held entity's id or ``hand-not-in-contact``; an object held by both hands is
  referenced by both. Polygons are the exact pixel outlines of the visible masks (traced at 2x, so pycocotools
  rasterises them back to the same pixels); interior holes cannot be written in VISOR polygons and are filled,
  which the generator's own ground truth does too (statistic ``gt_hole_fill_fraction``).
* ``narrations.csv``: one EPIC-100 row per frame, ``[frame - 20, frame + 20]``, so ``frame_margin=0`` gives each
  frame exactly its own row.
* ``proposals.jsonl`` (``proposals_io`` format): the segmenter imitation below.
* ``stats.json``: :func:`compute_stats` of the split. ``.done``: the completion marker (see "Generation").

Narrations (EPIC-100 rows: verb + nouns)
----------------------------------------
The clean narration names the held objects (one verb from the first noun's verb list; two nouns give
"<verb> <a> <prep> <b>"); a frame with no held object names a visible non-held object with probability 0.7 ("look
at", "reach for"...), else has no noun ("look around"). Noise, in this order:

* omission (p = 0.1, frames with a held object): one held noun is dropped; if none is left, a visible non-held
  object is named instead;
* distractor mention (p = 0.2): a visible non-held object of another category is added;
* synonyms (p = 0.1 per noun): the noun key is replaced by a synonym key (``mug`` for cup, ``board:cutting``
  for the board, ``skillet`` for the pan...; :data:`SYNONYM_KEYS`; :func:`synonym_map` maps phrases back);
* neighbour's narration (p = 0.1): the frame gets the (noisy) narration of the previous frame of the split (the
  next one for frame 0) instead of its own.

Segmenter imitation (class-agnostic proposals)
----------------------------------------------
For every visible object and hand: missed with p = 0.04; otherwise its mask is jittered (for masks >= 400 px a
1 px dilation or erosion with p = 0.3 each; then a smoothed random field, std 0.15, is added to the blurred mask
before re-thresholding at 0.5, so the boundary moves by about a pixel); over-segmented with p = 0.12 (areas
>= 150 px: split in two by a random line through the centroid, both halves added, the whole kept with
p = 0.5); under-segmented with p = 0.12 (merged with an entity it touches into one extra proposal, e.g. a held
object with its hand). 0-3 spurious blobs (random ellipses, or a
random polygon of background texture). Scores: clean 0.7-1.0, split/merged 0.5-0.9, blobs 0.3-0.8; proposals
under 10 px are dropped; sorted by score.

Generation
----------
Splits are generated on first use (inside the ``DatasetCatalog`` loader, see ``builtin.py``) or with
``tools/make_synthetic.py``. A split is written to a temporary sibling folder, the ``.done`` marker (the
generation parameters, written atomically) is written last, and the folder is renamed into place; a folder
without a matching marker is regenerated, so a killed generation is redone, and concurrent generators (several
ranks) need no lock (the loser of the rename discards its copy: the bytes are the same).

Statistics (default sizes, seed 0; :func:`compute_stats`, printed by ``tools/make_synthetic.py``)
------------------------------------------------------------------------------------------------
::

    statistic                                                train 1500   val 600     test 1000
    objects per frame (visible, hands excluded)              3.83         3.73        3.85
    hands per frame                                          1.70         1.70        1.73
    frames with 0 / 1 / 2 hands                              .02/.26/.72  .02/.27/.72 .02/.23/.75
    held objects / all objects (held fraction)               0.243        0.245       0.239
    visible hands that hold something                        0.620        0.605       0.595
    frames with a both-hands object                          0.121        0.113       0.111
    GT annotations per frame                                 0.93         0.91        0.92
    frames with a non-held instance of a held category       0.384        0.363       0.407
    frames with a non-held object touching a hand            0.813        0.802       0.839
    nearest-to-hand picks the held object (per holding hand) 0.583        0.590       0.578
    vertical-split side heuristic accuracy                   1.000        0.999       0.998
    proposals per frame                                      8.08         8.00        8.22
    GT recall of the proposals at IoU 0.5                    0.939        0.945       0.929
    narration: held object omitted (frames with one)         0.086        0.100       0.096
    narration: non-held object mentioned                     0.178        0.148       0.184
    narration: nouns replaced by a synonym                   0.101        0.082       0.091
    narration: neighbour's narration                         0.089        0.100       0.104
    narration names no held object (frames with one)         0.147        0.173       0.160
    frames without a held object                             0.252        0.267       0.252

Realised noise rates differ from the nominal ones: an omission or a neighbour swap can re-name a held object, and
a swapped-in narration carries its source frame's noise. Nearest-to-hand (largest overlap with the hand dilated
by 4% of the diagonal) finds the held object only ~57% of the time and a held category has a same-category
distractor in ~38% of frames: neither hand geometry nor the noun alone solves the benchmark.
"""
import csv
import json
import logging
import math
import os
import shutil
import time
import uuid
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from ..utils.atomic import atomic_path, write_json
from ..utils.masks import encode_rle, rle_area, rle_ious
from .common import CATEGORY_IDS, dedup, make_annotation, make_hand
from .narrations import epic_noun_to_phrase
from .proposals_io import write_proposals

logger = logging.getLogger(__name__)

__all__ = [
    "CATEGORIES",
    "NOUNS",
    "SYNONYM_KEYS",
    "synonym_map",
    "SPLITS",
    "GENERATOR_VERSION",
    "split_dir",
    "generate_split",
    "ensure_split",
    "compute_stats",
    "format_stats",
    "render_frame",
]

from .synthetic_world import (  # noqa: F401  (re-exported: the public API of the benchmark)
    CATEGORIES,
    FPS,
    FRAMES_PER_VIDEO,
    FRAME_STRIDE,
    GENERATOR_VERSION,
    NARRATION_HALF_WIDTH,
    NOUNS,
    PARTICIPANTS,
    P_DISTRACTOR,
    P_MENTION_WHEN_EMPTY,
    P_NEIGHBOUR,
    P_OMIT,
    P_SYNONYM,
    SPLITS,
    SYNONYM_KEYS,
    _EMPTY_VERBS,
    _KEY_TO_CLASS,
    _PREPS,
    _VERBS,
    _polys_rle,
    render_frame,
    synonym_map,
)
# ------------------------------------------------------------------------------------------------ split


def split_dir(root: str, seed: int, split: str, num: int, image_size: Sequence[int]) -> str:
    H, W = int(image_size[0]), int(image_size[1])
    return os.path.join(root, f"wish_synth_seed{int(seed)}_{H}x{W}", f"{split}_n{int(num)}")


def _video_frame(split: str, index: int) -> Tuple[str, int]:
    v, j = divmod(index, FRAMES_PER_VIDEO)
    return f"{PARTICIPANTS[split]}_{v + 1:02d}", FRAME_STRIDE * j + FRAME_STRIDE // 2


def _timestamp(frame: int) -> str:
    t = frame / FPS
    h, rem = divmod(t, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:05.2f}"


def _frame_narration(rng, held_cats: List[int], other_cats: List[int]) -> Dict:
    """Noisy narration of one frame (before the neighbour swap): keys, text, verb, events."""
    events = {"omitted": False, "distractor": False, "synonyms": 0, "no_held": not held_cats}
    keys_cats = list(dict.fromkeys(held_cats))
    others = [c for c in dict.fromkeys(other_cats) if c not in keys_cats]
    verb = None
    if not keys_cats:
        if others and rng.random() < P_MENTION_WHEN_EMPTY:
            keys_cats = [others.pop(int(rng.integers(len(others))))]
            verb = _EMPTY_VERBS[int(rng.integers(len(_EMPTY_VERBS)))]
    elif rng.random() < P_OMIT:
        events["omitted"] = True
        keys_cats.pop(int(rng.integers(len(keys_cats))))
        if not keys_cats and others:
            keys_cats = [others.pop(int(rng.integers(len(others))))]
    if others and rng.random() < P_DISTRACTOR:
        events["distractor"] = True
        keys_cats.append(others[int(rng.integers(len(others)))])
    keys = []
    for c in keys_cats:
        cat = CATEGORIES[c]
        if rng.random() < P_SYNONYM:
            keys.append(cat.synonyms[int(rng.integers(len(cat.synonyms)))])
            events["synonyms"] += 1
        else:
            keys.append(cat.key)
    if not keys:
        verb, text = "look around", "look around"
    else:
        if verb is None:
            vs = CATEGORIES[keys_cats[0]].verbs
            verb = vs[int(rng.integers(len(vs)))]
        phrases = [epic_noun_to_phrase(k) for k in keys]
        text = f"{verb} {phrases[0]}"
        for p in phrases[1:]:
            text += f" {_PREPS[int(rng.integers(len(_PREPS)))]} {p}"
    return {"keys": keys, "classes": [_KEY_TO_CLASS[k] for k in keys], "text": text, "verb": verb,
            "events": events, "mentioned_held": [c for c in keys_cats if c in held_cats]}


def _visor_entities(frame: Dict) -> List[Dict]:
    out = []
    for o in frame["objects"]:
        cat = CATEGORIES[o["cat"]]
        out.append({"id": o["eid"], "name": cat.key, "class_id": o["cat"], "segments": o["polys"],
                    "exhaustive": "y"})
    for k, side in enumerate(("left", "right")):
        hand = frame["hands"].get(side)
        if hand is None:
            continue
        held = frame["all_hands"][side].get("held")
        out.append({"id": 1000 + k, "name": f"{side} hand", "class_id": 300 + k, "segments": hand["polys"],
                    "exhaustive": "y",
                    "in_contact_object": held["eid"] if held is not None else "hand-not-in-contact"})
    return out


def _gt_record(frame: Dict, H: int, W: int) -> Tuple[List[Dict], List[Dict], Dict]:
    """(hands, annotations, extra) of the dataset dict, from the same polygons the VISOR JSON carries."""
    hands = [make_hand(_polys_rle(frame["hands"][s]["polys"], H, W), s, "gt")
             for s in ("left", "right") if s in frame["hands"]]
    held = {s: frame["all_hands"][s].get("held") for s in frame["hands"]}
    anns = []
    lo, ro = held.get("left"), held.get("right")
    if lo is not None and lo is ro:
        anns.append(make_annotation(_polys_rle(lo["polys"], H, W), CATEGORY_IDS["both"], CATEGORIES[lo["cat"]].name))
    else:
        for side, o in (("left", lo), ("right", ro)):
            if o is not None:
                anns.append(make_annotation(_polys_rle(o["polys"], H, W), CATEGORY_IDS[side],
                                            CATEGORIES[o["cat"]].name))
    return hands, anns, held


def _frame_stats(frame: Dict, hands_gt: List[Dict], anns: List[Dict], proposal_rles: List[Dict], H: int,
                 W: int) -> Dict:
    """Per-frame numbers for compute_stats (cheap mask arithmetic)."""
    objs = frame["objects"]
    hands = frame["hands"]
    held_ids = {id(h["held"]) for h in frame["all_hands"].values() if h.get("held") is not None}
    held_objs = [o for o in objs if id(o) in held_ids]
    held_cats = {o["cat"] for o in held_objs}
    st = {"objects": len(objs), "hands": len(hands), "held_objects": len(held_objs),
          "holding_hands": sum(1 for s in hands if frame["all_hands"][s].get("held") is not None),
          "both": any(a["category_id"] == 2 for a in anns),
          "same_category": any(o["cat"] in held_cats and id(o) not in held_ids for o in objs),
          "nonheld_touching": False, "nearest_correct": 0, "nearest_total": 0,
          "hole_fill_px": 0, "gt_px": 0, "side_correct": 0, "side_total": 0, "recall_hit": 0, "recall_total": 0,
          "proposals": len(frame["proposals"])}
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
    from .hand_side import assign_sides

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
        st["gt_px"] += int(o["mask"].sum())
    for a, o in zip(anns, pixel_masks):
        st["hole_fill_px"] += rle_area(a["segmentation"]) - int(o["mask"].sum())
    if gts and proposal_rles:
        st["recall_total"] = len(gts)
        st["recall_hit"] = int((rle_ious(gts, proposal_rles).max(axis=1) >= 0.5).sum())
    elif gts:
        st["recall_total"] = len(gts)
    return st


def compute_stats(frame_stats: Sequence[Dict], narr_events: Sequence[Dict]) -> Dict:
    """Benchmark statistics of a split from the per-frame numbers (see the module docstring)."""
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


def generate_split(out_dir: str, seed: int, split: str, num: int, image_size: Sequence[int],
                   progress: bool = True) -> Tuple[List[Dict], Dict]:
    """Write one split into ``out_dir`` (images, VISOR JSON, EPIC CSV, proposals, stats) and return
    ``(records, stats)``: ``records`` are the generator's own dataset dicts (what ``register_epic_visor`` must
    read back). Does not write the ``.done`` marker (see :func:`ensure_split`)."""
    from tqdm import tqdm

    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    H, W = int(image_size[0]), int(image_size[1])
    img_root = os.path.join(out_dir, "images")
    ann_root = os.path.join(out_dir, "annotations")
    os.makedirs(img_root, exist_ok=True)
    os.makedirs(ann_root, exist_ok=True)
    records, per_video, prop_records, frame_stats, narr_base = [], {}, [], [], []
    it = range(int(num))
    if progress:
        it = tqdm(it, desc=f"wish_synth seed {seed} {split}", unit="frame", leave=False)
    for i in it:
        frame = render_frame(seed, split, i, H, W)
        video, fno = _video_frame(split, i)
        name = f"{video}_frame_{fno:010d}.png"
        rel = f"{video}/{name}"
        path = os.path.join(img_root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(frame["png"])
        per_video.setdefault(video, []).append({
            "image": {"name": name, "image_path": rel, "video": video, "subsequence": f"{video}_Part_001"},
            "annotations": _visor_entities(frame),
        })
        hands, anns, held = _gt_record(frame, H, W)
        image_id = os.path.splitext(name)[0]
        proposal_rles = [encode_rle(p) for p in frame["proposals"]]
        prop_records.append({"image_id": image_id, "height": H, "width": W, "masks": proposal_rles,
                             "scores": frame["scores"]})
        frame_stats.append(_frame_stats(frame, hands, anns, proposal_rles, H, W))
        held_cats = [o["cat"] for o in {id(h): h for h in held.values() if h is not None}.values()]
        held_set = {id(h) for h in held.values() if h is not None}
        other_cats = [o["cat"] for o in frame["objects"] if id(o) not in held_set]
        nrng = np.random.default_rng([seed, SPLITS[split], i, 1])
        narr = _frame_narration(nrng, held_cats, other_cats)
        narr["neighbour"] = nrng.random() < P_NEIGHBOUR
        narr["held_cats"] = held_cats
        narr_base.append(narr)
        records.append({"file_name": os.path.join(img_root, rel), "image_id": image_id, "height": H, "width": W,
                        "video_id": video, "frame": fno, "hands": hands, "annotations": anns})

    rows, narr_events = [], []
    for i, rec in enumerate(records):
        narr = narr_base[i]
        src = narr
        if narr["neighbour"] and len(records) > 1:
            src = narr_base[i - 1] if i > 0 else narr_base[1]
        fno, video = rec["frame"], rec["video_id"]
        start, stop = fno - NARRATION_HALF_WIDTH, fno + NARRATION_HALF_WIDTH
        rows.append({
            "narration_id": f"{video}_{fno // FRAME_STRIDE}", "participant_id": video.split("_")[0],
            "video_id": video, "narration_timestamp": _timestamp(start), "start_timestamp": _timestamp(start),
            "stop_timestamp": _timestamp(stop), "start_frame": start, "stop_frame": stop, "narration": src["text"],
            "verb": src["verb"], "verb_class": _VERBS.index(src["verb"]),
            "noun": src["keys"][0] if src["keys"] else "", "noun_class": src["classes"][0] if src["classes"] else -1,
            "all_nouns": repr(list(src["keys"])), "all_noun_classes": repr(list(src["classes"])),
        })
        rec["narrations"] = [src["text"]]
        rec["noun_phrases"] = dedup(epic_noun_to_phrase(k) for k in src["keys"])
        ev = dict(narr["events"] if src is narr else src["events"])
        ev["neighbour"] = src is not narr
        ev["num_nouns"] = len(src["keys"])
        ev["no_held"] = not narr["held_cats"]
        ev["mentions_held"] = any(c in narr["held_cats"] for c in src["classes"])
        narr_events.append(ev)

    for video, frames in per_video.items():
        with atomic_path(os.path.join(ann_root, f"{video}.json")) as tmp:
            with open(tmp, "w") as f:  # json.dumps: the C encoder (json.dump streams through the Python one)
                f.write(json.dumps({"info": {"generator": "wish_d2 synthetic", "version": GENERATOR_VERSION,
                                             "seed": int(seed), "split": split}, "video_annotations": frames}))
    with atomic_path(os.path.join(out_dir, "narrations.csv")) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else ["video_id"], lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    write_proposals(prop_records, os.path.join(out_dir, "proposals.jsonl"))
    stats = compute_stats(frame_stats, narr_events)
    write_json(stats, os.path.join(out_dir, "stats.json"))
    return records, stats


def _params(seed, split, num, image_size) -> Dict:
    return {"version": GENERATOR_VERSION, "seed": int(seed), "split": split, "num": int(num),
            "image_size": [int(image_size[0]), int(image_size[1])]}


def is_complete(path: str, params: Dict) -> bool:
    try:
        with open(os.path.join(path, ".done")) as f:
            return json.load(f) == params
    except (OSError, ValueError):
        return False


def ensure_split(root: str, seed: int, split: str, num: int, image_size: Sequence[int],
                 progress: bool = True) -> str:
    """Generate a split unless a complete copy exists; returns its folder. Lock-free and crash-safe: generation
    happens in a unique temporary sibling folder, the ``.done`` marker is written (atomically) last, and the
    folder is renamed into place. A final folder without a matching marker (an older version or foreign files)
    is replaced; if another process finished first, its copy is kept and ours discarded."""
    final = split_dir(root, seed, split, num, image_size)
    params = _params(seed, split, num, image_size)
    if is_complete(final, params):
        return final
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    _clean_stale_tmp(parent)
    tmp = os.path.join(parent, f".tmp-{os.path.basename(final)}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    t0 = time.time()
    try:
        generate_split(tmp, seed, split, num, image_size, progress=progress)
        write_json(params, os.path.join(tmp, ".done"))
        for attempt in range(3):
            if is_complete(final, params):
                break
            if os.path.exists(final):  # stale or incomplete: move it away, then retry
                trash = f"{tmp}.old"
                try:
                    os.rename(final, trash)
                    shutil.rmtree(trash, ignore_errors=True)
                except OSError:
                    pass
            try:
                os.rename(tmp, final)
                break
            except OSError:
                continue
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    if not is_complete(final, params):
        raise RuntimeError(f"could not put the generated synthetic split in place at {final}")
    logger.info(f"Generated synthetic split {split} ({num} frames, seed {seed}) in {time.time() - t0:.1f}s: {final}")
    return final


def _clean_stale_tmp(parent: str, max_age_s: float = 3600.0) -> None:
    """Remove temporary folders of generations that were killed more than an hour ago."""
    now = time.time()
    for name in os.listdir(parent):
        if name.startswith(".tmp-"):
            p = os.path.join(parent, name)
            try:
                if now - os.path.getmtime(p) > max_age_s:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass
