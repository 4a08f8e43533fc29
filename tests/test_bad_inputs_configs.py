"""Table-driven bad config files and values: read safely (no code runs), every problem one error naming the input.

Files go through ``wish_d2.config_file.merge_config_file`` (what every tool, ``_BASE_`` and the hand detector's
config use); values through ``validate_wish_config``.
"""
import os

import pytest
import torch
from detectron2.config import get_cfg

from wish_d2 import add_wish_config
from wish_d2.config_file import ConfigFileError, merge_config_file, merge_config_overrides
from wish_d2.config_validation import ConfigError, validate_wish_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "PWNED"  # a file the payloads below would create


def _payload(tmp_path, tag="python/object/apply:os.system"):
    return f'SEED: !!{tag} ["touch {tmp_path / MARKER}"]\n'


LAUGHS = "a: &a [" + ", ".join(["lol"] * 10) + "]\n" + "".join(
    f"{n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]\n" for p, n in zip("abcdefg", "bcdefgh"))

# (case, {file name: text or a callable of tmp_path}, the file handed over, what the one-line error must say)
FILES = [
    ("python tag apply", {"c.yaml": _payload}, "c.yaml", "python/object/apply:os.system' is not allowed"),
    ("python tag new", {"c.yaml": lambda t: _payload(t, "python/object/new:os.system")}, "c.yaml",
     "python/object/new:os.system' is not allowed"),
    ("python tag name", {"c.yaml": "SEED: !!python/name:os.system\n"}, "c.yaml", "python/name:os.system"),
    ("python tag in a _BASE_", {"c.yaml": "_BASE_: base.yaml\n", "base.yaml": _payload}, "c.yaml",
     "base.yaml: line 1"),
    ("python tag two bases down", {"c.yaml": "_BASE_: b.yaml\n", "b.yaml": "_BASE_: [ok.yaml, bad.yaml]\n",
                                   "ok.yaml": "SEED: 1\n", "bad.yaml": _payload}, "c.yaml", "bad.yaml: line 1"),
    ("duplicate top-level key", {"c.yaml": "SEED: 1\nOUTPUT_DIR: o\nSEED: 2\n"}, "c.yaml",
     "duplicate key 'SEED' (first at line 1)"),
    ("duplicate nested key", {"c.yaml": "MODEL:\n  DEVICE: cpu\n  DEVICE: cuda\n"}, "c.yaml", "duplicate key 'DEVICE'"),
    ("alias bomb", {"c.yaml": LAUGHS}, "c.yaml", "alias bomb"),
    ("recursive alias", {"c.yaml": "a: &a [1, *a]\n"}, "c.yaml", "refers to a node that contains it"),
    ("_BASE_ loop", {"c.yaml": "_BASE_: d.yaml\n", "d.yaml": "_BASE_: c.yaml\n"}, "c.yaml", "_BASE_ loop"),
    ("_BASE_ is itself", {"c.yaml": "_BASE_: c.yaml\n"}, "c.yaml", "_BASE_ loop"),
    ("_BASE_ missing", {"c.yaml": "_BASE_: nope.yaml\n"}, "c.yaml", "_BASE_ 'nope.yaml' not found"),
    ("_BASE_ a folder", {"c.yaml": "_BASE_: .\n"}, "c.yaml", "is a directory"),
    ("_BASE_ an integer", {"c.yaml": "_BASE_: 3\n"}, "c.yaml", "_BASE_ must be a file path"),
    ("_BASE_ empty", {"c.yaml": "_BASE_:\n"}, "c.yaml", "_BASE_ must be a file path"),
    ("_BASE_ list with an integer", {"c.yaml": "_BASE_: [b.yaml, 4]\n", "b.yaml": "SEED: 1\n"}, "c.yaml",
     "got 4"),
    ("_BASE_ a URL", {"c.yaml": "_BASE_: https://example.com/base.yaml\n"}, "c.yaml", "is a URL"),
    ("_BASE_ fan-out", {"b0.yaml": "SEED: 1\n", "b1.yaml": "_BASE_: [" + ", ".join(["b0.yaml"] * 9) + "]\n",
                        "c.yaml": "_BASE_: [" + ", ".join(["b1.yaml"] * 9) + "]\n"}, "c.yaml",
     "chain reads more than 64 files"),
    ("mapping over a base's value", {"c.yaml": "_BASE_: b.yaml\nMODEL: {DEVICE: cpu}\n", "b.yaml": "MODEL: 3\n"},
     "c.yaml", "MODEL is a mapping, but its base sets it to 3"),
    ("two documents", {"c.yaml": "SEED: 1\n---\nSEED: 2\n"}, "c.yaml", "expected a single document"),
    ("empty file", {"c.yaml": ""}, "c.yaml", "the config file is empty"),
    ("only comments", {"c.yaml": "# nothing here\n"}, "c.yaml", "the config file is empty"),
    ("empty _BASE_ file", {"c.yaml": "_BASE_: b.yaml\n", "b.yaml": ""}, "c.yaml", "b.yaml: the config file is empty"),
    ("a directory", {"d/x.yaml": "SEED: 1\n"}, "d", "is a directory, not a config file"),
    ("missing file", {}, "nope.yaml", "config file not found"),
    ("top level a list", {"c.yaml": "- SEED\n- 1\n"}, "c.yaml", "the top level is a list, not a mapping"),
    ("top level a string", {"c.yaml": "hello\n"}, "c.yaml", "the top level is a str, not a mapping"),
    ("non-string key", {"c.yaml": "MODEL:\n  1: 2\n"}, "c.yaml", "key 1 under MODEL. is not a string"),
    ("value for a section", {"c.yaml": "MODEL: 3\n"}, "c.yaml", "MODEL is a section of config keys, got 3"),
    ("unknown key", {"c.yaml": "MODEL:\n  WISH:\n    STAGEE: all\n"}, "c.yaml", "MODEL.WISH.STAGEE"),
    ("wrong type", {"c.yaml": "SOLVER:\n  IMS_PER_BATCH: 1e9\n"}, "c.yaml", "SOLVER.IMS_PER_BATCH"),
    ("a date value", {"c.yaml": "SEED: 2020-01-01\n"}, "c.yaml", "SEED"),
    ("future VERSION", {"c.yaml": "VERSION: 99\n"}, "c.yaml", "VERSION 99"),
    ("syntax error", {"c.yaml": "SEED: [1\n"}, "c.yaml", "line 2"),
    ("tab indentation", {"c.yaml": "MODEL:\n\tDEVICE: cpu\n"}, "c.yaml", "line 2"),
    ("not UTF-8", {"c.yaml": b"SEED: \xff\xfe\n"}, "c.yaml", "c.yaml: "),
    ("nested too deeply", {"c.yaml": "a: " + "[" * 200 + "]" * 200 + "\n"}, "c.yaml", "nested deeper than 64"),
    ("too large", {"c.yaml": "# padding\n" * 120_000}, "c.yaml", "too large for a config file"),
]


