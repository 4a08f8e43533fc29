"""COCO-format in-hand object annotations + a narration file -> WISH dataset dicts.

The COCO file is read by Detectron2's own ``load_coco_json(json, image_root, extra_annotation_keys=[...])`` (no
copied loader). The file is also opened once with ``json`` to read its categories and the per-image ``hands``
field, which ``load_coco_json`` does not pass through.

Categories
----------
Every category name must map (case-insensitive; ``_``/``-`` read as spaces) to one of:

* an in-hand object class: ``left`` (also ``left object``, ``left hand object``), ``right`` (same forms),
  ``both`` (``both object``, ``both hands object``, ``both-hands object``);
* a hand class: ``left hand``, ``right hand``, or ``hand`` (side unknown).

Any other name raises ``DataFormatError`` naming the file and the category. Object annotations become
``annotations`` with category 0/1/2 and ``noun`` from an optional annotation key ``noun`` (else ``""``).

Hands (the choice made here)
----------------------------
Hands can be given in either or both of two ways:

1. an image-level field ``"hands": [{"side": "left"|"right" (optional), "segmentation": polygons or RLE}]`` in
   the COCO ``images`` entries: keeps the annotation list pure objects, so the file stays valid COCO ground
   truth for the three classes;
2. ordinary annotations that are hands: their category is a hand class, or they carry a key
   ``"hand": "left"|"right"`` (which then wins over the category).

A hand without a known side gets one from the vertical-split heuristic (``side_source="heuristic"``, see
``hand_side.py``). Several hands of one side are merged. Because hand annotations may live in the COCO file, its
path is not put in the metadata as ``json_file``: the evaluator converts the dataset dicts instead.

Narrations
----------
``narrations_json`` maps an image to its narrations: the key is the image ``file_name`` exactly as in the COCO
file, or its id as a string; the value is a list of strings, a single string, or
``{"narrations": [...], "noun_phrases": [...]}`` (given noun phrases are used as they are, but for the synonym
map and body parts, which are dropped on every noun path; else they are extracted with the configured noun-phrase
extractor, see ``narrations.py``).

Bad input
---------
A COCO or narration file that is not JSON / not the expected layout raises ``DataFormatError`` naming the file,
the record and the field: see ``coco_checks.py`` for the COCO file (duplicate image, category or annotation
ids, a category without ``id``, RLEs without ``size``, of another size than their image or whose counts do not
add up, wrong types); a narration entry that is not strings. Skipped (counted): annotations and hands without a
usable mask (no polygon left after dropping degenerate, non-finite, far out-of-range or fully outside polygons,
an empty mask), images whose file is missing (with ``check_images``), frames without narration
(``drop_frames_without_narration``). Flagged: frames without narration, narration keys matching no image,
annotations of an image id that is not in ``images``, hands with an unknown side. One summary line per dataset.
"""
import json
import logging
import os
from typing import Dict, List, Optional, Sequence

from detectron2.data import DatasetCatalog
from detectron2.data.datasets import load_coco_json

from ..classes import SIDES
from ..utils.masks import check_rle, decode_rle, merge_rles, polygon_problem, polygons_to_rle, rle_area
from .coco_checks import check_coco_instances
from .common import (
    CATEGORY_IDS,
    DataFormatError,
    SkipLog,
    dedup,
    make_annotation,
    make_hand,
    set_wish_metadata,
)
from .hand_side import assign_sides
from .narrations import extract_noun_phrases, load_synonyms, normalise_noun_phrases

logger = logging.getLogger(__name__)

__all__ = ["load_coco_narrations", "register_coco_narrations", "category_role"]

_OBJECT_ALIASES = {
    "left": ["left", "left object", "left hand object", "lefthand object", "left in hand object"],
    "right": ["right", "right object", "right hand object", "righthand object", "right in hand object"],
    "both": ["both", "both object", "both hands object", "two hands object", "both hand object"],
}
_HAND_ALIASES = {"left": ["left hand", "hand left"], "right": ["right hand", "hand right"], None: ["hand", "hands"]}


def _norm(name) -> str:
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def category_role(name: str):
    """A category name -> ``("object", "left"|"right"|"both")`` or ``("hand", "left"|"right"|None)``, or
    ``None`` if it maps to neither."""
    n = _norm(name)
    for cls, aliases in _OBJECT_ALIASES.items():
        if n in aliases:
            return ("object", cls)
    for side, aliases in _HAND_ALIASES.items():
        if n in aliases:
            return ("hand", side)
    return None


