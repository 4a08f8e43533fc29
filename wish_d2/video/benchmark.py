"""The video benchmark behind ``tools/video_benchmark.py`` (docs/VIDEO.md): synthetic egocentric videos in the real
formats, WISH trained on sparse frames with EPIC-style narrations at timing noise 0, 1 and 2 s (narration-window
weighting on; Stage 1 on touching pairs only and no both-hands rule, docs/VIDEO.md section 2), then per-frame
against temporal inference on dense test videos.

Every number is the mean over the training seeds (``BenchmarkSize.train_seeds``): with a small random-init model,
one training run's test E-mIoU moves by several points from seed to seed. The temporal settings are chosen on the
validation videos, per trained model, never on the test videos.
"""
import json
import logging
import os
import time
from dataclasses import replace
from typing import Dict, List, Optional, Sequence

import torch

from ..classes import SIDES
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
from .evaluation import VisorEntities, frame_conditions, hand_identities, spurious_switches, switches_per_minute
from .predictor import SMOOTHERS, TemporalDecoder, TemporalParams
from .window_weights import attach_narration_weights

logger = logging.getLogger(__name__)

__all__ = ["BenchmarkSize", "register_video_split", "SplitTruth", "calibrate_temporal", "run_video_benchmark",
           "results_markdown"]

METRIC_KEYS = ("E-mIoU", "IoU_left", "IoU_right", "IoU_both", "switches_per_min")
# the smoothers' validation grids; alpha 1 + margin 0 + motion_weight 0 (contact, evidence) and p_switch 0.5 (hmm)
# are the per-frame rule; co-motion (motion_weight, motion_memory) is searched with the contact smoother only
CONTACT_SMOOTHING = ((1.0, 0.0), (0.5, 0.0), (0.5, 0.1), (0.3, 0.0), (0.3, 0.1), (0.2, 0.0), (0.2, 0.1))
SMOOTHER_GRIDS = {
    "contact": tuple({"alpha": a, "margin": m, "motion_weight": w, "motion_memory": mem}
                     for w, mem in ((0.0, 0.0), (2.0, 0.5), (2.0, 0.8)) for a, m in CONTACT_SMOOTHING),
    "evidence": ({"propagate": "track", "alpha": 1.0, "margin": 0.0, "motion_weight": 0.0},) + tuple(
        {"propagate": p, "alpha": a, "margin": m, "motion_weight": 0.0} for p in ("track", "overlap")
        for a, m in ((0.7, 0.1), (0.5, 0.0), (0.5, 0.1), (0.35, 0.1))),
    "hmm": tuple({"p_switch": p, "motion_weight": 0.0} for p in (0.5, 0.2, 0.1, 0.05, 0.02, 0.01)),
}
THETA_SCALE_GRID = (0.8, 1.0, 1.25)
SWITCH_RATIO = 0.5  # the chosen setting must at least halve the per-frame rule's spurious switches on validation
NOISE_LEVELS = (0.0, 1.0, 2.0)


