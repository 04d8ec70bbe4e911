"""The reference EXI codec (PyPI iso15118's EXIficient jar) as a context manager.

The codec runs in a worker process started with the separate iso15118 venv's python
(scripts/iso15118_venv.sh makes it); we talk to it with JSON lines over pipes, so the
package's pinned dependencies never meet ours.

    with ReferenceExi() as ref:
        exi = ref.encode("iso2", {"V2G_Message": {...}})
        msg = ref.decode("iso2", exi)
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from harness.iso15118.reference import environment
from harness.iso15118.reference.canonical import from_codec_json, to_codec_json
from harness.iso15118.reference.xsd_model import SchemaSet, load_schema

SCHEMAS = ("app", "din", "iso2", "iso20", "iso20_dc", "iso20_ac")
WORKER_SCRIPT = Path(__file__).resolve().parents[1] / "reference_worker" / "exi_worker.py"


class ReferenceUnavailable(RuntimeError):
    """The iso15118 venv or Java is missing (the message says which and how to fix it)."""


class ReferenceError(RuntimeError):
    """The reference codec rejected a message or did not answer in time."""


def reference_available() -> str | None:
    """None when the reference codec can run here, else the reason it cannot."""
    return environment.missing_reason(need_java=True)


class ReferenceExi:
    """A long-lived reference codec worker; use as a context manager."""

    def __init__(self, start_timeout: float = 60.0, request_timeout: float = 20.0) -> None:
        self.start_timeout = start_timeout
        self.request_timeout = request_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._next_id = 0
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self.info: dict[str, Any] = {}

    # -- life cycle ------------------------------------------------------------------------
    def __enter__(self) -> ReferenceExi:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self) -> None:
        reason = reference_available()
        if reason:
            raise ReferenceUnavailable(reason)
        env = environment.java_env({k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
        self._proc = subprocess.Popen(
            [str(environment.venv_python()), "-E", "-s", str(WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
            env=env,
            cwd=tempfile.gettempdir(),  # the package reads a .env from its cwd
        )
        threading.Thread(target=self._read_stdout, daemon=True).start()
        try:
            self.info = self._request({"op": "hello"}, self.start_timeout)
        except ReferenceError:
            self.close()
            raise

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=5)

    def worker_log(self) -> str:
        """What the worker (and the JVM it drives) printed on stderr, for error reports."""
        self._stderr.seek(0)
        return self._stderr.read()

    # -- codec -----------------------------------------------------------------------------
    def schema(self, name: str) -> SchemaSet:
        if name not in SCHEMAS:
            raise ValueError(f"unknown schema {name!r}; known: {', '.join(SCHEMAS)}")
        return load_schema(self.info["schemas_dir"], name)

    def encode(self, schema: str, message: dict) -> bytes:
        """Canonical dict -> EXI bytes, as the reference package would put on the wire."""
        codec_json = to_codec_json(self.schema(schema), message)
        return self.encode_codec_json(schema, json.dumps(codec_json))

    def decode(self, schema: str, exi: bytes) -> dict:
        """EXI bytes -> canonical dict."""
        return from_codec_json(self.schema(schema), json.loads(self.decode_codec_json(schema, exi)))

    def encode_codec_json(self, schema: str, text: str) -> bytes:
        """The jar's own JSON text -> EXI bytes (no canonical translation)."""
        answer = self._request({"op": "encode", "schema": schema, "json": text})
        return bytes.fromhex(answer["exi_hex"])

    def decode_codec_json(self, schema: str, exi: bytes) -> str:
        """EXI bytes -> the jar's own JSON text (no canonical translation)."""
        answer = self._request({"op": "decode", "schema": schema, "exi_hex": bytes(exi).hex()})
        return answer["json"]

    # -- worker pipe -----------------------------------------------------------------------
    def _read_stdout(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            self._lines.put(line)
        self._lines.put(None)  # EOF: the worker died or was closed

    def _request(self, req: dict, timeout: float | None = None) -> dict:
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None:
                raise ReferenceError("the reference codec worker is not running")
            self._next_id += 1
            req_id = self._next_id
            try:
                proc.stdin.write(json.dumps({**req, "id": req_id}) + "\n")
                proc.stdin.flush()
            except OSError as exc:
                raise ReferenceError(f"worker pipe broken: {exc}; log:\n{self.worker_log()}") from exc
            wait = timeout if timeout is not None else self.request_timeout
            try:
                line = self._lines.get(timeout=wait)
            except queue.Empty:
                proc.kill()
                self._proc = None
                raise ReferenceError(f"no answer from the reference codec within {wait} s") from None
            if line is None:
                self._proc = None
                raise ReferenceError(f"the reference codec worker exited; log:\n{self.worker_log()}")
            answer = json.loads(line)
            if answer.get("id") != req_id:
                raise ReferenceError(f"out-of-order answer {answer.get('id')} for request {req_id}")
            if not answer.get("ok"):
                raise ReferenceError(f"{req['op']} failed: {answer.get('error')}")
            return answer
