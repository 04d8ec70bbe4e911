"""A depot scenario against a CSMS over OCPP 2.0.1: the harness plays every charger (and the BESS).

The judge is the same accelerated-time replay as for in-process controllers
(`smart.depot_sim.replay`): here the "controller" it asks at every control step is
`OcppDepotController`, which turns the step into OCPP traffic and returns what the
chargers actually deliver. Per control step k (scenario time t):

1. the clock reaches t (accelerated: it jumps; real time: it sleeps until the wall clock
   × `speed` gets there);
2. the stations report what happened: trucks that left (TransactionEvent Ended,
   StatusNotification Available), trucks that plugged in (StatusNotification Occupied,
   TransactionEvent Started, NotifyEVChargingNeeds with departureTime and energyAmount),
   meter values that are due (every `meter_interval_s`, or when a truck's power moved by
   `deadband_kw` or its charging state changed), the BESS's meter values, heartbeats; a
   charger due to reconnect (`reconnect_every_s`) first drops and reopens its websocket —
   each station sends its CALLs one at a time and waits for the answer;
3. the clock ticks at t: the CSMS simulator's DLB controller (`sim.csms_dlb`) decides and
   sends SetChargingProfile; the tick returns once every station answered (a real CSMS
   decides whenever it likes: its profiles are applied when they arrive);
4. each truck draws min(its EVSE's limit from the profiles in force, the station-wide limit
   and the power cabinet shared, EVSE rating, the truck's taper limit, what it still needs
   to reach its target); the BESS does its setpoint (charging limit − discharging limit).

The replay then checks every invariant on the delivered power and keeps the KPIs; OCPP
problems seen on the way (CALLERRORs, schema-invalid frames, unknown actions, a closed
connection) are violations too (`ocpp_protocol`).

Trucks, the plug plan and feasibility come from the depot model (`smart.depot`): the
stations send exactly what the trucks of the scenario would say.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine

import numpy as np

from ..ocpp.trace import Trace, TraceEntry
from ..smart.depot import Depot, clock as clock_text, plug_plan
from ..smart.depot_sim import DepotResult, Judged, Violation, replay
from ..smart.dlb import Allocation, DepotState
from ..smart.simclock import SimClock, WallClock
from ..transport.security import SecurityProfile
from .stations import DC_VOLTAGE_V, DepotStation, StationError, StationEvse

PROTOCOL = "ocpp_protocol"
DEFAULT_PREFIX = ""
BESS_ID = "BESS"


# ---- what the wire showed ------------------------------------------------------------------------

class CountingTrace(Trace):
    """A trace for long runs: counts every frame by (direction, kind, action), keeps the last `keep`."""

    def __init__(self, keep: int = 2000):
        super().__init__(keep=keep)
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def add(self, direction: str, peer: str, raw: str, *, kind: str = "", action: str = "",   # type: ignore[override]
            unique_id: str = "", note: str = "") -> TraceEntry:
        self.counts[(direction, kind, action)] += 1
        return super().add(direction, peer, raw, kind=kind, action=action, unique_id=unique_id,  # type: ignore[arg-type]
                           note=note)

    def frames(self) -> int:
        return sum(c for (d, k, _), c in self.counts.items() if d in ("rx", "tx") and k in ("CALL", "CALLRESULT", "CALLERROR"))

    def by_action(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (d, k, a), c in self.counts.items():
            if k == "CALL" and d in ("rx", "tx"):
                out[f"{'CSMS→CS' if d == 'rx' else 'CS→CSMS'} {a}"] += c
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


@dataclass
class ProfileEvent:
    t: float
    station_id: str
    evse_id: int
    purpose: str
    limit: float | None          # first period's limit as sent
    unit: str
    status: str
    reason: str = ""


class RunLog:
    """Profiles the stations received and protocol problems, in scenario time."""

    def __init__(self) -> None:
        self.profiles: list[ProfileEvent] = []
        self.problems: list[tuple[float, str]] = []
        self.first_tx_profile: dict[str, float] = {}     # transaction id → when its first TxProfile was accepted

    def profile(self, t: float, station_id: str, evse_id: int, raw: dict[str, Any], status: str, why: str) -> None:
        sched = raw.get("chargingSchedule")
        sched = sched[0] if isinstance(sched, list) and sched else (sched if isinstance(sched, dict) else {})
        periods = sched.get("chargingSchedulePeriod") or [{}]
        self.profiles.append(ProfileEvent(t, station_id, evse_id, str(raw.get("chargingProfilePurpose", "?")),
                                          periods[0].get("limit"), str(sched.get("chargingRateUnit", "?")),
                                          status, why))

    def protocol(self, t: float, text: str) -> None:
        self.problems.append((t, text))


# ---- options and result --------------------------------------------------------------------------

@dataclass
class RunOptions:
    meter_interval_s: float = 60.0      # SampledDataTxUpdatedInterval of the depot's chargers
    deadband_kw: float = 1.0            # a truck's power moving this much is reported at once
    station_prefix: str = DEFAULT_PREFIX
    bess_station: str = BESS_ID
    speed: float | None = None          # None: accelerated (built-in CSMS only); else × real time
    heartbeats: bool = True
    reconnect_every_s: float = 0.0      # each charger drops and reopens its websocket this often (0: never)
    trace_keep: int = 2000
    csms_settings: dict[str, Any] = field(default_factory=dict)   # DepotDlb parameters (built-in CSMS)


@dataclass
class DepotOcppResult(Judged):
    depot: DepotResult
    csms: str                           # what played the CSMS
    clock: str
    violations: list[Violation]         # the replay's plus OCPP protocol problems
    kpis: dict[str, Any]
    profiles: list[ProfileEvent]
    problems: list[tuple[float, str]]
    trace: CountingTrace
    wall_s: float


    def summary(self, max_violations: int = 10) -> str:
        k = self.kpis
        o = k["ocpp"]
        lines = [
            f"{self.depot.scenario} against {self.csms} over OCPP 2.0.1 ({self.clock}): "
            f"{'PASS' if self.ok else 'FAIL'} — {len(self.violations)} violation(s) in {self.depot.steps} steps "
            f"of {self.depot.step_s:g} s; {self.wall_s:.1f} s wall ({k['simulated_s'] / max(self.wall_s, 1e-9):,.0f}× real time)",
            f"  delivered {k['energy_delivered_kwh']:.1f} kWh, unmet {k['unmet_energy_kwh']:.1f} kWh, feasible trucks "
            f"reaching target {k['feasible_reached']}/{k['feasible_trucks']}, peak import {k['peak_import_kw']:.1f} kW",
            f"  OCPP: {o['calls']} CALLs ({o['frames']} frames, {o['frames_per_s_wall']:,.0f} frames/s wall), "
            f"SetChargingProfile {o['set_charging_profile']} ({o['profiles_rejected']} rejected)",
        ]
        for v in self.violations[:max_violations]:
            lines.append(f"  {v}")
        if len(self.violations) > max_violations:
            lines.append(f"  … {len(self.violations) - max_violations} more")
        return "\n".join(lines)


# ---- the run ------------------------------------------------------------------------------------

@dataclass
class _Slot:
    """A depot EVSE: where it lives on the wire (its truck and power live in the run's arrays)."""

    station: DepotStation
    evse: StationEvse


# charging states, by code (what the next TransactionEvent reports)
_STATES = ("EVConnected", "Charging", "SuspendedEV", "SuspendedEVSE")
CONNECTED, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE = range(4)


class DepotOcppRun:
    """Stations for `depot`, connected to a CSMS (see the module docstring).

    `csms_url` None: start the built-in CSMS simulator (with `fault`) on loopback; `csms_sim`:
    use this already running CsmsSimulator (e.g. the sim adapter's); otherwise connect to
    `csms_url` (a real CSMS: its depot must be configured out of band, see `site_summary`).
    `security(station_id)` gives each station its security profile (default: none).
    """

    def __init__(self, depot: Depot, *, csms_url: str | None = None, csms_sim: Any = None, fault: str | None = None,
                 options: RunOptions | None = None,
                 security: Callable[[str], SecurityProfile | None] | None = None) -> None:
        self.depot = depot
        self.opt = options or RunOptions()
        if csms_url is not None and csms_sim is None and self.opt.speed is None:
            raise ValueError("a CSMS that is not the built-in simulator cannot share the harness's simulated "
                             "clock: give a speed (1 = real time)")
        self.clock: SimClock = SimClock(depot.start_s) if self.opt.speed is None else WallClock(depot.start_s, self.opt.speed)
        self.csms_url = csms_url
        self.sim = csms_sim
        self.own_sim = csms_url is None and csms_sim is None
        self.fault = fault
        self.security = security or (lambda sid: None)
        self.trace = CountingTrace(self.opt.trace_keep)
        self.csms_trace = CountingTrace(200)
        self.log = RunLog()
        self.dlb: Any = None
        self.stations: list[DepotStation] = []
        self.slots: list[_Slot] = []
        E = len(depot.evses)
        self.truck = np.full(E, -1, dtype=np.intp)     # truck index on each depot EVSE (-1: none)
        self.occ = np.zeros(E, dtype=bool)
        self.e_kwh = np.zeros(E)                        # energy in the plugged truck's battery
        self.cap_kwh = np.ones(E)
        self.p_prev = np.zeros(E)                       # what it drew during the last step
        self.state_code = np.zeros(E, dtype=np.int8)
        self.reported_code = np.zeros(E, dtype=np.int8)
        self.reported_kw = np.zeros(E)
        self.report_t = np.full(E, -math.inf)
        self.plug_t = np.full(E, math.nan)
        self.reg_wh = np.zeros(E)                       # each EVSE's energy register
        self.rating = np.array([e.rating_kw for e in depot.evses], dtype=float)
        self.cab = np.array(depot.evse_cabinet, dtype=np.intp)
        self.cab_kw = np.array([c.cabinet_kw for c in depot.chargers], dtype=float)
        self.own_lim = np.full(E, math.inf)             # cached EVSE limit (kW) and until when it holds
        self.own_until = np.full(E, -math.inf)
        self._own_track: list[Any] = [None] * E
        self.wide_lim = self.cab_kw.copy()              # per charger: min(cabinet, station-wide limit)
        self._wide_until = np.full(len(depot.chargers), -math.inf)
        self._wide_track: list[Any] = [None] * len(depot.chargers)
        self._revision = -1
        self._next_change = -math.inf
        self.bess: DepotStation | None = None
        self.bess_e = 0.0
        self.bess_p_prev = 0.0
        self.bess_report_t = -math.inf
        self._plan_events: dict[int, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = {}
        self._plug_t: dict[str, float] = {}
        self._step_count = 0
        self._next_heartbeat = -math.inf
        self._next_reconnect = -math.inf
        self.wall0 = 0.0

    def station_id(self, charger_id: str) -> str:
        return f"{self.opt.station_prefix}{charger_id}"

    @property
    def bess_station_id(self) -> str | None:
        return self.station_id(self.opt.bess_station) if self.depot.site.bess is not None else None

    def station_ids(self) -> list[str]:
        ids = [self.station_id(c.id) for c in self.depot.chargers]
        return ids + ([self.bess_station_id] if self.bess_station_id else [])

    def csms_label(self) -> str:
        if self.sim is not None:
            dlb = getattr(self.sim, "dlb", None)
            name = dlb.controller.name if dlb is not None else "no DLB controller"
            return f"CSMS simulator ({name})"
        return f"CSMS at {self.csms_url}"

    # ---- set-up / tear-down ------------------------------------------------------------------

    async def start(self) -> None:
        self.wall0 = time.perf_counter()
        depot = self.depot
        url = self.csms_url
        if self.own_sim:
            from ..sim.api import CsmsSimConfig
            from ..sim.csms import CsmsSimulator

            self.sim = CsmsSimulator(CsmsSimConfig(port=0, versions=("2.0.1",)), fault=self.fault,
                                     trace=self.csms_trace, clock=self.clock)
            await self.sim.start()
        if self.sim is not None:
            from ..sim.csms_dlb import DepotSite, attach_depot

            url = self.sim.url
            site = DepotSite.from_depot(depot, self.station_id, self.bess_station_id)
            pw = {sid: sp.password for sid in self.station_ids()
                  if (sp := self.security(sid)) is not None and sp.password}
            self.dlb = attach_depot(self.sim, site, self.clock, passwords=pw, **self.opt.csms_settings)
        assert url is not None
        self.url = url
        cab = depot.evse_cabinet
        by_charger: dict[int, list[tuple[int, StationEvse]]] = {}
        n_in: dict[int, int] = {}
        for s, ev in enumerate(depot.evses):
            c = cab[s]
            n_in[c] = n_in.get(c, 0) + 1
            by_charger.setdefault(c, []).append((s, StationEvse(n_in[c], ev.rating_kw, s, ev.id)))
        self.slots = [None] * len(depot.evses)   # type: ignore[list-item]
        for ci, charger in enumerate(depot.chargers):
            st = DepotStation(self.station_id(charger.id), [e for _, e in by_charger[ci]], charger.cabinet_kw,
                              self.clock, depot.end_s, self.trace, log=self.log)
            self.stations.append(st)
            for s, e in by_charger[ci]:
                self.slots[s] = _Slot(st, e)
        b = depot.site.bess
        if b is not None:
            self.bess = DepotStation(self.bess_station_id or BESS_ID,
                                     [StationEvse(1, b.max_charge_kw, name="BESS charge"),
                                      StationEvse(2, b.max_discharge_kw, name="BESS discharge")],
                                     max(b.max_charge_kw, b.max_discharge_kw), self.clock, depot.end_s, self.trace,
                                     kind="bess", log=self.log)
            self.stations.append(self.bess)
            self.bess_e = b.initial_soc * b.capacity_kwh
        await self.clock.reach(depot.start_s)
        await asyncio.gather(*(st.connect(url, self.security(st.station_id)) for st in self.stations))
        await asyncio.gather(*(st.boot() for st in self.stations))
        if self.bess is not None:
            soc = 100.0 * self.bess_e / b.capacity_kwh   # type: ignore[union-attr]
            for e in self.bess.evses.values():
                self.bess.start_tx(e, state="Charging")
            self._bess_meter(soc, trigger=None)
            await self.bess.flush()
        for p in plug_plan(depot):
            if p.evse is None or p.plug_step >= p.unplug_step:
                continue
            self._plan_events.setdefault(p.plug_step, ([], []))[1].append((p.truck, p.evse))
            if p.unplug_step < depot.n_steps:
                self._plan_events.setdefault(p.unplug_step, ([], []))[0].append((p.truck, p.evse))

    async def stop(self) -> None:
        await asyncio.gather(*(asyncio.wait_for(st.close(), 10) for st in self.stations), return_exceptions=True)
        if self.sim is not None:
            from ..sim.csms_dlb import detach_depot

            detach_depot(self.sim)
        if self.own_sim and self.sim is not None:
            await self.sim.stop()

    # ---- one control step ----------------------------------------------------------------------

    def _bess_meter(self, soc: float, trigger: str | None) -> None:
        assert self.bess is not None
        p = self.bess_p_prev
        for evse_id, e in self.bess.evses.items():
            export = evse_id == 2
            kw = max(-p, 0.0) if export else max(p, 0.0)
            self.bess.tx_event(e, "Updated", trigger or "MeterValuePeriodic",
                               meter=[self.bess.sample(e, power_kw=kw, soc_pct=soc, export=export)])
        self.bess_report_t = self.clock.now()

    async def step(self, k: int, t: float, s: DepotState) -> None:
        """Stages 1–3 of the module docstring for control step k."""
        await self.clock.reach(t)
        busy = self.report(k, t)
        if busy:
            await asyncio.gather(*(st.flush() for st in busy))
        await self.clock.advance(t)
        self._step_count += 1

    def step_sync(self, k: int, t: float, runner: Callable[[Coroutine[Any, Any, None]], Any]) -> None:
        """`step` for accelerated time in this thread: the event loop runs only when something goes
        on the wire (most steps need none)."""
        busy = self.report(k, t)
        if busy:
            runner(self._flush_and_advance(busy, t))
        else:
            pending = self.clock.plan_all(t)
            if pending is None:
                runner(self.clock.advance(t))
            elif pending:
                runner(_gather(pending))
        self._step_count += 1

    async def _flush_and_advance(self, busy: set[DepotStation], t: float) -> None:
        await asyncio.gather(*(st.flush() for st in busy))
        await self.clock.advance(t)

    def report(self, k: int, t: float) -> set[DepotStation]:
        """Stage 2: queue what the stations tell the CSMS at step k; the stations with something to send."""
        trucks = self.depot.trucks
        ev = self._plan_events.get(k)
        busy: set[DepotStation] = set()
        if ev is not None:
            for i, idx in ev[0]:
                if self.truck[idx] != i:
                    continue
                slot = self.slots[idx]
                slot.evse.register_wh = float(self.reg_wh[idx])
                slot.evse.state = _STATES[self.state_code[idx]]
                slot.station.end_tx(slot.evse, soc_pct=100.0 * float(self.e_kwh[idx] / self.cap_kwh[idx]))
                self.truck[idx] = -1
                self.occ[idx] = False
                self.p_prev[idx] = 0.0
                busy.add(slot.station)
            for i, idx in ev[1]:
                slot = self.slots[idx]
                tr = trucks[i]
                self.truck[idx] = i
                self.occ[idx] = True
                self.cap_kwh[idx] = tr.capacity_kwh
                self.e_kwh[idx] = tr.arrival_soc * tr.capacity_kwh
                self.p_prev[idx] = 0.0
                self.state_code[idx] = self.reported_code[idx] = CONNECTED
                self.reported_kw[idx] = 0.0
                self.report_t[idx] = t
                self.plug_t[idx] = t
                st, e = slot.station, slot.evse
                e.register_wh = float(self.reg_wh[idx])
                st.start_tx(e)
                self._plug_t[e.tx_id or ""] = t
                need_wh = max(0.0, tr.target_soc * tr.capacity_kwh - self.e_kwh[idx]) * 1000.0
                st.queue("NotifyEVChargingNeeds", {"evseId": e.evse_id, "chargingNeeds": {
                    "requestedEnergyTransfer": "DC", "departureTime": self.clock.iso(tr.departure_s),
                    "dcChargingParameters": {
                        "evMaxCurrent": int(tr.max_kw * 1000.0 / DC_VOLTAGE_V), "evMaxVoltage": 920,
                        "energyAmount": int(math.floor(need_wh)), "evMaxPower": int(tr.max_kw * 1000.0),
                        "stateOfCharge": int(round(100.0 * tr.arrival_soc)),
                        "evEnergyCapacity": int(tr.capacity_kwh * 1000.0),
                        "fullSoC": 100, "bulkSoC": int(round(100.0 * tr.target_soc))}}})
                busy.add(st)
        # meter values that are due: charging state changed, power moved by the deadband, or periodic
        changed = self.state_code != self.reported_code
        moved = np.abs(self.p_prev - self.reported_kw) >= self.opt.deadband_kw
        periodic = t - self.report_t >= self.opt.meter_interval_s - 1e-9
        due = self.occ & (self.plug_t != t) & (changed | moved | periodic)
        if due.any():
            for idx in np.flatnonzero(due).tolist():
                trigger = ("ChargingStateChanged" if changed[idx] else "ChargingRateChanged" if moved[idx]
                           else "MeterValuePeriodic")
                slot = self.slots[idx]
                e = slot.evse
                e.state = _STATES[self.state_code[idx]]
                e.register_wh = float(self.reg_wh[idx])
                kw = float(self.p_prev[idx])
                self.reported_code[idx] = self.state_code[idx]
                self.reported_kw[idx] = kw
                self.report_t[idx] = t
                slot.station.tx_event(e, "Updated", trigger, meter=[slot.station.sample(
                    e, power_kw=kw, soc_pct=100.0 * float(self.e_kwh[idx] / self.cap_kwh[idx]))])
                busy.add(slot.station)
        if self.bess is not None and t - self.bess_report_t >= self.opt.meter_interval_s - 1e-9:
            self._bess_meter(100.0 * self.bess_e / self.depot.site.bess.capacity_kwh, None)   # type: ignore[union-attr]
            busy.add(self.bess)
        every = self.opt.reconnect_every_s
        if every > 0 and t >= self._next_reconnect:
            n = len(self.stations)
            for j, st in enumerate(self.stations):       # staggered: one station at a time
                phase = (t - self.depot.start_s - (j + 1) * every / (n + 1)) % every
                if phase < self.depot.step_s:
                    st.reconnect_pending = True
                    st.queue("Heartbeat", {})            # the CSMS has the new connection before it decides
                    busy.add(st)
            self._next_reconnect = t + self.depot.step_s
        if self.opt.heartbeats and t >= self._next_heartbeat:
            nxt = math.inf
            for st in self.stations:
                due_t = st.last_sent_t + st.heartbeat_s
                if st not in busy and t >= due_t:
                    st.queue("Heartbeat", {})
                    busy.add(st)
                    due_t = t + st.heartbeat_s
                nxt = min(nxt, due_t)
            self._next_heartbeat = nxt
        return busy

    def _refresh_limits(self, t: float) -> None:
        """Re-read the limits in force from the stations' laid-out profiles (after a profile
        arrived or a period boundary passed)."""
        own = self.own_lim
        for idx, slot in enumerate(self.slots):
            tr = slot.evse.own
            if tr is not self._own_track[idx] or t >= self.own_until[idx]:
                v, until = tr.value(t)
                own[idx] = math.inf if v is None else max(v, 0.0)
                self.own_until[idx] = until
                self._own_track[idx] = tr
        for ci, st in enumerate(self.stations[:len(self.depot.chargers)]):
            tr = st.station_track
            if tr is not self._wide_track[ci] or t >= self._wide_until[ci]:
                v, until = tr.value(t)
                self.wide_lim[ci] = self.cab_kw[ci] if v is None else min(self.cab_kw[ci], max(v, 0.0))
                self._wide_until[ci] = until
                self._wide_track[ci] = tr
        self._next_change = min(float(self.own_until.min()), float(self._wide_until.min()))

    def deliver(self, k: int, t: float, s: DepotState) -> Allocation:
        """Stage 4: what every truck and the BESS draw during step k."""
        dt = self.depot.step_s
        dt_h = dt / 3600.0
        need = s.ev_need_kwh
        lim = s.ev_limit_kw
        want = np.minimum(np.minimum(self.rating, lim), need * (3600.0 / dt))
        want = np.where(self.occ, np.maximum(want, 0.0), 0.0)
        revision = sum(st.revision for st in self.stations)
        if revision != self._revision or t >= self._next_change:
            self._refresh_limits(t)
            self._revision = revision
        p = np.minimum(want, self.own_lim)
        sums = np.bincount(self.cab, weights=p, minlength=len(self.cab_kw))
        over = sums > self.wide_lim + 1e-9
        if over.any():     # the charger shares what it may draw in proportion to what each EVSE could take
            f = np.where(over, self.wide_lim / np.maximum(sums, 1e-12), 1.0)
            p = p * f[self.cab]
        code = np.where((need <= 1e-9) | (lim <= 1e-9), SUSPENDED_EV, np.where(p <= 1e-6, SUSPENDED_EVSE, CHARGING))
        self.state_code = np.where(self.occ, code, CONNECTED).astype(np.int8)
        self.p_prev = p
        self.e_kwh += p * dt_h
        self.reg_wh += p * (dt_h * 1000.0)
        pb = 0.0
        b = self.depot.site.bess
        if self.bess is not None and b is not None:
            ch = self.bess.limit_kw(1, t)
            dis = self.bess.limit_kw(2, t)
            pb = (ch or 0.0) - (dis or 0.0)
            self.bess_p_prev = pb
            self.bess.evses[1].register_wh += max(pb, 0.0) * dt_h * 1000.0
            self.bess.evses[2].register_wh += max(-pb, 0.0) * dt_h * 1000.0
            self.bess_e = min(max(self.bess_e + (pb * b.eta if pb >= 0 else pb / b.eta) * dt_h, 0.0), b.capacity_kwh)
        return Allocation(p, pb)

    # ---- result ------------------------------------------------------------------------------

    def result(self, depot_result: DepotResult) -> DepotOcppResult:
        wall = time.perf_counter() - self.wall0
        violations = list(depot_result.violations)
        problems = self.log.problems + [(self.clock.now(), f"CSMS DLB: {n}") for n in
                                        (getattr(self.dlb, "notes", None) or [])]
        if problems:
            t0 = problems[0][0]
            violations.append(Violation(
                PROTOCOL, "OCPP", t0, problems[-1][0], float(len(problems)), 0.0, "problems",
                f"{len(problems)} OCPP problem(s), first at {clock_text(t0)}: {problems[0][1]}"))
        violations.sort(key=lambda v: (v.t_start, v.invariant, v.subject))
        kpis = dict(depot_result.kpis)
        kpis["ocpp"] = self._ocpp_kpis(wall)
        kpis["violations"] = len(violations)
        by: dict[str, int] = {}
        for v in violations:
            by[v.invariant] = by.get(v.invariant, 0) + 1
        kpis["violations_by_invariant"] = by
        return DepotOcppResult(depot_result, self.csms_label(), self.clock.describe(), violations, kpis,
                               self.log.profiles, problems, self.trace, wall)

    def _ocpp_kpis(self, wall: float) -> dict[str, Any]:
        frames = self.trace.frames()
        calls = sum(c for (d, k, _), c in self.trace.counts.items() if k == "CALL" and d in ("rx", "tx"))
        scp = [p for p in self.log.profiles]
        rejected = [p for p in scp if p.status != "Accepted"]
        first = self.log.first_tx_profile
        lat = [first[tx] - t0 for tx, t0 in self._plug_t.items() if tx in first]
        never = sum(1 for tx in self._plug_t if tx not in first)
        sim_s = self.depot.n_steps * self.depot.step_s
        return {
            "stations": len(self.stations),
            "calls": calls,
            "frames": frames,
            "frames_per_s_wall": frames / wall if wall > 0 else math.inf,
            "calls_per_simulated_s": calls / sim_s if sim_s else 0.0,
            "calls_by_action": self.trace.by_action(),
            "set_charging_profile": len(scp),
            "profiles_rejected": len(rejected),
            "profiles_rejected_reasons": dict(Counter(p.reason.split(" ")[0] or p.status for p in rejected)),
            "plug_in_to_tx_profile_p50_s": float(np.percentile(lat, 50)) if lat else None,
            "plug_in_to_tx_profile_p99_s": float(np.percentile(lat, 99)) if lat else None,
            "sessions_without_tx_profile": never,
            "protocol_problems": len(self.log.problems),
            "reconnects": sum(st.reconnects for st in self.stations),
            "clock": self.clock.describe(),
            "max_lag_s": getattr(self.clock, "max_lag_s", 0.0),
            "wall_s": wall,
        }


async def _gather(aws: list[Any]) -> None:
    await asyncio.gather(*aws)


class OcppDepotController:
    """The replay's controller: each `decide` is one control step of `DepotOcppRun` over OCPP.

    `same_thread`: the run's event loop belongs to this thread and is not running between
    steps (`run_depot`), so in accelerated time a step with nothing on the wire skips the loop."""

    def __init__(self, run: DepotOcppRun, runner: Callable[[Coroutine[Any, Any, None]], Any], *,
                 same_thread: bool = False):
        self.run = run
        self.runner = runner
        self.fast = same_thread and run.clock.accelerated
        self.name = f"OCPP 2.0.1 → {run.csms_label()}"

    def reset(self) -> None:
        pass

    def decide(self, state: DepotState, t: float) -> Allocation:
        r = self.run
        k = int(round((t - r.depot.start_s) / r.depot.step_s))
        if self.fast:
            r.clock.t = float(t)
            r.step_sync(k, t, self.runner)
        else:
            self.runner(r.step(k, t, state))
        return r.deliver(k, t, state)


# ---- entry points --------------------------------------------------------------------------------

def run_depot(depot: Depot, **kw: Any) -> DepotOcppResult:
    """Run `depot` over OCPP in a private event loop in this thread (CLI, tests, benchmarks).
    Keywords: those of `DepotOcppRun`. Must not be called from inside a running event loop."""
    run = DepotOcppRun(depot, **kw)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run.start())
        controller = OcppDepotController(run, loop.run_until_complete, same_thread=True)
        depot_result = replay(depot, controller)
        return run.result(depot_result)
    finally:
        try:
            loop.run_until_complete(asyncio.wait_for(run.stop(), 30))
        except Exception:
            pass
        _drain(loop)


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


async def run_depot_async(depot: Depot, *, step_timeout_s: float = 120.0, **kw: Any) -> DepotOcppResult:
    """Run `depot` from inside a running event loop (the scenario engine): the OCPP side stays on
    this loop, the replay runs in a worker thread and hands each step over."""
    run = DepotOcppRun(depot, **kw)
    loop = asyncio.get_running_loop()

    def runner(coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, loop).result(step_timeout_s)

    try:
        await run.start()
        controller = OcppDepotController(run, runner)
        depot_result = await asyncio.to_thread(replay, depot, controller)
        return run.result(depot_result)
    finally:
        try:
            await asyncio.wait_for(run.stop(), 30)
        except Exception:
            pass


__all__ = ["DepotOcppRun", "DepotOcppResult", "OcppDepotController", "RunOptions", "StationError", "run_depot",
           "run_depot_async", "PROTOCOL"]
