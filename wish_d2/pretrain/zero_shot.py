"""What the encoder knows: zero-shot category accuracy of mask-pooled embeddings on ground-truth object masks.

Each object mask is pooled by the mask-guided CLIP exactly as WISH pools a proposal; its category is the argmax of
the cosine similarity to the prompt ``"a {noun}"`` over the world's categories. A random encoder scores about chance
(1 / 13 on the synthetic world); an encoder that links nouns to segments scores high, and only then can a narration
noun point WISH at the object it names.
"""
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ZERO_SHOT_PROMPT", "zero_shot_top1", "synthetic_zero_shot_top1", "encoder_report"]

ZERO_SHOT_PROMPT = "a {noun}"


@torch.no_grad()
def zero_shot_top1(encoder, frames: Iterable[Tuple[torch.Tensor, torch.Tensor, Sequence[int]]],
                   nouns: Sequence[str], prompt: str = ZERO_SHOT_PROMPT, batch_frames: int = 16) -> Dict:
    """``encoder``: a ``MaskPooledCLIP``; ``frames``: ``(uint8 RGB image [3, H, W], bool masks [K, H, W], category
    index per mask)``. Returns ``{"zero_shot_top1", "objects", "per_category": {noun: top-1}}`` (top-1 is ``None``
    without objects)."""
    text = F.normalize(encoder.encode_text([prompt.format(noun=n) for n in nouns]), dim=-1)
    hits = np.zeros(len(nouns))
    seen = np.zeros(len(nouns))
    batch = []

    def flush():
        images = encoder.preprocess([b[0] for b in batch])
        for pooled, (_, _, cats) in zip(encoder.pool(images, [b[1] for b in batch]), batch):
            if len(cats):
                pred = (F.normalize(pooled, dim=-1) @ text.T).argmax(1).cpu().numpy()
                for c, p in zip(cats, pred):
                    seen[c] += 1
                    hits[c] += int(p == c)
        batch.clear()

    for image, masks, cats in frames:
        if masks.shape[0] != len(cats):
            raise ValueError(f"zero-shot probe: {masks.shape[0]} masks but {len(cats)} categories")
        batch.append((image, masks, list(cats)))
        if len(batch) >= batch_frames:
            flush()
    if batch:
        flush()
    n = int(seen.sum())
    return {"zero_shot_top1": float(hits.sum() / n) if n else None, "objects": n, "prompt": prompt,
            "per_category": {nouns[c]: float(hits[c] / seen[c]) for c in range(len(nouns)) if seen[c]}}


def _synthetic_frames(seed: int, split: str, num: int, image_size: Sequence[int]):
    """The benchmark's own frames, re-rendered (the bytes a split writes), with every visible object's mask and
    category: the written dataset dicts carry the in-hand objects only."""
    import cv2

    from ..data.synthetic import render_frame

    for i in range(int(num)):
        f = render_frame(seed, split, i, int(image_size[0]), int(image_size[1]))
        bgr = cv2.imdecode(np.frombuffer(f["image"], np.uint8), cv2.IMREAD_COLOR)
        image = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1)
        objs = f["objects"]
        masks = torch.from_numpy(np.stack([o["mask"] for o in objs])) if objs else \
            torch.zeros((0,) + tuple(image.shape[1:]), dtype=torch.bool)
        yield image, masks, [int(o["cat"]) for o in objs]


def synthetic_zero_shot_top1(encoder, seed: int, num_frames: int, image_size: Sequence[int] = (160, 160),
                             split: str = "test") -> Dict:
    """Zero-shot top-1 on the first ``num_frames`` frames of a synthetic split, over its 13 nouns."""
    from ..data.synthetic import NOUNS

    out = zero_shot_top1(encoder, _synthetic_frames(seed, split, num_frames, image_size), NOUNS)
    out.update({"split": split, "frames": int(num_frames), "data_seed": int(seed)})
    return out


def encoder_report(cfg) -> Optional[Dict]:
    """The table's ``"encoder"`` entry for a config whose test split is a default-profile synthetic split (its
    metadata says which): zero-shot top-1 of ``cfg``'s encoder on the first ``CLIP.PROBE_FRAMES`` test frames.
    ``None`` when the probe is off or the test split is not synthetic."""
    from detectron2.data import MetadataCatalog

    from ..modeling.clip_encoder import build_clip_encoder

    n = int(cfg.MODEL.WISH.CLIP.PROBE_FRAMES)
    if n <= 0 or not cfg.DATASETS.TEST:
        return None
    meta = MetadataCatalog.get(cfg.DATASETS.TEST[0]).get("synthetic", None)
    if not meta or meta.get("profile") != "default":
        return None
    encoder = build_clip_encoder(cfg)
    out = synthetic_zero_shot_top1(encoder, meta["seed"], min(n, int(meta["num"])), meta["image_size"],
                                   meta["split"])
    out["pretrained"] = str(cfg.MODEL.WISH.CLIP.PRETRAINED or "")
    return out
