"""Table-driven bad inputs for the Ego4D narration.json + EgoHOS label-map loader."""
import copy
import json
import logging
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from wish_d2.data import DataFormatError, load_ego4d

V1 = "0a1b2c3d-0000-4000-8000-123456789abc"
STEM_A, STEM_B = f"ego4d_{V1}_0000030", f"ego4d_{V1}_0000090"
H, W = 12, 16
LOGGER = "wish_d2.data.ego4d"


def label_map():
    lab = np.zeros((H, W), np.uint8)
    lab[6:12, 0:4] = 1
    lab[6:12, 12:16] = 2
    lab[4:8, 4:8] = 3
    return lab


NARR = {V1: {"narration_pass_1": {"narrations": [
    {"timestamp_sec": 1.0, "timestamp_frame": 30, "narration_text": "#C C picks the knife"},
    {"timestamp_sec": 3.0, "timestamp_frame": 90, "narration_text": "#C C cuts the onion"},
]}}}


def png_claiming(width, height, color_type=0):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    idat = chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


class Split:
    def __init__(self, root):
        self.root = root
        self.narr = copy.deepcopy(NARR)
        self.raw_narr = None
        self.labels = {STEM_A: label_map(), STEM_B: label_map()}  # array, bytes, or "rgb"
        self.images = {STEM_A: None, STEM_B: None}  # None = valid; bytes; "missing"; (w, h) = other size

    def write(self):
        lab_dir, img_dir = os.path.join(self.root, "label"), os.path.join(self.root, "image")
        os.makedirs(lab_dir, exist_ok=True)
        os.makedirs(img_dir, exist_ok=True)
        for stem, lab in self.labels.items():
            path = os.path.join(lab_dir, stem + ".png")
            if isinstance(lab, bytes):
                open(path, "wb").write(lab)
            elif isinstance(lab, str):
                Image.new("RGB", (W, H)).save(path)
            else:
                Image.fromarray(lab, mode="L").save(path)
        for stem, img in self.images.items():
            path = os.path.join(img_dir, stem + ".jpg")
            if img is None:
                Image.new("RGB", (W, H)).save(path)
            elif isinstance(img, tuple):
                Image.new("RGB", img).save(path)
            elif isinstance(img, bytes):
                open(path, "wb").write(img)
        nj = os.path.join(self.root, "narration.json")
        with open(nj, "wb") as f:
            f.write(self.raw_narr if self.raw_narr is not None else json.dumps(self.narr).encode())
        return lab_dir, img_dir, nj


def narr0(s):
    return s.narr[V1]["narration_pass_1"]["narrations"][0]


def set_narr(**kv):
    def m(s):
        narr0(s).update(kv)
    return m


SKIPS = [
    ("RGB label map", lambda s: s.labels.update({STEM_A: "rgb"}), "label map is not single-channel (mode RGB)", 1, 1),
    ("corrupt label map", lambda s: s.labels.update({STEM_A: b"\x89PNG garbage"}), "unreadable label map", 1, 1),
    ("empty label file", lambda s: s.labels.update({STEM_A: b""}), "unreadable label map", 1, 1),
    ("label map bomb", lambda s: s.labels.update({STEM_A: png_claiming(20000, 20000)}),
     "label map too large (decompression bomb)", 1, 1),
    ("image bomb", lambda s: s.images.update({STEM_A: png_claiming(20000, 20000, 2)}),
     "image too large (decompression bomb)", 1, 1),
    ("corrupt image", lambda s: s.images.update({STEM_A: b"\xff\xd8 nope"}), "unreadable image", 1, 1),
    ("missing image", lambda s: s.images.update({STEM_A: "missing"}), "missing image", 1, 1),
    ("image of another size", lambda s: s.images.update({STEM_A: (W + 1, H)}), "label map and image differ in size",
     1, 1),
    ("name not matching", lambda s: (s.labels.update({"random_name": label_map()}),
                                     s.images.update({"random_name": None})),
     "file name does not match name_pattern", 1, 2),
    ("huge frame number in the name", lambda s: (s.labels.update({f"{V1}_99999999999999999999": label_map()}),
                                                 s.images.update({f"{V1}_99999999999999999999": None})),
     "frame number out of range", 1, 2),
    ("unknown label ids", lambda s: s.labels[STEM_A].__setitem__((0, 0), 200), "unknown label ids > 8 (ignored)", 1, 2),
    ("no hands", lambda s: s.labels.update({STEM_A: np.zeros((H, W), np.uint8)}), None, 0, 2),
    ("frame without narration", lambda s: narr0(s).update(timestamp_frame=5000), "frame without narration", 1, 2),
    ("video not in the narration file", lambda s: setattr(s, "narr", {"other": {}}),
     "video not in the narration file", 2, 2),
    ("#O narration", set_narr(narration_text="#O man X takes a cup"), "#O narration (another person's action) excluded",
     1, 2),
    ("#o lower case", set_narr(narration_text="#o woman Y holds a plate"),
     "#O narration (another person's action) excluded", 1, 2),
    ("pass missing", lambda s: s.narr[V1].pop("narration_pass_1"), "frame without narration", 2, 2),
    ("pass null", lambda s: s.narr[V1].update(narration_pass_1=None), "frame without narration", 2, 2),
    ("timestamp_frame null uses timestamp_sec", set_narr(timestamp_frame=None), None, 0, 2),
]

