"""Reading videos frame by frame with OpenCV, and the one-line explanation when this OpenCV build cannot."""
from typing import Iterator, Tuple

import cv2
import numpy as np

__all__ = ["video_error_line", "iter_video", "video_info", "sampled_frame_count"]


def video_error_line(path: str) -> str:
    """Why ``path`` cannot be decoded and how to fix it (the usual cause is a build without the codec)."""
    try:
        backends = ", ".join(cv2.videoio_registry.getBackendName(b) for b in cv2.videoio_registry.getBackends())
    except Exception:  # pragma: no cover - very old OpenCV
        backends = "unknown"
    return (f"error: cannot decode video {path}: this OpenCV {cv2.__version__} build (video backends: {backends}) "
            "cannot open its container/codec. Fix: convert it to MP4/H.264 "
            f"(ffmpeg -i '{path}' -c:v libx264 -pix_fmt yuv420p out.mp4), or install an FFmpeg-enabled OpenCV "
            "(pip install opencv-python-headless).")


def iter_video(path: str, stride: int = 1, max_frames: int = 0) -> Iterator[Tuple[int, np.ndarray]]:
    """Yield ``(frame index, RGB uint8 frame)`` for every ``stride``-th frame, at most ``max_frames`` (0 = all).
    Raises IOError (with :func:`video_error_line`) when the file cannot be opened or its first frame decoded."""
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise IOError(video_error_line(path))
        idx, n = 0, 0
        while True:
            ok, frame = cap.read()
            if not ok:
                if idx == 0:
                    raise IOError(video_error_line(path))
                return
            if idx % max(1, stride) == 0:
                yield idx, np.ascontiguousarray(frame[:, :, ::-1])
                n += 1
                if max_frames and n >= max_frames:
                    return
            idx += 1
    finally:
        cap.release()


def video_info(path: str) -> Tuple[float, int]:
    """``(fps, frame count)`` from the container; fps falls back to 30 when missing or absurd, count to 0."""
    cap = cv2.VideoCapture(path)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    return (fps if 0 < fps < 1000 else 30.0), max(count, 0)


def sampled_frame_count(path: str, stride: int = 1, max_frames: int = 0) -> int:
    """How many frames :func:`iter_video` will yield, from the container's count (0 when unknown)."""
    n = video_info(path)[1]
    n = -(-n // max(1, stride)) if n else 0
    return min(n, max_frames) if max_frames else n
