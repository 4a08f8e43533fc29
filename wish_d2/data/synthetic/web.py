"""The "web" split of the synthetic world: image-caption pairs that play the part of the web data a real CLIP was
pretrained on (docs/SYNTHETIC.md, "The web split").

Frames come from the same world as the benchmark (same painter, same taxonomy) but from their own random stream
``[seed, WEB_SPLIT_CODE, i, WEB_STREAM_TAG]``, which no benchmark split (codes 0-2) or video split uses, and under
their own participant id, so no WISH frame is ever a web frame. Half the pairs are random crops (close-ups), as
web photos often show a few objects large.

A caption reads like alt-text: it names what is visible, the objects with a colour and size word, the hands, the
counter. It never says which object is held, touched or near a hand (the task's label), and no in-hand field of the
scene is read: every visible object is named alike, in random order.
"""
from typing import Dict, Iterator, List, Sequence, Tuple

import cv2
import numpy as np

from ...classes import SIDES
from .render import apply_lighting, paint_scene
from .taxonomy import CATEGORIES, SYNONYM_KEYS
from ..narrations import epic_noun_to_phrase

__all__ = ["WEB_SPLIT_CODE", "WEB_STREAM_TAG", "WEB_PARTICIPANT", "web_pair", "web_pairs", "colour_name",
           "caption_for"]

WEB_SPLIT_CODE = 100  # per-image stream code; benchmark splits use 0-2 (layout.SPLITS)
WEB_STREAM_TAG = 23  # non-zero last entry, so the stream never equals a zero-padded shorter key
WEB_PARTICIPANT = "P99"  # participant id of web images (benchmark splits: P90-P92)
P_CROP = 0.5  # a pair is a close-up crop of the frame
CROP_SCALE = (0.35, 0.8)  # side of a close-up, as a fraction of the frame side
CROP_KEEP = 0.6  # an object is named in a crop if this fraction of its visible pixels is inside
P_SYNONYM = 0.1  # web text also says "mug", "skillet"...
MAX_NAMED = 3  # objects named per caption (the text tower reads 32 tokens)
MIN_PIXELS = 12  # an object with fewer visible pixels (after cropping) is not named
OBJECT_FILL = (0.2, 0.85)  # object close-ups: the object's longer side as a fraction of the crop side
OBJECT_STREAM_TAG = 1  # extra key entry of the close-up stream, so pairs without close-ups keep their bytes

_TEMPLATES = (
    "a photo of {objects} on a {counter} kitchen counter",
    "{objects} and {hands} on a {counter} counter",
    "{hands}, {objects}, {counter} kitchen counter",
    "kitchen scene with {objects} and {hands}",
    "{objects} on a {counter} worktop",
)
_TEMPLATES_NO_HANDS = ("a photo of {objects} on a {counter} kitchen counter", "close-up of {objects}",
                       "{objects} on a {counter} worktop")
_TEMPLATES_OBJECT = ("a photo of {objects}", "a close-up photo of {objects}", "{objects}", "a photo of {objects} in a "
                     "kitchen", "close-up of {objects} on a {counter} counter", "a cropped photo of {objects}")
_TEMPLATES_EMPTY = ("a {counter} kitchen counter", "{hands} over a {counter} counter")


def colour_name(rgb: Sequence[float]) -> str:
    """A plain colour word for a mean RGB colour (0-255): what alt-text would say."""
    hsv = cv2.cvtColor(np.uint8([[np.clip(np.asarray(rgb, float), 0, 255)]]), cv2.COLOR_RGB2HSV)[0, 0]
    h, s, v = float(hsv[0]) * 2.0, float(hsv[1]) / 255.0, float(hsv[2]) / 255.0
    if v < 0.22:
        return "black"
    if s < 0.18:
        return "white" if v > 0.75 else ("grey" if v > 0.4 else "dark grey")
    if h < 15 or h >= 340:
        return "red" if v > 0.45 else "dark red"
    if h < 40:
        return "orange" if v > 0.6 and s > 0.5 else "brown"
    if h < 70:
        return "yellow"
    if h < 165:
        return "green"
    if h < 200:
        return "cyan"
    if h < 255:
        return "blue"
    if h < 300:
        return "purple"
    return "pink"


def _noun(rng, cat: int) -> str:
    c = CATEGORIES[cat]
    if rng.random() < P_SYNONYM and SYNONYM_KEYS[c.key]:
        return epic_noun_to_phrase(SYNONYM_KEYS[c.key][int(rng.integers(len(SYNONYM_KEYS[c.key])))])
    return c.name


