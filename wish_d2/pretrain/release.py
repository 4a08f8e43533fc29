"""The web-pretrained encoder the repository ships: one long, resumable pretraining run, written as a small fp16
open_clip state dict with a manifest beside it, and checked against that manifest whenever it is loaded.

The shipped file lives in ``wish_d2/model_zoo/`` and is named in configs as ``wish_d2://<file>`` (resolved by
:func:`resolve_shipped`), so it loads from any working directory through ``MODEL.WISH.CLIP.PRETRAINED``, the same
path that real CLIP weights take. The manifest records the exact command, the settings, the SHA-256, the wall time,
the loss curve and the zero-shot probe curve (val frames, used to choose settings; test frames, reported only).
"""
import copy
import io
import json
import os
import sys
import time
from typing import Dict, List, Optional

import torch

from ..cache.integrity import digest_file
from ..utils.atomic import atomic_path, write_json
from .web_clip import WebPretrainSettings, pretrain_web_clip
from .zero_shot import synthetic_zero_shot_top1

__all__ = ["MODEL_ZOO_DIR", "SHIPPED_PREFIX", "resolve_shipped", "manifest_path", "verify_shipped",
           "pretrain_and_ship"]

MODEL_ZOO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model_zoo")
SHIPPED_PREFIX = "wish_d2://"


def manifest_path(path: str) -> str:
    return os.path.splitext(path)[0] + ".json"


def verify_shipped(path: str) -> Dict:
    """The manifest of a shipped checkpoint, after checking that the file is the one it describes."""
    mpath = manifest_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"shipped encoder {path} is missing (the repository tracks it; restore it with git "
                                f"checkout, or rebuild it with the command in {mpath})")
    try:
        with open(mpath) as f:
            manifest = json.load(f)
        expected = manifest["file"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"shipped encoder {path}: its manifest {mpath} is missing or unreadable ({e})") from e
    actual = digest_file(path)
    if actual != expected:
        raise ValueError(f"shipped encoder {path} does not match its manifest {mpath} (SHA-256 {actual['sha256'][:12]}"
                         f"..., {actual['bytes']} bytes; expected {str(expected.get('sha256'))[:12]}..., "
                         f"{expected.get('bytes')} bytes): damaged or replaced")
    return manifest


def resolve_shipped(value: str) -> str:
    """``wish_d2://NAME`` -> the verified path of ``model_zoo/NAME``; anything else is returned unchanged."""
    if not str(value).startswith(SHIPPED_PREFIX):
        return value
    name = str(value)[len(SHIPPED_PREFIX):]
    path = os.path.normpath(os.path.join(MODEL_ZOO_DIR, name))
    if os.path.dirname(path) != MODEL_ZOO_DIR:
        raise ValueError(f"{value!r}: a shipped encoder is a file name inside wish_d2/model_zoo/")
    verify_shipped(path)
    return path


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
