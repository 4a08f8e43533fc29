"""Table-driven bad inputs for the VISOR JSON + EPIC-100 CSV loader: each case is one mutation of a small valid
split and either an error that names the file (and record / field), or a counted skip in the one summary line."""
import copy
import json
import logging
import os
import struct
import zlib

import pytest
from PIL import Image

from wish_d2.data import DataFormatError, load_epic_visor
from wish_d2.data.epic_narrations import EPIC_CSV_COLUMNS

H, W = 40, 60
LOGGER = "wish_d2.data.visor"
NAME_A, NAME_B = "P01_01_frame_0000000123.jpg", "P01_01_frame_0000000456.jpg"


def rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def frame(name, obj_id="o1"):
    return {
        "image": {"name": name, "image_path": f"P01_01/{name}", "video": "P01_01"},
        "annotations": [
            {"id": "h1", "name": "left hand", "segments": [rect(0, 20, 10, 30)], "in_contact_object": obj_id},
            {"id": "h2", "name": "right hand", "segments": [rect(50, 20, 60, 30)],
             "in_contact_object": "hand-not-in-contact"},
            {"id": "o1", "name": "knife", "segments": [rect(10, 20, 20, 25)]},
            {"id": "o2", "name": "pan:frying", "segments": [rect(20, 0, 40, 10)]},
        ],
    }


CSV_ROWS = [
    ["P01_01_0", "P01", "P01_01", "", "", "", "100", "130", "take knife", "take", "0", "knife", "4", "['knife']",
     "[4]"],
    ["P01_01_1", "P01", "P01_01", "", "", "", "440", "470", "wash pan", "wash", "1", "pan", "9", "['pan:frying']",
     "[9]"],
]


def csv_text(rows=CSV_ROWS, header=EPIC_CSV_COLUMNS):
    return "\n".join(",".join(f'"{c}"' if "," in c or "'" in c else c for c in r) for r in [header] + rows) + "\n"


