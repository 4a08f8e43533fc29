"""WISHPredictor loads trained weights the way ``--eval-only`` does: a tiny WISH model is saved with Detectron2's
checkpointer and loaded back; a checkpoint that leaves part of the heads random is refused (the demo exits 2)."""
import importlib.util
import os

import cv2
import numpy as np
import pytest
import torch

import wish_d2  # noqa: F401
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from wish_d2.data.proposals_io import write_proposals
from wish_d2.engine.checkpoint import WeightsError
from wish_d2.engine.predictor import WISHPredictor
from wish_d2.engine.setup import build_cfg
from wish_d2.utils.masks import encode_rle

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "wish_synthetic.yaml")
OPTS = ["MODEL.WISH.CLIP.MODEL_NAME", "WISH-Test-ViT", "MODEL.WISH.CLIP.PRETRAINED", "",
        "MODEL.PROPOSAL_GENERATOR.NAME", "PrecomputedMaskProposals",
        "MODEL.DEVICE", "cpu", "DATASETS.TEST", "()", "DATASETS.VAL", "()", "DATASETS.TRAIN", "()"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A trained-looking checkpoint (heads shifted away from any fresh init) and one missing a head tensor."""
    root = tmp_path_factory.mktemp("predictor_ckpt")
    cfg = build_cfg(CONFIG, OPTS + ["OUTPUT_DIR", str(root)])
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("roi_heads."):
                p.add_(0.25)
    DetectionCheckpointer(model, save_dir=str(root)).save("tiny")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    head_keys = [k for k in state if k.startswith("roi_heads.")]
    assert head_keys
    torch.save({"model": {k: v for k, v in state.items() if k != head_keys[0]}}, str(root / "partial.pth"))
    return {"cfg": cfg, "full": str(root / "tiny.pth"), "partial": str(root / "partial.pth"), "state": state,
            "dropped": head_keys[0], "root": root}


def test_predictor_loads_saved_heads(checkpoints):
    predictor = WISHPredictor(checkpoints["cfg"], weights=checkpoints["full"])
    loaded = predictor.model.state_dict()
    heads = [k for k in checkpoints["state"] if k.startswith("roi_heads.")]
    for k in heads:
        torch.testing.assert_close(loaded[k], checkpoints["state"][k], rtol=0, atol=0, msg=k)


def test_predictor_refuses_partial_heads_unless_allowed(checkpoints):
    with pytest.raises(WeightsError) as info:
        WISHPredictor(checkpoints["cfg"], weights=checkpoints["partial"])
    assert checkpoints["dropped"] in str(info.value) and "only partly" in str(info.value)
    WISHPredictor(checkpoints["cfg"], weights=checkpoints["partial"], allow_partial=True)
    with pytest.raises(WeightsError, match="no such file"):
        WISHPredictor(checkpoints["cfg"], weights=str(checkpoints["root"] / "missing.pth"))


def _demo_tool():
    spec = importlib.util.spec_from_file_location("wish_demo_tool_predictor", os.path.join(REPO, "tools", "demo.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_demo_with_saved_and_partial_weights(checkpoints, tmp_path, capsys):
    image = tmp_path / "frame.png"
    assert cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    mask = np.zeros((32, 32), bool)
    mask[4:20, 6:24] = True
    props = tmp_path / "props.jsonl"
    write_proposals([{"image_id": "frame", "height": 32, "width": 32, "masks": [encode_rle(mask)],
                      "scores": [0.9]}], str(props))
    demo = _demo_tool()
    common = ["--config-file", CONFIG, "--input", str(image), "--proposals-file", str(props), "--opts", *OPTS]
    rc = demo.main(common[:4] + ["--output", str(tmp_path / "ok")] + common[4:]
                   + ["MODEL.WEIGHTS", checkpoints["full"]])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "untrained" not in captured.out and (tmp_path / "ok" / "overlays" / "frame.png").is_file()

    rc = demo.main(common[:4] + ["--output", str(tmp_path / "bad")] + common[4:]
                   + ["MODEL.WEIGHTS", checkpoints["partial"]])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error")]
    assert rc == 2 and len(err) == 1 and "only partly" in err[0] and checkpoints["partial"] in err[0]
    assert not (tmp_path / "bad").exists()
