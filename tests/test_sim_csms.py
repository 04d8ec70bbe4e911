"""The reference CSMS simulator, played against by hand: the test is the charging station.

Every test runs its own event loop (`asyncio.run`) with a bounded budget; every frame the
clean simulator sends is checked against the official schemas afterwards.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from harness.sim import features
from harness.sim.tls_faults import CSMS_TLS_FAULTS
from harness.ocpp import schemas
from harness.ocpp.connection import IncomingCall, OcppConnection, Response, StrayResponse
from harness.ocpp.framing import Call, CallError, CallResult, decode, error_codes_for
from harness.ocpp.trace import Trace
from harness.sim.api import CsmsSimConfig, UnknownFault, UnknownSimAction
from harness.sim.csms import CsmsSimulator, StationNotConnected, violation_error_code
from harness.sim.csms_faults import CSMS_FAULTS, DLB_CSMS_FAULTS
from harness.transport.client import HandshakeRefused, connect_station
from harness.transport.security import SecurityProfile

T = 3.0          # per-frame budget
BUDGET = 8.0     # per-test budget


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


BOOT = {
    "2.0.1": {"reason": "PowerUp", "chargingStation": {"model": "RefSim-DC400", "vendorName": "ChargerHarness"}},
    "1.6": {"chargePointVendor": "ChargerHarness", "chargePointModel": "RefSim-DC400"},
}


def status(version: str, connector: int = 1, state: str = "Available") -> dict[str, Any]:
    if version == "1.6":
        return {"connectorId": connector, "errorCode": "NoError", "status": state}
    return {"timestamp": now(), "connectorStatus": state, "evseId": connector, "connectorId": 1}


def authorize(version: str, token: str) -> dict[str, Any]:
    return {"idTag": token} if version == "1.6" else {"idToken": {"idToken": token, "type": "ISO14443"}}


def tx_event(event: str, seq: int, tx_id: str = "TX-1", token: str | None = None, wh: float | None = None,
             **info: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"eventType": event, "timestamp": now(), "seqNo": seq,
                         "triggerReason": {"Started": "Authorized", "Updated": "MeterValuePeriodic"}.get(event, "StopAuthorized"),
                         "transactionInfo": {"transactionId": tx_id, **info}, "evse": {"id": 1, "connectorId": 1}}
    if token:
        p["idToken"] = {"idToken": token, "type": "ISO14443"}
    if wh is not None:
        p["meterValue"] = [{"timestamp": now(), "sampledValue": [
            {"value": wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}]}]
    return p


def start16(token: str = "TRUCK-0001", connector: int = 1) -> dict[str, Any]:
    return {"connectorId": connector, "idTag": token, "meterStart": 1000, "timestamp": now()}


class Station:
    """A hand-played charging station: call the CSMS, answer its CALLs."""

    def __init__(self, conn: OcppConnection):
        self.conn = conn

    async def call(self, action: str, payload: dict[str, Any], timeout: float = T, **kw: Any) -> Response:
        return await self.conn.call(action, payload, timeout=timeout, **kw)

    async def result(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        resp = await self.call(action, payload)
        assert isinstance(resp.frame, CallResult), f"{action}: {resp.frame}"
        assert resp.violation is None, f"{action} response violates schema: {resp.violation}"
        return resp.frame.payload

    async def error(self, action: str, payload: dict[str, Any], **kw: Any) -> str:
        resp = await self.call(action, payload, **kw)
        assert isinstance(resp.frame, CallError), f"{action}: expected CALLERROR, got {resp.frame}"
        return resp.frame.error_code

    async def incoming(self, action: str) -> IncomingCall:
        event = await self.conn.next_event(T)
        assert isinstance(event, IncomingCall) and event.call.action == action, event
        return event

    async def answer_next(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        event = await self.incoming(action)
        assert event.violation is None, f"CSMS sent an invalid {action}: {event.violation}"
        await self.conn.reply(event.call, payload)
        return event.call.payload

    async def boot(self) -> dict[str, Any]:
        return await self.result("BootNotification", BOOT[self.conn.version])


async def connect(sim: CsmsSimulator, station_id: str, version: str = "2.0.1",
                  security: SecurityProfile | None = None) -> Station:
    conn = await connect_station(sim.url, station_id, (version,), Trace(), security=security, open_timeout=T)
    # The CSMS registers the connection in its own task; wait until it knows the station.
    for _ in range(100):
        if sim.stations.get(station_id) and sim.stations[station_id].connected:
            break
        await asyncio.sleep(0.01)
    return Station(conn)


def assert_frames_valid(sim: CsmsSimulator) -> None:
    """Every frame the CSMS sent is well-formed and valid against the official schemas."""
    sent = [e for e in sim.trace.entries if e.direction == "tx"]
    for e in sent:
        version = sim.stations[e.peer].version
        frame = decode(e.raw)
        if isinstance(frame, Call):
            assert schemas.validate(version, frame.action, "request", frame.payload) is None, e.raw
        elif isinstance(frame, CallResult):
            assert schemas.validate(version, e.action, "response", frame.payload) is None, e.raw
        else:
            assert frame.error_code in error_codes_for(version), e.raw


def run(body: Callable[[CsmsSimulator], Awaitable[Any]], cfg: CsmsSimConfig | None = None,
        fault: str | None = None) -> Any:
    async def main() -> Any:
        sim = CsmsSimulator(cfg or CsmsSimConfig(), fault=fault)
        await sim.start()
        try:
            result = await asyncio.wait_for(body(sim), BUDGET)
        finally:
            await asyncio.wait_for(sim.stop(), BUDGET)
        if fault is None:
            assert_frames_valid(sim)
        return result
    return asyncio.run(main())


async def perform_answering(sim: CsmsSimulator, st: Station, action: str, params: dict[str, Any],
                            expect: str, reply: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run an operator action while the station answers the CALL it causes; (sent payload, result)."""
    task = asyncio.ensure_future(sim.perform(action, params))
    sent = await st.answer_next(expect, reply)
    result = await asyncio.wait_for(task, T)
    assert "violation" not in result and result["response"] == reply
    return sent, result


