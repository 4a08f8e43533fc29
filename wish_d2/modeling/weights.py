"""Where frozen-model weights come from: a local file, or an http(s) URL that Detectron2's ``PathManager`` (iopath)
downloads once and caches (``$FVCORE_CACHE``, default ``~/.torch/iopath_cache``), the same way ``MODEL.WEIGHTS``
is resolved by ``DetectionCheckpointer``.

Downloads never hang: every socket operation of a download times out after :data:`DOWNLOAD_TIMEOUT_S` seconds. In
offline mode (``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``, the switches the Hugging Face stack already
honours) a URL that is not in the cache fails at once instead of trying the network. Every failure names the config
key and its value, so the user knows which line of the config to fix.
"""
import contextlib
import os
import socket
from typing import Optional
from urllib.parse import urlparse

from detectron2.utils.file_io import PathManager

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "HUB_PROBE_TIMEOUT_S",
    "WeightsUnavailableError",
    "is_url",
    "offline_mode",
    "hub_unreachable",
    "resolve_weights_file",
]

#: Seconds a download may wait on one socket operation (connect, or one read) before it fails.
DOWNLOAD_TIMEOUT_S = 60.0
#: Seconds to wait for a TCP connection to the Hugging Face hub before calling it unreachable.
HUB_PROBE_TIMEOUT_S = 5.0

_URL_PREFIXES = ("http://", "https://")
_TRUE = {"1", "ON", "YES", "TRUE"}


class WeightsUnavailableError(RuntimeError):
    """Weights named in the config could not be fetched (offline, unreachable, timed out, HTTP error)."""


def is_url(value: str) -> bool:
    return str(value).lower().startswith(_URL_PREFIXES)


def offline_mode() -> bool:
    """True when the user asked for no network: ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set now, or was
    set when ``huggingface_hub`` was imported (it reads them once, at import)."""
    if any(os.environ.get(k, "").upper() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.is_offline_mode())


def hub_unreachable() -> Optional[str]:
    """Why the Hugging Face hub (``HF_ENDPOINT``) cannot be reached, or ``None`` if a TCP connection opens.

    Without network the hub client retries every file with backoff (about 25 s per file) before it gives up; one
    short connection attempt first lets a load fail in seconds, or use the local cache. Behind an HTTP(S) proxy a
    direct connection says nothing, so the probe is skipped there.
    """
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return None
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S):
            return None
    except OSError as e:  # DNS failure, refused, unreachable network, timeout
        return f"the Hugging Face hub {url.scheme}://{host}:{port} is unreachable ({type(e).__name__}: {e})"


@contextlib.contextmanager
def socket_timeout(seconds: float):
    """iopath downloads with ``urllib.request.urlretrieve``, which has no timeout argument and uses the socket
    default; set that default for the duration of one download only."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _iopath_cached_file(url: str) -> str:
    """Where iopath's ``HTTPURLHandler`` caches ``url`` (its cache dir + the URL's path), so offline mode can use a
    cached download without touching the network."""
    from iopath.common.file_io import get_cache_dir

    return os.path.join(get_cache_dir(), urlparse(url).path.lstrip("/"))


def resolve_weights_file(value: str, key: str, hint: str = "") -> str:
    """Local file for the weights ``value`` of config key ``key``: a local path (``~`` expanded) or an http(s) URL
    downloaded and cached through Detectron2's ``PathManager``.

    Raises:
        FileNotFoundError: a local path that does not exist.
        WeightsUnavailableError: a URL that cannot be fetched (offline and not cached, connection refused, timeout,
            HTTP error).
    """
    value = str(value)
    suffix = f" {hint}" if hint else ""
    if not is_url(value):
        path = os.path.expanduser(value)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{key}: weights file not found: {path}.{suffix}")
        return path
    if offline_mode():
        cached = _iopath_cached_file(value)
        if os.path.isfile(cached):
            return cached
        raise WeightsUnavailableError(
            f"{key}={value!r}: offline mode (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) and not in the download cache "
            f"({cached}); download it once with network access.{suffix}"
        )
    try:
        with socket_timeout(DOWNLOAD_TIMEOUT_S):
            path = PathManager.get_local_path(value)
    except (OSError, ValueError) as e:  # URLError, HTTPError, socket.timeout, refused connections are all OSError
        raise WeightsUnavailableError(
            f"{key}={value!r}: download failed ({type(e).__name__}: {e}); check the URL and the network.{suffix}"
        ) from e
    if not os.path.isfile(path):
        raise WeightsUnavailableError(f"{key}={value!r}: download gave no file ({path}).{suffix}")
    return path
