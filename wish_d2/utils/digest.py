"""Size and SHA-256 of a file, read in chunks: what the feature cache, the web-pretrained encoder store and the
shipped encoder's manifest record and check."""
import hashlib
from typing import Dict

_CHUNK = 1 << 20  # bytes read at a time: a checkpoint is never held in memory twice


def digest_file(path: str) -> Dict:
    """``{"bytes": size, "sha256": hex digest}`` of the file at ``path``."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": h.hexdigest()}
