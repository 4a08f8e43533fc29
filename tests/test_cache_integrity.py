"""Damage to a completed feature cache: each case is either rebuilt by extraction or refused with an error that names
the file, never read as data (wish_d2/cache/integrity.py)."""
import json
import os
import runpy
import shutil

import pytest
import torch
from detectron2.modeling import build_model

from wish_d2.cache.integrity import CacheIntegrityError
from wish_d2.utils.digest import digest_file
from wish_d2.engine.data import dataset_dicts, ensure_feature_cache, feature_cache_for

from wish_fixtures import register_tiny_dataset, tiny_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "wish_tiny_integrity"
N, SHARD = 10, 4  # three shards: 4 + 4 + 2 images


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    register_tiny_dataset(str(root / "data"), name=NAME, n=N)
    return root


def _cfg(root, cache_dir):
    cfg = tiny_cfg(root / "out", train=NAME)
    cfg.merge_from_list(["MODEL.WISH.CACHE.SHARD_SIZE", str(SHARD), "MODEL.WISH.CACHE.DIR", str(cache_dir)])
    return cfg


@pytest.fixture(scope="module")
def model(tiny):
    return build_model(_cfg(tiny, tiny / "unused")).eval()


@pytest.fixture(scope="module")
def golden(tiny, model):
    cache = ensure_feature_cache(_cfg(tiny, tiny / "golden"), NAME, model)
    assert cache.is_complete(full=True) and cache.verify() == []
    return cache


@pytest.fixture
def cache_copy(tiny, golden, tmp_path):
    cfg = _cfg(tiny, tmp_path / "cache")
    cache = feature_cache_for(cfg, NAME)
    shutil.rmtree(cache.dir)
    shutil.copytree(golden.dir, cache.dir)
    return cfg, cache


def _ids(shard):
    return [str(d["image_id"]) for d in dataset_dicts(NAME)[shard * SHARD:(shard + 1) * SHARD]]


def _count_extract(model, monkeypatch):
    seen, original = [], model.extract

    def extract(batch):
        seen.extend(str(x["image_id"]) for x in batch)
        return original(batch)

    monkeypatch.setattr(model, "extract", extract)
    return seen


# ---- kinds of damage ---------------------------------------------------------------------------------------------
def _truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


def _flip_bytes(path):
    """Same size, a few bytes inverted in the middle (where the tensor data lies)."""
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        chunk = f.read(16)
        f.seek(-len(chunk), 1)
        f.write(bytes(b ^ 0xFF for b in chunk))


def _same_size_garbage(path):
    size = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(os.urandom(size))


def _empty(path):
    open(path, "wb").close()


def _garbage_json(path):
    with open(path, "w") as f:
        f.write('{"key": [1, 2')


def _index_of_another_key(cache):
    with open(cache.index_path) as f:
        index = json.load(f)
    with open(cache.index_path, "w") as f:
        json.dump(dict(index, key="0123456789abcdef"), f)


def _nan_record(cache):
    """A NaN embedding written by a buggy writer that kept the checksums right: only the record check finds it."""
    path = cache.shard_path(1)
    shard = torch.load(path, weights_only=True)
    shard["records"][2]["v"][0, 0] = float("nan")
    torch.save(shard, path)
    digest = digest_file(path)
    sidecar = cache.sidecar_path(path)
    with open(sidecar) as f:
        side = json.load(f)
    with open(sidecar, "w") as f:
        json.dump(dict(side, **digest), f)
    with open(cache.index_path) as f:
        index = json.load(f)
    index["shards"][1] = digest
    with open(cache.index_path, "w") as f:
        json.dump(index, f)


def _shard1(c):
    return c.shard_path(1)


# name, damage, the file the errors must name, found by the cheap check on open (sizes), how a reader meets it,
# shards re-extracted by the repair
CASES = [
    ("truncated_shard", lambda c: _truncate(_shard1(c)), "shard_00001.pt", True, "record", [1]),
    ("flipped_bytes_in_shard", lambda c: _flip_bytes(_shard1(c)), "shard_00001.pt", False, "record", [1]),
    ("missing_shard", lambda c: os.remove(_shard1(c)), "shard_00001.pt", True, "record", [1]),
    ("empty_texts", lambda c: _empty(c.texts_path), "texts.pt", True, "texts", []),
    ("garbage_texts", lambda c: _same_size_garbage(c.texts_path), "texts.pt", False, "texts", []),
    ("truncated_index", lambda c: _truncate(c.index_path), "index.json", True, "record", []),
    ("garbage_index", lambda c: _garbage_json(c.index_path), "index.json", True, "record", []),
    ("index_of_another_key", _index_of_another_key, "index.json", True, "record", []),
    ("nan_record", _nan_record, "shard_00001.pt", False, "record", [1]),
]


