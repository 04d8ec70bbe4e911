"""The charger (or its local controller) under test: the harness plays the depot's CSMS.

The harness listens as the CSMS; the chargers connect (the built-in station simulator,
one per charger with two EVSEs each — or a real charger from a DUT profile, whose EVs are
plugged in through its adapter). Every EVSE gets an EV that would draw more than the
site allows. The harness then sets the site limit on each charger — a
ChargingStationMaxProfile (or ChargingStationExternalConstraints) on EVSE 0 carrying the
charger's share of the site limit — and changes it: `site_kw`, then `drop_kw`, then
`site_kw` again, each held `hold_s` seconds of real time (the chargers run on wall-clock
UTC, as real ones do, so this direction runs in real time).

Checked on every meter value (Power.Active.Import of each EVSE, in TransactionEvent or
MeterValues): a charger's total ≤ its share + `tolerance_kw` (+ `tolerance_pct`) once
`reaction_s` has passed since the limit changed (before that, the higher of the old and
new limits); the sum over the chargers ≤ the site limit likewise; every SetChargingProfile
answered Accepted. Reported: per change and charger the reaction latency (first sample
under the new limit), peaks, samples.

ChargingStationExternalConstraints are meant to come from an external system (an EMS or
DSO interface), which the charger then reports with NotifyChargingLimit; sending them with
SetChargingProfile stands in for that channel. A charger that refuses them from the CSMS
is not at fault: the check is then inconclusive (`ChargerCheckError`), not a FAIL.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..dut.profile import DutProfile
from ..ocpp.connection import Closed, IncomingCall, OcppConnection
from ..ocpp.framing import CallError
from ..roles.defaults import default_reply
from ..transport.server import OcppServer

PURPOSES = ("ChargingStationMaxProfile", "ChargingStationExternalConstraints")
POWER = "Power.Active.Import"
PROFILE_ID = 100                # one id: each new limit replaces the last (K01.FR.05; a second id at the same
                                # stackLevel would be a DuplicateProfile, K01.FR.06)
EV = {"capacity_kwh": 1000.0, "soc_percent": 10.0, "target_soc_percent": 95.0, "max_power_kw": 350.0}


class ChargerCheckError(RuntimeError):
    """The check could not be made (no charger connected, nothing drew power): INCONCLUSIVE."""


@dataclass
class LimitPlan:
    site_kw: float = 600.0
    drop_kw: float = 300.0
    hold_s: float = 8.0
    reaction_s: float = 5.0
    tolerance_kw: float = 1.0
    tolerance_pct: float = 0.0
    purpose: str = "ChargingStationMaxProfile"
    settle_s: float = 15.0          # how long EVs may take to start drawing power

    def __post_init__(self) -> None:
        if self.purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, got {self.purpose!r}")
        if min(self.site_kw, self.drop_kw) < 0 or self.hold_s <= 0 or self.reaction_s < 0:
            raise ValueError("limits must be ≥ 0 kW, hold > 0 s and reaction ≥ 0 s")
        if self.reaction_s >= self.hold_s:
            raise ValueError(f"reaction time {self.reaction_s:g} s must be shorter than each hold ({self.hold_s:g} s)")

    def phases(self) -> list[tuple[float, float]]:
        """(offset s, site kW) of each limit, and the end."""
        return [(0.0, self.site_kw), (self.hold_s, self.drop_kw), (2 * self.hold_s, self.site_kw)]

    @property
    def duration_s(self) -> float:
        return 3 * self.hold_s


@dataclass
class Sample:
    t: float                 # seconds since the first limit was set (harness monotonic clock)
    station: str
    evse: int
    kw: float


@dataclass
class LimitViolation:
    subject: str
    t_start: float
    t_end: float
    worst_kw: float
    allowed_kw: float

    def __str__(self) -> str:
        return (f"[charger_limit] {self.subject}: {self.worst_kw:.1f} kW > allowed {self.allowed_kw:.1f} kW "
                f"from t+{self.t_start:.1f} s to t+{self.t_end:.1f} s")


@dataclass
class ChargerResult:
    plan: LimitPlan
    stations: list[str]
    samples: list[Sample]
    violations: list[LimitViolation]
    rejected: list[str]
    latencies: dict[str, list[float | None]]     # station → per change: seconds to be under the new limit
    peaks: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations and not self.rejected

    def summary(self) -> str:
        p = self.plan
        lines = [f"charger limit check ({p.purpose}, site {p.site_kw:g} → {p.drop_kw:g} → {p.site_kw:g} kW, "
                 f"reaction {p.reaction_s:g} s) on {len(self.stations)} charger(s): {'PASS' if self.ok else 'FAIL'} — "
                 f"{len(self.samples)} meter samples"]
        for sid in self.stations:
            lat = ", ".join("–" if x is None else f"{x:.1f} s" for x in self.latencies.get(sid, []))
            lines.append(f"  {sid}: peak {self.peaks.get(sid, 0.0):.1f} kW, reaction per change: {lat}")
        lines += [f"  {r}" for r in self.rejected]
        lines += [f"  {v}" for v in self.violations]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"verdict": "PASS" if self.ok else "FAIL", "plan": vars(self.plan), "stations": self.stations,
                "latencies_s": self.latencies, "peaks_kw": self.peaks, "rejected": self.rejected,
                "violations": [vars(v) | {"text": str(v)} for v in self.violations], "notes": self.notes,
                "samples": [vars(s) for s in self.samples]}


class _Csms:
    """The harness as the depot's CSMS: accepts chargers, answers them, records their power."""

    def __init__(self, server: OcppServer) -> None:
        self.server = server
        self.conns: dict[str, OcppConnection] = {}
        self.power: dict[str, dict[int, float]] = {}          # station → evse → latest kW
        self.samples: list[Sample] = []
        self.t0: float | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.connected = asyncio.Event()

    async def accept_loop(self) -> None:
        while True:
            acc = await self.server.accepted.get()
            self.conns[acc.station_id] = acc.connection
            self.power.setdefault(acc.station_id, {})
            task = asyncio.ensure_future(self._serve(acc.station_id, acc.connection))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            self.connected.set()

    async def _serve(self, sid: str, conn: OcppConnection) -> None:
        while True:
            ev = await conn.next_event()
            if isinstance(ev, Closed):
                return
            if not isinstance(ev, IncomingCall):
                continue
            call = ev.call
            if call.action in ("TransactionEvent", "MeterValues"):
                self._record(sid, call.payload)
            reply = default_reply("csms", "2.0.1", call.action, call.payload, {"heartbeat_interval": 60})
            try:
                if reply is None:
                    await conn.reply_error(call, "NotImplemented", f"no answer for {call.action}")
                else:
                    await conn.reply(call, reply)
            except Exception:
                return

    def _record(self, sid: str, p: dict[str, Any]) -> None:
        evse = p.get("evseId", (p.get("evse") or {}).get("id"))
        if evse is None:
            return
        for mv in p.get("meterValue") or []:
            for sv in mv.get("sampledValue", []):
                if sv.get("measurand") != POWER or sv.get("phase"):
                    continue
                unit = sv.get("unitOfMeasure") or {}
                w = float(sv["value"]) * 10 ** unit.get("multiplier", 0) * (1000 if unit.get("unit") == "kW" else 1)
                self.power[sid][int(evse)] = w / 1000.0
                if self.t0 is not None:
                    self.samples.append(Sample(time.monotonic() - self.t0, sid, int(evse), w / 1000.0))

    def total(self, sid: str) -> float:
        return sum(self.power.get(sid, {}).values())


