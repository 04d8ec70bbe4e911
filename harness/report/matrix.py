"""Interop matrix: several runs side by side, DUT × test case × verdict.

An interop event tests many DUTs in a day, or one DUT against several back ends; each run
leaves a reports folder (`charger-harness run --out reports/<dut>`), or a copy of one that
a vendor hands over. `build_matrix` reads the folders (`certification-summary.json`, else
`verdicts.json`) and lines the runs up as columns against the union of their test cases as
rows, grouped by OCPP version and certification profile; `write_matrix` writes

    matrix.html   one self-contained page: per-run header (DUT identity, fault, overall
                  verdict), per-profile verdicts, "who failed what", and the full table
                  whose cells link to each run's evidence (sequence diagram, frames JSON)
    matrix.csv    the same table for spreadsheets: per run a verdict column and an
                  evidence column (relative links, like the page)

Links are relative from the output folder to each run's `evidence/<case>/`, so the
matrix keeps working when the folders are archived or moved together.
"""

from __future__ import annotations

import csv
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .evidence import FRAMES, PCAP, SVG, case_dir

VERDICT_ORDER = ("PASS", "FAIL", "INCONCLUSIVE", "NOT APPLICABLE", "ERROR")
SHORT = {"PASS": "PASS", "FAIL": "FAIL", "INCONCLUSIVE": "INCONC", "NOT APPLICABLE": "N/A", "ERROR": "ERROR"}


class MatrixError(ValueError):
    """A run folder cannot be read (message names the folder and what is missing)."""


@dataclass
class Run:
    path: Path
    label: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)   # case id → record

    @property
    def duts(self) -> list[dict[str, Any]]:
        return list(self.summary.get("duts") or [])

    @property
    def dut_names(self) -> str:
        names = [d.get("name", "") for d in self.duts] or sorted({str(r.get("dut", "")) for r in self.verdicts.values()})
        return ", ".join(n for n in names if n)

    @property
    def fault(self) -> str:
        return str((self.summary.get("run") or {}).get("simulator_fault") or "")

    @property
    def overall(self) -> str:
        return str((self.summary.get("totals") or {}).get("verdict") or "")


def load_run(path: Path) -> Run:
    """A run folder: a reports folder, or a folder holding one as `reports/`."""
    path = Path(path)
    if not (path / "certification-summary.json").is_file() and (path / "reports").is_dir():
        path = path / "reports"
    summary: dict[str, Any] = {}
    try:
        summary = json.loads((path / "certification-summary.json").read_text("utf-8"))
    except FileNotFoundError:
        pass
    except ValueError as exc:
        raise MatrixError(f"{path}/certification-summary.json: not JSON ({exc})") from None
    records = summary.get("verdicts")
    if records is None:
        try:
            records = json.loads((path / "verdicts.json").read_text("utf-8"))
        except FileNotFoundError:
            raise MatrixError(f"{path}: no certification-summary.json or verdicts.json — is this a reports "
                              "folder of `charger-harness run`?") from None
        except ValueError as exc:
            raise MatrixError(f"{path}/verdicts.json: not JSON ({exc})") from None
    titles = {c.get("case_id"): c for c in summary.get("cases") or []}
    verdicts: dict[str, dict[str, Any]] = {}
    for r in records:
        rec = dict(r)
        extra = titles.get(rec.get("case_id")) or {}
        rec.setdefault("title", extra.get("title", ""))
        rec["requirement"] = rec.get("requirement") or extra.get("requirement", "")
        verdicts[str(rec.get("case_id"))] = rec
    return Run(path=path, summary=summary, verdicts=verdicts)


