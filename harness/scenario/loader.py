"""Loading and checking test-case YAML, with every error as file:line:column plus a hint.

Two passes: the format's JSON Schema (`testcase.schema.json`, all errors at once, mapped
back to YAML positions through ruamel's line/column marks), then the checks a schema
cannot express (exactly one step kind per step, actions that exist in the OCPP version,
fragments that exist, faults that exist in the simulator catalogues).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import jsonschema
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from ..ocpp import schemas as ocpp_schemas
from .model import STEP_KINDS, Step, TestCase

FRAGMENT_DIR = "_common"
MAX_INCLUDE_DEPTH = 5


@dataclass(frozen=True)
class LoadIssue:
    file: str
    line: int
    column: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class CaseLoadError(Exception):
    """The test case cannot be used; carries every issue found."""

    def __init__(self, issues: list[LoadIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


@lru_cache(maxsize=1)
def format_schema() -> dict[str, Any]:
    return json.loads(resources.files("harness.scenario").joinpath("testcase.schema.json").read_text("utf-8"))


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


def _to_plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_to_plain(v) for v in node]
    if isinstance(node, float) and node.is_integer() and "." not in repr(node):
        return node
    # ruamel's scalar subclasses (ScalarFloat, …) → plain Python values
    for t in (bool, int, float, str):
        if isinstance(node, t):
            return t(node)
    return node


def _position(root: Any, path: Iterable[Any]) -> tuple[int, int]:
    """1-based line/column of the deepest node on `path` that has a mark."""
    node, line, col = root, 1, 1
    if isinstance(root, (CommentedMap, CommentedSeq)):
        line, col = root.lc.line + 1, root.lc.col + 1
    for key in path:
        try:
            if isinstance(node, CommentedMap) and key in node:
                ln, cl = node.lc.key(key)
                line, col = ln + 1, cl + 1
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
                ln, cl = node.lc.item(key)
                line, col = ln + 1, cl + 1
                node = node[key]
            else:
                break
        except (KeyError, IndexError, TypeError):
            break
    return line, col


def _close(word: str, options: Iterable[str]) -> str:
    found = difflib.get_close_matches(word, list(options), n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(f) for f in found)}?" if found else ""


def _schema_hint(err: jsonschema.ValidationError) -> str:
    v = err.validator
    if v == "required":
        return "add the missing key (see docs/testcase-format.md for the header fields)"
    if v == "additionalProperties":
        allowed = err.schema.get("properties", {}).keys()
        extras = [k for k in (err.instance or {}) if k not in allowed]
        hints = [h for h in (_close(str(k), allowed) for k in extras) if h]
        return hints[0] if hints else f"allowed keys: {', '.join(sorted(allowed))}"
    if v == "enum":
        return _close(str(err.instance), [str(x) for x in err.validator_value]) or \
            f"one of {', '.join(map(str, err.validator_value))}" + (" (quote versions: \"2.0.1\")" if err.validator_value == ["1.6", "2.0.1"] else "")
    if v == "type" and err.validator_value == "string" and isinstance(err.instance, float):
        return "quote it: YAML reads 1.6 as a number"
    if v == "pattern":
        return f"must match {err.validator_value}"
    return ""


def read_yaml(path: Path) -> Any:
    try:
        return _yaml().load(path.read_text("utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise CaseLoadError([LoadIssue(str(path), line, col, f"YAML syntax: {exc.problem or exc}",
                                       "check indentation and that ':' is followed by a space")]) from None
    except Exception as exc:  # duplicate keys, encoding errors, …
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise CaseLoadError([LoadIssue(str(path), line, col, f"cannot read YAML: {exc}")]) from None


def check_document(doc: Any, path: Path, library_root: Path | None = None) -> list[LoadIssue]:
    """Every problem in one parsed test-case document (schema + semantic checks)."""
    fname = str(path)
    if not isinstance(doc, dict):
        return [LoadIssue(fname, 1, 1, "a test case is a YAML mapping with id, title, ocpp, role, profile, steps")]
    issues: list[LoadIssue] = []
    validator = jsonschema.Draft202012Validator(format_schema())
    for err in sorted(validator.iter_errors(_to_plain(doc)), key=lambda e: list(map(str, e.absolute_path))):
        pos_path = list(err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = err.schema.get("properties", {})
            pos_path += [k for k in err.instance if k not in allowed][:1]   # point at the stray key
        line, col = _position(doc, pos_path)
        where = "/".join(map(str, err.absolute_path)) or "<document>"
        issues.append(LoadIssue(fname, line, col, f"{where}: {err.message}", _schema_hint(err)))
    version = doc.get("ocpp") if doc.get("ocpp") in ocpp_schemas.SUPPORTED_VERSIONS else None
    steps = doc.get("steps") if isinstance(doc.get("steps"), list) else []
    issues += _check_steps(doc, steps, fname, version, library_root)
    role = doc.get("role")
    for j, fault in enumerate(doc.get("faults") or []):
        known_faults = _fault_names({"csms": "cs", "secc": "ev"}.get(role, "csms"))
        if known_faults is not None and fault not in known_faults:
            line, col = _position(doc, ["faults", j])
            dut = {"csms": "charging station", "secc": "EV"}.get(role, "CSMS")
            issues.append(LoadIssue(fname, line, col, f"faults/{j}: no simulator fault {fault!r} for a {dut} DUT",
                                    _close(str(fault), known_faults) or "list them with `charger-harness sim --list-faults`"))
    tc_id = doc.get("id")
    if isinstance(tc_id, str) and path.stem.startswith("TC_") and path.stem != tc_id:
        line, col = _position(doc, ["id"])
        issues.append(LoadIssue(fname, line, col, f"id {tc_id!r} differs from the file name {path.stem!r}", "name the file after the id"))
    return issues


def _check_steps(doc: Any, steps: list[Any], fname: str, version: str | None,
                 library_root: Path | None) -> list[LoadIssue]:
    """Checks a schema cannot express, for the steps of a case or of a fragment."""
    issues: list[LoadIssue] = []
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        line, col = _position(doc, ["steps", i])
        kinds = [k for k in step if k in STEP_KINDS]
        if len(kinds) != 1:
            msg = "step has no kind" if not kinds else f"step has several kinds: {', '.join(kinds)}"
            issues.append(LoadIssue(fname, line, col, f"steps/{i}: {msg}", f"each step has exactly one of: {', '.join(STEP_KINDS)}"))
            continue
        kind = kinds[0]
        if kind in ("expect", "send") and version and isinstance(step[kind], str):
            if step[kind] not in ocpp_schemas.actions(version) and not (kind == "send" and (step.get("raw") or step.get("validate") is False)):
                issues.append(LoadIssue(fname, line, col, f"steps/{i}: OCPP {version} has no action {step[kind]!r}",
                                        _close(step[kind], ocpp_schemas.actions(version)) or "actions are CamelCase as in the spec"))
        if kind == "expect" and "reply" in step and "reply_error" in step:
            issues.append(LoadIssue(fname, line, col, f"steps/{i}: both reply and reply_error", "answer with one of them"))
        if kind == "send" and "expect_result" in step and "expect_error" in step:
            issues.append(LoadIssue(fname, line, col, f"steps/{i}: both expect_result and expect_error", "a CALL gets one answer"))
        if kind == "include" and library_root is not None:
            frag = library_root / FRAGMENT_DIR / f"{step['include']}.yaml"
            if not frag.exists():
                known = [p.stem for p in (library_root / FRAGMENT_DIR).glob("*.yaml")]
                issues.append(LoadIssue(fname, line, col, f"steps/{i}: no fragment {step['include']!r} in {library_root / FRAGMENT_DIR}",
                                        _close(str(step["include"]), known) or f"known fragments: {', '.join(sorted(known))}"))
    return issues


def check_fragment(doc: Any, path: Path, version: str | None, library_root: Path | None) -> list[LoadIssue]:
    """Every problem in one `_common/` fragment: its steps get the same checks as a case's."""
    fname = str(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("steps"), list):
        return [LoadIssue(fname, 1, 1, "a fragment is a mapping with a 'steps' list")]
    issues: list[LoadIssue] = []
    step_schema = {**format_schema()["$defs"]["step"], "$defs": format_schema()["$defs"]}
    validator = jsonschema.Draft202012Validator(step_schema)
    for i, step in enumerate(doc["steps"]):
        for err in sorted(validator.iter_errors(_to_plain(step)), key=lambda e: list(map(str, e.absolute_path))):
            pos_path = ["steps", i, *err.absolute_path]
            if err.validator == "additionalProperties" and isinstance(err.instance, dict):
                allowed = err.schema.get("properties", {})
                pos_path += [k for k in err.instance if k not in allowed][:1]
            line, col = _position(doc, pos_path)
            where = "/".join(map(str, ["steps", i, *err.absolute_path]))
            issues.append(LoadIssue(fname, line, col, f"{where}: {err.message}", _schema_hint(err)))
    return issues + _check_steps(doc, doc["steps"], fname, version, library_root)


