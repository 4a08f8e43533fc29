"""Reading videos frame by frame with OpenCV, and the one-line explanation when this OpenCV build cannot; writing
the annotated video so that it is never silently cut short.

OpenCV reports neither a video that stops decoding mid-stream (``read`` just returns no frame) nor a write that
fails (``VideoWriter.write`` returns nothing, a full disk truncates the file). So :func:`iter_video` compares what
it decoded with the container's frame count and raises :class:`VideoCutShort` after the last good frame, and
:class:`AnnotatedVideoWriter` writes under a temporary name, counts the frames back from the finished file and
renames it into place only when all are there.
"""
import os
import tempfile
from typing import Iterator, Tuple

import cv2
import numpy as np

from ..utils.atomic import DiskFullError, current_umask, disk_full_cause

__all__ = ["video_error_line", "iter_video", "video_info", "sampled_frame_count", "VideoCutShort",
           "VideoWriteError", "AnnotatedVideoWriter"]

#: Frames a container's count may exceed what decodes (some containers estimate it from duration x fps).
COUNT_SLACK = 1


class VideoCutShort(IOError):
    """A video stopped decoding before the frame count its container declares (corrupt or truncated mid-stream)."""

    def __init__(self, path: str, decoded: int, declared: int):
        super().__init__(f"video {path} stops decoding after frame {decoded - 1} of the {declared} its container "
                         f"declares: {declared - decoded} frame(s) are lost (the file is corrupt or truncated). Fix: "
                         f"re-encode or re-download it (ffmpeg -i '{path}' -c:v libx264 out.mp4 keeps what decodes)")
        self.path, self.decoded, self.declared = path, decoded, declared


class VideoWriteError(IOError):
    """The annotated video could not be written completely."""


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
    Raises IOError (with :func:`video_error_line`) when the file cannot be opened or its first frame decoded, and
    :class:`VideoCutShort` after the last frame that decodes when the container declares more."""
    if max_frames < 0 or stride < 1:
        raise ValueError(f"video sampling needs stride >= 1 and max_frames >= 0 (0 = all), got {stride}, {max_frames}")
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise IOError(video_error_line(path))
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        idx, n = 0, 0
        while True:
            ok, frame = cap.read()
            if not ok:
                if idx == 0:
                    raise IOError(video_error_line(path))
                if declared - idx > COUNT_SLACK:
                    raise VideoCutShort(path, idx, declared)
                return
            if idx % stride == 0:
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


def _frame_count(path: str) -> int:
    cap = cv2.VideoCapture(path)
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    finally:
        cap.release()


class AnnotatedVideoWriter:
    """An mp4v video written to a temporary name beside ``path``; :meth:`close` renames it into place only when the
    finished file holds every frame written, and otherwise removes it and raises :class:`VideoWriteError` (or
    :class:`~wish_d2.utils.atomic.DiskFullError` when the disk is full)."""

    def __init__(self, path: str, fps: float, size_wh: Tuple[int, int]):
        self.path = path
        fd, self.tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=os.path.dirname(path))
        os.close(fd)
        self.frames = 0
        self._writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), tuple(size_wh))
        if not self._writer.isOpened():
            self.abort()

    @property
    def opened(self) -> bool:
        return self._writer is not None

    def write(self, frame_bgr: np.ndarray) -> None:
        self._writer.write(np.ascontiguousarray(frame_bgr))
        self.frames += 1

    def abort(self) -> None:
        """Drop the video: nothing remains under either name."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if os.path.exists(self.tmp):
            os.remove(self.tmp)

    def close(self) -> str:
        """Finish the file and move it to ``path``; returns ``path``."""
        self._writer.release()
        self._writer = None
        try:
            got = _frame_count(self.tmp)
            if got != self.frames:
                free = _free_bytes(os.path.dirname(self.path))
                if free is not None and free < (1 << 20):
                    raise DiskFullError(self.path)
                raise VideoWriteError(
                    f"annotated video {self.path} is incomplete: {self.frames} frame(s) written, {got} in the file "
                    "(a full disk, a file-size limit or an encoder failure); it was not kept")
            try:
                os.chmod(self.tmp, 0o666 & ~current_umask())  # mkstemp's 0600 would hide it from other users
                os.replace(self.tmp, self.path)
            except OSError as e:
                if disk_full_cause(e):
                    raise DiskFullError(self.path) from e
                raise
        finally:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)
        return self.path


def _free_bytes(folder: str):
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize
