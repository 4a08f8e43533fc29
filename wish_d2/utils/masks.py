"""COCO RLE helpers used wherever masks are stored: proposals, hands, pseudo-labels, predictions."""
from typing import Dict, List

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
    """COCO RLE (``counts`` str or bytes) -> bool [H, W]."""
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        rle = mask_util.frPyObjects(rle, *rle["size"])
    elif isinstance(counts, str):
        rle = {"size": rle["size"], "counts": counts.encode("ascii")}
    return mask_util.decode(rle).astype(bool)


def decode_rles(rles: List[Dict], height: int, width: int) -> torch.Tensor:
    """List of RLEs -> bool tensor [N, H, W]; an empty list gives [0, H, W]."""
    if not rles:
        return torch.zeros((0, height, width), dtype=torch.bool)
    return torch.from_numpy(np.stack([decode_rle(r) for r in rles]))


def polygons_to_mask(polygons: List[List[float]], height: int, width: int) -> np.ndarray:
    """COCO polygons (flat [x0, y0, x1, y1, ...] lists) -> bool [H, W]."""
    rles = mask_util.frPyObjects(polygons, height, width)
    return mask_util.decode(mask_util.merge(rles)).astype(bool)