def _fault_names(target: str) -> set[str] | None:
    try:
        if target == "cs":
            from ..sim.faults import STATION_FAULTS as catalogue
        elif target == "ev":
            from ..sim.ev_sim import EV_FAULTS as catalogue
        else:
            from ..sim.csms_faults import CSMS_FAULTS as catalogue
    except ImportError:   # catalogue not available: skip the check rather than guess
        return None
    return set(catalogue)


def find_library_root(path: Path) -> Path | None:
    """The nearest ancestor folder named `testcases` (where `_common/` fragments live)."""
    for parent in [path.parent, *path.parents]:
        if parent.name == "testcases":
            return parent
    return None


def load_case(path: str | Path) -> TestCase:
    path = Path(path)
    doc = read_yaml(path)
    root = find_library_root(path) or path.parent
    issues = check_document(doc, path, root)
    if issues:
        raise CaseLoadError(issues)
    steps = _expand_steps(doc["steps"], path, root, depth=0, version=doc.get("ocpp"))
    plain = _to_plain(doc)
    return TestCase(
        id=plain["id"], title=plain["title"], ocpp=plain.get("ocpp", ""), role=plain["role"], profile=plain["profile"],
        steps=steps, path=path, block=plain.get("block", ""), feature=plain.get("feature", ""),
        use_cases=plain.get("use_cases", []), requirements=plain.get("requirements", []),
        severity=plain.get("severity", "normal"), pics=plain.get("pics", []), faults=plain.get("faults", []),
        timeout=float(plain.get("timeout", 60)), description=plain.get("description", ""),
        defaults=plain.get("defaults", {}), mandatory=plain.get("mandatory", True),
        cleanup=_expand_steps(doc["cleanup"], path, root, depth=0) if doc.get("cleanup") else [],
        vars=plain.get("vars", {}), security_profile=plain.get("security_profile"),
        harness_tls=plain.get("harness_tls", {}), protocol=plain.get("protocol", ""),
        connection_test=bool(plain.get("connection_test", False)),
    )