def _write(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = text(tmp_path) if callable(text) else text
        path.write_bytes(text if isinstance(text, bytes) else text.encode())


def _wish_cfg():
    cfg = get_cfg()
    add_wish_config(cfg)
    return cfg


@pytest.mark.parametrize("case,files,given,expected", FILES, ids=[c[0] for c in FILES])
def test_bad_config_file_is_one_error_naming_the_file(tmp_path, case, files, given, expected):
    _write(tmp_path, files)
    path = str(tmp_path / given)
    with pytest.raises(ConfigFileError) as e:
        merge_config_file(_wish_cfg(), path, "--config-file")
    message = str(e.value)
    assert message.startswith(f"--config-file: {tmp_path}") and expected in message, message
    assert "\n" not in message
    assert not (tmp_path / MARKER).exists()  # the payload never ran


def test_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "c.yaml")  # opening a FIFO for reading would wait for a writer forever
    with pytest.raises(ConfigFileError, match="not a regular file"):
        merge_config_file(_wish_cfg(), str(tmp_path / "c.yaml"))


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".yaml")))
def test_repository_configs_merge_exactly_like_detectron2(name):
    """Same values as Detectron2's own (unsafe-capable) ``merge_from_file``: the safe reader changes nothing else."""
    ours, theirs = _wish_cfg(), _wish_cfg()
    merge_config_file(ours, os.path.join(ROOT, "configs", name))
    theirs.merge_from_file(os.path.join(ROOT, "configs", name))
    assert ours == theirs


