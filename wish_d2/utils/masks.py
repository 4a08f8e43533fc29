"""COCO RLE helpers used wherever masks are stored: proposals, hands, pseudo-labels, predictions."""
from typing import Dict, List, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch


def encode_rle(mask) -> Dict:
    """Binary [H, W] mask (numpy or tensor) -> COCO RLE with ``counts`` as str (json-safe)."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_rle(rle: Dict) -> np.ndarray:
    """COCO RLE (``counts`` str, bytes or an uncompressed list) -> bool [H, W]."""
    return mask_util.decode(_bytes_rle(rle)).astype(bool)


def decode_rles(rles: List[Dict], height: int, width: int) -> torch.Tensor:
    """List of RLEs -> bool tensor [N, H, W]; an empty list gives [0, H, W]."""
    if not rles:
        return torch.zeros((0, height, width), dtype=torch.bool)
    return torch.from_numpy(np.stack([decode_rle(r) for r in rles]))


def polygons_to_mask(polygons: List[List[float]], height: int, width: int) -> np.ndarray:
    """COCO polygons (flat [x0, y0, x1, y1, ...] lists) -> bool [H, W]."""
    rles = mask_util.frPyObjects(polygons, height, width)
    return mask_util.decode(mask_util.merge(rles)).astype(bool)


def segmentation_to_mask(segm, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (RLE dict or polygon list) -> bool ``[height, width]``; other types or sizes raise."""
    if isinstance(segm, dict):
        mask = decode_rle(segm)
    elif isinstance(segm, list):
        mask = polygons_to_mask(segm, height, width)
    else:
        raise TypeError(f"unsupported segmentation type {type(segm)}")
    if mask.shape != (height, width):
        raise ValueError(f"ground-truth mask is {mask.shape}, the image is ({height}, {width})")
    return mask.astype(bool, copy=False)


def rle_to_str(rle: Dict) -> Dict:
    """A pycocotools RLE (bytes ``counts``) -> the json-safe form with ``counts`` as str."""
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": counts}


def polygons_to_rle(polygons: Sequence[Sequence[float]], height: int, width: int) -> Dict:
    """Flat COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` (each >= 3 points) -> one merged RLE (str counts).

    Rasterised by pycocotools directly to RLE, never through a dense mask, so large frames stay cheap.
    """
    if not polygons:
        raise ValueError("polygons_to_rle needs at least one polygon")
    for p in polygons:
        if len(p) < 6 or len(p) % 2:
            # pycocotools reads a 4-number list as a box: never let a degenerate polygon through.
            raise ValueError(f"degenerate polygon with {len(p)} coordinates")
    rles = mask_util.frPyObjects([list(map(float, p)) for p in polygons], height, width)
    return rle_to_str(mask_util.merge(rles))


def merge_rles(rles: Sequence[Dict]) -> Dict:
    """Union of RLEs of the same size (str or bytes counts) -> RLE with str counts."""
    rles = [_bytes_rle(r) for r in rles]
    if len(rles) == 1:
        return rle_to_str(rles[0])
    return rle_to_str(mask_util.merge(rles))


def _bytes_rle(rle: Dict) -> Dict:
    counts = rle["counts"]
    if isinstance(counts, str):
        return {"size": list(rle["size"]), "counts": counts.encode("ascii")}
    if isinstance(counts, list):
        return mask_util.frPyObjects(rle, *rle["size"])
    return rle


def rle_ious(rles_a: Sequence[Dict], rles_b: Sequence[Dict]) -> np.ndarray:
    """``[len(a), len(b)]`` IoU matrix of two lists of same-size RLEs (str or bytes counts; pycocotools ``iou``)."""
    if not rles_a or not rles_b:
        return np.zeros((len(rles_a), len(rles_b)))
    return np.asarray(mask_util.iou([_bytes_rle(r) for r in rles_a], [_bytes_rle(r) for r in rles_b],
                                    [0] * len(rles_b)))


def rle_area(rle: Dict) -> int:
    return int(mask_util.area(_bytes_rle(rle)))


def rle_bbox(rle: Dict) -> List[float]:
    """XYWH_ABS box of an RLE (pycocotools ``toBbox``)."""
    return [float(v) for v in mask_util.toBbox(_bytes_rle(rle))]
