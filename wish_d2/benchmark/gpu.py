"""GPU figures at real scale (``python -m wish_d2.benchmark.gpu``, run by ``tools/gpu_check.sh``).

* extraction frames/s of 1920x1080 frames with 16 / 64 / 128 proposals and 2 hands, ViT-B-16 (random weights), the
  image tower under bf16 autocast (``MODEL.WISH.CLIP.AUTOCAST``) unless ``--no-autocast``;
* peak GPU memory of that extraction (``torch.cuda.max_memory_allocated``);
* Stage 2 training iterations/s on cached-style records of those frames (batch 32, AdamW, on the GPU).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

from .common import log, median, timed
from .extraction import build_scale_model, load_input, write_frame


def _cuda_timed(fn):
    import torch

    torch.cuda.synchronize()
    t, out = timed(lambda: (fn(), torch.cuda.synchronize())[0])
    return t, out


def gpu_figures(work: str, autocast: bool = True, repeats: int = 5, train_iters: int = 20, batch: int = 32) -> dict:
    import torch
    from detectron2.utils.events import EventStorage

    opts = ["MODEL.WISH.STAGE", "stage2", "MODEL.WISH.SUPERVISION", "gt"]
    if autocast:
        opts += ["MODEL.WISH.CLIP.AUTOCAST", "bfloat16"]
    model = build_scale_model(work, "cuda", *opts)
    out = {"device_name": torch.cuda.get_device_name(0), "autocast": "bfloat16" if autocast else "float32"}
    records = []
    for n in (16, 64, 128):
        x = load_input(write_frame(os.path.join(work, "frames_gpu"), seed=n, n=n))
        with torch.no_grad():
            records += model.extract([x])  # warm-up (cuDNN/cuBLAS choices), untimed
            torch.cuda.reset_peak_memory_stats()
            times = [_cuda_timed(lambda: model.extract([x]))[0] for _ in range(repeats)]
        out[f"extract_1080p_n{n}_frames_per_s"] = 1.0 / median(times)
        out[f"extract_1080p_n{n}_peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        log(f"  1080p N={n}: {1 / median(times):.2f} frames/s, peak GPU memory "
            f"{out[f'extract_1080p_n{n}_peak_gpu_mb']:.0f} MB")
    dicts = [{"wish_features": records[k % len(records)], "noun_phrases": ["object"], "image_id": str(k)}
             for k in range(batch)]
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)

    def step():
        losses = model(dicts)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()

    with EventStorage():
        step()  # warm-up
        torch.cuda.reset_peak_memory_stats()
        t, _ = _cuda_timed(lambda: [step() for _ in range(train_iters)])
    out["train_iters_per_s"] = train_iters / t
    out["train_peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    out["train_batch"] = batch
    log(f"  Stage 2 training: {train_iters / t:.1f} it/s (batch {batch})")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m wish_d2.benchmark.gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", metavar="OUT.json")
    p.add_argument("--no-autocast", action="store_true", help="float32 image tower")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        sys.exit("wish_d2.benchmark.gpu: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
                 "run it on a GPU machine with a CUDA build of torch")
    import wish_d2  # noqa: F401

    work = tempfile.mkdtemp(prefix="wish_gpu_")
    try:
        figures = gpu_figures(work, autocast=not args.no_autocast)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"GPU report ({figures['device_name']}, ViT-B-16 random weights, image tower {figures['autocast']})")
    for n in (16, 64, 128):
        print(f"  extraction 1920x1080, {n:3d} proposals: {figures[f'extract_1080p_n{n}_frames_per_s']:7.2f} "
              f"frames/s, peak GPU memory {figures[f'extract_1080p_n{n}_peak_gpu_mb']:7.0f} MB")
    print(f"  Stage 2 training, batch {figures['train_batch']}: {figures['train_iters_per_s']:.1f} it/s, peak GPU "
          f"memory {figures['train_peak_gpu_mb']:.0f} MB")
    if args.json:
        from ..utils.atomic import atomic_path

        with atomic_path(args.json) as tmp, open(tmp, "w") as f:
            json.dump(figures, f, indent=2)
    return figures


if __name__ == "__main__":
    main()
