"""Online vs cached Stage 2 epochs, the extraction rate, and cached training over more shards than the LRU holds."""
import math
import os
import shutil

from .common import log, median, timed
from .data import bench_cfg, build_split, train_steps


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
