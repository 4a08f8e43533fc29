#!/usr/bin/env python
"""The hand-detector stress test on the embedded benchmark: what WISH loses when its hands come from a detector.

    python tools/hand_benchmark.py --output-dir output/hands
    python tools/hand_benchmark.py --output-dir /tmp/h --num-train 50 --num-val 30 --num-test 30 \
        --detector-iters 20 --chest-detector-iters 20 --chest-train 30 --chest-test 20   # a quick smoke run

Trains the hand detector of ``configs/hand_detector_visor.yaml`` with a small backbone (ResNet-18, from scratch) on
the synthetic train split's hand masks, runs it over every split, and trains and tests WISH (the ``wish`` row of
``tools/reproduce_table.py``) once with the dataset's hands and once with the detected hands. A chest-camera world
(hands enter from below and cross the midline) measures the vertical split's side accuracy against the detector's.
Writes ``DIR/hand_results.json``: ``hand_mask_ap``, ``side_accuracy``, ``hand_recall``, ``wish_dataset_hands``,
``wish_detected_hands``, ``detected_vs_dataset``, ``vertical_split_side_accuracy`` and ``chest_camera``
{``vertical_split_side_accuracy``, ``entry_rule_side_accuracy``, ``side_accuracy``, ``hand_mask_ap``, ...}.
The runs, detections and predictions stay under DIR (``wish_d2.engine.hand_benchmark``).
"""
import argparse
import json
import logging
import os
import sys

import wish_d2  # noqa: F401  registers WISH and the datasets
from detectron2.utils.logger import setup_logger

from wish_d2.config_validation import MAX_FRAMES, MAX_ITERS, ConfigError
from wish_d2.engine.arg_types import int_in, output_dir, positive_int, seed_int
from wish_d2.engine.hand_benchmark import CHEST_DETECTOR_ITERS, DETECTOR_ITERS, run_hand_benchmark
from wish_d2.engine.setup import setup_cfg
from wish_d2.utils.sources import SourcesChangedError

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "wish_synthetic.yaml")


def argument_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", required=True, type=output_dir)
    p.add_argument("--config-file", default=CONFIG, help="the WISH config of both WISH runs (default: the benchmark's)")
    p.add_argument("--seed", type=seed_int, default=None, help="data and training seed (default: the config's)")
    for split in ("train", "val", "test"):  # a run reads train and test; val may be empty (label-free calibration)
        p.add_argument(f"--num-{split}", type=int_in(0 if split == "val" else 1, MAX_FRAMES), default=None,
                       help=f"frames of the {split} split (default: the config's DATASETS.SYNTHETIC)")
    p.add_argument("--detector-iters", type=int_in(1, MAX_ITERS), default=DETECTOR_ITERS,
                   help="training iterations of the hand detector (batch 8)")
    p.add_argument("--chest-detector-iters", type=int_in(1, MAX_ITERS), default=CHEST_DETECTOR_ITERS,
                   help="training iterations of the chest-camera detector, which only measures sides")
    p.add_argument("--chest-train", type=int_in(1, MAX_FRAMES), default=600,
                   help="frames the chest-camera detector trains on")
    p.add_argument("--chest-test", type=int_in(1, MAX_FRAMES), default=400,
                   help="chest-camera frames the side rules are scored on")
    p.add_argument("--jobs", type=positive_int, default=2,
                   help="2: two worker processes (the chest-camera world beside the detector's training, then the "
                        "two WISH runs side by side); 1: in turn")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="WISH config overrides KEY VALUE ...")
    return p


def main(argv=None):
    args = argument_parser().parse_args(argv)
    setup_logger(name="wish_d2")
    setup_logger(name="detectron2", abbrev_name="d2")
    logging.getLogger("fvcore").setLevel(logging.WARNING)
    opts = list(args.opts or [])
    for key, v in (("DATASETS.SYNTHETIC.SEED", args.seed), ("DATASETS.SYNTHETIC.NUM_TRAIN", args.num_train),
                   ("DATASETS.SYNTHETIC.NUM_VAL", args.num_val), ("DATASETS.SYNTHETIC.NUM_TEST", args.num_test)):
        if v is not None:
            opts += [key, str(v)]
    try:
        cfg = setup_cfg(argparse.Namespace(config_file=args.config_file, opts=opts), freeze=False)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    results = run_hand_benchmark(cfg, args.output_dir, iters=args.detector_iters,
                                 chest_iters=args.chest_detector_iters, chest_train=args.chest_train,
                                 chest_test=args.chest_test, jobs=args.jobs)
    print(json.dumps(results, indent=2))
    print(f"results: {os.path.join(args.output_dir, 'hand_results.json')}")
    return results


if __name__ == "__main__":
    try:
        main()
    except SourcesChangedError as e:  # the code was edited under a running benchmark
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
