"""The test network's file server and the station simulator's HTTP client (NOT a feature module).

Firmware updates and log uploads are real HTTP transfers. Test cases cannot start a server
(the case engine has no step for it) and cannot learn a port chosen at run time, so the
simulators' test network has one well-known host name, `files.harness.invalid` (RFC 6761:
`.invalid` never resolves on a real network). The station simulator's client maps that host
to a loopback HTTP server in this process — like a hosts-file entry — and every other URL is
fetched as written. So a case says `http://files.harness.invalid/firmware/refsim-2.0.0.bin`
and the simulator really downloads those bytes over TCP on 127.0.0.1, while a real station
under test would be given a real URL (see the cases' `vars:`).

Server paths:
  GET  /firmware/refsim-2.0.0.bin            the good image (signed: GOOD_SIGNATURE)
  GET  /firmware/refsim-2.0.0-tampered.bin   the good image altered after signing
  GET  /firmware/other-model-2.0.0.bin       validly signed, built for another model
  GET  /slow/firmware/<name>                 as /firmware/<name>, after SLOW_S (a download in progress)
  GET  anything else                         404 (a download that fails)
  PUT/POST /logs/<name>, /diagnostics/<name> 201, stored (see `uploads`)
  PUT/POST /slow/logs/<name>                 as /logs/<name>, after SLOW_S (an upload in progress)
  PUT/POST /denied/<name>                    403 (an upload that fails)
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import _firmware_images as images

REPO_HOST = "files.harness.invalid"
MAX_UPLOAD_BYTES = 4 * 1024 * 1024
SLOW_S = 3.0                            # how long a /slow/ transfer takes: time to trigger a status meanwhile
SLOW_PREFIX = "/slow"

FILES: dict[str, bytes] = {
    "/firmware/refsim-2.0.0.bin": images.GOOD_IMAGE,
    "/firmware/refsim-2.0.0-tampered.bin": images.TAMPERED_IMAGE,
    "/firmware/other-model-2.0.0.bin": images.OTHER_MODEL_IMAGE,
}
UPLOAD_DIRS = ("/logs/", "/diagnostics/")
DENIED_DIR = "/denied/"

uploads: dict[str, bytes] = {}          # path → last body stored (tests and debugging)


class TransferError(Exception):
    """A download or upload that did not succeed (the reason is the message)."""


class _Handler(BaseHTTPRequestHandler):
    server_version = "ChargerHarnessFiles/1"

    def log_message(self, format: str, *args: object) -> None:   # keep test output quiet
        pass

    def _path(self) -> str:
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith(SLOW_PREFIX + "/"):
            time.sleep(SLOW_S)                          # a worker thread of its own: nothing else waits
            path = path[len(SLOW_PREFIX):]
        return path

    def do_GET(self) -> None:
        body = FILES.get(self._path())
        if body is None:
            self.send_error(404, "no such file")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _store(self) -> None:
        path = self._path()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_UPLOAD_BYTES:
            self.send_error(413, "too large")
            return
        body = self.rfile.read(length) if length else b""
        if path.startswith(DENIED_DIR):
            self.send_error(403, "upload not permitted here")
            return
        if not path.startswith(UPLOAD_DIRS) or path.endswith("/"):
            self.send_error(404, "no upload location")
            return
        uploads[path] = body
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = _store
    do_POST = _store


_server: ThreadingHTTPServer | None = None
_lock = threading.Lock()


def port() -> int:
    """The loopback port of this process's file server (started on first use, a daemon thread)."""
    global _server
    with _lock:
        if _server is None:
            _server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            _server.daemon_threads = True
            threading.Thread(target=_server.serve_forever, name="harness-file-repository", daemon=True).start()
        return int(_server.server_address[1])


def resolve(url: str) -> str:
    """The URL to connect to: the test network's host name → the loopback server."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TransferError(f"unsupported transfer protocol {parts.scheme or '(none)'!r} in {url!r}")
    if parts.hostname == REPO_HOST:
        return urllib.parse.urlunsplit(("http", f"127.0.0.1:{port()}", parts.path, parts.query, ""))
    return url


def join(location: str, file_name: str) -> str:
    """Where a file named `file_name` goes for an upload `location` (a directory URL ends in '/')."""
    return location + file_name if location.endswith("/") else location


# The loopback server must never be reached through an HTTP proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _open(url: str, timeout: float, data: bytes | None = None) -> bytes:
    target = resolve(url)
    req = urllib.request.Request(target, data=data, method="GET" if data is None else "PUT",
                                 headers={} if data is None else {"Content-Type": "application/octet-stream"})
    local = urllib.parse.urlsplit(target).hostname in ("127.0.0.1", "::1", "localhost")
    opener = _DIRECT if local else urllib.request.build_opener()
    with opener.open(req, timeout=timeout) as resp:                              # noqa: S310 (http/https only)
        return bytes(resp.read(MAX_UPLOAD_BYTES * 4))


def _transfer(url: str, timeout: float, data: bytes | None = None) -> bytes:
    """GET (data None) or PUT `url`; TransferError with the reason when it does not succeed."""
    try:
        return _open(url, timeout, data)
    except urllib.error.HTTPError as exc:
        raise TransferError(f"HTTP {exc.code} for {url}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TransferError(f"{type(exc).__name__}: {exc}") from None


async def download(url: str, timeout: float = 5.0) -> bytes:
    """GET `url` (bounded by `timeout`); TransferError when it fails."""
    return await asyncio.wait_for(asyncio.to_thread(_transfer, url, timeout), timeout + 1.0)


async def upload(url: str, data: bytes, timeout: float = 5.0) -> None:
    """PUT `data` at `url` (bounded by `timeout`); TransferError when it fails."""
    await asyncio.wait_for(asyncio.to_thread(_transfer, url, timeout, data), timeout + 1.0)
