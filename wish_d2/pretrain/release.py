"""The web-pretrained encoder the repository ships: one long, resumable pretraining run, written as a small fp16
open_clip state dict with a manifest beside it, and checked against that manifest whenever it is loaded.

The shipped file lives in ``wish_d2/model_zoo/`` and is named in configs as ``wish_d2://<file>`` (resolved by
:func:`wish_d2.modeling.shipped.resolve_shipped`), so it loads from any working directory through
``MODEL.WISH.CLIP.PRETRAINED``, the same path that real CLIP weights take. The manifest records the exact command,
the settings, the SHA-256, the wall time, the loss curve and the zero-shot probe curve (val frames, used to choose
settings; test frames, reported only).
"""
import copy
import io
import os
import sys
import time
from typing import Dict, List, Optional

import torch

from ..modeling.shipped import manifest_path
from ..utils.atomic import atomic_path, write_json
from ..utils.digest import digest_file
from .web_clip import WebPretrainSettings, pretrain_web_clip
from .zero_shot import synthetic_zero_shot_top1

__all__ = ["pretrain_and_ship"]


def _probe(model: torch.nn.Module, settings: WebPretrainSettings, data_seed: int, frames: Dict[str, int]) -> Dict:
    """Zero-shot top-1 of a copy of ``model`` (the training model is left as it is) on the first frames of the
    synthetic val and test splits, with the mask pooling WISH uses."""
    import open_clip

    from ..modeling.clip_pooling import MaskPooledCLIP

    m = copy.deepcopy(model).eval()
    enc = MaskPooledCLIP(m, tokenizer=open_clip.get_tokenizer(settings.model_name), model_name=settings.model_name)
    out = {}
    for split, n in frames.items():
        if n > 0:
            r = synthetic_zero_shot_top1(enc, data_seed, n, (settings.image_size, settings.image_size), split)
            out[split] = {"top1": r["zero_shot_top1"], "per_category": r["per_category"], "objects": r["objects"]}
    return out


def _fp16_state_dict(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """Floating tensors in fp16 (half the bytes; open_clip's ``load_checkpoint`` copies them into the fp32 model)."""
    return {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}


def pretrain_and_ship(settings: WebPretrainSettings, output: str, work_dir: str, save_every: int, data_seed: int,
                      probe_frames: Dict[str, int], log_every: int = 25, argv: Optional[List[str]] = None) -> Dict:
    """Run (or resume) the pretraining, probing every ``save_every`` steps, then write ``output`` (fp16 state dict)
    and its manifest. Returns the manifest."""
    import logging

    logger = logging.getLogger(__name__)
    os.makedirs(work_dir, exist_ok=True)
    state_path = os.path.join(work_dir, "pretrain_state.pt")
    clock = {"t": time.perf_counter()}
    prior = {"wall_s": 0.0}
    if os.path.isfile(state_path):  # wall time of the earlier sessions of this run, from its log
        try:
            saved = torch.load(state_path, map_location="cpu", weights_only=True)
            prior["wall_s"] = float(saved["log"][-1]["wall_s"]) if saved.get("log") else 0.0
        except Exception:
            pass  # pretrain_web_clip names the damaged file

    def on_save(step: int, model: torch.nn.Module) -> Dict:
        t = time.perf_counter()
        probe = _probe(model, settings, data_seed, probe_frames)
        prior["wall_s"] += t - clock["t"]
        clock["t"] = t
        top1 = {k: round(v["top1"], 4) for k, v in probe.items() if v["top1"] is not None}
        logger.info(f"web CLIP step {step}/{settings.steps}: zero-shot top-1 {top1} ({prior['wall_s'] / 60:.1f} min)")
        return {"wall_s": prior["wall_s"], "probe": probe}

    def progress(d):
        if (d["step"] + 1) % log_every == 0:
            logger.info(f"web CLIP step {d['step'] + 1}/{settings.steps}: loss {d['loss']:.3f} lr {d['lr']:.2e}")

    model, losses, timings = pretrain_web_clip(settings, progress, state_path=state_path, save_every=save_every,
                                               on_save=on_save)
    buf = io.BytesIO()  # torch.save names the zip's folder after the file: save to memory for stable bytes
    torch.save(_fp16_state_dict(model), buf)
    with atomic_path(output) as tmp, open(tmp, "wb") as f:
        f.write(buf.getvalue())
    log = timings["log"]
    final = log[-1]["probe"]
    manifest = {
        "command": " ".join(argv if argv is not None else sys.argv),
        "settings": settings.as_dict(),
        "data_seed_of_probe": data_seed,
        "probe_frames": probe_frames,
        "file": digest_file(output),
        "storage": "open_clip state dict, floating tensors in float16",
        "threads": torch.get_num_threads(),
        "wall_s": log[-1]["wall_s"],
        "loss_first": losses[:8],
        "loss_curve": [[i + 1, round(sum(losses[i:i + log_every]) / len(losses[i:i + log_every]), 4)]
                       for i in range(0, len(losses), log_every)],
        "probe_curve": [{"step": e["step"], "wall_s": round(e["wall_s"], 1),
                         **{k: v["top1"] for k, v in e["probe"].items()}} for e in log],
        "final_probe": final,
    }
    write_json(manifest, manifest_path(output))
    return manifest
