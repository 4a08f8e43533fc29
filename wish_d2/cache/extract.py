"""Fill a :class:`FeatureCache` by running WISH's frozen part (proposals, hands, mask-pooled CLIP, geometry)
once per frame. Shards are split across ranks with Detectron2's ``comm``, so ``launch`` with N GPUs or N
machines divides the work. Shards that prove complete (sidecar, size, checksum, records) are kept, so an
interrupted extraction resumes; missing or damaged ones are rebuilt, and the index is written last."""
import hashlib
import logging
import os
from typing import Dict, List

import torch
from detectron2.utils import comm
from tqdm import tqdm

from ..modeling.shipped import SHIPPED_PREFIX, resolve_shipped, verify_shipped
from .store import FeatureCache, cache_key

logger = logging.getLogger(__name__)


def dataset_fingerprint(dicts: List[Dict]) -> str:
    h = hashlib.sha256()
    for d in dicts:
        h.update(f"{d['image_id']}|{d['file_name']}|{d['height']}x{d['width']}\n".encode())
    return h.hexdigest()[:16]


def file_stamp(path: str) -> str:
    """Path, size and modification time in nanoseconds: a rewrite within the same second still changes it. A
    shipped encoder (``wish_d2://``) is stamped by its verified SHA-256, so every clone shares one key."""
    if not path:
        return ""
    if str(path).startswith(SHIPPED_PREFIX):
        return f"{path}:sha256:{verify_shipped(resolve_shipped(path))['file']['sha256']}"
    try:
        st = os.stat(path)
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return path


def feature_cache_key(cfg, dataset_name: str, dicts: List[Dict], proposals_file: str = "") -> str:
    """Hash of the dataset and of every config field that changes the cached features (changes of the extraction
    code itself bump ``store.FORMAT``, which is part of every key)."""
    w = cfg.MODEL.WISH
    return cache_key({
        "dataset": dataset_name,
        "images": dataset_fingerprint(dicts),
        "clip": [w.CLIP.ENCODER, w.CLIP.MODEL_NAME, file_stamp(w.CLIP.PRETRAINED), w.CLIP.INIT_SEED,
                 w.CLIP.MASK_SOFT_COVERAGE, w.CLIP.PROMPT, w.CLIP.ZERO_SHOT_PROMPT, w.CLIP.AUTOCAST],
        "proposals": [cfg.MODEL.PROPOSAL_GENERATOR.NAME, file_stamp(proposals_file), w.PROPOSALS.MAX_PER_IMAGE,
                      w.PROPOSALS.MIN_AREA, w.PROPOSALS.MAX_HAND_FRACTION, w.SEGMENTER.NAME, w.SEGMENTER.SAM_TYPE,
                      file_stamp(w.SEGMENTER.SAM_CHECKPOINT), w.SEGMENTER.POINTS_PER_SIDE,
                      w.SEGMENTER.STABILITY_SCORE_THRESH, w.SEGMENTER.BOX_NMS_THRESH,
                      w.SEGMENTER.PRED_IOU_THRESH, file_stamp(w.SEGMENTER.GDINO_PATH), w.SEGMENTER.BOX_THRESHOLD,
                      w.SEGMENTER.TEXT_THRESHOLD, cfg.INPUT.FORMAT],
        "hands": [w.HANDS.SOURCE, w.HANDS.SIDE_HEURISTIC, file_stamp(w.HANDS.PRECOMPUTED_FILE),
                  file_stamp(w.HANDS.DETECTOR_CONFIG), file_stamp(w.HANDS.DETECTOR_WEIGHTS),
                  list(w.HANDS.DETECTOR_CLASSES), w.HANDS.DETECTOR_SCORE_THRESH, w.HANDS.DILATION],
        "storage": w.CACHE.DTYPE,
    })


@torch.no_grad()
def extract_dataset_features(model, dicts: List[Dict], mapper, cache: FeatureCache, batch_size: int = 8,
                             desc: str = "extract", full_check: bool = False) -> FeatureCache:
    """Run ``model.extract`` over ``dicts`` into ``cache``; returns the cache once complete on all ranks.

    A complete cache is accepted after the cheap check (file sizes), or with ``full_check`` after reading every
    file (checksums and records: what ``tools/extract_features.py`` does, so it repairs any damage)."""
    if cache.is_complete(full=full_check):
        return cache
    comm.synchronize()
    if comm.is_main_process():
        cache.invalidate()
    comm.synchronize()
    was_training = model.training
    model.eval()
    rank, world = comm.get_rank(), comm.get_world_size()
    ids = [str(d["image_id"]) for d in dicts]
    todo = [k for k in range(cache.num_shards(len(dicts))) if k % world == rank]
    todo = [k for k in tqdm(todo, desc=f"{desc}: check shards", unit="shard", leave=False,
                            disable=len(todo) < 2 or not comm.is_main_process())
            if not cache.shard_is_complete(k, ids[k * cache.shard_size:(k + 1) * cache.shard_size])]
    n_images = sum(len(dicts[k * cache.shard_size:(k + 1) * cache.shard_size]) for k in todo)
    hands = getattr(getattr(model, "module", model), "hand_source", None)
    if n_images and hasattr(hands, "check_coverage"):  # a precomputed hands file must belong to this dataset
        hands.check_coverage(ids, cache.dataset_name)
    if n_images:
        logger.info(f"Extracting features of {n_images} images into {cache.dir} (rank {rank}/{world})")
    with tqdm(total=n_images, desc=desc, unit="img", disable=not n_images or not comm.is_main_process()) as bar:
        for k in todo:
            part = dicts[k * cache.shard_size:(k + 1) * cache.shard_size]
            records = []
            for i in range(0, len(part), batch_size):
                batch = [mapper(d) for d in part[i:i + batch_size]]
                records.extend(model.extract(batch))
                bar.update(len(batch))
            cache.write_shard(k, records)
    if comm.is_main_process():
        # The split's own narrations: Stage 1's supervision on training splits. On the test split only the
        # pseudo_labels reference row reads them (WISH.pseudo_label); WISH.forward at inference never does.
        phrases = sorted({p for d in dicts for p in d.get("noun_phrases", [])})
        cache.write_texts(phrases, model.text_embeddings(phrases), model.zero_shot_embeddings())
    comm.synchronize()
    if comm.is_main_process():
        cache.finalize(ids)
    comm.synchronize()
    model.train(was_training)
    return cache
