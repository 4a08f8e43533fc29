#!/usr/bin/env python
"""WISH demo: in-hand object masks on images, folders or videos, with overlays, a COCO results json and an HTML
gallery.

    python tools/demo.py --config-file configs/wish_synthetic.yaml --input frames/ --output out/demo \\
        --opts MODEL.WEIGHTS output/wish_synthetic/model_final.pth
    python tools/demo.py --config-file configs/wish_epic.yaml --input clip.mp4 --output out/clip --video-output
    python tools/demo.py --config-file configs/wish_synthetic.yaml --input a.png b.jpg --output out/x  # smoke test

Inputs: image files, folders (their images and videos, sorted), glob patterns, or video files (read with
``cv2.VideoCapture``; ``--video-stride`` / ``--max-frames`` sample frames). ``--opts KEY VALUE ...`` overrides config
keys; config keys given after ``--input`` (``MODEL.WEIGHTS x``) are recognised too.

**Hands and proposals.** An image whose absolute path is the ``file_name`` of a dict in a registered dataset
(``DATASETS.TEST``, then ``VAL``, then ``TRAIN``; e.g. the synthetic benchmark) uses that dict's ``hands``, the
dataset's precomputed proposals, and its ground truth (drawn, and scored per image with E-mIoU). Any other image gets
hands from ``MODEL.WISH.HANDS.SOURCE`` and proposals from ``MODEL.PROPOSAL_GENERATOR`` (for
``PrecomputedMaskProposals``, pass ``--proposals-file``). WISH predicts objects only for visible hands: a frame
without hands gets no prediction, and the demo says so.

**Outputs in --output DIR.**
``overlays/<name>.png`` (left-hand object blue, right-hand object orange, both-hands object magenta, hands outlined
cyan/yellow, scores on the masks); ``predictions_coco.json`` (COCO results of the in-hand predictions);
``summary.json`` (counts, per-image metrics, failures); ``index.html`` (gallery: input, proposals, prediction and
ground truth per frame, per-image metrics, a class filter; images are files under DIR, or inline with
``--embed-images``; no server or network needed); ``<video>_wish.mp4`` with ``--video-output``.

Without ``MODEL.WEIGHTS`` the model runs with its embedded default: untrained (random) heads, so the output is a smoke
test of the pipeline, not a result. Exit status: 0 when at least one frame was processed, 1 when none was, 2 for a
setup error (missing config or weights file).
"""
import argparse
import glob
import logging
import os
import re
import sys
import traceback
from collections import Counter, OrderedDict
from typing import Dict, Iterator, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import wish_d2  # noqa: E402,F401  registers WISH and installs the Detectron2 compat shims

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

logger = logging.getLogger("wish_d2.demo")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
_CFG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


# ---- command line ------------------------------------------------------------------------------------------------
def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="WISH demo: in-hand object segmentation on images, folders or videos",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--config-file", required=True, metavar="FILE", help="path to a WISH config yaml")
    p.add_argument("--input", nargs="+", required=True, metavar="PATH",
                   help="image files, folders, glob patterns or video files")
    p.add_argument("--output", required=True, metavar="DIR", help="output folder (created)")
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
    p.add_argument("--proposal-labels", type=int, default=0, metavar="N",
                   help="write index and score on the first N proposals of the proposals panel")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                   help="config overrides, e.g. --opts MODEL.WEIGHTS model_final.pth MODEL.DEVICE cuda")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    args = get_parser().parse_args(argv)
    # `--input a.png MODEL.WEIGHTS x.pth`: the config override was swallowed by --input; move it to --opts
    for i, tok in enumerate(args.input):
        if _CFG_KEY.match(tok) and not os.path.exists(tok):
            args.opts = list(args.input[i:]) + list(args.opts or [])
            args.input = args.input[:i]
            break
    if not args.input:
        get_parser().error("--input needs at least one path")
    if len(args.opts or []) % 2:
        get_parser().error(f"config overrides come in KEY VALUE pairs, got {args.opts}")
    return args


def say(msg: str, err: bool = False) -> None:
    """One user-facing line that does not garble the progress bar."""
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr if err else sys.stdout)


def setup_cfg(args):
    from detectron2.config import get_cfg

    from wish_d2 import add_wish_config

    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(list(args.opts or []))
    cfg.freeze()
    return cfg