# ---- registration, heartbeat, status ---------------------------------------------------------

@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
def test_boot_accepted_heartbeat_status(version: str) -> None:
    async def body(sim: CsmsSimulator) -> None:
        st = await connect(sim, "CS-1", version)
        boot = await st.boot()
        assert boot["status"] == "Accepted" and boot["interval"] == 60
        assert schemas.validate(version, "Heartbeat", "response", {"currentTime": boot["currentTime"]}) is None
        hb = await st.result("Heartbeat", {})
        assert hb["currentTime"].endswith("Z")
        assert await st.result("StatusNotification", status(version, 1, "Unavailable")) == {}
        model = sim.stations["CS-1"]
        assert (model.version, model.registration, model.heartbeats, model.boots) == (version, "Accepted", 1, 1)
        assert model.status[(1, 1)] == "Unavailable"
        assert model.last_heartbeat == hb["currentTime"]
        state = await sim.perform("station_state", {"station_id": "CS-1"})
        assert state["status"] == {"1/1": "Unavailable"} and json.dumps(state)
    run(body)


def test_pending_refuses_calls_until_accepted_but_allows_triggered() -> None:
    async def body(sim: CsmsSimulator) -> None:
        await sim.perform("set_registration", {"station_id": "CS-P", "status": "Pending", "interval": 5})
        st = await connect(sim, "CS-P")
        assert (await st.boot())["status"] == "Pending"
        assert await st.error("Heartbeat", {}) == "SecurityError"                    # B02.FR.09
        assert await st.error("StatusNotification", status("2.0.1")) == "SecurityError"
        # A message the CSMS triggers itself is allowed while Pending.
        await perform_answering(sim, st, "trigger_message", {"station_id": "CS-P", "message": "StatusNotification"},
                                "TriggerMessage", {"status": "Accepted"})
        assert await st.result("StatusNotification", status("2.0.1")) == {}
        assert await st.error("Heartbeat", {}) == "SecurityError"
        await sim.perform("set_registration", {"station_id": "CS-P", "status": "Accepted"})
        assert (await st.boot())["status"] == "Accepted"
        assert "currentTime" in await st.result("Heartbeat", {})
    run(body)


def test_rejected_station_gets_security_error_16() -> None:
    async def body(sim: CsmsSimulator) -> None:
        st = await connect(sim, "CP-R", "1.6")
        boot = await st.boot()
        assert boot["status"] == "Rejected" and boot["interval"] == 60
        assert await st.error("StatusNotification", status("1.6")) == "SecurityError"   # B03.FR.07
    run(body, CsmsSimConfig(registration={"CP-R": "Rejected"}))


