"""Evidence files of a run, under the run's reports folder (next to `allure-results/`).

Per case, in whichever process ran it (`evidence/<case id>/`):

    frames.json    every traced frame (redacted), the same JSON the Allure result carries
    sequence.svg   the frames as a sequence diagram (`svg.py`)
    traffic.pcap   the case's websocket connections as packets (`pcap.py`)
    v2g.pcap       the case's ISO 15118 traffic (SDP, V2GTP, TLS records), where it had any
                   (`iso15118/session_capture.py`), with `v2g.pcap.keys` (TLS key log) and
                   `v2g.pcap.txt` (what in it is synthesized); attached to the Allure result
    case.json      what the run-level steps need to know about the case (id, role, verdict…)

Per run (once, after the session): `traffic.pcap` with every case's connections merged in
time order, the JUnit XML annotated with the harness's verdicts, and the SHA-256 manifest
(`manifest.py`). Everything written passes through the `Redactor` first; the pcap and the
SVG are built from the redacted frames, so no secret can reach them either.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable

from ..ocpp.trace import Trace
from ..scenario.model import TestCase
from ..scenario.verdict import CaseResult
from .pcap import PortAllocator, connections_from_trace, write_pcap
from .redact import Redactor
from .svg import sequence_svg

EVIDENCE_DIR = "evidence"
RUN_PCAP = "traffic.pcap"
JUNIT_FILE = "junit.xml"
FRAMES, SVG, PCAP, META = "frames.json", "sequence.svg", "traffic.pcap", "case.json"

ROLE_NAMES = {"csms": ("CSMS", "charging station"), "cs": ("charging station", "CSMS")}


def safe_name(case_id: str) -> str:
    """A case id as a folder name (ids are `TC_…` already; anything odd becomes `_`)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", case_id).strip("._") or "case"
    return name[:120]


def case_dir(reports: Path, case_id: str) -> Path:
    return Path(reports) / EVIDENCE_DIR / safe_name(case_id)


def evidence_links(case_id: str, *, prefix: str = "") -> dict[str, str]:
    """Relative links (from the reports folder, or `prefix` + that) to a case's evidence."""
    base = f"{prefix}{EVIDENCE_DIR}/{safe_name(case_id)}/"
    return {"svg": base + SVG, "frames": base + FRAMES, "pcap": base + PCAP}


def lifelines(role: str, dut_name: str) -> tuple[str, str]:
    harness_plays, dut_is = ROLE_NAMES.get(role, ("harness", "DUT"))
    return f"Harness ({harness_plays})", f"DUT ({dut_is})" + (f"\n{dut_name}" if dut_name else "")


def write_case_evidence(reports: Path, case: TestCase, result: CaseResult, trace: Trace | None, *,
                        redactor: Redactor, dut_name: str = "") -> dict[str, Any]:
    """Write one case's evidence folder; returns the redacted frames JSON and the SVG text
    (for the Allure attachments) and the files written."""
    folder = case_dir(reports, case.id)
    folder.mkdir(parents=True, exist_ok=True)
    frames_json = redactor.text(trace.to_json() if trace is not None else "[]")
    entries = json.loads(frames_json)
    harness_name, dut_label = lifelines(case.role, redactor.text(dut_name))
    reason = "" if result.verdict.value == "PASS" else redactor.text(
        (f"step {result.failed_step}: " if result.failed_step else "")
        + ((result.message.strip().splitlines() or [""])[0])
        + (f" (requirement {result.requirement})" if result.requirement else ""))
    svg = sequence_svg(entries, harness=harness_name, dut=dut_label, title=f"{case.id} {redactor.text(case.title)}",
                       verdict=result.verdict.value, reason=reason)
    (folder / FRAMES).write_text(frames_json, "utf-8")
    (folder / SVG).write_text(svg, "utf-8")
    pcap_note = ""
    try:
        write_pcap(folder / PCAP, connections_from_trace(entries, harness_is_client=case.role == "cs"))
    except ImportError as exc:     # an environment installed before scapy was a dependency: keep the verdict
        pcap_note = f"no pcap: {exc} (pip install -e . brings scapy)"
    v2g_files, v2g_note = _write_v2g_capture(folder, trace, result)
    meta = {"case_id": case.id, "title": case.title, "ocpp": case.ocpp, "role": case.role, "profile": case.profile,
            "verdict": result.verdict.value, "requirement": result.requirement, "dut": dut_name,
            "frames": len(entries), **({"pcap": pcap_note} if pcap_note else {}),
            **({"v2g_pcap": sorted(v2g_files)} if v2g_files else {}), **({"v2g_pcap_error": v2g_note} if v2g_note else {})}
    (folder / META).write_text(json.dumps(redactor.obj(meta), indent=1, ensure_ascii=False), "utf-8")
    return {"frames_json": frames_json, "svg": svg, "dir": folder}


