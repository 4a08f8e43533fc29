"""Weights files and URLs a careless or hostile user may hand over: no file runs code, every bad file or answer is
one WeightsError line naming it, downloads end, and weights of another model are refused unless allowed.

Entry points: ``load_eval_weights`` (``--eval-only``, the demo's predictor), ``check_init_weights`` and
``tools/train_net.py`` (training init), the hand detector's loader, ``SafeDetectionCheckpointer`` by URL."""
import collections
import http.server
import importlib.util
import os
import pickle
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from wish_fixtures import tiny_cfg

from wish_d2.engine.checkpoint import WeightsError, check_init_weights, load_eval_weights
from wish_d2.modeling import download
from wish_d2.modeling.checkpointer import SafeDetectionCheckpointer, read_checkpoint
from wish_d2.modeling.hands import load_detector_weights
from wish_d2.modeling.weights import WeightsUnavailableError, resolve_weights_file
from wish_d2.utils.safe_pickle import UnsafePickleError, load_weights_pickle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------------ payloads
class _Payload:
    """Pickles as a call of ``func(*args)``: what a hostile weights file does to plain ``pickle.load``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    """Each would create ``marker`` when unpickled."""
    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.open": _Payload(open, str(marker), "w"),
        "builtins.exec": _Payload(exec, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(marker)]),
    }


PAYLOADS = ["os.system", "builtins.open", "builtins.exec", "subprocess.call"]


def _hostile_pkl(path, marker, kind, protocol=2):
    """A model-zoo-shaped .pkl with the payload among real arrays."""
    data = {"model": {"w": np.zeros((2, 3), np.float32), "evil": _payloads(marker)[kind]}, "__author__": "zoo"}
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return str(path)


# ------------------------------------------------------------------------------------------------ the unpickler
class _Stem(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, bias=False)


class _TinyBackbone(nn.Module):
    """Detectron2 names (``stem.conv1.weight``) that the Caffe2 name ``conv1_w`` maps to."""

    def __init__(self):
        super().__init__()
        self.stem = _Stem()


def _zoo_files(tmp_path, weight):
    """The layouts model-zoo .pkl files come in, each holding ``weight`` for the stem conv."""
    d2 = {"model": collections.OrderedDict([("stem.conv1.weight", weight)]), "__author__": "Detectron2 Model Zoo"}
    caffe2_blobs = {"blobs": {"conv1_w": weight, "conv1_w_momentum": weight * 0}}
    caffe2_bare = {"conv1_w": weight}
    files = {}
    for name, data, proto in (("d2_p2", d2, 2), ("d2_p4", d2, 4), ("c2_blobs", caffe2_blobs, 2),
                              ("c2_bare", caffe2_bare, 2)):
        files[name] = tmp_path / f"{name}.pkl"
        files[name].write_bytes(pickle.dumps(data, protocol=proto))
    # written by numpy 1: the reconstructor lives in numpy.core.multiarray (a text GLOBAL in protocol 2)
    old = pickle.dumps(d2, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    files["d2_numpy1"] = tmp_path / "d2_numpy1.pkl"
    files["d2_numpy1"].write_bytes(old)
    return files


@pytest.mark.parametrize("layout", ["d2_p2", "d2_p4", "c2_blobs", "c2_bare", "d2_numpy1"])
def test_model_zoo_pkl_layouts_still_load(tmp_path, layout):
    weight = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    path = _zoo_files(tmp_path, weight)[layout]
    model = _TinyBackbone()
    SafeDetectionCheckpointer(model).load(str(path))
    assert np.array_equal(model.stem.conv1.weight.detach().numpy(), weight)


@pytest.mark.parametrize("kind", PAYLOADS)
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_unpickler_refuses_every_callable_and_runs_nothing(tmp_path, kind, protocol):
    marker = tmp_path / "pwned"
    path = _hostile_pkl(tmp_path / "evil.pkl", marker, kind, protocol)
    with open(path, "rb") as f, pytest.raises(UnsafePickleError, match="weights never hold"):
        load_weights_pickle(f)
    assert not marker.exists()


def test_unpickler_admits_plain_data():
    data = {"a": [1, 2.5, "x", None, True], "b": (b"raw", {"c": np.arange(3, dtype=np.int64)}),
            "d": collections.OrderedDict(e=np.float32(1.5))}
    import io

    out = load_weights_pickle(io.BytesIO(pickle.dumps(data, protocol=2)))
    assert out["a"] == data["a"] and out["b"][0] == b"raw" and np.array_equal(out["b"][1]["c"], np.arange(3))
    assert out["d"]["e"] == np.float32(1.5)


# ------------------------------------------------------------------------------------------------ hostile files
@pytest.fixture(scope="module")
def wish(tmp_path_factory):
    """A tiny WISH config, its trained-looking checkpoint and a hand-detector-like (foreign) checkpoint."""
    out = tmp_path_factory.mktemp("wish_weights")
    cfg = tiny_cfg(out)
    model = build_model(cfg)
    DetectionCheckpointer(model, save_dir=str(out)).save("good")
    foreign = {"model": {"backbone.bottom_up.stem.conv1.weight": torch.zeros(8, 3, 7, 7),
                         "roi_heads.box_predictor.cls_score.weight": torch.zeros(3, 16),
                         "roi_heads.mask_head.predictor.weight": torch.zeros(2, 8, 1, 1)}}
    torch.save(foreign, str(out / "hand_detector.pth"))
    return cfg, out


def _loaders(cfg):
    """Every entry point that reads a weights file, as ``load(path)``."""
    return {
        "eval": lambda p: load_eval_weights(build_model(cfg), p),
        "train_init": lambda p: check_init_weights(_with_weights(cfg, p)),
        "hand_detector": lambda p: load_detector_weights(_TinyBackbone(), p),
    }


def _with_weights(cfg, path):
    c = cfg.clone()
    c.defrost()
    c.MODEL.WEIGHTS = path
    return c


@pytest.mark.parametrize("entry", ["eval", "train_init", "hand_detector"])
@pytest.mark.parametrize("kind", ["os.system", "subprocess.call"])
def test_hostile_pkl_is_refused_at_every_entry_point(wish, tmp_path, entry, kind):
    marker = tmp_path / "pwned"
    path = _hostile_pkl(tmp_path / "model_final.pkl", marker, kind)
    with pytest.raises(WeightsError) as e:
        _loaders(wish[0])[entry](path)
    msg = str(e.value)
    assert path in msg and "refused" in msg and "\n" not in msg
    assert not marker.exists()


@pytest.mark.parametrize("entry", ["eval", "train_init", "hand_detector"])
def test_hostile_pth_is_refused_by_weights_only(wish, tmp_path, entry):
    marker = tmp_path / "pwned"
    path = tmp_path / "model_final.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "extra": _payloads(marker)["os.system"]}, str(path))
    with pytest.raises(WeightsError, match="refused") as e:
        _loaders(wish[0])[entry](str(path))
    assert str(path) in str(e.value) and not marker.exists()


def _bad_files(folder, good: str):
    """name -> (file path, fragment of the expected message)."""
    raw = open(good, "rb").read()
    folder.mkdir(exist_ok=True)
    files = {
        "empty": (b"", "empty"),
        "truncated": (raw[: len(raw) // 2], "truncated"),
        "text": (b"these are not weights\n", "text file"),
        "html": (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML page"),
        "garbage": (bytes(range(256)) * 4, "not a readable checkpoint"),
    }
    out = {}
    for ext in (".pth", ".pkl"):
        for name, (data, fragment) in files.items():
            path = folder / f"{name}{ext}"
            path.write_bytes(data)
            out[f"{name}{ext}"] = (str(path), fragment)
    objects = {
        "bare_tensor": (torch.zeros(3, 4), "bare tensor"),
        "a_list": ([torch.zeros(2)], "not a state dict"),
        "no_weights": ({"model": {}}, "holds no weights"),
        "strings": ({"model": {"a": "not a tensor"}}, "not a tensor"),
    }
    for name, (obj, fragment) in objects.items():
        path = folder / f"{name}.pth"
        torch.save(obj, str(path))
        out[f"{name}.pth"] = (str(path), fragment)
    for name, (obj, fragment) in {"pkl_list": ([np.zeros(2)], "not a state dict"),
                                  "pkl_objects": ({"model": {"a": np.array(["x"], dtype=object)}, "__author__": "z"},
                                                  "not a tensor or numeric array")}.items():
        path = folder / f"{name}.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=2))
        out[f"{name}.pkl"] = (str(path), fragment)
    (folder / "a_folder.pth").mkdir(exist_ok=True)
    out["folder"] = (str(folder / "a_folder.pth"), "is a folder")
    out["missing"] = (str(folder / "missing.pth"), "no such file")
    out["unsupported_scheme"] = ("s3://bucket/model.pth", "unsupported address")
    return out


BAD = ["empty.pth", "truncated.pth", "text.pth", "html.pth", "garbage.pth", "empty.pkl", "truncated.pkl",
       "text.pkl", "html.pkl", "garbage.pkl", "bare_tensor.pth", "a_list.pth", "no_weights.pth", "strings.pth",
       "pkl_list.pkl", "pkl_objects.pkl", "folder", "missing", "unsupported_scheme"]


@pytest.mark.parametrize("entry", ["eval", "train_init", "hand_detector"])
@pytest.mark.parametrize("case", BAD)
def test_bad_weights_files_give_one_line_naming_the_file(wish, tmp_path, entry, case):
    cfg, out = wish
    path, fragment = _bad_files(tmp_path / "bad", str(out / "good.pth"))[case]
    with pytest.raises(WeightsError) as e:
        _loaders(cfg)[entry](path)
    msg = str(e.value)
    assert fragment in msg and path in msg and "\n" not in msg, msg


def test_read_checkpoint_keeps_good_files(wish):
    _, out = wish
    assert "roi_heads.contact_threshold" in read_checkpoint(str(out / "good.pth"))["model"]


# ------------------------------------------------------------------------------------------------ other models
def test_foreign_checkpoint_is_refused_for_eval_and_training_unless_allowed(wish):
    cfg, out = wish
    foreign = str(out / "hand_detector.pth")
    for load in (lambda allow: load_eval_weights(build_model(cfg), foreign, allow_partial=allow),
                 lambda allow: check_init_weights(_with_weights(cfg, foreign), allow_partial=allow)):
        with pytest.raises(WeightsError) as e:
            load(False)
        msg = str(e.value)
        assert "matches the WISH heads only partly" in msg and "--allow-partial-weights" in msg and foreign in msg
        assert "unexpected roi_heads.box_predictor.cls_score.weight" in msg
        load(True)  # allowed: a warning, no error


def test_own_checkpoint_is_a_valid_training_init(wish):
    cfg, out = wish
    check_init_weights(_with_weights(cfg, str(out / "good.pth")))


def test_hand_detector_checkpoint_in_place_of_model_final_via_train_net(wish, tmp_path):
    """tools/train_net.py in-process: --eval-only and training init both stop before any extraction."""
    cfg, out = wish
    tool = _train_net()
    base = ["--config-file", os.path.join(ROOT, "configs", "wish_synthetic.yaml"), "MODEL.WISH.CLIP.MODEL_NAME",
            "WISH-Test-ViT", "MODEL.WISH.CLIP.PRETRAINED", "",
            "MODEL.WEIGHTS", str(out / "hand_detector.pth"), "OUTPUT_DIR", str(tmp_path / "run"),
            "MODEL.WISH.CACHE.DIR", str(tmp_path / "cache")]
    for extra in (["--eval-only"], []):
        args = tool.argument_parser().parse_args(extra + base)
        with pytest.raises(WeightsError, match="only partly"):
            tool.main(args)
    assert not (tmp_path / "cache").exists()


def _train_net():
    spec = importlib.util.spec_from_file_location("tool_train_net", os.path.join(ROOT, "tools", "train_net.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_train_net_hostile_pkl_exits_2_with_one_line(tmp_path):
    """The CLI end to end: exit status 2, the file named, no traceback, and the payload never ran."""
    marker = tmp_path / "pwned"
    path = _hostile_pkl(tmp_path / "model_final.pkl", marker, "os.system")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file",
         os.path.join(ROOT, "configs", "wish_synthetic.yaml"), "--eval-only", "MODEL.WEIGHTS", path,
         "MODEL.WISH.CLIP.MODEL_NAME", "WISH-Test-ViT", "MODEL.WISH.CLIP.PRETRAINED", "",
         "OUTPUT_DIR", str(tmp_path / "out"),
         "MODEL.WISH.CACHE.DIR", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and path in errors[0] and "refused" in errors[0]
    assert "Traceback" not in proc.stderr and not marker.exists()


def test_demo_refuses_hostile_weights_with_exit_2(wish, tmp_path, capsys):
    from wish_d2.demo import DemoOptions, run_demo

    cfg, _ = wish
    marker = tmp_path / "pwned"
    c = _with_weights(cfg, _hostile_pkl(tmp_path / "w.pkl", marker, "builtins.exec"))
    c.MODEL.DEVICE = "cpu"
    image = tmp_path / "frame.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))  # a usable input: the weights must be what fails
    status = run_demo(c, DemoOptions(inputs=[str(image)], output=str(tmp_path / "demo")))
    assert status == 2 and not marker.exists()
    assert "refused" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ URLs
class _Answers(http.server.BaseHTTPRequestHandler):
    """Scripted answers on 127.0.0.1, by path."""

    files = {}

    def log_message(self, *args):
        pass

    def _send(self, status, body, kind="application/octet-stream", length=None):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        try:
            if name == "html_typed.pth":
                self._send(200, b"<html><body>Sign in</body></html>", kind="text/html; charset=utf-8")
            elif name == "html_untyped.pth":
                self._send(200, b"\n  <!DOCTYPE html><html>login</html>")
            elif name == "short.pth":
                self._send(200, b"\x80\x02only part", length=100000)
            elif name == "empty.pth":
                self._send(200, b"")
            elif name == "trickle.pth":
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                for _ in range(400):  # one byte every 50 ms: never a socket timeout, far below the minimum rate
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
            elif name == "trickle_headers.pth":
                for byte in b"HTTP/1.0 200 OK\r\nX-Slow: " + b"y" * 400:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.05)
            elif name in self.files:
                self._send(200, self.files[name])
            else:
                self.send_error(404, "Not Found")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should


@pytest.fixture
def answers(tmp_path, monkeypatch):
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "iopath_cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    # A long rate window: a good or promptly bad answer must never be cut as "too slow" because a loaded machine
    # stalled this process for a moment (a 0.5 s window here made the suite fail now and then). The trickle
    # cases shorten it themselves (TRICKLE_WINDOW_S).
    monkeypatch.setattr(download, "RATE_WINDOW_S", 30.0)
    monkeypatch.setattr(download, "MIN_RATE_BYTES_PER_S", 1000)
    monkeypatch.setattr(download, "SOCKET_TIMEOUT_S", 5.0)
    handler = type("Answers", (_Answers,), {"files": {}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/w", handler.files, tmp_path / "iopath_cache"
    httpd.shutdown()
    httpd.server_close()


URL_CASES = {
    "html_typed.pth": "HTML page (Content-Type: text/html)",
    "html_untyped.pth": "HTML page",
    "missing.pth": "HTTP Error 404",
    "short.pth": "closed after",
    "empty.pth": "empty body",
    "trickle.pth": "too slow",
    "trickle_headers.pth": "too slow",
}


TRICKLE_WINDOW_S = 0.5  # a trickle (20 bytes/s) is far under 1000 bytes/s over any window, however loaded


@pytest.mark.parametrize("name", sorted(URL_CASES))
def test_bad_url_answers_fail_with_the_url_and_cache_nothing(answers, name, monkeypatch):
    base, _, cache = answers
    if name.startswith("trickle"):
        monkeypatch.setattr(download, "RATE_WINDOW_S", TRICKLE_WINDOW_S)
    url = f"{base}/{name}"
    with pytest.raises(WeightsUnavailableError) as e:
        resolve_weights_file(url, "MODEL.WEIGHTS")
    msg = str(e.value)
    assert URL_CASES[name] in msg and url in msg and "\n" not in msg, msg
    assert not [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def test_hostile_pkl_by_url_is_refused(answers, tmp_path):
    base, files, _ = answers
    marker = tmp_path / "pwned"
    files["zoo.pkl"] = open(_hostile_pkl(tmp_path / "zoo.pkl", marker, "os.system"), "rb").read()
    with pytest.raises(WeightsError, match="refused") as e:
        SafeDetectionCheckpointer(_TinyBackbone()).load(f"{base}/zoo.pkl")
    assert f"{base}/zoo.pkl" in str(e.value) and not marker.exists()


def test_good_pkl_by_url_loads_and_is_cached(answers, tmp_path):
    base, files, cache = answers
    weight = np.ones((4, 3, 3, 3), np.float32)
    files["R-tiny.pkl"] = _zoo_files(tmp_path, weight)["c2_bare"].read_bytes()
    model = _TinyBackbone()
    SafeDetectionCheckpointer(model).load(f"{base}/R-tiny.pkl")
    assert torch.equal(model.stem.conv1.weight, torch.ones(4, 3, 3, 3))
    assert (cache / "w" / "R-tiny.pkl").is_file()


def test_downloaded_html_already_in_the_cache_is_recognised_at_load(answers, wish):
    """A page cached by an older version (or by iopath itself) is still named as HTML when loaded."""
    base, _, cache = answers
    (cache / "w").mkdir(parents=True)
    (cache / "w" / "old.pth").write_bytes(b"<html>expired link</html>")
    with pytest.raises(WeightsError, match="HTML page") as e:
        load_eval_weights(build_model(wish[0]), f"{base}/old.pth")
    assert f"{base}/old.pth" in str(e.value)

