"""The WISH training flow in one call: Stage 1 -> calibrated pseudo-labels -> Stage 2 -> calibration -> test.

Each stage is an ordinary ``WISHTrainer`` run (Detectron2's ``DefaultTrainer``) in its own output folder, so
``--resume`` continues whichever stage was interrupted and finished stages are not retrained.
"""
import logging
import os
import time
from typing import Dict, List

from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng

from ..utils.atomic import write_json
from .atomic_checkpointer import AtomicCheckpointer
from .calibration import calibrate_contact_threshold, calibrate_pseudo_threshold, gt_label_map, selection_emiou
from .checkpoint import check_init_weights
from .data import cache_root, dataset_dicts, ensure_feature_cache
from .extra_objects import calibrate_extra_contact_threshold, calibrate_extra_pseudo_threshold
from .scoring import pseudo_label_split, pseudo_selection, unwrap_model
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


# ---- pseudo-labels -----------------------------------------------------------------------------------------
def write_pseudo_labels(labels, path: str, threshold: float) -> Dict[str, List[int]]:
    table = {i: {"objects": [int(o) for o in lab.obj_idx], "scores": [float(s) for s in lab.score],
                 "phrases": [int(p) for p in lab.phrase_idx]} for i, lab, _ in labels}
    for i, lab, _ in labels:  # several objects per hand: each hand's further objects (-1 = none)
        if lab.extra_idx is not None:
            table[i]["extra"] = [[int(o) for o in hand] for hand in lab.extra_idx]
    write_json({"threshold": threshold, "labels": table}, path)
    return {i: v["objects"] for i, v in table.items()}


# ---- evaluation --------------------------------------------------------------------------------------------
def evaluate(cfg, model) -> Dict:
    """Test metrics of ``model`` on DATASETS.TEST; predictions and the COCO export go to OUTPUT_DIR/inference."""
    return WISHTrainer.test(cfg, model)


# ---- the whole flow ----------------------------------------------------------------------------------------
def run_pipeline(cfg, resume: bool = False, allow_partial_weights: bool = False) -> Dict:
    """Train and evaluate as ``MODEL.WISH.STAGE`` says. Returns the test metrics (and writes them).

    ``MODEL.WEIGHTS`` initialises the first stage that trains; it must fill the WISH heads unless
    ``allow_partial_weights`` (``--allow-partial-weights``). ``cfg`` is validated where it is built
    (:func:`wish_d2.engine.setup.build_cfg`, or :func:`wish_d2.config_validation.validate_wish_config` by hand)."""
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
            raise ValueError("MODEL.WISH.INFERENCE.CONTACT_THRESHOLD < 0 asks for calibration, "
                             "but DATASETS.VAL is empty")
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
