"""Hand-only datasets: the frames of a WISH split with its hand masks as the only instances, for training and
evaluating a stock Detectron2 Mask R-CNN hand detector (``tools/train_hand_detector.py``).

Each dict keeps ``file_name``, ``image_id``, ``height`` and ``width``; its ``annotations`` are the split's hands,
category 0 ``left hand`` / 1 ``right hand`` (the detector's classes, so it predicts sides). Object annotations,
narrations and noun phrases are never copied: a hand detector trained here has seen no object label. The real splits
are read with their loaders' narration input switched off, so a hand-only split needs neither narrations nor
anything but the hand annotations and frames.

Registered on ``import wish_d2``: ``<name>_hands`` for the VISOR and EgoHOS splits of :mod:`.builtin` (lazy, like
them). Any other split: :func:`register_hands_only`.
"""
import logging
from typing import Callable, Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from ..classes import SIDES

logger = logging.getLogger(__name__)

__all__ = ["HAND_CLASSES", "HAND_EVALUATOR", "hands_only", "hands_only_name", "register_hands_only",
           "register_real_hands_only"]

#: The detector's classes, by category id: the side is the class.
HAND_CLASSES = ("left hand", "right hand")
#: ``evaluator_type`` of the hand-only splits: Detectron2's COCO evaluator (mask AP of the two hand classes).
HAND_EVALUATOR = "coco"


def hands_only_name(name: str) -> str:
    return f"{name}_hands"


def hands_only(dicts: List[Dict]) -> List[Dict]:
    """Dataset dicts of a WISH split -> hand-only dicts (module docstring). A hand without a ground-truth side
    cannot teach the side classes and is left out; a frame without hands stays, as a frame with no instance."""
    out = []
    for d in dicts:
        anns = []
        for h in d.get("hands", []):
            if h.get("side") not in SIDES or h.get("side_source", "gt") != "gt":
                continue
            anns.append({"category_id": SIDES.index(h["side"]), "segmentation": h["segmentation"],
                         "bbox": list(h["bbox"]), "bbox_mode": BoxMode.XYWH_ABS, "iscrowd": 0})
        out.append({k: d[k] for k in ("file_name", "image_id", "height", "width")} | {"annotations": anns})
    return out


def register_hands_only(name: str, load: Callable[[], List[Dict]], **metadata) -> str:
    """Register ``<name>_hands`` (lazy: ``load()`` gives the WISH dicts of split ``name`` on first use); returns it.
    An earlier registration of that name is replaced."""
    hname = hands_only_name(name)
    if hname in DatasetCatalog.list():
        DatasetCatalog.remove(hname)
        MetadataCatalog.remove(hname)
    DatasetCatalog.register(hname, lambda: hands_only(load()))
    MetadataCatalog.get(hname).set(thing_classes=list(HAND_CLASSES), evaluator_type=HAND_EVALUATOR,
                                   **{k: v for k, v in metadata.items() if v is not None})
    return hname


def register_real_hands_only(epic_visor: Dict[str, tuple], egohos: Dict[str, tuple]) -> None:
    """``<name>_hands`` of the real splits: ``epic_visor`` maps a split name to ``(annotations_dir, image_root,
    participant filter)`` (the filter: keyword options of ``load_epic_visor``), ``egohos`` to ``(label_dir,
    image_root)``. Read without narrations (see the module docstring)."""
    from .ego4d import load_ego4d
    from .visor import load_epic_visor

    for name, (ann, images, participant_filter) in epic_visor.items():
        register_hands_only(name, lambda a=ann, i=images, n=name, f=participant_filter: load_epic_visor(
            a, i, None, dataset_name=hands_only_name(n), **f), image_root=images)
    for name, (labels, images) in egohos.items():
        register_hands_only(name, lambda a=labels, i=images, n=name: load_ego4d(
            a, i, None, dataset_name=hands_only_name(n)), image_root=images)
