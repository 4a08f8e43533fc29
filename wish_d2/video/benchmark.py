"""The video benchmark behind ``tools/video_benchmark.py`` (docs/VIDEO.md): synthetic egocentric videos in the real
formats, WISH trained on sparse frames with EPIC-style narrations at timing noise 0, 1 and 2 s (narration-window
weighting on), then per-frame against temporal inference on dense test videos.

Temporal parameters (``p_switch``, ``theta_scale``) are chosen on the validation videos, never on the test videos.
"""
import json
import logging
import os
import time
from dataclasses import replace
from typing import Dict, List

import torch

from ..data.common import set_wish_metadata
from ..data.epic_narrations import load_epic_narrations
from ..data.synthetic.taxonomy import NOUNS
from ..data.synthetic.video_script import VideoParams
from ..data.synthetic.video_split import ensure_video_split, held_timeline, narrations_csv
from ..data.visor import load_epic_visor
from ..evaluation.metrics import InHandIoU, gt_label_map, paint_label_map
from ..modeling.inference import select_in_hand
from ..utils.atomic import write_json
from ..utils.masks import decode_rles
from .evaluation import VisorEntities, hand_identities, spurious_switches, switches_per_minute
from .predictor import TemporalDecoder, TemporalParams
from .window_weights import attach_narration_weights

logger = logging.getLogger(__name__)

__all__ = ["BenchmarkSize", "register_video_split", "run_video_benchmark"]

P_SWITCH_GRID = (0.5, 0.2, 0.1, 0.05, 0.02, 0.01)  # 0.5 = the per-frame rule (see smoothing.py)
THETA_SCALE_GRID = (0.8, 1.0, 1.25)
NOISE_LEVELS = (0.0, 1.0, 2.0)


class BenchmarkSize:
    """Split sizes and training length, small enough for two shared CPU cores."""

    def __init__(self, train_videos=12, val_videos=4, test_videos=6, annotate_every=2, stage1_iters=500,
                 stage2_iters=300, seed=0, params: VideoParams = VideoParams(), window_noise_s=1.0):
        self.train_videos, self.val_videos, self.test_videos = train_videos, val_videos, test_videos
        self.annotate_every = annotate_every
        self.stage1_iters, self.stage2_iters = stage1_iters, stage2_iters
        self.seed, self.params = seed, params
        self.window_noise_s = window_noise_s  # the boundary noise the Stage 1 weights assume (window_weights.py)


