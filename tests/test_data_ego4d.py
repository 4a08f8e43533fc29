"""Ego4D narrations + EgoHOS label maps loader."""
import json
import logging
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from wish_d2.data.common import DataFormatError
from wish_d2.data.ego4d import load_ego4d, load_ego4d_narrations, register_ego4d
from wish_d2.data.taxonomy import dataset_taxonomy
from wish_d2.utils.masks import decode_rle

V1 = "0a1b2c3d-0000-4000-8000-123456789abc"
V2 = "ffffffff-1111-4222-8333-444444444444"
H, W = 12, 16


def label_map():
    lab = np.zeros((H, W), np.uint8)
    lab[6:12, 0:4] = 1  # left hand
    lab[6:12, 12:16] = 2  # right hand
    lab[4:8, 4:8] = 3  # left-hand object
    lab[0:2, 0:16] = 6  # second-order object: ignored
    return lab


NARR = {
    V1: {
        "narration_pass_1": {"narrations": [
            {"timestamp_sec": 1.0, "timestamp_frame": 30, "narration_text": "#C C picks the knife from the table",
             "annotation_uid": "a"},
            {"timestamp_sec": 3.0, "timestamp_frame": 90, "narration_text": "#C C cuts the onion #unsure",
             "annotation_uid": "a"},
        ], "summaries": []},
        "narration_pass_2": {"narrations": [
            {"timestamp_sec": 1.1, "narration_text": "#C C picks the knife from the table", "annotation_uid": "b"},
            {"timestamp_sec": 1.2, "timestamp_frame": 36, "narration_text": "#O man X hands a plate to C",
             "annotation_uid": "b"},
        ], "summaries": []},
    },
}


@pytest.fixture
def sample(tmp_path):
    labels, images = tmp_path / "label", tmp_path / "image"
    labels.mkdir()
    images.mkdir()
    for stem, lab in ((f"ego4d_{V1}_0000030", label_map()), (f"{V1}_frame_95", np.zeros((H, W), np.uint8)),
                      (f"ego4d_{V2}_0000010", np.full((H, W), 5, np.uint8))):
        Image.fromarray(lab, mode="L").save(labels / f"{stem}.png")
        Image.new("RGB", (W, H)).save(images / f"{stem}.jpg")
    nj = tmp_path / "narration.json"
    nj.write_text(json.dumps(NARR))
    return str(labels), str(images), str(nj)


def test_load_ego4d(sample, caplog):
    labels, images, nj = sample
    with caplog.at_level(logging.INFO, logger="wish_d2.data.ego4d"):
        dicts = load_ego4d(labels, images, nj, window_frames=10, dataset_name="ego")
    by_id = {d["image_id"]: d for d in dicts}
    d = by_id[f"ego4d_{V1}_0000030"]
    assert d["file_name"] == os.path.join(images, f"ego4d_{V1}_0000030.jpg")
    assert (d["height"], d["width"], d["video_id"], d["frame"]) == (H, W, V1, 30)
    assert d["narrations"] == ["#C C picks the knife from the table"]  # "#O": another person's action
    assert d["noun_phrases"] == ["knife", "table"]
    assert [(h["side"], h["side_source"]) for h in d["hands"]] == [("left", "gt"), ("right", "gt")]
    assert decode_rle(d["hands"][0]["segmentation"]).sum() == 24
    assert [a["category_id"] for a in d["annotations"]] == [0]
    a = d["annotations"][0]
    assert a["bbox"] == [4.0, 4.0, 4.0, 4.0] and a["noun"] == "" and decode_rle(a["segmentation"]).sum() == 16

    d = by_id[f"{V1}_frame_95"]
    assert d["narrations"] == ["#C C cuts the onion #unsure"] and d["noun_phrases"] == ["onion"]
    assert d["hands"] == [] and d["annotations"] == []
    d = by_id[f"ego4d_{V2}_0000010"]
    assert [a["category_id"] for a in d["annotations"]] == [2] and d["narrations"] == []
    msg = [r.getMessage() for r in caplog.records if r.name == "wish_d2.data.ego4d"]
    assert len(msg) == 1 and "video not in the narration file=1" in msg[0] and "frame without narration=1" in msg[0]
    assert "#O narration (another person's action) excluded=1" in msg[0]


def test_other_person_narrations_kept_on_request(sample):
    labels, images, nj = sample
    dicts = load_ego4d(labels, images, nj, window_frames=10, exclude_other_person=False)
    d = {d["image_id"]: d for d in dicts}[f"ego4d_{V1}_0000030"]
    assert d["narrations"] == ["#C C picks the knife from the table", "#O man X hands a plate to C"]
    assert d["noun_phrases"] == ["knife", "table", "plate"]


