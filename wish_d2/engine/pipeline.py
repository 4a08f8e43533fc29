"""The WISH training flow in one call: Stage 1 -> calibrated pseudo-labels -> Stage 2 -> calibration -> test.

Each stage is an ordinary ``WISHTrainer`` run (Detectron2's ``DefaultTrainer``) in its own output folder, so
``--resume`` continues whichever stage was interrupted and finished stages are not retrained.
"""
import logging
import os
import time
from typing import Dict, List, Optional

import numpy as np
import torch
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng

from ..modeling.inference import select_in_hand
from ..modeling.pseudo_labels import assign_pseudo_labels
from ..utils.atomic import write_json
from ..config_validation import validate_wish_config
from .atomic_checkpointer import AtomicCheckpointer
from .calibration import (CONTACT_THRESHOLD_GRID, PSEUDO_THRESHOLD_QUANTILES, gt_label_map, grid_search,
                          selection_emiou)
from .checkpoint import check_init_weights
from .data import cache_root, dataset_dicts, ensure_feature_cache, iterate_cached
from .extra_objects import calibrate_extra_contact_threshold, calibrate_extra_pseudo_threshold
from .label_free import label_free_contact_threshold, label_free_pseudo_threshold
from .trainer import WISHTrainer

logger = logging.getLogger(__name__)


# SOLVER keys that each stage derives from its MODEL.WISH.STAGE1 / STAGE2 section (see stage_solver).
STAGE_SOLVER_KEYS = ("MAX_ITER", "BASE_LR", "IMS_PER_BATCH", "STEPS", "WARMUP_ITERS", "CHECKPOINT_PERIOD")
LR_DROP_AT = 0.8  # the one learning-rate step of a stage, as a fraction of its iterations
WARMUP_FRACTION = 10  # a stage warms up for at most 1/this of its iterations


