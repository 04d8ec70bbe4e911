"""Declarative matching of payloads against the `match:` forms of docs/testcase-format.md.

`match(spec, actual, variables)` returns a list of `Mismatch` (empty = matched). Every
mismatch names the JSON path, what was expected and what was found, so a FAIL message
can be read without opening the trace. Dict specs match partially; operators are dict
keys starting with `$`.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

_MISSING = object()
_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
OPERATORS = frozenset({
    "$type", "$regex", "$one_of", "$range", "$gt", "$gte", "$lt", "$lte", "$absent", "$present",
    "$contains", "$each", "$len", "$not", "$exact", "$eq", "$optional",
})
_COMPARE = {
    "$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b,
}
_VAR_FULL = re.compile(r"^\$([A-Za-z_][\w.]*)$")
_VAR_INLINE = re.compile(r"\$\{([A-Za-z_][\w.]*)\}")


class MatcherError(ValueError):
    """The test case's matcher itself is wrong (an ERROR, not the DUT's fault)."""


class UndefinedVariable(MatcherError):
    pass


@dataclass(frozen=True)
class Mismatch:
    path: str
    expected: str
    found: Any

    def __str__(self) -> str:
        found = "absent" if self.found is _MISSING else json.dumps(self.found, default=str)
        return f"{self.path or '<payload>'}: expected {self.expected}, found {found}"


# ---- variables -----------------------------------------------------------------

def lookup(variables: Mapping[str, Any], name: str) -> Any:
    """Resolve `name` (dotted for nested: pixit.valid_id_token); built-ins are computed."""
    if name == "now":
        return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if name == "uuid":
        return str(uuid.uuid4())
    if name in variables:
        return variables[name]
    node: Any = variables
    for part in name.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise UndefinedVariable(f"variable ${name} is not defined (captured earlier? PIXIT set?)")
    return node


def substitute(value: Any, variables: Mapping[str, Any]) -> Any:
    """Replace "$name" (typed) and "${name}" (interpolated) in a YAML value, recursively."""
    if isinstance(value, str):
        full = _VAR_FULL.match(value)
        if full:
            return lookup(variables, full.group(1))
        if "${" in value:
            return _VAR_INLINE.sub(lambda m: str(lookup(variables, m.group(1))), value)
        return value
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


# ---- paths -------------------------------------------------------------------------

_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def get_path(data: Any, path: str) -> Any:
    """Value at a dotted path such as `meterValue[0].sampledValue`; raises KeyError if absent."""
    node = data
    for name, index in _PATH_TOKEN.findall(path):
        if index:
            if not isinstance(node, list) or int(index) >= len(node):
                raise KeyError(path)
            node = node[int(index)]
        else:
            if not isinstance(node, dict) or name not in node:
                raise KeyError(path)
            node = node[name]
    return node


# ---- matching ---------------------------------------------------------------------

def is_operator(spec: Any) -> bool:
    return isinstance(spec, dict) and bool(spec) and all(isinstance(k, str) and k.startswith("$") for k in spec)


def match(spec: Any, actual: Any, variables: Mapping[str, Any] | None = None, path: str = "") -> list[Mismatch]:
    variables = variables or {}
    if is_operator(spec):
        return _match_operators(spec, actual, variables, path)
    if isinstance(spec, dict):
        if actual is _MISSING:
            return [Mismatch(path, "an object", _MISSING)]
        if not isinstance(actual, dict):
            return [Mismatch(path, "an object", actual)]
        out: list[Mismatch] = []
        for key, sub in spec.items():
            out += match(sub, actual.get(key, _MISSING), variables, f"{path}.{key}" if path else str(key))
        return out
    if isinstance(spec, list):
        if not isinstance(actual, list):
            return [Mismatch(path, f"an array of {len(spec)}", actual)]
        if len(spec) != len(actual):
            return [Mismatch(path, f"an array of {len(spec)} element(s)", actual)]
        out = []
        for i, (s, a) in enumerate(zip(spec, actual)):
            out += match(s, a, variables, f"{path}[{i}]")
        return out
    expected = substitute(spec, variables)
    if actual is _MISSING or not _equal(expected, actual):
        return [Mismatch(path, json.dumps(expected, default=str), actual)]
    return []


def _equal(a: Any, b: Any) -> bool:
    # JSON has one number type: 3 and 3.0 are the same value; True is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numeric(v: Any) -> float | None:
    """A number, or a decimal string (OCPP 1.6 sends meter readings as strings), else None."""
    if _num(v):
        return v
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if f == f else None      # NaN compares with nothing
    return None


def _match_operators(spec: dict[str, Any], actual: Any, variables: Mapping[str, Any], path: str) -> list[Mismatch]:
    unknown = set(spec) - OPERATORS
    if unknown:
        raise MatcherError(f"unknown matcher operator(s) {', '.join(sorted(unknown))} at {path or '<payload>'}; "
                           f"known: {', '.join(sorted(OPERATORS))}")
    present = actual is not _MISSING
    wants_absent = spec.get("$absent") is True or spec.get("$present") is False
    if wants_absent:
        return [] if not present else [Mismatch(path, "absent", actual)]
    if "$optional" in spec:
        if len(spec) != 1:
            raise MatcherError(f"$optional stands alone at {path or '<payload>'}: {{$optional: <matcher>}}")
        return [] if not present else match(spec["$optional"], actual, variables, path)
    if not present:
        if set(spec) == {"$not"} and match(spec["$not"], _MISSING, variables, path):
            return []          # an absent key "is not" whatever the inner matcher wants
        return [Mismatch(path, _describe(spec), _MISSING)]
    out: list[Mismatch] = []

    def fail(what: str) -> None:
        out.append(Mismatch(path, what, actual))

    for op, arg in spec.items():
        if op in ("$present", "$absent"):
            continue
        if op == "$type":
            names = arg if isinstance(arg, list) else [arg]
            for n in names:
                if n not in _TYPES:
                    raise MatcherError(f"$type {n!r} unknown at {path}; use one of {', '.join(_TYPES)}")
            if not any(_TYPES[n](actual) for n in names):
                fail(f"type {' or '.join(names)}")
        elif op == "$regex":
            pattern = str(substitute(arg, variables))
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                raise MatcherError(f"$regex {pattern!r} at {path or '<payload>'} is not a valid regular expression: {exc}") from None
            if not isinstance(actual, str) or regex.fullmatch(actual) is None:
                fail(f"a string matching /{pattern}/")
        elif op == "$one_of":
            options = substitute(arg, variables)
            if not isinstance(options, list):
                raise MatcherError(f"$one_of needs a list at {path}")
            if not any(_equal(o, actual) for o in options):
                fail(f"one of {json.dumps(options, default=str)}")
        elif op == "$range":
            bounds = substitute(arg, variables)
            if not isinstance(bounds, list) or len(bounds) != 2 or not all(_num(b) for b in bounds):
                raise MatcherError(f"$range needs [min, max] numbers at {path or '<payload>'}, got {bounds!r}")
            lo, hi = bounds
            value = _numeric(actual)
            if value is None or not (lo <= value <= hi):
                fail(f"a number in [{lo}, {hi}]")
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            bound = substitute(arg, variables)
            if not _num(bound):
                raise MatcherError(f"{op} needs a number at {path}, got {bound!r}")
            value = _numeric(actual)
            if value is None or not _COMPARE[op](value, bound):
                fail(f"a number {op[1:]} {bound}")
        elif op == "$contains":
            if not isinstance(actual, list) or not any(not match(arg, el, variables, path) for el in actual):
                fail(f"an array containing an element matching {_describe(arg)}")
        elif op == "$each":
            if not isinstance(actual, list):
                fail("an array")
            else:
                for i, el in enumerate(actual):
                    out += match(arg, el, variables, f"{path}[{i}]")
        elif op == "$len":
            if not isinstance(actual, (list, str, dict)):
                fail("something with a length")
            else:
                out += match(arg, len(actual), variables, f"{path}.length")
        elif op == "$not":
            if not match(arg, actual, variables, path):
                fail(f"not {_describe(arg)}")
        elif op in ("$exact", "$eq"):
            expected = substitute(arg, variables)
            if not _equal(expected, actual):
                fail(json.dumps(expected, default=str))
    return out


def _describe(spec: Any) -> str:
    return json.dumps(spec, default=str, ensure_ascii=False)
