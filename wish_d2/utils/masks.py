"""COCO RLE helpers used wherever masks are stored: proposals, hands, pseudo-labels, predictions.

pycocotools trusts its input: a NaN or 1e9 polygon coordinate crashes or exhausts memory in ``frPyObjects``, and
RLE counts that do not add up to ``height * width`` make ``decode`` write past its buffer. Masks from files
therefore go through :func:`check_rle` / :func:`polygon_problem` first; :func:`polygons_to_rle` refuses what
``polygon_problem`` rejects.
"""
import math
from typing import Dict, List, Optional, Sequence

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
    """A COCO ``segmentation`` (RLE dict or polygon list) -> bool ``[height, width]``; other types, sizes, or
    RLEs / polygons that pycocotools would mis-decode raise ``ValueError`` / ``TypeError``."""
    if isinstance(segm, dict):
        if isinstance(segm.get("size"), (list, tuple)) and len(segm["size"]) == 2 and \
                [int(v) for v in segm["size"]] != [int(height), int(width)]:
            raise ValueError(f"ground-truth mask is {tuple(segm['size'])}, the image is ({height}, {width})")
        mask = decode_rle(check_rle(segm, height, width))
    elif isinstance(segm, list):
        for p in segm:
            problem = polygon_problem(p, height, width, allow_outside=True)
            if problem:
                raise ValueError(f"ground-truth polygon: {problem}")
        mask = polygons_to_mask(segm, height, width)
    else:
        raise TypeError(f"unsupported segmentation type {type(segm)}")
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
        # pycocotools reads a 4-number list as a box, and loops without end on huge coordinates.
        problem = polygon_problem(p, height, width, allow_outside=True)
        if problem:
            raise ValueError(f"{problem}: polygon with {len(p)} coordinates")
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


# Largest mask side accepted from a file: above any camera frame, and small enough that h * w stays far from the
# uint32 counts of pycocotools.
MAX_MASK_SIDE = 1 << 15
_MAX_RLE_TOKEN = 7  # 7 * 5 = 35 bits: more than any count of a MAX_MASK_SIDE^2 mask needs


def polygon_problem(flat: Sequence[float], height: int, width: int, allow_outside: bool = False) -> Optional[str]:
    """Why a flat polygon ``[x0, y0, x1, y1, ...]`` of an ``height x width`` image cannot be rasterised, or ``None``.

    Rejected: fewer than 3 points or an odd count, a non-numeric or non-finite coordinate, a coordinate further
    than one image size outside the image (pycocotools walks every edge at 5x resolution, so 1e9 never ends), and
    unless ``allow_outside``, a polygon whose bounding box misses the image (it would rasterise to nothing)."""
    if len(flat) < 6 or len(flat) % 2:
        return "degenerate polygon (< 3 points)"
    # Plain Python on purpose: a polygon is a short list, and numpy's per-call overhead would dominate loading.
    try:
        if not math.isfinite(sum(flat)):  # a NaN or an infinity survives the sum (and a string fails it)
            return "non-finite polygon coordinate"
        xs, ys = flat[0::2], flat[1::2]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    except (TypeError, ValueError):
        return "non-numeric polygon coordinate"
    if x0 < -width or x1 > 2 * width or y0 < -height or y1 > 2 * height:
        return "polygon coordinate out of range (more than one image size outside the image)"
    if not allow_outside and (x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height):
        return "polygon outside the image"
    return None


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _compressed_counts(counts: str) -> np.ndarray:
    """Decode the COCO compressed-RLE string exactly as pycocotools' ``rleFrString`` does, vectorised, so that
    the run lengths can be checked before any C code sees them."""
    try:
        b = np.frombuffer(counts.encode("ascii"), np.uint8).astype(np.int64) - 48
    except UnicodeEncodeError:
        raise ValueError("counts is not an ASCII COCO RLE string") from None
    if b.size == 0:
        return np.zeros(0, np.int64)
    if (b < 0).any() or (b > 63).any():
        raise ValueError("counts has characters outside the COCO RLE alphabet ('0'..'o')")
    ends = np.nonzero((b & 0x20) == 0)[0]
    if ends.size == 0 or ends[-1] != b.size - 1:
        raise ValueError("counts ends inside a number")
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > _MAX_RLE_TOKEN:
        raise ValueError("counts holds a number too long for a run length")
    pos = np.arange(b.size) - np.repeat(starts, lengths)
    x = np.add.reduceat((b & 0x1F) << (5 * pos), starts)
    x = np.where((b[ends] & 0x10) != 0, x - (np.int64(1) << (5 * lengths)), x)  # sign extension
    cnts = x.copy()
    cnts[1::2] = np.cumsum(x[1::2])  # from the 4th number on, counts are deltas to the one two back
    cnts[2::2] = np.cumsum(x[2::2])
    return cnts


