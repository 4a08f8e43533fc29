"""The keyed dataset-dict cache of the VISOR loader: same dicts as a fresh parse, never read under a stale key,
a damaged cache file rebuilt, a vanished image noticed."""
import json
import logging
import os

import pytest

from wish_d2.data import load_epic_visor
from wish_d2.data.visor_frames import VisorFrameParser

from test_bad_inputs_visor import NAME_A, Split


@pytest.fixture
def split(tmp_path):
    s = Split(str(tmp_path / "split"))
    return s.write()


def _no_parse(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("parsed although a valid cache exists")
    monkeypatch.setattr(VisorFrameParser, "parse", boom)


def _cache_files(cache):
    return sorted(os.listdir(cache)) if os.path.isdir(cache) else []


def test_cache_gives_the_same_dicts_without_parsing(split, tmp_path, monkeypatch, caplog):
    cache = str(tmp_path / "cache")
    fresh = load_epic_visor(*split)
    first = load_epic_visor(*split, cache_dir=cache, dataset_name="c")
    assert first == fresh and len(_cache_files(cache)) == 1
    _no_parse(monkeypatch)
    with caplog.at_level(logging.INFO, logger="wish_d2.data.visor"):
        again = load_epic_visor(*split, cache_dir=cache, dataset_name="c")
    assert again == fresh
    assert json.dumps(again) == json.dumps(fresh)  # same key order and types (BoxMode restored)
    assert [type(a["bbox_mode"]) for d in again for a in d["annotations"]] == \
        [type(a["bbox_mode"]) for d in fresh for a in d["annotations"]]
    assert "[c] loaded 2 frames" in caplog.records[-1].getMessage()


def test_changed_input_or_option_is_a_new_key(split, tmp_path):
    ann, img, csv_path = split
    cache = str(tmp_path / "cache")
    load_epic_visor(*split, cache_dir=cache)
    load_epic_visor(*split, cache_dir=cache, frame_margin=5)
    assert len(_cache_files(cache)) == 2
    with open(csv_path, "a") as f:  # a narration for frame 456 that was not there before
        f.write("P01_01_9,P01,P01_01,,,,450,460,stir pan,stir,2,pan,9,['pan'],[9]\n")
    d = load_epic_visor(*split, cache_dir=cache)
    assert "stir pan" in d[1]["narrations"] and len(_cache_files(cache)) == 3


def test_skip_counts_survive_the_cache(tmp_path, caplog):
    s = Split(str(tmp_path / "split"))
    s.images[NAME_A] = "missing"
    paths = s.write()
    cache = str(tmp_path / "cache")
    load_epic_visor(*paths, cache_dir=cache, dataset_name="s")
    with caplog.at_level(logging.INFO, logger="wish_d2.data.visor"):
        assert len(load_epic_visor(*paths, cache_dir=cache, dataset_name="s")) == 1
    assert "missing image=1" in caplog.records[-1].getMessage()


@pytest.mark.parametrize("damage", [b"", b"{", b'{"format": "wish-dataset-dicts", "key": "x", "dicts": []}',
                                    b'{"format": "wish-dataset-dicts", "dicts": 5}', b"[]"])
def test_damaged_cache_is_rebuilt_not_trusted(split, tmp_path, damage, caplog):
    cache = str(tmp_path / "cache")
    fresh = load_epic_visor(*split, cache_dir=cache)
    path = os.path.join(cache, _cache_files(cache)[0])
    with open(path, "wb") as f:
        f.write(damage)
    with caplog.at_level(logging.WARNING, logger="wish_d2.data.dict_cache"):
        assert load_epic_visor(*split, cache_dir=cache) == fresh
    assert "unusable dataset cache" in caplog.text
    assert load_epic_visor(*split, cache_dir=cache) == fresh  # and written again, whole
    with open(path) as f:
        assert len(json.load(f)["dicts"]) == 2


def test_vanished_image_forces_a_rebuild(split, tmp_path):
    ann, img, csv_path = split
    cache = str(tmp_path / "cache")
    assert len(load_epic_visor(*split, cache_dir=cache)) == 2
    os.remove(os.path.join(img, "P01_01", NAME_A))
    assert len(load_epic_visor(*split, cache_dir=cache)) == 1
