"""Loading WISH weights: a missing file or a partial match is an error, not a random model.

Detectron2's checkpointer only logs missing and unexpected keys, so an evaluation of wrong weights would quietly
score a randomly initialised head, and a training run would quietly start from one. Here every parameter and buffer
of the trainable WISH heads (``roi_heads.``) must come from the checkpoint, unless partial loads are explicitly
allowed (``--allow-partial-weights``). Files are read by
:class:`~wish_d2.modeling.checkpointer.SafeDetectionCheckpointer` (no code runs from a file).
"""
import logging
from typing import Optional

import torch

from ..modeling.checkpointer import SafeDetectionCheckpointer, head_problems
from ..modeling.weights import WeightsError

__all__ = ["HEAD_PREFIX", "WeightsError", "check_heads_loaded", "check_init_weights", "load_eval_weights"]

logger = logging.getLogger(__name__)
HEAD_PREFIX = "roi_heads."  # the trained part of WISH; the frozen CLIP may come from CLIP.PRETRAINED instead


def check_heads_loaded(checkpointer: SafeDetectionCheckpointer, what: str, allow_partial: bool,
                       use: str = "evaluate") -> None:
    """Refuse (or, with ``allow_partial``, log) a load that left part of the WISH heads unmatched; ``what`` names
    the loaded file in the message, ``use`` says what the weights were for."""
    problems = head_problems(checkpointer.incompatible, HEAD_PREFIX)
    if not problems:
        return
    kinds = {kind: [p for p in problems if p.startswith(kind)] for kind in ("missing", "unexpected", "shape")}
    counts = ", ".join(f"{len(v)} {k if k != 'shape' else 'of another shape'}" for k, v in kinds.items() if v)
    examples = [p for v in kinds.values() for p in v[:3]]  # a few of each kind: a foreign file shows its own keys
    message = (f"{what} matches the WISH heads only partly ({counts}): " + "; ".join(examples)
               + (" and more" if len(examples) < len(problems) else ""))
    if not allow_partial:
        raise WeightsError(message + f". Not a WISH checkpoint of this config? Pass --allow-partial-weights to "
                                     f"{use} anyway.")
    logger.warning(message + " (allowed by --allow-partial-weights)")


def check_init_weights(cfg, allow_partial: bool = False) -> None:
    """Before any extraction: ``MODEL.WEIGHTS`` must be a safe, readable checkpoint that fills the WISH heads of
    ``cfg`` (unless ``allow_partial``). Only the heads are built (their input width read from the open_clip model
    config), so this costs a file read, not a CLIP; the stage that loads the weights checks them again."""
    import open_clip

    from ..modeling.clip_encoder import register_model_configs
    from ..modeling.roi_heads import build_wish_heads

    register_model_configs()
    clip_cfg = open_clip.get_model_config(cfg.MODEL.WISH.CLIP.MODEL_NAME) or {}
    holder = torch.nn.Module()
    if "embed_dim" in clip_cfg:
        holder.roi_heads = build_wish_heads(cfg, {"clip": int(clip_cfg["embed_dim"])})
    checkpointer = SafeDetectionCheckpointer(holder)
    checkpointer.load(cfg.MODEL.WEIGHTS, checkpointables=[])
    if "embed_dim" in clip_cfg:
        check_heads_loaded(checkpointer, checkpointer.source, allow_partial, use="train from them")


def load_eval_weights(model, weights: str, allow_partial: bool = False, save_dir: str = "",
                      checkpointer: Optional[SafeDetectionCheckpointer] = None) -> None:
    """Load ``weights`` (a path, or a URL) into ``model`` for evaluation (through ``checkpointer``, e.g. the one
    whose ``get_checkpoint_file`` named ``weights``, or a new one).

    Raises :class:`WeightsError` when ``weights`` is empty, missing or unreadable, or, unless ``allow_partial``,
    when any key of the WISH heads is missing from the checkpoint, unexpected, or of another shape.
    """
    if not weights:
        raise WeightsError("MODEL.WEIGHTS is empty: evaluation needs trained weights, e.g. "
                           "MODEL.WEIGHTS output/wish_synthetic/model_final.pth")
    checkpointer = checkpointer or SafeDetectionCheckpointer(model, save_dir=save_dir)
    checkpointer.load(weights)
    check_heads_loaded(checkpointer, checkpointer.source, allow_partial)
