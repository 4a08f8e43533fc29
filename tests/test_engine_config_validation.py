"""Every invalid config value is rejected where the config is built (``build_cfg``, the setup every tool shares),
once, before any work, naming the key and what it may be."""
import pytest
from wish_fixtures import tiny_cfg

from wish_d2.config_validation import ConfigError, validate_wish_config

BAD = [
    ("MODEL.WISH.INFERENCE.FUSION", "sum", "product"),
    ("MODEL.WISH.CLIP.PROMPT", "a {object} near the {side} hand", "{object}"),
    ("MODEL.WISH.CLIP.PROMPT", "a {noun} {", "format string"),
    ("MODEL.WISH.CLIP.ZERO_SHOT_PROMPT", "the {noun} in the {side} hand", "{noun}"),
    ("MODEL.WISH.STAGE1.TEMPERATURE", "0.0", "> 0"),
    ("MODEL.WISH.STAGE1.TEMPERATURE", "-0.1", "> 0"),
    ("MODEL.WISH.ADAPTER.HIDDEN_DIM", "0", "[1, "),
    ("MODEL.WISH.ADAPTER.EMBED_DIM", "-4", "[1, "),
    ("MODEL.WISH.ADAPTER.DROPOUT", "1.0", "[0, 1)"),
    ("MODEL.WISH.CACHE.SHARD_SIZE", "0", "[1, "),
    ("MODEL.WISH.METHOD", "wishh", "matching_only"),
    ("MODEL.WISH.STAGE", "stage3", "stage1"),
    ("MODEL.WISH.SUPERVISION", "full", "pseudo"),
    ("MODEL.WISH.STAGE1.PAIR_VISUAL", "object", "contact"),
    ("MODEL.WISH.STAGE2.PAIR_VISUAL", "object", "contact"),
    ("MODEL.WISH.INFERENCE.CONTACT_THRESHOLD", "1.5", "[0, 1]"),
    ("MODEL.WISH.PSEUDO.THRESHOLD", float("nan"), "finite"),  # a YAML .nan
    ("MODEL.WISH.INFERENCE.CONTACT_THRESHOLD", float("-inf"), "[0, 1]"),
    ("MODEL.WISH.PROPOSALS.MAX_HAND_FRACTION", "1.2", "[0, 1]"),
    ("MODEL.WISH.PROPOSALS.MAX_PER_IMAGE", "0", "[1, "),
    ("MODEL.WISH.SEGMENTER.PRED_IOU_THRESH", "-0.1", "[0, 1]"),
    ("MODEL.WISH.HANDS.SOURCE", "gloves", "dataset"),
    ("MODEL.WISH.HANDS.DILATION", "-0.01", "[0, 1]"),
    ("MODEL.WISH.CLIP.ENCODER", "NoSuchCLIP", "OpenCLIPEncoder"),
    ("MODEL.WISH.STAGE2.BASE_LR", "0.0", "(0, "),
    ("MODEL.WISH.STAGE2.IMS_PER_BATCH", "0", "[1, "),
    ("MODEL.WISH.LOSS_WEIGHTS.MATCH", "-1.0", ">= 0"),
    ("SOLVER.OPTIMIZER", "Adam", "AdamW"),
    ("MODEL.WISH.MAX_OBJECTS_PER_HAND", "0", "> 0"),
    ("MODEL.WISH.PSEUDO.EXTRA_THRESHOLD", float("inf"), "finite"),
    ("MODEL.WISH.INFERENCE.EXTRA_CONTACT_THRESHOLD", "1.5", "[0, 1]"),
    ("DATASETS.SYNTHETIC.MULTI_GRIP", "1.5", "[0, 1]"),
    ("INPUT.DATASET_MAPPER_NAME", "wish_cache", "wish_cached"),
    ("MODEL.WISH.CLIP.AUTOCAST", "fp8", "'bfloat16'"),
    ("MODEL.WISH.HANDS.DETECTOR_SCORE_THRESH", "1.5", "[0, 1]"),
    ("MODEL.WISH.HANDS.DETECTOR_SCORE_THRESH", "-0.5", "[0, 1]"),
    ("MODEL.WISH.OPEN_VOCAB.PROMPT", "a {object}", "{object}"),
    ("MODEL.WISH.OPEN_VOCAB.PROMPT", "the {noun} in the {side} hand", "{side}"),
    ("MODEL.WISH.OPEN_VOCAB.NOUNS", ["cup", ""], "non-empty strings"),
    ("MODEL.WISH.OPEN_VOCAB.BACKGROUND", ["a hand", 3], "a list of non-empty strings"),
    ("MODEL.ROI_HEADS.NAME", "StandardROIHeads", "WISHROIHeads"),
]


