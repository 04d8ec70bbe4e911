"""EXI worker: the reference iso15118 package's own EXI codec behind a JSON-lines pipe.

Runs with the iso15118 venv's python (started by harness.iso15118.reference.exi), never in
the harness venv: the package pins cryptography/pydantic versions that clash with ours.

Protocol, one JSON object per line:
  -> {"id": 1, "op": "hello"}
  <- {"id": 1, "ok": true, "package_version": ..., "codec_version": ..., "schemas_dir": ...}
  -> {"id": 2, "op": "encode", "schema": "iso2", "json": "<the jar's JSON text>"}
  <- {"id": 2, "ok": true, "exi_hex": "..."}
  -> {"id": 3, "op": "decode", "schema": "iso2", "exi_hex": "..."}
  <- {"id": 3, "ok": true, "json": "<the jar's JSON text>"}
Any failure answers {"id": .., "ok": false, "error": "..."} and the worker keeps running.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, TextIO


def _protocol_stream() -> TextIO:
    """Keep the real stdout for the protocol only; anything else printed goes to stderr."""
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", buffering=1, encoding="utf-8")


def _namespaces() -> dict[str, str]:
    # The same namespaces the package hands its codec for each protocol.
    from iso15118.shared.messages.enums import Namespace

    return {
        "app": Namespace.SAP.value,
        "din": Namespace.DIN_MSG_DEF.value,
        "iso2": Namespace.ISO_V2_MSG_DEF.value,
        "iso20": Namespace.ISO_V20_COMMON_MSG.value,
        "iso20_dc": Namespace.ISO_V20_DC.value,
        "iso20_ac": Namespace.ISO_V20_AC.value,
        "iso20_wpt": Namespace.ISO_V20_WPT.value,
        "iso20_acdp": Namespace.ISO_V20_ACDP.value,
    }


class ExiService:
    """Dispatches requests to the package's default EXI codec (EXIficient jar via py4j)."""

    def __init__(self) -> None:
        from iso15118.shared.exi_codec import EXI

        # EXI() is the package's singleton; get_exi_codec() starts the same
        # ExificientEXICodec the SECC/EVCC use when no other codec is set.
        self.codec = EXI().get_exi_codec()
        self.namespaces = _namespaces()

    def namespace(self, schema: Any) -> str:
        if schema not in self.namespaces:
            raise ValueError(f"unknown schema {schema!r}; known: {sorted(self.namespaces)}")
        return self.namespaces[schema]

    def hello(self, _req: dict) -> dict:
        import importlib.metadata

        import iso15118.shared.schemas as schemas

        return {
            "package_version": importlib.metadata.version("iso15118"),
            "codec_version": str(self.codec.get_version()),
            "schemas_dir": os.path.dirname(os.path.abspath(schemas.__file__)),
            "namespaces": self.namespaces,
        }

    def encode(self, req: dict) -> dict:
        text = req.get("json")
        if not isinstance(text, str):
            raise ValueError("encode needs 'json' (a string)")
        exi = self.codec.encode(text, self.namespace(req.get("schema")))
        return {"exi_hex": bytes(exi).hex()}

    def decode(self, req: dict) -> dict:
        exi_hex = req.get("exi_hex")
        if not isinstance(exi_hex, str):
            raise ValueError("decode needs 'exi_hex' (a string)")
        text = self.codec.decode(bytes.fromhex(exi_hex), self.namespace(req.get("schema")))
        return {"json": str(text)}


def serve(inp: TextIO, out: TextIO) -> None:
    service = ExiService()
    ops: dict[str, Callable[[dict], dict]] = {
        "hello": service.hello,
        "encode": service.encode,
        "decode": service.decode,
    }
    for line in inp:
        if not line.strip():
            continue
        req_id = None
        try:
            req = json.loads(line)
            req_id = req.get("id")
            op = ops.get(req.get("op"))
            if op is None:
                raise ValueError(f"unknown op {req.get('op')!r}")
            answer = {"id": req_id, "ok": True, **op(req)}
        except Exception as exc:  # one bad request must not kill the worker
            answer = {"id": req_id, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main() -> int:
    out = _protocol_stream()
    serve(sys.stdin, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
