#!/usr/bin/env python
"""Run every method of the paper-style table on the same data and cached features, and write the table.

    python tools/reproduce_table.py --config-file configs/wish_synthetic.yaml --output-dir output/demo
    python tools/reproduce_table.py --config-file configs/wish_synthetic.yaml --output-dir output/seeds --seeds 0 1 2

Writes ``DIR/results.json`` ({method: {"E-mIoU", "IoU_left", "IoU_right", "IoU_both", "AP"}}, means over seeds,
plus ``per_seed``) and ``DIR/results.md``; each row's predictions, metrics and COCO export go to
``DIR/seed<k>/<method>/`` (see ``wish_d2.engine.table``). Thresholds are calibrated on DATASETS.VAL, never on the
test split. Config overrides (``KEY VALUE``) may follow the list options directly or come after ``--``.
"""
import argparse
import logging
import os
import sys
import time

import wish_d2  # noqa: F401  registers WISH and installs Detectron2 compat shims
from detectron2.utils.logger import setup_logger

from wish_d2.config_validation import ConfigError
from wish_d2.data.builtin import register_synthetic_from_cfg
from wish_d2.data.common import DataFormatError
from wish_d2.engine.arg_types import int_in, output_dir, seed_int
from wish_d2.engine.cli import parse_args_with_overrides
from wish_d2.engine.setup import setup_cfg
from wish_d2.engine.table import TABLE_ROWS, format_table, run_table
from wish_d2.modeling.weights import WeightsError
from wish_d2.utils.atomic import exit_on_disk_full
from wish_d2.utils.sources import SourcesChangedError


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--output-dir", required=True, type=output_dir)
    parser.add_argument("--seeds", nargs="+", default=None, metavar="SEED",
                        help="seeds of data and training (default: the config's DATASETS.SYNTHETIC.SEED)")
    parser.add_argument("--train-seed", type=seed_int, default=None,
                        help="training seed (SEED) of every run (default: each data seed); with fixed --seeds this "
                             "measures training noise alone")
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help="a subset of the table's methods: " + ", ".join(TABLE_ROWS))
    parser.add_argument("--jobs", type=int_in(1, 1024), default=os.cpu_count() or 1,
                        help="independent training runs of a seed to run at once, in worker processes that split "
                             "the cores (default: one per core, at most the number of runs)")
    parser.add_argument("--resume", action="store_true",
                        help="take the seeds that DIR/results_partial.json holds from an interrupted run of the same "
                             "command on the same wish_d2 sources, and run only the others")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    return parse_args_with_overrides(argument_parser(), argv, {"seeds": seed_int, "methods": str})


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="wish_d2")
    setup_logger(name="detectron2", abbrev_name="d2")
    logging.getLogger("fvcore").setLevel(logging.WARNING)
    try:
        cfg = setup_cfg(args, freeze=False)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    seeds = args.seeds or [cfg.DATASETS.SYNTHETIC.SEED]
    t0 = time.perf_counter()
    results = run_table(cfg, args.output_dir, seeds, args.methods, register=register_synthetic_from_cfg,
                        jobs=args.jobs, train_seed=args.train_seed, resume=args.resume)
    print(format_table(results))
    print(f"\nresults: {os.path.join(args.output_dir, 'results.json')}  table: "
          f"{os.path.join(args.output_dir, 'results.md')}  wall time: {time.perf_counter() - t0:.0f} s")
    return results


if __name__ == "__main__":
    try:
        with exit_on_disk_full():
            main()
    except (WeightsError, DataFormatError) as e:  # a weights or input file, named in the message
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except SourcesChangedError as e:  # the code was edited under a running table
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
