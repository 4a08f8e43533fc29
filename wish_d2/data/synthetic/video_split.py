"""Synthetic egocentric VIDEOS in the real formats (docs/VIDEO.md): every frame as an EPIC-style image, VISOR
sparse JSON with persistent entity ids (every ``annotate_every``-th frame for training, every frame for dense
evaluation), EPIC-100 interval narrations with configurable timing noise (one CSV per noise level), Ego4D-style
point narrations, and the segmenter imitation for every frame. So the real VISOR / EPIC-100 / Ego4D loaders read
them. Deterministic by ``(seed, split, video)``; a split is written to a temporary folder and renamed into place
with a ``.done`` marker, like the frame benchmark's splits."""
import json
import logging
import os
import shutil
import uuid
from dataclasses import asdict
from typing import Dict, List, Sequence

import numpy as np

from ...utils.atomic import disk_full_names, write_json
from ..proposals_io import write_proposals
from .formats import visor_entities, write_epic_csv, write_visor_json
from .layout import SPLITS, timestamp
from .taxonomy import CATEGORIES, VERBS
from .video_render import render_video_frame, video_background
from .video_script import VideoParams, script_video

logger = logging.getLogger(__name__)

__all__ = ["VIDEO_GENERATOR_VERSION", "VIDEO_PARTICIPANTS", "EPIC_FPS", "video_split_dir", "frame_number",
           "noisy_interval", "narrations_csv", "write_video_narrations", "generate_video_split",
           "ensure_video_split", "held_timeline", "video_frames", "list_videos"]

VIDEO_GENERATOR_VERSION = 1  # bump when the bytes of a video split change
VIDEO_PARTICIPANTS = {"train": "P80", "val": "P81", "test": "P82"}  # EPIC participant id of each split's videos
EPIC_FPS = 50  # the source frame rate: frame numbers and EPIC timestamps count 50 fps frames
NOISE_LEVELS = (0.0, 1.0, 2.0)  # timing-noise levels (seconds) whose narration CSVs every split carries


def video_split_dir(root: str, seed: int, split: str, num_videos: int, params: VideoParams) -> str:
    H, W = params.image_size
    return os.path.join(root, f"wish_video_seed{int(seed)}_{H}x{W}_{params.seconds:g}s{params.fps}fps",
                        f"{split}_v{int(num_videos)}")


