"""The hand-detector stress test's pieces: one pass of a detector over a split gives the hands file, mask AP and side
accuracy; the tool refuses bad sizes. (The whole run trains two detectors and two WISH pipelines: minutes, not a
unit test; its figures are in docs/RESULTS.md.)"""
import importlib.util
import json
import os

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from wish_d2.data.common import make_hand
from wish_d2.data.hand_datasets import HAND_CLASSES
from wish_d2.engine.hand_benchmark import detect_hands
from wish_d2.modeling.hands import DetectorHands
from wish_d2.utils.masks import encode_rle

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, W = 48, 64


@pytest.fixture
def hands_split(tmp_path):
    dicts = []
    for i in range(2):
        path = str(tmp_path / f"f{i}.png")
        img = np.random.default_rng(i).integers(0, 255, (H, W, 3), dtype=np.uint8)
        assert cv2.imwrite(path, img)
        left = np.zeros((H, W), bool)
        left[20:48, 0:30] = True
        dicts.append({"file_name": path, "image_id": f"hb_{i}", "height": H, "width": W,
                      "hands": [make_hand(encode_rle(left), "left")], "annotations": []})
    name = "test_hand_benchmark_split"
    DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
    yield name
    for n in (name, name + "_hands"):
        if n in DatasetCatalog.list():
            DatasetCatalog.remove(n)
        if n in MetadataCatalog.list():
            MetadataCatalog.remove(n)


def test_detect_hands_writes_the_hands_file_and_scores_the_split(hands_split, tmp_path):
    from test_model_hands import _save_detector

    config_file, weights = _save_detector(tmp_path, [10.0, -10.0, -10.0])  # every detection: a left hand
    det = DetectorHands(config_file, weights, class_names=HAND_CLASSES, score_thresh=0.05)
    res = detect_hands(det, [hands_split], evaluate=hands_split, eval_dir=str(tmp_path / "eval"))
    assert sorted(res["hands"]) == ["hb_0", "hb_1"]
    assert all(h["side"] == "left" and h["score"] >= 0.5 and set(h["segmentation"]) == {"size", "counts"}
               for hs in res["hands"].values() for h in hs)
    assert 0.0 <= res["hand_mask_ap"] <= 100.0 and res["num_gt_hands"] == 2
    assert res["side_accuracy"] == 1.0 or res["num_matched"] == 0  # whatever matched, matched as a left hand
    json.dumps(res)  # the hands file and the report are plain json


def _tool():
    spec = importlib.util.spec_from_file_location("hand_benchmark_tool", os.path.join(REPO, "tools",
                                                                                      "hand_benchmark.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("flag", ["--detector-iters", "--chest-test", "--num-train"])
def test_tool_refuses_empty_sizes(flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _tool().main(["--output-dir", str(tmp_path), flag, "0"])
    assert e.value.code == 2 and flag in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_the_detector_takes_the_free_cores_only_once_the_other_worker_is_idle(monkeypatch):
    """One thread while the chest-camera world runs in the other worker, every thread after (and at once when the
    stress test runs in-process)."""
    import threading

    import torch

    from wish_d2.engine import hand_benchmark as hb

    before = torch.get_num_threads()
    other_idle = threading.Event()
    monkeypatch.setattr(hb, "_OTHER_IDLE", other_idle)
    try:
        hook = hb._FreeCores(2)
        assert torch.get_num_threads() == 1
        hook.after_step()
        assert torch.get_num_threads() == 1
        other_idle.set()
        hook.after_step()
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(hb, "_OTHER_IDLE", None)
        torch.set_num_threads(1)
        hb._FreeCores(2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cpu_amp_trains_the_detector_in_bfloat16_and_keeps_float32_weights(hands_split, tmp_path):
    """SOLVER.AMP.ENABLED on the CPU: the forward runs under bfloat16 autocast (Detectron2's AMPTrainer would
    refuse without CUDA), the losses stay finite and the checkpoint stays float32."""
    import torch

    from wish_d2.data.hand_datasets import register_hands_only
    from wish_d2.engine.hand_benchmark import DETECTOR_CONFIG, SMALL_BACKBONE
    from wish_d2.engine.hand_detector import HandDetectorTrainer, hand_detector_cfg

    train = register_hands_only(hands_split, lambda: DatasetCatalog.get(hands_split))
    cfg = hand_detector_cfg(DETECTOR_CONFIG, list(SMALL_BACKBONE) + [
        "DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", "()", "SOLVER.MAX_ITER", "2",
        "SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "1", "SOLVER.CHECKPOINT_PERIOD", "100",
        "INPUT.MIN_SIZE_TRAIN", "(48,)", "SOLVER.AMP.ENABLED", "True", "OUTPUT_DIR", str(tmp_path)])
    trainer = HandDetectorTrainer(cfg)
    trainer.resume_or_load(resume=False)
    dtypes = []
    trainer.model.backbone.bottom_up.stem.conv1.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    trainer.train()
    assert dtypes and set(dtypes) == {torch.bfloat16}
    losses = trainer.storage.history("total_loss").values()
    assert len(losses) == 2 and all(np.isfinite(v) for v, _ in losses)
    state = torch.load(os.path.join(tmp_path, "model_final.pth"), weights_only=True)["model"]
    assert {t.dtype for t in state.values() if t.is_floating_point()} == {torch.float32}
