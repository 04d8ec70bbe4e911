"""Smart charging of the reference CSMS: the operator's profile actions (2.0.1 block K and the
1.6 Smart Charging profile) and the CSMS's answers to the station's smart-charging messages.

Operator actions (both editions unless noted; `evse` is the 2.0.1 evseId, the 1.6 connectorId):
  set_charging_profile   evse, and either `profile` (the whole chargingProfile / csChargingProfiles
                         object, sent as given) or the parts: id, stack_level=0,
                         purpose=TxProfile|TxDefaultProfile|ChargingStationMaxProfile (1.6 name
                         ChargePointMaxProfile accepted either way), kind=Absolute|Relative|Recurring,
                         recurrency?, transaction_id? (TxProfile default: the CSMS's ongoing
                         transaction on that EVSE), unit=W|A, limit (one period) or periods
                         [{start, limit, phases?}], start? (startSchedule; Absolute default now),
                         duration?, valid_from?, valid_to?
  clear_charging_profile id?, evse?, purpose?, stack_level?
  get_charging_profiles  request_id?, evse?, purpose?, stack_level?, ids?, sources?        (2.0.1)
  get_composite_schedule evse=0, duration=600, unit?

Answers (2.0.1): NotifyEVChargingNeeds is Accepted (K15.FR.03) and answered with a TxProfile
for the transaction on that EVSE: enough power to deliver energyAmount by departureTime, never
above the EV's maximum (evMaxPower, or evMaxCurrent × evMaxVoltage). A second NotifyEVChargingNeeds
in the same transaction is the EV renegotiating (K17): a new profile with the same id follows.
NotifyEVChargingSchedule is checked against the profile the CSMS sent for that EVSE (K15.FR.11):
Accepted within its limits, else Rejected and the CSMS sends its profile again (K16).
NotifyChargingLimit / ClearedChargingLimit (K11–K14) are recorded per EVSE and acknowledged.
"""

from __future__ import annotations

import asyncio
import copy
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..api import Fault
from . import Feature

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState

