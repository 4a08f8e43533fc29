#!/usr/bin/env python
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

Frames come from the embedded synthetic benchmark (``wish_d2.data.builtin.register_synthetic``, generated into the
scratch folder and read back through the VISOR loader); without it, from the tiny fixture of
``tests/wish_fixtures.py`` (``config.split_source`` in the JSON says which).
"""
import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars from the synthetic generator (read at tqdm import)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

TARGETS = {  # key: (comparison, value)
    "pooling_speedup_n16": (">=", 12.0),
    "cached_vs_online_epoch_speedup": (">=", 50.0),
    "peak_rss_large_over_small": ("<=", 1.25),
    "cached_vs_online_speedup_at_scale": (">=", 50.0),  # diagnostic: the same target, beyond 2 shards
}
_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def median(xs):
    return float(statistics.median(xs))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def proc_status_mb(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process from /proc/self/status, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def current_rss_mb() -> float:
    return proc_status_mb("VmRSS")


def ru_maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` (Linux: KiB). Caveat: Linux carries the PARENT's peak into a child
    across fork+exec (``signal->maxrss``), so in a child of a big process it can report the parent's size;
    ``VmHWM`` belongs to the child's own address space and is what the RSS keys use."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def git_state() -> dict:
    """The code measured: commit, and whether the working tree had uncommitted changes to tracked files."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
        return {"git_commit": commit or None, "git_modified": [x[3:] for x in dirty if x.strip()]}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None}


# ---- data and config -----------------------------------------------------------------------------------------
def build_split(work: str, n: int, size: int):
    """Register a train split of ``n`` frames; returns ``(dataset name, source description)``."""
    import wish_d2  # noqa: F401  (first: Detectron2 compat shims)
    from detectron2.data import DatasetCatalog, MetadataCatalog

    name = f"wish_bench_{n}"
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    try:
        from wish_d2.data.builtin import register_synthetic

        prefix = f"wish_bench{n}"
        name = register_synthetic(seed=0, num_train=n, num_val=1, num_test=1, image_size=(size, size),
                                  root=os.path.join(work, "synthetic"), prefix=prefix)["train"]
        return name, f"wish_d2.data.builtin.register_synthetic seed 0 train split, {size}x{size}"
    except ImportError:
        pass
    try:
        from wish_d2.data import synthetic
        from wish_d2.data.visor import register_epic_visor

        folder = synthetic.ensure_split(os.path.join(work, "synthetic"), 0, "train", n, (size, size), progress=False)
        register_epic_visor(name, os.path.join(folder, "annotations"), os.path.join(folder, "images"),
                            os.path.join(folder, "narrations.csv"),
                            metadata={"proposals_file": os.path.join(folder, "proposals.jsonl")},
                            image_size=(size, size))
        return name, f"wish_d2.data.synthetic seed 0 train, {size}x{size}, read back by register_epic_visor"
    except ImportError as e:  # the generator is not in this checkout: the tiny hand-drawn fixture
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        from wish_fixtures import register_tiny_dataset

        register_tiny_dataset(os.path.join(work, f"tiny_{n}"), name=name, n=n, size=64)
        return name, f"tests/wish_fixtures.register_tiny_dataset, 64x64 (synthetic generator unavailable: {e})"


def bench_cfg(work: str, name: str, model_name: str, batch: int, shard_size: int, tag: str):
    from detectron2.config import get_cfg

    from wish_d2 import add_wish_config

    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.merge_from_file(os.path.join(ROOT, "configs", "Base-WISH.yaml"))
    cfg.merge_from_list([
        "MODEL.WISH.CLIP.MODEL_NAME", model_name, "MODEL.WISH.STAGE", "stage2", "MODEL.WISH.SUPERVISION", "gt",
        "MODEL.WISH.STAGE2.IMS_PER_BATCH", str(batch), "SOLVER.IMS_PER_BATCH", str(batch),
        "DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", "()", "DATALOADER.NUM_WORKERS", "0",
        "MODEL.WISH.CACHE.DIR", os.path.join(work, f"cache_{tag}"), "MODEL.WISH.CACHE.SHARD_SIZE", str(shard_size),
        "OUTPUT_DIR", os.path.join(work, f"out_{tag}"), "SEED", "0",
    ])
    return cfg


