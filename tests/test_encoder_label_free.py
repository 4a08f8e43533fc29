"""Label-free calibration: Otsu's threshold on hand-made score distributions (plain torch core), checked against
OpenCV's own Otsu, and the switch that routes the pipeline's calibration to it."""
import cv2
import numpy as np
import pytest
import torch

from wish_d2.engine.label_free import otsu_threshold


def _bimodal(n0, n1, mu0, mu1, sd, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([mu0 + sd * torch.randn(n0, generator=g), mu1 + sd * torch.randn(n1, generator=g)])


@pytest.mark.parametrize("n0,n1,mu0,mu1", [(400, 600, -2.0, 6.0), (800, 200, 0.1, 0.8), (300, 300, 3.0, 4.0)])
def test_threshold_lies_in_the_valley_between_two_modes(n0, n1, mu0, mu1):
    x = _bimodal(n0, n1, mu0, mu1, sd=(mu1 - mu0) / 8)
    t = otsu_threshold(x)
    assert mu0 < t < mu1
    assert abs(t - (mu0 + mu1) / 2) < 0.2 * (mu1 - mu0)
    upper = (x >= t).float().mean().item()
    assert abs(upper - n1 / (n0 + n1)) < 0.03  # the upper mode is (almost exactly) what is accepted


def test_agrees_with_opencv_otsu_on_the_same_histogram():
    x = _bimodal(500, 300, 0.2, 0.7, 0.08, seed=3).clamp(0, 1)
    lo, hi = float(x.min()), float(x.max())
    q = np.round((x.numpy() - lo) / (hi - lo) * 255).astype(np.uint8)[None]
    t_cv, _ = cv2.threshold(q, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ours = otsu_threshold(torch.from_numpy(q[0].astype(np.float64)), bins=256)
    assert abs(ours - (t_cv + 1)) <= 1.5  # OpenCV keeps values > t, we keep values >= t


def test_degenerate_inputs_never_give_nan():
    assert otsu_threshold(torch.tensor([])) == 0.0
    assert otsu_threshold(torch.tensor([float("nan"), float("inf")])) == 0.0
    assert otsu_threshold(torch.full((10,), 0.3)) == pytest.approx(0.3)
    t = otsu_threshold(torch.tensor([0.0, 0.0, 1.0, float("nan"), 1.0]))
    assert 0.0 < t <= 1.0


def test_calibration_switch_is_validated():
    from wish_d2.config_validation import ConfigError
    from wish_d2.engine.setup import build_cfg

    assert build_cfg("", ["MODEL.WISH.CALIBRATION", "label_free"]).MODEL.WISH.CALIBRATION == "label_free"
    assert build_cfg("").MODEL.WISH.CALIBRATION == "val_labels"
    with pytest.raises(ConfigError, match="CALIBRATION"):
        build_cfg("", ["MODEL.WISH.CALIBRATION", "gt"])


def test_pipeline_calibrates_without_reading_any_annotation_for_its_thresholds(tmp_path, monkeypatch):
    """A tiny WISH run with CALIBRATION label_free and no validation split: both thresholds come from Otsu on the
    scores (the ground-truth grid search would raise), and they are the ones the run stores."""
    import json

    from wish_fixtures import register_tiny_dataset, tiny_cfg

    from wish_d2.engine import calibration, label_free, pipeline

    register_tiny_dataset(str(tmp_path / "data"), name="wish_tiny_lf", n=8)
    cfg = tiny_cfg(tmp_path / "out", train="wish_tiny_lf", iters=4)
    cfg.merge_from_list(["MODEL.WISH.CALIBRATION", "label_free", "DATASETS.VAL", "()", "MODEL.DEVICE", "cpu"])
    monkeypatch.setattr(calibration, "grid_search", lambda *a, **k: (_ for _ in ()).throw(AssertionError("labels")))
    seen = []
    real = label_free.otsu_threshold
    monkeypatch.setattr(label_free, "otsu_threshold", lambda x, **k: seen.append(real(x, **k)) or seen[-1])
    cfg.freeze()
    pipeline.run_pipeline(cfg)
    assert len(seen) == 2  # pseudo-label threshold, then contact threshold
    stored = json.load(open(tmp_path / "out" / "pseudo_labels.json"))["threshold"]
    assert stored == pytest.approx(seen[0])