def _expand_steps(raw_steps: Any, path: Path, root: Path, depth: int, vars_: dict[str, Any] | None = None,
                  version: str | None = None) -> list[Step]:
    out: list[Step] = []
    for i, raw in enumerate(raw_steps):
        line, _ = _position(raw_steps, [i])
        spec = _to_plain(raw)
        kind = next(k for k in spec if k in STEP_KINDS)
        if kind == "include":
            if depth >= MAX_INCLUDE_DEPTH:
                raise CaseLoadError([LoadIssue(str(path), line, 1, f"includes nested deeper than {MAX_INCLUDE_DEPTH}", "is a fragment including itself?")])
            frag_path = root / FRAGMENT_DIR / f"{spec['include']}.yaml"
            frag = read_yaml(frag_path)
            frag_issues = check_fragment(frag, frag_path, version, root)
            if frag_issues:
                raise CaseLoadError(frag_issues)
            merged_vars = {**(vars_ or {}), **(spec.get("vars") or {})}
            for st in _expand_steps(frag["steps"], frag_path, root, depth + 1, merged_vars, version):
                if merged_vars:
                    st.spec.setdefault("_vars", merged_vars)
                out.append(st)
            continue
        out.append(Step(kind, spec, line, str(path)))
    return out


def iter_case_files(paths: Iterable[str | Path]) -> list[Path]:
    """Test-case files under the given files/folders (names starting with TC_)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(x for x in p.rglob("TC_*.y*ml") if FRAGMENT_DIR not in x.parts)
        elif p.exists():
            found.append(p)
    return found


def validate_paths(paths: Iterable[str | Path]) -> list[LoadIssue]:
    """All issues in all test cases (and fragments) under `paths`; empty = valid."""
    issues: list[LoadIssue] = []
    for f in iter_case_files(paths):
        try:
            load_case(f)
        except CaseLoadError as exc:
            issues += exc.issues
    return issues
