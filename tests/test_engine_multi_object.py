"""The pipeline with several objects per hand on the tiny fixture: with further objects switched off it gives
exactly the one-object results, and with them on it calibrates both further thresholds (val labels and label-free)
and writes the further pseudo-objects."""
import json
import os

import pytest
import torch

from wish_fixtures import register_tiny_dataset, tiny_cfg

NAME = "wish_tiny_multi"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_multi")
    register_tiny_dataset(str(root / "data"), name=NAME, n=12)
    return root


def _run(root, tag, *opts):
    from wish_d2.engine import run_pipeline

    cfg = tiny_cfg(root / tag, train=NAME, iters=6)
    cfg.merge_from_list(["MODEL.WISH.CACHE.DIR", str(root / "cache"), *opts])
    cfg.freeze()
    return run_pipeline(cfg)


def _predictions(root, tag):
    with open(os.path.join(root, tag, "inference", NAME, "inhand_predictions_coco.json")) as f:
        return json.load(f)


def test_further_objects_off_reproduce_one_object_per_hand(tiny):
    one = _run(tiny, "k1")
    off = _run(tiny, "k2_off", "MODEL.WISH.MAX_OBJECTS_PER_HAND", "2", "MODEL.WISH.PSEUDO.EXTRA_THRESHOLD", "1e9",
               "MODEL.WISH.INFERENCE.EXTRA_CONTACT_THRESHOLD", "1.0")
    assert one["inhand"] == off["inhand"]
    assert json.dumps(one["segm"]) == json.dumps(off["segm"])  # as text: COCO writes NaN for empty size ranges
    assert one["pseudo_labels_train"] == off["pseudo_labels_train"]
    assert _predictions(tiny, "k1") == _predictions(tiny, "k2_off")
    # the one-object model's checkpoint has no further-object buffers
    state = torch.load(os.path.join(tiny, "k1", "model_final.pth"), weights_only=True)["model"]
    assert not any("extra_" in k for k in state)


@pytest.mark.parametrize("calibration", ["val_labels", "label_free"])
def test_further_thresholds_are_calibrated_and_labels_written(tiny, calibration):
    tag = f"k2_{calibration}"
    res = _run(tiny, tag, "MODEL.WISH.MAX_OBJECTS_PER_HAND", "2", "MODEL.WISH.CALIBRATION", calibration)
    assert 0.0 <= res["inhand"]["E-mIoU"] <= 100.0
    state = torch.load(os.path.join(tiny, tag, "model_final.pth"), weights_only=True)["model"]
    contact = float(state["roi_heads.extra_contact_threshold"])
    assert 0.0 <= contact <= 1.01 and float(state["roi_heads.extra_pseudo_threshold"]) >= -1e8
    with open(os.path.join(tiny, tag, "pseudo_labels.json")) as f:
        labels = json.load(f)["labels"]
    assert all(len(v["extra"]) == 2 and len(v["extra"][0]) == 1 for v in labels.values())
