"""EPIC-KITCHENS VISOR sparse annotations + EPIC-100 narrations -> WISH dataset dicts.

Inputs
------
* ``annotations_dir``: a folder of VISOR sparse JSON files (one per video, searched recursively, sorted), a
  single JSON file, or a list of files. Each file is
  ``{"info": ..., "video_annotations": [{"image": {"name", "image_path", "video", "subsequence"},
  "annotations": [entity, ...]}, ...]}`` with entities
  ``{"id", "name", "class_id", "segments": [polygon, ...], "exhaustive", "in_contact_object", "on_which_hand"}``,
  a polygon being ``[[x, y], ...]`` (a flat ``[x0, y0, x1, y1, ...]`` list is accepted too). Several polygons
  of one entity are one mask (their union).
* ``image_root``: where the frames are. The image of a frame is the first existing one of
  ``image_root/<image_path>``, ``image_root/<video>/<name>``, ``image_root/<participant>/<video>/<name>``,
  ``image_root/<participant>/<name>``, ``image_root/<name>`` (``participant`` = ``P01`` of ``P01_01``).
  ``height``/``width`` are read from the image header; with ``check_images=False`` a missing image is kept and
  its size is ``image_size`` (default 1080 x 1920, the sparse-frame size).
* ``narrations_csv``: EPIC-100 annotation CSV(s) (``EPIC_100_train.csv``...; ``None`` = no narrations). Needed
  columns: ``video_id, start_frame, stop_frame, narration, all_nouns`` (the other EPIC-100 columns are ignored).
  A frame takes every narration of its video whose ``[start_frame - frame_margin, stop_frame + frame_margin]``
  contains its frame number, which is parsed from the image name (``P01_01_frame_0000000123.jpg`` -> video
  ``P01_01``, frame 123; VISOR and EPIC-100 share the frame numbering). Noun phrases come from ``all_nouns``
  (``"pan:frying"`` -> ``"frying pan"``, see ``narrations.py``), then the optional synonym map.

Ground truth
------------
* Hands are the entities named ``left hand`` / ``right hand`` (the known typo ``rigth hand`` is fixed; names are
  lower-cased and stripped). A glove (an entity with ``on_which_hand``, or whose name contains ``glove``)
  belongs to the hand(s) named in ``on_which_hand`` (a string or a list; ``"left hand"`` or ``"left"``) and its
  mask joins that hand's mask (a gloved hand is seen as the glove). Two entities for the same hand are merged.
* The in-contact object of a hand: the ``in_contact_object`` of its glove if the hand wears one that carries the
  key, else the hand's own. The value is an entity id of the same frame, or a sentinel: ``hand-not-in-contact``,
  ``glove-not-in-contact``, ``none-of-the-above`` (no contact), ``inconclusive`` (no contact and flagged; the
  frame is dropped when ``drop_inconclusive``). A hand pointing at its own glove carries no object information.
* One annotation per hand with an object: category 0 ``left`` / 1 ``right``; if both hands reference the same
  entity, ONE annotation with category 2 ``both``. ``noun`` is the entity name as a phrase.
  ``contact_parts_only`` keeps only the object's polygons that touch the hand mask dilated by
  ``contact_dilation`` px (what VISOR-HOS does), all of them if none touches.
* Masks are COCO RLE (``counts`` str) rasterised from the polygons; boxes ``XYWH_ABS``. ``image_id`` is the
  image name without extension. Extra fields: ``video_id``, ``frame``.

Bad input
---------
A file that is not JSON / not the VISOR layout, or a CSV without the needed columns or with a bad row, raises
``DataFormatError`` naming the file (and line). Skipped (counted): malformed frame entries, unparseable names,
missing images (with ``check_images``), duplicate frames, frames whose in-contact id is not an entity of the
frame or has no polygon, inconclusive frames (``drop_inconclusive``), frames without narration
(``drop_frames_without_narration``). Dropped per entity (counted): malformed entities, degenerate polygons
(< 3 points), entities left without polygons, gloves without ``on_which_hand``. One summary line per dataset.
"""
import csv
import json
import logging
import os
import re
from collections import OrderedDict, namedtuple
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from detectron2.data import DatasetCatalog

