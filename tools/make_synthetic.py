#!/usr/bin/env python
"""Generate the synthetic WISH benchmark ahead of time and print its statistics.

    python tools/make_synthetic.py --out datasets --seed 0 --num-train 1500 --num-val 600 --num-test 1000 \
        --image-size 160x160

``--out`` is a dataset root, like ``$DETECTRON2_DATASETS``: the splits go to
``OUT/wish_synth_seed{S}_{H}x{W}/{split}_n{N}/``, exactly where ``wish_synth_*`` (registered by
``import wish_d2``, see ``wish_d2/data/builtin.py``) looks for them, so a later training run finds them ready.
A complete split is not regenerated unless ``--force``. Same seed and sizes give the same bytes.
"""
import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from wish_d2 import compat  # noqa: E402,F401  Detectron2 shims before any detectron2 import
from wish_d2.data.synthetic import ensure_split, format_stats, split_dir  # noqa: E402


def parse_size(text: str):
    try:
        h, w = text.lower().split("x")
        return int(h), int(w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--image-size must look like 160x160 (HxW), got {text!r}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.getenv("DETECTRON2_DATASETS", "datasets"), help="dataset root")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-train", type=int, default=1500)
    p.add_argument("--num-val", type=int, default=600)
    p.add_argument("--num-test", type=int, default=1000)
    p.add_argument("--image-size", type=parse_size, default=(160, 160), help="HxW")
    p.add_argument("--force", action="store_true", help="regenerate even if a complete copy exists")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = p.parse_args(argv)

    t_all = time.time()
    for split, num in (("train", args.num_train), ("val", args.num_val), ("test", args.num_test)):
        if num <= 0:
            continue
        folder = split_dir(args.out, args.seed, split, num, args.image_size)
        if args.force and os.path.isdir(folder):
            shutil.rmtree(folder)
        t0 = time.time()
        folder = ensure_split(args.out, args.seed, split, num, args.image_size, progress=not args.no_progress)
        with open(os.path.join(folder, "stats.json")) as f:
            stats = json.load(f)
        print(f"[{split}] {num} frames in {time.time() - t0:.1f}s -> {folder}")
        print(format_stats(stats))
    print(f"total {time.time() - t_all:.1f}s")


if __name__ == "__main__":
    main()
