"""The precomputed-proposal format shared by the synthetic benchmark, ``tools/extract_proposals.py`` and the
``PrecomputedMaskProposals`` generator.

One JSON-lines file per split. Each line is one image:
``{"image_id": str, "height": int, "width": int, "masks": [COCO RLE, ...], "scores": [float, ...]}``.
JSON lines (not pickle) so that untrusted proposal files can never execute code, and so that a reader can
index by byte offset and stream without loading the whole split.
"""
import json
import logging
import os
from typing import Dict, Iterable, List

from ..utils.atomic import atomic_path

logger = logging.getLogger(__name__)


def write_proposals(records: Iterable[Dict], path: str) -> int:
    """Write proposal records atomically; returns how many were written."""
    n = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            for rec in records:
                _check_record(rec, path, n + 1)
                f.write(json.dumps({k: rec[k] for k in ("image_id", "height", "width", "masks", "scores")}))
                f.write("\n")
                n += 1
    return n


def _check_record(rec: Dict, path: str, line: int) -> None:
    missing = [k for k in ("image_id", "height", "width", "masks", "scores") if k not in rec]
    if missing:
        raise ValueError(f"{path}:{line}: proposal record lacks {missing}")
    if len(rec["masks"]) != len(rec["scores"]):
        raise ValueError(f"{path}:{line}: {len(rec['masks'])} masks but {len(rec['scores'])} scores")


class ProposalStore:
    """Random access to a proposals file by ``image_id``. Only byte offsets are held in memory."""

    def __init__(self, path: str):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Precomputed proposals file not found: {path}")
        self.path = path
        self._offsets: Dict[str, int] = {}
        with open(path, "rb") as f:
            offset = 0
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        image_id = json.loads(line)["image_id"]
                    except (json.JSONDecodeError, KeyError, TypeError) as e:
                        raise ValueError(f"{path}:{lineno}: malformed proposal record ({e})") from e
                    self._offsets[str(image_id)] = offset
                offset += len(line)

    def __contains__(self, image_id) -> bool:
        return str(image_id) in self._offsets

    def __len__(self) -> int:
        return len(self._offsets)

    def image_ids(self) -> List[str]:
        return list(self._offsets)

    def get(self, image_id) -> Dict:
        """The record of one image; an image with no line gets zero proposals and a logged warning."""
        key = str(image_id)
        if key not in self._offsets:
            logger.warning(f"{self.path}: no proposals for image {key}; using zero proposals")
            return {"image_id": key, "masks": [], "scores": []}
        with open(self.path, "rb") as f:
            f.seek(self._offsets[key])
            rec = json.loads(f.readline())
        _check_record(rec, self.path, -1)
        return rec
