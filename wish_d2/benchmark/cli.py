"""WISH speed and memory benchmark on the CPU: why the feature cache and the batched mask pooling exist.

Measured in one run (every figure is a median of repeats; the two speedups are medians of paired ratios, each
timed back to back so that both sides see the same machine load):

* ``pooling_speedup_n16``: 16 single-mask ViT passes (``MaskPooledCLIP.pool_per_mask_reference``) / one
  batched 16-mask pass (``MaskPooledCLIP.pool``), open_clip ViT-B-16 (random weights), one 224x224 frame.
* ``cached_vs_online_epoch_speedup``: one ONLINE Stage 2 epoch (dicts carry ``image``: every step runs the
  frozen proposals + hands + ViT-B-16 pooling, then the heads' forward/backward/AdamW step) / one CACHED epoch
  (dicts carry ``wish_features`` from the feature cache through ``WISHCachedMapper``), same split, batch size,
  number of steps and model: online through Detectron2's train loader, cached through WISHTrainer's own
  ``build_cached_train_loader`` (32 frames in shards of 8).
* ``extract_images_per_s``: ``extract_dataset_features`` with ViT-B-16 (images read, proposals, hands, pooling,
  geometry, RLEs, shards written).
* ``train_pairs_per_s``: object-hand pairs (proposals x visible hands) per second of cached Stage 2 training.
* ``cached_vs_online_speedup_at_scale`` (diagnostic, same target): the cached side re-measured on 6 shards of
  the default size (256 images; the epoch split's own ViT-B-16 records, replicated), i.e. more shards than the
  2 held in memory, read with WISHTrainer's ``ShardGroupedTrainingSampler``; ``..._uniform_shuffle``: the same
  with Detectron2's uniform ``TrainingSampler``, where most images cost a whole shard load.
  ``cached_fetch_ms_per_image`` / ``cached_fetch_sequential_ms_per_image``: one record fetch in uniformly
  shuffled vs in-order access.
* ``peak_rss_mb_small`` / ``peak_rss_mb_large``: peak RSS of a fresh process that builds the model and runs
  cached Stage 2 training over a whole split once, for two split sizes 4x apart (features from the cheap
  WISH-Tiny-ViT encoder, shards of 16 images so both sizes span more shards than the LRU holds). The peak is the
  child's ``VmHWM``: its ``ru_maxrss`` is also recorded, but Linux carries the parent's peak into it across
  fork+exec, so it reports the benchmark process's size, not the child's.

Usage::

    python tools/benchmark.py --json benchmark.json          # ~2.5 min on 2 busy cores (1 torch thread)
    python tools/benchmark.py --json smoke.json --quick      # ~1 min smoke run (single repeats, smaller splits)
    python tools/benchmark.py --json b2.json --threads 2     # idle machines only (see --help on --threads)
    python tools/benchmark.py --scale --json scale.json      # + the real-scale keys

With ``--scale``, the real-scale keys of :mod:`wish_d2.benchmark.extraction` too (1920x1080 frames, 16-128
proposals, ViT-B-16, the cache's KB per frame, and VISOR-split loading on the synthetic generator's realistic
profile); ``--scale-only`` runs just those.

Frames come from the embedded synthetic benchmark (``wish_d2.data.builtin.register_synthetic``, generated into the
scratch folder and read back through the VISOR loader).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from ..engine.arg_types import int_in, output_dir, output_file, positive_int
from .common import START_TIME, git_state, log
from .epochs import bench_epochs, bench_scale
from .pooling import bench_pooling
from .report import TARGETS, table, verdict
from .rss import bench_rss


def main(argv=None):
    p = argparse.ArgumentParser(prog="tools/benchmark.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", metavar="OUT.json", type=output_file, help="write every figure and the run's config here")
    p.add_argument("--quick", action="store_true", help="~1 min smoke run: fewer repeats, smaller splits")
    p.add_argument("--threads", type=int_in(1, 1024), default=1,
                   help="torch intra-op threads (default 1: on a machine shared with other jobs, 2 threads stall at "
                        "every parallel op whenever another process holds a core; small-op paths such as cached "
                        "training and extraction pre/post-processing then run 10-30x slower. Use 2 on idle cores)")
    p.add_argument("--work-dir", type=output_dir,
                   help="scratch folder (default: a temporary folder, removed afterwards)")
    p.add_argument("--epoch-frames", type=positive_int,
                   help="frames of the online/cached epoch split (default 32; quick 16)")
    p.add_argument("--rss-frames", type=positive_int,
                   help="small RSS split (the large one is 4x; default 64; quick 16)")
    p.add_argument("--batch-size", type=positive_int, default=8,
                   help="images per step of the epoch comparison (default 8)")
    p.add_argument("--scale", action="store_true", help="also the real-scale keys (1080p extraction, cache size, "
                   "VISOR loading)")
    p.add_argument("--scale-only", action="store_true", help="only the real-scale keys")
    p.add_argument("--visor-frames", type=positive_int,
                   help="frames of the realistic VISOR split (default 100; quick 20)")
    args = p.parse_args(argv)

    import logging

    import torch

    torch.set_num_threads(args.threads)
    import wish_d2  # noqa: F401  (registers everything; Detectron2 compat shims)

    logging.getLogger("wish_d2").setLevel(logging.WARNING)
    logging.getLogger("detectron2").setLevel(logging.WARNING)
    quick = args.quick
    repeats = 1 if quick else 3  # quick: a smoke run of every code path, single repeats (not for reporting)
    epoch_frames = args.epoch_frames or (16 if quick else 32)
    rss_frames = args.rss_frames or (16 if quick else 64)
    size = 160
    work = args.work_dir or tempfile.mkdtemp(prefix="wish_bench_")
    os.makedirs(work, exist_ok=True)
    results, config = {}, {
        "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__, "device": "cpu",
        "cpu_count": os.cpu_count(), "quick": quick, "repeats": repeats, "encoder": "open_clip ViT-B-16, random "
        "weights (wish_d2.modeling.clip_encoder.build_mask_pooled_clip)", "pooling_image_size": [224, 224],
        "pooling_masks": 16, "load_average_start": list(os.getloadavg()), **git_state(),
        "command": "python tools/benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    try:
        if not args.scale_only:
            run_existing(args, work, results, config, repeats, epoch_frames, rss_frames, size)
        if args.scale or args.scale_only:
            run_scale(args, work, results, config, repeats)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    return finish(args, results, config)


def run_existing(args, work, results, config, repeats, epoch_frames, rss_frames, size):
    """The keys of the 160x160 benchmark: pooling, online vs cached epochs, cached training at scale, peak RSS."""
    quick = args.quick
    from wish_d2.modeling.clip_encoder import build_mask_pooled_clip

    log("1/4 mask pooling: batched vs per-mask (ViT-B-16, 224x224, 16 masks)")
    clip = build_mask_pooled_clip("ViT-B-16")
    results.update(bench_pooling(clip, repeats=repeats))
    del clip

    log(f"2/4 online vs cached Stage 2 epochs and extraction ({epoch_frames} frames, ViT-B-16)")
    ep = bench_epochs(work, epoch_frames, size, args.batch_size, repeats, shard_size=8)
    config.update(ep.pop("_epoch_config"))
    cache = ep.pop("_cache")
    index = cache.load_index()
    templates = [cache.record(*index[k]) for k in index]

    model, optimizer = ep.pop("_model"), ep.pop("_optimizer")
    results.update(ep)

    log("3/4 cached training over 6 shards of 256 ViT-B-16 records (more than the 2 shards held in memory)")
    scale = bench_scale(work, model, optimizer, templates, args.batch_size,
                        results["online_epoch_s"] / config["epoch_images"], images=32 if quick else 96)
    config.update(scale.pop("_scale_config"))
    results.update(scale)
    del model, optimizer

    log(f"4/4 peak RSS of cached training, {rss_frames} vs {4 * rss_frames} frames (fresh processes)")
    rss = bench_rss(work, rss_frames, size, 1 if quick else 2, args.threads)
    config.update(rss.pop("_rss_config"))
    results.update(rss)


def run_scale(args, work, results, config, repeats):
    """The real-scale keys of :mod:`wish_d2.benchmark.extraction`."""
    from .extraction import FRAME_HW, MODEL_NAME, bench_cache_size, bench_extraction, bench_visor_load

    log(f"scale 1/3 extraction of {FRAME_HW[1]}x{FRAME_HW[0]} frames, 16/64/128 proposals ({MODEL_NAME})")
    results.update(bench_extraction(work, repeats, args.threads))
    log("scale 2/3 feature cache KB per frame (64 proposals, ViT-B-16)")
    size = bench_cache_size(work)
    config.update(size.pop("_cache_config"))
    results.update(size)
    frames = args.visor_frames or (20 if args.quick else 100)
    log(f"scale 3/3 register + load a realistic VISOR-format split ({frames} frames)")
    visor = bench_visor_load(work, frames)
    config.update(visor.pop("_visor_config"))
    results.update(visor)
    config.update({"scale_frame_size": list(FRAME_HW), "scale_encoder": f"open_clip {MODEL_NAME}, random weights",
                   "scale_repeats": repeats})


def finish(args, results, config):
    config["load_average_end"] = list(os.getloadavg())
    config["total_s"] = round(time.perf_counter() - START_TIME, 1)
    results["targets"] = {k: {"op": op, "value": v, "pass": verdict(k, results[k])[1] == "PASS"}
                          for k, (op, v) in TARGETS.items() if k in results}
    results["config"] = config
    print(table(results))
    if "epoch_frames" in config:
        print(f"\nsplits: epoch {config['epoch_frames']} frames ({config['split_source']}), batch "
              f"{config['batch_size']}; RSS {config['rss_split_frames']} frames with {config['rss_encoder']}; "
              f"torch threads {config['torch_threads']}; total {config['total_s']}s")
    print(f"command: {config['command']}")
    if args.json:
        from ..utils.atomic import atomic_path

        with atomic_path(args.json) as tmp, open(tmp, "w") as f:
            json.dump(results, f, indent=2)
        log(f"wrote {args.json}")
    return results
