"""The demo's run-level outputs: ``predictions_coco.json``, ``index.html`` (the gallery), ``summary.json`` and the
closing console lines."""
import os
from collections import OrderedDict
from typing import Dict, List, Sequence

from wish_d2.evaluation.coco_export import write_coco_results
from wish_d2.utils.atomic import write_json
from wish_d2.utils.gallery import write_gallery
from wish_d2.utils.visualize import CLASS_COLORS, CLASS_NAMES, HAND_COLORS

from .console import say
from .runner import DemoRunner

__all__ = ["gallery_legend", "write_demo_report"]


def gallery_legend() -> List:
    """``[(name, rgb)]`` swatches: the three object classes, then the two hand outlines."""
    objects = [(f"{n}-hand object" if n != "both" else "both-hands object", col)
               for n, col in zip(CLASS_NAMES, CLASS_COLORS)]
    return objects + [("left hand", HAND_COLORS[0]), ("right hand", HAND_COLORS[1])]


def write_demo_report(run: DemoRunner, config_file: str, weights: str, notes: Sequence[str]) -> Dict:
    """Write the run-level files into ``run.out`` and print the closing lines; returns the summary counts."""
    out = run.out
    coco_path = write_coco_results(run.coco_results, out.path("predictions_coco.json"))
    overall = run.total_iou.compute() if run.counts["with_gt"] else {}
    c = run.counts
    summary = OrderedDict([
        ("frames processed", c["processed"]),
        ("unreadable inputs", len(run.unreadable)),
        ("failed frames", len(run.failed)),
        ("videos cut short", len(run.cut_short)),
        ("lost video frames", c["lost_frames"]),
        ("frames without hands", c["no_hands"]),
        ("in-hand predictions", len(run.coco_results)),
        ("frames with ground truth", c["with_gt"]),
    ])
    for k, v in overall.items():
        summary[f"{k} (frames with GT)"] = v
    html_path = write_gallery(out.path("index.html"), run.entries, title="WISH demo", summary=summary,
                              notes=list(notes), legend=gallery_legend(), embed=run.options.embed_images)
    write_json({
        "config_file": os.path.abspath(config_file), "weights": weights, "untrained": not weights,
        "counts": dict(summary), "metrics": overall, "unreadable": run.unreadable, "failed": run.failed,
        "cut_short": run.cut_short,
        "predictions_json": os.path.relpath(coco_path, out.root), "gallery": os.path.relpath(html_path, out.root),
        "images": run.per_image,
    }, out.path("summary.json"))

    say(f"done: {c['processed']} frame(s) processed, {len(run.unreadable)} unreadable input(s), "
        f"{len(run.failed)} failed, {c['no_hands']} without hands, {len(run.coco_results)} in-hand prediction(s)"
        + (f"; E-mIoU {overall['E-mIoU']:.2f} over {c['with_gt']} frame(s) with ground truth"
           if "E-mIoU" in overall else ""))
    for p in run.unreadable:
        say(f"  unreadable: {p}")
    for p in run.failed:
        say(f"  failed: {p}")
    for p in run.cut_short:
        say(f"  cut short (frames lost, exit status 1): {p}")
    say(f"gallery: {html_path}")
    say(f"predictions: {coco_path}")
    if not weights:
        say("reminder: untrained heads (MODEL.WEIGHTS empty): these outputs are a smoke test.")
    return summary