# ---- authorization ---------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
def test_authorize(version: str) -> None:
    async def body(sim: CsmsSimulator) -> None:
        st = await connect(sim, "CS-A", version)
        await st.boot()
        key = "idTagInfo" if version == "1.6" else "idTokenInfo"
        for token, expected in [("TRUCK-0001", "Accepted"), ("BLOCKED-01", "Blocked"), ("NOBODY", "Invalid")]:
            assert (await st.result("Authorize", authorize(version, token)))[key]["status"] == expected
    run(body)


# ---- transactions ----------------------------------------------------------------------------

def test_transaction_201() -> None:
    async def body(sim: CsmsSimulator) -> None:
        st = await connect(sim, "CS-T")
        await st.boot()
        started = await st.result("TransactionEvent", tx_event("Started", 0, token="TRUCK-0001", wh=1000.0,
                                                                   chargingState="Charging", remoteStartId=7))
        assert started == {"idTokenInfo": {"status": "Accepted"}}                   # idToken → idTokenInfo
        assert await st.result("TransactionEvent", tx_event("Updated", 1, wh=5000.0)) == {}
        assert await st.result("TransactionEvent", tx_event("Updated", 3, wh=6000.0)) == {}   # seqNo gap: noted
        ended = await st.result("TransactionEvent", tx_event("Ended", 4, token="NOBODY", wh=9000.0,
                                                                 stoppedReason="Local"))
        assert ended["idTokenInfo"]["status"] == "Invalid"
        model = sim.stations["CS-T"]
        tx = model.transactions["TX-1"]
        assert tx.ended and tx.stopped_reason == "Local" and tx.remote_start_id == 7 and tx.seq_no == 4
        assert (tx.meter_start_wh, tx.energy_wh, model.energy_wh[1]) == (1000.0, 9000.0, 9000.0)
        assert any("seqNo 3 after 1" in n for n in model.notes)
    run(body)


def test_transaction_16() -> None:
    async def body(sim: CsmsSimulator) -> None:
        st = await connect(sim, "CP-T", "1.6")
        await st.boot()
        first = await st.result("StartTransaction", start16())
        second = await st.result("StartTransaction", start16("NOBODY", connector=2))
        assert isinstance(first["transactionId"], int) and first["transactionId"] != second["transactionId"]
        assert (first["idTagInfo"]["status"], second["idTagInfo"]["status"]) == ("Accepted", "Invalid")
        mv = {"connectorId": 1, "transactionId": first["transactionId"], "meterValue": [{"timestamp": now(),
              "sampledValue": [{"value": "5.5", "unit": "kWh", "measurand": "Energy.Active.Import.Register"}]}]}
        assert await st.result("MeterValues", mv) == {}
        stop = {"transactionId": first["transactionId"], "meterStop": 9000, "timestamp": now(), "idTag": "TRUCK-0001"}
        assert await st.result("StopTransaction", stop) == {"idTagInfo": {"status": "Accepted"}}
        no_tag = {"transactionId": second["transactionId"], "meterStop": 1200, "timestamp": now(), "reason": "EVDisconnected"}
        assert await st.result("StopTransaction", no_tag) == {}
        model = sim.stations["CP-T"]
        tx = model.transactions[first["transactionId"]]
        assert tx.ended and tx.energy_wh == 9000.0 and tx.meter_start_wh == 1000.0 and tx.id_token == "TRUCK-0001"
        assert model.transactions[second["transactionId"]].stopped_reason == "EVDisconnected"
        assert model.ongoing() == []
    run(body)


# ---- operator actions ------------------------------------------------------------------------

