"""Overlays of WISH predictions, proposals, hands and ground truth, drawn with Detectron2's ``Visualizer``.

Everything here takes plain arrays (RGB ``uint8 [H, W, 3]`` images, bool ``[H, W]`` masks, class ids 0 left /
1 right / 2 both) and returns an RGB ``uint8`` image, so the demo, notebooks and tests share one look:

* :func:`draw_predictions`: in-hand objects coloured by class (left, right, both in :data:`CLASS_COLORS`), with
  ``"<class> <score>"`` labels, and the hands outlined in :data:`HAND_COLORS`;
* :func:`draw_proposals`: every class-agnostic proposal in its own colour;
* :func:`draw_ground_truth`: ground-truth in-hand objects (dataset dict ``annotations``) and hands;
* :func:`instances_to_arrays` / :func:`rles_to_masks`: adapters from Detectron2 ``Instances`` and COCO RLEs.

Only the primitive ``Visualizer`` methods (``draw_binary_mask``, ``draw_polygon``, ``draw_text``) are used, so the
style does not change with Detectron2's heuristics for ``draw_instance_predictions``.
"""
import colorsys
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from detectron2.utils.visualizer import Visualizer

from ..classes import CLASS_NAMES, SIDES
from .masks import decode_rle, segmentation_to_mask

__all__ = [
    "CLASS_NAMES",
    "CLASS_COLORS",
    "HAND_COLORS",
    "auto_scale",
    "rles_to_masks",
    "instances_to_arrays",
    "annotations_to_arrays",
    "draw_predictions",
    "draw_proposals",
    "draw_ground_truth",
]

#: Instance class names, index = class id.
#: RGB in [0, 1] of the left-hand, right-hand and both-hands object (blue, orange, magenta: distinct for the common
#: colour-vision deficiencies and from the hand outlines).
CLASS_COLORS = ((0.12, 0.47, 1.0), (1.0, 0.55, 0.0), (0.85, 0.1, 0.85))
#: RGB in [0, 1] of the left and right hand outlines (cyan, yellow).
HAND_COLORS = ((0.2, 0.95, 1.0), (1.0, 0.95, 0.15))


def auto_scale(height: int, width: int, target: int = 512, max_scale: float = 4.0) -> float:
    """A ``Visualizer`` scale that brings the longer side near ``target`` pixels (small frames are upscaled so
    labels stay legible; large frames are shrunk), clamped to ``[target / longer side, max_scale]``."""
    longer = max(int(height), int(width), 1)
    return float(min(max_scale, target / longer))


def rles_to_masks(rles: Sequence[Optional[Dict]], height: int, width: int) -> List[Optional[np.ndarray]]:
    """COCO RLEs (``None`` entries allowed, e.g. absent hands) -> bool ``[H, W]`` arrays (``None`` kept)."""
    out = []
    for rle in rles:
        if rle is None:
            out.append(None)
            continue
        m = decode_rle(rle)
        if m.shape != (height, width):
            raise ValueError(f"mask of size {m.shape} for an image of {(height, width)}")
        out.append(m)
    return out


def instances_to_arrays(instances) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detectron2 ``Instances`` with ``pred_masks``/``pred_classes``/``scores`` -> numpy (masks bool [K, H, W],
    classes int [K], scores float [K])."""
    h, w = instances.image_size
    if len(instances) == 0:
        return np.zeros((0, h, w), bool), np.zeros((0,), np.int64), np.zeros((0,), np.float32)
    masks = instances.pred_masks
    masks = getattr(masks, "tensor", masks)
    masks = np.asarray(masks.detach().cpu().numpy() if hasattr(masks, "detach") else masks)
    if masks.dtype != bool:
        masks = masks >= 0.5
    classes = instances.pred_classes.detach().cpu().numpy().astype(np.int64)
    scores = instances.scores.detach().cpu().numpy().astype(np.float32)
    return masks, classes, scores


def annotations_to_arrays(annotations: Sequence[Dict], height: int, width: int
                          ) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Dataset-dict ``annotations`` (RLE or polygon ``segmentation``, ``category_id``) -> (masks bool [K, H, W],
    classes int [K], nouns [K])."""
    masks, classes, nouns = [], [], []
    for ann in annotations or []:
        masks.append(segmentation_to_mask(ann["segmentation"], height, width))
        classes.append(int(ann["category_id"]))
        nouns.append(str(ann.get("noun", "")))
    if not masks:
        return np.zeros((0, height, width), bool), np.zeros((0,), np.int64), []
    return np.stack(masks), np.asarray(classes, np.int64), nouns


