#!/usr/bin/env python
"""Why in-hand objects are missed: each ground-truth object without a correct prediction gets one cause (hand-side
confusion, no proposal covering it, contact missed, the one-object prior, a wrong object chosen; the rules are in
wish_d2/evaluation/error_breakdown.py), per class, per frame subset and in total.

    python tools/error_breakdown.py \\
        --predictions output/demo/seed0/wish/inference/wish_synth_test/inhand_predictions_coco.json \\
        --ground-truth output/demo/seed0/wish/inference/wish_synth_test/wish_synth_test_coco_format.json \\
        --proposals datasets/wish_synth_seed0_160x160/test_n1000/proposals.jsonl --json breakdown.json

Any ``inhand_predictions_coco.json`` works with its ground truth: the COCO json Detectron2 writes beside it
(``<dataset>_coco_format.json``) or the dataset's own. ``--proposals`` (the split's JSON-lines proposals) enables the
"no proposal covers it" cause. Prints the table, writes the counts as JSON. Bad input: a message naming the file,
exit code 2.
"""
import argparse
import json
import os
import sys



def _load(path: str, flag: str):
    if not os.path.isfile(path):
        raise ValueError(f"{flag} {path}: no such file")
    try:
        with open(path) as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"{flag} {path}: not a JSON file ({e})") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--predictions", required=True, help="COCO results json (inhand_predictions_coco.json)")
    p.add_argument("--ground-truth", required=True, help="COCO ground-truth json with categories left/right/both")
    p.add_argument("--json", required=True, help="where to write the counts")
    p.add_argument("--proposals", default=None, help="the split's proposals (JSON lines); enables 'no proposal'")
    p.add_argument("--iou", type=float, default=0.5, help="mask IoU at which an object counts as covered")
    args = p.parse_args(argv)
    if not 0.0 < args.iou <= 1.0:
        print(f"error: --iou {args.iou}: expected a number in (0, 1]", file=sys.stderr)
        return 2

    from wish_d2.data.proposals_io import ProposalStore
    from wish_d2.evaluation.error_breakdown import BreakdownInputError, breakdown, format_breakdown
    from wish_d2.utils.atomic import write_json

    try:
        gt = _load(args.ground_truth, "--ground-truth")
        preds = _load(args.predictions, "--predictions")
        if not isinstance(gt, dict):
            raise ValueError(f"--ground-truth {args.ground_truth}: expected a COCO json object")
        if not isinstance(preds, list):
            raise ValueError(f"--predictions {args.predictions}: expected a list of COCO results")
        proposals = None
        if args.proposals:
            try:
                proposals = ProposalStore(args.proposals)
            except FileNotFoundError:
                raise ValueError(f"--proposals {args.proposals}: no such file") from None
        result = breakdown(gt, preds, proposals, args.iou, gt_path=args.ground_truth, pred_path=args.predictions)
    except (ValueError, BreakdownInputError) as e:  # includes a malformed proposals file (named by its reader)
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result["skipped_predictions"]:
        print(f"warning: {result['skipped_predictions']} predictions name images not in {args.ground_truth} "
              "(skipped)", file=sys.stderr)
    print(format_breakdown(result))
    write_json({"predictions": os.path.abspath(args.predictions), "ground_truth": os.path.abspath(args.ground_truth),
                **result}, args.json)
    print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
