"""Every invalid config value is rejected when the model or trainer is built, naming the key and what it may be."""
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


def test_model_and_trainer_refuse_before_any_work(tmp_path):
    """build_model (WISH.from_config) and WISHTrainer fail on the config alone: no cache, no dataset read."""
    from detectron2.modeling import build_model

    from wish_d2.engine import WISHTrainer, run_pipeline

    cfg = _cfg(tmp_path, "MODEL.WISH.INFERENCE.FUSION", "sum", "DATASETS.TRAIN", "('not_registered',)")
    with pytest.raises(ConfigError, match="FUSION"):
        build_model(cfg)
    with pytest.raises(ConfigError, match="FUSION"):
        WISHTrainer(cfg)
    with pytest.raises(ConfigError, match="FUSION"):
        run_pipeline(cfg)
    assert not (tmp_path / "cache").exists()