class BenchmarkSize:
    """Split sizes, training length and seeds: the defaults run in under 10 minutes on two CPU cores."""

    def __init__(self, train_videos=12, val_videos=8, test_videos=8, annotate_every=2, stage1_iters=500,
                 stage2_iters=300, seed=0, params: VideoParams = VideoParams(), window_noise_s=1.0,
                 train_seeds: Sequence[int] = (0, 1), smoother: str = SMOOTHERS[0], touching_pairs_only: bool = True,
                 both_rule: bool = False):
        self.train_videos, self.val_videos, self.test_videos = train_videos, val_videos, test_videos
        self.annotate_every = annotate_every
        self.stage1_iters, self.stage2_iters = stage1_iters, stage2_iters
        self.seed, self.params = seed, params  # seed: the videos' generator seed
        self.window_noise_s = window_noise_s  # the boundary noise the Stage 1 weights assume (window_weights.py)
        self.train_seeds = tuple(int(x) for x in train_seeds)  # one WISH training per seed and noise level
        if not self.train_seeds:
            raise ValueError("train_seeds must name at least one training seed")
        if smoother not in SMOOTHER_GRIDS:
            raise ValueError(f"smoother must be one of {sorted(SMOOTHER_GRIDS)}, got {smoother!r}")
        self.smoother = smoother
        # Stage 1 explains narrations through touching pairs only (MODEL.WISH.STAGE1.TOUCHING_PAIRS_ONLY): in videos
        # the whole frame predicts the narration, and a pair without contact carries the whole frame
        self.touching_pairs_only = bool(touching_pairs_only)
        # the both-hands rule of pseudo-labels and inference (MODEL.WISH.PSEUDO.BOTH_RULE): off, because in videos
        # the idle hand's best guess is usually the object the other hand holds (docs/VIDEO.md section 6)
        self.both_rule = bool(both_rule)


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


def _cfg(config_file: str, out: str, size: BenchmarkSize, train_seed: int):
    from detectron2.config import get_cfg

    from .. import add_wish_config
    from ..config_file import merge_config_file

    cfg = get_cfg()
    add_wish_config(cfg)
    merge_config_file(cfg, config_file, "--config-file")
    cfg.merge_from_list([
        "DATASETS.TRAIN", "('wish_video_train',)", "DATASETS.VAL", "('wish_video_val',)", "DATASETS.TEST", "()",
        "MODEL.WISH.STAGE1.MAX_ITER", str(size.stage1_iters), "MODEL.WISH.STAGE2.MAX_ITER", str(size.stage2_iters),
        "MODEL.WISH.CACHE.DIR", os.path.join(out, "cache"), "MODEL.WISH.HANDS.SOURCE", "dataset",
        "DATALOADER.NUM_WORKERS", "0", "SEED", str(train_seed), "OUTPUT_DIR", out,
        "MODEL.WISH.STAGE1.TOUCHING_PAIRS_ONLY", str(size.touching_pairs_only),
        "MODEL.WISH.PSEUDO.BOTH_RULE", str(size.both_rule),
    ])
    return cfg


def _videos(cfg, model, name: str) -> Dict[str, List]:
    """Per video, in time order: (dataset dict, record, contact logits, match logits)."""
    from ..engine.data import dataset_dicts
    from ..engine.scoring import split_scores

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


