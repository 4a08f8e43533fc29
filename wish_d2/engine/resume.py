"""``--resume`` checks, run before anything is written: the checkpoints named in the output folder must be usable,
and the config must still describe the run that wrote them.

Detectron2's ``default_setup`` saves the full config of every run as ``OUTPUT_DIR/config.yaml``. A resumed run whose
config differs in a key that changes parameter shapes (:data:`SHAPE_KEYS`), what the cached features, the
pseudo-labels' proposal indices and the trained heads stand for (:data:`FEATURE_KEYS`), or the training images
(:data:`DATA_KEYS`) would go on with state that no longer matches it, so it is refused, naming the keys. The saved
file is read with ``yaml.safe_load``: it is data, never code. Keys that only change the storage precision of the
cache (``CACHE.DTYPE``, ``CLIP.AUTOCAST``) may change.

The same values are also recorded in every checkpoint the trainer writes (``WISHTrainer.state_dict``) and compared
when it is resumed, so a stage checkpoint older than the saved config (a run restarted without ``--resume`` and
stopped before its first checkpoint) is caught too.
"""
import logging
import os
from typing import Any, Dict, List, Tuple

import yaml

from ..modeling.checkpointer import LAST_CHECKPOINT, tagged_checkpoint
from ..modeling.weights import WeightsError

__all__ = ["DATA_KEYS", "FEATURE_KEYS", "RESUME_KEYS", "ResumeError", "SAVED_CONFIG", "SHAPE_KEYS", "check_resume",
           "config_resume_values", "mismatch_message", "resume_mismatches", "resume_values"]

logger = logging.getLogger(__name__)

SAVED_CONFIG = "config.yaml"  # written into OUTPUT_DIR by Detectron2's default_setup

#: Keys that change the shapes of the model's parameters (the CLIP tower and the WISH heads).
SHAPE_KEYS = (
    "MODEL.WISH.CLIP.MODEL_NAME",
    "MODEL.WISH.ADAPTER.HIDDEN_DIM",
    "MODEL.WISH.ADAPTER.EMBED_DIM",
    "MODEL.WISH.USE_GEOMETRY",
    "MODEL.WISH.USE_CONTACT_REGION",
    "MODEL.WISH.STAGE2.MATCH_BOTH_HANDS",
)

#: Keys of the feature cache's key (wish_d2.cache.extract.feature_cache_key) other than storage precision: they
#: change the embeddings, proposals or hands the heads were trained on, and the proposals pseudo-labels index.
FEATURE_KEYS = (
    "MODEL.WISH.CLIP.ENCODER",
    "MODEL.WISH.CLIP.PRETRAINED",
    "MODEL.WISH.CLIP.INIT_SEED",
    "MODEL.WISH.CLIP.MASK_SOFT_COVERAGE",
    "MODEL.WISH.CLIP.PROMPT",
    "MODEL.WISH.CLIP.ZERO_SHOT_PROMPT",
    "MODEL.PROPOSAL_GENERATOR.NAME",
    "MODEL.WISH.PROPOSALS.MAX_PER_IMAGE",
    "MODEL.WISH.PROPOSALS.MIN_AREA",
    "MODEL.WISH.PROPOSALS.MAX_HAND_FRACTION",
    "MODEL.WISH.SEGMENTER.NAME",
    "MODEL.WISH.SEGMENTER.SAM_TYPE",
    "MODEL.WISH.SEGMENTER.SAM_CHECKPOINT",
    "MODEL.WISH.SEGMENTER.POINTS_PER_SIDE",
    "MODEL.WISH.SEGMENTER.PRED_IOU_THRESH",
    "MODEL.WISH.SEGMENTER.STABILITY_SCORE_THRESH",
    "MODEL.WISH.SEGMENTER.BOX_NMS_THRESH",
    "MODEL.WISH.SEGMENTER.GDINO_PATH",
    "MODEL.WISH.SEGMENTER.BOX_THRESHOLD",
    "MODEL.WISH.SEGMENTER.TEXT_THRESHOLD",
    "INPUT.FORMAT",
    "MODEL.WISH.HANDS.SOURCE",
    "MODEL.WISH.HANDS.SIDE_HEURISTIC",
    "MODEL.WISH.HANDS.PRECOMPUTED_FILE",
    "MODEL.WISH.HANDS.DETECTOR_CONFIG",
    "MODEL.WISH.HANDS.DETECTOR_WEIGHTS",
    "MODEL.WISH.HANDS.DETECTOR_CLASSES",
    "MODEL.WISH.HANDS.DETECTOR_SCORE_THRESH",
    "MODEL.WISH.HANDS.DILATION",
)