def png_claiming(width, height):
    """A valid 1x1 PNG whose IHDR claims ``width x height`` (CRC fixed): PIL reads the size from the header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    idat = chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


class Split:
    """A valid two-frame split; cases mutate ``frames``, ``csv`` or the images before ``write``."""

    def __init__(self, root):
        self.root = root
        self.frames = [frame(NAME_A), frame(NAME_B)]
        self.csv = csv_text()
        self.images = {NAME_A: None, NAME_B: None}  # None = a valid image; bytes = these bytes
        self.raw_json = None

    def write(self):
        ann = os.path.join(self.root, "ann")
        os.makedirs(ann, exist_ok=True)
        with open(os.path.join(ann, "P01_01.json"), "wb") as f:
            raw = self.raw_json if self.raw_json is not None else json.dumps(
                {"video_annotations": self.frames}).encode()
            f.write(raw)
        img = os.path.join(self.root, "img", "P01_01")
        os.makedirs(img, exist_ok=True)
        for name, data in self.images.items():
            path = os.path.join(img, name)
            if data is None:
                Image.new("RGB", (W, H), (100, 90, 80)).save(path)
            elif data != "missing":
                with open(path, "wb") as f:
                    f.write(data)
        csv_path = os.path.join(self.root, "EPIC_100_train.csv")
        with open(csv_path, "wb") as f:
            f.write(self.csv if isinstance(self.csv, bytes) else self.csv.encode("utf-8"))
        return ann, os.path.join(self.root, "img"), csv_path


def ent(s, i):
    return s.frames[0]["annotations"][i]


def set_obj_poly(poly):
    def m(s):
        ent(s, 2)["segments"] = [poly]
    return m


def with_csv(rows, header=EPIC_CSV_COLUMNS):
    return lambda s: setattr(s, "csv", csv_text(rows, header))


# (name, mutation, expected summary reason, expected count, frames kept)
SKIPS = [
    ("nan coordinate", set_obj_poly([[float("nan"), 20], [20, 20], [20, 25]]), "non-finite polygon coordinate", 1, 1),
    ("infinite coordinate", set_obj_poly([[10, 20], [float("inf"), 20], [20, 25]]), "non-finite polygon coordinate",
     1, 1),
    ("1e9 coordinate", set_obj_poly([[10, 20], [1e9, 20], [20, 25]]), "polygon coordinate out of range", 1, 1),
    ("-1e9 coordinate", set_obj_poly([[10, -1e9], [20, 20], [20, 25]]), "polygon coordinate out of range", 1, 1),
    ("string coordinate", set_obj_poly([[10, "a"], [20, 20], [20, 25]]), "malformed polygon", 1, 1),
    ("null coordinate", set_obj_poly([[10, None], [20, 20], [20, 25]]), "malformed polygon", 1, 1),
    ("point with 3 numbers", set_obj_poly([[10, 20, 1], [20, 20], [20, 25]]), "malformed polygon", 1, 1),
    ("two-point polygon", set_obj_poly([[10, 20], [20, 20]]), "degenerate polygon (< 3 points)", 1, 1),
    ("polygon fully outside", set_obj_poly(rect(100, 50, 120, 60)), "polygon outside the image", 1, 1),
    ("polygon left of the image", set_obj_poly(rect(-30, 5, -1, 9)), "polygon outside the image", 1, 1),
    ("sub-pixel polygon", set_obj_poly([[10.1, 20.1], [10.2, 20.1], [10.2, 20.2]]),
     "in-contact object mask is empty (frame dropped)", 1, 1),
    ("segments not a list", lambda s: ent(s, 2).update(segments={"a": 1}), "malformed polygon", 1, 1),
    ("object without polygons", set_obj_poly([]), "degenerate polygon (< 3 points)", 1, 1),
    ("hand polygon nan", lambda s: ent(s, 0).update(segments=[[[float("nan"), 1], [2, 2], [3, 1]]]),
     "entity without a valid polygon (dropped)", 1, 2),
    ("hand outside the image", lambda s: ent(s, 0).update(segments=[rect(70, 50, 80, 60)]),
     "polygon outside the image", 1, 2),
    ("duplicate entity id", lambda s: ent(s, 3).update(id="o1"), "duplicate entity id (frame dropped)", 1, 1),
    ("entity id is a dict", lambda s: ent(s, 3).update(id={"x": 1}), "malformed entity (id must be", 1, 2),
    ("entity id is a bool", lambda s: ent(s, 3).update(id=True), "malformed entity (id must be", 1, 2),
    ("entity name is a number", lambda s: ent(s, 3).update(name=5), "malformed entity (id must be", 1, 2),
    ("entity without segments", lambda s: ent(s, 3).pop("segments"), "malformed entity (needs id, name, segments)",
     1, 2),
    ("entity not an object", lambda s: s.frames[0]["annotations"].append([1, 2]),
     "malformed entity (needs id, name, segments)", 1, 2),
    # a list of ids names several held objects (the multi-grip extension); a list of anything else is malformed
    ("in_contact_object is a list of non-ids", lambda s: ent(s, 0).update(in_contact_object=[{"id": "o1"}]),
     "malformed in_contact_object (frame dropped)", 1, 1),
    ("in_contact_object is an empty list", lambda s: ent(s, 0).update(in_contact_object=[]),
     "malformed in_contact_object (frame dropped)", 1, 1),
    ("in_contact_object is a dict", lambda s: ent(s, 0).update(in_contact_object={"id": "o1"}),
     "malformed in_contact_object (frame dropped)", 1, 1),
    ("in_contact_object unknown", lambda s: ent(s, 0).update(in_contact_object="zz"),
     "in_contact_object is not an entity of the frame (frame dropped)", 1, 1),
    ("frame entry not an object", lambda s: s.frames.append("x"), "malformed frame entry", 1, 2),
    ("image name not a string", lambda s: s.frames[0]["image"].update(name=123), "malformed frame entry", 1, 1),
    ("annotations not a list", lambda s: s.frames[0].update(annotations={}), "malformed frame entry", 1, 1),
    ("unparseable name", lambda s: s.frames[0]["image"].update(name="frame123.jpg"), "unparseable frame name", 1, 1),
    ("name with a folder", lambda s: s.frames[0]["image"].update(name="../P01_01_frame_0000000123.jpg"),
     "unparseable frame name", 1, 1),
    ("huge frame number", lambda s: s.frames[0]["image"].update(name="P01_01_frame_99999999999999999999.jpg"),
     "frame number out of range", 1, 1),
    ("absolute image_path", lambda s: s.frames[0]["image"].update(image_path="/etc/passwd"),
     "image.image_path is not a relative path inside image_root (ignored)", 1, 2),
    ("image_path escapes the root", lambda s: s.frames[0]["image"].update(image_path="../../x.jpg"),
     "image.image_path is not a relative path inside image_root (ignored)", 1, 2),
    ("image_path a number", lambda s: s.frames[0]["image"].update(image_path=7),
     "image.image_path is not a relative path inside image_root (ignored)", 1, 2),
    ("duplicate frame", lambda s: s.frames.append(copy.deepcopy(s.frames[0])), "duplicate frame", 1, 2),
    ("missing image", lambda s: s.images.update({NAME_A: "missing"}), "missing image", 1, 1),
    ("corrupt image", lambda s: s.images.update({NAME_A: b"\xff\xd8garbage"}), "unreadable image", 1, 1),
    ("empty image file", lambda s: s.images.update({NAME_A: b""}), "unreadable image", 1, 1),
    ("decompression bomb", lambda s: s.images.update({NAME_A: png_claiming(20000, 20000)}),
     "image too large (decompression bomb)", 1, 1),
    ("image side over the limit", lambda s: s.images.update({NAME_A: png_claiming(40000, 2)}),
     "image too large (decompression bomb)", 1, 1),
    ("frame without narration", lambda s: setattr(s, "csv", csv_text(CSV_ROWS[:1])), "frame without narration", 1, 2),
    ("video not in the CSV", lambda s: setattr(s, "csv", csv_text([[c.replace("P01_01", "P09_09") for c in r]
                                                                   for r in CSV_ROWS])),
     "video not in the narrations CSV", 2, 2),
    ("no hands", lambda s: s.frames[0].update(annotations=s.frames[0]["annotations"][2:]), None, 0, 2),
    ("no entities", lambda s: s.frames[0].update(annotations=[]), None, 0, 2),
    ("UTF-8 BOM before video_id", lambda s: setattr(s, "csv", "\ufeff" + csv_text()), None, 0, 2),
    ("CRLF line ends", lambda s: setattr(s, "csv", csv_text().replace("\n", "\r\n")), None, 0, 2),
]

# (name, mutation, substring of the DataFormatError; the file name is checked too)
ERRORS = [
    ("annotations not JSON", lambda s: setattr(s, "raw_json", b"{not json"),
     "P01_01.json: VISOR annotation file is not valid JSON"),
    ("annotations not UTF-8", lambda s: setattr(s, "raw_json", b'{"video_annotations": ["\xff"]}'), "P01_01.json"),
    ("annotations a list", lambda s: setattr(s, "raw_json", b"[]"), "P01_01.json: expected a VISOR object"),
    ("video_annotations not a list", lambda s: setattr(s, "raw_json", b'{"video_annotations": {}}'),
     "P01_01.json: expected a VISOR object"),
    ("annotations nested too deeply", lambda s: setattr(s, "raw_json", b"[" * 200000), "P01_01.json"),
    ("CSV duplicated column", with_csv([r + ["x"] for r in CSV_ROWS], EPIC_CSV_COLUMNS + ["start_frame"]),
     "EPIC_100_train.csv: column(s) ['start_frame'] appear more than once"),
    ("CSV huge frame", with_csv([CSV_ROWS[0][:7] + ["99999999999999999999999"] + CSV_ROWS[0][8:]]),
     "EPIC_100_train.csv:2: stop_frame = 99999999999999999999999 is outside"),
    ("CSV negative frame", lambda s: setattr(s, "csv", csv_text(
        [CSV_ROWS[0][:6] + ["-5"] + CSV_ROWS[0][7:]])), "EPIC_100_train.csv:2: start_frame = -5 is outside"),
    ("CSV float frame", lambda s: setattr(s, "csv", csv_text(
        [CSV_ROWS[0][:6] + ["1.5"] + CSV_ROWS[0][7:]])), "EPIC_100_train.csv:2: start_frame must be an integer"),
    ("CSV nan frame", lambda s: setattr(s, "csv", csv_text(
        [CSV_ROWS[0][:6] + ["nan"] + CSV_ROWS[0][7:]])), "EPIC_100_train.csv:2: start_frame must be an integer"),
    ("CSV stop before start", with_csv([CSV_ROWS[0][:6] + ["200", "100"] + CSV_ROWS[0][8:]]),
     "EPIC_100_train.csv:2: stop_frame 100 < start_frame 200"),
    ("CSV empty video_id", lambda s: setattr(s, "csv", csv_text([CSV_ROWS[0][:2] + [""] + CSV_ROWS[0][3:]])),
     "EPIC_100_train.csv:2: video_id is empty"),
    ("CSV short row", with_csv([CSV_ROWS[0][:9]]), "EPIC_100_train.csv:2: row has a wrong number"),
    ("CSV long row", with_csv([CSV_ROWS[0] + ["x"]]), "EPIC_100_train.csv:2: row has a wrong number"),
    ("CSV missing column", with_csv([r[:14] for r in CSV_ROWS], EPIC_CSV_COLUMNS[:13] + ["x"]),
     "EPIC_100_train.csv: not an EPIC-100 narrations CSV, missing columns ['all_nouns']"),
    ("CSV empty file", lambda s: setattr(s, "csv", ""), "EPIC_100_train.csv: not an EPIC-100 narrations CSV"),
    ("CSV not UTF-8", lambda s: setattr(s, "csv", csv_text().encode() + b"\xff\xfe\n"),
     "EPIC_100_train.csv: not a UTF-8"),
    ("CSV NUL byte in a frame number", lambda s: setattr(s, "csv", csv_text().replace(",130,", ",1\x0030,")),
     "EPIC_100_train.csv:2: stop_frame must be an integer"),
    ("CSV bad all_nouns", lambda s: setattr(s, "csv", csv_text([CSV_ROWS[0][:13] + ["[knife", "[4]"]])),
     "EPIC_100_train.csv:2"),
    ("CSV all_nouns numbers", lambda s: setattr(s, "csv", csv_text([CSV_ROWS[0][:13] + ["[1, 2]", "[4]"]])),
     "EPIC_100_train.csv:2"),
]


def _summary(caplog):
    msg = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(msg) == 1, msg
    return msg[0]


@pytest.mark.parametrize("name,mutate,reason,count,kept", SKIPS, ids=[c[0] for c in SKIPS])
def test_visor_bad_input_is_a_counted_skip(tmp_path, caplog, name, mutate, reason, count, kept):
    split = Split(str(tmp_path))
    mutate(split)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        dicts = load_epic_visor(*split.write(), dataset_name="bad")
    assert len(dicts) == kept
    summary = _summary(caplog)
    if reason is None:
        assert "skipped" not in summary, summary
    else:
        assert f"{reason}" in summary and f"={count}" in summary.split(reason, 1)[1].split(";")[0], summary
    for d in dicts:  # what was kept is whole: every mask non-empty and of the image size
        for m in [h["segmentation"] for h in d["hands"]] + [a["segmentation"] for a in d["annotations"]]:
            assert m["size"] == [H, W]
        assert all(a["bbox"][2] > 0 and a["bbox"][3] > 0 for a in d["annotations"])


@pytest.mark.parametrize("name,mutate,match", ERRORS, ids=[c[0] for c in ERRORS])
def test_visor_bad_file_raises_naming_it(tmp_path, name, mutate, match):
    split = Split(str(tmp_path))
    mutate(split)
    with pytest.raises(DataFormatError) as e:
        load_epic_visor(*split.write(), dataset_name="bad")
    assert match in str(e.value), str(e.value)


@pytest.mark.parametrize("kwargs,match", [
    (dict(frame_margin=-1), "frame_margin"),
    (dict(frame_margin="3"), "frame_margin"),
    (dict(frame_margin=2 ** 40), "frame_margin"),
    (dict(image_size=(0, 10), check_images=False), "image_size"),
    (dict(image_size="big", check_images=False), "image_size"),
    (dict(contact_corrections={"x": []}), "frame 'x'"),
    (dict(contact_corrections={NAME_A: {"middle": "o1"}}), "hand 'middle' is not left/right"),
    (dict(contact_corrections={NAME_A: {"left": {"id": 1}}}), "the entity id must be"),
    (dict(contact_corrections=[1]), "expected an object"),
], ids=lambda v: str(v)[:40])
def test_visor_bad_options(tmp_path, kwargs, match):
    split = Split(str(tmp_path))
    with pytest.raises(DataFormatError, match=match):
        load_epic_visor(*split.write(), **kwargs)


def test_contact_correction_file(tmp_path, caplog):
    split = Split(str(tmp_path))
    paths = split.write()
    fix = tmp_path / "contact_corrections.json"
    fix.write_text(json.dumps({NAME_A: {"left hand": "o2", "right": None},
                               "P01_01_frame_0000000456": {"left": "hand-not-in-contact"},
                               "P09_09_frame_0000000001.jpg": {"left": "o1"}}))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        dicts = load_epic_visor(*paths, contact_corrections=str(fix), dataset_name="fix")
    a, b = dicts
    assert [(x["category_id"], x["noun"]) for x in a["annotations"]] == [(0, "frying pan")]
    assert b["annotations"] == []
    summary = _summary(caplog)
    assert "contact correction for a frame or hand not loaded (unused)=1" in summary
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DataFormatError, match="bad.json"):
        load_epic_visor(*paths, contact_corrections=str(bad))
    bad.write_text(json.dumps({NAME_A: {"left": "zz"}}))  # a corrected id must still be an entity of the frame
    assert len(load_epic_visor(*paths, contact_corrections=str(bad))) == 1


def test_exif_rotated_image_gets_the_size_detectron2_reads(tmp_path):
    from detectron2.data import detection_utils

    from wish_d2.data.common import probe_image

    path = str(tmp_path / "rot.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.new("RGB", (W, H)).save(path, exif=exif)
    assert probe_image(path) == ((W, H), None)
    assert detection_utils.read_image(path, format="RGB").shape[:2] == (W, H)
