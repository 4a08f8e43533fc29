"""The error breakdown: a hand-made split with one error of each kind, whose counts add up, and the CLI (JSON out,
exit code 2 with the file named on bad input)."""
import json
import os
import runpy

import numpy as np
import pytest

from wish_d2.data.proposals_io import write_proposals
from wish_d2.evaluation.error_breakdown import CAUSES, BreakdownInputError, breakdown
from wish_d2.utils.masks import encode_rle

REPO = os.path.join(os.path.dirname(__file__), "..")
H = W = 32
CATS = [{"id": 0, "name": "left"}, {"id": 1, "name": "right"}, {"id": 2, "name": "both"}]


def box(x, y, w=6, h=6):
    m = np.zeros((H, W), bool)
    m[y:y + h, x:x + w] = True
    return encode_rle(m)


A, B, C, D, E, F, G = box(2, 2), box(12, 2), box(22, 2), box(2, 12), box(12, 12), box(22, 12), box(2, 22)
# image -> ground truth [(class, mask)], predictions [(class, mask)], proposals [mask]
CASE = {
    # the left hand holds A and B, the right hand C: left predicts A only (B lost to the prior), right predicts
    # nothing (contact missed)
    "multi": ([(0, A), (0, B), (1, C)], [(0, A)], [A, B, C]),
    # the right hand's D predicted as the left hand's: hand-side confusion
    "side": ([(1, D)], [(0, D)], [D]),
    # no proposal covers E
    "noprop": ([(0, E)], [], [A]),
    # both hands hold F, the prediction is G: a wrong object (and G a false positive)
    "wrong": ([(2, F)], [(2, G)], [F, G]),
}


def coco():
    images = [{"id": k, "height": H, "width": W} for k in CASE]
    anns, preds = [], []
    for k, (gt, pr, _) in CASE.items():
        anns += [{"id": len(anns) + 1, "image_id": k, "category_id": c, "segmentation": m, "iscrowd": 0}
                 for c, m in gt]
        preds += [{"image_id": k, "category_id": c, "segmentation": m, "score": 0.9} for c, m in pr]
    return {"images": images, "annotations": anns, "categories": CATS}, preds


class Proposals:
    def get(self, image_id):
        return {"masks": CASE[image_id][2]}


def test_one_error_of_each_kind_adds_up():
    gt, preds = coco()
    res = breakdown(gt, preds, Proposals())
    total = res["total"]
    assert total["objects"] == 6 and total["correct"] == 1 and total["errors"] == 5
    assert {c: total[c] for c in CAUSES} == {c: 1 for c in CAUSES}
    assert sum(total[c] for c in CAUSES) == total["errors"]
    assert res["per_class"]["left"] == {"objects": 3, "correct": 1, "errors": 2, "hand_side": 0, "no_proposal": 1,
                                        "contact_missed": 0, "prior": 1, "wrong_object": 0}
    assert res["per_class"]["right"]["hand_side"] == 1 and res["per_class"]["right"]["contact_missed"] == 1
    assert res["per_class"]["both"]["wrong_object"] == 1
    multi = res["per_subset"]["multi"]
    assert (multi["objects"], multi["correct"], multi["prior"], multi["contact_missed"]) == (3, 1, 1, 1)
    assert res["false_positives"] == 1


@pytest.mark.parametrize("proposals,cause", [(None, "contact_missed"), (Proposals(), "no_proposal")])
def test_without_proposals_the_next_cause_applies(proposals, cause):
    gt, preds = coco()
    res = breakdown(gt, preds, proposals)
    assert res["per_class"]["left"][cause] >= 1 and res["proposals"] is (proposals is not None)
    assert sum(res["total"][c] for c in CAUSES) == res["total"]["errors"]


def test_bad_categories_are_named():
    gt, preds = coco()
    gt["categories"] = [{"id": 0, "name": "cup"}]
    with pytest.raises(BreakdownInputError, match="cup"):
        breakdown(gt, preds)


def test_cli_writes_json_and_rejects_bad_input(tmp_path, capsys):
    tool = runpy.run_path(os.path.join(REPO, "tools", "error_breakdown.py"), run_name="error_breakdown")
    gt, preds = coco()
    paths = {n: str(tmp_path / f"{n}.json") for n in ("gt", "pred")}
    json.dump(gt, open(paths["gt"], "w"))
    json.dump(preds, open(paths["pred"], "w"))
    props = str(tmp_path / "proposals.jsonl")
    write_proposals([{"image_id": k, "height": H, "width": W, "masks": v[2], "scores": [1.0] * len(v[2])}
                     for k, v in CASE.items()], props)
    out = str(tmp_path / "out.json")
    argv = ["--predictions", paths["pred"], "--ground-truth", paths["gt"], "--proposals", props, "--json", out]
    assert tool["main"](argv) == 0
    assert "wrong object chosen" in capsys.readouterr().out and json.load(open(out))["total"]["errors"] == 5
    with open(paths["pred"], "w") as f:
        f.write("{not json")
    assert tool["main"](argv) == 2
    assert paths["pred"] in capsys.readouterr().err
    assert tool["main"](argv[:3] + ["missing.json"] + argv[4:]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err
