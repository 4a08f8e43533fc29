"""Sharded, checksummed, resumable storage of per-image feature records.

Layout of one cache (``<root>/<dataset>-<key>/``):
- ``shard_00000.pt`` ... : ``{"format", "key", "dtype", "records": [record, ...]}`` (embeddings stored as
  ``MODEL.WISH.CACHE.DTYPE``, see :mod:`.codec`); each written to a temporary name and renamed when complete;
- ``shard_00000.json`` ... : written after its shard: key, format, image ids, size and SHA-256 of the shard. A shard
  without a matching sidecar is rebuilt, so a resumed extraction keeps only shards it can prove complete;
- ``texts.pt`` (+ ``texts.json``): ``{"phrases": [str], "embeds": [P, 2, D], "zero_shot": [2, D]}``, CLIP text;
- ``index.json``: written last: key, format, ``image_id -> [shard, position]`` and the size and SHA-256 of every
  shard and of ``texts.pt``. No index, no cache: extraction removes it before rebuilding anything.

Opening the cache compares file sizes with the index; reading a shard or the texts checks the SHA-256 of the bytes,
loads them with ``torch.load(weights_only=True)`` and checks every record (:mod:`.integrity`). Records are handed
out in float32 whatever the storage dtype, and checked again after decoding. The record fields are listed in
docs/ARCHITECTURE.md.
"""
import hashlib
import io
import json
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
from tqdm import tqdm

from ..utils.atomic import atomic_path, write_json
from .codec import check_dtype, decode_record, encode_record
from ..utils.digest import digest_file
from .integrity import CacheIntegrityError, read_verified, record_problems, size_problem

logger = logging.getLogger(__name__)
# On-disk format version, part of every cache key, so caches of another format are rebuilt, never misread. Bumped
# also when extraction itself changes the features (4: sparse v_contact, geometry at the working resolution).
FORMAT = 4
INDEX, TEXTS = "index.json", "texts.pt"