def _profile(purpose: str, limit_kw: float, profile_id: int) -> dict[str, Any]:
    start = (datetime.now(timezone.utc) - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"evseId": 0, "chargingProfile": {
        "id": profile_id, "stackLevel": 0, "chargingProfilePurpose": purpose, "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": profile_id, "startSchedule": start, "chargingRateUnit": "W",
                              "chargingSchedulePeriod": [{"startPeriod": 0,
                                                          "limit": math.floor(limit_kw * 10000) / 10}]}]}}


async def check_chargers_async(plan: LimitPlan, *, profile: DutProfile | None = None, chargers: int = 2,
                               fault: str | None = None) -> ChargerResult:
    """See the module docstring. `profile` None (or the built-in station profile): `chargers` built-in
    station simulators, optionally with a station `fault`."""
    from ..sim.api import StationSimConfig
    from ..sim.station import StationSimulator

    builtin = profile is None or (profile.adapter == "sim" and "control_url" not in profile.adapter_options)
    if profile is not None and profile.kind != "charging_station":
        raise ChargerCheckError(f"DUT profile {profile.name!r} is a {profile.kind}; this check tests chargers")
    if builtin:
        server = OcppServer(versions=("2.0.1",))
    else:
        from urllib.parse import urlparse

        assert profile is not None
        u = urlparse(profile.endpoint or "ws://0.0.0.0:9000/ocpp")
        server = OcppServer(versions=("2.0.1",), host=u.hostname or "0.0.0.0", port=u.port or 9000,
                            path_prefix=u.path.rstrip("/") or "/ocpp")
    await server.start()
    csms = _Csms(server)
    acceptor = asyncio.ensure_future(csms.accept_loop())
    sims: list[Any] = []
    adapter = None
    notes: list[str] = []
    try:
        if builtin:
            f = fault if fault is not None else (profile.adapter_options.get("fault") if profile else None)
            for n in range(1, chargers + 1):
                cfg = StationSimConfig(station_id=f"DEPOT-CH-{n:02d}", csms_url=server.url(), versions=("2.0.1",),
                                       security_profile=0, meter_interval_s=1.0, reconnect_backoff_s=0.2)
                sims.append(StationSimulator(cfg, fault=f))
            await asyncio.gather(*(s.start() for s in sims))
            expected = [s.cfg.station_id for s in sims]
        else:
            from ..dut.adapters import make_adapter

            assert profile is not None
            adapter = make_adapter(profile, fault=fault)
            expected = [profile.station_id]
        deadline = time.monotonic() + plan.settle_s
        while set(expected) - set(csms.conns) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        missing = set(expected) - set(csms.conns)
        if missing:
            raise ChargerCheckError(f"charger(s) never connected: {', '.join(sorted(missing))}")
        await asyncio.sleep(0.5)          # BootNotification and status first
        evses = {sid: [1, 2] for sid in expected}
        for sid in expected:
            for e in evses[sid]:
                params = {"evse": e, "ev": dict(EV)}
                if builtin:
                    sim = next(s for s in sims if s.cfg.station_id == sid)
                    await sim.perform("plug_in", params)
                    await sim.perform("present_token", {"evse": e, "id_token": "TRUCK-0001"})
                else:
                    out = await adapter.perform("plug_in", params, f"Plug an EV into EVSE {e} of {sid}", 120)   # type: ignore[union-attr]
                    if out.status != "done":
                        raise ChargerCheckError(f"plug-in on {sid} EVSE {e} not done: {out.detail}")
        deadline = time.monotonic() + plan.settle_s
        while time.monotonic() < deadline and not all(csms.total(sid) > 0 for sid in expected):
            await asyncio.sleep(0.1)
        idle = [sid for sid in expected if csms.total(sid) <= 0]
        if idle:
            raise ChargerCheckError(f"charger(s) drew no power within {plan.settle_s:g} s: {', '.join(idle)}")
        rejected: list[str] = []
        csms.t0 = time.monotonic()
        phases = plan.phases()
        for n, (offset, site) in enumerate(phases):
            delay = csms.t0 + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            share = site / len(expected)
            answers = await asyncio.gather(*(csms.conns[sid].call("SetChargingProfile",
                                                                  _profile(plan.purpose, share, PROFILE_ID), timeout=10)
                                             for sid in expected), return_exceptions=True)
            for sid, a in zip(expected, answers):
                if isinstance(a, BaseException):
                    rejected.append(f"{sid}: SetChargingProfile not answered ({type(a).__name__})")
                elif isinstance(a.frame, CallError):
                    rejected.append(f"{sid}: SetChargingProfile answered CALLERROR {a.frame.error_code}")
                elif a.frame.payload.get("status") != "Accepted":
                    rejected.append(f"{sid}: SetChargingProfile {plan.purpose} {share:g} kW answered "
                                    f"{a.frame.payload.get('status')} {a.frame.payload.get('statusInfo', '')}")
            if (n == 0 and plan.purpose == "ChargingStationExternalConstraints" and len(rejected) == len(expected)
                    and all("answered Rejected" in r for r in rejected)):
                raise ChargerCheckError("the charger(s) do not take ChargingStationExternalConstraints from the CSMS "
                                        "(an external system sets those); use ChargingStationMaxProfile: "
                                        + "; ".join(rejected))
        await asyncio.sleep(max(0.0, csms.t0 + plan.duration_s - time.monotonic()))
        return _judge(plan, expected, csms.samples, rejected, notes)
    finally:
        acceptor.cancel()
        for s in sims:
            try:
                await asyncio.wait_for(s.stop(), 10)
            except Exception:
                pass
        if adapter is not None:
            try:
                await asyncio.wait_for(adapter.stop(), 10)
            except Exception:
                pass
        for task in list(csms.tasks):
            task.cancel()
        await server.stop()


