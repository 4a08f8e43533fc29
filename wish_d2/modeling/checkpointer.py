"""``SafeDetectionCheckpointer``: the one way this project reads Detectron2 checkpoints (``MODEL.WEIGHTS``,
``--resume``, the hand detector's weights).

Detectron2's ``DetectionCheckpointer`` unpickles ``.pkl`` files with plain ``pickle`` and ``.pth`` files with
``torch.load`` defaults, reads ``last_checkpoint`` as any path, and lets a truncated or foreign file end in a library
traceback. This subclass keeps its formats and name-matching (Detectron2 and Caffe2 model-zoo ``.pkl``, native
``.pth``) but:

* reads ``.pkl`` through :mod:`wish_d2.utils.safe_pickle` and everything else with ``weights_only=True``, so no file
  runs code;
* fetches URLs through :mod:`.download` (timeouts, minimum rate, HTML recognised);
* accepts a ``last_checkpoint`` only if it names a file inside the output folder;
* turns an empty, truncated, text, HTML or non-state-dict file into one :class:`~.weights.WeightsError` line
  naming the file;
* keeps the keys that did not load (:attr:`incompatible`), which Detectron2 only logs, so callers can refuse a
  partial match.
"""
import os
import pickle
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..utils.safe_pickle import UnsafePickleError, load_weights_pickle
from .download import looks_like_html
from .weights import (MissingWeightsError, UnreadableWeightsError, WeightsError, is_url, model_zoo_url,
                      resolve_weights_file)

__all__ = ["LAST_CHECKPOINT", "SafeDetectionCheckpointer", "head_problems", "local_weights_file", "read_checkpoint",
           "tagged_checkpoint"]

LAST_CHECKPOINT = "last_checkpoint"  # the file in which Detectron2 names the newest checkpoint of an output folder
_MAX_TAG_BYTES = 4096  # a file name, not a document
_NUMERIC_KINDS = "biuf"  # numpy dtype kinds a weight can have: bool, int, uint, float


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def _unreadable(filename: str, source: str, error: BaseException) -> UnreadableWeightsError:
    """The reason a file failed to load, from its first bytes: HTML page, text, or truncated/foreign binary."""
    try:
        with open(filename, "rb") as f:
            head = f.read(512)
    except OSError:
        head = b""
    if looks_like_html(head):
        why = "is an HTML page (an error or login page saved as weights?), not a checkpoint"
    elif head and _is_text(head):
        why = "is a text file, not a checkpoint"
    else:
        why = f"is not a readable checkpoint: truncated, or another format ({_first_line(error)})"
    return UnreadableWeightsError(f"{source}: {why}")


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def _check_state_dict(state: Any, source: str) -> None:
    """A state dict is a non-empty mapping of names to tensors or numeric arrays; anything else is refused here,
    before Detectron2 or torch fail on it."""
    if isinstance(state, torch.Tensor):
        raise UnreadableWeightsError(f"{source}: holds a bare tensor of shape {tuple(state.shape)}, not a state dict")
    if not isinstance(state, dict):
        raise UnreadableWeightsError(f"{source}: holds a {type(state).__name__}, not a state dict of weights")
    if not state:
        raise UnreadableWeightsError(f"{source}: holds no weights (an empty state dict)")
    for k, v in state.items():
        ok = isinstance(v, torch.Tensor) or (isinstance(v, np.ndarray) and v.dtype.kind in _NUMERIC_KINDS)
        if not isinstance(k, str) or not ok:
            raise UnreadableWeightsError(
                f"{source}: entry {k!r} is a {type(v).__name__}, not a tensor or numeric array: not a state dict")


