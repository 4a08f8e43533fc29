"""``validate_wish_config(cfg)``: every WISH config value checked once, before any expensive work.

A bad value (``INFERENCE.FUSION sum``, a prompt with an unknown field, ``STAGE1.TEMPERATURE 0``) would otherwise
surface only after feature extraction and hours of training. It is called once per entry point, where the config is
built: :func:`wish_d2.engine.setup.build_cfg`, the setup every tool shares, so every tool fails fast with one error
listing every bad key, its value and what is allowed. Code that builds a config by hand (tests, notebooks) calls it
itself; the model, the trainer and the pipeline take the config as given and do not check it again.
"""
import math
import os
import re
import string
from typing import Callable, Iterable, List, Optional, Tuple

from .cache.codec import DTYPES as CACHE_DTYPES
from .config_file import ConfigError, ConfigFileError, load_config_dict
from .data.taxonomy import TaxonomyError, load_taxonomy_file
from .modeling.heads import PAIR_VISUALS
from .modeling.inference import FUSIONS
from .modeling.roi_heads import HEAD_METHODS, STAGES, SUPERVISIONS
from .modeling.segmenters import SAM_TYPES
from .registry import CLIP_ENCODER_REGISTRY, HAND_SOURCE_REGISTRY, SEGMENTER_REGISTRY, WISH_HEADS_REGISTRY

__all__ = ["ConfigError", "validate_wish_config", "file_in_the_way"]

#: Allowed values of the string-valued keys whose choices are not defined by a registry or by the module that
#: reads them (those are imported above: each list of allowed values is defined once).
CALIBRATIONS = ("val_labels", "label_free")
OPTIMIZERS = ("AdamW", "SGD")
DATASET_MAPPERS = ("wish_cached", "wish_online")
INPUT_FORMATS = ("RGB", "BGR")  # what WISH's mappers, SAM and CLIP are handed
LR_SCHEDULERS = ("WarmupMultiStepLR", "WarmupCosineLR")  # Detectron2's build_lr_scheduler
WARMUP_METHODS = ("linear", "constant")
AUTOCASTS = ("", "bfloat16", "float16")
DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")
#: Bounds of what can run: sizes past them exhaust memory or time (or, for MIN_AREA, drop every proposal).
IMAGE_SIDE = (32, 8192)  # pixels per side of a generated frame: smaller cannot hold a hand and an object
MAX_PIXELS = IMAGE_SIDE[1] ** 2  # an area in pixels (PROPOSALS.MIN_AREA)
MAX_BATCH = 65536  # images (or pairs) in one batch
MAX_ITERS = 10_000_000  # optimizer steps of one stage
MAX_FRAMES = 1_000_000  # frames of one synthetic split
MAX_WIDTH = 65536  # width of an adapter layer, cache shard sizes, SAM prompts per batch
MAX_WORKERS = 256  # data-loader processes
MAX_LR = 10.0  # a learning rate
MAX_SEED = 2 ** 32 - 1  # numpy and torch seeds
#: Format fields a text template may use.
PROMPT_FIELDS = ("noun", "side")
ZERO_SHOT_PROMPT_FIELDS = ("side",)
OPEN_VOCAB_PROMPT_FIELDS = ("noun",)


def file_in_the_way(path: str) -> Optional[str]:
    """The path, or the nearest existing folder above it, if that is not a folder: no folder can be made there."""
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            return None
        p = parent
    return None if os.path.isdir(p) else p


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


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

    def get_or_none(self, key: str):
        try:
            return self.get(key)
        except KeyError:
            return None

    def get_or(self, key: str, default):
        try:
            value = self.get(key)
        except KeyError:
            return default
        return value if isinstance(value, (list, tuple)) else default

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

    def int_in(self, key: str, low: int, high: int) -> None:
        self.check(key, lambda v: _is_int(v) and low <= v <= high, f"an integer in [{low}, {high}]")

    def number_in(self, key: str, low: float, high: float, low_open: bool = False) -> None:
        above = (lambda v: v > low) if low_open else (lambda v: v >= low)
        self.check(key, lambda v: _finite(v) and above(v) and v <= high,
                   f"a number in {'(' if low_open else '['}{low}, {high}]")

    def string(self, key: str, nonempty: bool = False) -> None:
        self.check(key, lambda v: isinstance(v, str) and (v or not nonempty),
                   "a non-empty string" if nonempty else "a string")

    def strings(self, key: str, nonempty: bool = False) -> None:
        self.check(key, lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, str) and x for x in v)
                   and (v or not nonempty), "a non-empty list of non-empty strings" if nonempty
                   else "a list of non-empty strings")

    def folder(self, key: str) -> None:
        self.check(key, lambda v: not isinstance(v, str) or not v or not file_in_the_way(v),
                   "a folder path, not an existing file (nor under one)")

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


