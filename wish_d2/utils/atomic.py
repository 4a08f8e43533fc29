"""Atomic writes: a file either exists complete or not at all, so a killed run never leaves a half-written
file that a later run reads as valid.

Files get the mode an ordinary ``open(path, "w")`` would give them (``0666`` minus the umask): ``mkstemp`` creates
its temporary file ``0600``, which would make shared outputs unreadable to other users of the machine.
JSON is strict: a non-finite float (``NaN``, ``inf``) is written as ``null``, never as the non-standard ``NaN``
token that other JSON readers reject.
"""
import json
import math
import os
import tempfile
import threading
from contextlib import contextmanager

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (reading it means setting it; the lock keeps threads of this process consistent)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str):
    """Yield a temporary path in the same folder; it is renamed onto ``path`` only if the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    os.close(fd)
    try:
        yield tmp
        if os.path.exists(tmp):
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def strict_json(obj):
    """``obj`` with every non-finite float replaced by ``None`` (tuples become lists, as ``json`` writes them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def write_json(obj, path: str) -> None:
    """Write ``obj`` as strict JSON (see the module note), atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(strict_json(obj), f, allow_nan=False)
