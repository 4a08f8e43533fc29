"""``--eval-only`` evaluates trained weights or refuses: empty, missing or partly matching MODEL.WEIGHTS is an error
(unless partial loads are allowed), never a quietly random model."""
import os
import subprocess
import sys

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from wish_fixtures import tiny_cfg

from wish_d2.engine.checkpoint import WeightsError, load_eval_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("weights")
    cfg = tiny_cfg(out)
    model = build_model(cfg)
    with torch.no_grad():
        model.roi_heads.contact_threshold.fill_(0.37)
    DetectionCheckpointer(model, save_dir=str(out)).save("good")
    state = torch.load(str(out / "good.pth"), weights_only=True)
    head_key = next(k for k in state["model"] if k.startswith("roi_heads.heads."))
    partial = dict(state, model={k: v for k, v in state["model"].items() if k != head_key})
    torch.save(partial, str(out / "partial.pth"))
    extra = dict(state, model=dict(state["model"], **{"roi_heads.surprise.weight": torch.zeros(2)}))
    torch.save(extra, str(out / "extra.pth"))
    return cfg, out, head_key


def test_full_checkpoint_loads(saved):
    cfg, out, _ = saved
    model = build_model(cfg)
    load_eval_weights(model, str(out / "good.pth"))
    assert float(model.roi_heads.contact_threshold) == pytest.approx(0.37)


@pytest.mark.parametrize("weights,match", [("", "empty"), ("missing.pth", "no such file")])
def test_empty_or_missing_weights_are_refused(saved, weights, match):
    cfg, out, _ = saved
    path = weights and str(out / weights)
    with pytest.raises(WeightsError, match=match):
        load_eval_weights(build_model(cfg), path)


def test_partial_weights_are_refused_unless_allowed(saved):
    cfg, out, head_key = saved
    with pytest.raises(WeightsError, match=f"missing {head_key}"):
        load_eval_weights(build_model(cfg), str(out / "partial.pth"))
    with pytest.raises(WeightsError, match="unexpected roi_heads.surprise.weight"):
        load_eval_weights(build_model(cfg), str(out / "extra.pth"))
    model = build_model(cfg)
    load_eval_weights(model, str(out / "partial.pth"), allow_partial=True)
    assert float(model.roi_heads.contact_threshold) == pytest.approx(0.37)


def test_train_net_eval_only_without_weights_exits_2(tmp_path):
    """The tool stops before building loaders or features: exit status 2 and one clear line, no traceback."""
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file",
         os.path.join(ROOT, "configs", "wish_synthetic.yaml"), "--eval-only",
         "MODEL.WISH.CLIP.MODEL_NAME", "WISH-Test-ViT", "MODEL.WISH.CLIP.PRETRAINED", "",
         "OUTPUT_DIR", str(tmp_path / "out"),
         "MODEL.WISH.CACHE.DIR", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "MODEL.WEIGHTS is empty" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "cache").exists()


def test_train_net_rejects_bad_config_value_before_any_work(tmp_path):
    import importlib.util

    from wish_d2.config_validation import ConfigError

    spec = importlib.util.spec_from_file_location("tool_train_net", os.path.join(ROOT, "tools", "train_net.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = tool.argument_parser().parse_args(
        ["--config-file", os.path.join(ROOT, "configs", "wish_synthetic.yaml"), "MODEL.WISH.INFERENCE.FUSION", "sum",
         "OUTPUT_DIR", str(tmp_path / "out")])
    with pytest.raises(ConfigError, match="MODEL.WISH.INFERENCE.FUSION='sum'.*'product', 'chain'"):
        tool.main(args)
    assert not (tmp_path / "out").exists()