# ---- inputs ------------------------------------------------------------------------------------------------------
def collect_inputs(paths: List[str]) -> Tuple[List[Tuple[str, str]], List[str]]:
    """-> ([(kind "image"|"video", abspath)], [missing paths]). Folders give their images and videos, sorted."""
    found, missing = [], []
    for p in paths:
        p = os.path.expanduser(p)
        if any(ch in p for ch in "*?[") and not os.path.exists(p):
            matches = sorted(glob.glob(p))
            if not matches:
                missing.append(p)
            for m in matches:
                if os.path.isfile(m):
                    found.append(_kind(m))
            continue
        if os.path.isdir(p):
            files = sorted(os.path.join(p, f) for f in os.listdir(p))
            found.extend(_kind(f) for f in files
                         if os.path.isfile(f) and f.lower().endswith(IMAGE_EXTS + VIDEO_EXTS))
        elif os.path.isfile(p):
            found.append(_kind(p))
        else:
            missing.append(p)
    return found, missing


def _kind(path: str) -> Tuple[str, str]:
    return ("video" if path.lower().endswith(VIDEO_EXTS) else "image", os.path.abspath(path))


def read_image_rgb(path: str) -> np.ndarray:
    """RGB uint8 [H, W, 3] (EXIF orientation applied), via Detectron2's ``read_image``; raises on failure."""
    from detectron2.data.detection_utils import read_image

    img = read_image(path, format="RGB")
    if img is None or img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        raise ValueError("not an RGB image")
    return np.ascontiguousarray(img)


def video_error_line(path: str) -> str:
    try:
        backends = ", ".join(cv2.videoio_registry.getBackendName(b) for b in cv2.videoio_registry.getBackends())
    except Exception:  # pragma: no cover - very old OpenCV
        backends = "unknown"
    return (f"error: cannot decode video {path}: this OpenCV {cv2.__version__} build (video backends: {backends}) "
            "cannot open its container/codec. Fix: convert it to MP4/H.264 "
            f"(ffmpeg -i '{path}' -c:v libx264 -pix_fmt yuv420p out.mp4), or install an FFmpeg-enabled OpenCV "
            "(pip install opencv-python-headless).")


def iter_video(path: str, stride: int, max_frames: int) -> Iterator[Tuple[int, np.ndarray]]:
    """Yield (frame index, RGB frame); raises IOError when the file cannot be opened or decoded."""
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise IOError(video_error_line(path))
        idx, n = 0, 0
        while True:
            ok, frame = cap.read()
            if not ok:
                if idx == 0:
                    raise IOError(video_error_line(path))
                return
            if idx % max(1, stride) == 0:
                yield idx, np.ascontiguousarray(frame[:, :, ::-1])
                n += 1
                if max_frames and n >= max_frames:
                    return
            idx += 1
    finally:
        cap.release()


def video_info(path: str) -> Tuple[float, int]:
    cap = cv2.VideoCapture(path)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    return (fps if 0 < fps < 1000 else 30.0), max(count, 0)


# ---- datasets ----------------------------------------------------------------------------------------------------
class DatasetIndex:
    """Lazily maps absolute image paths to (dataset dict, dataset name) over DATASETS.TEST + VAL + TRAIN.

    A dataset is loaded only if one of the inputs lies under its metadata ``image_root`` (or it has none), so the
    demo on unrelated images never builds or generates a dataset.
    """

    def __init__(self, cfg, input_paths: List[str], enabled: bool = True):
        self.cfg = cfg
        self.inputs = [os.path.realpath(p) for p in input_paths]
        self.enabled = enabled
        self._index: Optional[Dict[str, Tuple[Dict, str]]] = None
        self.names: List[str] = []

    def _build(self) -> Dict[str, Tuple[Dict, str]]:
        index: Dict[str, Tuple[Dict, str]] = {}
        if not self.enabled:
            return index
        try:
            from wish_d2.data.builtin import register_synthetic_from_cfg

            register_synthetic_from_cfg(self.cfg)
        except Exception as e:  # noqa: BLE001
            logger.warning("could not register the synthetic benchmark: %s", e)
        from detectron2.data import DatasetCatalog, MetadataCatalog

        from wish_d2.engine.data import dataset_dicts

        names = list(OrderedDict.fromkeys(list(self.cfg.DATASETS.TEST) + list(self.cfg.DATASETS.VAL)
                                          + list(self.cfg.DATASETS.TRAIN)))
        registered = set(DatasetCatalog.list())
        for name in names:
            if name not in registered:
                logger.info("dataset %s is not registered; not searched", name)
                continue
            root = MetadataCatalog.get(name).get("image_root", "")
            if root:
                root = os.path.realpath(root)
                if not any(p == root or p.startswith(root + os.sep) for p in self.inputs):
                    continue
            try:
                dicts = dataset_dicts(name)
            except Exception as e:  # noqa: BLE001
                say(f"warning: could not load dataset {name} to look up inputs ({type(e).__name__}: {e})", err=True)
                continue
            self.names.append(name)
            for d in dicts:
                key = os.path.realpath(d["file_name"])
                index.setdefault(key, (d, name))
        return index

    def lookup(self, path: str) -> Optional[Tuple[Dict, str]]:
        if self._index is None:
            self._index = self._build()
        return self._index.get(os.path.realpath(path))


