"""VISOR sparse JSON + EPIC-100 CSV loader: exact parsed dicts on a hand-written sample, and every bad input."""
import csv
import json
import logging
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from wish_d2.data.common import DataFormatError
from wish_d2.data.taxonomy import dataset_taxonomy
from wish_d2.data.visor import EPIC_CSV_COLUMNS, load_epic_visor, parse_frame_name, register_epic_visor
from wish_d2.utils.masks import decode_rle, encode_rle

H, W = 40, 60
LOGGER = "wish_d2.data.visor"


def rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def rect_mask(*boxes):
    m = np.zeros((H, W), bool)
    for x0, y0, x1, y1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def frame_a():
    """Both hands (one named with the 'rigth hand' typo) hold the same two-polygon knife."""
    return {
        "image": {"name": "P01_01_frame_0000000123.jpg", "image_path": "P01_01/P01_01_frame_0000000123.jpg",
                  "video": "P01_01", "subsequence": "P01_01_Part_001"},
        "annotations": [
            {"id": "h1", "name": "left hand", "class_id": 300, "segments": [rect(0, 20, 10, 30)], "exhaustive": "y",
             "in_contact_object": "o1"},
            {"id": "h2", "name": "rigth hand", "class_id": 301, "segments": [rect(50, 20, 60, 30)],
             "exhaustive": "y", "in_contact_object": "o1"},
            {"id": "o1", "name": "knife", "class_id": 4, "segments": [rect(10, 20, 20, 25), rect(40, 20, 50, 25)],
             "exhaustive": "y"},
            {"id": "o2", "name": "pan:frying", "class_id": 9, "segments": [rect(20, 0, 40, 10)], "exhaustive": "y"},
            {"id": "o3", "name": "plate", "class_id": 5, "segments": [], "exhaustive": "n"},
        ],
    }


def frame_b():
    """Left hand wears a glove (the hand points at the glove, the glove at the pan); right hand not in contact;
    the pan has one degenerate polygon (2 points) next to a valid one."""
    return {
        "image": {"name": "P01_01_frame_0000000456.jpg", "image_path": "P01_01/P01_01_frame_0000000456.jpg",
                  "video": "P01_01", "subsequence": "P01_01_Part_002"},
        "annotations": [
            {"id": 11, "name": "left hand", "class_id": 300, "segments": [rect(0, 20, 10, 30)], "exhaustive": "y",
             "in_contact_object": 21},
            {"id": 21, "name": "glove:rubber", "class_id": 60, "segments": [rect(0, 30, 10, 40)], "exhaustive": "y",
             "on_which_hand": ["left hand"], "in_contact_object": 31},
            {"id": 12, "name": "Right Hand", "class_id": 301, "segments": [rect(50, 20, 60, 30)], "exhaustive": "y",
             "in_contact_object": "hand-not-in-contact"},
            {"id": 31, "name": "pan:frying", "class_id": 9,
             "segments": [rect(10, 30, 30, 40), [[1, 1], [2, 2]]], "exhaustive": "y"},
        ],
    }


CSV_ROWS = [
    # narration_id, participant, video, timestamps x3, start, stop, narration, verb, vc, noun, nc, all_nouns, anc
    ["P01_01_0", "P01", "P01_01", "00:00:02.00", "00:00:02.00", "00:00:02.60", "100", "130", "take knife", "take",
     "0", "knife", "4", "['knife']", "[4]"],
    ["P01_01_1", "P01", "P01_01", "00:00:02.40", "00:00:02.40", "00:00:04.00", "120", "200",
     "put frying pan on hob", "put", "1", "pan:frying", "9", "['pan:frying', 'hob']", "[9, 12]"],
    ["P01_01_2", "P01", "P01_01", "00:00:08.00", "00:00:08.00", "00:00:08.60", "400", "430", "wash knife", "wash",
     "2", "knife", "4", "['knife']", "[4]"],
    ["P02_01_0", "P02", "P02_01", "00:00:01.00", "00:00:01.00", "00:00:02.00", "50", "100", "open tap", "open",
     "3", "tap", "7", "['tap']", "[7]"],
]


def write_csv(path, rows, header=EPIC_CSV_COLUMNS):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_image(root, rel, size=(W, H)):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, (120, 90, 60)).save(path)
    return path


def write_visor(path, frames):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"info": {"name": "test"}, "video_annotations": frames}, f)
    return path


@pytest.fixture
def sample(tmp_path):
    ann = tmp_path / "annotations"
    write_visor(str(ann / "P01_01.json"), [frame_a(), frame_b()])
    img_root = tmp_path / "images"
    write_image(str(img_root), "P01_01/P01_01_frame_0000000123.jpg")
    write_image(str(img_root), "P01_01/P01_01_frame_0000000456.jpg")
    csv_path = write_csv(str(tmp_path / "EPIC_100_train.csv"), CSV_ROWS)
    return str(ann), str(img_root), csv_path