def pairs_of(record) -> int:
    """Object-hand pairs of one image: proposals x visible hands."""
    return int(len(record["v"])) * int(record["hand_present"].sum())


def train_steps(model, optimizer, it, steps: int):
    """``steps`` Stage 2 iterations (forward, backward, AdamW step); returns (seconds, images, pairs)."""
    images = pairs = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        batch = next(it)
        losses = model(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        images += len(batch)
        pairs += sum(pairs_of(x["wish_features"]) for x in batch if "wish_features" in x)
    return time.perf_counter() - t0, images, pairs


# ---- 1. batched vs per-mask pooling ---------------------------------------------------------------------------
def bench_pooling(clip, repeats: int, n_masks: int = 16, size: int = 224):
    import torch

    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g)
    masks = torch.zeros((n_masks, size, size), dtype=torch.bool)
    for k in range(n_masks):  # boxes of varied size, some overlapping
        h, w = (int(v) for v in torch.randint(size // 8, size // 2, (2,), generator=g))
        y, x = int(torch.randint(0, size - h, (1,), generator=g)), int(torch.randint(0, size - w, (1,), generator=g))
        masks[k, y:y + h, x:x + w] = True
    pixels = clip.preprocess([image])
    batched_out = clip.pool(pixels, [masks])[0]  # warm-up
    batched, reference, ratios = [], [], []
    for r in range(repeats):
        # paired: batched passes timed right before and after the reference, so both see the same machine load
        around = [timed(lambda: clip.pool(pixels, [masks]))[0] for _ in range(3)]
        t, ref_out = timed(lambda: clip.pool_per_mask_reference(pixels, [masks]))
        around += [timed(lambda: clip.pool(pixels, [masks]))[0] for _ in range(3)]
        reference.append(t)
        batched += around
        ratios.append(t / median(around))
        log(f"  pooling repeat {r + 1}/{repeats}: {n_masks} single-mask passes {t:.2f}s, "
            f"batched {median(around):.3f}s (median of {len(around)}), ratio {ratios[-1]:.1f}")
    diff = float((ref_out[0] - batched_out).abs().max())
    return {
        "pooling_speedup_n16": median(ratios),
        "pooling_batched_s": median(batched),
        "pooling_per_mask_reference_s": median(reference),
        "pooling_single_pass_s": median(reference) / n_masks,
        "pooling_max_abs_diff": diff,
    }


# ---- 2. online vs cached epochs, extraction rate, pairs/s ---------------------------------------------------------
def bench_epochs(work: str, n: int, size: int, batch: int, repeats: int, shard_size: int):
    import torch
    from detectron2.data import build_detection_train_loader
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    from wish_d2.cache import FeatureCache, extract_dataset_features
    from wish_d2.data.mappers import WISHOnlineMapper
    from wish_d2.engine.data import build_cached_train_loader, dataset_dicts, feature_cache_for
    from wish_d2.engine.trainer import WISHTrainer

    name, source = build_split(work, n, size)
    cfg = bench_cfg(work, name, "ViT-B-16", batch, shard_size, "epoch")
    torch.manual_seed(0)
    model = build_model(cfg)
    dicts = dataset_dicts(name)
    steps = math.ceil(n / batch)

    # feature extraction: the first repeat fills the cache that the cached epochs read
    cache = feature_cache_for(cfg, name, dicts)
    mapper = WISHOnlineMapper(is_train=False)
    with torch.no_grad():
        model.eval().extract([mapper(d) for d in dicts[:2]])  # warm-up, untimed
    extract_t = []
    for r in range(repeats):
        model._text_memo.clear()  # every repeat pays the CLIP text encoding of the split's phrases
        target = cache if r == 0 else FeatureCache(os.path.join(work, f"extract_rep{r}"), name, cache.key, shard_size)
        t, _ = timed(lambda: extract_dataset_features(model, dicts, mapper, target, batch_size=batch))
        extract_t.append(t)
        log(f"  extraction repeat {r + 1}/{repeats}: {n} images in {t:.2f}s ({n / t:.2f} img/s)")
        if r:
            shutil.rmtree(target.dir, ignore_errors=True)

    model.train()
    optimizer = WISHTrainer.build_optimizer(cfg, model)
    online_loader = build_detection_train_loader(dicts, mapper=WISHOnlineMapper(is_train=True),
                                                 total_batch_size=batch, aspect_ratio_grouping=False, num_workers=0)
    cached_loader = build_cached_train_loader(cfg)
    online_it, cached_it = iter(online_loader), iter(cached_loader)
    online_t, cached_t, cached_pairs, cached_images, ratios = [], [], [], [], []

    def cached_epochs(k):
        out = []
        for _ in range(k):
            tc, imgs, pairs = train_steps(model, optimizer, cached_it, steps)
            out.append(tc)
            cached_pairs.append(pairs)
            cached_images.append(imgs)
        return out

    with EventStorage():
        train_steps(model, optimizer, online_it, 1)  # warm-up (loader start, optimizer state)
        train_steps(model, optimizer, cached_it, 1)
        for r in range(repeats):
            # paired: cached epochs right before and after each online epoch see the same machine load
            around = cached_epochs(3)
            t, _, _ = train_steps(model, optimizer, online_it, steps)
            around += cached_epochs(3)
            online_t.append(t)
            cached_t += around
            ratios.append(t / median(around))
            log(f"  epoch repeat {r + 1}/{repeats}: online {t:.2f}s, cached {median(around) * 1000:.1f}ms "
                f"(median of {len(around)}; {steps} steps of {batch}), ratio {ratios[-1]:.0f}")
    cached_s = median(cached_t)
    return {
        "cached_vs_online_epoch_speedup": median(ratios),
        "online_epoch_s": median(online_t),
        "cached_epoch_s": cached_s,
        "extract_images_per_s": n / median(extract_t),
        "train_pairs_per_s": median(cached_pairs) / cached_s,
        "train_images_per_s": median(cached_images) / cached_s,
        "online_images_per_s": steps * batch / median(online_t),
        "_epoch_config": {"split_source": source, "epoch_frames": n, "frame_size": [size, size],
                          "batch_size": batch, "steps_per_epoch": steps, "epoch_shard_size": shard_size,
                          "cached_epoch_repeats": len(cached_t), "online_epoch_repeats": len(online_t),
                          "extract_repeats": len(extract_t),
                          "epoch_images": steps * batch, "pairs_per_epoch": int(median(cached_pairs))},
        "_cache": cache, "_model": model, "_optimizer": optimizer,
    }


def bench_scale(work: str, model, optimizer, template_records, batch: int, online_s_per_image: float,
                shard_size: int = 256, shards: int = 6, images: int = 96):
    """Cached training when the dataset spans more shards than the shard LRU holds (2): ViT-B-16 records (the
    epoch split's own, replicated) in shards of the default size, read with WISHTrainer's shard-grouped sampler
    and, for comparison, with Detectron2's uniform TrainingSampler (one shard load for most images)."""
    import random

    import torch
    from detectron2.data import build_detection_train_loader
    from detectron2.utils.events import EventStorage

    from wish_d2.cache import FeatureCache
    from wish_d2.cache.sampler import ShardGroupedTrainingSampler
    from wish_d2.data.mappers import WISHCachedMapper, attach_cache_refs
    from wish_d2.engine.data import SHARDS_IN_MEMORY

    cache = FeatureCache(os.path.join(work, "scale"), "scale", "k", shard_size, max_open_shards=SHARDS_IN_MEMORY)
    n = shard_size * shards
    ids = [f"img{i:06d}" for i in range(n)]
    for k in range(shards):
        recs = []
        for i in ids[k * shard_size:(k + 1) * shard_size]:
            t = template_records[len(recs) % len(template_records)]
            recs.append(dict(t, image_id=i, v=t["v"].clone(), geom=t["geom"].clone(), v_hands=t["v_hands"].clone()))
        cache.write_shard(k, recs)
    D = template_records[0]["v_hands"].shape[-1]
    cache.write_texts(["x"], torch.zeros(1, 2, D), torch.zeros(2, D))
    cache.finalize(ids)
    shard_mb = os.path.getsize(cache.shard_path(0)) / 2 ** 20
    dicts = attach_cache_refs([{"image_id": i, "noun_phrases": ["x"]} for i in ids], cache)

    def fetch_ms(order):
        c = FeatureCache(os.path.join(work, "scale"), "scale", "k", shard_size, SHARDS_IN_MEMORY)  # cold LRU
        mapper = WISHCachedMapper(c, c.load_texts())
        t, _ = timed(lambda: [mapper(dicts[i]) for i in order])
        return 1000 * t / len(order)

    fetches = images
    shuffled = fetch_ms(random.Random(0).sample(range(n), fetches))
    sequential = fetch_ms(list(range(fetches)))

    def rate(sampler):
        c = FeatureCache(os.path.join(work, "scale"), "scale", "k", shard_size, SHARDS_IN_MEMORY)  # cold LRU
        loader = build_detection_train_loader(dicts, mapper=WISHCachedMapper(c, c.load_texts()), sampler=sampler,
                                              total_batch_size=batch, aspect_ratio_grouping=False, num_workers=0)
        it = iter(loader)
        model.train()
        with EventStorage():
            train_steps(model, optimizer, it, 1)
            t, imgs, _ = train_steps(model, optimizer, it, max(1, images // batch))
        return t / imgs, imgs

    # what WISHTrainer uses (build_cached_train_loader): shards visited a group at a time
    s_per_image, imgs = rate(ShardGroupedTrainingSampler([("scale", d["cache_ref"][0]) for d in dicts],
                                                         group=SHARDS_IN_MEMORY, seed=0))
    uniform_s, _ = rate(None)  # Detectron2's uniform TrainingSampler, for comparison
    shutil.rmtree(cache.dir, ignore_errors=True)
    return {
        "cached_fetch_ms_per_image": shuffled,
        "cached_fetch_sequential_ms_per_image": sequential,
        "cached_images_per_s_at_scale": 1 / s_per_image,
        "cached_vs_online_speedup_at_scale": online_s_per_image / s_per_image,
        "cached_images_per_s_at_scale_uniform_shuffle": 1 / uniform_s,
        "cached_vs_online_speedup_at_scale_uniform_shuffle": online_s_per_image / uniform_s,
        "_scale_config": {"scale_shard_size": shard_size, "scale_shards": shards, "scale_images": n,
                          "scale_shard_mb": round(shard_mb, 1), "scale_timed_images": imgs,
                          "scale_lru_shards": cache._max_open,
                          "scale_records": "the epoch split's ViT-B-16 records, replicated"},
    }


# ---- 3. peak RSS of cached training at two dataset sizes --------------------------------------------------------
RSS_MODEL, RSS_SHARD, RSS_BATCH = "WISH-Tiny-ViT", 16, 32


def rss_child(spec: dict) -> None:
    """Fresh process: build the model, then cached Stage 2 training over the whole split once."""
    import torch

    torch.set_num_threads(spec["threads"])
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    from wish_d2.engine.data import build_cached_train_loader, feature_cache_for
    from wish_d2.engine.trainer import WISHTrainer

    name, _ = build_split(spec["work"], spec["n"], spec["size"])
    cfg = bench_cfg(spec["work"], name, RSS_MODEL, RSS_BATCH, RSS_SHARD, f"rss{spec['n']}")
    cfg.merge_from_other_cfg(cfg.load_cfg(spec["cfg"]))  # exactly the parent's config
    cache = feature_cache_for(cfg, name)
    if cache.key != spec["key"] or not cache.is_complete():
        raise RuntimeError(f"the child's feature cache ({cache.dir}) is not the complete one the parent prepared "
                           f"(key {spec['key']}): did the code change during the run? The child must not extract, "
                           "it would skew the peak")
    torch.manual_seed(0)
    model = build_model(cfg).train()
    optimizer = WISHTrainer.build_optimizer(cfg, model)
    it = iter(build_cached_train_loader(cfg))
    setup_peak = proc_status_mb("VmHWM")
    rss_before = current_rss_mb()
    reset = reset_peak_rss()
    steps = math.ceil(spec["n"] / RSS_BATCH)
    with EventStorage():
        t, images, _ = train_steps(model, optimizer, it, steps)
    loop_peak = proc_status_mb("VmHWM")
    print(json.dumps({"peak_rss_mb": max(setup_peak, loop_peak), "setup_peak_mb": setup_peak,
                      "loop_peak_mb": loop_peak if reset else float("nan"), "rss_before_loop_mb": rss_before,
                      "ru_maxrss_mb": ru_maxrss_mb(), "images": images, "steps": steps, "seconds": t}))


def bench_rss(work: str, small: int, size: int, repeats: int, threads: int):
    from detectron2.modeling import build_model

    from wish_d2.engine.data import ensure_feature_cache

    import torch

    sizes = (small, 4 * small)
    model, prepared = None, {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # untimed setup; one thread is far faster on a shared machine (see README)
    for n in sizes:  # extraction here, in the parent, so the children only train
        name, source = build_split(work, n, size)
        cfg = bench_cfg(work, name, RSS_MODEL, RSS_BATCH, RSS_SHARD, f"rss{n}")
        model = model or build_model(cfg)
        t, cache = timed(lambda: ensure_feature_cache(cfg, name, model))
        prepared[n] = {"cfg": cfg.dump(), "key": cache.key}
        log(f"  {RSS_MODEL} features of {n} frames: {t:.1f}s (setup, not a measured figure)")
    torch.set_num_threads(threads)
    del model
    runs = {n: [] for n in sizes}
    for r in range(repeats):
        for n in sizes:
            spec = {"work": work, "n": n, "size": size, "threads": threads, **prepared[n]}
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-child", json.dumps(spec)],
                                 capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                raise RuntimeError(f"RSS child ({n} frames) failed:\n{out.stderr[-3000:]}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            runs[n].append(res)
            log(f"  RSS repeat {r + 1}/{repeats}, {n} frames: peak {res['peak_rss_mb']:.0f} MB (setup "
                f"{res['setup_peak_mb']:.0f}, loop {res['loop_peak_mb']:.0f}, RSS before the loop "
                f"{res['rss_before_loop_mb']:.0f}; ru_maxrss {res['ru_maxrss_mb']:.0f}), {res['steps']} steps in "
                f"{res['seconds']:.1f}s")
    small_peak = median([x["peak_rss_mb"] for x in runs[sizes[0]]])
    large_peak = median([x["peak_rss_mb"] for x in runs[sizes[1]]])
    growth = {n: median([x["loop_peak_mb"] - x["rss_before_loop_mb"] for x in runs[n]]) for n in sizes}
    return {
        "peak_rss_mb_small": small_peak,
        "peak_rss_mb_large": large_peak,
        "peak_rss_large_over_small": large_peak / small_peak,
        "rss_loop_growth_mb_small": growth[sizes[0]],
        "rss_loop_growth_mb_large": growth[sizes[1]],
        "_rss_config": {"rss_split_frames": list(sizes), "rss_encoder": f"{RSS_MODEL} (cheap encoder; features "
                        "only, the memory under test is the cache/loader/training loop)",
                        "rss_shard_size": RSS_SHARD, "rss_batch_size": RSS_BATCH, "rss_repeats": repeats,
                        "rss_split_source": source, "rss_measure": "VmHWM of the child (whole life), see "
                        "ru_maxrss_mb() for why not ru_maxrss",
                        "rss_loop": "one pass over the split (ceil(n/batch) steps) through build_cached_train_loader, "
                        "num_workers 0, fresh process per run"},
    }


# ---- report --------------------------------------------------------------------------------------------------
def verdict(key, value):
    if key not in TARGETS:
        return "", ""
    op, target = TARGETS[key]
    ok = value >= target if op == ">=" else value <= target
    return f"{op} {target:g}", "PASS" if ok else "FAIL"


def table(results: dict) -> str:
    rows = [
        ("pooling_speedup_n16", "x", "16 single-mask ViT-B-16 passes / 1 batched 16-mask pass"),
        ("pooling_single_pass_s", "s", "one ViT-B-16 pass, 224x224"),
        ("cached_vs_online_epoch_speedup", "x", "online Stage 2 epoch / cached epoch (ViT-B-16)"),
        ("online_epoch_s", "s", "online epoch"),
        ("cached_epoch_s", "s", "cached epoch"),
        ("cached_vs_online_speedup_at_scale", "x", "same, cached side over 6 shards of 256 (shard-grouped sampler)"),
        ("cached_images_per_s_at_scale", "img/s", "cached Stage 2 training over 6 shards of 256"),
        ("cached_vs_online_speedup_at_scale_uniform_shuffle", "x", "same, uniform TrainingSampler (for comparison)"),
        ("cached_images_per_s_at_scale_uniform_shuffle", "img/s", "cached training at scale, uniform shuffle"),
        ("online_images_per_s", "img/s", "online Stage 2 training"),
        ("extract_images_per_s", "img/s", "feature extraction, ViT-B-16"),
        ("train_pairs_per_s", "pairs/s", "cached Stage 2 training, object-hand pairs"),
        ("train_images_per_s", "img/s", "cached Stage 2 training, images"),
        ("cached_fetch_ms_per_image", "ms", "uniformly shuffled record fetch, 256-image shards, LRU of 2"),
        ("cached_fetch_sequential_ms_per_image", "ms", "in-order record fetch, same cache"),
        ("peak_rss_mb_small", "MB", "peak RSS, cached training, small split"),
        ("peak_rss_mb_large", "MB", "peak RSS, cached training, 4x larger split"),
        ("peak_rss_large_over_small", "x", "large / small peak RSS"),
        ("rss_loop_growth_mb_small", "MB", "RSS growth during the loop, small split"),
        ("rss_loop_growth_mb_large", "MB", "RSS growth during the loop, large split"),
    ]
    lines = [f"{'key':50s} {'value':>10s} {'unit':8s} {'target':>8s} {'':4s}  what", "-" * 130]
    for key, unit, what in rows:
        if key not in results:
            continue
        tgt, ok = verdict(key, results[key])
        lines.append(f"{key:50s} {results[key]:10.3f} {unit:8s} {tgt:>8s} {ok:4s}  {what}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Keys, targets and method: see the module docstring of tools/benchmark.py.")
    p.add_argument("--json", metavar="OUT.json", help="write every figure and the run's config here")
    p.add_argument("--quick", action="store_true", help="~1 min smoke run: fewer repeats, smaller splits")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: on a machine shared with other jobs, 2 threads stall at "
                        "every parallel op whenever another process holds a core; small-op paths such as cached "
                        "training and extraction pre/post-processing then run 10-30x slower. Use 2 on idle cores)")
    p.add_argument("--work-dir", help="scratch folder (default: a temporary folder, removed afterwards)")
    p.add_argument("--epoch-frames", type=int, help="frames of the online/cached epoch split (default 32; quick 16)")
    p.add_argument("--rss-frames", type=int, help="small RSS split (the large one is 4x; default 64; quick 16)")
    p.add_argument("--batch-size", type=int, default=8, help="images per step of the epoch comparison (default 8)")
    p.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    import logging

    import torch

    torch.set_num_threads(args.threads)
    import wish_d2  # noqa: F401  (registers everything; Detectron2 compat shims)

    logging.getLogger("wish_d2").setLevel(logging.WARNING)
    logging.getLogger("detectron2").setLevel(logging.WARNING)
    import wish_d2.cache.extract as extract_module

    _tqdm = extract_module.tqdm
    extract_module.tqdm = lambda *a, **k: _tqdm(*a, **{**k, "disable": True})  # the benchmark logs its own progress
    if args.rss_child:
        return rss_child(json.loads(args.rss_child))

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
    }
    try:
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
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    config["load_average_end"] = list(os.getloadavg())
    config["total_s"] = round(time.perf_counter() - _T0, 1)
    results["targets"] = {k: {"op": op, "value": v, "pass": verdict(k, results[k])[1] == "PASS"}
                          for k, (op, v) in TARGETS.items() if k in results}
    results["config"] = config
    print(table(results))
    print(f"\nsplits: epoch {config['epoch_frames']} frames ({config['split_source']}), batch "
          f"{config['batch_size']}; RSS {config['rss_split_frames']} frames with {config['rss_encoder']}; "
          f"torch threads {config['torch_threads']}; total {config['total_s']}s")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        log(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
