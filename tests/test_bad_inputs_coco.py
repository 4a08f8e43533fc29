"""Table-driven bad inputs for the COCO + narrations loader: structural problems raise naming the file, the
record and the field before load_coco_json or pycocotools see them; bad mask values are counted skips."""
import copy
import json
import logging

import numpy as np
import pytest

from wish_d2.data import DataFormatError, load_coco_narrations
from wish_d2.utils.masks import encode_rle

H, W = 20, 30
LOGGER = "wish_d2.data.coco_narrations"


def poly(x0, y0, x1, y1):
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def rle(x0, y0, x1, y1, h=H, w=W):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return encode_rle(m)


COCO = {
    "images": [
        {"id": 7, "file_name": "f1.jpg", "height": H, "width": W,
         "hands": [{"side": "left", "segmentation": [poly(0, 10, 5, 20)]}]},
        {"id": 8, "file_name": "f2.jpg", "height": H, "width": W},
    ],
    "categories": [{"id": 1, "name": "left"}, {"id": 2, "name": "right"}, {"id": 4, "name": "right hand"}],
    "annotations": [
        {"id": 1, "image_id": 7, "category_id": 1, "segmentation": [poly(5, 10, 10, 15)], "bbox": [5, 10, 5, 5],
         "iscrowd": 0, "area": 25, "noun": "knife"},
        {"id": 2, "image_id": 7, "category_id": 4, "segmentation": rle(25, 10, 30, 20), "bbox": [25, 10, 5, 10],
         "iscrowd": 0, "area": 50},
        {"id": 3, "image_id": 8, "category_id": 2, "segmentation": rle(10, 0, 20, 5), "bbox": [10, 0, 10, 5],
         "iscrowd": 0, "area": 50},
    ],
}
NARR = {"f1.jpg": ["take knife"], "f2.jpg": ["lift tray"]}


def ann(c, i):
    return c["annotations"][i]


def run(tmp_path, coco, narr=NARR, raw=None):
    cj, nj = tmp_path / "coco.json", tmp_path / "narr.json"
    cj.write_bytes(raw if raw is not None else json.dumps(coco).encode())
    nj.write_text(json.dumps(narr))
    return load_coco_narrations(str(cj), str(tmp_path), str(nj), dataset_name="bad")


