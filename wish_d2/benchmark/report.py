"""Targets, verdicts and the printed table."""

TARGETS = {  # key: (comparison, value)
    "pooling_speedup_n16": (">=", 12.0),
    "cached_vs_online_epoch_speedup": (">=", 50.0),
    "peak_rss_large_over_small": ("<=", 1.25),
    "cached_vs_online_speedup_at_scale": (">=", 50.0),  # diagnostic: the same target, beyond 2 shards
    # --scale: real frame sizes, proposal counts and split sizes
    "extract_overhead_vs_vit_1080p_n64": ("<=", 2.0),
    "extract_growth_n16_to_n128_1080p": ("<=", 1.5),
    "extract_peak_rss_mb_1080p_n128": ("<=", 2500.0),
    "cache_kb_per_frame_n64_vitb16": ("<=", 200.0),
    "visor_load_frames_per_s": (">=", 300.0),
}


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
        ("extract_overhead_vs_vit_1080p_n64", "x", "extract 1 frame 1920x1080, 64 proposals, 2 hands / bare ViT-B-16"),
        ("extract_growth_n16_to_n128_1080p", "x", "extraction time, 128 proposals / 16 proposals, 1080p"),
        ("extract_peak_rss_mb_1080p_n128", "MB", "peak RSS, fresh process extracting one 1080p frame, 128 proposals"),
        ("bare_vit_b16_1080p_s", "s", "one bare ViT-B-16 forward of a 1080p frame (resize + encode_image)"),
        ("extract_1080p_n16_s", "s", "extraction, 1080p, 16 proposals"),
        ("extract_1080p_n64_s", "s", "extraction, 1080p, 64 proposals"),
        ("extract_1080p_n128_s", "s", "extraction, 1080p, 128 proposals"),
        ("cache_kb_per_frame_n64_vitb16", "KB", "feature cache shard KiB per extracted 1080p frame, storage dtype of "
         "configs/wish_epic.yaml"),
        ("cache_kb_per_frame_n64_vitb16_float32", "KB", "same, float32 storage (the add_wish_config default)"),
        ("cache_kb_per_frame_n64_vitb16_float16", "KB", "same, float16 storage"),
        ("cache_kb_per_frame_n64_vitb16_int8", "KB", "same, int8 storage"),
        ("visor_load_frames_per_s", "frames/s", "register + load a realistic VISOR-format split, one process, "
         "from its keyed dict cache"),
        ("visor_first_load_frames_per_s", "frames/s", "same, first load: parse the VISOR JSON + write the dict cache"),
    ]
    lines = [f"{'key':50s} {'value':>10s} {'unit':8s} {'target':>8s} {'':4s}  what", "-" * 130]
    for key, unit, what in rows:
        if key not in results:
            continue
        tgt, ok = verdict(key, results[key])
        lines.append(f"{key:50s} {results[key]:10.3f} {unit:8s} {tgt:>8s} {ok:4s}  {what}")
    return "\n".join(lines)
