"""Smart charging beyond the core, station side: external limits (K11–K13) and the ISO 15118
charging-needs / schedule exchange (K15–K17) of the simulated OCPP 2.0.1 station.

External limits. The out-of-band action `external_limit {evse=0, limit_kw, source=EMS,
grid_critical=false}` is an energy-management system (or grid operator) capping the station
through a non-OCPP channel. The station installs it as a ChargingStationExternalConstraints
profile (so the composite schedule and the delivered power obey it), reports it with
NotifyChargingLimit (K12.FR.02; evseId omitted for the whole station) and, when it changes
the rate of an ongoing transaction, sends TransactionEvent Updated with triggerReason
ChargingRateChanged (K11.FR.01). `clear_external_limit {evse=0, source=EMS}` releases it:
ClearedChargingLimit (K13.FR.02) and ChargingRateChanged for an ongoing transaction.

ISO 15118 EV. `ev_charging_needs {evse=1, energy_kwh?, departure_s?, max_power_kw?}` is the
EV's ChargeParameterDiscoveryReq: the station forwards it as NotifyEVChargingNeeds (DC
parameters from the plugged EV's model, departureTime = now + departure_s). From then on the
EVSE has a high-level-communication session: every new or changed TxProfile the CSMS sets
on it (K15 answer, K16 CSMS renegotiation) makes the EV pick a schedule within the profile
(K15.FR.07) and the station reports it with NotifyEVChargingSchedule. The same action
again is the EV asking to renegotiate (K17: new needs, new schedule follows). The session
ends with the transaction.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..api import Fault
from ..smart_charging import EXTERNAL, TX, Installed, parse_profile
from ...smart.profiles import TX_DEFAULT
from . import Feature, feature_state

if TYPE_CHECKING:
    from ..evse import Evse, Transaction
    from ..station import FrontEnd, StationSimulator

V201 = "2.0.1"
NAME = "smart_extra"
EXTERNAL_PROFILE_ID_BASE = 990_000     # external limits are not the CSMS's: ids out of its usual range
SOURCES = ("EMS", "Other", "SO", "CSO")
WATCH_EVERY_S = 0.1                    # how often the EV looks for a new profile from the CSMS
WATCH_MAX_S = 3600.0                   # an HLC session watcher never outlives an hour
SCHEDULE_SPAN_S = 3600                 # the EV plans this far ahead when no departure is known


@dataclass
class HlcSession:
    evse_id: int
    tx_id: str
    seen: dict[int, str] = field(default_factory=dict)   # TxProfile id → its payload as text (change detection)
    schedules_sent: int = 0
    task: asyncio.Task[Any] | None = None


@dataclass
class SmartExtraState:
    sessions: dict[int, HlcSession] = field(default_factory=dict)   # evse id → ISO 15118 session


def state(front: FrontEnd) -> SmartExtraState:
    return feature_state(front, NAME, SmartExtraState)


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _ongoing(evse: Evse | None) -> Transaction | None:
    tx = evse.tx if evse is not None else None
    return tx if tx is not None and not tx.ended else None


def _require_201(sim: StationSimulator, action: str) -> None:
    if sim.version != V201:
        raise ValueError(f"{action} is an OCPP 2.0.1 station action (K11–K17); this station speaks {sim.version}")


# ---- external limits (K11–K13) -------------------------------------------------------------

def external_profile(target: int, limit_w: float, start: datetime) -> dict[str, Any]:
    """The ChargingStationExternalConstraints profile an external limit becomes on the station."""
    return {"id": EXTERNAL_PROFILE_ID_BASE + target, "stackLevel": 0,
            "chargingProfilePurpose": "ChargingStationExternalConstraints", "chargingProfileKind": "Absolute",
            "chargingSchedule": [{"id": 1, "startSchedule": _iso(start), "chargingRateUnit": "W",
                                  "chargingSchedulePeriod": [{"startPeriod": 0, "limit": round(limit_w, 1)}]}]}


def _affected(sim: StationSimulator, target: int) -> list[Evse]:
    return [e for e in sim.evses.values() if (target == 0 or e.id == target) and _ongoing(e) is not None]


def _rate_changed(front: FrontEnd, evses: list[Evse]) -> None:
    """K11/K13: a changed external limit changes the rate of these transactions."""
    if front.sim.has("charging_rate_change_not_reported"):
        return
    for e in evses:
        tx = _ongoing(e)
        if tx is not None:
            front._tx_event(e, tx, "Updated", "ChargingRateChanged")   # type: ignore[attr-defined]


def _source(params: dict[str, Any]) -> str:
    source = str(params.get("source", "EMS"))
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    return source


async def _external_limit(sim: StationSimulator, params: dict[str, Any]) -> dict[str, Any]:
    _require_201(sim, "external_limit")
    target = int(params.get("evse", 0))
    if target and target not in sim.evses:
        raise ValueError(f"no EVSE {target}; this station has {sorted(sim.evses)}")
    if params.get("limit_kw") is None:
        raise ValueError("external_limit needs limit_kw (use clear_external_limit to release one)")
    limit_w = float(params["limit_kw"]) * 1000.0
    source = _source(params)
    raw = external_profile(target, limit_w, _now() - timedelta(seconds=1))
    profile = parse_profile(V201, raw, evse_id=target)
    smart = sim.smart
    for e in sim.evses.values():                       # energy so far at the old power
        e.advance(sim.now(), sim.time_scale)
    smart.installed = [i for i in smart.installed
                       if not (i.profile.purpose == EXTERNAL and i.target == target)] + [Installed(target, raw, profile)]
    front = sim.front
    if not sim.has("external_limit_not_reported"):
        msg: dict[str, Any] = {"chargingLimit": {"chargingLimitSource": source,
                                                 "isGridCritical": bool(params.get("grid_critical", False))},
                               "chargingSchedule": raw["chargingSchedule"]}
        if target:
            msg["evseId"] = target
        sim.enqueue("NotifyChargingLimit", msg)
    _rate_changed(front, _affected(sim, target))
    return {"evse": target, "limit_kw": limit_w / 1000.0, "source": source}


async def _clear_external_limit(sim: StationSimulator, params: dict[str, Any]) -> dict[str, Any]:
    _require_201(sim, "clear_external_limit")
    target = int(params.get("evse", 0))
    source = _source(params)
    smart = sim.smart
    before = len(smart.installed)
    for e in sim.evses.values():
        e.advance(sim.now(), sim.time_scale)
    smart.installed = [i for i in smart.installed if not (i.profile.purpose == EXTERNAL and i.target == target)]
    if len(smart.installed) == before:
        raise ValueError(f"no external limit on {'the station' if target == 0 else f'EVSE {target}'} to release")
    if not sim.has("external_limit_clear_not_reported"):
        msg: dict[str, Any] = {"chargingLimitSource": source}
        if target:
            msg["evseId"] = target
        sim.enqueue("ClearedChargingLimit", msg)
    _rate_changed(sim.front, _affected(sim, target))
    return {"evse": target, "released": True, "source": source}


# ---- ISO 15118 charging needs and schedules (K15–K17) --------------------------------------

def charging_needs(sim: StationSimulator, evse: Evse, params: dict[str, Any]) -> dict[str, Any]:
    """NotifyEVChargingNeeds for the EV plugged into ``evse`` (its DC ChargeParameterDiscovery)."""
    ev = evse.ev
    assert ev is not None
    energy_wh = (float(params["energy_kwh"]) * 1000.0 if params.get("energy_kwh") is not None
                 else max(0.0, (ev.target_soc_percent - ev.soc_percent) / 100.0 * ev.capacity_kwh * 1000.0))
    max_w = float(params.get("max_power_kw", ev.max_power_kw)) * 1000.0
    voltage = ev.voltage_v()
    dc: dict[str, Any] = {"evMaxCurrent": int(max_w / voltage), "evMaxVoltage": int(round(ev.nominal_voltage_v * 1.05)),
                          "energyAmount": int(round(energy_wh)), "evMaxPower": int(round(max_w)),
                          "stateOfCharge": int(ev.soc_percent), "evEnergyCapacity": int(ev.capacity_kwh * 1000),
                          "fullSoC": int(ev.target_soc_percent)}
    needs: dict[str, Any] = {"requestedEnergyTransfer": "DC", "dcChargingParameters": dc}
    departure_s = float(params.get("departure_s", ev.departure_s))
    if not sim.has("notify_ev_charging_needs_missing_departure"):
        needs["departureTime"] = _iso(_now() + timedelta(seconds=departure_s))
    return {"evseId": evse.id, "maxScheduleTuples": 3, "chargingNeeds": needs}


def _tx_profiles(sim: StationSimulator, evse_id: int) -> dict[int, str]:
    return {i.profile.id: repr(i.payload) for i in sim.smart.installed
            if i.profile.purpose == TX and i.target == evse_id}


def ev_schedule(sim: StationSimulator, evse: Evse) -> dict[str, Any]:
    """The schedule the EV picks: the station's composite for its EVSE, never above the EV's own maximum
    (K15.FR.07: within the boundaries the CSMS gave)."""
    ev = evse.ev
    ev_max_w = (ev.max_power_kw if ev is not None else evse.cfg.max_power_kw) * 1000.0
    cs = sim.smart.composite(evse.id, SCHEDULE_SPAN_S, "W")
    periods: list[dict[str, Any]] = []
    if cs is not None:
        for p in cs.periods:
            limit = p.limit if p.limit is not None else evse.cfg.max_power_kw * 1000.0
            if sim.has("ev_schedule_exceeds_profile"):
                limit = ev_max_w               # the bug: the EV's wish is passed on, the CSMS's limit ignored
            else:
                limit = min(limit, ev_max_w)
            if not periods or periods[-1]["limit"] != round(limit, 1):
                periods.append({"startPeriod": int(p.start_offset_s), "limit": round(limit, 1)})
    if not periods:
        periods = [{"startPeriod": 0, "limit": round(ev_max_w, 1)}]
    return {"id": 1, "chargingRateUnit": "W", "duration": SCHEDULE_SPAN_S, "chargingSchedulePeriod": periods}


async def _watch_profiles(sim: StationSimulator, session: HlcSession) -> None:
    """The EV's side of the HLC session: each new/changed TxProfile → a schedule → NotifyEVChargingSchedule."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WATCH_MAX_S
    evse = sim.evses[session.evse_id]
    while loop.time() < deadline:
        tx = _ongoing(evse)
        if tx is None or tx.tx_id != session.tx_id:
            return                                     # the session ends with its transaction
        now_profiles = _tx_profiles(sim, session.evse_id)
        changed = {pid: text for pid, text in now_profiles.items() if session.seen.get(pid) != text}
        session.seen = now_profiles
        if changed and not (sim.has("renegotiation_ignored") and session.schedules_sent > 0):
            session.schedules_sent += 1
            sim.enqueue("NotifyEVChargingSchedule", {"timeBase": _iso(_now()), "evseId": session.evse_id,
                                                     "chargingSchedule": ev_schedule(sim, evse)})
        await asyncio.sleep(WATCH_EVERY_S)


