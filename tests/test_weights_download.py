"""Weights by URL, open_clip tag and Hugging Face repo id, without internet: a local HTTP server on 127.0.0.1
serves tiny checkpoints; a closed port, a silent server and offline mode must fail fast with the key and value."""
import functools
import http.server
import socket
import threading

import pytest
import torch
import torch.nn as nn

from detectron2.config import get_cfg

from wish_d2 import add_wish_config
from wish_d2.modeling import download, weights
from wish_d2.modeling.checkpointer import SafeDetectionCheckpointer
from wish_d2.modeling.clip_encoder import build_clip_encoder, build_open_clip
from wish_d2.modeling.segmenters import build_sam, load_grounding_dino
from wish_d2.modeling.weights import WeightsUnavailableError, resolve_weights_file

CLIP_NAME = "WISH-Test-ViT"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server:
    """``http.server`` on a random 127.0.0.1 port serving ``folder``; counts the GET requests."""

    def __init__(self, folder):
        server = self
        self.requests = 0

        class Handler(_QuietHandler):
            def do_GET(self):
                server.requests += 1
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def iopath_cache_in_tmp(tmp_path, monkeypatch):
    """PathManager (iopath) caches downloads under $FVCORE_CACHE: a tmp dir, never $HOME."""
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "iopath_cache"))


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(folder served over HTTP, server), in online mode."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    folder = tmp_path / "www"
    (folder / "weights").mkdir(parents=True)
    server = _Server(str(folder))
    yield folder / "weights", server
    server.close()


@pytest.fixture
def closed_port() -> int:
    """A local port that refuses connections for the whole test: bound, so no other process can take it between
    here and the connection, and never listening, so the kernel answers a connect with a reset."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _cfg():
    cfg = get_cfg()
    add_wish_config(cfg)
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def _assert_same_state(model: nn.Module, saved: dict):
    state = model.state_dict()
    assert set(state) == set(saved)
    assert all(torch.equal(state[k], saved[k]) for k in saved)


# ------------------------------------------------------------------------------------------------ URLs (PathManager)
def test_clip_pretrained_url_loads_the_served_weights_and_caches_them(served, tmp_path):
    folder, server = served
    saved = build_open_clip(CLIP_NAME, init_seed=7).state_dict()
    torch.save(saved, folder / "tiny_clip.pth")
    cfg = _cfg()
    cfg.MODEL.WISH.CLIP.MODEL_NAME = CLIP_NAME
    cfg.MODEL.WISH.CLIP.PRETRAINED = f"{server.url}/weights/tiny_clip.pth"
    enc = build_clip_encoder(cfg)
    _assert_same_state(enc.model, saved)
    assert (tmp_path / "iopath_cache" / "weights" / "tiny_clip.pth").is_file()  # PathManager's cache, not $HOME
    server.close()  # a second build reads the cache: no request, even with the server gone
    requests = server.requests
    _assert_same_state(build_clip_encoder(cfg).model, saved)
    assert server.requests == requests == 1


def test_sam_checkpoint_url(served):
    folder, server = served
    saved = build_sam("tiny", init_seed=3).state_dict()
    torch.save(saved, folder / "sam_tiny.pth")
    sam = build_sam("tiny", f"{server.url}/weights/sam_tiny.pth", init_seed=0)  # another init, then the checkpoint
    _assert_same_state(sam, saved)
    assert not any(p.requires_grad for p in sam.parameters())


def test_model_weights_url_through_detection_checkpointer(served):
    """MODEL.WEIGHTS by URL: the project's checkpointer downloads into the cache Detectron2's PathManager uses."""
    folder, server = served
    torch.manual_seed(0)
    src = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    torch.save({"model": src.state_dict()}, folder / "model_final.pth")
    torch.manual_seed(1)
    dst = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    SafeDetectionCheckpointer(dst).load(f"{server.url}/weights/model_final.pth")
    _assert_same_state(dst, src.state_dict())


def test_missing_url_names_key_and_value(served):
    _, server = served
    url = f"{server.url}/weights/nope.pth"
    with pytest.raises(WeightsUnavailableError) as e:
        build_sam("tiny", url)
    assert "MODEL.WISH.SEGMENTER.SAM_CHECKPOINT" in str(e.value) and url in str(e.value) and "404" in str(e.value)


def test_closed_port_fails_at_once(closed_port):
    url = f"http://127.0.0.1:{closed_port}/clip.pth"
    with pytest.raises(WeightsUnavailableError) as e:
        build_open_clip(CLIP_NAME, pretrained=url)
    msg = str(e.value)
    assert "MODEL.WISH.CLIP.PRETRAINED" in msg and url in msg and "refused" in msg.lower()


def test_silent_server_times_out(monkeypatch, tmp_path):
    """A server that accepts the connection and never answers: the download gives up after the socket timeout."""
    monkeypatch.setattr(download, "SOCKET_TIMEOUT_S", 0.3)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/sam.pth"
        with pytest.raises(WeightsUnavailableError, match="timed out") as e:
            resolve_weights_file(url, "MODEL.WISH.SEGMENTER.SAM_CHECKPOINT")
    assert url in str(e.value)
    assert socket.getdefaulttimeout() is None  # the process-wide default is restored
    cache = tmp_path / "iopath_cache"
    assert [p.name for p in cache.glob("sam.pth*")] in ([], ["sam.pth.lock"])  # nothing half-written kept


def test_offline_uses_the_cache_and_fails_fast_without_it(served, monkeypatch):
    folder, server = served
    saved = build_sam("tiny", init_seed=5).state_dict()
    torch.save(saved, folder / "sam_tiny.pth")
    url = f"{server.url}/weights/sam_tiny.pth"
    build_sam("tiny", url)  # online: downloaded into the cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _assert_same_state(build_sam("tiny", url, init_seed=9), saved)  # offline: the cached copy
    missing = f"{server.url}/weights/never_downloaded.pth"
    requests = server.requests
    with pytest.raises(WeightsUnavailableError) as e:
        build_sam("tiny", missing)
    assert server.requests == requests  # no network attempt at all
    assert "offline" in str(e.value) and missing in str(e.value) and "SAM_CHECKPOINT" in str(e.value)


# ------------------------------------------------------------------------------------- open_clip tags, HF repo ids
@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    """Hugging Face offline mode with an empty hub cache in tmp (the hub reads HF_HUB_OFFLINE at import, so the
    test flips its constant as well as the environment)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf_hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_clip_tag_offline_and_not_cached_fails_fast(hf_offline):
    with pytest.raises(WeightsUnavailableError) as e:
        build_open_clip("ViT-B-16", pretrained="laion2b_s34b_b88k")
    msg = str(e.value)
    assert "MODEL.WISH.CLIP.PRETRAINED='laion2b_s34b_b88k'" in msg and "ViT-B-16" in msg


