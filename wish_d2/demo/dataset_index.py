"""Which demo inputs belong to a registered dataset, so they can reuse its hands, proposals and ground truth."""
import logging
import os
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Tuple

from .console import say

__all__ = ["DatasetIndex"]

logger = logging.getLogger(__name__)


class DatasetIndex:
    """Lazily maps absolute image paths to ``(dataset dict, dataset name)`` over DATASETS.TEST, then VAL, then TRAIN.

    A dataset is loaded only if one of the inputs lies under its metadata ``image_root`` (or it has none), so the
    demo on unrelated images never builds or generates a dataset.
    """

    def __init__(self, cfg, input_paths: Iterable[str] = (), enabled: bool = True):
        self.cfg = cfg
        self.inputs = [os.path.realpath(p) for p in input_paths]
        self.enabled = enabled
        self._index: Optional[Dict[str, Tuple[Dict, str]]] = None
        #: the datasets that were loaded and searched
        self.names: List[str] = []

    def _build(self) -> Dict[str, Tuple[Dict, str]]:
        index: Dict[str, Tuple[Dict, str]] = {}
        if not self.enabled:
            return index
        try:
            from wish_d2.engine.setup import register_from_cfg

            register_from_cfg(self.cfg)  # the config's synthetic splits (lazy: nothing is generated here)
        except Exception as e:  # noqa: BLE001  a lookup aid: the demo runs without it
            logger.warning("could not register the datasets the config names: %s", e)
        from detectron2.data import DatasetCatalog, MetadataCatalog

        from wish_d2.engine.data import dataset_dicts

        names = list(OrderedDict.fromkeys(list(self.cfg.DATASETS.TEST) + list(self.cfg.DATASETS.VAL)
                                          + list(self.cfg.DATASETS.TRAIN)))
        registered = set(DatasetCatalog.list())
        for name in names:
            if name not in registered:
                logger.info("dataset %s is not registered; not searched", name)
                continue
            root = MetadataCatalog.get(name).get("image_root", "")
            if root:
                root = os.path.realpath(root)
                if not any(p == root or p.startswith(root + os.sep) for p in self.inputs):
                    continue
            try:
                dicts = dataset_dicts(name)
            except Exception as e:  # noqa: BLE001  one broken dataset must not stop the demo
                say(f"warning: could not load dataset {name} to look up inputs ({type(e).__name__}: {e})", err=True)
                continue
            self.names.append(name)
            for d in dicts:
                index.setdefault(os.path.realpath(d["file_name"]), (d, name))
        return index

    def lookup(self, path: str) -> Optional[Tuple[Dict, str]]:
        """``(dataset dict, dataset name)`` of the image at ``path``, or None."""
        if self._index is None:
            self._index = self._build()
        return self._index.get(os.path.realpath(path))