def _contours(mask: np.ndarray) -> List[np.ndarray]:
    cs, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return [c.reshape(-1, 2).astype(np.float64) + 0.5 for c in cs if len(c) >= 3]


def _outline(vis: Visualizer, mask: np.ndarray, color, label: Optional[str] = None) -> None:
    """Hand outline: every contour (holes included) as an unfilled polygon, plus a label above the hand."""
    if mask is None or not mask.any():
        return
    for c in _contours(mask):
        vis.draw_polygon(c, color=color, edge_color=color, alpha=0.0)
    if label:
        # at the bottom of the hand, inside it: hands enter egocentric frames from below, and the held object
        # (labelled at its own centre) sits above the palm
        ys, xs = np.nonzero(mask)
        font = vis._default_font_size * 0.9
        y = max(float(ys.max()) - 1.8 * font, float(ys.min()))
        vis.draw_text(label, (float(xs.mean()), y), color=color, font_size=font)


def _label_mask(vis: Visualizer, mask: np.ndarray, text: str, color) -> None:
    """Label an object just above its box (below when there is no room), never on top of it: on small frames a
    label at the centre hides the whole object. The label stays inside the frame horizontally."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return
    h, w = mask.shape
    font = vis._default_font_size
    text_h, text_w = 1.45 * font, 0.62 * font * len(text)
    y = float(ys.min()) - text_h - 1
    if y < 0:
        y = float(ys.max()) + 2
        if y + text_h > h:
            y = max(0.0, float(ys.mean()) - text_h / 2)
    x = float(xs.min() + xs.max()) / 2
    x = min(max(x, text_w / 2), max(w - text_w / 2, text_w / 2))
    light = vis._change_color_brightness(color, brightness_factor=0.5)
    vis.draw_text(text, (x, y), color=light)


def _draw_hands(vis: Visualizer, hand_masks: Optional[Sequence[Optional[np.ndarray]]]) -> None:
    for side, mask in enumerate(hand_masks or []):
        if side < 2:
            _outline(vis, mask, HAND_COLORS[side], f"{SIDES[side]} hand")


def _corner_text(vis: Visualizer, text: str) -> None:
    vis.draw_text(text, (2, 2), horizontal_alignment="left", color=(0.95, 0.95, 0.95),
                  font_size=vis._default_font_size * 0.9)


def _new_visualizer(image_rgb: np.ndarray, scale: Optional[float]) -> Visualizer:
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got {image_rgb.shape}")
    if scale is None:
        scale = auto_scale(*image_rgb.shape[:2])
    vis = Visualizer(image_rgb, metadata=None, scale=scale)
    # labels about 11 px tall in the output (or 1/32 of its shorter side), whatever the scale: Detectron2's
    # default font is tied to the input size and is unreadable on small upscaled frames
    out_short = min(vis.output.height, vis.output.width) * scale
    vis._default_font_size = max(11.0, out_short / 32.0) / scale
    return vis


def draw_predictions(image_rgb: np.ndarray, masks, classes, scores=None,
                     hand_masks: Optional[Sequence[Optional[np.ndarray]]] = None,
                     scale: Optional[float] = None, title: Optional[str] = None, alpha: float = 0.5) -> np.ndarray:
    """In-hand predictions over the frame: one colour per class, ``"<class> <score>"`` labels, hands outlined.

    Args:
        image_rgb: ``uint8 [H, W, 3]`` RGB.
        masks: bool ``[K, H, W]``; classes: ``[K]`` 0 left / 1 right / 2 both; scores: ``[K]`` or ``None``.
        hand_masks: ``[left, right]`` bool masks, ``None`` for an absent hand (or ``None`` for no hands).
        scale: ``Visualizer`` scale; ``None`` = :func:`auto_scale`.
        title: optional text in the top-left corner.
    Returns:
        RGB ``uint8`` image of size ``(round(H * scale), round(W * scale))``.
    """
    vis = _new_visualizer(image_rgb, scale)
    masks = np.asarray(masks, dtype=bool).reshape((-1,) + tuple(np.asarray(image_rgb).shape[:2]))
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    scores = None if scores is None else np.asarray(scores, dtype=np.float32).reshape(-1)
    # larger masks first, so a small object drawn over a large one stays visible
    order = sorted(range(len(masks)), key=lambda k: -int(masks[k].sum()))
    labels = []
    for k in order:
        c = int(classes[k])
        color = CLASS_COLORS[c] if 0 <= c < len(CLASS_COLORS) else (0.5, 0.5, 0.5)
        name = CLASS_NAMES[c] if 0 <= c < len(CLASS_NAMES) else str(c)
        label = name if scores is None else f"{name} {float(scores[k]):.2f}"
        vis.draw_binary_mask(masks[k].astype(np.uint8), color=color, alpha=alpha)
        labels.append((masks[k], label, color))
    _draw_hands(vis, hand_masks)
    for m, label, color in labels:  # labels last: above the hand outlines
        _label_mask(vis, m, label, color)
    if title:
        _corner_text(vis, title)
    return vis.get_output().get_image()


def proposal_colors(n: int) -> List[Tuple[float, float, float]]:
    """``n`` well-separated, deterministic RGB colours (golden-angle hues)."""
    return [colorsys.hsv_to_rgb((0.13 + k * 0.618033988749895) % 1.0, 0.75, 1.0) for k in range(n)]


def draw_proposals(image_rgb: np.ndarray, masks, scores=None,
                   hand_masks: Optional[Sequence[Optional[np.ndarray]]] = None,
                   scale: Optional[float] = None, alpha: float = 0.45, label_limit: int = 0) -> np.ndarray:
    """All class-agnostic proposals, each in its own colour (largest drawn first), hands outlined.

    ``label_limit > 0`` writes the index (and score) of the first ``label_limit`` proposals on them.
    """
    vis = _new_visualizer(image_rgb, scale)
    masks = np.asarray(masks, dtype=bool).reshape((-1,) + tuple(np.asarray(image_rgb).shape[:2]))
    colors = proposal_colors(len(masks))
    order = sorted(range(len(masks)), key=lambda k: -int(masks[k].sum()))
    for k in order:
        text = None
        if k < label_limit:
            text = f"#{k}" if scores is None else f"#{k} {float(scores[k]):.2f}"
        vis.draw_binary_mask(masks[k].astype(np.uint8), color=colors[k], alpha=alpha, text=text)
    _draw_hands(vis, hand_masks)
    _corner_text(vis, f"{len(masks)} proposal{'s' if len(masks) != 1 else ''}")
    return vis.get_output().get_image()


def draw_ground_truth(image_rgb: np.ndarray, annotations: Sequence[Dict],
                      hands: Optional[Sequence[Dict]] = None, scale: Optional[float] = None,
                      alpha: float = 0.5) -> np.ndarray:
    """Ground truth from a dataset dict: ``annotations`` (in-hand objects, labelled ``"GT <class> <noun>"``)
    and ``hands`` (``[{"side", "segmentation": RLE}]``) outlined."""
    image_rgb = np.asarray(image_rgb)
    h, w = image_rgb.shape[:2]
    vis = _new_visualizer(image_rgb, scale)
    masks, classes, nouns = annotations_to_arrays(annotations, h, w)
    order = sorted(range(len(masks)), key=lambda k: -int(masks[k].sum()))
    labels = []
    for k in order:
        c = int(classes[k])
        color = CLASS_COLORS[c] if 0 <= c < len(CLASS_COLORS) else (0.5, 0.5, 0.5)
        name = CLASS_NAMES[c] if 0 <= c < len(CLASS_NAMES) else str(c)
        label = f"GT {name}" + (f" {nouns[k]}" if nouns[k] else "")
        vis.draw_binary_mask(masks[k].astype(np.uint8), color=color, alpha=alpha)
        labels.append((masks[k], label, color))
    hand_masks: List[Optional[np.ndarray]] = [None, None]
    for hand in hands or []:
        if hand.get("side") in SIDES:
            seg = hand["segmentation"]
            m = decode_rle(seg) if isinstance(seg, dict) else np.asarray(seg, bool)
            k = SIDES.index(hand["side"])
            hand_masks[k] = m if hand_masks[k] is None else (hand_masks[k] | m)
    _draw_hands(vis, hand_masks)
    for m, label, color in labels:
        _label_mask(vis, m, label, color)
    if not len(masks):
        _corner_text(vis, "GT: no in-hand object")
    return vis.get_output().get_image()
