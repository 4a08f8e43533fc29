"""Table-driven bad demo inputs: broken links, link loops, folders without images, folder-only globs, bad sampling
options, a video corrupt mid-stream, a malformed timeline file and a full disk. Each is one clear line: a counted skip,
or exit status 2 (before any output is written, or when an output cannot be written); a video that loses frames ends
the run with exit status 1."""
import json
import os

import cv2
import numpy as np
import pytest

from demo_fixtures import EmptyPredictor, load_demo_tool
from wish_d2.demo.inputs import collect_inputs
from wish_d2.demo.video import AnnotatedVideoWriter, VideoCutShort, VideoWriteError, iter_video
from wish_d2.video.demo import ground_truth_timeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "wish_synthetic.yaml")
H = W = 32


demo = load_demo_tool("wish_demo_tool_inputs")


_NoHands = EmptyPredictor


def _png(path):
    assert cv2.imwrite(str(path), np.full((H, W, 3), 128, np.uint8))
    return str(path)


def _avi(path, n=20):
    """A tiny MJPG AVI (noise frames, so each has real bytes to lose)."""
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot encode MJPG")
    for _ in range(n):
        writer.write(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    writer.release()
    return str(path)


def _cut(path, keep=0.6):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:int(len(data) * keep)])
    return path


def _run(tmp_path, inputs, *flags, factory=_NoHands):
    out = tmp_path / "out"
    rc = demo.main(["--config-file", CONFIG, "--input", *map(str, inputs), "--output", str(out), *flags,
                    "--no-dataset-lookup", "--opts", "MODEL.PROPOSAL_GENERATOR.NAME", "SAMProposals",
                    "DATASETS.TRAIN", "()", "DATASETS.VAL", "()", "DATASETS.TEST", "()", "MODEL.DEVICE", "cpu"],
                   predictor_factory=factory)
    return rc, out


# ---- what --input resolves to -------------------------------------------------------------------------------------
def _layout(tmp_path, case):
    """-> (the --input path, the path the problem names, words of the reason)."""
    good = _png(tmp_path / "good.png")
    if case == "missing":
        return str(tmp_path / "nope.png"), str(tmp_path / "nope.png"), "not found"
    if case == "dangling link":
        os.symlink(tmp_path / "gone.png", tmp_path / "link.png")
        return str(tmp_path / "link.png"), str(tmp_path / "link.png"), "dangling symbolic link"
    if case == "link loop":
        os.symlink(tmp_path / "b.png", tmp_path / "a.png")
        os.symlink(tmp_path / "a.png", tmp_path / "b.png")
        return str(tmp_path / "a.png"), str(tmp_path / "a.png"), "symbolic link loop"
    if case == "dangling link in a folder":
        (tmp_path / "d").mkdir()
        os.symlink(tmp_path / "gone.png", tmp_path / "d" / "x.png")
        return str(tmp_path / "d"), str(tmp_path / "d" / "x.png"), "dangling symbolic link"
    if case == "empty folder":
        (tmp_path / "empty").mkdir()
        return str(tmp_path / "empty"), str(tmp_path / "empty"), "holds no image or video"
    if case == "folder of text files":
        (tmp_path / "txt").mkdir()
        (tmp_path / "txt" / "notes.txt").write_text("x")
        return str(tmp_path / "txt"), str(tmp_path / "txt"), "holds no image or video"
    if case == "glob of folders":
        for n in ("seq_1", "seq_2"):
            (tmp_path / n).mkdir()
        return str(tmp_path / "seq_*"), str(tmp_path / "seq_*"), "matches no file (2 folder(s)"
    if case == "glob without match":
        return str(tmp_path / "*.jpeg"), str(tmp_path / "*.jpeg"), "matches nothing"
    if case == "fifo":
        os.mkfifo(tmp_path / "pipe.png")
        return str(tmp_path / "pipe.png"), str(tmp_path / "pipe.png"), "not a regular file"
    raise AssertionError(case)


INPUT_CASES = ["missing", "dangling link", "link loop", "dangling link in a folder", "empty folder",
               "folder of text files", "glob of folders", "glob without match", "fifo"]


@pytest.mark.parametrize("case", INPUT_CASES)
def test_unusable_input_is_named_with_its_reason(tmp_path, case):
    arg, named, reason = _layout(tmp_path, case)
    found, problems = collect_inputs([arg, str(tmp_path / "good.png")])
    assert found == [("image", str(tmp_path / "good.png"))]
    assert [p for p, _ in problems] == [named] and reason in problems[0][1]


@pytest.mark.parametrize("case", INPUT_CASES)
def test_demo_with_only_unusable_inputs_exits_2_before_writing(tmp_path, capsys, case):
    arg, named, reason = _layout(tmp_path, case)
    rc, out = _run(tmp_path, [arg])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and not out.exists()
    assert named in err[0] and reason in err[0] and "no usable input" in err[-1]


def test_unusable_input_beside_a_good_one_is_a_counted_skip(tmp_path, capsys):
    arg, named, _ = _layout(tmp_path, "dangling link")
    rc, out = _run(tmp_path, [arg, tmp_path / "good.png"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unreadable"] == [named] and summary["counts"]["frames processed"] == 1


# ---- options ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags,match", [
    (["--max-frames", "-1"], "--max-frames must be >= 0"),
    (["--video-stride", "0"], "--video-stride must be >= 1"),
    (["--video-stride", "-3"], "--video-stride must be >= 1"),
    (["--confidence", "nan"], "--confidence must be a score in [0, 1]"),
    (["--confidence", "1.5"], "--confidence must be a score in [0, 1]"),
    (["--proposal-labels", "-1"], "--proposal-labels must be >= 0"),
])
def test_bad_sampling_options_exit_2(tmp_path, capsys, flags, match):
    rc, out = _run(tmp_path, [_png(tmp_path / "a.png")], *flags)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not out.exists() and len(err) == 1 and match in err[0]


