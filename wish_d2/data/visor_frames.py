"""One VISOR sparse-annotation frame -> one WISH dataset dict (the rules are in ``visor.py``'s docstring).

:class:`VisorFrameParser` holds what is fixed for a whole split (image root, narrations, options, the skip log),
so that parsing a frame is one call with the frame entry and its location.
"""
import os
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..classes import SIDES
from ..utils.masks import decode_rle, merge_rles, polygon_problem, polygons_to_rle, rle_area
from .common import CATEGORY_IDS, SkipLog, dedup, make_annotation, make_hand, probe_image
from .epic_narrations import MAX_FRAME, VideoNarrations
from .narrations import epic_noun_to_phrase

__all__ = ["VisorFrameParser", "parse_frame_name", "VISOR_SENTINELS", "NO_CONTACT", "INCONCLUSIVE",
           "DEFAULT_IMAGE_SIZE", "normalize_entity_name", "hand_sides"]

NO_CONTACT = frozenset({"hand-not-in-contact", "glove-not-in-contact", "none-of-the-above"})
INCONCLUSIVE = "inconclusive"
VISOR_SENTINELS = NO_CONTACT | {INCONCLUSIVE}
NAME_FIXES = {"rigth hand": "right hand", "left-hand": "left hand", "right-hand": "right hand"}
HAND_NAMES = {"left hand": "left", "right hand": "right"}
DEFAULT_IMAGE_SIZE = (1080, 1920)

_FRAME_RE = re.compile(r"^(?P<video>.+?)_frame_(?P<frame>\d+)\.[A-Za-z0-9]+$")


def parse_frame_name(name: str) -> Tuple[str, int]:
    """``"P01_01_frame_0000000123.jpg"`` -> ``("P01_01", 123)``; ``ValueError`` if it does not match."""
    m = _FRAME_RE.match(os.path.basename(name))
    if not m:
        raise ValueError(f"frame name {name!r} is not '<video>_frame_<number>.<ext>'")
    return m.group("video"), int(m.group("frame"))


def normalize_entity_name(name) -> str:
    n = " ".join(str(name).strip().lower().split())
    return NAME_FIXES.get(n, n)


def hand_sides(value) -> List[str]:
    """``on_which_hand`` (a string or a list; ``"left hand"`` or ``"left"``) -> the sides it names."""
    vals = value if isinstance(value, (list, tuple)) else [value]
    sides = []
    for v in vals:
        n = normalize_entity_name(v)
        side = HAND_NAMES.get(n, n if n in SIDES else None)
        if side and side not in sides:
            sides.append(side)
    return sides


def _is_id(v) -> bool:
    return isinstance(v, (str, int)) and not isinstance(v, bool)


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


