"""Writing a whole split: render its frames, write them in the real formats, and put the folder in place safely.
A split is generated in a temporary sibling folder, its ``.done`` marker (the generation parameters) is written
last, and the folder is renamed into place, so a killed generation is redone and concurrent generators (several
ranks) need no lock: the loser of the rename discards its copy, whose bytes are the same."""
import json
import logging
import os
import shutil
import time
import uuid
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ...utils.atomic import disk_full_names, write_json
from ..common import dedup
from ..narrations import epic_noun_to_phrase
from ..proposals_io import write_proposals
from .formats import epic_row, gt_record, visor_entities, write_epic_csv, write_visor_json
from .layout import GENERATOR_VERSION, SPLITS, split_dir, video_frame
from .narration_noise import P_NEIGHBOUR, frame_narration
from .profiles import SyntheticProfile, get_profile
from .realistic import render_realistic_frame
from .render import render_frame
from .stats import compute_stats, per_frame_stats

logger = logging.getLogger(__name__)

__all__ = ["generate_split", "ensure_split", "split_params", "is_complete"]

ProfileArg = Union[str, SyntheticProfile, None]


def _render(profile: SyntheticProfile, seed: int, split: str, index: int, H: int, W: int) -> Dict:
    if profile.realistic:
        return render_realistic_frame(seed, split, index, H, W, profile)
    return render_frame(seed, split, index, H, W, camera=profile.camera, multi_grip=profile.multi_grip)


def _frame_size(profile: SyntheticProfile, image_size: Optional[Sequence[int]]) -> Tuple[int, int]:
    size = profile.image_size if image_size is None else image_size
    return int(size[0]), int(size[1])