async def _ev_charging_needs(sim: StationSimulator, params: dict[str, Any]) -> dict[str, Any]:
    _require_201(sim, "ev_charging_needs")
    evse = sim.evse(params.get("evse", 1))
    if evse.ev is None:
        raise ValueError(f"no EV plugged into EVSE {evse.id}: plug_in first")
    tx = _ongoing(evse)
    if tx is None:
        raise ValueError(f"no transaction on EVSE {evse.id}: the ISO 15118 session runs in a transaction")
    st = state(sim.front)
    session = st.sessions.get(evse.id)
    if session is None or session.tx_id != tx.tx_id or session.task is None or session.task.done():
        # Profiles already there are what the EV knows before it asks; only answers to the needs count.
        session = HlcSession(evse.id, tx.tx_id, seen=_tx_profiles(sim, evse.id))
        st.sessions[evse.id] = session
        session.task = sim.spawn(_watch_profiles(sim, session), f"hlc-{evse.id}", session=True)
    payload = charging_needs(sim, evse, params)
    sim.enqueue("NotifyEVChargingNeeds", payload)
    return {"evse": evse.id, "sent": "NotifyEVChargingNeeds", "chargingNeeds": payload["chargingNeeds"],
            "at": time.time()}


# ---- offline behaviour (K06, K07): only the faults; the core keeps profiles across offline periods ----

