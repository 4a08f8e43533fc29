"""tools/demo.py end to end: overlays, COCO predictions json, summary and the HTML gallery.

Two kinds of tests:
* with the real tiny model (``WISH-Test-ViT`` CLIP, precomputed proposals, hands and ground truth from a tiny
  registered dataset): the whole online path through ``WISHPredictor``;
* with a fake predictor (same output contract): the demo's own input handling (folders, unreadable images, videos,
  undecodable videos, ``--confidence``), fast and independent of the model code.
"""
import importlib.util
import json
import os
import re
import uuid

import cv2
import numpy as np
import pytest
import torch

import wish_d2  # noqa: F401
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode, Instances

from wish_d2.data.proposals_io import write_proposals
from wish_d2.utils.masks import encode_rle

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "wish_synthetic.yaml")
H = W = 64


def _load_demo():
    spec = importlib.util.spec_from_file_location("wish_demo_tool", os.path.join(REPO, "tools", "demo.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


demo = _load_demo()


def _box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _bbox(m):
    ys, xs = np.nonzero(m)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


LEFT_HAND, RIGHT_HAND = _box(46, 64, 2, 22), _box(46, 64, 42, 62)
OBJ_LEFT, OBJ_RIGHT, OBJ_BOTH = _box(30, 48, 4, 20), _box(30, 48, 44, 60), _box(8, 26, 18, 46)


def _image(seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(60, 100, (H, W, 3), dtype=np.uint8)
    img[LEFT_HAND] = (220, 170, 140)
    img[RIGHT_HAND] = (210, 160, 130)
    img[OBJ_LEFT] = (40, 90, 200)
    img[OBJ_RIGHT] = (200, 60, 40)
    img[OBJ_BOTH] = (60, 180, 60)
    return img


def _hand(side, m):
    return {"side": side, "side_source": "gt", "segmentation": encode_rle(m), "bbox": _bbox(m)}


def _ann(cat, m, noun):
    return {"category_id": cat, "segmentation": encode_rle(m), "bbox": _bbox(m), "bbox_mode": BoxMode.XYWH_ABS,
            "iscrowd": 0, "noun": noun}


def _proposal_record(image_id):
    masks = [OBJ_LEFT, OBJ_RIGHT, OBJ_BOTH, _box(0, 6, 0, 64)]
    return {"image_id": image_id, "height": H, "width": W, "masks": [encode_rle(m) for m in masks],
            "scores": [0.9, 0.85, 0.8, 0.5]}


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Two frames in a registered dataset (hands, ground truth, precomputed proposals) + one unreadable file."""
    root = tmp_path_factory.mktemp("demo_ds")
    img_dir = root / "images"
    img_dir.mkdir()
    dicts = []
    for i in range(2):
        path = str(img_dir / f"frame_{i}.png")
        assert cv2.imwrite(path, _image(i)[:, :, ::-1])
        dicts.append({
            "file_name": path, "image_id": f"tiny_{i}", "height": H, "width": W,
            "narrations": ["take cup"], "noun_phrases": ["cup"],
            "hands": [_hand("left", LEFT_HAND), _hand("right", RIGHT_HAND)],
            "annotations": [_ann(0, OBJ_LEFT, "cup")] if i == 0 else [_ann(2, OBJ_BOTH, "tray")],
        })
    (img_dir / "broken.png").write_bytes(b"this is not a png")
    proposals = str(root / "proposals.jsonl")
    write_proposals([_proposal_record(d["image_id"]) for d in dicts], proposals)
    name = f"wish_demo_test_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
    MetadataCatalog.get(name).set(thing_classes=["left", "right", "both"], evaluator_type="wish_inhand",
                                  image_root=str(img_dir), proposals_file=proposals)
    yield {"root": root, "images": img_dir, "name": name, "dicts": dicts, "proposals": proposals}
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _opts(name, out):
    clip = "WISH-Test-ViT" if os.path.isfile(os.path.join(REPO, "wish_d2", "model_configs", "WISH-Test-ViT.json")) \
        else "WISH-Tiny-ViT"
    return ["MODEL.WISH.CLIP.MODEL_NAME", clip, "MODEL.WISH.CLIP.PRETRAINED", "",
            "MODEL.PROPOSAL_GENERATOR.NAME", "PrecomputedMaskProposals",
            "DATASETS.TEST", f"('{name}',)", "DATASETS.VAL", "()", "DATASETS.TRAIN", "()",
            "OUTPUT_DIR", str(out), "MODEL.DEVICE", "cpu"]


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _check_gallery(out, n_cards):
    html = (out / "index.html").read_text()
    assert html.count('<section class="card"') == n_cards
    assert "http://" not in html and "https://" not in html  # no external assets
    for src in re.findall(r'<img[^>]*src="([^"]+)"', html):
        assert src.startswith("data:image/") or (out / src).is_file(), src
    return html


# ---- the real tiny model -----------------------------------------------------------------------------------------
def test_demo_end_to_end_tiny_model(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "demo"
    rc = demo.main(["--config-file", CONFIG, "--input", str(tiny_dataset["images"]), "--output", str(out),
                    "--opts", *_opts(tiny_dataset["name"], tmp_path / "run")])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    # the untrained embedded default says so
    assert "untrained" in captured.out and "smoke test" in captured.out
    # the unreadable image is named, skipped, counted and listed at the end
    broken = str(tiny_dataset["images"] / "broken.png")
    assert f"cannot read image {broken}" in captured.err
    summary = _read_json(out / "summary.json")
    assert summary["counts"]["frames processed"] == 2
    assert summary["counts"]["unreadable inputs"] == 1 and summary["unreadable"] == [broken]
    assert summary["counts"]["frames with ground truth"] == 2
    assert "1 unreadable input(s)" in captured.out
    # dataset hands were used and ground truth scored per image
    for rec, d in zip(summary["images"], tiny_dataset["dicts"]):
        assert rec["image_id"] == d["image_id"] and rec["dataset"] == tiny_dataset["name"]
        assert rec["metrics"]["hands"] == "left+right"
        assert rec["metrics"]["proposals"] >= 3
        assert "E-mIoU" in rec["metrics"]
        assert (out / rec["overlay"]).is_file()
    for i in range(2):
        assert (out / "overlays" / f"frame_{i}.png").is_file()
        assert (out / "panels" / f"frame_{i}_gt.png").is_file()
        assert (out / "panels" / f"frame_{i}_proposals.png").is_file()
    preds = _read_json(out / "predictions_coco.json")
    assert isinstance(preds, list)
    for p in preds:
        assert p["image_id"] in {"tiny_0", "tiny_1"} and p["category_id"] in (0, 1, 2)
        assert set(p["segmentation"]) == {"size", "counts"} and 0 <= p["score"]
    html = _check_gallery(out, 2)
    assert "ground truth" in html and "proposals" in html and "untrained" in html


def test_demo_missing_weights_is_one_clear_line(tiny_dataset, tmp_path, capsys):
    missing = str(tmp_path / "nowhere" / "model_final.pth")
    rc = demo.main(["--config-file", CONFIG, "--input", str(tiny_dataset["images"]), "--output",
                    str(tmp_path / "o"), "--opts", *_opts(tiny_dataset["name"], tmp_path), "MODEL.WEIGHTS", missing])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and missing in err[0] and "Fix:" in err[0] and "MODEL.WEIGHTS" in err[0]
    assert not (tmp_path / "o").exists()


def test_demo_missing_config(tmp_path, capsys):
    rc = demo.main(["--config-file", str(tmp_path / "nope.yaml"), "--input", "x.png", "--output", str(tmp_path)])
    assert rc == 2 and "config file not found" in capsys.readouterr().err


def test_config_keys_after_input_become_opts():
    args = demo.parse_args(["--config-file", CONFIG, "--input", "a.png", "b.png", "MODEL.WEIGHTS", "w.pth",
                            "--output", "o"])
    assert args.input == ["a.png", "b.png"] and args.opts == ["MODEL.WEIGHTS", "w.pth"]


# ---- fake predictor: the demo's own logic ------------------------------------------------------------------------
class FakePredictor:
    """``WISHPredictor``'s contract: dataset hands -> one object per hand; no hands -> nothing."""

    def __init__(self, cfg, weights=None):
        self.calls = []

    def __call__(self, image_rgb, hands=None, image_id="", extra=None):
        self.calls.append({"image_id": image_id, "hands": hands, "extra": extra})
        h, w = image_rgb.shape[:2]
        sides = {hd["side"] for hd in hands or []}
        if str(image_id).startswith("clip_"):  # a video frame: pretend both hands hold the tray
            sides = {"left", "right"}
        masks, classes, scores = [], [], []
        if sides == {"left", "right"}:
            masks, classes, scores = [OBJ_BOTH], [2], [0.7]
        elif "left" in sides:
            masks, classes, scores = [OBJ_LEFT], [0], [0.4]
        inst = Instances((h, w))
        inst.pred_masks = torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, h, w), dtype=torch.bool)
        inst.pred_classes = torch.tensor(classes, dtype=torch.long)
        inst.scores = torch.tensor(scores, dtype=torch.float32)
        hand_rles = [encode_rle(LEFT_HAND) if "left" in sides else None,
                     encode_rle(RIGHT_HAND) if "right" in sides else None]
        rec = _proposal_record(image_id)
        record = {"proposal_rles": rec["masks"], "proposal_scores": torch.tensor(rec["scores"]),
                  "hand_rles": hand_rles, "hand_present": torch.tensor([r is not None for r in hand_rles])}
        return {"instances": inst, "record": record}


def test_demo_fake_predictor_images_and_confidence(tiny_dataset, tmp_path, capsys):
    made = []

    def factory(cfg, weights=None):
        made.append(FakePredictor(cfg, weights))
        return made[-1]

    out = tmp_path / "demo"
    extra_image = tmp_path / "elsewhere.png"
    cv2.imwrite(str(extra_image), _image(5))
    rc = demo.main(["--config-file", CONFIG, "--input", str(tiny_dataset["images"] / "*.png"), str(extra_image),
                    "--output", str(out), "--confidence", "0.5", "--embed-images",
                    "--proposals-file", tiny_dataset["proposals"],
                    "--opts", *_opts(tiny_dataset["name"], tmp_path)], predictor_factory=factory)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    calls = made[0].calls
    assert [c["image_id"] for c in calls] == ["tiny_0", "tiny_1", "elsewhere"]
    assert calls[0]["extra"] == {"dataset_name": tiny_dataset["name"], "proposals_file": tiny_dataset["proposals"]}
    assert calls[2]["hands"] is None and calls[2]["extra"] == {"proposals_file": tiny_dataset["proposals"]}
    assert "no hands found for" in captured.out and captured.out.count("no hands found for") == 1
    summary = _read_json(out / "summary.json")
    assert summary["counts"]["frames processed"] == 3 and summary["counts"]["frames without hands"] == 1
    # fake: both hands -> one "both" object (0.7), kept by --confidence 0.5; GT of tiny_1 is that object
    per = {r["image_id"]: r for r in summary["images"]}
    assert per["tiny_1"]["classes"] == ["both"] and per["tiny_1"]["metrics"]["E-mIoU"] == pytest.approx(100.0)
    assert per["tiny_0"]["metrics"]["IoU_left"] == 0.0  # GT left object, predicted "both" elsewhere
    preds = _read_json(out / "predictions_coco.json")
    assert [p["image_id"] for p in preds] == ["tiny_0", "tiny_1"]
    html = _check_gallery(out, 3)
    assert html.count("data:image/png;base64,") >= 3 * 3  # --embed-images: one standalone file
    assert 'data-classes="none"' in html and 'data-classes="both"' in html


def test_demo_precomputed_without_proposals_is_explained(tiny_dataset, tmp_path, capsys):
    img = tmp_path / "loose.png"
    cv2.imwrite(str(img), _image(7))
    rc = demo.main(["--config-file", CONFIG, "--input", str(img), "--output", str(tmp_path / "o"),
                    "--opts", *_opts(tiny_dataset["name"], tmp_path)], predictor_factory=FakePredictor)
    err = capsys.readouterr().err
    assert rc == 1
    assert f"no proposals for {img}" in err and "--proposals-file" in err


def _write_video(path, n=4):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (W, H))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot encode mp4v")
    for i in range(n):
        writer.write(np.ascontiguousarray(_image(i)[:, :, ::-1]))
    writer.release()


