"""Why ground-truth in-hand objects are missed: each one without a correct prediction gets exactly one cause, so
the causes add up to the errors (plain Python / numpy / pycocotools; ``tools/error_breakdown.py`` is the CLI).

An object of class c (left / right / both) is correct when a prediction of class c covers it (mask IoU >= 0.5,
one prediction per object, best IoU first). Otherwise the first cause that applies, in this order:

1. ``hand_side``: a prediction of another class covers it (the object was found, the hand was not);
2. ``no_proposal``: no proposal covers it (best proposal IoU < 0.5), so no selection rule could have found it
   (only with a proposals file);
3. ``contact_missed``: none of its hands predicted any object;
4. ``prior``: its hand predicted objects, all of them correct for the hand's OTHER ground-truth objects, so the
   hand had taken its quota (one object per hand) before this one;
5. ``wrong_object``: its hand predicted an object, and a wrong one.

A "both" object's hands are both hands; a hand's predictions are those of its class and of "both". Predictions
that cover no object of their class are counted apart (``false_positives``); they are not object errors.
"""
from collections import defaultdict
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util

from ..classes import CLASS_BOTH, CLASS_LEFT, CLASS_NAMES, CLASS_RIGHT, SIDES
from .subsets import SUBSETS, frame_subset

__all__ = ["CAUSES", "CLASS_NAMES", "BreakdownInputError", "classify_errors", "breakdown", "format_breakdown"]

CAUSES = ("hand_side", "no_proposal", "contact_missed", "prior", "wrong_object")
CAUSE_TEXT = {"hand_side": "hand-side confusion", "no_proposal": "no proposal covers it",
              "contact_missed": "contact missed", "prior": "the prior (hand took another object)",
              "wrong_object": "wrong object chosen"}
HANDS = {CLASS_LEFT: {SIDES[0]}, CLASS_RIGHT: {SIDES[1]}, CLASS_BOTH: set(SIDES)}  # the hands of each class


class BreakdownInputError(ValueError):
    """A ground-truth, predictions or proposals file that cannot be read as such (the message names it)."""


def _rle(segm: Mapping, h: int, w: int, what: str) -> Dict:
    if not isinstance(segm, Mapping) or "counts" not in segm or "size" not in segm:
        raise BreakdownInputError(f"{what}: segmentation must be a COCO RLE {{'size', 'counts'}}")
    if [int(x) for x in segm["size"]] != [h, w]:
        raise BreakdownInputError(f"{what}: mask size {list(segm['size'])} is not its image's ({h}, {w})")
    counts = segm["counts"]
    if isinstance(counts, list):
        return mask_util.frPyObjects(dict(segm), h, w)
    return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def _iou(a: List[Dict], b: List[Dict]) -> np.ndarray:
    if not a or not b:
        return np.zeros((len(a), len(b)))
    return np.asarray(mask_util.iou(a, b, [0] * len(b)), dtype=np.float64).reshape(len(a), len(b))


def classify_errors(gt_classes: Sequence[int], gt_rles: List[Dict], pred_classes: Sequence[int],
                    pred_rles: List[Dict], pred_scores: Sequence[float], proposal_rles: Optional[List[Dict]] = None,
                    iou_threshold: float = 0.5):
    """One image: ``(outcome per ground-truth object, false positives)``; an outcome is ``"correct"`` or a cause.
    ``proposal_rles=None``: no proposals known, the ``no_proposal`` cause is never given."""
    iou = _iou(pred_rles, gt_rles)  # [P, G]
    matched_pred: Dict[int, int] = {}  # gt -> its prediction
    used = set()
    pairs = sorted(((iou[p, g], -float(pred_scores[p]), p, g) for p in range(len(pred_rles))
                    for g in range(len(gt_rles)) if pred_classes[p] == gt_classes[g] and iou[p, g] >= iou_threshold),
                   reverse=True)
    for _, _, p, g in pairs:
        if p not in used and g not in matched_pred:
            matched_pred[g] = p
            used.add(p)
    cover = _iou(proposal_rles, gt_rles).max(axis=0) if proposal_rles else np.zeros(len(gt_rles))
    outcomes = []
    for g, c in enumerate(gt_classes):
        hands = HANDS[c]
        own = [p for p in range(len(pred_rles)) if HANDS[pred_classes[p]] & hands]
        if g in matched_pred:
            outcomes.append("correct")
        elif any(pred_classes[p] != c and iou[p, g] >= iou_threshold for p in range(len(pred_rles))):
            outcomes.append("hand_side")
        elif proposal_rles is not None and cover[g] < iou_threshold:
            outcomes.append("no_proposal")
        elif not own:
            outcomes.append("contact_missed")
        elif all(any(matched_pred.get(o) == p for o, oc in enumerate(gt_classes) if o != g and HANDS[oc] & hands)
                 for p in own):
            outcomes.append("prior")
        else:
            outcomes.append("wrong_object")
    covered = {p for p in range(len(pred_rles)) for g in range(len(gt_rles)) if iou[p, g] >= iou_threshold}
    false_positives = sum(1 for p in range(len(pred_rles)) if p not in used and p not in covered)
    return outcomes, false_positives


