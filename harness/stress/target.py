"""The built-in CSMS simulator as a fleet-load target, in its own process.

`charger-harness sim csms` keeps every frame in its trace (lab evidence); under fleet load
that would grow without bound, so this runs the same `CsmsSimulator` with a counting trace
that keeps nothing, for a bounded time, and prints one `READY <url>` line once it listens,
then one JSON line of its own counts when it stops:

    python -m harness.stress.target --port 9000 --duration 120
    charger-harness stress csms --port 9000 --duration 120        (the same, through the CLI)

Run it in a separate process from the load generator so the two compete for the machine's
cores as a real CSMS and a real fleet would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import Any

from ..sim.api import CsmsSimConfig
from ..sim.csms import CsmsSimulator
from .fleet import FD_HEADROOM, FrameCounters, StressTrace, raise_nofile_limit
from .stats import GcPauses, GrowthFreezer, ProcessUsage

MAX_DURATION_S = 24 * 3600.0


async def serve(host: str, port: int, duration_s: float, versions: tuple[str, ...] = ("2.0.1", "1.6"),
                heartbeat_interval_s: int = 60, max_stations: int = 20_000,
                ready: Any = None, gc_freeze: bool = False) -> dict[str, Any]:
    """Serve until `duration_s` passes or SIGINT/SIGTERM; returns the CSMS's own counts."""
    nofile = raise_nofile_limit(max_stations + FD_HEADROOM)
    counters = FrameCounters()
    sim = CsmsSimulator(CsmsSimConfig(host=host, port=port, versions=versions,
                                      heartbeat_interval_s=heartbeat_interval_s),
                        trace=StressTrace(counters, keep=0))
    await sim.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    usage, t0 = ProcessUsage(), time.monotonic()
    gc_pauses = GcPauses().start()
    cpu0 = usage.cpu_seconds()
    if ready is not None:
        ready(sim.url)
    freezer = GrowthFreezer(step=100) if gc_freeze else None

    async def watch() -> None:      # freeze the GC's view while stations keep connecting
        while freezer is not None:
            await asyncio.sleep(0.2)
            freezer.observe(len(sim.stations))

    watcher = loop.create_task(watch())
    try:
        await asyncio.wait_for(stop.wait(), min(duration_s, MAX_DURATION_S))
    except (asyncio.TimeoutError, TimeoutError):
        pass
    watcher.cancel()
    peak = len(sim.stations)
    await sim.stop()
    gc_pauses.stop()
    if freezer is not None:
        freezer.release()
    wall = time.monotonic() - t0
    cpu = usage.cpu_seconds() - cpu0
    return {"kind": "stress-csms", "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3), "cpu_percent": round(100 * cpu / wall, 1) if wall else 0.0,
            "rss_mb": round(usage.rss_mb(), 1), "stations_seen": peak, "frames_rx": counters.rx,
            "frames_tx": counters.tx, "gc_pauses": gc_pauses.to_json(), "nofile": nofile}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000, help="0 = any free port (printed on the READY line)")
    ap.add_argument("--duration", type=float, default=300.0, help="seconds to serve (bounded)")
    ap.add_argument("--ocpp", default="2.0.1,1.6", help="versions offered, preference order")
    ap.add_argument("--heartbeat-interval", type=int, default=60, help="interval given at BootNotification")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop if installed")
    ap.add_argument("--gc-freeze", action="store_true",
                    help="freeze the GC's view of connected stations as they arrive (see stats.GrowthFreezer)")
    args = ap.parse_args(argv)

    def ready(url: str) -> None:
        print(f"READY {url}", flush=True)

    if args.uvloop:
        try:
            import uvloop  # type: ignore[import-not-found]
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            print("uvloop not installed: running on asyncio's own loop", file=sys.stderr)
    versions = tuple(v.strip() for v in args.ocpp.split(",") if v.strip())
    out = asyncio.run(serve(args.host, args.port, args.duration, versions, args.heartbeat_interval, ready=ready,
                          gc_freeze=args.gc_freeze))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