class SplitTruth:
    """A dense split's ground truth, prepared once and reused by every scoring of the split (the calibration grid
    scores the validation videos dozens of times): label maps, entity masks, held timeline, frame conditions."""

    def __init__(self, videos: Dict[str, List], folder: str, fps: int):
        self.fps = fps
        timeline = held_timeline(folder)
        first = next(iter(videos.values()))[0][0]
        self.entities = VisorEntities(os.path.join(folder, "annotations"), first["height"], first["width"])
        self._entity_masks: Dict[str, Dict] = {}
        self.gt_maps, self.held, self.conditions = {}, {}, {}
        for v, frames in videos.items():
            by_frame = {x["frame"]: x for x in timeline[v]}
            self.held[v] = [by_frame[d["frame"]] for d, _, _, _ in frames]
            self.conditions[v] = frame_conditions(self.held[v])
            self.gt_maps[v] = [gt_label_map(d.get("annotations"), d["height"], d["width"]) for d, _, _, _ in frames]

    def entity_masks(self, image_id: str) -> Dict:
        if image_id not in self._entity_masks:
            self._entity_masks[image_id] = self.entities.masks(image_id)
        return self._entity_masks[image_id]

    def score(self, videos: Dict[str, List], selections: Dict[str, List], by_condition: bool = False) -> Dict:
        """``{E-mIoU, IoU_left, IoU_right, IoU_both, switches_per_min}`` (a class with neither ground truth nor
        prediction has no IoU: None, as in the frame metric); with ``by_condition`` also ``conditions``:
        ``{steady, near_change, handover: {frames, E-mIoU}}``."""
        acc, per_condition, counts = InHandIoU(), {}, {}
        switches = frames_total = 0
        for v, frames in videos.items():
            pred_ids = [[], []]
            for t, ((d, _, _, _), sel) in enumerate(zip(frames, selections[v])):
                h, w = d["height"], d["width"]
                masks = torch.stack([m for m, _, _ in sel]) if sel else torch.zeros((0, h, w), dtype=torch.bool)
                pred_map = paint_label_map(masks, [k for _, k, _ in sel], [s for _, _, s in sel], h, w)
                acc.update(pred_map, self.gt_maps[v][t])
                if by_condition:
                    for kind in self.conditions[v][t]:
                        per_condition.setdefault(kind, InHandIoU()).update(pred_map, self.gt_maps[v][t])
                        counts[kind] = counts.get(kind, 0) + 1
                ids = hand_identities(sel, self.entity_masks(str(d["image_id"])) if sel else {})
                for s in (0, 1):
                    pred_ids[s].append(ids[s])
            for s, side in enumerate(SIDES):
                switches += spurious_switches(pred_ids[s], [x[side] for x in self.held[v]])
            frames_total += len(frames)
        m = acc.compute()
        out = {k: m.get(k) for k in METRIC_KEYS[:4]}
        out["switches_per_min"] = switches_per_minute(switches, frames_total, self.fps)
        if by_condition:
            out["conditions"] = {k: {"frames": counts[k], "E-mIoU": per_condition[k].compute().get("E-mIoU")}
                                 for k in ("steady", "near_change", "handover") if k in counts}
        return out


def calibrate_temporal(val: Dict[str, List], truth: SplitTruth, theta: float, rule: Dict,
                       smoother: str = SMOOTHERS[0]) -> Dict:
    """Choose the smoother's settings and ``theta_scale`` on the validation videos: the best E-mIoU among the
    settings that cut the per-frame rule's spurious switches at least by ``SWITCH_RATIO``, unless that best falls
    below the per-frame rule's E-mIoU; then the best E-mIoU of the whole grid (which holds the per-frame rule).
    Returns the choice, the per-frame and chosen temporal validation metrics, and the grid."""
    per_frame = truth.score(val, {v: _per_frame(f, theta, rule) for v, f in val.items()})
    grid = []
    for knobs in SMOOTHER_GRIDS[smoother]:
        for ts in THETA_SCALE_GRID:
            params = replace(TemporalParams(), smoother=smoother, theta_scale=ts, **knobs)
            m = truth.score(val, {v: _temporal(f, theta, rule, params) for v, f in val.items()})
            grid.append({**knobs, "theta_scale": ts, **m})
    score = lambda g: g["E-mIoU"] or 0.0  # noqa: E731
    halving = [g for g in grid if g["switches_per_min"] <= SWITCH_RATIO * per_frame["switches_per_min"]]
    best = max(halving, key=score) if halving else None
    if best is None or score(best) < (per_frame["E-mIoU"] or 0.0):  # never trade validation E-mIoU for switches
        best = max(grid, key=score)
    knobs = {k: best[k] for k in SMOOTHER_GRIDS[smoother][0]}
    return {"smoother": smoother, **knobs, "theta_scale": best["theta_scale"], "theta": theta,
            "val_per_frame": per_frame, "val_temporal": {k: best[k] for k in METRIC_KEYS}, "val_grid": grid}


def _train(cfg, noise_s: float, folders: Dict[str, str], size: BenchmarkSize, out: str):
    from detectron2.modeling import build_model

    from ..engine.pipeline import run_pipeline
    from ..modeling.checkpointer import SafeDetectionCheckpointer

    register_video_split("wish_video_train", folders["train"], noise_s,
                         size.window_noise_s if size.window_noise_s > 0 else None)
    c = cfg.clone()
    c.defrost()
    c.OUTPUT_DIR = out
    c.freeze()
    run_pipeline(c)
    model = build_model(c)
    SafeDetectionCheckpointer(model).load(os.path.join(out, "model_final.pth"))
    return model.eval()


