"""The certification summary of a run: its content, and its standalone HTML page.

A procurement team signs a charger off on this page, so it says everything on one screen
and proves it: who was tested (DUT identity as configured and as the DUT announced
itself, OCPP versions and security profile, PICS/PIXIT without secrets), with what
(harness version, test-library content hash), when and by whom; the five verdict counts
and the verdict of every certification profile (`summary.summarize`); every FAIL with its
requirement id, step and one-line reason and links to its evidence; every other case that
did not pass; and the SHA-256 manifest of the evidence files.

Files (in the run's reports folder):

    certification-summary.json   the content (a superset of the earlier summary JSON)
    certification-summary.html   one file, inline CSS, no script, no external reference:
                                 opens from disk, prints, can be mailed or archived
    SHA256SUMS                   the manifest (`manifest.py`)

and, inside `allure-results/`, the same page as an Allure *global attachment* (Allure 3
shows it on the report's overview) plus per-profile verdicts in the environment.

`publish_session` (end of the pytest session) builds it first; `finalize_reports` rebuilds
the manifest and the pages later (after JUnit and the HTML report exist) from the JSON, so
it needs nothing but the folder.
"""

from __future__ import annotations

import getpass
import html
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Iterable

from ..dut.profile import DutProfile
from .evidence import JUNIT_FILE, RUN_PCAP, annotate_junit, case_dir, evidence_links, subprotocols_seen
from .manifest import MANIFEST_FILE, build_manifest, write_manifest
from .redact import Redactor

SUMMARY_JSON = "certification-summary.json"
SUMMARY_HTML = "certification-summary.html"
ALLURE_ATTACHMENT = "charger-harness-summary-attachment.html"
ALLURE_GLOBALS = "charger-harness-summary-globals.json"
SCHEMA = "charger-harness/certification-summary/1"
VERDICT_ORDER = ("PASS", "FAIL", "INCONCLUSIVE", "NOT APPLICABLE", "ERROR")
KIND_NAMES = {"charging_station": "charging station", "csms": "CSMS"}
ROLE_DUT_KIND = {"csms": "charging_station", "cs": "csms"}


def operator_name(explicit: str | None = None) -> str:
    """Who ran the tests: `--operator`, else $CHARGER_HARNESS_OPERATOR, else the login name."""
    for candidate in (explicit, os.environ.get("CHARGER_HARNESS_OPERATOR"), os.environ.get("USER")):
        if candidate and candidate.strip():
            return candidate.strip()
    try:
        return getpass.getuser()
    except Exception:   # no passwd entry (containers)
        return "unknown"


def _first_line(text: str, limit: int = 300) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _case_entry(r: dict[str, Any], reports: Path) -> dict[str, Any]:
    case_id = str(r.get("case_id"))
    return {
        "case_id": r.get("case_id"), "title": r.get("title", ""), "ocpp": r.get("ocpp"), "profile": r.get("profile"),
        "role": r.get("role"), "mandatory": r.get("mandatory", True), "verdict": r.get("verdict"),
        "requirement": r.get("requirement") or "", "step": r.get("failed_step") or "",
        "step_name": r.get("failed_step_name") or "", "reason": _first_line(r.get("message", "")),
        "dut": r.get("dut", ""),
        "evidence": evidence_links(case_id) if case_dir(reports, case_id).is_dir() else {},
    }


