"""The results table: every method on one tiny dataset, written as results.json / results.md; worker processes
give the same numbers as one process."""
import functools
import json

import pytest
import torch
from wish_fixtures import register_tiny_dataset, tiny_cfg

from wish_d2.engine.table import format_table, run_table

METHODS = ["wish", "wish_contactness_only", "pseudo_labels", "nearest_to_hand", "supervised"]


def _register(root, cfg):
    register_tiny_dataset(root)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("table")
    register_tiny_dataset(root / "data")
    return root


def _cfg(tiny, name):
    cfg = tiny_cfg(tiny / name, iters=6)
    cfg.merge_from_list(["MODEL.WISH.CACHE.DIR", str(tiny / "cache")])
    return cfg


def test_table_files_and_rows(tiny):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers below get one thread each: same float order
    try:
        res = run_table(_cfg(tiny, "one"), str(tiny / "one"), [0], METHODS, jobs=1)
    finally:
        torch.set_num_threads(threads)
    saved = json.loads((tiny / "one" / "results.json").read_text())
    assert saved["seeds"] == [0] and set(METHODS) <= set(saved)
    for m in METHODS:
        assert 0.0 <= saved[m]["E-mIoU"] <= 100.0
        assert set(saved[m]) >= {"E-mIoU", "IoU_left", "IoU_right", "IoU_both", "AP"}
    md = (tiny / "one" / "results.md").read_text()
    assert "| wish |" in md and "| supervised |" in md and "% of supervised" in md
    assert md.strip() == format_table(saved).strip()
    assert set(res["per_seed"][0]["_timings"]) == {"wish_and_baselines_s", "supervised_s"}

    register = functools.partial(_register, tiny / "data")
    two = run_table(_cfg(tiny, "two"), str(tiny / "two"), [0], METHODS, register=register, jobs=2)
    for m in METHODS:
        assert two[m]["E-mIoU"] == pytest.approx(saved[m]["E-mIoU"], abs=1e-6), m


def test_unknown_method_is_named(tiny):
    with pytest.raises(ValueError, match="wsh"):
        run_table(_cfg(tiny, "bad"), str(tiny / "bad"), [0], ["wsh"])


def test_format_table_names_the_training_seed():
    row = {"E-mIoU": 30.0, "IoU_left": 20.0, "IoU_right": 30.0, "IoU_both": 40.0, "AP": 25.0}
    text = format_table({"seeds": [0], "train_seed": 2, "wish": row, "supervised": dict(row, **{"E-mIoU": 40.0})})
    assert "Training seed 2" in text
    assert "| wish | 30.0 | 20.0 | 30.0 | 40.0 | 25.0 | 75% |" in text
