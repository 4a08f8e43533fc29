"""tools/demo.py on a video: temporal inference by default (--per-frame switches it off), the annotated video, and a
timeline plot of each hand's held object in the gallery, with ground truth from the synthetic video's
held_timeline.json; the gallery loads in headless Chromium with every image intact.

The predictor is a stand-in with a WISH-shaped model (extract / roi_heads.scores) whose per-frame scores flicker:
object 0 is held by the left hand, with a one-frame dropout every fifth frame. Per-frame inference follows the
flicker; temporal inference does not."""
import json
import os
import re
import shutil
import subprocess

import pytest
import torch

from wish_d2.utils.masks import encode_rle

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _Heads:
    def __init__(self):
        self.contact_threshold = torch.tensor(0.5)
        self.calls = 0

    def selection_rule(self, method=None):
        return {"method": "wish", "fusion": "product", "both_rule": True, "null_class": True}

    def scores(self, batch):
        self.calls += 1
        n = batch["v"].shape[1]
        c = torch.full((1, n, 2), -6.0)
        a = torch.full((1, n, 2), -6.0)
        a[0, 1, 1] = 2.0  # the right hand's best (never held) is the other proposal
        if self.calls % 5 != 0:  # left hand holds proposal 0, except a one-frame dropout every 5th frame
            c[0, 0, 0], a[0, 0, 0] = 6.0, 6.0
        return c, a


class _Model:
    device = torch.device("cpu")

    def __init__(self):
        self.roi_heads = _Heads()

    def extract(self, inputs):
        x = inputs[0]
        h, w = x["height"], x["width"]
        box = torch.zeros(h, w, dtype=torch.bool)
        box[h // 3:h // 2, w // 4:w // 2] = True
        other = torch.zeros(h, w, dtype=torch.bool)
        other[h // 8:h // 4, 3 * w // 5:4 * w // 5] = True
        hand = torch.zeros(h, w, dtype=torch.bool)
        hand[h // 2:, : w // 3] = True
        v = torch.eye(2, 8)
        return [{"image_id": x["image_id"], "height": h, "width": w, "v": v,
                 "proposal_rles": [encode_rle(box), encode_rle(other)], "proposal_scores": torch.tensor([0.9, 0.8]),
                 "hand_present": torch.tensor([True, True]), "v_hands": torch.zeros(2, 8),
                 "v_contact": torch.zeros(2, 2, 8), "hand_rles": [encode_rle(hand), encode_rle(hand.flip(1))],
                 "geom": torch.zeros(2, 2, 8), "gt_pair_obj": torch.tensor([-1, -1])}]


class _Predictor:
    def __init__(self, cfg, weights=None):
        self.model = _Model()

    def __call__(self, image_rgb, hands=None, image_id="", extra=None):  # the per-frame path
        from wish_d2.video.predictor import VideoPredictor

        return VideoPredictor(self, temporal=False)(image_rgb, hands, image_id, extra)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from wish_d2.data.synthetic.video_script import VideoParams
    from wish_d2.data.synthetic.video_split import ensure_video_split
    from wish_d2.video.demo import export_video_mp4

    root = tmp_path_factory.mktemp("v")
    folder = ensure_video_split(str(root / "data"), 0, "test", 1, VideoParams(seconds=2.0, image_size=(64, 64)))
    return export_video_mp4(folder, "P82_01", str(root / "clip"))


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(video, out, *extra):
    import importlib.util

    spec = importlib.util.spec_from_file_location("wish_demo_tool_video", os.path.join(REPO, "tools", "demo.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    argv = ["--config-file", os.path.join(REPO, "configs", "wish_synthetic.yaml"),
            "--input", video, "--output", str(out), "--video-output",
            "--proposals-file", os.path.join(os.path.dirname(video), "unused.jsonl"), *extra]  # the stand-in ignores it
    return demo.main(argv, predictor_factory=_Predictor)


def _predicted_frames(out):
    with open(os.path.join(out, "summary.json")) as f:
        return [img["classes"] for img in json.load(f)["images"]]


def test_video_demo_temporal_by_default_with_timeline(video, tmp_path):
    out = tmp_path / "temporal"
    assert _run(video, out) == 0
    assert (out / "P82_01_wish.mp4").is_file()
    assert (out / "timelines" / "P82_01_timeline.png").is_file()
    frames = _predicted_frames(out)
    assert len(frames) == 20
    assert all(f == ["left"] for f in frames[:3] + frames[5:])  # dropouts bridged after the first frames
    html = (out / "index.html").read_text()
    assert "held object over time" in html

    per = tmp_path / "per_frame"
    assert _run(video, per, "--per-frame") == 0
    assert not (per / "timelines").exists()
    pf = _predicted_frames(per)
    assert pf[4] == [] and pf[9] == []  # the per-frame switch follows the flicker


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (bash tools/install_chromium.sh)")
def test_video_gallery_in_browser(video, tmp_path):
    out = tmp_path / "g"
    assert _run(video, out, "--max-frames", "6") == 0
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--dump-dom",
           "file://" + os.path.abspath(out / "index.html")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln] == []
    assert re.search(r'<body[^>]*data-ready="1"', dom)
    n_img = len(re.findall(r"<img\b", dom))
    assert re.search(rf'data-images-ok="{n_img}"', dom) and re.search(r'data-images-broken="0"', dom)
    assert "held object over time" in dom and "timeline" in dom