def _labels(paths: list[Path]) -> list[str]:
    """Shortest distinct trailing path parts, a trailing `reports` left out ("reports"
    alone says nothing when every run folder is one)."""
    parts = [p.resolve().parts for p in paths]
    parts = [q[:-1] if q[-1] == "reports" and len(q) > 2 else q for q in parts]
    for n in range(1, max((len(q) for q in parts), default=1) + 1):
        labels = ["/".join(q[-n:]) for q in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{p} #{i + 1}" for i, p in enumerate(paths)]    # the same folder named twice


def build_matrix(paths: list[Path], out: Path) -> dict[str, Any]:
    runs = [load_run(p) for p in paths]
    for run, label in zip(runs, _labels([r.path for r in runs])):
        run.label = label
    out = Path(out)
    rows: dict[str, dict[str, Any]] = {}
    for run in runs:
        for cid, r in run.verdicts.items():
            row = rows.setdefault(cid, {"case_id": cid, "ocpp": r.get("ocpp") or "", "profile": r.get("profile") or "",
                                        "title": r.get("title") or "", "cells": {}})
            row["title"] = row["title"] or r.get("title") or ""
            row["cells"][run.label] = {
                "verdict": r.get("verdict", ""), "requirement": r.get("requirement") or "",
                "reason": _first_line(r.get("message", "")), "links": _links(run.path, cid, out),
            }
    ordered = sorted(rows.values(), key=lambda r: (str(r["ocpp"]), str(r["profile"]), r["case_id"]))
    profiles: dict[str, dict[str, str]] = {}
    for run in runs:
        for name, p in (run.summary.get("profiles") or {}).items():
            profiles.setdefault(name, {})[run.label] = p.get("verdict", "")
    return {"runs": runs, "rows": ordered, "profiles": dict(sorted(profiles.items())), "out": out}


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text and text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _links(run_dir: Path, case_id: str, out: Path) -> dict[str, str]:
    folder = case_dir(run_dir, case_id)
    found = {}
    for key, name in (("svg", SVG), ("frames", FRAMES), ("pcap", PCAP)):
        if (folder / name).is_file():
            found[key] = Path(os.path.relpath(folder / name, out)).as_posix()
    return found


def write_matrix(paths: list[Path], out: Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m = build_matrix(paths, out)
    files = {"html": out / "matrix.html", "csv": out / "matrix.csv"}
    files["html"].write_text(render_matrix_html(m), "utf-8")
    with open(files["csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ocpp", "profile", "case_id", "title"]
                   + [x for run in m["runs"] for x in (run.label, f"{run.label} evidence")])
        w.writerow(["", "", "(DUT)", ""] + [x for run in m["runs"] for x in (run.dut_names, "")])
        w.writerow(["", "", "(simulator fault)", ""] + [x for run in m["runs"] for x in (run.fault, "")])
        for row in m["rows"]:
            cells = []
            for run in m["runs"]:
                c = row["cells"].get(run.label)
                cells += [c["verdict"], c["links"].get("svg", "")] if c else ["not run", ""]
            w.writerow([row["ocpp"], row["profile"], row["case_id"], row["title"]] + cells)
    return files


# ---------------------------------------------------------------------------- HTML

CSS = """
*{box-sizing:border-box}body{font:13.5px/1.4 "DejaVu Sans",Arial,Helvetica,sans-serif;color:#1d2329;margin:0;
background:#f4f6f8}main{padding:20px 24px 50px;background:#fff;min-height:100vh}h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:26px 0 8px;border-bottom:2px solid #e3e8ec;padding-bottom:3px}.sub{color:#58636e}
table{border-collapse:collapse;margin:6px 0 12px}th,td{border:1px solid #d5dbe0;padding:4px 7px;text-align:left;
vertical-align:top}th{background:#eef2f5}thead th{position:sticky;top:0;z-index:1}td.c{text-align:center;
white-space:nowrap}.v{display:inline-block;min-width:58px;padding:2px 7px;border-radius:10px;color:#fff;
font-weight:700;font-size:12px;text-align:center;text-decoration:none}.PASS,.PASSED{background:#2e7d32}
.FAIL,.NOT-PASSED{background:#c62828}.INCONCLUSIVE{background:#b26a00}.NOT-APPLICABLE{background:#757575}
.ERROR{background:#6a1b9a}.none{color:#9aa5ae}.grp td{background:#f7f9fa;font-weight:700}small{color:#58636e}
a.ev{font-size:11px;color:#1f4e9c;margin-left:4px}ul{margin:4px 0 10px 18px;padding:0}code{font-size:12px}
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _badge(verdict: str, href: str = "", tip: str = "") -> str:
    cls = _e(verdict.replace(" ", "-"))
    label = _e(SHORT.get(verdict, verdict))
    title = f' title="{_e(tip)}"' if tip else ""
    if href:
        return f'<a class="v {cls}" href="{_e(href)}"{title}>{label}</a>'
    return f'<span class="v {cls}"{title}>{label}</span>'


def render_matrix_html(m: dict[str, Any]) -> str:
    runs: list[Run] = m["runs"]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>Interop matrix</title>',
           f"<style>{CSS}</style></head><body><main>",
           f"<h1>Interop matrix</h1><p class=\"sub\">{len(runs)} runs × {len(m['rows'])} test cases. Each cell links "
           "to that run's sequence diagram of the case; hover for the requirement and reason.</p>"]

    out.append("<h2>Runs</h2><table><thead><tr><th>Run</th><th>DUT</th><th>Identity</th><th>Simulator fault</th>"
               "<th>Date</th><th>Operator</th><th>Result</th></tr></thead>")
    for run in runs:
        idents = []
        for d in run.duts:
            ident = d.get("identity") or {}
            idents.append(" ".join(str(ident[k]) for k in ("vendor", "model", "firmware") if ident.get(k)))
        meta = run.summary.get("run") or {}
        totals = run.summary.get("totals") or {}
        summary_link = Path(os.path.relpath(run.path / "certification-summary.html", m.get("out", "."))).as_posix() \
            if (run.path / "certification-summary.html").is_file() else ""
        result = _badge(run.overall) if run.overall else ""
        if totals:
            result += f" <small>{totals.get('profiles_passed', 0)}/{totals.get('profiles', 0)} profiles</small>"
        out.append(f"<tr><td><b>{_e(run.label)}</b></td><td>{_e(run.dut_names)}</td><td>{_e('; '.join(idents))}</td>"
                   f"<td>{_e(run.fault or '—')}</td><td>{_e(meta.get('date', ''))}</td>"
                   f"<td>{_e(meta.get('operator', ''))}</td><td>{result}"
                   + (f' <a class="ev" href="{_e(summary_link)}">summary</a>' if summary_link else "") + "</td></tr>")
    out.append("</table>")

    if m["profiles"]:
        out.append("<h2>Certification profiles</h2><table><thead><tr><th>Profile</th>"
                   + "".join(f"<th>{_e(r.label)}</th>" for r in runs) + "</tr></thead>")
        for name, by_run in m["profiles"].items():
            out.append(f"<tr><td><b>{_e(name)}</b></td>" + "".join(
                f'<td class="c">{_badge(by_run[r.label]) if by_run.get(r.label) else "<span class=none>—</span>"}</td>'
                for r in runs) + "</tr>")
        out.append("</table>")

    out.append("<h2>Who failed what</h2>")
    any_fail = False
    for run in runs:
        bad = [(row, row["cells"][run.label]) for row in m["rows"]
               if run.label in row["cells"] and row["cells"][run.label]["verdict"] in ("FAIL", "ERROR", "INCONCLUSIVE")]
        if not bad:
            continue
        any_fail = True
        out.append(f"<p><b>{_e(run.label)}</b> — {_e(run.dut_names)}"
                   + (f" (fault <code>{_e(run.fault)}</code>)" if run.fault else "") + "</p><ul>")
        for row, c in bad:
            req = f" <code>{_e(c['requirement'])}</code>" if c["requirement"] else ""
            out.append(f"<li>{_badge(c['verdict'], c['links'].get('svg', ''))} <b>{_e(row['case_id'])}</b>{req}: "
                       f"{_e(c['reason'])}</li>")
        out.append("</ul>")
    if not any_fail:
        out.append("<p>No run has a FAIL, ERROR or INCONCLUSIVE verdict.</p>")

    out.append("<h2>Test cases</h2><table><thead><tr><th>Test case</th>"
               + "".join(f"<th>{_e(r.label)}<br><small>{_e(r.dut_names)}"
                         + (f"<br>fault {_e(r.fault)}" if r.fault else "") + "</small></th>" for r in runs)
               + "</tr></thead>")
    group = None
    for row in m["rows"]:
        g = (row["ocpp"], row["profile"])
        if g != group:
            group = g
            out.append(f'<tr class="grp"><td colspan="{len(runs) + 1}">OCPP {_e(row["ocpp"])} · {_e(row["profile"])}</td></tr>')
        cells = []
        for run in runs:
            c = row["cells"].get(run.label)
            if c is None:
                cells.append('<td class="c"><span class="none" title="not run">—</span></td>')
                continue
            tip = " — ".join(x for x in (c["verdict"], c["requirement"], c["reason"]) if x)
            frames = c["links"].get("frames")
            cells.append(f'<td class="c">{_badge(c["verdict"], c["links"].get("svg", ""), tip)}'
                         + (f'<a class="ev" href="{_e(frames)}">json</a>' if frames else "") + "</td>")
        out.append(f"<tr><td><b>{_e(row['case_id'])}</b><br><small>{_e(row['title'])}</small></td>{''.join(cells)}</tr>")
    out.append("</table></main></body></html>")
    return "\n".join(out) + "\n"
