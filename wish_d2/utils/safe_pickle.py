"""Reading Detectron2 / Caffe2 model-zoo ``.pkl`` weights without letting the file run code.

A pickle names the callables that rebuild its objects, so plain ``pickle.load`` of a downloaded file runs whatever
the file names. Model-zoo weights only ever hold dicts, lists, strings, numbers and numpy arrays, so the unpickler
here resolves exactly the globals that rebuild those (numpy's array, dtype and scalar constructors under their
numpy 1 and numpy 2 module names, ``OrderedDict``, and ``_codecs.encode``, which protocol-2 pickles use for bytes)
and refuses every other one before it is called.
"""
import collections
import pickle
from typing import Any, BinaryIO, Callable, Dict, Tuple

import numpy as np

__all__ = ["UnsafePickleError", "WeightsUnpickler", "load_weights_pickle"]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that weights never need: loading it could run code."""


def _multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # numpy 1
        from numpy.core import multiarray
    return multiarray


def _codecs_encode():
    import _codecs

    return _codecs.encode


_ALLOWED: Dict[Tuple[str, str], Callable[[], Any]] = {
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): _codecs_encode,
}
# a pickle names the module of the numpy that wrote it: numpy.core (numpy 1) or numpy._core (numpy 2)
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = lambda: _multiarray()._reconstruct
    _ALLOWED[(_module, "scalar")] = lambda: _multiarray().scalar


class WeightsUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only what model-zoo weights are made of."""

    def find_class(self, module: str, name: str):
        make = _ALLOWED.get((module, name))
        if make is None:
            raise UnsafePickleError(f"it refers to {module}.{name}, which weights never hold "
                                    "(only dicts, lists, strings, numbers and numpy arrays are read)")
        return make()


def load_weights_pickle(f: BinaryIO) -> Any:
    """The object pickled in the open binary file ``f``; ``latin1`` reads Python 2 pickles of the Caffe2 zoo, as
    Detectron2 does. Raises :class:`UnsafePickleError` for anything but plain data and arrays."""
    return WeightsUnpickler(f, encoding="latin1").load()