def test_base_semantics_later_bases_and_the_file_win(tmp_path):
    _write(tmp_path, {
        "a.yaml": "SEED: 1\nOUTPUT_DIR: from_a\nMODEL:\n  DEVICE: cpu\n",
        "sub/b.yaml": "SEED: 2\nMODEL:\n  WISH:\n    STAGE: stage1\n",
        "c.yaml": "_BASE_: [a.yaml, sub/b.yaml]\nOUTPUT_DIR: from_c\n",
        "d.yaml": "_BASE_: sub/../c.yaml\nMODEL:\n  WISH:\n    STAGE: stage2\n",
    })
    ours, theirs = _wish_cfg(), _wish_cfg()
    merge_config_file(ours, str(tmp_path / "d.yaml"))
    theirs.merge_from_file(str(tmp_path / "d.yaml"))
    assert ours == theirs
    assert (ours.SEED, ours.OUTPUT_DIR, ours.MODEL.DEVICE, ours.MODEL.WISH.STAGE) == (2, "from_c", "cpu", "stage2")


def test_a_diamond_of_bases_is_not_a_loop_and_merge_keys_are_not_duplicates(tmp_path):
    _write(tmp_path, {"root.yaml": "SEED: 5\n", "l.yaml": "_BASE_: root.yaml\n", "r.yaml": "_BASE_: root.yaml\n",
                      "c.yaml": "_BASE_: [l.yaml, r.yaml]\nSOLVER: &s {WARMUP_ITERS: 3}\nTEST:\n  EVAL_PERIOD: 7\n"})
    cfg = _wish_cfg()
    merge_config_file(cfg, str(tmp_path / "c.yaml"))
    assert (cfg.SEED, cfg.SOLVER.WARMUP_ITERS, cfg.TEST.EVAL_PERIOD) == (5, 3, 7)


def test_old_detectron2_config_is_upgraded_like_merge_from_file(tmp_path):
    _write(tmp_path, {"v1.yaml": "VERSION: 1\nMODEL:\n  WEIGHT: w.pkl\n  RPN:\n    HEAD_NAME: StandardRPNHead\n"})
    ours, theirs = get_cfg(), get_cfg()
    merge_config_file(ours, str(tmp_path / "v1.yaml"))
    theirs.merge_from_file(str(tmp_path / "v1.yaml"))
    assert ours == theirs and ours.MODEL.WEIGHTS == "w.pkl"


def test_the_hand_detector_config_is_read_safely(tmp_path):
    from wish_d2.modeling.hands import DetectorHands

    (tmp_path / "det.yaml").write_text(_payload(tmp_path))
    torch.save({"model": {}}, tmp_path / "det.pth")
    with pytest.raises(ConfigFileError, match=r"^MODEL.WISH.HANDS.DETECTOR_CONFIG: .*det.yaml: line 1.*not allowed"):
        DetectorHands(str(tmp_path / "det.yaml"), str(tmp_path / "det.pth"))
    assert not (tmp_path / MARKER).exists()


def test_validation_reads_the_hand_detector_config_first(tmp_path):
    cfg = _valid_cfg(tmp_path)
    cfg.MODEL.WISH.HANDS.SOURCE = "detector"
    with pytest.raises(ConfigError, match="DETECTOR_CONFIG='': expected the detector's config file"):
        validate_wish_config(cfg)
    (tmp_path / "det.yaml").write_text(_payload(tmp_path))
    cfg.MODEL.WISH.HANDS.DETECTOR_CONFIG = str(tmp_path / "det.yaml")
    with pytest.raises(ConfigError, match=r"DETECTOR_CONFIG=.*det.yaml: line 1.*is not allowed"):
        validate_wish_config(cfg)
    assert not (tmp_path / MARKER).exists()


