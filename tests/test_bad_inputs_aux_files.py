"""Table-driven bad auxiliary files: the precomputed hands file, the pseudo-label file and the synonym map. Each
bad file raises one error naming the file (and the image and field); a file that matches no image of the dataset
is an error, partial coverage a logged count."""
import json
import logging

import numpy as np
import pytest
import torch

from wish_d2.data.common import DataFormatError
from wish_d2.data.mappers import WISHCachedMapper
from wish_d2.data.narrations import load_synonyms
from wish_d2.engine.pseudo_label_file import load_pseudo_labels
from wish_d2.modeling.hands import PrecomputedHands
from wish_d2.utils.masks import encode_rle

H, W = 8, 10


def _mask(h=H, w=W):
    m = np.zeros((h, w), bool)
    m[4:, :3] = True
    return m


def _hand(side="left", **kv):
    return {"segmentation": encode_rle(_mask()), "side": side, **kv}


def _write(tmp_path, name, content):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    elif isinstance(content, str):
        p.write_text(content)
    else:
        p.write_text(json.dumps(content))
    return str(p)


# ---- precomputed hands: refused when the file is opened -----------------------------------------------------------
HANDS_OPEN_CASES = [
    ("not json", b"{oops", "not a readable JSON file"),
    ("not utf-8", b"\xff\xfe{}", "not a readable JSON file"),
    ("a list", [1, 2], "must be a JSON object mapping image_id"),
    ("hands not a list", {"img": {"segmentation": 1}}, r"image 'img'.*must be a list of hands"),
    ("hand not an object", {"img": ["left"]}, r"hands\[0\] must be an object"),
    ("no segmentation", {"img": [{"side": "left"}]}, r"hands\[0\] must be an object with a \"segmentation\""),
    ("unknown side", {"img": [_hand("middle")]}, r"hands\[0\]\.side must be 'left', 'right' or null"),
    ("text score", {"img": [dict(_hand("left"), score="0.9")]}, r"hands\[0\]\.score must be a finite number"),
    ("boolean score", {"img": [dict(_hand("left"), score=True)]}, r"hands\[0\]\.score must be a finite number"),
    ("side not a string", {"img": [_hand(1)]}, r"hands\[0\]\.side"),
    ("segmentation a list", {"img": [{"segmentation": [[0, 0, 1, 1]], "side": "left"}]},
     r"hands\[0\]\.segmentation: mask must be an RLE object"),
    ("garbage counts", {"img": [{"segmentation": {"size": [H, W], "counts": "\x7f\x7f"}, "side": None}]},
     "outside the COCO RLE alphabet"),
    ("counts not covering the size", {"img": [{"segmentation": {"size": [H, W], "counts": [3, 4]}, "side": None}]},
     "covers 7 pixels"),
    ("huge size", {"img": [{"segmentation": {"size": [1000000, 1000000], "counts": [10 ** 12]}, "side": None}]},
     "outside 1..32768"),
    ("float size", {"img": [{"segmentation": {"size": [1e6, 1e6], "counts": "0"}, "side": None}]},
     "must be \\[height, width\\] integers"),
]


@pytest.mark.parametrize("name,content,match", HANDS_OPEN_CASES, ids=[c[0] for c in HANDS_OPEN_CASES])
def test_bad_hands_file_is_refused_on_open(tmp_path, name, content, match):
    path = _write(tmp_path, "hands.json", content)
    with pytest.raises(DataFormatError, match=match) as e:
        PrecomputedHands(path)
    assert path in str(e.value) and "\n" not in str(e.value)


def test_missing_hands_file_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="PRECOMPUTED_FILE"):
        PrecomputedHands(str(tmp_path / "nowhere.json"))


def test_hands_mask_of_another_size_is_refused_at_lookup(tmp_path):
    big = {"segmentation": encode_rle(_mask(2 * H, 2 * W)), "side": "left"}
    path = _write(tmp_path, "hands.json", {"img": [big]})
    source = PrecomputedHands(path)
    with pytest.raises(DataFormatError, match=rf"image 'img'.*16x20, the image is {H}x{W}") as e:
        source([{"image_id": "img", "height": H, "width": W}])
    assert path in str(e.value)


