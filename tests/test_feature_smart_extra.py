"""Smart charging beyond the core (harness.sim.features.smart_extra / smart_csms): unit tests.

Both simulators are built but never started: station actions and hooks are called directly and
the CALLs the station would send are read from its outbox; CSMS builders and answers are
plain functions of (simulator, station model, parameters).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from harness.ocpp.schemas import validate
from harness.sim import features
from harness.sim.api import CsmsSimConfig
from harness.sim.csms import CsmsSimulator, StationState
from harness.sim.ev import EvModel
from harness.sim.evse import Transaction
from harness.sim.features import smart_csms, smart_extra
from harness.sim.station import StationSimulator

from _aio import run
from _features import sent as _sent, station_sim as _station

NOW = datetime(2026, 1, 1, 8, 0, tzinfo=timezone.utc)


def _csms(fault: str | None = None) -> CsmsSimulator:
    return CsmsSimulator(CsmsSimConfig(), fault=fault)


def _charging(sim: StationSimulator, evse_id: int = 1, tx_id: str = "TX-1") -> Transaction:
    evse = sim.evses[evse_id]
    evse.ev = EvModel(max_power_kw=350.0, soc_percent=20.0, target_soc_percent=80.0, capacity_kwh=500.0)
    evse.plugged_connector = 1
    tx = Transaction(tx_id=tx_id, evse_id=evse_id, connector_id=1, id_token="T", token_type="ISO14443",
                     meter_start_wh=0.0, started_at=0.0)
    evse.tx = tx
    return tx


def _model(version: str = "2.0.1", tx: str | int | None = "TX-9", evse: int = 1) -> StationState:
    st = StationState("CS-1", version=version, registration="Accepted")
    if tx is not None:
        st.open_transaction(tx, evse_id=evse, connector_id=1)
    return st


def test_features_and_faults_are_discovered() -> None:
    names = {f.name for f in features.all_features()}
    assert {"smart_extra", "smart_csms"} <= names
    assert {"external_limit_not_reported", "charging_rate_change_not_reported", "external_limit_clear_not_reported",
            "notify_ev_charging_needs_missing_departure", "renegotiation_ignored", "ev_schedule_exceeds_profile",
            "offline_drops_tx_profile", "offline_start_ignores_default_profile"} <= set(features.station_faults())
    assert {"set_profile_wrong_stack_level", "clear_profile_wrong_id", "clear_profile_criteria_dropped",
            "get_charging_profiles_wrong_request_id", "get_charging_profiles_drops_filter",
            "composite_request_wrong_unit", "ev_charging_needs_ignored", "renegotiation_needs_ignored",
            "charging_schedule_exceeds_ev_max", "ev_schedule_limits_not_checked",
            "charging_limit_callerror"} <= set(features.csms_faults())


# ---- station: external limits ------------------------------------------------------------------

def test_external_limit_installs_reports_and_limits_the_composite() -> None:
    async def go() -> None:
        sim = _station()
        await smart_extra._external_limit(sim, {"evse": 0, "limit_kw": 250, "source": "EMS"})
        (msg,) = _sent(sim, "NotifyChargingLimit")
        assert "evseId" not in msg and msg["chargingLimit"]["chargingLimitSource"] == "EMS"
        assert validate("2.0.1", "NotifyChargingLimit", "request", msg) is None
        cs = sim.smart.composite(0, 600, "W")
        assert cs is not None and all(p.limit is not None and p.limit <= 250_000 for p in cs.periods)
        assert not sim.smart.clear()            # a CSMS ClearChargingProfile never removes an external limit
        await smart_extra._clear_external_limit(sim, {"evse": 0, "source": "EMS"})
        (cleared,) = _sent(sim, "ClearedChargingLimit")
        assert cleared == {"chargingLimitSource": "EMS"}
        with pytest.raises(ValueError, match="no external limit"):
            await smart_extra._clear_external_limit(sim, {"evse": 0})
    run(go())


def test_external_limit_during_transaction_reports_rate_change() -> None:
    async def go() -> None:
        sim = _station()
        tx = _charging(sim)
        await smart_extra._external_limit(sim, {"evse": 1, "limit_kw": 60})
        events = _sent(sim, "TransactionEvent")
        assert [e["triggerReason"] for e in events] == ["ChargingRateChanged"]
        assert events[0]["transactionInfo"]["transactionId"] == tx.tx_id
        assert _sent(sim, "NotifyChargingLimit")[0]["evseId"] == 1
        limit = sim.smart.limit_w(sim.evses[1])
        assert limit is not None and limit <= 60_000
    run(go())


@pytest.mark.parametrize("fault, missing", [("external_limit_not_reported", "NotifyChargingLimit"),
                                            ("charging_rate_change_not_reported", "TransactionEvent")])
def test_external_limit_faults(fault: str, missing: str) -> None:
    async def go() -> None:
        sim = _station(fault)
        _charging(sim)
        await smart_extra._external_limit(sim, {"evse": 1, "limit_kw": 60})
        assert _sent(sim, missing) == []
    run(go())


def test_external_limit_rejects_bad_input() -> None:
    async def go() -> None:
        sim = _station()
        with pytest.raises(ValueError, match="limit_kw"):
            await smart_extra._external_limit(sim, {"evse": 0})
        with pytest.raises(ValueError, match="source"):
            await smart_extra._external_limit(sim, {"evse": 0, "limit_kw": 10, "source": "Grid"})
        with pytest.raises(ValueError, match="no EVSE"):
            await smart_extra._external_limit(sim, {"evse": 9, "limit_kw": 10})
    run(go())


# ---- station: ISO 15118 needs and schedules ------------------------------------------------------

def test_charging_needs_payload_is_valid_and_complete() -> None:
    sim = _station()
    _charging(sim)
    payload = smart_extra.charging_needs(sim, sim.evses[1], {"energy_kwh": 300, "departure_s": 14400})
    assert validate("2.0.1", "NotifyEVChargingNeeds", "request", payload) is None
    dc = payload["chargingNeeds"]["dcChargingParameters"]
    assert dc["energyAmount"] == 300_000 and dc["evMaxPower"] == 350_000
    assert "departureTime" in payload["chargingNeeds"]
    faulty = _station("notify_ev_charging_needs_missing_departure")
    _charging(faulty)
    assert "departureTime" not in smart_extra.charging_needs(faulty, faulty.evses[1], {})["chargingNeeds"]


def _tx_profile(tx_id: str, limit_w: float, pid: int = 5301, level: int = 1) -> dict[str, Any]:
    start = (datetime.now(timezone.utc) - timedelta(seconds=2)).replace(microsecond=0).isoformat()
    return {"id": pid, "stackLevel": level, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Absolute",
            "transactionId": tx_id, "chargingSchedule": [{"id": 1, "startSchedule": start, "chargingRateUnit": "W",
                                                          "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit_w}]}]}


@pytest.mark.parametrize("fault, cap", [(None, 100_000), ("ev_schedule_exceeds_profile", 350_000)])
def test_ev_schedule_stays_within_the_profile(fault: str | None, cap: float) -> None:
    async def go() -> None:
        sim = _station(fault)
        tx = _charging(sim)
        assert sim.smart.set_profile(1, _tx_profile(tx.tx_id, 100_000))[0] == "Accepted"
        schedule = smart_extra.ev_schedule(sim, sim.evses[1])
        assert max(p["limit"] for p in schedule["chargingSchedulePeriod"]) == cap
    run(go())


@pytest.mark.parametrize("fault, schedules", [(None, 2), ("renegotiation_ignored", 1)])
def test_hlc_session_reports_each_new_profile(fault: str | None, schedules: int) -> None:
    async def go() -> None:
        sim = _station(fault)
        tx = _charging(sim)
        await smart_extra._ev_charging_needs(sim, {"evse": 1})
        assert len(_sent(sim, "NotifyEVChargingNeeds")) == 1
        sim.smart.set_profile(1, _tx_profile(tx.tx_id, 100_000))
        for _ in range(50):
            if _sent(sim, "NotifyEVChargingSchedule"):
                break
            await asyncio.sleep(0.02)
        sim.smart.set_profile(1, _tx_profile(tx.tx_id, 50_000, pid=5801, level=2))
        await asyncio.sleep(3 * smart_extra.WATCH_EVERY_S)
        sent = _sent(sim, "NotifyEVChargingSchedule")
        assert len(sent) == schedules
        for msg in sent:
            assert validate("2.0.1", "NotifyEVChargingSchedule", "request", msg) is None
        session = smart_extra.state(sim.front).sessions[1]
        assert session.task is not None
        session.task.cancel()
    run(go())


def test_offline_faults_drop_profiles() -> None:
    sim = _station("offline_drops_tx_profile")
    tx = _charging(sim)
    sim.smart.set_profile(1, _tx_profile(tx.tx_id, 60_000))
    smart_extra._outgoing(sim.front, "TransactionEvent", {"eventType": "Updated"})
    assert sim.smart.installed                          # online: nothing happens
    smart_extra._outgoing(sim.front, "TransactionEvent", {"eventType": "Updated", "offline": True})
    assert not sim.smart.installed


# ---- CSMS: operator actions ----------------------------------------------------------------------

def test_set_charging_profile_201_from_parts() -> None:
    sim, st = _csms(), _model()
    action, payload, validate_it = smart_csms._op_set_charging_profile("2.0.1")(
        sim, st, {"evse": 1, "id": 7, "stack_level": 2, "purpose": "TxProfile", "limit": 60000})
    assert action == "SetChargingProfile" and validate_it
    profile = payload["chargingProfile"]
    assert payload["evseId"] == 1 and profile["transactionId"] == "TX-9" and profile["stackLevel"] == 2
    assert validate("2.0.1", "SetChargingProfile", "request", payload) is None
    _, bad, _ = smart_csms._op_set_charging_profile("2.0.1")(
        _csms("set_profile_wrong_stack_level"), st, {"evse": 1, "id": 7, "stack_level": 2, "limit": 1})
    assert bad["chargingProfile"]["stackLevel"] == 3


def test_set_charging_profile_16_and_errors() -> None:
    sim, st = _csms(), _model("1.6", tx=42)
    _, payload, _ = smart_csms._op_set_charging_profile("1.6")(
        sim, st, {"connector": 1, "id": 5, "purpose": "ChargingStationMaxProfile", "kind": "Relative",
                  "periods": [{"start": 0, "limit": 32}, {"start": 600, "limit": 16, "phases": 3}], "unit": "A"})
    profile = payload["csChargingProfiles"]
    assert profile["chargingProfilePurpose"] == "ChargePointMaxProfile" and "startSchedule" not in profile["chargingSchedule"]
    assert validate("1.6", "SetChargingProfile", "request", payload) is None
    _, tx_payload, _ = smart_csms._op_set_charging_profile("1.6")(sim, st, {"connector": 1, "id": 6, "limit": 1})
    assert tx_payload["csChargingProfiles"]["transactionId"] == 42
    with pytest.raises(ValueError, match="names its transaction"):
        smart_csms._op_set_charging_profile("2.0.1")(sim, _model(tx=None), {"evse": 1, "id": 1, "limit": 1})
    with pytest.raises(ValueError, match="purpose"):
        smart_csms._op_set_charging_profile("1.6")(sim, st, {"connector": 1, "id": 1, "limit": 1, "purpose": "Nope"})


def test_clear_get_and_composite_requests_with_faults() -> None:
    st = _model()
    clear = smart_csms._op_clear_charging_profile("2.0.1")
    assert clear(_csms(), st, {"id": 3})[1] == {"chargingProfileId": 3}
    assert clear(_csms("clear_profile_wrong_id"), st, {"id": 3})[1] == {"chargingProfileId": 4}
    crit = {"evse": 1, "purpose": "TxDefaultProfile", "stack_level": 1}
    assert clear(_csms(), st, crit)[1]["chargingProfileCriteria"] == {"evseId": 1, "chargingProfilePurpose": "TxDefaultProfile",
                                                                      "stackLevel": 1}
    assert clear(_csms("clear_profile_criteria_dropped"), st, crit)[1] == {}
    clean = _csms()
    first = smart_csms._op_get_charging_profiles(clean, st, {"evse": 1, "purpose": "TxProfile"})[1]
    second = smart_csms._op_get_charging_profiles(clean, st, {"evse": 1})[1]
    assert validate("2.0.1", "GetChargingProfiles", "request", first) is None
    assert first["chargingProfile"] == {"chargingProfilePurpose": "TxProfile"}
    faulty = _csms("get_charging_profiles_wrong_request_id")
    ids = {smart_csms._op_get_charging_profiles(faulty, st, {})[1]["requestId"] for _ in range(2)}
    assert ids == {1} and second["requestId"] != first["requestId"]
    composite = smart_csms._op_get_composite_schedule("1.6")
    assert composite(_csms(), st, {"connector": 1, "unit": "W"})[1] == {"connectorId": 1, "duration": 600, "chargingRateUnit": "W"}
    assert composite(_csms("composite_request_wrong_unit"), st, {"connector": 1, "unit": "W"})[1]["chargingRateUnit"] == "A"


# ---- CSMS: answers -----------------------------------------------------------------------------

NEEDS = {"requestedEnergyTransfer": "DC", "departureTime": (NOW + timedelta(hours=4)).isoformat(),
         "dcChargingParameters": {"evMaxCurrent": 420, "evMaxVoltage": 840, "energyAmount": 300000, "evMaxPower": 350000}}


def test_leveled_limit_meets_the_need_within_the_ev() -> None:
    limit, horizon = smart_csms.leveled_limit_w(NEEDS, NOW)
    assert horizon == 4 * 3600 and 75_000 <= limit <= 350_000
    rushed = dict(NEEDS, departureTime=(NOW + timedelta(minutes=30)).isoformat())
    assert smart_csms.leveled_limit_w(rushed, NOW)[0] == 350_000        # never above what the EV takes
    profile = smart_csms.hlc_profile(NEEDS, 1, "TX-9", NOW)
    assert validate("2.0.1", "SetChargingProfile", "request", {"evseId": 1, "chargingProfile": profile}) is None
    too_much = smart_csms.hlc_profile(NEEDS, 1, "TX-9", NOW, exceed_ev_max=True)
    assert too_much["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] > 350_000


def test_needs_answer_and_schedule_check() -> None:
    async def go() -> None:
        sim, st = _csms(), _model()
        sent: list[dict[str, Any]] = []

        async def perform(action: str, params: dict[str, Any]) -> Any:
            sent.append(params)
            return {}
        sim.perform = perform                   # type: ignore[method-assign]
        assert smart_csms._notify_ev_charging_needs(sim, st, {"evseId": 1, "chargingNeeds": NEEDS}) == {"status": "Accepted"}
        await asyncio.sleep(3 * smart_csms.SEND_DELAY_S)
        assert len(sent) == 1 and sent[0]["action"] == "SetChargingProfile"
        cap = sent[0]["payload"]["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]
        ok = {"evseId": 1, "timeBase": NOW.isoformat(),
              "chargingSchedule": {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": cap}]}}
        assert smart_csms._notify_ev_charging_schedule(sim, st, ok) == {"status": "Accepted"}
        over = dict(ok, chargingSchedule=dict(ok["chargingSchedule"], chargingSchedulePeriod=[{"startPeriod": 0, "limit": cap * 2}]))
        assert smart_csms._notify_ev_charging_schedule(sim, st, over) == {"status": "Rejected"}
        await asyncio.sleep(3 * smart_csms.SEND_DELAY_S)
        assert len(sent) == 2                   # K16.FR.08: the CSMS renegotiates
        assert smart_csms._notify_ev_charging_needs(sim, _model(tx=None), {"evseId": 1, "chargingNeeds": NEEDS}) == \
            {"status": "Rejected"}
    run(go())


def test_needs_faults_send_nothing() -> None:
    async def go() -> None:
        for fault in ("ev_charging_needs_ignored", "renegotiation_needs_ignored"):
            sim, st = _csms(fault), _model()
            sent: list[Any] = []

            async def perform(action: str, params: dict[str, Any], sent: list[Any] = sent) -> Any:
                sent.append(params)
            sim.perform = perform               # type: ignore[method-assign]
            smart_csms._notify_ev_charging_needs(sim, st, {"evseId": 1, "chargingNeeds": NEEDS})
            smart_csms._notify_ev_charging_needs(sim, st, {"evseId": 1, "chargingNeeds": NEEDS})
            await asyncio.sleep(3 * smart_csms.SEND_DELAY_S)
            assert len(sent) == (0 if fault == "ev_charging_needs_ignored" else 1)
    run(go())


def test_charging_limits_are_recorded_or_refused() -> None:
    sim, st = _csms(), _model()
    assert smart_csms._notify_charging_limit(sim, st, {"evseId": 1, "chargingLimit": {"chargingLimitSource": "EMS"}}) == {}
    assert 1 in smart_csms.csms_state(st).limits
    assert smart_csms._cleared_charging_limit(sim, st, {"chargingLimitSource": "EMS", "evseId": 1}) == {}
    assert smart_csms.csms_state(st).limits == {}
    with pytest.raises(NotImplementedError):
        smart_csms._notify_charging_limit(_csms("charging_limit_callerror"), st, {"chargingLimit": {"chargingLimitSource": "SO"}})


def test_profile_builder_faults() -> None:
    st = _model()
    build = smart_csms._op_set_charging_profile("2.0.1")
    station_max = {"evse": 0, "id": 1, "purpose": "ChargingStationMaxProfile", "limit": 300000}
    assert build(_csms(), st, station_max)[1]["evseId"] == 0
    assert build(_csms("max_profile_wrong_evse"), _model(), station_max)[1]["evseId"] == 1
    weekly = {"evse": 1, "id": 2, "purpose": "TxDefaultProfile", "kind": "Recurring", "recurrency": "Weekly",
              "start": "2025-01-06T00:00:00Z", "limit": 50000}
    profile = build(_csms(), st, weekly)[1]["chargingProfile"]
    assert profile["chargingProfileKind"] == "Recurring" and profile["recurrencyKind"] == "Weekly"
    lost = build(_csms("recurring_sent_as_absolute"), _model(), weekly)[1]["chargingProfile"]
    assert lost["chargingProfileKind"] == "Absolute" and "recurrencyKind" not in lost
    again = {"evse": 1, "id": 401, "purpose": "TxDefaultProfile", "limit": 1}
    clean, faulty, st_faulty = _csms(), _csms("replace_profile_new_id"), _model()
    assert [build(clean, st, again)[1]["chargingProfile"]["id"] for _ in range(2)] == [401, 401]
    assert [build(faulty, st_faulty, again)[1]["chargingProfile"]["id"] for _ in range(2)] == [401, 402]