ERRORS = [
    ("not JSON", lambda s: setattr(s, "raw_narr", b"{"), "narration.json: not valid JSON"),
    ("not UTF-8", lambda s: setattr(s, "raw_narr", b'{"\xff": 1}'), "narration.json: not valid JSON"),
    ("nested too deeply", lambda s: setattr(s, "raw_narr", b"[" * 200000), "narration.json"),
    ("top level a list", lambda s: setattr(s, "narr", []), "narration.json: expected an object"),
    ("video entry a list", lambda s: s.narr.update({V1: []}), f"narration.json: entry of video {V1} is not an object"),
    ("narrations not a list", lambda s: s.narr[V1].update(narration_pass_1={"narrations": {}}),
     "has no 'narrations' list"),
    ("narration entry a string", lambda s: s.narr[V1]["narration_pass_1"].update(narrations=["x"]),
     f"{V1}.narration_pass_1.narrations[0] needs narration_text"),
    ("narration_text null", set_narr(narration_text=None),
     "narrations[0].narration_text must be a string, got NoneType"),
    ("narration_text dict", set_narr(narration_text={"a": 1}), "narration_text must be a string, got dict"),
    ("narration_text number", set_narr(narration_text=5), "narration_text must be a string, got int"),
    ("narration_text list", set_narr(narration_text=["a"]), "narration_text must be a string, got list"),
    ("narration_text missing", lambda s: narr0(s).pop("narration_text"), "narrations[0] needs narration_text"),
    ("timestamp_frame infinite", set_narr(timestamp_frame=float("inf")),
     "narrations[0].timestamp_frame must be a finite"),
    ("timestamp_frame nan", set_narr(timestamp_frame=float("nan")), "timestamp_frame must be a finite"),
    ("timestamp_frame huge", set_narr(timestamp_frame=1e300), "timestamp_frame must be a finite"),
    ("timestamp_frame huge int", set_narr(timestamp_frame=10 ** 30), "timestamp_frame must be a finite"),
    ("timestamp_frame negative", set_narr(timestamp_frame=-3), "timestamp_frame must be a finite"),
    ("timestamp_frame string", set_narr(timestamp_frame="30"), "timestamp_frame must be a finite"),
    ("timestamp_frame bool", set_narr(timestamp_frame=True), "timestamp_frame must be a finite"),
    ("timestamp_sec infinite", set_narr(timestamp_frame=None, timestamp_sec=float("inf")),
     "timestamp_sec must be a finite"),
    ("timestamp_sec huge", set_narr(timestamp_frame=None, timestamp_sec=1e308), "timestamp_sec must be a finite"),
    ("no timestamp", lambda s: (narr0(s).pop("timestamp_frame"), narr0(s).pop("timestamp_sec")), "no timestamp"),
]


def _summary(caplog):
    msg = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(msg) == 1, msg
    return msg[0]


@pytest.mark.parametrize("name,mutate,reason,count,kept", SKIPS, ids=[c[0] for c in SKIPS])
def test_ego4d_bad_input_is_a_counted_skip(tmp_path, caplog, name, mutate, reason, count, kept):
    split = Split(str(tmp_path))
    mutate(split)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        dicts = load_ego4d(*split.write(), window_frames=0, dataset_name="bad")
    assert len(dicts) == kept
    summary = _summary(caplog)
    if reason is None:
        assert "skipped" not in summary, summary
    else:
        assert reason in summary and f"={count}" in summary.split(reason, 1)[1].split(";")[0], summary


@pytest.mark.parametrize("name,mutate,match", ERRORS, ids=[c[0] for c in ERRORS])
def test_ego4d_bad_narration_file_raises_naming_it(tmp_path, name, mutate, match):
    split = Split(str(tmp_path))
    mutate(split)
    with pytest.raises(DataFormatError) as e:
        load_ego4d(*split.write(), window_frames=0)
    assert match in str(e.value) and "narration.json" in str(e.value), str(e.value)


@pytest.mark.parametrize("kwargs,match", [
    (dict(name_pattern=r"^(?P<video>.+)_(?P<frame>\d+)$"), r"lacks the named group\(s\) \['video_uid'\]"),
    (dict(name_pattern=r"^(.+)_(\d+)$"), "lacks the named group"),
    (dict(name_pattern=r"^(?P<video_uid>[a-z"), "is not a regular expression"),
    (dict(name_pattern=None), "is not a regular expression"),
    (dict(fps=0), "fps must be a positive finite number"),
    (dict(fps=float("nan")), "fps must be a positive finite number"),
    (dict(window_frames=-1), "window_frames"),
    (dict(window_frames=1.5), "window_frames"),
], ids=lambda v: str(v)[:40])
def test_ego4d_bad_options(tmp_path, kwargs, match):
    split = Split(str(tmp_path))
    with pytest.raises(DataFormatError, match=match):
        load_ego4d(*split.write(), **kwargs)


def test_pattern_with_non_numeric_frame_group(tmp_path, caplog):
    split = Split(str(tmp_path))
    paths = split.write()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        dicts = load_ego4d(*paths, name_pattern=r"^ego4d_(?P<video_uid>[^_]+)_(?P<frame>.+)$", dataset_name="p")
    assert len(dicts) == 2
    with caplog.at_level(logging.INFO, logger=LOGGER):
        load_ego4d(*paths, name_pattern=r"^(?P<video_uid>ego4d)_(?P<frame>[^_]+)_.*$", dataset_name="q")
    assert "name_pattern group frame is not a number=2" in caplog.records[-1].getMessage()
