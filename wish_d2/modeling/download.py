"""Downloading one weights URL into iopath's cache, bounded in time.

iopath (Detectron2's ``PathManager``) downloads with ``urllib.request.urlretrieve``: no timeout of its own, no
minimum rate, and any answer, an HTML login or error page included, is cached as the weights file. Here the same
cache location and lock are used, so ``PathManager`` and offline mode find the file, but:

* ``urlopen``'s timeout bounds the connection and every single read (:data:`SOCKET_TIMEOUT_S`);
* a watchdog thread ends a download that receives less than :data:`MIN_RATE_BYTES_PER_S` over any
  :data:`RATE_WINDOW_S` seconds, headers included (a server that trickles bytes never trips a socket timeout);
* an HTML answer (its ``Content-Type`` or its first bytes), an empty body, and a body shorter than its
  ``Content-Length`` are errors;
* the file appears in the cache only when complete (written beside it, then renamed).
"""
import hashlib
import http.client
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Optional
from urllib.parse import urlparse

__all__ = ["DownloadError", "SOCKET_TIMEOUT_S", "MIN_RATE_BYTES_PER_S", "RATE_WINDOW_S", "cached_path",
           "download_to_cache", "looks_like_html"]

#: Seconds to wait for the connection, and for each read, before a download fails.
SOCKET_TIMEOUT_S = 60.0
#: Slowest average rate a download may keep up over :data:`RATE_WINDOW_S` seconds (a trickle is a failure).
MIN_RATE_BYTES_PER_S = 8 * 1024
#: Length of the window over which the rate is measured; also the longest wait for the server's answer.
RATE_WINDOW_S = 60.0
_CHUNK = 1 << 16
_MAX_FILENAME_LEN = 250  # iopath's limit on cached file names


class DownloadError(OSError):
    """The URL gave no usable file: HTTP error, timeout, too slow, cut short, empty, or an HTML page."""


def looks_like_html(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file or answer) starts an HTML document."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml"))


def cached_path(url: str) -> str:
    """Where iopath's ``HTTPURLHandler`` caches ``url``: its cache folder + the URL's path."""
    from iopath.common.file_io import get_cache_dir

    parsed = urlparse(url)
    folder = os.path.join(get_cache_dir(), os.path.dirname(parsed.path.lstrip("/")))
    name = url.split("/")[-1] or "index"
    if len(name) > _MAX_FILENAME_LEN:  # iopath names these randomly (never found again); a hash keeps them cached
        name = name[:100] + "_" + hashlib.sha1(url.encode()).hexdigest()
    return os.path.join(folder, name)


class _Watchdog(threading.Thread):
    """Shuts the download's socket when fewer than ``min_bytes`` arrive in a window of ``window`` seconds; the
    blocked read then fails and :attr:`reason` says why."""

    def __init__(self, min_rate: float, window: float):
        super().__init__(daemon=True)
        self.min_bytes, self.window = min_rate * window, window
        self.received = 0
        self.sock: Optional[socket.socket] = None
        self.reason = ""
        self._stop_event = threading.Event()

    def run(self):
        start, at_start = time.monotonic(), 0
        while not self._stop_event.wait(min(0.1, self.window / 4)):
            now = time.monotonic()
            if now - start < self.window:
                continue
            if self.received - at_start < self.min_bytes:
                self.reason = (f"no data within {self.window:g} s" if not self.received else
                               f"fewer than {self.min_bytes / self.window / 1024:g} KiB/s over {self.window:g} s "
                               f"({self.received} bytes in all)")
                if self.sock is not None:
                    try:
                        self.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            start, at_start = now, self.received

    def stop(self):
        self._stop_event.set()


def _watched(base, watchdog: _Watchdog):
    """``base`` (an ``http.client`` connection class) that hands its socket to ``watchdog`` once connected."""

    class Connection(base):
        def connect(self):
            super().connect()
            watchdog.sock = self.sock

    return Connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog):
        super().__init__()
        self.watchdog = watchdog

    def http_open(self, req):
        return self.do_open(_watched(http.client.HTTPConnection, self.watchdog), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watchdog):
        super().__init__()
        self.watchdog = watchdog

    def https_open(self, req):
        return self.do_open(_watched(http.client.HTTPSConnection, self.watchdog), req,
                            context=self._context)


def _fetch(url: str, out, watchdog: _Watchdog) -> int:
    """Write the body of ``url`` to the open file ``out``; returns its size."""
    opener = urllib.request.build_opener(_HTTPHandler(watchdog), _HTTPSHandler(watchdog))
    with opener.open(url, timeout=SOCKET_TIMEOUT_S) as answer:
        kind = answer.headers.get_content_type()
        if kind in ("text/html", "application/xhtml+xml"):
            raise DownloadError(f"the server answered an HTML page (Content-Type: {kind}), not a weights file")
        expected = answer.headers.get("Content-Length")
        size = 0
        while True:
            chunk = answer.read1(_CHUNK)  # whatever has arrived: a trickle cannot block a whole chunk
            if not chunk:
                break
            if size == 0 and looks_like_html(chunk[:256]):
                raise DownloadError("the server answered an HTML page, not a weights file")
            out.write(chunk)
            size += len(chunk)
            watchdog.received = size
    if expected is not None and expected.isdigit() and size < int(expected):
        raise DownloadError(f"the connection closed after {size} of {expected} bytes")
    if size == 0:
        raise DownloadError("the server answered with an empty body")
    return size


def download_to_cache(url: str) -> str:
    """Local file of ``url`` in iopath's cache, downloaded now if it is not there yet.

    Raises:
        DownloadError: with a one-line reason (HTTP status, timeout, too slow, cut short, empty, HTML).
    """
    from iopath.common.file_io import file_lock

    path = cached_path(url)
    if os.path.isfile(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with file_lock(path):
        if os.path.isfile(path):  # another process finished it while we waited for the lock
            return path
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path)[:50] + ".", suffix=".part",
                                   dir=os.path.dirname(path))
        watchdog = _Watchdog(MIN_RATE_BYTES_PER_S, RATE_WINDOW_S)
        watchdog.start()
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, watchdog)
            os.replace(tmp, path)
        except (OSError, http.client.HTTPException, ValueError) as e:  # DownloadError is an OSError
            if watchdog.reason:  # the watchdog cut it: whatever the read then saw, the cause is the rate
                raise DownloadError(f"too slow: {watchdog.reason}") from e
            raise e if isinstance(e, DownloadError) else DownloadError(_describe(e)) from e
        finally:
            watchdog.stop()
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def _describe(e: BaseException) -> str:
    """One line for a urllib / socket / http.client failure."""
    if isinstance(e, http.client.IncompleteRead):
        return f"the connection closed after {len(e.partial)} bytes, {e.expected} short of the announced size"
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP Error {e.code}: {e.reason}"
    reason = getattr(e, "reason", None)
    if isinstance(e, urllib.error.URLError) and reason is not None:
        e = reason if isinstance(reason, BaseException) else e
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"timed out (no answer within {SOCKET_TIMEOUT_S:g} s)"
    return f"{type(e).__name__}: {e}"

