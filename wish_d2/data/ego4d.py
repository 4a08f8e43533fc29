"""Ego4D frames with EgoHOS label maps + Ego4D narrations -> WISH dataset dicts.

Expected layout
---------------
::

    label_dir/<stem>.png       EgoHOS label map: one channel (mode L or P), pixel value = class id
    image_root/<stem>.jpg      the RGB frame (.jpg, .jpeg or .png; first that exists)
    narration_json             Ego4D v1/v2 narration.json

``<stem>`` names the Ego4D video and the frame index. The default pattern (``name_pattern``) accepts
``[ego4d_]<video_uid>_[frame_]<index>``, e.g. ``ego4d_0a1b2c3d-0000-4000-8000-123456789abc_0000459.png`` or
``0a1b2c3d-0000-4000-8000-123456789abc_frame_459.png``, with ``video_uid`` a UUID and ``index`` the frame
number of the canonical 30 fps video (the numbering of Ego4D's ``timestamp_frame``). Other namings: pass a regex
with the named groups ``video_uid`` and ``frame``, matched against the stem. Labels are listed from
``label_dir`` (recursively, sorted); an image for each is looked up under ``image_root`` with the label's
relative folder, so ``label_dir/train/x.png`` pairs with ``image_root/train/x.jpg``.

EgoHOS label ids: 0 background, 1 left hand, 2 right hand, 3 left-hand object, 4 right-hand object, 5 object
held by both hands, 6-8 second-order objects (ignored here). Each class region is one instance (label maps do not
separate instances; a hand holds at most one object): 1/2 -> ``hands`` (``side_source="gt"``), 3/4/5 ->
``annotations`` with category 0/1/2. The object noun is unknown from a label map, so ``noun`` is ``""``.
Pixels with ids > 8 are ignored and counted. A class region smaller than ``min_area`` pixels is ignored.

Narrations
----------
``narration.json`` is ``{video_uid: {"narration_pass_1": {"narrations": [{"timestamp_sec",
"timestamp_frame", "narration_text", "annotation_uid"}], "summaries": [...]}, "narration_pass_2": {...}}}``.
A frame takes the narrations (of the passes in ``passes``) whose ``timestamp_frame`` (or
``round(timestamp_sec * fps)`` when it is missing) lies within ``window_frames`` of its index. Identical texts
from the two passes are kept once. Narrations marked ``#O`` describe what another person does, not the camera
wearer, so they would supervise the wrong hands: they are left out unless ``exclude_other_person=False``
(counted). Noun phrases: the configured extractor (``narrations.py``; default the
rule-based parser, which strips ``#C``/``#O``/``X``/``Y`` subjects and ``#unsure``-like tags) and the optional
synonym map.

Bad input
---------
A narration file that is not JSON or not the layout above raises ``DataFormatError`` naming the file, the
video, the pass, the narration index and the field: a ``narration_text`` that is not a string, a timestamp that
is not a finite number in ``[0, MAX_FRAME]`` frames. A ``name_pattern`` that is not a regex or lacks the named
groups, or a bad ``window_frames`` / ``fps``, raises before any file is read. Skipped (counted): stems that do
not match the pattern or give a frame number over ``MAX_FRAME``, label maps that cannot be read, are not
single-channel, or claim more pixels than PIL's decompression-bomb limit, images that are unreadable, too
large, or of another size than their label map, frames without an image (with ``check_images``), frames without
narration (``drop_frames_without_narration``). Flagged (kept, counted): videos missing from the narration file,
frames without narration, unknown label ids, excluded ``#O`` narrations. One summary line per dataset.
"""
import json
import logging
import math
import os
import re
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
from detectron2.data import DatasetCatalog
from PIL import Image

from ..utils.masks import MAX_MASK_SIDE
from ..utils.masks import encode_rle as mask_to_rle
from .common import (
    CATEGORY_IDS,
    DataFormatError,
    SkipLog,
    dedup,
    make_annotation,
    make_hand,
    probe_image,
    set_wish_metadata,
)
from .dict_cache import cache_key, read_cached_dicts, write_cached_dicts
from .epic_narrations import MAX_FRAME
from .narrations import extract_noun_phrases, load_synonyms

