"""The paper-style comparison: every method on the same data and cached features, for one or more seeds."""
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch

from ..evaluation.inhand_evaluator import InHandEvaluator
from ..modeling.meta_arch import selections_to_instances
from ..utils.atomic import write_json
from .data import ensure_feature_cache, iterate_cached
from .pipeline import (_unwrap, calibrate_contact_threshold, evaluate, pseudo_selection, run_pipeline,
                       stage_cfg)

logger = logging.getLogger(__name__)

METHODS = ("wish", "wish_matching_only", "wish_contactness_only", "pseudo_labels", "nearest_to_hand",
           "clip_zero_shot", "supervised", "wish_geometry_only", "wish_visual_only")
KEYS = ("E-mIoU", "IoU_left", "IoU_right", "IoU_both", "AP")


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


def _eval_as(cfg, model, method: str, threshold: Optional[float] = None) -> Dict:
    heads = _unwrap(model).roi_heads
    old = (heads.method, float(heads.contact_threshold))
    heads.method = method
    if threshold is not None:
        heads.contact_threshold.fill_(threshold)
    try:
        return _metrics(evaluate(cfg, model))
    finally:
        heads.method = old[0]
        heads.contact_threshold.fill_(old[1])


@torch.no_grad()
def _eval_pseudo_labels(cfg, model, name: str) -> Dict:
    """Stage 1 pseudo-labels on the test split: they read the test narrations, so a reference, not a rival."""
    evaluator = InHandEvaluator(name, output_dir=os.path.join(cfg.OUTPUT_DIR, "inference_pseudo", name))
    evaluator.reset()
    m = _unwrap(model)
    m.eval()
    for batch in iterate_cached(cfg, name, model):
        outputs = [{"instances": selections_to_instances(pseudo_selection(lab), x["wish_features"])}
                   for x, lab in zip(batch, m.pseudo_label(batch))]
        evaluator.process(batch, outputs)
    return _metrics(evaluator.evaluate())


# Methods that train their own pipeline (same data and feature cache, other options).
ABLATIONS = {
    "supervised": ("MODEL.WISH.SUPERVISION", "gt", "MODEL.WISH.STAGE", "stage2"),
    "wish_geometry_only": ("MODEL.WISH.USE_VISUAL", "False"),
    "wish_visual_only": ("MODEL.WISH.USE_GEOMETRY", "False"),
}
# Methods read off the trained WISH model.
FROM_WISH = ("wish", "wish_matching_only", "wish_contactness_only", "pseudo_labels", "nearest_to_hand",
             "clip_zero_shot")


