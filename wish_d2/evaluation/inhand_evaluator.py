"""Detectron2 ``DatasetEvaluator`` for in-hand object segmentation (thin glue over :mod:`.metrics`).

Reports, in Detectron2's result style (``OrderedDict`` task -> {metric: float}, percent):

* ``"inhand"``: ``E-mIoU``, ``IoU_left``, ``IoU_right``, ``IoU_both`` (dataset-level, see :mod:`.metrics`; a class
  with zero union over the dataset is absent) and ``hand_side_acc`` when ground-truth sides exist;
* ``"segm"``: COCO mask AP from Detectron2's own ``COCOEvaluator`` (``tasks=("segm",)``), fed the same outputs.

Inputs (dataset-dict-like, one per image): ``image_id``, ``height``, ``width``; ground truth ``annotations``
(``category_id`` 0 left / 1 right / 2 both, ``segmentation`` as COCO RLE — compressed or uncompressed — or polygons)
and ``hands``. Detectron2's test-time ``DatasetMapper`` drops ``annotations``; when an input has no
``annotations`` key, the ground truth (and ``hands``) are looked up by ``image_id`` in ``DatasetCatalog``.

Hand-side accuracy measures the vertical-split heuristic wherever a ground-truth side exists: a hand with
``side_source == "gt"`` counts, and is correct when the heuristic applied to its mask gives its annotated ``side``;
a hand whose ``side_source == "heuristic"`` counts when it also carries ``"gt_side"``, and is correct when
``side == gt_side``. With no counted hand in the whole evaluation, ``hand_side_acc`` is absent.

Outputs: ``outputs["instances"]`` with ``pred_masks [K, H, W]`` at the original resolution (``height`` x ``width``),
``pred_classes``, ``scores``, optionally ``hand_index``. ``pred_boxes`` is not needed (it is derived from the masks
for COCOEvaluator when missing).

Files under ``output_dir``: ``inhand_predictions_coco.json`` (COCO results, :mod:`.coco_export`), the COCO ground
truth they are scored against (the dataset's ``json_file``, copied under its own name, so that every evaluation
folder re-scores with pycocotools on its own), plus what COCOEvaluator writes (``instances_predictions.pth``,
``coco_instances_results.json``). For datasets without a ``json_file`` that ground truth is Detectron2's converted
``<dataset>_coco_format.json``, which Detectron2 caches where it first wrote it: delete it when the dataset changes.
"""
import copy
import itertools
import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from typing import Dict, List, Optional

import torch

import detectron2.utils.comm as comm
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator
from detectron2.structures import BitMasks, Instances
from detectron2.utils.logger import create_small_table

from .. import compat
from ..classes import SIDES
from ..data.hand_side import side_from_mask
from ..utils.atomic import atomic_path
from ..utils.masks import segmentation_to_mask
from .coco_export import instances_to_coco_results, write_coco_results
from .metrics import InHandIoU, gt_label_map, hand_side_accuracy, paint_label_map

__all__ = ["InHandEvaluator", "PREDICTIONS_FILE"]

PREDICTIONS_FILE = "inhand_predictions_coco.json"


