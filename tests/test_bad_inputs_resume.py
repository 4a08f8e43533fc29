"""``--resume`` on an output folder a careless or hostile user prepared: a ``last_checkpoint`` that is garbage,
empty, a folder, names a missing file or a file outside its folder is one clear line; a config changed in a key that
changes parameter shapes, the cached features or the training images is refused, naming the keys; the saved config
is read as plain YAML data."""
import importlib.util
import os
from types import SimpleNamespace

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from wish_fixtures import tiny_cfg

from wish_d2.cache.extract import feature_cache_key
from wish_d2.engine.resume import (DATA_KEYS, FEATURE_KEYS, RESUME_KEYS, SHAPE_KEYS, ResumeError, check_resume)
from wish_d2.engine.trainer import WISHTrainer
from wish_d2.modeling.checkpointer import LAST_CHECKPOINT, tagged_checkpoint
from wish_d2.modeling.weights import WeightsError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------------ last_checkpoint
def _tag_cases(folder, outside):
    """name -> (what to put at folder/last_checkpoint, fragment of the expected message)."""
    return {
        "garbage": (b"\xff\xfe\x00garbage\x00", "garbage"),
        "two_lines": (b"model_a.pth\nmodel_b.pth\n", "garbage"),
        "huge": (b"m" * 10000, "garbage"),
        "empty": (b"", "is empty"),
        "blank": (b"  \n", "is empty"),
        "missing_file": (b"model_0000099.pth", "which is missing"),
        "names_a_folder": (b"sub", "which is a folder"),
        "absolute": (str(outside).encode(), "outside the output folder"),
        "dotdot": (b"../evil.pkl", "outside the output folder"),
        "dotdot_inside": (b"sub/../../evil.pkl", "outside the output folder"),
        "symlink_out": (b"link.pkl", "outside the output folder"),
        "tag_is_folder": (None, "is a folder"),
    }


CASES = ["garbage", "two_lines", "huge", "empty", "blank", "missing_file", "names_a_folder", "absolute", "dotdot",
         "dotdot_inside", "symlink_out", "tag_is_folder"]