# ---- a video corrupt mid-stream -------------------------------------------------------------------------------------
def test_iter_video_raises_after_the_last_good_frame(tmp_path):
    path = _cut(_avi(tmp_path / "v.avi"))
    frames = []
    with pytest.raises(VideoCutShort) as e:
        for idx, frame in iter_video(path):
            frames.append(idx)
    assert frames == list(range(e.value.decoded)) and 0 < e.value.decoded < e.value.declared == 20
    assert path in str(e.value) and "lost" in str(e.value)
    assert [i for i, _ in iter_video(_avi(tmp_path / "ok.avi"), stride=3)] == [0, 3, 6, 9, 12, 15, 18]


def test_demo_video_cut_short_says_so_and_exits_1(tmp_path, capsys):
    path = _cut(_avi(tmp_path / "clip.avi"))
    rc, out = _run(tmp_path, [path], "--video-output")
    err = capsys.readouterr().err
    assert rc == 1
    assert sum("stops decoding" in ln and path in ln for ln in err.splitlines()) == 1
    summary = json.loads((out / "summary.json").read_text())
    decoded = summary["counts"]["frames processed"]
    assert summary["cut_short"] == [path] and summary["counts"]["lost video frames"] == 20 - decoded
    cap = cv2.VideoCapture(str(out / "clip_wish.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == decoded  # what was decoded, all of it, said to be short
    cap.release()


class _FailsOnOddFrames(_NoHands):
    def __call__(self, image_rgb, hands=None, image_id="", extra=None):
        if int(image_id[-6:]) % 2:
            raise RuntimeError("model failure")
        return super().__call__(image_rgb, hands, image_id, extra)


def test_failed_frames_stay_in_the_annotated_video(tmp_path, capsys):
    rc, out = _run(tmp_path, [_avi(tmp_path / "clip.avi", n=6)], "--video-output", factory=_FailsOnOddFrames)
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["failed frames"] == 3 and summary["counts"]["frames processed"] == 3
    cap = cv2.VideoCapture(str(out / "clip_wish.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6  # failed frames unannotated, never dropped
    cap.release()


def test_annotated_video_missing_frames_is_not_kept(tmp_path, monkeypatch):
    import wish_d2.demo.video as video

    writer = AnnotatedVideoWriter(str(tmp_path / "v_wish.mp4"), 5.0, (W, H))
    if not writer.opened:
        pytest.skip("this OpenCV build cannot encode mp4v")
    for _ in range(3):
        writer.write(np.zeros((H, W, 3), np.uint8))
    monkeypatch.setattr(video, "_frame_count", lambda path: 2)  # a frame lost on the way to the file
    with pytest.raises(VideoWriteError, match="3 frame.s. written, 2 in the file"):
        writer.close()
    assert os.listdir(tmp_path) == []


# ---- a full disk ----------------------------------------------------------------------------------------------------
def test_demo_exits_2_when_outputs_cannot_be_written(tmp_path, full_disk, capsys):
    assert cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    full_disk(tmp_path / "out", names=[".png"])
    rc, out = _run(tmp_path, [tmp_path / "a.png"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and len(err) == 1 and "No space left on device while writing" in err[0] and str(out) in err[0]
    assert not [f for _, _, fs in os.walk(out) for f in fs if f.endswith(".png")]


# ---- the timeline file beside a video -------------------------------------------------------------------------------
TIMELINE_CASES = [
    ("not json", "{", "not a readable JSON file"),
    ("a list", [], "must be an object with a \"videos\" object"),
    ("videos a list", {"videos": []}, "must be an object with a \"videos\" object"),
    ("no entry", {"videos": {"other": []}}, "has no entry for video 'clip'"),
    ("rows not a list", {"videos": {"clip": {"left": 1}}}, "must be a list of per-frame rows"),
    ("row not an object", {"videos": {"clip": [1, 2]}}, r"videos\['clip'\]\[0\] must be an object"),
    ("id a list", {"videos": {"clip": [{"left": [1], "right": None}]}}, r"\[0\]\.left must be an id"),
    ("id a float", {"videos": {"clip": [{"left": None, "right": 1.5}]}}, r"\[0\]\.right must be an id"),
    ("id a bool", {"videos": {"clip": [{"left": True}]}}, r"\[0\]\.left must be an id"),
]


@pytest.mark.parametrize("name,content,match", TIMELINE_CASES, ids=[c[0] for c in TIMELINE_CASES])
def test_malformed_timeline_beside_a_video(tmp_path, name, content, match):
    p = tmp_path / "held_timeline.json"
    p.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError, match=match) as e:
        ground_truth_timeline(str(tmp_path / "clip.mp4"))
    assert str(p) in str(e.value)


def test_timeline_without_file_or_with_good_rows(tmp_path):
    assert ground_truth_timeline(str(tmp_path / "clip.mp4")) is None
    (tmp_path / "held_timeline.json").write_text(json.dumps(
        {"videos": {"clip": [{"left": 3, "right": None}, {"left": "cup", "right": 4}]}}))
    assert ground_truth_timeline(str(tmp_path / "clip.mp4")) == {"left": [3, "cup"], "right": [None, 4]}
