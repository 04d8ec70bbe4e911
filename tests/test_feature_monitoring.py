"""Variable monitoring (harness.sim.features.monitoring) and custom reports (features.reports): unit tests.

The station simulator is built but never started: handlers and actions are called directly and
the CALLs it would send are read from its outbox.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from harness.sim import features
from harness.sim.features import monitoring, reports
from harness.sim.station import StationSimulator

from _aio import run
from _features import call as _call, sent as _sent, station_sim as _sim


def _mon(variable: str, kind: str, value: float, severity: int = 5, component: str = "ChargingStation",
         **extra: Any) -> dict[str, Any]:
    return {"component": {"name": component}, "variable": {"name": variable}, "type": kind, "value": value,
            "severity": severity, **extra}


async def _set(sim: StationSimulator, *items: dict[str, Any]) -> list[dict[str, Any]]:
    return (await _call(sim, "SetVariableMonitoring", {"setMonitoringData": list(items)}))["setMonitoringResult"]


def _events(sim: StationSimulator) -> list[dict[str, Any]]:
    return [e for n in _sent(sim, "NotifyEvent") for e in n["eventData"]]


def test_feature_is_discovered_with_its_faults() -> None:
    assert {"monitoring", "reports"} <= {f.name for f in features.all_features()}
    assert {"monitor_not_triggered", "monitoring_level_ignored", "clear_monitoring_unknown_accepted",
            "monitoring_report_missing_monitor", "variable_monitoring_accepts_anything", "monitoring_base_ignored",
            "get_report_ignores_criteria"} <= set(features.station_faults())
    assert {"set_variable_monitoring_wrong_type", "clear_variable_monitoring_wrong_id",
            "get_monitoring_report_drops_criteria", "set_monitoring_level_off_by_one",
            "get_report_wrong_request_id"} <= set(features.csms_faults())


def test_set_statuses() -> None:
    async def go() -> None:
        sim = _sim()
        results = await _set(sim, _mon("Temperature", "UpperThreshold", 70), _mon("Temperature", "UpperThreshold", 70,
                                                                                   component="NoSuchCtrlr"),
                             _mon("NoSuchVar", "Delta", 1), _mon("AvailabilityState", "LowerThreshold", 1),
                             _mon("Power", "Delta", -1), _mon("Power", "Periodic", 0),
                             _mon("HeartbeatInterval", "Delta", 1, component="OCPPCommCtrlr"))
        assert [r["status"] for r in results] == ["Accepted", "UnknownComponent", "UnknownVariable",
                                                  "UnsupportedMonitorType", "Rejected", "Rejected",
                                                  "UnsupportedMonitorType"]
        assert results[0]["id"] == monitoring.FIRST_CUSTOM_ID
        again = await _set(sim, _mon("Temperature", "UpperThreshold", 71))
        assert again[0]["status"] == "Duplicate"
        replaced = await _set(sim, _mon("Temperature", "UpperThreshold", 72, id=results[0]["id"]))
        assert replaced[0]["status"] == "Accepted"
        assert monitoring.state(sim.front).custom[results[0]["id"]].value == 72
        assert (await _set(sim, _mon("Temperature", "UpperThreshold", 99, id=1)))[0]["status"] == "Rejected"
        assert (await _set(sim, _mon("Temperature", "UpperThreshold", 99, id=4242)))[0]["status"] == "Rejected"
    run(go())


def test_threshold_alert_cleared_and_level() -> None:
    async def go() -> None:
        sim = _sim()
        [r] = await _set(sim, _mon("Temperature", "UpperThreshold", 50, severity=4))
        await monitoring._set_measurement(sim, {"variable": "Temperature", "value": 58})
        await monitoring._set_measurement(sim, {"variable": "Temperature", "value": 40})
        events = _events(sim)
        assert [(e["variableMonitoringId"], e.get("cleared", False)) for e in events] == [(r["id"], False),
                                                                                            (r["id"], True)]
        assert events[0]["eventNotificationType"] == "CustomMonitor" and events[0]["actualValue"] == "58"
        await _call(sim, "SetMonitoringLevel", {"severity": 3})
        await monitoring._set_measurement(sim, {"variable": "Temperature", "value": 59})
        assert len(_events(sim)) == 2                 # severity 4 is below level 3
        await monitoring._set_measurement(sim, {"variable": "Temperature", "value": 90})
        assert _events(sim)[-1]["eventNotificationType"] == "HardWiredMonitor"   # severity 2 passes
    run(go())


@pytest.mark.parametrize("fault,count", [("monitor_not_triggered", 0), ("monitoring_level_ignored", 1)])
def test_event_faults(fault: str, count: int) -> None:
    async def go() -> None:
        sim = _sim(fault)
        await _set(sim, _mon("Temperature", "UpperThreshold", 50, severity=8))
        await _call(sim, "SetMonitoringLevel", {"severity": 5})
        await monitoring._set_measurement(sim, {"variable": "Temperature", "value": 55})
        assert len(_events(sim)) == count
    run(go())


def test_delta_on_string_and_number() -> None:
    async def go() -> None:
        sim = _sim()
        await _set(sim, _mon("AvailabilityState", "Delta", 0))
        await monitoring._set_measurement(sim, {"variable": "AvailabilityState", "value": "Unavailable"})
        await monitoring._set_measurement(sim, {"variable": "Power", "value": 20_000})    # factory Delta 50 kW: no
        await monitoring._set_measurement(sim, {"variable": "Power", "value": 60_000})    # 60 kW from 0: yes
        assert [(e["variable"]["name"], e["trigger"]) for e in _events(sim)] == [("AvailabilityState", "Delta"),
                                                                                  ("Power", "Delta")]
        with pytest.raises(ValueError):
            await monitoring._set_measurement(sim, {"variable": "Power", "value": "hot"})
    run(go())


def test_periodic_monitor_reports_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitoring, "MIN_PERIOD_S", 0.01)

    async def go() -> None:
        sim = _sim()
        [r] = await _set(sim, _mon("Power", "Periodic", 0.02))
        for _ in range(100):                          # bounded: at most 100 × 10 ms
            if len(_events(sim)) >= 2:
                break
            await asyncio.sleep(0.01)
        assert len(_events(sim)) >= 2 and _events(sim)[0]["trigger"] == "Periodic"
        await _call(sim, "ClearVariableMonitoring", {"id": [r["id"]]})
        await asyncio.sleep(0.05)
        n = len(_events(sim))
        await asyncio.sleep(0.05)
        assert len(_events(sim)) == n
        await sim.stop()
    run(go())


def test_base_clear_and_report() -> None:
    async def go() -> None:
        sim = _sim()
        [r] = await _set(sim, _mon("Power", "UpperThreshold", 300_000))
        assert (await _call(sim, "GetMonitoringReport", {"requestId": 1, "monitoringCriteria": ["ThresholdMonitoring"]}))[
            "status"] == "Accepted"
        reported = {m["id"] for n in _sent(sim, "NotifyMonitoringReport") for mon in n["monitor"]
                    for m in mon["variableMonitoring"]}
        assert reported == {1, 3, r["id"]}
        assert (await _call(sim, "GetMonitoringReport", {"requestId": 2, "monitoringCriteria": ["PeriodicMonitoring"]}))[
            "status"] == "EmptyResultSet"
        await _call(sim, "SetMonitoringBase", {"monitoringBase": "HardWiredOnly"})
        assert set(monitoring.state(sim.front).active()) == {1}
        await _call(sim, "SetMonitoringBase", {"monitoringBase": "FactoryDefault"})
        assert set(monitoring.state(sim.front).active()) == {1, 2}
        results = (await _call(sim, "ClearVariableMonitoring", {"id": [2, 1, 555]}))["clearMonitoringResult"]
        assert [x["status"] for x in results] == ["Accepted", "Rejected", "NotFound"]
        faulty = _sim("hardwired_monitor_clearable")
        assert (await _call(faulty, "ClearVariableMonitoring", {"id": [1]}))["clearMonitoringResult"][0]["status"] == \
            "Accepted"
    run(go())


def test_report_missing_monitor_fault() -> None:
    async def go() -> None:
        sim = _sim("monitoring_report_missing_monitor")
        [r] = await _set(sim, _mon("Power", "UpperThreshold", 300_000))
        await _call(sim, "GetMonitoringReport", {"requestId": 1})
        reported = {m["id"] for n in _sent(sim, "NotifyMonitoringReport") for mon in n["monitor"]
                    for m in mon["variableMonitoring"]}
        assert r["id"] not in reported
    run(go())


def _csms(fault: str | None = None) -> Any:
    return SimpleNamespace(faulty=lambda name, version=None: name == fault, next_remote_start_id=lambda: 9)


def test_csms_builders() -> None:
    st = SimpleNamespace(station_id="CS1")
    params = {"component": "ChargingStation", "variable": "Temperature", "type": "UpperThreshold", "value": 70,
              "severity": 4}
    _, payload, _ = monitoring._op_set_variable_monitoring(_csms(), st, params)
    assert payload["setMonitoringData"][0]["type"] == "UpperThreshold"
    _, payload, _ = monitoring._op_set_variable_monitoring(_csms("set_variable_monitoring_wrong_type"), st, params)
    assert payload["setMonitoringData"][0]["type"] == "LowerThreshold"
    with pytest.raises(ValueError):
        monitoring._op_set_variable_monitoring(_csms(), st, {"component": "X"})
    assert monitoring._op_clear_variable_monitoring(_csms("clear_variable_monitoring_wrong_id"), st,
                                                    {"ids": [5]})[1] == {"id": [6]}
    _, payload, _ = monitoring._op_get_monitoring_report(_csms(), st, {"criteria": ["DeltaMonitoring"]})
    assert payload == {"requestId": 9, "monitoringCriteria": ["DeltaMonitoring"]}
    _, payload, _ = monitoring._op_get_monitoring_report(_csms("get_monitoring_report_drops_criteria"), st,
                                                         {"criteria": ["DeltaMonitoring"]})
    assert payload == {"requestId": 9}
    assert monitoring._op_set_monitoring_level(_csms("set_monitoring_level_off_by_one"), st,
                                               {"severity": 4})[1] == {"severity": 5}
    assert reports._op_get_report(_csms("get_report_wrong_request_id"), st, {})[1] == {"requestId": 1}
    _, payload, _ = reports._op_get_report(_csms(), st, {"component_variables": [{"component": "A", "variable": "B"}],
                                                         "criteria": ["Enabled"]})
    assert payload == {"requestId": 9, "componentVariable": [{"component": {"name": "A"}, "variable": {"name": "B"}}],
                       "componentCriteria": ["Enabled"]}


# ---- custom reports (B08) ---------------------------------------------------------------------

def test_get_report_filters() -> None:
    async def go() -> None:
        sim = _sim()
        one = {"requestId": 1, "componentVariable": [{"component": {"name": "OCPPCommCtrlr"},
                                                      "variable": {"name": "HeartbeatInterval"}}]}
        assert (await _call(sim, "GetReport", one))["status"] == "Accepted"
        [report] = _sent(sim, "NotifyReport")
        assert [(d["component"]["name"], d["variable"]["name"]) for d in report["reportData"]] == [
            ("OCPPCommCtrlr", "HeartbeatInterval")]
        assert reports.select(sim.front, None, ["Problem"]) == []
        enabled = reports.select(sim.front, [{"component": {"name": "SmartChargingCtrlr"}}], ["Enabled"])
        assert enabled and all(k[0] == "SmartChargingCtrlr" for k in enabled)
        assert reports.select(sim.front, [{"component": {"name": "SmartChargingCtrlr", "evse": {"id": 1}}}], None) == []
        assert (await _call(sim, "GetReport", {"requestId": 2, "componentCriteria": ["Problem"]}))["status"] == \
            "EmptyResultSet"
        faulty = _sim("get_report_ignores_criteria")
        assert len(reports.select(faulty.front, None, ["Problem"])) == len(faulty.front.variables)
    run(go())


def test_limit_already_exceeded_alerts_when_set_and_factory_default_drops_custom() -> None:
    async def go() -> None:
        sim = _sim()
        await monitoring._set_measurement(sim, {"variable": "Temperature", "value": 45})
        [r] = await _set(sim, _mon("Temperature", "UpperThreshold", 40, severity=4))
        assert [(e["variableMonitoringId"], e.get("cleared", False)) for e in _events(sim)] == [(r["id"], False)]
        [again] = await _set(sim, _mon("Temperature", "UpperThreshold", 50, severity=4, id=r["id"]))
        assert again["status"] == "Accepted" and _events(sim)[-1].get("cleared") is True   # N07.FR.11
        [moved] = await _set(sim, _mon("Power", "UpperThreshold", 50, severity=4, id=r["id"]))
        assert moved["status"] == "Rejected"                                                # N04.FR.16
        assert all(n["seqNo"] == 0 for n in _sent(sim, "NotifyEvent"))
        await _call(sim, "SetMonitoringBase", {"monitoringBase": "FactoryDefault"})
        assert set(monitoring.state(sim.front).active()) == {1, 2}
        await _call(sim, "SetMonitoringBase", {"monitoringBase": "All"})
        assert set(monitoring.state(sim.front).active()) == {1, 2, 3}
    run(go())
