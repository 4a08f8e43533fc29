"""Masks as VISOR polygons: exact pixel outlines for writing, and the union RLE of a polygon list for reading them
back the way pycocotools (and so the VISOR loader) rasterises them."""
from typing import List

import cv2
import numpy as np

from ...utils.masks import polygons_to_rle

__all__ = ["trace_polygons", "trace_scaled_polygons", "xy_polygons_to_rle"]


def trace_polygons(mask: np.ndarray) -> List[List[List[float]]]:
    """Exact pixel outline polygons of a mask (outer boundaries only), VISOR style ``[[x, y], ...]``.

    Traced on the 2x nearest upsampling at pixel centres and simplified by at most a quarter pixel, so
    pycocotools rasterises them back to the same pixels (holes are filled; checked in the tests)."""
    up = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = cv2.approxPolyDP(c, 0.5, True)
        if len(c) < 3:
            continue
        pts = (c.reshape(-1, 2).astype(np.float64) + 0.5) / 2.0
        polys.append(pts.tolist())
    return polys


def trace_scaled_polygons(mask: np.ndarray, sx: float, sy: float) -> List[List[List[float]]]:
    """The outlines of :func:`trace_polygons` in a frame ``sx`` x ``sy`` times larger (coordinates rounded to 0.1
    px), traced on the mask's bounding box only: a mask drawn at a working resolution becomes full-resolution
    polygons without rasterising anything at full resolution."""
    x0, y0, w, h = cv2.boundingRect(mask.astype(np.uint8))
    if w == 0 or h == 0:
        return []
    up = cv2.resize(mask[y0:y0 + h, x0:x0 + w].astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        c = cv2.approxPolyDP(c, 0.5, True)
        if len(c) >= 3:
            pts = ((c.reshape(-1, 2).astype(np.float64) + 0.5) / 2.0 + (x0, y0)) * (sx, sy)
            polys.append(np.round(pts, 1).tolist())
    return polys


def xy_polygons_to_rle(polys, H, W):
    """``[[(x, y), ...], ...]`` point lists -> one merged RLE."""
    return polygons_to_rle([[c for pt in p for c in pt] for p in polys], H, W)
