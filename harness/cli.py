"""charger-harness command line: run | list | validate | sim | mutants | report.

`run` is pytest underneath (the plugin does the work), so every pytest option still
applies after `--`; the CLI adds sensible defaults, the report and a summary.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Conformance and interoperability test harness for EV chargers and back ends (OCPP 1.6J / 2.0.1).")
console = Console()
REPORTS = Path("reports")


def _library_paths(paths: list[Path] | None) -> list[Path]:
    if paths:
        return paths
    default = Path("testcases")
    if not default.is_dir():
        console.print("[red]no test library here[/]: run from the charger-harness checkout or pass test-case paths")
        raise typer.Exit(2)
    return [default]


def _plugin_args() -> list[str]:
    # Installed packages register the plugin through the pytest11 entry point; a source
    # checkout without installation needs it named explicitly (twice would be an error).
    registered = any(ep.value.startswith("harness.pytest_plugin") for ep in entry_points(group="pytest11"))
    return [] if registered else ["-p", "harness.pytest_plugin"]


def pytest_command(paths: list[Path], *, duts: list[Path], fault: str | None, results: Path | None,
                   verdicts: Path | None, jobs: int, extra: list[str]) -> list[str]:
    # hypothesis' pytest plugin costs ~1.4 s per process and is useless for YAML cases.
    cmd = [sys.executable, "-m", "pytest", *map(str, paths), *_plugin_args(), "-p", "no:cacheprovider",
           "-p", "no:hypothesispytest",
           "-o", "addopts=", "-o", "testpaths=", "--rootdir", os.getcwd(), "-q", "-rfE"]
    for d in duts:
        cmd += ["--dut", str(d)]
    if fault:
        cmd += ["--sim-fault", fault]
    if results:
        cmd += ["--allure-results", str(results)]
    if verdicts:
        cmd += ["--verdicts-json", str(verdicts)]
    if jobs != 1:
        cmd += ["-n", str(jobs) if jobs > 0 else "auto"]
    return cmd + extra


@app.command()
def run(
    paths: Optional[list[Path]] = typer.Argument(None, help="test cases or folders (default: testcases/)"),
    dut: list[Path] = typer.Option([], "--dut", help="DUT profile(s); default: the built-in simulators"),
    fault: Optional[str] = typer.Option(None, help="run the built-in simulators with this fault"),
    case: list[str] = typer.Option([], "--case", help="run only these case ids (re-run one case)"),
    jobs: int = typer.Option(2, "--jobs", "-j", help="parallel workers (pytest-xdist); 1 for manual DUTs"),
    results: Optional[Path] = typer.Option(None, help="Allure results directory (default: OUT/allure-results; emptied first)"),
    html: bool = typer.Option(True, help="render the HTML report when the Allure CLI is available"),
    pytest_args: list[str] = typer.Option([], "--pytest-arg", help="extra pytest argument (repeatable)"),
    out: Path = typer.Option(REPORTS, "--out", help="this run's reports folder (runs side by side: --out reports/<dut>)"),
    operator: Optional[str] = typer.Option(None, envvar="CHARGER_HARNESS_OPERATOR", help="who runs the tests (default: $USER)"),
    resume: bool = typer.Option(False, "--resume", help="continue the last run with the same DUT profile(s) and "
                                "test library: skip the cases it finished, keep their results and verdicts"),
) -> None:
    """Run the test library (default: against the built-in simulators) and write the report."""
    import shutil

    results = results or out / "allure-results"

    from .cli_dut import call_interruptible, plan_run

    lib = _library_paths(paths)
    plan = plan_run(out / "progress.jsonl", dut, fault, resume, case)   # --case: exact ids
    if not plan.keep_results:
        shutil.rmtree(results, ignore_errors=True)
        from .cli_report import clear_run_outputs

        clear_run_outputs(out)
    results.mkdir(parents=True, exist_ok=True)
    extra = list(pytest_args) + plan.extra
    if plan.serial:   # an operator answers one prompt at a time; one DUT container per run
        jobs, extra = 1, extra + (["-s"] if plan.capture_off else [])
    cmd = pytest_command(lib, duts=dut, fault=fault, results=results, verdicts=results.parent / "verdicts.json",
                         jobs=jobs, extra=extra)
    console.print(f"[bold]charger-harness {__version__}[/] running {', '.join(map(str, lib))} "
                  f"against {', '.join(map(str, dut)) or 'the built-in simulators'}"
                  + (f" with fault [yellow]{fault}[/]" if fault else ""))
    cmd += ["--junitxml", str(out / "junit.xml")] + (["--operator", operator] if operator else [])
    rc = call_interruptible(cmd)   # Ctrl-C: pytest closes cleanly, so --resume can continue
    from .cli_report import finish_run

    finish_run(out, results, html=html)
    raise typer.Exit(rc)


@app.command("list")
def list_cases(paths: Optional[list[Path]] = typer.Argument(None), as_json: bool = typer.Option(False, "--json")) -> None:
    """List test cases with ids, versions, roles, profiles, PICS needs and the faults they catch."""
    from .scenario.loader import CaseLoadError, iter_case_files, load_case

    rows: list[dict[str, Any]] = []
    for f in iter_case_files(_library_paths(paths)):
        try:
            c = load_case(f)
        except CaseLoadError as exc:
            rows.append({"id": f.stem, "title": f"UNLOADABLE: {exc.issues[0].message}", "ocpp": "", "role": "",
                         "profile": "", "pics": [], "faults": []})
            continue
        rows.append({"id": c.id, "title": c.title, "ocpp": c.ocpp, "role": c.role, "profile": c.profile,
                     "use_cases": c.use_cases, "pics": c.pics, "faults": c.faults, "path": str(f)})
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table(title=f"{len(rows)} test cases")
    for col in ("id", "OCPP", "harness plays", "profile", "title", "PICS", "faults"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["ocpp"], {"csms": "CSMS", "cs": "station"}.get(r["role"], r["role"]), r["profile"],
                      r["title"], ", ".join(r["pics"]), ", ".join(r["faults"]))
    console.print(table)


@app.command()
def validate(paths: list[Path] = typer.Argument(..., help="test-case files or folders")) -> None:
    """Check test cases against the format; every problem as file:line:column with a hint."""
    from .scenario.loader import iter_case_files, validate_paths

    files = iter_case_files(paths)
    issues = validate_paths(paths)
    for i in issues:
        print(i)   # plain: file:line:column must stay on one line for editors to jump to it
    bad = len({i.file for i in issues})
    console.print(f"{len(files)} file(s) checked, {bad} with problems, {len(issues)} problem(s)")
    raise typer.Exit(1 if issues else 0)


@app.command()
def sim(
    kind: str = typer.Argument(..., help="cs (charging station) or csms"),
    ocpp: str = typer.Option("2.0.1", help="1.6 or 2.0.1 (cs: comma list offers several)"),
    fault: Optional[str] = typer.Option(None, help="break one behaviour (see --list-faults)"),
    list_faults: bool = typer.Option(False, "--list-faults", help="print the fault catalogue and exit"),
    csms_url: str = typer.Option("ws://127.0.0.1:9000/ocpp", help="cs: base URL of the CSMS to connect to"),
    station_id: str = typer.Option("CH-SIM-001", help="cs: the station id"),
    password: Optional[str] = typer.Option(None, envvar="CHARGER_HARNESS_SIM_PASSWORD", help="Basic auth password"),
    host: str = typer.Option("127.0.0.1", help="csms: listen address"),
    port: int = typer.Option(9000, help="csms: listen port"),
    control_port: int = typer.Option(0, help="HTTP control endpoint port for out-of-band actions (0 = any)"),
    run_for: float = typer.Option(0, help="stop after this many seconds (0 = until Ctrl-C)"),
) -> None:
    """Start a reference simulator standalone (a DUT stand-in for your own back end or for `run`)."""
    from .sim.faults import STATION_FAULTS
    from .sim.csms_faults import CSMS_FAULTS

    if kind not in ("cs", "csms"):
        console.print("[red]kind must be cs or csms[/]")
        raise typer.Exit(2)
    catalogue = STATION_FAULTS if kind == "cs" else CSMS_FAULTS
    if list_faults:
        table = Table(title=f"{'charging-station' if kind == 'cs' else 'CSMS'} simulator faults")
        for col in ("fault", "OCPP", "breaks"):
            table.add_column(col)
        for f in catalogue.values():
            table.add_row(f.name, ", ".join(f.versions), f.description)
        console.print(table)
        return
    if fault and fault not in catalogue:
        console.print(f"[red]unknown fault {fault!r}[/]; try --list-faults")
        raise typer.Exit(2)
    versions = tuple(v.strip() for v in ocpp.split(","))
    asyncio.run(_run_sim(kind, versions, fault, csms_url, station_id, password, host, port, control_port, run_for))


async def _run_sim(kind: str, versions: tuple[str, ...], fault: str | None, csms_url: str, station_id: str,
                   password: str | None, host: str, port: int, control_port: int, run_for: float) -> None:
    from .sim.control import ControlServer

    sim_obj: Any
    if kind == "cs":
        from .sim.api import StationSimConfig
        from .sim.station import StationSimulator

        sim_obj = StationSimulator(StationSimConfig(station_id=station_id, csms_url=csms_url, versions=versions,
                                                    password=password, security_profile=1 if password else 0),
                                   fault=fault)
        where = f"→ {csms_url}/{station_id}"
    else:
        from .sim.api import CsmsSimConfig
        from .sim.csms import CsmsSimulator

        sim_obj = CsmsSimulator(CsmsSimConfig(host=host, port=port, versions=versions,
                                              passwords={station_id: password} if password else {}), fault=fault)
        where = ""
    await sim_obj.start()
    if kind == "csms":
        where = f"listening on {sim_obj.url}/<station id>"
    control = ControlServer(sim_obj, asyncio.get_running_loop(), port=control_port).start()
    console.print(f"[bold]{'charging station' if kind == 'cs' else 'CSMS'} simulator[/] OCPP {', '.join(versions)} "
                  f"{where}" + (f"  fault=[yellow]{fault}[/]" if fault else "")
                  + f"\n  control: POST {control.url}/action/<name>  (JSON body = params)")
    try:
        if run_for > 0:
            await asyncio.sleep(run_for)
        else:
            await asyncio.Event().wait()
    finally:
        control.stop()
        await sim_obj.stop()


@app.command()
def mutants(
    paths: Optional[list[Path]] = typer.Argument(None),
    jobs: int = typer.Option(2, "--jobs", "-j", help="pytest runs in parallel"),
    out: Path = typer.Option(REPORTS / "mutation.json"),
) -> None:
    """Prove every case: PASS against the clean simulators, FAIL against each fault it names."""
    from .scenario.loader import CaseLoadError, iter_case_files, load_case

    lib = _library_paths(paths)
    cases = {}
    for f in iter_case_files(lib):
        try:
            cases[str(f)] = load_case(f)
        except CaseLoadError as exc:
            console.print(f"[red]unloadable[/] {exc}")
    by_fault: dict[str, list[str]] = {}
    for f, c in cases.items():
        for fault in c.faults:
            by_fault.setdefault(fault, []).append(f)
    import tempfile

    # A private scratch folder: two mutants runs in one checkout must not read each other's verdicts.
    tmp = Path(tempfile.mkdtemp(prefix="charger-harness-mutants-"))

    def one(label: str, fault: str | None, files: list[str]) -> tuple[str, dict[str, str]]:
        vfile = tmp / f"{label}.json"
        cmd = pytest_command([Path(x) for x in files], duts=[], fault=fault, results=None, verdicts=vfile,
                             jobs=1, extra=[])
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
        verdicts = json.loads(vfile.read_text()) if vfile.exists() else []
        return label, {v["case_id"]: v["verdict"] for v in verdicts}

    t0 = time.monotonic()
    jobs_list = [("clean", None, list(cases))] + [(f"fault-{n}", n, files) for n, files in sorted(by_fault.items())]
    with console.status(f"running {len(jobs_list)} pytest sessions ({len(by_fault)} faults)…"):
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            outcomes = dict(pool.map(lambda j: one(*j), jobs_list))
    clean = outcomes["clean"]
    report_cases = {}
    killed_count = 0
    for f, c in sorted(cases.items(), key=lambda kv: kv[1].id):
        killed_by = [n for n in c.faults if outcomes.get(f"fault-{n}", {}).get(c.id) == "FAIL"]
        survived = [n for n in c.faults if n not in killed_by]
        passed_clean = clean.get(c.id) == "PASS"
        ok = passed_clean and bool(killed_by) and not survived
        killed_count += ok
        report_cases[c.id] = {"path": f, "clean": clean.get(c.id, "NOT RUN"), "faults": c.faults,
                              "killed_by": killed_by, "survived": survived,
                              "verdicts_under_fault": {n: outcomes.get(f"fault-{n}", {}).get(c.id, "NOT RUN") for n in c.faults},
                              "proven": ok}
    total = len(cases)
    data = {"score": f"{killed_count}/{total}", "killed": killed_count, "total": total,
            "faults": sorted(by_fault), "seconds": round(time.monotonic() - t0, 1), "cases": report_cases}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1))
    table = Table(title="cases not proven")
    for col in ("case", "clean", "faults: verdict"):
        table.add_column(col)
    for cid, r in report_cases.items():
        if not r["proven"]:
            table.add_row(cid, r["clean"], ", ".join(f"{k}: {v}" for k, v in r["verdicts_under_fault"].items()) or "(names no fault)")
    if table.row_count:
        console.print(table)
    console.print(f"wrote {out}")
    print(f"mutation score: {killed_count}/{total}")
    raise typer.Exit(0 if killed_count == total else 1)


@app.command()
def version() -> None:
    """Print the harness version."""
    print(__version__)


from .cli_dut import dut_app  # noqa: E402
app.add_typer(dut_app, name="dut")


from .cli_report import register as _register_report_commands  # noqa: E402  (report, matrix)

_register_report_commands(app)
from .cli_stress import register  # noqa: E402  (stress fleet, stress csms)
register(app)
from .cli_depot import depot_app  # noqa: E402  (depot run, depot charger, depot list)
app.add_typer(depot_app, name="depot")
from .cli_pki import pki_app  # noqa: E402  (pki init)
app.add_typer(pki_app, name="pki")
from .cli_coverage import register as _register_coverage  # noqa: E402  (coverage)
_register_coverage(app)

if __name__ == "__main__":
    app()