def register_video_split(name: str, folder: str, noise_s: float, weight_noise_s: float = None) -> None:
    """Register a video split folder through the VISOR + EPIC-100 loader, narrations at timing noise ``noise_s``;
    with ``weight_noise_s`` each dict also carries its Stage 1 ``narration_weight``."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    csv = narrations_csv(folder, noise_s)
    ann, images = os.path.join(folder, "annotations"), os.path.join(folder, "images")

    def _load():
        dicts = load_epic_visor(ann, images, csv, dataset_name=name)
        if weight_noise_s is not None:
            attach_narration_weights(dicts, load_epic_narrations(csv), fps=50, noise_s=weight_noise_s)
        return dicts

    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, _load)
    set_wish_metadata(name, images, list(NOUNS), proposals_file=os.path.join(folder, "proposals.jsonl"),
                      split_dir=folder)


def _cfg(config_file: str, out: str, size: BenchmarkSize):
    from detectron2.config import get_cfg

    from .. import add_wish_config

    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list([
        "DATASETS.TRAIN", "('wish_video_train',)", "DATASETS.VAL", "('wish_video_val',)", "DATASETS.TEST", "()",
        "MODEL.WISH.STAGE1.MAX_ITER", str(size.stage1_iters), "MODEL.WISH.STAGE2.MAX_ITER", str(size.stage2_iters),
        "MODEL.WISH.CACHE.DIR", os.path.join(out, "cache"), "MODEL.WISH.HANDS.SOURCE", "dataset",
        "DATALOADER.NUM_WORKERS", "0", "SEED", str(size.seed), "OUTPUT_DIR", out,
    ])
    return cfg


def _videos(cfg, model, name: str) -> Dict[str, List]:
    """Per video, in time order: (dataset dict, record, contact logits, match logits)."""
    from ..engine.data import dataset_dicts
    from ..engine.pipeline import split_scores

    dicts = {str(d["image_id"]): d for d in dataset_dicts(name)}
    out: Dict[str, List] = {}
    for image_id, c, a, ov, hp, rec in split_scores(cfg, model, name):
        n = int(ov.sum())
        d = dicts[image_id]
        out.setdefault(d["video_id"], []).append((d, rec, c[:n].cpu(), a[:n].cpu()))
    for v in out:
        out[v].sort(key=lambda x: x[0]["frame"])
    return out


def _per_frame(frames, theta: float, rule: Dict):
    out = []
    for d, rec, c, a in frames:
        sel = select_in_hand(c, a, torch.ones(len(c), dtype=torch.bool), rec["hand_present"],
                             contact_threshold=theta, **rule)
        masks = decode_rles([rec["proposal_rles"][i] for i, _, _ in sel], rec["height"], rec["width"])
        out.append([(m, k, s) for m, (_, k, s) in zip(masks, sel)])
    return out


def _temporal(frames, theta: float, rule: Dict, params: TemporalParams):
    dec = TemporalDecoder(theta, params, both_rule=rule["both_rule"], null_class=rule["null_class"])
    return [dec.step(rec, c, a)["selection"] for d, rec, c, a in frames]


def _score(videos: Dict[str, List], selections: Dict[str, List], folder: str, fps: int) -> Dict[str, float]:
    acc = InHandIoU()
    timeline = held_timeline(folder)
    first = next(iter(videos.values()))[0][0]
    entities = VisorEntities(os.path.join(folder, "annotations"), first["height"], first["width"])
    switches = frames_total = 0
    for v, frames in videos.items():
        by_frame = {x["frame"]: x for x in timeline[v]}
        pred_ids, gt_ids = [[], []], [[], []]
        for (d, rec, _, _), sel in zip(frames, selections[v]):
            h, w = d["height"], d["width"]
            masks = torch.stack([m for m, _, _ in sel]) if sel else torch.zeros((0, h, w), dtype=torch.bool)
            acc.update(paint_label_map(masks, [k for _, k, _ in sel], [s for _, _, s in sel], h, w),
                       gt_label_map(d.get("annotations"), h, w))
            ids = hand_identities(sel, entities.masks(str(d["image_id"])) if sel else {})
            truth = by_frame[d["frame"]]
            for s, side in enumerate(("left", "right")):
                pred_ids[s].append(ids[s])
                gt_ids[s].append(truth[side])
        for s in (0, 1):
            switches += spurious_switches(pred_ids[s], gt_ids[s])
        frames_total += len(frames)
    m = acc.compute()
    # a class with neither ground truth nor prediction has no IoU (None), as in the frame metric
    return {"E-mIoU": m.get("E-mIoU"), "IoU_left": m.get("IoU_left"), "IoU_right": m.get("IoU_right"),
            "IoU_both": m.get("IoU_both"), "switches_per_min": switches_per_minute(switches, frames_total, fps)}


def _train(cfg, noise_s: float, folders: Dict[str, str], size: BenchmarkSize, out: str):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from ..engine.pipeline import run_pipeline

    register_video_split("wish_video_train", folders["train"], noise_s,
                         size.window_noise_s if size.window_noise_s > 0 else None)
    c = cfg.clone()
    c.defrost()
    c.OUTPUT_DIR = out
    c.freeze()
    run_pipeline(c)
    model = build_model(c)
    DetectionCheckpointer(model).load(os.path.join(out, "model_final.pth"))
    return model.eval()


def run_video_benchmark(output_dir: str, config_file: str, size: BenchmarkSize = BenchmarkSize(),
                        data_root: str = None) -> Dict:
    t_start = time.perf_counter()
    data_root = data_root or os.path.join(output_dir, "data")
    folders = {
        "train": ensure_video_split(data_root, size.seed, "train", size.train_videos, size.params,
                                    size.annotate_every),
        "val": ensure_video_split(data_root, size.seed, "val", size.val_videos, size.params),
        "test": ensure_video_split(data_root, size.seed, "test", size.test_videos, size.params),
    }
    t_data = time.perf_counter() - t_start
    register_video_split("wish_video_val", folders["val"], 0.0)
    register_video_split("wish_video_test", folders["test"], 0.0)
    cfg = _cfg(config_file, output_dir, size)
    fps = size.params.fps
    results: Dict = {"timing_noise": {}}
    calib = {}
    for noise in NOISE_LEVELS:
        key = f"{noise:g}s"
        model = _train(cfg, noise, folders, size, os.path.join(output_dir, f"noise_{key}"))
        heads = model.roi_heads
        theta = float(heads.contact_threshold)
        theta = theta if theta >= 0 else 0.5
        rule = heads.selection_rule()
        test = _videos(cfg, model, "wish_video_test")
        per_frame = _score(test, {v: _per_frame(f, theta, rule) for v, f in test.items()}, folders["test"], fps)
        results["timing_noise"][key] = per_frame["E-mIoU"]
        if noise == 0.0:
            val = _videos(cfg, model, "wish_video_val")
            grid = []
            for p in P_SWITCH_GRID:
                for ts in THETA_SCALE_GRID:
                    params = replace(TemporalParams(), p_switch=p, theta_scale=ts)
                    sel = {v: _temporal(f, theta, rule, params) for v, f in val.items()}
                    grid.append((_score(val, sel, folders["val"], fps), p, ts))
            best = max(grid, key=lambda g: g[0]["E-mIoU"] or 0.0)
            calib = {"p_switch": best[1], "theta_scale": best[2], "theta": theta,
                     "val_grid": [{"p_switch": p, "theta_scale": ts, **m} for m, p, ts in grid]}
            params = replace(TemporalParams(), p_switch=best[1], theta_scale=best[2])
            results["per_frame"] = per_frame
            results["temporal"] = _score(test, {v: _temporal(f, theta, rule, params) for v, f in test.items()},
                                         folders["test"], fps)
            results["calibration"] = calib
        # partial results after every noise level: a long run that is stopped still leaves its numbers
        write_json(results, os.path.join(output_dir, "video_results.partial.json"))
    results["calibration"] = calib
    results["setup"] = {"train_videos": size.train_videos, "val_videos": size.val_videos,
                        "test_videos": size.test_videos, "seconds": size.params.seconds, "fps": fps,
                        "image_size": list(size.params.image_size), "annotate_every": size.annotate_every,
                        "stage1_iters": size.stage1_iters, "stage2_iters": size.stage2_iters,
                        "window_noise_s": size.window_noise_s, "config": config_file,
                        "data_s": round(t_data, 1), "total_s": round(time.perf_counter() - t_start, 1)}
    write_json(results, os.path.join(output_dir, "video_results.json"))
    with open(os.path.join(output_dir, "results.md"), "w") as f:
        f.write(results_markdown(results))
    return results


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def results_markdown(r: Dict) -> str:
    keys = ("E-mIoU", "IoU_left", "IoU_right", "IoU_both", "switches_per_min")
    lines = ["# Video benchmark", "", "| inference | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for row in ("per_frame", "temporal"):
        if row in r:
            lines.append(f"| {row} | " + " | ".join(_num(r[row][k]) for k in keys) + " |")
    lines += ["", "| timing noise | " + " | ".join(r["timing_noise"]) + " |",
              "|---" * (len(r["timing_noise"]) + 1) + "|",
              "| E-mIoU (per frame) | " + " | ".join(_num(v) for v in r["timing_noise"].values()) + " |", ""]
    if "per_frame" in r and "temporal" in r:
        pf, tm, tn = r["per_frame"], r["temporal"], r["timing_noise"]
        lines += ["Targets:", "",
                  f"- temporal E-mIoU >= per-frame + 2: {tm['E-mIoU']:.2f} vs {pf['E-mIoU'] + 2:.2f} -> "
                  f"{'met' if tm['E-mIoU'] >= pf['E-mIoU'] + 2 else 'MISSED'}",
                  f"- temporal switches/min <= 0.5 x per-frame: {tm['switches_per_min']:.2f} vs "
                  f"{0.5 * pf['switches_per_min']:.2f} -> "
                  f"{'met' if tm['switches_per_min'] <= 0.5 * pf['switches_per_min'] else 'MISSED'}"]
        if "0s" in tn and "1s" in tn:
            lines.append(f"- E-mIoU at 1 s noise >= 90% of 0 s: {tn['1s']:.2f} vs {0.9 * tn['0s']:.2f} -> "
                         f"{'met' if tn['1s'] >= 0.9 * tn['0s'] else 'MISSED'}")
    lines += ["", f"Setup: {json.dumps(r.get('setup', {}))}", ""]
    return "\n".join(lines)
