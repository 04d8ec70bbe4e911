"""Payload validation against the official OCPP JSON schemas shipped in the `ocpp` package.

The package's own `validate_payload` is slow (≈200 µs per payload plus a thread hop);
we read its schema files as data and compile each once with fastjsonschema (≈10 µs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Callable, Literal

import fastjsonschema

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
def _compiled(version: str, action: str, kind: Kind) -> Callable[[Any], Any]:
    # use_default=False: validation must never modify the payload it checks.
    return fastjsonschema.compile(schema(version, action, kind), use_default=False)


def validate(version: str, action: str, kind: Kind, payload: Any) -> SchemaViolation | None:
    """Return the first violation of the official schema, or None when the payload is valid.

    Raises UnknownAction when the version has no such action.
    """
    check = _compiled(version, action, kind)
    try:
        check(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        path = _dotted(exc.path or [])
        return SchemaViolation(path=path, message=_clean(exc.message, exc.name), rule=exc.rule or "")
    return None


def _dotted(path: list[Any] | str) -> str:
    if isinstance(path, str):
        return path[len("data"):].lstrip(".") if path.startswith("data") else path
    parts = [str(p) for p in path]
    if parts and parts[0] == "data":
        parts = parts[1:]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


def _clean(message: str, name: str) -> str:
    # fastjsonschema phrases messages as "data.x.y must be ..."; the path is reported apart.
    return message.replace(name, "value", 1) if name and message.startswith(name) else message
