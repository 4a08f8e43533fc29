"""Contrastive image-text pretraining of an open_clip model on the synthetic web split.

The synthetic world then has what the real world has: an encoder pretrained on image-caption pairs that never saw the
task's labels (the web split names what is visible, never what is held). The loss is open_clip's own ``ClipLoss``
with the model's learnable ``logit_scale``; images are normalised exactly as ``MaskPooledCLIP.preprocess`` does, so
the pipeline sees the pixel statistics the encoder was trained on. Deterministic by seed on a given machine and
thread count (float summation order differs between thread counts).
"""
import contextlib
import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from ..data.synthetic.web import web_pair, web_pairs

__all__ = ["WebPretrainSettings", "pretrain_web_clip", "normalise_images"]

logger = logging.getLogger(__name__)

WEB_CLIP_VERSION = 1  # bump when the bytes a setting produces change (captions, schedule, loss)


@dataclass(frozen=True)
class WebPretrainSettings:
    """Everything that decides the checkpoint's bytes (its cache key). ``unlocked_image_groups < 0`` trains the whole
    image tower; ``k >= 0`` keeps open_clip's ``lock_image_tower(unlocked_groups=k)``: only the last ``k`` groups
    (for a ViT: ``proj``, then last block + ``ln_post``, ...) train, which halves the cost of a step."""
    model_name: str = "WISH-Tiny-ViT"
    seed: int = 0
    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 20
    unlocked_image_groups: int = 2
    num_pairs: int = 1000  # size of the web split cycled over; 0: every step draws new pairs
    train_token_embedding: bool = False  # the 49k-row vocabulary table; the captions use about a hundred rows
    image_size: int = 160
    object_share: float = 0.0  # share of pairs that are close-ups of one object (web_pair's ``object_share``)
    version: int = WEB_CLIP_VERSION

    def as_dict(self) -> Dict:
        return dataclasses.asdict(self)


