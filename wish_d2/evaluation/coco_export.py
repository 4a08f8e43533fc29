"""Export WISH predictions as a COCO results json (instance segmentation).

Category ids follow exactly what Detectron2 0.6 writes for the ground truth in
``detectron2.data.datasets.coco.convert_to_coco_dict`` and what ``COCOEvaluator`` does for results:

* metadata has ``thing_dataset_id_to_contiguous_id`` (e.g. loaded with ``load_coco_json``):
  ``category_id = reverse_mapping[contiguous id]``;
* otherwise the contiguous id is written **unchanged** (0 left, 1 right, 2 both). Detectron2 0.6 does *not* add 1
  here, so the GT json it converts on the fly has category ids 0..2 and so do these results.

Entries are ``{"image_id", "category_id", "segmentation": RLE with str counts, "score"}`` plus ``"hand_index"``
when the instances carry it. ``"bbox"`` is left out by default: pycocotools' ``loadRes`` takes a result's area from
its box when ``bbox`` is present, which changes the small/medium/large split of mask AP (Detectron2's COCOEvaluator
drops the box for ``segm`` for the same reason). Pass ``include_bbox=True`` to add the tight XYWH box of each mask.

Note: pycocotools' ``COCO.loadRes`` cannot load an empty results list; an export with no predictions is still
written (``[]``), but evaluate it only when it has entries.
"""
from typing import Any, Dict, Iterable, List, Mapping

import numpy as np
import pycocotools.mask as mask_util
import torch

from ..utils.atomic import write_json

__all__ = [
    "category_id_mapper",
    "instances_to_coco_results",
    "predictions_to_coco_results",
    "write_coco_results",
    "export_coco_predictions",
]


def category_id_mapper(metadata=None):
    """Return ``f(contiguous_id) -> dataset category id`` matching Detectron2 0.6's ``convert_to_coco_dict``."""
    mapping = getattr(metadata, "thing_dataset_id_to_contiguous_id", None) if metadata is not None else None
    if isinstance(metadata, Mapping):
        mapping = metadata.get("thing_dataset_id_to_contiguous_id")
    if mapping:
        reverse = {int(v): int(k) for k, v in mapping.items()}

        def mapper(cid: int) -> int:
            if int(cid) not in reverse:
                raise KeyError(f"predicted class {cid} is not in thing_dataset_id_to_contiguous_id {dict(mapping)}")
            return reverse[int(cid)]

        return mapper
    return lambda cid: int(cid)


def _json_id(image_id):
    if isinstance(image_id, torch.Tensor):
        image_id = image_id.item()
    if isinstance(image_id, np.generic):
        image_id = image_id.item()
    return image_id


def _to_list(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().tolist()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def instances_to_coco_results(
    instances, image_id, metadata=None, include_bbox: bool = False
) -> List[Dict[str, Any]]:
    """One image's predictions -> COCO result entries.

    Args:
        instances: Detectron2 ``Instances`` (or anything with attribute access / ``has``) with ``pred_masks``
            ``[K, H, W]`` (bool; float masks are thresholded at 0.5) at the original image resolution,
            ``pred_classes [K]`` (0 left, 1 right, 2 both), ``scores [K]``, optionally ``hand_index [K]``
            (or ``[K, ...]``), written through as ``"hand_index"``.
        image_id: the dataset dict's ``image_id`` (str or int), as in the ground-truth json.
        metadata: the dataset's metadata (for ``thing_dataset_id_to_contiguous_id``); ``None`` = identity.
        include_bbox: add ``"bbox"`` (XYWH of the mask) to each entry; see the module note.
    """
    num = len(instances)
    if num == 0:
        return []
    masks = instances.pred_masks
    if not isinstance(masks, torch.Tensor):  # e.g. BitMasks
        masks = getattr(masks, "tensor", masks)
    masks = torch.as_tensor(masks).detach().cpu()
    if masks.dtype != torch.bool:
        masks = masks.float() >= 0.5
    masks_np = np.asfortranarray(masks.numpy().astype(np.uint8).transpose(1, 2, 0))  # [H, W, K]
    rles = mask_util.encode(masks_np)
    classes = _to_list(instances.pred_classes)
    scores = _to_list(instances.scores)
    has_hand = instances.has("hand_index") if hasattr(instances, "has") else hasattr(instances, "hand_index")
    hand_index = _to_list(instances.hand_index) if has_hand else None
    boxes = mask_util.toBbox(rles).tolist() if include_bbox else None
    to_dataset_id = category_id_mapper(metadata)
    image_id = _json_id(image_id)

    results = []
    for k in range(num):
        rle = rles[k]
        rle["counts"] = rle["counts"].decode("ascii")
        entry = {
            "image_id": image_id,
            "category_id": to_dataset_id(int(classes[k])),
            "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"]},
            "score": float(scores[k]),
        }
        if include_bbox:
            entry["bbox"] = [float(v) for v in boxes[k]]
        if hand_index is not None:
            entry["hand_index"] = hand_index[k]
        results.append(entry)
    return results


def predictions_to_coco_results(
    predictions: Iterable[Mapping], metadata=None, include_bbox: bool = False
) -> List[Dict[str, Any]]:
    """``[{"image_id", "instances": Instances}, ...]`` (one dict per image) -> flat list of COCO result entries."""
    results = []
    for pred in predictions:
        results.extend(
            instances_to_coco_results(pred["instances"], pred["image_id"], metadata, include_bbox=include_bbox)
        )
    return results


def write_coco_results(results: List[Dict[str, Any]], path: str) -> str:
    """Write ready COCO result entries to ``path`` atomically; returns ``path``."""
    write_json(list(results), path)
    return path


def export_coco_predictions(
    predictions: Iterable[Mapping], path: str, metadata=None, include_bbox: bool = False
) -> str:
    """Convert per-image predictions and write them atomically as a COCO results json; returns ``path``.

    ``predictions`` holds per-image dicts ``{"image_id", "instances"}`` (see :func:`predictions_to_coco_results`);
    ready COCO result entries (dicts with ``"category_id"`` and no ``"instances"``) are written through unchanged.
    The file loads with ``COCO(gt_json).loadRes(path)`` against the ground-truth json Detectron2 writes with
    ``convert_to_coco_json`` for the same dataset (or the dataset's own json when it was loaded with
    ``load_coco_json`` and ``metadata`` is passed).
    """
    results = []
    for pred in predictions:
        if "instances" in pred:
            results.extend(
                instances_to_coco_results(pred["instances"], pred["image_id"], metadata, include_bbox=include_bbox)
            )
        else:
            results.append(dict(pred))
    return write_coco_results(results, path)
