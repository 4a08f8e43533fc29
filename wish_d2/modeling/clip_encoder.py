"""Detectron2 glue for the frozen CLIP encoder: build an open_clip model and wrap it for mask pooling.

``MODEL.WISH.CLIP.PRETRAINED`` names the weights in any of the forms open_clip and Detectron2 users know:

* ``""``: a seeded random init (the embedded synthetic default and tests);
* a local checkpoint file, loaded with ``open_clip.load_checkpoint(..., weights_only=True)``;
* ``wish_d2://NAME``: an encoder the package ships in ``wish_d2/model_zoo/`` (checked against its manifest first,
  then loaded like any local file; :mod:`wish_d2.pretrain.release`);
* an http(s) URL of such a file, downloaded once and cached by Detectron2's ``PathManager``
  (:mod:`wish_d2.modeling.weights`), then loaded like a local file;
* an open_clip pretrained tag of ``MODEL_NAME`` (``"openai"``, ``"laion2b_s34b_b88k"``, ...:
  ``open_clip.list_pretrained_tags_by_model(MODEL_NAME)``), fetched through open_clip's own download and cache, which
  also sets the tag's image mean and std.

An existing local file wins over a tag of the same name. Offline (``HF_HUB_OFFLINE=1``) a tag or URL that is not
cached fails at once with the key and the value in the message.
"""
import contextlib
import logging
import os
from pathlib import Path

import open_clip
import torch

from ..registry import CLIP_ENCODER_REGISTRY
from .clip_pooling import MaskPooledCLIP
from .shipped import resolve_shipped
from .weights import (
    DOWNLOAD_TIMEOUT_S,
    MissingWeightsError,
    UnreadableWeightsError,
    WeightsUnavailableError,
    hub_unreachable,
    is_url,
    offline_mode,
    resolve_weights_file,
    socket_timeout,
)

__all__ = ["build_open_clip", "build_mask_pooled_clip", "build_clip_encoder", "OpenCLIPEncoder", "MODEL_CONFIG_DIR"]

logger = logging.getLogger(__name__)

#: WISH's own open_clip architecture configs (WISH-Tiny-ViT: embedded default; WISH-Test-ViT: unit tests).
MODEL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"
_registered = False
_KEY = "MODEL.WISH.CLIP.PRETRAINED"

_HOW_TO_GET_WEIGHTS = (
    f"Set {_KEY} to an open_clip pretrained tag of MODEL_NAME (e.g. 'laion2b_s34b_b88k' for ViT-B-16; for 'openai' "
    "use MODEL_NAME 'ViT-B-16-quickgelu'), to a URL or local path of an open_clip checkpoint "
    "(torch.save(model.state_dict(), path)), or to '' for a random init (tests / synthetic benchmark only)."
)


def register_model_configs() -> None:
    """Make WISH's model_configs/*.json visible to open_clip (idempotent)."""
    global _registered
    if not _registered:
        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _registered = True


