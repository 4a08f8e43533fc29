"""COCO export: the results json loads with pycocotools and scores AP 100 against Detectron2's converted GT json."""
import contextlib
import io
import json
import uuid

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import wish_d2  # noqa: F401,I001  first: installs the Detectron2 compat shims (also in spawned workers)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.coco import convert_to_coco_json
from detectron2.structures import BoxMode, Instances

from wish_d2.evaluation.coco_export import (
    category_id_mapper,
    export_coco_predictions,
    instances_to_coco_results,
    predictions_to_coco_results,
)
from wish_d2.utils.masks import encode_rle, polygons_to_mask

H, W = 24, 32


def _rect(y0, y1, x0, x1):
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _tiny_dicts():
    """3 images, one object of each class (+ a polygon one), as ARCHITECTURE.md dataset dicts."""
    objects = {
        "img_a": [(0, _rect(2, 10, 2, 10)), (1, _rect(12, 20, 20, 30))],
        "img_b": [(2, _rect(5, 15, 8, 24))],
        "img_c": [(0, [4.0, 4.0, 20.0, 4.0, 20.0, 16.0, 4.0, 16.0])],
    }
    dicts, masks = [], {}
    for image_id, objs in objects.items():
        anns, ms = [], []
        for cat, m in objs:
            if isinstance(m, list):
                seg, m = [m], polygons_to_mask([m], H, W)
            else:
                seg = encode_rle(m)
            ys, xs = np.nonzero(m)
            anns.append(
                {
                    "category_id": cat,
                    "segmentation": seg,
                    "bbox": [float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1), float(np.ptp(ys) + 1)],
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "iscrowd": 0,
                    "noun": "thing",
                }
            )
            ms.append((cat, m))
        dicts.append(
            {"file_name": f"/nonexistent/{image_id}.jpg", "image_id": image_id, "height": H, "width": W,
             "narrations": [], "noun_phrases": [], "hands": [], "annotations": anns}
        )
        masks[image_id] = ms
    return dicts, masks


@pytest.fixture
def tiny_dataset(request):
    name = f"wish_test_export_{uuid.uuid4().hex[:8]}"
    dicts, masks = _tiny_dicts()
    mapping = getattr(request, "param", None)  # dataset ids != contiguous ids, as after load_coco_json
    DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
    meta = dict(thing_classes=["left", "right", "both"], evaluator_type="wish_inhand")
    if mapping:
        meta["thing_dataset_id_to_contiguous_id"] = mapping
    MetadataCatalog.get(name).set(**meta)
    yield name, masks
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _instances(ms, scores=None):
    inst = Instances((H, W))
    inst.pred_masks = torch.from_numpy(np.stack([m for _, m in ms])) if ms else torch.zeros((0, H, W), dtype=torch.bool)
    inst.pred_classes = torch.tensor([c for c, _ in ms], dtype=torch.long)
    inst.scores = torch.tensor(scores if scores is not None else [0.9] * len(ms), dtype=torch.float32)
    return inst


def _coco_segm_ap(gt_json, res_json):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_json)
        dt = gt.loadRes(res_json)
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("tiny_dataset", [None, {11: 0, 12: 1, 13: 2}], indirect=True)
def test_export_passes_loadres_and_cocoeval(tiny_dataset, tmp_path):
    name, masks = tiny_dataset
    gt_json = str(tmp_path / "gt.json")
    convert_to_coco_json(name, gt_json, allow_cached=False)
    meta = MetadataCatalog.get(name)
    preds = [{"image_id": k, "instances": _instances(v)} for k, v in masks.items()]
    out = export_coco_predictions(preds, str(tmp_path / "sub" / "preds.json"), metadata=meta)
    results = json.load(open(out))
    gt = json.load(open(gt_json))
    gt_cat_ids = sorted(c["id"] for c in gt["categories"])
    assert sorted({r["category_id"] for r in results}) == gt_cat_ids
    if meta.get("thing_dataset_id_to_contiguous_id") is None:
        assert gt_cat_ids == [0, 1, 2]  # Detectron2 0.6 writes contiguous ids unchanged (no +1)
    else:
        assert gt_cat_ids == [11, 12, 13]
    assert all(isinstance(r["segmentation"]["counts"], str) for r in results)
    assert "bbox" not in results[0]
    stats = _coco_segm_ap(gt_json, out)
    assert stats[0] == pytest.approx(1.0)  # AP
    assert stats[1] == pytest.approx(1.0)  # AP50
    assert not list(tmp_path.glob("sub/.tmp-*"))  # atomic write leaves no temp file


def test_wrong_class_lowers_ap(tiny_dataset, tmp_path):
    name, masks = tiny_dataset
    gt_json = str(tmp_path / "gt.json")
    convert_to_coco_json(name, gt_json, allow_cached=False)
    masks = dict(masks)
    masks["img_b"] = [(0, masks["img_b"][0][1])]  # the "both" object predicted as "left"
    preds = [{"image_id": k, "instances": _instances(v, [0.5] if k == "img_b" else None)} for k, v in masks.items()]
    out = export_coco_predictions(preds, str(tmp_path / "preds.json"))
    stats = _coco_segm_ap(gt_json, out)
    # left: 2 TPs (0.9) ranked above 1 FP (0.5) -> AP 1; right 1; both: a GT with no detection -> 0
    assert stats[0] == pytest.approx(2 / 3)


def test_instances_to_coco_results_fields():
    m = np.zeros((H, W), dtype=bool)
    m[3:7, 5:9] = True
    inst = _instances([(2, m)])
    inst.hand_index = torch.tensor([1])
    (r,) = instances_to_coco_results(inst, np.int64(7), include_bbox=True)
    assert r["image_id"] == 7 and type(r["image_id"]) is int
    assert r["category_id"] == 2 and r["hand_index"] == 1
    assert r["bbox"] == [5.0, 3.0, 4.0, 4.0]
    assert r["segmentation"]["size"] == [H, W]
    json.dumps(r)
    # float masks are thresholded at 0.5
    inst2 = _instances([(0, m)])
    inst2.pred_masks = inst2.pred_masks.float() * 0.6
    (r2,) = instances_to_coco_results(inst2, "x")
    assert r2["segmentation"]["counts"] == r["segmentation"]["counts"]


def test_empty_predictions_export(tmp_path):
    assert instances_to_coco_results(_instances([]), "img") == []
    out = export_coco_predictions([{"image_id": "img", "instances": _instances([])}], str(tmp_path / "p.json"))
    assert json.load(open(out)) == []
    assert predictions_to_coco_results([]) == []


def test_category_id_mapper():
    assert category_id_mapper(None)(2) == 2
    f = category_id_mapper({"thing_dataset_id_to_contiguous_id": {5: 0, 9: 1}})
    assert f(1) == 9
    with pytest.raises(KeyError):
        f(2)
