"""Shape of the code base: short logic files, tools that rely on the installed package, no private imports across
modules of the package."""
import ast
import glob
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 400


def _py(*patterns):
    return sorted(p for pat in patterns for p in glob.glob(os.path.join(ROOT, pat), recursive=True))


@pytest.mark.parametrize("path", _py("wish_d2/**/*.py", "tools/*.py"), ids=lambda p: os.path.relpath(p, ROOT))
def test_file_is_short(path):
    with open(path, encoding="utf-8") as f:
        n = sum(1 for _ in f)
    assert n <= MAX_LINES, f"{os.path.relpath(path, ROOT)} has {n} lines (> {MAX_LINES}): is it two things?"


@pytest.mark.parametrize("path", _py("tools/*.py"), ids=os.path.basename)
def test_tools_do_not_edit_sys_path(path):
    with open(path, encoding="utf-8") as f:
        assert "sys.path.insert" not in f.read(), f"{path}: the package is installed; import it normally"


def test_no_private_names_imported_across_package_modules():
    offenders = []
    for path in _py("wish_d2/**/*.py"):
        tree = ast.parse(open(path, encoding="utf-8").read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("wish_d2")):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        offenders.append(f"{os.path.relpath(path, ROOT)}: from {node.module} import {alias.name}")
    assert not offenders, "private names imported across modules:\n" + "\n".join(offenders)
