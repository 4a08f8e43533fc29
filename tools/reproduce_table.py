#!/usr/bin/env python
"""Run every method of the paper-style table on the same data and cached features, and write the table.

    python tools/reproduce_table.py --config-file configs/wish_synthetic.yaml --output-dir output/demo
    python tools/reproduce_table.py --config-file configs/wish_synthetic.yaml --output-dir output/seeds --seeds 0 1 2

Writes ``DIR/results.json`` ({method: {"E-mIoU", "IoU_left", "IoU_right", "IoU_both", "AP"}}, means over seeds,
plus ``per_seed``) and ``DIR/results.md``. Thresholds are calibrated on DATASETS.VAL, never on the test split.
"""
import argparse
import logging
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import wish_d2  # noqa: E402,F401
from detectron2.config import get_cfg  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from wish_d2 import add_wish_config  # noqa: E402
from wish_d2.data.builtin import register_synthetic_from_cfg  # noqa: E402
from wish_d2.engine.table import format_table, run_table  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds of data and training (default: the config's DATASETS.SYNTHETIC.SEED)")
    parser.add_argument("--train-seed", type=int, default=None,
                        help="training seed (SEED) of every run (default: each data seed); with fixed --seeds this "
                             "measures training noise alone")
    parser.add_argument("--methods", nargs="+", default=None, help="a subset of the table's methods")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="independent training runs of a seed to run at once, in worker processes that split "
                             "the cores (default: one per core, at most the number of runs)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args(argv)
    if args.methods:  # "--methods a b KEY VALUE": the list swallowed the overrides; give them back
        keys = [k for k, m in enumerate(args.methods) if re.match(r"^[A-Z][A-Z0-9_]*\.", m)]
        if keys:
            args.methods, args.opts = args.methods[:keys[0]], args.methods[keys[0]:] + args.opts

    setup_logger(name="wish_d2")
    setup_logger(name="detectron2", abbrev_name="d2")
    logging.getLogger("fvcore").setLevel(logging.WARNING)
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    seeds = args.seeds or [cfg.DATASETS.SYNTHETIC.SEED]
    t0 = time.perf_counter()
    results = run_table(cfg, args.output_dir, seeds, args.methods, register=register_synthetic_from_cfg,
                        jobs=args.jobs, train_seed=args.train_seed)
    print(format_table(results))
    print(f"\nresults: {os.path.join(args.output_dir, 'results.json')}  table: "
          f"{os.path.join(args.output_dir, 'results.md')}  wall time: {time.perf_counter() - t0:.0f} s")
    return results


if __name__ == "__main__":
    main()
