"""Reading the pseudo-label file Stage 2 trains on (``MODEL.WISH.PSEUDO.FILE``, by default
``OUTPUT_DIR/pseudo_labels.json``, written by ``pipeline.write_pseudo_labels``).

Format: ``{"threshold": float, "labels": {image_id: {"objects": [left, right], "scores": [..], "phrases": [..]}}}``,
where ``objects`` are proposal indices of the image, ``-1`` for "no object". With several objects per hand an entry
also holds ``"extra": [[left further objects], [right further objects]]`` (equal lengths, ``-1`` padded); its
targets are then the rows ``[[left, right], [left 2nd, right 2nd], ...]``. The file may come from elsewhere (a
user's own labels), so everything is checked before it reaches the loss: the structure and types when it is read,
the coverage of the training set in :meth:`PseudoLabels.coverage`, and each index against its image's proposals
in :meth:`PseudoLabels.targets` (an index past them would otherwise supervise a padding slot of the batch).
"""
import json
import logging
import os
from typing import Dict, List, Sequence, Tuple

from ..classes import SIDES
from ..data.common import DataFormatError

logger = logging.getLogger(__name__)

__all__ = ["PseudoLabels", "load_pseudo_labels"]

KEY = "MODEL.WISH.PSEUDO.FILE"


class PseudoLabels(dict):
    """``{image_id: [left object, right object]}`` read from ``path``."""

    def __init__(self, path: str, table: Dict[str, List[int]]):
        super().__init__(table)
        self.path = path

    def coverage(self, image_ids: Sequence, dataset: str) -> Tuple[List[str], List[str]]:
        """``(covered, missing)`` image ids; raises when the file covers none of them (labels of another dataset
        would train every image on "no object"). Missing images are logged; callers leave them out."""
        ids = [str(i) for i in image_ids]
        covered = [i for i in ids if i in self]
        missing = [i for i in ids if i not in self]
        if ids and not covered:
            theirs = ", ".join(repr(k) for k in list(self)[:2]) or "none"
            raise DataFormatError(f"{self.path}: none of its {len(self)} pseudo-labels is for an image of {dataset} "
                                  f"(file: {theirs}; dataset: {ids[0]!r}, ...): labels of another dataset? ({KEY})")
        if missing:
            logger.warning(f"{self.path}: {len(missing)} of {len(ids)} training images of {dataset} have no "
                           f"pseudo-label and are left out of Stage 2 (e.g. {', '.join(missing[:3])})")
        return covered, missing

    def targets(self, image_id, num_proposals: int) -> List[int]:
        """The image's ``[left, right]`` proposal indices; an index past its ``num_proposals`` raises."""
        objs = self.get(str(image_id), [-1, -1])
        rows = objs if objs and isinstance(objs[0], list) else [objs]
        for row in rows:
            for side, o in zip(SIDES, row):
                if o >= num_proposals:
                    raise DataFormatError(f"{self.path} (image {str(image_id)!r}): the {side} object is proposal {o}, "
                                          f"but the image has {num_proposals} proposal(s) ({KEY}; labels of other "
                                          "proposals?)")
        return objs


def _is_index(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= -1


def load_pseudo_labels(path: str) -> PseudoLabels:
    """Read and check a pseudo-label file; a malformed one raises ``DataFormatError`` naming it and the field."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Pseudo-label file not found: {path} ({KEY}); run Stage 1 first")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON, bad UTF-8
        raise DataFormatError(f"{path}: not a readable JSON file ({e}) ({KEY})") from None
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, dict):
        raise DataFormatError(f"{path}: must be an object with a \"labels\" object {{image_id: {{\"objects\": "
                              f"[left, right]}}}} ({KEY})")
    table = {}
    for image_id, entry in labels.items():
        where = f"{path} (image {image_id!r})"
        objs = entry.get("objects") if isinstance(entry, dict) else None
        if not isinstance(objs, list) or len(objs) != 2 or not all(_is_index(o) for o in objs):
            raise DataFormatError(f"{where}: \"objects\" must be [left, right] proposal indices (-1 = none), got "
                                  f"{str(objs)[:60]}")
        row = [int(o) for o in objs]
        extra = entry.get("extra")
        if extra:
            if not (isinstance(extra, list) and len(extra) == 2 and all(isinstance(e, list) for e in extra)
                    and len(extra[0]) == len(extra[1]) and all(_is_index(o) for e in extra for o in e)):
                raise DataFormatError(f"{where}: \"extra\" must be [[left further objects], [right further "
                                      f"objects]] of equal length (-1 = none), got {str(extra)[:60]}")
            table[str(image_id)] = [row, *map(list, zip(*extra))]
        else:
            table[str(image_id)] = row
    return PseudoLabels(path, table)
