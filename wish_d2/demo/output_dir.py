"""The demo's output folder: refuse to mix runs, remember every file a run writes, and clear only those on
``--overwrite``.

A run records each file it writes (relative path, one per line) in :data:`MANIFEST` *before* writing it, so even an
interrupted run can be cleared. Policy:

* ``--output`` is an existing file (not a folder): :class:`OutputDirError`;
* the folder is missing or empty: used as is;
* the folder is not empty: :class:`OutputDirError`, unless ``overwrite``. Then the files listed in its manifest are
  deleted (with temporaries their interrupted atomic writes left, and folders they leave empty), the files the
  demo did not write are kept, and the new run starts a new manifest. A non-empty folder without a manifest was not
  written by the demo and is never touched.
"""
import glob
import os
from typing import List, Tuple

import cv2
import numpy as np

from ..utils.atomic import atomic_path, disk_full_names

__all__ = ["MANIFEST", "OutputDirError", "DemoOutputDir"]

#: The list of files a demo run wrote, relative to the output folder.
MANIFEST = ".wish_demo_files.txt"


class OutputDirError(ValueError):
    """The output folder cannot be used as asked; the message says why and what to do."""


def _inside(rel: str) -> bool:
    """A manifest line that stays inside the folder (no absolute path, no ``..``): a hand-edited manifest must
    never make ``--overwrite`` delete files elsewhere."""
    norm = os.path.normpath(rel)
    return bool(rel) and not os.path.isabs(norm) and norm != os.pardir and not norm.startswith(os.pardir + os.sep)


class DemoOutputDir:
    """The folder ``root`` of one demo run. :meth:`check` before any work, :meth:`prepare` once the run can start,
    then :meth:`path` for every file the run writes."""

    def __init__(self, root: str, overwrite: bool = False):
        self.root = os.path.abspath(root)
        self.overwrite = overwrite
        #: files found in the folder that the demo did not write, kept by ``--overwrite``
        self.kept: List[str] = []
        #: how many files of the previous run ``--overwrite`` deleted
        self.removed = 0
        self._recorded = set()

    def _manifest_path(self) -> str:
        return os.path.join(self.root, MANIFEST)

    def _entries(self) -> List[str]:
        return sorted(os.listdir(self.root)) if os.path.isdir(self.root) else []

    def check(self) -> None:
        """Raise :class:`OutputDirError` when the run must not start; changes nothing on disk."""
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise OutputDirError(f"--output {self.root} is an existing file, not a folder. Fix: pass a folder "
                                 "path (it is created), e.g. --output out/demo")
        entries = self._entries()
        if not entries:
            return
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        if not self.overwrite:
            raise OutputDirError(
                f"output folder {self.root} is not empty ({len(entries)} entries: {shown}); the demo does not mix "
                "a new run with old overlays. Fix: pass a new --output folder, or --overwrite to delete the files "
                "an earlier demo run wrote there first.")
        if not os.path.isfile(self._manifest_path()):
            raise OutputDirError(
                f"output folder {self.root} is not empty ({len(entries)} entries: {shown}) and has no {MANIFEST}, so "
                "the demo did not write it; --overwrite only deletes files a demo run recorded. Fix: pass a new "
                "--output folder, or empty this one yourself.")

    def _previous_files(self) -> List[str]:
        with open(self._manifest_path(), encoding="utf-8", errors="replace") as f:
            return [ln.rstrip("\n") for ln in f if _inside(ln.rstrip("\n"))]

    def prepare(self) -> None:
        """Create the folder, delete the previous run's files (``overwrite``) and start this run's manifest."""
        self.check()
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as e:
            raise OutputDirError(f"cannot create output folder {self.root} ({e.strerror or e}). Fix: pass a "
                                 "writable --output folder") from e
        if os.path.isfile(self._manifest_path()):
            self._clear_previous_run()
        with disk_full_names(self._manifest_path()), open(self._manifest_path(), "w", encoding="utf-8"):
            pass

    def _clear_previous_run(self) -> None:
        folders = set()
        real_root = os.path.realpath(self.root)
        for rel in self._previous_files():
            path = os.path.join(self.root, os.path.normpath(rel))
            real_parent = os.path.realpath(os.path.dirname(path))
            if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
                continue  # a folder replaced by a link to elsewhere: not ours to clear
            # the file, and temporaries an interrupted atomic write of it left (wish_d2.utils.atomic)
            for victim in [path] + glob.glob(os.path.join(glob.escape(os.path.dirname(path)),
                                                          ".tmp-*" + glob.escape(os.path.basename(path)))):
                if os.path.islink(victim) or os.path.isfile(victim):
                    try:
                        os.remove(victim)
                    except OSError as e:
                        raise OutputDirError(f"--overwrite could not delete {victim} ({e.strerror or e}). Fix: "
                                             "check its permissions, or pass a new --output folder") from e
                    self.removed += 1
            parent = os.path.dirname(path)
            while parent != self.root and parent.startswith(self.root + os.sep):
                folders.add(parent)
                parent = os.path.dirname(parent)
        os.remove(self._manifest_path())
        for folder in sorted(folders, key=len, reverse=True):  # deepest first
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
        for base, _, files in os.walk(self.root):
            self.kept.extend(os.path.relpath(os.path.join(base, f), self.root) for f in files)
        self.kept.sort()

    def path(self, rel: str) -> str:
        """Absolute path of ``rel`` in the folder, recorded in the manifest before the caller writes it; its parent
        folder is created."""
        if not _inside(rel):
            raise ValueError(f"{rel!r} is not a path inside the output folder")
        rel = os.path.normpath(rel)
        if rel not in self._recorded:
            with disk_full_names(self._manifest_path()), open(self._manifest_path(), "a", encoding="utf-8") as f:
                f.write(rel.replace(os.sep, "/") + "\n")
            self._recorded.add(rel)
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def save_png(self, rel: str, image_rgb: np.ndarray) -> str:
        """Write an RGB ``uint8`` image as ``rel`` (PNG), atomically; returns its absolute path. A full disk raises
        :class:`~wish_d2.utils.atomic.DiskFullError` (``cv2.imwrite`` would only return False)."""
        path = self.path(rel)
        ok, png = cv2.imencode(".png", np.ascontiguousarray(np.asarray(image_rgb)[:, :, ::-1]))
        if not ok:
            raise ValueError(f"could not encode {path} as PNG")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(png.tobytes())
        return path

    def written(self) -> Tuple[str, ...]:
        """Relative paths this run recorded so far."""
        return tuple(sorted(self._recorded))
