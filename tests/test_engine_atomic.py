"""Atomically written files get the umask's mode (not mkstemp's 0600), and JSON outputs are strict JSON."""
import json
import math
import os
import stat

import pytest

from wish_d2.utils.atomic import atomic_path, write_json


def _reject(token):
    raise ValueError(f"non-standard JSON token {token}")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_files_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_json({"a": 1}, str(tmp_path / "m.json"))
        with atomic_path(str(tmp_path / "x.bin")) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"x")
    finally:
        os.umask(old)
    for name in ("m.json", "x.bin"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name


def test_metrics_json_is_strict(tmp_path):
    path = str(tmp_path / "metrics.json")
    write_json({"segm": {"AP": float("nan"), "AP-both": math.inf, "AP50": 12.5},
                "rows": [1.0, -math.inf, (2.0, float("nan"))]}, path)
    text = open(path).read()
    data = json.loads(text, parse_constant=_reject)
    assert data == {"segm": {"AP": None, "AP-both": None, "AP50": 12.5}, "rows": [1.0, None, [2.0, None]]}


def test_failed_block_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(str(tmp_path / "half.json")):
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []
