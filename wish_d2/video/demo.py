"""The demo's temporal mode on video inputs (docs/VIDEO.md): wrap the demo's predictor in a
:class:`~wish_d2.video.predictor.VideoPredictor` for one video, record each hand's state per frame, and draw the
timeline plot for the gallery, against ground truth when a ``held_timeline.json`` next to the video has it (the
synthetic video splits write one; ``export_video_mp4`` puts a video and its timeline side by side)."""
import json
import os
from typing import Dict, List, Optional

from ..classes import SIDES
from ..utils.atomic import write_json
from .predictor import TemporalParams, VideoPredictor
from .smoothing import NOTHING
from .timeline import plot_hand_timeline

__all__ = ["TemporalRecorder", "temporal_predictor_for", "ground_truth_timeline", "export_video_mp4"]


class TemporalRecorder:
    """Callable like the demo's predictor; keeps ``(time index, temporal states, per-frame states)`` per frame."""

    def __init__(self, video_predictor: VideoPredictor):
        self.vp = video_predictor
        self.frames: List[int] = []
        self.states: Dict[str, List[Optional[int]]] = {"left": [], "right": []}
        self.per_frame: Dict[str, List[Optional[int]]] = {"left": [], "right": []}

    def __call__(self, image, hands=None, image_id: str = "", extra=None):
        out = self.vp(image, hands=hands, image_id=image_id, extra=extra)
        for k, side in enumerate(SIDES):
            for store, key in ((self.states, "states"), (self.per_frame, "per_frame_states")):
                v = (out.get(key) or [NOTHING, NOTHING])[k]
                store[side].append(None if v == NOTHING else v)
        return out

    def note_frame(self, idx: int) -> None:
        """Frame index (in the source video) of the last call, for the time axis."""
        self.frames.append(idx)

    def plot(self, path: str, fps: float, title: str = "", ground_truth: Optional[Dict] = None) -> Optional[str]:
        n = len(self.states["left"])
        if not n:
            return None
        frames = self.frames[:n] if len(self.frames) >= n else list(range(n))
        times = [f / fps for f in frames]
        gt = None
        if ground_truth is not None:
            gt = {s: [ground_truth[s][f] if f < len(ground_truth[s]) else None for f in frames] for s in ("left",
                                                                                                         "right")}
        return plot_hand_timeline(path, times, self.states, gt, self.per_frame, title)


def temporal_predictor_for(predictor, params: TemporalParams = TemporalParams()) -> Optional[TemporalRecorder]:
    """A recorder around a fresh VideoPredictor for one video, or ``None`` when ``predictor`` has no WISH model
    (a stand-in predictor: the demo then stays per-frame)."""
    if not hasattr(predictor, "model") or not hasattr(getattr(predictor, "model"), "roi_heads"):
        return None
    return TemporalRecorder(VideoPredictor(predictor, temporal=True, params=params))


def ground_truth_timeline(video_path: str) -> Optional[Dict[str, List[Optional[int]]]]:
    """``{"left": [...], "right": [...]}`` per frame of the video, from ``held_timeline.json`` beside it (keyed by
    the video's file stem), or ``None`` when there is no such file. A file that cannot be read, is not
    ``{"videos": {stem: [{"left": id, "right": id}, ...]}}`` (ids: integers, strings or null) or has no entry for
    this video raises ``ValueError`` naming it."""
    path = os.path.join(os.path.dirname(os.path.abspath(video_path)), "held_timeline.json")
    stem = os.path.splitext(os.path.basename(video_path))[0]
    if not os.path.lexists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from None
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise ValueError(f"{path}: must be an object with a \"videos\" object {{video stem: [rows]}}")
    if stem not in videos:
        raise ValueError(f"{path}: has no entry for video {stem!r}")
    rows = videos[stem]
    if not isinstance(rows, list):
        raise ValueError(f"{path}: videos[{stem!r}] must be a list of per-frame rows")
    for k, r in enumerate(rows):
        if not isinstance(r, dict):
            raise ValueError(f"{path}: videos[{stem!r}][{k}] must be an object {{\"left\": id, \"right\": id}}")
        for side in SIDES:
            v = r.get(side)
            if not (v is None or isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))):
                raise ValueError(f"{path}: videos[{stem!r}][{k}].{side} must be an id (integer or string) or null, "
                                 f"got {v!r}")
    return {s: [r.get(s) for r in rows] for s in SIDES}


def export_video_mp4(split_folder: str, video: str, out_dir: str) -> str:
    """Write one synthetic video of a split as ``out_dir/<video>.mp4`` (mp4v) with its ``held_timeline.json``;
    returns the video path."""
    import cv2

    from ..data.synthetic.video_split import held_timeline, video_frames

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(split_folder, "held_timeline.json")) as f:
        fps = json.load(f)["fps"]
    frames = video_frames(split_folder, video)
    first = cv2.imread(frames[0])
    path = os.path.join(out_dir, f"{video}.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (first.shape[1], first.shape[0]))
    if not writer.isOpened():
        raise IOError(f"cannot write {path}: this OpenCV build has no mp4v encoder")
    try:
        for p in frames:
            writer.write(cv2.imread(p))
    finally:
        writer.release()
    write_json({"fps": fps, "videos": {video: held_timeline(split_folder)[video]}},
               os.path.join(out_dir, "held_timeline.json"))
    return path