def stage_solver(cfg, stage: str) -> Dict:
    """The SOLVER values of one stage. The two stages train different parts on different targets, so each has its
    own iterations, learning rate and batch (``MODEL.WISH.STAGE1`` / ``STAGE2``); the schedule follows from them:
    one LR step at 80 %, warm-up capped at a tenth of the stage, one checkpoint at its end."""
    sec = cfg.MODEL.WISH.STAGE1 if stage == "stage1" else cfg.MODEL.WISH.STAGE2
    return {
        "MAX_ITER": sec.MAX_ITER,
        "BASE_LR": sec.BASE_LR,
        "IMS_PER_BATCH": sec.IMS_PER_BATCH,
        "STEPS": (int(sec.MAX_ITER * LR_DROP_AT),),
        "WARMUP_ITERS": min(cfg.SOLVER.WARMUP_ITERS, sec.MAX_ITER // WARMUP_FRACTION),
        "CHECKPOINT_PERIOD": max(sec.MAX_ITER, 1),
    }


def _explicit_solver_keys(cfg) -> List[str]:
    """Derived SOLVER keys the user changed from Detectron2's defaults: the pipeline replaces them, so say so."""
    from detectron2.config import get_cfg

    default = get_cfg().SOLVER
    return [k for k in STAGE_SOLVER_KEYS if k != "WARMUP_ITERS" and cfg.SOLVER[k] != default[k]]


def stage_cfg(cfg, stage: str, output_dir: str, **opts):
    """A frozen copy of ``cfg`` for one stage, with the SOLVER values of :func:`stage_solver` (logged)."""
    c = cfg.clone()
    c.defrost()
    w = c.MODEL.WISH
    w.STAGE = stage
    solver = stage_solver(cfg, stage)
    for k, v in solver.items():
        c.SOLVER[k] = v
    section = "MODEL.WISH.STAGE1" if stage == "stage1" else "MODEL.WISH.STAGE2"
    ignored = _explicit_solver_keys(cfg)
    if ignored:
        logger.warning(f"{stage}: SOLVER.{', SOLVER.'.join(ignored)} set in the config are replaced by the "
                       f"per-stage values of {section} (set those instead)")
    logger.info(f"{stage} solver (from {section}): " + ", ".join(f"{k}={v}" for k, v in solver.items()))
    c.DATASETS.TEST = ()  # the pipeline evaluates once, after calibration
    w.CACHE.DIR = cache_root(cfg)  # every stage reads the one feature cache of the run
    c.OUTPUT_DIR = output_dir
    for k, v in opts.items():
        c.merge_from_list([k, v])
    c.freeze()
    return c


def train_stage(cfg, resume: bool, allow_partial_weights: bool = False):
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    if cfg.SEED >= 0:
        # Seed every stage (not only the process): model init and the sampler's shared seed then do not depend
        # on what ran before in this process, so the table's runs and train_net's runs repeat.
        seed_all_rng(cfg.SEED)
    trainer = WISHTrainer(cfg, allow_partial_weights=allow_partial_weights)
    trainer.resume_or_load(resume=resume)
    trainer.train()
    return trainer.model


def unwrap_model(model):
    return model.module if hasattr(model, "module") else model


# ---- pseudo-labels -----------------------------------------------------------------------------------------
def pseudo_selection(label) -> List:
    """Pseudo-label of one image -> (proposal, class, score) instances; one object for both hands is ``both``."""
    objs, scores = [int(o) for o in label.obj_idx], [float(s) for s in label.score]
    if objs[0] >= 0 and objs[0] == objs[1]:
        out = [(objs[0], 2, (scores[0] + scores[1]) / 2)]
    else:
        out = [(o, s, sc) for s, (o, sc) in enumerate(zip(objs, scores)) if o >= 0]
    if label.extra_idx is not None:  # further objects, each in its hand's class
        out += [(int(o), s, float(sc)) for s in (0, 1) for o, sc in zip(label.extra_idx[s], label.extra_score[s])
                if int(o) >= 0]
    return out


@torch.no_grad()
def pseudo_label_split(cfg, model, name: str, threshold: Optional[float] = None):
    """[(image_id, pseudo-label, record)] of a split under the given (or the model's) threshold."""
    heads = unwrap_model(model).roi_heads
    if threshold is not None:
        heads.pseudo_threshold.fill_(threshold)
    model.eval()
    out = []
    for batch in iterate_cached(cfg, name, model):
        for x, label in zip(batch, unwrap_model(model).pseudo_label(batch)):
            out.append((str(x["image_id"]), label, x["wish_features"]))
    return out


@torch.no_grad()
def pseudo_score_split(cfg, model, name: str):
    """[(image_id, scores [N, M, 2], obj_valid [N], phrase_valid [M], hand_present [2], record)] of a split:
    Stage 1 runs once; any threshold is then applied without running the model again."""
    from ..modeling.meta_arch import collate_records

    m = unwrap_model(model)
    m.eval()
    out = []
    for batch in iterate_cached(cfg, name, model):
        records = [x["wish_features"] for x in batch]
        b = collate_records(records, [x["text_embeds"] for x in batch], m.device)
        s = m.roi_heads.pseudo_scores(b).cpu()
        for k, x in enumerate(batch):
            out.append((str(x["image_id"]), s[k], b["obj_valid"][k].cpu(), b["phrase_valid"][k].cpu(),
                        b["hand_present"][k].cpu(), records[k]))
    return out


def calibrate_pseudo_threshold(cfg, model, val_name: str) -> float:
    heads = unwrap_model(model).roi_heads
    if cfg.MODEL.WISH.CALIBRATION == "label_free":  # no pixel label: Otsu on the train split's Stage 1 scores
        return label_free_pseudo_threshold(cfg, model, cfg.DATASETS.TRAIN[0], both_rule=heads.both_rule)
    gts = {str(d["image_id"]): gt_label_map(d) for d in dataset_dicts(val_name)}
    scored = pseudo_score_split(cfg, model, val_name)
    memo = {}

    def labels_at(t):
        return [(i, assign_pseudo_labels(s, ov, pv, hp, threshold=t, both_rule=heads.both_rule), rec)
                for i, s, ov, pv, hp, rec in scored]

    probe = labels_at(-1e9)  # every visible hand's best, unthresholded
    best = [float(s) for _, lab, _ in probe for o, s in zip(lab.obj_idx, lab.score) if int(o) >= 0]
    candidates = np.unique(np.quantile(best, PSEUDO_THRESHOLD_QUANTILES)) if best else [0.0]

    def val_emiou(t):
        return selection_emiou(((pseudo_selection(lab), rec, gts[i]) for i, lab, rec in labels_at(t)),
                               memo)["E-mIoU"]

    return grid_search(candidates, val_emiou, "pseudo-label threshold")


def write_pseudo_labels(labels, path: str, threshold: float) -> Dict[str, List[int]]:
    table = {i: {"objects": [int(o) for o in lab.obj_idx], "scores": [float(s) for s in lab.score],
                 "phrases": [int(p) for p in lab.phrase_idx]} for i, lab, _ in labels}
    for i, lab, _ in labels:  # several objects per hand: each hand's further objects (-1 = none)
        if lab.extra_idx is not None:
            table[i]["extra"] = [[int(o) for o in hand] for hand in lab.extra_idx]
    write_json({"threshold": threshold, "labels": table}, path)
    return {i: v["objects"] for i, v in table.items()}


# ---- Stage 2 calibration and evaluation --------------------------------------------------------------------
@torch.no_grad()
def split_scores(cfg, model, name: str):
    """[(image_id, contact_logits, match_logits, obj_valid, hand_present, record)] of a split."""
    from ..modeling.meta_arch import collate_records

    m = unwrap_model(model)
    m.eval()
    out = []
    for batch in iterate_cached(cfg, name, model):
        records = [x["wish_features"] for x in batch]
        b = collate_records(records, [x["text_embeds"] for x in batch], m.device)
        b["zero_shot"] = batch[0]["zero_shot_embeds"].to(m.device)
        c, a = m.roi_heads.scores(b)
        for k, x in enumerate(batch):
            out.append((str(x["image_id"]), c[k], a[k], b["obj_valid"][k], b["hand_present"][k], records[k]))
    return out


def calibrate_contact_threshold(cfg, model, val_name: str, method: Optional[str] = None) -> float:
    if cfg.MODEL.WISH.CALIBRATION == "label_free":  # no pixel label: Otsu on the split's Stage 2 probabilities
        return label_free_contact_threshold(cfg, model, [val_name], method)
    heads = unwrap_model(model).roi_heads
    method = method or heads.method
    gts = {str(d["image_id"]): gt_label_map(d) for d in dataset_dicts(val_name)}
    scores = split_scores(cfg, model, val_name)
    rule = {**heads.selection_rule(method), "max_objects": 1}  # the first object's threshold, alone
    memo = {}

    def val_emiou(t):
        return selection_emiou(
            ((select_in_hand(c, a, ov, hp, contact_threshold=t, **rule), rec, gts[i])
             for i, c, a, ov, hp, rec in scores), memo)["E-mIoU"]

    return grid_search(CONTACT_THRESHOLD_GRID, val_emiou, f"contact threshold ({method})")


def evaluate(cfg, model) -> Dict:
    """Test metrics of ``model`` on DATASETS.TEST; predictions and the COCO export go to OUTPUT_DIR/inference."""
    return WISHTrainer.test(cfg, model)


# ---- the whole flow ----------------------------------------------------------------------------------------
def run_pipeline(cfg, resume: bool = False, allow_partial_weights: bool = False) -> Dict:
    """Train and evaluate as ``MODEL.WISH.STAGE`` says. Returns the test metrics (and writes them).

    ``MODEL.WEIGHTS`` initialises the first stage that trains; it must fill the WISH heads unless
    ``allow_partial_weights`` (``--allow-partial-weights``)."""
    validate_wish_config(cfg)  # before any feature extraction
    if cfg.MODEL.WEIGHTS and not resume:
        check_init_weights(cfg, allow_partial_weights)  # a bad file fails now, not after hours of extraction
    w = cfg.MODEL.WISH
    root = cfg.OUTPUT_DIR
    val = cfg.DATASETS.VAL[0] if cfg.DATASETS.VAL else None
    if val is None and w.CALIBRATION == "label_free":
        val = cfg.DATASETS.TRAIN[0]  # label-free calibration reads images only, so the train split will do
    timings = {}
    t0 = time.perf_counter()
    for name in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.VAL) + list(cfg.DATASETS.TEST):
        ensure_feature_cache(cfg, name)
    timings["features_s"] = time.perf_counter() - t0

    pseudo_file = w.PSEUDO.FILE or os.path.join(root, "pseudo_labels.json")
    stage1_weights = cfg.MODEL.WEIGHTS
    report = {}
    if w.SUPERVISION == "pseudo" and w.STAGE in ("stage1", "all"):
        t0 = time.perf_counter()
        c1 = stage_cfg(cfg, "stage1", os.path.join(root, "stage1"))
        model = train_stage(c1, resume, allow_partial_weights)
        threshold = float(w.PSEUDO.THRESHOLD)
        if threshold < 0:
            if val is None:
                raise ValueError("MODEL.WISH.PSEUDO.THRESHOLD < 0 asks for calibration, but DATASETS.VAL is empty")
            threshold = calibrate_pseudo_threshold(c1, model, val)
        unwrap_model(model).roi_heads.pseudo_threshold.fill_(threshold)
        if w.MAX_OBJECTS_PER_HAND > 1 and float(w.PSEUDO.EXTRA_THRESHOLD) < 0:
            unwrap_model(model).roi_heads.extra_pseudo_threshold.fill_(
                calibrate_extra_pseudo_threshold(c1, model, val, threshold))
        labels = []
        for name in cfg.DATASETS.TRAIN:
            labels += pseudo_label_split(c1, model, name)
        if comm.is_main_process():
            write_pseudo_labels(labels, pseudo_file, threshold)
            gts = {str(d["image_id"]): gt_label_map(d) for n in cfg.DATASETS.TRAIN for d in dataset_dicts(n)}
            report["pseudo_labels_train"] = selection_emiou(
                (pseudo_selection(lab), rec, gts[i]) for i, lab, rec in labels if i in gts)
            logger.info(f"pseudo-label quality on train: {report['pseudo_labels_train']}")
            AtomicCheckpointer(unwrap_model(model), save_dir=c1.OUTPUT_DIR).save("model_calibrated", tag_last=False)
        comm.synchronize()
        stage1_weights = os.path.join(c1.OUTPUT_DIR, "model_calibrated.pth")
        timings["stage1_s"] = time.perf_counter() - t0
        if w.STAGE == "stage1":
            return report

    t0 = time.perf_counter()
    c2 = stage_cfg(cfg, "stage2", os.path.join(root, "stage2"), **{"MODEL.WEIGHTS": stage1_weights,
                                                                "MODEL.WISH.PSEUDO.FILE": pseudo_file})
    model = train_stage(c2, resume, allow_partial_weights)
    if float(w.INFERENCE.CONTACT_THRESHOLD) < 0:
        if val is None:
            raise ValueError("MODEL.WISH.INFERENCE.CONTACT_THRESHOLD < 0 asks for calibration, but DATASETS.VAL is empty")
        unwrap_model(model).roi_heads.contact_threshold.fill_(calibrate_contact_threshold(c2, model, val))
    if w.MAX_OBJECTS_PER_HAND > 1 and float(w.INFERENCE.EXTRA_CONTACT_THRESHOLD) < 0:
        if val is None:
            raise ValueError("MODEL.WISH.INFERENCE.EXTRA_CONTACT_THRESHOLD < 0 asks for calibration, but "
                             "DATASETS.VAL is empty")
        unwrap_model(model).roi_heads.extra_contact_threshold.fill_(
            calibrate_extra_contact_threshold(c2, model, val))
    timings["stage2_s"] = time.perf_counter() - t0
    final = os.path.join(root, "model_final.pth")
    if comm.is_main_process():
        AtomicCheckpointer(unwrap_model(model), save_dir=root).save("model_final")  # keys without DDP's "module."
    t0 = time.perf_counter()
    report.update(evaluate(cfg, model) if cfg.DATASETS.TEST else {})
    timings["eval_s"] = time.perf_counter() - t0
    report["timings"] = timings
    if comm.is_main_process():
        write_json(report, os.path.join(root, "metrics.json"))
        logger.info(f"WISH done. Model: {final}  metrics: {os.path.join(root, 'metrics.json')}  "
                    f"COCO predictions: {os.path.join(root, 'inference')}")
    return report