def _mean(rows: List[Dict]) -> Dict:
    """Key-wise mean of metric dicts (None values left out; None when every row has None)."""
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows if r.get(k) is not None]
        out[k] = sum(vals) / len(vals) if vals else None
    return out


def _mean_conditions(rows: List[Dict]) -> Dict:
    kinds = rows[0]["conditions"]
    return {k: {"frames": kinds[k]["frames"], **_mean([{"E-mIoU": r["conditions"][k]["E-mIoU"]} for r in rows])}
            for k in kinds}


def run_video_benchmark(output_dir: str, config_file: str, size: BenchmarkSize = BenchmarkSize(),
                        data_root: Optional[str] = None) -> Dict:
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
    fps = size.params.fps
    truth: Dict[str, SplitTruth] = {}
    runs, results = [], {}
    for seed in size.train_seeds:
        cfg = _cfg(config_file, output_dir, size, seed)
        run = {"train_seed": seed, "timing_noise": {}}
        for noise in NOISE_LEVELS:
            key = f"{noise:g}s"
            t0 = time.perf_counter()
            model = _train(cfg, noise, folders, size, os.path.join(output_dir, f"seed{seed}", f"noise_{key}"))
            heads = model.roi_heads
            theta = float(heads.contact_threshold)
            theta = theta if theta >= 0 else 0.5
            rule = heads.selection_rule()
            test = _videos(cfg, model, "wish_video_test")
            truth.setdefault("test", SplitTruth(test, folders["test"], fps))
            per_frame = truth["test"].score(test, {v: _per_frame(f, theta, rule) for v, f in test.items()},
                                            by_condition=noise == 0.0)
            run["timing_noise"][key] = per_frame["E-mIoU"]
            run.setdefault("theta", {})[key] = theta
            if noise == 0.0:
                val = _videos(cfg, model, "wish_video_val")
                truth.setdefault("val", SplitTruth(val, folders["val"], fps))
                calib = calibrate_temporal(val, truth["val"], theta, rule, size.smoother)
                params = replace(TemporalParams(), smoother=size.smoother, theta_scale=calib["theta_scale"],
                                 **{k: calib[k] for k in SMOOTHER_GRIDS[size.smoother][0]})
                run["per_frame"] = per_frame
                run["temporal"] = truth["test"].score(
                    test, {v: _temporal(f, theta, rule, params) for v, f in test.items()}, by_condition=True)
                run["calibration"] = calib
            run.setdefault("seconds", {})[key] = round(time.perf_counter() - t0, 1)
            # partial results after every model: a long run that is stopped still leaves its numbers
            write_json({"runs": runs + [run]}, os.path.join(output_dir, "video_results.partial.json"))
        runs.append(run)
    for row in ("per_frame", "temporal"):
        results[row] = _mean([{k: r[row][k] for k in METRIC_KEYS} for r in runs])
    results["timing_noise"] = _mean([r["timing_noise"] for r in runs])
    results["validation"] = {row: _mean([r["calibration"][f"val_{row}"] for r in runs])
                             for row in ("per_frame", "temporal")}
    results["conditions"] = {row: _mean_conditions([r[row] for r in runs]) for row in ("per_frame", "temporal")}
    results["calibration"] = [{k: r["calibration"][k] for k in r["calibration"] if not k.startswith("val_")}
                              for r in runs]
    results["runs"] = [{k: v for k, v in r.items() if k != "calibration"} for r in runs]
    results["setup"] = {"train_videos": size.train_videos, "val_videos": size.val_videos,
                        "test_videos": size.test_videos, "seconds": size.params.seconds, "fps": fps,
                        "image_size": list(size.params.image_size), "annotate_every": size.annotate_every,
                        "stage1_iters": size.stage1_iters, "stage2_iters": size.stage2_iters,
                        "train_seeds": list(size.train_seeds), "video_seed": size.seed, "smoother": size.smoother,
                        "touching_pairs_only": size.touching_pairs_only, "both_rule": size.both_rule,
                        "window_noise_s": size.window_noise_s, "config": config_file,
                        "torch_threads": torch.get_num_threads(), "data_s": round(t_data, 1),
                        "total_s": round(time.perf_counter() - t_start, 1)}
    write_json(results, os.path.join(output_dir, "video_results.json"))
    with open(os.path.join(output_dir, "results.md"), "w") as f:
        f.write(results_markdown(results))
    return results


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def results_markdown(r: Dict) -> str:
    seeds = r.get("setup", {}).get("train_seeds", [])
    lines = ["# Video benchmark", "", f"Test videos; mean over training seeds {seeds}.", "",
             "| inference | " + " | ".join(METRIC_KEYS) + " |", "|---" * (len(METRIC_KEYS) + 1) + "|"]
    for row in ("per_frame", "temporal"):
        if row in r:
            lines.append(f"| {row} | " + " | ".join(_num(r[row][k]) for k in METRIC_KEYS) + " |")
    if "validation" in r:
        lines += ["", "Validation videos (the temporal settings were chosen here):", "",
                  "| inference | E-mIoU | switches_per_min |", "|---|---|---|"]
        for row in ("per_frame", "temporal"):
            lines.append(f"| {row} | {_num(r['validation'][row]['E-mIoU'])} | "
                         f"{_num(r['validation'][row]['switches_per_min'])} |")
    if "conditions" in r:
        kinds = list(r["conditions"]["per_frame"])
        lines += ["", "Test E-mIoU by kind of frame (near_change: within 3 frames of a true change of a hand's "
                  "held object; handover: both hands hold one object):", "",
                  "| inference | " + " | ".join(f"{k} ({r['conditions']['per_frame'][k]['frames']} frames)"
                                               for k in kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
        for row in ("per_frame", "temporal"):
            lines.append(f"| {row} | " + " | ".join(_num(r["conditions"][row][k]["E-mIoU"]) for k in kinds) + " |")
    tn = r["timing_noise"]
    lines += ["", "| timing noise | " + " | ".join(tn) + " |", "|---" * (len(tn) + 1) + "|",
              "| E-mIoU (per frame) | " + " | ".join(_num(v) for v in tn.values()) + " |"]
    for run in r.get("runs", []):
        lines.append(f"| seed {run['train_seed']} | " + " | ".join(_num(run["timing_noise"][k]) for k in tn) + " |")
    lines.append("")
    if "per_frame" in r and "temporal" in r:
        pf, tm = r["per_frame"], r["temporal"]
        lines += ["Targets:", "",
                  f"- temporal E-mIoU >= per-frame + 2: {_num(tm['E-mIoU'])} vs {_num((pf['E-mIoU'] or 0) + 2)} -> "
                  f"{_met((tm['E-mIoU'] or 0) >= (pf['E-mIoU'] or 0) + 2)}",
                  f"- temporal switches/min <= 0.5 x per-frame: {_num(tm['switches_per_min'])} vs "
                  f"{_num(0.5 * pf['switches_per_min'])} -> "
                  f"{_met(tm['switches_per_min'] <= 0.5 * pf['switches_per_min'])}"]
        if tn.get("0s") is not None and tn.get("1s") is not None:
            lines.append(f"- E-mIoU at 1 s noise >= 90% of 0 s: {_num(tn['1s'])} vs {_num(0.9 * tn['0s'])} -> "
                         f"{_met(tn['1s'] >= 0.9 * tn['0s'])}")
    lines += ["", f"Setup: {json.dumps(r.get('setup', {}))}", ""]
    return "\n".join(lines)
