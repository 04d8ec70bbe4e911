"""`charger-harness stress …`: fleet load against a CSMS under test.

    stress fleet   hold N simulated stations connected to a CSMS, with a message mix; report
                   connection success, message rates, CSMS latency percentiles, violations
    stress csms    serve the built-in CSMS simulator as a load target (bounded trace, own process)

`register(app)` adds the sub-app to the main CLI. With `--locust-workers K` the fleet runs on
Locust instead: a master and K workers on loopback, as subprocesses (the Locust file is
`harness/stress/locustfile.py`; to go beyond one machine, start the same workers elsewhere
with `locust -f … --worker --master-host <master>`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
REPORTS = Path("reports")
LOCUSTFILE = Path(__file__).resolve().parent / "stress" / "locustfile.py"
PASSWORD_ENV = "CHARGER_HARNESS_STRESS_PASSWORD"

stress_app = typer.Typer(no_args_is_help=True, help="Fleet load: thousands of simulated stations against a CSMS.")


def register(app: typer.Typer) -> None:
    app.add_typer(stress_app, name="stress")


# ---- rendering (shared by both engines) ----------------------------------------------------------

def render(report: dict[str, Any]) -> None:
    c, m = report.get("connections", {}), report.get("messages", {})
    cfg = report.get("config", {})
    engine = report.get("engine", "asyncio")
    title = (f"fleet: {cfg.get('stations')} stations → {cfg.get('csms_url')} (OCPP {cfg.get('ocpp')}, "
             f"{engine}{', ' + str(report.get('workers')) + ' workers' if engine == 'locust' else ''})")
    t = Table(title=title, show_header=True)
    for col in ("attempted", "connected", "booted", "refused", "failed", "dropped", "connect ms p50/p99"):
        t.add_column(col, justify="right")
    cm = c.get("connect_ms") or {}
    t.add_row(str(c.get("attempted", 0)), str(c.get("connected", 0)), str(c.get("booted", 0)),
              _with_detail(c.get("refused", 0), c.get("refused_by")), _with_detail(c.get("failed", 0), c.get("failed_by")),
              str(c.get("dropped", 0)), f"{_f(cm.get('p50'))}/{_f(cm.get('p99'))}")
    console.print(t)

    steady = report.get("steady") or {}
    t = Table(title="messages", show_header=True)
    for col in ("", "frames", "per s (whole run)", "per s (steady)"):
        t.add_column(col, justify="right")
    t.add_row("station → CSMS", str(m.get("frames_tx", 0)), str(m.get("tx_per_s", 0)), str(steady.get("tx_per_s", "–")))
    t.add_row("CSMS → station", str(m.get("frames_rx", 0)), str(m.get("rx_per_s", 0)), str(steady.get("rx_per_s", "–")))
    console.print(t)

    t = Table(title="CSMS response latency (ms)", show_header=True)
    t.add_column("action", no_wrap=True, min_width=18)
    for col in ("count", "p50", "p90", "p99", "max", "errors", "t/o", "viol."):
        t.add_column(col, justify="right", no_wrap=True)
    errors, viol = report.get("errors", {}), report.get("violations", {})
    per_action_err: dict[str, int] = {}
    for key, n in (errors.get("call_errors") or {}).items():
        per_action_err[key.split(":", 1)[0]] = per_action_err.get(key.split(":", 1)[0], 0) + n
    for action, h in (report.get("latency_ms") or {}).items():
        t.add_row(action, str(h.get("count", 0)), _f(h.get("p50")), _f(h.get("p90")), _f(h.get("p99")), _f(h.get("max")),
                  str(per_action_err.get(action, 0)), str((errors.get("timeouts") or {}).get(action, 0)),
                  str((viol.get("by_action") or {}).get(action, 0)))
    console.print(t)

    if (m.get("csms_calls") or {}):
        console.print("CSMS-initiated CALLs answered: " + ", ".join(f"{a} ×{n}" for a, n in m["csms_calls"].items()))
    if viol.get("total"):
        console.print(f"[red]schema violations by the CSMS: {viol['total']}[/]")
        for ex in viol.get("examples", [])[:5]:
            console.print(f"  {ex.get('action')} {ex.get('where')}: {ex.get('violation')}")
    if errors.get("total"):
        console.print(f"[yellow]errors: {errors['total']}[/] " + json.dumps(
            {k: v for k, v in errors.items() if k in ("call_errors", "timeouts", "protocol", "harness") and v}))
        for ex in errors.get("examples", [])[:5]:
            console.print(f"  {ex}")
    g = report.get("generator") or {}
    if g:
        parts = [f"wall {g.get('wall_s')} s"]
        if "cpu_s" in g:
            parts.append(f"CPU {g['cpu_s']} s ({g.get('cpu_percent')} % of one core)")
        if "rss_mb" in g:
            parts.append(f"RSS {g['rss_mb']} MB")
        if g.get("loop_lag_ms", {}).get("count"):
            parts.append(f"loop lag p99 {g['loop_lag_ms'].get('p99')} ms")
        nofile = g.get("nofile") or {}
        if nofile and nofile.get("soft") != nofile.get("soft_before"):
            parts.append(f"open-file limit raised {nofile.get('soft_before')} → {nofile.get('soft')}")
        console.print("generator: " + ", ".join(parts))
        if nofile.get("warning"):
            console.print(f"[yellow]{nofile['warning']}[/]")
    if report.get("interrupted"):
        console.print("[yellow]interrupted: the numbers cover the run up to Ctrl-C[/]")


def _with_detail(total: int, detail: dict[str, int] | None) -> str:
    if not total or not detail:
        return str(total)
    return f"{total} (" + ", ".join(f"{k}: {v}" for k, v in detail.items()) + ")"


def _f(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, (int, float)):
        return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"
    return str(v)


def problems(report: dict[str, Any]) -> list[str]:
    c = report.get("connections", {})
    out = []
    if c.get("connected", 0) < c.get("attempted", 0):
        out.append(f"{c['attempted'] - c['connected']} of {c['attempted']} stations did not connect")
    if c.get("dropped"):
        out.append(f"{c['dropped']} connections dropped")
    if report.get("violations", {}).get("total"):
        out.append(f"{report['violations']['total']} schema violations by the CSMS")
    if report.get("errors", {}).get("total"):
        out.append(f"{report['errors']['total']} errors")
    return out


def write_report(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    console.print(f"report: {out}")


# ---- stress fleet -----------------------------------------------------------------------------

@stress_app.command()
def fleet(
    csms: str = typer.Option(..., "--csms", help="CSMS base URL, e.g. ws://127.0.0.1:9000/ocpp (station id appended)"),
    stations: int = typer.Option(100, "--stations", "-n", min=1, max=1_000_000, help="simulated stations"),
    ocpp: str = typer.Option("2.0.1", "--ocpp", help="1.6 or 2.0.1"),
    duration: float = typer.Option(60.0, "--duration", min=0, help="seconds to hold the fleet after the ramp"),
    ramp: float = typer.Option(50.0, "--ramp", min=0.01, help="new connections per second"),
    mix: str = typer.Option("heartbeat=10-30,status=10-60,meter=10-60", "--mix",
                            help="seconds between messages per station: KIND=S or KIND=LO-HI (heartbeat also =boot), 0 = never"),
    password: Optional[str] = typer.Option(None, "--password", envvar=PASSWORD_ENV,
                                           help="HTTP Basic auth password (security profile 1), same for all stations"),
    id_prefix: str = typer.Option("CS-", "--id-prefix", help="station ids: <prefix>00001…"),
    first_index: int = typer.Option(1, "--first-index", min=0, help="number of the first station id"),
    call_timeout: float = typer.Option(30.0, "--call-timeout", min=0.1, help="seconds to wait for each CSMS answer"),
    trace_frames: int = typer.Option(0, "--trace-frames", min=0, max=10_000,
                                     help="last frames kept per station for the report (0 = none)"),
    max_connecting: int = typer.Option(200, "--max-connecting", min=1, help="handshakes in flight at once"),
    out: Path = typer.Option(REPORTS / "stress-fleet.json", "--out", help="JSON report"),
    locust_workers: int = typer.Option(0, "--locust-workers", min=0, max=64,
                                       help="run on Locust: a local master and K workers (loopback subprocesses)"),
    seed: int = typer.Option(1, "--seed"),
) -> None:
    """Hold N simulated charging stations connected to a CSMS with a message mix, and measure it.

    Each station boots, reports its connectors' status, then sends heartbeats, status changes
    and DC MeterValues at the mix's intervals; every frame both ways is schema-validated and
    the CSMS's own CALLs are answered. Ctrl-C ends the run early and still reports.
    """
    from .stress.mix import Mix, MixError

    try:
        parsed_mix = Mix.parse(mix)
    except MixError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2)
    if ocpp not in ("1.6", "2.0.1"):
        console.print(f"[red]--ocpp must be 1.6 or 2.0.1, got {ocpp!r}[/]")
        raise typer.Exit(2)
    if locust_workers:
        report = _run_locust(csms, stations, ocpp, duration, ramp, str(parsed_mix), password, id_prefix,
                             call_timeout, locust_workers)
    else:
        report = _run_asyncio(csms, stations, ocpp, duration, ramp, parsed_mix, password, id_prefix, first_index,
                              call_timeout, trace_frames, max_connecting, seed)
    render(report)
    write_report(report, out)
    found = problems(report)
    if found:
        console.print("[yellow]" + "; ".join(found) + "[/]")
    raise typer.Exit(130 if report.get("interrupted") else 1 if found else 0)


def _run_asyncio(csms: str, stations: int, ocpp: str, duration: float, ramp: float, mix: Any,
                 password: str | None, id_prefix: str, first_index: int, call_timeout: float, trace_frames: int,
                 max_connecting: int, seed: int) -> dict[str, Any]:
    from .stress.fleet import FleetConfig, run_fleet

    try:
        cfg = FleetConfig(csms_url=csms, stations=stations, version=ocpp, duration_s=duration, ramp_per_s=ramp,
                          mix=mix, password=password, id_prefix=id_prefix, first_index=first_index,
                          call_timeout_s=call_timeout, trace_frames=trace_frames, max_connecting=max_connecting,
                          seed=seed)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2)
    console.print(f"fleet: {stations} stations → {csms}, OCPP {ocpp}, ramp {ramp:g}/s, hold {duration:g} s, "
                  f"mix {mix}  (Ctrl-C ends early)")
    interactive = console.is_terminal
    last = [0.0]

    def progress(s: dict[str, Any]) -> None:
        if interactive or s["t"] - last[0] >= 10:
            last[0] = s["t"]
            line = (f"t={s['t']:>6.1f}s  connected {s['connected']}/{stations}  booted {s['booted']}  "
                    f"tx {s['tx']}  rx {s['rx']}  refused {s['refused']}  failed {s['failed']}  "
                    f"dropped {s['dropped']}  errors {s['errors']}  violations {s['violations']}")
            if interactive:
                console.print(line, end="\r", highlight=False)
            else:
                console.print(line, highlight=False)

    report = asyncio.run(run_fleet(cfg, on_progress=progress, install_signal_handlers=True))
    if interactive:
        console.print()
    nofile = report["generator"]["nofile"]
    if nofile.get("soft") != nofile.get("soft_before"):
        console.print(f"raised the open-file limit (RLIMIT_NOFILE) from {nofile['soft_before']} to {nofile['soft']} "
                      f"for {stations} sockets")
    return report


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locust_available() -> bool:
    try:
        import importlib.util
        return importlib.util.find_spec("locust") is not None and importlib.util.find_spec("websocket") is not None
    except (ImportError, ValueError):
        return False


def locust_commands(csms: str, stations: int, ocpp: str, run_time_s: int, ramp: float, mix: str, id_prefix: str,
                    call_timeout: float, workers: int, port: int, report_path: Path) -> tuple[list[str], list[str]]:
    """The master and worker command lines (loopback only)."""
    common = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--ocpp", ocpp, "--mix", mix,
              "--id-prefix", id_prefix, "--call-timeout", f"{call_timeout:g}", "--skip-log-setup"]
    master = [*common, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
              "--expect-workers", str(workers), "--expect-workers-max-wait", "30", "--headless",
              "-u", str(stations), "-r", f"{ramp:g}", "-t", f"{run_time_s}s", "--host", csms,
              "--stop-timeout", "5", "--only-summary", "--fleet-report", str(report_path)]
    worker = [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    return master, worker


def _run_locust(csms: str, stations: int, ocpp: str, duration: float, ramp: float, mix: str, password: str | None,
                id_prefix: str, call_timeout: float, workers: int) -> dict[str, Any]:
    if not locust_available():
        console.print("[red]Locust mode needs the `stress` extra:[/] pip install 'charger-harness[stress]' "
                      "(locust, websocket-client)")
        raise typer.Exit(2)
    return run_locust(csms, stations, ocpp, duration, ramp, mix, password, id_prefix, call_timeout, workers,
                      log=console.print)


def run_locust(csms: str, stations: int, ocpp: str, duration: float, ramp: float, mix: str, password: str | None,
               id_prefix: str, call_timeout: float, workers: int, log: Any = print) -> dict[str, Any]:
    """Start a Locust master and `workers` workers on loopback, wait (bounded) and return the fleet report."""
    run_time = int(stations / ramp + duration + 0.999)
    port = _free_port()
    env = dict(os.environ)
    if password:
        env[PASSWORD_ENV] = password          # never on a command line (visible in `ps`)
    with tempfile.TemporaryDirectory(prefix="stress-locust-") as tmp:
        report_path = Path(tmp) / "fleet.json"
        master_cmd, worker_cmd = locust_commands(csms, stations, ocpp, run_time, ramp, mix, id_prefix, call_timeout,
                                                 workers, port, report_path)
        log(f"locust: master + {workers} workers on 127.0.0.1:{port}, {stations} users at {ramp:g}/s for {run_time} s")
        logs = Path(tmp)
        procs: list[subprocess.Popen[bytes]] = []
        interrupted = False
        try:
            master = subprocess.Popen(master_cmd, env=env, stdout=open(logs / "master.log", "wb"),
                                      stderr=subprocess.STDOUT)
            procs.append(master)
            for i in range(workers):
                procs.append(subprocess.Popen(worker_cmd, env=env, stdout=open(logs / f"worker{i}.log", "wb"),
                                              stderr=subprocess.STDOUT))
            bound = run_time + 30 + 60           # expect-workers wait + shutdown
            try:
                master.wait(timeout=bound)
            except KeyboardInterrupt:
                interrupted = True
                master.send_signal(signal.SIGINT)    # Locust stops the users, collects stats, quits workers
                master.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(f"locust master still running after {bound} s: stopping it")
                master.send_signal(signal.SIGINT)
                master.wait(timeout=30)
        finally:
            deadline = time.monotonic() + 15
            for p in procs:
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.terminate()
                    try:
                        p.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        p.kill()
        if not report_path.exists():
            tail = (logs / "master.log").read_text(errors="replace")[-3000:] if (logs / "master.log").exists() else ""
            raise RuntimeError(f"Locust produced no fleet report (master exit {procs[0].returncode}):\n{tail}")
        report = json.loads(report_path.read_text())
        report["interrupted"] = interrupted
        report.setdefault("config", {})["duration_s"] = duration
        return report


# ---- stress csms ------------------------------------------------------------------------------

@stress_app.command("csms")
def csms_target(
    host: str = typer.Option("127.0.0.1", help="listen address"),
    port: int = typer.Option(9000, help="listen port (0 = any)"),
    duration: float = typer.Option(300.0, min=1, help="seconds to serve (bounded)"),
    ocpp: str = typer.Option("2.0.1,1.6", help="versions offered, preference order"),
    heartbeat_interval: int = typer.Option(60, help="interval given at BootNotification"),
) -> None:
    """Serve the built-in CSMS simulator as a fleet-load target (counts frames, keeps none)."""
    from .stress.target import serve

    versions = tuple(v.strip() for v in ocpp.split(",") if v.strip())
    out = asyncio.run(serve(host, port, duration, versions, heartbeat_interval,
                            ready=lambda url: console.print(f"CSMS simulator for fleet load at {url}/<station id> "
                                                            f"for {duration:g} s (Ctrl-C stops)")))
    console.print(json.dumps(out))
