"""A keyed file cache of loaded dataset dicts, so that a large split is parsed once, not in every process.

Parsing a VISOR split is dominated by the JSON decoder building a Python float for every polygon coordinate of
every entity (a 1920x1080 frame with ~70 multi-polygon entities holds ~13k of them), although only the hands
and the in-contact objects become masks. The dataset dicts that come out (a few RLEs per frame) are small: they
are written once to ``<cache_dir>/<prefix>-<key>.json`` and read back by later loads.

The key is a SHA-256 of everything the dicts depend on: the loader's format version, its options, and the path,
size and modification time of every input file. Any change of an input or an option gives a new key (a new
file); nothing is ever read back under a stale key. The file is written atomically, and a file that does not
parse, or holds another key or format, is logged and rebuilt, never trusted. Images are not part of the key
(there may be 100k of them): with ``check_images`` the caller re-checks that every cached frame's image still
exists, and rebuilds if one does not.
"""
import hashlib
import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

from detectron2.structures import BoxMode

from ..utils.atomic import atomic_path
from .common import SkipLog

logger = logging.getLogger(__name__)

__all__ = ["cache_key", "read_cached_dicts", "write_cached_dicts", "file_fingerprint"]

_FORMAT = "wish-dataset-dicts"


def file_fingerprint(path: str) -> List:
    st = os.stat(path)
    return [os.path.abspath(path), int(st.st_size), int(st.st_mtime_ns)]


def cache_key(version: int, options: Dict, files: Sequence[str]) -> str:
    """SHA-256 of the loader version, its options (JSON-able) and the fingerprints of its input files."""
    payload = {"version": version, "options": options, "files": [file_fingerprint(p) for p in files]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _cache_path(cache_dir: str, prefix: str, key: str) -> str:
    return os.path.join(cache_dir, f"{prefix}-{key[:32]}.json")


def _skiplog_state(skips: SkipLog) -> Dict:
    return {"skipped": dict(skips.skipped), "noted": dict(skips.noted), "examples": skips.examples}


def _restore_boxes(dicts: List[Dict]) -> None:
    for d in dicts:
        for a in d.get("annotations", []):
            if "bbox_mode" in a:
                a["bbox_mode"] = BoxMode(a["bbox_mode"])


def read_cached_dicts(cache_dir: str, prefix: str, key: str, skips: SkipLog,
                      check_images: bool) -> Optional[List[Dict]]:
    """The cached dicts under ``key`` (and their skip counts restored into ``skips``), or ``None`` on a miss."""
    path = _cache_path(cache_dir, prefix, key)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not (isinstance(data, dict) and data.get("format") == _FORMAT and data.get("key") == key
                and isinstance(data.get("dicts"), list)):
            raise ValueError("not a dataset-dict cache of this key")
        dicts, state = data["dicts"], data.get("skips", {})
        _restore_boxes(dicts)
    except (OSError, ValueError, TypeError, KeyError) as e:
        logger.warning(f"{path}: unusable dataset cache ({e}); rebuilding it")
        return None
    if check_images:
        missing = next((d["file_name"] for d in dicts if not os.path.isfile(d["file_name"])), None)
        if missing is not None:
            logger.info(f"{path}: image {missing} is gone since the cache was written; rebuilding it")
            return None
    for table in ("skipped", "noted"):
        getattr(skips, table).update(state.get(table, {}))
    skips.examples.update(state.get("examples", {}))
    return dicts


def write_cached_dicts(cache_dir: str, prefix: str, key: str, dicts: List[Dict], skips: SkipLog) -> Tuple[str, int]:
    """Write ``dicts`` under ``key`` atomically; returns (path, bytes). A failure to write is logged, not raised."""
    path = _cache_path(cache_dir, prefix, key)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"format": _FORMAT, "key": key, "skips": _skiplog_state(skips), "dicts": dicts}, f)
        return path, os.path.getsize(path)
    except OSError as e:
        logger.warning(f"{path}: could not write the dataset cache ({e}); loading still works without it")
        return path, 0
