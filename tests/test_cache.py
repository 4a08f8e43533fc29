"""The feature cache (wish_d2/cache): key invalidation, atomic shards, resume, rebuild of bad shards.

Damage to a completed cache is covered by test_cache_integrity.py, storage dtypes and size per frame by
test_cache_storage.py; cached == online features by test_model_wish.py; speed and memory figures live in
tools/benchmark.py (no timing assertions here)."""
import functools
import os
import shutil
import subprocess
import sys

import pytest
import torch
from detectron2.modeling import build_model

from wish_d2.cache.extract import extract_dataset_features, feature_cache_key
from wish_d2.cache.store import FeatureCache
from wish_d2.data.mappers import WISHOnlineMapper
from wish_d2.engine.data import dataset_dicts, ensure_feature_cache, feature_cache_for

from wish_fixtures import register_tiny_dataset, tiny_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "wish_tiny_cache"
N, SHARD = 10, 4  # three shards: 4 + 4 + 2 images (the last one partial)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    register_tiny_dataset(str(root / "data"), name=NAME, n=N)
    return root


def _cfg(root, cache_dir, *opts):
    cfg = tiny_cfg(root / "out", train=NAME)
    cfg.merge_from_list(["MODEL.WISH.CACHE.SHARD_SIZE", str(SHARD), "MODEL.WISH.CACHE.DIR", str(cache_dir),
                         *opts])
    return cfg


@pytest.fixture(scope="module")
def model(tiny):
    return build_model(_cfg(tiny, tiny / "unused")).eval()


@pytest.fixture(scope="module")
def complete(tiny, model):
    """A complete cache, extracted once; tests work on copies of its folder."""
    cfg = _cfg(tiny, tiny / "golden")
    cache = ensure_feature_cache(cfg, NAME, model)
    assert cache.is_complete()
    return cfg, cache


@pytest.fixture
def cache_copy(tiny, complete, tmp_path):
    """(cfg, cache, dicts) of a private copy of the complete cache, under another CACHE.DIR."""
    _, golden = complete
    cfg = _cfg(tiny, tmp_path / "cache")
    cache = feature_cache_for(cfg, NAME)
    assert cache.key == golden.key
    shutil.rmtree(cache.dir)
    shutil.copytree(golden.dir, cache.dir)
    return cfg, cache, dataset_dicts(NAME)


def _ids(dicts, shard):
    return [str(d["image_id"]) for d in dicts[shard * SHARD:(shard + 1) * SHARD]]


def _count_extract(model, monkeypatch):
    """Record the image ids that go through ``model.extract`` (the expensive frozen part)."""
    seen, original = [], model.extract

    def extract(batch):
        seen.extend(str(x["image_id"]) for x in batch)
        return original(batch)

    monkeypatch.setattr(model, "extract", extract)
    return seen


def _extract(model, dicts, cache):
    return extract_dataset_features(model, dicts, WISHOnlineMapper(is_train=False), cache, batch_size=3)


def _mtimes(cache, shards):
    return {k: os.stat(cache.shard_path(k)).st_mtime_ns for k in shards}


def _assert_valid(cache, dicts):
    """Every shard loads, carries the cache key and exactly its images; every index entry reads back."""
    for k in range(cache.num_shards(len(dicts))):
        assert cache.shard_is_complete(k, _ids(dicts, k))
    index = cache.load_index()
    for d in dicts:
        rec = cache.record(*index[str(d["image_id"])])
        assert rec["image_id"] == str(d["image_id"])
        assert torch.isfinite(rec["v"]).all() and torch.isfinite(rec["v_hands"]).all()


# ---- cache key -----------------------------------------------------------------------------------------------
FEATURE_FIELDS = [
    ("MODEL.WISH.CLIP.ENCODER", "SomeOtherEncoder"),
    ("MODEL.WISH.CLIP.MODEL_NAME", "WISH-Tiny-ViT"),
    ("MODEL.WISH.CLIP.PRETRAINED", "/nonexistent/clip_vit_b16.pth"),
    ("MODEL.WISH.CLIP.INIT_SEED", "1"),
    ("MODEL.WISH.CLIP.MASK_SOFT_COVERAGE", "False"),
    ("MODEL.WISH.CLIP.PROMPT", "{noun} held by the {side} hand"),
    ("MODEL.WISH.CLIP.ZERO_SHOT_PROMPT", "something in the {side} hand"),
    ("MODEL.PROPOSAL_GENERATOR.NAME", "SAMProposals"),
    ("MODEL.WISH.PROPOSALS.MAX_PER_IMAGE", "8"),
    ("MODEL.WISH.PROPOSALS.MIN_AREA", "4"),
    ("MODEL.WISH.PROPOSALS.MAX_HAND_FRACTION", "0.9"),
    ("MODEL.WISH.SEGMENTER.NAME", "GSAM"),
    ("MODEL.WISH.SEGMENTER.SAM_TYPE", "vit_h"),
    ("MODEL.WISH.SEGMENTER.SAM_CHECKPOINT", "/nonexistent/sam_vit_h.pth"),
    ("MODEL.WISH.SEGMENTER.POINTS_PER_SIDE", "16"),
    ("MODEL.WISH.SEGMENTER.PRED_IOU_THRESH", "0.5"),
    ("MODEL.WISH.SEGMENTER.STABILITY_SCORE_THRESH", "0.0"),
    ("MODEL.WISH.SEGMENTER.BOX_NMS_THRESH", "0.5"),
    ("MODEL.WISH.SEGMENTER.GDINO_PATH", "/nonexistent/gdino"),
    ("MODEL.WISH.SEGMENTER.BOX_THRESHOLD", "0.4"),
    ("MODEL.WISH.SEGMENTER.TEXT_THRESHOLD", "0.4"),
    ("INPUT.FORMAT", "BGR"),  # the online SAM/GSAM generators read the image in this channel order
    ("MODEL.WISH.HANDS.SOURCE", "precomputed"),
    ("MODEL.WISH.HANDS.SIDE_HEURISTIC", "False"),
    ("MODEL.WISH.HANDS.PRECOMPUTED_FILE", "/nonexistent/hands.json"),
    ("MODEL.WISH.HANDS.DETECTOR_CONFIG", "/nonexistent/hands.yaml"),
    ("MODEL.WISH.HANDS.DETECTOR_WEIGHTS", "/nonexistent/hands.pth"),
    ("MODEL.WISH.HANDS.DILATION", "0.08"),
    ("MODEL.WISH.HANDS.DETECTOR_CLASSES", "['left_hand', 'right_hand']"),  # which detections become hands
    ("MODEL.WISH.HANDS.DETECTOR_SCORE_THRESH", "0.7"),
    ("MODEL.WISH.CLIP.AUTOCAST", "bfloat16"),  # a GPU extraction in bf16 pools other embeddings
    ("MODEL.WISH.CACHE.DTYPE", "float16"),  # stored embeddings differ
]

UNRELATED_FIELDS = [
    ("SOLVER.BASE_LR", "0.5"),
    ("SOLVER.MAX_ITER", "7"),
    ("SOLVER.IMS_PER_BATCH", "3"),
    ("SEED", "123"),
    ("DATALOADER.NUM_WORKERS", "4"),
    ("MODEL.DEVICE", "cuda"),  # extract on a GPU, train on the CPU: same cache
    ("MODEL.WISH.STAGE", "stage1"),
    ("MODEL.WISH.SUPERVISION", "gt"),
    ("MODEL.WISH.METHOD", "contactness_only"),
    ("MODEL.WISH.USE_VISUAL", "False"),  # an ablation of the heads, applied after the cache
    ("MODEL.WISH.ADAPTER.HIDDEN_DIM", "64"),
    ("MODEL.WISH.STAGE2.BASE_LR", "0.01"),
    ("MODEL.WISH.STAGE2.IMS_PER_BATCH", "2"),
    ("MODEL.WISH.PSEUDO.THRESHOLD", "0.3"),
    ("MODEL.WISH.INFERENCE.CONTACT_THRESHOLD", "0.7"),
    ("MODEL.WISH.CACHE.SHARD_SIZE", "2"),  # the index stores positions; resume checks each shard's image list
]


def _key(cfg, dicts=None, proposals_file="props.jsonl"):
    dicts = dataset_dicts(NAME) if dicts is None else dicts
    return feature_cache_key(cfg, NAME, dicts, proposals_file)


@pytest.mark.parametrize("field,value", FEATURE_FIELDS, ids=[f for f, _ in FEATURE_FIELDS])
def test_key_changes_with_every_feature_field(tiny, field, value):
    cfg = _cfg(tiny, tiny / "k")
    base = _key(cfg)
    assert str(functools.reduce(getattr, field.split("."), cfg)) != value  # really a change
    cfg.merge_from_list([field, value])
    assert _key(cfg) != base, f"changing {field} must invalidate the feature cache"