def _read_json(path: str, what: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: not valid JSON ({e})") from e
    except RecursionError:
        raise DataFormatError(f"{path}: nested too deeply to be JSON data") from None


def _segm_to_rle(segm, h: int, w: int, skips: SkipLog, where: str) -> Optional[Dict]:
    """A validated, non-empty RLE of ``segm`` (RLE or polygons), or ``None`` with the reason counted."""
    if isinstance(segm, dict):
        try:
            rle = check_rle(segm, h, w)
        except ValueError as e:
            skips.skip(f"invalid RLE ({e})", where)
            return None
    else:
        polys = []
        for p in segm if isinstance(segm, list) else []:
            problem = polygon_problem(p, h, w) if isinstance(p, list) else "malformed polygon"
            if problem:
                skips.skip(problem, where)
            else:
                polys.append(p)
        if not polys:
            return None
        rle = polygons_to_rle(polys, h, w)
    if rle_area(rle) == 0:
        skips.skip("empty mask", where)
        return None
    return merge_rles([rle])


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _side(value) -> Optional[str]:
    v = _norm(value) if value is not None else ""
    v = v.replace(" hand", "")
    return v if v in SIDES else None


def load_coco_narrations(
    coco_json: str,
    image_root: str,
    narrations_json: Optional[str] = None,
    dataset_name: Optional[str] = None,
    check_images: bool = False,
    drop_frames_without_narration: bool = False,
    noun_phrase_extractor="rule",
    synonyms=None,
) -> List[Dict]:
    """Load COCO in-hand annotations + narrations as WISH dataset dicts (rules: module docstring)."""
    skips = SkipLog(dataset_name or "coco_narrations")
    syn = load_synonyms(synonyms)
    raw = _read_json(coco_json, "COCO annotation file")
    check_coco_instances(coco_json, raw)
    roles = {}
    bad = []
    for c in raw["categories"]:
        role = category_role(c["name"])
        if role is None:
            bad.append(c["name"])
        else:
            roles[c["id"]] = role
    if bad:
        raise DataFormatError(
            f"{coco_json}: categories {bad} do not map to left/right/both objects or left/right hands "
            "(see wish_d2/data/coco_narrations.py)"
        )
    image_hands = {img["id"]: img.get("hands") or [] for img in raw["images"]}
    file_by_id = {img["id"]: img["file_name"] for img in raw["images"]}  # one lookup per image, not a scan
    for a in raw.get("annotations", []):
        if a["image_id"] not in file_by_id:
            skips.note("annotation of an image_id not in images (ignored)", f"annotation {a['id']!r}")
    del raw

    narr_map = {}
    if narrations_json:
        narr_map = _read_json(narrations_json, "narration file")
        if not isinstance(narr_map, dict):
            raise DataFormatError(f"{narrations_json}: expected an object {{file_name or image id: [narration]}}")
    used_keys = set()

    try:
        base = load_coco_json(coco_json, image_root, dataset_name=None, extra_annotation_keys=["noun", "hand", "id"])
    except (KeyError, AssertionError, ValueError, TypeError) as e:
        raise DataFormatError(f"{coco_json}: not a valid COCO instances file ({e!r})") from e

    dicts = []
    for rec in base:
        h, w = int(rec["height"]), int(rec["width"])
        img_id = rec["image_id"]
        if check_images and not os.path.isfile(rec["file_name"]):
            skips.skip("missing image", rec["file_name"])
            continue
        hand_items = []  # (side or None, rle)
        hands_field = image_hands.get(img_id, [])
        if not isinstance(hands_field, list):
            raise DataFormatError(f"{coco_json}: image {img_id!r}: field hands must be a list")
        for k, hd in enumerate(hands_field):
            where = f"image {img_id} hands[{k}]"
            segm = hd.get("segmentation") if isinstance(hd, dict) else None
            rle = _segm_to_rle(segm, h, w, skips, where) if segm else None
            if rle is None:
                skips.skip("hand without a mask", where)
                continue
            hand_items.append((_side(hd.get("side")), rle))
        annotations = []
        for obj in rec.get("annotations", []):
            role = roles.get(obj.get("category_id"))
            if role is None:
                skips.skip("annotation with an unknown category_id", f"image {img_id}")
                continue
            where = f"image {img_id} annotation {obj.get('id', '?')!r}"
            segm = obj.get("segmentation")
            rle = _segm_to_rle(segm, h, w, skips, where) if segm else None
            if rle is None:
                skips.skip("annotation without a mask", where)
                continue
            if "hand" in obj or role[0] == "hand":
                side = _side(obj["hand"]) if "hand" in obj else role[1]
                hand_items.append((side, rle))
            else:
                annotations.append(make_annotation(rle, CATEGORY_IDS[role[1]], str(obj.get("noun", "") or "")))

        hands = _resolve_hands(hand_items, w, skips, img_id)

        file_key = os.path.relpath(rec["file_name"], image_root)
        entry, key = None, None
        for k in (file_key, str(img_id)):
            if k in narr_map:
                entry, key = narr_map[k], k
                break
        if entry is None:
            # file_name keys with a different root prefix
            k = file_by_id.get(img_id)
            if k in narr_map:
                entry, key = narr_map[k], k
        narrations: List[str] = []
        phrases: Optional[List[str]] = None
        if entry is not None:
            used_keys.add(key)
            if isinstance(entry, str):
                narrations = [entry]
            elif _strings(entry):
                narrations = list(entry)
            elif isinstance(entry, dict) and _strings(entry.get("narrations", [])) and _strings(
                    entry.get("noun_phrases", [])):
                narrations = list(entry.get("narrations", []))
                if "noun_phrases" in entry:
                    phrases = normalise_noun_phrases(entry["noun_phrases"], syn)
            else:
                raise DataFormatError(f"{narrations_json}: entry {key!r} must be a list of strings, a string "
                                      "or {'narrations': [...], 'noun_phrases': [...]}")
        if not narrations and narrations_json:
            if drop_frames_without_narration:
                skips.skip("frame without narration (dropped)", rec["file_name"])
                continue
            skips.note("frame without narration", rec["file_name"])
        if phrases is None:
            phrases = extract_noun_phrases(narrations, noun_phrase_extractor, syn)
        dicts.append({
            "file_name": rec["file_name"],
            "image_id": str(img_id),
            "height": h,
            "width": w,
            "narrations": dedup(narrations),
            "noun_phrases": phrases,
            "hands": hands,
            "annotations": annotations,
        })
    unused = [k for k in narr_map if k not in used_keys]
    for k in unused:
        skips.note("narration key matching no image", k)
    skips.log(len(dicts), logger)
    return dicts


def _resolve_hands(items, width: int, skips: SkipLog, img_id) -> List[Dict]:
    by_side: Dict[str, List] = {"left": [], "right": []}
    unknown = [rle for side, rle in items if side is None]
    for side, rle in items:
        if side is not None:
            by_side[side].append(rle)
    source = {"left": "gt", "right": "gt"}
    if unknown:
        skips.note("hand without a side (vertical-split heuristic)", f"image {img_id}")
        for rle, side in zip(unknown, assign_sides([decode_rle(r) for r in unknown], width)):
            if side is None:
                continue
            if by_side[side]:  # the side is already taken by a GT hand: merge into it
                by_side[side].append(rle)
            else:
                by_side[side].append(rle)
                source[side] = "heuristic"
    hands = []
    for side in SIDES:
        if by_side[side]:
            if len(by_side[side]) > 1:
                skips.note("several hands of one side (merged)", f"image {img_id}")
            hands.append(make_hand(merge_rles(by_side[side]), side, source[side]))
    return hands


def register_coco_narrations(
    name: str,
    coco_json: str,
    image_root: str,
    narrations_json: Optional[str] = None,
    nouns: Optional[Sequence[str]] = None,
    metadata: Optional[Dict] = None,
    **opts,
) -> None:
    """Register a COCO + narrations dataset under ``name`` (lazy :func:`load_coco_narrations`; ``opts`` are its
    options) with the WISH metadata (``nouns`` when given; a training split without them
    takes its taxonomy from its narrations, see ``taxonomy.py``)."""

    def _load():
        return load_coco_narrations(coco_json, image_root, narrations_json, dataset_name=name, **opts)

    DatasetCatalog.register(name, _load)
    set_wish_metadata(name, image_root, nouns, **(metadata or {}))
