"""Dataset mappers, selected by ``INPUT.DATASET_MAPPER_NAME`` (the Mask2Former idiom).

- ``wish_online``: reads the frame (RGB uint8 CHW ``image``) for the online path (extraction, demo).
- ``wish_cached``: attaches the frame's feature-cache record, its noun phrases' CLIP text and, for Stage 2,
  its pseudo-label targets; no image is read.
No geometric augmentation: features are cached per frame. (A horizontal flip must also swap the hand sides.)
"""
import copy
import logging
from typing import Dict, Optional

import numpy as np
import torch
from detectron2.config import configurable

from .image_io import ImageReadError, read_image_rgb

logger = logging.getLogger(__name__)


def read_rgb(file_name: str) -> torch.Tensor:
    """Frame -> uint8 [3, H, W] RGB, 16-bit frames rescaled rather than clipped (:mod:`.image_io`); an unreadable
    file raises an error that names it."""
    try:
        image = read_image_rgb(file_name)
    except ImageReadError as e:
        if e.reason == "file not found":
            raise FileNotFoundError(f"Image not found: {file_name}") from None
        raise ValueError(f"Cannot read image {file_name}: {e.reason}") from e
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))


class WISHOnlineMapper:
    @configurable
    def __init__(self, *, is_train: bool = True):
        self.is_train = is_train

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        return {"is_train": is_train}

    def __call__(self, dataset_dict: Dict) -> Dict:
        d = copy.copy(dataset_dict)
        image = read_rgb(d["file_name"])
        if tuple(image.shape[1:]) != (d["height"], d["width"]):
            raise ValueError(f"{d['file_name']}: image is {tuple(image.shape[1:])}, the dataset says "
                             f"{(d['height'], d['width'])}")
        d["image"] = image
        return d


class WISHCachedMapper:
    """``dataset_dict`` must carry ``cache_ref = (shard, position)`` (see :func:`attach_cache_refs`)."""

    def __init__(self, cache, texts: Dict, pseudo_labels: Optional[Dict[str, list]] = None):
        self.cache = cache
        self.text_index = {p: i for i, p in enumerate(texts["phrases"])}
        self.text_embeds = texts["embeds"]
        self.zero_shot = texts["zero_shot"]
        self.pseudo_labels = pseudo_labels

    def __call__(self, dataset_dict: Dict) -> Dict:
        d = copy.copy(dataset_dict)
        d["wish_features"] = self.cache.record(*d["cache_ref"])
        idx = [self.text_index[p] for p in d.get("noun_phrases", []) if p in self.text_index]
        empty = self.text_embeds.new_zeros((0,) + self.text_embeds.shape[1:])
        d["text_embeds"] = self.text_embeds[idx] if idx else empty
        d["zero_shot_embeds"] = self.zero_shot
        if self.pseudo_labels is not None:
            checked = getattr(self.pseudo_labels, "targets", None)  # a PseudoLabels file checks its indices
            objs = checked(d["image_id"], len(d["wish_features"]["proposal_scores"])) if checked else \
                self.pseudo_labels.get(str(d["image_id"]), [-1, -1])
            d["wish_targets"] = torch.tensor(objs, dtype=torch.long)
        return d


def attach_cache_refs(dicts, cache):
    """Dataset dicts + ``cache_ref``; images absent from the cache index raise with their id."""
    index = cache.load_index()
    out = []
    for d in dicts:
        key = str(d["image_id"])
        if key not in index:
            raise KeyError(f"image {key} is not in the feature cache {cache.dir}; delete it to rebuild")
        d = copy.copy(d)
        d["cache_ref"] = tuple(index[key])
        out.append(d)
    return out
