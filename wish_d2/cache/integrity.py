"""Integrity of the feature cache: file digests and record checks.

Every shard and ``texts.pt`` is listed in ``index.json`` with its size and SHA-256. Opening a cache compares sizes
(a ``stat`` per file); reading a shard hashes the bytes it reads anyway, so damage is found before ``torch.load``
sees them, and every loaded record is checked for its fields and for finite values. A damaged file is never read as
data: extraction rebuilds it, training stops with a :class:`CacheIntegrityError` that names the file.
"""
import hashlib
import os
from typing import Dict, List

import torch

from .codec import EMBEDDING_FIELDS, stored_count, stored_problem, stored_tensors

#: Fields of every record, in the order ``WISH.extract`` writes them (see docs/ARCHITECTURE.md).
RECORD_FIELDS = ("image_id", "height", "width", "v", "proposal_rles", "proposal_scores", "hand_present", "v_hands",
                 "v_contact", "hand_rles", "geom", "gt_pair_obj")
#: Fields with one entry per proposal: their lengths must agree.
PER_PROPOSAL_FIELDS = ("v", "v_contact", "proposal_rles", "proposal_scores", "geom")


class CacheIntegrityError(RuntimeError):
    """A cache file is missing, damaged or not what its index says; the message names the file."""


def digest_bytes(data: bytes) -> Dict:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def size_problem(path: str, expected: Dict) -> str:
    """'' if ``path`` exists with the expected size, else what is wrong (the cheap check on open)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return f"{path} is missing"
    if size != expected["bytes"]:
        return f"{path} has {size} bytes, the index says {expected['bytes']} (truncated or rewritten)"
    return ""


def read_verified(path: str, expected: Dict) -> bytes:
    """The bytes of ``path``, after checking them against their index entry (size and SHA-256)."""
    problem = size_problem(path, expected)
    if problem:
        raise CacheIntegrityError(problem)
    with open(path, "rb") as f:
        data = f.read()
    got = digest_bytes(data)
    if got != {"bytes": expected["bytes"], "sha256": expected["sha256"]}:
        raise CacheIntegrityError(f"{path} does not match its checksum in the index (damaged on disk)")
    return data


def record_problems(record, where: str) -> List[str]:
    """What is wrong with one stored (or freshly extracted) record; [] if nothing. ``where`` names the file."""
    if not isinstance(record, dict):
        return [f"{where}: a record is a {type(record).__name__}, not a dict"]
    name = f"{where}, image {record.get('image_id', '?')!r}"
    missing = [f for f in RECORD_FIELDS if f not in record]
    if missing:
        return [f"{name}: missing field(s) {', '.join(missing)}"]
    forms = {field: stored_problem(record[field]) for field in EMBEDDING_FIELDS}
    problems = [f"{name}, field {field!r}: {problem}" for field, problem in forms.items() if problem]
    if problems:  # a form that cannot be decoded: say so before anything reads into it
        return problems
    for field in RECORD_FIELDS:
        for t in stored_tensors(record[field]):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                problems.append(f"{name}, field {field!r}: non-finite values (NaN or inf)")
                break
    lengths = {f: stored_count(record[f]) for f in PER_PROPOSAL_FIELDS}
    if len(set(lengths.values())) > 1:
        problems.append(f"{name}: per-proposal fields disagree on the proposal count {lengths}")
    return problems
