#!/usr/bin/env python
"""Generate the synthetic WISH benchmark ahead of time and print its statistics.

    python tools/make_synthetic.py --out datasets                      # the default benchmark (cfg.DATASETS.SYNTHETIC)
    python tools/make_synthetic.py --out /tmp/scale --profile realistic --num-train 200 --num-val 0 --num-test 0

``--out`` is a dataset root, like ``$DETECTRON2_DATASETS``: the splits go to
``OUT/wish_synth_seed{S}_{H}x{W}/{split}_n{N}/`` (``wish_synth_realistic_...`` for the realistic profile), exactly
where ``wish_synth_*`` (registered by ``import wish_d2``, see ``wish_d2/data/builtin.py``) looks for them, so a
later training run finds them ready. Flags left out take the defaults of ``cfg.DATASETS.SYNTHETIC`` (frame size:
the profile's own for ``--profile realistic``). A complete split is not regenerated unless ``--force``. Same
seed and sizes give the same bytes. Rules and statistics: docs/SYNTHETIC.md.
"""
import argparse
import json
import os
import shutil
import time

from wish_d2 import compat  # noqa: F401  Detectron2 shims before any detectron2 import
from wish_d2.config_validation import MAX_FRAMES
from wish_d2.data.synthetic import PROFILES, benchmark_defaults, ensure_split, format_stats, get_profile, split_dir
from wish_d2.engine.arg_types import image_size, int_in, output_dir, seed_int
from wish_d2.utils.atomic import exit_on_disk_full


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options; numbers left out come from ``cfg.DATASETS.SYNTHETIC``."""
    d = benchmark_defaults()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    frames = int_in(0, MAX_FRAMES)  # 0 skips the split
    p.add_argument("--out", type=output_dir, default=os.getenv("DETECTRON2_DATASETS", "datasets"), help="dataset root")
    p.add_argument("--seed", type=seed_int, default=d["seed"])
    p.add_argument("--num-train", type=frames, default=d["num_train"], help="frames (0 = skip the split)")
    p.add_argument("--num-val", type=frames, default=d["num_val"])
    p.add_argument("--num-test", type=frames, default=d["num_test"])
    p.add_argument("--image-size", type=image_size, default=None,
                   help=f"HxW (default {d['image_size'][0]}x{d['image_size'][1]}; the realistic profile's: 1080x1920)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="default", help="generation profile")
    p.add_argument("--force", action="store_true", help="regenerate even if a complete copy exists")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = p.parse_args(argv)
    if args.image_size is None:
        args.image_size = d["image_size"] if args.profile == "default" else get_profile(args.profile).image_size
    return args


def main(argv=None):
    args = parse_args(argv)
    profile, size = get_profile(args.profile), args.image_size

    t_all = time.time()
    for split, num in (("train", args.num_train), ("val", args.num_val), ("test", args.num_test)):
        if num <= 0:
            continue
        folder = split_dir(args.out, args.seed, split, num, size, profile.name)
        if args.force and os.path.isdir(folder):
            shutil.rmtree(folder)
        t0 = time.time()
        folder = ensure_split(args.out, args.seed, split, num, size, progress=not args.no_progress, profile=profile)
        with open(os.path.join(folder, "stats.json")) as f:
            stats = json.load(f)
        print(f"[{split}] {num} frames in {time.time() - t0:.1f}s -> {folder}")
        print(format_stats(stats))
    print(f"total {time.time() - t_all:.1f}s")


if __name__ == "__main__":
    with exit_on_disk_full():
        main()
