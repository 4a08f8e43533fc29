"""Detectron2 glue for the frozen CLIP encoder: build an open_clip model (random or from a LOCAL file) and wrap it.

Weights are never downloaded here. ``pretrained=""`` gives a seeded random init (the embedded default and tests);
anything else must be a local open_clip checkpoint, loaded with ``open_clip.load_checkpoint(..., weights_only=True)``:
the same code path the tests exercise by saving a tiny model and loading it back.
"""
import contextlib
import logging
import os
from pathlib import Path

import open_clip
import torch

from ..registry import CLIP_ENCODER_REGISTRY
from .clip_pooling import MaskPooledCLIP

__all__ = ["build_open_clip", "build_mask_pooled_clip", "build_clip_encoder", "OpenCLIPEncoder", "MODEL_CONFIG_DIR"]

logger = logging.getLogger(__name__)

#: WISH's own open_clip architecture configs (WISH-Tiny-ViT: embedded default; WISH-Test-ViT: unit tests).
MODEL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"
_registered = False

_HOW_TO_GET_WEIGHTS = (
    "WISH never downloads weights. On a machine with internet, save an open_clip checkpoint, e.g. "
    "`m = open_clip.create_model('ViT-B-16', pretrained='laion2b_s34b_b88k'); "
    "torch.save(m.state_dict(), 'clip_vit_b16.pth')` (for OpenAI weights use MODEL_NAME 'ViT-B-16-quickgelu' "
    "with pretrained='openai'), copy the file here and set MODEL.WISH.CLIP.PRETRAINED to its path, "
    "or set it to '' for a random init (tests / synthetic benchmark only)."
)


def register_model_configs() -> None:
    """Make WISH's model_configs/*.json visible to open_clip (idempotent)."""
    global _registered
    if not _registered:
        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _registered = True


@contextlib.contextmanager
def _quiet_open_clip():
    """open_clip warns 'initialized randomly' even when we load weights right after; silence that one call."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def build_open_clip(model_name: str, pretrained: str = "", init_seed: int = 0, device="cpu") -> torch.nn.Module:
    """Frozen, eval-mode open_clip model.

    Args:
        model_name: open_clip architecture (built-in such as "ViT-B-16", or WISH's "WISH-Tiny-ViT").
        pretrained: "" for a random init seeded by ``init_seed`` (reproducible), else a local checkpoint file.
        init_seed: seed of the random init (the global RNG state is left untouched).
        device: where the model lives.
    Raises:
        FileNotFoundError: ``pretrained`` names a file that does not exist (the message says how to get weights).
        RuntimeError: the file exists but is not a loadable checkpoint for ``model_name``.
    """
    register_model_configs()
    if model_name not in open_clip.list_models():
        raise ValueError(f"Unknown open_clip model {model_name!r}. Known: WISH-Tiny-ViT, WISH-Test-ViT, ViT-B-16, ...")
    path = None
    if pretrained:
        path = os.path.abspath(os.path.expanduser(str(pretrained)))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CLIP checkpoint not found: {path}. {_HOW_TO_GET_WEIGHTS}")
        if "openai" in os.path.basename(path).lower() and "quickgelu" not in model_name.lower():
            logger.warning(
                "CLIP checkpoint %s looks like OpenAI weights, which were trained with QuickGELU; use MODEL_NAME "
                "'%s-quickgelu' or the embeddings will be wrong (state-dict keys match either way).", path, model_name
            )
    with torch.random.fork_rng(devices=[]), _quiet_open_clip():
        torch.manual_seed(int(init_seed))
        model = open_clip.create_model(model_name, pretrained=None, device="cpu")
    if path is not None:
        try:
            open_clip.load_checkpoint(model, path, strict=True, weights_only=True)
        except Exception as e:  # torch.load / pickle / zip / key-mismatch errors all mean "bad file for this model"
            raise RuntimeError(
                f"Could not load CLIP checkpoint {path} into open_clip model {model_name!r} "
                f"(corrupt file, or weights of another architecture): {type(e).__name__}: {e}"
            ) from e
        logger.info("Loaded CLIP %s weights from %s", model_name, path)
    else:
        logger.info("CLIP %s: random init (seed %d), no weights loaded", model_name, int(init_seed))
    model = model.to(device).eval()
    model.requires_grad_(False)
    return model


def build_mask_pooled_clip(
    model_name: str, pretrained: str = "", init_seed: int = 0, device="cpu", soft_coverage: bool = True
) -> MaskPooledCLIP:
    """``build_open_clip`` + the mask-pooling wrapper with the model's own tokenizer (no cfg needed)."""
    model = build_open_clip(model_name, pretrained, init_seed, device)
    return MaskPooledCLIP(
        model, tokenizer=open_clip.get_tokenizer(model_name), model_name=model_name, soft_coverage=soft_coverage
    )


@CLIP_ENCODER_REGISTRY.register()
def OpenCLIPEncoder(cfg) -> MaskPooledCLIP:
    """Registry entry "OpenCLIPEncoder": ``cfg.MODEL.WISH.CLIP.{MODEL_NAME, PRETRAINED, INIT_SEED,
    MASK_SOFT_COVERAGE}`` -> ``MaskPooledCLIP`` on ``cfg.MODEL.DEVICE``."""
    c = cfg.MODEL.WISH.CLIP
    return build_mask_pooled_clip(
        c.MODEL_NAME, c.PRETRAINED, c.INIT_SEED, device=cfg.MODEL.DEVICE, soft_coverage=c.MASK_SOFT_COVERAGE
    )


def build_clip_encoder(cfg) -> MaskPooledCLIP:
    """The encoder named by ``cfg.MODEL.WISH.CLIP.ENCODER`` in ``CLIP_ENCODER_REGISTRY``."""
    return CLIP_ENCODER_REGISTRY.get(cfg.MODEL.WISH.CLIP.ENCODER)(cfg)