def test_valid_hands_file_gives_the_masks(tmp_path):
    path = _write(tmp_path, "hands.json", {"img": [_hand("left"), _hand(None)], "empty": []})
    (masks, present), (_, none) = PrecomputedHands(path)([{"image_id": "img", "height": H, "width": W},
                                                          {"image_id": "empty", "height": H, "width": W}])
    assert present.tolist() == [True, False] and masks[0].sum() == _mask().sum() and not none.any()


@pytest.mark.parametrize("ids,error,missing", [
    (["other_0", "other_1"], True, None),  # ids of another dataset: no image would get hands
    (["img", "other_1", "other_2"], False, 2),  # partial: counted and logged
    (["img"], False, 0),
])
def test_hands_file_coverage(tmp_path, caplog, ids, error, missing):
    path = _write(tmp_path, "hands.json", {"img": [_hand()]})
    source = PrecomputedHands(path)
    if error:
        with pytest.raises(DataFormatError, match="none of its 1 image ids is an image of dataset ds"):
            source.check_coverage(ids, "ds")
        return
    with caplog.at_level(logging.WARNING):
        assert source.check_coverage(ids, "ds") == missing
    assert (f"{missing} of {len(ids)} images of ds have no entry" in caplog.text) == bool(missing)


# ---- pseudo-label file --------------------------------------------------------------------------------------------
def _labels(**entries):
    return {"threshold": 0.5, "labels": entries or {"img": {"objects": [0, -1], "scores": [0.9, 0.0]}}}


PSEUDO_CASES = [
    ("not json", "{", "not a readable JSON file"),
    ("a list", [1], "must be an object with a \"labels\" object"),
    ("no labels", {"threshold": 0.5}, "must be an object with a \"labels\" object"),
    ("labels a list", {"labels": [[0, 1]]}, "must be an object with a \"labels\" object"),
    ("entry not an object", _labels(img=[0, 1]), r"image 'img'.*\"objects\" must be \[left, right\]"),
    ("no objects", _labels(img={"scores": [1, 1]}), r"\"objects\" must be"),
    ("one object", _labels(img={"objects": [0]}), r"\"objects\" must be"),
    ("string index", _labels(img={"objects": ["0", -1]}), r"\"objects\" must be"),
    ("float index", _labels(img={"objects": [0.5, -1]}), r"\"objects\" must be"),
    ("bool index", _labels(img={"objects": [True, -1]}), r"\"objects\" must be"),
    ("below -1", _labels(img={"objects": [-2, 0]}), r"\"objects\" must be"),
]


@pytest.mark.parametrize("name,content,match", PSEUDO_CASES, ids=[c[0] for c in PSEUDO_CASES])
def test_bad_pseudo_label_file(tmp_path, name, content, match):
    path = _write(tmp_path, "pseudo_labels.json", content)
    with pytest.raises(DataFormatError, match=match) as e:
        load_pseudo_labels(path)
    assert path in str(e.value)


def test_pseudo_label_coverage_and_indices(tmp_path, caplog):
    labels = load_pseudo_labels(_write(tmp_path, "p.json", _labels(a={"objects": [0, 2]}, b={"objects": [-1, 1]})))
    with pytest.raises(DataFormatError, match="none of its 2 pseudo-labels is for an image of ds"):
        labels.coverage(["x", "y"], "ds")
    with caplog.at_level(logging.WARNING):
        assert labels.coverage(["a", "b", "c"], "ds") == (["a", "b"], ["c"])
    assert "1 of 3 training images of ds have no pseudo-label" in caplog.text
    assert labels.targets("a", 3) == [0, 2]
    with pytest.raises(DataFormatError, match=r"image 'a'.*right object is proposal 2, but the image has 2"):
        labels.targets("a", 2)


