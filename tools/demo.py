#!/usr/bin/env python
"""WISH demo: in-hand object masks on images, folders or videos, with overlays, a COCO results json and an HTML
gallery. The logic lives in ``wish_d2.demo``; this file is its command line.

    python tools/demo.py --config-file configs/wish_synthetic.yaml --input frames/ --output out/demo \\
        --opts MODEL.WEIGHTS output/wish_synthetic/model_final.pth
    python tools/demo.py --config-file configs/wish_epic.yaml --input clip.mp4 --output out/clip --video-output
    python tools/demo.py --config-file configs/wish_synthetic.yaml --input a.png b.jpg --output out/x  # smoke test

Inputs: image files, folders (their images and videos, sorted), glob patterns, or video files (read with
``cv2.VideoCapture``; ``--video-stride`` / ``--max-frames`` sample frames). Images are read with their EXIF
orientation; 16-bit, palette, gray and alpha images become 8-bit RGB (16-bit samples scaled by 65535, alpha dropped).
An unreadable, truncated or oversized image (a header over Pillow's pixel limit) is named, counted and skipped.
``--opts KEY VALUE ...`` overrides config keys; config keys given after ``--input`` (``MODEL.WEIGHTS x``) are
recognised too.

**Hands and proposals.** An image whose absolute path is the ``file_name`` of a dict in a registered dataset
(``DATASETS.TEST``, then ``VAL``, then ``TRAIN``; e.g. the synthetic benchmark) uses that dict's ``hands``, the
dataset's precomputed proposals, and its ground truth (drawn, and scored per image with E-mIoU). Any other image gets
hands from ``MODEL.WISH.HANDS.SOURCE`` (for the ``dataset`` source, which knows only the datasets' hands: from the
hand detector of ``MODEL.WISH.HANDS.DETECTOR_CONFIG`` / ``DETECTOR_WEIGHTS`` when configured) and proposals from
``MODEL.PROPOSAL_GENERATOR`` (for ``PrecomputedMaskProposals``, pass ``--proposals-file``). WISH predicts objects only for visible hands: a frame
without hands gets no prediction, and the demo says so.

**Outputs in --output DIR.**
``overlays/<name>.png`` (left-hand object blue, right-hand object orange, both-hands object magenta, hands outlined
cyan/yellow, scores on the masks); ``panels/``; ``predictions_coco.json`` (COCO results of the in-hand predictions);
``summary.json`` (counts, per-image metrics, failures); ``index.html`` (gallery: input, proposals, prediction and
ground truth per frame, per-image metrics, a class filter; images are files under DIR, or inline with
``--embed-images``; no server or network needed); ``<video>_wish.mp4`` with ``--video-output``; and
``.wish_demo_files.txt``, the list of every file the run wrote.

**Videos** use temporal inference by default (proposals linked across frames, each hand's decision smoothed online;
docs/VIDEO.md) and get a timeline plot of each hand's held object in the gallery (``timelines/``), against ground
truth when a ``held_timeline.json`` beside the video has it. ``--per-frame`` switches temporal inference off.

DIR must be new or empty, so one gallery never mixes two runs. A non-empty DIR is refused (exit 2) unless
``--overwrite``, which first deletes the files an earlier demo run listed in ``.wish_demo_files.txt`` and keeps
everything else; a non-empty DIR without that list was not written by the demo and is refused even then.

Without ``MODEL.WEIGHTS`` the model runs with its embedded default: untrained (random) heads, so the output is a smoke
test of the pipeline, not a result. Exit status: 0 when at least one frame was processed, 1 when none was or when a
video stopped decoding before its declared end (frames lost), 2 for a setup error (missing config or weights file,
an unsafe or unreadable weights file, weights that match the WISH heads only partly, an invalid config value, an
option out of range such as --max-frames -1, no usable input, --output an existing file, or a non-empty --output
folder) or when an output cannot be written completely (a full disk: one line naming the file).

Inputs that cannot be used (a missing path, a dangling symbolic link or a link loop, an empty folder, a glob that
matches only folders) are named with the reason and skipped.
"""
import argparse
import logging
import os
import sys