def frame_number(t: int, fps: int) -> int:
    """EPIC frame number (50 fps source video, 1-based) of the ``t``-th sampled frame."""
    return (EPIC_FPS // fps) * t + 1


def noisy_interval(start: int, stop: int, u_start: float, u_stop: float, noise_s: float) -> tuple:
    """An interval in EPIC frames with its start and stop moved by ``u * noise_s`` seconds (``u`` in [-1, 1]):
    shifted, shortened or lengthened by up to ``noise_s``. A window that would end before it starts collapses to
    its middle; nothing goes below frame 0."""
    a = int(round(start + u_start * noise_s * EPIC_FPS))
    b = int(round(stop + u_stop * noise_s * EPIC_FPS))
    if b < a:
        a = b = (a + b) // 2
    return max(0, a), max(0, b)


def narrations_csv(folder: str, noise_s: float) -> str:
    """Path of a split's EPIC-100 narration CSV at timing noise ``noise_s`` seconds."""
    return os.path.join(folder, f"narrations_noise{noise_s:g}s.csv")


def _epic_row(video: str, k: int, start: int, stop: int, verb: str, cat: int) -> Dict:
    key = CATEGORIES[cat].key
    return {"narration_id": f"{video}_{k}", "participant_id": video.split("_")[0], "video_id": video,
            "narration_timestamp": timestamp(start), "start_timestamp": timestamp(start),
            "stop_timestamp": timestamp(stop), "start_frame": start, "stop_frame": stop,
            "narration": f"{verb} {key.split(':')[0]}", "verb": verb, "verb_class": VERBS.index(verb),
            "noun": key, "noun_class": cat, "all_nouns": repr([key]), "all_noun_classes": repr([cat])}


def write_video_narrations(folder: str, noise_s: float) -> str:
    """Write the split's EPIC-100 CSV at timing noise ``noise_s`` from its clean ``actions.json``; returns it.
    The same uniform draws scale with ``noise_s``, so 2 s noise moves every boundary twice as far as 1 s."""
    with open(os.path.join(folder, "actions.json")) as f:
        actions = json.load(f)
    rows = []
    for video, acts in actions["videos"].items():
        for k, a in enumerate(acts):
            s, e = noisy_interval(a["start_frame"], a["stop_frame"], a["u_start"], a["u_stop"], noise_s)
            rows.append(_epic_row(video, k, s, e, a["verb"], a["cat"]))
    path = narrations_csv(folder, noise_s)
    write_epic_csv(path, rows)
    return path


def generate_video_split(out_dir: str, seed: int, split: str, num_videos: int, params: VideoParams = VideoParams(),
                         annotate_every: int = 1, progress: bool = False) -> Dict:
    """Write ``num_videos`` videos into ``out_dir``; returns the split's summary (frames, annotated frames,
    actions). ``annotate_every``: VISOR annotations on every k-th frame (sparse training annotation)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if int(annotate_every) < 1:
        raise ValueError(f"annotate_every must be >= 1, got {annotate_every!r}")
    H, W = params.image_size
    img_root, ann_root = os.path.join(out_dir, "images"), os.path.join(out_dir, "annotations")
    os.makedirs(img_root, exist_ok=True)
    os.makedirs(ann_root, exist_ok=True)
    props, actions, ego4d, timeline = [], {}, {}, {}
    n_frames = n_annotated = 0
    for v in range(int(num_videos)):
        video = f"{VIDEO_PARTICIPANTS[split]}_{v + 1:02d}"
        rng = np.random.default_rng([seed, SPLITS[split], v, 7])
        objects, frames, acts, hands = script_video(rng, params)
        bg = video_background(rng, H, W)
        gain = np.linspace(rng.uniform(0.85, 1.0), rng.uniform(0.95, 1.1), W, dtype=np.float32)
        visor, held_line = [], []
        for t, state in enumerate(frames):
            frng = np.random.default_rng([seed, SPLITS[split], v, t, 9])
            frame = render_video_frame(objects, hands, state, bg, gain, frng)
            fno = frame_number(t, params.fps)
            name = f"{video}_frame_{fno:010d}.png"
            os.makedirs(os.path.join(img_root, video), exist_ok=True)
            with open(os.path.join(img_root, video, name), "wb") as f:
                f.write(frame["image"])
            props.append({"image_id": name[:-4], "height": H, "width": W, "masks": frame["proposals"],
                          "scores": frame["scores"]})
            held = {s: (h["held"]["eid"] if h.get("held") is not None and s in frame["hands"] else None)
                    for s, h in frame["all_hands"].items()}
            held_line.append({"frame": fno, **held})
            if t % annotate_every == 0:
                visor.append({"image": {"name": name, "image_path": f"{video}/{name}", "video": video,
                                        "subsequence": f"{video}_Part_001"}, "annotations": visor_entities(frame)})
                n_annotated += 1
            n_frames += 1
        write_visor_json(os.path.join(ann_root, f"{video}.json"), visor, seed, split)
        nrng = np.random.default_rng([seed, SPLITS[split], v, 8])
        actions[video] = []
        for a in acts:
            u = nrng.uniform(-1, 1, 2)
            actions[video].append({"start_frame": frame_number(a.start, params.fps),
                                   "stop_frame": frame_number(a.stop, params.fps), "verb": a.verb,
                                   "cat": int(next(o["cat"] for o in objects if o["oid"] == a.oid)),
                                   "oid": a.oid, "u_start": float(u[0]), "u_stop": float(u[1])})
        ego4d[video] = {"narration_pass_1": {"narrations": [
            {"timestamp_sec": round(frame_number(a.point, params.fps) / EPIC_FPS, 3),
             "timestamp_frame": frame_number(a.point, params.fps), "narration_text": a.text_ego4d,
             "annotation_uid": f"{video}_{k}"} for k, a in enumerate(acts)], "summaries": []}}
        timeline[video] = held_line
        if progress:
            logger.info(f"video {video}: {len(frames)} frames")
    write_proposals(props, os.path.join(out_dir, "proposals.jsonl"))
    write_json({"fps": params.fps, "epic_fps": EPIC_FPS, "videos": actions}, os.path.join(out_dir, "actions.json"))
    write_json(ego4d, os.path.join(out_dir, "narrations_ego4d.json"))
    write_json({"fps": params.fps, "videos": timeline}, os.path.join(out_dir, "held_timeline.json"))
    for k in NOISE_LEVELS:
        write_video_narrations(out_dir, k)
    return {"videos": int(num_videos), "frames": n_frames, "annotated_frames": n_annotated,
            "actions": sum(len(a) for a in actions.values())}


def _params_marker(seed, split, num_videos, params: VideoParams, annotate_every: int) -> Dict:
    p = asdict(params)
    p["image_size"] = list(p["image_size"])
    p["objects"] = list(p["objects"])
    return {"version": VIDEO_GENERATOR_VERSION, "seed": int(seed), "split": split, "num_videos": int(num_videos),
            "annotate_every": int(annotate_every), "params": p}


def ensure_video_split(root: str, seed: int, split: str, num_videos: int, params: VideoParams = VideoParams(),
                       annotate_every: int = 1) -> str:
    """Generate the split under ``root`` unless a complete copy with the same parameters exists; returns its
    folder (temporary folder, ``.done`` marker written last, then renamed into place)."""
    final = video_split_dir(root, seed, split, num_videos, params)
    if annotate_every != 1:
        final += f"_every{int(annotate_every)}"
    marker = _params_marker(seed, split, num_videos, params, annotate_every)
    done = os.path.join(final, ".done")
    try:
        with open(done) as f:
            if json.load(f) == marker:
                return final
    except (OSError, ValueError):
        pass
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{os.path.basename(final)}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with disk_full_names(final, outer=True):  # the split is built in tmp; the user knows it as final
            summary = generate_video_split(tmp, seed, split, num_videos, params, annotate_every)
            write_json(marker, os.path.join(tmp, ".done"))
        if os.path.exists(final):
            shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info(f"Generated synthetic video split {split}: {summary} in {final}")
    return final


def held_timeline(folder: str) -> Dict[str, List[Dict]]:
    """``{video: [{"frame", "left", "right"}]}``: which entity id each hand holds in every frame (dense, from the
    generator), for timelines and switch counts."""
    with open(os.path.join(folder, "held_timeline.json")) as f:
        return json.load(f)["videos"]


def video_frames(folder: str, video: str) -> List[str]:
    """The image paths of one video of a split, in time order."""
    d = os.path.join(folder, "images", video)
    return [os.path.join(d, n) for n in sorted(os.listdir(d))]


def list_videos(folder: str) -> Sequence[str]:
    return sorted(os.listdir(os.path.join(folder, "images")))
