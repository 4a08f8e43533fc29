"""EPIC-KITCHENS-100 narration CSVs (``EPIC_100_train.csv``...) -> per-video narrations with interval lookup.

Needed columns: ``video_id, start_frame, stop_frame, narration, all_nouns`` (the other EPIC-100 columns are
ignored). A frame takes every narration of its video whose ``[start_frame - margin, stop_frame + margin]``
contains it. Noun phrases come from ``all_nouns`` (``"pan:frying"`` -> ``"frying pan"``, see ``narrations.py``),
then the optional synonym map; body parts (``hand``, ``finger``...) are dropped, as the free-text parser drops them.

Bad input raises ``DataFormatError`` naming the file, the line and the field: a header without the needed columns
or with a column twice (``csv.DictReader`` would silently keep the last one), rows with a wrong number of
fields, frame numbers that are not integers in ``[0, MAX_FRAME]`` (larger ones overflow the int64 lookup), a
stop before its start, an empty ``video_id``, a bad ``all_nouns`` cell, a file that is not UTF-8 text. A UTF-8
byte-order mark before the header (what spreadsheet tools write) is accepted.
"""
import csv
import os
from collections import OrderedDict, namedtuple
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .common import DataFormatError
from .narrations import epic_noun_to_phrase, normalise_noun_phrases, parse_epic_all_nouns

__all__ = ["load_epic_narrations", "VideoNarrations", "EpicNarration", "EPIC_CSV_COLUMNS",
           "REQUIRED_CSV_COLUMNS", "MAX_FRAME", "as_path_list"]

EPIC_CSV_COLUMNS = [
    "narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp", "stop_timestamp",
    "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun", "noun_class", "all_nouns",
    "all_noun_classes",
]
REQUIRED_CSV_COLUMNS = ["video_id", "start_frame", "stop_frame", "narration", "all_nouns"]
# Frame numbers above this are not a video (a 60 fps video would be over a year long) and would overflow the
# int64 interval arithmetic once a margin is added.
MAX_FRAME = 2 ** 31 - 1

EpicNarration = namedtuple("EpicNarration", ["narration_id", "start_frame", "stop_frame", "text", "nouns"])


class VideoNarrations:
    """Narrations of one video with vectorised interval lookup."""

    def __init__(self, rows: List[EpicNarration]):
        rows = sorted(rows, key=lambda r: (r.start_frame, r.stop_frame))
        self.rows = rows
        self.starts = np.array([r.start_frame for r in rows], dtype=np.int64)
        self.stops = np.array([r.stop_frame for r in rows], dtype=np.int64)

    def at(self, frame: int, margin: int) -> List[EpicNarration]:
        hit = np.nonzero((self.starts - margin <= frame) & (frame <= self.stops + margin))[0]
        return [self.rows[i] for i in hit]


def as_path_list(paths) -> List[str]:
    """``None``, one path or a sequence of paths -> a list of path strings."""
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def _frame_number(row: Dict, key: str, where: str) -> int:
    text = (row[key] or "").strip()
    try:
        value = int(text)
    except ValueError:
        raise DataFormatError(f"{where}: {key} must be an integer, got {text[:40]!r}") from None
    if not 0 <= value <= MAX_FRAME:
        raise DataFormatError(f"{where}: {key} = {value} is outside [0, {MAX_FRAME}]")
    return value


def _check_header(path: str, header: List[str]) -> None:
    seen, twice = set(), []
    for c in header:
        if c in seen and c not in twice:
            twice.append(c)
        seen.add(c)
    if twice:
        raise DataFormatError(f"{path}: column(s) {twice} appear more than once in the header")
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
    if missing:
        raise DataFormatError(f"{path}: not an EPIC-100 narrations CSV, missing columns {missing} (header: {header})")


def _read_csv(path: str, synonyms, per_video: Dict[str, List[EpicNarration]]) -> None:
    # utf-8-sig: a byte-order mark before the header would otherwise glue itself to "video_id".
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [(c or "").strip() for c in (reader.fieldnames or [])]
        _check_header(path, header)
        reader.fieldnames = header
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row or any(row.get(c) is None for c in REQUIRED_CSV_COLUMNS):
                raise DataFormatError(f"{where}: row has a wrong number of fields")
            start, stop = _frame_number(row, "start_frame", where), _frame_number(row, "stop_frame", where)
            if stop < start:
                raise DataFormatError(f"{where}: stop_frame {stop} < start_frame {start}")
            video = row["video_id"].strip()
            if not video:
                raise DataFormatError(f"{where}: video_id is empty")
            keys = parse_epic_all_nouns(row["all_nouns"], where)
            nouns = normalise_noun_phrases([epic_noun_to_phrase(k) for k in keys], synonyms)  # ['hand'] -> []
            per_video.setdefault(video, []).append(
                EpicNarration(row.get("narration_id", ""), start, stop, row["narration"].strip(), nouns)
            )


def load_epic_narrations(
    csv_paths: Union[str, Sequence[str]], synonyms: Optional[Dict[str, str]] = None
) -> Dict[str, VideoNarrations]:
    """Read EPIC-100 CSV file(s) -> ``{video_id: VideoNarrations}`` (bad input: module docstring)."""
    per_video: Dict[str, List[EpicNarration]] = OrderedDict()
    for path in as_path_list(csv_paths):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"EPIC narrations CSV not found: {path}")
        try:
            _read_csv(path, synonyms, per_video)
        except UnicodeDecodeError as e:
            raise DataFormatError(f"{path}: not a UTF-8 text CSV ({e})") from e
        except csv.Error as e:
            raise DataFormatError(f"{path}: malformed CSV ({e})") from e
    return {v: VideoNarrations(rows) for v, rows in per_video.items()}