from wish_d2.config_validation import ConfigError
from wish_d2.demo import DemoOptions, run_demo
from wish_d2.demo.console import say
from wish_d2.engine.cli import is_config_key
from wish_d2.engine.setup import setup_cfg


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="WISH demo: in-hand object segmentation on images, folders or videos",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--config-file", required=True, metavar="FILE", help="path to a WISH config yaml")
    p.add_argument("--input", nargs="+", required=True, metavar="PATH",
                   help="image files, folders, glob patterns or video files")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="output folder: created, or an empty one; a non-empty folder needs --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="reuse a folder of an earlier demo run: first delete the files that run wrote (listed in "
                        "DIR/.wish_demo_files.txt), keep any other file")
    p.add_argument("--confidence", "--confidence-threshold", dest="confidence", type=float, default=0.0,
                   help="drop predictions scoring below this (default 0: keep what the model's own, calibrated "
                        "contact threshold kept)")
    p.add_argument("--video-output", action="store_true", help="also write an annotated <video>_wish.mp4 per video")
    p.add_argument("--video-stride", type=int, default=1, help="process every N-th video frame (default 1)")
    p.add_argument("--max-frames", type=int, default=0, help="at most this many frames per video (0 = all)")
    p.add_argument("--proposals-file", default="", metavar="FILE",
                   help="precomputed proposals (JSON lines, wish_d2.data.proposals_io) for images outside the "
                        "registered datasets, keyed by image id = output name")
    p.add_argument("--embed-images", action="store_true",
                   help="inline every gallery image as a data URI: index.html becomes one standalone file")
    p.add_argument("--no-dataset-lookup", action="store_true",
                   help="never match inputs to registered datasets (no ground truth, dataset hands or proposals)")
    p.add_argument("--per-frame", action="store_true",
                   help="videos: per-frame predictions instead of temporal inference (linking + smoothing)")
    p.add_argument("--proposal-labels", type=int, default=0, metavar="N",
                   help="write index and score on the first N proposals of the proposals panel")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                   help="config overrides, e.g. --opts MODEL.WEIGHTS model_final.pth MODEL.DEVICE cuda")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    args = get_parser().parse_args(argv)
    # `--input a.png MODEL.WEIGHTS x.pth`: the config override was swallowed by --input; move it to --opts. Only
    # dotted keys that are not existing paths count, so an input folder named `DATA` stays an input.
    for i, tok in enumerate(args.input):
        if is_config_key(tok) and "." in tok and not os.path.exists(tok):
            args.opts = list(args.input[i:]) + list(args.opts or [])
            args.input = args.input[:i]
            break
    if not args.input:
        get_parser().error("--input needs at least one path")
    if len(args.opts or []) % 2:
        get_parser().error(f"config overrides come in KEY VALUE pairs, got {args.opts}")
    return args


def options_from_args(args: argparse.Namespace) -> DemoOptions:
    return DemoOptions(inputs=list(args.input), output=args.output, overwrite=args.overwrite,
                       confidence=args.confidence, video_output=args.video_output, video_stride=args.video_stride,
                       max_frames=args.max_frames, proposals_file=args.proposals_file,
                       embed_images=args.embed_images, dataset_lookup=not args.no_dataset_lookup,
                       proposal_labels=args.proposal_labels, temporal=not args.per_frame)


def main(argv=None, predictor_factory=None) -> int:
    """Run the demo; returns the exit status. ``predictor_factory(cfg, weights)`` replaces ``WISHPredictor``."""
    args = parse_args(argv)
    from detectron2.utils.logger import setup_logger

    setup_logger(name="wish_d2", abbrev_name="wish")
    logging.getLogger("wish_d2").setLevel(logging.INFO)
    if not os.path.isfile(args.config_file):
        say(f"error: config file not found: {args.config_file}. Fix: pass a WISH config, e.g. --config-file "
            "configs/wish_synthetic.yaml", err=True)
        return 2
    try:
        cfg = setup_cfg(args)
    except ConfigError as e:
        say(f"error: {e}", err=True)
        return 2
    return run_demo(cfg, options_from_args(args), config_file=args.config_file, predictor_factory=predictor_factory)


if __name__ == "__main__":
    sys.exit(main())
