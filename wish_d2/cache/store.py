"""Sharded, atomic, resumable storage of per-image feature records.

Layout of one cache (``<root>/<dataset>-<key>/``):
- ``shard_00000.pt`` ... : ``{"format": FORMAT, "key": key, "records": [record, ...]}``, written to a temporary
  name and renamed when complete, so a killed run never leaves a shard that reads as valid;
- ``texts.pt``: ``{"phrases": [str], "embeds": [P, 2, D], "zero_shot": [2, D]}``, CLIP text of every noun phrase;
- ``index.json``: written last: key, shard count and ``image_id -> [shard, position]``.

Shards hold only tensors, strings and numbers and are read with ``torch.load(weights_only=True)``.
A record (see :mod:`wish_d2.modeling.meta_arch`) is
``{"image_id", "height", "width", "v" [N,D], "proposal_rles", "proposal_scores" [N], "hand_present" [2],
"v_hands" [2,D], "v_contact" [N,2,D], "hand_rles", "geom" [N,2,G], "gt_pair_obj" [2]}``.
Format 2 added ``v_contact`` (mask-pooled contact zone of every object-hand pair, see
``modeling.geometry.contact_region_masks``); FORMAT is part of every cache key, so format-1 caches are rebuilt.
"""
import hashlib
import json
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Sequence

import torch

from ..utils.atomic import atomic_path, write_json

logger = logging.getLogger(__name__)
FORMAT = 2  # record format version; part of the cache key


def cache_key(fields: Dict) -> str:
    """A hash of everything that changes the cached features; a changed config never reads a stale cache."""
    blob = json.dumps({"format": FORMAT, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class FeatureCache:
    """One dataset's cache folder. Writers call :meth:`write_shard` per shard, then :meth:`finalize`."""

    def __init__(self, root: str, dataset_name: str, key: str, shard_size: int = 256, max_open_shards: int = 2):
        self.key = key
        self.dir = os.path.join(root, f"{dataset_name}-{key}")
        self.shard_size = shard_size
        self._open: "OrderedDict[str, List[Dict]]" = OrderedDict()
        self._max_open = max_open_shards
        os.makedirs(self.dir, exist_ok=True)

    # ---- writing -------------------------------------------------------------------------------------------
    def shard_path(self, k: int) -> str:
        return os.path.join(self.dir, f"shard_{k:05d}.pt")

    def num_shards(self, num_images: int) -> int:
        return (num_images + self.shard_size - 1) // self.shard_size

    def shard_is_complete(self, k: int, expected_ids: Sequence[str]) -> bool:
        """True if shard k exists, loads, carries this cache's key and exactly the expected images."""
        path = self.shard_path(k)
        if not os.path.isfile(path):
            return False
        try:
            shard = torch.load(path, map_location="cpu", weights_only=True)
            ok = shard.get("key") == self.key and [r["image_id"] for r in shard["records"]] == list(expected_ids)
        except Exception as e:  # corrupt, truncated or not a shard at all: rebuild it
            logger.warning(f"Feature cache shard {path} is unreadable ({type(e).__name__}); rebuilding it")
            return False
        if not ok:
            logger.warning(f"Feature cache shard {path} does not match this dataset/config; rebuilding it")
        return ok

    def write_shard(self, k: int, records: List[Dict]) -> None:
        with atomic_path(self.shard_path(k)) as tmp:
            torch.save({"format": FORMAT, "key": self.key, "records": records}, tmp)

    def write_texts(self, phrases: List[str], embeds: torch.Tensor, zero_shot: torch.Tensor) -> None:
        with atomic_path(os.path.join(self.dir, "texts.pt")) as tmp:
            torch.save({"phrases": list(phrases), "embeds": embeds, "zero_shot": zero_shot}, tmp)

    def finalize(self, image_ids: Sequence[str]) -> None:
        index = {str(i): [n // self.shard_size, n % self.shard_size] for n, i in enumerate(image_ids)}
        write_json({"key": self.key, "num_images": len(image_ids), "index": index},
                   os.path.join(self.dir, "index.json"))

    # ---- reading -------------------------------------------------------------------------------------------
    def is_complete(self) -> bool:
        return os.path.isfile(os.path.join(self.dir, "index.json"))

    def load_index(self) -> Dict[str, List[int]]:
        with open(os.path.join(self.dir, "index.json")) as f:
            index = json.load(f)
        if index["key"] != self.key:
            raise RuntimeError(f"{self.dir}/index.json belongs to another config (key {index['key']})")
        return index["index"]

    def load_texts(self) -> Dict:
        return torch.load(os.path.join(self.dir, "texts.pt"), map_location="cpu", weights_only=True)

    def record(self, shard: int, position: int) -> Dict:
        """One image's record. A small LRU of open shards keeps memory flat however large the dataset is."""
        path = self.shard_path(shard)
        if path not in self._open:
            self._open[path] = torch.load(path, map_location="cpu", weights_only=True)["records"]
            while len(self._open) > self._max_open:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(path)
        return self._open[path][position]

    def __getstate__(self):  # data-loader workers get an empty shard LRU
        state = dict(self.__dict__)
        state["_open"] = OrderedDict()
        return state