def rle(mask):
    return encode_rle(mask)


def test_parse_frame_name():
    assert parse_frame_name("P01_01_frame_0000000123.jpg") == ("P01_01", 123)
    assert parse_frame_name("/x/P12_101_frame_0000000007.png") == ("P12_101", 7)
    with pytest.raises(ValueError):
        parse_frame_name("frame123.jpg")


def test_exact_parsed_dicts(sample, caplog):
    ann, img_root, csv_path = sample
    with caplog.at_level(logging.INFO, logger=LOGGER):
        dicts = load_epic_visor(ann, img_root, csv_path, frame_margin=0, dataset_name="t")
    both = rect_mask((10, 20, 20, 25), (40, 20, 50, 25))
    expected_a = {
        "file_name": os.path.join(img_root, "P01_01/P01_01_frame_0000000123.jpg"),
        "image_id": "P01_01_frame_0000000123",
        "height": H,
        "width": W,
        "video_id": "P01_01",
        "frame": 123,
        "narrations": ["take knife", "put frying pan on hob"],
        "noun_phrases": ["knife", "frying pan", "hob"],
        "hands": [
            {"side": "left", "side_source": "gt", "segmentation": rle(rect_mask((0, 20, 10, 30))),
             "bbox": [0.0, 20.0, 10.0, 10.0]},
            {"side": "right", "side_source": "gt", "segmentation": rle(rect_mask((50, 20, 60, 30))),
             "bbox": [50.0, 20.0, 10.0, 10.0]},
        ],
        "annotations": [
            {"category_id": 2, "segmentation": rle(both), "bbox": [10.0, 20.0, 40.0, 5.0],
             "bbox_mode": BoxMode.XYWH_ABS, "iscrowd": 0, "noun": "knife"},
        ],
    }
    expected_b = {
        "file_name": os.path.join(img_root, "P01_01/P01_01_frame_0000000456.jpg"),
        "image_id": "P01_01_frame_0000000456",
        "height": H,
        "width": W,
        "video_id": "P01_01",
        "frame": 456,
        "narrations": [],
        "noun_phrases": [],
        "hands": [
            {"side": "left", "side_source": "gt", "segmentation": rle(rect_mask((0, 20, 10, 40))),
             "bbox": [0.0, 20.0, 10.0, 20.0]},
            {"side": "right", "side_source": "gt", "segmentation": rle(rect_mask((50, 20, 60, 30))),
             "bbox": [50.0, 20.0, 10.0, 10.0]},
        ],
        "annotations": [
            {"category_id": 0, "segmentation": rle(rect_mask((10, 30, 30, 40))), "bbox": [10.0, 30.0, 20.0, 10.0],
             "bbox_mode": BoxMode.XYWH_ABS, "iscrowd": 0, "noun": "frying pan"},
        ],
    }
    assert dicts == [expected_a, expected_b]
    assert decode_rle(dicts[0]["annotations"][0]["segmentation"]).sum() == 100
    # one summary line, naming what was dropped or flagged
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1
    msg = records[0].getMessage()
    assert "[t] loaded 2 frames" in msg
    assert "entity without a valid polygon" not in msg  # the empty plate is not a hand or contact object
    assert "degenerate polygon (< 3 points)=1" in msg
    assert "frame without narration=1" in msg


def test_frame_margin(sample):
    ann, img_root, csv_path = sample
    dicts = load_epic_visor(ann, img_root, csv_path, frame_margin=30)
    assert dicts[1]["narrations"] == ["wash knife"]
    assert dicts[1]["noun_phrases"] == ["knife"]
    dicts = load_epic_visor(ann, img_root, csv_path, frame_margin=0, drop_frames_without_narration=True)
    assert [d["frame"] for d in dicts] == [123]


def test_synonyms_and_no_csv(sample):
    ann, img_root, csv_path = sample
    dicts = load_epic_visor(ann, img_root, csv_path, synonyms={"frying pan": "pan"})
    assert dicts[0]["noun_phrases"] == ["knife", "pan", "hob"]
    dicts = load_epic_visor(ann, img_root, None)
    assert all(d["narrations"] == [] and d["noun_phrases"] == [] for d in dicts)


def test_contact_parts_only(tmp_path):
    fa = frame_a()
    fa["annotations"][1]["in_contact_object"] = "hand-not-in-contact"  # only the left hand holds the knife
    write_visor(str(tmp_path / "a" / "P01_01.json"), [fa])
    write_image(str(tmp_path / "img"), "P01_01/P01_01_frame_0000000123.jpg")
    d = load_epic_visor(str(tmp_path / "a"), str(tmp_path / "img"), contact_parts_only=True, contact_dilation=2)
    ann = d[0]["annotations"]
    assert [a["category_id"] for a in ann] == [0]
    assert np.array_equal(decode_rle(ann[0]["segmentation"]), rect_mask((10, 20, 20, 25)))


