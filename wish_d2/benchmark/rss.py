"""Peak RSS of cached Stage 2 training at two dataset sizes, each in a fresh child process."""
import math

from .common import current_rss_mb, log, median, proc_status_mb, reset_peak_rss, ru_maxrss_mb, run_child, timed
from .data import bench_cfg, build_split, train_steps

RSS_MODEL, RSS_SHARD, RSS_BATCH = "WISH-Tiny-ViT", 16, 32


def rss_child(spec: dict) -> dict:
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
    return {"peak_rss_mb": max(setup_peak, loop_peak), "setup_peak_mb": setup_peak,
            "loop_peak_mb": loop_peak if reset else float("nan"), "rss_before_loop_mb": rss_before,
            "ru_maxrss_mb": ru_maxrss_mb(), "images": images, "steps": steps, "seconds": t}


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
            res = run_child("rss", spec)
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
