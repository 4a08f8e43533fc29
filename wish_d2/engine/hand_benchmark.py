"""The hand-detector stress test on the embedded benchmark (``tools/hand_benchmark.py``).

1. Train the project's hand detector (``configs/hand_detector_visor.yaml``, the same Mask R-CNN with a small backbone
   trained from scratch: :data:`SMALL_BACKBONE`) on the synthetic train split's hand masks, with Detectron2's
   ``DefaultTrainer``; load it back through the ``detector`` hand source's own loader.
2. Run it once over train, val and test: hand mask AP (Detectron2's ``COCOEvaluator``, pycocotools' reference
   implementation) and side accuracy on test, and a hands file for ``MODEL.WISH.HANDS.SOURCE precomputed``.
3. WISH, trained and tested the same way (the ``wish`` row of ``tools/reproduce_table.py``, :func:`run_table`), once
   with the dataset's hands and once with the detected hands, in training and at test.
4. A chest-camera world (``synthetic`` profile ``chest``): the side accuracy of the vertical split, of the entry rule
   (``wish_d2.data.hand_side``) and of a detector trained on that world's train split.

Two worker processes: the chest-camera world beside the detector's training, which takes both cores once the chest
world is done; then the two WISH runs side by side (:func:`run_hand_benchmark`).
"""
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Sequence

import torch
from detectron2.data import DatasetCatalog
from detectron2.engine import HookBase

from ..classes import SIDES
from ..data.hand_datasets import HAND_CLASSES, register_hands_only
from ..data.hand_side import hand_side_accuracy
from ..data.image_io import read_image_rgb
from ..evaluation.hand_sides import SideAccuracy
from ..utils.atomic import write_json
from ..utils.masks import encode_rle
from ..utils.sources import IMPORTED_SOURCES, check_same_sources, same_sources_in_workers

logger = logging.getLogger(__name__)

__all__ = ["SMALL_BACKBONE", "DETECTOR_ITERS", "CHEST_DETECTOR_ITERS", "run_hand_benchmark", "train_hand_detector",
           "detect_hands"]

DETECTOR_CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "hand_detector_visor.yaml")

#: The detector of configs/hand_detector_visor.yaml shrunk for 160x160 frames and 2 CPU cores: a ResNet-18 trunk
#: with batch norm trained from scratch (no ImageNet weights: nothing is downloaded), a 64-channel FPN, anchors
#: scaled to the small hands, lighter heads.
SMALL_BACKBONE = (
    "MODEL.WEIGHTS", "",
    "MODEL.DEVICE", "cpu",
    "MODEL.RESNETS.DEPTH", "18",
    "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
    "MODEL.RESNETS.STEM_OUT_CHANNELS", "32",
    "MODEL.RESNETS.NORM", "BN",
    "MODEL.BACKBONE.FREEZE_AT", "0",
    "MODEL.FPN.OUT_CHANNELS", "64",
    "MODEL.ANCHOR_GENERATOR.SIZES", "[[8], [16], [32], [64], [128]]",
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE", "64",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN", "500",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN", "100",
    "MODEL.RPN.PRE_NMS_TOPK_TEST", "300",
    "MODEL.RPN.POST_NMS_TOPK_TEST", "50",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "64",
    "MODEL.ROI_BOX_HEAD.FC_DIM", "256",
    "MODEL.ROI_MASK_HEAD.CONV_DIM", "64",
    "MODEL.ROI_MASK_HEAD.NUM_CONV", "2",
    "INPUT.MIN_SIZE_TRAIN", "(160,)",
    "INPUT.MAX_SIZE_TRAIN", "320",
    "INPUT.MIN_SIZE_TEST", "160",
    "INPUT.MAX_SIZE_TEST", "320",
    "TEST.DETECTIONS_PER_IMAGE", "10",
    "DATALOADER.NUM_WORKERS", "0",
    "SOLVER.IMS_PER_BATCH", "8",
    "SOLVER.BASE_LR", "0.02",
)
#: Training iterations of each detector (batch 8, from scratch). 300 left the masks coarse (hand mask AP 53-62,
#: 7-11% of the hands missed) and WISH at 69-72% of its dataset-hands score; docs/RESULTS.md section 5.
DETECTOR_ITERS = 600
#: The chest-camera detector only measures sides (its class is the side), which it gets right long before its masks
#: are good (96-97% of matched hands at 250 iterations, 97.6% at 300, 98.9% at 450; docs/RESULTS.md section 5), so it
#: trains less.
CHEST_DETECTOR_ITERS = 250
#: Detections below this score are not hands (MODEL.WISH.HANDS.DETECTOR_SCORE_THRESH's default); AP uses them all.
HAND_SCORE = 0.5
#: Score floor of the detections that mask AP ranks (Detectron2's default ROI_HEADS.SCORE_THRESH_TEST).
AP_SCORE = 0.05
#: Frames per forward pass of the detector over a split.
DETECT_BATCH = 8
#: The detected hands of every split, under the output folder (``MODEL.WISH.HANDS.PRECOMPUTED_FILE`` of a WISH run).
HANDS_FILE = "detected_hands.json"