class _DropRandomInitWarning(logging.Filter):
    """open_clip's 'No pretrained weights loaded ... initialized randomly' record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded for model")


@contextlib.contextmanager
def _without_random_init_warning():
    """open_clip logs 'initialized randomly' on the root logger whenever it builds a model without weights, which
    WISH does on purpose (seeded init, or weights loaded right after). Drop exactly that record, only during the
    call: every other record, of every logger, still gets through."""
    drop = _DropRandomInitWarning()
    logging.root.addFilter(drop)
    try:
        yield
    finally:
        logging.root.removeFilter(drop)


def _check_quick_gelu(model_name: str, source: str, tag_quick_gelu: bool) -> None:
    if tag_quick_gelu and "quickgelu" not in model_name.lower():
        logger.warning(
            "CLIP weights %s were trained with QuickGELU; use MODEL_NAME '%s-quickgelu' or the embeddings will be "
            "wrong (state-dict keys match either way).", source, model_name
        )


def _from_tag(model_name: str, tag: str) -> torch.nn.Module:
    """open_clip's own path for a pretrained tag: download into its cache (Hugging Face hub), then load with
    ``weights_only=True``."""
    _check_quick_gelu(model_name, f"{tag!r}", bool(open_clip.get_pretrained_cfg(model_name, tag).get("quick_gelu")))
    unreachable = None if offline_mode() else hub_unreachable()
    if unreachable:
        raise WeightsUnavailableError(
            f"{_KEY}={tag!r}: cannot fetch open_clip pretrained tag {tag!r} of {model_name!r}: {unreachable}. "
            "If the weights are already in the Hugging Face cache, set HF_HUB_OFFLINE=1 to use it."
        )
    try:
        with socket_timeout(DOWNLOAD_TIMEOUT_S):
            model = open_clip.create_model(model_name, pretrained=tag, device="cpu")
    except Exception as e:  # open_clip wraps hub errors (offline, unreachable, not found) in RuntimeError
        raise WeightsUnavailableError(
            f"{_KEY}={tag!r}: open_clip could not fetch or load pretrained tag {tag!r} of {model_name!r} "
            f"(offline and not cached, or no network?): {type(e).__name__}: {str(e).strip().rstrip('.')}. "
            f"{_HOW_TO_GET_WEIGHTS}"
        ) from e
    logger.info("Loaded CLIP %s weights from open_clip pretrained tag %r", model_name, tag)
    return model


def _checkpoint_file(model_name: str, pretrained: str) -> str:
    """Local file for a path or URL; a clear error for anything that is neither that nor a tag of the model."""
    if is_url(pretrained):
        return resolve_weights_file(pretrained, _KEY, _HOW_TO_GET_WEIGHTS)
    path = os.path.abspath(os.path.expanduser(pretrained))
    if not os.path.isfile(path):
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise MissingWeightsError(
            f"{_KEY}={pretrained!r}: CLIP checkpoint not found: {path}, and not an open_clip pretrained tag of "
            f"{model_name!r} (its tags: {tags or 'none'}). {_HOW_TO_GET_WEIGHTS}"
        )
    return path


def build_open_clip(model_name: str, pretrained: str = "", init_seed: int = 0, device="cpu") -> torch.nn.Module:
    """Frozen, eval-mode open_clip model.

    Args:
        model_name: open_clip architecture (built-in such as "ViT-B-16", or WISH's "WISH-Tiny-ViT").
        pretrained: "" for a random init seeded by ``init_seed`` (reproducible); else a local checkpoint file, its
            http(s) URL, or an open_clip pretrained tag of ``model_name``.
        init_seed: seed of the random init (the global RNG state is left untouched).
        device: where the model lives.
    Raises:
        MissingWeightsError: (a ``FileNotFoundError``) ``pretrained`` is neither an existing file, a URL, nor a tag
            of ``model_name``.
        WeightsUnavailableError: a URL or tag could not be downloaded (offline, unreachable, timed out).
        UnreadableWeightsError: (a ``RuntimeError``) the file exists but is not a loadable checkpoint for
            ``model_name``.
    """
    register_model_configs()
    if model_name not in open_clip.list_models():
        raise ValueError(f"Unknown open_clip model {model_name!r}. Known: WISH-Tiny-ViT, WISH-Test-ViT, ViT-B-16, ...")
    try:
        pretrained = resolve_shipped(str(pretrained or ""), model_name)
    except (OSError, ValueError) as e:
        raise type(e)(f"{_KEY}={pretrained!r}: {e}") from e
    local = os.path.isfile(os.path.expanduser(pretrained)) if pretrained else False
    if pretrained and not local and not is_url(pretrained) and pretrained in open_clip.list_pretrained_tags_by_model(
            model_name):
        model = _from_tag(model_name, pretrained)
    else:
        path = _checkpoint_file(model_name, pretrained) if pretrained else None
        if path is not None and "openai" in os.path.basename(pretrained).lower():
            _check_quick_gelu(model_name, path, True)
        with torch.random.fork_rng(devices=[]), _without_random_init_warning():
            torch.manual_seed(int(init_seed))
            model = open_clip.create_model(model_name, pretrained=None, device="cpu")
        if path is not None:
            where = path if path == pretrained else f"{path} (from {pretrained})"
            try:
                open_clip.load_checkpoint(model, path, strict=True, weights_only=True)
            except Exception as e:  # torch.load / pickle / zip / key-mismatch errors all mean "bad file for this model"
                raise UnreadableWeightsError(
                    f"{_KEY}: could not load CLIP checkpoint {where} into open_clip model {model_name!r} "
                    f"(corrupt file, or weights of another architecture): {type(e).__name__}: {e}"
                ) from e
            logger.info("Loaded CLIP %s weights from %s", model_name, where)
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
