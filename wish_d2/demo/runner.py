"""The demo's per-frame work: run :class:`~wish_d2.engine.predictor.WISHPredictor` on images and video frames, draw
overlays and gallery panels, score frames that have ground truth, and keep the counts for the summary.

One bad input (unreadable image, undecodable video, a frame whose inference fails) is named, counted and skipped;
the run goes on.
"""
import logging
import os
import re
import traceback
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch

from wish_d2.evaluation.coco_export import instances_to_coco_results
from wish_d2.utils.atomic import DiskFullError
from wish_d2.evaluation.metrics import InHandIoU
from wish_d2.utils.masks import decode_rles
from wish_d2.classes import SIDES
from wish_d2.utils.visualize import (CLASS_NAMES, auto_scale, draw_ground_truth, draw_predictions, draw_proposals,
                                     instances_to_arrays, rles_to_masks)

from .console import say
from .dataset_index import DatasetIndex
from .frame_metrics import per_image_metrics
from ..data.image_io import ImageReadError, read_image_rgb
from .output_dir import DemoOutputDir
from .video import AnnotatedVideoWriter, VideoCutShort, iter_video, video_info

__all__ = ["DemoOptions", "DemoRunner", "safe_name"]

logger = logging.getLogger(__name__)


@dataclass
class DemoOptions:
    """What the demo does besides the config (the command line of ``tools/demo.py``)."""

    #: image files, folders, glob patterns or video files (see wish_d2.demo.inputs.collect_inputs)
    inputs: List[str]
    #: the output folder (see wish_d2.demo.output_dir for when it may already hold files)
    output: str
    #: clear the files an earlier demo run wrote in ``output`` instead of refusing a non-empty folder
    overwrite: bool = False
    #: drop predictions scoring below this (0 keeps what the model's calibrated contact threshold kept)
    confidence: float = 0.0
    #: write ``<video>_wish.mp4`` per video
    video_output: bool = False
    video_stride: int = 1
    #: at most this many frames per video (0 = all)
    max_frames: int = 0
    #: precomputed proposals (JSON lines) for images outside the registered datasets
    proposals_file: str = ""
    #: inline every gallery image as a data URI
    embed_images: bool = False
    #: match inputs to registered datasets (their hands, proposals and ground truth)
    dataset_lookup: bool = True
    #: label the first N proposals of the proposals panel
    proposal_labels: int = 0
    #: video inputs: temporal inference (linking + smoothing, docs/VIDEO.md) and a timeline plot; False = per frame
    temporal: bool = True


