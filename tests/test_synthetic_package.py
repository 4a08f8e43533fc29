"""The synthetic package's structure and its promise that the default benchmark's bytes do not change: modules
stay small and import only public names from each other, and a tiny default split hashes to a fixed digest."""
import ast
import hashlib
import os

from wish_d2.data import synthetic as syn

PKG = os.path.dirname(syn.__file__)
# sha256 over (relative path, bytes) of every file of generate_split(out, 0, "train", 6, (160, 160)); it changes
# only together with GENERATOR_VERSION (a deliberate change of the benchmark).
DEFAULT_DIGEST = {2: "7e1616cd0bff8dc81aad1d6949a66f3705215519c353cb62237436d20f1d3812"}


def modules():
    return sorted(n for n in os.listdir(PKG) if n.endswith(".py"))


def test_no_private_names_cross_modules():
    for name in modules():
        with open(os.path.join(PKG, name)) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{name} imports private {private} from {node.module}"


def test_modules_are_small():
    for name in modules():
        with open(os.path.join(PKG, name)) as f:
            assert sum(1 for _ in f) <= 450, name


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
