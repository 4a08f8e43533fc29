"""The demo's output folder policy (wish_d2.demo.output_dir): ``--output`` that is a file exits 2 with one clear
line; a used folder is refused instead of mixing runs; ``--overwrite`` deletes only the files a demo run recorded."""
import json
import os

import cv2
import numpy as np
import pytest

import wish_d2  # noqa: F401

from demo_fixtures import EmptyPredictor, load_demo_tool
from wish_d2.demo import DemoOutputDir, OutputDirError
from wish_d2.demo.output_dir import MANIFEST

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "wish_synthetic.yaml")


demo = load_demo_tool("wish_demo_tool_outdir")


_EmptyPredictor = EmptyPredictor


def _images(folder, names):
    folder.mkdir(exist_ok=True)
    for k, n in enumerate(names):
        assert cv2.imwrite(str(folder / f"{n}.png"), np.full((16, 24, 3), 40 * k, np.uint8))
    return [str(folder / f"{n}.png") for n in names]


def _run(inputs, out, *extra):
    return demo.main(["--config-file", CONFIG, "--input", *inputs, "--output", str(out), "--no-dataset-lookup",
                      "--proposals-file", "unused.jsonl", *extra, "--opts", "DATASETS.TEST", "()"],
                     predictor_factory=_EmptyPredictor)


def _listing(root):
    return sorted(os.path.relpath(os.path.join(b, f), root) for b, _, fs in os.walk(root) for f in fs)


def test_output_that_is_a_file_exits_2_with_one_line(tmp_path, capsys):
    images = _images(tmp_path / "in", ["a"])
    target = tmp_path / "out.txt"
    target.write_text("keep me")
    assert _run(images, target) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: --output") and str(target) in err[0]
    assert "not a folder" in err[0] and "Traceback" not in err[0]
    assert target.read_text() == "keep me"


def test_used_folder_is_refused_then_overwrite_replaces_only_the_demo_files(tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(_images(tmp_path / "in1", ["a", "b"]), out) == 0
    first = _listing(out)
    assert {"overlays/a.png", "overlays/b.png", "index.html", "summary.json", "predictions_coco.json",
            MANIFEST} <= set(first)
    recorded = (out / MANIFEST).read_text().split()
    assert sorted(recorded + [MANIFEST]) == first  # every file the run wrote is recorded
    (out / "my_notes.txt").write_text("mine")
    capsys.readouterr()

    # a second run into the used folder is refused before anything changes
    second_inputs = _images(tmp_path / "in2", ["c"])
    assert _run(second_inputs, out) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--overwrite" in err and str(out) in err
    assert _listing(out) == sorted(first + ["my_notes.txt"])

    # --overwrite: the first run's files go, the user's file stays, nothing mixes
    assert _run(second_inputs, out, "--overwrite") == 0
    captured = capsys.readouterr()
    assert "deleted" in captured.out and "kept 1 file" in captured.out
    now = _listing(out)
    assert "overlays/c.png" in now and "my_notes.txt" in now
    assert not any(p.startswith(("overlays/a", "overlays/b", "panels/a_", "panels/b_")) for p in now)
    with open(out / "summary.json") as f:
        assert [r["name"] for r in json.load(f)["images"]] == ["c"]
    assert "c.png" in (out / "index.html").read_text() and "a_input.png" not in (out / "index.html").read_text()
    assert sorted((out / MANIFEST).read_text().split() + [MANIFEST, "my_notes.txt"]) == now


def test_overwrite_never_touches_a_folder_the_demo_did_not_write(tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "index.html").write_text("someone's page")
    assert _run(_images(tmp_path / "in", ["a"]), out, "--overwrite") == 2
    err = capsys.readouterr().err
    assert MANIFEST in err and "did not write" in err
    assert _listing(out) == ["index.html"] and (out / "index.html").read_text() == "someone's page"


def test_failed_setup_keeps_the_earlier_run(tmp_path, capsys):
    out = tmp_path / "out"
    images = _images(tmp_path / "in", ["a"])
    assert _run(images, out) == 0
    before = _listing(out)
    rc = demo.main(["--config-file", CONFIG, "--input", *images, "--output", str(out), "--overwrite",
                    "--opts", "MODEL.WEIGHTS", str(tmp_path / "missing.pth")], predictor_factory=_EmptyPredictor)
    assert rc == 2 and "weights file not found" in capsys.readouterr().err
    assert _listing(out) == before


def test_manifest_cannot_delete_outside_the_folder(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    outside = tmp_path / "precious.txt"
    outside.write_text("x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "f.png").write_text("y")
    os.symlink(elsewhere, out / "linked")
    (out / "sub" / "old.png").write_text("old")
    (out / "sub" / ".tmp-k3j_old.png").write_text("left by a killed atomic write")
    (out / MANIFEST).write_text(f"../precious.txt\n{outside}\nlinked/f.png\nsub/old.png\n")
    d = DemoOutputDir(str(out), overwrite=True)
    d.prepare()
    assert outside.read_text() == "x" and (elsewhere / "f.png").read_text() == "y"
    assert not (out / "sub").exists() and d.removed == 2
    assert (out / MANIFEST).read_text() == ""
    with pytest.raises(ValueError):
        d.path("../escape.png")


def test_missing_and_empty_folders_are_used_as_is(tmp_path):
    for target in (tmp_path / "new" / "deep", tmp_path / "empty"):
        if target.name == "empty":
            target.mkdir()
        d = DemoOutputDir(str(target))
        d.prepare()
        path = d.save_png("overlays/x.png", np.zeros((4, 4, 3), np.uint8))
        assert os.path.isfile(path) and d.written() == ("overlays/x.png",)
        with pytest.raises(OutputDirError, match="not empty"):
            DemoOutputDir(str(target)).check()