def _output_folder(tmp_path, case):
    """An output folder whose last_checkpoint is ``case``; beside it, a hostile file it might point at."""
    out = tmp_path / "run"
    (out / "sub").mkdir(parents=True)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cposix\nsystem\n(S'touch %s'\ntR." % str(tmp_path / "pwned").encode())
    (out / "link.pkl").symlink_to(evil)
    content, fragment = _tag_cases(out, evil)[case]
    if content is None:
        (out / LAST_CHECKPOINT).mkdir()
    else:
        (out / LAST_CHECKPOINT).write_bytes(content)
    return out, fragment


@pytest.mark.parametrize("case", CASES)
def test_bad_last_checkpoint_is_one_line_naming_it(tmp_path, case):
    out, fragment = _output_folder(tmp_path, case)
    with pytest.raises(WeightsError) as e:
        tagged_checkpoint(str(out))
    msg = str(e.value)
    assert fragment in msg and str(out / LAST_CHECKPOINT) in msg and "\n" not in msg, msg
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("case", ["absolute", "dotdot", "symlink_out", "empty", "garbage"])
def test_bad_last_checkpoint_stops_train_net_resume_before_setup(tmp_path, case):
    """In tools/train_net.py, --resume checks before default_setup, so the run's saved config.yaml survives."""
    out, fragment = _output_folder(tmp_path, case)
    (out / "config.yaml").write_text("kept: true\n")
    tool = _train_net()
    args = tool.argument_parser().parse_args(
        ["--config-file", os.path.join(ROOT, "configs", "wish_synthetic.yaml"), "--resume",
         "MODEL.WISH.CLIP.MODEL_NAME", "WISH-Test-ViT", "OUTPUT_DIR", str(out)])
    with pytest.raises(ResumeError, match=fragment) as e:
        tool.main(args)
    assert str(e.value).startswith("--resume: ")
    assert (out / "config.yaml").read_text() == "kept: true\n" and not (tmp_path / "pwned").exists()


def test_stage_folders_are_checked_too(tmp_path):
    cfg = tiny_cfg(tmp_path / "run")
    (tmp_path / "run" / "stage2").mkdir(parents=True)
    (tmp_path / "run" / "stage2" / LAST_CHECKPOINT).write_text("/etc/passwd")
    with pytest.raises(ResumeError, match="stage2.*outside the output folder"):
        check_resume(cfg)


def test_good_last_checkpoint_is_returned(tmp_path):
    (tmp_path / "model_0000019.pth").write_bytes(b"x")
    (tmp_path / LAST_CHECKPOINT).write_text("model_0000019.pth")
    assert tagged_checkpoint(str(tmp_path)) == str(tmp_path / "model_0000019.pth")
    assert tagged_checkpoint(str(tmp_path / "none")) == ""  # no tag: nothing to resume


def _train_net():
    spec = importlib.util.spec_from_file_location("tool_train_net", os.path.join(ROOT, "tools", "train_net.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


# ------------------------------------------------------------------------------------------------ changed config
def _interrupted_run(tmp_path, cfg):
    """OUTPUT_DIR as an interrupted run leaves it: config.yaml (as default_setup writes it) and a checkpoint."""
    out = tmp_path / "run"
    (out / "stage1").mkdir(parents=True)
    (out / "config.yaml").write_text(cfg.dump())
    (out / "stage1" / "model_0000009.pth").write_bytes(b"x")
    (out / "stage1" / LAST_CHECKPOINT).write_text("model_0000009.pth")
    return out


CHANGES = [
    ("MODEL.WISH.ADAPTER.HIDDEN_DIM", "64"),
    ("MODEL.WISH.ADAPTER.EMBED_DIM", "8"),
    ("MODEL.WISH.CLIP.MODEL_NAME", "WISH-Tiny-ViT"),
    ("MODEL.WISH.STAGE2.MATCH_BOTH_HANDS", "False"),
    ("MODEL.WISH.USE_CONTACT_REGION", "False"),
    ("MODEL.WISH.CLIP.PRETRAINED", "other.pth"),
    ("MODEL.WISH.PROPOSALS.MAX_PER_IMAGE", "7"),
    ("MODEL.WISH.HANDS.DILATION", "0.1"),
    ("DATASETS.TRAIN", "('wish_tiny_other',)"),
    ("DATASETS.SYNTHETIC.SEED", "3"),
]


@pytest.mark.parametrize("key,value", CHANGES)
def test_changed_resume_key_is_refused_naming_it(tmp_path, key, value):
    cfg = tiny_cfg(tmp_path / "run")
    _interrupted_run(tmp_path, cfg)
    now = cfg.clone()
    now.merge_from_list([key, value])
    with pytest.raises(ResumeError) as e:
        check_resume(now)
    msg = str(e.value)
    assert key in msg and "1 key(s)" in msg and "\n" not in msg


@pytest.mark.parametrize("key,value", [("MODEL.WISH.STAGE2.MAX_ITER", "50"), ("SOLVER.BASE_LR", "0.5"),
                                       ("MODEL.WISH.CACHE.DTYPE", "float16"), ("MODEL.WISH.CLIP.AUTOCAST", "bfloat16"),
                                       ("DATASETS.TEST", "('wish_tiny_other',)")])
def test_other_changes_may_resume(tmp_path, key, value):
    cfg = tiny_cfg(tmp_path / "run")
    _interrupted_run(tmp_path, cfg)
    now = cfg.clone()
    now.merge_from_list([key, value])
    check_resume(now)


def test_several_changes_are_all_named(tmp_path):
    cfg = tiny_cfg(tmp_path / "run")
    _interrupted_run(tmp_path, cfg)
    now = cfg.clone()
    now.merge_from_list(["MODEL.WISH.ADAPTER.HIDDEN_DIM", "64", "MODEL.WISH.STAGE2.MATCH_BOTH_HANDS", "False"])
    with pytest.raises(ResumeError, match="2 key.*HIDDEN_DIM: 32 in the run, 64 now.*MATCH_BOTH_HANDS"):
        check_resume(now)


@pytest.mark.parametrize("content,fragment", [
    ("MODEL: !!python/object/apply:os.system ['touch {marker}']\n", "plain YAML data"),
    ("MODEL: {WISH: [unclosed\n", "plain YAML data"),
    ("- just\n- a list\n", "not a YAML mapping"),
    (b"\xff\xfe binary", "plain YAML data"),
])
def test_unreadable_saved_config_is_refused_and_runs_nothing(tmp_path, content, fragment):
    cfg = tiny_cfg(tmp_path / "run")
    out = _interrupted_run(tmp_path, cfg)
    marker = tmp_path / "pwned"
    if isinstance(content, bytes):
        (out / "config.yaml").write_bytes(content)
    else:
        (out / "config.yaml").write_text(content.replace("{marker}", str(marker)))
    with pytest.raises(ResumeError, match=fragment) as e:
        check_resume(cfg)
    assert str(out / "config.yaml") in str(e.value) and not marker.exists()


def test_nothing_to_resume_or_no_saved_config_goes_on(tmp_path, caplog):
    cfg = tiny_cfg(tmp_path / "run")
    check_resume(cfg)  # no output folder yet
    out = _interrupted_run(tmp_path, cfg)
    os.remove(out / "config.yaml")
    check_resume(cfg)
    assert "cannot be compared" in caplog.text


# ------------------------------------------------------------------------------------------------ the key lists
def _shapes(cfg):
    return {k: tuple(v.shape) for k, v in build_model(cfg).state_dict().items()}


@pytest.mark.parametrize("key,value", [
    ("MODEL.WISH.CLIP.MODEL_NAME", "WISH-Tiny-ViT"), ("MODEL.WISH.ADAPTER.HIDDEN_DIM", "24"),
    ("MODEL.WISH.ADAPTER.EMBED_DIM", "8"), ("MODEL.WISH.USE_GEOMETRY", "False"),
    ("MODEL.WISH.USE_CONTACT_REGION", "False"), ("MODEL.WISH.STAGE2.MATCH_BOTH_HANDS", "False")])
def test_every_shape_key_changes_parameter_shapes(tmp_path, key, value):
    assert key in SHAPE_KEYS
    cfg = tiny_cfg(tmp_path)
    changed = cfg.clone()
    changed.merge_from_list([key, value])
    assert _shapes(cfg) != _shapes(changed)


def test_shape_keys_table_is_complete():
    assert len(SHAPE_KEYS) == 6 and set(SHAPE_KEYS) <= set(RESUME_KEYS)


class _Recorder:
    """A config stand-in that records the full name of every leaf a function reads."""

    def __init__(self, node, prefix, seen):
        self._node, self._prefix, self._seen = node, prefix, seen

    def __getattr__(self, name):
        value = getattr(self._node, name)
        key = f"{self._prefix}{name}"
        if isinstance(value, dict):
            return _Recorder(value, key + ".", self._seen)
        self._seen.add(key)
        return value


def test_feature_keys_are_exactly_the_cache_key_fields_but_storage(tmp_path):
    """Every config field the feature cache's key reads is a resume key, except the two that only change storage
    precision; so a new cache field cannot be forgotten here."""
    seen = set()
    feature_cache_key(_Recorder(tiny_cfg(tmp_path), "", seen), "d", [])
    assert seen - {"MODEL.WISH.CACHE.DTYPE", "MODEL.WISH.CLIP.AUTOCAST"} == set(FEATURE_KEYS) | {
        "MODEL.WISH.CLIP.MODEL_NAME"}  # a shape key too
    assert set(DATA_KEYS) <= set(RESUME_KEYS)


# ------------------------------------------------------------------------------------------------ the trainer
def _bare_trainer(cfg, model, allow_partial=False):
    """WISHTrainer.resume_or_load's state without loaders (nothing else of the trainer is used)."""
    t = WISHTrainer.__new__(WISHTrainer)
    t.cfg, t.allow_partial_weights, t.start_iter, t.iter = cfg, allow_partial, 0, 9
    t._trainer = SimpleNamespace(model=model, load_state_dict=lambda state: None)
    t.checkpointer = DetectionCheckpointer(model, cfg.OUTPUT_DIR)
    return t


def test_trainer_resumes_a_good_checkpoint_and_refuses_one_of_another_shape(tmp_path):
    small = tiny_cfg(tmp_path / "run")
    (tmp_path / "run").mkdir()
    DetectionCheckpointer(build_model(small), save_dir=str(tmp_path / "run")).save("model_0000009")
    t = _bare_trainer(small, build_model(small))
    t.resume_or_load(resume=True)
    assert t.start_iter == 10

    wider = small.clone()
    wider.merge_from_list(["MODEL.WISH.ADAPTER.HIDDEN_DIM", "48"])
    with pytest.raises(WeightsError, match="named by .*last_checkpoint.*only partly.*of another shape.*resume"):
        _bare_trainer(wider, build_model(wider)).resume_or_load(resume=True)
    t = _bare_trainer(wider, build_model(wider), allow_partial=True)
    t.resume_or_load(resume=True)  # allowed: logged
    assert t.start_iter == 10


def test_trainer_refuses_foreign_training_init(tmp_path):
    cfg = tiny_cfg(tmp_path / "run")
    torch.save({"model": {"backbone.x": torch.zeros(2)}}, str(tmp_path / "foreign.pth"))
    cfg.merge_from_list(["MODEL.WEIGHTS", str(tmp_path / "foreign.pth")])
    with pytest.raises(WeightsError, match="only partly.*train from them"):
        _bare_trainer(cfg, build_model(cfg)).resume_or_load(resume=False)


def test_trainer_state_records_the_resume_keys_and_refuses_a_changed_config(tmp_path):
    """The recorded values travel in every trainer checkpoint: a stage checkpoint older than config.yaml (a run
    restarted without --resume, stopped before its first checkpoint) is still compared."""
    from wish_d2.engine.resume import config_resume_values
    from wish_d2.engine.trainer import RESUME_STATE_KEY

    cfg = tiny_cfg(tmp_path / "run")
    state = {"iteration": 9, "_trainer": {}, RESUME_STATE_KEY: config_resume_values(cfg)}
    t = _bare_trainer(cfg, build_model(cfg))
    t.load_state_dict(dict(state, hooks={}))
    assert t.iter == 9
    changed = cfg.clone()
    changed.merge_from_list(["MODEL.WISH.HANDS.DILATION", "0.2"])
    with pytest.raises(ResumeError, match="checkpoint in .*MODEL.WISH.HANDS.DILATION: 0.04 in the run, 0.2 now"):
        _bare_trainer(changed, build_model(changed)).load_state_dict(state)
    path = tmp_path / "s.pth"
    torch.save({"trainer": state}, str(path))  # plain data: survives weights_only loading
    assert torch.load(str(path), weights_only=True)["trainer"][RESUME_STATE_KEY] == state[RESUME_STATE_KEY]
