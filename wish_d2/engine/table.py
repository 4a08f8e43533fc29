"""The paper-style comparison: every method on the same data and cached features, for one or more seeds.

Output layout of ``run_table(cfg, DIR, seeds)``::

    DIR/results.json, DIR/results.md          the table (means over seeds, and per seed)
    DIR/results_partial.json                  the seeds finished so far, what ``--resume`` continues from
    DIR/seed<k>/cache/                        the feature cache every row of seed k reads (unless
                                              MODEL.WISH.CACHE.DIR names one)
    DIR/seed<k>/<row>/metrics.json            the row's full test metrics (in-hand IoUs, COCO segm AP)
    DIR/seed<k>/<row>/inference/<test>/       its predictions: inhand_predictions_coco.json (COCO results),
                                              the COCO ground truth they re-score against (<test>_coco_format.json),
                                              and what Detectron2's COCOEvaluator writes
    DIR/seed<k>/wish/{stage1,stage2}/         WISH's training runs (the rows read off WISH load its model_final.pth)
    DIR/seed<k>/<ablation>/{stage1,stage2}/   the training runs of the rows that train their own pipeline
"""
import hashlib
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..data.common import DataFormatError
from ..modeling.meta_arch import selections_to_instances
from ..pretrain.zero_shot import encoder_report
from ..utils.atomic import atomic_path, write_json
from ..utils.sources import IMPORTED_SOURCES, check_same_sources, same_sources_in_workers
from .calibration import calibrate_contact_threshold
from .data import cache_root, dataset_dicts, ensure_feature_cache, iterate_cached
from .pipeline import evaluate, run_pipeline, stage_cfg
from .scoring import pseudo_selection, unwrap_model
from .trainer import WISHTrainer

logger = logging.getLogger(__name__)

# Rows read off the one trained WISH model: row -> the inference method of ``WISHROIHeads.inference``
# (``None``: Stage 1's pseudo-labels on the test split, a reference that reads the test narrations).
FROM_WISH = {
    "wish": "wish",
    "wish_matching_only": "matching_only",
    "wish_contactness_only": "contactness_only",
    "pseudo_labels": None,
    "nearest_to_hand": "nearest_to_hand",
    "clip_zero_shot": "clip_zero_shot",
    "open_vocab": "open_vocab",
}
# Rows that train their own pipeline (same data and feature cache, other options).
ABLATIONS = {
    "supervised": ("MODEL.WISH.SUPERVISION", "gt", "MODEL.WISH.STAGE", "stage2"),
    "wish_geometry_only": ("MODEL.WISH.USE_VISUAL", "False"),
    "wish_visual_only": ("MODEL.WISH.USE_GEOMETRY", "False"),
}
# Rows run only when asked for (--methods): settings compared against the default, same data and cache.
OPTIONAL_ROWS = {
    "wish_stage1_paper": ("MODEL.WISH.STAGE1.PAIR_VISUAL", "all"),  # Stage 1 reads [v_i ; v_s ; u] as the paper does
    "wish_label_free": ("MODEL.WISH.CALIBRATION", "label_free"),  # thresholds without any pixel label
    "wish_multi": ("MODEL.WISH.MAX_OBJECTS_PER_HAND", "2"),  # up to two objects per hand (multi-grip worlds)
}
ABLATIONS.update(OPTIONAL_ROWS)
# Every row of the table, in the order it is printed; DEFAULT_ROWS: the rows run when none are named.
TABLE_ROWS = tuple(FROM_WISH) + tuple(ABLATIONS)
DEFAULT_ROWS = tuple(m for m in TABLE_ROWS if m not in OPTIONAL_ROWS)
KEYS = ("E-mIoU", "IoU_left", "IoU_right", "IoU_both", "AP")
METRICS_FILE = "metrics.json"  # each row's full metrics, in the row's folder


def _metrics(res: Dict) -> Dict[str, float]:
    inhand = res.get("inhand", res)
    out = {k: float(inhand[k]) for k in KEYS[:4] if inhand.get(k) is not None}
    if "segm" in res:
        out["AP"] = float(res["segm"]["AP"])
    return out


def _with(cfg, output_dir: str, *opts):
    c = cfg.clone()
    c.defrost()
    c.OUTPUT_DIR = output_dir
    c.merge_from_list(list(opts))
    c.freeze()
    return c