def generate_split(out_dir: str, seed: int, split: str, num: int, image_size: Optional[Sequence[int]] = None,
                   progress: bool = True, profile: ProfileArg = "default") -> Tuple[List[Dict], Dict]:
    """Write one split into ``out_dir`` (images, VISOR JSON, EPIC CSV, proposals, stats) and return
    ``(records, stats)``: ``records`` are the generator's own dataset dicts (what ``register_epic_visor`` must
    read back). ``image_size`` (H, W) defaults to the profile's. Does not write the ``.done`` marker (see
    :func:`ensure_split`)."""
    from tqdm import tqdm

    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    profile = get_profile(profile)
    H, W = _frame_size(profile, image_size)
    img_root = os.path.join(out_dir, "images")
    ann_root = os.path.join(out_dir, "annotations")
    os.makedirs(img_root, exist_ok=True)
    os.makedirs(ann_root, exist_ok=True)
    records, per_video, prop_records, frame_stats, narr_base = [], {}, [], [], []
    it = range(int(num))
    if progress:
        it = tqdm(it, desc=f"wish_synth seed {seed} {split}", unit="frame", leave=False)
    for i in it:
        frame = _render(profile, seed, split, i, H, W)
        video, fno = video_frame(split, i)
        name = f"{video}_frame_{fno:010d}{frame['image_ext']}"
        rel = f"{video}/{name}"
        path = os.path.join(img_root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(frame["image"])
        per_video.setdefault(video, []).append({
            "image": {"name": name, "image_path": rel, "video": video, "subsequence": f"{video}_Part_001"},
            "annotations": visor_entities(frame),
        })
        hands, anns, held = gt_record(frame, H, W)
        image_id = os.path.splitext(name)[0]
        prop_records.append({"image_id": image_id, "height": H, "width": W, "masks": frame["proposals"],
                             "scores": frame["scores"]})
        frame_stats.append(per_frame_stats(frame, hands, anns, frame["proposals"], frame["area_scale"]))
        held_objs = [h for h in held.values() if h is not None] + [
            o for s in frame["hands"] for o in frame["all_hands"][s].get("held_extra", ())]
        held_cats = [o["cat"] for o in {id(h): h for h in held_objs}.values()]
        held_set = {id(h) for h in held_objs}
        other_cats = [o["cat"] for o in frame["objects"] if id(o) not in held_set]
        nrng = np.random.default_rng([seed, SPLITS[split], i, 1])
        narr = frame_narration(nrng, held_cats, other_cats)
        narr["neighbour"] = nrng.random() < P_NEIGHBOUR
        narr["held_cats"] = held_cats
        narr_base.append(narr)
        records.append({"file_name": os.path.join(img_root, rel), "image_id": image_id, "height": H, "width": W,
                        "video_id": video, "frame": fno, "hands": hands, "annotations": anns})

    rows, narr_events = [], []
    for i, rec in enumerate(records):
        narr = narr_base[i]
        src = narr  # the neighbour swap: this frame carries the previous frame's (noisy) narration
        if narr["neighbour"] and len(records) > 1:
            src = narr_base[i - 1] if i > 0 else narr_base[1]
        rows.append(epic_row(rec["video_id"], rec["frame"], src))
        rec["narrations"] = [src["text"]]
        rec["noun_phrases"] = dedup(epic_noun_to_phrase(k) for k in src["keys"])
        ev = dict(narr["events"] if src is narr else src["events"])
        ev["neighbour"] = src is not narr
        ev["num_nouns"] = len(src["keys"])
        ev["no_held"] = not narr["held_cats"]
        ev["mentions_held"] = any(c in narr["held_cats"] for c in src["classes"])
        narr_events.append(ev)

    for video, frames in per_video.items():
        write_visor_json(os.path.join(ann_root, f"{video}.json"), frames, seed, split)
    write_epic_csv(os.path.join(out_dir, "narrations.csv"), rows)
    write_proposals(prop_records, os.path.join(out_dir, "proposals.jsonl"))
    stats = compute_stats(frame_stats, narr_events)
    write_json(stats, os.path.join(out_dir, "stats.json"))
    return records, stats


def split_params(seed: int, split: str, num: int, image_size: Sequence[int], profile: ProfileArg = "default") -> Dict:
    """The content of a split's ``.done`` marker: everything its bytes depend on."""
    profile = get_profile(profile)
    params = {"version": GENERATOR_VERSION, "seed": int(seed), "split": split, "num": int(num),
              "image_size": list(_frame_size(profile, image_size))}
    if profile.name != "default":
        params["profile"] = profile.marker()
    return params


def is_complete(path: str, params: Dict) -> bool:
    """Whether ``path`` holds a finished split generated with ``params``."""
    try:
        with open(os.path.join(path, ".done")) as f:
            return json.load(f) == params
    except (OSError, ValueError):
        return False


def ensure_split(root: str, seed: int, split: str, num: int, image_size: Optional[Sequence[int]] = None,
                 progress: bool = True, profile: ProfileArg = "default") -> str:
    """Generate a split under ``root`` (see :func:`split_dir`) unless a complete copy exists; returns its folder.
    A final folder without a matching marker (an older version or foreign files) is replaced; if another
    process finished first, its copy is kept and ours discarded."""
    profile = get_profile(profile)
    image_size = _frame_size(profile, image_size)
    final = split_dir(root, seed, split, num, image_size, profile.name)
    params = split_params(seed, split, num, image_size, profile)
    if is_complete(final, params):
        return final
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    _clean_stale_tmp(parent)
    tmp = os.path.join(parent, f".tmp-{os.path.basename(final)}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    t0 = time.time()
    try:
        with disk_full_names(final, outer=True):  # the split is built in tmp; the user knows it as final
            generate_split(tmp, seed, split, num, image_size, progress=progress, profile=profile)
            write_json(params, os.path.join(tmp, ".done"))
        for attempt in range(3):
            if is_complete(final, params):
                break
            if os.path.exists(final):  # stale or incomplete: move it away, then retry
                trash = f"{tmp}.old"
                try:
                    os.rename(final, trash)
                    shutil.rmtree(trash, ignore_errors=True)
                except OSError:
                    pass
            try:
                os.rename(tmp, final)
                break
            except OSError:
                continue
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    if not is_complete(final, params):
        raise RuntimeError(f"could not put the generated synthetic split in place at {final}")
    logger.info(f"Generated synthetic split {split} ({num} frames, seed {seed}, profile {profile.name}) in "
                f"{time.time() - t0:.1f}s: {final}")
    return final


def _clean_stale_tmp(parent: str, max_age_s: float = 3600.0) -> None:
    """Remove temporary folders of generations that were killed more than an hour ago."""
    now = time.time()
    for name in os.listdir(parent):
        if name.startswith(".tmp-"):
            p = os.path.join(parent, name)
            try:
                if now - os.path.getmtime(p) > max_age_s:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass
