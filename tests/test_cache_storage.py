"""Storage dtypes of cached embeddings (wish_d2/cache/codec.py) and the cache's size per frame at real scale."""
import pytest
import torch

from wish_d2.cache.codec import DTYPES, check_dtype, decode_record, encode_record
from cache_records import shard_kb_per_frame, synthetic_records
from wish_d2.cache.store import FeatureCache

# dtype -> the largest error allowed, relative to the largest magnitude of the vector
TOLERANCE = {"float32": 0.0, "float16": 2.0 ** -11, "int8": 1.0 / 254}


def _shard_roundtrip(tmp_path, records, dtype):
    cache = FeatureCache(str(tmp_path), "d", "k", shard_size=len(records), dtype=dtype)
    cache.write_shard(0, records)
    cache.write_texts([], torch.zeros(0, 2, 4), torch.zeros(2, 4))
    cache.finalize([r["image_id"] for r in records])
    index = cache.load_index()
    return [cache.record(*index[r["image_id"]]) for r in records]


@pytest.mark.parametrize("dtype", DTYPES)
def test_records_read_back_as_float32_within_the_dtype_error(tmp_path, dtype):
    records = synthetic_records(2, num_proposals=5, dim=16, height=40, width=60)
    records[0]["v"][0] *= 1000.0  # a large vector: the bound is relative to each vector's own scale
    records[1]["v_contact"][1, 0] = 0.0  # an all-zero vector stays exactly zero
    back = _shard_roundtrip(tmp_path, records, dtype)
    for rec, got in zip(records, back):
        for field in ("v", "v_contact", "v_hands"):
            assert got[field].dtype == torch.float32 and got[field].shape == rec[field].shape
            bound = TOLERANCE[dtype] * rec[field].abs().amax(dim=-1, keepdim=True)
            assert ((got[field] - rec[field]).abs() <= bound).all(), field
        assert torch.equal(got["geom"], rec["geom"]) and got["proposal_rles"] == rec["proposal_rles"]
    assert (back[1]["v_contact"][1, 0] == 0).all()
    if dtype == "float32":
        assert all(torch.equal(g["v"], r["v"]) for g, r in zip(back, records))  # exact: the default is lossless
    else:
        assert not torch.equal(back[0]["v"], records[0]["v"])  # really stored smaller


def test_float16_overflow_is_refused_with_the_way_out(tmp_path):
    records = synthetic_records(1, num_proposals=2, dim=4, height=20, width=20)
    records[0]["v_hands"][0, 0] = 1e6  # beyond float16's range
    cache = FeatureCache(str(tmp_path), "d", "k", dtype="float16")
    with pytest.raises(ValueError, match="'v_hands'.*float16.*DTYPE float32"):
        cache.write_shard(0, records)
    FeatureCache(str(tmp_path), "d", "k", dtype="float32").write_shard(0, records)


def test_unknown_dtype_is_refused(tmp_path):
    with pytest.raises(ValueError, match="CACHE.DTYPE must be one of float32, float16, int8"):
        check_dtype("bfloat8")
    with pytest.raises(ValueError, match="CACHE.DTYPE"):
        FeatureCache(str(tmp_path), "d", "k", dtype="half")


def test_stored_embeddings_are_compact_copies():
    """A slice of a larger tensor (as WISH.extract pools all masks at once) must not drag its whole storage along."""
    pooled = torch.randn(10, 8)
    stored = encode_record({"v": pooled[:2], "v_hands": pooled[2:4], "v_contact": pooled[4:8].reshape(2, 2, 8)},
                           "float32")
    assert all(t.untyped_storage().nbytes() == t.numel() * 4 for t in stored.values())
    assert torch.equal(decode_record(stored)["v"], pooled[:2])


def test_cache_size_per_frame_n64_vitb16():
    """N=64 proposals, ViT-B/16 (D=512), 1080p RLE masks, 40% of the contact zones non-empty: float16 meets
    200 KB (the dtype of configs/wish_epic.yaml); the repeated v_contact rows are stored once."""
    records = synthetic_records(4, num_proposals=64, dim=512)
    kb = {dtype: shard_kb_per_frame(records, dtype) for dtype in DTYPES}
    assert kb["float32"] > 1.8 * kb["float16"] - 40  # the embeddings halve; RLEs and geometry stay
    assert kb["float16"] < 0.6 * kb["float32"]
    assert kb["int8"] < kb["float16"] <= 200
    dense = shard_kb_per_frame(synthetic_records(4, num_proposals=64, dim=512, contact_fraction=1.0), "float16")
    saved_rows = 4 * 2 * (64 - round(0.4 * 64) - 1)  # every repeat of a default row, per frame and hand
    assert dense - kb["float16"] > 0.9 * saved_rows * 512 * 2 / 1000 / 4


def test_dtype_is_a_checked_choice_and_the_defaults(tmp_path):
    from detectron2.config import get_cfg

    from wish_d2 import add_wish_config
    from wish_d2.config_validation import ConfigError, validate_wish_config
    from wish_fixtures import tiny_cfg

    cfg = get_cfg()
    add_wish_config(cfg)
    assert cfg.MODEL.WISH.CACHE.DTYPE == "float32"  # the default stays exact
    cfg = tiny_cfg(tmp_path / "out")
    cfg.merge_from_list(["MODEL.WISH.CACHE.DTYPE", "half"])
    with pytest.raises(ConfigError, match="CACHE.DTYPE='half'.*float32.*float16.*int8"):
        validate_wish_config(cfg)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_cached_equals_online_within_the_storage_error(tmp_path, dtype):
    """The exact cached == online test (test_model_wish.py) runs on the float32 default; a smaller storage differs
    from the online features by at most its rounding bound, and nothing else changes."""
    from detectron2.modeling import build_model

    from wish_d2.data.mappers import WISHOnlineMapper
    from wish_d2.engine.data import dataset_dicts, ensure_feature_cache
    from wish_fixtures import register_tiny_dataset, tiny_cfg

    register_tiny_dataset(str(tmp_path / "data"), name="wish_tiny_storage", n=3)
    cfg = tiny_cfg(tmp_path / "out", train="wish_tiny_storage")
    cfg.merge_from_list(["MODEL.WISH.CACHE.DTYPE", dtype, "MODEL.WISH.CACHE.DIR", str(tmp_path / "cache")])
    model = build_model(cfg).eval()
    cache = ensure_feature_cache(cfg, "wish_tiny_storage", model)
    index = cache.load_index()
    online = model.extract([WISHOnlineMapper(is_train=False)(d) for d in dataset_dicts("wish_tiny_storage")])
    for rec in online:
        cached = cache.record(*index[rec["image_id"]])
        for field in ("v", "v_contact", "v_hands"):
            bound = TOLERANCE[dtype] * rec[field].abs().amax(dim=-1, keepdim=True) + 1e-6  # + extraction noise
            assert ((cached[field] - rec[field]).abs() <= bound).all(), field
        assert torch.equal(cached["geom"], rec["geom"]) and cached["proposal_rles"] == rec["proposal_rles"]
        assert torch.equal(cached["proposal_scores"], rec["proposal_scores"])