V16, V201 = "1.6", "2.0.1"
Outgoing = tuple[str, dict[str, Any], bool]
HLC_PROFILE_ID_BASE = 15_000           # the TxProfile answering an EV's needs: id = base + evseId
HLC_STACK_LEVEL = 1
NO_DEPARTURE_S = 8 * 3600              # an EV that gave no departure time: plan for a working day
LEVELING_MARGIN = 1.1                  # 10 % above the least power that meets the need in time
SEND_DELAY_S = 0.05                    # let the NotifyEVChargingNeeds answer go out first
SEND_TIMEOUT_S = 10.0
PURPOSES = {V201: ("ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile"),
            V16: ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")}
_MAX_ALIASES = {"ChargingStationMaxProfile", "ChargePointMaxProfile"}


@dataclass
class SmartCsmsState:
    needs: dict[int, dict[str, Any]] = field(default_factory=dict)          # evse → latest chargingNeeds
    needs_answered: set[tuple[int, str]] = field(default_factory=set)      # (evse, tx) already given a profile
    hlc_profiles: dict[int, dict[str, Any]] = field(default_factory=dict)  # evse → TxProfile sent for the EV
    limits: dict[int, dict[str, Any]] = field(default_factory=dict)        # evse (0 = station) → external limit
    profile_ids: set[int] = field(default_factory=set)                    # ids the operator's profiles were sent with
    ev_schedules: list[dict[str, Any]] = field(default_factory=list)       # NotifyEVChargingSchedule received
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


def csms_state(st: StationState) -> SmartCsmsState:
    store: dict[str, Any] = st.__dict__.setdefault("_feature_state", {})
    if "smart_csms" not in store:
        store["smart_csms"] = SmartCsmsState()
    return store["smart_csms"]


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _target(params: dict[str, Any], default: int | None = None) -> int | None:
    value = params.get("evse", params.get("connector", default))
    return None if value is None else int(value)


def _purpose(version: str, name: str) -> str:
    if name in _MAX_ALIASES:
        name = PURPOSES[version][0]
    if name not in PURPOSES[version]:
        raise ValueError(f"purpose must be one of {PURPOSES[version]} for OCPP {version}, got {name!r}")
    return name


def _ongoing_tx(st: StationState, evse: int) -> Any:
    for tx in reversed(st.ongoing()):
        if tx.evse_id is not None and int(tx.evse_id) == evse:
            return tx
    return None


# ---- SetChargingProfile ----------------------------------------------------------------------

def _periods(params: dict[str, Any]) -> list[dict[str, Any]]:
    if params.get("periods"):
        out = []
        for p in params["periods"]:
            item: dict[str, Any] = {"startPeriod": int(p.get("start", 0)), "limit": float(p["limit"])}
            if p.get("phases") is not None:
                item["numberPhases"] = int(p["phases"])
            out.append(item)
        return out
    if params.get("limit") is None:
        raise ValueError("set_charging_profile needs limit (one period) or periods [{start, limit}] or a whole profile")
    return [{"startPeriod": 0, "limit": float(params["limit"])}]


def build_profile(sim: CsmsSimulator, st: StationState, version: str, params: dict[str, Any]) -> dict[str, Any]:
    """The chargingProfile (2.0.1) / csChargingProfiles (1.6) object the operator's parameters describe."""
    if params.get("profile") is not None:
        return copy.deepcopy(dict(params["profile"]))
    if params.get("id") is None:
        raise ValueError("set_charging_profile needs id (or a whole profile)")
    purpose = _purpose(version, str(params.get("purpose", "TxProfile")))
    kind = str(params.get("kind", "Absolute"))
    schedule: dict[str, Any] = {"chargingRateUnit": str(params.get("unit", "W")), "chargingSchedulePeriod": _periods(params)}
    if kind == "Absolute" or params.get("start") is not None:
        if kind != "Relative":
            schedule["startSchedule"] = str(params.get("start") or sim.now_iso())
    if params.get("duration") is not None:
        schedule["duration"] = int(params["duration"])
    profile: dict[str, Any] = {"stackLevel": int(params.get("stack_level", 0)), "chargingProfilePurpose": purpose,
                               "chargingProfileKind": kind}
    if kind == "Recurring":
        profile["recurrencyKind"] = str(params.get("recurrency", "Daily"))
    for key, name in (("valid_from", "validFrom"), ("valid_to", "validTo")):
        if params.get(key) is not None:
            profile[name] = str(params[key])
    tx_id = params.get("transaction_id")
    target = _target(params, 0)
    if purpose == "TxProfile" and tx_id is None:
        tx = _ongoing_tx(st, int(target or 0))
        if tx is None:
            raise ValueError(f"a TxProfile names its transaction: station {st.station_id} has none on "
                             f"{'connector' if version == V16 else 'EVSE'} {target}; pass transaction_id")
        tx_id = tx.transaction_id
    if version == V201:
        profile["id"] = int(params["id"])
        schedule["id"] = int(params.get("schedule_id", 1))
        profile["chargingSchedule"] = [schedule]
        if tx_id is not None:
            profile["transactionId"] = str(tx_id)
    else:
        profile["chargingProfileId"] = int(params["id"])
        profile["chargingSchedule"] = schedule
        if tx_id is not None:
            profile["transactionId"] = int(tx_id)
    return profile


def _op_set_charging_profile(version: str):
    def build(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
        target = _target(params)
        if target is None:
            raise ValueError("set_charging_profile needs evse (2.0.1) / connector (1.6)")
        profile = build_profile(sim, st, version, params)
        if sim.faulty("set_profile_wrong_stack_level", version):
            profile["stackLevel"] = int(profile.get("stackLevel", 0)) + 1   # the bug: UI level 1-based, wire 0-based
        if sim.faulty("max_profile_wrong_evse", version) and target == 0 \
                and profile.get("chargingProfilePurpose") in _MAX_ALIASES:
            target = 1                           # the bug: the station cap goes to the first EVSE
        if sim.faulty("recurring_sent_as_absolute", version) and profile.get("chargingProfileKind") == "Recurring":
            profile["chargingProfileKind"] = "Absolute"                     # the bug: the recurrence is lost
            profile.pop("recurrencyKind", None)
        id_key = "id" if version == V201 else "chargingProfileId"
        sent = csms_state(st).profile_ids
        if sim.faulty("replace_profile_new_id", version) and profile.get(id_key) in sent:
            profile[id_key] = max(sent) + 1      # the bug: every edit is stored as a new profile
        sent.add(int(profile.get(id_key, 0)))
        if version == V201:
            _remember_tx_profile(st, target, profile)
            return "SetChargingProfile", {"evseId": target, "chargingProfile": profile}, True
        return "SetChargingProfile", {"connectorId": target, "csChargingProfiles": profile}, True
    return build


def _remember_tx_profile(st: StationState, evse_id: int, profile: dict[str, Any]) -> None:
    """A TxProfile the operator sends during an ISO 15118 session replaces the one the EV's schedule
    is checked against (K16: the CSMS renegotiates), when it stacks at least as high."""
    state = csms_state(st)
    current = state.hlc_profiles.get(evse_id)
    if profile.get("chargingProfilePurpose") != "TxProfile" or evse_id not in state.needs:
        return
    if current is None or int(profile.get("stackLevel", 0)) >= int(current.get("stackLevel", 0)):
        state.hlc_profiles[evse_id] = profile


# ---- ClearChargingProfile / GetChargingProfiles / GetCompositeSchedule -----------------------

def _op_clear_charging_profile(version: str):
    def build(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
        pid = params.get("id")
        if pid is not None and sim.faulty("clear_profile_wrong_id", version):
            pid = int(pid) + 1                   # the bug: the UI row number, not the profile id
        criteria: dict[str, Any] = {}
        target = _target(params)
        if not sim.faulty("clear_profile_criteria_dropped", version):   # the bug: "clear" clears everything
            if target is not None:
                criteria["evseId" if version == V201 else "connectorId"] = target
            if params.get("purpose") is not None:
                criteria["chargingProfilePurpose"] = _purpose(version, str(params["purpose"]))
            if params.get("stack_level") is not None:
                criteria["stackLevel"] = int(params["stack_level"])
        if version == V201:
            payload: dict[str, Any] = {}
            if pid is not None:
                payload["chargingProfileId"] = int(pid)
            if criteria:
                payload["chargingProfileCriteria"] = criteria
            return "ClearChargingProfile", payload, True
        payload = dict(criteria)
        if pid is not None:
            payload["id"] = int(pid)
        return "ClearChargingProfile", payload, True
    return build


def _op_get_charging_profiles(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    if sim.faulty("get_charging_profiles_wrong_request_id", V201):
        request_id = 1                           # the bug: every request is number 1, reports cannot be told apart
    elif params.get("request_id") is not None:
        request_id = int(params["request_id"])
    else:
        request_id = sim.next_remote_start_id()
    criterion: dict[str, Any] = {}
    dropped = sim.faulty("get_charging_profiles_drops_filter", V201)
    if not dropped:
        if params.get("purpose") is not None:
            criterion["chargingProfilePurpose"] = _purpose(V201, str(params["purpose"]))
        if params.get("stack_level") is not None:
            criterion["stackLevel"] = int(params["stack_level"])
        if params.get("ids"):
            criterion["chargingProfileId"] = [int(i) for i in params["ids"]]
        if params.get("sources"):
            criterion["chargingLimitSource"] = [str(s) for s in params["sources"]]
    payload: dict[str, Any] = {"requestId": request_id, "chargingProfile": criterion}
    target = _target(params)
    if target is not None and not dropped:
        payload["evseId"] = target
    return "GetChargingProfiles", payload, True


def _op_get_composite_schedule(version: str):
    def build(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
        target = _target(params, 0)
        unit = params.get("unit")
        if unit is not None and sim.faulty("composite_request_wrong_unit", version):
            unit = {"W": "A", "A": "W"}.get(str(unit), unit)   # the bug: the unit toggle is inverted
        payload: dict[str, Any] = {"evseId" if version == V201 else "connectorId": target,
                                   "duration": int(params.get("duration", 600))}
        if unit is not None:
            payload["chargingRateUnit"] = str(unit)
        return "GetCompositeSchedule", payload, True
    return build


# ---- answers to the station (2.0.1) ------------------------------------------------------------

def _ev_max_w(needs: dict[str, Any]) -> float | None:
    dc, ac = needs.get("dcChargingParameters"), needs.get("acChargingParameters")
    if dc:
        if dc.get("evMaxPower") is not None:
            return float(dc["evMaxPower"])
        return float(dc["evMaxCurrent"]) * float(dc["evMaxVoltage"])
    if ac:
        phases = {"AC_single_phase": 1, "AC_two_phase": 2}.get(str(needs.get("requestedEnergyTransfer")), 3)
        return float(ac["evMaxCurrent"]) * float(ac["evMaxVoltage"]) * phases
    return None


def _energy_wh(needs: dict[str, Any]) -> float | None:
    params = needs.get("dcChargingParameters") or needs.get("acChargingParameters") or {}
    return None if params.get("energyAmount") is None else float(params["energyAmount"])


def leveled_limit_w(needs: dict[str, Any], now: datetime) -> tuple[float, int]:
    """Load leveling: the least power (plus a margin) that delivers the energy by the departure,
    never above what the EV takes; and the schedule's duration (s) up to the departure."""
    ev_max = _ev_max_w(needs)
    departure = needs.get("departureTime")
    horizon_s = NO_DEPARTURE_S
    if departure:
        try:
            horizon_s = max(60, int((datetime.fromisoformat(str(departure).replace("Z", "+00:00")) - now).total_seconds()))
        except ValueError:
            pass
    energy = _energy_wh(needs)
    if energy is None:
        limit = ev_max if ev_max is not None else 0.0
    else:
        limit = math.ceil(energy / (horizon_s / 3600.0) * LEVELING_MARGIN)
        if ev_max is not None:
            limit = min(limit, ev_max)
    return float(limit), horizon_s


def hlc_profile(needs: dict[str, Any], evse_id: int, tx_id: str, now: datetime, *, exceed_ev_max: bool = False) -> dict[str, Any]:
    limit, horizon_s = leveled_limit_w(needs, now)
    if exceed_ev_max:
        limit = 2.0 * (_ev_max_w(needs) or limit)   # the bug: planned on the EVSE rating, not the EV
    return {"id": HLC_PROFILE_ID_BASE + evse_id, "stackLevel": HLC_STACK_LEVEL, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute", "transactionId": str(tx_id),
            "chargingSchedule": [{"id": 1, "startSchedule": _iso(now - timedelta(seconds=1)), "chargingRateUnit": "W",
                                  "duration": horizon_s, "chargingSchedulePeriod": [{"startPeriod": 0, "limit": round(limit, 1)}]}]}


def _send_later(sim: CsmsSimulator, st: StationState, action: str, payload: dict[str, Any]) -> None:
    """Send a CSMS CALL once the current answer is on the wire (the station cannot take two at once)."""
    async def send() -> None:
        await asyncio.sleep(SEND_DELAY_S)
        try:
            await sim.perform("send", {"station_id": st.station_id, "action": action, "payload": payload,
                                       "timeout": SEND_TIMEOUT_S})
        except Exception as exc:   # a station gone or silent: note it, the case sees the missing CALL
            sim.note(st, f"{action} for the EV's needs not delivered: {type(exc).__name__}: {exc}")
    task = asyncio.ensure_future(send())
    state = csms_state(st)
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


def _notify_ev_charging_needs(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    if sim.dlb is not None:                     # a depot run: its DLB controller plans, on the simulated clock
        return {"status": "Accepted"}
    evse_id = int(p["evseId"])
    needs = dict(p.get("chargingNeeds") or {})
    state = csms_state(st)
    state.needs[evse_id] = needs
    tx = _ongoing_tx(st, evse_id)
    if tx is None:
        sim.note(st, f"NotifyEVChargingNeeds for EVSE {evse_id} without a transaction the CSMS knows")
        return {"status": "Rejected"}
    key = (evse_id, str(tx.transaction_id))
    renegotiation = key in state.needs_answered
    if sim.faulty("ev_charging_needs_ignored", V201) or (renegotiation and sim.faulty("renegotiation_needs_ignored", V201)):
        return {"status": "Accepted"}           # the bug: promises a schedule, never sends one
    state.needs_answered.add(key)
    profile = hlc_profile(needs, evse_id, str(tx.transaction_id), datetime.now(timezone.utc),
                          exceed_ev_max=sim.faulty("charging_schedule_exceeds_ev_max", V201))
    state.hlc_profiles[evse_id] = profile
    _send_later(sim, st, "SetChargingProfile", {"evseId": evse_id, "chargingProfile": profile})
    return {"status": "Accepted"}               # K15.FR.03: a schedule follows


def _limit_w(period: dict[str, Any], unit: str) -> float:
    limit = float(period["limit"])
    if unit == "A":
        limit *= 230.0 * int(period.get("numberPhases", 3))
    return limit


def _notify_ev_charging_schedule(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    evse_id = int(p["evseId"])
    state = csms_state(st)
    state.ev_schedules.append(dict(p))
    sent = state.hlc_profiles.get(evse_id)
    if sent is None or sim.faulty("ev_schedule_limits_not_checked", V201):
        return {"status": "Accepted"}
    ours = sent["chargingSchedule"][0]
    cap = max(_limit_w(x, ours["chargingRateUnit"]) for x in ours["chargingSchedulePeriod"])
    theirs = p["chargingSchedule"]
    worst = max(_limit_w(x, theirs["chargingRateUnit"]) for x in theirs["chargingSchedulePeriod"])
    if worst <= cap * 1.001:
        return {"status": "Accepted"}           # K15.FR.11
    sim.note(st, f"EV schedule on EVSE {evse_id} asks {worst:.0f} W above the profile's {cap:.0f} W: rejected, renegotiating")
    _send_later(sim, st, "SetChargingProfile", {"evseId": evse_id, "chargingProfile": sent})   # K16
    return {"status": "Rejected"}


def _notify_charging_limit(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    if sim.faulty("charging_limit_callerror", V201):
        raise NotImplementedError("external charging limits are not supported")   # → CALLERROR InternalError
    csms_state(st).limits[int(p.get("evseId", 0))] = {"limit": dict(p.get("chargingLimit") or {}),
                                                       "schedule": list(p.get("chargingSchedule") or [])}
    return {}


def _cleared_charging_limit(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    if sim.faulty("charging_limit_callerror", V201):
        raise NotImplementedError("external charging limits are not supported")
    gone = csms_state(st).limits.pop(int(p.get("evseId", 0)), None)
    if gone is None:
        sim.note(st, f"ClearedChargingLimit for EVSE {p.get('evseId', 0)} without a NotifyChargingLimit before")
    return {}


FEATURE = Feature(
    name="smart_csms",
    csms_answers={V201: {"NotifyEVChargingNeeds": _notify_ev_charging_needs,
                         "NotifyEVChargingSchedule": _notify_ev_charging_schedule,
                         "NotifyChargingLimit": _notify_charging_limit,
                         "ClearedChargingLimit": _cleared_charging_limit}},
    csms_operator={
        V201: {"set_charging_profile": _op_set_charging_profile(V201),
               "clear_charging_profile": _op_clear_charging_profile(V201),
               "get_charging_profiles": _op_get_charging_profiles,
               "get_composite_schedule": _op_get_composite_schedule(V201)},
        V16: {"set_charging_profile": _op_set_charging_profile(V16),
              "clear_charging_profile": _op_clear_charging_profile(V16),
              "get_composite_schedule": _op_get_composite_schedule(V16)},
    },
    csms_provokes={"GetChargingProfiles": frozenset({"ReportChargingProfiles"})},
    csms_faults=[
        Fault("set_profile_wrong_stack_level", "csms", (V16, V201),
              "SetChargingProfile carries the operator's stack level plus one (a 1-based UI level sent as is)."),
        Fault("clear_profile_wrong_id", "csms", (V16, V201),
              "ClearChargingProfile names the id after the one the operator chose (UI row vs profile id)."),
        Fault("clear_profile_criteria_dropped", "csms", (V16, V201),
              "ClearChargingProfile leaves out the operator's EVSE/purpose/stackLevel criteria: it clears every profile."),
        Fault("get_charging_profiles_wrong_request_id", "csms", (V201,),
              "Every GetChargingProfiles carries requestId 1, so the ReportChargingProfiles of two requests "
              "cannot be told apart."),
        Fault("get_charging_profiles_drops_filter", "csms", (V201,),
              "GetChargingProfiles leaves out the operator's EVSE and purpose / stackLevel / id / source filter."),
        Fault("max_profile_wrong_evse", "csms", (V16, V201),
              "A station-wide maximum (ChargingStationMaxProfile / ChargePointMaxProfile) is sent for EVSE/connector 1 "
              "instead of 0."),
        Fault("recurring_sent_as_absolute", "csms", (V16, V201),
              "A Recurring profile is sent as Absolute without recurrencyKind: it applies once instead of every day/week."),
        Fault("replace_profile_new_id", "csms", (V16, V201),
              "Changing a profile sends it under a new chargingProfileId instead of the one it replaces, so the "
              "station keeps the old profile too."),
        Fault("composite_request_wrong_unit", "csms", (V16, V201),
              "GetCompositeSchedule asks for the other chargingRateUnit than the operator chose (W ↔ A)."),
        Fault("ev_charging_needs_ignored", "csms", (V201,),
              "NotifyEVChargingNeeds is answered Accepted but no SetChargingProfile with a schedule ever follows."),
        Fault("renegotiation_needs_ignored", "csms", (V201,),
              "Only the first NotifyEVChargingNeeds of a transaction gets a profile: the EV's renegotiation "
              "(new needs) is answered Accepted and nothing follows."),
        Fault("charging_schedule_exceeds_ev_max", "csms", (V201,),
              "The profile answering NotifyEVChargingNeeds is planned on the EVSE, not the EV: its limit is twice "
              "the EV's maximum power."),
        Fault("ev_schedule_limits_not_checked", "csms", (V201,),
              "NotifyEVChargingSchedule is Accepted even when the EV's schedule exceeds the CSMS's profile."),
        Fault("charging_limit_callerror", "csms", (V201,),
              "NotifyChargingLimit and ClearedChargingLimit are answered with a CALLERROR (external limits "
              "not implemented)."),
    ],
)