ERRORS = [
    ("not JSON", None, b"{", "coco.json: not valid JSON"),
    ("not UTF-8", None, b'{"images": ["\xff"]}', "coco.json: not valid JSON"),
    ("nested too deeply", None, b"[" * 200000, "coco.json"),
    ("top level a list", lambda c: [], None, "coco.json: expected a COCO object"),
    ("images not a list", lambda c: c.update(images={}), None, "coco.json: expected a COCO object"),
    ("annotations not a list", lambda c: c.update(annotations={}), None, "coco.json: field annotations must be a list"),
    ("two images share an id", lambda c: c["images"][1].update(id=7), None,
     "coco.json: images[1] (id 7): field id is used by another image"),
    ("image without id", lambda c: c["images"][1].pop("id"), None, "coco.json: images[1]: field id"),
    ("image id a float", lambda c: c["images"][1].update(id=8.0), None, "coco.json: images[1]: field id"),
    ("image id null", lambda c: c["images"][1].update(id=None), None, "coco.json: images[1]: field id"),
    ("image not an object", lambda c: c["images"].append(3), None, "coco.json: images[2] is not an object"),
    ("image without file_name", lambda c: c["images"][0].pop("file_name"), None, "images[0] (id 7): field file_name"),
    ("image height zero", lambda c: c["images"][0].update(height=0), None, "images[0] (id 7): field height"),
    ("image height a string", lambda c: c["images"][0].update(height="20"), None, "images[0] (id 7): field height"),
    ("image width huge", lambda c: c["images"][0].update(width=10 ** 6), None, "images[0] (id 7): field width"),
    ("image without height", lambda c: c["images"][0].pop("height"), None, "images[0] (id 7): field height"),
    ("duplicate category ids", lambda c: c["categories"][1].update(id=1), None,
     "coco.json: categories[1] (id 1): field id is used by another category"),
    ("category without id", lambda c: c["categories"][0].pop("id"), None, "coco.json: categories[0]: field id"),
    ("category id a string", lambda c: c["categories"][0].update(id="1"), None, "categories[0]: field id"),
    ("category without name", lambda c: c["categories"][0].pop("name"), None, "categories[0] (id 1): field name"),
    ("category unknown name", lambda c: c["categories"][0].update(name="spoon"), None, "categories ['spoon']"),
    ("annotation ids repeat", lambda c: ann(c, 1).update(id=1), None,
     "annotations[1] (id 1): field id is used by another annotation"),
    ("annotation without id", lambda c: ann(c, 0).pop("id"), None, "coco.json: annotations[0]: field id"),
    ("annotation not an object", lambda c: c["annotations"].append("x"), None, "annotations[3] is not an object"),
    ("annotation category_id a string", lambda c: ann(c, 0).update(category_id="1"), None,
     "annotations[0] (id 1): field category_id"),
    ("annotation image_id missing", lambda c: ann(c, 0).pop("image_id"), None, "annotations[0] (id 1): field image_id"),
    ("annotation ignore", lambda c: ann(c, 0).update(ignore=1), None, "annotations[0] (id 1): field ignore"),
    ("bbox with NaN", lambda c: ann(c, 0).update(bbox=[1, float("nan"), 2, 2]), None,
     "annotations[0] (id 1): field bbox"),
    ("bbox of 3 numbers", lambda c: ann(c, 0).update(bbox=[1, 2, 2]), None, "field bbox"),
    ("segmentation a string", lambda c: ann(c, 0).update(segmentation="abc"), None, "field segmentation"),
    ("polygon of strings", lambda c: ann(c, 0).update(segmentation=[["1", "2", "3", "4", "5", "6"]]), None,
     "field segmentation"),
    ("polygon a number", lambda c: ann(c, 0).update(segmentation=[5]), None, "field segmentation"),
    ("RLE without size", lambda c: ann(c, 1)["segmentation"].pop("size"), None,
     "annotations[1] (id 2): field segmentation: RLE field size"),
    ("RLE without counts", lambda c: ann(c, 1)["segmentation"].pop("counts"), None, "RLE field counts"),
    ("RLE of another size", lambda c: ann(c, 1).update(segmentation=rle(0, 0, 2, 2, H + 1, W)), None,
     "annotations[1] (id 2): field segmentation: RLE field size [21, 30] differs from the image size [20, 30]"),
    ("RLE garbage counts", lambda c: ann(c, 1)["segmentation"].update(counts="~~~~"), None,
     "field segmentation: counts has characters outside"),
    ("RLE counts too short", lambda c: ann(c, 1)["segmentation"].update(counts="52"), None, "covers"),
    ("RLE counts overflowing", lambda c: ann(c, 1)["segmentation"].update(counts="_" * 7), None, "field segmentation"),
    ("RLE list counts wrong sum", lambda c: ann(c, 1).update(segmentation={"size": [H, W], "counts": [5, 5]}), None,
     "field segmentation: RLE field counts covers 10 pixels"),
    ("RLE list counts negative", lambda c: ann(c, 1).update(
        segmentation={"size": [H, W], "counts": [-5, H * W + 5]}), None, "negative or overflowing"),
    ("RLE list counts floats", lambda c: ann(c, 1).update(segmentation={"size": [H, W], "counts": [1.5]}), None,
     "list of integers"),
    ("RLE size strings", lambda c: ann(c, 1)["segmentation"].update(size=["20", "30"]), None, "RLE field size"),
    ("RLE size negative", lambda c: ann(c, 1)["segmentation"].update(size=[-20, -30]), None, "RLE field size"),
    ("hands not a list", lambda c: c["images"][0].update(hands={"side": "left"}), None,
     "image 7: field hands must be a list"),
]