from ..utils.masks import decode_rle
from .common import (
    CATEGORY_IDS,
    DataFormatError,
    SkipLog,
    dedup,
    fill_nouns_metadata,
    make_annotation,
    make_hand,
    read_image_size,
    set_wish_metadata,
)
from ..utils.masks import merge_rles, polygons_to_rle
from .narrations import apply_synonyms, epic_noun_to_phrase, load_synonyms, parse_epic_all_nouns

logger = logging.getLogger(__name__)

__all__ = [
    "load_epic_visor",
    "register_epic_visor",
    "load_epic_narrations",
    "parse_frame_name",
    "VISOR_SENTINELS",
    "EPIC_CSV_COLUMNS",
]

EPIC_CSV_COLUMNS = [
    "narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp", "stop_timestamp",
    "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun", "noun_class", "all_nouns",
    "all_noun_classes",
]
REQUIRED_CSV_COLUMNS = ["video_id", "start_frame", "stop_frame", "narration", "all_nouns"]
NO_CONTACT = frozenset({"hand-not-in-contact", "glove-not-in-contact", "none-of-the-above"})
INCONCLUSIVE = "inconclusive"
VISOR_SENTINELS = NO_CONTACT | {INCONCLUSIVE}
NAME_FIXES = {"rigth hand": "right hand", "left-hand": "left hand", "right-hand": "right hand"}
HAND_NAMES = {"left hand": "left", "right hand": "right"}
DEFAULT_IMAGE_SIZE = (1080, 1920)

_FRAME_RE = re.compile(r"^(?P<video>.+?)_frame_(?P<frame>\d+)\.[A-Za-z0-9]+$")

EpicNarration = namedtuple("EpicNarration", ["narration_id", "start_frame", "stop_frame", "text", "nouns"])


class _VideoNarrations:
    """Narrations of one video with vectorised interval lookup."""

    def __init__(self, rows: List[EpicNarration]):
        rows = sorted(rows, key=lambda r: (r.start_frame, r.stop_frame))
        self.rows = rows
        self.starts = np.array([r.start_frame for r in rows], dtype=np.int64)
        self.stops = np.array([r.stop_frame for r in rows], dtype=np.int64)

    def at(self, frame: int, margin: int) -> List[EpicNarration]:
        hit = np.nonzero((self.starts - margin <= frame) & (frame <= self.stops + margin))[0]
        return [self.rows[i] for i in hit]


def parse_frame_name(name: str) -> Tuple[str, int]:
    """``"P01_01_frame_0000000123.jpg"`` -> ``("P01_01", 123)``; ``ValueError`` if it does not match."""
    m = _FRAME_RE.match(os.path.basename(name))
    if not m:
        raise ValueError(f"frame name {name!r} is not '<video>_frame_<number>.<ext>'")
    return m.group("video"), int(m.group("frame"))


def _as_list(paths) -> List[str]:
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def load_epic_narrations(
    csv_paths: Union[str, Sequence[str]], synonyms: Optional[Dict[str, str]] = None
) -> Dict[str, "_VideoNarrations"]:
    """Read EPIC-100 CSV file(s) -> ``{video_id: narrations}``. Raises ``DataFormatError`` naming the file for
    missing columns or a malformed row (non-integer frames, bad ``all_nouns``, stop before start)."""
    per_video: Dict[str, List[EpicNarration]] = OrderedDict()
    for path in _as_list(csv_paths):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"EPIC narrations CSV not found: {path}")
        try:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                header = reader.fieldnames or []
                missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
                if missing:
                    raise DataFormatError(
                        f"{path}: not an EPIC-100 narrations CSV, missing columns {missing} (header: {header})"
                    )
                for row in reader:
                    where = f"{path}:{reader.line_num}"
                    if None in row or any(row.get(c) is None for c in REQUIRED_CSV_COLUMNS):
                        raise DataFormatError(f"{where}: row has a wrong number of fields")
                    try:
                        start, stop = int(row["start_frame"]), int(row["stop_frame"])
                    except ValueError as e:
                        raise DataFormatError(f"{where}: start_frame/stop_frame must be integers ({e})") from e
                    if stop < start:
                        raise DataFormatError(f"{where}: stop_frame {stop} < start_frame {start}")
                    keys = parse_epic_all_nouns(row["all_nouns"], where)
                    nouns = apply_synonyms([epic_noun_to_phrase(k) for k in keys], synonyms)
                    per_video.setdefault(row["video_id"].strip(), []).append(
                        EpicNarration(row.get("narration_id", ""), start, stop, row["narration"].strip(), nouns)
                    )
        except UnicodeDecodeError as e:
            raise DataFormatError(f"{path}: not a UTF-8 text CSV ({e})") from e
        except csv.Error as e:
            raise DataFormatError(f"{path}: malformed CSV ({e})") from e
    return {v: _VideoNarrations(rows) for v, rows in per_video.items()}


