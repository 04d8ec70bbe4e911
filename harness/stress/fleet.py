"""Fleet load: N simulated charging stations held connected to a CSMS under test, in one process.

Each station is the harness's own OCPP stack (`transport.client.connect_station` →
`OcppConnection`: framing, message-id correlation, schema validation of every frame in both
directions) with two tasks: a scheduler that boots, reports every connector's status and
then sends heartbeats, status changes and meter values at the mix's intervals, one CALL at a
time like a real station; and a responder that answers what the CSMS sends (the harness's
default station replies; TriggerMessage for a heartbeat, status or meter value is accepted
and the message sent).

What the lab's per-case `Trace` does — keep every frame — would grow without bound at fleet
scale, so each station gets a `StressTrace`: it counts frames and bytes per direction for the
rates and keeps only the last `trace_frames` frames (0 = none) for a post-mortem.

Everything is bounded: ramp-up is paced (`ramp` stations/s, at most `max_connecting`
handshakes in flight), every CALL has a timeout, the steady phase lasts `duration_s` after the
ramp, and shutdown closes every connection within `shutdown_timeout_s`. `request_stop()` (the
CLI wires Ctrl-C and SIGTERM to it) ends the run early and still produces the report.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import random
import resource
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from websockets.exceptions import InvalidHandshake, InvalidURI

from ..ocpp import schemas
from ..ocpp.connection import (
    Closed, ConnectionLost, Garbage, IncomingCall, LocalSchemaError, OcppConnection, StrayResponse,
)
from ..ocpp.framing import CallError
from ..ocpp.trace import Trace
from ..roles.defaults import default_reply
from ..transport.client import HandshakeRefused, UnexpectedSubprotocol, connect_station
from ..transport.security import SecurityProfile
from .mix import ACTION_OF_KIND, EVSES, KINDS, Mix, StationModel
from .stats import Counter, GcPauses, GrowthFreezer, Histogram, ProcessUsage, Timeline

log = logging.getLogger(__name__)

MAX_EXAMPLES = 20                # schema violations / errors kept verbatim in the report
TRIGGERABLE = {"Heartbeat": "heartbeat", "StatusNotification": "status", "MeterValues": "meter"}
FD_HEADROOM = 256


@dataclass
class FleetConfig:
    csms_url: str                                   # base URL; each station appends /<station id>
    stations: int = 100
    version: str = "2.0.1"
    duration_s: float = 60.0                        # steady phase, after the ramp
    ramp_per_s: float = 50.0                        # new connections per second
    mix: Mix = field(default_factory=Mix)
    password: str | None = None                     # HTTP Basic auth (security profile 1)
    id_prefix: str = "CS-"
    first_index: int = 1                            # station ids: <prefix><first_index…> zero-padded
    call_timeout_s: float = 30.0
    open_timeout_s: float = 15.0
    max_connecting: int = 200                       # websocket handshakes in flight at once
    boot_retries: int = 3                           # re-boots while the CSMS says Pending
    trace_frames: int = 0                           # last frames kept per station (0 = none)
    shutdown_timeout_s: float = 10.0
    seed: int = 1
    gc_freeze: bool = True                          # keep the GC off the connections' objects (GrowthFreezer)

    def __post_init__(self) -> None:
        if self.version not in schemas.SUPPORTED_VERSIONS:
            raise ValueError(f"OCPP version must be one of {', '.join(schemas.SUPPORTED_VERSIONS)}, "
                             f"got {self.version!r}")
        if self.stations < 1 or self.stations > 1_000_000:
            raise ValueError(f"stations must be 1…1,000,000, got {self.stations}")
        if self.ramp_per_s <= 0:
            raise ValueError("ramp must be > 0 stations per second")
        if self.duration_s < 0:
            raise ValueError("duration must be ≥ 0 s")
        if not self.csms_url.startswith(("ws://", "wss://")):
            raise ValueError(f"CSMS URL must start with ws:// or wss://, got {self.csms_url!r}")
        if self.csms_url.startswith("wss://"):
            raise ValueError("wss:// (security profiles 2–3) needs the PKI of `charger-harness pki`; "
                             "fleet load runs over ws:// for now")

    def station_id(self, i: int) -> str:
        return f"{self.id_prefix}{self.first_index + i:05d}"

    def to_json(self) -> dict[str, Any]:
        return {"csms_url": self.csms_url, "stations": self.stations, "ocpp": self.version,
                "duration_s": self.duration_s, "ramp_per_s": self.ramp_per_s, "mix": str(self.mix),
                "auth": "basic" if self.password else "none", "id_prefix": self.id_prefix,
                "call_timeout_s": self.call_timeout_s, "trace_frames": self.trace_frames, "seed": self.seed}


# ---- shared counters, and the per-station trace that feeds them ------------------------------

@dataclass
class FrameCounters:
    tx: int = 0
    rx: int = 0
    tx_bytes: int = 0
    rx_bytes: int = 0
    tx_by_kind: Counter = field(default_factory=Counter)
    rx_by_kind: Counter = field(default_factory=Counter)


class StressTrace(Trace):
    """A Trace that counts every frame and keeps only the last `keep` of them."""

    def __init__(self, counters: FrameCounters, keep: int = 0):
        super().__init__(keep=max(keep, 0))
        self.counters = counters

    def add(self, direction: str, peer: str, raw: str, *, kind: str = "", action: str = "",  # type: ignore[override]
            unique_id: str = "", note: str = "") -> Any:
        c = self.counters
        if direction == "tx":
            c.tx += 1
            c.tx_bytes += len(raw)
            c.tx_by_kind.add(kind)
        elif direction == "rx":
            c.rx += 1
            c.rx_bytes += len(raw)
            c.rx_by_kind.add(kind)
        if self.keep <= 0:
            return None     # counting only: 2,000 stations' frames would not fit in memory
        return super().add(direction, peer, raw, kind=kind, action=action, unique_id=unique_id, note=note)


# ---- results --------------------------------------------------------------------------------

@dataclass
class FleetStats:
    attempted: int = 0
    connected: int = 0
    connected_now: int = 0
    peak_connected: int = 0
    booted: int = 0
    refused: Counter = field(default_factory=Counter)        # "HTTP 401", "TCP ECONNREFUSED", "subprotocol"
    failed: Counter = field(default_factory=Counter)         # handshake timeouts and other connect errors
    dropped: int = 0                                         # closed by the CSMS (or the network) mid-run
    boot_rejected: int = 0
    boot_pending_gave_up: int = 0
    connect_latency: Histogram = field(default_factory=Histogram)
    latency: dict[str, Histogram] = field(default_factory=dict)
    sent: Counter = field(default_factory=Counter)            # CALLs sent, by action
    call_errors: Counter = field(default_factory=Counter)     # "Action: ErrorCode"
    timeouts: Counter = field(default_factory=Counter)        # no answer within call_timeout, by action
    violations: Counter = field(default_factory=Counter)      # CSMS frames breaking the schema, by action
    violation_examples: list[dict[str, str]] = field(default_factory=list)
    csms_calls: Counter = field(default_factory=Counter)      # CALLs the CSMS sent, by action
    protocol_errors: Counter = field(default_factory=Counter)  # garbage, stray responses, …
    harness_errors: Counter = field(default_factory=Counter)  # bugs on our side (never blamed on the CSMS)
    error_examples: list[str] = field(default_factory=list)
    frames: FrameCounters = field(default_factory=FrameCounters)
    loop_lag: Histogram = field(default_factory=Histogram)
    timeline: Timeline = field(default_factory=Timeline)

    def hist(self, action: str) -> Histogram:
        h = self.latency.get(action)
        if h is None:
            h = self.latency[action] = Histogram()
        return h

    def violation(self, action: str, where: str, text: str) -> None:
        self.violations.add(action)
        if len(self.violation_examples) < MAX_EXAMPLES:
            self.violation_examples.append({"action": action, "where": where, "violation": text})

    def error_example(self, text: str) -> None:
        if len(self.error_examples) < MAX_EXAMPLES:
            self.error_examples.append(text)


def raise_nofile_limit(needed: int) -> dict[str, int | str]:
    """Raise RLIMIT_NOFILE so `needed` sockets fit; returns what it was, what it is, and why."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    out: dict[str, int | str] = {"needed": needed, "soft_before": soft, "hard": hard, "soft": soft}
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            if hard != resource.RLIM_INFINITY and hard < needed:
                resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))   # root may raise the hard limit
                target = needed
            else:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
            target = min(needed, hard)
        out["soft"] = target
        out["hard"] = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if int(out["soft"]) < needed and out["soft"] != resource.RLIM_INFINITY:
        out["warning"] = (f"open-file limit {out['soft']} < {needed} needed: about "
                          f"{int(out['soft']) - FD_HEADROOM} stations can connect")
    return out