def _join(items: List[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def caption_for(rng, image: np.ndarray, objects: List[Tuple[int, np.ndarray]], hands: List[str],
                background: np.ndarray, subject: bool = False) -> str:
    """Alt-text for an RGB image: ``objects`` are (category, visible mask), ``hands`` the visible sides, ``background``
    the counter's pixels. Up to ``MAX_NAMED`` objects are named, picked in random order, each with its colour
    and a size word when it is clearly small or large in the image. ``subject``: the photo is a close-up of
    ``objects[0]``, which is named first, with a close-up template, and never left out."""
    named = []
    for cat, m in objects:
        words = [colour_name(image[m].mean(0))]
        frac = m.mean()
        if frac < 0.01:
            words.insert(0, "small")
        elif frac > 0.15:
            words.insert(0, "large")
        phrase = f"{' '.join(words)} {_noun(rng, cat)}"
        named.append(("an " if phrase[0] in "aeiou" else "a ") + phrase)
    order = rng.permutation(len(named))
    if subject:
        order = [0] + [k for k in order if k != 0]
    named = [named[k] for k in order]
    named = list(dict.fromkeys(named))[:MAX_NAMED]  # no repeats; alt-text names a few things, not all
    counter = colour_name(image[background].mean(0)) if background.any() else "grey"
    if subject and named:
        t = _TEMPLATES_OBJECT[int(rng.integers(len(_TEMPLATES_OBJECT)))]
        return t.format(objects=_join(named), counter=counter)
    hand_words = {0: "", 1: f"a {hands[0]} hand" if hands else "", 2: "two hands"}[len(hands)]
    if not named:
        templates = _TEMPLATES_EMPTY if hand_words else _TEMPLATES_EMPTY[:1]
    else:
        templates = _TEMPLATES if hand_words else _TEMPLATES_NO_HANDS
    t = templates[int(rng.integers(len(templates)))]
    return t.format(objects=_join(named) if named else "", hands=hand_words, counter=counter)


def _object_close_up(rng, label: np.ndarray, ents: List[Dict]):
    """``(crop box y0, x0, y1, x1, subject object)`` of a square close-up centred on a visible object drawn
    uniformly (never by what a hand does), or ``None`` when no object is visible. The object fills
    ``OBJECT_FILL`` of the crop side, so close-ups span the scales from a product photo to the full frame."""
    H, W = label.shape
    visible = [o for o in ents if (label == o["lab"]).sum() >= MIN_PIXELS]
    if not visible:
        return None
    obj = visible[int(rng.integers(len(visible)))]
    ys, xs = np.nonzero(label == obj["lab"])
    extent = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    side = int(np.clip(round(extent / rng.uniform(*OBJECT_FILL)), 16, min(H, W)))
    cy, cx = (ys.min() + ys.max() + 1) / 2.0, (xs.min() + xs.max() + 1) / 2.0
    y0 = int(np.clip(round(cy - side / 2.0), 0, H - side))
    x0 = int(np.clip(round(cx - side / 2.0), 0, W - side))
    return y0, x0, y0 + side, x0 + side, obj


def web_pair(seed: int, index: int, height: int = 160, width: int = 160, object_share: float = 0.0) -> Dict:
    """Web pair ``index``: ``{"image": uint8 RGB [H, W, 3], "caption": str, "id": str}``. Deterministic by
    ``(seed, index, object_share)``; a crop is resized back to ``(height, width)``. A share ``object_share`` of the
    pairs are close-ups of one object (as product and recipe photos are), captioned with that object first; the
    decision comes from a stream of its own, so ``object_share=0`` gives the same bytes as before it existed."""
    rng = np.random.default_rng([int(seed), WEB_SPLIT_CODE, int(index), WEB_STREAM_TAG])
    H, W = int(height), int(width)
    img, label, hands, ents = paint_scene(rng, H, W)
    img = np.ascontiguousarray(apply_lighting(img, rng)[..., ::-1])  # the painter works in BGR (cv2); CLIP sees RGB
    y0, x0, y1, x1 = 0, 0, H, W
    close_up = None
    if object_share > 0:
        rng_obj = np.random.default_rng([int(seed), WEB_SPLIT_CODE, int(index), WEB_STREAM_TAG, OBJECT_STREAM_TAG])
        if rng_obj.random() < object_share:
            close_up = _object_close_up(rng_obj, label, ents)
    if close_up is not None:
        y0, x0, y1, x1, subject = close_up
    elif rng.random() < P_CROP:
        side = rng.uniform(*CROP_SCALE)
        ch, cw = max(8, int(round(side * H))), max(8, int(round(side * W)))
        y0, x0 = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
        y1, x1 = y0 + ch, x0 + cw
    crop, lab = img[y0:y1, x0:x1], label[y0:y1, x0:x1]
    objects = []
    for obj in ents:
        full = int((label == obj["lab"]).sum())
        m = lab == obj["lab"]
        if full >= MIN_PIXELS and m.sum() >= max(MIN_PIXELS, CROP_KEEP * full):
            item = (obj["cat"], m)
            if close_up is not None and obj is subject:
                objects.insert(0, item)
            else:
                objects.append(item)
    sides = [s for s in SIDES if s in hands and (lab == hands[s]["lab"]).sum() >= MIN_PIXELS]
    caption = caption_for(rng_obj if close_up is not None else rng, crop, objects, sides, lab == 0,
                          subject=close_up is not None)
    if crop.shape[:2] != (H, W):
        crop = cv2.resize(crop, (W, H), interpolation=cv2.INTER_LINEAR)
    return {"image": np.ascontiguousarray(crop), "caption": caption, "id": f"{WEB_PARTICIPANT}_{int(index):07d}"}


def web_pairs(seed: int, start: int, count: int, height: int = 160, width: int = 160,
              object_share: float = 0.0) -> Iterator[Dict]:
    """Pairs ``start .. start + count - 1`` of the web split of ``seed``."""
    for i in range(int(start), int(start) + int(count)):
        yield web_pair(seed, i, height, width, object_share)
