"""COCO in-hand annotations + narrations, read through Detectron2's load_coco_json."""
import json
import logging

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from wish_d2.data.coco_narrations import category_role, load_coco_narrations, register_coco_narrations
from wish_d2.data.common import DataFormatError
from wish_d2.data.taxonomy import dataset_taxonomy
from wish_d2.utils.masks import decode_rle, encode_rle

H, W = 20, 30


def poly(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def mask(x0, y0, x1, y1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def coco():
    return {
        "images": [
            {"id": 7, "file_name": "a/f1.jpg", "height": H, "width": W,
             "hands": [{"side": "left", "segmentation": [poly(0, 10, 5, 20)]}]},
            {"id": 8, "file_name": "a/f2.jpg", "height": H, "width": W},
        ],
        "categories": [{"id": 1, "name": "left"}, {"id": 2, "name": "Right_Hand_Object"},
                       {"id": 3, "name": "both"}, {"id": 4, "name": "hand"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "segmentation": [poly(5, 10, 10, 15)], "bbox": [5, 10, 5, 5],
             "iscrowd": 0, "area": 25, "noun": "knife"},
            {"id": 2, "image_id": 7, "category_id": 4, "segmentation": encode_rle(mask(25, 10, 30, 20)),
             "bbox": [25, 10, 5, 10], "iscrowd": 0, "area": 50},  # side-less hand: heuristic says right
            {"id": 3, "image_id": 8, "category_id": 3, "segmentation": [poly(10, 0, 20, 5)], "bbox": [10, 0, 10, 5],
             "iscrowd": 0, "area": 50},
            {"id": 4, "image_id": 8, "category_id": 1, "segmentation": [poly(0, 0, 2, 2)], "bbox": [0, 0, 2, 2],
             "iscrowd": 0, "area": 4, "hand": "right"},  # a hand given by the "hand" key
            {"id": 5, "image_id": 8, "category_id": 2, "segmentation": [[1, 1, 2, 2]], "bbox": [1, 1, 1, 1],
             "iscrowd": 0, "area": 1},  # invalid polygon: dropped by load_coco_json
        ],
    }


@pytest.fixture
def files(tmp_path):
    cj, nj = tmp_path / "coco.json", tmp_path / "narr.json"
    cj.write_text(json.dumps(coco()))
    nj.write_text(json.dumps({"a/f1.jpg": ["take knife"],
                              "8": {"narrations": ["lift tray"], "noun_phrases": ["Tray", "left hand"]},
                              "zzz.jpg": ["x"]}))
    return str(cj), str(tmp_path), str(nj)


def test_category_roles():
    assert category_role("Left") == ("object", "left")
    assert category_role("both-hands object") == ("object", "both")
    assert category_role("right hand") == ("hand", "right")
    assert category_role("hand") == ("hand", None)
    assert category_role("person") is None


def test_load(files, caplog):
    cj, root, nj = files
    with caplog.at_level(logging.INFO, logger="wish_d2.data.coco_narrations"):
        dicts = load_coco_narrations(cj, root, nj, dataset_name="c")
    d1, d2 = dicts
    assert d1["image_id"] == "7" and d1["file_name"].endswith("a/f1.jpg") and (d1["height"], d1["width"]) == (H, W)
    assert d1["narrations"] == ["take knife"] and d1["noun_phrases"] == ["knife"]
    assert [(h["side"], h["side_source"]) for h in d1["hands"]] == [("left", "gt"), ("right", "heuristic")]
    assert np.array_equal(decode_rle(d1["hands"][0]["segmentation"]), mask(0, 10, 5, 20))
    assert d1["annotations"] == [{"category_id": 0, "segmentation": encode_rle(mask(5, 10, 10, 15)),
                                  "bbox": [5.0, 10.0, 5.0, 5.0], "bbox_mode": BoxMode.XYWH_ABS, "iscrowd": 0,
                                  "noun": "knife"}]
    assert d2["noun_phrases"] == ["tray"] and d2["narrations"] == ["lift tray"]  # given "left hand" dropped
    assert [(h["side"], h["side_source"]) for h in d2["hands"]] == [("right", "gt")]
    assert [a["category_id"] for a in d2["annotations"]] == [2]
    msg = [r.getMessage() for r in caplog.records if r.name == "wish_d2.data.coco_narrations"]
    assert len(msg) == 1 and "narration key matching no image=1 (e.g. zzz.jpg)" in msg[0]


def test_register(files):
    cj, root, nj = files
    register_coco_narrations("test_coco_narr", cj, root, nj)
    try:
        assert len(DatasetCatalog.get("test_coco_narr")) == 2
        meta = MetadataCatalog.get("test_coco_narr")
        assert meta.thing_classes == ["left", "right", "both"] and not hasattr(meta, "nouns")
        assert dataset_taxonomy("test_coco_narr") == ["knife", "tray"]  # its narrations' nouns
        assert not hasattr(meta, "json_file")
    finally:
        DatasetCatalog.remove("test_coco_narr")
        MetadataCatalog.remove("test_coco_narr")


def test_bad_inputs(files, tmp_path):
    cj, root, nj = files
    bad = tmp_path / "bad.json"
    data = coco()
    data["categories"].append({"id": 9, "name": "person"})
    bad.write_text(json.dumps(data))
    with pytest.raises(DataFormatError, match=r"bad.json: categories \['person'\]"):
        load_coco_narrations(str(bad), root, nj)
    bad.write_text("{")
    with pytest.raises(DataFormatError, match="bad.json: not valid JSON"):
        load_coco_narrations(str(bad), root, nj)
    with pytest.raises(DataFormatError, match="bad.json: not valid JSON"):
        load_coco_narrations(cj, root, str(bad))
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(DataFormatError, match="'images' and 'categories'"):
        load_coco_narrations(str(bad), root, nj)
    bad.write_text(json.dumps({"a/f1.jpg": 5}))
    with pytest.raises(DataFormatError, match="entry 'a/f1.jpg'"):
        load_coco_narrations(cj, root, str(bad))
    # missing images are counted skips when checked; frames without narration can be dropped
    assert load_coco_narrations(cj, root, nj, check_images=True) == []
    bad.write_text(json.dumps({"a/f1.jpg": ["take knife"]}))
    kept = load_coco_narrations(cj, root, str(bad), drop_frames_without_narration=True)
    assert [d["image_id"] for d in kept] == ["7"]