SKIPS = [
    ("polygon with NaN", lambda c: ann(c, 0).update(segmentation=[[5, 10, float("nan"), 10, 10, 15]]),
     "non-finite polygon coordinate", 1),
    ("polygon with Infinity", lambda c: ann(c, 0).update(segmentation=[[5, 10, float("inf"), 10, 10, 15]]),
     "non-finite polygon coordinate", 1),
    ("polygon with 1e9", lambda c: ann(c, 0).update(segmentation=[[5, 10, 1e9, 10, 10, 15]]),
     "polygon coordinate out of range", 1),
    ("polygon outside the image", lambda c: ann(c, 0).update(segmentation=[poly(40, 22, 50, 28)]),
     "polygon outside the image", 1),
    ("sub-pixel polygon", lambda c: ann(c, 0).update(segmentation=[[5.1, 10.1, 5.2, 10.1, 5.2, 10.2]]),
     "empty mask", 1),
    ("empty RLE", lambda c: ann(c, 1).update(segmentation=encode_rle(np.zeros((H, W), bool))), "empty mask", 1),
    ("annotation without segmentation", lambda c: ann(c, 0).pop("segmentation"), "annotation without a mask", 1),
    ("annotation of an unknown image", lambda c: c["annotations"].append(dict(ann(c, 0), id=9, image_id=99)),
     "annotation of an image_id not in images (ignored)", 1),
    ("hand with a NaN polygon",
     lambda c: c["images"][0]["hands"][0].update(segmentation=[[0, 10, 5, float("nan"), 5, 20]]),
     "non-finite polygon coordinate", 1),
    ("hand RLE of another size", lambda c: c["images"][0]["hands"][0].update(segmentation=rle(0, 0, 2, 2, 5, 5)),
     "invalid RLE (RLE field size [5, 5] differs from the image size [20, 30])", 1),
    ("hand RLE garbage counts", lambda c: c["images"][0]["hands"][0].update(
        segmentation={"size": [H, W], "counts": "\x01\x02"}), "invalid RLE (counts has characters", 1),
    ("hand without segmentation", lambda c: c["images"][0]["hands"][0].pop("segmentation"), "hand without a mask", 1),
    ("hand not an object", lambda c: c["images"][0]["hands"].append(5), "hand without a mask", 1),
    ("no hands at all", lambda c: (c["images"][0].pop("hands"), c["annotations"].pop(1)), None, 0),
    ("image without annotations", lambda c: c["annotations"].pop(2), None, 0),
]

NARR_ERRORS = [
    ("entry a number", {"f1.jpg": 5}, "narr.json: entry 'f1.jpg' must be"),
    ("entry list of numbers", {"f1.jpg": [1, 2]}, "narr.json: entry 'f1.jpg' must be"),
    ("narrations of numbers", {"f1.jpg": {"narrations": [1]}}, "narr.json: entry 'f1.jpg' must be"),
    ("noun_phrases not strings", {"f1.jpg": {"narrations": ["x"], "noun_phrases": [None]}}, "entry 'f1.jpg' must be"),
]


@pytest.mark.parametrize("name,mutate,raw,match", ERRORS, ids=[c[0] for c in ERRORS])
def test_coco_bad_file_raises_naming_it(tmp_path, name, mutate, raw, match):
    c = copy.deepcopy(COCO)
    if mutate is not None:
        out = mutate(c)
        c = out if out == [] else c  # "top level a list" replaces the whole file
    with pytest.raises(DataFormatError) as e:
        run(tmp_path, c, raw=raw)
    assert match in str(e.value) and "coco.json" in str(e.value), str(e.value)


@pytest.mark.parametrize("name,mutate,reason,count", SKIPS, ids=[c[0] for c in SKIPS])
def test_coco_bad_mask_is_a_counted_skip(tmp_path, caplog, name, mutate, reason, count):
    c = copy.deepcopy(COCO)
    mutate(c)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        dicts = run(tmp_path, c)
    assert len(dicts) == 2
    msg = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(msg) == 1
    if reason is None:
        assert "skipped" not in msg[0], msg[0]
    else:
        assert reason in msg[0] and f"={count}" in msg[0].split(reason, 1)[1].split(";")[0], msg[0]
    for d in dicts:
        for m in [h["segmentation"] for h in d["hands"]] + [a["segmentation"] for a in d["annotations"]]:
            assert m["size"] == [H, W]
        assert all(a["bbox"][2] > 0 and a["bbox"][3] > 0 for a in d["annotations"])


@pytest.mark.parametrize("name,narr,match", NARR_ERRORS, ids=[c[0] for c in NARR_ERRORS])
def test_coco_bad_narration_entry_raises(tmp_path, name, narr, match):
    with pytest.raises(DataFormatError, match=match):
        run(tmp_path, copy.deepcopy(COCO), narr=narr)


@pytest.mark.parametrize("narr", [{"f1.jpg": ["take knife"]}, {"f1.jpg": ["take knife"], "f2.jpg": None},
                                  {"f1.jpg": ["take knife"], "f2.jpg": []}])
def test_frame_without_narration_is_flagged(tmp_path, caplog, narr):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        dicts = run(tmp_path, copy.deepcopy(COCO), narr=narr)
    assert [d["narrations"] for d in dicts] == [["take knife"], []]
    assert "frame without narration=1" in caplog.records[-1].getMessage()