def test_no_unsafe_config_reader_left_in_the_package_or_tools():
    """Detectron2's ``merge_from_file`` falls back to ``yaml.unsafe_load``: only ``config_file.py`` reads YAML."""
    offenders = []
    for folder in ("wish_d2", "tools"):
        for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
            for name in names:
                path = os.path.join(dirpath, name)
                if not name.endswith(".py") or path.endswith(os.path.join("wish_d2", "config_file.py")):
                    continue
                text = open(path, encoding="utf-8").read()
                offenders += [f"{path}: {w}" for w in (".merge_from_file(", "load_yaml_with_base", "yaml.load(",
                                                       "unsafe_load", "full_load") if w in text]
    assert not offenders


# ------------------------------------------------------------------------------------------- command-line overrides
OVERRIDES = [
    (["SOLVER.IMS_PER_BATCH", "1e9"], "config override SOLVER.IMS_PER_BATCH '1e9': Type mismatch"),
    (["MODEL.WISH.NOPE", "1"], "config override MODEL.WISH.NOPE '1': Non-existent key"),
    (["_BASE_", "x.yaml"], "_BASE_"),
    (["SEED"], "KEY VALUE pairs"),
    (["DATASETS.TRAIN", "(" * 5000], "config override DATASETS.TRAIN"),
]


@pytest.mark.parametrize("opts,expected", OVERRIDES, ids=[o[0] for o, _ in OVERRIDES])
def test_bad_override_names_the_key(opts, expected):
    with pytest.raises(ConfigFileError) as e:
        merge_config_overrides(_wish_cfg(), opts)
    assert expected in str(e.value) and len(str(e.value)) < 600


# ------------------------------------------------------------------------------------------------ config values
def _existing_file(tmp_path):
    (tmp_path / "a_file").write_text("x")
    return str(tmp_path / "a_file")


