"""Loading trained WISH weights for evaluation: a missing file or a partial match is an error, not a random model.

Detectron2's checkpointer only logs missing and unexpected keys, so an evaluation of wrong weights would quietly
score a randomly initialised head. Here every parameter and buffer of the trainable WISH heads (``roi_heads.``) must
come from the checkpoint, unless partial loads are explicitly allowed.
"""
import logging
import os

from detectron2.checkpoint import DetectionCheckpointer

logger = logging.getLogger(__name__)
HEAD_PREFIX = "roi_heads."  # the trained part of WISH; the frozen CLIP may come from CLIP.PRETRAINED instead


class WeightsError(ValueError):
    """MODEL.WEIGHTS is missing, unreadable or does not match the WISH heads."""


class _RecordingCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer that keeps the incompatible keys it would otherwise only log."""

    incompatible = None

    def _log_incompatible_keys(self, incompatible) -> None:
        self.incompatible = incompatible
        super()._log_incompatible_keys(incompatible)


def load_eval_weights(model, weights: str, allow_partial: bool = False, save_dir: str = "") -> None:
    """Load ``weights`` (a path, or a URL Detectron2's PathManager resolves) into ``model`` for evaluation.

    Raises :class:`WeightsError` when ``weights`` is empty or missing, or, unless ``allow_partial``, when any key of
    the WISH heads is missing from the checkpoint, unexpected, or of another shape.
    """
    if not weights:
        raise WeightsError("MODEL.WEIGHTS is empty: evaluation needs trained weights, e.g. "
                           "MODEL.WEIGHTS output/wish_synthetic/model_final.pth")
    if "://" not in weights and not os.path.isfile(weights):
        raise WeightsError(f"MODEL.WEIGHTS={weights!r}: no such file")
    checkpointer = _RecordingCheckpointer(model, save_dir=save_dir)
    checkpointer.load(weights)
    inc = checkpointer.incompatible
    if inc is None:
        return
    problems = [f"missing {k}" for k in inc.missing_keys if k.startswith(HEAD_PREFIX)]
    problems += [f"unexpected {k}" for k in inc.unexpected_keys if k.startswith(HEAD_PREFIX)]
    problems += [f"shape of {k}: {tuple(a)} in the file, {tuple(b)} in the model"
                 for k, a, b in inc.incorrect_shapes if k.startswith(HEAD_PREFIX)]
    if not problems:
        return
    message = (f"MODEL.WEIGHTS={weights!r} matches the WISH heads only partly ({len(problems)} problem(s)): "
               + "; ".join(problems[:8]) + ("; ..." if len(problems) > 8 else ""))
    if not allow_partial:
        raise WeightsError(message + ". Pass --allow-partial-weights to evaluate anyway.")
    logger.warning(message + " (allowed by --allow-partial-weights)")
