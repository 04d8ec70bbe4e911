"""Variable monitoring: OCPP 2.0.1 functional block N, N02–N08, in both reference simulators.

Station simulator. Three measured variables of component ChargingStation support monitoring:
Temperature (Celsius), Power (W) and AvailabilityState (a string: Delta = any change, and the
periodic types). The out-of-band action `set_measurement {variable, value}` sets a measured
value (a hot connector, a power step); GetVariables reads the same values.
- Monitors: id 1 is hard-wired (Temperature > 85 °C, severity 2); id 2 (Power Delta 50 kW,
  severity 7) is the factory default; id 3 (Temperature > 60 °C, severity 6) is preconfigured
  but only active with base All (the base at boot). Custom monitors get ids from 100.
- SetVariableMonitoring (N04): UnknownComponent / UnknownVariable for what the device model
  lacks, UnsupportedMonitorType for a type the variable cannot be watched with, Rejected for
  a negative Delta, a non-positive period or an id that is unknown or hard-wired, Duplicate
  for a second monitor of the same variable, type and severity; an id of a monitor the
  station holds replaces it.
- SetMonitoringBase (N03): All activates every preconfigured monitor and keeps custom ones;
  FactoryDefault removes custom monitors and restores the factory-default set; HardWiredOnly
  removes custom monitors and disables the preconfigured ones.
- SetMonitoringLevel (N05): events of monitors with a severity above the level are not sent.
- ClearVariableMonitoring (N06): Accepted, NotFound, Rejected for a hard-wired monitor.
- GetMonitoringReport (N02): filtered by componentVariable and monitoringCriteria, one
  NotifyMonitoringReport, EmptyResultSet when nothing matches.
- Events: a threshold crossing (and its clearing, also when a new or changed limit is already
  exceeded) and a delta send NotifyEvent with the monitor's id and kind (N07); a Periodic /
  PeriodicClockAligned monitor reports every `value` seconds (N08). Each NotifyEvent is a
  one-message report (seqNo 0).

CSMS simulator: operator actions set_variable_monitoring, clear_variable_monitoring,
get_monitoring_report, set_monitoring_base, set_monitoring_level.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api import Fault, Reply, Setting
from . import Feature, feature_state
from ._common import operator_request_id

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState
    from ..station import FrontEnd, StationSimulator

V201 = "2.0.1"
NAME = "monitoring"
STATION = "ChargingStation"
THRESHOLDS = ("UpperThreshold", "LowerThreshold")
PERIODIC = ("Periodic", "PeriodicClockAligned")
ALL_TYPES = (*THRESHOLDS, "Delta", *PERIODIC)
CRITERIA = {"ThresholdMonitoring": THRESHOLDS, "DeltaMonitoring": ("Delta",), "PeriodicMonitoring": PERIODIC}
FIRST_CUSTOM_ID = 100
MIN_PERIOD_S = 1.0            # periodic monitors faster than this would flood the CSMS

# Measured values, readable with GetVariables (unique `minimum`s keep the Settings distinct keys
# of StationSimulator.stored, where the measured value is written).
_TEMPERATURE = Setting(None, "int", readonly=True, const="25", minimum=-273)
_POWER = Setting(None, "int", readonly=True, const="0", minimum=-1_000_000_000)
_AVAILABILITY = Setting(None, "str", readonly=True, const="Available", minimum=-7301)
MEASURED: dict[str, tuple[Setting, tuple[str, ...]]] = {   # variable → (setting, monitor types it supports)
    "Temperature": (_TEMPERATURE, ALL_TYPES),
    "Power": (_POWER, ALL_TYPES),
    "AvailabilityState": (_AVAILABILITY, ("Delta", *PERIODIC)),
}


@dataclass
class Monitor:
    id: int
    variable: str
    type: str
    value: float
    severity: int
    kind: str = "CustomMonitor"          # HardWiredMonitor | PreconfiguredMonitor | CustomMonitor
    transaction: bool = False
    factory_default: bool = False
    reference: str | None = None         # Delta: the value last reported
    alerting: bool = False               # threshold: currently beyond its limit

    def as_report(self) -> dict[str, Any]:
        return {"id": self.id, "transaction": self.transaction, "value": self.value, "type": self.type,
                "severity": self.severity}


def _preconfigured() -> dict[int, Monitor]:
    return {1: Monitor(1, "Temperature", "UpperThreshold", 85.0, 2, "HardWiredMonitor"),
            2: Monitor(2, "Power", "Delta", 50_000.0, 7, "PreconfiguredMonitor", factory_default=True),
            3: Monitor(3, "Temperature", "UpperThreshold", 60.0, 6, "PreconfiguredMonitor")}


@dataclass
class MonitoringState:
    base: str = "All"
    level: int = 9
    preconfigured: dict[int, Monitor] = field(default_factory=_preconfigured)
    custom: dict[int, Monitor] = field(default_factory=dict)
    next_id: int = FIRST_CUSTOM_ID
    event_id: int = 0

    def active(self) -> dict[int, Monitor]:
        """Monitors in force under the current monitoring base, by id."""
        out: dict[int, Monitor] = {}
        for m in self.preconfigured.values():
            if m.kind == "HardWiredMonitor" or self.base == "All" or (self.base == "FactoryDefault" and m.factory_default):
                out[m.id] = m
        out.update(self.custom)
        return out


def state(front: FrontEnd) -> MonitoringState:
    return feature_state(front, NAME, MonitoringState)


def measured(sim: StationSimulator, variable: str) -> str:
    return sim.read_setting(MEASURED[variable][0])


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _tx_ongoing(sim: StationSimulator) -> bool:
    return any(e.tx is not None for e in sim.evses.values())


# ---- events ----------------------------------------------------------------------------------

def _send_events(front: FrontEnd, items: list[tuple[Monitor, str, str, bool]]) -> list[dict[str, Any]]:
    """NotifyEvent for (monitor, trigger, actual value, cleared) whose severity the level lets through."""
    sim, st = front.sim, state(front)
    data = []
    for m, trigger, actual, cleared in items:
        if m.severity > st.level and not sim.has("monitoring_level_ignored"):
            continue                                 # N05: below the monitoring level, not reported
        st.event_id += 1
        event: dict[str, Any] = {
            "eventId": st.event_id, "timestamp": _now(), "trigger": trigger, "actualValue": actual[:2500],
            "component": {"name": STATION}, "variable": {"name": m.variable},
            "variableMonitoringId": m.id, "eventNotificationType": m.kind}
        if cleared:
            event["cleared"] = True
        data.append(event)
    if data:
        # N07.FR.07 / N08.FR.04: each report here is a single message, so its seqNo is 0.
        sim.enqueue("NotifyEvent", {"generatedAt": _now(), "seqNo": 0, "tbc": False, "eventData": data})
    return data


def _now() -> str:
    from ..station import now_iso              # late: station imports the features package
    return now_iso()


def _threshold(front: FrontEnd, m: Monitor, actual: str) -> list[tuple[Monitor, str, str, bool]]:
    """N07.FR.16/17: alert when the value goes beyond the limit (not at it); report cleared when it returns."""
    value = _number(actual)
    if value is None or front.sim.has("monitor_not_triggered"):
        return []
    beyond = value > m.value if m.type == "UpperThreshold" else value < m.value
    if beyond == m.alerting:
        return []
    m.alerting = beyond
    return [(m, "Alerting", actual, not beyond)]


def evaluate(front: FrontEnd, variable: str, old: str, new: str) -> list[tuple[Monitor, str, str, bool]]:
    """Which monitors of `variable` fire when its value goes from `old` to `new` (N07)."""
    sim, st = front.sim, state(front)
    fired: list[tuple[Monitor, str, str, bool]] = []
    if sim.has("monitor_not_triggered"):
        return fired                                 # the bug: monitors are stored but never evaluated
    value = _number(new)
    for m in st.active().values():
        if m.variable != variable or (m.transaction and not _tx_ongoing(sim)):
            continue
        if m.type in THRESHOLDS:
            fired += _threshold(front, m, new)
        elif m.type == "Delta":
            if m.reference is None:
                m.reference = old                    # the value when the monitor first saw a change
            ref_n = _number(m.reference)
            changed = (abs(value - ref_n) >= m.value) if value is not None and ref_n is not None else new != m.reference
            if changed:
                m.reference = new
                fired.append((m, "Delta", new, False))
    return fired


async def _set_measurement(sim: StationSimulator, params: dict[str, Any]) -> dict[str, Any]:
    variable = str(params.get("variable", ""))
    if variable not in MEASURED:
        raise ValueError(f"set_measurement: variable must be one of {sorted(MEASURED)}, got {variable!r}")
    if "value" not in params:
        raise ValueError("set_measurement needs value")
    setting = MEASURED[variable][0]
    new = str(params["value"])
    if setting.kind == "int" and _number(new) is None:
        raise ValueError(f"{variable} needs a number, got {new!r}")
    front = sim.front
    old = sim.read_setting(setting)
    sim.stored[setting] = new
    events = _send_events(front, evaluate(front, variable, old, new)) if front.version == V201 else []
    return {"variable": variable, "value": new, "events": len(events)}


async def _periodic(front: FrontEnd, m: Monitor) -> None:
    """N08: report the value every `value` s (clock-aligned: on multiples of it) while the monitor lives."""
    st, period = state(front), max(MIN_PERIOD_S, m.value)
    while st.active().get(m.id) is m:
        if m.type == "PeriodicClockAligned":
            await asyncio.sleep(period - (time.time() % period))
        else:
            await asyncio.sleep(period)
        if st.active().get(m.id) is not m or front.sim.has("monitor_not_triggered"):
            continue
        if m.transaction and not _tx_ongoing(front.sim):
            continue
        _send_events(front, [(m, "Periodic", measured(front.sim, m.variable), False)])


def _start_periodic(front: FrontEnd, monitors: list[Monitor]) -> None:
    for m in monitors:
        if m.type in PERIODIC:
            front.sim.spawn(_periodic(front, m), f"monitor-{m.id}")


# ---- CSMS → station --------------------------------------------------------------------------

def _check(front: FrontEnd, item: dict[str, Any]) -> str:
    comp, var = item["component"], item["variable"]
    components = {c for c, _, _ in front.variables}          # type: ignore[attr-defined]
    if comp["name"] not in components or ("evse" in comp and comp["evse"].get("id") not in front.sim.evses):
        return "UnknownComponent"
    if (comp["name"], var["name"], var.get("instance")) not in front.variables:   # type: ignore[attr-defined]
        return "UnknownVariable"
    if comp["name"] != STATION or var["name"] not in MEASURED or "evse" in comp \
            or item["type"] not in MEASURED[var["name"]][1]:
        return "UnsupportedMonitorType"
    value = float(item["value"])
    if (item["type"] == "Delta" and value < 0) or (item["type"] in PERIODIC and value <= 0):
        return "Rejected"
    return "Accepted"


async def _set_variable_monitoring(front: FrontEnd, p: dict[str, Any]) -> Reply:
    st = state(front)
    results, started = [], []
    for item in p["setMonitoringData"]:
        status = _check(front, item)
        if status != "Accepted" and front.sim.has("variable_monitoring_accepts_anything"):
            result = {"status": "Accepted", "type": item["type"], "severity": item["severity"],
                      "component": item["component"], "variable": item["variable"], "id": st.next_id}
            st.next_id += 1                           # the bug: a yes, and nothing is watched
            results.append(result)
            continue
        mid = item.get("id")
        known = st.active().get(mid) if mid is not None else None
        if status == "Accepted" and mid is not None and (
                known is None or known.kind == "HardWiredMonitor" or known.variable != item["variable"]["name"]):
            status = "Rejected"                       # N04.FR.13/16/18: only a matching, changeable monitor is replaced
        if status == "Accepted" and any(
                m.id != mid and m.variable == item["variable"]["name"] and m.type == item["type"]
                and m.severity == item["severity"] for m in st.active().values()):
            status = "Duplicate"                      # N04.FR.10
        result: dict[str, Any] = {"status": status, "type": item["type"], "severity": item["severity"],
                                  "component": item["component"], "variable": item["variable"]}
        if status == "Accepted":
            if mid is None:
                mid, st.next_id = st.next_id, st.next_id + 1
            st.preconfigured.pop(mid, None)           # N04.FR.15: a replaced preconfigured monitor becomes custom
            m = Monitor(mid, item["variable"]["name"], item["type"], float(item["value"]), int(item["severity"]),
                        transaction=bool(item.get("transaction", False)))
            m.alerting = bool(known is not None and known.type == m.type and known.alerting)
            if m.type == "Delta":
                m.reference = measured(front.sim, m.variable)   # changes count from the value now
            st.custom[mid] = m
            started.append(m)
            result["id"] = mid
        results.append(result)

    async def run() -> None:
        _start_periodic(front, started)
        fired = []                                    # N07.FR.11: a new limit may already be exceeded (or cleared)
        for m in started:
            if m.type in THRESHOLDS:
                fired += [f for f in _threshold(front, m, measured(front.sim, m.variable))]
        _send_events(front, fired)
    return Reply({"setMonitoringResult": results}, run if started else None)


async def _set_monitoring_base(front: FrontEnd, p: dict[str, Any]) -> Reply:
    st = state(front)
    if front.sim.has("monitoring_base_ignored"):
        return Reply({"status": "Accepted"})         # the bug: nothing changes
    before = set(st.active())
    st.base = p["monitoringBase"]
    if st.base in ("FactoryDefault", "HardWiredOnly"):
        st.custom.clear()                             # N03.FR.04/05: custom monitors (also changed preconfigured) go
        st.preconfigured = _preconfigured()           # the manufacturer's set is restored (HardWiredOnly: inactive)
    new = [m for i, m in st.active().items() if i not in before]

    async def run() -> None:
        _start_periodic(front, new)
    return Reply({"status": "Accepted"}, run if new else None)


async def _set_monitoring_level(front: FrontEnd, p: dict[str, Any]) -> Reply:
    state(front).level = int(p["severity"])
    return Reply({"status": "Accepted"})


async def _clear_variable_monitoring(front: FrontEnd, p: dict[str, Any]) -> Reply:
    st = state(front)
    results = []
    for mid in p["id"]:
        if mid in st.custom:
            del st.custom[mid]
            status = "Accepted"
        elif mid in st.preconfigured and (st.preconfigured[mid].kind != "HardWiredMonitor"
                                          or front.sim.has("hardwired_monitor_clearable")):
            del st.preconfigured[mid]
            status = "Accepted"
        elif mid in st.preconfigured:
            status = "Rejected"                       # N06.FR.03: a hard-wired monitor cannot be removed
        else:
            status = "Accepted" if front.sim.has("clear_monitoring_unknown_accepted") else "NotFound"
        results.append({"status": status, "id": mid})
    return Reply({"clearMonitoringResult": results})


def select_monitors(st: MonitoringState, component_variables: list[dict[str, Any]] | None,
                    criteria: list[str] | None) -> list[Monitor]:
    """Active monitors matching the GetMonitoringReport filters (N02.FR.*), by id."""
    types = {t for c in criteria or [] for t in CRITERIA.get(c, ())} if criteria else set(ALL_TYPES)
    out = []
    for m in sorted(st.active().values(), key=lambda m: m.id):
        if m.type not in types:
            continue
        if component_variables:
            wanted = False
            for cv in component_variables:
                comp, var = cv["component"], cv.get("variable")
                if comp["name"] == STATION and "evse" not in comp and (var is None or var["name"] == m.variable):
                    wanted = True
            if not wanted:
                continue
        out.append(m)
    return out


async def _get_monitoring_report(front: FrontEnd, p: dict[str, Any]) -> Reply:
    st = state(front)
    found = select_monitors(st, p.get("componentVariable"), p.get("monitoringCriteria"))
    if front.sim.has("monitoring_report_missing_monitor") and found:
        found = found[:-1]                            # the bug: the newest monitor never makes it into the report
    if not found:
        return Reply({"status": "EmptyResultSet"})
    grouped: dict[str, list[dict[str, Any]]] = {}
    for m in found:
        grouped.setdefault(m.variable, []).append(m.as_report())

    async def report() -> None:
        front.sim.enqueue("NotifyMonitoringReport", {
            "requestId": p["requestId"], "seqNo": 0, "generatedAt": _now(), "tbc": False,
            "monitor": [{"component": {"name": STATION}, "variable": {"name": var}, "variableMonitoring": ms}
                        for var, ms in grouped.items()]})
    return Reply({"status": "Accepted"}, report)


# ---- CSMS side -----------------------------------------------------------------------------------

def _named(x: Any) -> dict[str, Any]:
    return {"name": x} if isinstance(x, str) else dict(x)


_SWAPPED_TYPE = {"UpperThreshold": "LowerThreshold", "LowerThreshold": "UpperThreshold"}


def _op_set_variable_monitoring(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    monitors = params.get("monitors") or [params]
    data = []
    for mon in monitors:
        for key in ("component", "variable", "type", "value", "severity"):
            if mon.get(key) is None:
                raise ValueError(f"set_variable_monitoring needs {key} for every monitor")
        kind = str(mon["type"])
        if sim.faulty("set_variable_monitoring_wrong_type", V201):
            kind = _SWAPPED_TYPE.get(kind, kind)     # the bug: upper and lower limits mixed up
        item: dict[str, Any] = {"value": float(mon["value"]), "type": kind, "severity": int(mon["severity"]),
                                "component": _named(mon["component"]), "variable": _named(mon["variable"])}
        if mon.get("id") is not None:
            item["id"] = int(mon["id"])
        if mon.get("transaction") is not None:
            item["transaction"] = bool(mon["transaction"])
        data.append(item)
    return "SetVariableMonitoring", {"setMonitoringData": data}, True


def _op_clear_variable_monitoring(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    ids = [int(i) for i in params.get("ids") or []]
    if not ids:
        raise ValueError("clear_variable_monitoring needs ids")
    if sim.faulty("clear_variable_monitoring_wrong_id", V201):
        ids = [i + 1 for i in ids]                    # the bug: UI row numbers instead of monitor ids
    return "ClearVariableMonitoring", {"id": ids}, True


def _op_get_monitoring_report(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    request_id = operator_request_id(sim, params)
    payload: dict[str, Any] = {"requestId": request_id}
    if params.get("criteria") and not sim.faulty("get_monitoring_report_drops_criteria", V201):
        payload["monitoringCriteria"] = [str(c) for c in params["criteria"]]
    if params.get("component_variables"):
        payload["componentVariable"] = [
            {"component": _named(cv["component"]), **({"variable": _named(cv["variable"])} if cv.get("variable") else {})}
            for cv in params["component_variables"]]
    return "GetMonitoringReport", payload, True


def _op_set_monitoring_base(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    base = str(params.get("base", "All"))
    return "SetMonitoringBase", {"monitoringBase": base}, True


def _op_set_monitoring_level(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    if params.get("severity") is None:
        raise ValueError("set_monitoring_level needs severity (0-9)")
    severity = int(params["severity"])
    if sim.faulty("set_monitoring_level_off_by_one", V201):
        severity = min(9, severity + 1)               # the bug: the UI's 1-based severity sent as is
    return "SetMonitoringLevel", {"severity": severity}, True


_RO = {"readonly": True}

FEATURE = Feature(
    name=NAME,
    station_handlers={V201: {"SetVariableMonitoring": _set_variable_monitoring,
                             "SetMonitoringBase": _set_monitoring_base,
                             "SetMonitoringLevel": _set_monitoring_level,
                             "ClearVariableMonitoring": _clear_variable_monitoring,
                             "GetMonitoringReport": _get_monitoring_report}},
    station_variables={
        ("MonitoringCtrlr", "Enabled", None): Setting(None, const="true", **_RO),
        ("MonitoringCtrlr", "Available", None): Setting(None, const="true", **_RO),
        ("MonitoringCtrlr", "ItemsPerMessage", "SetVariableMonitoring"): Setting(None, "int", const="20", **_RO),
        ("MonitoringCtrlr", "ItemsPerMessage", "ClearVariableMonitoring"): Setting(None, "int", const="20", **_RO),
        (STATION, "Temperature", None): _TEMPERATURE,
        (STATION, "Power", None): _POWER,
        (STATION, "AvailabilityState", None): _AVAILABILITY,
    },
    station_actions={"set_measurement": _set_measurement},
    csms_operator={V201: {"set_variable_monitoring": _op_set_variable_monitoring,
                          "clear_variable_monitoring": _op_clear_variable_monitoring,
                          "get_monitoring_report": _op_get_monitoring_report,
                          "set_monitoring_base": _op_set_monitoring_base,
                          "set_monitoring_level": _op_set_monitoring_level}},
    csms_provokes={"GetMonitoringReport": frozenset({"NotifyMonitoringReport"})},
    station_faults=[
        Fault("monitor_not_triggered", "cs", (V201,),
              "Monitors are stored and reported but never evaluated: no NotifyEvent when a threshold is crossed, "
              "a delta exceeded or a period elapses."),
        Fault("monitoring_level_ignored", "cs", (V201,),
              "SetMonitoringLevel is Accepted but ignored: events of monitors with a severity above the level "
              "are still sent."),
        Fault("variable_monitoring_accepts_anything", "cs", (V201,),
              "SetVariableMonitoring answers Accepted (with an id) for every monitor, also for an unknown "
              "component or variable and an unsupported monitor type; nothing is watched for those."),
        Fault("monitoring_base_ignored", "cs", (V201,),
              "SetMonitoringBase is Accepted but nothing changes: HardWiredOnly keeps custom and preconfigured "
              "monitors."),
        Fault("clear_monitoring_unknown_accepted", "cs", (V201,),
              "ClearVariableMonitoring answers Accepted for a monitor id the station does not hold (not NotFound)."),
        Fault("hardwired_monitor_clearable", "cs", (V201,),
              "ClearVariableMonitoring removes a hard-wired (safety) monitor instead of answering Rejected."),
        Fault("monitoring_report_missing_monitor", "cs", (V201,),
              "NotifyMonitoringReport leaves out the newest monitor that matches the request."),
    ],
    csms_faults=[
        Fault("set_variable_monitoring_wrong_type", "csms", (V201,),
              "SetVariableMonitoring swaps UpperThreshold and LowerThreshold."),
        Fault("clear_variable_monitoring_wrong_id", "csms", (V201,),
              "ClearVariableMonitoring names the id after each one the operator chose."),
        Fault("get_monitoring_report_drops_criteria", "csms", (V201,),
              "GetMonitoringReport is sent without the operator's monitoringCriteria (asks for every monitor)."),
        Fault("set_monitoring_level_off_by_one", "csms", (V201,),
              "SetMonitoringLevel sends the operator's severity plus one (a 1-based UI scale)."),
    ],
)
