"""The results table: every method on one tiny dataset, written as results.json / results.md, each row with its own
folder of predictions, metrics and COCO export that re-scores to the row's AP; worker processes give the same
numbers as one process."""
import functools
import glob
import json
import os

import pytest
import torch
from wish_fixtures import register_tiny_dataset, rescore_segm_ap, tiny_cfg

from wish_d2.engine.table import format_table, run_table
from wish_d2.evaluation.inhand_evaluator import PREDICTIONS_FILE

METHODS = ["wish", "wish_contactness_only", "pseudo_labels", "nearest_to_hand", "clip_zero_shot", "supervised"]


def _register(dicts, meta):
    """Register the already written tiny dataset in a worker process. It must not write the files again: the
    feature cache key holds the proposals file's mtime, so a rewrite in another second made the workers extract a
    new cache (in a process with another thread count), which is what made jobs=2 differ from jobs=1 now and then."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    if "wish_tiny" in DatasetCatalog.list():
        DatasetCatalog.remove("wish_tiny")
        MetadataCatalog.remove("wish_tiny")
    DatasetCatalog.register("wish_tiny", lambda: [dict(d) for d in dicts])
    MetadataCatalog.get("wish_tiny").set(**meta)


def _register_cfg(dicts, meta, cfg):
    _register(dicts, meta)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("table")
    dicts = register_tiny_dataset(root / "data")
    from detectron2.data import MetadataCatalog

    meta = {k: v for k, v in MetadataCatalog.get("wish_tiny").as_dict().items() if k != "name"}
    return root, dicts, meta


def _cfg(root, name):
    cfg = tiny_cfg(root / name, iters=6)
    cfg.merge_from_list(["MODEL.WISH.CACHE.DIR", str(root / "cache")])
    return cfg


@pytest.fixture(scope="module")
def one(tiny):
    root, dicts, meta = tiny
    _register(dicts, meta)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers below get one thread each
    try:
        res = run_table(_cfg(root, "one"), str(root / "one"), [0], METHODS, jobs=1)
    finally:
        torch.set_num_threads(threads)
    return res


def test_table_files_and_rows(tiny, one):
    root = tiny[0]
    saved = json.loads((root / "one" / "results.json").read_text())
    assert saved["seeds"] == [0] and set(METHODS) <= set(saved)
    for m in METHODS:
        assert 0.0 <= saved[m]["E-mIoU"] <= 100.0
        assert set(saved[m]) >= {"E-mIoU", "IoU_left", "IoU_right", "IoU_both", "AP"}
    md = (root / "one" / "results.md").read_text()
    assert "| wish |" in md and "| supervised |" in md and "% of supervised" in md
    assert md.strip() == format_table(saved).strip()
    assert set(one["per_seed"][0]["_timings"]) == {"wish_and_baselines_s", "supervised_s"}


def test_every_row_exports_its_own_predictions_that_rescore_to_its_ap(tiny, one):
    """Each row has output/seed0/<row>/{metrics.json, inference/<test>/inhand_predictions_coco.json}; pycocotools on
    the exported file against the exported ground truth gives the row's AP in results.json."""
    seed = tiny[0] / "one" / "seed0"
    saved = json.loads((tiny[0] / "one" / "results.json").read_text())
    gt_files = glob.glob(str(seed / "*" / "inference" / "wish_tiny" / "wish_tiny_coco_format.json"))
    assert gt_files, "the converted COCO ground truth is exported next to the predictions"
    exports = {}
    for m in METHODS:
        row = seed / m
        metrics = json.loads((row / "metrics.json").read_text(), parse_constant=_reject)
        path = row / "inference" / "wish_tiny" / PREDICTIONS_FILE
        assert path.is_file(), path
        exports[m] = path.read_bytes()
        if m != "wish":  # the wish row's metrics.json is the pipeline's report (timings and all)
            assert metrics["segm"]["AP"] == pytest.approx(saved[m]["AP"], abs=1e-9)
        assert rescore_segm_ap(str(path), gt_files[0]) == pytest.approx(saved[m]["AP"], abs=1e-6), m
    # the rows read off one model predict differently, so no file was overwritten by another row
    assert exports["wish"] != exports["nearest_to_hand"] != exports["clip_zero_shot"]
    assert not os.path.exists(seed / "wish" / "stage1" / "inference_pseudo")


def _rescore_emiou(predictions: str, dicts) -> dict:
    """E-mIoU of an exported predictions file, computed here from the file and the dataset dicts alone: each
    image's instances painted by score (classes = category ids 0 left / 1 right / 2 both), summed over the split."""
    from pycocotools import mask as mask_util

    from wish_d2.evaluation.metrics import InHandIoU, gt_label_map, paint_label_map

    by_image = {}
    for r in json.load(open(predictions)):
        by_image.setdefault(str(r["image_id"]), []).append(r)
    acc = InHandIoU()
    for d in dicts:
        h, w = d["height"], d["width"]
        preds = by_image.pop(str(d["image_id"]), [])
        masks = torch.from_numpy(mask_util.decode([p["segmentation"] for p in preds])).permute(2, 0, 1).bool() \
            if preds else torch.zeros((0, h, w), dtype=torch.bool)
        acc.update(paint_label_map(masks, [p["category_id"] for p in preds], [p["score"] for p in preds], h, w),
                   gt_label_map(d["annotations"], h, w))
    assert not by_image, f"predictions for images outside the split: {sorted(by_image)}"
    return acc.compute()