@pytest.mark.parametrize("name,damage,file,on_open,reader,rebuilt", CASES, ids=[c[0] for c in CASES])
def test_damage_is_refused_reported_and_rebuilt(cache_copy, model, monkeypatch, name, damage, file, on_open,
                                                reader, rebuilt):
    cfg, cache = cache_copy
    damage(cache)

    # training never reads it: a clear error naming the file and the repair
    fresh = feature_cache_for(cfg, NAME)
    with pytest.raises(CacheIntegrityError, match=file) as err:
        if reader == "texts":
            fresh.load_texts()
        else:
            index = fresh.load_index()
            fresh.record(*index[_ids(1)[2]])
    assert "extract_features.py" in str(err.value)
    if name == "nan_record":
        assert f"image '{_ids(1)[2]}'" in str(err.value) and "'v'" in str(err.value)

    # the cheap check on open finds size damage; --verify finds everything
    assert feature_cache_for(cfg, NAME).is_complete() is not on_open
    problems = feature_cache_for(cfg, NAME).verify()
    assert problems and any(file in p for p in problems), problems

    # repair: the training path (cheap check) for size damage, extract_features (full check) for the rest
    untouched = {k: os.stat(cache.shard_path(k)).st_mtime_ns for k in range(3) if k not in rebuilt}
    seen = _count_extract(model, monkeypatch)
    repaired = ensure_feature_cache(cfg, NAME, model, full_check=not on_open)
    assert seen == [i for k in rebuilt for i in _ids(k)]
    assert {k: os.stat(cache.shard_path(k)).st_mtime_ns for k in untouched} == untouched
    assert repaired.verify() == []
    index = repaired.load_index()
    for i in _ids(1):
        assert torch.isfinite(repaired.record(*index[i])["v"]).all()


def test_verify_tool_reports_damage_and_exits_nonzero(cache_copy, capsys):
    cfg, cache = cache_copy
    tool = runpy.run_path(os.path.join(ROOT, "tools", "extract_features.py"), run_name="extract_features")
    assert tool["verify"](cfg, [NAME]) == 0
    assert f"{NAME}: ok" in capsys.readouterr().out
    _flip_bytes(cache.shard_path(2))
    assert tool["verify"](cfg, [NAME]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "shard_00002.pt" in out and "checksum" in out


def test_verify_tool_reports_a_cache_never_extracted(tiny, tmp_path, capsys):
    tool = runpy.run_path(os.path.join(ROOT, "tools", "extract_features.py"), run_name="extract_features")
    assert tool["verify"](_cfg(tiny, tmp_path / "none"), [NAME]) == 1
    assert "index.json is missing" in capsys.readouterr().out


def test_extract_tool_keeps_overrides_out_of_the_dataset_list():
    tool = runpy.run_path(os.path.join(ROOT, "tools", "extract_features.py"), run_name="extract_features")
    args = tool["parse_args"](["--config-file", "c.yaml", "--datasets", "a", "b", "MODEL.WISH.CACHE.DTYPE",
                               "float16", "SEED", "3"])
    assert args.datasets == ["a", "b"]
    assert args.opts == ["MODEL.WISH.CACHE.DTYPE", "float16", "SEED", "3"]
    args = tool["parse_args"](["--config-file", "c.yaml", "--verify", "--datasets", "a", "--", "SEED", "3"])
    assert args.verify and args.datasets == ["a"] and args.opts == ["SEED", "3"]


def test_rebuilding_removes_the_index_first(cache_copy, model, monkeypatch):
    """Extraction that dies while rebuilding a shard leaves no index: the half-repaired cache never reads as valid."""
    cfg, cache = cache_copy
    _truncate(cache.shard_path(0))

    def die(batch):
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "extract", die)
    with pytest.raises(KeyboardInterrupt):
        ensure_feature_cache(cfg, NAME, model)
    assert not os.path.exists(cache.index_path)
    assert not feature_cache_for(cfg, NAME).is_complete()


def test_extraction_refuses_non_finite_features(tmp_path):
    from wish_d2.cache.store import FeatureCache

    cache = FeatureCache(str(tmp_path), "d", "k", shard_size=2)
    rec = {"image_id": "a", "height": 4, "width": 4, "v": torch.tensor([[float("inf"), 0.0]]),
           "proposal_rles": [{}], "proposal_scores": torch.ones(1), "hand_present": torch.ones(2, dtype=torch.bool),
           "v_hands": torch.zeros(2, 2), "v_contact": torch.zeros(1, 2, 2), "hand_rles": [None, None],
           "geom": torch.zeros(1, 2, 8), "gt_pair_obj": torch.tensor([-1, -1])}
    with pytest.raises(ValueError, match="image 'a', field 'v': non-finite"):
        cache.write_shard(0, [rec])
    assert not os.path.exists(cache.shard_path(0))
