"""``validate_wish_config(cfg)``: every WISH config value checked once, before any expensive work.

A bad value (``INFERENCE.FUSION sum``, a prompt with an unknown field, ``STAGE1.TEMPERATURE 0``) would otherwise
surface only after feature extraction and hours of training. The model (``WISH.from_config``), the trainer and the
tools' setup call this, so every entry point fails fast with one error listing every bad key, its value and what
is allowed.
"""
import math
import string
from typing import Callable, Iterable, List, Optional, Tuple

#: Allowed values of the string-valued keys whose choices are not defined by a registry or a modeling module.
STAGES = ("stage1", "stage2", "all")
SUPERVISIONS = ("pseudo", "gt")
PAIR_VISUALS = ("contact", "all")
OPTIMIZERS = ("AdamW", "SGD")
DATASET_MAPPERS = ("wish_cached", "wish_online")
#: Format fields a text template may use.
PROMPT_FIELDS = ("noun", "side")
ZERO_SHOT_PROMPT_FIELDS = ("side",)


class ConfigError(ValueError):
    """One or more config values are invalid; the message names each key, its value and the allowed values."""


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _prompt_problem(template, allowed: Tuple[str, ...]) -> Optional[str]:
    if not isinstance(template, str):
        return f"must be a string with fields {{{'}, {'.join(allowed)}}}"
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:  # unbalanced braces
        return f"is not a valid format string ({e})"
    bad = sorted({f for f in fields if f not in allowed})
    if bad:
        return (f"uses unknown field(s) {', '.join('{' + f + '}' for f in bad)}; allowed: "
                + ", ".join("{" + a + "}" for a in allowed))
    return None