def _write_v2g_capture(folder: Path, trace: Trace | None, result: CaseResult) -> tuple[dict[str, Path], str]:
    """The case's V2G pcap (+ key log, + note), added to the files the Allure result attaches
    (the case variable `attachments`, name → path, which publish.py attaches after this).
    Returns the files and, where writing failed, why (the verdict and other evidence stand)."""
    if trace is None:
        return {}, ""
    from ..iso15118.session_capture import write_captures    # light: scapy only loads if there is a capture

    try:
        files = write_captures(trace, folder)
    except Exception as exc:       # evidence must never cost the case its report
        return {}, f"no V2G pcap: {type(exc).__name__}: {exc}"
    if files and isinstance(result.captures, dict):
        attachments = result.captures.setdefault("attachments", {})
        if isinstance(attachments, dict):  # a case's own `attachments` variable of another shape stays untouched
            attachments.update({name: str(path) for name, path in files.items()})
    return files, ""


def read_case_frames(reports: Path, case_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    folder = case_dir(reports, case_id)
    try:
        entries = json.loads((folder / FRAMES).read_text("utf-8"))
        meta = json.loads((folder / META).read_text("utf-8"))
    except (OSError, ValueError):
        return [], {}
    return entries, meta


def write_run_pcap(reports: Path, case_ids: Iterable[str]) -> Path | None:
    """Merge the run's cases into `reports/traffic.pcap` (one client port per connection
    across the whole run, so Wireshark shows each connection as its own TCP stream).
    None where scapy is missing (the rest of the report does not depend on it)."""
    ports = PortAllocator()
    connections = []
    for case_id in sorted(set(case_ids)):
        entries, meta = read_case_frames(reports, case_id)
        if entries:
            connections += connections_from_trace(entries, harness_is_client=meta.get("role") == "cs", ports=ports)
    try:
        return write_pcap(Path(reports) / RUN_PCAP, connections)
    except ImportError:
        return None


def subprotocols_seen(reports: Path, case_ids: Iterable[str]) -> list[str]:
    """OCPP subprotocols the connections of these cases agreed on (from CONNECT events)."""
    seen: set[str] = set()
    for case_id in case_ids:
        entries, _ = read_case_frames(reports, case_id)
        for e in entries:
            if e.get("kind") == "CONNECT":
                m = re.search(r"subprotocol\s+'?(ocpp[0-9.]+)", str(e.get("raw", "")))
                if m:
                    seen.add(m.group(1))
    return sorted(seen)


# ---------------------------------------------------------------------------- JUnit

def annotate_junit(path: Path, records: list[dict[str, Any]], redactor: Redactor | None = None) -> bool:
    """Make pytest's JUnit XML say what the harness's verdicts mean.

    pytest reports a case that ended in ERROR (the harness's or the test case's fault) as a
    `<failure>`, i.e. as the DUT's; CI systems then blame the device. Here it becomes an
    `<error>`, the suite counts are corrected, and every test case gets `verdict` and (for
    anything but PASS) `requirement` properties. INCONCLUSIVE / NOT APPLICABLE stay
    `<skipped>` with their verdict as the message prefix (pytest writes that already).
    """
    path = Path(path)
    if not path.is_file():
        return False
    redactor = redactor or Redactor(())
    by_id = {r.get("case_id"): r for r in records}
    tree = ET.parse(path)
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for suite in suites:
        if suite.get("name") == "pytest":
            suite.set("name", "charger-harness")
        for tc in suite.findall("testcase"):
            rec = by_id.get(tc.get("name"))
            if rec is None:
                continue
            props = tc.find("properties")
            if props is None:
                props = ET.Element("properties")
                tc.insert(0, props)
            for name, value in (("verdict", rec.get("verdict")), ("requirement", rec.get("requirement"))):
                if value and not any(p.get("name") == name for p in props.findall("property")):
                    ET.SubElement(props, "property", name=name, value=str(value))
            failure = tc.find("failure")
            if rec.get("verdict") == "ERROR" and failure is not None:
                failure.tag = "error"
                failure.set("type", "harness-error")
        tests = suite.findall("testcase")
        suite.set("failures", str(sum(1 for t in tests if t.find("failure") is not None)))
        suite.set("errors", str(sum(1 for t in tests if t.find("error") is not None)))
    body = ET.tostring(root, encoding="unicode")
    path.write_text('<?xml version="1.0" encoding="utf-8"?>' + redactor.text(body), "utf-8")
    return True
