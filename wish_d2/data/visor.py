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
* ``narrations_csv``: EPIC-100 annotation CSV(s) (``EPIC_100_train.csv``...; ``None`` = no narrations), read by
  ``epic_narrations.py``. A frame takes every narration of its video whose
  ``[start_frame - frame_margin, stop_frame + frame_margin]`` contains its frame number, which is parsed from the
  image name (``P01_01_frame_0000000123.jpg`` -> video ``P01_01``, frame 123; VISOR and EPIC-100 share the frame
  numbering).
* ``contact_corrections`` (optional): the VISOR-HOS contact-correction file, a JSON object
  ``{frame: {hand: entity id | sentinel | null}}`` (``frame`` = image name or its stem, ``hand`` = ``left`` /
  ``right`` / ``left hand`` / ``right hand``), or such a dict. A correction replaces the ``in_contact_object``
  of that hand in that frame (``null`` = no contact); the corrected value then goes through the rules below.
* ``cache_dir`` (optional): parse the split once and keep its dataset dicts in a keyed file there (see
  ``dict_cache.py``); later loads with the same inputs and options read that file.
* ``participants`` / ``exclude_participants`` (optional): keep only the frames of these participants (``P01`` of
  ``P01_01``), or drop theirs: a participant-disjoint slice of a split (the EPIC config calibrates on one, see
  ``builtin.py``). Frames left out this way are counted in one log line; a ``participants`` slice with no frame at
  all is an error naming the participants.

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
  A list of entity ids (an extension VISOR itself does not use; the synthetic multi-grip frames write it) names
  several objects held by one hand; a listed id that is missing or has no polygon drops the frame.
* One annotation per hand with an object (per object, for a list): category 0 ``left`` / 1 ``right``; if both hands
  reference the same entity, ONE annotation with category 2 ``both``. ``noun`` is the entity name as a phrase.
  ``contact_parts_only`` keeps only the object's polygons that touch the hand mask dilated by
  ``contact_dilation`` px (what VISOR-HOS does), all of them if none touches.
* Masks are COCO RLE (``counts`` str) rasterised from the polygons of the hands and in-contact objects only
  (the other entities are validated but never rasterised); boxes ``XYWH_ABS``. ``image_id`` is the
  image name without extension. Extra fields: ``video_id``, ``frame``.

