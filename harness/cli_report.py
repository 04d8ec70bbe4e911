"""Report commands: `report` (HTML report, summary, manifest) and `matrix` (interop matrix).

`register(app)` adds them to the main CLI; `finish_run` is what `run` does after pytest:

1. annotate the JUnit XML and refresh the summary inside the Allure results (the manifest
   now covers JUnit too),
2. render the Allure results into the single-file HTML report, with this DUT's history
   (`<reports>/history/<dut>.jsonl`, Allure 3's JSONL history: trends when the same DUT
   is tested again),
3. rebuild the manifest and the summary pages so they list the HTML report as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

console = Console()
REPORTS = Path("reports")
HISTORY_DIR = "history"


def history_key(summary: dict[str, Any] | None) -> str:
    """One history file per DUT (and per seeded simulator fault: that is another DUT)."""
    if not summary:
        return "unknown-dut"
    names = sorted(d.get("name", "") for d in summary.get("duts") or []) or ["unknown-dut"]
    key = "+".join(names)
    fault = (summary.get("run") or {}).get("simulator_fault")
    if fault:
        key += f"+fault-{fault}"
    slug = re.sub(r"[^a-z0-9+]+", "-", key.lower()).strip("-")
    return slug[:150] or "unknown-dut"


@contextlib.contextmanager
def _history_for(out: Path, summary: dict[str, Any] | None) -> Iterator[tuple[Path | None, Callable[[], None]]]:
    """The history file to render with, and a callback that marks this run as recorded.

    Allure appends a data point on every render; rendering the same run twice (`run`, then
    `report`) must not count it twice in the trend. A run already recorded is rendered with
    a scratch copy of the history: the trend shows, the file stays as it is."""
    if summary is None:
        yield None, lambda: None
        return
    hist = out / HISTORY_DIR / f"{history_key(summary)}.jsonl"
    hist.parent.mkdir(parents=True, exist_ok=True)
    marker = hist.with_name(hist.stem + ".last-run")
    run_id = hashlib.sha256(json.dumps([(summary.get("run") or {}).get("date"), summary.get("verdicts")],
                                       sort_keys=True, default=str).encode()).hexdigest()[:24]
    if marker.is_file() and marker.read_text("utf-8").strip() == run_id:
        with tempfile.TemporaryDirectory(prefix="charger-harness-history-") as scratch:
            copy = Path(scratch) / hist.name
            if hist.is_file():
                shutil.copy(hist, copy)
            yield copy, lambda: None
        return
    yield hist, lambda: marker.write_text(run_id + "\n", "utf-8")


def finish_run(out: Path, results: Path | None = None, *, html: bool = True, history: bool = True) -> int:
    """Everything after the pytest session; returns 0, or 1 when the HTML report could not
    be rendered although asked for (the summary and the evidence are written regardless)."""
    from .report.html import AllureUnavailable, render_html
    from .report.summary_html import SUMMARY_HTML, finalize_reports

    out = Path(out)
    results = Path(results) if results else out / "allure-results"
    summary = finalize_reports(out, allure=results == out / "allure-results")
    rc = 0
    if html:
        name = "charger-harness: " + ", ".join(d.get("name", "") for d in (summary or {}).get("duts") or [])
        with _history_for(out, summary if history else None) as (hist, record):
            try:
                index = render_html(results, out / "html", history=hist, name=name.rstrip(": "))
                record()
                console.print(f"HTML report: {index}")
            except AllureUnavailable as exc:
                console.print(f"[yellow]HTML report not rendered:[/] {exc}")
                rc = 1
        summary = finalize_reports(out) or summary
    if summary is None:
        console.print(f"[yellow]no certification summary in {out}[/] (no case ran, or no `run` wrote this folder)")
        return rc
    t = summary["totals"]
    colour = "green" if t["passed"] else "red"
    console.print(f"Certification summary: {out / SUMMARY_HTML}  [{colour}]{t['verdict']}[/] "
                  f"({t['profiles_passed']}/{t['profiles']} profiles)")
    for f in summary.get("fails") or []:
        console.print(f"  [red]FAIL[/] {f['case_id']} [{f['profile']}] {f['requirement'] or '(no requirement id)'}: "
                      f"{f['reason']}")
    console.print(f"Evidence: {out / 'evidence'}/  traffic: {out / 'traffic.pcap'}  JUnit: {out / 'junit.xml'}  "
                  f"manifest: {out / 'SHA256SUMS'}")
    return rc


def report(
    out: Path = typer.Option(REPORTS, "--out", help="the run's reports folder (as given to `run --out`)"),
    results: Optional[Path] = typer.Option(None, help="Allure results (default: OUT/allure-results)"),
    html: bool = typer.Option(True, help="render the single-file HTML report (npm allure 3 CLI)"),
    history: bool = typer.Option(True, help="keep per-DUT history for trends (OUT/history/<dut>.jsonl)"),
) -> None:
    """Render the single-file HTML report and the certification summary of a run (no network)."""
    raise typer.Exit(finish_run(out, results, html=html, history=history))


def matrix(
    runs: list[Path] = typer.Argument(..., help="reports folders of several runs (or folders holding reports/)"),
    out: Path = typer.Option(REPORTS / "matrix", "--out", help="where matrix.html and matrix.csv go"),
) -> None:
    """Interop matrix: DUT × test case × verdict across runs, with links to each run's evidence."""
    from .report.matrix import MatrixError, build_matrix, write_matrix

    try:
        files = write_matrix(runs, out)
    except MatrixError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    m = build_matrix(runs, out)
    for run in m["runs"]:
        fails = [row["case_id"] for row in m["rows"] if row["cells"].get(run.label, {}).get("verdict") == "FAIL"]
        console.print(f"{run.label}: {run.dut_names}" + (f" (fault {run.fault})" if run.fault else "")
                      + f" — {run.overall or 'no summary'}" + (f"; FAIL: {', '.join(fails)}" if fails else ""))
    console.print(f"matrix: {files['html']}  {files['csv']}")


def register(app: typer.Typer) -> None:
    """Add `report` and `matrix` to the main CLI."""
    app.command("report")(report)
    app.command("matrix")(matrix)


def clear_run_outputs(out: Path) -> None:
    """A fresh run replaces the previous run's evidence in `out` (history stays)."""
    out = Path(out)
    for name in ("evidence", "html"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("traffic.pcap", "junit.xml", "SHA256SUMS", "certification-summary.html"):
        (out / name).unlink(missing_ok=True)