def _check_detector_config(c: _Checker, prefix: str) -> None:
    """With ``HANDS.SOURCE detector`` the detector's config is read now, safely, so a missing or malicious file
    fails before any extraction (the hand source merges it into a Detectron2 config when it is built)."""
    try:
        source, path = c.get(prefix + "SOURCE"), c.get(prefix + "DETECTOR_CONFIG")
    except KeyError:
        return
    if source != "detector" or not isinstance(path, str):
        return
    if not path:
        c.errors.append(f"{prefix}DETECTOR_CONFIG='': expected the detector's config file ({prefix}SOURCE detector)")
        return
    try:
        load_config_dict(path)
    except ConfigFileError as e:
        c.errors.append(f"{prefix}DETECTOR_CONFIG={path!r}: {e}")


def validate_wish_config(cfg) -> None:
    """Raise :class:`ConfigError` naming every invalid WISH config value (and what it may be); else return.

    Covers every ``MODEL.WISH`` key and the stock Detectron2 keys WISH reads (``SOLVER``, ``DATALOADER``, ``INPUT``,
    ``TEST``, ``DATASETS``, ``SEED``, ``OUTPUT_DIR``, ``MODEL.DEVICE``), each bounded to what can run."""
    c = _Checker(cfg)
    p = "MODEL.WISH."
    if c.get_or_none("MODEL.META_ARCHITECTURE") == "WISH":  # its heads come from WISH's own registry
        c.choice("MODEL.ROI_HEADS.NAME", sorted(k for k, _ in WISH_HEADS_REGISTRY))
    c.choice(p + "STAGE", STAGES)
    c.choice(p + "SUPERVISION", SUPERVISIONS)
    c.choice(p + "METHOD", HEAD_METHODS)
    for k in ("USE_VISUAL", "USE_GEOMETRY", "USE_CONTACT_REGION"):
        c.boolean(p + k)
    c.positive_int(p + "MAX_OBJECTS_PER_HAND")

    c.choice(p + "CLIP.ENCODER", sorted(k for k, _ in CLIP_ENCODER_REGISTRY))
    c.string(p + "CLIP.MODEL_NAME", nonempty=True)
    c.string(p + "CLIP.PRETRAINED")
    c.int_in(p + "CLIP.INIT_SEED", 0, MAX_SEED)
    c.prompt(p + "CLIP.PROMPT", PROMPT_FIELDS)
    c.prompt(p + "CLIP.ZERO_SHOT_PROMPT", ZERO_SHOT_PROMPT_FIELDS)
    c.boolean(p + "CLIP.MASK_SOFT_COVERAGE")
    c.choice(p + "CLIP.AUTOCAST", AUTOCASTS)
    c.int_in(p + "CLIP.PROBE_FRAMES", 0, MAX_FRAMES)
    c.boolean(p + "CLIP.WEB_PRETRAIN.ENABLED")
    c.int_in(p + "CLIP.WEB_PRETRAIN.SEED", 0, MAX_SEED)
    c.int_in(p + "CLIP.WEB_PRETRAIN.STEPS", 1, MAX_ITERS)
    c.int_in(p + "CLIP.WEB_PRETRAIN.BATCH_SIZE", 1, MAX_BATCH)
    c.number_in(p + "CLIP.WEB_PRETRAIN.LR", 0, MAX_LR, low_open=True)
    c.int_in(p + "CLIP.WEB_PRETRAIN.IMAGE_SIZE", *IMAGE_SIDE)
    c.int_in(p + "CLIP.WEB_PRETRAIN.NUM_PAIRS", 0, MAX_FRAMES)
    c.fraction(p + "CLIP.WEB_PRETRAIN.OBJECT_SHARE")
    c.check(p + "CLIP.WEB_PRETRAIN.UNLOCKED_IMAGE_GROUPS", lambda v: _is_int(v) and -1 <= v <= MAX_WIDTH,
            "an integer >= -1 (-1: train the whole image tower)")
    c.choice(p + "CALIBRATION", CALIBRATIONS)
    c.strings(p + "OPEN_VOCAB.NOUNS")
    c.prompt(p + "OPEN_VOCAB.PROMPT", OPEN_VOCAB_PROMPT_FIELDS)
    c.strings(p + "OPEN_VOCAB.BACKGROUND")

    _check_taxonomy_file(c, p + "TAXONOMY.FILE")

    c.choice(p + "SEGMENTER.NAME", sorted(k for k, _ in SEGMENTER_REGISTRY))
    c.choice(p + "SEGMENTER.SAM_TYPE", SAM_TYPES)
    for k in ("SAM_CHECKPOINT", "GDINO_PATH"):
        c.string(p + "SEGMENTER." + k)
    c.int_in(p + "SEGMENTER.POINTS_PER_SIDE", 1, 1024)  # its square of point prompts per image
    c.int_in(p + "SEGMENTER.POINTS_PER_BATCH", 1, MAX_WIDTH)
    for k in ("PRED_IOU_THRESH", "STABILITY_SCORE_THRESH", "BOX_NMS_THRESH", "BOX_THRESHOLD", "TEXT_THRESHOLD"):
        c.fraction(p + "SEGMENTER." + k)

    c.int_in(p + "PROPOSALS.MAX_PER_IMAGE", 1, MAX_WIDTH)
    c.number_in(p + "PROPOSALS.MIN_AREA", 0, MAX_PIXELS)
    c.fraction(p + "PROPOSALS.MAX_HAND_FRACTION")

    c.choice(p + "HANDS.SOURCE", sorted(k for k, _ in HAND_SOURCE_REGISTRY))
    c.boolean(p + "HANDS.SIDE_HEURISTIC")
    for k in ("PRECOMPUTED_FILE", "DETECTOR_CONFIG", "DETECTOR_WEIGHTS"):
        c.string(p + "HANDS." + k)
    c.strings(p + "HANDS.DETECTOR_CLASSES", nonempty=True)
    c.fraction(p + "HANDS.DETECTOR_SCORE_THRESH")
    _check_detector_config(c, p + "HANDS.")
    c.fraction(p + "HANDS.DILATION")

    c.int_in(p + "ADAPTER.HIDDEN_DIM", 1, MAX_WIDTH)
    c.int_in(p + "ADAPTER.EMBED_DIM", 1, MAX_WIDTH)
    c.fraction(p + "ADAPTER.DROPOUT", upper_open=True)

    c.positive(p + "STAGE1.TEMPERATURE")
    c.choice(p + "STAGE1.PAIR_VISUAL", PAIR_VISUALS)
    c.choice(p + "STAGE2.PAIR_VISUAL", PAIR_VISUALS)
    c.boolean(p + "STAGE1.TOUCHING_PAIRS_ONLY")
    for s in ("STAGE1", "STAGE2"):
        c.int_in(f"{p}{s}.MAX_ITER", 0, MAX_ITERS)
        c.number_in(f"{p}{s}.BASE_LR", 0, MAX_LR, low_open=True)
        c.int_in(f"{p}{s}.IMS_PER_BATCH", 1, MAX_BATCH)
    c.boolean(p + "STAGE2.MATCH_NULL")
    c.boolean(p + "STAGE2.MATCH_BOTH_HANDS")

    # the pseudo-label threshold is a score in cos/tau units (any finite value); < 0 asks for calibration
    c.check(p + "PSEUDO.THRESHOLD", _finite, "a finite number (< 0 = calibrate on DATASETS.VAL)")
    c.boolean(p + "PSEUDO.BOTH_RULE")
    c.string(p + "PSEUDO.FILE")
    c.check(p + "PSEUDO.EXTRA_THRESHOLD", _finite, "a finite number (< 0 = calibrate)")
    c.check(p + "INFERENCE.CONTACT_THRESHOLD", lambda v: _finite(v) and v <= 1,
            "a probability in [0, 1], or < 0 to calibrate on DATASETS.VAL")
    c.check(p + "INFERENCE.EXTRA_CONTACT_THRESHOLD", lambda v: _finite(v) and v <= 1,
            "a probability in [0, 1], or < 0 to calibrate")
    c.choice(p + "INFERENCE.FUSION", FUSIONS)
    for k in ("ALIGN", "CONTACT", "MATCH"):
        c.nonneg(p + "LOSS_WEIGHTS." + k)

    c.string(p + "CACHE.DIR")
    c.folder(p + "CACHE.DIR")
    c.int_in(p + "CACHE.SHARD_SIZE", 1, MAX_WIDTH)
    c.boolean(p + "CACHE.ENABLED")
    c.choice(p + "CACHE.DTYPE", CACHE_DTYPES)

    # stock Detectron2 keys: the stage solver replaces MAX_ITER, BASE_LR, IMS_PER_BATCH, STEPS and CHECKPOINT_PERIOD
    # per stage, but tools and DefaultTrainer read them too
    c.choice("SOLVER.OPTIMIZER", OPTIMIZERS)
    c.int_in("SOLVER.IMS_PER_BATCH", 1, MAX_BATCH)
    c.number_in("SOLVER.BASE_LR", 0, MAX_LR, low_open=True)
    c.number_in("SOLVER.BASE_LR_END", 0, MAX_LR)
    c.int_in("SOLVER.MAX_ITER", 0, MAX_ITERS)
    c.check("SOLVER.STEPS", lambda v: all(_is_int(x) and 0 <= x <= MAX_ITERS for x in v) and list(v) == sorted(v),
            f"increasing integers in [0, {MAX_ITERS}]")
    c.int_in("SOLVER.CHECKPOINT_PERIOD", 1, MAX_ITERS)
    c.int_in("SOLVER.WARMUP_ITERS", 0, MAX_ITERS)
    c.number_in("SOLVER.WARMUP_FACTOR", 0, 1)
    c.choice("SOLVER.WARMUP_METHOD", WARMUP_METHODS)
    c.choice("SOLVER.LR_SCHEDULER_NAME", LR_SCHEDULERS)
    c.number_in("SOLVER.GAMMA", 0, 1, low_open=True)
    c.fraction("SOLVER.MOMENTUM", upper_open=True)
    c.boolean("SOLVER.NESTEROV")
    c.fraction("SOLVER.WEIGHT_DECAY")
    c.int_in("SOLVER.REFERENCE_WORLD_SIZE", 0, MAX_BATCH)
    c.boolean("SOLVER.AMP.ENABLED")
    c.int_in("DATALOADER.NUM_WORKERS", 0, MAX_WORKERS)
    c.boolean("DATALOADER.ASPECT_RATIO_GROUPING")
    c.choice("INPUT.FORMAT", INPUT_FORMATS)
    c.choice("INPUT.DATASET_MAPPER_NAME", DATASET_MAPPERS)
    c.int_in("TEST.EVAL_PERIOD", 0, MAX_ITERS)
    c.boolean("TEST.AUG.ENABLED")
    c.boolean("TEST.PRECISE_BN.ENABLED")
    c.check("SEED", lambda v: _is_int(v) and v <= MAX_SEED, f"an integer <= {MAX_SEED} (negative: a random seed)")
    c.check("MODEL.DEVICE", lambda v: isinstance(v, str) and DEVICE.match(v), "'cpu', 'cuda', 'cuda:N' or 'mps'")
    c.string("MODEL.WEIGHTS")
    c.string("OUTPUT_DIR", nonempty=True)
    c.folder("OUTPUT_DIR")
    for k in ("TRAIN", "VAL", "TEST"):
        c.strings("DATASETS." + k)

    c.int_in("DATASETS.SYNTHETIC.SEED", 0, MAX_SEED)
    c.int_in("DATASETS.SYNTHETIC.NUM_TRAIN", 1, MAX_FRAMES)
    for k in ("NUM_VAL", "NUM_TEST"):
        c.int_in("DATASETS.SYNTHETIC." + k, 0, MAX_FRAMES)
    # a synthetic split a run reads must have frames (NUM_VAL 0 suits runs that never read wish_synth_val)
    used = set(c.get_or("DATASETS.TRAIN", ())) | set(c.get_or("DATASETS.VAL", ())) | set(c.get_or("DATASETS.TEST", ()))
    for split in ("VAL", "TEST"):
        if f"wish_synth_{split.lower()}" in used:
            c.check(f"DATASETS.SYNTHETIC.NUM_{split}", lambda v: v != 0,
                    f"an integer > 0: wish_synth_{split.lower()} is in DATASETS")
    lo, hi = IMAGE_SIDE
    c.check("DATASETS.SYNTHETIC.IMAGE_SIZE", lambda v: len(v) == 2 and all(_is_int(x) and lo <= x <= hi for x in v),
            f"two integers (H, W) in [{lo}, {hi}]")
    c.fraction("DATASETS.SYNTHETIC.MULTI_GRIP")
    if c.errors:
        raise ConfigError("invalid WISH config:\n  " + "\n  ".join(c.errors))