class InHandEvaluator(DatasetEvaluator):
    """E-mIoU, per-class IoU, hand-side accuracy and COCO mask AP for WISH in-hand predictions."""

    def __init__(
        self,
        dataset_name: str,
        output_dir: Optional[str] = None,
        distributed: bool = True,
        compute_ap: bool = True,
    ):
        """
        Args:
            dataset_name: a registered dataset (``thing_classes = ["left", "right", "both"]``).
            output_dir: where predictions (and the converted COCO ground truth) are written; optional.
            distributed: gather over all processes and compute on the main one (Detectron2 convention;
                non-main processes return ``{}``).
            compute_ap: also report COCO mask AP through Detectron2's ``COCOEvaluator``. For datasets without a
                ``json_file`` Detectron2 needs a folder for the converted ground truth: with ``output_dir=None`` a
                temporary folder is made and kept (the dataset's metadata points at it from then on).
        """
        self._logger = logging.getLogger(__name__)
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._distributed = distributed
        self._metadata = MetadataCatalog.get(dataset_name)
        self._cpu = torch.device("cpu")
        self._gt_index = None  # image_id -> dataset dict, built lazily when inputs carry no annotations
        self._coco_evaluator = None
        if compute_ap:
            coco_dir = output_dir
            if coco_dir is None and not hasattr(self._metadata, "json_file"):
                coco_dir = tempfile.mkdtemp(prefix=f"wish_eval_{dataset_name}_")
                self._logger.info(f"COCO ground truth for '{dataset_name}' is converted under {coco_dir}")
            self._coco_evaluator = COCOEvaluator(
                dataset_name,
                tasks=("segm",),
                distributed=distributed,
                output_dir=coco_dir,
                use_fast_impl=compat.HAS_COMPILED_OPS,
            )
        self.reset()

    def reset(self):
        self._iou = InHandIoU()
        self._hand_counts = [0, 0]  # [correct, total] heuristic sides checked against gt_side
        self._coco_results: List[Dict] = []
        if self._coco_evaluator is not None:
            self._coco_evaluator.reset()

    # ------------------------------------------------------------------------------------------------------
    def _ground_truth(self, inp) -> Dict:
        if "annotations" in inp:
            return inp
        if self._gt_index is None:
            self._gt_index = {d["image_id"]: d for d in DatasetCatalog.get(self._dataset_name)}
        image_id = inp["image_id"]
        if image_id not in self._gt_index:
            raise KeyError(f"image_id {image_id!r} has no annotations in the input nor in '{self._dataset_name}'")
        return self._gt_index[image_id]

    @staticmethod
    def _pred_instances(output, height: int, width: int) -> Instances:
        instances = output["instances"].to(torch.device("cpu"))  # a new Instances: the output is not modified
        if instances.has("pred_masks"):
            masks = instances.pred_masks
            masks = getattr(masks, "tensor", masks)  # BitMasks -> tensor
            if masks.dtype != torch.bool:
                masks = masks >= 0.5
            instances.pred_masks = masks
        elif len(instances) == 0:
            instances.pred_masks = torch.zeros((0, height, width), dtype=torch.bool)
        else:
            raise ValueError("InHandEvaluator needs outputs['instances'].pred_masks")
        if tuple(instances.pred_masks.shape[1:]) != (height, width):
            raise ValueError(
                f"pred_masks are {tuple(instances.pred_masks.shape[1:])}; InHandEvaluator needs them at the "
                f"original resolution ({height}, {width}) (run detector_postprocess)"
            )
        if not instances.has("pred_boxes"):  # COCOEvaluator's instances_to_coco_json reads boxes
            instances.pred_boxes = BitMasks(instances.pred_masks).get_bounding_boxes()
        return instances

    @staticmethod
    def _heuristic_and_true_side(hand: Dict, height: int, width: int):
        """(heuristic side, annotated side) of a hand, or None when no annotated side exists."""
        if hand.get("side_source") == "heuristic":
            return (hand["side"], hand["gt_side"]) if hand.get("gt_side") is not None else None
        if hand.get("side_source") == "gt" and hand.get("side") in SIDES and "segmentation" in hand:
            mask = torch.from_numpy(segmentation_to_mask(hand["segmentation"], height, width))
            guess = side_from_mask(mask.numpy(), width)
            return None if guess is None else (guess, hand["side"])
        return None

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            if "instances" not in out:
                continue
            height, width = int(inp["height"]), int(inp["width"])
            instances = self._pred_instances(out, height, width)
            pred_map = paint_label_map(
                instances.pred_masks, instances.pred_classes, instances.scores, height, width
            )
            record = self._ground_truth(inp)
            self._iou.update(pred_map, gt_label_map(record.get("annotations"), height, width))

            for hand in record.get("hands", []) or []:
                pair = self._heuristic_and_true_side(hand, height, width)
                if pair is not None:
                    self._hand_counts[0] += int(hand_side_accuracy([pair[0]], [pair[1]]) == 100.0)
                    self._hand_counts[1] += 1

            if self._output_dir:
                self._coco_results.extend(
                    instances_to_coco_results(instances, inp["image_id"], self._metadata)
                )
            if self._coco_evaluator is not None:
                self._coco_evaluator.process([inp], [{"instances": instances}])

    def _copy_ground_truth(self) -> None:
        """The ground truth the predictions are scored against, beside them (Detectron2 converts it once, into the
        first evaluation folder, and points the dataset's metadata there for every later one)."""
        src = getattr(self._metadata, "json_file", None)
        if not src or not os.path.isfile(src):
            return
        dst = os.path.join(self._output_dir, os.path.basename(src))
        if os.path.abspath(src) != os.path.abspath(dst):
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)

    def evaluate(self):
        # Every process takes part in every collective call, in the same order, before non-main ones return.
        coco_res = self._coco_evaluator.evaluate() if self._coco_evaluator is not None else {}
        if self._distributed:
            comm.synchronize()
            states = comm.gather(self._iou.state(), dst=0)
            hand_counts = comm.gather(self._hand_counts, dst=0)
            coco_results = comm.gather(self._coco_results, dst=0) if self._output_dir else [[]]
            if not comm.is_main_process():
                return {}
        else:
            states, hand_counts, coco_results = [self._iou.state()], [self._hand_counts], [self._coco_results]

        iou = InHandIoU()
        for s in states:
            iou.merge(s)
        inhand = iou.compute()
        correct = sum(c[0] for c in hand_counts)
        total = sum(c[1] for c in hand_counts)
        if total:
            inhand["hand_side_acc"] = 100.0 * correct / total

        if self._output_dir:
            path = os.path.join(self._output_dir, PREDICTIONS_FILE)
            write_coco_results(list(itertools.chain(*coco_results)), path)
            self._logger.info(f"Saved {sum(len(r) for r in coco_results)} COCO predictions to {path}")
            self._copy_ground_truth()

        if inhand:
            self._logger.info(
                f"In-hand segmentation on {self._dataset_name} (percent; {total} heuristic hand sides checked):\n"
                + create_small_table(inhand)
            )
        else:
            self._logger.warning(f"In-hand segmentation on {self._dataset_name}: nothing to evaluate.")

        results = OrderedDict()
        results["inhand"] = inhand
        for task, res in coco_res.items():
            results[task] = copy.deepcopy(res)
        return results
