"""Each row's inference folder is self-contained: the COCO ground truth its predictions are scored against lies
beside them, so a user re-scores any row (not only the first one evaluated) with pycocotools from that folder
alone."""
import json
import os
import shutil

import pytest
import torch
from wish_fixtures import register_tiny_dataset, rescore_segm_ap, tiny_cfg

from wish_d2.engine.table import run_table
from wish_d2.evaluation.inhand_evaluator import PREDICTIONS_FILE

NAME = "wish_tiny_exports"
# rows read off the WISH model (each its own evaluator), Stage 1's pseudo-labels, and a row that trains its own
ROWS = ["wish", "wish_contactness_only", "nearest_to_hand", "pseudo_labels", "supervised"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    register_tiny_dataset(str(root / "data"), name=NAME, n=8)
    cfg = tiny_cfg(root / "out", train=NAME, iters=4)
    cfg.merge_from_list(["MODEL.WISH.CACHE.DIR", str(root / "cache"), "MODEL.WISH.CLIP.PROBE_FRAMES", "0"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = run_table(cfg, str(root / "out"), [0], ROWS, jobs=1)
    finally:
        torch.set_num_threads(threads)
    return root, results


def _ap_from_folder_alone(folder: str, tmp: str) -> float:
    alone = os.path.join(tmp, "alone")
    shutil.copytree(folder, alone)  # nothing outside this copy can be reached
    gts = [f for f in os.listdir(alone) if f.endswith("_coco_format.json")]
    assert len(gts) == 1, sorted(os.listdir(alone))
    return rescore_segm_ap(os.path.join(alone, PREDICTIONS_FILE), os.path.join(alone, gts[0]))


@pytest.mark.parametrize("row", ROWS)
def test_each_row_rescores_from_its_own_folder(table, row, tmp_path):
    root, results = table
    folder = root / "out" / "seed0" / row / "inference" / NAME
    assert (folder / PREDICTIONS_FILE).is_file()
    assert _ap_from_folder_alone(str(folder), str(tmp_path)) == pytest.approx(results[row]["AP"], abs=1e-6)


def test_the_copies_are_the_ground_truth_detectron2_scored_against(table):
    root, _ = table
    copies = {row: (root / "out" / "seed0" / row / "inference" / NAME / f"{NAME}_coco_format.json").read_bytes()
              for row in ROWS}
    assert len(set(copies.values())) == 1
    gt = json.loads(copies["wish"])
    assert len(gt["images"]) == 8 and {c["name"] for c in gt["categories"]} == {"left", "right", "both"}
