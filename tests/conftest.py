"""Shared pytest setup: register the plugin once, keep torch to the 2 CI cores, and isolate logger state."""
import builtins
import errno
import logging
import os

import pytest
import torch

os.environ.setdefault("DETECTRON2_DATASETS", os.path.join(os.path.dirname(__file__), "..", "datasets"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

import wish_d2  # noqa: E402,F401  registers everything, installs Detectron2 compat shims


@pytest.fixture(autouse=True)
def _isolated_package_loggers():
    """Tools run in-process call Detectron2's ``setup_logger``, which stops ``wish_d2`` records from propagating to
    the root logger (where ``caplog`` listens) and adds handlers. Restore both after every test, so a test's log
    assertions do not depend on which tests ran before it."""
    names = ("wish_d2", "detectron2", "d2", "wish")
    saved = {n: (logging.getLogger(n).propagate, list(logging.getLogger(n).handlers), logging.getLogger(n).level)
             for n in names}
    yield
    for n, (propagate, handlers, level) in saved.items():
        lg = logging.getLogger(n)
        lg.propagate, lg.handlers[:], lg.level = propagate, handlers, level


class _FullFile:
    """A file object whose writes fail as on a full disk."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(root, names=None)``: files opened for writing under ``root`` (whose name contains one of
    ``names``, if given) fail to take bytes."""

    def install(root, names=None):
        real_open = builtins.open
        root = os.path.abspath(str(root))

        def fake_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            path = os.path.abspath(os.fspath(file)) if isinstance(file, (str, os.PathLike)) else ""
            writing = any(c in mode for c in "wax+")
            if writing and path.startswith(root) and (names is None or any(n in path for n in names)):
                return _FullFile(f)
            return f

        monkeypatch.setattr(builtins, "open", fake_open)

    return install
