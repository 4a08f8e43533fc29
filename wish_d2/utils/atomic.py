"""Atomic writes: a file either exists complete or not at all, so a killed run never leaves a half-written
file that a later run reads as valid.

Files get the mode an ordinary ``open(path, "w")`` would give them (``0666`` minus the umask): ``mkstemp`` creates
its temporary file ``0600``, which would make shared outputs unreadable to other users of the machine.
JSON is strict: a non-finite float (``NaN``, ``inf``) is written as ``null``, never as the non-standard ``NaN``
token that other JSON readers reject.

A full disk (``ENOSPC``, a quota, or ``EFBIG`` from ``ulimit -f``) raises :class:`DiskFullError`, which names the
file that could not be written; the temporary file is removed first, so nothing half-written keeps the final name.
Command lines turn it into one line and exit status 2 (:func:`exit_on_disk_full`).
"""
import errno
import json
import math
import os
import sys
import tempfile
import threading
from contextlib import contextmanager

import torch

#: errno values that mean "the file system will not take more bytes" (EFBIG: the file-size limit of ulimit -f)
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class DiskFullError(OSError):
    """Writing ``path`` failed because the disk (or a quota or file-size limit) is full."""

    def __init__(self, path: str, reason: str = "No space left on device"):
        super().__init__(errno.ENOSPC, f"{reason} while writing {path}; nothing was left under that name. Fix: free "
                                       "disk space (or raise the quota / ulimit -f) and run again", path)
        self.path, self.reason = path, reason

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):  # OSError pickles its (errno, strerror, filename) args; worker processes send ours back
        return type(self), (self.path, self.reason)


def disk_full_cause(exc: BaseException):
    """The disk-full ``OSError`` behind ``exc`` (itself, or its ``__cause__`` / ``__context__`` chain: ``torch.save``
    reports a failed write as a ``RuntimeError`` raised while handling it), or ``None``."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def disk_full_names(path: str, outer: bool = False):
    """Re-raise a disk-full error of the block as :class:`DiskFullError` naming ``path`` (write errors carry no file
    name of their own). A :class:`DiskFullError` from inside keeps its own, more precise path unless ``outer``:
    then ``path`` is what the user asked for (a folder built under a temporary name, say)."""
    try:
        yield
    except DiskFullError as e:
        if not outer:
            raise
        raise DiskFullError(path) from e
    except Exception as e:  # noqa: BLE001  only disk-full errors are translated; anything else propagates as is
        cause = disk_full_cause(e)
        if cause is None:
            raise
        raise DiskFullError(path, cause.strerror or os.strerror(cause.errno)) from e


@contextmanager
def exit_on_disk_full():
    """For command lines: a :class:`DiskFullError` becomes one line on stderr and exit status 2; so does a disk-full
    error of a writer that is not ours (Detectron2's logs and event files), naming the file when the error does."""
    try:
        yield
    except DiskFullError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # noqa: BLE001  only disk-full errors are turned into a line; others propagate
        cause = disk_full_cause(e)
        if cause is None:
            raise
        what = cause.filename or "an output file"
        print(f"error: {cause.strerror or os.strerror(cause.errno)} while writing {what}. Fix: free disk space (or "
              "raise the quota / ulimit -f) and run again", file=sys.stderr)
        sys.exit(2)


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (reading it means setting it; the lock keeps threads of this process consistent)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str):
    """Yield a temporary path in the same folder; it is renamed onto ``path`` only if the block succeeds. A full
    disk raises :class:`DiskFullError` naming ``path``; the temporary file is removed either way."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        with disk_full_names(path):
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
            os.close(fd)
            yield tmp
            if os.path.exists(tmp):
                os.chmod(tmp, 0o666 & ~current_umask())
            os.replace(tmp, path)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def save_torch(obj, path: str) -> None:
    """``torch.save`` atomically; through a file object, so a failed write keeps its ``OSError`` (a path argument
    gives a bare ``RuntimeError``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


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
