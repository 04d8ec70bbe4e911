"""What the pytest plugin hands to the report layer, per case and per run.

Per case (in whichever xdist worker ran it): the Allure result with the frame trace and
the DUT identity seen. Per run (controller only): environment, categories, and the
certification summary as an attachment-ready JSON next to the results.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import shutil
import platform
import time
from pathlib import Path
from types import SimpleNamespace
from uuid import uuid4
from typing import Any, Iterable

from ..dut.profile import DutProfile
from ..ocpp.trace import Trace
from ..scenario.loader import CaseLoadError
from ..scenario.model import TestCase
from ..scenario.verdict import CaseResult, Verdict
from .allure_writer import write_case_result, write_categories, write_environment
from .evidence import write_case_evidence, write_run_pcap
from .redact import Redactor
from .summary import render_text, summarize
from .summary_html import SUMMARY_JSON, certification_summary, write_allure_summary, write_summary

SUMMARY_FILE = SUMMARY_JSON


def redactor_for(profiles: Iterable[DutProfile]) -> Redactor:
    profiles = list(profiles)
    secrets = [s for p in profiles for s in p.secrets()]
    users = [p.station_id for p in profiles]
    return Redactor(secrets, users)


def publish_case(outdir: Path, case: TestCase, result: CaseResult, trace: Trace | None, profile: DutProfile,
                 *, fault: str | None, logs: dict[str, str] | None = None) -> None:
    redactor = redactor_for([profile])
    params = {"DUT": profile.name, "Standard": case.edition,
              "harness role": "CSMS" if case.role == "csms" else "charging station"}
    if fault:
        params["simulator fault"] = fault
    extra = {"verdict.txt": (result.summary(), "text/plain")}
    for name, text in (logs or {}).items():      # DUT logs an adapter fetched (e.g. docker's dut.log)
        extra[name] = (text, "text/plain")
    if result.captures:
        extra["captures.json"] = (json.dumps(result.captures, indent=1, default=str), "application/json")
    # Evidence files next to the results (frames, SVG sequence diagram, pcap); the diagram
    # is attached as well so the HTML report shows it with the case.
    evidence = write_case_evidence(outdir.parent, case, result, trace, redactor=redactor, dut_name=profile.name)
    extra["sequence.svg"] = (evidence["svg"], "image/svg+xml")
    files = (result.captures or {}).get("attachments")
    before = set(outdir.glob("*-result.json")) if isinstance(files, dict) and files else None
    uuid = write_case_result(outdir, case, result, trace, redactor=redactor, parameters=params, dut_name=profile.name,
                             extra_attachments=extra, host=platform.node())
    if before is not None:
        attach_files(outdir, str(uuid), set(outdir.glob("*-result.json")) - before, files, redactor)
    if result.dut_identity:
        write_environment(outdir, {f"DUT.{k}": v for k, v in result.dut_identity.items()}, redactor)


def attach_files(outdir: Path, uuid: str, candidates: set[Path], files: dict[str, str], redactor: Redactor) -> None:
    """Evidence files a step wrote (the case variable `attachments`: name → path), attached to
    the case's result (the one of `candidates` with this uuid) as they are: images stay binary,
    text is redacted like every attachment."""
    for result_file in candidates:
        data = json.loads(result_file.read_text(encoding="utf-8"))
        if str(data.get("uuid")) == uuid:
            break
    else:
        return
    for name, path in files.items():
        src = Path(str(path))
        if not src.is_file():
            continue
        mime = mimetypes.guess_type(src.name)[0] or "application/octet-stream"
        source = f"{uuid4()}-attachment{src.suffix}"
        if mime.startswith("text/") or mime in ("application/json", "text/csv"):
            (outdir / source).write_text(redactor.text(src.read_text(encoding="utf-8", errors="replace")),
                                         encoding="utf-8")
        else:
            shutil.copyfile(src, outdir / source)
        data.setdefault("attachments", []).append({"name": redactor.text(str(name)), "source": source, "type": mime})
    result_file.write_text(json.dumps(data), encoding="utf-8")


def publish_broken(outdir: Path, path: Path, error: CaseLoadError) -> None:
    """An unloadable case still appears in the report, as ERROR with every problem listed."""
    case = TestCase(id=path.stem, title="(test case cannot be loaded)", ocpp="?", role="?", profile="(unloadable)",
                    steps=[], path=path, description=str(error))
    now = time.time()
    result = CaseResult(path.stem, Verdict.ERROR, str(error).splitlines()[0], start=now, stop=now)
    write_case_result(outdir, case, result, None, redactor=Redactor([]), parameters={"file": str(path)},
                      extra_attachments={"load-errors.txt": (str(error), "text/plain")})


def library_hash(root: Path) -> str:
    """SHA-256 over the test library's files (names and contents): which cases were run."""
    h = hashlib.sha256()
    if root.is_dir():
        for f in sorted(root.rglob("*.y*ml")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def summary_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = [(SimpleNamespace(id=r["case_id"], profile=r["profile"], mandatory=r.get("mandatory", True)),
              SimpleNamespace(verdict=Verdict(r["verdict"]), message=r.get("message", ""))) for r in records]
    return summarize(pairs)  # type: ignore[arg-type]


def publish_session(outdir: Path, records: list[dict[str, Any]], profiles: list[DutProfile], *,
                    harness_version: str, library_root: Path, fault: str | None, operator: str | None = None) -> None:
    redactor = redactor_for(profiles)
    outdir.mkdir(parents=True, exist_ok=True)
    lib_hash = library_hash(library_root)
    env: dict[str, str] = {
        "harness.version": harness_version,
        "testlibrary.sha256": lib_hash,
        "run.date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for p in profiles:
        prefix = f"DUT[{p.kind}]"
        env[f"{prefix}.profile"] = p.name
        env[f"{prefix}.ocpp_versions"] = ", ".join(p.ocpp_versions)
        env[f"{prefix}.security_profile"] = str(p.security_profile)
        env[f"{prefix}.adapter"] = p.adapter
    if fault:
        env["simulator.fault"] = fault
    try:   # use-case coverage of the library run (charger-harness coverage), e.g. coverage.2.0.1.cs = 17/109
        from ..coverage import environment_figures
        env.update(environment_figures(library_root))
    except Exception:   # never lose the run's report over a coverage figure
        pass
    write_environment(outdir, env, redactor)
    write_categories(outdir)
    summary = summary_of(records)
    summary["verdicts"] = records
    # The certification summary (SUMMARY_FILE, its HTML page, the SHA-256 manifest), the run's
    # merged pcap, and the summary inside the Allure results.
    reports = outdir.parent
    write_run_pcap(reports, [str(r.get("case_id")) for r in records])
    full = certification_summary(records, profiles, summary, harness_version=harness_version, library_hash=lib_hash,
                                 library_root=library_root, fault=fault, operator=operator, reports=reports)
    write_allure_summary(outdir, full, redactor)
    write_summary(reports, full, redactor)


def render_verdict_table(records: list[dict[str, Any]]) -> str:
    return render_text(summary_of(records))
