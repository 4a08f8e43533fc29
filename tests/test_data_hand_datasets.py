"""Hand-only splits for the hand detector: hands become the instances, with the side as the class; nothing else of
the split (objects, narrations, noun phrases) is kept."""
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

import wish_d2  # noqa: F401  registers the real hand-only splits
from wish_d2.data.common import make_annotation, make_hand
from wish_d2.data.hand_datasets import HAND_CLASSES, hands_only, register_hands_only
from wish_d2.utils.masks import encode_rle


def _rle(x0, x1):
    m = np.zeros((20, 30), bool)
    m[5:15, x0:x1] = True
    return encode_rle(m)


def _frame(hands, objects=()):
    return {"file_name": "f.png", "image_id": "f", "height": 20, "width": 30, "narrations": ["take knife"],
            "noun_phrases": ["knife"], "hands": hands, "annotations": [make_annotation(_rle(*o), 0, "knife")
                                                                         for o in objects]}


@pytest.mark.parametrize("hands, categories", [
    ([make_hand(_rle(0, 5), "left"), make_hand(_rle(20, 25), "right")], [0, 1]),
    ([make_hand(_rle(20, 25), "right")], [1]),
    ([make_hand(_rle(0, 5), "left", side_source="heuristic")], []),  # a guessed side cannot teach the classes
    ([], []),  # a frame without hands stays, with no instance
])
def test_hands_only(hands, categories):
    (d,) = hands_only([_frame(hands, objects=[(8, 12)])])
    assert set(d) == {"file_name", "image_id", "height", "width", "annotations"}  # no narration, noun or object
    assert [a["category_id"] for a in d["annotations"]] == categories
    for a, h in zip(d["annotations"], [h for h in hands if h["side_source"] == "gt"]):
        assert a["segmentation"] == h["segmentation"] and a["bbox"] == h["bbox"]
        assert a["bbox_mode"] == BoxMode.XYWH_ABS and a["iscrowd"] == 0


def test_register_hands_only_is_lazy_and_replaces():
    calls = []

    def load():
        calls.append(1)
        return [_frame([make_hand(_rle(0, 5), "left")], objects=[(8, 12)])]

    name = register_hands_only("test_hd_split", load)
    assert name == "test_hd_split_hands" and not calls
    assert MetadataCatalog.get(name).thing_classes == list(HAND_CLASSES)
    assert MetadataCatalog.get(name).evaluator_type == "coco"
    assert [a["category_id"] for a in DatasetCatalog.get(name)[0]["annotations"]] == [0] and calls == [1]
    register_hands_only("test_hd_split", lambda: [])
    assert DatasetCatalog.get(name) == []
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_real_hand_only_splits_are_registered():
    for name in ("epic_visor_train_hands", "epic_visor_train_core_hands", "epic_visor_train_heldout_hands",
                 "epic_visor_val_hands", "ego4d_egohos_train_hands",
                 "ego4d_egohos_val_hands", "ego4d_egohos_test_hands"):
        assert name in DatasetCatalog.list()
        assert MetadataCatalog.get(name).thing_classes == ["left hand", "right hand"]
