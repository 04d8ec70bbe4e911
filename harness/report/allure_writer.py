"""Allure 2 result files (read by both the Allure 2 and the Allure 3 CLIs).

One test case run becomes one `<uuid>-result.json` with a step per executed step, the frame
trace attached twice (JSON evidence and a readable sequence view), and labels that build
the certification view: parentSuite = OCPP version, suite = certification profile,
subSuite = functional block. The result model and file writing come from
`allure_commons`; this module only maps harness objects onto it.

Every string that reaches disk passes through the `Redactor` first: the result model is
redacted as a whole after it is built, so a field added later cannot bypass it.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attr
from allure_commons import model2 as m
from allure_commons.logger import AllureFileLogger
from allure_commons.types import AttachmentType
from allure_commons.utils import md5, uuid4

from harness.ocpp.trace import Trace
from harness.report.redact import Redactor
from harness.scenario.model import TestCase
from harness.scenario.verdict import CaseResult, StepResult, Verdict

FRAMEWORK = "charger-harness"
ENVIRONMENT_FILE = "environment.properties"
CATEGORIES_FILE = "categories.json"
EXECUTOR_FILE = "executor.json"


def _ci(word: str) -> str:
    """Case-insensitive spelling of `word` that works in both Java and JS regexes
    (Allure 2 uses Java `matches()`, Allure 3 JS `RegExp.test()`; JS has no inline `(?i)`)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def _anywhere(*alternatives: str) -> str:
    # `[\s\S]*` on both sides: Java needs a full match, messages may span lines.
    return r"[\s\S]*(" + "|".join(alternatives) + r")[\s\S]*"


# Specific FAIL reasons first: Allure 2 lists a result under every category it matches,
# Allure 3 under the first one, so the generic verdict categories come last.
CATEGORIES: list[dict[str, Any]] = [
    {"name": "FAIL: schema violation", "matchedStatuses": ["failed"],
     "messageRegex": _anywhere(_ci("schema"), _ci("FormationViolation"), _ci("TypeConstraintViolation"),
                               _ci("PropertyConstraintViolation"), _ci("OccurrenceConstraintViolation"))},
    {"name": "FAIL: timeout waiting for the DUT", "matchedStatuses": ["failed"],
     "messageRegex": _anywhere(_ci("timeout"), _ci("timed out"), _ci("waiting for"), _ci("no reply"),
                               _ci("did not arrive"), _ci("no response"))},
    {"name": "FAIL: unexpected connection close", "matchedStatuses": ["failed"],
     "messageRegex": _anywhere(_ci("connection closed"), _ci("closed the connection"), _ci("disconnect"),
                               _ci("connection lost"), _ci("websocket closed"), _ci("close code"))},
    {"name": "FAIL: wrong error code", "matchedStatuses": ["failed"],
     "messageRegex": _anywhere(_ci("error code"), _ci("errorcode"), _ci("CALLERROR"), _ci("NotImplemented"),
                               _ci("NotSupported"), _ci("ProtocolError"))},
    {"name": "DUT failures (FAIL)", "matchedStatuses": ["failed"]},
    {"name": "Harness/test-case errors (ERROR)", "matchedStatuses": ["broken"]},
    {"name": "Inconclusive", "matchedStatuses": ["unknown"]},
    {"name": "Not applicable (PICS)", "matchedStatuses": ["skipped"]},
]


# ---------------------------------------------------------------------------- results

def write_case_result(outdir: Path, case: TestCase, result: CaseResult, trace: Trace | None, *,
                      redactor: Redactor, parameters: dict[str, str], dut_name: str = "",
                      extra_attachments: dict[str, tuple[str, str]] | None = None,
                      host: str | None = None, thread: str | None = None) -> str:
    """Write one case's result and attachments under `outdir`; return the result uuid."""
    logger = AllureFileLogger(outdir)
    status = result.verdict.allure_status
    start, stop = _times(result)

    tr = m.TestResult(
        uuid=uuid4(),
        # Stable across runs so Allure 2 history/trends line up per (case, DUT); Allure 3
        # derives its own from the AS_ID label plus the parameters, which name the DUT too.
        historyId=md5(case.id, dut_name),
        testCaseId=md5(case.id),
        name=f"{case.id} {case.title}",
        fullName=_full_name(case),
        description=case.description or None,
        status=status,
        statusDetails=_status_details(result),
        stage="finished",
        start=start,
        stop=stop,
        labels=_labels(case, host=host, thread=thread),
        parameters=[m.Parameter(name=str(k), value=str(v)) for k, v in parameters.items()],
        titlePath=[case.edition, case.profile, *([case.feature or case.block] if (case.feature or case.block) else [])],
        steps=[_step(s, result, logger, redactor) for s in result.steps],
    )

    frames = trace.to_json() if trace is not None else "[]"
    sequence = trace.sequence_view() if trace is not None else "(no frames were recorded)"
    tr.attachments.append(_attach(logger, redactor, "frames.json", frames, AttachmentType.JSON.mime_type))
    tr.attachments.append(_attach(logger, redactor, "sequence.txt", sequence, AttachmentType.TEXT.mime_type))
    for name, (content, mime) in (extra_attachments or {}).items():
        tr.attachments.append(_attach(logger, redactor, name, content, mime))

    _redact_model(tr, redactor)
    logger.report_result(tr)
    return tr.uuid