def train_hand_detector(train_dataset: str, out: str, iters: int, seed: int, hooks: Sequence = ()) -> Dict[str, str]:
    """Train the small detector on ``train_dataset`` (a hand-only split) into ``out``; returns its ``config`` file
    (the trained model's config, as the ``detector`` hand source reads it) and ``weights``."""
    from .hand_detector import HandDetectorTrainer, hand_detector_cfg

    cfg = hand_detector_cfg(DETECTOR_CONFIG, list(SMALL_BACKBONE) + [
        "DATASETS.TRAIN", f"('{train_dataset}',)", "DATASETS.TEST", "()", "SOLVER.MAX_ITER", str(iters),
        "SOLVER.STEPS", f"({int(iters * 0.8)},)", "SOLVER.WARMUP_ITERS", str(min(100, iters // 5)),
        "SOLVER.CHECKPOINT_PERIOD", str(10 * iters + 1), "SEED", str(seed), "OUTPUT_DIR", out])
    os.makedirs(out, exist_ok=True)
    config_file = os.path.join(out, "hand_detector.yaml")
    with open(config_file, "w") as f:
        f.write(cfg.dump())
    trainer = HandDetectorTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.register_hooks(list(hooks))
    t0 = time.perf_counter()
    trainer.train()
    logger.info(f"hand detector: {iters} iterations on {train_dataset} in {time.perf_counter() - t0:.0f} s")
    return {"config": config_file, "weights": os.path.join(out, "model_final.pth")}


def _gt_hands(d: Dict):
    hands = [h for h in d.get("hands", []) if h.get("side") in SIDES]
    return [h["segmentation"] for h in hands], [h["side"] for h in hands]


def detect_hands(detector, dataset_names: Sequence[str], evaluate: str = "", eval_dir: str = "") -> Dict:
    """Run ``detector`` (a :class:`~wish_d2.modeling.hands.DetectorHands`) once over ``dataset_names``.

    Returns ``{"hands": {image_id: [{"segmentation": RLE, "side", "score"}]}}`` (detections scoring at least
    :data:`HAND_SCORE`) and, for the split ``evaluate``, its ``hand_mask_ap`` (COCO segm AP of the two hand
    classes), ``side_accuracy`` and ``hand_recall``."""
    from detectron2.evaluation import COCOEvaluator

    table, report = {}, {}
    for name in dataset_names:
        evaluator = sides = None
        if name == evaluate:
            hname = register_hands_only(name, lambda n=name: DatasetCatalog.get(n))
            evaluator = COCOEvaluator(hname, output_dir=eval_dir, use_fast_impl=False)
            evaluator.reset()
            sides = SideAccuracy()
        t0 = time.perf_counter()
        dicts = DatasetCatalog.get(name)
        for start in range(0, len(dicts), DETECT_BATCH):
            batch = dicts[start:start + DETECT_BATCH]
            found = detector.instances_batch([read_image_rgb(d["file_name"]) for d in batch])
            for d, inst in zip(batch, found):
                _record(d, inst, detector.hands_from_instances(inst, HAND_SCORE), table, evaluator, sides)
        logger.info(f"hand detector over {name}: {len(dicts)} frames in {time.perf_counter() - t0:.0f} s")
        if evaluator is not None:
            res = evaluator.evaluate()
            report.update(hand_mask_ap=float(res["segm"]["AP"]), hand_box_ap=float(res["bbox"]["AP"]),
                          **sides.summary())
    return {"hands": table, **report}


def _record(d: Dict, inst, hands: List[Dict], table: Dict, evaluator, sides) -> None:
    """One frame's detections into the hands table (and the evaluators, on the evaluated split)."""
    rows = [{"segmentation": encode_rle(h["segmentation"]), "side": h["side"], "score": round(h["score"], 4)}
            for h in hands]
    table[str(d["image_id"])] = rows
    if evaluator is not None:
        evaluator.process([{"image_id": d["image_id"], "height": d["height"], "width": d["width"]}],
                          [{"instances": inst}])
        sides.add(*_gt_hands(d), [r["segmentation"] for r in rows], [r["side"] for r in rows])


def _load_detector(files: Dict[str, str]):
    """The trained detector, loaded the way ``MODEL.WISH.HANDS.SOURCE detector`` loads it."""
    from ..modeling.hands import DetectorHands

    return DetectorHands(files["config"], files["weights"], class_names=HAND_CLASSES, score_thresh=AP_SCORE)


def _wish(cfg, out: str, seed: int, *opts) -> float:
    """The ``wish`` row of the table (same engine as tools/reproduce_table.py): its test E-mIoU."""
    from ..data.builtin import register_synthetic_from_cfg
    from .table import run_table

    c = cfg.clone()
    c.defrost()
    c.merge_from_list(["MODEL.WISH.CLIP.PROBE_FRAMES", "0", *opts])
    res = run_table(c, out, [seed], ["wish"], register=register_synthetic_from_cfg, jobs=1)
    return float(res["wish"]["E-mIoU"])


def _detector_job(cfg, out: str, seed: int, iters: int, threads: int) -> Dict:
    """Train the detector on the train split's hand masks, detect every split, write the hands file. It runs on one
    thread while the other worker is busy and takes ``threads`` as soon as that one is idle (:class:`_FreeCores`)."""
    from ..data.builtin import register_synthetic_from_cfg

    cores = _FreeCores(threads)
    names = register_synthetic_from_cfg(cfg)
    train_hands = register_hands_only(names["train"], lambda: DatasetCatalog.get(names["train"]))
    files = train_hand_detector(train_hands, os.path.join(out, "detector"), iters, seed, hooks=[cores])
    cores.take_if_free()  # for the detection pass, if the other worker finished after the last iteration
    det = detect_hands(_load_detector(files), [names["train"], names["val"], names["test"]], evaluate=names["test"],
                       eval_dir=os.path.join(out, "detector", "inference"))
    write_json(det.pop("hands"), os.path.join(out, HANDS_FILE))
    return det


def _wish_job(cfg, out: str, seed: int, hands: str, threads: int) -> Dict[str, float]:
    """WISH trained and tested with the dataset's hands (``hands`` "dataset") or the detected ones ("detected")."""
    torch.set_num_threads(threads)
    opts = ["MODEL.WISH.HANDS.SOURCE", "dataset"] if hands == "dataset" else [
        "MODEL.WISH.HANDS.SOURCE", "precomputed", "MODEL.WISH.HANDS.PRECOMPUTED_FILE", os.path.join(out, HANDS_FILE)]
    return {f"wish_{hands}_hands": _wish(cfg, os.path.join(out, f"wish_{hands}_hands"), seed, *opts)}


def _chest(cfg, out: str, seed: int, iters: int, num_train: int, num_test: int) -> Dict:
    """The chest-camera world: side accuracy of the vertical split, the entry rule, and a detector trained there."""
    from ..data.builtin import register_synthetic

    s = cfg.DATASETS.SYNTHETIC
    names = register_synthetic(seed, num_train, 0, num_test, tuple(s.IMAGE_SIZE), prefix="hand_chest",
                               profile="chest")
    test = DatasetCatalog.get(names["test"])
    report = {"vertical_split_side_accuracy": hand_side_accuracy(test)["accuracy"],
              "entry_rule_side_accuracy": hand_side_accuracy(test, rule="entry")["accuracy"]}
    train_hands = register_hands_only(names["train"], lambda: DatasetCatalog.get(names["train"]))
    files = train_hand_detector(train_hands, os.path.join(out, "chest_detector"), iters, seed)
    det = detect_hands(_load_detector(files), [names["test"]], evaluate=names["test"],
                       eval_dir=os.path.join(out, "chest_detector", "inference"))
    det.pop("hands")
    report.update(det)
    report.update(num_train=num_train, num_test=num_test)
    return report


def _chest_job(cfg, out: str, seed: int, iters: int, num_train: int, num_test: int, threads: int) -> Dict:
    """The chest-camera world (:func:`_chest`) on ``threads`` threads."""
    torch.set_num_threads(threads)
    return {"chest_camera": _chest(cfg, out, seed, iters, num_train, num_test)}


#: In a worker process: set by the parent once the other worker is idle (None when the stress test runs in-process).
_OTHER_IDLE = None


class _FreeCores(HookBase):
    """Between two training iterations, takes ``threads`` once the other worker is idle (or at once in-process). The
    iteration where that happens depends on timing, so two runs need not train bit-identical detectors."""

    def __init__(self, threads: int):
        self.threads = threads
        if _OTHER_IDLE is not None and not _OTHER_IDLE.is_set():
            torch.set_num_threads(max(1, threads // 2))
        self.take_if_free()

    def after_step(self):
        self.take_if_free()

    def take_if_free(self) -> None:
        if torch.get_num_threads() != self.threads and (_OTHER_IDLE is None or _OTHER_IDLE.is_set()):
            torch.set_num_threads(self.threads)
            it = getattr(getattr(self, "trainer", None), "iter", None)
            logger.info(f"hand detector: {self.threads} threads from iteration {it}" if it is not None else
                        f"hand detector: {self.threads} threads")


def _init_worker(other_idle, sources: str) -> None:
    """A fresh (spawned) worker: the parent's code (``sources``, its fingerprint), logging, and the event that says
    the other worker is idle."""
    from detectron2.utils.logger import setup_logger

    check_same_sources(sources)
    global _OTHER_IDLE
    _OTHER_IDLE = other_idle

    setup_logger(name="wish_d2")
    setup_logger(name="detectron2", abbrev_name="d2")
    logging.getLogger("fvcore").setLevel(logging.WARNING)


def run_hand_benchmark(cfg, out: str, iters: int = DETECTOR_ITERS, chest_iters: int = CHEST_DETECTOR_ITERS,
                       chest_train: int = 600, chest_test: int = 400, jobs: int = 2) -> Dict:
    """The whole stress test (module docstring) into ``out``; writes and returns ``out/hand_results.json``.

    With ``jobs`` 2, two worker processes of one thread each: the chest-camera world beside the detector's training;
    the detector takes the second thread once the chest world is done (it gains from a second thread, and the rest of
    the run waits for it) and detects; then the two WISH runs side by side (WISH gains little from a second thread,
    much from a second process)."""
    seed = int(cfg.DATASETS.SYNTHETIC.SEED)
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    from ..data.builtin import register_synthetic_from_cfg

    names = register_synthetic_from_cfg(cfg)
    for name in names.values():  # generated here, once, before two processes would both try
        DatasetCatalog.get(name)
    threads = torch.get_num_threads()
    if jobs <= 1:
        results = _detector_job(cfg, out, seed, iters, threads)
        for hands in ("detected", "dataset"):
            results.update(_wish_job(cfg, out, seed, hands, threads))
        results.update(_chest_job(cfg, out, seed, chest_iters, chest_train, chest_test, threads))
    else:
        ctx = multiprocessing.get_context("spawn")
        half = max(1, threads // 2)
        other_idle = ctx.Event()
        # the workers import the package from disk again: it must still be the code this run started with
        with same_sources_in_workers(), ProcessPoolExecutor(2, mp_context=ctx, initializer=_init_worker,
                                                            initargs=(other_idle, IMPORTED_SOURCES)) as pool:
            chest = pool.submit(_chest_job, cfg, out, seed, chest_iters, chest_train, chest_test, half)
            chest.add_done_callback(lambda _: other_idle.set())
            results = pool.submit(_detector_job, cfg, out, seed, iters, threads).result()
            wish = [pool.submit(_wish_job, cfg, out, seed, hands, half) for hands in ("detected", "dataset")]
            for f in [chest] + wish:
                results.update(f.result())
    ds, dt = results["wish_dataset_hands"], results["wish_detected_hands"]
    results["detected_vs_dataset"] = dt / ds if ds else float("nan")
    results["vertical_split_side_accuracy"] = hand_side_accuracy(DatasetCatalog.get(names["test"]))["accuracy"]
    results.update(seed=seed, detector_iters=iters, chest_detector_iters=chest_iters,
                   num_train=int(cfg.DATASETS.SYNTHETIC.NUM_TRAIN), num_val=int(cfg.DATASETS.SYNTHETIC.NUM_VAL),
                   num_test=int(cfg.DATASETS.SYNTHETIC.NUM_TEST), wall_s=round(time.perf_counter() - t0, 1))
    write_json(results, os.path.join(out, "hand_results.json"))
    return results