def _allowed(plan: LimitPlan, t: float, shares: int) -> float:
    """The charger's (shares=n) / site's (shares=1) allowed power at t: the higher of old and new limit
    during the reaction time after a change."""
    phases = plan.phases()
    cur = [v for off, v in phases if off <= t][-1]
    prev = [v for off, v in phases if off <= t - plan.reaction_s]
    allowed = max(cur, prev[-1]) if prev else cur
    if t < plan.reaction_s:
        allowed = math.inf        # the first limit: the chargers come from "no limit"
    return allowed / shares


def _judge(plan: LimitPlan, stations: list[str], samples: list[Sample], rejected: list[str],
           notes: list[str]) -> ChargerResult:
    n = len(stations)
    latest: dict[str, dict[int, float]] = {sid: {} for sid in stations}
    open_: dict[str, LimitViolation] = {}
    violations: list[LimitViolation] = []
    peaks = {sid: 0.0 for sid in stations}
    changes = [off for off, _ in plan.phases()]
    latencies: dict[str, list[float | None]] = {sid: [None] * len(changes) for sid in stations}

    def tol(allowed: float) -> float:
        return plan.tolerance_kw + plan.tolerance_pct / 100.0 * allowed

    for s in sorted(samples, key=lambda x: x.t):
        if s.station not in latest:
            continue
        latest[s.station][s.evse] = s.kw
        total = sum(latest[s.station].values())
        site_total = sum(sum(v.values()) for v in latest.values())
        peaks[s.station] = max(peaks[s.station], total)
        for ci, off in enumerate(changes):
            nxt = changes[ci + 1] if ci + 1 < len(changes) else plan.duration_s
            if off <= s.t < nxt and latencies[s.station][ci] is None:
                limit = [v for o, v in plan.phases() if o == off][0] / n
                if total <= limit + tol(limit):
                    latencies[s.station][ci] = s.t - off
        for subject, value, allowed in ((s.station, total, _allowed(plan, s.t, n)),
                                        ("site", site_total, _allowed(plan, s.t, 1))):
            if value > allowed + tol(allowed):
                v = open_.get(subject)
                if v is None:
                    open_[subject] = LimitViolation(subject, s.t, s.t, value, allowed)
                else:
                    v.t_end = s.t
                    if value - allowed > v.worst_kw - v.allowed_kw:
                        v.worst_kw, v.allowed_kw = value, allowed
            elif subject in open_:
                violations.append(open_.pop(subject))
    violations += open_.values()
    violations.sort(key=lambda v: (v.t_start, v.subject))
    if not samples:
        notes.append("no meter values with Power.Active.Import arrived during the check")
    return ChargerResult(plan, stations, samples, violations, rejected, latencies, peaks, notes)


def check_chargers(plan: LimitPlan, **kw: Any) -> ChargerResult:
    """`check_chargers_async` in its own event loop (CLI)."""
    return asyncio.run(check_chargers_async(plan, **kw))
