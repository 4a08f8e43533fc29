"""Table-driven bad inputs for the proposals JSON-lines store and the RLE checks in front of pycocotools."""
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest

from wish_d2.data import ProposalStore
from wish_d2.utils.masks import check_rle, encode_rle, polygon_problem, polygons_to_rle

H, W = 8, 10


def m(x0, y0, x1, y1, h=H, w=W):
    a = np.zeros((h, w), bool)
    a[y0:y1, x0:x1] = True
    return encode_rle(a)


def good():
    return {"image_id": "img1", "height": H, "width": W, "masks": [m(0, 0, 4, 4), m(2, 2, 8, 6)], "scores": [0.9, 0.4]}


def write(tmp_path, lines):
    p = tmp_path / "props.jsonl"
    p.write_bytes(b"".join((l if isinstance(l, bytes) else json.dumps(l).encode()) + b"\n" for l in lines))
    return str(p)


def rec_with(**kv):
    r = good()
    r.update(kv)
    return r


def masks_with(i, value):
    r = good()
    r["masks"][i] = value
    return r


# record errors found by get(): (name, record, substring); every message names the file, line and image
GET_ERRORS = [
    ("masks of mixed sizes", masks_with(1, m(0, 0, 2, 2, H + 2, W)), "masks[1]: RLE field size [10, 10] differs"),
    ("garbage RLE counts", masks_with(0, {"size": [H, W], "counts": "\x7f\x7f"}), "masks[0]: counts has characters"),
    ("RLE counts too short", masks_with(0, {"size": [H, W], "counts": "42"}), "masks[0]: RLE field counts covers"),
    ("RLE counts not ASCII", masks_with(0, {"size": [H, W], "counts": "é"}), "masks[0]: counts is not an ASCII"),
    ("RLE counts a number", masks_with(0, {"size": [H, W], "counts": 5}), "masks[0]: RLE field counts must be"),
    ("RLE list counts wrong", masks_with(0, {"size": [H, W], "counts": [1, 2, 3]}),
     "masks[0]: RLE field counts covers"),
    ("RLE without size", masks_with(0, {"counts": "42"}), "masks[0]: RLE field size"),
    ("RLE size of floats", masks_with(0, {"size": [8.0, 10.0], "counts": "42"}), "masks[0]: RLE field size"),
    ("null mask", masks_with(0, None), "masks[0]: mask must be an RLE object, got NoneType"),
    ("mask a list", masks_with(0, [[0, 1]]), "masks[0]: mask must be an RLE object, got list"),
    ("null score", rec_with(scores=[None, 0.4]), "scores[0] must be a finite number, got None"),
    ("NaN score", rec_with(scores=[float("nan"), 0.4]), "scores[0] must be a finite number, got nan"),
    ("infinite score", rec_with(scores=[0.1, float("inf")]), "scores[1] must be a finite number"),
    ("string score", rec_with(scores=["0.9", 0.4]), "scores[0] must be a finite number"),
    ("bool score", rec_with(scores=[True, 0.4]), "scores[0] must be a finite number"),
    ("more scores than masks", rec_with(scores=[0.9, 0.4, 0.1]), "2 masks but 3 scores"),
    ("masks not a list", rec_with(masks={"a": 1}), "masks and scores must be lists"),
    ("scores null", rec_with(scores=None), "masks and scores must be lists"),
    ("height zero", rec_with(height=0), "height/width must be integers"),
    ("width a string", rec_with(width="10"), "height/width must be integers"),
    ("height huge", rec_with(height=10 ** 9), "height/width must be integers"),
    ("missing scores", {k: v for k, v in good().items() if k != "scores"}, "lacks ['scores']"),
]

# file errors found when the store opens the file: (name, lines, substring)
OPEN_ERRORS = [
    ("non-UTF-8 line", [good(), b'{"image_id": "\xff\xfe"}'], "props.jsonl:2: not UTF-8 text"),
    ("malformed JSON line", [good(), b'{"image_id": '], "props.jsonl:2: malformed proposal record"),
    ("line is a list", [b"[1, 2]"], "props.jsonl:1: field image_id must be"),
    ("image_id missing", [{"height": H}], "props.jsonl:1: field image_id must be"),
    ("image_id null", [rec_with(image_id=None)], "props.jsonl:1: field image_id must be"),
    ("image_id a dict", [rec_with(image_id={"a": 1})], "props.jsonl:1: field image_id must be"),
    ("image listed twice", [good(), good()], "props.jsonl:2: image 'img1' already has proposals on line 1"),
    ("image listed twice as int and str", [rec_with(image_id=5), rec_with(image_id="5")], "already has proposals"),
    ("nested too deeply", [b"[" * 200000], "props.jsonl:1: malformed proposal record"),
]


