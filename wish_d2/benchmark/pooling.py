"""Batched mask pooling (one ViT pass for N masks) vs N single-mask passes."""
from .common import log, median, timed


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