class VisorFrameParser:
    """Parses VISOR frame entries of one split into dataset dicts, counting every skip in ``skips``.

    ``contact_corrections``: ``{frame: {side: entity id or sentinel or None}}`` (frame = image name or its stem,
    side = ``left``/``right``), already validated (see ``visor.load_contact_corrections``); a correction replaces
    the ``in_contact_object`` of that hand."""

    def __init__(
        self,
        image_root: str,
        skips: SkipLog,
        narrations: Optional[Dict[str, VideoNarrations]] = None,
        frame_margin: int = 0,
        check_images: bool = True,
        image_size: Tuple[int, int] = DEFAULT_IMAGE_SIZE,
        drop_inconclusive: bool = False,
        drop_frames_without_narration: bool = False,
        contact_parts_only: bool = False,
        contact_dilation: int = 10,
        contact_corrections: Optional[Dict[str, Dict[str, Optional[str]]]] = None,
    ):
        self.image_root = image_root
        self.skips = skips
        self.narrations = narrations
        self.frame_margin = frame_margin
        self.check_images = check_images
        self.image_size = image_size
        self.drop_inconclusive = drop_inconclusive
        self.drop_no_narration = drop_frames_without_narration
        self.contact_parts_only = contact_parts_only
        self.contact_dilation = contact_dilation
        self.corrections = contact_corrections or {}
        self.corrected_frames = set()

    # ------------------------------------------------------------------------------------------ frame

    def parse(self, frame, file_label: str, index: int) -> Optional[Dict]:
        """The dataset dict of ``frame`` (entry ``index`` of the file ``file_label``), or ``None`` if skipped."""
        skips = self.skips
        image = frame.get("image") if isinstance(frame, dict) else None
        entities = frame.get("annotations") if isinstance(frame, dict) else None
        if not isinstance(image, dict) or not isinstance(image.get("name"), str) or not isinstance(entities, list):
            skips.skip("malformed frame entry (needs image.name and an annotations list)", f"{file_label}[{index}]")
            return None
        name = image["name"]
        where = f"{file_label}:{name}"
        if "/" in name or "\\" in name:
            skips.skip("unparseable frame name", where)
            return None
        try:
            video, frame_no = parse_frame_name(name)
        except ValueError:
            skips.skip("unparseable frame name", where)
            return None
        if frame_no > MAX_FRAME:
            skips.skip(f"frame number out of range (> {MAX_FRAME})", where)
            return None
        if image.get("video") and str(image["video"]) != video:
            skips.note("image.video disagrees with the frame name (name used)", where)

        located = self._locate_image(image, name, video, where)
        if located is None:
            return None
        file_name, (h, w) = located

        ents = self._entities(entities, where, h, w)
        if ents is None:
            return None
        hands, gloves = self._hands_and_gloves(ents, where)
        hand_rles = self._hand_masks(hands, gloves, where, h, w)
        contact = self._contacts(name, ents, hands, gloves, where)
        if contact is None:
            return None
        annotations = self._annotations(contact, ents, hand_rles, where, h, w)
        if annotations is None:
            return None
        texts = self._narrations(video, frame_no, where)
        if texts is None:
            return None
        narrations, phrases = texts
        return {
            "file_name": file_name,
            "image_id": os.path.splitext(name)[0],
            "height": int(h),
            "width": int(w),
            "video_id": video,
            "frame": frame_no,
            "narrations": dedup(narrations),
            "noun_phrases": dedup(phrases),
            "hands": [make_hand(hand_rles[s], s, "gt") for s in SIDES if s in hand_rles],
            "annotations": annotations,
        }

    # ------------------------------------------------------------------------------------------ image

    def _candidates(self, image: Dict, name: str, video: str, where: str) -> List[str]:
        root = self.image_root
        participant = video.split("_")[0]
        cands = []
        path = image.get("image_path")
        if path:
            if not isinstance(path, str) or os.path.isabs(path) or ".." in path.replace("\\", "/").split("/"):
                self.skips.note("image.image_path is not a relative path inside image_root (ignored)", where)
            else:
                cands.append(os.path.join(root, path))
        return cands + [
            os.path.join(root, video, name),
            os.path.join(root, participant, video, name),
            os.path.join(root, participant, name),
            os.path.join(root, name),
        ]

    def _locate_image(self, image, name, video, where) -> Optional[Tuple[str, Tuple[int, int]]]:
        cands = self._candidates(image, name, video, where)
        file_name = next((c for c in cands if os.path.isfile(c)), None)
        if file_name is None:
            if self.check_images:
                self.skips.skip("missing image", cands[0])
                return None
            return cands[0], tuple(self.image_size)
        size, problem = probe_image(file_name)
        if size is None:
            self.skips.skip(problem, file_name)
            return None
        return file_name, size

    # ------------------------------------------------------------------------------------------ entities

    def _polygons(self, segments, where: str, h: int, w: int) -> List[List[float]]:
        out = []
        if not isinstance(segments, list):
            self.skips.skip("malformed polygon", where)
            return out
        for poly in segments:
            try:
                if poly and isinstance(poly[0], (list, tuple)):
                    if any(len(pt) != 2 for pt in poly):
                        raise ValueError("point without 2 coordinates")
                    flat = [float(c) for pt in poly for c in pt]
                else:
                    flat = [float(c) for c in poly]
            except (TypeError, ValueError, KeyError, OverflowError):
                self.skips.skip("malformed polygon", where)
                continue
            problem = polygon_problem(flat, h, w)
            if problem:
                self.skips.skip(problem, where)
                continue
            out.append(flat)
        return out

    def _entities(self, entities: list, where: str, h: int, w: int) -> Optional["OrderedDict[str, Dict]"]:
        ents: "OrderedDict[str, Dict]" = OrderedDict()
        for j, e in enumerate(entities):
            ewhere = f"{where}#{j}"
            if not isinstance(e, dict) or "id" not in e or "name" not in e or "segments" not in e:
                self.skips.skip("malformed entity (needs id, name, segments)", ewhere)
                continue
            if not _is_id(e["id"]) or not isinstance(e["name"], str):
                self.skips.skip("malformed entity (id must be a string or an integer, name a string)", ewhere)
                continue
            eid = str(e["id"])
            if eid in ents:
                # Which of the two a hand's in_contact_object means is unknowable: the frame cannot be trusted.
                self.skips.skip("duplicate entity id (frame dropped)", f"{where}:{eid}")
                return None
            polys = self._polygons(e["segments"], ewhere, h, w)
            ents[eid] = dict(e, name=normalize_entity_name(e["name"]), polygons=polys)
        return ents

    def _hands_and_gloves(self, ents, where):
        hands: Dict[str, List[Dict]] = {"left": [], "right": []}
        gloves: Dict[str, List[Dict]] = {"left": [], "right": []}
        for eid, e in ents.items():
            if e["name"] in HAND_NAMES:
                hands[HAND_NAMES[e["name"]]].append(e)
            elif "on_which_hand" in e or "glove" in e["name"]:
                sides = hand_sides(e.get("on_which_hand"))
                if not sides:
                    self.skips.skip("glove without a valid on_which_hand (ignored)", f"{where}:{eid}")
                    continue
                for s in sides:
                    gloves[s].append(e)
        return hands, gloves

    def _hand_masks(self, hands, gloves, where, h, w) -> Dict[str, Dict]:
        hand_rles: Dict[str, Dict] = {}
        for side in SIDES:
            parts = [e for e in hands[side] + gloves[side] if e["polygons"]]
            for e in hands[side] + gloves[side]:
                if not e["polygons"]:
                    self.skips.skip("entity without a valid polygon (dropped)", f"{where}:{e['id']}")
            if len(hands[side]) > 1:
                self.skips.note(f"several '{side} hand' entities (merged)", where)
            if parts:
                rle = merge_rles([polygons_to_rle(e["polygons"], h, w) for e in parts])
                if rle_area(rle) == 0:
                    self.skips.skip("hand mask is empty (dropped)", f"{where}:{side}")
                    continue
                hand_rles[side] = rle
        return hand_rles

    # ------------------------------------------------------------------------------------------ contact

    def _contact_value(self, name, side, hands, gloves, where):
        """(value, known): the in-contact value of one hand, from the correction file when it names the hand."""
        key = name if name in self.corrections else os.path.splitext(name)[0]
        fix = self.corrections.get(key)
        if fix is not None and side in fix:
            self.corrected_frames.add(key)
            self.skips.note("in-contact object replaced by the correction file", where)
            return fix[side], True
        source = next((g for g in gloves[side] if "in_contact_object" in g), None)
        if source is None:
            source = next((e for e in hands[side] if "in_contact_object" in e), None)
        if source is None:
            self.skips.note("hand without in_contact_object (no contact)", where)
            return None, True
        value = source.get("in_contact_object")
        several = isinstance(value, list) and bool(value) and all(_is_id(v) for v in value)
        return value, value is None or _is_id(value) or several

    def _contacts(self, name, ents, hands, gloves, where) -> Optional[Dict[str, Optional[str]]]:
        hand_ids = {str(e["id"]) for side in SIDES for e in hands[side] + gloves[side]}
        contact: Dict[str, Optional[str]] = {}
        for side in SIDES:
            if not hands[side] and not gloves[side]:
                continue
            value, ok = self._contact_value(name, side, hands, gloves, where)
            if not ok:
                self.skips.skip("malformed in_contact_object (frame dropped)", where)
                return None
            if value is None:
                contact[side] = None
                continue
            if isinstance(value, list):  # several objects in one hand (the synthetic multi-grip world)
                ids = tuple(dict.fromkeys(str(v).strip() for v in value))
                bad = next((v for v in ids if v not in ents or not ents[v]["polygons"]), None)
                if bad is not None:
                    self.skips.skip("in_contact_object lists an entity that is missing or has no valid polygon "
                                    "(frame dropped)", f"{where}:{bad}")
                    return None
                contact[side] = tuple(v for v in ids if v not in hand_ids) or None
                continue
            value = str(value).strip()
            if value in NO_CONTACT:
                contact[side] = None
            elif value == INCONCLUSIVE:
                if self.drop_inconclusive:
                    self.skips.skip("inconclusive contact (frame dropped)", where)
                    return None
                self.skips.note("inconclusive contact (treated as no contact)", where)
                contact[side] = None
            elif value in hand_ids:
                contact[side] = None  # a hand pointing at its own glove: no object information
            elif value not in ents:
                self.skips.skip("in_contact_object is not an entity of the frame (frame dropped)", f"{where}:{value}")
                return None
            elif not ents[value]["polygons"]:
                self.skips.skip("in-contact object has no valid polygon (frame dropped)", f"{where}:{value}")
                return None
            else:
                contact[side] = value
        return contact

    # ------------------------------------------------------------------------------------------ outputs

    def _object_rle(self, polys, sides: Sequence[str], hand_rles, h, w) -> Dict:
        if self.contact_parts_only:
            polys = _touching_parts(polys, [hand_rles[s] for s in sides if s in hand_rles], h, w,
                                    self.contact_dilation)
        return polygons_to_rle(polys, h, w)

    def _annotations(self, contact, ents, hand_rles, where, h, w) -> Optional[List[Dict]]:
        # an object both hands name is one "both" annotation; every other object is its hand's (a hand with
        # several objects gets one annotation each, so its class covers their union)
        ids = {s: (v,) if isinstance(v, str) else tuple(v or ()) for s, v in contact.items()}
        left, right = ids.get("left", ()), ids.get("right", ())
        todo = [(eid, SIDES, "both") for eid in left if eid in right]
        todo += [(eid, (side,), side) for side, own in (("left", left), ("right", right)) for eid in own
                 if eid not in left or eid not in right]
        annotations = []
        for eid, sides, cat in todo:
            rle = self._object_rle(ents[eid]["polygons"], sides, hand_rles, h, w)
            if rle_area(rle) == 0:
                self.skips.skip("in-contact object mask is empty (frame dropped)", f"{where}:{eid}")
                return None
            annotations.append(make_annotation(rle, CATEGORY_IDS[cat], epic_noun_to_phrase(ents[eid]["name"])))
        return annotations

    def _narrations(self, video, frame_no, where) -> Optional[Tuple[List[str], List[str]]]:
        narrations: List[str] = []
        phrases: List[str] = []
        if self.narrations is None:
            return narrations, phrases
        vn = self.narrations.get(video)
        if vn is None:
            self.skips.note("video not in the narrations CSV", video)
            rows = []
        else:
            rows = vn.at(frame_no, self.frame_margin)
        for r in rows:
            narrations.append(r.text)
            phrases.extend(r.nouns)
        if not rows:
            if self.drop_no_narration:
                self.skips.skip("frame without narration (dropped)", where)
                return None
            self.skips.note("frame without narration", where)
        return narrations, phrases