def _categories(gt: Mapping, path: str) -> Dict[int, int]:
    """Dataset category id -> class (0 left, 1 right, 2 both), by the categories' names."""
    cats = gt.get("categories")
    if not isinstance(cats, list) or not cats:
        raise BreakdownInputError(f"{path}: no 'categories' list (expected left, right, both)")
    out = {}
    for c in cats:
        name = str(c.get("name", "")).strip().lower() if isinstance(c, Mapping) else ""
        if name not in CLASS_NAMES:
            raise BreakdownInputError(f"{path}: category {c!r} is not one of {', '.join(CLASS_NAMES)}")
        out[int(c["id"])] = CLASS_NAMES.index(name)
    return out


def breakdown(gt: Mapping, predictions: Sequence[Mapping], proposals=None, iou_threshold: float = 0.5,
              gt_path: str = "ground truth", pred_path: str = "predictions") -> Dict:
    """The breakdown of a split: ``gt`` a COCO ground-truth dict (``images``, ``annotations``, ``categories``
    named left / right / both), ``predictions`` COCO result entries in its category ids, ``proposals`` anything
    with ``get(image_id) -> {"masks": [RLE]}`` (e.g. :class:`wish_d2.data.proposals_io.ProposalStore`) or
    ``None``. Returns counts per class, per frame subset (single / multi-object) and in total, plus
    ``skipped_predictions`` (entries whose image is not in the ground truth)."""
    for key in ("images", "annotations"):
        if not isinstance(gt.get(key), list):
            raise BreakdownInputError(f"{gt_path}: no {key!r} list (a COCO ground-truth json is expected)")
    cat = _categories(gt, gt_path)
    images = {}
    for im in gt["images"]:
        try:
            images[str(im["id"])] = (int(im["height"]), int(im["width"]))
        except (KeyError, TypeError, ValueError):
            raise BreakdownInputError(f"{gt_path}: image entry {im!r} needs id, height and width") from None
    anns, preds = defaultdict(list), defaultdict(list)
    for a in gt["annotations"]:
        if str(a.get("image_id")) not in images or a.get("category_id") not in cat:
            raise BreakdownInputError(f"{gt_path}: annotation {a.get('id')!r} names an unknown image or category")
        anns[str(a["image_id"])].append(a)
    skipped = 0
    for k, p in enumerate(predictions):
        if not isinstance(p, Mapping) or p.get("category_id") not in cat or "segmentation" not in p:
            raise BreakdownInputError(f"{pred_path}: entry {k} is not a COCO result of a known category")
        if str(p.get("image_id")) not in images:
            skipped += 1
            continue
        preds[str(p["image_id"])].append(p)

    def zero():
        return {"objects": 0, "correct": 0, "errors": 0, **{c: 0 for c in CAUSES}}

    per_class = {n: zero() for n in CLASS_NAMES}
    per_subset = {s: zero() for s in SUBSETS}
    false_positives = 0
    for image_id, (h, w) in images.items():
        ga = [dict(a, category_id=cat[a["category_id"]]) for a in anns[image_id]]
        pa = preds[image_id]
        where = f"{gt_path}: image {image_id}"
        gt_rles = [_rle(a["segmentation"], h, w, where) for a in ga]
        pred_rles = [_rle(p["segmentation"], h, w, f"{pred_path}: image {image_id}") for p in pa]
        props = None
        if proposals is not None:
            props = [_rle(m, h, w, f"proposals: image {image_id}") for m in proposals.get(image_id)["masks"]]
        outcomes, fp = classify_errors([a["category_id"] for a in ga], gt_rles, [cat[p["category_id"]] for p in pa],
                                       pred_rles, [float(p.get("score", 0.0)) for p in pa], props, iou_threshold)
        false_positives += fp
        subset = per_subset[frame_subset(ga)]
        for a, outcome in zip(ga, outcomes):
            for row in (per_class[CLASS_NAMES[a["category_id"]]], subset):
                row["objects"] += 1
                row["correct" if outcome == "correct" else "errors"] += 1
                if outcome != "correct":
                    row[outcome] += 1
    total = zero()
    for row in per_class.values():
        for k in total:
            total[k] += row[k]
    return {"iou_threshold": iou_threshold, "causes": list(CAUSES), "proposals": proposals is not None,
            "per_class": per_class, "per_subset": per_subset, "total": total, "false_positives": false_positives,
            "skipped_predictions": skipped, "images": len(images)}


def format_breakdown(result: Mapping) -> str:
    """A markdown table: rows per class, per subset and in total; a cell is a count and its share of the errors."""
    head = ["objects", "correct", "errors"] + list(CAUSES)
    lines = ["| class | " + " | ".join(CAUSE_TEXT.get(h, h) for h in head) + " |", "|---" * (len(head) + 1) + "|"]
    rows = [(n, result["per_class"][n]) for n in CLASS_NAMES] + [("all", result["total"])]
    rows += [(f"{s}-object frames", result["per_subset"][s]) for s in SUBSETS]
    for name, r in rows:
        cells = [str(r["objects"]), str(r["correct"]), str(r["errors"])]
        cells += [f"{r[c]} ({100 * r[c] / r['errors']:.0f}%)" if r["errors"] else "0" for c in CAUSES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    note = "" if result["proposals"] else " (no proposals file: 'no proposal covers it' not assessed)"
    lines.append("")
    lines.append(f"{result['images']} images, IoU >= {result['iou_threshold']}; predictions covering no object of "
                 f"their class: {result['false_positives']}{note}")
    return "\n".join(lines)