def test_window_and_timestamp_sec(sample):
    labels, images, nj = sample
    table = load_ego4d_narrations(nj)
    frames, texts = table[V1]
    assert list(frames) == [30, 33, 90]  # 1.1 s * 30 fps = 33 where timestamp_frame is missing; #O at 36 left out
    frames, texts = load_ego4d_narrations(nj, exclude_other_person=False)[V1]
    assert list(frames) == [30, 33, 36, 90]
    dicts = load_ego4d(labels, images, nj, window_frames=0)
    assert {d["frame"]: d["narrations"] for d in dicts}[30] == ["#C C picks the knife from the table"]
    dicts = load_ego4d(labels, images, nj, window_frames=0, drop_frames_without_narration=True)
    assert [d["frame"] for d in dicts] == [30]


def test_register(sample):
    labels, images, nj = sample
    register_ego4d("test_ego4d_reg", labels, images, nj, window_frames=10)
    try:
        assert len(DatasetCatalog.get("test_ego4d_reg")) == 3
        meta = MetadataCatalog.get("test_ego4d_reg")
        assert meta.evaluator_type == "wish_inhand" and not hasattr(meta, "nouns")
        assert dataset_taxonomy("test_ego4d_reg") == ["knife", "onion", "table"]  # its narrations' nouns
    finally:
        DatasetCatalog.remove("test_ego4d_reg")
        MetadataCatalog.remove("test_ego4d_reg")


def test_bad_inputs(sample, tmp_path, caplog):
    labels, images, nj = sample
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(DataFormatError, match="bad.json"):
        load_ego4d(labels, images, str(bad))
    bad.write_text(json.dumps({V1: {"narration_pass_1": {"narrations": [{"timestamp_sec": 1}]}}}))
    with pytest.raises(DataFormatError, match=r"bad.json: .*narrations\[0\]"):
        load_ego4d(labels, images, str(bad))
    bad.write_text(json.dumps({V1: {"narration_pass_1": {}}}))
    with pytest.raises(DataFormatError, match="no 'narrations' list"):
        load_ego4d(labels, images, str(bad))
    with pytest.raises(FileNotFoundError):
        load_ego4d(str(tmp_path / "nope"), images, nj)

    Image.new("RGB", (W, H)).save(os.path.join(labels, f"ego4d_{V2}_0000020.png"))  # RGB label map
    Image.fromarray(np.zeros((H, W), np.uint8)).save(os.path.join(labels, "not_a_frame_name.png"))
    Image.fromarray(np.full((H, W), 9, np.uint8)).save(os.path.join(labels, f"ego4d_{V2}_0000040.png"))
    Image.new("RGB", (W, H)).save(os.path.join(images, f"ego4d_{V2}_0000040.png"))
    Image.fromarray(np.zeros((H, W), np.uint8)).save(os.path.join(labels, f"ego4d_{V2}_0000050.png"))  # no image
    with open(os.path.join(labels, f"ego4d_{V2}_0000060.png"), "wb") as f:
        f.write(b"not a png")
    Image.new("RGB", (W, H)).save(os.path.join(images, f"ego4d_{V2}_0000060.jpg"))
    Image.new("RGB", (W, H)).save(os.path.join(images, f"ego4d_{V2}_0000020.jpg"))
    with caplog.at_level(logging.INFO, logger="wish_d2.data.ego4d"):
        dicts = load_ego4d(labels, images, nj, dataset_name="bad_ego")
    assert len(dicts) == 4
    msg = [r.getMessage() for r in caplog.records if r.name == "wish_d2.data.ego4d"]
    assert len(msg) == 1
    for reason in ["label map is not single-channel (mode RGB)=1", "file name does not match name_pattern=1",
                   "missing image=1", "unreadable label map=1", "unknown label ids > 8 (ignored)=1"]:
        assert reason in msg[0], (reason, msg[0])


def test_cache_dir_gives_the_same_dicts(sample, tmp_path, monkeypatch):
    import json as _json

    from wish_d2.data import ego4d

    labels, images, nj = sample
    cache = str(tmp_path / "cache")
    fresh = load_ego4d(labels, images, nj, window_frames=10)
    assert load_ego4d(labels, images, nj, window_frames=10, cache_dir=cache) == fresh
    monkeypatch.setattr(ego4d, "_read_label_map", lambda *a: (_ for _ in ()).throw(AssertionError("parsed")))
    again = load_ego4d(labels, images, nj, window_frames=10, cache_dir=cache)
    assert _json.dumps(again) == _json.dumps(fresh)
    with pytest.raises(AssertionError, match="parsed"):  # another option is another key
        load_ego4d(labels, images, nj, window_frames=11, cache_dir=cache)
