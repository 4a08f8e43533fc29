"""The synthetic package's promise that the default benchmark's bytes do not change: a tiny default split hashes to a
fixed digest. (Its modules' size and imports are checked with the whole package in test_repository_layout.py.)"""
import hashlib
import os

from wish_d2.data import synthetic as syn

# sha256 over (relative path, bytes) of every file of generate_split(out, 0, "train", 6, (160, 160)); it changes
# only together with GENERATOR_VERSION (a deliberate change of the benchmark).
DEFAULT_DIGEST = {2: "7e1616cd0bff8dc81aad1d6949a66f3705215519c353cb62237436d20f1d3812"}


def test_default_benchmark_bytes_are_unchanged(tmp_path):
    out = str(tmp_path / "s")
    syn.generate_split(out, 0, "train", 6, (160, 160), progress=False)
    h = hashlib.sha256()
    for dirpath, _, names in sorted(os.walk(out)):
        for n in sorted(names):
            p = os.path.join(dirpath, n)
            h.update(os.path.relpath(p, out).encode())
            with open(p, "rb") as f:
                h.update(f.read())
    assert h.hexdigest() == DEFAULT_DIGEST[syn.GENERATOR_VERSION]
