"""A fingerprint of the ``wish_d2`` sources as this process imported them.

The long tools (``tools/reproduce_table.py``, ``tools/hand_benchmark.py``) spawn worker processes, and a spawned
worker imports the package from disk again, possibly hours after its parent. If the sources were edited in between,
the worker would run other code than the parent under the parent's config: a crash deep inside, or worse, a table
whose rows come from two versions of the method. Each worker compares its fingerprint with its parent's and refuses
to start on a mismatch (:func:`check_same_sources`).
"""
import contextlib
import hashlib
import os
from concurrent.futures.process import BrokenProcessPool

__all__ = ["PACKAGE_DIR", "SourcesChangedError", "source_fingerprint", "IMPORTED_SOURCES", "check_same_sources",
           "same_sources_in_workers"]

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SourcesChangedError(RuntimeError):
    """The package's sources on disk are no longer the ones this run started with."""


def source_fingerprint(root: str = PACKAGE_DIR) -> str:
    """SHA-256 over the relative path and content of every ``.py`` file under ``root``, in a fixed order."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(f for f in filenames if f.endswith(".py")):
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                content = hashlib.sha256(f.read()).hexdigest()
            h.update(f"{os.path.relpath(path, root)}\0{content}\n".encode())
    return h.hexdigest()


#: The fingerprint when this module was first imported, which the tools do at start-up (close to when the rest of
#: the package was imported).
IMPORTED_SOURCES = source_fingerprint()


def check_same_sources(parent: str, root: str = PACKAGE_DIR) -> None:
    """Raise :class:`SourcesChangedError` unless the sources under ``root`` still have the fingerprint ``parent``
    (the parent process's)."""
    now = source_fingerprint(root)
    if now != parent:
        raise SourcesChangedError(
            f"the wish_d2 sources under {root} changed after this run started (fingerprint {parent[:12]} at start, "
            f"{now[:12]} now), so a new worker process would run other code than its parent. Restore the sources "
            "and rerun (tools/reproduce_table.py --resume keeps the seeds already finished), and run long jobs "
            "from a checkout that stays fixed, for example a git worktree.")


@contextlib.contextmanager
def same_sources_in_workers(parent: str = IMPORTED_SOURCES, root: str = PACKAGE_DIR):
    """Around a process pool whose workers call :func:`check_same_sources`: the parent checks before they are
    spawned, and a pool broken by a worker that refused to start ends in that error, not in "a process in the
    process pool was terminated abruptly"."""
    check_same_sources(parent, root)
    try:
        yield
    except BrokenProcessPool:
        check_same_sources(parent, root)
        raise