# ---- per-frame work ----------------------------------------------------------------------------------------------
def per_image_metrics(pred_masks, pred_classes, pred_scores, annotations, h, w):
    """Per-image IoU per class (only classes in prediction or ground truth) and their mean, plus the accumulator."""
    from wish_d2.evaluation.metrics import CLASS_NAMES, InHandIoU, gt_label_map, paint_label_map

    pred_map = paint_label_map(pred_masks, pred_classes, pred_scores, h, w)
    gt_map = gt_label_map(annotations, h, w)
    acc = InHandIoU()
    acc.update(pred_map, gt_map)
    metrics = OrderedDict()
    ious = {}
    for name, i, u in zip(CLASS_NAMES, acc.intersection.tolist(), acc.union.tolist()):
        if u > 0:
            ious[name] = 100.0 * i / u
    metrics["E-mIoU"] = float(np.mean(list(ious.values()))) if ious else "n/a (no object in GT or prediction)"
    for name, v in ious.items():
        metrics[f"IoU_{name}"] = float(v)
    return metrics, acc


def _save_png(path: str, image_rgb: np.ndarray) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(image_rgb[:, :, ::-1])):
        raise IOError(f"could not write {path}")
    return path


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"


class Demo:
    def __init__(self, cfg, args, predictor):
        from wish_d2.evaluation.metrics import InHandIoU

        self.cfg = cfg
        self.args = args
        self.predictor = predictor
        self.out = os.path.abspath(args.output)
        self.datasets = DatasetIndex(cfg, [], enabled=not args.no_dataset_lookup)
        self.total_iou = InHandIoU()
        self.coco_results: List[Dict] = []
        self.entries: List[Dict] = []
        self.per_image: List[Dict] = []
        self.counts = Counter()
        self.unreadable: List[str] = []
        self.failed: List[str] = []
        self._names = Counter()
        self._said = set()
        self.generator = cfg.MODEL.PROPOSAL_GENERATOR.NAME
        self.hand_source = cfg.MODEL.WISH.HANDS.SOURCE

    def say_once(self, key: str, msg: str, err: bool = False) -> None:
        if key not in self._said:
            self._said.add(key)
            say(msg, err=err)

    def unique_name(self, base: str) -> str:
        base = _safe_name(base)
        self._names[base] += 1
        return base if self._names[base] == 1 else f"{base}_{self._names[base]}"

    def process(self, image: np.ndarray, name: str, source: str, match: Optional[Tuple[Dict, str]],
                video_scale: Optional[float] = None) -> Optional[np.ndarray]:
        """Run WISH on one RGB frame, write its overlay and panels, record metrics. Returns the frame drawn at
        native size when ``video_scale`` is given (for the annotated video)."""
        from wish_d2.evaluation.coco_export import instances_to_coco_results
        from wish_d2.utils.masks import decode_rles
        from wish_d2.utils.visualize import (CLASS_NAMES, auto_scale, draw_ground_truth, draw_predictions,
                                             draw_proposals, instances_to_arrays, rles_to_masks)

        h, w = image.shape[:2]
        hands, extra, image_id, metadata = None, {}, name, None
        if match is not None:
            d, dsname = match
            if (int(d.get("height", h)), int(d.get("width", w))) != (h, w):
                self.say_once(f"size:{source}", f"warning: {source} is {w}x{h} but dataset {dsname} says "
                              f"{d.get('width')}x{d.get('height')}; not using its hands, proposals or ground truth",
                              err=True)
                match = None
            else:
                from detectron2.data import MetadataCatalog

                hands = d.get("hands") or []
                extra = {"dataset_name": dsname}
                if d.get("proposals_file"):
                    extra["proposals_file"] = d["proposals_file"]
                image_id = d["image_id"]
                metadata = MetadataCatalog.get(dsname)
        if match is None:
            if self.args.proposals_file:
                extra = {"proposals_file": os.path.abspath(self.args.proposals_file)}
            elif self.generator == "PrecomputedMaskProposals":
                self.counts["no_proposals"] += 1
                self.failed.append(source)
                self.say_once("noprops", (
                    f"error: no proposals for {source}: MODEL.PROPOSAL_GENERATOR.NAME is PrecomputedMaskProposals and "
                    "the image is in no registered dataset (DATASETS.TEST/VAL/TRAIN). Fix: pass --proposals-file "
                    "FILE (tools/extract_proposals.py), or run a segmenter online with --opts "
                    "MODEL.PROPOSAL_GENERATOR.NAME SAMProposals. Skipping such images."), err=True)
                return None

        try:
            out = self.predictor(image, hands=hands, image_id=str(image_id), extra=extra)
        except Exception as e:  # noqa: BLE001  one bad frame must not end the run
            self.counts["failed"] += 1
            self.failed.append(source)
            key = f"fail:{type(e).__name__}:{e}"
            if key in self._said:
                self.counts["failed_repeat"] += 1
            self.say_once(key, f"error: inference failed on {source}: {type(e).__name__}: {e}", err=True)
            logger.debug("traceback for %s:\n%s", source, traceback.format_exc())
            return None

        inst = out["instances"].to("cpu")
        if self.args.confidence > 0 and len(inst):
            inst = inst[inst.scores >= self.args.confidence]
        record = out["record"]
        masks, classes, scores = instances_to_arrays(inst)
        hand_rles = list(record.get("hand_rles") or [None, None])
        hand_masks = rles_to_masks(hand_rles, h, w)
        present = [m is not None and bool(m.any()) for m in hand_masks]
        if not any(present):
            self.counts["no_hands"] += 1
            if self.hand_source == "dataset":
                hint = ("the 'dataset' hand source only knows the hands of images in the registered datasets "
                        f"({', '.join(self.datasets.names) or 'none matched'}); for other images set "
                        "MODEL.WISH.HANDS.SOURCE precomputed (with HANDS.PRECOMPUTED_FILE) or detector")
            else:
                hint = f"hand source '{self.hand_source}' found none"
            self.say_once("nohands", f"note: no hands found for {source} ({hint}). WISH predicts objects only for "
                          "visible hands, so such frames get no prediction (counted in the summary).")

        proposal_rles = record.get("proposal_rles") or []
        proposals = decode_rles(proposal_rles, h, w).numpy()
        pscores = record.get("proposal_scores")
        pscores = None if pscores is None else torch.as_tensor(pscores).float().tolist()

        # overlay at native resolution (small frames upscaled so labels stay legible)
        overlay = draw_predictions(image, masks, classes, scores, hand_masks=hand_masks,
                                   scale=auto_scale(h, w, target=max(512, h, w)))
        overlay_path = _save_png(os.path.join(self.out, "overlays", f"{name}.png"), overlay)
        panel_scale = auto_scale(h, w, target=384)
        pdir = os.path.join(self.out, "panels")
        input_panel = cv2.resize(image, (max(1, round(w * panel_scale)), max(1, round(h * panel_scale))),
                                 interpolation=cv2.INTER_AREA if panel_scale < 1 else cv2.INTER_NEAREST)
        panels = [("input", _save_png(os.path.join(pdir, f"{name}_input.png"), input_panel)),
                  ("proposals", _save_png(os.path.join(pdir, f"{name}_proposals.png"), draw_proposals(
                      image, proposals, pscores, hand_masks=hand_masks, scale=panel_scale,
                      label_limit=self.args.proposal_labels))),
                  ("prediction", _save_png(os.path.join(pdir, f"{name}_prediction.png"), draw_predictions(
                      image, masks, classes, scores, hand_masks=hand_masks, scale=panel_scale)))]

        metrics = OrderedDict()
        if match is not None:
            d, _ = match
            if "annotations" in d:
                gt = draw_ground_truth(image, d["annotations"], d.get("hands"), scale=panel_scale)
                panels.append(("ground truth", _save_png(os.path.join(pdir, f"{name}_gt.png"), gt)))
                m, acc = per_image_metrics(masks, classes, scores, d["annotations"], h, w)
                self.total_iou.merge(acc)
                self.counts["with_gt"] += 1
                metrics.update(m)
        metrics["predictions"] = int(len(masks))
        metrics["proposals"] = int(len(proposals))
        metrics["hands"] = "+".join(s for s, p in zip(("left", "right"), present) if p) or "none"

        self.coco_results.extend(instances_to_coco_results(inst, image_id, metadata))
        class_names = [CLASS_NAMES[int(c)] for c in classes]
        notes = [f"dataset {match[1]}, image_id {image_id}"] if match is not None else []
        self.entries.append({"title": name, "subtitle": source, "panels": panels, "classes": class_names,
                             "metrics": metrics, "notes": notes})
        self.per_image.append({"name": name, "source": source, "image_id": image_id,
                               "dataset": match[1] if match is not None else None, "classes": class_names,
                               "scores": [float(s) for s in scores], "metrics": dict(metrics),
                               "overlay": os.path.relpath(overlay_path, self.out)})
        self.counts["processed"] += 1
        if video_scale is not None:
            return draw_predictions(image, masks, classes, scores, hand_masks=hand_masks, scale=video_scale)
        return None

    # ---- inputs --------------------------------------------------------------------------------------------
    def run_image(self, path: str) -> None:
        try:
            image = read_image_rgb(path)
        except Exception as e:  # noqa: BLE001
            self.unreadable.append(path)
            say(f"error: cannot read image {path} ({type(e).__name__}: {e}); skipped. Fix: check that the file is "
                "a complete image (JPEG/PNG/...) or remove it from --input.", err=True)
            return
        self.process(image, self.unique_name(os.path.splitext(os.path.basename(path))[0]), path,
                     self.datasets.lookup(path))

    def run_video(self, path: str, bar) -> None:
        stem = self.unique_name(os.path.splitext(os.path.basename(path))[0])
        fps, _ = video_info(path)
        writer, video_path = None, os.path.join(self.out, f"{stem}_wish.mp4")
        try:
            for idx, frame in iter_video(path, self.args.video_stride, self.args.max_frames):
                drawn = self.process(frame, f"{stem}_f{idx:06d}", f"{path}#frame={idx}", None,
                                     video_scale=1.0 if self.args.video_output else None)
                bar.update(1)
                if drawn is None or not self.args.video_output:
                    continue
                h, w = frame.shape[:2]
                if writer is None:
                    writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*"mp4v"),
                                             fps / max(1, self.args.video_stride), (w, h))
                    if not writer.isOpened():
                        say(f"error: cannot write video {video_path}: this OpenCV build has no mp4v encoder. Fix: "
                            "install an FFmpeg-enabled OpenCV (pip install opencv-python-headless); the overlays "
                            "are written as PNGs anyway.", err=True)
                        self.args.video_output = False
                        writer = None
                        continue
                if drawn.shape[:2] != (h, w):
                    drawn = cv2.resize(drawn, (w, h), interpolation=cv2.INTER_AREA)
                writer.write(np.ascontiguousarray(drawn[:, :, ::-1]))
        except IOError as e:
            self.unreadable.append(path)
            say(str(e), err=True)
        finally:
            if writer is not None:
                writer.release()
                self.counts["videos_written"] += 1
                say(f"annotated video: {video_path}")