@pytest.mark.parametrize("field,value", UNRELATED_FIELDS, ids=[f for f, _ in UNRELATED_FIELDS])
def test_key_ignores_unrelated_fields(tiny, field, value):
    cfg = _cfg(tiny, tiny / "k")
    base, base_dir = _key(cfg), feature_cache_for(cfg, NAME).dir
    cfg.merge_from_list([field, value])
    assert _key(cfg) == base, f"{field} does not change the features; it must not invalidate the cache"
    assert feature_cache_for(cfg, NAME).dir == base_dir


def test_key_changes_with_dataset_and_proposal_file(tiny, tmp_path):
    cfg = _cfg(tiny, tiny / "k")
    dicts = dataset_dicts(NAME)
    base = _key(cfg, dicts)
    assert _key(cfg, dicts[:-1]) != base  # an image fewer
    assert _key(cfg, [dict(dicts[0], file_name="/elsewhere.png")] + dicts[1:]) != base
    assert _key(cfg, list(reversed(dicts))) != base  # order fixes the shard layout
    # the proposals file enters by path, size and modification time: regenerated proposals invalidate
    props = tmp_path / "props.jsonl"
    props.write_text("{}\n")
    stamp = _key(cfg, dicts, str(props))
    assert stamp != _key(cfg, dicts, "")
    props.write_text("{}\n{}\n")
    assert _key(cfg, dicts, str(props)) != stamp


def test_key_sees_a_rewrite_of_the_proposal_file_within_the_same_second(tiny, tmp_path):
    """Same size, modification times a microsecond apart inside one second: still another key."""
    cfg = _cfg(tiny, tiny / "k")
    dicts = dataset_dicts(NAME)
    props = tmp_path / "props.jsonl"
    props.write_text('{"a": 1}\n')
    second = 1_700_000_000 * 10 ** 9
    os.utime(props, ns=(second + 1000, second + 1000))
    first = _key(cfg, dicts, str(props))
    props.write_text('{"a": 2}\n')  # regenerated proposals of the same size
    os.utime(props, ns=(second + 2000, second + 2000))
    rewritten = _key(cfg, dicts, str(props))
    assert rewritten != first
    os.utime(props, ns=(second + 2000, second + 2000))  # the same stamp again: the same key
    assert _key(cfg, dicts, str(props)) == rewritten


# ---- extraction, resume, bad shards --------------------------------------------------------------------------
def test_extract_writes_shards_then_index(complete):
    cfg, cache = complete
    dicts = dataset_dicts(NAME)
    names = sorted(os.listdir(cache.dir))
    assert names == ["index.json", "shard_00000.json", "shard_00000.pt", "shard_00001.json", "shard_00001.pt",
                     "shard_00002.json", "shard_00002.pt", "texts.json", "texts.pt"]
    _assert_valid(cache, dicts)
    assert [len(torch.load(cache.shard_path(k), weights_only=True)["records"]) for k in range(3)] == [4, 4, 2]


def test_complete_cache_is_not_extracted_again(cache_copy, model, monkeypatch):
    cfg, cache, dicts = cache_copy
    seen = _count_extract(model, monkeypatch)
    before = _mtimes(cache, range(3))
    ensure_feature_cache(cfg, NAME, model)
    assert seen == [] and _mtimes(cache, range(3)) == before


def test_unrelated_change_reuses_the_cache_feature_change_does_not(cache_copy, model, monkeypatch):
    cfg, cache, dicts = cache_copy
    seen = _count_extract(model, monkeypatch)
    cfg.merge_from_list(["SOLVER.BASE_LR", "0.123", "MODEL.WISH.STAGE", "stage2"])
    assert ensure_feature_cache(cfg, NAME, model).dir == cache.dir and seen == []
    cfg.merge_from_list(["MODEL.WISH.HANDS.DILATION", "0.1"])  # (the model is reused: this checks routing only)
    other = ensure_feature_cache(cfg, NAME, model)
    assert other.dir != cache.dir and sorted(seen) == sorted(str(d["image_id"]) for d in dicts)
    _assert_valid(other, dicts)


def test_resume_skips_finished_shards(cache_copy, model, monkeypatch):
    """A run killed after shards 0 and 1 (no shard 2, no index; a leftover temporary file) resumes with shard 2."""
    cfg, cache, dicts = cache_copy
    os.remove(os.path.join(cache.dir, "index.json"))
    os.remove(cache.shard_path(2))
    leftover = os.path.join(cache.dir, ".tmp-k1ll3dshard_00002.pt")
    with open(leftover, "wb") as f:
        f.write(b"PK\x03\x04 half a zip")
    before = _mtimes(cache, (0, 1))
    assert not cache.is_complete()
    seen = _count_extract(model, monkeypatch)
    _extract(model, dicts, cache)
    assert seen == _ids(dicts, 2)
    assert _mtimes(cache, (0, 1)) == before  # finished shards were not rewritten
    assert cache.is_complete()
    _assert_valid(cache, dicts)


