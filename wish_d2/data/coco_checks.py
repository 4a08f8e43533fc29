"""Structural checks of a COCO instances file before Detectron2's ``load_coco_json`` and pycocotools see it.

``load_coco_json`` trusts the file: two images with one id merge into one frame, a category without ``id`` is a
``KeyError``, an RLE with list counts of the wrong total goes straight into ``frPyObjects``. Everything it relies
on is checked here, and each problem raises a ``DataFormatError`` naming the file, the record (list, index and
id) and the field. Mask *values* that are wrong but harmless to skip (a polygon with a NaN, a hand mask of the
wrong size) are left to the loader, which skips and counts them.
"""
import math
from typing import Dict, List

from ..utils.masks import MAX_MASK_SIDE, check_rle
from .common import DataFormatError

__all__ = ["check_coco_instances"]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_id(v) -> bool:
    return isinstance(v, (int, str)) and not isinstance(v, bool)


def _check_images(path: str, images: List) -> Dict:
    sizes = {}
    for i, img in enumerate(images):
        rec = f"{path}: images[{i}]"
        if not isinstance(img, dict):
            raise DataFormatError(f"{rec} is not an object")
        if not _is_id(img.get("id")):
            raise DataFormatError(f"{rec}: field id must be an integer or a string, got {img.get('id')!r}")
        rec = f"{rec} (id {img['id']!r})"
        if img["id"] in sizes:
            raise DataFormatError(f"{rec}: field id is used by another image too (annotations would merge)")
        if not isinstance(img.get("file_name"), str) or not img["file_name"]:
            raise DataFormatError(f"{rec}: field file_name must be a non-empty string")
        for key in ("height", "width"):
            v = img.get(key)
            if not _is_int(v) or not 0 < v <= MAX_MASK_SIDE:
                raise DataFormatError(f"{rec}: field {key} must be an integer in 1..{MAX_MASK_SIDE}, got {v!r}")
        sizes[img["id"]] = (img["height"], img["width"])
    return sizes


def _check_categories(path: str, categories: List) -> None:
    seen = set()
    for i, c in enumerate(categories):
        rec = f"{path}: categories[{i}]"
        if not isinstance(c, dict):
            raise DataFormatError(f"{rec} is not an object")
        if not _is_int(c.get("id")):
            raise DataFormatError(f"{rec}: field id must be an integer, got {c.get('id')!r}")
        if c["id"] in seen:
            raise DataFormatError(f"{rec} (id {c['id']}): field id is used by another category too")
        seen.add(c["id"])
        if not isinstance(c.get("name"), str):
            raise DataFormatError(f"{rec} (id {c['id']}): field name must be a string")


def _check_segmentation(rec: str, segm, size) -> None:
    if isinstance(segm, dict):
        try:
            check_rle(segm, *size) if size else check_rle(segm)
        except ValueError as e:
            raise DataFormatError(f"{rec}: field segmentation: {e}") from None
    elif isinstance(segm, list):
        if not all(isinstance(p, list) and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)
                   for p in segm):
            raise DataFormatError(f"{rec}: field segmentation must be an RLE object or a list of number lists")
    elif segm is not None:
        raise DataFormatError(f"{rec}: field segmentation must be an RLE object or a list of polygons")


def _check_annotations(path: str, annotations: List, sizes: Dict) -> None:
    seen = set()
    for i, a in enumerate(annotations):
        rec = f"{path}: annotations[{i}]"
        if not isinstance(a, dict):
            raise DataFormatError(f"{rec} is not an object")
        if not _is_id(a.get("id")):
            raise DataFormatError(f"{rec}: field id must be an integer or a string, got {a.get('id')!r}")
        rec = f"{rec} (id {a['id']!r})"
        if a["id"] in seen:
            raise DataFormatError(f"{rec}: field id is used by another annotation too")
        seen.add(a["id"])
        if not _is_id(a.get("image_id")):
            raise DataFormatError(f"{rec}: field image_id must be an integer or a string")
        if not _is_int(a.get("category_id")):
            raise DataFormatError(f"{rec}: field category_id must be an integer")
        if a.get("ignore", 0) not in (0, False):
            raise DataFormatError(f"{rec}: field ignore is not supported (set iscrowd or drop the annotation)")
        bbox = a.get("bbox")
        if bbox is not None and not (isinstance(bbox, list) and len(bbox) == 4 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)):
            raise DataFormatError(f"{rec}: field bbox must be 4 finite numbers")
        _check_segmentation(rec, a.get("segmentation"), sizes.get(a["image_id"]))


def check_coco_instances(path: str, raw) -> None:
    """Raise ``DataFormatError`` for anything in the parsed COCO file ``raw`` that ``load_coco_json`` or
    pycocotools would mis-read or crash on (module docstring)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("images"), list) or not isinstance(
        raw.get("categories"), list
    ):
        raise DataFormatError(f"{path}: expected a COCO object with 'images' and 'categories' lists")
    annotations = raw.get("annotations", [])
    if not isinstance(annotations, list):
        raise DataFormatError(f"{path}: field annotations must be a list")
    sizes = _check_images(path, raw["images"])
    _check_categories(path, raw["categories"])
    _check_annotations(path, annotations, sizes)
