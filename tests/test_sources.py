"""The sources fingerprint that spawned workers check against their parent's, so that editing the code under a
running table or hand benchmark stops it with a clear error instead of mixing two versions of the method."""
import pytest

from wish_d2.utils.sources import IMPORTED_SOURCES, SourcesChangedError, check_same_sources, source_fingerprint


def _tree(root):
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("A = 1\n")
    (root / "pkg" / "sub" / "mod.py").write_text("def f():\n    return 2\n")
    return root / "pkg"


def test_fingerprint_follows_python_sources_only(tmp_path):
    pkg = _tree(tmp_path)
    first = source_fingerprint(str(pkg))
    assert source_fingerprint(str(pkg)) == first
    (pkg / "notes.txt").write_text("not code")
    (pkg / "sub" / "__pycache__").mkdir()
    (pkg / "sub" / "__pycache__" / "mod.cpython-311.py").write_text("compiled")
    assert source_fingerprint(str(pkg)) == first
    (pkg / "sub" / "mod.py").write_text("def f():\n    return 3\n")
    assert source_fingerprint(str(pkg)) != first
    (pkg / "sub" / "mod.py").write_text("def f():\n    return 2\n")
    assert source_fingerprint(str(pkg)) == first
    (pkg / "sub" / "mod.py").rename(pkg / "sub" / "other.py")  # same bytes under another name
    assert source_fingerprint(str(pkg)) != first


def test_check_names_the_folder_and_what_to_do(tmp_path):
    pkg = _tree(tmp_path)
    start = source_fingerprint(str(pkg))
    check_same_sources(start, str(pkg))
    (pkg / "__init__.py").write_text("A = 2\n")
    with pytest.raises(SourcesChangedError, match=f"sources under {pkg} changed after this run started.*worktree"):
        check_same_sources(start, str(pkg))


def test_the_package_is_unchanged_since_import():
    check_same_sources(IMPORTED_SOURCES)


@pytest.mark.parametrize("module, args", [
    ("wish_d2.engine.table", (1, None, None)),
    ("wish_d2.engine.hand_benchmark", (None,)),
])
def test_a_worker_refuses_to_start_on_other_sources_than_its_parent(module, args):
    import importlib

    init = importlib.import_module(module)._init_worker
    with pytest.raises(SourcesChangedError, match="changed after this run started"):
        init(*args, "0" * 64)


def test_a_pool_broken_by_a_refusing_worker_ends_in_the_clear_error(tmp_path):
    from concurrent.futures.process import BrokenProcessPool

    from wish_d2.utils.sources import same_sources_in_workers

    pkg = _tree(tmp_path)
    start = source_fingerprint(str(pkg))
    with pytest.raises(BrokenProcessPool):  # sources unchanged: the pool's own error passes through
        with same_sources_in_workers(start, str(pkg)):
            raise BrokenProcessPool("terminated abruptly")
    with pytest.raises(SourcesChangedError):  # changed before the workers are spawned: refused at once
        (pkg / "__init__.py").write_text("A = 2\n")
        with same_sources_in_workers(start, str(pkg)):
            pytest.fail("the block must not run")
    (pkg / "__init__.py").write_text("A = 1\n")
    with pytest.raises(SourcesChangedError, match="changed after this run started"):
        with same_sources_in_workers(start, str(pkg)):
            (pkg / "__init__.py").write_text("A = 3\n")  # changed while the workers start, one of them refused
            raise BrokenProcessPool("terminated abruptly")
