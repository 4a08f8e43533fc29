"""Feature-cache data path: make sure a dataset's cache exists, then serve it through Detectron2 loaders."""
import copy
import json
import logging
import os
from typing import Callable, Dict, List, Optional, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader
from detectron2.data import build_detection_train_loader

from ..cache import FeatureCache, extract_dataset_features
from ..cache.sampler import ShardGroupedTrainingSampler
from ..cache.extract import feature_cache_key
from ..data.mappers import WISHCachedMapper, WISHOnlineMapper, attach_cache_refs

logger = logging.getLogger(__name__)
SHARDS_IN_MEMORY = 2  # shards mixed by the training sampler; each dataset's cache keeps as many open


# name -> (the registered loader, what it returned): see dataset_dicts.
_LOADED: Dict[str, Tuple[Callable, List[Dict]]] = {}


def dataset_dicts(name: str) -> List[Dict]:
    """``DatasetCatalog.get`` with a clear error listing the registered datasets.

    Each registered loader runs once per process, and callers get deep copies: one WISH run reads its splits about
    20 times (cache checks, loaders, calibration, evaluation), and parsing annotation files costs far more than a
    copy. Registering a name again (another synthetic seed) installs a new loader, which is then run.
    """
    if name not in DatasetCatalog.list():
        raise KeyError(f"Dataset '{name}' is not registered. Registered: {', '.join(sorted(DatasetCatalog.list()))}")
    meta = MetadataCatalog.get(name)
    loader = DatasetCatalog[name]
    if name not in _LOADED or _LOADED[name][0] is not loader:
        _LOADED[name] = (loader, DatasetCatalog.get(name))
    dicts = copy.deepcopy(_LOADED[name][1])
    proposals_file = meta.get("proposals_file", "")
    out = []
    for d in dicts:
        d.setdefault("dataset_name", name)
        if proposals_file:
            d.setdefault("proposals_file", proposals_file)
        out.append(d)
    return out


def cache_root(cfg) -> str:
    return cfg.MODEL.WISH.CACHE.DIR or os.path.join(cfg.OUTPUT_DIR, "cache")


def feature_cache_for(cfg, name: str, dicts: Optional[List[Dict]] = None) -> FeatureCache:
    dicts = dataset_dicts(name) if dicts is None else dicts
    key = feature_cache_key(cfg, name, dicts, MetadataCatalog.get(name).get("proposals_file", ""))
    return FeatureCache(cache_root(cfg), name, key, cfg.MODEL.WISH.CACHE.SHARD_SIZE, max_open_shards=SHARDS_IN_MEMORY,
                        dtype=cfg.MODEL.WISH.CACHE.DTYPE)


def ensure_feature_cache(cfg, name: str, model=None, dicts: Optional[List[Dict]] = None,
                         full_check: bool = False) -> FeatureCache:
    """The dataset's feature cache, extracted first if missing or incomplete (resuming finished shards).
    ``full_check`` reads every cache file (checksums, records) instead of comparing sizes, and rebuilds damage."""
    dicts = dataset_dicts(name) if dicts is None else dicts
    cache = feature_cache_for(cfg, name, dicts)
    if not cache.is_complete(full=full_check):
        if model is None:
            from detectron2.modeling import build_model

            model = build_model(cfg)
        extract_dataset_features(model, dicts, WISHOnlineMapper(is_train=False), cache, desc=f"features {name}",
                                 full_check=full_check)
    return cache


def cached_dicts(cfg, names, model=None):
    """``(name, cache, dataset dicts with cache_ref)`` per dataset; each dataset is loaded once."""
    out = []
    for name in names:
        dicts = dataset_dicts(name)
        cache = ensure_feature_cache(cfg, name, model, dicts)
        out.append((name, cache, attach_cache_refs(dicts, cache)))
    return out


class _MultiCache:
    """Route each dict to its own dataset's cache (several training datasets at once)."""

    def __init__(self, caches: Dict[str, FeatureCache]):
        self.caches = caches

    def mapper(self, pseudo_labels=None):
        mappers = {name: WISHCachedMapper(c, c.load_texts(), pseudo_labels) for name, c in self.caches.items()}
        return lambda d: mappers[d["dataset_name"]](d)


def build_cached_train_loader(cfg, pseudo_labels: Optional[Dict] = None):
    parts = cached_dicts(cfg, cfg.DATASETS.TRAIN)
    dicts = [d for _, _, ds in parts for d in ds]
    mapper = _MultiCache({n: c for n, c, _ in parts}).mapper(pseudo_labels)
    sampler = ShardGroupedTrainingSampler([(d["dataset_name"], d["cache_ref"][0]) for d in dicts],
                                          group=SHARDS_IN_MEMORY)
    return build_detection_train_loader(dicts, mapper=mapper, sampler=sampler,
                                        total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
                                        aspect_ratio_grouping=False, num_workers=cfg.DATALOADER.NUM_WORKERS)


def build_cached_test_loader(cfg, name: str, model=None):
    (_, cache, dicts), = cached_dicts(cfg, [name], model)
    return build_detection_test_loader(dicts, mapper=WISHCachedMapper(cache, cache.load_texts()), num_workers=0)


def iterate_cached(cfg, name: str, model=None, batch_size: int = 64, pseudo_labels=None):
    """Yield batches of mapped cached dicts in dataset order (calibration, pseudo-labelling)."""
    (_, cache, dicts), = cached_dicts(cfg, [name], model)
    mapper = WISHCachedMapper(cache, cache.load_texts(), pseudo_labels)
    for i in range(0, len(dicts), batch_size):
        yield [mapper(d) for d in dicts[i:i + batch_size]]


def load_pseudo_labels(path: str) -> Dict[str, List[int]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Pseudo-label file not found: {path} (MODEL.WISH.PSEUDO.FILE); run Stage 1 first")
    with open(path) as f:
        data = json.load(f)
    # with several objects per hand: rows [first objects, then each hand's k-th further object] -> targets [K, 2]
    return {k: [v["objects"], *map(list, zip(*v["extra"]))] if v.get("extra") else v["objects"]
            for k, v in data["labels"].items()}
