"""Sparse storage of ``v_contact`` (wish_d2/cache/codec.py): per hand one default row, a mask of the rows that
differ, and only those rows. Decoding must give back the extracted tensor bit for bit in float32, and exactly what
dense storage gives in float16 and int8, whatever the records hold."""
import pytest
import torch

from wish_d2.cache.codec import DTYPES, decode_tensor, encode_field, encode_tensor, split_defaults
from wish_d2.cache.integrity import CacheIntegrityError, record_problems
from wish_d2.cache.store import FeatureCache

N, D = 6, 8


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous().view(torch.int32)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))


def _contacts(kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    empty = torch.randn(2, D, generator=g)  # the CLS-only vector an empty contact zone pools, per hand
    x = empty.unsqueeze(0).repeat(N, 1, 1)
    if kind == "none_empty":
        x = torch.randn(N, 2, D, generator=g)
    elif kind == "mixed":
        x[1, 0] = torch.randn(D, generator=g)
        x[4, 1] = torch.randn(D, generator=g)
        x[5, 1] = empty[1] + 1e-7  # one ulp-scale difference: a different row, never merged
    elif kind == "absent_hand":
        x[:, 1] = 0.0
        x[2, 1, 3] = -0.0  # -0.0 == 0.0 as values, but not as bits: kept as its own row
        x[3, 0] = torch.randn(D, generator=g)
    elif kind == "empty_n":
        x = torch.zeros(0, 2, D)
    return x


KINDS = ["all_empty", "none_empty", "mixed", "absent_hand", "empty_n"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_is_bit_exact(kind, dtype):
    x = _contacts(kind)
    stored = encode_field("v_contact", x, dtype)
    dense = decode_tensor(encode_tensor(x, dtype))
    assert _same_bits(decode_tensor(stored), dense)  # sparse storage adds no error of its own
    if dtype == "float32":
        assert _same_bits(decode_tensor(stored), x)
    sparse = isinstance(stored, dict) and "differs" in stored
    assert sparse == (kind in ("all_empty", "mixed", "absent_hand")), kind  # dense when nothing repeats


def test_only_differing_rows_are_kept():
    split = split_defaults(_contacts("mixed"))
    assert split is not None
    default, differs = split
    assert differs.nonzero().tolist() == [[1, 0], [4, 1], [5, 1]]
    assert _same_bits(default, _contacts("all_empty")[0])
    _, differs = split_defaults(_contacts("absent_hand"))
    assert differs[:, 1].nonzero().flatten().tolist() == [2]  # only the -0.0 row differs from the zeros
    assert split_defaults(_contacts("all_empty"))[1].sum() == 0


def _record(i, v_contact):
    n = v_contact.shape[0]
    g = torch.Generator().manual_seed(i)
    return {"image_id": f"img{i}", "height": 20, "width": 30, "v": torch.randn(n, D, generator=g),
            "proposal_rles": [{"size": [20, 30], "counts": "0"}] * n, "proposal_scores": torch.rand(n, generator=g),
            "hand_present": torch.tensor([True, True]), "v_hands": torch.randn(2, D, generator=g),
            "v_contact": v_contact, "hand_rles": [], "geom": torch.rand(n, 2, 4, generator=g),
            "gt_pair_obj": torch.tensor([0, -1])}


@pytest.mark.parametrize("dtype", DTYPES)
def test_cache_round_trip_of_every_kind(tmp_path, dtype):
    records = [_record(i, _contacts(k)) for i, k in enumerate(KINDS)]
    cache = FeatureCache(str(tmp_path), "d", "k", shard_size=len(records), dtype=dtype)
    cache.write_shard(0, records)
    cache.write_texts([], torch.zeros(0, 2, D), torch.zeros(2, D))
    cache.finalize([r["image_id"] for r in records])
    index = cache.load_index()
    for rec in records:
        got = cache.record(*index[rec["image_id"]])
        assert _same_bits(got["v_contact"], decode_tensor(encode_tensor(rec["v_contact"], dtype)))
        if dtype == "float32":
            assert all(_same_bits(got[f], rec[f]) for f in ("v", "v_hands", "v_contact", "geom"))


def test_inconsistent_sparse_form_is_refused(tmp_path):
    rec = _record(0, _contacts("mixed"))
    stored = dict(rec, v_contact=encode_field("v_contact", rec["v_contact"], "float32"))
    stored["v_contact"]["differs"] = stored["v_contact"]["differs"].clone()
    stored["v_contact"]["differs"][0, 0] = True  # one more differing row than rows stored
    problems = record_problems(stored, "shard_00000.pt")
    assert problems and "'v_contact'" in problems[0] and "inconsistent" in problems[0]
    nan = dict(rec, v_contact=encode_field("v_contact", rec["v_contact"], "float32"))
    nan["v_contact"]["rows"][0, 0] = float("nan")
    assert any("non-finite" in p for p in record_problems(nan, "shard_00000.pt"))


def test_damaged_sparse_record_is_refused_on_read(tmp_path):
    """A shard whose sparse form was written inconsistent (bytes match their checksum) never reads as data."""
    rec = _record(0, _contacts("mixed"))
    cache = FeatureCache(str(tmp_path), "d", "k", shard_size=1)
    stored = dict(rec, v_contact=encode_field("v_contact", rec["v_contact"], "float32"))
    stored["v_contact"]["rows"] = stored["v_contact"]["rows"][:1]
    from wish_d2.cache import store

    cache._write_checked(cache.shard_path(0), {"format": store.FORMAT, "key": cache.key, "dtype": "float32",
                                               "records": [stored]}, {"image_ids": ["img0"]})
    cache.write_texts([], torch.zeros(0, 2, D), torch.zeros(2, D))
    cache.finalize(["img0"])
    with pytest.raises(CacheIntegrityError, match="shard_00000.pt.*v_contact.*inconsistent"):
        cache.record(0, 0)
    assert cache.verify()


def test_real_extraction_round_trips_exactly(tmp_path):
    """Records of ``WISH.extract`` (tiny model) read back from a float32 cache bit for bit, stored sparsely where
    contact zones are empty."""
    from detectron2.modeling import build_model

    from wish_d2.data.mappers import WISHOnlineMapper
    from wish_d2.engine.data import dataset_dicts
    from wish_fixtures import register_tiny_dataset, tiny_cfg

    register_tiny_dataset(str(tmp_path / "data"), name="wish_tiny_sparse", n=4)
    torch.manual_seed(0)
    model = build_model(tiny_cfg(tmp_path / "out", train="wish_tiny_sparse")).eval()
    with torch.no_grad():
        records = model.extract([WISHOnlineMapper(is_train=False)(d) for d in dataset_dicts("wish_tiny_sparse")])
    cache = FeatureCache(str(tmp_path / "cache"), "d", "k", shard_size=len(records))
    cache.write_shard(0, records)
    cache.write_texts([], torch.zeros(0, 2, D), torch.zeros(2, D))
    cache.finalize([r["image_id"] for r in records])
    index = cache.load_index()
    sparse = 0
    for rec in records:
        sparse += split_defaults(rec["v_contact"]) is not None
        got = cache.record(*index[rec["image_id"]])
        assert set(got) == set(rec)
        for field, value in rec.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                assert _same_bits(got[field], value.float()), field
            elif isinstance(value, torch.Tensor):
                assert torch.equal(got[field], value), field
            else:
                assert got[field] == value, field
    assert sparse > 0  # the tiny frames have proposals away from the hands