# (key, value, or a callable of tmp_path; what the error must say)
VALUES = [
    ("SOLVER.IMS_PER_BATCH", 10 ** 9, "[1, 65536]"),
    ("SOLVER.IMS_PER_BATCH", 0, "[1, 65536]"),
    ("DATASETS.SYNTHETIC.IMAGE_SIZE", (1, 1), "[32, 8192]"),
    ("DATASETS.SYNTHETIC.IMAGE_SIZE", (-5, 10), "[32, 8192]"),
    ("DATASETS.SYNTHETIC.IMAGE_SIZE", (160,), "two integers"),
    ("MODEL.WISH.CLIP.WEB_PRETRAIN.IMAGE_SIZE", 1, "[32, 8192]"),
    ("DATASETS.SYNTHETIC.NUM_TRAIN", 0, "[1, 1000000]"),
    ("DATASETS.SYNTHETIC.NUM_TEST", -1, "[0, 1000000]"),
    ("DATASETS.SYNTHETIC.NUM_VAL", 10 ** 9, "[0, 1000000]"),
    ("DATASETS.SYNTHETIC.SEED", -1, "[0, 4294967295]"),
    ("MODEL.WISH.PROPOSALS.MIN_AREA", 1e12, "[0, 67108864]"),
    ("MODEL.WISH.PROPOSALS.MIN_AREA", -1, "[0, 67108864]"),
    ("MODEL.WISH.PROPOSALS.MAX_PER_IMAGE", 10 ** 7, "[1, 65536]"),
    ("SOLVER.WEIGHT_DECAY", -1.0, "[0, 1]"),
    ("DATALOADER.NUM_WORKERS", -1, "[0, 256]"),
    ("DATALOADER.NUM_WORKERS", 10 ** 5, "[0, 256]"),
    ("SOLVER.WARMUP_ITERS", -5, "[0, 10000000]"),
    ("INPUT.FORMAT", "YUV", "'RGB', 'BGR'"),
    ("SOLVER.BASE_LR", 0.0, "(0, 10.0]"),
    ("SOLVER.BASE_LR", float("inf"), "(0, 10.0]"),
    ("SOLVER.BASE_LR_END", -1.0, "[0, 10.0]"),
    ("SOLVER.MAX_ITER", -1, "[0, 10000000]"),
    ("SOLVER.STEPS", (300, 200), "increasing integers"),
    ("SOLVER.STEPS", (-1,), "increasing integers"),
    ("SOLVER.CHECKPOINT_PERIOD", 0, "[1, 10000000]"),
    ("SOLVER.WARMUP_FACTOR", 2.0, "[0, 1]"),
    ("SOLVER.WARMUP_METHOD", "cubic", "'linear', 'constant'"),
    ("SOLVER.LR_SCHEDULER_NAME", "OneCycle", "WarmupMultiStepLR"),
    ("SOLVER.GAMMA", 0.0, "(0, 1]"),
    ("SOLVER.MOMENTUM", 1.0, "[0, 1)"),
    ("SOLVER.NESTEROV", "yes", "True or False"),
    ("SOLVER.REFERENCE_WORLD_SIZE", -2, "[0, 65536]"),
    ("SOLVER.AMP.ENABLED", 1, "True or False"),
    ("DATALOADER.ASPECT_RATIO_GROUPING", "no", "True or False"),
    ("TEST.EVAL_PERIOD", -1, "[0, 10000000]"),
    ("TEST.AUG.ENABLED", "no", "True or False"),
    ("TEST.PRECISE_BN.ENABLED", 0, "True or False"),
    ("SEED", 2 ** 40, "an integer <= 4294967295"),
    ("MODEL.DEVICE", "gpu", "'cpu', 'cuda', 'cuda:N'"),
    ("MODEL.WEIGHTS", None, "a string"),
    ("OUTPUT_DIR", "", "a non-empty string"),
    ("OUTPUT_DIR", _existing_file, "not an existing file"),
    ("MODEL.WISH.CACHE.DIR", _existing_file, "not an existing file"),
    ("OUTPUT_DIR", lambda t: os.path.join(_existing_file(t), "sub"), "not an existing file (nor under one)"),
    ("DATASETS.TRAIN", ("",), "list of non-empty strings"),
    ("DATASETS.TEST", "wish_synth_test", "list of non-empty strings"),
    ("MODEL.WISH.CLIP.MODEL_NAME", "", "non-empty string"),
    ("MODEL.WISH.CLIP.INIT_SEED", -1, "[0, 4294967295]"),
    ("MODEL.WISH.CLIP.AUTOCAST", "float8", "'bfloat16'"),
    ("MODEL.WISH.CLIP.PROBE_FRAMES", -1, "[0, 1000000]"),
    ("MODEL.WISH.CLIP.WEB_PRETRAIN.STEPS", 0, "[1, 10000000]"),
    ("MODEL.WISH.CLIP.WEB_PRETRAIN.BATCH_SIZE", 10 ** 9, "[1, 65536]"),
    ("MODEL.WISH.CLIP.WEB_PRETRAIN.LR", 1e6, "(0, 10.0]"),
    ("MODEL.WISH.CLIP.WEB_PRETRAIN.NUM_PAIRS", -1, "[0, 1000000]"),
    ("MODEL.WISH.CLIP.WEB_PRETRAIN.UNLOCKED_IMAGE_GROUPS", -2, "-1"),
    ("MODEL.WISH.OPEN_VOCAB.NOUNS", ["cup", ""], "non-empty strings"),
    ("MODEL.WISH.OPEN_VOCAB.PROMPT", "a {side} thing", "{side}"),
    ("MODEL.WISH.OPEN_VOCAB.BACKGROUND", [3], "non-empty strings"),
    ("MODEL.WISH.SEGMENTER.SAM_TYPE", "vit_x", "'vit_b'"),
    ("MODEL.WISH.SEGMENTER.POINTS_PER_SIDE", 100_000, "[1, 1024]"),
    ("MODEL.WISH.SEGMENTER.POINTS_PER_BATCH", 0, "[1, 65536]"),
    ("MODEL.WISH.SEGMENTER.SAM_CHECKPOINT", 3, "a string"),
    ("MODEL.WISH.HANDS.DETECTOR_CLASSES", [], "non-empty list"),
    ("MODEL.WISH.HANDS.DETECTOR_SCORE_THRESH", 2.0, "[0, 1]"),
    ("MODEL.WISH.HANDS.PRECOMPUTED_FILE", None, "a string"),
    ("MODEL.WISH.ADAPTER.HIDDEN_DIM", 10 ** 9, "[1, 65536]"),
    ("MODEL.WISH.STAGE1.MAX_ITER", 10 ** 9, "[0, 10000000]"),
    ("MODEL.WISH.STAGE1.IMS_PER_BATCH", 10 ** 9, "[1, 65536]"),
    ("MODEL.WISH.STAGE2.BASE_LR", 1e6, "(0, 10.0]"),
    ("MODEL.WISH.PSEUDO.FILE", 1, "a string"),
    ("MODEL.WISH.CACHE.SHARD_SIZE", 10 ** 9, "[1, 65536]"),
]


