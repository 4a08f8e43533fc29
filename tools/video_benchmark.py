#!/usr/bin/env python
"""WISH on videos: per-frame against temporal inference, and robustness to narration timing (docs/VIDEO.md).

    python tools/video_benchmark.py --output-dir output/video

Writes OUTPUT/video_results.json ({"per_frame", "temporal": {E-mIoU, IoU_left, IoU_right, IoU_both,
switches_per_min}, "timing_noise": {"0s", "1s", "2s"}, "validation", "conditions", "calibration", "runs", "setup"};
test numbers are means over the training seeds) and OUTPUT/results.md. Designed for two CPU cores: synthetic
160x160 videos, the tiny random-init ViT, short training; the defaults take under 10 minutes (docs/VIDEO.md §7).
"""
import argparse
import logging
import os
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    from wish_d2.config_validation import MAX_FRAMES, MAX_ITERS
    from wish_d2.engine.arg_types import float_in, int_in, nonneg_int, output_dir, seed_int
    from wish_d2.video.predictor import SMOOTHERS

    videos = int_in(1, MAX_FRAMES)
    iters = int_in(0, MAX_ITERS)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", required=True, type=output_dir)
    p.add_argument("--config-file", default=os.path.join(ROOT, "configs", "wish_synthetic.yaml"))
    p.add_argument("--train-videos", type=videos, default=12)
    p.add_argument("--val-videos", type=videos, default=8)
    p.add_argument("--test-videos", type=videos, default=8)
    p.add_argument("--seconds", type=float_in(0, 3600, low_open=True), default=8.0, help="length of each video")
    p.add_argument("--stage1-iters", type=iters, default=500)
    p.add_argument("--stage2-iters", type=iters, default=300)
    p.add_argument("--window-noise", type=float_in(0, 60), default=1.0,
                   help="boundary noise (s) the Stage 1 narration-window weights assume; 0 = no weighting")
    p.add_argument("--train-seeds", type=seed_int, nargs="+", default=[0, 1],
                   help="one WISH training per seed and noise level; test numbers are the mean over the seeds")
    p.add_argument("--smoother", choices=SMOOTHERS, default=SMOOTHERS[0],
                   help="temporal smoother: the hand's contact state (object chosen per frame), averaged track "
                        "evidence + hysteresis, or the switch-price HMM")
    p.add_argument("--video-seed", type=seed_int, default=0, help="seed of the generated videos (all three splits)")
    p.add_argument("--all-pairs", action="store_true",
                   help="Stage 1 may explain narrations through non-touching pairs too (the frame benchmark's setting)")
    p.add_argument("--both-rule", action="store_true",
                   help="apply the frame benchmark's both-hands rule to pseudo-labels and inference")
    p.add_argument("--threads", type=nonneg_int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args(argv)
    from wish_d2.config_validation import ConfigError
    from wish_d2.engine.setup import build_cfg

    try:  # the config file is read per training run, after the videos are made: check it first
        build_cfg(args.config_file, resolve_pretrained=False)
    except ConfigError as e:
        p.error(str(e))

    import torch
    from detectron2.utils.logger import setup_logger

    import wish_d2  # noqa: F401
    from wish_d2.data.synthetic.video_script import VideoParams
    from wish_d2.video.benchmark import BenchmarkSize, run_video_benchmark

    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.output_dir, exist_ok=True)
    setup_logger(output=os.path.join(args.output_dir, "log.txt"), name="wish_d2")
    logging.getLogger("wish_d2").setLevel(logging.INFO)
    size = BenchmarkSize(args.train_videos, args.val_videos, args.test_videos, seed=args.video_seed,
                         stage1_iters=args.stage1_iters,
                         stage2_iters=args.stage2_iters, params=VideoParams(seconds=args.seconds),
                         window_noise_s=args.window_noise, train_seeds=args.train_seeds, smoother=args.smoother,
                         touching_pairs_only=not args.all_pairs, both_rule=args.both_rule)
    results = run_video_benchmark(args.output_dir, args.config_file, size)
    from wish_d2.video.benchmark import results_markdown

    print(results_markdown(results))


if __name__ == "__main__":
    from wish_d2.utils.atomic import exit_on_disk_full

    with exit_on_disk_full():
        main()