def test_clip_tag_goes_through_open_clip_cache(hf_offline, monkeypatch):
    """A tag resolves through open_clip's own pretrained table and hub cache: register a tag for the tiny test ViT
    whose weights sit in the (offline) hub cache, and check they are the ones loaded, with the tag's mean/std."""
    import open_clip
    from open_clip import pretrained as oc_pretrained

    saved = build_open_clip(CLIP_NAME, init_seed=11).state_dict()
    snapshot = hf_offline / "models--wish-test--tiny-clip" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (hf_offline / "models--wish-test--tiny-clip" / "refs").mkdir()
    (hf_offline / "models--wish-test--tiny-clip" / "refs" / "main").write_text("0" * 40)
    torch.save(saved, snapshot / "open_clip_pytorch_model.bin")
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    monkeypatch.setitem(oc_pretrained._PRETRAINED, CLIP_NAME,
                        {"tinytag": {"hf_hub": "wish-test/tiny-clip/", "mean": mean, "std": std}})
    assert "tinytag" in open_clip.list_pretrained_tags_by_model(CLIP_NAME)
    model = build_open_clip(CLIP_NAME, pretrained="tinytag", init_seed=0)
    _assert_same_state(model, saved)
    assert tuple(open_clip.get_model_preprocess_cfg(model)["mean"]) == mean
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_unknown_clip_value_lists_the_tags(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        build_open_clip("ViT-B-16", pretrained="laion_typo")
    assert "laion_typo" in str(e.value) and "laion2b_s34b_b88k" in str(e.value)


def test_gdino_fake_repo_id_offline_fails_fast(hf_offline):
    with pytest.raises(RuntimeError) as e:
        load_grounding_dino("wish-test/no-such-grounding-dino")
    msg = str(e.value)
    assert "MODEL.WISH.SEGMENTER.GDINO_PATH='wish-test/no-such-grounding-dino'" in msg and "repo id" in msg


def test_gdino_value_that_is_neither_folder_nor_repo_id(tmp_path):
    with pytest.raises(FileNotFoundError, match="GDINO_PATH"):
        load_grounding_dino(str(tmp_path / "missing" / "gdino"))


@pytest.fixture
def hub_down(tmp_path, monkeypatch, closed_port):
    """Online mode, but the hub endpoint is a closed local port (no network): loads must not retry for minutes."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_hub"))
    assert weights.hub_unreachable() is not None


def test_clip_tag_with_unreachable_hub_fails_fast(hub_down):
    with pytest.raises(WeightsUnavailableError) as e:
        build_open_clip("ViT-B-16", pretrained="laion2b_s34b_b88k")
    msg = str(e.value)
    assert "MODEL.WISH.CLIP.PRETRAINED='laion2b_s34b_b88k'" in msg and "unreachable" in msg and "HF_HUB_OFFLINE" in msg


def test_gdino_repo_id_with_unreachable_hub_reads_the_cache_only(hub_down):
    with pytest.raises(RuntimeError) as e:
        load_grounding_dino("wish-test/no-such-grounding-dino")
    msg = str(e.value)
    assert "GDINO_PATH='wish-test/no-such-grounding-dino'" in msg and "unreachable" in msg and "cache only" in msg