def test_cached_mapper_checks_pseudo_label_indices(tmp_path):
    """Through the Stage 2 mapper: an index past the image's proposals stops training, naming the file."""
    labels = load_pseudo_labels(_write(tmp_path, "p.json", _labels(a={"objects": [3, -1]})))

    class _Cache:
        def record(self, shard, pos):
            return {"proposal_scores": torch.ones(2)}

    texts = {"phrases": [], "embeds": torch.zeros(0, 2, 4), "zero_shot": torch.zeros(2, 4)}
    mapper = WISHCachedMapper(_Cache(), texts, labels)
    with pytest.raises(DataFormatError, match="p.json"):
        mapper({"image_id": "a", "cache_ref": (0, 0)})


# ---- synonym map ------------------------------------------------------------------------------------------------
SYNONYM_CASES = [
    ("not json", "{", "not valid JSON"),
    ("a list", ["mug", "cup"], "must be an object"),
    ("value not a string", {"mug": 1}, "canonical phrase of 'mug' must be a string"),
    ("mapped to empty", {"mug": ""}, "has an empty phrase"),
    ("mapped to spaces", {"mug": "   "}, "has an empty phrase"),
    ("empty key", {"": "cup"}, "has an empty phrase"),
    ("mapped twice", {"Mug": "cup", "mug ": "bowl"}, "'mug' is mapped twice"),
]


@pytest.mark.parametrize("name,content,match", SYNONYM_CASES, ids=[c[0] for c in SYNONYM_CASES])
def test_bad_synonym_map(tmp_path, name, content, match):
    path = _write(tmp_path, "syn.json", content)
    with pytest.raises(DataFormatError, match=match) as e:
        load_synonyms(path)
    assert path in str(e.value)


@pytest.mark.parametrize("make", [lambda p: str(p / "missing.json"), lambda p: str(p)], ids=["missing", "folder"])
def test_unreadable_synonym_map_names_it(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(DataFormatError, match="synonym map cannot be read") as e:
        load_synonyms(path)
    assert path in str(e.value)


def test_same_synonym_twice_is_fine():
    assert load_synonyms({"Mug": "cup", "mug": "Cup"}) == {"mug": "cup"}


def test_extraction_refuses_a_hands_file_of_another_dataset(tmp_path):
    """The check runs where the dataset is known: before any feature is extracted."""
    from wish_d2.cache import FeatureCache, extract_dataset_features

    class _Model(torch.nn.Module):
        hand_source = PrecomputedHands(_write(tmp_path, "hands.json", {"elsewhere_0": [_hand()]}))

        def extract(self, batch):
            raise AssertionError("features extracted despite a foreign hands file")

    cache = FeatureCache(str(tmp_path / "cache"), "ds", "k")
    with pytest.raises(DataFormatError, match="hands.json: none of its 1 image ids is an image of dataset ds"):
        extract_dataset_features(_Model(), [{"image_id": "ds_0"}, {"image_id": "ds_1"}], lambda d: d, cache)


def test_demo_with_a_bad_hands_file_exits_2_with_one_line(tmp_path, capsys):
    """Through the real predictor: the hands source is built with the model, before any output."""
    import importlib.util
    import os

    import cv2

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("wish_demo_tool_aux", os.path.join(repo, "tools", "demo.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    hands = _write(tmp_path, "hands.json", {"img": [_hand("up")]})
    image = str(tmp_path / "img.png")
    assert cv2.imwrite(image, np.zeros((H, W, 3), np.uint8))
    rc = demo.main(["--config-file", os.path.join(repo, "configs", "wish_synthetic.yaml"), "--input", image,
                    "--output", str(tmp_path / "out"), "--no-dataset-lookup", "--opts",
                    "MODEL.WISH.CLIP.MODEL_NAME", "WISH-Test-ViT", "MODEL.WISH.CLIP.PRETRAINED", "",
                    "MODEL.WISH.HANDS.SOURCE", "precomputed",
                    "MODEL.WISH.HANDS.PRECOMPUTED_FILE", hands, "MODEL.DEVICE", "cpu",
                    "DATASETS.TRAIN", "()", "DATASETS.VAL", "()", "DATASETS.TEST", "()"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and len(err) == 1 and hands in err[0] and "side must be" in err[0]
    assert not (tmp_path / "out").exists()