logger = logging.getLogger(__name__)

__all__ = ["load_ego4d", "register_ego4d", "load_ego4d_narrations", "is_other_person_narration",
           "DEFAULT_NAME_PATTERN", "EGOHOS_IDS"]

DEFAULT_NAME_PATTERN = (
    r"^(?:ego4d_)?(?P<video_uid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"_(?:frame_)?(?P<frame>\d+)$"
)
EGOHOS_IDS = {"left_hand": 1, "right_hand": 2, "left_object": 3, "right_object": 4, "both_object": 5}
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".JPG", ".PNG")
DEFAULT_PASSES = ("narration_pass_1", "narration_pass_2")
# Bump when the dicts produced from the same inputs change, so that dataset caches of older code are not read.
LOADER_VERSION = 2
_OTHER_PERSON = re.compile(r"^\s*#o(?![a-z0-9_])", re.IGNORECASE)


def is_other_person_narration(text: str) -> bool:
    """``True`` for an Ego4D ``#O`` narration (another person's action, e.g. ``"#O man X hands a plate"``)."""
    return bool(_OTHER_PERSON.match(text))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _narration_frame(n: Dict, fps: float, where: str) -> int:
    if n.get("timestamp_frame") is not None:
        field, value = "timestamp_frame", n["timestamp_frame"]
        frame = value if _is_number(value) and math.isfinite(value) else None
    elif "timestamp_sec" in n:
        field, value = "timestamp_sec", n["timestamp_sec"]
        frame = value * fps if _is_number(value) and math.isfinite(value) else None
    else:
        raise DataFormatError(f"{where} needs narration_text and timestamp_frame or timestamp_sec (no timestamp)")
    if frame is None or not 0 <= frame <= MAX_FRAME:
        raise DataFormatError(f"{where}.{field} must be a finite number within [0, {MAX_FRAME}] frames, "
                              f"got {str(value)[:40]}")
    return int(frame) if field == "timestamp_frame" else int(round(frame))


def load_ego4d_narrations(path: str, passes: Sequence[str] = DEFAULT_PASSES, fps: float = 30.0,
                          exclude_other_person: bool = True, skips: Optional[SkipLog] = None):
    """``narration.json`` -> ``{video_uid: (frames int64 [K], texts [K])}`` sorted by frame. ``#O`` narrations
    are left out with ``exclude_other_person`` (counted in ``skips`` when given)."""
    if not _is_number(fps) or not math.isfinite(fps) or fps <= 0:
        raise DataFormatError(f"fps must be a positive finite number, got {fps!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Ego4D narration file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: not valid JSON ({e})") from e
    except RecursionError:
        raise DataFormatError(f"{path}: nested too deeply to be JSON data") from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected an object {{video_uid: {{narration_pass_1: ...}}}}")
    out = {}
    for vid, passes_dict in data.items():
        if not isinstance(passes_dict, dict):
            raise DataFormatError(f"{path}: entry of video {vid} is not an object")
        items = []
        for p in passes:
            block = passes_dict.get(p)
            if block is None:
                continue
            narr = block.get("narrations") if isinstance(block, dict) else None
            if not isinstance(narr, list):
                raise DataFormatError(f"{path}: {vid}.{p} has no 'narrations' list")
            for k, n in enumerate(narr):
                where = f"{path}: {vid}.{p}.narrations[{k}]"
                if not isinstance(n, dict) or "narration_text" not in n:
                    raise DataFormatError(f"{where} needs narration_text and timestamp_frame or timestamp_sec")
                text = n["narration_text"]
                if not isinstance(text, str):
                    raise DataFormatError(f"{where}.narration_text must be a string, got {type(text).__name__}")
                frame = _narration_frame(n, fps, where)
                if exclude_other_person and is_other_person_narration(text):
                    if skips is not None:
                        skips.note("#O narration (another person's action) excluded", f"{vid}.{p}[{k}]")
                    continue
                items.append((frame, text))
        items.sort(key=lambda t: t[0])
        out[vid] = (np.array([t[0] for t in items], dtype=np.int64), [t[1] for t in items])
    return out