def certification_summary(records: list[dict[str, Any]], profiles: list[DutProfile], base: dict[str, Any], *,
                          harness_version: str, library_hash: str, library_root: Path, fault: str | None,
                          operator: str | None, reports: Path) -> dict[str, Any]:
    """The full summary: `base` (the per-profile counts and verdicts from `summary_of`)
    plus run, DUT, failure and evidence sections. Not yet redacted."""
    duts = []
    for p in profiles:
        mine = [r for r in records if r.get("dut") == p.name]
        if not mine and records:
            continue     # a profile no case ran against (e.g. the CSMS simulator in a station-only run)
        seen: dict[str, str] = {}
        for r in mine:
            seen.update({k: str(v) for k, v in (r.get("dut_identity") or {}).items() if v})
        view = p.public_view()
        duts.append({
            "name": p.name, "kind": KIND_NAMES.get(p.kind, p.kind), "adapter": p.adapter,
            "station_id": p.station_id, "endpoint": p.endpoint,
            "identity": {**{k: str(v) for k, v in p.identity.items()}, **seen}, "identity_announced": seen,
            "ocpp_versions": list(p.ocpp_versions),
            "ocpp_versions_tested": sorted({str(r.get("ocpp")) for r in mine if r.get("verdict") in ("PASS", "FAIL")}),
            "subprotocols_seen": subprotocols_seen(reports, [str(r.get("case_id")) for r in mine]),
            "security_profile": p.security_profile, "pics": view["pics"], "pixit": view["pixit"],
            "cases": len(mine),
        })
    root = Path(library_root)
    try:
        root_name = root.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        root_name = root.name
    cases = [_case_entry(r, reports) for r in sorted(records, key=lambda r: (str(r.get("ocpp")), str(r.get("profile")),
                                                                       str(r.get("case_id"))))]
    return {
        "schema": SCHEMA,
        **base,
        "run": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "operator": operator_name(operator),
            "harness_version": harness_version, "python": platform.python_version(), "host": platform.node(),
            "test_library": {"root": root_name, "sha256": library_hash,
                             "files": sum(1 for _ in root.rglob("TC_*.y*ml")) if root.is_dir() else 0},
            "simulator_fault": fault or "", "cases_run": len(records),
        },
        "duts": duts,
        "fails": [c for c in cases if c["verdict"] == "FAIL"],
        "not_passed": [c for c in cases if c["verdict"] in ("ERROR", "INCONCLUSIVE")],
        "cases": cases,
    }


# ---------------------------------------------------------------------------- files

def write_summary(reports: Path, summary: dict[str, Any], redactor: Redactor) -> dict[str, Path]:
    """Write the JSON and the HTML page (redacted), with the current manifest of `reports`."""
    reports = Path(reports)
    reports.mkdir(parents=True, exist_ok=True)
    summary = dict(summary)
    entries = build_manifest(reports)
    write_manifest(reports, entries)
    summary["manifest"] = {"algorithm": "sha256", "file": MANIFEST_FILE, "entries": entries}
    summary = redactor.obj(summary)
    paths = {"json": reports / SUMMARY_JSON, "html": reports / SUMMARY_HTML, "manifest": reports / MANIFEST_FILE}
    paths["json"].write_text(json.dumps(summary, indent=1, ensure_ascii=False, default=str), "utf-8")
    paths["html"].write_text(redactor.text(render_summary_html(summary)), "utf-8")
    return paths


def write_allure_summary(results: Path, summary: dict[str, Any], redactor: Redactor) -> None:
    """The page as an Allure 3 global attachment, and per-profile verdicts in the environment."""
    from .allure_writer import write_environment

    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    page = redactor.text(render_summary_html(redactor.obj(summary), links=False))
    (results / ALLURE_ATTACHMENT).write_text(page, "utf-8")
    globals_ = {"attachments": [{"name": "Certification summary", "source": ALLURE_ATTACHMENT, "type": "text/html",
                                 "timestamp": int(time.time() * 1000)}], "errors": []}
    (results / ALLURE_GLOBALS).write_text(json.dumps(globals_, indent=1), "utf-8")
    # "Cert." keys sort before the DUT.* entries (the overview shows the first few) and stay
    # short enough that the report does not cut off the profile name.
    env = {"Cert. verdict": _verdict_line(summary["totals"]), "Operator": summary["run"]["operator"]}
    for name, p in summary["profiles"].items():
        env[f"Cert. {name}"] = _verdict_line(p)
    fails = summary.get("fails") or []
    if fails:
        env["Cert. FAIL"] = "; ".join(f"{f['case_id']} ({f['requirement'] or 'no requirement id'})"
                                              for f in fails)
    write_environment(results, env, redactor)


def _verdict_line(p: dict[str, Any]) -> str:
    counts = ", ".join(f"{p['counts'][v]} {v}" for v in VERDICT_ORDER if p["counts"].get(v))
    return f"{p['verdict']} ({counts or 'no cases'})"


def finalize_reports(reports: Path, *, allure: bool = False) -> dict[str, Any] | None:
    """After the pytest session: annotate the JUnit XML, rebuild the manifest (now with
    JUnit and, when rendered, the HTML report) and the summary pages from the summary JSON.
    With `allure`, refresh the Allure summary attachment too (before rendering only: the
    rendered report embeds it). Returns the summary, or None when the folder has none."""
    reports = Path(reports)
    path = reports / SUMMARY_JSON
    try:
        summary = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if summary.get("schema") != SCHEMA:
        return None
    annotate_junit(reports / JUNIT_FILE, summary.get("verdicts") or [])
    redactor = Redactor(())   # the JSON is redacted already; no secret is known here
    if allure and (reports / "allure-results").is_dir():
        write_allure_summary(reports / "allure-results", summary, redactor)
    write_summary(reports, summary, redactor)
    return json.loads(path.read_text("utf-8"))


