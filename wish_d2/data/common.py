"""Helpers shared by the dataset loaders (VISOR, Ego4D/EgoHOS, COCO + narrations, synthetic).

Everything here produces the dataset-dict fields fixed in ``docs/ARCHITECTURE.md``: masks as COCO RLE with
``counts`` as ``str``, boxes as ``XYWH_ABS``, class ids 0 left / 1 right / 2 both.

Bad input policy (all loaders): a file that cannot be parsed at all raises a ``DataFormatError`` that names the
file (and line or frame where known). A single bad frame, entity or row is skipped or flagged, counted under a
reason in a :class:`SkipLog`, and each loader logs ONE summary line per dataset with the counts and a few
examples.
"""
import logging
import math
import numbers
import warnings
from collections import Counter, OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.structures import BoxMode

from ..classes import CLASS_NAMES, SIDES
from ..utils.masks import MAX_MASK_SIDE, rle_bbox, rle_to_str

logger = logging.getLogger(__name__)

THING_CLASSES = list(CLASS_NAMES)
CATEGORY_IDS = {name: i for i, name in enumerate(CLASS_NAMES)}
EVALUATOR_TYPE = "wish_inhand"


class DataFormatError(ValueError):
    """An input file is malformed; the message names the file (and the line or frame when known)."""


def is_finite_number(x) -> bool:
    """A real number, not a boolean (JSON's ``true`` is an ``int`` to Python) and neither NaN nor infinite: what a
    score field of an input file must be."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)) and math.isfinite(x)


class SkipLog:
    """Counts skipped or flagged items by reason and logs one summary line per dataset.

    ``skip(reason, where)`` records an item that was dropped; ``note(reason, where)`` records an item that was
    kept but is worth knowing about (e.g. a frame with no narration). ``where`` is a short location string
    (``file.json:frame``); the first three per reason are kept as examples for the summary.
    """

    MAX_EXAMPLES = 3

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.skipped: "OrderedDict[str, int]" = OrderedDict()
        self.noted: "OrderedDict[str, int]" = OrderedDict()
        self.examples: Dict[str, List[str]] = {}

    def _add(self, table, reason: str, where: Optional[str]) -> None:
        table[reason] = table.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if where is not None and len(ex) < self.MAX_EXAMPLES:
            ex.append(str(where))

    def skip(self, reason: str, where: Optional[str] = None) -> None:
        self._add(self.skipped, reason, where)

    def note(self, reason: str, where: Optional[str] = None) -> None:
        self._add(self.noted, reason, where)

    def counts(self) -> Dict[str, int]:
        """All counts, skipped and noted, keyed by reason."""
        out = Counter(self.skipped)
        out.update(self.noted)
        return dict(out)

    def _fmt(self, table) -> str:
        parts = []
        for reason, n in table.items():
            ex = self.examples.get(reason)
            parts.append(f"{reason}={n}" + (f" (e.g. {', '.join(ex)})" if ex else ""))
        return "; ".join(parts)

    def summary(self, kept: int) -> str:
        msg = f"[{self.dataset}] loaded {kept} frames"
        if self.skipped:
            msg += f"; skipped: {self._fmt(self.skipped)}"
        if self.noted:
            msg += f"; kept but flagged: {self._fmt(self.noted)}"
        return msg

    def log(self, kept: int, log: logging.Logger = logger) -> None:
        level = logging.WARNING if self.skipped else logging.INFO
        log.log(level, self.summary(kept))


def make_annotation(rle: Dict, category_id: int, noun: str) -> Dict:
    """An in-hand object ground-truth annotation in the ``docs/ARCHITECTURE.md`` format."""
    rle = rle_to_str(rle) if not isinstance(rle.get("counts"), str) else rle
    return {
        "category_id": int(category_id),
        "segmentation": rle,
        "bbox": rle_bbox(rle),
        "bbox_mode": BoxMode.XYWH_ABS,
        "iscrowd": 0,
        "noun": noun,
    }


def make_hand(rle: Dict, side: str, side_source: str = "gt") -> Dict:
    """A hand entry of a dataset dict: side, where the side came from, RLE mask and XYWH box."""
    if side not in SIDES:
        raise ValueError(f"hand side must be 'left' or 'right', got {side!r}")
    rle = rle_to_str(rle) if not isinstance(rle.get("counts"), str) else rle
    return {"side": side, "side_source": side_source, "segmentation": rle, "bbox": rle_bbox(rle)}


def dedup(items: Iterable[str]) -> List[str]:
    """Order-preserving de-duplication."""
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def set_wish_metadata(name: str, image_root: str, nouns: Optional[Sequence[str]] = None, **extra) -> None:
    """Set the metadata every WISH dataset carries (``docs/ARCHITECTURE.md``); ``extra`` adds optional keys
    (``proposals_file``, ``json_file``, ...). ``None`` values are skipped."""
    fields = dict(thing_classes=list(THING_CLASSES), evaluator_type=EVALUATOR_TYPE, image_root=image_root)
    if nouns is not None:
        fields["nouns"] = list(nouns)
    fields.update({k: v for k, v in extra.items() if v is not None})
    MetadataCatalog.get(name).set(**fields)


_EXIF_ORIENTATION = 0x0112


def probe_image(path: str) -> Tuple[Optional[Tuple[int, int]], Optional[str]]:
    """``((height, width), None)`` from the image header only (PIL is lazy), or ``(None, reason)``.

    A header claiming more pixels than PIL's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb: the file is small,
    decoding it is not) or a side over ``MAX_MASK_SIDE`` is refused here, so the loader counts one skipped frame
    instead of aborting when the pixels are decoded later."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                # Detectron2's read_image applies the EXIF orientation: a rotated frame is read as (w, h).
                # Only where EXIF sits in the header: elsewhere (a PNG eXIf chunk after the pixels) getexif()
                # would decode the whole image.
                if ("exif" in im.info or im.format == "TIFF") and \
                        im.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8):
                    w, h = h, w
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, "image too large (decompression bomb)"
    except (OSError, ValueError, SyntaxError):
        return None, "unreadable image"
    if not (0 < h <= MAX_MASK_SIDE and 0 < w <= MAX_MASK_SIDE):
        return None, "image too large (decompression bomb)"
    return (h, w), None