def test_demo_video_and_undecodable_video(tiny_dataset, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    _write_video(video, 4)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01 definitely not a video" * 10)
    out = tmp_path / "demo"
    props = tmp_path / "video_props.jsonl"
    write_proposals([_proposal_record(f"clip_f{i:06d}") for i in range(4)], str(props))
    rc = demo.main(["--config-file", CONFIG, "--input", str(video), str(bad), "--output", str(out),
                    "--video-output", "--video-stride", "2", "--proposals-file", str(props),
                    "--opts", *_opts(tiny_dataset["name"], tmp_path)], predictor_factory=FakePredictor)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    err_lines = [ln for ln in captured.err.splitlines() if str(bad) in ln]
    assert len(err_lines) == 1 and "cannot decode video" in err_lines[0] and "H.264" in err_lines[0]
    summary = _read_json(out / "summary.json")
    assert [r["name"] for r in summary["images"]] == ["clip_f000000", "clip_f000002"]
    assert summary["unreadable"] == [str(bad)]
    cap = cv2.VideoCapture(str(out / "clip_wish.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    ok, frame = cap.read()
    assert ok and frame.shape == (H, W, 3)
    cap.release()
    _check_gallery(out, 2)


def test_demo_video_tiny_model_precomputed_hands(tiny_dataset, tmp_path, capsys):
    """The path for frames outside any dataset: hands from a precomputed file, proposals from --proposals-file."""
    video = tmp_path / "clip.mp4"
    _write_video(video, 3)
    names = [f"clip_f{i:06d}" for i in range(3)]
    props = tmp_path / "props.jsonl"
    write_proposals([_proposal_record(n) for n in names], str(props))
    hands = tmp_path / "hands.json"
    hands.write_text(json.dumps({n: [{"segmentation": encode_rle(LEFT_HAND), "side": None},
                                     {"segmentation": encode_rle(RIGHT_HAND), "side": "right"}] for n in names}))
    out = tmp_path / "demo"
    rc = demo.main(["--config-file", CONFIG, "--input", str(video), "--output", str(out), "--video-output",
                    "--proposals-file", str(props),
                    "--opts", *_opts(tiny_dataset["name"], tmp_path), "MODEL.WISH.HANDS.SOURCE", "precomputed",
                    "MODEL.WISH.HANDS.PRECOMPUTED_FILE", str(hands)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = _read_json(out / "summary.json")
    assert [r["name"] for r in summary["images"]] == names
    # the side-less hand on the left half got "left" from the vertical-split heuristic
    assert all(r["metrics"]["hands"] == "left+right" and r["dataset"] is None for r in summary["images"])
    assert all(r["metrics"]["proposals"] >= 3 for r in summary["images"])
    assert (out / "clip_wish.mp4").is_file() and "no hands found" not in captured.out
    _check_gallery(out, 4)  # 3 frames + the video's timeline card (temporal inference, docs/VIDEO.md)
    assert (out / "timelines" / "clip_timeline.png").is_file()


def test_demo_image_outside_the_datasets_gets_hands_from_the_configured_detector(tiny_dataset, tmp_path, capsys):
    """HANDS.SOURCE dataset knows only the datasets' hands: a user's own photo takes them from the hand detector of
    HANDS.DETECTOR_CONFIG / DETECTOR_WEIGHTS (here a tiny Mask R-CNN whose every detection is a left hand)."""
    from test_model_hands import _save_detector

    photo = tmp_path / "photos" / "outside.png"
    photo.parent.mkdir()
    assert cv2.imwrite(str(photo), _image(5)[:, :, ::-1])
    props = tmp_path / "props.jsonl"
    write_proposals([_proposal_record("outside")], str(props))
    (tmp_path / "det").mkdir()
    config_file, weights = _save_detector(tmp_path / "det", [10.0, -10.0, -10.0])
    base = ["--config-file", CONFIG, "--input", str(photo), "--proposals-file", str(props), "--opts",
            *_opts(tiny_dataset["name"], tmp_path / "run"), "MODEL.WISH.CLIP.PRETRAINED", ""]
    rc = demo.main(base[:6] + ["--output", str(tmp_path / "without")] + base[6:])
    captured = capsys.readouterr()
    assert rc == 0 and "no hands found" in captured.out and "DETECTOR_WEIGHTS" in captured.out
    rc = demo.main(base[:6] + ["--output", str(tmp_path / "with")] + base[6:] + [
        "MODEL.WISH.HANDS.DETECTOR_CONFIG", config_file, "MODEL.WISH.HANDS.DETECTOR_WEIGHTS", weights,
        "MODEL.WISH.HANDS.DETECTOR_CLASSES", "['left hand', 'right hand']"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "no hands found" not in captured.out and "from the hand detector" in captured.out
    (rec,) = _read_json(tmp_path / "with" / "summary.json")["images"]
    assert rec["dataset"] is None and rec["metrics"]["hands"] == "left"