def _json_files(annotations) -> List[str]:
    paths = _as_list(annotations)
    files: List[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = []
            for dirpath, _, names in os.walk(p):
                found += [os.path.join(dirpath, n) for n in names if n.lower().endswith(".json")]
            if not found:
                raise DataFormatError(f"{p}: no VISOR .json annotation files in this folder")
            files += sorted(found)
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise FileNotFoundError(f"VISOR annotations not found: {p}")
    return files


def _read_visor_json(path: str) -> List:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("video_annotations"), list):
        raise DataFormatError(f"{path}: expected a VISOR object with a 'video_annotations' list")
    return data["video_annotations"]


def _norm_name(name) -> str:
    n = " ".join(str(name).strip().lower().split())
    return NAME_FIXES.get(n, n)


def _flat_polygons(segments, where: str, skips: SkipLog) -> List[List[float]]:
    out = []
    if not isinstance(segments, list):
        skips.skip("malformed polygon", where)
        return out
    for poly in segments:
        try:
            if poly and isinstance(poly[0], (list, tuple)):
                flat = [float(c) for pt in poly for c in pt]
                if any(len(pt) != 2 for pt in poly):
                    raise ValueError("point without 2 coordinates")
            else:
                flat = [float(c) for c in poly]
        except (TypeError, ValueError):
            skips.skip("malformed polygon", where)
            continue
        if len(flat) < 6 or len(flat) % 2:
            skips.skip("degenerate polygon (< 3 points)", where)
            continue
        out.append(flat)
    return out


def _hand_sides(value) -> List[str]:
    vals = value if isinstance(value, (list, tuple)) else [value]
    sides = []
    for v in vals:
        n = _norm_name(v)
        side = HAND_NAMES.get(n, n if n in ("left", "right") else None)
        if side and side not in sides:
            sides.append(side)
    return sides


def _image_candidates(image_root: str, image: Dict, name: str, video: str) -> List[str]:
    participant = video.split("_")[0]
    cands = []
    if image.get("image_path"):
        cands.append(os.path.join(image_root, image["image_path"]))
    cands += [
        os.path.join(image_root, video, name),
        os.path.join(image_root, participant, video, name),
        os.path.join(image_root, participant, name),
        os.path.join(image_root, name),
    ]
    return cands