def _times(result: CaseResult) -> tuple[int, int]:
    start = result.start or (result.steps[0].start if result.steps else 0.0) or time.time()
    stop = result.stop or (result.steps[-1].stop if result.steps else 0.0) or start
    return _ms(start), _ms(max(stop, start))


def _ms(t: float) -> int:
    return int(round(t * 1000))


def _full_name(case: TestCase) -> str:
    # Relative to the working directory where possible: the absolute path of someone's
    # checkout says nothing and would differ between machines.
    path = Path(case.path)
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(Path.cwd().resolve())
    return path.as_posix()


def _status_message(result: CaseResult) -> str | None:
    if result.verdict == Verdict.PASS:
        return None
    first = result.message.strip().splitlines()[0] if result.message.strip() else "(no reason given)"
    parts = [f"{result.verdict.value}: {first}"]
    if result.failed_step is not None:
        parts.append(f"at step {result.failed_step}" + (f" ({result.failed_step_name})" if result.failed_step_name else ""))
    if result.requirement:
        parts.append(f"requirement {result.requirement}")
    return " — ".join(parts)


def _status_details(result: CaseResult) -> m.StatusDetails | None:
    message = _status_message(result)
    if message is None:
        return None
    return m.StatusDetails(message=message, trace=result.summary())


def _labels(case: TestCase, *, host: str | None, thread: str | None) -> list[m.Label]:
    block = case.feature or case.block
    pairs: list[tuple[str, str]] = [
        ("epic", case.edition),
        ("parentSuite", case.edition),
        ("suite", case.profile),
        ("severity", case.severity),
        ("AS_ID", case.id),
        ("framework", FRAMEWORK),
        ("tag", f"role:{case.role}"),
        ("tag", f"ocpp:{case.ocpp}" if case.ocpp else f"iso15118:{case.protocol}"),
    ]
    if block:
        pairs += [("feature", block), ("subSuite", block)]
    pairs += [("story", uc) for uc in case.use_cases]
    pairs += [("tag", req) for req in case.requirements]
    if not case.mandatory:
        pairs.append(("tag", "optional"))
    if host:
        pairs.append(("host", host))
    if thread:
        pairs.append(("thread", thread))
    return [m.Label(name=n, value=str(v)) for n, v in pairs if v not in (None, "")]


def _step(s: StepResult, result: CaseResult, logger: AllureFileLogger, redactor: Redactor) -> m.TestStepResult:
    details = None
    if s.message or (result.failed_step == s.index and s.verdict != Verdict.PASS):
        details = m.StatusDetails(
            message=s.message or None,
            # The failing step carries the expected-vs-received text too, where readers look.
            trace=result.summary() if result.failed_step == s.index and s.verdict != Verdict.PASS else None,
        )
    step = m.TestStepResult(
        name=f"{s.index}. {s.name}",
        status=s.verdict.allure_status,
        statusDetails=details,
        stage="finished",
        start=_ms(s.start),
        stop=_ms(max(s.stop, s.start)),
        parameters=[m.Parameter(name="kind", value=s.kind)] if s.kind else [],
    )
    if s.details:
        body = json.dumps(s.details, indent=1, ensure_ascii=False, default=str)
        step.attachments.append(_attach(logger, redactor, "details.json", body, AttachmentType.JSON.mime_type))
    return step


def _extension(mime: str) -> str:
    for t in AttachmentType:
        if t.mime_type == mime:
            return t.extension
    guessed = mimetypes.guess_extension(mime.split(";")[0].strip()) if mime else None
    return guessed.lstrip(".") if guessed else "txt"


def _attach(logger: AllureFileLogger, redactor: Redactor, name: str, content: str | bytes,
            mime: str) -> m.Attachment:
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")   # attachments here are text evidence
    source = m.ATTACHMENT_PATTERN.format(prefix=uuid4(), ext=_extension(mime))
    logger.report_attached_data(body=redactor.text(content), file_name=source)
    return m.Attachment(name=redactor.text(name), source=source, type=mime)