class MethodView(nn.Module):
    """A trained WISH model that infers with another method (and contact threshold), for Detectron2's
    ``inference_on_dataset``; the model itself is not modified."""

    def __init__(self, model, method: str, contact_threshold: Optional[float] = None):
        super().__init__()
        self.model = unwrap_model(model)
        self.method = method
        # held as the model's float32 threshold buffer would hold it, so a calibrated value acts identically
        self.contact_threshold = None if contact_threshold is None else float(torch.tensor(contact_threshold))

    def forward(self, batched_inputs):
        return self.model(batched_inputs, method=self.method, contact_threshold=self.contact_threshold)


def _evaluate_row(cfg, model, method: str, threshold: Optional[float] = None) -> Dict:
    """Test metrics of one inference method; predictions, COCO export and metrics land in ``cfg.OUTPUT_DIR``."""
    res = evaluate(cfg, MethodView(model, method, threshold))
    write_json(res, os.path.join(cfg.OUTPUT_DIR, METRICS_FILE))
    return _metrics(res)


@torch.no_grad()
def _eval_pseudo_labels(cfg, model, name: str) -> Dict:
    """Stage 1 pseudo-labels on the test split: they read the test narrations, so a reference, not a rival."""
    evaluator = WISHTrainer.build_evaluator(cfg, name)
    evaluator.reset()
    m = unwrap_model(model)
    m.eval()
    for batch in iterate_cached(cfg, name, model):
        outputs = [{"instances": selections_to_instances(pseudo_selection(lab), x["wish_features"])}
                   for x, lab in zip(batch, m.pseudo_label(batch))]
        evaluator.process(batch, outputs)
    res = evaluator.evaluate()
    write_json(res, os.path.join(cfg.OUTPUT_DIR, METRICS_FILE))
    return _metrics(res)


def _wish_and_baselines(cfg, out: str, methods: Sequence[str]) -> Dict[str, Dict]:
    """WISH's pipeline, then every row that reads its model, its features or its Stage 1, each evaluated into
    its own folder ``out/<row>``."""
    from detectron2.modeling import build_model

    from ..modeling.checkpointer import SafeDetectionCheckpointer

    res = {}
    c = _with(cfg, os.path.join(out, "wish"))
    report = run_pipeline(c)
    model = build_model(c)
    SafeDetectionCheckpointer(model).load(os.path.join(c.OUTPUT_DIR, "model_final.pth"))
    res["wish"] = _metrics(report)
    for row, method in FROM_WISH.items():
        if row == "wish" or row not in methods:
            continue
        rc = _with(c, os.path.join(out, row))
        if method is None:
            # the pipeline's Stage 1 model is in the loaded checkpoint (its heads and calibrated threshold)
            res[row] = _eval_pseudo_labels(stage_cfg(rc, "stage1", rc.OUTPUT_DIR), model, cfg.DATASETS.TEST[0])
            if "pseudo_labels_train" in report:
                res[row]["train_E-mIoU"] = float(report["pseudo_labels_train"]["E-mIoU"])
        elif method == "contactness_only":
            # its own threshold: WISH's was calibrated for the fused score
            theta = calibrate_contact_threshold(c, model, cfg.DATASETS.VAL[0], method=method)
            res[row] = _evaluate_row(rc, model, method, theta)
        else:
            res[row] = _evaluate_row(rc, model, method)
    return res


def _run_group(cfg, out: str, group: str, methods: Sequence[str]):
    """One independent training run of the table: ``(results by method, seconds)``."""
    t0 = time.perf_counter()
    if group == "wish":
        res = _wish_and_baselines(cfg, out, methods)
    else:
        res = {group: _metrics(run_pipeline(_with(cfg, os.path.join(out, group), *ABLATIONS[group])))}
    return res, time.perf_counter() - t0


def _init_worker(threads: int, register: Optional[Callable], cfg, sources: str) -> None:
    """A fresh (spawned) worker: the parent's code (``sources``, its fingerprint), logging, its share of the cores,
    and the datasets the parent registered."""
    from detectron2.utils.logger import setup_logger

    check_same_sources(sources)
    setup_logger(name="wish_d2")
    setup_logger(name="detectron2", abbrev_name="d2")
    logging.getLogger("fvcore").setLevel(logging.WARNING)
    torch.set_num_threads(threads)
    if register is not None:
        register(cfg)