def _touching_parts(polys, hand_rles, h, w, dilation):
    """Polygons of an object whose mask touches any of the hand masks dilated by ``dilation`` px."""
    import cv2

    hand = np.zeros((h, w), bool)
    for r in hand_rles:
        hand |= decode_rle(r)
    if dilation > 0:
        k = 2 * int(dilation) + 1
        hand = cv2.dilate(hand.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    keep = [p for p in polys if (decode_rle(polygons_to_rle([p], h, w)) & hand).any()]
    return keep or polys


def load_epic_visor(
    annotations_dir,
    image_root: str,
    narrations_csv=None,
    frame_margin: int = 0,
    dataset_name: Optional[str] = None,
    check_images: bool = True,
    image_size: Tuple[int, int] = DEFAULT_IMAGE_SIZE,
    drop_inconclusive: bool = False,
    drop_frames_without_narration: bool = False,
    contact_parts_only: bool = False,
    contact_dilation: int = 10,
    synonyms=None,
) -> List[Dict]:
    """Load VISOR sparse annotations (+ EPIC-100 narrations) as WISH dataset dicts (rules: module docstring)."""
    skips = SkipLog(dataset_name or "visor")
    syn = load_synonyms(synonyms)
    table = load_epic_narrations(narrations_csv, syn) if narrations_csv else None
    dicts: List[Dict] = []
    seen_ids = set()
    for path in _json_files(annotations_dir):
        fname = os.path.basename(path)
        for idx, frame in enumerate(_read_visor_json(path)):
            where = f"{fname}[{idx}]"
            rec = _load_frame(frame, path, where, image_root, table, frame_margin, check_images, image_size,
                              drop_inconclusive, drop_frames_without_narration, contact_parts_only,
                              contact_dilation, skips)
            if rec is None:
                continue
            if rec["image_id"] in seen_ids:
                skips.skip("duplicate frame", f"{fname}:{rec['image_id']}")
                continue
            seen_ids.add(rec["image_id"])
            dicts.append(rec)
    skips.log(len(dicts), logger)
    return dicts


def _load_frame(frame, path, where, image_root, table, margin, check_images, image_size, drop_inconclusive,
                drop_no_narration, contact_parts_only, contact_dilation, skips: SkipLog) -> Optional[Dict]:
    image = frame.get("image") if isinstance(frame, dict) else None
    entities = frame.get("annotations") if isinstance(frame, dict) else None
    if not isinstance(image, dict) or not isinstance(image.get("name"), str) or not isinstance(entities, list):
        skips.skip("malformed frame entry (needs image.name and an annotations list)", where)
        return None
    name = image["name"]
    where = f"{os.path.basename(path)}:{name}"
    try:
        video, frame_no = parse_frame_name(name)
    except ValueError:
        skips.skip("unparseable frame name", where)
        return None
    if image.get("video") and str(image["video"]) != video:
        skips.note("image.video disagrees with the frame name (name used)", where)

    file_name = None
    for cand in _image_candidates(image_root, image, name, video):
        if os.path.isfile(cand):
            file_name = cand
            break
    if file_name is None:
        if check_images:
            skips.skip("missing image", os.path.join(image_root, image.get("image_path") or name))
            return None
        file_name = _image_candidates(image_root, image, name, video)[0]
        h, w = image_size
    else:
        size = read_image_size(file_name)
        if size is None:
            skips.skip("unreadable image", file_name)
            return None
        h, w = size

    # ---- entities
    ents: "OrderedDict[str, Dict]" = OrderedDict()
    for j, e in enumerate(entities):
        ewhere = f"{where}#{j}"
        if not isinstance(e, dict) or "id" not in e or "name" not in e or "segments" not in e:
            skips.skip("malformed entity (needs id, name, segments)", ewhere)
            continue
        polys = _flat_polygons(e["segments"], ewhere, skips)
        ent = dict(e, name=_norm_name(e["name"]), polygons=polys)
        ents[str(e["id"])] = ent
    hands: Dict[str, List[Dict]] = {"left": [], "right": []}
    gloves: Dict[str, List[Dict]] = {"left": [], "right": []}
    for eid, e in ents.items():
        if e["name"] in HAND_NAMES:
            hands[HAND_NAMES[e["name"]]].append(e)
        elif "on_which_hand" in e or "glove" in e["name"]:
            sides = _hand_sides(e.get("on_which_hand"))
            if not sides:
                skips.skip("glove without a valid on_which_hand (ignored)", f"{where}:{eid}")
                continue
            for s in sides:
                gloves[s].append(e)
    hand_ids = {str(e["id"]) for side in ("left", "right") for e in hands[side] + gloves[side]}

    # ---- hand masks
    hand_rles: Dict[str, Dict] = {}
    for side in ("left", "right"):
        parts = [e for e in hands[side] + gloves[side] if e["polygons"]]
        for e in hands[side] + gloves[side]:
            if not e["polygons"]:
                skips.skip("entity without a valid polygon (dropped)", f"{where}:{e['id']}")
        if len(hands[side]) > 1:
            skips.note(f"several '{side} hand' entities (merged)", where)
        if parts:
            hand_rles[side] = merge_rles([polygons_to_rle(e["polygons"], h, w) for e in parts])

    # ---- contact
    contact: Dict[str, Optional[str]] = {}
    for side in ("left", "right"):
        if not hands[side] and not gloves[side]:
            continue
        source = next((g for g in gloves[side] if "in_contact_object" in g), None)
        if source is None:
            source = next((e for e in hands[side] if "in_contact_object" in e), None)
        value = None if source is None else source.get("in_contact_object")
        if source is None:
            skips.note("hand without in_contact_object (no contact)", where)
        if value is None:
            contact[side] = None
            continue
        value = str(value).strip()
        if value in NO_CONTACT:
            contact[side] = None
        elif value == INCONCLUSIVE:
            if drop_inconclusive:
                skips.skip("inconclusive contact (frame dropped)", where)
                return None
            skips.note("inconclusive contact (treated as no contact)", where)
            contact[side] = None
        elif value in hand_ids:
            contact[side] = None  # a hand pointing at its own glove: no object information
        elif value not in ents:
            skips.skip("in_contact_object is not an entity of the frame (frame dropped)", f"{where}:{value}")
            return None
        elif not ents[value]["polygons"]:
            skips.skip("in-contact object has no valid polygon (frame dropped)", f"{where}:{value}")
            return None
        else:
            contact[side] = value

    # ---- annotations
    def object_rle(eid: str, sides: Sequence[str]) -> Dict:
        polys = ents[eid]["polygons"]
        if contact_parts_only:
            polys = _touching_parts(polys, [hand_rles[s] for s in sides if s in hand_rles], h, w,
                                    contact_dilation)
        return polygons_to_rle(polys, h, w)

    annotations = []
    left, right = contact.get("left"), contact.get("right")
    if left is not None and left == right:
        annotations.append(make_annotation(object_rle(left, ("left", "right")), CATEGORY_IDS["both"],
                                           epic_noun_to_phrase(ents[left]["name"])))
    else:
        for side, eid in (("left", left), ("right", right)):
            if eid is not None:
                annotations.append(make_annotation(object_rle(eid, (side,)), CATEGORY_IDS[side],
                                                   epic_noun_to_phrase(ents[eid]["name"])))

    # ---- narrations
    narrations: List[str] = []
    phrases: List[str] = []
    if table is not None:
        vn = table.get(video)
        if vn is None:
            skips.note("video not in the narrations CSV", video)
            rows = []
        else:
            rows = vn.at(frame_no, margin)
        for r in rows:
            narrations.append(r.text)
            phrases.extend(r.nouns)
        if not rows:
            if drop_no_narration:
                skips.skip("frame without narration (dropped)", where)
                return None
            skips.note("frame without narration", where)

    return {
        "file_name": file_name,
        "image_id": os.path.splitext(name)[0],
        "height": int(h),
        "width": int(w),
        "video_id": video,
        "frame": frame_no,
        "narrations": dedup(narrations),
        "noun_phrases": dedup(phrases),
        "hands": [make_hand(hand_rles[s], s, "gt") for s in ("left", "right") if s in hand_rles],
        "annotations": annotations,
    }


def register_epic_visor(
    name: str,
    annotations_dir,
    image_root: str,
    narrations_csv=None,
    frame_margin: int = 0,
    nouns: Optional[Sequence[str]] = None,
    metadata: Optional[Dict] = None,
    prepare: Optional[Callable[[], None]] = None,
    **opts,
) -> None:
    """Register a VISOR split: ``DatasetCatalog`` entry ``name`` loading lazily with :func:`load_epic_visor`
    (``opts`` are its keyword options), and metadata (``thing_classes``, ``evaluator_type="wish_inhand"``,
    ``image_root``, ``nouns`` when given, else derived on first load, plus ``metadata``). ``prepare`` is called
    at the start of each load (the synthetic benchmark generates its files there)."""

    def _load():
        if prepare is not None:
            prepare()
        dicts = load_epic_visor(annotations_dir, image_root, narrations_csv, frame_margin=frame_margin,
                                dataset_name=name, **opts)
        fill_nouns_metadata(name, dicts)
        return dicts

    DatasetCatalog.register(name, _load)
    set_wish_metadata(name, image_root, nouns, frame_margin=frame_margin, **(metadata or {}))