#: Keys that choose the training images: checkpoints and pseudo-labels (keyed by image id) belong to them.
DATA_KEYS = ("DATASETS.TRAIN", "DATASETS.SYNTHETIC")

RESUME_KEYS = SHAPE_KEYS + FEATURE_KEYS + DATA_KEYS

_MISSING = object()


class ResumeError(WeightsError):
    """``--resume`` cannot continue the run in OUTPUT_DIR (bad ``last_checkpoint``, or a changed config)."""


def _lookup(tree: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return _MISSING
        tree = tree[part]
    return tree


def _plain(value: Any) -> Any:
    """Tuples as lists, as YAML writes them, so a saved value compares equal to the live one."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _leaves(tree: Any, key: str):
    """``(full key, value)`` of every leaf under ``key`` (the key itself when ``tree`` is not a section)."""
    if not isinstance(tree, dict):
        yield key, tree
        return
    for k, v in tree.items():
        yield from _leaves(v, f"{key}.{k}")


def resume_values(config: dict) -> Dict[str, Any]:
    """``{full key: value}`` of every leaf under :data:`RESUME_KEYS` in ``config`` (a config as plain YAML data),
    tuples as lists; what a checkpoint records and a resumed run must still have."""
    out = {}
    for section in RESUME_KEYS:
        for key, value in _leaves(_lookup(config, section), section):
            if value is not _MISSING:
                out[key] = _plain(value)
    return out


def config_resume_values(cfg) -> Dict[str, Any]:
    """:func:`resume_values` of a live ``CfgNode``."""
    return resume_values(yaml.safe_load(cfg.dump()))


def resume_mismatches(saved: Dict[str, Any], current: Dict[str, Any]) -> List[Tuple[str, Any, Any]]:
    """``(key, saved value, current value)`` for every key whose value changed; keys absent from ``saved``
    (recorded by an older version) cannot be compared and are skipped."""
    return [(k, saved[k], v) for k, v in current.items() if k in saved and saved[k] != v]


def mismatch_message(where: str, changed: List[Tuple[str, Any, Any]]) -> str:
    detail = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, a, b in changed)
    return (f"--resume: the config differs from the one {where} in {len(changed)} key(s) that change parameter "
            f"shapes, the cached features or the training images: {detail}. Restore them, or start a new run in "
            "another OUTPUT_DIR.")


def _checkpoint_folders(root: str) -> List[str]:
    """OUTPUT_DIR and its sub-folders (the pipeline's stage folders) that hold a ``last_checkpoint``."""
    if not os.path.isdir(root):
        return []
    subs = [os.path.join(root, d) for d in sorted(os.listdir(root))]
    return [d for d in [root] + subs if os.path.lexists(os.path.join(d, LAST_CHECKPOINT))]


def check_resume(cfg) -> None:
    """Refuse ``--resume`` in ``cfg.OUTPUT_DIR`` when a ``last_checkpoint`` there is unusable (garbage, empty, a
    folder, a missing file, a path outside its folder) or when the saved config differs from ``cfg`` in
    :data:`RESUME_KEYS`. Call it before ``default_setup``, which overwrites the saved config. Raises
    :class:`ResumeError`."""
    root = cfg.OUTPUT_DIR
    folders = _checkpoint_folders(root)
    if not folders:
        return  # nothing to resume: the run starts from scratch
    for folder in folders:
        try:
            tagged_checkpoint(folder)
        except WeightsError as e:
            raise ResumeError(f"--resume: {e}") from e
    saved_path = os.path.join(root, SAVED_CONFIG)
    if not os.path.isfile(saved_path):
        logger.warning(f"--resume: {saved_path} is missing, so the config of the interrupted run cannot be compared "
                       "with this one")
        return
    try:
        with open(saved_path, encoding="utf-8") as f:
            saved = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ResumeError(f"--resume: {saved_path} (the config of the interrupted run) cannot be read as plain "
                          f"YAML data: {reason}") from e
    if not isinstance(saved, dict):
        raise ResumeError(f"--resume: {saved_path} (the config of the interrupted run) is not a YAML mapping")
    changed = resume_mismatches(resume_values(saved), config_resume_values(cfg))
    if changed:
        raise ResumeError(mismatch_message(f"the run in {root} was started with ({saved_path})", changed))