def _outgoing(front: FrontEnd, action: str, payload: dict[str, Any]) -> None:
    """A TransactionEvent queued while offline is where the two offline bugs show."""
    sim = front.sim
    if action != "TransactionEvent" or not payload.get("offline"):
        return
    if sim.has("offline_drops_tx_profile"):
        # the bug: losing the CSMS is taken as losing its control; its TxProfiles are discarded
        sim.smart.installed = [i for i in sim.smart.installed if i.profile.purpose != TX]
    if sim.has("offline_start_ignores_default_profile") and payload.get("eventType") == "Started":
        # the bug: a transaction started offline never looks up the TxDefaultProfiles
        sim.smart.installed = [i for i in sim.smart.installed if i.profile.purpose != TX_DEFAULT]


FEATURE = Feature(
    name=NAME,
    outgoing=_outgoing,
    station_actions={"external_limit": _external_limit, "clear_external_limit": _clear_external_limit,
                     "ev_charging_needs": _ev_charging_needs},
    station_faults=[
        Fault("external_limit_not_reported", "cs", (V201,),
              "An external (EMS) limit is applied but never reported: no NotifyChargingLimit reaches the CSMS."),
        Fault("charging_rate_change_not_reported", "cs", (V201,),
              "A new or released external limit changes the rate of an ongoing transaction without a "
              "TransactionEvent Updated (triggerReason ChargingRateChanged)."),
        Fault("external_limit_clear_not_reported", "cs", (V201,),
              "A released external limit is not reported: no ClearedChargingLimit reaches the CSMS."),
        Fault("notify_ev_charging_needs_missing_departure", "cs", (V201,),
              "NotifyEVChargingNeeds leaves out the departureTime the EV gave in its ChargeParameterDiscoveryReq."),
        Fault("renegotiation_ignored", "cs", (V201,),
              "Only the first TxProfile of an ISO 15118 session reaches the EV: a later one (CSMS renegotiation, or "
              "the answer to the EV's new needs) is installed but no NotifyEVChargingSchedule follows."),
        Fault("offline_drops_tx_profile", "cs", (V201,),
              "When the connection to the CSMS is lost during a transaction, the station discards the CSMS's "
              "TxProfile and charges unlimited, also after reconnecting."),
        Fault("offline_start_ignores_default_profile", "cs", (V201,),
              "A transaction started while offline ignores the installed TxDefaultProfile and charges unlimited."),
        Fault("ev_schedule_exceeds_profile", "cs", (V201,),
              "The EV's charging schedule is passed on unchecked: NotifyEVChargingSchedule carries the EV's maximum "
              "power, above the CSMS's TxProfile limit."),
    ],
)
