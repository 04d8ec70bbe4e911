"""Fleet load: how many simulated charging stations one process holds against the built-in CSMS.

The CSMS simulator runs in a *separate process* (`python -m harness.stress.target`), so on
this 2-core machine the generator and the CSMS compete for the cores as a real fleet and a
real back end would. The generator (this process) ramps up N stations, each booting,
reporting its connectors' status and then sending heartbeats every 10–30 s and status
changes and DC MeterValues every 10–60 s; every frame both ways is schema-validated. After
the ramp it holds them for --hold seconds and prints: connected count, messages per second,
CSMS response latency percentiles per action, CPU and RSS of the generator (and of the
CSMS), event-loop lag of the generator, and whether the DESIGN.md target was met:

    ≥ 2,000 stations held connected by one 2-core machine, heartbeats, status and meter
    values flowing, frames schema-validated.

    python bench/fleet.py [--stations 2000] [--hold 60] [--ramp 100] [--ocpp 2.0.1]
                          [--mix heartbeat=10-30,status=10-60,meter=10-60] [--json reports/bench-fleet.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.stress.fleet import FleetConfig, run_fleet  # noqa: E402
from harness.stress.mix import Mix  # noqa: E402
from harness.stress.stats import ProcessUsage  # noqa: E402

TARGET_STATIONS = 2000


def start_csms(duration: float, uvloop: bool, gc_freeze: bool) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "harness.stress.target", "--port", "0", "--duration", f"{duration:g}"]
    if gc_freeze:
        cmd.append("--gc-freeze")
    if uvloop:
        cmd.append("--uvloop")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("READY "):
            return proc, line.split(" ", 1)[1].strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"CSMS simulator did not start: {line!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stations", type=int, default=TARGET_STATIONS)
    ap.add_argument("--hold", type=float, default=60.0, help="seconds held after the ramp")
    ap.add_argument("--ramp", type=float, default=100.0, help="new connections per second")
    ap.add_argument("--ocpp", default="2.0.1", choices=("2.0.1", "1.6"))
    ap.add_argument("--mix", default="heartbeat=10-30,status=10-60,meter=10-60")
    ap.add_argument("--uvloop", action="store_true", help="run both processes on uvloop (if installed)")
    ap.add_argument("--csms-gc-freeze", action="store_true",
                    help="also spare the CSMS simulator's GC the connected stations (it is untuned by default)")
    ap.add_argument("--json", type=Path, default=None, help="also write the full report here")
    args = ap.parse_args()

    if args.uvloop:
        import uvloop  # type: ignore[import-not-found]
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    ramp_s = args.stations / args.ramp
    csms_budget = 2 * ramp_s + args.hold + 90          # the CSMS outlives the generator's bounded run
    proc, url = start_csms(csms_budget, args.uvloop, args.csms_gc_freeze)
    csms_usage = ProcessUsage(proc.pid)
    cfg = FleetConfig(csms_url=url, stations=args.stations, version=args.ocpp, duration_s=args.hold,
                      ramp_per_s=args.ramp, mix=Mix.parse(args.mix))
    print(f"fleet bench: {args.stations} stations, OCPP {args.ocpp}, ramp {args.ramp:g}/s, hold {args.hold:g} s, "
          f"mix {cfg.mix}; CSMS simulator pid {proc.pid} at {url}", flush=True)
    load0 = os.getloadavg()
    csms_cpu0, t0 = csms_usage.cpu_seconds(), time.monotonic()
    last = [0.0]

    def progress(s: dict) -> None:
        if s["t"] - last[0] >= 10:
            last[0] = s["t"]
            print(f"  t={s['t']:6.1f}s connected={s['connected']:5d} tx={s['tx']:7d} rx={s['rx']:7d} "
                  f"errors={s['errors']} dropped={s['dropped']}", flush=True)

    try:
        report = asyncio.run(run_fleet(cfg, on_progress=progress, install_signal_handlers=True))
        csms_cpu = csms_usage.cpu_seconds() - csms_cpu0
        csms_rss = csms_usage.rss_mb()
        wall = time.monotonic() - t0
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    csms_own = json.loads(out.strip().splitlines()[-1]) if out and out.strip() else {}

    c, s, g = report["connections"], report["steady"], report["generator"]
    print()
    print(f"connected          {c['connected']}/{c['attempted']} attempted (peak {c['peak_connected']}, "
          f"held at end {s.get('connected_at_end')}); refused {c['refused']} failed {c['failed']} "
          f"dropped {c['dropped']}")
    print(f"ramp               {report['phases'].get('ramp_s')} s; connect p50/p99 "
          f"{c['connect_ms'].get('p50')}/{c['connect_ms'].get('p99')} ms")
    print(f"steady ({s.get('seconds')} s)    {s.get('calls_per_s')} CALL/s; frames tx {s.get('tx_per_s')}/s "
          f"rx {s.get('rx_per_s')}/s")
    print("latency (ms)       action                    count     p50     p90     p99     max")
    for action, h in report["latency_ms"].items():
        print(f"                   {action:<24}{h['count']:>7} {h.get('p50', 0):>7} {h.get('p90', 0):>7} "
              f"{h.get('p99', 0):>7} {h.get('max', 0):>7}")
    print(f"violations         {report['violations']['total']}; errors {report['errors']['total']} "
          f"{report['errors']['call_errors'] or ''}{report['errors']['timeouts'] or ''}")
    print(f"generator          CPU {g['cpu_s']} s over {g['wall_s']} s = {g['cpu_percent']} % of one core "
          f"(steady {s.get('generator_cpu_percent')} %), RSS {g['rss_mb']} MB, "
          f"loop lag p99 {g['loop_lag_ms'].get('p99')} ms max {g['loop_lag_ms'].get('max')} ms")
    print(f"CSMS simulator     CPU {csms_cpu:.1f} s over {wall:.1f} s = {100 * csms_cpu / wall:.1f} % of one core, "
          f"RSS {csms_rss:.1f} MB")
    for who, gcp in (("generator", g.get("gc_pauses") or {}), ("CSMS simulator", csms_own.get("gc_pauses") or {})):
        if gcp:
            print(f"GC pauses          {who}: {gcp['total_s']} s in all, longest {gcp['max_ms']} ms "
                  f"(full collections: {gcp['gen2']['count']}, longest {gcp['gen2']['max_ms']} ms)")
    print(f"open files         soft limit {g['nofile'].get('soft_before')} → {g['nofile'].get('soft')} "
          f"(needed {g['nofile'].get('needed')})")
    load1 = os.getloadavg()
    print(f"machine            {os.cpu_count()} cores; load average (1 min) {load0[0]:.2f} at start, "
          f"{load1[0]:.2f} at end (other processes on the machine inflate latency tails)")
    held = s.get("connected_at_end", 0)
    ok = (held >= TARGET_STATIONS and report["violations"]["total"] == 0 and c["dropped"] == 0
          and not report["interrupted"])
    flowing = all(report["messages"]["calls_sent"].get(a, 0) > 0 for a in ("Heartbeat", "StatusNotification",
                                                                           "MeterValues"))
    verdict = "MET" if ok and flowing else "NOT MET"
    print(f"target             ≥ {TARGET_STATIONS} stations held, messages flowing, schema-validated: {verdict} "
          f"({held} held)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report["machine"] = {"cores": os.cpu_count(), "loadavg_start": load0, "loadavg_end": load1}
        report["csms_process"] = {"cpu_s": round(csms_cpu, 3), "rss_mb": round(csms_rss, 1), **csms_own}
        args.json.write_text(json.dumps(report, indent=1))
        print(f"report             {args.json}")
    return 0 if verdict == "MET" or args.stations < TARGET_STATIONS else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
