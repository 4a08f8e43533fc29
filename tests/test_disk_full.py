"""A full disk while writing: every writer raises one ``DiskFullError`` naming the file it was writing, and leaves
nothing that a later run reads as valid (no file under the final name, no temporary file, earlier complete files
intact). In-process the disk fills by a patched ``open`` whose writes raise ``ENOSPC`` (the ``full_disk`` fixture of
conftest.py); for OpenCV's writer and a whole command line by ``RLIMIT_FSIZE`` (``ulimit -f``, with ``SIGXFSZ``
ignored so writes fail with ``EFBIG``), set briefly in this process. The demo's outputs are in
tests/test_bad_inputs_demo_inputs.py."""
import errno
import json
import os
import resource
import signal
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from wish_d2.utils.atomic import DiskFullError, atomic_path, save_torch, write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _files(root):
    return sorted(os.path.relpath(os.path.join(b, f), root) for b, _, fs in os.walk(root) for f in fs)


# ---- the writers ----------------------------------------------------------------------------------------------------
def _json(root):
    write_json({"a": 1}, os.path.join(root, "metrics.json"))
    return "metrics.json"


def _torch(root):
    save_torch({"w": torch.zeros(3)}, os.path.join(root, "model.pth"))
    return "model.pth"


def _proposals(root):
    from wish_d2.data.proposals_io import write_proposals
    from wish_d2.utils.masks import encode_rle

    write_proposals([{"image_id": "a", "height": 4, "width": 4, "masks": [encode_rle(np.ones((4, 4), bool))],
                      "scores": [0.5]}], os.path.join(root, "proposals.jsonl"))
    return "proposals.jsonl"


def _gallery(root):
    from wish_d2.utils.gallery import write_gallery

    write_gallery(os.path.join(root, "index.html"), [{"title": "t", "panels": [("p", np.zeros((4, 4, 3), np.uint8))]}],
                  embed=False)
    return "index.html"


def _timeline(root):
    from wish_d2.video.timeline import plot_hand_timeline

    plot_hand_timeline(os.path.join(root, "timeline.png"), [0.0, 0.1], {"left": [None, 1], "right": [None, None]})
    return "timeline.png"


def _demo_png(root):
    from wish_d2.demo.output_dir import DemoOutputDir

    out = DemoOutputDir(os.path.join(root, "demo"))
    out.prepare()
    out.save_png("overlays/a.png", np.zeros((4, 4, 3), np.uint8))
    return os.path.join("demo", "overlays", "a.png")


WRITERS = {"json": _json, "torch": _torch, "proposals": _proposals, "gallery": _gallery, "timeline": _timeline,
           "demo png": _demo_png}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_writer_names_the_file_and_leaves_nothing(tmp_path, full_disk, name):
    full_disk(tmp_path, names=None if name != "demo png" else [".png"])
    with pytest.raises(DiskFullError) as e:
        WRITERS[name](str(tmp_path))
    msg = str(e.value)
    assert "No space left on device while writing" in msg and str(tmp_path) in msg and "\n" not in msg
    left = [f for f in _files(tmp_path) if f != os.path.join("demo", ".wish_demo_files.txt")]
    assert left == [], left


def test_a_failed_rewrite_keeps_the_previous_file(tmp_path, full_disk):
    path = str(tmp_path / "metrics.json")
    write_json({"run": 1}, path)
    full_disk(tmp_path)
    with pytest.raises(DiskFullError, match="metrics.json"):
        write_json({"run": 2}, path)
    assert json.load(open(path)) == {"run": 1} and os.listdir(tmp_path) == ["metrics.json"]


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(PermissionError):
        with atomic_path(str(tmp_path / "x")):
            raise PermissionError(errno.EACCES, "denied")
    assert os.listdir(tmp_path) == []


def test_disk_full_error_survives_pickling():
    import pickle

    e = pickle.loads(pickle.dumps(DiskFullError("/out/model_final.pth", "File too large")))
    assert isinstance(e, DiskFullError) and str(e).startswith("File too large while writing /out/model_final.pth")


def test_feature_cache_shard(tmp_path, full_disk):
    from wish_d2.cache import FeatureCache

    cache = FeatureCache(str(tmp_path), "ds", "k")
    texts = (["cup"], torch.zeros(1, 2, 4), torch.zeros(2, 4))
    full_disk(tmp_path)
    with pytest.raises(DiskFullError, match="texts.pt"):
        cache.write_texts(*texts)
    assert _files(tmp_path) == [] and not cache.is_complete()


