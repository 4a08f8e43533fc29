"""The web-pretrained CLIP as a file: keyed by its settings under ``$DETECTRON2_DATASETS``, written atomically with a
digest beside it, checked on every reuse, and built on first use.

Layout: ``<root>/wish_synth_web_clip/<model>_seed<S>_<key>.pt`` (an open_clip state dict, loadable with
``open_clip.load_checkpoint(..., weights_only=True)`` and thus through ``MODEL.WISH.CLIP.PRETRAINED``), and
``<same>.json`` with the settings, the file's size and SHA-256, the loss curve and the time it took. The JSON is
written after the checkpoint, so a checkpoint without a matching JSON is incomplete and is rebuilt.
"""
import hashlib
import io
import json
import logging
import os
import time
from typing import Dict, Optional

import torch

from ..utils.digest import digest_file
from ..utils.atomic import atomic_path, write_json
from .web_clip import WebPretrainSettings, pretrain_web_clip

__all__ = ["web_clip_path", "ensure_web_clip", "settings_from_cfg", "web_clip_from_cfg", "resolve_web_pretrained",
           "WEB_CLIP_DIR"]

logger = logging.getLogger(__name__)
WEB_CLIP_DIR = "wish_synth_web_clip"


def _key(settings: WebPretrainSettings) -> str:
    blob = json.dumps(settings.as_dict(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def web_clip_path(root: str, settings: WebPretrainSettings) -> str:
    return os.path.join(root, WEB_CLIP_DIR, f"{settings.model_name}_seed{settings.seed}_{_key(settings)}.pt")


def _sidecar(path: str) -> str:
    return os.path.splitext(path)[0] + ".json"


def _valid(path: str, settings: WebPretrainSettings) -> Optional[str]:
    """``None`` if the checkpoint at ``path`` is complete and intact, else why not."""
    meta_path = _sidecar(path)
    if not os.path.isfile(path):
        return "no checkpoint"
    if not os.path.isfile(meta_path):
        return "checkpoint without its digest file (interrupted write)"
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        return f"unreadable digest file {meta_path}: {e}"
    if meta.get("settings") != settings.as_dict():
        return f"digest file {meta_path} names other settings"
    if digest_file(path) != meta.get("file"):
        return f"checkpoint {path} does not match its digest (damaged or replaced)"
    return None


def ensure_web_clip(root: str, settings: WebPretrainSettings = WebPretrainSettings()) -> str:
    """The checkpoint's path, pretraining it first unless an intact copy exists. Concurrent builders each write a
    complete file under a temporary name and rename it into place; the bytes are the same on one machine."""
    path = web_clip_path(root, settings)
    why = _valid(path, settings)
    if why is None:
        return path
    logger.info(f"web CLIP pretraining ({why}): {settings} -> {path}")
    t0, c0 = time.perf_counter(), time.process_time()

    def progress(d):
        if d["step"] % 25 == 0 or d["step"] == settings.steps - 1:
            logger.info(f"web CLIP step {d['step'] + 1}/{settings.steps}: loss {d['loss']:.3f}")

    model, losses, timings = pretrain_web_clip(settings, progress)
    buf = io.BytesIO()  # torch.save names the zip's folder after the file: save to memory for stable bytes
    torch.save(model.state_dict(), buf)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(buf.getvalue())
    meta = {"settings": settings.as_dict(), "file": digest_file(path), "loss_first": losses[:5],
            "loss_last": losses[-5:], "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "threads": torch.get_num_threads(), **timings}
    write_json(meta, _sidecar(path))
    logger.info(f"web CLIP written: {path} ({meta['wall_s']:.0f} s wall, loss {losses[0]:.3f} -> "
                f"{sum(losses[-10:]) / len(losses[-10:]):.3f})")
    return path


def settings_from_cfg(cfg) -> WebPretrainSettings:
    c = cfg.MODEL.WISH.CLIP
    p = c.WEB_PRETRAIN
    return WebPretrainSettings(model_name=c.MODEL_NAME, seed=int(p.SEED), steps=int(p.STEPS),
                               batch_size=int(p.BATCH_SIZE), lr=float(p.LR),
                               unlocked_image_groups=int(p.UNLOCKED_IMAGE_GROUPS),
                               image_size=int(p.IMAGE_SIZE), num_pairs=int(p.NUM_PAIRS),
                               object_share=float(p.OBJECT_SHARE))


def web_clip_from_cfg(cfg, root: Optional[str] = None) -> str:
    """``ensure_web_clip`` under ``$DETECTRON2_DATASETS`` (default ``datasets``) with the config's settings."""
    root = root or os.environ.get("DETECTRON2_DATASETS", "datasets")
    return ensure_web_clip(root, settings_from_cfg(cfg))


def resolve_web_pretrained(cfg) -> Dict:
    """With ``MODEL.WISH.CLIP.WEB_PRETRAIN.ENABLED``, point ``CLIP.PRETRAINED`` at the web-pretrained checkpoint
    (built on first use); from there on it is loaded like any real checkpoint. ``cfg`` must be unfrozen."""
    c = cfg.MODEL.WISH.CLIP
    if not c.WEB_PRETRAIN.ENABLED:
        return {}
    if c.PRETRAINED:
        raise ValueError(f"MODEL.WISH.CLIP.WEB_PRETRAIN.ENABLED asks for the web-pretrained encoder, but "
                         f"MODEL.WISH.CLIP.PRETRAINED is already {c.PRETRAINED!r}: set one of the two")
    c.PRETRAINED = web_clip_from_cfg(cfg)
    return {"MODEL.WISH.CLIP.PRETRAINED": c.PRETRAINED}