def run_seed(cfg, out: str, methods: Sequence[str], jobs: int = 1, register: Optional[Callable] = None
             ) -> Dict[str, Dict]:
    """Every method of one seed. The feature cache is built first; the independent training runs (WISH and its
    read-off baselines, then each ablation) then go to ``jobs`` worker processes, each with its share of the cores.
    Every stage seeds itself and every row reads the one cache, so the numbers do not depend on ``jobs`` beyond
    the float summation order of the thread count each process gets."""
    # every row of the seed reads this one cache, wherever its own output folder is
    cfg = _with(cfg, cfg.OUTPUT_DIR, "MODEL.WISH.CACHE.DIR", cache_root(cfg))
    for name in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.VAL) + list(cfg.DATASETS.TEST):
        ensure_feature_cache(cfg, name)
    groups = (["wish"] if any(m in FROM_WISH for m in methods) else []) + [m for m in ABLATIONS if m in methods]
    jobs = max(1, min(int(jobs), len(groups)))
    if jobs == 1:
        done = [_run_group(cfg, out, g, methods) for g in groups]
    else:
        threads = max(1, torch.get_num_threads() // jobs)
        ctx = multiprocessing.get_context("spawn")
        # the workers import the package from disk again: it must still be the code this run started with
        init = (threads, register, cfg, IMPORTED_SOURCES)
        with same_sources_in_workers(), ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                                            initargs=init) as pool:
            done = [f.result() for f in [pool.submit(_run_group, cfg, out, g, methods) for g in groups]]
    res, times = {}, {}
    for g, (r, seconds) in zip(groups, done):
        res.update(r)
        times[f"{g}_s" if g != "wish" else "wish_and_baselines_s"] = seconds
    res = {m: res[m] for m in methods if m in res}
    add_subsets(cfg, out, res)
    res["_timings"] = times
    encoder = encoder_report(cfg)  # after every row, so it cannot touch their random streams
    if encoder is not None:
        res["encoder"] = encoder
    return res


def add_subsets(cfg, out: str, res: Dict[str, Dict]) -> None:
    """On a test split with multi-object frames, each row gains ``"subsets": {"single": {...}, "multi": {...}}``
    (:mod:`wish_d2.evaluation.subsets`) from its predictions export; other splits are left as they are."""
    from ..evaluation.inhand_evaluator import PREDICTIONS_FILE
    from ..evaluation.subsets import has_multi_object_frames, subset_metrics

    test = cfg.DATASETS.TEST[0]
    dicts = dataset_dicts(test)
    if not has_multi_object_frames(dicts):
        return
    for row, metrics in res.items():
        path = os.path.join(out, row, "inference", test, PREDICTIONS_FILE)
        if os.path.isfile(path):
            with open(path) as f:
                metrics["subsets"] = subset_metrics(json.load(f), dicts)


def _mean_rows(rows):
    """Means over seeds of each metric, and of each subset's metrics."""
    out = {k: float(np.mean([r[k] for r in rows if k in r])) for k in rows[0] if k != "subsets"}
    if all("subsets" in r for r in rows):
        out["subsets"] = {s: {k: float(np.mean([r["subsets"][s][k] for r in rows if k in r["subsets"][s]]))
                              for k in rows[0]["subsets"][s]} for s in rows[0]["subsets"]}
    return out


PARTIAL_FILE = "results_partial.json"


