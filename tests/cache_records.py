"""Test helper: size of the feature cache per frame, measured by writing a real shard of records with realistic
shapes (``tools/benchmark.py`` measures records of ``WISH.extract`` itself): random embeddings of the real
shapes (``v`` [N,D], ``v_contact`` [N,2,D], ``v_hands`` [2,D], ``geom`` [N,2,8]) and COCO RLEs of blob-shaped
proposal masks at the frame size (rasterised straight to RLE by pycocotools, so 1080p frames stay cheap to make).
Random values are the worst case for size: nothing in a shard is compressed. Only ``contact_fraction`` of the
``v_contact`` rows of each hand are distinct, as in extraction: a pair whose contact zone is empty pools the same
CLS-only vector as every other such pair.
"""
import math
import os
import tempfile
from typing import Dict, List

import numpy as np
import torch

from wish_d2.cache.store import FeatureCache
from wish_d2.utils.masks import polygons_to_rle


def _blob(rng, height: int, width: int, vertices: int = 48) -> List[float]:
    """A wobbly ellipse, 1-28% of the frame height in radius (10-300 px at 1080p): SAM masks range from object
    parts to whole objects."""
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    rx, ry = rng.uniform(0.01, 0.28, size=2) * height
    t = np.linspace(0, 2 * math.pi, vertices, endpoint=False)
    r = 1 + 0.15 * np.sin(3 * t + rng.uniform(0, 2 * math.pi))
    return np.stack([cx + rx * r * np.cos(t), cy + ry * r * np.sin(t)], 1).ravel().tolist()


def synthetic_records(num_frames: int, num_proposals: int = 64, dim: int = 512, height: int = 1080,
                      width: int = 1920, seed: int = 0, contact_fraction: float = 0.4) -> List[Dict]:
    """Records with every field ``WISH.extract`` writes, at the given shapes, from a fixed seed; per hand, the
    first ``contact_fraction`` of the proposals have a non-empty contact zone (1.0: every row distinct)."""
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    n = num_proposals
    records = []
    touching = int(round(contact_fraction * n))
    for i in range(num_frames):
        v_contact = torch.randn(1, 2, dim, generator=g).repeat(n, 1, 1)
        v_contact[:touching] = torch.randn(touching, 2, dim, generator=g)
        rles = [polygons_to_rle([_blob(rng, height, width)], height, width) for _ in range(n + 2)]
        records.append({
            "image_id": f"frame{i:06d}", "height": height, "width": width,
            "v": torch.randn(n, dim, generator=g), "proposal_rles": rles[:n],
            "proposal_scores": torch.rand(n, generator=g), "hand_present": torch.ones(2, dtype=torch.bool),
            "v_hands": torch.randn(2, dim, generator=g), "v_contact": v_contact,
            "hand_rles": rles[n:], "geom": torch.rand(n, 2, 8, generator=g),
            "gt_pair_obj": torch.tensor([0, -1]),
        })
    return records


def shard_kb_per_frame(records: List[Dict], dtype: str) -> float:
    """Bytes of one cache shard holding ``records`` stored as ``dtype``, per frame, in KB (1000 bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp, "footprint", "k", shard_size=len(records), dtype=dtype)
        cache.write_shard(0, records)
        return os.path.getsize(cache.shard_path(0)) / len(records) / 1000.0