def _redact_model(item: Any, redactor: Redactor) -> None:
    """Redact every string attribute of an allure_commons model tree in place."""
    for a in attr.fields(type(item)):
        value = getattr(item, a.name)
        if isinstance(value, str):
            setattr(item, a.name, redactor.text(value))
        elif isinstance(value, list):
            setattr(item, a.name, [_redacted(v, redactor) for v in value])
        elif attr.has(type(value)):
            _redact_model(value, redactor)


def _redacted(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor.text(value)
    if attr.has(type(value)):
        _redact_model(value, redactor)
        return value
    return redactor.obj(value)


# ---------------------------------------------------------------------------- run-level files

def write_environment(outdir: Path, entries: dict[str, str], redactor: Redactor) -> Path:
    """Merge `entries` into `outdir/environment.properties` (new values win).

    pytest-xdist workers call this concurrently: the read-modify-write happens under an
    exclusive lock on the directory and ends with an atomic rename, so no key is lost and
    no reader ever sees a half-written file.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / ENVIRONMENT_FILE
    with _dir_lock(outdir):
        merged = read_properties(path) if path.exists() else {}
        for k, v in entries.items():
            merged[redactor.text(str(k))] = redactor.text("" if v is None else str(v))
        body = "".join(f"{_escape_prop(k, key=True)}={_escape_prop(v)}\n" for k, v in sorted(merged.items()))
        _atomic_write(path, body.encode("ascii"))
    return path


def write_categories(outdir: Path) -> Path:
    """Write `categories.json`: verdict categories plus common FAIL reasons."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / CATEGORIES_FILE
    _atomic_write(path, json.dumps(CATEGORIES, indent=1).encode("utf-8"))
    return path


def write_executor(outdir: Path, *, redactor: Redactor, build_name: str = "", build_url: str = "",
                   report_name: str = "", executor_type: str = "charger-harness") -> Path:
    """Write `executor.json` (who ran the tests; shown in the report overview)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    data = {"name": FRAMEWORK, "type": executor_type, "buildName": build_name or None,
            "buildUrl": build_url or None, "reportName": report_name or None}
    data = redactor.obj({k: v for k, v in data.items() if v})
    path = outdir / EXECUTOR_FILE
    _atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8"))
    return path


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:   # not POSIX: no cross-process lock, the atomic rename still holds
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)   # mkstemp makes 0600; these files are read by other users/tools
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# Java .properties: Allure 2 reads them with Properties.load(InputStream), i.e. ISO-8859-1,
# so anything outside printable ASCII is written as \uXXXX (Allure 3 decodes that as well).
_PROP_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}


def _escape_prop(s: str, *, key: bool = False) -> str:
    out: list[str] = []
    for i, ch in enumerate(s):
        if ch in _PROP_ESCAPES:
            out.append(_PROP_ESCAPES[ch])
        elif (key and ch in " =:#!") or (ch == " " and i == 0) or (i == 0 and ch in "#!"):
            out.append("\\" + ch)
        elif 0x20 <= ord(ch) < 0x7F:
            out.append(ch)
        else:
            data = ch.encode("utf-16-be")
            out.extend(f"\\u{int.from_bytes(data[j:j + 2], 'big'):04x}" for j in range(0, len(data), 2))
    return "".join(out)


def read_properties(path: Path) -> dict[str, str]:
    """Parse a .properties file as written above (also tolerates hand-written simple ones)."""
    result: dict[str, str] = {}
    for line in Path(path).read_text("latin-1").splitlines():
        stripped = line.lstrip()
        if not stripped or stripped[0] in "#!":
            continue
        key, value = _split_prop(stripped)
        result[_unescape_prop(key)] = _unescape_prop(value)
    return result


def _split_prop(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "=: \t":
            rest = line[i + 1:] if ch in "=:" else line[i:].lstrip(" \t")
            if ch in " \t" and rest[:1] in ("=", ":"):
                rest = rest[1:]
            return line[:i], rest.lstrip(" \t")
        i += 1
    return line, ""


def _unescape_prop(s: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch != "\\" or i + 1 == len(s):
            out.append(ch)
            i += 1
            continue
        nxt = s[i + 1]
        if nxt == "u" and len(s) >= i + 6:
            out.append(chr(int(s[i + 2:i + 6], 16)))
            i += 6
        else:
            out.append({"n": "\n", "r": "\r", "t": "\t", "f": "\f"}.get(nxt, nxt))
            i += 2
    # \uXXXX pairs decode to lone surrogates above; join them into real characters.
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")