def run_fingerprint(cfg, methods: Sequence[str], train_seed: Optional[int]) -> str:
    """What a seed's results depend on: the config (but its output folder), the rows, the training seed and the
    ``wish_d2`` sources this process imported (so a resumed table never mixes seeds of two versions of the code)."""
    c = cfg.clone()
    c.defrost()
    c.OUTPUT_DIR = ""
    text = json.dumps({"config": c.dump(), "methods": list(methods), "train_seed": train_seed,
                       "sources": IMPORTED_SOURCES}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def finished_seeds(path: str, fingerprint: str) -> Dict[int, Dict]:
    """The per-seed results an interrupted run left in ``path`` (``{}`` when there is none). A file written by a
    different command (config, rows, training seed or sources) is refused rather than mixed in."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            partial = json.load(f)
        per_seed = {int(k): v for k, v in partial["per_seed"].items()}
        stored = partial.get("fingerprint")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataFormatError(f"{path}: cannot resume from it ({type(e).__name__}: {e}); delete it or drop --resume")
    if stored != fingerprint:
        raise DataFormatError(f"{path} was written by a different command (config, --methods, --train-seed or the "
                              "wish_d2 sources differ); delete it, use another --output-dir, or drop --resume")
    return per_seed


def run_table(cfg, output_dir: str, seeds: Sequence[int], methods: Optional[Sequence[str]] = None,
              register: Optional[Callable] = None, jobs: int = 1, train_seed: Optional[int] = None,
              resume: bool = False) -> Dict:
    """Every method for every seed; ``register(cfg)`` registers a seed's datasets. A seed is the data seed and, unless
    ``train_seed`` is given, also the training seed (``SEED``): fixing the data and changing ``train_seed`` measures
    how much one dataset's numbers move with training randomness alone.

    After each seed the results so far go to ``DIR/results_partial.json`` with a fingerprint of the command; with
    ``resume`` the seeds finished there by the same command are taken as they are and only the others run."""
    methods = list(methods or DEFAULT_ROWS)
    unknown = set(methods) - set(TABLE_ROWS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {TABLE_ROWS}")
    fingerprint = run_fingerprint(cfg, methods, train_seed)
    partial_path = os.path.join(output_dir, PARTIAL_FILE)
    done = finished_seeds(partial_path, fingerprint) if resume else {}
    per_seed = {}
    for seed in seeds:
        if seed in done:
            logger.info(f"seed {seed}: its results are taken from {partial_path} (--resume)")
            per_seed[seed] = done[seed]
            continue
        out = os.path.join(output_dir, f"seed{seed}")
        # all methods of a seed share one feature cache (its key still separates feature-changing configs)
        c = _with(cfg, out, "DATASETS.SYNTHETIC.SEED", str(seed),
                  "SEED", str(seed if train_seed is None else train_seed),
                  "MODEL.WISH.CACHE.DIR", cfg.MODEL.WISH.CACHE.DIR or os.path.join(out, "cache"))
        if register is not None:
            register(c)
        per_seed[seed] = run_seed(c, c.OUTPUT_DIR, methods, jobs, register)
        write_json({"fingerprint": fingerprint, "per_seed": {**done, **per_seed}}, partial_path)
    results = {}
    for m in methods:
        rows = [per_seed[s][m] for s in seeds if m in per_seed[s]]
        if rows:
            results[m] = _mean_rows(rows)
    top1 = [per_seed[s]["encoder"]["zero_shot_top1"] for s in seeds if per_seed[s].get("encoder")]
    if top1 and all(t is not None for t in top1):
        results["encoder"] = {"zero_shot_top1": float(np.mean(top1))}
    results["seeds"] = list(seeds)
    if train_seed is not None:
        results["train_seed"] = int(train_seed)
    results["per_seed"] = per_seed
    write_json(results, os.path.join(output_dir, "results.json"))
    with atomic_path(os.path.join(output_dir, "results.md")) as tmp, open(tmp, "w") as f:
        f.write(format_table(results) + "\n")
    return results


def format_table(results: Dict) -> str:
    sup = results.get("supervised", {}).get("E-mIoU")
    seeds = results.get("seeds", [])
    lines = [f"Methods on the test split, mean over seeds {seeds}" if len(seeds) > 1 else
             f"Methods on the test split (seed {seeds[0] if seeds else '?'})", "",
             *([f"Training seed {results['train_seed']} for every data seed", ""] if "train_seed" in results else []),
             "| method | E-mIoU | IoU left | IoU right | IoU both | mask AP | % of supervised |",
             "|---|---|---|---|---|---|---|"]
    for m in TABLE_ROWS:
        if m not in results:
            continue
        r = results[m]
        pct = f"{100 * r['E-mIoU'] / sup:.0f}%" if sup else "-"
        cells = [f"{r[k]:.1f}" if k in r else "-" for k in KEYS]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {pct} |")
    subsets = [m for m in TABLE_ROWS if "subsets" in results.get(m, {})]
    if subsets:
        lines += ["", "E-mIoU by frame subset (single: every hand holds at most one object; multi: a hand holds two):",
                  "", "| method | all frames | single-object frames | multi-object frames |", "|---|---|---|---|"]
        for m in subsets:
            sub = results[m]["subsets"]
            cells = [results[m].get("E-mIoU")] + [sub[s].get("E-mIoU") for s in ("single", "multi")]
            lines.append(f"| {m} | " + " | ".join("-" if v is None else f"{v:.1f}" for v in cells) + " |")
    if len(seeds) > 1:
        lines += ["", "Per seed E-mIoU:", "",
                  "| method | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                  "|---|" + "---|" * len(seeds)]
        for m in TABLE_ROWS:
            if m in results:
                vals = [results["per_seed"][s].get(m, {}).get("E-mIoU") for s in seeds]
                lines.append(f"| {m} | " + " | ".join("-" if v is None else f"{v:.1f}" for v in vals) + " |")
    return "\n".join(lines)