def _cfg(tmp_path, *opts):
    cfg = tiny_cfg(tmp_path)
    for key, value in zip(opts[::2], opts[1::2]):
        if isinstance(value, str):
            cfg.merge_from_list([key, value])
        else:  # a value no command line can give, only a YAML file
            *path, leaf = key.split(".")
            node = cfg
            for p in path:
                node = node[p]
            node[leaf] = value
    return cfg


def test_defaults_and_test_configs_are_valid(tmp_path):
    validate_wish_config(_cfg(tmp_path))
    validate_wish_config(_cfg(tmp_path, "MODEL.WISH.INFERENCE.FUSION", "chain", "MODEL.WISH.PSEUDO.THRESHOLD", "2.5",
                              "MODEL.WISH.INFERENCE.CONTACT_THRESHOLD", "0.3", "MODEL.WISH.CLIP.PROMPT", "a {noun}"))


@pytest.mark.parametrize("key,value,allowed", BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_bad_value_names_key_and_allowed_values(tmp_path, key, value, allowed):
    with pytest.raises(ConfigError) as e:
        validate_wish_config(_cfg(tmp_path, key, value))
    assert key in str(e.value) and allowed in str(e.value)


def test_all_bad_values_are_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as e:
        validate_wish_config(_cfg(tmp_path, "MODEL.WISH.INFERENCE.FUSION", "sum", "MODEL.WISH.CACHE.SHARD_SIZE", "0"))
    assert "FUSION" in str(e.value) and "SHARD_SIZE" in str(e.value)


def _leaves(node, prefix):
    from detectron2.config import CfgNode

    for k, v in node.items():
        if isinstance(v, CfgNode):
            yield from _leaves(v, prefix + k + ".")
        else:
            yield prefix + k


def test_every_wish_key_is_validated(tmp_path):
    """Each ``MODEL.WISH`` and ``DATASETS.SYNTHETIC`` key, set to a value of no possible type, is reported by name:
    a key added to ``add_wish_config`` without a check fails here."""
    cfg = tiny_cfg(tmp_path)
    keys = list(_leaves(cfg.MODEL.WISH, "MODEL.WISH.")) + list(_leaves(cfg.DATASETS.SYNTHETIC, "DATASETS.SYNTHETIC."))
    assert len(keys) > 80
    unchecked = []
    for key in keys:
        bad = cfg.clone()
        *path, leaf = key.split(".")
        node = bad
        for part in path:
            node = node[part]
        node[leaf] = object()
        try:
            validate_wish_config(bad)
        except ConfigError as e:
            if f"{key}=" not in str(e):
                unchecked.append(f"{key} (error does not name it)")
        else:
            unchecked.append(key)
    assert not unchecked


def test_validated_once_where_the_config_is_built(tmp_path, monkeypatch):
    """``build_cfg`` (every tool's setup) validates; building the model from that config does not check it again,
    and a bad value stops ``build_cfg`` before anything is built."""
    from detectron2.modeling import build_model

    from wish_d2 import config_validation
    from wish_d2.engine.setup import build_cfg

    calls = []
    real = config_validation._Checker.__init__
    monkeypatch.setattr(config_validation._Checker, "__init__", lambda self, cfg: calls.append(1) or real(self, cfg))
    opts = ["MODEL.WISH.CLIP.MODEL_NAME", "WISH-Test-ViT", "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path / "out")]
    cfg = build_cfg("", opts)
    build_model(cfg)
    assert len(calls) == 1
    with pytest.raises(ConfigError, match="FUSION"):
        build_cfg("", opts + ["MODEL.WISH.INFERENCE.FUSION", "sum"])
    assert len(calls) == 2 and not (tmp_path / "out").exists()