def test_operator_actions_201() -> None:
    async def body(sim: CsmsSimulator) -> None:
        st = await connect(sim, "CS-O")
        await st.boot()
        p = {"station_id": "CS-O"}
        sent, result = await perform_answering(sim, st, "remote_start", {**p, "evse": 2, "id_token": "TRUCK-0001"},
                                               "RequestStartTransaction", {"status": "Accepted"})
        assert sent["evseId"] == 2 and sent["idToken"] == {"idToken": "TRUCK-0001", "type": "Central"}
        assert isinstance(sent["remoteStartId"], int) and result["request"] == sent
        await st.result("TransactionEvent", tx_event("Started", 0, tx_id="TX-R", token="TRUCK-0001",
                                                     remoteStartId=sent["remoteStartId"]))
        sent, _ = await perform_answering(sim, st, "remote_stop", p, "RequestStopTransaction", {"status": "Accepted"})
        assert sent == {"transactionId": "TX-R"}                                      # the ongoing one
        sent, _ = await perform_answering(sim, st, "reset", {**p, "type": "OnIdle"}, "Reset", {"status": "Accepted"})
        assert sent == {"type": "OnIdle"}
        var = {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}
        got = {"getVariableResult": [{"attributeStatus": "Accepted", "attributeValue": "60",
                                      "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}
        sent, result = await perform_answering(sim, st, "get_variables", {**p, "variables": [var]}, "GetVariables", got)
        assert sent == {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}
        assert result["response"]["getVariableResult"][0]["attributeValue"] == "60"
        set_ok = {"setVariableResult": [{"attributeStatus": "Accepted", "component": {"name": "OCPPCommCtrlr"},
                                         "variable": {"name": "HeartbeatInterval"}}]}
        sent, _ = await perform_answering(sim, st, "set_variables", {**p, "variables": [{**var, "value": 30}]},
                                          "SetVariables", set_ok)
        assert sent["setVariableData"][0]["attributeValue"] == "30"
        sent, _ = await perform_answering(sim, st, "trigger_message", {**p, "message": "StatusNotification", "evse": 1},
                                          "TriggerMessage", {"status": "Accepted"})
        assert sent == {"requestedMessage": "StatusNotification", "evse": {"id": 1}}
        sent, _ = await perform_answering(sim, st, "change_availability", {**p, "status": "Inoperative", "evse": 1},
                                          "ChangeAvailability", {"status": "Scheduled"})
        assert sent == {"operationalStatus": "Inoperative", "evse": {"id": 1}}
        sent, _ = await perform_answering(sim, st, "send", {**p, "action": "ClearCache", "payload": {}},
                                          "ClearCache", {"status": "Accepted"})
        # A CALLERROR from the station comes back as data, not as an exception.
        task = asyncio.ensure_future(sim.perform("reset", p))
        event = await st.incoming("Reset")
        assert event.call.payload == {"type": "Immediate"}
        await st.conn.reply_error(event.call, "NotSupported", "no")
        assert (await asyncio.wait_for(task, T))["error"]["code"] == "NotSupported"
        assert (await sim.perform("disconnect", p))["closed"]
    run(body)


def test_operator_actions_16() -> None:
    async def body(sim: CsmsSimulator) -> None:
        st = await connect(sim, "CP-O", "1.6")
        await st.boot()
        p = {"station_id": "CP-O"}
        sent, _ = await perform_answering(sim, st, "remote_start", {**p, "connector": 2, "id_token": "TRUCK-0002"},
                                          "RemoteStartTransaction", {"status": "Accepted"})
        assert sent == {"idTag": "TRUCK-0002", "connectorId": 2}
        tx_id = (await st.result("StartTransaction", start16("TRUCK-0002", 2)))["transactionId"]
        sent, _ = await perform_answering(sim, st, "remote_stop", p, "RemoteStopTransaction", {"status": "Accepted"})
        assert sent == {"transactionId": tx_id}
        sent, _ = await perform_answering(sim, st, "reset", p, "Reset", {"status": "Accepted"})
        assert sent == {"type": "Hard"}
        conf = {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]}
        sent, _ = await perform_answering(sim, st, "get_configuration", {**p, "keys": ["HeartbeatInterval"]},
                                          "GetConfiguration", conf)
        assert sent == {"key": ["HeartbeatInterval"]}
        sent, _ = await perform_answering(sim, st, "change_configuration", {**p, "key": "HeartbeatInterval", "value": 30},
                                          "ChangeConfiguration", {"status": "Accepted"})
        assert sent == {"key": "HeartbeatInterval", "value": "30"}
        sent, _ = await perform_answering(sim, st, "trigger_message", {**p, "message": "Heartbeat"},
                                          "TriggerMessage", {"status": "Accepted"})
        assert sent == {"requestedMessage": "Heartbeat"}
        sent, _ = await perform_answering(sim, st, "change_availability", {**p, "connector": 1, "status": "Operative"},
                                          "ChangeAvailability", {"status": "Accepted"})
        assert sent == {"connectorId": 1, "type": "Operative"}
    run(body)


def test_operator_action_errors() -> None:
    async def body(sim: CsmsSimulator) -> None:
        with pytest.raises(UnknownSimAction, match="remote_start"):
            await sim.perform("launch_rocket", {"station_id": "X"})
        with pytest.raises(StationNotConnected, match="'NOPE' is not connected"):
            await sim.perform("reset", {"station_id": "NOPE"})
        st = await connect(sim, "CP-V", "1.6")
        await st.boot()
        with pytest.raises(ValueError, match="OCPP 2.0.1 action"):
            await sim.perform("get_variables", {"station_id": "CP-V", "variables": []})
        with pytest.raises(ValueError, match="no ongoing transaction"):
            await sim.perform("remote_stop", {"station_id": "CP-V"})
        with pytest.raises(TimeoutError, match="did not answer"):
            await sim.perform("reset", {"station_id": "CP-V", "timeout": 0.2})
        with pytest.raises(ValueError, match="status must be one of"):
            await sim.perform("set_registration", {"station_id": "CP-V", "status": "Maybe"})
    run(body)
    with pytest.raises(UnknownFault, match="boot_interval_zero"):
        CsmsSimulator(CsmsSimConfig(), fault="no_such_fault")


# ---- RPC framework errors ----------------------------------------------------------------------

@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
def test_unknown_action_and_schema_violations(version: str) -> None:
    v16 = version == "1.6"
    boot = BOOT[version]
    vendor_key, vendor_path = ("chargePointVendor", None) if v16 else ("chargingStation", "vendorName")
    cases = [
        ({k: v for k, v in boot.items() if k != vendor_key},
         "OccurenceConstraintViolation"),
        ({**boot, "extra": 1}, "FormationViolation" if v16 else "FormatViolation"),
    ]
    if v16:
        cases += [({**boot, "chargePointVendor": 42}, "TypeConstraintViolation"),
                  ({**boot, "chargePointVendor": "V" * 30}, "PropertyConstraintViolation")]
    else:
        cases += [({**boot, "reason": 42}, "TypeConstraintViolation"),
                  ({**boot, "reason": "Bored"}, "PropertyConstraintViolation")]

    async def body(sim: CsmsSimulator) -> None:
        st = await connect(sim, "CS-E", version)
        assert await st.error("LaunchRocket", {}, validate=False) == "NotImplemented"
        assert await st.error("Reset", {"type": "Hard" if v16 else "Immediate"}) == "NotSupported"  # wrong direction
        for payload, code in cases:
            assert await st.error("BootNotification", payload, validate=False) == code, payload
        assert sim.stations["CS-E"].boots == 0            # no invalid boot was processed
    run(body)
    assert violation_error_code("maxItems", "2.0.1") == "OccurenceConstraintViolation"


def test_garbage_frames() -> None:
    async def body(sim: CsmsSimulator) -> None:
        st = await connect(sim, "CS-G")
        await st.boot()
        fut = st.conn.expect_response_to("g1", "Heartbeat")
        await st.conn.send_raw('[2,"g1","Heartbeat"]')                  # CALL without payload
        assert (await asyncio.wait_for(fut, T)).frame.error_code == "RpcFrameworkError"   # type: ignore[union-attr]
        fut = st.conn.expect_response_to("g2", "?")
        await st.conn.send_raw('[7,"g2",{}]')
        assert (await asyncio.wait_for(fut, T)).frame.error_code == "MessageTypeNotSupported"  # type: ignore[union-attr]
        await st.conn.send_raw("not json at all")                       # no id to answer: ignored
        assert "currentTime" in await st.result("Heartbeat", {})

        old = await connect(sim, "CP-G", "1.6")
        await old.boot()
        fut = old.conn.expect_response_to("g3", "Heartbeat")
        await old.conn.send_raw('[2,"g3","Heartbeat"]')                 # 1.6: no error code fits, ignored
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(fut, 0.3)
        assert "currentTime" in await old.result("Heartbeat", {})
    run(body)


# ---- transport: auth, many stations, both versions -------------------------------------------------

def test_basic_auth_enforced() -> None:
    cfg = CsmsSimConfig(passwords={"CS-S": "s3cret-password"})

    def profile(pw: str) -> SecurityProfile:
        return SecurityProfile(profile=1, username="CS-S", password=pw)

    async def body(sim: CsmsSimulator) -> str:
        with pytest.raises(HandshakeRefused) as refused:
            await connect(sim, "CS-S", security=profile("wrong"))
        assert refused.value.status == 401
        st = await connect(sim, "CS-S", security=profile("s3cret-password"))
        assert (await st.boot())["status"] == "Accepted"
        return sim.server.refusals[0].reason
    assert run(body, cfg) == "wrong password"

    async def faulty(sim: CsmsSimulator) -> None:
        st = await connect(sim, "CS-S", security=profile("wrong"))
        assert (await st.boot())["status"] == "Accepted"
    run(faulty, cfg, fault="basic_auth_not_enforced")


def test_many_stations_both_versions() -> None:
    async def body(sim: CsmsSimulator) -> None:
        stations = await asyncio.gather(*(connect(sim, f"ST-{i:02d}", "1.6" if i % 2 else "2.0.1") for i in range(20)))
        boots = await asyncio.gather(*(s.boot() for s in stations))
        assert all(b["status"] == "Accepted" for b in boots)
        assert {sim.stations[f"ST-{i:02d}"].version for i in range(20)} == {"1.6", "2.0.1"}
        # A reconnect keeps the model (a 2.0.1 station does not re-boot) and replaces the connection.
        again = await connect(sim, "ST-00", "2.0.1")
        assert "currentTime" in await again.result("Heartbeat", {})
        assert sim.stations["ST-00"].boots == 1
    run(body)


# ---- faults: each one changes what a station observes --------------------------------------------

async def _booted(sim: CsmsSimulator, version: str = "2.0.1", sid: str = "CS-F") -> Station:
    st = await connect(sim, sid, version)
    await _answer(st, "BootNotification", BOOT[version])      # tolerant: some faults never answer
    return st


async def _answer(st: Station, action: str, payload: dict[str, Any]) -> Any:
    """The answer to one CALL as plain data: payload, ('error', code), ('violation', …) or 'timeout'."""
    try:
        resp = await st.call(action, payload, timeout=1.0, validate=False)
    except asyncio.TimeoutError:
        return "timeout"
    if isinstance(resp.frame, CallError):
        return ("error", resp.frame.error_code)
    return ("violation", resp.violation.rule) if resp.violation else resp.frame.payload


async def _sent_by(sim: CsmsSimulator, st: Station, action: str, params: dict[str, Any], reply: dict[str, Any]) -> Any:
    """What the CSMS sends for an operator action (payload, or its schema violation)."""
    task = asyncio.ensure_future(sim.perform(action, {"station_id": "CS-F", **params}))
    event = await st.conn.next_event(T)
    assert isinstance(event, IncomingCall)
    await st.conn.reply(event.call, reply)
    await asyncio.wait_for(task, T)
    return event.violation.rule if event.violation else event.call.payload


async def probe_boot(sim: CsmsSimulator) -> Any:
    st = await connect(sim, "CS-F")
    r = (await st.call("BootNotification", BOOT["2.0.1"])).frame.payload  # type: ignore[union-attr]
    return r["status"], r["interval"]


async def probe_pending(sim: CsmsSimulator) -> Any:
    await sim.perform("set_registration", {"station_id": "CS-F", "status": "Pending"})
    st = await _booted(sim)
    first = await _answer(st, "Heartbeat", {})
    await _sent_by(sim, st, "trigger_message", {"message": "StatusNotification"}, {"status": "Accepted"})
    return first, await _answer(st, "StatusNotification", status("2.0.1"))


async def probe_status(sim: CsmsSimulator) -> Any:
    return await _answer(await _booted(sim), "StatusNotification", status("2.0.1"))


async def probe_heartbeat(sim: CsmsSimulator) -> Any:
    return await _answer(await _booted(sim), "Heartbeat", {})


async def probe_authorize(sim: CsmsSimulator) -> Any:
    st = await _booted(sim)
    return [await _answer(st, "Authorize", authorize("2.0.1", t)) for t in ("TRUCK-0001", "BLOCKED-01", "NOBODY")]


async def probe_tx16(sim: CsmsSimulator) -> Any:
    st = await _booted(sim, "1.6")
    first = await _answer(st, "StartTransaction", start16())
    second = await _answer(st, "StartTransaction", start16(connector=2))
    stop = await _answer(st, "StopTransaction", {"transactionId": first["transactionId"], "meterStop": 2000,
                                                 "timestamp": now(), "idTag": "TRUCK-0001"})
    return first["transactionId"] == second["transactionId"], stop


async def probe_tx201(sim: CsmsSimulator) -> Any:
    return await _answer(await _booted(sim), "TransactionEvent", tx_event("Started", 0, token="TRUCK-0001"))


async def probe_rpc(sim: CsmsSimulator) -> Any:
    st = await _booted(sim)
    return [await _answer(st, "LaunchRocket", {}), await _answer(st, "Heartbeat", {"extra": True})]


async def probe_auth(sim: CsmsSimulator) -> Any:
    try:
        await connect(sim, "CS-F", security=SecurityProfile(profile=1, username="CS-F", password="wrong"))
    except HandshakeRefused as exc:
        return exc.status
    return "connected"


async def probe_subprotocol(sim: CsmsSimulator) -> Any:
    try:
        async with ws_connect(f"{sim.url}/CS-F", subprotocols=["ocpp9.9"], open_timeout=T) as ws:  # type: ignore[list-item]
            return str(ws.subprotocol)
    except InvalidStatus as exc:
        return exc.response.status_code


async def probe_wrong_id(sim: CsmsSimulator) -> Any:
    st = await _booted(sim)
    answer = await _answer(st, "Heartbeat", {})
    stray = await st.conn.next_event(T) if answer == "timeout" else None
    return answer, isinstance(stray, StrayResponse)


async def probe_remote_start(sim: CsmsSimulator) -> Any:
    st = await _booted(sim)
    sent = await _sent_by(sim, st, "remote_start", {"evse": 1, "id_token": "TRUCK-0001"}, {"status": "Accepted"})
    return sent if isinstance(sent, str) else (sent.get("evseId"), "idToken" in sent)


async def probe_remote_stop(sim: CsmsSimulator) -> Any:
    st = await _booted(sim)
    await st.call("TransactionEvent", tx_event("Started", 0, tx_id="TX-S"))
    return await _sent_by(sim, st, "remote_stop", {}, {"status": "Accepted"})


async def probe_reset(sim: CsmsSimulator) -> Any:
    return await _sent_by(sim, await _booted(sim), "reset", {"type": "Immediate"}, {"status": "Accepted"})


async def probe_set_variables(sim: CsmsSimulator) -> Any:
    var = {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "30"}
    ok = {"setVariableResult": [{"attributeStatus": "Accepted", "component": {"name": "OCPPCommCtrlr"},
                                 "variable": {"name": "HeartbeatInterval"}}]}
    return await _sent_by(sim, await _booted(sim), "set_variables", {"variables": [var]}, ok)


async def probe_trigger(sim: CsmsSimulator) -> Any:
    return await _sent_by(sim, await _booted(sim), "trigger_message", {"message": "MeterValues"}, {"status": "Accepted"})


async def probe_change_availability(sim: CsmsSimulator) -> Any:
    return await _sent_by(sim, await _booted(sim), "change_availability", {"evse": 1}, {"status": "Accepted"})


async def probe_unlock(sim: CsmsSimulator) -> Any:
    return await _sent_by(sim, await _booted(sim), "unlock_connector", {"evse": 1, "connector": 1}, {"status": "Unlocked"})


async def probe_tx_status(sim: CsmsSimulator) -> Any:
    st = await _booted(sim)
    await st.call("TransactionEvent", tx_event("Started", 0, tx_id="TX-Q"))
    return await _sent_by(sim, st, "get_transaction_status", {}, {"messagesInQueue": False})


async def probe_notify_event(sim: CsmsSimulator) -> Any:
    event = {"generatedAt": "2025-01-01T00:00:00Z", "seqNo": 0, "eventData": [{
        "eventId": 1, "timestamp": "2025-01-01T00:00:00Z", "trigger": "Delta", "actualValue": "Unavailable",
        "eventNotificationType": "HardWiredNotification", "component": {"name": "EVSE", "evse": {"id": 1}},
        "variable": {"name": "AvailabilityState"}}]}
    return await _answer(await _booted(sim), "NotifyEvent", event)


async def probe_base_report(sim: CsmsSimulator) -> Any:
    return await _sent_by(sim, await _booted(sim), "get_base_report", {"report_base": "FullInventory"},
                          {"status": "Accepted"})


async def probe_data_transfer_out(sim: CsmsSimulator) -> Any:
    return await _sent_by(sim, await _booted(sim), "data_transfer", {"vendor_id": "com.example.depot", "message_id": "Ping"},
                          {"status": "UnknownVendorId"})


# Each fault → the probe whose observation it changes (and the config the probe needs).
PROBES: dict[str, tuple[Callable[[CsmsSimulator], Awaitable[Any]], CsmsSimConfig | None]] = {
    "boot_interval_zero": (probe_boot, None),
    "boot_always_pending": (probe_boot, None),
    "pending_accepts_calls": (probe_pending, None),
    "pending_rejects_triggered": (probe_pending, None),
    "heartbeat_bad_time": (probe_heartbeat, None),
    "status_callerror": (probe_status, None),
    "authorize_accepts_unknown": (probe_authorize, None),
    "authorize_rejects_valid": (probe_authorize, None),
    "authorize_accepts_blocked": (probe_authorize, None),
    "tx_id_reused": (probe_tx16, None),
    "stop_tx_no_idtaginfo": (probe_tx16, None),
    "tx_event_no_idtokeninfo": (probe_tx201, None),
    "unknown_action_callresult": (probe_rpc, None),
    "bad_payload_accepted": (probe_rpc, None),
    "slow_response": (probe_heartbeat, None),
    "wrong_response_id": (probe_wrong_id, None),
    "basic_auth_not_enforced": (probe_auth, CsmsSimConfig(passwords={"CS-F": "right-password"})),
    "accepts_unknown_subprotocol": (probe_subprotocol, None),
    "remote_start_no_id_token": (probe_remote_start, None),
    "remote_start_wrong_evse": (probe_remote_start, None),
    "remote_stop_wrong_tx": (probe_remote_stop, None),
    "reset_wrong_type": (probe_reset, None),
    "set_variables_wrong_value": (probe_set_variables, None),
    "trigger_wrong_message": (probe_trigger, None),
    "change_availability_wrong_evse": (probe_change_availability, None),
    "unlock_wrong_connector": (probe_unlock, None),
    "tx_status_names_transaction": (probe_tx_status, None),
    "notify_event_callerror": (probe_notify_event, None),
    "get_base_report_wrong_base": (probe_base_report, None),
    "change_availability_wrong_status": (probe_change_availability, None),
}


def test_every_fault_has_a_probe() -> None:
    # DLB: tests/test_depot_ocpp.py; TLS: tests/test_tls.py; functional blocks: tests/test_feature_*.py
    others = {*DLB_CSMS_FAULTS, *CSMS_TLS_FAULTS, *features.csms_faults()}
    assert set(PROBES) == set(CSMS_FAULTS) - others
    assert all(f.target == "csms" and f.versions and f.description for f in CSMS_FAULTS.values())


@pytest.mark.parametrize("fault", sorted(PROBES))
def test_fault_changes_observed_behaviour(fault: str) -> None:
    probe, cfg = PROBES[fault]
    clean = run(probe, cfg)
    broken = run(probe, cfg, fault=fault)
    assert clean != broken, f"{fault}: observed {broken!r} both with and without the fault"


def test_fault_for_other_version_is_inert() -> None:
    # tx_id_reused is a 1.6 bug; a 2.0.1 station sees the clean CSMS.
    assert run(probe_tx201, fault="tx_id_reused") == run(probe_tx201)
    assert run(probe_tx201, fault="tx_event_no_idtokeninfo") != run(probe_tx201)


# ---- OCPP 1.6 Core: data transfer, decimal meter values, availability, unlock ---------------------

async def probe_data_transfer16(sim: CsmsSimulator) -> Any:
    return await _answer(await _booted(sim, "1.6"), "DataTransfer", {"vendorId": "org.example.nobody"})


async def probe_meter_decimal16(sim: CsmsSimulator) -> Any:
    st = await _booted(sim, "1.6")
    tx = (await _answer(st, "StartTransaction", start16()))["transactionId"]
    sv = [{"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    mv = await _answer(st, "MeterValues", {"connectorId": 1, "transactionId": tx,
                                           "meterValue": [{"timestamp": now(), "sampledValue": sv}]})
    stop = await _answer(st, "StopTransaction", {"transactionId": tx, "meterStop": 2000, "timestamp": now(),
                                                 "transactionData": [{"timestamp": now(), "sampledValue": sv}]})
    return mv, stop


async def probe_availability16(sim: CsmsSimulator) -> Any:
    st = await _booted(sim, "1.6")
    return await _sent_by(sim, st, "change_availability", {"connector": 1, "status": "Inoperative"}, {"status": "Accepted"})


async def probe_unlock16(sim: CsmsSimulator) -> Any:
    return await _sent_by(sim, await _booted(sim, "1.6"), "unlock_connector", {"connector": 1}, {"status": "Unlocked"})


async def probe_data_transfer201(sim: CsmsSimulator) -> Any:
    return await _answer(await _booted(sim, "2.0.1"), "DataTransfer", {"vendorId": "org.example.nobody"})


PROBES.update({
    "data_transfer_accepts_unknown_vendor_csms": (probe_data_transfer201, None),
    "data_transfer_own_vendor_id": (probe_data_transfer_out, None),
    "data_transfer_callerror": (probe_data_transfer16, None),
    "meter_decimal_rejected": (probe_meter_decimal16, None),
    "change_availability_wrong_type": (probe_availability16, None),
    "unlock_wrong_connector_16": (probe_unlock16, None),
})