Bad input
---------
A file that is not JSON / not the VISOR layout, a bad CSV (see ``epic_narrations.py``), a bad correction file or
a bad option raises ``DataFormatError`` naming the file (and line, frame or field). Skipped (counted): malformed
frame entries, unparseable names or frame numbers, missing, unreadable or oversized images (a header claiming
more pixels than PIL's decompression-bomb limit), duplicate frames, frames with two entities of one id, frames
whose in-contact id is malformed, not an entity of the frame, without a polygon or with an empty mask,
inconclusive frames (``drop_inconclusive``), frames without narration (``drop_frames_without_narration``).
Dropped per entity or polygon (counted): malformed entities, degenerate polygons (< 3 points), non-numeric or
non-finite coordinates, coordinates more than one image size outside the image, polygons entirely outside the
image, entities left without polygons, empty hand masks, gloves without ``on_which_hand``. Nothing unchecked
reaches pycocotools. One summary line per dataset.
"""
import json
import logging
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog

from .common import DataFormatError, SkipLog, set_wish_metadata
from .dict_cache import cache_key, read_cached_dicts, write_cached_dicts
from .epic_narrations import EPIC_CSV_COLUMNS, MAX_FRAME, as_path_list, load_epic_narrations
from .narrations import load_synonyms
from .taxonomy import EPIC_NOUN_CLASSES_FILE
from .visor_frames import DEFAULT_IMAGE_SIZE, VISOR_SENTINELS, VisorFrameParser, hand_sides, parse_frame_name

logger = logging.getLogger(__name__)

__all__ = [
    "load_epic_visor",
    "register_epic_visor",
    "load_epic_narrations",
    "load_contact_corrections",
    "parse_frame_name",
    "VISOR_SENTINELS",
    "EPIC_CSV_COLUMNS",
]

# Bump when the dicts produced from the same inputs change, so that dataset caches of older code are not read.
LOADER_VERSION = 2


def _json_files(annotations) -> List[str]:
    files: List[str] = []
    for p in as_path_list(annotations):
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


def _read_json(path: str, what: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: {what} is not valid JSON ({e})") from e
    except RecursionError:
        raise DataFormatError(f"{path}: {what} is nested too deeply to be JSON data") from None


def _read_visor_json(path: str) -> List:
    data = _read_json(path, "VISOR annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("video_annotations"), list):
        raise DataFormatError(f"{path}: expected a VISOR object with a 'video_annotations' list")
    return data["video_annotations"]


def load_contact_corrections(spec) -> Dict[str, Dict[str, Optional[str]]]:
    """The contact-correction file (or dict) -> ``{frame: {"left"|"right": value or None}}``; values are entity
    ids or sentinels as strings. Raises ``DataFormatError`` naming the file, frame and hand for anything else."""
    if spec is None:
        return {}
    src = "contact corrections"
    if isinstance(spec, (str, os.PathLike)):
        src = os.fspath(spec)
        if not os.path.isfile(src):
            raise FileNotFoundError(f"VISOR contact-correction file not found: {src}")
        spec = _read_json(src, "contact-correction file")
    if not isinstance(spec, dict):
        raise DataFormatError(f"{src}: expected an object {{frame: {{hand: entity id}}}}")
    out: Dict[str, Dict[str, Optional[str]]] = {}
    for frame, hands in spec.items():
        if not isinstance(hands, dict):
            raise DataFormatError(f"{src}: frame {frame!r}: expected an object {{hand: entity id}}")
        fixed: Dict[str, Optional[str]] = {}
        for hand, value in hands.items():
            sides = hand_sides(hand)
            if len(sides) != 1:
                raise DataFormatError(f"{src}: frame {frame!r}: hand {hand!r} is not left/right")
            if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int))):
                raise DataFormatError(f"{src}: frame {frame!r}, hand {hand!r}: the entity id must be a string, "
                                      f"an integer or null, got {type(value).__name__}")
            fixed[sides[0]] = None if value is None else str(value)
        out[str(frame)] = fixed
    return out


def _participant_set(value, option: str) -> Optional[frozenset]:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(p, str) and p.strip() for p in value):
        raise DataFormatError(f"{option} must be a list of participant ids such as ['P01'], got {value!r}")
    return frozenset(p.strip() for p in value)


def _participant(name) -> Optional[str]:
    """``P01`` for a frame named ``P01_01_frame_0000000123.jpg`` (or its stem); ``None`` when the name does not parse
    (the parser then counts the frame as malformed)."""
    name = str(name)
    try:
        return parse_frame_name(name if os.path.splitext(name)[1] else name + ".jpg")[0].split("_")[0]
    except ValueError:
        return None


def _frame_participant(frame) -> Optional[str]:
    try:
        return _participant(frame["image"]["name"])
    except (KeyError, TypeError):
        return None


def _check_options(frame_margin, image_size) -> Tuple[int, Tuple[int, int]]:
    if isinstance(frame_margin, bool) or not isinstance(frame_margin, int) or not 0 <= frame_margin <= MAX_FRAME:
        raise DataFormatError(f"frame_margin must be an integer in [0, {MAX_FRAME}], got {frame_margin!r}")
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise DataFormatError(f"image_size must be (height, width), got {image_size!r}") from None
    if h <= 0 or w <= 0:
        raise DataFormatError(f"image_size must be positive, got {image_size!r}")
    return frame_margin, (h, w)


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
    contact_corrections=None,
    cache_dir: Optional[str] = None,
    participants: Optional[Sequence[str]] = None,
    exclude_participants: Optional[Sequence[str]] = None,
) -> List[Dict]:
    """Load VISOR sparse annotations (+ EPIC-100 narrations) as WISH dataset dicts (rules: module docstring)."""
    frame_margin, image_size = _check_options(frame_margin, image_size)
    keep = _participant_set(participants, "participants")
    drop = _participant_set(exclude_participants, "exclude_participants")
    skips = SkipLog(dataset_name or "visor")
    files = _json_files(annotations_dir)
    key = None
    if cache_dir:
        inputs = files + as_path_list(narrations_csv)
        inputs += [p for p in (contact_corrections, synonyms) if isinstance(p, (str, os.PathLike))]
        options = dict(image_root=os.path.abspath(image_root), frame_margin=frame_margin, check_images=check_images,
                       image_size=list(image_size), drop_inconclusive=drop_inconclusive,
                       drop_frames_without_narration=drop_frames_without_narration,
                       contact_parts_only=contact_parts_only, contact_dilation=contact_dilation,
                       synonyms=synonyms if isinstance(synonyms, dict) else None,
                       participants=sorted(keep) if keep is not None else None,
                       exclude_participants=sorted(drop) if drop is not None else None,
                       contact_corrections=contact_corrections if isinstance(contact_corrections, dict) else None)
        key = cache_key(LOADER_VERSION, options, inputs)
        cached = read_cached_dicts(cache_dir, "visor", key, skips, check_images)
        if cached is not None:
            skips.log(len(cached), logger)
            return cached

    parser = VisorFrameParser(
        image_root, skips,
        narrations=load_epic_narrations(narrations_csv, load_synonyms(synonyms)) if narrations_csv else None,
        frame_margin=frame_margin, check_images=check_images, image_size=image_size,
        drop_inconclusive=drop_inconclusive, drop_frames_without_narration=drop_frames_without_narration,
        contact_parts_only=contact_parts_only, contact_dilation=contact_dilation,
        contact_corrections=load_contact_corrections(contact_corrections),
    )
    dicts: List[Dict] = []
    seen_ids = set()
    left_out = in_slice = 0

    def in_participant_slice(who: Optional[str]) -> bool:
        return who is None or ((keep is None or who in keep) and (drop is None or who not in drop))

    for path in files:
        fname = os.path.basename(path)
        for idx, frame in enumerate(_read_visor_json(path)):
            who = _frame_participant(frame)
            if not in_participant_slice(who):
                left_out += 1
                continue
            in_slice += who is not None
            rec = parser.parse(frame, fname, idx)
            if rec is None:
                continue
            if rec["image_id"] in seen_ids:
                skips.skip("duplicate frame", f"{fname}:{rec['image_id']}")
                continue
            seen_ids.add(rec["image_id"])
            dicts.append(rec)
    if keep is not None and not in_slice:
        raise DataFormatError(f"{annotations_dir}: no frame of the participants {sorted(keep)} (participants=)")
    if left_out:
        logger.info(f"[{dataset_name or 'visor'}] participant filter: {left_out} frames of other participants "
                    "left out")
    for frame in parser.corrections:
        if frame not in parser.corrected_frames and in_participant_slice(_participant(frame)):
            skips.note("contact correction for a frame or hand not loaded (unused)", frame)
    if key is not None:
        write_cached_dicts(cache_dir, "visor", key, dicts, skips)
    skips.log(len(dicts), logger)
    return dicts


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
    (``opts`` are its keyword options, e.g. ``contact_corrections`` or ``cache_dir``), and metadata
    (``thing_classes``, ``evaluator_type="wish_inhand"``, ``image_root``, ``nouns`` when given, plus
    ``metadata``). ``prepare`` is called at the start of each load (the synthetic benchmark generates its files
    there). ``noun_classes_file`` is ``EPIC_100_noun_classes.csv`` beside the (first) narration CSV unless
    ``metadata`` names another: a training split's taxonomy when the file exists (``taxonomy.py``)."""

    def _load():
        if prepare is not None:
            prepare()
        return load_epic_visor(annotations_dir, image_root, narrations_csv, frame_margin=frame_margin,
                               dataset_name=name, **opts)

    metadata = dict(metadata or {})
    csvs = as_path_list(narrations_csv) if narrations_csv else []
    if csvs and "noun_classes_file" not in metadata:
        metadata["noun_classes_file"] = os.path.join(os.path.dirname(os.fspath(csvs[0])), EPIC_NOUN_CLASSES_FILE)
    DatasetCatalog.register(name, _load)
    set_wish_metadata(name, image_root, nouns, frame_margin=frame_margin, **metadata)
