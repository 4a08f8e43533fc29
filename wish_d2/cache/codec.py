"""How a record's CLIP embeddings are stored on disk, and read back as float32.

The embeddings (``v`` [N,D], ``v_contact`` [N,2,D], ``v_hands`` [2,D]) are nearly all of a shard's bytes: at
N=64 proposals and D=512 they are 3N+2 vectors per frame. ``MODEL.WISH.CACHE.DTYPE`` chooses their storage:

- ``float32``: exact;
- ``float16``: half the bytes, relative rounding error <= 2**-11 per value (CLIP features are far inside its range);
- ``int8``: a quarter of the bytes, each vector scaled by its own absolute maximum (stored as float32), so the
  error of a value is at most ``max|x| / 254`` of its vector.

``v_contact`` is mostly repeats: every pair whose contact zone is empty pools the same CLS-only vector, and every
pair of an absent hand is zeros. It is stored sparsely when that saves rows: per hand one default row (the most
frequent one), a ``[N, 2]`` bool mask of the rows that differ from it, and only those rows. Rows are compared by
their float32 bit patterns, so decoding rebuilds the tensor bit for bit (before the dtype's own rounding, which
acts per vector and so is the same as in dense storage).

Readers never need the setting: the stored form says what it is, and :func:`decode_record` always returns float32.
Every other field (scores, geometry, RLEs) is stored as written.
"""
from typing import Dict, Optional, Tuple

import torch

DTYPES = ("float32", "float16", "int8")
EMBEDDING_FIELDS = ("v", "v_contact", "v_hands")
SPARSE_FIELDS = ("v_contact",)  # [N, S, D]: per slot S, most rows are one shared default


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
    if isinstance(stored, dict) and "differs" in stored:
        default, differs = decode_tensor(stored["default"]), stored["differs"]
        out = default.unsqueeze(0).repeat(differs.shape[0], *([1] * default.dim()))
        out[differs] = decode_tensor(stored["rows"])
        return out
    if isinstance(stored, dict):
        return stored["int8"].to(torch.float32) * stored["scale"]
    return stored.to(torch.float32)


def split_defaults(x: torch.Tensor) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """``x`` [N, S, D] -> (default rows [S, D], differs [N, S] bool), or ``None`` when sparse storage would not
    store fewer rows than dense. Equality is of the float32 bit patterns, so nothing is merged that differs."""
    x = x.detach().to("cpu", torch.float32).contiguous()
    if x.dim() != 3 or x.shape[0] == 0 or x.shape[-1] == 0:
        return None
    bits = x.view(torch.int32)
    defaults, differs = [], []
    for s in range(x.shape[1]):
        _, inverse, counts = torch.unique(bits[:, s], dim=0, return_inverse=True, return_counts=True)
        mode = int(counts.argmax())
        defaults.append(x[int((inverse == mode).nonzero()[0, 0]), s])
        differs.append(inverse != mode)
    differs = torch.stack(differs, 1)
    if int(differs.sum()) + x.shape[1] >= differs.numel():
        return None
    return torch.stack(defaults), differs


def encode_field(name: str, x: torch.Tensor, dtype: str):
    if name in SPARSE_FIELDS:
        split = split_defaults(x)
        if split is not None:
            default, differs = split
            return {"default": encode_tensor(default, dtype), "differs": differs,
                    "rows": encode_tensor(x.detach().to("cpu", torch.float32)[differs], dtype)}
    return encode_tensor(x, dtype)


def encode_record(record: Dict, dtype: str) -> Dict:
    return {k: encode_field(k, x, dtype) if k in EMBEDDING_FIELDS else x for k, x in record.items()}


def decode_record(record: Dict) -> Dict:
    return {k: decode_tensor(x) if k in EMBEDDING_FIELDS else x for k, x in record.items()}


def stored_problem(value) -> str:
    """'' if a stored embedding field has a form :func:`decode_tensor` can read, else what is wrong with it."""
    if isinstance(value, torch.Tensor):
        return "" if value.is_floating_point() else f"a {value.dtype} tensor, not float"
    if not isinstance(value, dict):
        return f"a {type(value).__name__}, not a tensor"
    if "differs" in value:
        differs = value["differs"]
        if not (isinstance(differs, torch.Tensor) and differs.dtype == torch.bool and differs.dim() == 2
                and {"default", "rows"} <= set(value)):
            return "sparse storage without a bool [N, S] 'differs' mask, 'default' and 'rows'"
        problem = stored_problem(value["default"]) or stored_problem(value["rows"])
        if problem:
            return problem
        default, rows = _stored_shape(value["default"]), _stored_shape(value["rows"])
        if len(default) != 2 or default[0] != differs.shape[1] or rows != (int(differs.sum()), default[1]):
            return (f"sparse storage of inconsistent shapes: default {default}, mask {tuple(differs.shape)} "
                    f"({int(differs.sum())} rows differ), rows {rows}")
        return ""
    q, scale = value.get("int8"), value.get("scale")
    if not (isinstance(q, torch.Tensor) and q.dtype == torch.int8 and isinstance(scale, torch.Tensor)
            and scale.is_floating_point() and q.dim() >= 1 and scale.shape == q.shape[:-1] + (1,)):
        return "int8 storage without an int8 tensor and a float scale per vector"
    return ""


def _stored_shape(value) -> Tuple[int, ...]:
    return tuple((value["int8"] if isinstance(value, dict) else value).shape)


def stored_count(value) -> int:
    """Length of the first dimension of a stored field (the proposal count of per-proposal fields)."""
    if isinstance(value, dict):
        value = value["differs"] if "differs" in value else value.get("int8")
    if isinstance(value, torch.Tensor):
        return value.shape[0] if value.dim() else -1
    return len(value) if isinstance(value, (list, tuple)) else -1


def stored_tensors(value):
    """The tensors inside one stored field (a tensor, an int8 ``{"int8", "scale"}`` pair, a sparse
    ``{"default", "differs", "rows"}`` form, or neither)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for x in value.values() for t in stored_tensors(x)]
    return []