@pytest.mark.parametrize("name,rec,match", GET_ERRORS, ids=[c[0] for c in GET_ERRORS])
def test_bad_record_raises_naming_file_line_image_field(tmp_path, name, rec, match):
    store = ProposalStore(write(tmp_path, [{"image_id": "other", "height": H, "width": W, "masks": [], "scores": []},
                                           rec]))
    with pytest.raises(ValueError) as e:
        store.get("img1")
    msg = str(e.value)
    assert "props.jsonl:2 (image 'img1')" in msg and match in msg, msg


@pytest.mark.parametrize("name,lines,match", OPEN_ERRORS, ids=[c[0] for c in OPEN_ERRORS])
def test_bad_file_raises_on_open(tmp_path, name, lines, match):
    with pytest.raises(ValueError) as e:
        ProposalStore(write(tmp_path, lines))
    assert match in str(e.value), str(e.value)


def test_valid_edge_cases(tmp_path, caplog):
    store = ProposalStore(write(tmp_path, [good(), rec_with(image_id=3, masks=[], scores=[]), b"", b"   "]))
    assert len(store) == 2
    assert store.get("img1")["scores"] == [0.9, 0.4]
    assert store.get(3)["masks"] == []  # zero proposals is a valid record
    assert store.get("absent") == {"image_id": "absent", "masks": [], "scores": []}
    assert "no proposals for image absent" in caplog.text


# The RLE check must agree with pycocotools on every valid mask, and catch what would make it misbehave.
def test_check_rle_accepts_every_valid_mask_unchanged():
    rng = np.random.default_rng(0)
    for t in range(200):
        h, w = rng.integers(1, 40, 2)
        a = rng.random((h, w)) < rng.random()
        r = encode_rle(a)
        assert check_rle(r, h, w) == r
        assert check_rle({"size": [int(h), int(w)], "counts": r["counts"].encode()}, h, w) == r
    # uncompressed counts are turned into the compressed form
    a = np.zeros((H, W), bool)
    a[:, :3] = True
    runs = [0, 3 * H, (W - 3) * H]
    assert check_rle({"size": [H, W], "counts": runs}) == encode_rle(a)


@pytest.mark.parametrize("counts", ["", "0", "1", "`", "o" * 8, "P", "0P", "1_", "}}}}"])
def test_check_rle_never_lets_an_inconsistent_string_through(counts):
    """Either the check rejects the string, or pycocotools decodes it to exactly H*W pixels."""
    try:
        r = check_rle({"size": [H, W], "counts": counts})
    except ValueError:
        return
    assert mask_util.decode({"size": [H, W], "counts": r["counts"].encode()}).shape == (H, W)
    assert int(mask_util.area({"size": [H, W], "counts": r["counts"].encode()})) <= H * W


@pytest.mark.parametrize("poly,problem", [
    ([0, 0, 5, 0, 5, 5], None),
    ([0, 0, 5, 0], "degenerate"),
    ([0, 0, 5, 0, 5], "degenerate"),
    ([0, 0, 5, float("nan"), 5, 5], "non-finite"),
    ([0, 0, 5, float("-inf"), 5, 5], "non-finite"),
    ([0, 0, 1e9, 0, 5, 5], "out of range"),
    ([0, 0, "a", 0, 5, 5], "non-numeric"),
    ([0, 0, [1], 0, 5, 5], "non-numeric"),
    ([20, 20, 25, 20, 25, 25], "outside the image"),
    ([-5, 0, -1, 0, -1, 5], "outside the image"),
])
def test_polygon_problem(poly, problem):
    got = polygon_problem(poly, H, W)
    assert (got is None) if problem is None else (problem in got)


def test_polygons_to_rle_refuses_what_pycocotools_cannot_take():
    for bad in ([0, 0, float("nan"), 0, 5, 5], [0, 0, 1e9, 0, 5, 5]):
        with pytest.raises(ValueError):
            polygons_to_rle([bad], H, W)
    assert polygons_to_rle([[-2, -2, 5, -2, 5, 5]], H, W)["size"] == [H, W]  # partly outside is fine