def cache_key(fields: Dict) -> str:
    """A hash of everything that changes the cached features; a changed config never reads a stale cache."""
    blob = json.dumps({"format": FORMAT, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class FeatureCache:
    """One dataset's cache folder. Writers call :meth:`write_shard` per shard, :meth:`write_texts`, then
    :meth:`finalize`; readers call :meth:`load_index`, :meth:`load_texts` and :meth:`record`."""

    def __init__(self, root: str, dataset_name: str, key: str, shard_size: int = 256, max_open_shards: int = 2,
                 dtype: str = "float32"):
        if int(shard_size) < 1:
            raise ValueError(f"MODEL.WISH.CACHE.SHARD_SIZE must be >= 1, got {shard_size}")
        self.key = key
        self.dataset_name = dataset_name
        self.dir = os.path.join(root, f"{dataset_name}-{key}")
        self.shard_size = int(shard_size)
        self.dtype = check_dtype(dtype)
        self._open: "OrderedDict[str, List[Dict]]" = OrderedDict()
        self._max_open = max_open_shards
        self._manifest: Optional[Dict] = None
        os.makedirs(self.dir, exist_ok=True)

    # ---- paths ---------------------------------------------------------------------------------------------
    def shard_path(self, k: int) -> str:
        return os.path.join(self.dir, f"shard_{k:05d}.pt")

    @property
    def index_path(self) -> str:
        return os.path.join(self.dir, INDEX)

    @property
    def texts_path(self) -> str:
        return os.path.join(self.dir, TEXTS)

    @staticmethod
    def sidecar_path(path: str) -> str:
        return os.path.splitext(path)[0] + ".json"

    def num_shards(self, num_images: int) -> int:
        return (num_images + self.shard_size - 1) // self.shard_size

    def _hint(self) -> str:
        return (f"; rebuild it with `python tools/extract_features.py --config-file <your config> --datasets "
                f"{self.dataset_name}` (add --verify to list every damaged file)")

    # ---- writing -------------------------------------------------------------------------------------------
    def write_shard(self, k: int, records: List[Dict]) -> None:
        """Check, encode and store one shard; records with missing fields or non-finite values are refused."""
        path = self.shard_path(k)
        problems = [p for r in records for p in record_problems(r, f"extracted records of {path}")]
        stored = [encode_record(r, self.dtype) for r in records] if not problems else []
        problems += [p + f" after conversion to {self.dtype} (use MODEL.WISH.CACHE.DTYPE float32)"
                     for r in stored for p in record_problems(r, f"records of {path}")]
        if problems:
            raise ValueError("refusing to cache bad features: " + "; ".join(problems[:5]))
        self._write_checked(path, {"format": FORMAT, "key": self.key, "dtype": self.dtype, "records": stored},
                            {"image_ids": [str(r["image_id"]) for r in records]})

    def write_texts(self, phrases: List[str], embeds: torch.Tensor, zero_shot: torch.Tensor) -> None:
        texts = {"phrases": list(phrases), "embeds": embeds.float().cpu().clone(),
                 "zero_shot": zero_shot.float().cpu().clone()}
        problem = _texts_problem(texts, "extracted text embeddings")
        if problem:
            raise ValueError(f"refusing to cache bad features: {problem}")
        self._write_checked(self.texts_path, texts, {})

    def _write_checked(self, path: str, obj: Dict, meta: Dict) -> None:
        """Write ``path`` atomically, then its sidecar (size, SHA-256, key): only both together mark it done."""
        sidecar = self.sidecar_path(path)
        if os.path.exists(sidecar):
            os.remove(sidecar)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object: a full disk surfaces as OSError (see utils.atomic)
                torch.save(obj, f)
            digest = digest_file(tmp)
        write_json({"format": FORMAT, "key": self.key, **digest, **meta}, sidecar)

    def invalidate(self) -> None:
        """Remove the index before any file is rebuilt: a half-rebuilt cache must never read as complete."""
        if os.path.exists(self.index_path):
            os.remove(self.index_path)
        self._manifest = None
        self._open.clear()

    def finalize(self, image_ids: Sequence[str]) -> None:
        """Write ``index.json`` from the shards' and texts' sidecars; raises if any of them is not complete."""
        ids = [str(i) for i in image_ids]
        shards = []
        for k in range(self.num_shards(len(ids))):
            side = self._sidecar(self.shard_path(k), ids[k * self.shard_size:(k + 1) * self.shard_size])
            shards.append({"bytes": side["bytes"], "sha256": side["sha256"]})
        texts = self._sidecar(self.texts_path)
        index = {i: [n // self.shard_size, n % self.shard_size] for n, i in enumerate(ids)}
        write_json({"format": FORMAT, "key": self.key, "dtype": self.dtype, "num_images": len(ids),
                    "shard_size": self.shard_size, "shards": shards,
                    "texts": {"bytes": texts["bytes"], "sha256": texts["sha256"]}, "index": index}, self.index_path)
        self._manifest = None

    # ---- checking ------------------------------------------------------------------------------------------
    def _sidecar(self, path: str, expected_ids: Optional[Sequence[str]] = None) -> Dict:
        """The sidecar of ``path`` if it belongs to this cache, lists ``expected_ids`` and matches the file size."""
        sidecar = self.sidecar_path(path)
        if not os.path.isfile(path):
            raise CacheIntegrityError(f"{path} is missing")
        try:
            with open(sidecar) as f:
                side = json.load(f)
            side["bytes"], side["sha256"]  # noqa: B018 (presence check)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CacheIntegrityError(f"{sidecar} is missing or unreadable ({type(e).__name__}), so {path} "
                                      "cannot be trusted") from None
        if side.get("key") != self.key or side.get("format") != FORMAT:
            raise CacheIntegrityError(f"{path} belongs to another config or cache format")
        if expected_ids is not None and side.get("image_ids") != [str(i) for i in expected_ids]:
            raise CacheIntegrityError(f"{path} holds other images than this dataset puts in it")
        problem = size_problem(path, side)
        if problem:
            raise CacheIntegrityError(problem)
        return side

    def shard_problem(self, k: int, expected_ids: Sequence[str], full: bool = True) -> str:
        """'' if shard ``k`` is complete and holds exactly ``expected_ids``, else why it must be rebuilt.
        ``full`` also checks the SHA-256 and every record (one read of the shard)."""
        path = self.shard_path(k)
        try:
            side = self._sidecar(path, expected_ids)
            if full:
                self._load_shard(path, side)
        except CacheIntegrityError as e:
            return str(e)
        return ""

    def shard_is_complete(self, k: int, expected_ids: Sequence[str]) -> bool:
        problem = self.shard_problem(k, expected_ids)
        if problem and os.path.exists(self.shard_path(k)):
            logger.warning(f"Feature cache shard will be rebuilt: {problem}")
        return not problem

    def problems(self, full: bool = False) -> List[str]:
        """Everything wrong with the completed cache: sizes only, or with ``full`` every checksum and record."""
        try:
            manifest = self.manifest()
        except CacheIntegrityError as e:
            return [str(e)]
        entries = [(self.shard_path(k), s) for k, s in enumerate(manifest["shards"])]
        entries.append((self.texts_path, manifest["texts"]))
        problems = [p for p in (size_problem(path, d) for path, d in entries) if p]
        if full and not problems:
            for path, d in tqdm(entries[:-1], desc=f"check {self.dataset_name}", unit="shard", leave=False,
                                disable=len(entries) < 9):
                try:
                    self._load_shard(path, d)
                except CacheIntegrityError as e:
                    problems.append(str(e))
            try:
                self.load_texts()
            except CacheIntegrityError as e:
                problems.append(str(e))
        return problems

    def is_complete(self, full: bool = False) -> bool:
        """True if the index exists and every file it lists is intact (see :meth:`problems`)."""
        if not os.path.exists(self.index_path):
            return False
        self._manifest = None  # read the index as it is on disk now
        problems = self.problems(full)
        for p in problems:
            logger.warning(f"Feature cache {self.dir} is damaged and will be rebuilt: {p}")
        return not problems

    def verify(self) -> List[str]:
        """Every problem of this cache, each naming its file ([] = intact). Reads every file once."""
        return self.problems(full=True)

    # ---- reading -------------------------------------------------------------------------------------------
    def manifest(self) -> Dict:
        """The parsed ``index.json``; raises :class:`CacheIntegrityError` naming what is wrong with it."""
        if self._manifest is None:
            self._manifest = self._read_manifest()
        return self._manifest

    def _read_manifest(self) -> Dict:
        path = self.index_path
        try:
            with open(path) as f:
                m = json.load(f)
        except FileNotFoundError:
            raise CacheIntegrityError(f"{path} is missing: the cache was never completed") from None
        except (OSError, ValueError) as e:
            raise CacheIntegrityError(f"{path} is unreadable ({type(e).__name__}: truncated or not JSON)") from None
        if not isinstance(m, dict):
            raise CacheIntegrityError(f"{path} is not a cache index")
        if m.get("key") != self.key:
            raise CacheIntegrityError(f"{path} belongs to another config (key {m.get('key')!r}, expected {self.key})")
        if m.get("format") != FORMAT:
            raise CacheIntegrityError(f"{path} is of cache format {m.get('format')!r}, expected {FORMAT}")
        try:
            n = int(m["num_images"])
            ok = (len(m["index"]) == n and all(int(e["bytes"]) >= 0 and len(e["sha256"]) == 64
                                               for e in m["shards"] + [m["texts"]])
                  and all(0 <= s < len(m["shards"]) and p >= 0 for s, p in m["index"].values()))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise CacheIntegrityError(f"{path} is not a complete cache index (fields missing or inconsistent)")
        return m

    def load_index(self) -> Dict[str, List[int]]:
        """``image_id -> [shard, position]`` after the cheap check on open: every listed file has its size."""
        problems = self.problems(full=False)
        if problems:
            raise CacheIntegrityError(problems[0] + self._hint())
        return self.manifest()["index"]

    def load_texts(self) -> Dict:
        try:
            data = read_verified(self.texts_path, self.manifest()["texts"])
            texts = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except CacheIntegrityError as e:
            raise CacheIntegrityError(str(e) + self._hint()) from None
        except Exception as e:  # torch.load of bytes that passed the checksum: written by something else
            raise CacheIntegrityError(f"{self.texts_path} cannot be loaded ({type(e).__name__})" + self._hint()) \
                from None
        problem = _texts_problem(texts, self.texts_path)
        if problem:
            raise CacheIntegrityError(problem + self._hint())
        return texts

    def _load_shard(self, path: str, expected: Dict) -> List[Dict]:
        """The stored records of a shard whose bytes match ``expected`` (size, SHA-256) and whose records pass
        :func:`record_problems`; anything else raises :class:`CacheIntegrityError`."""
        data = read_verified(path, expected)
        try:
            shard = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:  # bytes that passed the checksum but are no shard: written by something else
            raise CacheIntegrityError(f"{path} cannot be loaded ({type(e).__name__})") from None
        if not isinstance(shard, dict) or shard.get("key") != self.key or shard.get("format") != FORMAT \
                or not isinstance(shard.get("records"), list):
            raise CacheIntegrityError(f"{path} is not a shard of this cache (key, format or records wrong)")
        problems = [p for r in shard["records"] for p in record_problems(r, path)]
        if problems:
            raise CacheIntegrityError("; ".join(problems[:3]))
        return shard["records"]

    def record(self, shard: int, position: int) -> Dict:
        """One image's record (float32). A small LRU of open shards keeps memory flat however large the dataset."""
        path = self.shard_path(shard)
        if path not in self._open:
            try:
                self._open[path] = self._load_shard(path, self.manifest()["shards"][shard])
            except CacheIntegrityError as e:
                raise CacheIntegrityError(str(e) + self._hint()) from None
            while len(self._open) > self._max_open:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(path)
        # The stored records were checked once when the shard was loaded (fields, forms, finite values), and
        # decoding finite float16/int8/sparse parts only gives finite float32: no second check per fetch.
        return decode_record(self._open[path][position])

    def __getstate__(self):  # data-loader workers get an empty shard LRU
        state = dict(self.__dict__)
        state["_open"] = OrderedDict()
        return state


def _texts_problem(texts, where: str) -> str:
    """'' if ``texts`` is a well-formed ``{"phrases", "embeds" [P,2,D], "zero_shot" [2,D]}`` of finite values."""
    if not isinstance(texts, dict) or not {"phrases", "embeds", "zero_shot"} <= set(texts):
        return f"{where} is not a text table (phrases, embeds, zero_shot)"
    phrases, embeds, zero = texts["phrases"], texts["embeds"], texts["zero_shot"]
    if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
        return f"{where}: field 'phrases' is not a list of strings"
    for field, t in (("embeds", embeds), ("zero_shot", zero)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            return f"{where}: field {field!r} is not a float tensor"
        if not bool(torch.isfinite(t).all()):
            return f"{where}: field {field!r} has non-finite values (NaN or inf)"
    if embeds.dim() != 3 or embeds.shape[:2] != (len(phrases), 2) or zero.shape != (2, embeds.shape[-1]):
        return f"{where}: shapes embeds {tuple(embeds.shape)} / zero_shot {tuple(zero.shape)} do not fit " \
               f"{len(phrases)} phrases"
    return ""