def _read_pickle(filename: str, source: str) -> Dict[str, Any]:
    """A model-zoo ``.pkl`` as Detectron2's ``_load_file`` interprets it, read without plain ``pickle``."""
    try:
        with open(filename, "rb") as f:
            data = load_weights_pickle(f)
    except UnsafePickleError as e:
        raise UnreadableWeightsError(f"{source}: refused, not unpickled: {e}") from e
    except Exception as e:  # truncated / foreign bytes: EOFError, UnpicklingError, ValueError, ...
        raise _unreadable(filename, source, e) from e
    if not isinstance(data, dict):
        _check_state_dict(data, source)
    if "model" in data and "__author__" in data:  # Detectron2 model-zoo format
        _check_state_dict(data["model"], source)
        return data
    data = data.get("blobs", data)  # Caffe2 detection models keep their weights under "blobs"
    _check_state_dict(data, source)
    data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
    return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}


def _read_torch(filename: str, source: str) -> Dict[str, Any]:
    """A ``.pth`` (or any non-``.pkl``) checkpoint through ``torch.load(weights_only=True)``."""
    try:
        loaded = torch.load(filename, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() and "unsupported global" in str(e).lower():
            raise UnreadableWeightsError(
                f"{source}: refused: it holds Python objects other than tensors and plain data, which "
                "weights_only loading does not run") from e
        raise _unreadable(filename, source, e) from e
    except Exception as e:  # zip / EOF / unpickling errors of a truncated or foreign file
        raise _unreadable(filename, source, e) from e
    if isinstance(loaded, dict) and "model_state" in loaded and filename.endswith(".pyth"):  # pycls
        state = {k: v for k, v in loaded["model_state"].items() if not k.endswith("num_batches_tracked")}
        _check_state_dict(state, source)
        return {"model": state, "__author__": "pycls", "matching_heuristics": True}
    if isinstance(loaded, dict) and "model" in loaded:
        _check_state_dict(loaded["model"], source)
        return loaded
    _check_state_dict(loaded, source)
    return {"model": loaded}


def read_checkpoint(filename: str, source: str = "") -> Dict[str, Any]:
    """The checkpoint dict (``{"model": state dict, ...}``) of the local file ``filename``, read safely.

    Raises :class:`~.weights.UnreadableWeightsError` naming ``source`` (default: the file) for an empty, truncated,
    text, HTML, unsafe or non-state-dict file.
    """
    source = source or filename
    if os.path.getsize(filename) == 0:
        raise UnreadableWeightsError(f"{source}: the file is empty (0 bytes)")
    return _read_pickle(filename, source) if filename.endswith(".pkl") else _read_torch(filename, source)


def tagged_checkpoint(save_dir: str) -> str:
    """The checkpoint file that ``save_dir/last_checkpoint`` names ("" when there is no such file), refused with a
    :class:`~.weights.WeightsError` unless it is one plain name of an existing file inside ``save_dir``: garbage,
    an empty tag, a folder, a missing file, an absolute path or a ``../`` escape (symbolic links included)."""
    tag = os.path.join(save_dir, LAST_CHECKPOINT)
    if os.path.isdir(tag):
        raise WeightsError(f"{tag}: is a folder, not the file naming the last checkpoint; --resume cannot use it")
    try:
        with open(tag, "rb") as f:
            raw = f.read(_MAX_TAG_BYTES + 1)
    except FileNotFoundError:
        return ""  # nothing to resume (or removed since has_checkpoint()): start from scratch, as Detectron2 does
    except OSError as e:
        raise WeightsError(f"{tag}: cannot be read ({_first_line(e)})") from e
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        name = None
    if name is None or len(raw) > _MAX_TAG_BYTES or "\n" in name or "\x00" in name:
        raise WeightsError(f"{tag}: is not one checkpoint file name (garbage in the file); delete it to start "
                           "over, or write the name of a checkpoint of this folder into it")
    if not name:
        raise WeightsError(f"{tag}: is empty; delete it to start over, or write the name of a checkpoint of this "
                           "folder into it")
    path = os.path.join(save_dir, name)
    inside = os.path.realpath(save_dir) + os.sep
    if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/") or \
            not os.path.realpath(path).startswith(inside):
        raise WeightsError(f"{tag}: names {name!r}, which is outside the output folder {save_dir}; refused (a "
                           "last_checkpoint may only name a file of its own folder)")
    if not os.path.isfile(path):
        what = "a folder" if os.path.isdir(path) else "missing"
        raise WeightsError(f"{tag}: names {name!r}, which is {what}; --resume has no checkpoint to load")
    return path


def local_weights_file(path: str, key: str = "MODEL.WEIGHTS", source: str = "") -> str:
    """The local file of a weights value: the path itself, or the download of an http(s) or ``detectron2://``
    address; a folder, a missing file or another kind of address is a :class:`~.weights.WeightsError`."""
    source = source or f"{key}={path!r}"
    if is_url(model_zoo_url(path)):
        return resolve_weights_file(path, key)
    if "://" in path:
        raise WeightsError(f"{source}: unsupported address; give a local file, an http(s):// URL or a "
                           "detectron2:// model-zoo name")
    local = os.path.expanduser(path)
    if os.path.isdir(local):
        raise WeightsError(f"{source}: is a folder, not a weights file")
    if not os.path.isfile(local):
        raise MissingWeightsError(f"{source}: no such file")
    return local


class SafeDetectionCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that never runs code from a file and reports every bad input in one line.

    ``key`` names the config key or flag the loaded path comes from, for the messages (``MODEL.WEIGHTS``,
    ``MODEL.WISH.HANDS.DETECTOR_WEIGHTS``). After :meth:`load`, :attr:`incompatible` holds the missing, unexpected
    and wrongly shaped keys (``None`` when nothing was loaded).
    """

    incompatible = None

    def __init__(self, model, save_dir: str = "", *, key: str = "MODEL.WEIGHTS", **checkpointables):
        super().__init__(model, save_dir, **checkpointables)
        self.key = key
        self.source = ""  # what the last load read, as messages name it: "MODEL.WEIGHTS='x.pth'", "checkpoint ..."
        self._tagged = ""  # the file last_checkpoint named, to say so in messages

    # ---- which file ----------------------------------------------------------------------------------------
    def get_checkpoint_file(self) -> str:
        """The file ``last_checkpoint`` names, refused unless it is a plain name of a file inside ``save_dir``."""
        self._tagged = tagged_checkpoint(self.save_dir)
        return self._tagged

    # ---- reading -------------------------------------------------------------------------------------------
    def load(self, path: str, checkpointables: Optional[List[str]] = None) -> Dict[str, Any]:
        self.incompatible = None
        if not path:
            return super().load(path, checkpointables)
        tag = os.path.join(self.save_dir, LAST_CHECKPOINT)
        self.source = f"checkpoint {path} (named by {tag})" if path == self._tagged else f"{self.key}={path!r}"
        local = local_weights_file(path, self.key, self.source)
        if local != path and path != self._tagged:
            self.source = f"{self.key}={path!r} ({local})"
        try:
            return super().load(local, checkpointables)
        except WeightsError:
            raise
        except (KeyError, ValueError, RuntimeError, TypeError, AttributeError) as e:
            # the weights loaded, but a saved optimizer / scheduler / trainer state did not fit this run
            raise UnreadableWeightsError(f"{self.source}: could not be loaded into this run "
                                         f"({_first_line(e)})") from e

    def _load_file(self, filename: str) -> Dict[str, Any]:
        return read_checkpoint(filename, self.source or filename)

    def _log_incompatible_keys(self, incompatible) -> None:
        self.incompatible = incompatible
        super()._log_incompatible_keys(incompatible)


def head_problems(incompatible, prefix: str = "") -> List[str]:
    """Missing, unexpected and wrongly shaped keys under ``prefix`` of a load (``incompatible`` may be None)."""
    if incompatible is None:
        return []
    return ([f"missing {k}" for k in incompatible.missing_keys if k.startswith(prefix)]
            + [f"unexpected {k}" for k in incompatible.unexpected_keys if k.startswith(prefix)]
            + [f"shape of {k}: {tuple(a)} in the file, {tuple(b)} in the model"
               for k, a, b in incompatible.incorrect_shapes if k.startswith(prefix)])
