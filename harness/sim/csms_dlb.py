"""Depot DLB inside the reference CSMS: `dlb.ReferenceController` fed over OCPP 2.0.1.

The CSMS simulator becomes a depot back end when a `DepotDlb` is attached
(`attach_depot`). It learns everything about the trucks from what the chargers send and
is configured with what a depot operator configures in a real back end:

| the controller needs | where the CSMS gets it |
|---|---|
| EVSEs, ratings, power cabinets | configuration (`DepotSite.evses`, `cabinet_kw`) — the depot's installed chargers |
| site grid limit (changing), tariff, PV forecast | configuration (`DepotSite`) read at the shared clock's time |
| BESS nameplate (capacity, power, SoC window, efficiency) | configuration; the BESS is a charging station (`bess_station`) |
| plugged / arrival | TransactionEvent Started (timestamp) … Ended |
| departure, energy to deliver, EV max power | NotifyEVChargingNeeds (departureTime, dc/acChargingParameters energyAmount, evMaxPower) |
| energy delivered since the needs were sent | Energy.Active.Import.Register in TransactionEvent meter values, carried forward at the last reported Power.Active.Import until the next sample |
| what a tapering truck can take now | learned: a truck drawing < its setpoint (chargingState Charging, setpoint in force ≥ `settle_s`) can take no more than that; it only goes down during a session |
| EV stopped by itself | chargingState SuspendedEV: nothing more to deliver |
| BESS state of charge | SoC measurand of the BESS station's meter values, carried forward with the CSMS's own setpoints |

Every control step (a tick of the shared clock, `harness.smart.simclock`) the controller
decides; each EVSE whose setpoint changed gets a SetChargingProfile: a TxProfile for its
transaction, Absolute from now, one period, in W, with a fixed profile id per EVSE (the
new one replaces the old, K01.FR.05). Calls to one station are sent one after the other
(OCPP-J: one outstanding CALL per direction), stations in parallel; the tick returns when
every station has answered, so in accelerated time the decision is in force for the step.

**BESS over OCPP 2.0.1** (which has no storage control): a harness convention. The BESS is
a charging station with two EVSEs, each running a transaction for as long as it is
connected: EVSE 1 is the charging path, EVSE 2 the discharging path. The CSMS sets the
BESS power with TxProfiles: the limit on EVSE 1 is the charging setpoint, the limit on
EVSE 2 the discharging setpoint (never both > 0); the BESS treats its limit as a
setpoint. It reports Power.Active.Import / Power.Active.Export and SoC.

**Faults** (`CSMS_FAULTS` `dlb_*`, one per `dlb.DLB_FAULTS` entry): the CSMS runs the
reference controller with that fault seeded — the depot cases must catch each.
"""

from __future__ import annotations

import asyncio
import dataclasses
from bisect import bisect_right
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Coroutine

import numpy as np

from ..smart.depot import DAY_S, Bess, Depot, PvProfile, StepSchedule, Tariff
from ..smart.dlb import DLB_FAULTS, DepotState, ReferenceController, bess_headroom

if TYPE_CHECKING:
    from .csms import CsmsSimulator, StationState

log = logging.getLogger(__name__)

DLB_FAULT_PREFIX = "dlb_"
BESS_CHARGE_EVSE = 1
BESS_DISCHARGE_EVSE = 2
PROFILE_ID_BASE = 1000           # TxProfile id of depot EVSE i is PROFILE_ID_BASE + i
BESS_PROFILE_IDS = {BESS_CHARGE_EVSE: 900_001, BESS_DISCHARGE_EVSE: 900_002}
NO_NEEDS_DEPARTURE_S = 24 * 3600.0   # a truck that never said when it leaves: "in a day"
NO_NEEDS_ENERGY_KWH = 1000.0         # … and that it wants a full big pack
SEND_TIMEOUT_S = 20.0
ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
POWER_OUT = "Power.Active.Export"
SOC = "SoC"


def dlb_fault(csms_fault: str | None) -> str | None:
    """The controller fault behind a CSMS fault name (`dlb_slow_reaction` → `slow_reaction`)."""
    if csms_fault and csms_fault.startswith(DLB_FAULT_PREFIX) and csms_fault[len(DLB_FAULT_PREFIX):] in DLB_FAULTS:
        return csms_fault[len(DLB_FAULT_PREFIX):]
    return None


