"""HTTP control endpoint of a standalone simulator: out-of-band actions from another process.

`charger-harness sim …` serves `POST /action/<name>` (JSON body = params) on loopback, so a
run pointed at a standalone simulator (adapter `sim` with `control_url`) can plug in an EV,
present a token or reboot it exactly as the embedded simulator is driven. The stdlib
server runs in a thread and hands each request to the simulator's event loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .api import Simulator, UnknownSimAction


class ControlServer:
    def __init__(self, sim: Simulator, loop: asyncio.AbstractEventLoop, host: str = "127.0.0.1", port: int = 0):
        self.sim, self.loop = sim, loop
        handler = self._make_handler()
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="sim-control", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ControlServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        control = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep the simulator's console quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                if not self.path.startswith("/action/"):
                    return self._answer(404, {"error": "use POST /action/<name>"})
                name = self.path[len("/action/"):]
                try:
                    length = int(self.headers.get("Content-Length", 0))
                    params = json.loads(self.rfile.read(length) or b"{}")
                    fut = asyncio.run_coroutine_threadsafe(control.sim.perform(name, params), control.loop)
                    result = fut.result(timeout=30)
                except UnknownSimAction as exc:
                    return self._answer(400, {"error": str(exc)})
                except Exception as exc:  # report, don't kill the simulator
                    return self._answer(500, {"error": f"{type(exc).__name__}: {exc}"})
                self._answer(200, {"ok": True, "result": result})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def remote_perform(control_url: str, action: str, params: dict[str, Any], timeout: float = 30) -> Any:
    """Client side: ask a standalone simulator to perform an action (blocking; run in a thread)."""
    req = urllib.request.Request(f"{control_url.rstrip('/')}/action/{action}", data=json.dumps(params).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback only)
            return json.loads(resp.read()).get("result")
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        if exc.code == 400:
            raise UnknownSimAction(detail) from None
        raise RuntimeError(f"simulator control: {detail}") from None