# ---------------------------------------------------------------------------- HTML

CSS = """
:root{--pass:#2e7d32;--fail:#c62828;--inc:#b26a00;--na:#616161;--err:#6a1b9a;--line:#d5dbe0}
*{box-sizing:border-box}body{font:14px/1.45 "DejaVu Sans",Arial,Helvetica,sans-serif;color:#1d2329;margin:0;
background:#f4f6f8}main{max-width:1180px;margin:0 auto;padding:24px 28px 60px;background:#fff;min-height:100vh}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:30px 0 10px;padding-bottom:4px;border-bottom:2px solid
#e3e8ec}h3{font-size:15px;margin:16px 0 6px}.sub{color:#58636e;margin:0 0 14px}
table{border-collapse:collapse;width:100%;margin:6px 0 10px}th,td{border:1px solid var(--line);padding:5px 8px;
text-align:left;vertical-align:top}th{background:#eef2f5;font-weight:600}td.n{text-align:right;
font-variant-numeric:tabular-nums}table.kv th{width:230px}code,.mono{font-family:"DejaVu Sans Mono",Consolas,
monospace;font-size:12.5px}.hash{word-break:break-all}
.badge{display:inline-block;padding:3px 10px;border-radius:12px;color:#fff;font-weight:700;font-size:13px;
letter-spacing:.02em;white-space:nowrap}.PASSED,.PASS{background:var(--pass)}.NOT-PASSED,.FAIL{background:var(--fail)}
.INCONCLUSIVE{background:var(--inc)}.NOT-APPLICABLE{background:var(--na)}.ERROR{background:var(--err)}
.overall{display:flex;gap:18px;align-items:center;margin:14px 0 4px;padding:14px 18px;border-radius:8px;
border:1px solid var(--line);background:#fafbfc}.overall .badge{font-size:18px;padding:6px 16px}
.cnt0{color:#9aa5ae}.cntF{color:var(--fail);font-weight:700}.cntE{color:var(--err);font-weight:700}
.cntI{color:var(--inc);font-weight:700}.cntP{color:var(--pass);font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px}.card h3{margin-top:4px}
.pics span{display:inline-block;margin:2px 6px 2px 0;padding:1px 8px;border-radius:10px;font-size:12.5px;
border:1px solid var(--line)}.pics .yes{background:#e8f5e9}.pics .no{background:#f5f5f5;color:#777;
text-decoration:line-through}details{margin:8px 0}summary{cursor:pointer;font-weight:600;color:#37474f}
.ok{color:var(--pass);font-weight:600}footer{margin-top:36px;color:#78848f;font-size:12.5px}
a{color:#1f4e9c}@media print{body{background:#fff}main{padding:0}details{display:block}}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _badge(verdict: str) -> str:
    return f'<span class="badge {_e(verdict.replace(" ", "-"))}">{_e(verdict)}</span>'


def _count_cell(verdict: str, n: int) -> str:
    cls = "cnt0" if not n else {"FAIL": "cntF", "ERROR": "cntE", "INCONCLUSIVE": "cntI", "PASS": "cntP"}.get(verdict, "")
    return f'<td class="n {cls}">{n}</td>'


def _kv(rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _links(case: dict[str, Any], links: bool) -> str:
    ev = case.get("evidence") or {}
    if not links or not ev:
        return ""
    return " · ".join(f'<a href="{_e(ev[k])}">{label}</a>' for k, label in (("svg", "diagram"), ("frames", "frames"),
                                                                            ("pcap", "pcap")) if ev.get(k))


def render_summary_html(summary: dict[str, Any], *, links: bool = True) -> str:
    """The summary as one self-contained HTML page (inline CSS only). `links`: link each
    case to its evidence files (relative to the reports folder; off inside Allure)."""
    run = summary.get("run", {})
    totals = summary["totals"]
    duts = summary.get("duts", [])
    title = "Certification summary — " + (", ".join(d["name"] for d in duts) or "charger-harness run")
    out: list[str] = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>Certification summary</h1><p class=\"sub\">{_e(', '.join(d['name'] for d in duts))} · "
        f"{_e(run.get('date', ''))} · operator {_e(run.get('operator', ''))}</p>",
        f'<div class="overall">{_badge(totals["verdict"])}<div><b>{totals["profiles_passed"]} of {totals["profiles"]}'
        f" certification profiles passed</b> · {totals['total']} test cases: "
        + ", ".join(f"{totals['counts'].get(v, 0)} {v}" for v in VERDICT_ORDER)
        + (f"<br>simulator fault seeded: <code>{_e(run['simulator_fault'])}</code>" if run.get("simulator_fault") else "")
        + "</div></div>",
    ]

    out.append("<h2>Verdicts per certification profile</h2>")
    out.append("<table><tr><th>Profile</th>" + "".join(f'<th class="n">{_e(v)}</th>' for v in VERDICT_ORDER)
               + '<th class="n">Total</th><th>Mandatory</th><th>Profile verdict</th></tr>')
    for name, p in summary["profiles"].items():
        out.append(f"<tr><td><b>{_e(name)}</b></td>" + "".join(_count_cell(v, p["counts"].get(v, 0)) for v in VERDICT_ORDER)
                   + f'<td class="n">{p["total"]}</td><td class="n">{p.get("mandatory", "")}</td>'
                   f"<td>{_badge(p['verdict'])}</td></tr>")
    out.append("<tr><th>Total</th>" + "".join(_count_cell(v, totals["counts"].get(v, 0)) for v in VERDICT_ORDER)
               + f'<th class="n">{totals["total"]}</th><th></th><th>{_badge(totals["verdict"])}</th></tr></table>')
    out.append('<p class="sub">A profile is PASSED only if every mandatory case in it is PASS (or NOT APPLICABLE '
               "per the DUT's PICS); a FAIL, ERROR or INCONCLUSIVE in a mandatory case makes it NOT PASSED. "
               "A profile whose cases were all NOT APPLICABLE proved nothing and says so.</p>")

    fails = summary.get("fails") or []
    out.append(f"<h2>Failures (FAIL) — {len(fails)}</h2>")
    if fails:
        out.append("<table><tr><th>Test case</th><th>Profile</th><th>Requirement</th><th>Step</th><th>Reason</th>"
                   "<th>Evidence</th></tr>")
        for f in fails:
            step = f"{f['step']}. {f['step_name']}" if f.get("step") else ""
            out.append(f"<tr><td><b>{_e(f['case_id'])}</b><br>{_e(f.get('title', ''))}</td><td>{_e(f['profile'])}"
                       f"<br><small>OCPP {_e(f['ocpp'])}</small></td><td><code>{_e(f['requirement'] or '—')}</code></td>"
                       f"<td>{_e(step)}</td><td>{_e(f['reason'])}</td><td>{_links(f, links)}</td></tr>")
        out.append("</table>")
    else:
        out.append('<p class="ok">No test case failed.</p>')
    other = summary.get("not_passed") or []
    if other:
        out.append(f"<h3>Not proven: ERROR (harness or test case) and INCONCLUSIVE — {len(other)}</h3>")
        out.append("<table><tr><th>Test case</th><th>Profile</th><th>Verdict</th><th>Reason</th><th>Evidence</th></tr>")
        for c in other:
            out.append(f"<tr><td><b>{_e(c['case_id'])}</b><br>{_e(c.get('title', ''))}</td><td>{_e(c['profile'])}</td>"
                       f"<td>{_badge(c['verdict'])}</td><td>{_e(c['reason'])}</td><td>{_links(c, links)}</td></tr>")
        out.append("</table>")

    out.append("<h2>Device(s) under test</h2><div class=\"grid\">")
    for d in duts:
        ident = d.get("identity") or {}
        announced = d.get("identity_announced") or {}
        rows: list[tuple[str, Any]] = [("role", _e(d["kind"])), ("profile", _e(d["name"]))]
        for key in ("vendor", "model", "serial", "firmware"):
            value = ident.get(key)
            src = " <small>(announced)</small>" if key in announced else (" <small>(profile)</small>" if value else "")
            rows.append((key, (_e(value) + src) if value else '<span class="cnt0">not reported</span>'))
        rows += [(k, _e(v)) for k, v in ident.items() if k not in ("vendor", "model", "serial", "firmware")]
        rows += [
            ("OCPP versions (profile)", _e(", ".join(d.get("ocpp_versions", [])))),
            ("OCPP versions tested", _e(", ".join(d.get("ocpp_versions_tested", [])) or "—")),
            ("subprotocols seen", _e(", ".join(d.get("subprotocols_seen", [])) or "—")),
            ("security profile", _e(d.get("security_profile"))),
            ("station id", f"<code>{_e(d.get('station_id'))}</code>"),
            ("adapter", _e(d.get("adapter"))),
            ("test cases run", _e(d.get("cases"))),
        ]
        pics = d.get("pics") or {}
        pics_html = ('<div class="pics">' + "".join(f'<span class="{"yes" if v else "no"}">{_e(k)}</span>'
                                                   for k, v in sorted(pics.items())) + "</div>") if pics else "—"
        pixit = d.get("pixit") or {}
        pixit_html = ("<details><summary>PIXIT (" + str(len(pixit)) + " parameters)</summary>"
                      + _kv((k, f"<code>{_e(v)}</code>") for k, v in sorted(pixit.items())) + "</details>") if pixit else ""
        out.append(f'<div class="card"><h3>{_e(d["name"])}</h3>{_kv(rows)}<b>PICS</b> (features declared)'
                   f"{pics_html}{pixit_html}</div>")
    out.append("</div>")

    lib = run.get("test_library", {})
    out.append("<h2>Run</h2>")
    out.append(_kv([
        ("date", _e(run.get("date"))), ("operator", _e(run.get("operator"))),
        ("harness version", f"charger-harness {_e(run.get('harness_version'))} (Python {_e(run.get('python'))})"),
        ("test library", f"{_e(lib.get('root'))} · {_e(lib.get('files'))} case files"),
        ("test library SHA-256", f'<code class="hash">{_e(lib.get("sha256"))}</code>'),
        ("simulator fault", _e(run.get("simulator_fault") or "none")),
        ("host", _e(run.get("host"))), ("test cases run", _e(run.get("cases_run"))),
    ]))

    cases = summary.get("cases") or []
    out.append(f"<h2>All test cases — {len(cases)}</h2><details open><summary>by OCPP version and profile</summary>"
               "<table><tr><th>OCPP</th><th>Profile</th><th>Test case</th><th>Verdict</th><th>Requirement / reason</th>"
               "<th>Evidence</th></tr>")
    for c in cases:
        why = "" if c["verdict"] == "PASS" else " ".join(x for x in (f"<code>{_e(c['requirement'])}</code>" if c["requirement"] else "",
                                                                     _e(c["reason"])) if x)
        opt = "" if c.get("mandatory", True) else " <small>(optional)</small>"
        out.append(f"<tr><td>{_e(c['ocpp'])}</td><td>{_e(c['profile'])}</td><td><b>{_e(c['case_id'])}</b>{opt}"
                   f"<br><small>{_e(c.get('title', ''))}</small></td><td>{_badge(c['verdict'])}</td><td>{why}</td>"
                   f"<td>{_links(c, links)}</td></tr>")
    out.append("</table></details>")

    manifest = summary.get("manifest") or {}
    entries = manifest.get("entries") or []
    out.append(f"<h2>Evidence manifest (SHA-256) — {len(entries)} files</h2>")
    out.append(f"<p class=\"sub\">Check with <code>sha256sum -c {_e(manifest.get('file', MANIFEST_FILE))}</code> in the "
               f"reports folder. The run's traffic as a Wireshark capture: <code>{_e(RUN_PCAP)}</code>; JUnit XML: "
               f"<code>{_e(JUNIT_FILE)}</code>. This page and its JSON embed the manifest and so are not listed in it.</p>")
    if entries:
        out.append(f"<details><summary>{len(entries)} files</summary><table><tr><th>File</th><th class=\"n\">Bytes</th>"
                   "<th>SHA-256</th></tr>")
        out.extend(f"<tr><td class=\"mono\">{_e(e['path'])}</td><td class=\"n\">{e['bytes']}</td>"
                   f"<td class=\"mono hash\">{_e(e['sha256'])}</td></tr>" for e in entries)
        out.append("</table></details>")
    out.append(f"<footer>charger-harness {_e(run.get('harness_version', ''))} · {_e(summary.get('schema', SCHEMA))}"
               "</footer></main></body></html>")
    return "\n".join(out) + "\n"