# ---- configuration ----------------------------------------------------------------------------

@dataclass(frozen=True)
class DlbEvse:
    station_id: str
    evse_id: int
    rating_kw: float
    cabinet: int                 # index into DepotSite.cabinet_kw
    name: str = ""               # the depot's EVSE id (C3-1), for messages


@dataclass(frozen=True)
class DepotSite:
    """What the depot operator configures in the back end."""

    evses: tuple[DlbEvse, ...]
    cabinet_kw: tuple[float, ...]
    grid_limit: StepSchedule
    tariff: Tariff = field(default_factory=Tariff)
    pv: PvProfile | None = None
    bess: Bess | None = None
    bess_station: str | None = None
    step_s: float = 1.0

    @classmethod
    def from_depot(cls, depot: Depot, station_id: Callable[[str], str], bess_station: str | None = None) -> "DepotSite":
        """The site of a depot scenario; `station_id(charger id)` names each charger's station."""
        evses = []
        for ci, c in enumerate(depot.chargers):
            for n, e in enumerate(c.evses, start=1):
                evses.append(DlbEvse(station_id(c.id), n, e.rating_kw, ci, e.id))
        site = depot.site
        return cls(evses=tuple(evses), cabinet_kw=tuple(c.cabinet_kw for c in depot.chargers),
                   grid_limit=site.grid_limit, tariff=site.tariff, pv=site.pv, bess=site.bess,
                   bess_station=bess_station if site.bess is not None else None, step_s=depot.step_s)


# ---- what the CSMS records ---------------------------------------------------------------------

@dataclass
class Decision:
    t: float
    station_id: str
    evse_id: int
    kw: float
    status: str                  # Accepted / Rejected / error code / "no answer"
    what: str = "ev"             # ev | bess


def _sampled(meter_values: list[dict[str, Any]] | None) -> tuple[str | None, dict[str, float]]:
    """(timestamp, {measurand: value in W / Wh / %}) of the last meter value: phase-less readings only."""
    ts, out = None, {}
    for mv in meter_values or []:
        ts = mv.get("timestamp", ts)
        for sv in mv.get("sampledValue", []):
            if sv.get("phase"):
                continue
            m = sv.get("measurand", ENERGY)
            unit = sv.get("unitOfMeasure") or {}
            mult = 10 ** unit.get("multiplier", 0)
            if unit.get("unit") in ("kWh", "kW"):
                mult *= 1000
            try:
                out[m] = float(sv["value"]) * (1 if m == SOC else mult)
            except (KeyError, TypeError, ValueError):
                continue
    return ts, out