def safe_name(text: str) -> str:
    """A file-name-safe version of ``text`` (never empty)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"


class DemoRunner:
    """Processes the inputs of one demo run into ``out`` and collects what the summary and gallery report."""

    def __init__(self, cfg, options: DemoOptions, predictor, out: DemoOutputDir):
        self.cfg = cfg
        self.options = options
        self.predictor = predictor
        self.out = out
        self.datasets = DatasetIndex(cfg, enabled=options.dataset_lookup)
        self.total_iou = InHandIoU()
        self.coco_results: List[Dict] = []
        #: gallery entries (see wish_d2.utils.gallery.write_gallery)
        self.entries: List[Dict] = []
        #: one record per processed frame, for summary.json
        self.per_image: List[Dict] = []
        self.counts = Counter()
        self.unreadable: List[str] = []
        self.failed: List[str] = []
        #: videos that stopped decoding before their declared frame count (lost frames in ``counts``)
        self.cut_short: List[str] = []
        self.video_output = options.video_output
        self._names = Counter()
        self._said = set()
        self.generator = cfg.MODEL.PROPOSAL_GENERATOR.NAME
        self.hand_source = cfg.MODEL.WISH.HANDS.SOURCE
        #: the configured hand detector, built on the first frame outside the datasets (see _detected_hands)
        self.detector = None

    def say_once(self, key: str, msg: str, err: bool = False) -> None:
        """Say ``msg`` the first time ``key`` comes up: one explanation per kind of problem, not one per frame."""
        if key not in self._said:
            self._said.add(key)
            say(msg, err=err)

    def unique_name(self, base: str) -> str:
        """Output name for an input: its safe stem, suffixed ``_2``, ``_3``... when stems repeat."""
        base = safe_name(base)
        self._names[base] += 1
        return base if self._names[base] == 1 else f"{base}_{self._names[base]}"

    # ---- one frame -------------------------------------------------------------------------------------------
    def _detected_hands(self, image: np.ndarray, source: str) -> Optional[List[Dict]]:
        """Hands of a frame outside every registered dataset from the configured detector
        (``MODEL.WISH.HANDS.DETECTOR_CONFIG`` / ``DETECTOR_WEIGHTS``), when the hand source is ``dataset`` (which knows
        only the datasets' hands). The ``detector`` and ``precomputed`` sources find such hands themselves."""
        h = self.cfg.MODEL.WISH.HANDS
        if self.hand_source != "dataset" or not (h.DETECTOR_CONFIG and h.DETECTOR_WEIGHTS) or self.detector is False:
            return None
        if self.detector is None:
            from ..modeling.hands import build_detector_hands

            try:
                self.detector = build_detector_hands(self.cfg)
            except (OSError, ValueError, RuntimeError) as e:
                self.detector = False
                self.say_once("detector", f"error: the configured hand detector cannot be loaded ({e}); frames "
                              "outside the registered datasets get no hands", err=True)
                return None
            self.say_once("detector", f"note: hands of images outside the registered datasets (e.g. {source}) come "
                          f"from the hand detector {h.DETECTOR_CONFIG}")
        return self.detector.detect(image)

    def _frame_context(self, image: np.ndarray, name: str, source: str, match: Optional[Tuple[Dict, str]]):
        """-> (hands, extra predictor inputs, image id, metadata, match) or None when the frame cannot be run."""
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
            hands = self._detected_hands(image, source)
            if self.options.proposals_file:
                extra = {"proposals_file": os.path.abspath(self.options.proposals_file)}
            elif self.generator == "PrecomputedMaskProposals":
                self.counts["no_proposals"] += 1
                self.failed.append(source)
                self.say_once("noprops", (
                    f"error: no proposals for {source}: MODEL.PROPOSAL_GENERATOR.NAME is PrecomputedMaskProposals and "
                    "the image is in no registered dataset (DATASETS.TEST/VAL/TRAIN). Fix: pass --proposals-file "
                    "FILE (tools/extract_proposals.py), or run a segmenter online with --opts "
                    "MODEL.PROPOSAL_GENERATOR.NAME SAMProposals. Skipping such images."), err=True)
                return None
        return hands, extra, image_id, metadata, match

    def _note_missing_hands(self, source: str) -> None:
        self.counts["no_hands"] += 1
        if self.hand_source == "dataset":
            hint = ("the 'dataset' hand source only knows the hands of images in the registered datasets "
                    f"({', '.join(self.datasets.names) or 'none matched'}); for other images configure a hand "
                    "detector (MODEL.WISH.HANDS.DETECTOR_CONFIG and DETECTOR_WEIGHTS, from "
                    "tools/train_hand_detector.py), or set MODEL.WISH.HANDS.SOURCE precomputed or detector")
        else:
            hint = f"hand source '{self.hand_source}' found none"
        self.say_once("nohands", f"note: no hands found for {source} ({hint}). WISH predicts objects only for "
                      "visible hands, so such frames get no prediction (counted in the summary).")

    def process(self, image: np.ndarray, name: str, source: str, match: Optional[Tuple[Dict, str]],
                video_scale: Optional[float] = None) -> Optional[np.ndarray]:
        """Run WISH on one RGB frame, write its overlay and panels, record metrics. Returns the frame drawn at
        native size when ``video_scale`` is given (for the annotated video)."""
        h, w = image.shape[:2]
        context = self._frame_context(image, name, source, match)
        if context is None:
            return None
        hands, extra, image_id, metadata, match = context
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
        if self.options.confidence > 0 and len(inst):
            inst = inst[inst.scores >= self.options.confidence]
        record = out["record"]
        masks, classes, scores = instances_to_arrays(inst)
        hand_masks = rles_to_masks(list(record.get("hand_rles") or [None, None]), h, w)
        present = [m is not None and bool(m.any()) for m in hand_masks]
        if not any(present):
            self._note_missing_hands(source)
        proposals = decode_rles(record.get("proposal_rles") or [], h, w).numpy()
        pscores = record.get("proposal_scores")
        pscores = None if pscores is None else torch.as_tensor(pscores).float().tolist()

        # overlay at native resolution (small frames upscaled so labels stay legible)
        overlay = draw_predictions(image, masks, classes, scores, hand_masks=hand_masks,
                                   scale=auto_scale(h, w, target=max(512, h, w)))
        overlay_path = self.out.save_png(f"overlays/{name}.png", overlay)
        panel_scale = auto_scale(h, w, target=384)
        input_panel = cv2.resize(image, (max(1, round(w * panel_scale)), max(1, round(h * panel_scale))),
                                 interpolation=cv2.INTER_AREA if panel_scale < 1 else cv2.INTER_NEAREST)
        panels = [("input", self.out.save_png(f"panels/{name}_input.png", input_panel)),
                  ("proposals", self.out.save_png(f"panels/{name}_proposals.png", draw_proposals(
                      image, proposals, pscores, hand_masks=hand_masks, scale=panel_scale,
                      label_limit=self.options.proposal_labels))),
                  ("prediction", self.out.save_png(f"panels/{name}_prediction.png", draw_predictions(
                      image, masks, classes, scores, hand_masks=hand_masks, scale=panel_scale)))]

        metrics = OrderedDict()
        if match is not None and "annotations" in match[0]:
            d = match[0]
            gt = draw_ground_truth(image, d["annotations"], d.get("hands"), scale=panel_scale)
            panels.append(("ground truth", self.out.save_png(f"panels/{name}_gt.png", gt)))
            m, acc = per_image_metrics(masks, classes, scores, d["annotations"], h, w)
            self.total_iou.merge(acc)
            self.counts["with_gt"] += 1
            metrics.update(m)
        metrics["predictions"] = int(len(masks))
        metrics["proposals"] = int(len(proposals))
        metrics["hands"] = "+".join(s for s, p in zip(SIDES, present) if p) or "none"

        self.coco_results.extend(instances_to_coco_results(inst, image_id, metadata))
        class_names = [CLASS_NAMES[int(c)] for c in classes]
        notes = [f"dataset {match[1]}, image_id {image_id}"] if match is not None else []
        self.entries.append({"title": name, "subtitle": source, "panels": panels, "classes": class_names,
                             "metrics": metrics, "notes": notes})
        self.per_image.append({"name": name, "source": source, "image_id": image_id,
                               "dataset": match[1] if match is not None else None, "classes": class_names,
                               "scores": [float(s) for s in scores], "metrics": dict(metrics),
                               "overlay": os.path.relpath(overlay_path, self.out.root)})
        self.counts["processed"] += 1
        if video_scale is not None:
            return draw_predictions(image, masks, classes, scores, hand_masks=hand_masks, scale=video_scale)
        return None

    # ---- inputs ----------------------------------------------------------------------------------------------
    def run_image(self, path: str) -> None:
        """One image file; an unreadable one is named, counted and skipped."""
        try:
            image = read_image_rgb(path)
        except ImageReadError as e:
            self.unreadable.append(path)
            say(f"error: {e}; skipped. Fix: check that the file is a complete image (JPEG/PNG/...) or remove it "
                "from --input.", err=True)
            return
        self.process(image, self.unique_name(os.path.splitext(os.path.basename(path))[0]), path,
                     self.datasets.lookup(path))

    def run_video(self, path: str, bar) -> None:
        """Every sampled frame of one video (never matched to a dataset), and the annotated video if asked. A video
        that stops decoding early is named and its lost frames counted; an annotated video that cannot be written
        completely raises (see :class:`~wish_d2.demo.video.AnnotatedVideoWriter`)."""
        stem = self.unique_name(os.path.splitext(os.path.basename(path))[0])
        fps, _ = video_info(path)
        stride = max(1, self.options.video_stride)
        writer = None
        single, recorder = self.predictor, None
        if self.options.temporal:
            from wish_d2.video.demo import temporal_predictor_for

            recorder = temporal_predictor_for(single)  # None for a stand-in predictor without a WISH model
            self.predictor = recorder or single
        try:
            for idx, frame in iter_video(path, stride, self.options.max_frames):
                if recorder is not None:
                    recorder.note_frame(idx)
                drawn = self.process(frame, f"{stem}_f{idx:06d}", f"{path}#frame={idx}", None,
                                     video_scale=1.0 if self.video_output else None)
                bar.update(1)
                if not self.video_output:
                    continue
                if drawn is None:  # a failed frame (counted) stays in, unannotated: the video keeps its length
                    drawn = frame
                h, w = frame.shape[:2]
                if writer is None:
                    writer = AnnotatedVideoWriter(self.out.path(f"{stem}_wish.mp4"), fps / stride, (w, h))
                    if not writer.opened:
                        say(f"error: cannot write video {writer.path}: this OpenCV build has no mp4v encoder. Fix: "
                            "install an FFmpeg-enabled OpenCV (pip install opencv-python-headless); the overlays "
                            "are written as PNGs anyway.", err=True)
                        self.video_output = False
                        writer = None
                        continue
                if drawn.shape[:2] != (h, w):
                    drawn = cv2.resize(drawn, (w, h), interpolation=cv2.INTER_AREA)
                writer.write(drawn[:, :, ::-1])
        except VideoCutShort as e:
            self.cut_short.append(path)
            self.counts["lost_frames"] += e.declared - e.decoded
            say(f"error: {e}", err=True)
        except BaseException as e:
            if writer is not None:
                writer.abort()
            if not isinstance(e, IOError) or isinstance(e, DiskFullError):  # the decoder's errors are IOError
                raise
            self.unreadable.append(path)
            writer = None
            say(str(e), err=True)
        finally:
            self.predictor = single
        if writer is not None:
            video_path = writer.close()
            self.counts["videos_written"] += 1
            say(f"annotated video: {video_path}" + (" (up to where the input stops decoding)"
                                                     if path in self.cut_short else ""))
        if recorder is not None:
            self._add_timeline(recorder, stem, path, fps)

    def _add_timeline(self, recorder, stem: str, path: str, fps: float) -> None:
        """The gallery entry with the video's timeline plot (each hand's held object over time)."""
        from wish_d2.video.demo import ground_truth_timeline

        try:
            gt = ground_truth_timeline(path)
        except ValueError as e:
            gt = None
            self.counts["timeline_problems"] += 1
            say(f"warning: {e}; the timeline of {path} is drawn without ground truth", err=True)
        png = recorder.plot(self.out.path(f"timelines/{stem}_timeline.png"), fps, title=os.path.basename(path),
                            ground_truth=gt)
        if png is not None:
            self.entries.append({"title": f"{stem}: held object over time", "subtitle": path,
                                 "panels": [("timeline", png)], "classes": [], "metrics": {
                                     "frames": len(recorder.frames), "ground truth": "yes" if gt else "no"},
                                 "notes": ["temporal inference (linking + smoothing); per-frame dotted"]})
