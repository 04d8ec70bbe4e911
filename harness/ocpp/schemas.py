"""Payload validation against the official OCPP JSON schemas shipped in the `ocpp` package.

The package's own `validate_payload` is slow (≈200 µs per payload plus a thread hop);
we read its schema files as data and compile each once with jsonschema-rs (a Rust
validator: ≈1.5 µs for a DC MeterValues, vs ≈30 µs for fastjsonschema measured here),
which keeps the harness within its round-trip overhead budget (bench/roundtrip.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import jsonschema_rs

Kind = Literal["request", "response"]
SUPPORTED_VERSIONS = ("1.6", "2.0.1")
SUBPROTOCOLS = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
VERSION_OF_SUBPROTOCOL = {v: k for k, v in SUBPROTOCOLS.items()}

_PACKAGE = {"1.6": "ocpp.v16.schemas", "2.0.1": "ocpp.v201.schemas"}


class UnknownAction(KeyError):
    """No schema exists for this action in this OCPP version."""


@dataclass(frozen=True)
class SchemaViolation:
    path: str          # e.g. "idTagInfo.status" ("" = the payload itself)
    message: str       # what rule was broken
    rule: str          # the JSON Schema keyword (enum, required, type, …)

    def __str__(self) -> str:
        where = self.path or "<payload>"
        return f"{where}: {self.message}"


def _file_name(version: str, action: str, kind: Kind) -> str:
    if version == "1.6":
        return f"{action}.json" if kind == "request" else f"{action}Response.json"
    return f"{action}Request.json" if kind == "request" else f"{action}Response.json"


@lru_cache(maxsize=None)
def actions(version: str) -> frozenset[str]:
    """All actions with a request schema in this version."""
    files = [p.name for p in resources.files(_PACKAGE[version]).iterdir() if p.name.endswith(".json")]
    if version == "1.6":
        return frozenset(f[:-5] for f in files if not f.endswith("Response.json"))
    return frozenset(f[: -len("Request.json")] for f in files if f.endswith("Request.json"))


@lru_cache(maxsize=None)
def schema(version: str, action: str, kind: Kind) -> dict[str, Any]:
    if version not in _PACKAGE:
        raise ValueError(f"unsupported OCPP version {version!r}; supported: {', '.join(SUPPORTED_VERSIONS)}")
    if action not in actions(version):
        raise UnknownAction(f"OCPP {version} has no action {action!r}")
    text = resources.files(_PACKAGE[version]).joinpath(_file_name(version, action, kind)).read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=None)
def _compiled(version: str, action: str, kind: Kind) -> Any:
    # The draft (04 for 1.6, 06 for 2.0.1) comes from the schema's own $schema keyword.
    return jsonschema_rs.validator_for(schema(version, action, kind), validate_formats=True)


def validate(version: str, action: str, kind: Kind, payload: Any) -> SchemaViolation | None:
    """Return the first violation of the official schema, or None when the payload is valid.

    Raises UnknownAction when the version has no such action.
    """
    validator = _compiled(version, action, kind)
    if validator.is_valid(payload):          # the fast path: no error objects built
        return None
    err = next(iter(validator.iter_errors(payload)))
    return SchemaViolation(path=_dotted(list(err.instance_path)), message=err.message, rule=_rule(err))


def _rule(err: Any) -> str:
    """The JSON Schema keyword that failed, e.g. "enum", "required", "additionalProperties"."""
    name = type(getattr(err, "kind", None)).__name__
    return name[:1].lower() + name[1:] if name and name != "NoneType" else ""


def _dotted(path: list[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out