def normalise_images(model: torch.nn.Module, images: np.ndarray) -> torch.Tensor:
    """uint8 RGB ``[B, H, W, 3]`` at the model's size -> normalised ``[B, 3, H, W]`` (MaskPooledCLIP's statistics)."""
    pp = open_clip.get_model_preprocess_cfg(model)
    mean = torch.tensor(pp.get("mean", open_clip.OPENAI_DATASET_MEAN), dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(pp.get("std", open_clip.OPENAI_DATASET_STD), dtype=torch.float32).view(1, 3, 1, 1)
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return (x - mean) / std


def _image_features_fixed(s: WebPretrainSettings) -> bool:
    """Only ``proj`` (k = 1), or the last block, ``ln_post`` and ``proj`` (k = 2) train, over a finite set of pairs:
    what enters the trained part never changes, so it is computed once per pair instead of once per step (the same
    numbers, at a fraction of the cost)."""
    return s.unlocked_image_groups in (1, 2) and s.num_pairs > 0


@contextlib.contextmanager
def _without_proj(visual: torch.nn.Module):
    """open_clip's ViT skips ``proj`` when it is ``None``: its forward then returns the pooled, pre-projection
    features."""
    proj = visual.proj
    visual.proj = None
    try:
        yield
    finally:
        visual.proj = proj


@torch.no_grad()
def _fixed_image_features(model: torch.nn.Module, pooler, s: WebPretrainSettings, chunk: int = 64):
    """``(fixed input of the trained part for every pair, captions)`` of the finite web split: pre-projection
    features ``[num_pairs, width]`` (k = 1) or the tokens entering the last block ``[num_pairs, 1 + g*g, width]``
    (k = 2)."""
    out, captions = [], []
    for first in range(0, s.num_pairs, chunk):
        pairs = list(web_pairs(s.seed, first, min(chunk, s.num_pairs - first), s.image_size, s.image_size,
                               s.object_share))
        images = normalise_images(model, np.stack([p["image"] for p in pairs]))
        if s.unlocked_image_groups == 1:
            with _without_proj(model.visual):
                out.append(model.visual(images))
        else:
            out.append(pooler._tokens_before_last_block(images))
        captions += [p["caption"] for p in pairs]
    return torch.cat(out), captions


def _image_embeddings(model: torch.nn.Module, pooler, fixed: torch.Tensor, s: WebPretrainSettings) -> torch.Tensor:
    """Normalised image embeddings from the fixed inputs. For k = 2 the CLS token goes through the last block as a
    mask query with an all-zero bias (the whole image), which reproduces ``encode_image`` exactly, and trains the
    very path that mask pooling uses; only the CLS row of the block is computed."""
    if s.unlocked_image_groups == 1:
        return F.normalize(fixed @ model.visual.proj, dim=-1)
    bias = torch.zeros((fixed.shape[0], 1, fixed.shape[1]), dtype=fixed.dtype)
    cls = pooler._last_block_queries(fixed, fixed[:, :1], bias)[:, 0]
    return F.normalize(pooler._project(cls), dim=-1)


def _lr_at(s: WebPretrainSettings, step: int) -> float:
    """Linear warm-up, then cosine decay to zero (open_clip's usual schedule)."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    t = (step - s.warmup) / max(1, s.steps - s.warmup)
    return 0.5 * s.lr * (1.0 + float(np.cos(np.pi * t)))


def _load_state(path: str, settings: WebPretrainSettings, model, opt) -> Dict:
    """Restore a run saved by :func:`_save_state`; a state of other settings is refused, never mixed in."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        saved = state["settings"]
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    except Exception as e:  # truncated, foreign or garbage file: say which
        raise RuntimeError(f"web CLIP pretraining: cannot resume from {path}: {type(e).__name__}: {e}. "
                           "Delete it to start over.") from e
    if saved != settings.as_dict():
        diff = sorted(k for k in set(saved) | set(settings.as_dict()) if saved.get(k) != settings.as_dict().get(k))
        raise ValueError(f"web CLIP pretraining: {path} was saved with other settings ({', '.join(diff)}); "
                         "delete it or use another state file")
    return state


def _save_state(path: str, settings: WebPretrainSettings, model, opt, step: int, losses: List[float],
                log: List[Dict]) -> None:
    """Everything a resumed run needs, written atomically (a killed save leaves the previous state intact)."""
    from ..utils.atomic import atomic_path

    state = {"settings": settings.as_dict(), "step": step, "model": model.state_dict(),
             "optimizer": opt.state_dict(), "losses": torch.tensor(losses, dtype=torch.float64),
             "log": [dict(d) for d in log]}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def pretrain_web_clip(settings: WebPretrainSettings, progress: Optional[Callable[[Dict], None]] = None,
                      state_path: Optional[str] = None, save_every: int = 0,
                      on_save: Optional[Callable[[int, torch.nn.Module], Dict]] = None,
                      stop_at: Optional[int] = None) -> (torch.nn.Module, List[float], Dict):
    """Train ``settings.model_name`` from its seeded random init on web pairs ``0 .. steps * batch_size - 1`` (each
    pair seen once), or cycling over pairs ``0 .. num_pairs - 1``. Returns ``(model in eval mode, loss per step,
    timings)``; timings hold ``log``, the list of what ``on_save`` returned. The global RNG is left alone.

    With ``state_path``, the run saves its full state (model, optimizer, step, losses, log) there every
    ``save_every`` steps and at the end, and a later call with the same settings resumes from it: a step's pairs
    depend only on the step, so a resumed run computes the same steps as an uninterrupted one. ``on_save(step,
    model)`` runs before each save (e.g. a zero-shot probe; it must not change the model) and its dict is logged.
    ``stop_at`` ends the run after that many steps of the full schedule (to replay a run's first steps)."""
    from ..modeling.clip_encoder import build_open_clip
    from ..modeling.clip_pooling import MaskPooledCLIP

    s = settings
    if s.steps < 1 or s.batch_size < 2:
        raise ValueError(f"web pretraining needs steps >= 1 and batch_size >= 2, got {s.steps} and {s.batch_size}")
    model = build_open_clip(s.model_name, "", init_seed=s.seed)
    pooler = MaskPooledCLIP(model, model_name=s.model_name)  # checks the ViT structure; freezes, so unfreeze after
    model.requires_grad_(True)
    if s.unlocked_image_groups >= 0:
        model.lock_image_tower(unlocked_groups=s.unlocked_image_groups)
    if not s.train_token_embedding:  # its dense gradient and AdamW state over 49k rows would dominate each step
        model.token_embedding.requires_grad_(False)
    model.train()
    tokenizer = open_clip.get_tokenizer(s.model_name)
    loss_fn = open_clip.loss.ClipLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # gains, biases, logit_scale: no weight decay (open_clip's rule)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=s.lr, betas=(0.9, 0.98), eps=1e-6)
    losses, t_data, t_step, log, start = [], 0.0, 0.0, [], 0
    if state_path and os.path.isfile(state_path):
        state = _load_state(state_path, s, model, opt)
        start, losses, log = int(state["step"]), [float(x) for x in state["losses"]], list(state["log"])
        logger.info(f"web CLIP pretraining: resumed from {state_path} at step {start}/{s.steps}")

    def checkpoint(done: int):
        if on_save is not None:
            was_training = model.training
            entry = {"step": done, **on_save(done, model)}
            model.train(was_training)
            log.append(entry)
        if state_path:
            _save_state(state_path, s, model, opt, done, losses, log)

    t0 = time.perf_counter()
    fixed, tokens = None, None
    if _image_features_fixed(s):
        fixed, captions = _fixed_image_features(model, pooler, s)
        tokens = tokenizer(captions)  # tokenised once, like the features
    t_data += time.perf_counter() - t0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        for step in range(start, s.steps if stop_at is None else min(s.steps, int(stop_at))):
            t0 = time.perf_counter()
            first = step * s.batch_size
            idx = [(first + k) % s.num_pairs for k in range(s.batch_size)] if s.num_pairs > 0 else \
                list(range(first, first + s.batch_size))
            if fixed is not None:
                texts = tokens[idx]
            else:
                pairs = [web_pair(s.seed, i, s.image_size, s.image_size, s.object_share) for i in idx]
                images = normalise_images(model, np.stack([p["image"] for p in pairs]))
                texts = tokenizer([p["caption"] for p in pairs])
            t1 = time.perf_counter()
            for g in opt.param_groups:
                g["lr"] = _lr_at(s, step)
            if fixed is not None:  # what CLIP.forward computes, with the locked tower's output looked up
                image_features = _image_embeddings(model, pooler, fixed[idx], s)
                text_features = model.encode_text(texts, normalize=True)
                loss = loss_fn(image_features, text_features, model.logit_scale.exp())
            else:
                out = model(images, texts)
                loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"]) \
                    if isinstance(out, dict) else loss_fn(*out[:3])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"web CLIP pretraining: non-finite loss at step {step} ({settings})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():  # CLIP's clamp: the temperature may not exceed 100
                model.logit_scale.clamp_(0, float(np.log(100)))
            losses.append(float(loss.detach()))
            t_data += t1 - t0
            t_step += time.perf_counter() - t1
            if progress is not None:
                progress({"step": step, "loss": losses[-1], "lr": _lr_at(s, step)})
            if save_every > 0 and (step + 1) % save_every == 0 and step + 1 < s.steps:
                checkpoint(step + 1)
    if stop_at is None and (not log or log[-1]["step"] != s.steps):
        checkpoint(s.steps)
    model.eval()
    model.requires_grad_(False)
    return model, losses, {"data_s": t_data, "train_s": t_step, "log": log}
