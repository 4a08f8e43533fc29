"""The precomputed-proposal format shared by the synthetic benchmark, ``tools/extract_proposals.py`` and the
``PrecomputedMaskProposals`` generator.

One JSON-lines file per split. Each line is one image:
``{"image_id": str, "height": int, "width": int, "masks": [COCO RLE, ...], "scores": [float, ...]}``.
JSON lines (not pickle) so that untrusted proposal files can never execute code, and so that a reader can
index by byte offset and stream without loading the whole split.

A record read back is validated before any mask reaches pycocotools or a score reaches torch: ``height`` /
``width`` positive integers, every mask an RLE of exactly that size whose counts add up (``check_rle``), every
score a finite number, as many scores as masks. An image listed twice, a line that is not UTF-8 JSON, or a bad
record raises ``ValueError`` naming the file, the line, the image and the field. An image without a line gets
zero proposals and a logged warning; a record with zero masks is valid.
"""
import json
import logging
import numbers
import os
from typing import Dict, Iterable, List, Optional

import numpy as np
from ..utils.atomic import atomic_path
from ..utils.masks import MAX_MASK_SIDE, check_rle
from .common import is_finite_number

logger = logging.getLogger(__name__)


RECORD_KEYS = ("image_id", "height", "width", "masks", "scores")


def write_proposals(records: Iterable[Dict], path: str) -> int:
    """Write proposal records atomically; returns how many were written."""
    n = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            for rec in records:
                _check_record(rec, path, n + 1)
                f.write(json.dumps({k: rec[k] for k in RECORD_KEYS}))
                f.write("\n")
                n += 1
    return n


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _check_record(rec, path: str, line, masks: bool = False) -> None:
    """Raise ``ValueError`` naming ``path:line``, the image and the field for a malformed record; with ``masks``
    every RLE is checked too (on read; the writer's masks come from ``encode_rle``)."""
    where = f"{path}:{line}"
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: a proposal record must be a JSON object")
    if "image_id" in rec:
        where = f"{where} (image {rec['image_id']!r})"
    missing = [k for k in RECORD_KEYS if k not in rec]
    if missing:
        raise ValueError(f"{where}: proposal record lacks {missing}")
    h, w = rec["height"], rec["width"]
    if not (_is_int(h) and _is_int(w) and 0 < h <= MAX_MASK_SIDE and 0 < w <= MAX_MASK_SIDE):
        raise ValueError(f"{where}: height/width must be integers in 1..{MAX_MASK_SIDE}, got {h!r}, {w!r}")
    if not isinstance(rec["masks"], list) or not isinstance(rec["scores"], list):
        raise ValueError(f"{where}: masks and scores must be lists")
    if len(rec["masks"]) != len(rec["scores"]):
        raise ValueError(f"{where}: {len(rec['masks'])} masks but {len(rec['scores'])} scores")
    for i, sc in enumerate(rec["scores"]):
        if not is_finite_number(sc):
            raise ValueError(f"{where}: scores[{i}] must be a finite number, got {sc!r}")
    if masks:
        for i, m in enumerate(rec["masks"]):
            try:
                check_rle(m, h, w)
            except ValueError as e:
                raise ValueError(f"{where}: masks[{i}]: {e}") from None


class ProposalStore:
    """Random access to a proposals file by ``image_id``. Only byte offsets are held in memory."""

    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Precomputed proposals file not found: {path}")
        self.path = path
        self._offsets: Dict[str, int] = {}
        self._lines: Dict[str, int] = {}
        with open(path, "rb") as f:
            offset = 0
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    image_id = self._image_id(line, lineno)
                    if image_id in self._offsets:
                        raise ValueError(f"{path}:{lineno}: image {image_id!r} already has proposals on line "
                                         f"{self._lines[image_id]}")
                    self._offsets[image_id] = offset
                    self._lines[image_id] = lineno
                offset += len(line)

    def _image_id(self, line: bytes, lineno: int) -> str:
        try:
            rec = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{self.path}:{lineno}: not UTF-8 text ({e})") from e
        except (json.JSONDecodeError, RecursionError) as e:
            raise ValueError(f"{self.path}:{lineno}: malformed proposal record ({e})") from e
        image_id = rec.get("image_id") if isinstance(rec, dict) else None
        if not isinstance(image_id, (str, int)) or isinstance(image_id, bool):
            raise ValueError(f"{self.path}:{lineno}: field image_id must be a string or an integer, got {image_id!r}")
        return str(image_id)

    def __contains__(self, image_id) -> bool:
        return str(image_id) in self._offsets

    def __len__(self) -> int:
        return len(self._offsets)

    def image_ids(self) -> List[str]:
        return list(self._offsets)

    def get(self, image_id) -> Dict:
        """The validated record of one image; an image with no line gets zero proposals and a logged warning."""
        key = str(image_id)
        if key not in self._offsets:
            logger.warning(f"{self.path}: no proposals for image {key}; using zero proposals")
            return {"image_id": key, "masks": [], "scores": []}
        with open(self.path, "rb") as f:
            f.seek(self._offsets[key])
            line = f.readline()
        rec: Optional[Dict] = json.loads(line.decode("utf-8"))
        _check_record(rec, self.path, self._lines[key], masks=True)
        return rec