def check_rle(rle, height: Optional[int] = None, width: Optional[int] = None) -> Dict:
    """Validate an RLE read from a file; return it with ``counts`` as str. Raises ``ValueError`` naming the field.

    Checks: a dict with ``size`` = two positive ints (at most ``MAX_MASK_SIDE``; equal to ``(height, width)``
    when given) and ``counts`` = a compressed string or a list of non-negative ints; the run lengths are
    non-negative and add up to exactly ``height * width``."""
    if not isinstance(rle, dict):
        raise ValueError(f"mask must be an RLE object, got {type(rle).__name__}")
    size = rle.get("size")
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(_is_int(v) for v in size):
        raise ValueError(f"RLE field size must be [height, width] integers, got {str(size)[:40]}")
    h, w = int(size[0]), int(size[1])
    if not (0 < h <= MAX_MASK_SIDE and 0 < w <= MAX_MASK_SIDE):
        raise ValueError(f"RLE field size {[h, w]} is outside 1..{MAX_MASK_SIDE}")
    if height is not None and (h, w) != (int(height), int(width)):
        raise ValueError(f"RLE field size {[h, w]} differs from the image size {[int(height), int(width)]}")
    counts = rle.get("counts")
    if isinstance(counts, bytes):
        try:
            counts = counts.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("RLE field counts is not ASCII") from None
    if isinstance(counts, str):
        cnts = _compressed_counts(counts)
    elif isinstance(counts, list):
        if not all(_is_int(c) for c in counts):
            raise ValueError("RLE field counts: an uncompressed RLE needs a list of integers")
        cnts = np.asarray(counts, dtype=np.int64) if counts else np.zeros(0, np.int64)
    else:
        raise ValueError(f"RLE field counts must be a string or a list of integers, got {type(counts).__name__}")
    if cnts.size and (cnts.min() < 0 or cnts.max() >= 2 ** 32):
        raise ValueError("RLE field counts holds a negative or overflowing run length")
    total = int(cnts.sum()) if cnts.size else 0
    if total != h * w:
        raise ValueError(f"RLE field counts covers {total} pixels, the size {[h, w]} has {h * w}")
    if isinstance(counts, list):
        return rle_to_str(mask_util.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w))
    return {"size": [h, w], "counts": counts}


# ---- RLE-only measurements: area, box and area-averaged downsampling without a full-resolution decode ----------


def rle_areas(rles: Sequence[Dict]) -> np.ndarray:
    """int64 ``[N]`` pixel counts of same-size RLEs (pycocotools ``area``, no decode)."""
    if not rles:
        return np.zeros(0, np.int64)
    return np.asarray(mask_util.area([_bytes_rle(r) for r in rles]), dtype=np.int64).reshape(-1)


def rle_boxes_xyxy(rles: Sequence[Dict]) -> np.ndarray:
    """float32 ``[N, 4]`` tight XYXY boxes in pixel edges (pycocotools ``toBbox``, no decode); an empty mask gets
    ``[0, 0, 0, 0]``, as Detectron2's ``BitMasks.get_bounding_boxes`` gives it."""
    if not rles:
        return np.zeros((0, 4), np.float32)
    b = np.asarray(mask_util.toBbox([_bytes_rle(r) for r in rles]), dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1).astype(np.float32)


def rle_run_lengths(rle: Dict) -> np.ndarray:
    """int64 run lengths of an RLE (column-major, starting with a run of zeros), str / bytes / list counts."""
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if isinstance(counts, str):
        return _compressed_counts(counts)
    return np.asarray(counts, dtype=np.int64).reshape(-1)


def rle_block_sums(rles: Sequence[Dict], height: int, width: int, factor: int) -> np.ndarray:
    """int64 ``[N, ceil(H/f), ceil(W/f)]``: the number of mask pixels in each ``f x f`` block (a shorter last row /
    column of blocks), computed from the runs alone, so the cost grows with the number of runs and of blocks,
    never with ``H * W``."""
    return np.rint(_block_sums(rles, height, width, factor)).astype(np.int64)


