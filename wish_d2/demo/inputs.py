"""What the demo's ``--input`` paths mean: image files, folders (their images and videos, sorted), glob patterns and
video files, each resolved to ``(kind, absolute path)``.

Whatever cannot be used is reported with the reason, never dropped silently: a missing path, a dangling symbolic
link or a link loop, something that is not a regular file, a folder that cannot be listed or holds no image or video,
a glob pattern that matches nothing or only folders. Inside a folder, an entry with an image or video extension that
is a broken link (or not a file) is reported too; other entries (subfolders, text files) are not inputs.
"""
import errno
import glob
import os
from typing import List, Optional, Tuple

__all__ = ["IMAGE_EXTS", "VIDEO_EXTS", "input_kind", "path_problem", "collect_inputs"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")


def input_kind(path: str) -> Tuple[str, str]:
    """``("video" | "image", absolute path)``, by extension; any file that is not a video is tried as an image."""
    return ("video" if path.lower().endswith(VIDEO_EXTS) else "image", os.path.abspath(path))


def path_problem(path: str) -> Optional[str]:
    """Why ``path`` is neither a regular file nor a folder the demo can read, or ``None``."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "is a symbolic link loop"
        if os.path.islink(path):
            return f"is a dangling symbolic link (to {os.readlink(path)}, which does not exist)"
        if e.errno == errno.ENOENT:
            return "not found"
        return f"cannot be read ({e.strerror or e})"
    if not (os.path.isfile(path) or os.path.isdir(path)):
        return "is not a regular file or folder"
    return None


def _folder_inputs(folder: str, found: List[Tuple[str, str]], problems: List[Tuple[str, str]]) -> None:
    try:
        names = sorted(os.listdir(folder))
    except OSError as e:
        problems.append((folder, f"folder cannot be listed ({e.strerror or e})"))
        return
    media = [os.path.join(folder, n) for n in names if n.lower().endswith(IMAGE_EXTS + VIDEO_EXTS)]
    reported, usable = len(problems), len(found)
    for f in media:
        why = path_problem(f)
        if why is not None:
            problems.append((f, why))
        elif os.path.isfile(f):  # a folder named like an image is not an input
            found.append(input_kind(f))
    if len(found) == usable and len(problems) == reported:
        problems.append((folder, "folder holds no image or video file"))


def collect_inputs(paths: List[str]) -> Tuple[List[Tuple[str, str]], List[Tuple[str, str]]]:
    """-> ``([(kind, abspath)], [(path, problem)])``. A folder gives its images and videos (not subfolders), sorted;
    a glob pattern that is not itself an existing path gives its files, sorted."""
    found: List[Tuple[str, str]] = []
    problems: List[Tuple[str, str]] = []
    for p in paths:
        p = os.path.expanduser(p)
        if any(ch in p for ch in "*?[") and not os.path.lexists(p):
            matches = sorted(glob.glob(p))
            files = [m for m in matches if path_problem(m) is None and os.path.isfile(m)]
            if not matches:
                problems.append((p, "pattern matches nothing"))
            elif not files:
                folders = sum(os.path.isdir(m) for m in matches)
                problems.append((p, f"pattern matches no file ({folders} folder(s), {len(matches) - folders} other "
                                    "entries); pass a folder itself to use its images"))
            found.extend(input_kind(m) for m in files)
            problems.extend((m, why) for m in matches if (why := path_problem(m)) is not None)
            continue
        why = path_problem(p)
        if why is not None:
            problems.append((p, why))
        elif os.path.isdir(p):
            _folder_inputs(p, found, problems)
        else:
            found.append(input_kind(p))
    return found, problems
