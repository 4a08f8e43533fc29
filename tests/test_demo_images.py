"""The demo's image reader (wish_d2.data.image_io.read_image_rgb) and what the demo does with hard images: 16-bit,
palette, gray, alpha and EXIF-rotated files become the right 8-bit RGB; corrupt, truncated and decompression-bomb
files are named, counted and skipped."""
import json
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import wish_d2  # noqa: F401
from detectron2.structures import Instances

from wish_d2.demo import ImageReadError, read_image_rgb
from wish_d2.data.image_io import to_uint8_rgb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "wish_synthetic.yaml")


def _demo_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("wish_demo_tool_images", os.path.join(REPO, "tools", "demo.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _png_header_only(path, width, height):
    """A few-byte PNG whose header claims ``width x height`` (valid chunk CRCs, no pixel data)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
                + chunk(b"IEND", b""))


def _gray16(h=48, w=64):
    """A 16-bit gray ramp over 10000..30000: 8-bit mean 20000 / 257 = 77.8, and > 255 everywhere."""
    return np.linspace(10000, 30000, h * w).reshape(h, w).astype(np.uint16)


# ---- the reader --------------------------------------------------------------------------------------------------
def test_16bit_gray_png_scaled_not_clipped(tmp_path):
    path = str(tmp_path / "g16.png")
    values = _gray16()
    values[0, :3] = (0, 32896, 65535)
    assert cv2.imwrite(path, values)
    assert Image.open(path).mode.startswith("I;16")  # the case Pillow's convert("RGB") clips to white
    rgb = read_image_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert tuple(rgb[0, :3, 0]) == (0, 128, 255)
    expected = np.rint(values.astype(np.float64) * 255 / 65535)
    assert np.abs(rgb[..., 0].astype(np.float64) - expected).max() <= 0.5
    assert 70 < rgb.mean() < 85  # clipped at 255 it would be ~255


def test_16bit_rgb_png_keeps_colour_order(tmp_path):
    path = str(tmp_path / "c16.png")
    bgr16 = np.zeros((8, 8, 3), np.uint16)
    bgr16[..., 0], bgr16[..., 1], bgr16[..., 2] = 1000, 30000, 60000  # B, G, R
    assert cv2.imwrite(path, bgr16)
    rgb = read_image_rgb(path)
    np.testing.assert_allclose(rgb[0, 0], np.array([60000, 30000, 1000]) / 257, atol=1.5)


def test_palette_gray_and_alpha_images(tmp_path):
    colours = np.array([[255, 0, 0], [0, 128, 255], [10, 200, 30]], np.uint8)
    idx = np.tile(np.arange(3, dtype=np.uint8), (6, 3))  # 6 x 9
    pal = Image.fromarray(idx, mode="P")
    pal.putpalette(colours.reshape(-1).tolist() + [0] * (768 - 9))
    pal.save(tmp_path / "palette.png")
    assert Image.open(tmp_path / "palette.png").mode == "P"
    np.testing.assert_array_equal(read_image_rgb(str(tmp_path / "palette.png")), colours[idx])

    gray = np.arange(54, dtype=np.uint8).reshape(6, 9) * 4
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    np.testing.assert_array_equal(read_image_rgb(str(tmp_path / "gray.png")), np.repeat(gray[..., None], 3, 2))

    la = np.stack([gray, np.full_like(gray, 7)], -1)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image_rgb(str(tmp_path / "la.png")), np.repeat(gray[..., None], 3, 2))

    rgba = np.dstack([colours[idx], np.full(idx.shape, 0, np.uint8)])  # fully transparent: alpha is dropped
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image_rgb(str(tmp_path / "rgba.png")), colours[idx])


def test_exif_orientation_applied(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = (255, 0, 0)  # left half red
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    pil.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    rgb = read_image_rgb(str(tmp_path / "rotated.jpg"))
    assert rgb.shape == (40, 20, 3)
    assert rgb[:15, :, 0].mean() > 200 and rgb[-15:, :, 0].mean() < 50  # the red half is now on top


def test_float_and_int32_modes():
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), mode="F")
    assert to_uint8_rgb(f)[0, :, 0].tolist() == [0, 128, 255]
    wide = Image.fromarray(np.array([[0, 100000, 200000]], np.int32), mode="I")  # beyond 16 bits: own range
    assert to_uint8_rgb(wide)[0, :, 0].tolist() == [0, 128, 255]
    nan = Image.fromarray(np.array([[np.nan, 2.0, 4.0]], np.float32), mode="F")
    out = to_uint8_rgb(nan)
    assert out.dtype == np.uint8 and out[0, :, 0].tolist() == [0, 0, 255]


@pytest.mark.parametrize("case", ["garbage", "truncated", "bomb", "empty", "missing", "folder"])
def test_bad_files_raise_one_clear_error(tmp_path, case):
    path = tmp_path / f"{case}.png"
    if case == "garbage":
        path.write_bytes(b"definitely not an image" * 4)
    elif case == "truncated":
        assert cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "bomb":
        _png_header_only(str(path), 20000, 20000)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "folder":
        path.mkdir()
    with pytest.raises(ImageReadError) as info:
        read_image_rgb(str(path))
    assert str(path) in str(info.value)
    if case == "bomb":
        assert "decompression bomb" in str(info.value) and "400000000 pixels" in str(info.value)


def test_pixel_limit_is_explicit(tmp_path):
    path = str(tmp_path / "small.png")
    assert cv2.imwrite(path, np.zeros((10, 10, 3), np.uint8))
    assert read_image_rgb(path, max_pixels=100).shape == (10, 10, 3)
    with pytest.raises(ImageReadError, match="10x10"):
        read_image_rgb(path, max_pixels=99)


# ---- the demo on such files --------------------------------------------------------------------------------------
class _NoHandsPredictor:
    """The predictor's output contract with no hands, no proposals and no prediction: the demo's own I/O only."""

    def __init__(self, cfg, weights=None):
        self.shapes = []

    def __call__(self, image_rgb, hands=None, image_id="", extra=None):
        assert image_rgb.dtype == np.uint8 and image_rgb.ndim == 3 and image_rgb.shape[2] == 3
        self.shapes.append(image_rgb.shape)
        h, w = image_rgb.shape[:2]
        inst = Instances((h, w))
        inst.pred_masks = torch.zeros((0, h, w), dtype=torch.bool)
        inst.pred_classes = torch.zeros((0,), dtype=torch.long)
        inst.scores = torch.zeros((0,))
        return {"instances": inst, "record": {"proposal_rles": [], "hand_rles": [None, None]}}


def test_demo_shows_16bit_png_and_skips_bad_files(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    values = _gray16()
    assert cv2.imwrite(str(inputs / "a_gray16.png"), values)
    (inputs / "b_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _png_header_only(str(inputs / "c_bomb.png"), 20000, 20000)
    out = tmp_path / "out"
    rc = _demo_tool().main(["--config-file", CONFIG, "--input", str(inputs), "--output", str(out),
                            "--no-dataset-lookup", "--proposals-file", str(tmp_path / "unused.jsonl"),
                            "--opts", "DATASETS.TEST", "()", "MODEL.DEVICE", "cpu"],
                           predictor_factory=_NoHandsPredictor)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Traceback" not in captured.err
    for bad in ("b_corrupt.png", "c_bomb.png"):
        lines = [ln for ln in captured.err.splitlines() if str(inputs / bad) in ln]
        assert len(lines) == 1 and lines[0].startswith("error: cannot read image") and "skipped" in lines[0]
    with open(out / "summary.json") as f:
        summary = json.load(f)
    assert summary["counts"]["frames processed"] == 1 and summary["counts"]["unreadable inputs"] == 2
    assert summary["unreadable"] == [str(inputs / "b_corrupt.png"), str(inputs / "c_bomb.png")]
    # what the gallery shows of the 16-bit frame is its real brightness, not white
    shown = cv2.imread(str(out / "panels" / "a_gray16_input.png"))
    assert shown is not None
    assert abs(shown.mean() - values.mean() / 257) < 3 and shown.mean() < 200
    overlay = cv2.imread(str(out / "overlays" / "a_gray16.png"))
    assert overlay.mean() < 200


def test_training_mapper_reads_16bit_frames_like_the_demo(tmp_path):
    """Extraction and training read frames through the same reader: a 16-bit frame is scaled, not clipped white,
    and an 8-bit frame is read exactly as Detectron2 reads it."""
    from detectron2.data.detection_utils import read_image

    from wish_d2.data.mappers import read_rgb

    path16 = str(tmp_path / "g16.png")
    assert cv2.imwrite(path16, _gray16())
    image = read_rgb(path16)
    assert image.dtype == torch.uint8 and image.shape == (3, 48, 64)
    assert abs(float(image.float().mean()) - 77.8) < 1.0
    path8 = str(tmp_path / "c8.png")
    rgb8 = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert cv2.imwrite(path8, rgb8)
    assert np.array_equal(read_rgb(path8).permute(1, 2, 0).numpy(), read_image(path8, format="RGB"))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_rgb(str(tmp_path / "missing.png"))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.png"):
        read_rgb(str(tmp_path / "bad.png"))
