"""Translate between the harness's canonical message dicts and the reference codec's JSON.

Canonical form (shared with the harness's own EXI codec): one top-level key, the global
element's local name; nested dicts keyed by local element/attribute names; elements that
may repeat are always lists; int for integer types, bool, str for strings and enums, bytes
for hexBinary/base64Binary; simple content with attributes as {"value": ..., "<attr>": ...};
an empty complex element is {}.

The reference jar's JSON differs only in values: hexBinary as upper-case hex text,
base64Binary as base64 text, and it may be lax about lists of one. The XSD tells which is which.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Callable

from harness.iso15118.reference.xsd_model import Child, ComplexInfo, SchemaSet


class CanonicalError(ValueError):
    """A message does not fit the schema (names the path of the offending element)."""


def to_codec_json(schema: SchemaSet, message: dict) -> dict:
    """Canonical dict -> the JSON object the reference jar encodes."""
    name, body = _single_root(message)
    _qn, node = _global(schema, name)
    return {name: _to_codec(schema, schema.info(schema.element_type_key(node)), body, name)}


def from_codec_json(schema: SchemaSet, message: dict) -> dict:
    """The reference jar's decoded JSON object -> canonical dict."""
    name, body = _single_root(message)
    _qn, node = _global(schema, name)
    return {name: _from_codec(schema, schema.info(schema.element_type_key(node)), body, name)}


def _single_root(message: Any) -> tuple[str, Any]:
    if not isinstance(message, dict) or len(message) != 1:
        raise CanonicalError("a message is a dict with exactly one key (its root element)")
    return next(iter(message.items()))


def _global(schema: SchemaSet, name: str):
    try:
        return schema.global_element(name)
    except KeyError as exc:
        raise CanonicalError(str(exc)) from exc


def _is_simple(info: ComplexInfo) -> bool:
    return info.text_kind is not None and not info.children


# -- canonical -> codec ---------------------------------------------------------------------
def _child(schema: SchemaSet, info: ComplexInfo, key: str, unknown: Callable[[], str]) -> tuple[Child, ComplexInfo]:
    """Element `key` of `info`'s content model and its type; CanonicalError(unknown()) if it has none."""
    child = info.children.get(key)
    if child is None:
        raise CanonicalError(unknown())
    return child, schema.info(child.type_key)


def _to_codec(schema: SchemaSet, info: ComplexInfo, value: Any, path: str) -> Any:
    if _is_simple(info):
        if not info.attributes:
            _check_facets(info.facets, value, path)
            return _scalar_to_codec(info.text_kind or "str", value, path)
        if not isinstance(value, dict) or "value" not in value:
            raise CanonicalError(f"{path}: simple content with attributes is {{'value': ..., attrs}}")
        # Attributes first: the jar's JSON reader silently drops a "value" that comes
        # before them (the package's pydantic models happen to list Id first too).
        out = {}
        for key, item in value.items():
            if key == "value":
                continue
            if key not in info.attributes:
                raise CanonicalError(f"{path}: no attribute {key!r}")
            out[key] = _scalar_to_codec(info.attributes[key], item, f"{path}@{key}")
        _check_facets(info.facets, value["value"], path)
        out["value"] = _scalar_to_codec(info.text_kind or "str", value["value"], path)
        return out
    if not isinstance(value, dict):
        raise CanonicalError(f"{path}: expected a dict, got {type(value).__name__}")
    out = {}
    # Attributes first, then children in XSD order: the order the jar's reader expects.
    order = {name: i for i, name in enumerate([*info.attributes, *info.children])}
    for key, item in sorted(value.items(), key=lambda kv: order.get(kv[0], len(order))):
        where = f"{path}.{key}"
        if key in info.attributes:
            out[key] = _scalar_to_codec(info.attributes[key], item, where)
            continue
        child, child_info = _child(schema, info, key,
                                   lambda: f"{where}: not allowed here (allowed: {sorted(info.children)})")
        if child.repeats:
            if not isinstance(item, list):
                raise CanonicalError(f"{where}: repeats in the XSD, so it must be a list")
            out[key] = [_to_codec(schema, child_info, x, f"{where}[{i}]") for i, x in enumerate(item)]
        else:
            if isinstance(item, list):
                raise CanonicalError(f"{where}: occurs at most once, so it must not be a list")
            out[key] = _to_codec(schema, child_info, item, where)
    missing = [name for name, child in info.children.items() if child.required and name not in value]
    if missing:
        raise CanonicalError(f"{path}: required by the XSD but missing: {', '.join(missing)}")
    return out


