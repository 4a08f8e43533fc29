"""Hand sources: where ``H_L`` and ``H_R`` come from.

Every source returns, per image, ``hand_masks`` (bool ``[2, H, W]``, order left, right) and ``hand_present``
(bool ``[2]``). Hands that come without a side get one from the vertical-split heuristic when
``MODEL.WISH.HANDS.SIDE_HEURISTIC`` is on, and are dropped with a logged warning when it is off.
"""
import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..classes import SIDES
from ..data.common import DataFormatError, is_finite_number
from ..data.hand_side import assign_sides, side_from_mask
from ..registry import HAND_SOURCE_REGISTRY
from ..utils.masks import check_rle, decode_rle
from .proposal_generators import image_hw, image_to_rgb_numpy
from .checkpointer import SafeDetectionCheckpointer, head_problems
from .weights import WeightsError, resolve_weights_file

logger = logging.getLogger(__name__)


def hands_to_tensors(hands: List[Dict], height: int, width: int, side_heuristic: bool = True
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """A list of hand dicts (``side`` optional, ``segmentation`` RLE or bool mask, ``score`` optional) ->
    ([2,H,W], [2]).

    Hands with a side keep it. The side-less hands of the frame get theirs together, from
    :func:`~wish_d2.data.hand_side.assign_sides` (at most one per side: two side-less hands in one half become a
    left and a right hand, not one merged hand); a third or later one joins the side its own centroid gives.
    Several hands of one side: detections (every one scored) give the side their best-scoring mask, since a frame
    has one hand per side and a lower-scoring duplicate is a false or partial detection; unscored masks (a dataset's
    annotation in parts) are merged."""
    masks = torch.zeros((2, height, width), dtype=torch.bool)
    present = torch.zeros(2, dtype=torch.bool)
    sided, sideless = [], []
    for hand in hands:
        seg = hand["segmentation"]
        mask = seg if isinstance(seg, torch.Tensor) else torch.from_numpy(decode_rle(seg))
        if tuple(mask.shape) != (height, width):
            raise ValueError(f"hand mask of shape {tuple(mask.shape)} for an image of {(height, width)}")
        (sided if hand.get("side") in SIDES else sideless).append((mask, hand.get("side"), hand.get("score")))
    if sideless and not side_heuristic:
        logger.warning(f"dropping {len(sideless)} hand(s) without a side (MODEL.WISH.HANDS.SIDE_HEURISTIC is off)")
        sideless = []
    if sideless:
        sides = assign_sides([m.numpy() for m, _, _ in sideless], width)
        sided += [(m, s if s is not None else side_from_mask(m.numpy(), width), score)
                  for (m, _, score), s in zip(sideless, sides)]
    for k, side in enumerate(SIDES):
        mine = [(mask, score) for mask, s, score in sided if s == side]
        if mine and all(score is not None for _, score in mine):
            mine = [max(mine, key=lambda m: m[1])]
        for mask, _ in mine:
            masks[k] |= mask
            present[k] = present[k] | bool(mask.any())
    return masks, present


class DatasetHands:
    """Hands from the dataset dicts (``hands`` field): synthetic benchmark, VISOR, EgoHOS, ablations."""

    def __init__(self, side_heuristic: bool = True):
        self.side_heuristic = side_heuristic

    def __call__(self, batched_inputs: List[Dict]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for x in batched_inputs:
            h, w = image_hw(x)
            out.append(hands_to_tensors(x.get("hands", []), h, w, self.side_heuristic))
        return out


class PrecomputedHands(DatasetHands):
    """Hands from a json file ``{image_id: [{"segmentation": RLE, "side": "left"|"right"|null, "score": optional
    number}, ...]}``, e.g. the output of an external hand segmenter run once over a dataset.

    The file is checked when it is opened (an object of lists of hand objects, known sides, well-formed RLEs) and
    each mask again when its image is looked up (the RLE's size must be the image's, so a huge ``size`` never gets
    decoded). :meth:`check_coverage` refuses a file that matches no image of a dataset and counts the images it
    lacks. Every error is a ``DataFormatError`` naming the file, the image and the field."""

    KEY = "MODEL.WISH.HANDS.PRECOMPUTED_FILE"

    def __init__(self, path: str, side_heuristic: bool = True):
        super().__init__(side_heuristic)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Precomputed hands file not found: {path} ({self.KEY})")
        self.path = path
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON, bad UTF-8
            raise DataFormatError(f"{path}: not a readable JSON file ({e}) ({self.KEY})") from None
        if not isinstance(data, dict):
            raise DataFormatError(f"{path}: must be a JSON object mapping image_id to a list of hands, got "
                                  f"{type(data).__name__} ({self.KEY})")
        self.table = {str(k): self._checked_hands(str(k), v) for k, v in data.items()}

    def _checked_hands(self, image_id: str, hands) -> List[Dict]:
        where = f"{self.path} (image {image_id!r})"
        if not isinstance(hands, list):
            raise DataFormatError(f"{where}: must be a list of hands, got {type(hands).__name__}")
        for k, hand in enumerate(hands):
            if not isinstance(hand, dict) or "segmentation" not in hand:
                raise DataFormatError(f"{where}: hands[{k}] must be an object with a \"segmentation\" RLE")
            if hand.get("side") not in SIDES + (None,):
                raise DataFormatError(f"{where}: hands[{k}].side must be 'left', 'right' or null, got "
                                      f"{hand.get('side')!r}")
            score = hand.get("score")
            if score is not None and not is_finite_number(score):
                raise DataFormatError(f"{where}: hands[{k}].score must be a finite number or null, got {score!r}")
            try:
                hand["segmentation"] = check_rle(hand["segmentation"])
            except ValueError as e:
                raise DataFormatError(f"{where}: hands[{k}].segmentation: {e}") from None
        return hands

    def hands_of(self, image_id, height: int, width: int) -> List[Dict]:
        """The hands of one image; a mask of another size than the image raises, naming the file."""
        hands = self.table.get(str(image_id), [])
        for k, hand in enumerate(hands):
            size = [int(v) for v in hand["segmentation"]["size"]]
            if size != [int(height), int(width)]:
                raise DataFormatError(f"{self.path} (image {str(image_id)!r}): hands[{k}].segmentation is "
                                      f"{size[0]}x{size[1]}, the image is {height}x{width}")
        return hands

    def check_coverage(self, image_ids: Sequence, dataset: str) -> int:
        """Raise when the file names none of ``image_ids`` (a file of another dataset would give no image any
        hands); log how many images it lacks (they get no hands). Returns that count."""
        ids = [str(i) for i in image_ids]
        missing = [i for i in ids if i not in self.table]
        if ids and len(missing) == len(ids):
            theirs = ", ".join(repr(k) for k in list(self.table)[:2]) or "none"
            raise DataFormatError(
                f"{self.path}: none of its {len(self.table)} image ids is an image of dataset {dataset} "
                f"(file: {theirs}; dataset: {ids[0]!r}, ...): a hands file of another dataset? ({self.KEY})")
        if missing:
            logger.warning(f"{self.path}: {len(missing)} of {len(ids)} images of {dataset} have no entry and get "
                           f"no hands (e.g. {', '.join(missing[:3])})")
        return len(missing)

    def __call__(self, batched_inputs):
        out = []
        for x in batched_inputs:
            h, w = image_hw(x)
            out.append(hands_to_tensors(self.hands_of(x["image_id"], h, w), h, w, self.side_heuristic))
        return out


def load_detector_weights(model, weights: str) -> None:
    """Every parameter of the detector must come from ``weights``: otherwise hands would come from a partly random
    model, silently. The file is read safely (no code runs from a ``.pkl`` or ``.pth``)."""
    checkpointer = SafeDetectionCheckpointer(model, key="MODEL.WISH.HANDS.DETECTOR_WEIGHTS")
    checkpointer.load(weights)
    problems = [p for p in head_problems(checkpointer.incompatible) if not p.startswith("unexpected")]
    if problems:
        raise WeightsError(
            f"{checkpointer.source} does not match the detector of DETECTOR_CONFIG "
            f"({len(problems)} problem(s)): " + "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        )


def hand_class(name: str) -> Optional[str]:
    """What a detector class name means for WISH: ``"left"`` / ``"right"`` (``left``, ``left hand``,
    ``left_hand``...), ``"hand"`` (a side-less hand), or ``None`` (not a hand, e.g. ``object``)."""
    words = str(name).lower().replace("_", " ").replace("-", " ").split()
    if words in (["left"], ["left", "hand"]):
        return "left"
    if words in (["right"], ["right", "hand"]):
        return "right"
    return "hand" if words in (["hand"], ["hands"]) else None


def detector_train_hint(config_file: str, weights: str) -> str:
    """The command that trains the detector of ``config_file`` into the folder where ``weights`` is expected."""
    out = os.path.dirname(str(weights)) or "."
    return (f"Train it with: python tools/train_hand_detector.py --config-file {config_file or 'CONFIG'} "
            f"OUTPUT_DIR {out}")


def check_hand_source(cfg) -> None:
    """Fail before any dataset is read when the configured hand source cannot be built from its files: the
    ``detector`` source's config and weights. Raises ``FileNotFoundError`` / ``WeightsUnavailableError`` with one
    line that names the key and the command that trains the weights."""
    h = cfg.MODEL.WISH.HANDS
    if h.SOURCE != "detector":
        return
    if not h.DETECTOR_CONFIG or not os.path.isfile(h.DETECTOR_CONFIG):
        raise FileNotFoundError(f"MODEL.WISH.HANDS.DETECTOR_CONFIG: hand detector config not found: "
                                f"{h.DETECTOR_CONFIG!r} (HANDS.SOURCE is detector)")
    if not h.DETECTOR_WEIGHTS:
        raise FileNotFoundError("MODEL.WISH.HANDS.DETECTOR_WEIGHTS is empty (HANDS.SOURCE is detector). "
                                + detector_train_hint(h.DETECTOR_CONFIG, "output/hand_detector/model_final.pth"))
    resolve_weights_file(h.DETECTOR_WEIGHTS, "MODEL.WISH.HANDS.DETECTOR_WEIGHTS",
                         detector_train_hint(h.DETECTOR_CONFIG, h.DETECTOR_WEIGHTS))


class DetectorHands(DatasetHands):
    """Hands from a Detectron2 instance-segmentation model (config + weights), e.g. the Mask R-CNN of
    ``tools/train_hand_detector.py``, run through Detectron2's ``DefaultPredictor`` (its own resizing and
    ``INPUT.FORMAT``).

    ``class_names`` names the detector's classes by index (``MODEL.WISH.HANDS.DETECTOR_CLASSES``, as many as its
    ``MODEL.ROI_HEADS.NUM_CLASSES``; see :func:`hand_class`): a ``left`` or ``right`` class keeps its side, a
    ``hand`` class gets one from the heuristic, any other class (e.g. the ``object`` class of a hand-object
    detector) is not a hand.
    """

    HAND = "hand"

    def __init__(self, config_file: str, weights: str, class_names: Sequence[str] = ("hand",),
                 side_heuristic: bool = True, score_thresh: float = 0.5, device: str = "cpu"):
        super().__init__(side_heuristic)
        from detectron2.config import get_cfg
        from detectron2.engine import DefaultPredictor

        from ..config_file import merge_config_file  # the safe reader: a detector config must not run code

        if not os.path.isfile(config_file):
            raise FileNotFoundError(f"Hand detector config not found: {config_file} (MODEL.WISH.HANDS.DETECTOR_CONFIG)")
        if not weights:
            raise WeightsError("MODEL.WISH.HANDS.DETECTOR_WEIGHTS is empty: the detector hand source needs its "
                               "weights. " + detector_train_hint(config_file, "output/hand_detector/model_final.pth"))
        weights = resolve_weights_file(weights, "MODEL.WISH.HANDS.DETECTOR_WEIGHTS",
                                       detector_train_hint(config_file, weights))
        cfg = get_cfg()
        merge_config_file(cfg, config_file, "MODEL.WISH.HANDS.DETECTOR_CONFIG")
        self.class_names = [hand_class(c) for c in class_names]
        num_classes = int(cfg.MODEL.ROI_HEADS.NUM_CLASSES)
        if len(self.class_names) != num_classes:
            raise ValueError(
                f"MODEL.WISH.HANDS.DETECTOR_CLASSES={list(class_names)} names {len(self.class_names)} classes, but the "
                f"detector {config_file} has MODEL.ROI_HEADS.NUM_CLASSES={num_classes}"
            )
        if not any(self.class_names):
            raise ValueError(f"hand detector {config_file}: none of its classes MODEL.WISH.HANDS.DETECTOR_CLASSES="
                             f"{list(class_names)} is a hand (expected 'left hand', 'right hand' or 'hand')")
        cfg.MODEL.WEIGHTS = ""  # loaded below, where a partial match is an error rather than a log line
        cfg.MODEL.DEVICE = device
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score_thresh  # INPUT.FORMAT stays the detector's own
        self.predictor = DefaultPredictor(cfg)
        load_detector_weights(self.predictor.model, weights)

    def instances(self, image_rgb: np.ndarray):
        """The detector's raw ``Instances`` (on the CPU) of one RGB frame."""
        return self.instances_batch([image_rgb])[0]

    def instances_batch(self, images_rgb: Sequence[np.ndarray]) -> List:
        """The detector's raw ``Instances`` (on the CPU) of several RGB frames in one forward pass.

        ``DefaultPredictor`` takes one image per call; this applies its own preprocessing (``INPUT.FORMAT``, its
        test-time resize) to each frame and runs its model once on the batch, which on a CPU costs about half as
        much per frame as one call each."""
        p = self.predictor
        inputs = []
        for rgb in images_rgb:
            image = rgb if p.input_format == "RGB" else rgb[:, :, ::-1]
            h, w = image.shape[:2]
            resized = p.aug.get_transform(image).apply_image(image)
            tensor = torch.as_tensor(np.ascontiguousarray(resized).astype("float32").transpose(2, 0, 1))
            inputs.append({"image": tensor.to(p.cfg.MODEL.DEVICE), "height": h, "width": w})
        if not inputs:
            return []
        with torch.no_grad():
            return [o["instances"].to("cpu") for o in p.model(inputs)]

    def hands_from_instances(self, inst, min_score: float = 0.0) -> List[Dict]:
        """Hand dicts (``segmentation`` bool ``[H, W]``, ``side`` or None, ``score``) of the detections of hand
        classes scoring at least ``min_score``."""
        hands = []
        for mask, cls, score in zip(inst.pred_masks, inst.pred_classes.tolist(), inst.scores.tolist()):
            name = self.class_names[cls]
            if name is not None and score >= min_score:
                hands.append({"segmentation": mask.bool(), "side": name if name in SIDES else None,
                              "score": float(score)})
        return hands

    def detect(self, image_rgb: np.ndarray) -> List[Dict]:
        """Hand dicts (see :meth:`hands_from_instances`) of one RGB frame."""
        return self.hands_from_instances(self.instances(image_rgb))

    def __call__(self, batched_inputs):
        found = self.instances_batch([image_to_rgb_numpy(x["image"]) for x in batched_inputs])
        return [hands_to_tensors(self.hands_from_instances(inst), *image_hw(x), self.side_heuristic)
                for x, inst in zip(batched_inputs, found)]


# Registry keys are the builder names (fvcore registries key by __name__): HANDS.SOURCE dataset | precomputed | detector
@HAND_SOURCE_REGISTRY.register()
def dataset(cfg):
    return DatasetHands(cfg.MODEL.WISH.HANDS.SIDE_HEURISTIC)


@HAND_SOURCE_REGISTRY.register()
def precomputed(cfg):
    return PrecomputedHands(cfg.MODEL.WISH.HANDS.PRECOMPUTED_FILE, cfg.MODEL.WISH.HANDS.SIDE_HEURISTIC)


def build_detector_hands(cfg) -> DetectorHands:
    """The hand detector that ``MODEL.WISH.HANDS.DETECTOR_*`` configure."""
    h = cfg.MODEL.WISH.HANDS
    return DetectorHands(h.DETECTOR_CONFIG, h.DETECTOR_WEIGHTS, h.DETECTOR_CLASSES, h.SIDE_HEURISTIC,
                         h.DETECTOR_SCORE_THRESH, cfg.MODEL.DEVICE)


@HAND_SOURCE_REGISTRY.register()
def detector(cfg):
    return build_detector_hands(cfg)


def build_hand_source(cfg):
    return HAND_SOURCE_REGISTRY.get(cfg.MODEL.WISH.HANDS.SOURCE)(cfg)