class _Checker:
    def __init__(self, cfg):
        self.cfg = cfg
        self.errors: List[str] = []

    def get(self, key: str):
        node = self.cfg
        for part in key.split("."):
            node = node[part]
        return node

    def check(self, key: str, ok: Callable, allowed: str) -> None:
        try:
            value = self.get(key)
        except KeyError:  # a key another config version does not have: nothing to check
            return
        try:
            good = bool(ok(value))
        except (TypeError, ValueError):
            good = False
        if not good:
            self.errors.append(f"{key}={value!r}: expected {allowed}")

    def choice(self, key: str, choices: Iterable[str]) -> None:
        choices = tuple(choices)
        self.check(key, lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices))

    def positive_int(self, key: str) -> None:
        self.check(key, lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "an integer > 0")

    def nonneg_int(self, key: str) -> None:
        self.check(key, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0")

    def positive(self, key: str) -> None:
        self.check(key, lambda v: _finite(v) and v > 0, "a finite number > 0")

    def nonneg(self, key: str) -> None:
        self.check(key, lambda v: _finite(v) and v >= 0, "a finite number >= 0")

    def fraction(self, key: str, upper_open: bool = False) -> None:
        if upper_open:
            self.check(key, lambda v: _finite(v) and 0 <= v < 1, "a number in [0, 1)")
        else:
            self.check(key, lambda v: _finite(v) and 0 <= v <= 1, "a number in [0, 1]")

    def boolean(self, key: str) -> None:
        self.check(key, lambda v: isinstance(v, bool), "True or False")

    def prompt(self, key: str, allowed: Tuple[str, ...]) -> None:
        try:
            problem = _prompt_problem(self.get(key), allowed)
        except KeyError:
            return
        if problem:
            self.errors.append(f"{key}={self.get(key)!r}: {problem}")


def _check_taxonomy_file(c: _Checker, key: str) -> None:
    """A named taxonomy file is read now: a missing, empty or malformed one fails before any extraction."""
    from .data.taxonomy import TaxonomyError, load_taxonomy_file

    try:
        path = c.get(key)
    except KeyError:
        return
    if not isinstance(path, str):
        c.errors.append(f"{key}={path!r}: expected a file path or ''")
    elif path:
        try:
            load_taxonomy_file(path)
        except TaxonomyError as e:
            c.errors.append(f"{key}={path!r}: {e}")


def validate_wish_config(cfg) -> None:
    """Raise :class:`ConfigError` naming every invalid WISH config value (and what it may be); else return."""
    from .cache.codec import DTYPES as CACHE_DTYPES
    from .modeling.inference import FUSIONS
    from .modeling.roi_heads import METHODS
    from .registry import CLIP_ENCODER_REGISTRY, HAND_SOURCE_REGISTRY, SEGMENTER_REGISTRY

    c = _Checker(cfg)
    p = "MODEL.WISH."
    c.choice(p + "STAGE", STAGES)
    c.choice(p + "SUPERVISION", SUPERVISIONS)
    c.choice(p + "METHOD", METHODS)
    for k in ("USE_VISUAL", "USE_GEOMETRY", "USE_CONTACT_REGION"):
        c.boolean(p + k)
    c.positive_int(p + "MAX_OBJECTS_PER_HAND")

    c.choice(p + "CLIP.ENCODER", sorted(k for k, _ in CLIP_ENCODER_REGISTRY))
    c.nonneg_int(p + "CLIP.INIT_SEED")
    c.prompt(p + "CLIP.PROMPT", PROMPT_FIELDS)
    c.prompt(p + "CLIP.ZERO_SHOT_PROMPT", ZERO_SHOT_PROMPT_FIELDS)
    c.boolean(p + "CLIP.MASK_SOFT_COVERAGE")
    c.nonneg_int(p + "CLIP.PROBE_FRAMES")
    c.boolean(p + "CLIP.WEB_PRETRAIN.ENABLED")
    c.nonneg_int(p + "CLIP.WEB_PRETRAIN.SEED")
    c.positive_int(p + "CLIP.WEB_PRETRAIN.STEPS")
    c.positive_int(p + "CLIP.WEB_PRETRAIN.BATCH_SIZE")
    c.positive(p + "CLIP.WEB_PRETRAIN.LR")
    c.positive_int(p + "CLIP.WEB_PRETRAIN.IMAGE_SIZE")
    c.nonneg_int(p + "CLIP.WEB_PRETRAIN.NUM_PAIRS")
    c.fraction(p + "CLIP.WEB_PRETRAIN.OBJECT_SHARE")
    c.check(p + "CLIP.WEB_PRETRAIN.UNLOCKED_IMAGE_GROUPS", lambda v: isinstance(v, int) and v >= -1,
            "an integer >= -1 (-1: train the whole image tower)")
    c.choice(p + "CALIBRATION", ("val_labels", "label_free"))

    _check_taxonomy_file(c, p + "TAXONOMY.FILE")

    c.choice(p + "SEGMENTER.NAME", sorted(k for k, _ in SEGMENTER_REGISTRY))
    c.positive_int(p + "SEGMENTER.POINTS_PER_SIDE")
    c.positive_int(p + "SEGMENTER.POINTS_PER_BATCH")
    for k in ("PRED_IOU_THRESH", "STABILITY_SCORE_THRESH", "BOX_NMS_THRESH", "BOX_THRESHOLD", "TEXT_THRESHOLD"):
        c.fraction(p + "SEGMENTER." + k)

    c.positive_int(p + "PROPOSALS.MAX_PER_IMAGE")
    c.nonneg(p + "PROPOSALS.MIN_AREA")
    c.fraction(p + "PROPOSALS.MAX_HAND_FRACTION")

    c.choice(p + "HANDS.SOURCE", sorted(k for k, _ in HAND_SOURCE_REGISTRY))
    c.boolean(p + "HANDS.SIDE_HEURISTIC")
    c.fraction(p + "HANDS.DILATION")

    c.positive_int(p + "ADAPTER.HIDDEN_DIM")
    c.positive_int(p + "ADAPTER.EMBED_DIM")
    c.fraction(p + "ADAPTER.DROPOUT", upper_open=True)

    c.positive(p + "STAGE1.TEMPERATURE")
    c.choice(p + "STAGE1.PAIR_VISUAL", PAIR_VISUALS)
    c.boolean(p + "STAGE1.TOUCHING_PAIRS_ONLY")
    for s in ("STAGE1", "STAGE2"):
        c.nonneg_int(f"{p}{s}.MAX_ITER")
        c.positive(f"{p}{s}.BASE_LR")
        c.positive_int(f"{p}{s}.IMS_PER_BATCH")
    c.boolean(p + "STAGE2.MATCH_NULL")
    c.boolean(p + "STAGE2.MATCH_BOTH_HANDS")

    # the pseudo-label threshold is a score in cos/tau units (any finite value); < 0 asks for calibration
    c.check(p + "PSEUDO.THRESHOLD", _finite, "a finite number (< 0 = calibrate on DATASETS.VAL)")
    c.boolean(p + "PSEUDO.BOTH_RULE")
    c.check(p + "PSEUDO.EXTRA_THRESHOLD", _finite, "a finite number (< 0 = calibrate)")
    c.check(p + "INFERENCE.CONTACT_THRESHOLD", lambda v: _finite(v) and v <= 1,
            "a probability in [0, 1], or < 0 to calibrate on DATASETS.VAL")
    c.check(p + "INFERENCE.EXTRA_CONTACT_THRESHOLD", lambda v: _finite(v) and v <= 1,
            "a probability in [0, 1], or < 0 to calibrate")
    c.choice(p + "INFERENCE.FUSION", FUSIONS)
    for k in ("ALIGN", "CONTACT", "MATCH"):
        c.nonneg(p + "LOSS_WEIGHTS." + k)

    c.positive_int(p + "CACHE.SHARD_SIZE")
    c.boolean(p + "CACHE.ENABLED")
    c.choice(p + "CACHE.DTYPE", CACHE_DTYPES)

    c.choice("SOLVER.OPTIMIZER", OPTIMIZERS)
    c.choice("INPUT.DATASET_MAPPER_NAME", DATASET_MAPPERS)
    for k in ("NUM_TRAIN", "NUM_VAL", "NUM_TEST"):
        c.nonneg_int("DATASETS.SYNTHETIC." + k)
    c.fraction("DATASETS.SYNTHETIC.MULTI_GRIP")
    c.check("DATASETS.SYNTHETIC.IMAGE_SIZE",
            lambda v: len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v), "two integers (H, W) > 0")
    if c.errors:
        raise ConfigError("invalid WISH config:\n  " + "\n  ".join(c.errors))