def _check_facets(facets: dict, value: Any, path: str) -> None:
    """The XSD restrictions the EXI grammar relies on (a value outside them would be
    encoded by the reference jar as a schema deviation, which strict decoders reject)."""
    if not facets or isinstance(value, bool):
        return
    if "enumeration" in facets and str(value) not in facets["enumeration"]:
        raise CanonicalError(f"{path}: {value!r} is not one of {facets['enumeration']}")
    if isinstance(value, int):
        low, high = facets.get("minInclusive"), facets.get("maxInclusive")
        if (low is not None and value < low) or (high is not None and value > high):
            raise CanonicalError(f"{path}: {value} is outside [{low}, {high}]")
    elif isinstance(value, (str, bytes, bytearray)):
        size = len(value)
        if "length" in facets and size != facets["length"]:
            raise CanonicalError(f"{path}: length {size}, the XSD wants exactly {facets['length']}")
        if size < facets.get("minLength", 0) or size > facets.get("maxLength", size):
            raise CanonicalError(
                f"{path}: length {size} is outside [{facets.get('minLength', 0)}, {facets.get('maxLength')}]")


def _scalar_to_codec(kind: str, value: Any, path: str) -> Any:
    if kind in ("hex", "base64"):
        if not isinstance(value, (bytes, bytearray)):
            raise CanonicalError(f"{path}: {kind}Binary wants bytes, got {type(value).__name__}")
        if kind == "hex":
            return bytes(value).hex().upper()
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise CanonicalError(f"{path}: wants an int, got {type(value).__name__}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise CanonicalError(f"{path}: wants a bool, got {type(value).__name__}")
        return value
    if not isinstance(value, str):
        raise CanonicalError(f"{path}: wants a str, got {type(value).__name__}")
    return value


# -- codec -> canonical ---------------------------------------------------------------------
def _from_codec(schema: SchemaSet, info: ComplexInfo, value: Any, path: str) -> Any:
    if _is_simple(info):
        if not info.attributes:
            if isinstance(value, dict) and set(value) == {"value"}:
                value = value["value"]
            return _scalar_from_codec(info.text_kind or "str", value, path)
        if not isinstance(value, dict):
            value = {"value": value}
        out = {}
        for key, item in value.items():
            if item is None:
                continue
            if key == "value":
                out[key] = _scalar_from_codec(info.text_kind or "str", item, path)
            else:
                out[key] = _scalar_from_codec(info.attributes.get(key, "str"), item, f"{path}@{key}")
        return out
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise CanonicalError(f"{path}: the codec gave {type(value).__name__} for a complex element")
    out = {}
    for key, item in value.items():
        where = f"{path}.{key}"
        if item is None:
            continue
        if key in info.attributes:
            out[key] = _scalar_from_codec(info.attributes[key], item, where)
            continue
        child, child_info = _child(schema, info, key,
                                   lambda: f"{where}: the codec gave an element the XSD does not allow here")
        items = item if isinstance(item, list) else [item]
        converted = [_from_codec(schema, child_info, x, f"{where}[{i}]") for i, x in enumerate(items)]
        if child.repeats:
            out[key] = converted
        elif len(converted) == 1:
            out[key] = converted[0]
        else:
            raise CanonicalError(f"{where}: the codec gave a list for a single element")
    return out


def _scalar_from_codec(kind: str, value: Any, path: str) -> Any:
    try:
        if kind == "hex":
            return bytes.fromhex(str(value))
        if kind == "base64":
            return base64.b64decode(str(value), validate=True)
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError("a bool where an int belongs")
            return int(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1"):
                return True
            if str(value).lower() in ("false", "0"):
                return False
            raise ValueError(f"not a boolean: {value!r}")
    except (ValueError, binascii.Error) as exc:
        raise CanonicalError(f"{path}: cannot read {value!r} as {kind}: {exc}") from exc
    return value if isinstance(value, str) else str(value)


# -- JSON files: bytes as {"$hex": ...} -----------------------------------------------------
def to_jsonable(value: Any) -> Any:
    """Canonical dict -> plain JSON (bytes become {"$hex": "..."})."""
    if isinstance(value, (bytes, bytearray)):
        return {"$hex": bytes(value).hex()}
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    return value


def from_jsonable(value: Any) -> Any:
    """Inverse of to_jsonable."""
    if isinstance(value, dict):
        if set(value) == {"$hex"}:
            return bytes.fromhex(value["$hex"])
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value
