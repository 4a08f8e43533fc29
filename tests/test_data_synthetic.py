"""The synthetic benchmark: determinism, the round trip generator -> VISOR JSON + EPIC CSV -> register_epic_visor,
lazy registration with the completion marker, proposals, statistics and the make_synthetic tool."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from wish_d2.data import synthetic as syn
from wish_d2.data.builtin import SYNTHETIC_DEFAULTS, register_synthetic
from wish_d2.data.proposals_io import ProposalStore
from wish_d2.data.synthetic.outlines import xy_polygons_to_rle
from wish_d2.data.visor import load_epic_visor
from wish_d2.utils.masks import decode_rle

SIZE = (96, 112)
REPO = os.path.join(os.path.dirname(__file__), "..")


def tree_bytes(folder):
    out = {}
    for dirpath, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, folder)] = f.read()
    return out


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synth") / "train")
    records, stats = syn.generate_split(out, 3, "train", 12, SIZE, progress=False)
    return out, records, stats


def test_same_seed_same_bytes(split, tmp_path):
    out, _, _ = split
    syn.generate_split(str(tmp_path / "again"), 3, "train", 12, SIZE, progress=False)
    a, b = tree_bytes(out), tree_bytes(str(tmp_path / "again"))
    assert sorted(a) == sorted(b) and len(a) == 12 + 1 + 3  # 12 images, 1 video json, csv + proposals + stats
    assert a == b
    syn.generate_split(str(tmp_path / "other"), 4, "train", 12, SIZE, progress=False)
    c = tree_bytes(str(tmp_path / "other"))
    assert all(a[k] != c[k] for k in a if k.endswith(".png"))


def test_frames_do_not_depend_on_split_size(split, tmp_path):
    out, _, _ = split
    syn.generate_split(str(tmp_path / "small"), 3, "train", 5, SIZE, progress=False)
    a, b = tree_bytes(out), tree_bytes(str(tmp_path / "small"))
    pngs = [k for k in b if k.endswith(".png")]
    assert len(pngs) == 5 and all(a[k] == b[k] for k in pngs)


def test_round_trip_through_register_epic_visor(split):
    out, records, _ = split
    loaded = load_epic_visor(os.path.join(out, "annotations"), os.path.join(out, "images"),
                             os.path.join(out, "narrations.csv"), frame_margin=0)
    assert loaded == records
    assert any(r["annotations"] for r in records)
    for r in records:
        assert os.path.isfile(r["file_name"]) and len(r["narrations"]) == 1
        assert r["image_id"].startswith("P90_01_frame_")
        for a in r["annotations"]:
            assert a["noun"] in syn.NOUNS and decode_rle(a["segmentation"]).shape == SIZE


def test_gt_polygons_are_exact_outlines():
    """The VISOR polygons rasterise back to the visible pixel masks (holes aside)."""
    import cv2

    for i in range(4):
        frame = syn.render_frame(0, "val", i, *SIZE)
        for e in frame["objects"] + list(frame["hands"].values()):
            m = decode_rle(xy_polygons_to_rle(e["polys"], *SIZE))
            # fill the holes of the pixel mask: flood the background from outside the frame
            bg = np.pad((~e["mask"]).astype(np.uint8), 1, constant_values=1)
            cv2.floodFill(bg, None, (0, 0), 2)
            filled = bg[1:-1, 1:-1] != 2
            assert np.array_equal(m, filled)


def test_proposals_file(split):
    out, records, _ = split
    store = ProposalStore(os.path.join(out, "proposals.jsonl"))
    assert store.image_ids() == [r["image_id"] for r in records]
    rec = store.get(records[0]["image_id"])
    assert rec["height"] == SIZE[0] and rec["width"] == SIZE[1] and len(rec["masks"]) == len(rec["scores"]) > 0
    assert rec["scores"] == sorted(rec["scores"], reverse=True)
    assert all(decode_rle(m).sum() >= 10 for m in rec["masks"])


def test_csv_is_epic_100(split):
    import csv

    out, records, _ = split
    with open(os.path.join(out, "narrations.csv")) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [c for c in __import__("wish_d2.data.visor", fromlist=["x"]).EPIC_CSV_COLUMNS]
    assert len(rows) == len(records)
    for row, rec in zip(rows, records):
        assert int(row["start_frame"]) <= rec["frame"] <= int(row["stop_frame"])
        assert row["narration"] == rec["narrations"][0]


def test_stats_on_a_larger_split(tmp_path):
    _, stats = syn.generate_split(str(tmp_path / "s"), 0, "test", 160, (80, 80), progress=False)
    assert stats["frames"] == 160
    assert 2.5 < stats["objects_per_frame"] < 6
    assert 0.1 < stats["held_object_fraction"] < 0.45
    assert 0.04 < stats["both_hands_frame_fraction"] < 0.25
    assert stats["nearest_to_hand_accuracy"] < 0.8  # hand proximity alone does not solve it
    assert stats["same_category_distractor_frame_fraction"] > 0.2  # nor does the noun alone
    assert stats["proposal_recall_iou50"] > 0.8
    for k in ("narration_held_omitted_rate", "narration_nonheld_mentioned_rate", "narration_synonym_rate",
              "narration_neighbour_rate"):
        assert 0.02 < stats[k] < 0.35, k
    assert "objects_per_frame" in syn.format_stats(stats)


def test_lazy_registration_and_done_marker(tmp_path):
    names = register_synthetic(seed=1, num_train=4, num_val=2, num_test=3, image_size=(64, 64),
                               root=str(tmp_path), prefix="test_synth")
    try:
        assert names == {"train": "test_synth_train", "val": "test_synth_val", "test": "test_synth_test"}
        folder = syn.split_dir(str(tmp_path), 1, "val", 2, (64, 64))
        assert not os.path.exists(folder)  # nothing generated at registration
        meta = MetadataCatalog.get("test_synth_val")
        assert meta.nouns == syn.NOUNS and meta.evaluator_type == "wish_inhand"
        assert meta.proposals_file == os.path.join(folder, "proposals.jsonl")
        dicts = DatasetCatalog.get("test_synth_val")
        assert len(dicts) == 2 and os.path.isfile(os.path.join(folder, ".done"))
        assert os.path.isfile(meta.proposals_file)
        first = tree_bytes(folder)
        # a killed generation (no marker) is redone; leftovers are replaced
        os.remove(os.path.join(folder, ".done"))
        os.remove(os.path.join(folder, "proposals.jsonl"))
        dicts2 = DatasetCatalog.get("test_synth_val")
        assert dicts2 == dicts and tree_bytes(folder) == first
        assert not [n for n in os.listdir(os.path.dirname(folder)) if n.startswith(".tmp-")]
        # re-registering with other parameters replaces the entries
        register_synthetic(seed=2, num_train=1, num_val=1, num_test=1, image_size=(64, 64), root=str(tmp_path),
                           prefix="test_synth")
        assert len(DatasetCatalog.get("test_synth_test")) == 1
        assert MetadataCatalog.get("test_synth_test").synthetic["seed"] == 2
    finally:
        for n in names.values():
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)


def test_builtin_defaults_come_from_config(monkeypatch):
    """cfg.DATASETS.SYNTHETIC is the one source: the registration, the default profile and the tool read it."""
    from detectron2.config import get_cfg

    from wish_d2 import add_wish_config

    cfg = get_cfg()
    add_wish_config(cfg)
    s = cfg.DATASETS.SYNTHETIC
    assert SYNTHETIC_DEFAULTS == dict(seed=s.SEED, num_train=s.NUM_TRAIN, num_val=s.NUM_VAL, num_test=s.NUM_TEST,
                                      image_size=tuple(s.IMAGE_SIZE))
    assert syn.DEFAULT_PROFILE.image_size == tuple(s.IMAGE_SIZE)
    for split in ("train", "val", "test"):
        meta = MetadataCatalog.get(f"wish_synth_{split}")
        assert meta.thing_classes == ["left", "right", "both"] and meta.nouns == syn.NOUNS
    assert len(syn.NOUNS) >= 12
    # a changed config default reaches the tool's defaults without another edit
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_synthetic", os.path.join(REPO, "tools", "make_synthetic.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.parse_args([]).num_val == s.NUM_VAL and tool.parse_args([]).image_size == tuple(s.IMAGE_SIZE)
    monkeypatch.setattr(tool, "benchmark_defaults", lambda: dict(SYNTHETIC_DEFAULTS, num_val=7))
    assert tool.parse_args([]).num_val == 7
    assert tool.parse_args(["--profile", "realistic"]).image_size == (1080, 1920)


def test_make_synthetic_tool(tmp_path):
    cmd = [sys.executable, os.path.join(REPO, "tools", "make_synthetic.py"), "--out", str(tmp_path), "--seed", "5",
           "--num-train", "3", "--num-val", "0", "--num-test", "2", "--image-size", "64x80", "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "[train] 3 frames" in res.stdout and "held_object_fraction" in res.stdout
    folder = os.path.join(tmp_path, "wish_synth_seed5_64x80", "test_n2")
    with open(os.path.join(folder, ".done")) as f:
        assert json.load(f)["image_size"] == [64, 80]
    # another process, same bytes
    syn.generate_split(str(tmp_path / "here"), 5, "test", 2, (64, 80), progress=False)
    a, b = tree_bytes(folder), tree_bytes(str(tmp_path / "here"))
    a.pop(".done")
    assert a == b