def _wish_and_baselines(cfg, out: str, methods: Sequence[str]) -> Dict[str, Dict]:
    """WISH's pipeline, then every method that reads its model, its features or its Stage 1."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    res = {}
    c = _with(cfg, os.path.join(out, "wish"))
    report = run_pipeline(c)
    model = build_model(c)
    DetectionCheckpointer(model).load(os.path.join(c.OUTPUT_DIR, "model_final.pth"))
    res["wish"] = _metrics(report)
    if "wish_matching_only" in methods:
        res["wish_matching_only"] = _eval_as(c, model, "matching_only")
    if "wish_contactness_only" in methods:
        theta = calibrate_contact_threshold(c, model, cfg.DATASETS.VAL[0], method="contactness_only")
        res["wish_contactness_only"] = _eval_as(c, model, "contactness_only", theta)
    for baseline in ("nearest_to_hand", "clip_zero_shot"):
        if baseline in methods:
            res[baseline] = _eval_as(c, model, baseline)
    if "pseudo_labels" in methods:
        c1 = stage_cfg(c, "stage1", os.path.join(c.OUTPUT_DIR, "stage1"))
        res["pseudo_labels"] = _eval_pseudo_labels(c1, model, cfg.DATASETS.TEST[0])
        if "pseudo_labels_train" in report:
            res["pseudo_labels"]["train_E-mIoU"] = float(report["pseudo_labels_train"]["E-mIoU"])
    return res


def _run_group(cfg, out: str, group: str, methods: Sequence[str]):
    """One independent training run of the table: ``(results by method, seconds)``."""
    t0 = time.perf_counter()
    if group == "wish":
        res = _wish_and_baselines(cfg, out, methods)
    else:
        res = {group: _metrics(run_pipeline(_with(cfg, os.path.join(out, group), *ABLATIONS[group])))}
    return res, time.perf_counter() - t0


def _init_worker(threads: int, register: Optional[Callable], cfg) -> None:
    """A fresh (spawned) worker: logging, its share of the cores, and the datasets the parent registered."""
    from detectron2.utils.logger import setup_logger

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
    Every stage seeds itself, so the numbers do not depend on ``jobs`` beyond float summation order."""
    for name in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.VAL) + list(cfg.DATASETS.TEST):
        ensure_feature_cache(cfg, name)
    groups = (["wish"] if set(FROM_WISH) & set(methods) else []) + [m for m in ABLATIONS if m in methods]
    jobs = max(1, min(int(jobs), len(groups)))
    if jobs == 1:
        done = [_run_group(cfg, out, g, methods) for g in groups]
    else:
        threads = max(1, torch.get_num_threads() // jobs)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(threads, register, cfg)) as pool:
            done = [f.result() for f in [pool.submit(_run_group, cfg, out, g, methods) for g in groups]]
    res, times = {}, {}
    for g, (r, seconds) in zip(groups, done):
        res.update(r)
        times[f"{g}_s" if g != "wish" else "wish_and_baselines_s"] = seconds
    res = {m: res[m] for m in methods if m in res}
    res["_timings"] = times
    return res


def run_table(cfg, output_dir: str, seeds: Sequence[int], methods: Optional[Sequence[str]] = None,
              register: Optional[Callable] = None, jobs: int = 1, train_seed: Optional[int] = None) -> Dict:
    """Every method for every seed; ``register(cfg)`` registers a seed's datasets. A seed is the data seed and, unless
    ``train_seed`` is given, also the training seed (``SEED``): fixing the data and changing ``train_seed`` measures
    how much one dataset's numbers move with training randomness alone."""
    methods = list(methods or METHODS)
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    per_seed = {}
    for seed in seeds:
        out = os.path.join(output_dir, f"seed{seed}")
        # all methods of a seed share one feature cache (its key still separates feature-changing configs)
        c = _with(cfg, out, "DATASETS.SYNTHETIC.SEED", str(seed),
                  "SEED", str(seed if train_seed is None else train_seed),
                  "MODEL.WISH.CACHE.DIR", cfg.MODEL.WISH.CACHE.DIR or os.path.join(out, "cache"))
        if register is not None:
            register(c)
        per_seed[seed] = run_seed(c, c.OUTPUT_DIR, methods, jobs, register)
        write_json({"per_seed": per_seed}, os.path.join(output_dir, "results_partial.json"))
    results = {}
    for m in methods:
        rows = [per_seed[s][m] for s in seeds if m in per_seed[s]]
        if rows:
            results[m] = {k: float(np.mean([r[k] for r in rows if k in r])) for k in rows[0]}
    results["seeds"] = list(seeds)
    if train_seed is not None:
        results["train_seed"] = int(train_seed)
    results["per_seed"] = per_seed
    write_json(results, os.path.join(output_dir, "results.json"))
    with open(os.path.join(output_dir, "results.md"), "w") as f:
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
    for m in METHODS:
        if m not in results:
            continue
        r = results[m]
        pct = f"{100 * r['E-mIoU'] / sup:.0f}%" if sup else "-"
        cells = [f"{r[k]:.1f}" if k in r else "-" for k in KEYS]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {pct} |")
    if len(seeds) > 1:
        lines += ["", "Per seed E-mIoU:", "",
                  "| method | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                  "|---|" + "---|" * len(seeds)]
        for m in METHODS:
            if m in results:
                vals = [results["per_seed"][s].get(m, {}).get("E-mIoU") for s in seeds]
                lines.append(f"| {m} | " + " | ".join("-" if v is None else f"{v:.1f}" for v in vals) + " |")
    return "\n".join(lines)