class DepotDlb:
    """The CSMS simulator's depot controller (see the module docstring)."""

    def __init__(self, sim: CsmsSimulator, site: DepotSite, clock: Any, *, fault: str | None = None,
                 settle_s: float | None = None, taper_threshold_kw: float = 1.0, bess_margin: float = 0.001,
                 bess_quantum_kw: float = 1.0, **controller_params: Any):
        self.sim, self.site, self.clock = sim, site, clock
        self.fault = fault
        self.controller = ReferenceController(fault=fault, **controller_params)
        self.settle_s = settle_s if settle_s is not None else (site.step_s if getattr(clock, "accelerated", True)
                                                              else 5.0 * site.step_s)
        self.taper_threshold_kw = taper_threshold_kw
        self.bess_quantum_kw = bess_quantum_kw
        E = len(site.evses)
        self.index = {(e.station_id, e.evse_id): i for i, e in enumerate(site.evses)}
        self.rating = np.array([e.rating_kw for e in site.evses], dtype=float)
        self.cabinet = np.array([e.cabinet for e in site.evses], dtype=np.intp)
        self.cabinet_kw = np.array(site.cabinet_kw, dtype=float)
        # per EVSE, what the chargers told the CSMS
        self.tx: list[str | None] = [None] * E
        self.plugged = np.zeros(E, dtype=bool)
        self.cap_kw = np.minimum(self.rating, self.cabinet_kw[self.cabinet])
        self.arrival = np.full(E, math.inf)
        self.departure = np.full(E, math.inf)
        self.amount_wh = np.zeros(E)           # energyAmount of the latest NotifyEVChargingNeeds
        self.base_wh = np.zeros(E)             # the register when the needs were sent (what energyAmount counts from)
        self.base_pending = np.zeros(E, dtype=bool)   # needs known, register not yet: the first reading is the base
        self.reg = np.zeros(E)                 # latest Energy.Active.Import.Register (Wh) …
        self.reg_t = np.zeros(E)               # … and when it was read
        self.reg_known = np.zeros(E, dtype=bool)
        self.power_kw = np.zeros(E)            # latest Power.Active.Import
        self.ev_max_kw = np.zeros(E)           # 0 where nothing is plugged
        self.learned_kw = np.full(E, math.inf) # what a tapering truck takes at most now
        self.suspended_ev = np.zeros(E, dtype=bool)
        self.has_needs = np.zeros(E, dtype=bool)
        self.sent_kw = np.full(E, math.nan)    # setpoint in force (NaN: none sent this session)
        self.sent_t = np.full(E, -math.inf)
        self.refused: dict[int, float] = {}    # EVSE → the setpoint its station last refused
        self.churn = 0
        # BESS
        b = site.bess
        self.bess_tx: dict[int, str] = {}
        self.bess_e = b.initial_soc * b.capacity_kwh if b else 0.0
        self.bess_seen = False                 # a SoC reading arrived
        self.bess_sent: dict[int, float] = {}
        self.bess_kw = 0.0
        self.bess_view = (dataclasses.replace(b, soc_min=min(b.soc_min + bess_margin, b.soc_max),
                                              soc_max=max(b.soc_max - bess_margin, b.soc_min)) if b else None)
        # the site's schedules as plain tables: read every tick
        self._limit_t = [t for t, _ in site.grid_limit.points]
        self._limit_v = [v for _, v in site.grid_limit.points]
        self._price_t = [t for t, _ in site.tariff.periods]
        self._price_v = [v for _, v in site.tariff.periods]
        self._pv = (np.array([t for t, _ in site.pv.points]), np.array([v for _, v in site.pv.points])) if site.pv else None
        self.decisions: list[Decision] = []
        self.notes: list[str] = []
        self.ticks = 0
        self._state: DepotState | None = None

    # ---- what the stations send (called from CsmsSimulator._decide, before the answer) ------

    def observe(self, st: StationState, action: str, payload: dict[str, Any]) -> None:
        if st.version != "2.0.1":
            return
        try:
            if action == "TransactionEvent":
                self._transaction_event(st.station_id, payload)
            elif action == "NotifyEVChargingNeeds":
                self._needs(st.station_id, payload)
            elif action == "MeterValues":
                if st.station_id == self.site.bess_station:
                    self._bess_meter(payload.get("meterValue"))
        except Exception as exc:   # a payload the model cannot read: noted, never fatal
            self.notes.append(f"{st.station_id} {action}: {type(exc).__name__}: {exc}")

    def _transaction_event(self, station_id: str, p: dict[str, Any]) -> None:
        info = p.get("transactionInfo") or {}
        tx_id = info.get("transactionId")
        event = p.get("eventType")
        evse_id = (p.get("evse") or {}).get("id")
        if station_id == self.site.bess_station:
            if event == "Started" and evse_id in (BESS_CHARGE_EVSE, BESS_DISCHARGE_EVSE):
                self.bess_tx[evse_id] = tx_id
                self.bess_sent.pop(evse_id, None)
            elif event == "Ended":
                for e, t in list(self.bess_tx.items()):
                    if t == tx_id:
                        del self.bess_tx[e]
            self._bess_meter(p.get("meterValue"))
            return
        if evse_id is not None:
            i = self.index.get((station_id, int(evse_id)))
        else:
            i = next((k for k, t in enumerate(self.tx) if t == tx_id and self.site.evses[k].station_id == station_id),
                     None)
        if i is None:
            return
        t = self._time(p.get("timestamp"))
        if event == "Started":
            self.tx[i] = tx_id
            self.plugged[i] = True
            self.arrival[i] = t
            self.departure[i] = t + NO_NEEDS_DEPARTURE_S
            self.amount_wh[i] = NO_NEEDS_ENERGY_KWH * 1000.0
            self.base_wh[i] = 0.0
            self.base_pending[i] = True
            self.reg[i] = 0.0
            self.reg_known[i] = False
            self.reg_t[i] = t
            self.power_kw[i] = 0.0
            self.ev_max_kw[i] = self.rating[i]
            self.learned_kw[i] = math.inf
            self.suspended_ev[i] = False
            self.has_needs[i] = False
            self.sent_kw[i] = math.nan
            self.refused.pop(i, None)
            self.churn += 1
        elif self.tx[i] != tx_id:
            return
        state = info.get("chargingState")
        if state is not None:
            self.suspended_ev[i] = state == "SuspendedEV"
        ts, values = _sampled(p.get("meterValue"))
        if values:
            self._ev_meter(i, self._time(ts) if ts else t, values, state)
        if event == "Ended":
            self.tx[i] = None
            self.plugged[i] = False
            self.arrival[i] = self.departure[i] = math.inf
            self.ev_max_kw[i] = 0.0
            self.power_kw[i] = 0.0
            self.sent_kw[i] = math.nan
            self.churn += 1

    def _ev_meter(self, i: int, t: float, values: dict[str, float], state: str | None) -> None:
        if ENERGY in values:
            self.reg[i] = values[ENERGY]
            self.reg_t[i] = t
            self.reg_known[i] = True
            if self.base_pending[i]:
                self.base_wh[i] = values[ENERGY]
                self.base_pending[i] = False
        if POWER in values:
            kw = values[POWER] / 1000.0
            self.power_kw[i] = kw
            sent = self.sent_kw[i]
            # taper learning: the truck had this setpoint long enough and drew clearly less
            if (state in (None, "Charging") and not self.suspended_ev[i] and not math.isnan(sent)
                    and kw < sent - self.taper_threshold_kw and self.sent_t[i] + self.settle_s <= t + 1e-9):
                self.learned_kw[i] = min(self.learned_kw[i], kw)

    def _needs(self, station_id: str, p: dict[str, Any]) -> None:
        i = self.index.get((station_id, int(p.get("evseId", 0))))
        if i is None or self.tx[i] is None:
            return
        needs = p.get("chargingNeeds") or {}
        if needs.get("departureTime"):
            self.departure[i] = self._time(needs["departureTime"])
        dc = needs.get("dcChargingParameters")
        ac = needs.get("acChargingParameters")
        if dc:
            if dc.get("energyAmount") is not None:
                self.amount_wh[i] = float(dc["energyAmount"])
            if dc.get("evMaxPower"):
                self.ev_max_kw[i] = float(dc["evMaxPower"]) / 1000.0
            elif dc.get("evMaxCurrent") and dc.get("evMaxVoltage"):
                self.ev_max_kw[i] = float(dc["evMaxCurrent"]) * float(dc["evMaxVoltage"]) / 1000.0
        elif ac:
            self.amount_wh[i] = float(ac.get("energyAmount", self.amount_wh[i]))
            self.ev_max_kw[i] = float(ac.get("evMaxCurrent", 0)) * 230.0 * 3 / 1000.0 or self.rating[i]
        self.has_needs[i] = True
        if self.reg_known[i]:                    # energyAmount counts from now (else: from the first reading)
            self.base_wh[i] = self.reg[i] + self.power_kw[i] * max(self._time(None) - self.reg_t[i], 0.0) / 3.6
            self.base_pending[i] = False

    def _bess_meter(self, meter_values: list[dict[str, Any]] | None) -> None:
        b = self.site.bess
        if b is None:
            return
        _, values = _sampled(meter_values)
        if SOC in values:
            self.bess_e = values[SOC] / 100.0 * b.capacity_kwh
            self.bess_seen = True

    def _time(self, iso: str | None) -> float:
        if not iso:
            return self.clock.now()
        try:
            return self.clock.from_iso(iso)
        except ValueError:
            return self.clock.now()

    # ---- the control step -------------------------------------------------------------------

    def state(self, t: float) -> DepotState:
        """The controller's view at `t`, built from what the stations reported."""
        site = self.site
        plugged = self.plugged
        since = np.maximum(t - self.reg_t, 0.0)
        delivered = np.where(self.reg_known, self.reg - self.base_wh, 0.0) + self.power_kw * since * (1000.0 / 3600.0)
        need = np.maximum(self.amount_wh - delivered, 0.0) * (plugged & ~self.suspended_ev) / 1000.0
        limit = np.minimum(self.ev_max_kw, self.learned_kw)
        full = np.minimum(limit, self.cap_kw)
        ttt = np.where(full > 0, need * 3600.0 / np.maximum(full, 1e-9), 0.0)
        s = self._state
        if s is None:
            s = self._state = DepotState(
                t=t, step_s=site.step_s, evse_ids=[e.name or f"{e.station_id}/{e.evse_id}" for e in site.evses],
                evse_rating_kw=self.rating, evse_cabinet=self.cabinet, cabinet_kw=self.cabinet_kw,
                plugged=plugged, ev_limit_kw=limit, ev_need_kwh=need, ev_arrival_s=self.arrival,
                ev_departure_s=self.departure, ev_time_to_target_s=ttt, site_limit_kw=0.0, pv_kw=0.0,
                price=0.0, tariff=site.tariff, bess=self.bess_view, bess_energy_kwh=self.bess_e)
        s.t = t
        s.plugged, s.ev_limit_kw, s.ev_need_kwh, s.ev_time_to_target_s = plugged.copy(), limit, need, ttt
        s.ev_arrival_s = self.arrival.copy()         # +inf where nothing is plugged
        s.ev_departure_s = self.departure.copy()
        s.site_limit_kw = self._limit_v[max(bisect_right(self._limit_t, t) - 1, 0)]
        s.pv_kw = float(np.interp(t % DAY_S, *self._pv)) if self._pv is not None else 0.0
        s.price = self._price_v[bisect_right(self._price_t, t % DAY_S) - 1]      # -1 → the last period (wraps)
        s.bess = self.bess_view if self.bess_tx else None       # no BESS connected: nothing to drive
        s.bess_energy_kwh = self.bess_e
        s.churn = self.churn
        return s

    async def tick(self, t: float) -> None:
        """One control step: decide, then send each changed setpoint (see the module docstring)."""
        sends = self.plan(t)
        if sends is not None:
            await sends

    def plan(self, t: float) -> Coroutine[Any, Any, None] | None:
        """The synchronous half of a tick: decide, and return the sending still to do (None: the
        decision changed nothing on the wire and the step is complete)."""
        self.ticks += 1
        state = self.state(t)
        self.churn = 0
        alloc = self.controller.decide(state, t)
        kw = np.asarray(alloc.evse_kw, dtype=float)
        per_station: dict[str, list[tuple[int, int, float, dict[str, Any]]]] = {}
        plugged = np.flatnonzero(state.plugged)
        if plugged.size:
            old = self.sent_kw[plugged]
            changed = plugged[np.isnan(old) | (np.abs(kw[plugged] - old) >= 1e-6)]
            for i in changed.tolist():
                new = float(kw[i])
                if self.refused.get(i) == new:
                    continue                      # the station refused exactly this: don't hammer it every second
                e = self.site.evses[i]
                per_station.setdefault(e.station_id, []).append(
                    (i, e.evse_id, new, self._tx_profile(e.evse_id, PROFILE_ID_BASE + i, self.tx[i], new, t)))
        bess_kw = float(alloc.bess_kw) if state.bess is not None else 0.0
        if state.bess is not None and self.site.bess_station:
            charge, discharge = self._bess_setpoints(state, bess_kw)
            for evse_id, value in ((BESS_CHARGE_EVSE, charge), (BESS_DISCHARGE_EVSE, discharge)):
                if evse_id not in self.bess_tx or abs(self.bess_sent.get(evse_id, math.nan) - value) < 1e-6:
                    continue
                per_station.setdefault(self.site.bess_station, []).append(
                    (-evse_id, evse_id, value,
                     self._tx_profile(evse_id, BESS_PROFILE_IDS[evse_id], self.bess_tx[evse_id], value, t)))
        if per_station:
            return self._send_then_account(per_station, t, state.bess is not None)
        self._account(state.bess is not None)
        return None

    async def _send_then_account(self, per_station: dict[str, list[tuple[int, int, float, dict[str, Any]]]], t: float,
                                 bess_driven: bool) -> None:
        await asyncio.gather(*(self._send_all(sid, items, t) for sid, items in per_station.items()))
        self._account(bess_driven)

    def _account(self, bess_driven: bool) -> None:
        """Carry the BESS energy forward with what it was told to do (resynced by its SoC readings)."""
        b = self.site.bess
        if b is not None and bess_driven:
            pb = self._bess_effective()
            self.bess_kw = pb
            self.bess_e += (pb * b.eta if pb >= 0 else pb / b.eta) * self.site.step_s / 3600.0

    def _bess_setpoints(self, state: DepotState, kw: float) -> tuple[float, float]:
        """(charge, discharge) kW for the BESS's two paths, in `bess_quantum_kw` steps so that a
        setpoint following PV or EV load does not become a SetChargingProfile every second.
        Rounded towards less grid import: charging down, discharging up (never past what the
        BESS may discharge now)."""
        q = self.bess_quantum_kw
        if q <= 0:
            return max(kw, 0.0), max(-kw, 0.0)
        if kw >= 0:
            return math.floor(kw / q + 1e-9) * q, 0.0
        dis_cap, _ = bess_headroom(state, ignore_limits=self.controller.fault == "forgets_bess_limits")
        return 0.0, max(min(math.ceil(-kw / q - 1e-9) * q, max(dis_cap, -kw)), 0.0)

    def _bess_effective(self) -> float:
        return self.bess_sent.get(BESS_CHARGE_EVSE, 0.0) - self.bess_sent.get(BESS_DISCHARGE_EVSE, 0.0)

    def _tx_profile(self, evse_id: int, profile_id: int, tx_id: str | None, kw: float, t: float) -> dict[str, Any]:
        limit_w = math.floor(max(kw, 0.0) * 10_000.0 + 1e-6) / 10.0          # W, one decimal, rounded down
        return {"evseId": evse_id, "chargingProfile": {
            "id": profile_id, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute", "transactionId": tx_id,
            "chargingSchedule": [{"id": profile_id, "startSchedule": self.clock.iso(t), "chargingRateUnit": "W",
                                  "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit_w}]}]}}

    async def _send_all(self, station_id: str, items: list[tuple[int, int, float, dict[str, Any]]], t: float) -> None:
        for i, evse_id, value, payload in items:
            status = await self._send(station_id, payload)
            bess = i < 0
            self.decisions.append(Decision(t, station_id, evse_id, value, status, "bess" if bess else "ev"))
            if status != "Accepted":
                if not bess:
                    self.refused[i] = value
                continue
            if not bess:
                self.refused.pop(i, None)
            if bess:
                self.bess_sent[evse_id] = value
            else:
                self.sent_kw[i] = value
                self.sent_t[i] = t

    async def _send(self, station_id: str, payload: dict[str, Any]) -> str:
        try:
            out = await self.sim.perform("send", {"station_id": station_id, "action": "SetChargingProfile",
                                                  "payload": payload, "timeout": SEND_TIMEOUT_S})
        except Exception as exc:   # station gone, timeout: the decision did not reach it
            self.notes.append(f"SetChargingProfile to {station_id}: {type(exc).__name__}: {exc}")
            return "no answer"
        if "error" in out:
            return str(out["error"].get("code") or "CALLERROR")
        return str((out.get("response") or {}).get("status", "?"))


def attach_depot(sim: CsmsSimulator, site: DepotSite, clock: Any, *, passwords: dict[str, str] | None = None,
                 **params: Any) -> DepotDlb:
    """Make `sim` a depot back end: the DLB controller ticks with `clock`; a `dlb_*` fault of the
    simulator seeds the controller. `passwords` provisions the depot's stations (Basic auth)."""
    dlb = DepotDlb(sim, site, clock, fault=dlb_fault(sim.fault), **params)
    if passwords:
        sim.cfg.passwords.update(passwords)     # the password check reads this mapping live
    sim.dlb = dlb
    sim.clock = clock                           # BootNotification/Heartbeat currentTime on the depot's clock
    clock.subscribe(dlb.tick, plan=dlb.plan)
    return dlb


def detach_depot(sim: CsmsSimulator) -> None:
    dlb = getattr(sim, "dlb", None)
    if dlb is not None:
        dlb.clock.unsubscribe(dlb.tick)
        sim.dlb = None