def test_checkpoint_keeps_the_last_complete_one(tmp_path, full_disk):
    from wish_d2.engine.atomic_checkpointer import AtomicCheckpointer

    ckpt = AtomicCheckpointer(torch.nn.Linear(2, 2), save_dir=str(tmp_path))
    ckpt.save("model_0000009")
    full_disk(tmp_path)
    with pytest.raises(DiskFullError, match="model_final.pth"):
        ckpt.save("model_final")
    assert _files(tmp_path) == ["last_checkpoint", "model_0000009.pth"]
    assert ckpt.get_checkpoint_file().endswith("model_0000009.pth")


def test_web_clip_checkpoint(tmp_path, full_disk, monkeypatch):
    from wish_d2.pretrain import store
    from wish_d2.pretrain.web_clip import WebPretrainSettings

    monkeypatch.setattr(store, "pretrain_web_clip", lambda settings, progress: (torch.nn.Linear(2, 2), [1.0], {}))
    settings = WebPretrainSettings()
    full_disk(tmp_path)
    with pytest.raises(DiskFullError, match=r"\.pt; nothing was left"):
        store.ensure_web_clip(str(tmp_path), settings)
    assert _files(tmp_path) == [] and store._valid(store.web_clip_path(str(tmp_path), settings), settings)


def test_synthetic_split_names_the_split_folder(tmp_path, full_disk):
    from wish_d2.data.synthetic import ensure_split, split_dir

    full_disk(tmp_path)
    with pytest.raises(DiskFullError) as e:
        ensure_split(str(tmp_path), 0, "train", 2, (32, 32), progress=False)
    assert split_dir(str(tmp_path), 0, "train", 2, (32, 32)) in str(e.value)
    assert _files(tmp_path) == []


# ---- real file-size limits (ulimit -f) ------------------------------------------------------------------------------
@contextmanager
def _file_size_limit(nbytes):
    """``ulimit -f`` for this process, briefly: OpenCV's C++ writer cannot be patched like ``open``."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_annotated_video_under_ulimit_is_not_kept(tmp_path):
    from wish_d2.demo.video import AnnotatedVideoWriter, VideoWriteError

    frames = np.random.default_rng(0).integers(0, 255, (40, 64, 64, 3), dtype=np.uint8)
    with _file_size_limit(20000):
        w = AnnotatedVideoWriter(str(tmp_path / "v_wish.mp4"), 10.0, (64, 64))
        if not w.opened:
            pytest.skip("this OpenCV build cannot encode mp4v")
        for f in frames:
            w.write(f)
        with pytest.raises((VideoWriteError, DiskFullError), match="v_wish.mp4"):
            w.close()
    assert os.listdir(tmp_path) == []


def test_make_synthetic_under_ulimit_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    import runpy

    out = tmp_path / "data"
    argv = ["make_synthetic.py", "--out", str(out), "--num-train", "3", "--num-val", "0", "--num-test", "0",
            "--image-size", "64x64", "--no-progress"]
    monkeypatch.setattr(sys, "argv", argv)
    with _file_size_limit(3000), pytest.raises(SystemExit) as e:
        runpy.run_path(os.path.join(REPO, "tools", "make_synthetic.py"), run_name="__main__")
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2
    assert len(err) == 1 and err[0].startswith("error: File too large while writing") and str(out) in err[0]
    assert _files(out) == []


def _foreign_writer():
    """A writer that is not ours (Detectron2's event writer, say): a bare OSError under another exception."""
    try:
        raise OSError(errno.EFBIG, "File too large")
    except OSError:
        raise RuntimeError("event writer failed")


def _ours():
    raise DiskFullError("/out/model_final.pth")


@pytest.mark.parametrize("raiser,line", [
    (_ours, "error: No space left on device while writing /out/model_final.pth; nothing was left under that name"),
    (_foreign_writer, "error: File too large while writing an output file. Fix:"),
])
def test_command_lines_turn_a_full_disk_into_one_line(capsys, raiser, line):
    from wish_d2.utils.atomic import exit_on_disk_full

    with pytest.raises(SystemExit) as e, exit_on_disk_full():
        raiser()
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith(line)


def test_command_lines_let_other_errors_through():
    from wish_d2.utils.atomic import exit_on_disk_full

    with pytest.raises(RuntimeError, match="not a disk"), exit_on_disk_full():
        raise RuntimeError("not a disk problem")