def _compile_name_pattern(name_pattern: str):
    try:
        pattern = re.compile(name_pattern)
    except (re.error, TypeError) as e:
        raise DataFormatError(f"name_pattern {name_pattern!r} is not a regular expression ({e})") from e
    missing = [g for g in ("video_uid", "frame") if g not in pattern.groupindex]
    if missing:
        raise DataFormatError(f"name_pattern {name_pattern!r} lacks the named group(s) {missing}: "
                              "write them as (?P<video_uid>...) and (?P<frame>...)")
    return pattern


def _read_label_map(path: str):
    """(label array, None) or (None, reason): single-channel, within PIL's decompression-bomb limit."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.mode not in ("L", "P", "I", "I;16"):
                    return None, f"label map is not single-channel (mode {im.mode})"
                if max(im.size) > MAX_MASK_SIDE:
                    return None, "label map too large (decompression bomb)"
                return np.array(im), None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, "label map too large (decompression bomb)"
    except (OSError, ValueError, SyntaxError):
        return None, "unreadable label map"


def _label_files(label_dir: str, label_ext: str) -> List[str]:
    if not os.path.isdir(label_dir):
        raise FileNotFoundError(f"EgoHOS label folder not found: {label_dir}")
    found = []
    for dirpath, _, names in os.walk(label_dir):
        found += [os.path.join(dirpath, n) for n in names if n.endswith(label_ext)]
    return sorted(found)


def load_ego4d(
    label_dir: str,
    image_root: str,
    narration_json: Optional[str] = None,
    window_frames: int = 30,
    dataset_name: Optional[str] = None,
    name_pattern: str = DEFAULT_NAME_PATTERN,
    label_ext: str = ".png",
    passes: Sequence[str] = DEFAULT_PASSES,
    fps: float = 30.0,
    check_images: bool = True,
    min_area: int = 1,
    drop_frames_without_narration: bool = False,
    noun_phrase_extractor="rule",
    synonyms=None,
    exclude_other_person: bool = True,
    cache_dir: Optional[str] = None,
) -> List[Dict]:
    """Load EgoHOS label maps + Ego4D narrations as WISH dataset dicts (rules: module docstring). With
    ``cache_dir`` the dicts are kept in a keyed file there and read back by later loads (``dict_cache.py``;
    not with a callable ``noun_phrase_extractor``, which has no stable key)."""
    skips = SkipLog(dataset_name or "ego4d")
    pattern = _compile_name_pattern(name_pattern)
    if isinstance(window_frames, bool) or not isinstance(window_frames, int) or not 0 <= window_frames <= MAX_FRAME:
        raise DataFormatError(f"window_frames must be an integer in [0, {MAX_FRAME}], got {window_frames!r}")
    syn = load_synonyms(synonyms)
    labels = _label_files(label_dir, label_ext)
    key = None
    if cache_dir and not callable(noun_phrase_extractor):
        options = dict(image_root=os.path.abspath(image_root), label_dir=os.path.abspath(label_dir),
                       window_frames=window_frames, name_pattern=name_pattern, passes=list(passes), fps=fps,
                       check_images=check_images, min_area=min_area, exclude_other_person=exclude_other_person,
                       drop_frames_without_narration=drop_frames_without_narration,
                       noun_phrase_extractor=noun_phrase_extractor, synonyms=syn)
        inputs = labels + [p for p in (narration_json, synonyms) if isinstance(p, (str, os.PathLike))]
        key = cache_key(LOADER_VERSION, options, inputs)
        cached = read_cached_dicts(cache_dir, "ego4d", key, skips, check_images)
        if cached is not None:
            skips.log(len(cached), logger)
            return cached
    table = (load_ego4d_narrations(narration_json, passes, fps, exclude_other_person, skips)
             if narration_json else None)
    dicts = []
    for label_path in labels:
        rel = os.path.relpath(label_path, label_dir)
        stem = os.path.splitext(rel)[0]
        m = pattern.match(os.path.basename(stem))
        if not m:
            skips.skip("file name does not match name_pattern", rel)
            continue
        try:
            video_uid, frame_no = m.group("video_uid"), int(m.group("frame"))
        except (TypeError, ValueError):
            skips.skip("name_pattern group frame is not a number", rel)
            continue
        if not 0 <= frame_no <= MAX_FRAME:
            skips.skip(f"frame number out of range (> {MAX_FRAME})", rel)
            continue
        image_path = next((os.path.join(image_root, stem + e) for e in IMAGE_EXTS
                           if os.path.isfile(os.path.join(image_root, stem + e))), None)
        image_size = None
        if image_path is None:
            if check_images:
                skips.skip("missing image", os.path.join(image_root, stem + ".jpg"))
                continue
            image_path = os.path.join(image_root, stem + ".jpg")
        elif check_images:
            image_size, problem = probe_image(image_path)
            if image_size is None:
                skips.skip(problem, image_path)
                continue
        label, problem = _read_label_map(label_path)
        if label is None:
            skips.skip(problem, rel)
            continue
        h, w = label.shape
        if image_size is not None and image_size != (h, w):
            skips.skip("label map and image differ in size", rel)
            continue
        if (label > 8).any():
            skips.note("unknown label ids > 8 (ignored)", rel)

        hands = []
        for side, lid in (("left", 1), ("right", 2)):
            mask = label == lid
            if mask.sum() >= min_area:
                hands.append(make_hand(mask_to_rle(mask), side, "gt"))
        annotations = []
        for cat, lid in (("left", 3), ("right", 4), ("both", 5)):
            mask = label == lid
            if mask.sum() >= min_area:
                annotations.append(make_annotation(mask_to_rle(mask), CATEGORY_IDS[cat], ""))

        narrations: List[str] = []
        if table is not None:
            entry = table.get(video_uid)
            if entry is None:
                skips.note("video not in the narration file", video_uid)
            else:
                frames, texts = entry
                hit = np.nonzero(np.abs(frames - frame_no) <= window_frames)[0]
                narrations = dedup(texts[i] for i in hit)
            if not narrations:
                if drop_frames_without_narration:
                    skips.skip("frame without narration (dropped)", rel)
                    continue
                skips.note("frame without narration", rel)
        dicts.append({
            "file_name": image_path,
            "image_id": stem.replace(os.sep, "/"),
            "height": int(h),
            "width": int(w),
            "video_id": video_uid,
            "frame": frame_no,
            "narrations": narrations,
            "noun_phrases": extract_noun_phrases(narrations, noun_phrase_extractor, syn),
            "hands": hands,
            "annotations": annotations,
        })
    if key is not None:
        write_cached_dicts(cache_dir, "ego4d", key, dicts, skips)
    skips.log(len(dicts), logger)
    return dicts


def register_ego4d(
    name: str,
    label_dir: str,
    image_root: str,
    narration_json: Optional[str] = None,
    window_frames: int = 30,
    nouns: Optional[Sequence[str]] = None,
    metadata: Optional[Dict] = None,
    **opts,
) -> None:
    """Register an EgoHOS/Ego4D split under ``name`` (lazy :func:`load_ego4d`; ``opts`` are its options) with
    the WISH metadata (``nouns`` when given; a training split without them takes its taxonomy from its
    narrations, see ``taxonomy.py``)."""

    def _load():
        return load_ego4d(label_dir, image_root, narration_json, window_frames=window_frames,
                          dataset_name=name, **opts)

    DatasetCatalog.register(name, _load)
    set_wish_metadata(name, image_root, nouns, window_frames=window_frames, **(metadata or {}))