def test_register_and_metadata(sample):
    ann, img_root, csv_path = sample
    name = "test_visor_register"
    calls = []
    register_epic_visor(name, ann, img_root, csv_path, frame_margin=0, prepare=lambda: calls.append(1),
                        metadata={"proposals_file": "/x.jsonl"})
    try:
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == ["left", "right", "both"]
        assert meta.evaluator_type == "wish_inhand"
        assert meta.image_root == img_root and meta.proposals_file == "/x.jsonl"
        assert not hasattr(meta, "nouns")
        dicts = DatasetCatalog.get(name)
        assert len(dicts) == 2 and calls == [1]
        assert not hasattr(meta, "nouns")  # loading a split never fills a taxonomy in
        assert meta.noun_classes_file == os.path.join(os.path.dirname(csv_path), "EPIC_100_noun_classes.csv")
        assert dataset_taxonomy(name) == ["frying pan", "hob", "knife"]  # its narrations' nouns (no such file)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


# ------------------------------------------------------------------------------------------------ bad input


def test_malformed_json_names_file(tmp_path):
    ann = tmp_path / "ann"
    ann.mkdir()
    (ann / "P01_01.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="P01_01.json"):
        load_epic_visor(str(ann), str(tmp_path))
    (ann / "P01_01.json").write_text(json.dumps({"info": {}}))
    with pytest.raises(DataFormatError, match="video_annotations"):
        load_epic_visor(str(ann), str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="no VISOR"):
        load_epic_visor(str(tmp_path / "empty"), str(tmp_path))
    with pytest.raises(FileNotFoundError):
        load_epic_visor(str(tmp_path / "nope"), str(tmp_path))


@pytest.mark.parametrize(
    "header,rows,match",
    [
        (["video_id", "start_frame", "narration"], [["P01_01", "1", "x"]], r"missing columns \['stop_frame'"),
        (EPIC_CSV_COLUMNS, [CSV_ROWS[0][:13] + ["['knife'", "[4]"]], r"bad.csv:2: all_nouns"),
        (EPIC_CSV_COLUMNS, [CSV_ROWS[0][:6] + ["ten"] + CSV_ROWS[0][7:]], r"bad.csv:2: start_frame"),
        (EPIC_CSV_COLUMNS, [CSV_ROWS[0][:6] + ["200", "100"] + CSV_ROWS[0][8:]], r"bad.csv:2: stop_frame"),
        (EPIC_CSV_COLUMNS, [CSV_ROWS[0][:5]], r"bad.csv:2: row has a wrong number"),
    ],
)
def test_malformed_csv_names_file_and_line(sample, tmp_path, header, rows, match):
    ann, img_root, _ = sample
    bad = write_csv(str(tmp_path / "bad.csv"), rows, header)
    with pytest.raises(DataFormatError, match=match):
        load_epic_visor(ann, img_root, bad)


def test_bad_frames_are_counted_skips(tmp_path, caplog):
    img_root = str(tmp_path / "img")
    frames = []
    # ok frame of an unknown video (not in the CSV)
    f = frame_a()
    f["image"].update(name="P09_09_frame_0000000001.jpg", image_path="P09_09/P09_09_frame_0000000001.jpg",
                      video="P09_09")
    frames.append(f)
    write_image(img_root, "P09_09/P09_09_frame_0000000001.jpg")
    # unparseable name
    f = frame_a()
    f["image"].update(name="weird.jpg", image_path="weird.jpg")
    frames.append(f)
    # missing image
    f = frame_a()
    f["image"].update(name="P01_01_frame_0000000002.jpg", image_path="P01_01/P01_01_frame_0000000002.jpg")
    frames.append(f)
    # malformed frame entry
    frames.append({"annotations": []})
    # dangling in_contact_object
    f = frame_a()
    f["image"].update(name="P01_01_frame_0000000003.jpg", image_path="P01_01/P01_01_frame_0000000003.jpg")
    f["annotations"][0]["in_contact_object"] = "zzz"
    frames.append(f)
    write_image(img_root, "P01_01/P01_01_frame_0000000003.jpg")
    # in-contact object with empty polygons
    f = frame_a()
    f["image"].update(name="P01_01_frame_0000000004.jpg", image_path="P01_01/P01_01_frame_0000000004.jpg")
    f["annotations"][0]["in_contact_object"] = "o3"
    frames.append(f)
    write_image(img_root, "P01_01/P01_01_frame_0000000004.jpg")
    # inconclusive + malformed entity + glove without on_which_hand
    f = frame_a()
    f["image"].update(name="P01_01_frame_0000000005.jpg", image_path="P01_01/P01_01_frame_0000000005.jpg")
    f["annotations"][0]["in_contact_object"] = "inconclusive"
    f["annotations"].append({"id": "bad"})
    f["annotations"].append({"id": "g", "name": "glove", "segments": [rect(0, 0, 5, 5)]})
    frames.append(f)
    write_image(img_root, "P01_01/P01_01_frame_0000000005.jpg")
    # duplicate of the previous frame
    frames.append(json.loads(json.dumps(f)))
    write_visor(str(tmp_path / "ann" / "mixed.json"), frames)
    csv_path = write_csv(str(tmp_path / "n.csv"), CSV_ROWS)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        dicts = load_epic_visor(str(tmp_path / "ann"), img_root, csv_path, dataset_name="bad")
    assert [d["image_id"] for d in dicts] == ["P09_09_frame_0000000001", "P01_01_frame_0000000005"]
    assert dicts[0]["narrations"] == [] and dicts[0]["annotations"][0]["category_id"] == 2
    # the inconclusive left hand: no contact; the right hand still holds the knife
    assert [a["category_id"] for a in dicts[1]["annotations"]] == [1]
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    msg = records[0].getMessage()
    for reason in ["unparseable frame name=1", "missing image=1", "malformed frame entry", "duplicate frame=1",
                   "in_contact_object is not an entity of the frame (frame dropped)=1",
                   "in-contact object has no valid polygon (frame dropped)=1",
                   "malformed entity (needs id, name, segments)=2", "glove without a valid on_which_hand",
                   "video not in the narrations CSV=1", "inconclusive contact (treated as no contact)=2"]:
        assert reason in msg, (reason, msg)
    assert "P01_01/P01_01_frame_0000000002.jpg" in msg  # the missing image is named

    dicts = load_epic_visor(str(tmp_path / "ann"), img_root, csv_path, drop_inconclusive=True)
    assert [d["image_id"] for d in dicts] == ["P09_09_frame_0000000001"]
    dicts = load_epic_visor(str(tmp_path / "ann"), img_root, csv_path, check_images=False)
    missing = [d for d in dicts if d["image_id"] == "P01_01_frame_0000000002"][0]
    assert (missing["height"], missing["width"]) == (1080, 1920)


def test_participant_slices_are_disjoint_and_cover_the_split(sample, tmp_path, caplog):
    ann, img_root, csv_path = sample
    other = frame_a()
    other["image"] = {"name": "P02_01_frame_0000000075.jpg", "image_path": "P02_01/P02_01_frame_0000000075.jpg",
                      "video": "P02_01"}
    write_visor(os.path.join(ann, "P02_01.json"), [other])
    write_image(img_root, "P02_01/P02_01_frame_0000000075.jpg")
    ids = lambda dicts: sorted(d["image_id"] for d in dicts)  # noqa: E731
    every = ids(load_epic_visor(ann, img_root, csv_path))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        held = ids(load_epic_visor(ann, img_root, csv_path, participants=["P02"], dataset_name="held"))
    core = ids(load_epic_visor(ann, img_root, csv_path, exclude_participants=["P02"]))
    assert held == ["P02_01_frame_0000000075"] and not set(held) & set(core) and sorted(held + core) == every
    assert any("[held] participant filter: 2 frames of other participants left out" in r.getMessage()
               for r in caplog.records)
    caplog.clear()  # a contact correction of a frame outside the slice is not "unused": it is elsewhere
    fixes = {"P02_01_frame_0000000075": {"left": None}, "P01_01_frame_0000000999": {"left": None}}
    with caplog.at_level(logging.INFO, logger=LOGGER):
        load_epic_visor(ann, img_root, csv_path, exclude_participants=["P02"], contact_corrections=fixes)
    assert "not loaded (unused)=1 (e.g. P01_01_frame_0000000999)" in caplog.text
    cached = tmp_path / "cache"  # the filter is part of the dict cache's key
    assert ids(load_epic_visor(ann, img_root, csv_path, participants=["P02"], cache_dir=str(cached))) == held
    assert ids(load_epic_visor(ann, img_root, csv_path, exclude_participants=["P02"], cache_dir=str(cached))) == core


@pytest.mark.parametrize("opts, match", [
    ({"participants": ["P99"]}, r"no frame of the participants \['P99'\]"),
    ({"participants": "P01"}, "participants must be a list of participant ids"),
    ({"exclude_participants": [""]}, "exclude_participants must be a list of participant ids"),
])
def test_a_bad_participant_filter_is_an_error(sample, opts, match):
    ann, img_root, csv_path = sample
    with pytest.raises(DataFormatError, match=match):
        load_epic_visor(ann, img_root, csv_path, **opts)