# ---- one station ------------------------------------------------------------------------------

class _Station:
    __slots__ = ("fleet", "index", "sid", "model", "conn", "wake", "triggered", "boot_interval", "closing",
                 "responder", "trace")

    def __init__(self, fleet: "Fleet", index: int):
        self.fleet = fleet
        self.index = index
        self.sid = fleet.cfg.station_id(index)
        self.model = StationModel(self.sid, fleet.cfg.version, random.Random(fleet.cfg.seed * 1_000_003 + index))
        self.conn: OcppConnection | None = None
        self.wake: asyncio.Event | None = None
        self.triggered: list[str] = []
        self.boot_interval: float | None = None
        self.closing = False
        self.responder: asyncio.Task[None] | None = None
        self.trace = StressTrace(fleet.stats.frames, fleet.cfg.trace_frames)

    async def run(self) -> None:
        st = self.fleet.stats
        if not await self._connect():
            return
        st.connected += 1
        st.connected_now += 1
        st.peak_connected = max(st.peak_connected, st.connected_now)
        assert self.conn is not None
        self.wake = asyncio.Event()
        self.responder = asyncio.get_running_loop().create_task(self._respond(), name=f"fleet-rx-{self.sid}")
        try:
            if not await self._boot():
                return
            st.booted += 1
            for e in EVSES:
                await self._call("StatusNotification", self.model.status(e.evse_id))
            await self._schedule()
        except ConnectionLost:
            pass
        finally:
            await self._close()

    async def _connect(self) -> bool:
        fleet, st, cfg = self.fleet, self.fleet.stats, self.fleet.cfg
        security = SecurityProfile(profile=1, username=self.sid, password=cfg.password) if cfg.password \
            else SecurityProfile()
        async with fleet.connecting:
            if fleet.stopping:
                return False
            st.attempted += 1
            t0 = time.perf_counter()
            try:
                self.conn = await connect_station(cfg.csms_url, self.sid, (cfg.version,), self.trace,
                                                  security=security, open_timeout=cfg.open_timeout_s)
            except HandshakeRefused as exc:
                st.refused.add(f"HTTP {exc.status}")
                fleet.stats.error_example(f"{self.sid}: {exc}")
                return False
            except UnexpectedSubprotocol as exc:
                st.refused.add("subprotocol")
                fleet.stats.error_example(f"{self.sid}: {exc}")
                return False
            except asyncio.CancelledError:
                raise
            except (TimeoutError, asyncio.TimeoutError):
                st.failed.add("handshake timeout")
                return False
            except ConnectionRefusedError:
                st.refused.add("TCP ECONNREFUSED")
                return False
            except OSError as exc:
                key = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
                st.failed.add(f"OSError {key}")
                fleet.stats.error_example(f"{self.sid}: {exc}")
                return False
            except (InvalidHandshake, InvalidURI) as exc:
                st.failed.add(type(exc).__name__)
                fleet.stats.error_example(f"{self.sid}: {type(exc).__name__}: {exc}")
                return False
            st.connect_latency.record(time.perf_counter() - t0)
            return True

    async def _call(self, action: str, payload: dict[str, Any]) -> Any:
        """One CALL, accounted for; returns the response payload, or None (error/timeout)."""
        st, conn = self.fleet.stats, self.conn
        assert conn is not None
        st.sent.add(action)
        try:
            resp = await conn.call(action, payload, timeout=self.fleet.cfg.call_timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            st.timeouts.add(action)
            return None
        except LocalSchemaError as exc:
            st.harness_errors.add("local schema error")
            st.error_example(f"{self.sid}: {exc}")
            return None
        st.hist(action).record(resp.elapsed)
        if resp.violation is not None:
            st.violation(action, "CALLRESULT", str(resp.violation))
        if isinstance(resp.frame, CallError):
            st.call_errors.add(f"{action}: {resp.frame.error_code}")
            st.error_example(f"{self.sid}: {action} → {resp.frame.error_code} {resp.frame.error_description}")
            return None
        return resp.frame.payload

    async def _boot(self) -> bool:
        st, cfg = self.fleet.stats, self.fleet.cfg
        for attempt in range(cfg.boot_retries + 1):
            answer = await self._call("BootNotification", self.model.boot(self.fleet.cfg.first_index + self.index))
            if answer is None:
                return False
            status, interval = answer.get("status"), answer.get("interval")
            if isinstance(interval, int) and interval > 0:
                self.boot_interval = float(interval)
            if status == "Accepted":
                return True
            if status == "Rejected" or attempt == cfg.boot_retries:
                if status == "Rejected":
                    st.boot_rejected += 1
                else:
                    st.boot_pending_gave_up += 1
                return False
            # Pending: retry after the interval the CSMS gave, bounded by the time left in the run.
            if await self.fleet.sleep(min(max(self.boot_interval or 10.0, 1.0), self.fleet.time_left())):
                return False
        return False

    async def _schedule(self) -> None:
        """Heartbeats, status changes and meter values at the mix's intervals until the run ends."""
        fleet, rng, model = self.fleet, self.model.rng, self.model
        loop = asyncio.get_running_loop()
        intervals = {k: iv for k, iv in fleet.cfg.mix.intervals().items() if iv.enabled}
        now = loop.time()
        # First message of each kind somewhere within its first interval: a fleet never fires in step.
        due = {k: now + rng.uniform(0, iv.draw(rng, self.boot_interval)) for k, iv in intervals.items()}
        assert self.wake is not None
        while not fleet.stopping and self.conn is not None and not self.conn.closed.is_set():
            if self.triggered:
                kind = self.triggered.pop(0)
            else:
                if due:
                    kind = min(due, key=due.__getitem__)
                    delay = due[kind] - loop.time()
                else:                                  # nothing scheduled: only triggers (or the end) wake us
                    kind, delay = "", max(0.1, fleet.time_left())
                if delay > 0:
                    # A bare timer on the wake event: cheaper than wait_for, which wraps a Task per wait.
                    self.wake.clear()
                    timer = loop.call_later(delay, self.wake.set)
                    await self.wake.wait()
                    timer.cancel()
                    if self.triggered or fleet.stopping or loop.time() < due.get(kind, 0.0):
                        continue                       # a TriggerMessage, a drop or shutdown woke us
                if not kind:
                    continue
                due[kind] = loop.time() + intervals[kind].draw(rng, self.boot_interval)
            if fleet.stopping:
                return
            if kind == "heartbeat":
                await self._call("Heartbeat", {})
            elif kind == "status":
                await self._call("StatusNotification", model.next_status())
            else:
                await self._call("MeterValues", model.meter(loop.time()))

    async def _respond(self) -> None:
        """Answer the CSMS's CALLs; note garbage and stray responses; notice a drop."""
        st, conn = self.fleet.stats, self.conn
        assert conn is not None
        while True:
            ev = await conn.next_event()
            try:
                if isinstance(ev, Closed):
                    if not self.closing and not self.fleet.stopping:
                        st.dropped += 1
                        st.error_example(f"{self.sid}: dropped by the CSMS (code={ev.code} reason={ev.reason!r})")
                    if self.wake is not None:
                        self.wake.set()
                    return
                if isinstance(ev, Garbage):
                    st.protocol_errors.add("not an OCPP-J frame")
                    st.error_example(f"{self.sid}: garbage from the CSMS: {ev.reason}")
                elif isinstance(ev, StrayResponse):
                    st.protocol_errors.add("response to no outstanding CALL")
                elif isinstance(ev, IncomingCall):
                    await self._answer(ev)
            except ConnectionLost:
                continue            # the Closed event follows

    async def _answer(self, ev: IncomingCall) -> None:
        from ..sim.csms import violation_error_code

        st, conn, call, version = self.fleet.stats, self.conn, ev.call, self.fleet.cfg.version
        assert conn is not None
        st.csms_calls.add(call.action)
        if ev.unknown_action:
            st.protocol_errors.add(f"unknown action {call.action}")
            await conn.reply_error(call, "NotImplemented", f"unknown action {call.action!r}")
            return
        if ev.violation is not None:
            st.violation(call.action, "CALL", str(ev.violation))
            await conn.reply_error(call, violation_error_code(ev.violation.rule, version), str(ev.violation))
            return
        payload: dict[str, Any] | None
        if call.action == "TriggerMessage" and call.payload.get("requestedMessage") in TRIGGERABLE:
            payload = {"status": "Accepted"}
            self.triggered.append(TRIGGERABLE[call.payload["requestedMessage"]])
        else:
            payload = default_reply("cs", version, call.action, call.payload, {})
        if payload is None:
            await conn.reply_error(call, "NotImplemented" if version == "1.6" else "NotSupported",
                                   f"{call.action} is not supported by the fleet simulator")
            return
        try:
            await conn.reply(call, payload)
        except LocalSchemaError as exc:
            st.harness_errors.add("local schema error")
            st.error_example(f"{self.sid}: {exc}")
            await conn.reply_error(call, "InternalError", "fleet simulator built an invalid answer")
        if self.triggered and self.wake is not None:
            self.wake.set()

    async def _close(self) -> None:
        st = self.fleet.stats
        conn, self.conn = self.conn, None
        if conn is None:
            return
        self.closing = True
        st.connected_now -= 1
        try:
            await asyncio.wait_for(conn.close(1000, "fleet run over"), self.fleet.cfg.shutdown_timeout_s)
        except (asyncio.TimeoutError, TimeoutError, Exception):
            pass
        if self.responder is not None and not self.responder.done():
            self.responder.cancel()


# ---- the fleet ------------------------------------------------------------------------------

ProgressCallback = Callable[[dict[str, Any]], None]


class Fleet:
    """Run `cfg.stations` stations against `cfg.csms_url`; `await Fleet(cfg).run()` → report dict."""

    def __init__(self, cfg: FleetConfig, on_progress: ProgressCallback | None = None):
        self.cfg = cfg
        self.stats = FleetStats()
        self.on_progress = on_progress
        self.stopping = False
        self.interrupted = False
        self.stopped = asyncio.Event()
        self.connecting = asyncio.Semaphore(max(1, cfg.max_connecting))
        self._stations: list[_Station] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._t0 = 0.0
        self._deadline = 0.0
        self.phases: dict[str, float] = {}
        self.nofile: dict[str, int | str] = {}
        self.usage = ProcessUsage()
        self.gc_pauses = GcPauses()
        # Thousands of connections are ~10⁶ long-lived objects; unfrozen, every full collection
        # walks them all and stalls the loop (measured at 2,000 stations: gen-2 pauses of 250 ms,
        # p99 latencies ×100; at 6,000: 1.2 s pauses, GC > half the generator's CPU).
        self.freezer = GrowthFreezer(step=max(50, cfg.stations // 40))

    def request_stop(self) -> None:
        """End the run early (Ctrl-C): stop sending, close connections, report what was measured."""
        self.interrupted = True
        self._stop()

    def _stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.stopped.set()
            for s in self._stations:
                if s.wake is not None:
                    s.wake.set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep, or less when the run stops; True when it stopped."""
        try:
            await asyncio.wait_for(self.stopped.wait(), max(0.0, seconds))
            return True
        except (asyncio.TimeoutError, TimeoutError):
            return self.stopping

    def time_left(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    def snapshot(self) -> dict[str, Any]:
        st, f = self.stats, self.stats.frames
        return {"t": round(time.monotonic() - self._t0, 1), "attempted": st.attempted, "connected": st.connected_now,
                "booted": st.booted, "tx": f.tx, "rx": f.rx, "dropped": st.dropped,
                "refused": st.refused.total, "failed": st.failed.total, "violations": st.violations.total,
                "errors": st.call_errors.total + st.timeouts.total}

    async def run(self) -> dict[str, Any]:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        self.nofile = raise_nofile_limit(cfg.stations + FD_HEADROOM)
        ramp_s = cfg.stations / cfg.ramp_per_s
        # Hard bound on the whole run: ramp (twice, for a slow CSMS), handshakes, steady phase.
        self._t0 = time.monotonic()
        self._deadline = self._t0 + 2 * ramp_s + cfg.open_timeout_s + cfg.duration_s + 30.0
        cpu0, wall0 = self.usage.cpu_seconds(), time.monotonic()
        monitor = loop.create_task(self._monitor(), name="fleet-monitor")
        self.gc_pauses.start()
        self._stations = [_Station(self, i) for i in range(cfg.stations)]
        steady: dict[str, Any] = {}
        try:
            await self._ramp(loop)
            self.phases["ramp_s"] = round(time.monotonic() - self._t0, 3)
            if cfg.gc_freeze:
                self.freezer.freeze_now()                    # whatever the ramp left
                self.phases["gc_frozen_objects"] = gc.get_freeze_count()
            # Steady phase: every station has had its chance to connect; hold for duration_s.
            f0, s0, t_steady = (self.stats.frames.tx, self.stats.frames.rx), self.stats.sent.total, time.monotonic()
            cpu_s0 = self.usage.cpu_seconds()
            try:
                await asyncio.wait_for(self.stopped.wait(), min(cfg.duration_s, self.time_left()))
            except (asyncio.TimeoutError, TimeoutError):
                pass
            held = time.monotonic() - t_steady
            steady = {
                "seconds": round(held, 3),
                "connected_at_end": self.stats.connected_now,
                "tx_per_s": round((self.stats.frames.tx - f0[0]) / held, 1) if held > 0 else 0.0,
                "rx_per_s": round((self.stats.frames.rx - f0[1]) / held, 1) if held > 0 else 0.0,
                "calls_per_s": round((self.stats.sent.total - s0) / held, 1) if held > 0 else 0.0,
                "generator_cpu_percent": round(100 * (self.usage.cpu_seconds() - cpu_s0) / held, 1)
                if held > 0 else 0.0,
            }
        finally:
            self._stop()
            t_close = time.monotonic()
            await self._shutdown()
            self.phases["shutdown_s"] = round(time.monotonic() - t_close, 3)
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)
            self.gc_pauses.stop()
            self.freezer.release()          # the next full collection (outside the run) sees them all again
        wall = time.monotonic() - wall0
        return self.report(steady, wall, self.usage.cpu_seconds() - cpu0)

    async def _ramp(self, loop: asyncio.AbstractEventLoop) -> None:
        cfg, start = self.cfg, loop.time()
        for i, station in enumerate(self._stations):
            if self.stopping:
                break
            delay = start + i / cfg.ramp_per_s - loop.time()
            if delay > 0 and await self.sleep(delay):
                break
            self._tasks.append(loop.create_task(station.run(), name=f"fleet-{station.sid}"))
        # Wait for the last handshakes (each bounded by open_timeout) before the steady phase starts.
        end = loop.time() + cfg.open_timeout_s * (1 + len(self._tasks) / max(1, cfg.max_connecting)) + 5
        st = self.stats
        while not self.stopping and loop.time() < end:
            resolved = st.connected + st.refused.total + st.failed.total
            if st.attempted >= len(self._tasks) and resolved >= st.attempted:
                break
            if await self.sleep(0.1):
                break

    async def _shutdown(self) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            # Stations see `stopping`, leave their loops and close their sockets; stragglers are cancelled.
            done, pending = await asyncio.wait(tasks, timeout=self.cfg.shutdown_timeout_s)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        for t in self._tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                self.stats.harness_errors.add(type(exc).__name__)
                self.stats.error_example(f"station task: {type(exc).__name__}: {exc}")

    async def _monitor(self) -> None:
        """Event-loop lag (how late a 100 ms timer fires: the generator's own saturation) and the timeline."""
        loop = asyncio.get_running_loop()
        last_sample = loop.time()
        while True:
            t = loop.time()
            await asyncio.sleep(0.1)
            self.stats.loop_lag.record(max(0.0, loop.time() - t - 0.1))
            if self.cfg.gc_freeze:
                self.freezer.observe(self.stats.connected)
            if loop.time() - last_sample >= 1.0:
                last_sample = loop.time()
                snap = self.snapshot()
                self.stats.timeline.sample(t=snap["t"], connected=snap["connected"], tx=snap["tx"], rx=snap["rx"])
                if self.on_progress is not None:
                    try:
                        self.on_progress(snap)
                    except Exception:          # a display problem must not end a load run
                        log.exception("fleet progress callback failed")

    def report(self, steady: dict[str, Any], wall: float, cpu: float) -> dict[str, Any]:
        st, f = self.stats, self.stats.frames
        latency = {a: h.summary_ms() for a, h in sorted(st.latency.items())}
        return {
            "kind": "stress-fleet",
            "config": self.cfg.to_json(),
            "interrupted": self.interrupted,
            "phases": self.phases,
            "connections": {
                "attempted": st.attempted, "connected": st.connected, "peak_connected": st.peak_connected,
                "booted": st.booted, "refused": st.refused.total, "refused_by": st.refused.to_json(),
                "failed": st.failed.total, "failed_by": st.failed.to_json(), "dropped": st.dropped,
                "boot_rejected": st.boot_rejected, "boot_pending_gave_up": st.boot_pending_gave_up,
                "not_attempted": self.cfg.stations - st.attempted,
                "connect_ms": st.connect_latency.summary_ms(),
            },
            "steady": steady,
            "messages": {
                "frames_tx": f.tx, "frames_rx": f.rx, "bytes_tx": f.tx_bytes, "bytes_rx": f.rx_bytes,
                "tx_per_s": round(f.tx / wall, 1) if wall > 0 else 0.0,
                "rx_per_s": round(f.rx / wall, 1) if wall > 0 else 0.0,
                "tx_by_kind": f.tx_by_kind.to_json(), "rx_by_kind": f.rx_by_kind.to_json(),
                "calls_sent": st.sent.to_json(), "csms_calls": st.csms_calls.to_json(),
            },
            "latency_ms": latency,
            "violations": {"total": st.violations.total, "by_action": st.violations.to_json(),
                           "examples": st.violation_examples},
            "errors": {
                "call_errors": st.call_errors.to_json(), "timeouts": st.timeouts.to_json(),
                "protocol": st.protocol_errors.to_json(), "harness": st.harness_errors.to_json(),
                "total": st.call_errors.total + st.timeouts.total + st.protocol_errors.total + st.harness_errors.total,
                "examples": st.error_examples,
            },
            "generator": {
                "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                "cpu_percent": round(100 * cpu / wall, 1) if wall > 0 else 0.0,
                "rss_mb": round(self.usage.rss_mb(), 1),
                "loop_lag_ms": st.loop_lag.summary_ms(),
                "gc_pauses": self.gc_pauses.to_json(),
                "nofile": self.nofile,
            },
            "timeline": st.timeline.points,
        }


async def run_fleet(cfg: FleetConfig, on_progress: ProgressCallback | None = None,
                    install_signal_handlers: bool = False) -> dict[str, Any]:
    """Run a fleet to its end; with `install_signal_handlers`, SIGINT/SIGTERM end it cleanly."""
    fleet = Fleet(cfg, on_progress)
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    if install_signal_handlers:
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, fleet.request_stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
    try:
        return await fleet.run()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


__all__ = ["Fleet", "FleetConfig", "FleetStats", "StressTrace", "raise_nofile_limit", "run_fleet", "KINDS",
           "ACTION_OF_KIND"]