# ---- main --------------------------------------------------------------------------------------------------------
def main(argv=None, predictor_factory=None) -> int:
    """Run the demo; returns the exit status. ``predictor_factory(cfg, weights)`` replaces
    :class:`WISHPredictor` (tests, other front ends)."""
    args = parse_args(argv)
    from detectron2.utils.logger import setup_logger
    from tqdm import tqdm

    setup_logger(name="wish_d2", abbrev_name="wish")
    logging.getLogger("wish_d2").setLevel(logging.INFO)
    if not os.path.isfile(args.config_file):
        say(f"error: config file not found: {args.config_file}. Fix: pass a WISH config, e.g. --config-file "
            "configs/wish_synthetic.yaml", err=True)
        return 2
    cfg = setup_cfg(args)
    weights = cfg.MODEL.WEIGHTS
    if weights and not os.path.isfile(weights):
        say(f"error: weights file not found: {weights} (MODEL.WEIGHTS). Fix: train first (python tools/train_net.py "
            f"--config-file {args.config_file}, which writes OUTPUT_DIR/model_final.pth) and pass that file with "
            "--opts MODEL.WEIGHTS /path/to/model_final.pth; or pass MODEL.WEIGHTS \"\" for an untrained smoke test.",
            err=True)
        return 2
    notes = []
    if not weights:
        notes.append("MODEL.WEIGHTS is empty: the WISH heads are untrained (random init); predictions are a smoke "
                     "test of the pipeline, not results.")
    if not cfg.MODEL.WISH.CLIP.PRETRAINED:
        notes.append(f"CLIP ({cfg.MODEL.WISH.CLIP.MODEL_NAME}) is randomly initialised (MODEL.WISH.CLIP.PRETRAINED "
                     "is empty): the embedded default, not the paper's model.")
    for n in notes:
        say(f"note: {n}")

    inputs, missing = collect_inputs(args.input)
    for p in missing:
        say(f"error: input not found: {p}; skipped. Fix: check the path (images, folders, globs or videos).",
            err=True)

    if predictor_factory is None:
        from wish_d2.engine.predictor import WISHPredictor as predictor_factory
    try:
        predictor = predictor_factory(cfg, weights=weights or None)
    except FileNotFoundError as e:
        say(f"error: {e}", err=True)
        return 2

    os.makedirs(args.output, exist_ok=True)
    demo = Demo(cfg, args, predictor)
    demo.unreadable.extend(missing)
    demo.datasets.inputs = [os.path.realpath(p) for k, p in inputs if k == "image"]

    total = 0
    for kind, path in inputs:
        if kind == "image":
            total += 1
        else:
            n = video_info(path)[1]
            n = -(-n // max(1, args.video_stride)) if n else 0
            total += min(n, args.max_frames) if args.max_frames else n
    with tqdm(total=total or None, desc="WISH demo", unit="frame", dynamic_ncols=True) as bar:
        for kind, path in inputs:
            if kind == "image":
                demo.run_image(path)
                bar.update(1)
            else:
                demo.run_video(path, bar)

    # ---- outputs ---------------------------------------------------------------------------------------------
    from wish_d2.evaluation.coco_export import write_coco_results
    from wish_d2.utils.atomic import write_json
    from wish_d2.utils.gallery import write_gallery
    from wish_d2.utils.visualize import CLASS_COLORS, CLASS_NAMES, HAND_COLORS

    out = os.path.abspath(args.output)
    coco_path = write_coco_results(demo.coco_results, os.path.join(out, "predictions_coco.json"))
    overall = demo.total_iou.compute() if demo.counts["with_gt"] else {}
    c = demo.counts
    summary = OrderedDict([
        ("frames processed", c["processed"]),
        ("unreadable inputs", len(demo.unreadable)),
        ("failed frames", len(demo.failed)),
        ("frames without hands", c["no_hands"]),
        ("in-hand predictions", len(demo.coco_results)),
        ("frames with ground truth", c["with_gt"]),
    ])
    for k, v in overall.items():
        summary[f"{k} (frames with GT)"] = v
    legend = [(f"{n}-hand object" if n != "both" else "both-hands object", col)
              for n, col in zip(CLASS_NAMES, CLASS_COLORS)] + [("left hand", HAND_COLORS[0]),
                                                               ("right hand", HAND_COLORS[1])]
    html_path = write_gallery(os.path.join(out, "index.html"), demo.entries, title="WISH demo", summary=summary,
                              notes=notes, legend=legend, embed=args.embed_images)
    write_json({
        "config_file": os.path.abspath(args.config_file), "weights": weights, "untrained": not weights,
        "counts": dict(summary), "metrics": overall, "unreadable": demo.unreadable, "failed": demo.failed,
        "predictions_json": os.path.relpath(coco_path, out), "gallery": os.path.relpath(html_path, out),
        "images": demo.per_image,
    }, os.path.join(out, "summary.json"))

    say(f"done: {c['processed']} frame(s) processed, {len(demo.unreadable)} unreadable input(s), "
        f"{len(demo.failed)} failed, {c['no_hands']} without hands, {len(demo.coco_results)} in-hand prediction(s)"
        + (f"; E-mIoU {overall['E-mIoU']:.2f} over {c['with_gt']} frame(s) with ground truth"
           if "E-mIoU" in overall else ""))
    for p in demo.unreadable:
        say(f"  unreadable: {p}")
    for p in demo.failed:
        say(f"  failed: {p}")
    say(f"gallery: {html_path}")
    say(f"predictions: {coco_path}")
    if not weights:
        say("reminder: untrained heads (MODEL.WEIGHTS empty): these outputs are a smoke test.")
    return 0 if c["processed"] else 1


if __name__ == "__main__":
    sys.exit(main())