def _garbage(path):
    with open(path, "wb") as f:
        f.write(os.urandom(1000))


def _truncated(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


def _empty(path):
    open(path, "wb").close()


def _not_a_shard(path):
    torch.save([1, 2, 3], path)  # loads fine, but is no shard


def _records_without_ids(path):
    torch.save({"format": 1, "key": "x", "records": [{"v": torch.zeros(1)}]}, path)


@pytest.mark.parametrize("damage", [_garbage, _truncated, _empty, _not_a_shard, _records_without_ids])
def test_half_written_shard_is_rebuilt_never_read(cache_copy, model, monkeypatch, damage):
    cfg, cache, dicts = cache_copy
    os.remove(os.path.join(cache.dir, "index.json"))  # killed before the index: the state a resume sees
    damage(cache.shard_path(1))
    assert not cache.shard_is_complete(1, _ids(dicts, 1))
    before = _mtimes(cache, (0, 2))
    seen = _count_extract(model, monkeypatch)
    _extract(model, dicts, cache)
    assert seen == _ids(dicts, 1)
    assert _mtimes(cache, (0, 2)) == before
    _assert_valid(cache, dicts)


def test_shard_of_another_key_or_image_list_is_rebuilt(cache_copy, model, monkeypatch):
    cfg, cache, dicts = cache_copy
    os.remove(os.path.join(cache.dir, "index.json"))
    shard0 = torch.load(cache.shard_path(0), weights_only=True)
    torch.save(dict(shard0, key="0123456789abcdef"), cache.shard_path(0))  # another config's features
    shard2 = torch.load(cache.shard_path(2), weights_only=True)
    torch.save(dict(shard2, records=shard2["records"][:1]), cache.shard_path(2))  # another image list
    assert not cache.shard_is_complete(0, _ids(dicts, 0))
    assert not cache.shard_is_complete(2, _ids(dicts, 2))
    before = _mtimes(cache, (1,))
    seen = _count_extract(model, monkeypatch)
    _extract(model, dicts, cache)
    assert seen == _ids(dicts, 0) + _ids(dicts, 2)
    assert _mtimes(cache, (1,)) == before
    assert torch.load(cache.shard_path(0), weights_only=True)["key"] == cache.key
    _assert_valid(cache, dicts)


def test_failed_shard_write_leaves_nothing(tmp_path):
    """A write that dies half-way leaves neither the shard nor a temporary file behind."""
    cache = FeatureCache(str(tmp_path), "d", "k", shard_size=2)
    with pytest.raises(Exception):
        cache.write_shard(0, [{"image_id": "a", "v": lambda: 0}])  # not serialisable: torch.save fails
    assert os.listdir(cache.dir) == []
    assert not cache.shard_is_complete(0, ["a"])


def test_index_of_another_key_is_refused(cache_copy):
    cfg, cache, dicts = cache_copy
    stranger = FeatureCache(os.path.dirname(cache.dir), "x", "other", SHARD)
    stranger.dir = cache.dir  # same folder, different key
    with pytest.raises(RuntimeError, match="another config"):
        stranger.load_index()


def test_shard_lru_stays_bounded(cache_copy):
    cfg, cache, dicts = cache_copy
    index = cache.load_index()
    for d in dicts + dicts[::-1]:
        cache.record(*index[str(d["image_id"])])
        assert len(cache._open) <= cache._max_open


def test_benchmark_help():
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--help"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "--quick" in run.stdout and "--json" in run.stdout


def test_dataset_dicts_loads_once_and_hands_out_copies(tmp_path):
    from detectron2.data import DatasetCatalog

    calls = []

    def load(tag):
        calls.append(tag)
        return [{"image_id": "a", "annotations": [{"category_id": 0}]}]

    DatasetCatalog.register("wish_tiny_memo", lambda: load("first"))
    try:
        first = dataset_dicts("wish_tiny_memo")
        first[0]["annotations"].append({"category_id": 1})  # a caller's edit must not leak into the next caller
        second = dataset_dicts("wish_tiny_memo")
        assert calls == ["first"]
        assert second[0]["annotations"] == [{"category_id": 0}] and second[0]["dataset_name"] == "wish_tiny_memo"
        DatasetCatalog.remove("wish_tiny_memo")
        DatasetCatalog.register("wish_tiny_memo", lambda: load("second"))  # re-registered: a new loader runs
        dataset_dicts("wish_tiny_memo")
        assert calls == ["first", "second"]
    finally:
        DatasetCatalog.remove("wish_tiny_memo")
