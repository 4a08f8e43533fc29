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
def test_loading_a_tool_leaves_the_import_path_and_cwd_alone(path):
    """The package is installed, so a tool imports it normally: loading a tool (everything but its ``__main__``
    block) must not add folders to ``sys.path`` (which would shadow the installed package with a checkout) nor
    change the working directory. A behaviour check, so any way of doing it is caught, not one spelling."""
    import runpy
    import sys

    path_before, cwd_before, env_before = list(sys.path), os.getcwd(), dict(os.environ)
    try:
        runpy.run_path(path, run_name="wish_tool_probe")
    finally:  # some tools set process-wide defaults (TQDM_DISABLE) on import: keep them out of later tests
        os.environ.clear()
        os.environ.update(env_before)
    assert sys.path == path_before, f"{os.path.relpath(path, ROOT)} changed sys.path"
    assert os.getcwd() == cwd_before


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
