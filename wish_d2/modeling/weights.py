"""Where frozen-model weights come from: a local file, or an http(s) URL downloaded once into the cache of
Detectron2's ``PathManager`` (iopath; ``$FVCORE_CACHE``, default ``~/.torch/iopath_cache``), where ``PathManager``
finds it again.

Downloads never hang: a URL is fetched by :mod:`.download` (connect and read timeouts, a minimum rate, HTML answers
recognised). In offline mode (``HF_HUB_OFFLINE=1`` or ``TRANSFORMERS_OFFLINE=1``, the switches the Hugging Face stack
already honours) a URL that is not in the cache fails at once instead of trying the network. Every failure names the
config key and its value, so the user knows which line of the config to fix; every failure is a
:class:`WeightsError`, which the tools report in one line (exit status 2).
"""
import contextlib
import os
import socket
from typing import Optional
from urllib.parse import urlparse

from .download import DownloadError, cached_path, download_to_cache

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "MissingWeightsError",
    "UnreadableWeightsError",
    "WeightsError",
    "HUB_PROBE_TIMEOUT_S",
    "WeightsUnavailableError",
    "is_url",
    "offline_mode",
    "hub_unreachable",
    "resolve_weights_file",
]

#: Seconds an open_clip / Hugging Face hub download may wait on one socket operation before it fails.
DOWNLOAD_TIMEOUT_S = 60.0
#: Seconds to wait for a TCP connection to the Hugging Face hub before calling it unreachable.
HUB_PROBE_TIMEOUT_S = 5.0

_URL_PREFIXES = ("http://", "https://")
_TRUE = {"1", "ON", "YES", "TRUE"}


class WeightsError(ValueError):
    """A weights file or URL named in the config or on the command line cannot be used: missing, unreadable,
    unsafe, or of another model. Tools report it in one line and exit with status 2."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """A local weights path that does not exist."""


class WeightsUnavailableError(WeightsError, RuntimeError):
    """Weights named in the config could not be fetched (offline, unreachable, timed out, HTTP error, HTML page)."""


class UnreadableWeightsError(WeightsError, RuntimeError):
    """A weights file exists but is not a checkpoint this model can load (corrupt, truncated, another format)."""


def is_url(value: str) -> bool:
    return str(value).lower().startswith(_URL_PREFIXES)


def model_zoo_url(value: str) -> str:
    """``detectron2://NAME`` (Detectron2's model-zoo shorthand) as the https URL it stands for; other values as
    they are."""
    from detectron2.utils.file_io import Detectron2Handler

    value = str(value)
    if value.startswith(Detectron2Handler.PREFIX):
        return Detectron2Handler.S3_DETECTRON2_PREFIX + value[len(Detectron2Handler.PREFIX):]
    return value


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
    """Downloads that take no timeout argument (open_clip's hub fetch) use the socket default; set that default for
    the duration of one download only."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def resolve_weights_file(value: str, key: str, hint: str = "") -> str:
    """Local file for the weights ``value`` of config key ``key``: a local path (``~`` expanded), or an http(s) URL
    or ``detectron2://`` model-zoo name downloaded (:func:`.download.download_to_cache`) into the cache Detectron2's
    ``PathManager`` uses.

    Raises:
        MissingWeightsError: a local path that does not exist (a ``FileNotFoundError``).
        WeightsUnavailableError: a URL that cannot be fetched (offline and not cached, connection refused, timeout,
            too slow, HTTP error, an HTML page).
    """
    value = model_zoo_url(value)
    suffix = f" {hint}" if hint else ""
    if not is_url(value):
        path = os.path.expanduser(value)
        if not os.path.isfile(path):
            raise MissingWeightsError(f"{key}: weights file not found: {path}.{suffix}")
        return path
    if offline_mode():
        cached = cached_path(value)
        if os.path.isfile(cached):
            return cached
        raise WeightsUnavailableError(
            f"{key}={value!r}: offline mode (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) and not in the download cache "
            f"({cached}); download it once with network access.{suffix}"
        )
    try:
        return download_to_cache(value)
    except DownloadError as e:
        raise WeightsUnavailableError(
            f"{key}={value!r}: download failed ({e}); check the URL and the network.{suffix}") from e