def _block_sums(rles: Sequence[Dict], height: int, width: int, factor: int) -> np.ndarray:
    """float64 (exact integers) block sums of :func:`rle_block_sums`.

    The pixels before a flat (column-major) position ``p = x * H + y`` are the ``x`` whole columns before it plus
    ``y`` pixels of column ``x``; a run of ones adds the count up to its end and subtracts the count up to its
    start. Each count is a step along the blocks (the full block size before the block of ``x`` or ``y``, the
    remainder in it, nothing after), written as two differences and turned back by one suffix sum, so all runs of
    all masks take one ``bincount`` per axis."""
    H, W, f = int(height), int(width), int(factor)
    if f < 1:
        raise ValueError(f"block factor must be >= 1, got {f}")
    h, w, N = -(-H // f), -(-W // f), len(rles)
    if N == 0:
        return np.zeros((0, h, w))
    pos, sign, owner = [], [], []
    for n, r in enumerate(rles):
        size = [int(v) for v in r["size"]]
        if size != [H, W]:
            raise ValueError(f"RLE {n} has size {size}, expected {[H, W]}")
        ends = np.cumsum(rle_run_lengths(r))
        stops = ends[1::2]  # the k-th run of ones spans [ends[2k], ends[2k + 1])
        pos += [stops, ends[0::2][:len(stops)]]
        sign += [np.ones(len(stops)), -np.ones(len(stops))]
        owner.append(np.full(2 * len(stops), n, np.int64))
    p, s, owner = np.concatenate(pos), np.concatenate(sign), np.concatenate(owner)
    x, y = p // H, p % H
    rows = np.full(h, float(f))
    rows[-1] = H - f * (h - 1)
    # whole columns before x, per column block (x == W lands in the spare last slot)
    cols = _suffix_steps(owner * (w + 1), x, s, f, N * (w + 1)).reshape(N, w + 1)
    cols = np.cumsum(cols[:, ::-1], axis=1)[:, ::-1][:, :w]
    # pixels above y in column x, per row block (y == 0 adds nothing)
    inside = y > 0
    xi = x[inside]
    base = owner[inside] * ((h + 1) * w) + xi // f
    above = _suffix_steps(base, y[inside], s[inside], f, N * (h + 1) * w, stride=w).reshape(N, h + 1, w)
    above = np.cumsum(above[:, ::-1], axis=1)[:, ::-1][:, :h]
    return rows[None, :, None] * cols[:, None, :] + above


def _suffix_steps(base: np.ndarray, v: np.ndarray, s: np.ndarray, f: int, length: int, stride: int = 1
                  ) -> np.ndarray:
    """Differences of the steps ``s * (f before block v // f, v % f in it)``: ``s * (v % f)`` at block ``v // f``
    and ``s * (f - v % f)`` at the block before (slots ``stride`` apart from ``base``); a suffix sum restores them."""
    q, rem = v // f, v % f
    before = q > 0
    idx = np.concatenate([base + q * stride, (base + (q - 1) * stride)[before]])
    return np.bincount(idx, weights=np.concatenate([s * rem, (s * (f - rem))[before]]), minlength=length)


def rle_area_fractions(rles: Sequence[Dict], height: int, width: int, factor: int) -> torch.Tensor:
    """float32 ``[N, ceil(H/f), ceil(W/f)]``: the covered fraction of each ``f x f`` block of each RLE, bit-identical
    to decoding the masks and averaging the blocks (``wish_d2.modeling.geometry.to_working_res`` at a working size);
    ``factor == 1`` is the plain decode, as float."""
    H, W, f = int(height), int(width), int(factor)
    if f == 1:
        if not rles:
            return torch.zeros((0, H, W))
        return torch.from_numpy(mask_util.decode([_bytes_rle(r) for r in rles])).permute(2, 0, 1).float()
    sums = torch.from_numpy(_block_sums(rles, H, W, f))  # exact integers: float32 keeps them exactly
    h, w = sums.shape[-2:]
    rows = torch.full((h,), float(f))
    cols = torch.full((w,), float(f))
    rows[-1], cols[-1] = H - f * (h - 1), W - f * (w - 1)
    return sums.float() / (rows[:, None] * cols[None, :])
