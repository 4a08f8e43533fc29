"""What the demo's ``--input`` paths mean: image files, folders (their images and videos, sorted), glob patterns and
video files, each resolved to ``(kind, absolute path)``."""
import glob
import os
from typing import List, Tuple

__all__ = ["IMAGE_EXTS", "VIDEO_EXTS", "input_kind", "collect_inputs"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")


def input_kind(path: str) -> Tuple[str, str]:
    """``("video" | "image", absolute path)``, by extension; any file that is not a video is tried as an image."""
    return ("video" if path.lower().endswith(VIDEO_EXTS) else "image", os.path.abspath(path))


def collect_inputs(paths: List[str]) -> Tuple[List[Tuple[str, str]], List[str]]:
    """-> ``([(kind, abspath)], [missing paths])``. A folder gives its images and videos (not subfolders), sorted;
    a glob pattern that is not itself an existing path gives its files, sorted; a pattern without match is missing."""
    found, missing = [], []
    for p in paths:
        p = os.path.expanduser(p)
        if any(ch in p for ch in "*?[") and not os.path.exists(p):
            matches = sorted(glob.glob(p))
            if not matches:
                missing.append(p)
            found.extend(input_kind(m) for m in matches if os.path.isfile(m))
            continue
        if os.path.isdir(p):
            files = sorted(os.path.join(p, f) for f in os.listdir(p))
            found.extend(input_kind(f) for f in files
                         if os.path.isfile(f) and f.lower().endswith(IMAGE_EXTS + VIDEO_EXTS))
        elif os.path.isfile(p):
            found.append(input_kind(p))
        else:
            missing.append(p)
    return found, missing