def test_every_row_is_what_its_export_scores_and_rows_behave_as_built(tiny, one):
    """Relations that hold by construction on any run, so a wrong WISH (or a wrong scorer) breaks them:

    * each row's E-mIoU is the mean of its per-class IoUs, and painting its exported predictions over the ground
      truth here, independently of the evaluator, gives the reported numbers;
    * a trivially wrong predictor (nearest_to_hand's predictions with left and right swapped) scores below
      nearest_to_hand, which picks each hand's own held object in the tiny frames;
    * the pseudo_labels row grounds narration phrases: an image whose narration names nothing gets no prediction."""
    root, dicts, _ = tiny
    saved = json.loads((root / "one" / "results.json").read_text())
    seed = root / "one" / "seed0"
    for m in METHODS:
        row = saved[m]
        ious = [row[k] for k in ("IoU_left", "IoU_right", "IoU_both") if k in row]
        assert row["E-mIoU"] == pytest.approx(sum(ious) / len(ious), abs=1e-9), m
        mine = _rescore_emiou(str(seed / m / "inference" / "wish_tiny" / PREDICTIONS_FILE), dicts)
        for k in ("E-mIoU", "IoU_left", "IoU_right", "IoU_both"):
            assert (k in mine) == (k in row) and mine.get(k) == pytest.approx(row.get(k), abs=1e-6), (m, k)

    preds = json.load(open(seed / "pseudo_labels" / "inference" / "wish_tiny" / PREDICTIONS_FILE))
    silent = {str(d["image_id"]) for d in dicts if not d["noun_phrases"]}
    assert silent and not [p for p in preds if str(p["image_id"]) in silent]

    # nearest_to_hand is geometry alone, and in the tiny frames a held object overlaps its hand while the distractor
    # sits at the top: every hand that holds something picks it, on its own side. Swapping the sides of those
    # predictions (a trivially wrong predictor) must score lower.
    near = seed / "nearest_to_hand" / "inference" / "wish_tiny" / PREDICTIONS_FILE
    swapped = [dict(p, category_id={0: 1, 1: 0}.get(p["category_id"], p["category_id"])) for p in json.load(open(near))]
    path = root / "swapped.json"
    path.write_text(json.dumps(swapped))
    assert _rescore_emiou(str(path), dicts)["E-mIoU"] < saved["nearest_to_hand"]["E-mIoU"]


def _reject(token):
    raise ValueError(f"non-standard JSON token {token}")


def test_worker_processes_give_the_same_numbers(tiny, one):
    root, dicts, meta = tiny
    register = functools.partial(_register_cfg, dicts, meta)
    two = run_table(_cfg(root, "two"), str(root / "two"), [0], METHODS, register=register, jobs=2)
    for m in METHODS:
        for k in ("E-mIoU", "IoU_left", "IoU_right", "IoU_both", "AP"):
            if k in one[m]:
                assert two[m][k] == one[m][k], (m, k)


def test_unknown_method_is_named(tiny):
    with pytest.raises(ValueError, match="wsh"):
        run_table(_cfg(tiny[0], "bad"), str(tiny[0] / "bad"), [0], ["wsh"])


def test_format_table_names_the_training_seed():
    row = {"E-mIoU": 30.0, "IoU_left": 20.0, "IoU_right": 30.0, "IoU_both": 40.0, "AP": 25.0}
    text = format_table({"seeds": [0], "train_seed": 2, "wish": row, "supervised": dict(row, **{"E-mIoU": 40.0})})
    assert "Training seed 2" in text
    assert "| wish | 30.0 | 20.0 | 30.0 | 40.0 | 25.0 | 75% |" in text


def test_resume_takes_finished_seeds_and_refuses_another_commands_file(tiny, one, monkeypatch, tmp_path):
    """--resume: the seeds an interrupted run finished are taken as they are, but only from the same command."""
    import shutil

    from wish_d2.data.common import DataFormatError
    from wish_d2.engine import table

    root = tiny[0]
    out = tmp_path / "out"
    shutil.copytree(root / "one", out, ignore=shutil.ignore_patterns("seed0"))  # the partial file, no outputs

    def no_training(*args, **kwargs):
        raise AssertionError("a finished seed was trained again")

    monkeypatch.setattr(table, "run_seed", no_training)
    again = run_table(_cfg(root, "elsewhere"), str(out), [0], METHODS, jobs=1, resume=True)
    for m in METHODS:
        assert again[m]["E-mIoU"] == one[m]["E-mIoU"], m
    changed = _cfg(root, "elsewhere")
    changed.merge_from_list(["MODEL.WISH.STAGE2.PAIR_VISUAL", "contact"])
    with pytest.raises(DataFormatError, match="results_partial.json was written by a different command"):
        run_table(changed, str(out), [0], METHODS, jobs=1, resume=True)
    with pytest.raises(DataFormatError, match="results_partial.json"):
        run_table(_cfg(root, "elsewhere"), str(out), [0], METHODS[:2], jobs=1, resume=True)  # other rows
    with monkeypatch.context() as m:  # the same command, run by edited code
        m.setattr(table, "IMPORTED_SOURCES", "0" * 64)
        with pytest.raises(DataFormatError, match="wish_d2 sources differ"):
            run_table(_cfg(root, "elsewhere"), str(out), [0], METHODS, jobs=1, resume=True)
    (out / "results_partial.json").write_text('{"per_seed": ')
    with pytest.raises(DataFormatError, match="cannot resume from it"):
        run_table(_cfg(root, "elsewhere"), str(out), [0], METHODS, jobs=1, resume=True)
