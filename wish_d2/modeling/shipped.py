"""The encoders the repository ships in ``wish_d2/model_zoo/``, named in configs as ``wish_d2://<file>``: resolved to
a path and checked against their manifest (SHA-256) before any tensor is read. Loading needs only this; how a
shipped file is made is :mod:`wish_d2.pretrain.release`."""
import json
import os
from typing import Dict, Optional

from ..utils.digest import digest_file

__all__ = ["MODEL_ZOO_DIR", "SHIPPED_PREFIX", "resolve_shipped", "manifest_path", "verify_shipped"]

MODEL_ZOO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model_zoo")
SHIPPED_PREFIX = "wish_d2://"


def manifest_path(path: str) -> str:
    return os.path.splitext(path)[0] + ".json"


def verify_shipped(path: str) -> Dict:
    """The manifest of a shipped checkpoint, after checking that the file is the one it describes."""
    mpath = manifest_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"shipped encoder {path} is missing (the repository tracks it; restore it with git "
                                f"checkout, or rebuild it with the command in {mpath})")
    try:
        with open(mpath) as f:
            manifest = json.load(f)
        expected = manifest["file"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"shipped encoder {path}: its manifest {mpath} is missing or unreadable ({e})") from e
    actual = digest_file(path)
    if actual != expected:
        raise ValueError(f"shipped encoder {path} does not match its manifest {mpath} (SHA-256 {actual['sha256'][:12]}"
                         f"..., {actual['bytes']} bytes; expected {str(expected.get('sha256'))[:12]}..., "
                         f"{expected.get('bytes')} bytes): damaged or replaced")
    return manifest


def resolve_shipped(value: str, model_name: Optional[str] = None) -> str:
    """``wish_d2://NAME`` -> the verified path of ``model_zoo/NAME``; anything else is returned unchanged. With
    ``model_name``, a shipped file of another architecture is refused by name, before any tensor is read."""
    if not str(value).startswith(SHIPPED_PREFIX):
        return value
    name = str(value)[len(SHIPPED_PREFIX):]
    path = os.path.normpath(os.path.join(MODEL_ZOO_DIR, name))
    if os.path.dirname(path) != MODEL_ZOO_DIR:
        raise ValueError(f"{value!r}: a shipped encoder is a file name inside wish_d2/model_zoo/")
    trained_for = verify_shipped(path)["settings"]["model_name"]
    if model_name is not None and model_name != trained_for:
        raise ValueError(f"{value!r} holds {trained_for!r} weights, but MODEL.WISH.CLIP.MODEL_NAME is {model_name!r} "
                         f"(set MODEL.WISH.CLIP.PRETRAINED \"\" for a random init of {model_name!r})")
    return path
