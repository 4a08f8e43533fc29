"""How a record's CLIP embeddings are stored on disk, and read back as float32.

The embeddings (``v`` [N,D], ``v_contact`` [N,2,D], ``v_hands`` [2,D]) are nearly all of a shard's bytes: at
N=64 proposals and D=512 they are 3N+2 vectors per frame. ``MODEL.WISH.CACHE.DTYPE`` chooses their storage:

- ``float32``: exact;
- ``float16``: half the bytes, relative rounding error <= 2**-11 per value (CLIP features are far inside its range);
- ``int8``: a quarter of the bytes, each vector scaled by its own absolute maximum (stored as float32), so the
  error of a value is at most ``max|x| / 254`` of its vector.

Readers never need the setting: the stored form says what it is, and :func:`decode_record` always returns float32.
Every other field (scores, geometry, RLEs) is stored as written.
"""
from typing import Dict

import torch

DTYPES = ("float32", "float16", "int8")
EMBEDDING_FIELDS = ("v", "v_contact", "v_hands")


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"MODEL.WISH.CACHE.DTYPE must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def encode_tensor(x: torch.Tensor, dtype: str):
    """A float tensor -> its stored form (always a fresh, compact tensor: never a view of a larger storage,
    which ``torch.save`` would write whole)."""
    x = x.detach().to("cpu", torch.float32)
    if dtype == "float32":
        return x.clone()
    if dtype == "float16":
        return x.to(torch.float16)
    scale = x.abs().amax(dim=-1, keepdim=True) / 127.0
    q = torch.round(x / torch.where(scale > 0, scale, torch.ones_like(scale))).clamp_(-127, 127).to(torch.int8)
    return {"int8": q, "scale": scale}


def decode_tensor(stored) -> torch.Tensor:
    if isinstance(stored, dict):
        return stored["int8"].to(torch.float32) * stored["scale"]
    return stored.to(torch.float32)


def encode_record(record: Dict, dtype: str) -> Dict:
    return {k: encode_tensor(x, dtype) if k in EMBEDDING_FIELDS else x for k, x in record.items()}


def decode_record(record: Dict) -> Dict:
    return {k: decode_tensor(x) if k in EMBEDDING_FIELDS else x for k, x in record.items()}


def stored_tensors(value):
    """The tensors inside one stored field (a tensor, an int8 ``{"int8", "scale"}`` pair, or neither)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [x for x in value.values() if isinstance(x, torch.Tensor)]
    return []