def _valid_cfg(tmp_path):
    cfg = _wish_cfg()
    merge_config_file(cfg, os.path.join(ROOT, "configs", "wish_synthetic.yaml"))
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    return cfg


@pytest.mark.parametrize("key,value,allowed", VALUES, ids=[f"{k}={v!r}"[:60] for k, v, _ in VALUES])
def test_absurd_value_is_refused_naming_the_key(tmp_path, key, value, allowed):
    cfg = _valid_cfg(tmp_path)
    validate_wish_config(cfg)  # valid before the one change
    *path, leaf = key.split(".")
    node = cfg
    for p in path:
        node = node[p]
    node[leaf] = value(tmp_path) if callable(value) else value
    with pytest.raises(ConfigError) as e:
        validate_wish_config(cfg)
    lines = str(e.value).splitlines()[1:]
    assert len(lines) == 1 and lines[0].strip().startswith(f"{key}=") and allowed in lines[0], str(e.value)


def test_synthetic_split_a_run_reads_needs_frames(tmp_path):
    cfg = _valid_cfg(tmp_path)
    cfg.DATASETS.SYNTHETIC.NUM_VAL = 0  # wish_synth_val is DATASETS.VAL of the synthetic config
    with pytest.raises(ConfigError, match="DATASETS.SYNTHETIC.NUM_VAL=0: expected an integer > 0: wish_synth_val"):
        validate_wish_config(cfg)
    cfg.DATASETS.VAL = ()
    cfg.MODEL.WISH.CALIBRATION = "label_free"
    validate_wish_config(cfg)  # a run that never reads the val split may leave it empty


def test_values_at_the_bounds_are_accepted(tmp_path):
    cfg = _valid_cfg(tmp_path)
    for key, value in [("DATASETS.SYNTHETIC.IMAGE_SIZE", (32, 8192)), ("SOLVER.IMS_PER_BATCH", 65536),
                       ("MODEL.WISH.PROPOSALS.MIN_AREA", 0), ("SOLVER.WEIGHT_DECAY", 0.0), ("SEED", -1),
                       ("DATALOADER.NUM_WORKERS", 0), ("SOLVER.WARMUP_ITERS", 0), ("INPUT.FORMAT", "BGR"),
                       ("MODEL.DEVICE", "cuda:1"), ("DATASETS.SYNTHETIC.NUM_TRAIN", 1)]:
        *path, leaf = key.split(".")
        node = cfg
        for p in path:
            node = node[p]
        node[leaf] = value
    validate_wish_config(cfg)
