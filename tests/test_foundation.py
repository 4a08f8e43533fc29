"""The plugin installs, registers itself and leaves Detectron2 fully usable."""
import os

import pytest
import torch
from detectron2.config import get_cfg

import wish_d2
from wish_d2 import add_wish_config, compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cfg(*files):
    cfg = get_cfg()
    add_wish_config(cfg)
    for f in files:
        cfg.merge_from_file(os.path.join(ROOT, "configs", f))
    return cfg


def test_config_round_trip(tmp_path):
    cfg = _cfg("Base-WISH.yaml")
    assert cfg.MODEL.META_ARCHITECTURE == "WISH"
    assert cfg.MODEL.ROI_HEADS.NAME == "WISHROIHeads"
    path = tmp_path / "dump.yaml"
    path.write_text(cfg.dump())
    again = get_cfg()
    add_wish_config(again)
    again.merge_from_file(str(path))
    assert again.MODEL.WISH == cfg.MODEL.WISH
    assert again.DATASETS == cfg.DATASETS


def test_config_typo_is_rejected():
    cfg = _cfg("Base-WISH.yaml")
    with pytest.raises((KeyError, AssertionError), match="MODEL.WISH.STAGE1.TEMPERTURE"):
        cfg.merge_from_list(["MODEL.WISH.STAGE1.TEMPERTURE", "0.1"])


def test_every_config_default_is_commented():
    """Every key added by add_wish_config carries a comment on its line (documented defaults)."""
    src = open(os.path.join(ROOT, "wish_d2", "config.py")).read().splitlines()
    assigns = [line for line in src if " = " in line and line.strip().startswith(("W.", "cfg."))]
    bare = [line for line in assigns if "CN()" not in line and "#" not in line]
    assert assigns and not bare, bare


def test_compat_shims_make_detectron2_importable():
    import PIL.Image

    import detectron2.engine  # noqa: F401
    import detectron2.evaluation  # noqa: F401
    import detectron2.modeling  # noqa: F401

    assert PIL.Image.LINEAR == PIL.Image.BILINEAR
    if not compat.HAS_COMPILED_OPS:
        from detectron2 import _C

        with pytest.raises(RuntimeError, match="compiled ops"):
            _C.nms_rotated()
        assert "pure-Python" in _C.get_compiler_version()


def test_generalized_rcnn_cpu_forward():
    from detectron2.modeling import build_model

    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.RESNETS.DEPTH = 50
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model([{"image": torch.randint(0, 255, (3, 64, 80), dtype=torch.uint8)}])
    inst = out[0]["instances"]
    assert inst.image_size == (64, 80)
    assert inst.pred_boxes.tensor.shape[1] == 4
