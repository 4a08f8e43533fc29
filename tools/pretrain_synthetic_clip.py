#!/usr/bin/env python
"""Build the web-pretrained tiny CLIP of the synthetic world ahead of time and report what it knows.

    python tools/pretrain_synthetic_clip.py --config-file configs/wish_synthetic_pretrained.yaml
    python tools/pretrain_synthetic_clip.py --config-file configs/wish_synthetic_pretrained.yaml \\
        MODEL.WISH.CLIP.WEB_PRETRAIN.SEED 1 --probe-frames 300

Shipping the repository's encoder (a long run, resumable: rerun the same command after an interruption):

    python tools/pretrain_synthetic_clip.py --config-file configs/web_clip_release.yaml \
        --ship wish_d2/model_zoo/WISH-Tiny-ViT-web.pt --work-dir output/web_clip_release

writes the fp16 checkpoint and its manifest (command, settings, SHA-256, wall time, loss and probe curves), probing
val and test frames every ``--save-every`` steps (wish_d2/pretrain/release.py).

Otherwise the checkpoint goes to ``$DETECTRON2_DATASETS/wish_synth_web_clip/`` under a key of its settings
(``MODEL.WISH.CLIP.WEB_PRETRAIN``), exactly where the pipeline looks for it, so a later run reuses it; an intact copy is
not rebuilt. Then the zero-shot category top-1 of mask-pooled ground-truth object masks on the synthetic test split
is printed for the pretrained and the random encoder (docs/SYNTHETIC.md, "The web split").
"""
import argparse
import json
import logging
import sys
import time

import torch

import wish_d2  # noqa: F401  registers WISH and installs Detectron2 compat shims
from detectron2.utils.logger import setup_logger

from wish_d2.config_validation import MAX_FRAMES, MAX_ITERS, ConfigError
from wish_d2.engine.arg_types import int_in, output_dir, output_file
from wish_d2.engine.cli import parse_args_with_overrides
from wish_d2.engine.setup import build_cfg
from wish_d2.modeling.clip_encoder import build_mask_pooled_clip
from wish_d2.pretrain import synthetic_zero_shot_top1, web_clip_from_cfg
from wish_d2.utils.atomic import exit_on_disk_full


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="configs/wish_synthetic_pretrained.yaml")
    parser.add_argument("--probe-frames", type=int_in(0, MAX_FRAMES), default=None,
                        help="test frames of the zero-shot probe (default: MODEL.WISH.CLIP.PROBE_FRAMES; 0 skips it)")
    parser.add_argument("--json", type=output_file, default=None, help="also write the report to this file")
    parser.add_argument("--ship", type=output_file, default=None, metavar="FILE",
                        help="run the long pretraining and write FILE (fp16 state dict) with FILE's .json manifest")
    parser.add_argument("--work-dir", type=output_dir, default="output/web_clip_release",
                        help="--ship: resumable state (model, optimizer, curves) lives here")
    parser.add_argument("--save-every", type=int_in(1, MAX_ITERS), default=200,
                        help="--ship: steps between saves and probes")
    parser.add_argument("--probe-val-frames", type=int_in(0, MAX_FRAMES), default=150,
                        help="--ship: val frames of each probe")
    parser.add_argument("--probe-test-frames", type=int_in(0, MAX_FRAMES), default=150,
                        help="--ship: test frames of each probe")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser


def main(argv=None):
    args = parse_args_with_overrides(argument_parser(), argv, {})
    setup_logger(name="wish_d2")
    if args.ship:
        return ship(args)
    t0, c0 = time.perf_counter(), time.process_time()  # building the config builds the checkpoint (first use)
    try:
        cfg = build_cfg(args.config_file, args.opts, freeze=False)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    c = cfg.MODEL.WISH.CLIP
    path = c.PRETRAINED or web_clip_from_cfg(cfg)
    report = {"checkpoint": path, "seconds_wall_this_call": time.perf_counter() - t0,
              "seconds_cpu_this_call": time.process_time() - c0, "threads": torch.get_num_threads()}
    n = c.PROBE_FRAMES if args.probe_frames is None else args.probe_frames
    if n > 0:
        d = cfg.DATASETS.SYNTHETIC
        for name, weights in (("pretrained", path), ("random", "")):
            enc = build_mask_pooled_clip(c.MODEL_NAME, weights, c.INIT_SEED, soft_coverage=c.MASK_SOFT_COVERAGE)
            r = synthetic_zero_shot_top1(enc, d.SEED, min(n, d.NUM_TEST), d.IMAGE_SIZE)
            report[f"zero_shot_top1_{name}"] = r["zero_shot_top1"]
            report[f"per_category_{name}"] = r["per_category"]
            report["probe_objects"] = r["objects"]
    print(json.dumps(report, indent=1))
    if args.json:
        from wish_d2.utils.atomic import write_json

        write_json(report, args.json)
    return report


def ship(args):
    from wish_d2.pretrain.release import pretrain_and_ship
    from wish_d2.pretrain.store import settings_from_cfg

    try:
        cfg = build_cfg(args.config_file, args.opts, freeze=False)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    manifest = pretrain_and_ship(settings_from_cfg(cfg), args.ship, args.work_dir, args.save_every,
                                 cfg.DATASETS.SYNTHETIC.SEED,
                                 {"val": args.probe_val_frames, "test": args.probe_test_frames})
    print(json.dumps({k: manifest[k] for k in ("file", "wall_s", "probe_curve")}, indent=1))
    return manifest


if __name__ == "__main__":
    logging.getLogger("fvcore").setLevel(logging.WARNING)
    with exit_on_disk_full():
        main()
