"""The reference charging-station simulator, driven from a hand-played CSMS on loopback.

Each test starts an OcppServer on 127.0.0.1:0, lets the simulator connect, and plays the
CSMS by hand through `Csms` (auto-answers with defaults, records every CALL). Every wait
is bounded; the clean simulator must never send a schema-invalid frame (checked on exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from harness.sim import features
from harness.sim.tls_faults import STATION_TLS_FAULTS
from harness.ocpp.connection import Closed, Garbage, IncomingCall, OcppConnection, Response, StrayResponse
from harness.ocpp.framing import Call, CallError, CallResult, new_message_id
from harness.ocpp.trace import Trace
from harness.sim.api import EvseConfig, StationSimConfig, UnknownFault, UnknownSimAction
from harness.sim.ev import EvModel
from harness.sim.evse import Evse, Transaction
from harness.sim.faults import SMART_CHARGING_FAULTS, STATION_FAULTS, get_fault
from harness.sim.station import StationSimulator, garbage_code, violation_code
from harness.transport.security import SecurityProfile
from harness.transport.server import OcppServer

NOW = "2025-01-01T00:00:00Z"
Reply = dict[str, Any] | Callable[[dict[str, Any]], "dict[str, Any] | None"] | None


def defaults(version: str, boot_interval: int = 300) -> dict[str, Reply]:
    boot = {"status": "Accepted", "currentTime": NOW, "interval": boot_interval}
    if version == "2.0.1":
        return {"BootNotification": boot, "Heartbeat": {"currentTime": NOW}, "StatusNotification": {},
                "Authorize": {"idTokenInfo": {"status": "Accepted"}}, "TransactionEvent": {}, "MeterValues": {},
                "LogStatusNotification": {}}
    return {"BootNotification": boot, "Heartbeat": {"currentTime": NOW}, "StatusNotification": {},
            "Authorize": {"idTagInfo": {"status": "Accepted"}}, "MeterValues": {},
            "StartTransaction": {"transactionId": 4711, "idTagInfo": {"status": "Accepted"}},
            "StopTransaction": {"idTagInfo": {"status": "Accepted"}},
            "DiagnosticsStatusNotification": {}, "FirmwareStatusNotification": {}}


class Csms:
    """The CSMS played by hand: answers the station's CALLs from `replies`, records them in order."""

    def __init__(self, conn: OcppConnection, replies: dict[str, Reply]):
        self.conn, self.replies = conn, replies
        self.calls: list[tuple[float, Call]] = []
        self.garbage: list[str] = []
        self.strays: list[StrayResponse] = []
        self.closed = asyncio.Event()
        self._queue: asyncio.Queue[Call] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            ev = await self.conn.next_event()
            if isinstance(ev, Closed):
                self.closed.set()
                return
            if isinstance(ev, Garbage):
                self.garbage.append(ev.raw)
            elif isinstance(ev, StrayResponse):
                self.strays.append(ev)
            elif isinstance(ev, IncomingCall):
                call = ev.call
                reply = self.replies.get(call.action)
                if callable(reply):
                    reply = reply(call.payload)
                if reply is not None:
                    with contextlib.suppress(Exception):
                        await self.conn.reply(call, reply)
                self.calls.append((loop.time(), call))
                self._queue.put_nowait(call)

    async def expect(self, action: str, timeout: float = 5.0,
                     where: Callable[[dict[str, Any]], bool] | None = None) -> Call:
        """The next CALL of `action` (matching `where`); others are skipped (already answered)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {action} within {timeout}s; got {[c.action for _, c in self.calls]}")
            try:
                call = await asyncio.wait_for(self._queue.get(), left)
            except asyncio.TimeoutError:
                continue
            if call.action == action and (where is None or where(call.payload)):
                return call

    async def none(self, action: str | None, seconds: float) -> list[Call]:
        """Wait `seconds`; return the CALLs of `action` (None = any) that arrived meanwhile."""
        start = len(self.calls)
        await asyncio.sleep(seconds)
        return [c for _, c in self.calls[start:] if action is None or c.action == action]

    async def send(self, action: str, payload: dict[str, Any], timeout: float = 3.0, **kw: Any) -> Response:
        return await self.conn.call(action, payload, timeout, **kw)

    async def send_raw(self, text: str, uid: str, action: str = "X", timeout: float = 2.0) -> Response:
        fut = self.conn.expect_response_to(uid, action)
        await self.conn.send_raw(text)
        return await asyncio.wait_for(fut, timeout)

    def stop(self) -> None:
        self._task.cancel()


@contextlib.asynccontextmanager
async def rig(version: str = "2.0.1", fault: str | None = None, replies: dict[str, Reply] | None = None,
              boot_interval: int = 300, check_schema: bool = True, **cfg: Any
              ) -> AsyncIterator[tuple[StationSimulator, Csms, OcppServer]]:
    srv = await OcppServer(versions=(version,)).start()
    config = StationSimConfig(csms_url=srv.url(), versions=(version,), meter_interval_s=1.0, **cfg)
    sim = StationSimulator(config, fault=fault, trace=Trace())
    await sim.start()
    csms: Csms | None = None
    try:
        acc = await srv.next_connection(5)
        assert acc.version == version and acc.station_id == config.station_id
        csms = Csms(acc.connection, {**defaults(version, boot_interval), **(replies or {})})
        yield sim, csms, srv
    finally:
        await asyncio.wait_for(sim.stop(), 5)
        if csms is not None:
            csms.stop()
        await srv.stop()
    if check_schema and fault is None:
        bad = [f"{e.action}: {e.note}" for e in srv.trace.entries
               if e.direction == "rx" and ("schema violation" in e.note or e.kind == "GARBAGE")]
        assert not bad, f"the clean simulator sent invalid frames: {bad}"


async def reconnect(srv: OcppServer, csms: Csms, timeout: float = 5.0) -> Csms:
    """The station came back (reset/reboot/drop): a new Csms on its new connection."""
    acc = await srv.next_connection(timeout)
    new = Csms(acc.connection, csms.replies)
    csms.stop()
    return new


def run(coro: Awaitable[Any], timeout: float = 20.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))   # type: ignore[arg-type]


async def booted(csms: Csms, version: str = "2.0.1") -> None:
    await csms.expect("BootNotification")
    for _ in range(2 if version == "2.0.1" else 3):
        await csms.expect("StatusNotification")


async def start_tx_201(sim: StationSimulator, csms: Csms, token: str = "TRUCK-0001", evse: int = 1) -> Call:
    await sim.perform("plug_in", {"evse": evse, "ev": {"soc_percent": 30}})
    await csms.expect("StatusNotification", where=lambda p: p["connectorStatus"] == "Occupied")
    await sim.perform("present_token", {"id_token": token, "evse": evse})
    await csms.expect("Authorize")
    return await csms.expect("TransactionEvent", where=lambda p: p["eventType"] == "Started")


async def start_tx_16(sim: StationSimulator, csms: Csms, token: str = "TRUCK-0001") -> Call:
    await sim.perform("plug_in", {"evse": 1})
    await csms.expect("StatusNotification", where=lambda p: p["status"] == "Preparing")
    await sim.perform("present_token", {"id_token": token})
    await csms.expect("Authorize")
    start = await csms.expect("StartTransaction")
    await csms.expect("StatusNotification", where=lambda p: p["status"] == "Charging")
    return start


def sampled(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {sv.get("measurand", "Energy.Active.Import.Register"): sv for sv in event["meterValue"][0]["sampledValue"]}


# ---- unit level --------------------------------------------------------------------------

def test_ev_model_tapers_and_stops_at_target() -> None:
    ev = EvModel(capacity_kwh=100, soc_percent=50, target_soc_percent=90, max_power_kw=200)
    assert ev.accepted_power_w() == 200_000
    ev.soc_percent = 90 - 1e-6
    assert ev.accepted_power_w() < 200_000 * 0.6          # tapered above 80 %
    ev.soc_percent = 50
    stored = ev.charge(200_000, 1.0)                       # one hour would overshoot the target
    assert stored == pytest.approx(40_000) and ev.full and ev.accepted_power_w() == 0
    with pytest.raises(ValueError, match="unknown EV parameter"):
        EvModel.from_params({"soc": 10})


def test_mcs_evse_delivers_megawatts_within_current_limit() -> None:
    evse = Evse(EvseConfig(2, max_power_kw=3750, max_current_a=3000, voltage_v=1250, connector_type="cMCS"))
    evse.ev = EvModel(capacity_kwh=1000, soc_percent=20, max_power_kw=5000, nominal_voltage_v=1250)
    evse.plugged_connector = 1
    evse.tx = Transaction("t", 2, 1, "X", "ISO14443", 0.0, 0.0)
    evse.advance(0.0, 60.0)
    assert 3_000_000 < evse.power_w <= 3_750_000           # MCS: multi-megawatt, capped by rating
    s = evse.sample(1.0, 60.0)                             # one real second = one simulated minute
    assert s.energy_wh == pytest.approx(evse.power_w / 60, rel=0.05) and s.current_a <= 3000


def test_error_code_tables() -> None:
    assert violation_code("2.0.1", "required") == "OccurenceConstraintViolation"
    assert violation_code("1.6", "required") == "OccurenceConstraintViolation"     # 1.6 spelling
    assert violation_code("2.0.1", "type") == "TypeConstraintViolation"
    assert violation_code("1.6", "enum") == "PropertyConstraintViolation"
    assert violation_code("2.0.1", "additionalProperties") == "FormatViolation"
    assert violation_code("1.6", "additionalProperties") == "FormationViolation"
    assert garbage_code("2.0.1", 2) == "RpcFrameworkError"
    assert garbage_code("2.0.1", 7) == "MessageTypeNotSupported"
    assert garbage_code("2.0.1", 3) is None and garbage_code("1.6", 3) is None


def test_fault_catalogue_and_lookup() -> None:
    assert get_fault("cs", "tx_seqno_skips").versions == ("2.0.1",)
    assert all(f.target == "cs" and f.name == n for n, f in STATION_FAULTS.items())
    with pytest.raises(UnknownFault, match="boot_ignores_interval"):
        get_fault("cs", "no_such_fault")
    with pytest.raises(UnknownFault):
        StationSimulator(StationSimConfig(), fault="no_such_fault")


def test_unknown_action_lists_valid_names() -> None:
    async def main() -> None:
        sim = StationSimulator(StationSimConfig())
        with pytest.raises(UnknownSimAction, match="plug_in"):
            await sim.perform("fly", {})
        with pytest.raises(ValueError, match="no EVSE"):
            await sim.perform("plug_in", {"evse": 9})
        await sim.stop()
    run(main())


# ---- boot (B01–B03, 1.6 §4.2) --------------------------------------------------------------

def test_boot_accepted_201_status_then_heartbeat_at_interval() -> None:
    async def main() -> None:
        async with rig(boot_interval=1) as (sim, csms, _):
            boot = await csms.expect("BootNotification")
            assert boot.payload["reason"] == "PowerUp"
            assert boot.payload["chargingStation"] == {"model": "RefSim-DC400", "vendorName": "ChargerHarness",
                                                       "serialNumber": "SIM-0001", "firmwareVersion": "1.0.0"}
            seen = {(c.payload["evseId"], c.payload["connectorId"], c.payload["connectorStatus"])
                    for c in [await csms.expect("StatusNotification"), await csms.expect("StatusNotification")]}
            assert seen == {(1, 1, "Available"), (2, 1, "Available")}
            await asyncio.wait_for(sim.accepted.wait(), 1)
            await csms.expect("Heartbeat", timeout=2)
            t1 = csms.calls[-1][0]
            await csms.expect("Heartbeat", timeout=2)
            assert 0.7 < csms.calls[-1][0] - t1 < 1.6
    run(main())


def test_boot_accepted_16_status_for_connector_0_and_each() -> None:
    async def main() -> None:
        async with rig("1.6", boot_interval=1) as (_, csms, _srv):
            boot = await csms.expect("BootNotification")
            assert boot.payload["chargePointVendor"] == "ChargerHarness" and "chargePointSerialNumber" in boot.payload
            ids = [(await csms.expect("StatusNotification")).payload for _ in range(3)]
            assert [(p["connectorId"], p["status"], p["errorCode"]) for p in ids] == [
                (0, "Available", "NoError"), (1, "Available", "NoError"), (2, "Available", "NoError")]
            await csms.expect("Heartbeat", timeout=2)
    run(main())


def test_pending_sends_nothing_but_boot_answers_and_obeys_trigger() -> None:
    async def main() -> None:
        boots: list[str] = []

        def boot_reply(p: dict[str, Any]) -> dict[str, Any]:
            boots.append(p["reason"])
            status = "Pending" if len(boots) == 1 else "Accepted"
            return {"status": status, "currentTime": NOW, "interval": 30}
        async with rig(replies={"BootNotification": boot_reply}) as (sim, csms, _):
            await csms.expect("BootNotification")
            await sim.perform("plug_in", {"evse": 1})          # would normally cause a StatusNotification
            r = await csms.send("GetVariables", {"getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]})
            assert r.frame.payload["getVariableResult"][0]["attributeValue"] == "300"
            assert await csms.none(None, 1.0) == []             # B02: nothing but BootNotification while Pending
            r = await csms.send("TriggerMessage", {"requestedMessage": "BootNotification"})
            assert r.frame.payload["status"] == "Accepted"
            boot = await csms.expect("BootNotification", timeout=2)
            assert boot.payload["reason"] == "Triggered" and boots == ["PowerUp", "Triggered"]
            # Accepted now: the held-back status goes out, EVSE 1 occupied
            sts = [(await csms.expect("StatusNotification")).payload for _ in range(3)]
            assert {(s["evseId"], s["connectorStatus"]) for s in sts} >= {(1, "Occupied"), (2, "Available")}
    run(main())


def test_rejected_silent_until_interval_then_retries() -> None:
    async def main() -> None:
        n: list[int] = []

        def boot_reply(p: dict[str, Any]) -> dict[str, Any]:
            n.append(1)
            return {"status": "Rejected" if len(n) == 1 else "Accepted", "currentTime": NOW, "interval": 2}
        async with rig(replies={"BootNotification": boot_reply}) as (_, csms, _srv):
            await csms.expect("BootNotification")
            t0 = asyncio.get_running_loop().time()
            with pytest.raises(asyncio.TimeoutError):           # no answers at all while Rejected
                await csms.send("GetVariables", {"getVariableData": [
                    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}, timeout=0.8)
            await csms.expect("BootNotification", timeout=3)
            assert asyncio.get_running_loop().time() - t0 >= 1.8
            await csms.expect("StatusNotification")
    run(main())


# ---- transactions ----------------------------------------------------------------------------

def test_transaction_201_seqno_id_meter_and_end_on_unplug() -> None:
    async def main() -> None:
        async with rig() as (sim, csms, _):
            await booted(csms)
            started = (await start_tx_201(sim, csms)).payload
            assert started["seqNo"] == 0 and started["triggerReason"] == "Authorized"
            assert started["idToken"] == {"idToken": "TRUCK-0001", "type": "ISO14443"}
            assert started["evse"] == {"id": 1, "connectorId": 1}
            assert started["transactionInfo"]["chargingState"] == "Charging"
            tx_id = started["transactionInfo"]["transactionId"]
            e0 = sampled(started)["Energy.Active.Import.Register"]
            assert e0["context"] == "Transaction.Begin" and e0["unitOfMeasure"] == {"unit": "Wh"}
            u1 = (await csms.expect("TransactionEvent", timeout=3)).payload
            u2 = (await csms.expect("TransactionEvent", timeout=3)).payload
            for i, u in enumerate((u1, u2), start=1):
                assert (u["eventType"], u["seqNo"], u["triggerReason"]) == ("Updated", i, "MeterValuePeriodic")
                assert u["transactionInfo"]["transactionId"] == tx_id
            s1, s2 = sampled(u1), sampled(u2)
            assert set(s1) == {"Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage", "SoC"}
            assert s1["SoC"]["location"] == "EV" and s1["SoC"]["unitOfMeasure"] == {"unit": "Percent"}
            assert s1["Power.Active.Import"]["value"] == pytest.approx(350_000) and s1["Power.Active.Import"]["unitOfMeasure"] == {"unit": "W"}
            assert s2["Energy.Active.Import.Register"]["value"] > s1["Energy.Active.Import.Register"]["value"] > e0["value"]
            assert s2["SoC"]["value"] > s1["SoC"]["value"] > 30
            await sim.perform("unplug", {"evse": 1})
            ended = (await csms.expect("TransactionEvent", where=lambda p: p["eventType"] == "Ended")).payload
            assert ended["seqNo"] == 3 and ended["transactionInfo"]["transactionId"] == tx_id
            assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == ("EVCommunicationLost", "EVDisconnected")
            st = await csms.expect("StatusNotification")
            assert (st.payload["evseId"], st.payload["connectorStatus"]) == (1, "Available")
            assert sim.evses[1].tx is None
    run(main())


def test_token_first_then_cable_starts_with_cable_plugged_in() -> None:
    async def main() -> None:
        async with rig() as (sim, csms, _):
            await booted(csms)
            await sim.perform("present_token", {"id_token": "TRUCK-0002"})
            await csms.expect("Authorize")
            await asyncio.sleep(0.1)
            await sim.perform("plug_in", {"evse": 1})
            started = await csms.expect("TransactionEvent")
            assert started.payload["triggerReason"] == "CablePluggedIn"
            # presenting the same token again stops it (E07 local stop)
            await sim.perform("present_token", {"id_token": "TRUCK-0002"})
            ended = await csms.expect("TransactionEvent", where=lambda p: p["eventType"] == "Ended")
            assert (ended.payload["triggerReason"], ended.payload["transactionInfo"]["stoppedReason"]) == ("StopAuthorized", "Local")
    run(main())


def test_ev_full_suspends_limit_caps_power_and_ev_stop_ends_201() -> None:
    async def main() -> None:
        async with rig() as (sim, csms, _):
            await booted(csms)
            await sim.perform("plug_in", {"evse": 1, "ev": {"soc_percent": 79.0, "target_soc_percent": 80.0}})
            await sim.perform("present_token", {"id_token": "TRUCK-0001"})
            await csms.expect("TransactionEvent")
            await sim.perform("set_limit", {"evse": 1, "limit_kw": 100})
            upd = (await csms.expect("TransactionEvent", timeout=3)).payload
            assert sampled(upd)["Power.Active.Import"]["value"] <= 100_000
            full = (await csms.expect("TransactionEvent", timeout=8,
                                      where=lambda p: p["triggerReason"] == "ChargingStateChanged")).payload
            assert full["transactionInfo"]["chargingState"] == "SuspendedEV"
            assert sampled(full)["SoC"]["value"] == pytest.approx(80.0, abs=0.05)
            await sim.perform("stop_charging", {"evse": 1})
            ended = (await csms.expect("TransactionEvent", where=lambda p: p["eventType"] == "Ended")).payload
            assert ended["transactionInfo"]["stoppedReason"] == "StoppedByEV"
    run(main())


def test_transaction_message_queued_while_offline_is_sent_after_reconnect() -> None:
    async def main() -> None:
        async with rig(reconnect_backoff_s=0.3) as (sim, csms, srv):
            await booted(csms)
            started = (await start_tx_201(sim, csms)).payload
            await csms.conn.close()
            for _ in range(100):                     # bounded: until the station notices
                if sim.conn is None:
                    break
                await asyncio.sleep(0.01)
            assert sim.conn is None
            await sim.perform("unplug", {"evse": 1})
            csms = await reconnect(srv, csms)
            await csms.expect("BootNotification")
            ended = (await csms.expect("TransactionEvent", where=lambda p: p["eventType"] == "Ended")).payload
            assert ended["offline"] is True
            assert ended["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
    run(main())


def test_change_availability_201_and_16() -> None:
    async def main() -> None:
        async with rig() as (sim, csms, _):
            await booted(csms)
            r = await csms.send("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 2}})
            assert r.frame.payload["status"] == "Accepted"
            st = await csms.expect("StatusNotification")
            assert (st.payload["evseId"], st.payload["connectorStatus"]) == (2, "Unavailable")
            r = await csms.send("RequestStartTransaction", {"evseId": 2, "remoteStartId": 1,
                                                            "idToken": {"idToken": "C", "type": "Central"}})
            assert r.frame.payload["status"] == "Rejected"
            await start_tx_201(sim, csms)
            r = await csms.send("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
            assert r.frame.payload["status"] == "Scheduled"
        async with rig("1.6") as (sim, csms, _):
            await booted(csms, "1.6")
            r = await csms.send("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
            assert r.frame.payload["status"] == "Accepted"
            got = {(await csms.expect("StatusNotification")).payload["status"] for _ in range(2)}
            assert got == {"Unavailable"}
    run(main())


@pytest.mark.parametrize("status", ["Invalid", "Blocked", "Unknown"])
def test_authorize_not_accepted_starts_nothing(status: str) -> None:
    async def main() -> None:
        async with rig(replies={"Authorize": {"idTokenInfo": {"status": status}}}) as (sim, csms, _):
            await booted(csms)
            await sim.perform("plug_in", {"evse": 1})
            await sim.perform("present_token", {"id_token": "STRANGER"})
            await csms.expect("Authorize")
            assert await csms.none("TransactionEvent", 1.2) == []
            assert sim.evses[1].tx is None
    run(main())


def test_transaction_16_start_meter_stop() -> None:
    async def main() -> None:
        async with rig("1.6") as (sim, csms, _):
            await booted(csms, "1.6")
            start = (await start_tx_16(sim, csms)).payload
            assert start["connectorId"] == 1 and start["idTag"] == "TRUCK-0001" and isinstance(start["meterStart"], int)
            mv = (await csms.expect("MeterValues", timeout=3)).payload
            assert mv["transactionId"] == 4711 and mv["connectorId"] == 1
            svs = {sv["measurand"]: sv for sv in mv["meterValue"][0]["sampledValue"]}
            assert svs["SoC"]["unit"] == "Percent" and svs["SoC"]["location"] == "EV"
            assert all(isinstance(sv["value"], str) and sv["context"] == "Sample.Periodic" for sv in svs.values())
            assert float(svs["Energy.Active.Import.Register"]["value"]) > start["meterStart"]
            await sim.perform("unplug", {"evse": 1})
            stop = (await csms.expect("StopTransaction")).payload
            assert stop["transactionId"] == 4711 and stop["reason"] == "EVDisconnected" and stop["idTag"] == "TRUCK-0001"
            assert stop["meterStop"] >= start["meterStart"]
            assert (await csms.expect("StatusNotification")).payload["status"] == "Available"
    run(main())


def test_16_start_transaction_refused_id_stops_deauthorized() -> None:
    async def main() -> None:
        replies = {"StartTransaction": {"transactionId": 9, "idTagInfo": {"status": "Invalid"}}}
        async with rig("1.6", replies=replies) as (sim, csms, _):
            await booted(csms, "1.6")
            await sim.perform("plug_in", {"evse": 1})
            await sim.perform("present_token", {"id_token": "TRUCK-0001"})
            await csms.expect("StartTransaction")
            stop = await csms.expect("StopTransaction")
            assert (stop.payload["transactionId"], stop.payload["reason"]) == (9, "DeAuthorized")
            assert (await csms.expect("StatusNotification", where=lambda p: p["connectorId"] == 1)).payload["status"] == "Finishing"
    run(main())


# ---- remote start/stop (F01–F03) ---------------------------------------------------------------

def test_remote_start_stop_201() -> None:
    async def main() -> None:
        async with rig() as (sim, csms, _):
            await booted(csms)
            await sim.perform("plug_in", {"evse": 2, "ev": {"max_power_kw": 3000, "capacity_kwh": 1200}})
            await csms.expect("StatusNotification")
            r = await csms.send("RequestStartTransaction", {"evseId": 2, "remoteStartId": 77,
                                                            "idToken": {"idToken": "CPO-1", "type": "Central"}})
            assert r.frame.payload["status"] == "Accepted"
            started = (await csms.expect("TransactionEvent")).payload
            assert started["triggerReason"] == "RemoteStart" and started["transactionInfo"]["remoteStartId"] == 77
            assert started["evse"]["id"] == 2
            upd = (await csms.expect("TransactionEvent", timeout=3)).payload
            assert sampled(upd)["Power.Active.Import"]["value"] > 2_000_000       # MCS megawatts
            r = await csms.send("RequestStartTransaction", {"evseId": 2, "remoteStartId": 78,
                                                            "idToken": {"idToken": "CPO-1", "type": "Central"}})
            assert r.frame.payload["status"] == "Rejected"                       # EVSE busy
            r = await csms.send("RequestStopTransaction", {"transactionId": "no-such-tx"})
            assert r.frame.payload["status"] == "Rejected"
            tx_id = started["transactionInfo"]["transactionId"]
            r = await csms.send("RequestStopTransaction", {"transactionId": tx_id})
            assert r.frame.payload["status"] == "Accepted"
            ended = (await csms.expect("TransactionEvent", where=lambda p: p["eventType"] == "Ended")).payload
            assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == ("RemoteStop", "Remote")
    run(main())


def test_remote_start_before_plug_waits_for_cable_201() -> None:
    async def main() -> None:
        async with rig() as (sim, csms, _):
            await booted(csms)
            r = await csms.send("RequestStartTransaction", {"remoteStartId": 5, "idToken": {"idToken": "CPO-2", "type": "Central"}})
            assert r.frame.payload["status"] == "Accepted"
            assert await csms.none("TransactionEvent", 0.5) == []
            await sim.perform("plug_in", {"evse": 1})
            started = (await csms.expect("TransactionEvent")).payload
            assert started["triggerReason"] == "CablePluggedIn" and started["transactionInfo"]["remoteStartId"] == 5
    run(main())


def test_remote_start_stop_16() -> None:
    async def main() -> None:
        async with rig("1.6") as (sim, csms, _):
            await booted(csms, "1.6")
            await sim.perform("plug_in", {"evse": 1})
            r = await csms.send("RemoteStartTransaction", {"connectorId": 1, "idTag": "CPO-1"})
            assert r.frame.payload["status"] == "Accepted"
            start = await csms.expect("StartTransaction")
            assert start.payload["idTag"] == "CPO-1"
            assert (await csms.send("RemoteStopTransaction", {"transactionId": 1})).frame.payload["status"] == "Rejected"
            assert (await csms.send("RemoteStopTransaction", {"transactionId": 4711})).frame.payload["status"] == "Accepted"
            stop = await csms.expect("StopTransaction")
            assert stop.payload["reason"] == "Remote"
            assert (await csms.expect("StatusNotification", where=lambda p: p["connectorId"] == 1
                                      and p["status"] != "Charging")).payload["status"] == "Finishing"
    run(main())


# ---- device model / configuration (B05–B07) ----------------------------------------------------

def _gv(comp: str, var: str, inst: str | None = None) -> dict[str, Any]:
    v: dict[str, Any] = {"name": var}
    if inst:
        v["instance"] = inst
    return {"component": {"name": comp}, "variable": v}


def test_get_set_variables_201() -> None:
    async def main() -> None:
        async with rig() as (sim, csms, _):
            await booted(csms)
            r = await csms.send("GetVariables", {"getVariableData": [
                _gv("OCPPCommCtrlr", "HeartbeatInterval"), _gv("SecurityCtrlr", "Identity"),
                _gv("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"), _gv("NoSuchCtrlr", "X"),
                _gv("AuthCtrlr", "NoSuchVariable"), {**_gv("AuthCtrlr", "AuthorizeRemoteStart"), "attributeType": "Target"}]})
            res = r.frame.payload["getVariableResult"]
            assert [x["attributeStatus"] for x in res] == ["Accepted", "Accepted", "Accepted", "UnknownComponent",
                                                            "UnknownVariable", "NotSupportedAttributeType"]
            assert res[0]["attributeValue"] == "300" and res[1]["attributeValue"] == "CH-SIM-001"
            r = await csms.send("SetVariables", {"setVariableData": [
                {**_gv("OCPPCommCtrlr", "HeartbeatInterval"), "attributeValue": "1"},
                {**_gv("SecurityCtrlr", "Identity"), "attributeValue": "OTHER"},
                {**_gv("SampledDataCtrlr", "TxUpdatedInterval"), "attributeValue": "abc"},
                {**_gv("NoSuchCtrlr", "X"), "attributeValue": "1"},
                {**_gv("SampledDataCtrlr", "TxUpdatedMeasurands"), "attributeValue": "Energy.Active.Import.Register,SoC"}]})
            assert [x["attributeStatus"] for x in r.frame.payload["setVariableResult"]] == [
                "Accepted", "Rejected", "Rejected", "UnknownComponent", "Accepted"]
            await csms.expect("Heartbeat", timeout=2)                    # applied immediately
            await csms.expect("Heartbeat", timeout=2)
            await sim.perform("plug_in", {"evse": 1})
            await sim.perform("present_token", {"id_token": "TRUCK-0001"})
            await csms.expect("TransactionEvent")
            upd = (await csms.expect("TransactionEvent", timeout=3)).payload
            assert set(sampled(upd)) == {"Energy.Active.Import.Register", "SoC"}
    run(main())


def test_get_change_configuration_16() -> None:
    async def main() -> None:
        async with rig("1.6") as (_, csms, _srv):
            await booted(csms, "1.6")
            r = await csms.send("GetConfiguration", {"key": ["HeartbeatInterval", "NumberOfConnectors", "Bogus"]})
            keys = {k["key"]: k for k in r.frame.payload["configurationKey"]}
            assert keys["HeartbeatInterval"] == {"key": "HeartbeatInterval", "readonly": False, "value": "300"}
            assert keys["NumberOfConnectors"]["readonly"] is True and keys["NumberOfConnectors"]["value"] == "2"
            assert r.frame.payload["unknownKey"] == ["Bogus"]
            everything = (await csms.send("GetConfiguration", {})).frame.payload["configurationKey"]
            assert {"MeterValueSampleInterval", "AuthorizeRemoteTxRequests", "SupportedFeatureProfiles"} <= {k["key"] for k in everything}
            change = [("HeartbeatInterval", "1", "Accepted"), ("NumberOfConnectors", "5", "Rejected"),
                      ("Bogus", "1", "NotSupported"), ("MeterValueSampleInterval", "-3", "Rejected")]
            for key, value, expected in change:
                r = await csms.send("ChangeConfiguration", {"key": key, "value": value})
                assert r.frame.payload["status"] == expected, key
            await csms.expect("Heartbeat", timeout=2)
    run(main())


# ---- reset (B11/B12) ----------------------------------------------------------------------------

def test_reset_immediate_ends_tx_and_reboots_with_remote_reset_201() -> None:
    async def main() -> None:
        async with rig() as (sim, csms, srv):
            await booted(csms)
            started = (await start_tx_201(sim, csms)).payload
            r = await csms.send("Reset", {"type": "Immediate"})
            assert r.frame.payload["status"] == "Accepted"
            ended = (await csms.expect("TransactionEvent", where=lambda p: p["eventType"] == "Ended")).payload
            assert ended["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
            assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == ("ResetCommand", "ImmediateReset")
            await asyncio.wait_for(csms.closed.wait(), 3)
            csms = await reconnect(srv, csms)
            boot = await csms.expect("BootNotification")
            assert boot.payload["reason"] == "RemoteReset"
            st = [(await csms.expect("StatusNotification")).payload for _ in range(2)]
            assert {(s["evseId"], s["connectorStatus"]) for s in st} == {(1, "Occupied"), (2, "Available")}
            r = await csms.send("Reset", {"type": "Immediate", "evseId": 1})
            assert r.frame.payload["status"] == "Rejected"
    run(main())


def test_reset_on_idle_is_scheduled_until_tx_ends_201() -> None:
    async def main() -> None:
        async with rig() as (sim, csms, srv):
            await booted(csms)
            await start_tx_201(sim, csms)
            assert (await csms.send("Reset", {"type": "OnIdle"})).frame.payload["status"] == "Scheduled"
            assert not csms.closed.is_set()
            await sim.perform("unplug", {"evse": 1})
            await csms.expect("TransactionEvent", where=lambda p: p["eventType"] == "Ended")
            await asyncio.wait_for(csms.closed.wait(), 3)
            csms = await reconnect(srv, csms)
            assert (await csms.expect("BootNotification")).payload["reason"] == "RemoteReset"
    run(main())


def test_reset_hard_16_and_reboot_action() -> None:
    async def main() -> None:
        async with rig("1.6") as (sim, csms, srv):
            await booted(csms, "1.6")
            await start_tx_16(sim, csms)
            assert (await csms.send("Reset", {"type": "Hard"})).frame.payload["status"] == "Accepted"
            stop = await csms.expect("StopTransaction")
            assert stop.payload["reason"] == "HardReset"
            await asyncio.wait_for(csms.closed.wait(), 3)
            csms = await reconnect(srv, csms)
            await booted(csms, "1.6")
            assert await sim.perform("reboot", {}) == {"rebooting": True}      # power cycle
            await asyncio.wait_for(csms.closed.wait(), 3)
            csms = await reconnect(srv, csms)
            await csms.expect("BootNotification")
    run(main())


# ---- trigger (F06, 1.6 Remote Trigger) -------------------------------------------------------------

def test_trigger_message_201() -> None:
    async def main() -> None:
        async with rig() as (sim, csms, _):
            await booted(csms)

            async def trig(payload: dict[str, Any]) -> str:
                return str((await csms.send("TriggerMessage", payload)).frame.payload["status"])
            assert await trig({"requestedMessage": "Heartbeat"}) == "Accepted"
            await csms.expect("Heartbeat", timeout=2)
            assert await trig({"requestedMessage": "StatusNotification", "evse": {"id": 2, "connectorId": 1}}) == "Accepted"
            st = await csms.expect("StatusNotification", timeout=2)
            assert (st.payload["evseId"], st.payload["connectorId"]) == (2, 1)
            assert await trig({"requestedMessage": "MeterValues", "evse": {"id": 1}}) == "Accepted"
            mv = await csms.expect("MeterValues", timeout=2)
            assert mv.payload["evseId"] == 1 and mv.payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
            assert await trig({"requestedMessage": "TransactionEvent"}) == "Rejected"     # no transaction
            assert await trig({"requestedMessage": "BootNotification"}) == "Rejected"     # F06.FR.17 (Accepted)
            assert await trig({"requestedMessage": "LogStatusNotification"}) == "Accepted"      # N01 (logs feature)
            assert (await csms.expect("LogStatusNotification", timeout=2)).payload["status"] == "Idle"
            assert await trig({"requestedMessage": "Heartbeat", "evse": {"id": 9}}) == "Rejected"
            await start_tx_201(sim, csms)
            assert await trig({"requestedMessage": "TransactionEvent", "evse": {"id": 1}}) == "Accepted"
            te = await csms.expect("TransactionEvent", where=lambda p: p["triggerReason"] == "Trigger", timeout=2)
            assert te.payload["eventType"] == "Updated"
    run(main())


def test_trigger_message_16() -> None:
    async def main() -> None:
        async with rig("1.6") as (_, csms, _srv):
            await booted(csms, "1.6")
            for what, action in [("Heartbeat", "Heartbeat"), ("BootNotification", "BootNotification"),
                                 ("DiagnosticsStatusNotification", "DiagnosticsStatusNotification")]:
                assert (await csms.send("TriggerMessage", {"requestedMessage": what})).frame.payload["status"] == "Accepted"
                await csms.expect(action, timeout=2)
            r = await csms.send("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 2})
            assert r.frame.payload["status"] == "Accepted"
            assert (await csms.expect("StatusNotification", timeout=2)).payload["connectorId"] == 2
            r = await csms.send("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 7})
            assert r.frame.payload["status"] == "Rejected"
    run(main())


# ---- RPC framework errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["2.0.1", "1.6"])
def test_rpc_errors(version: str) -> None:
    occ = "OccurenceConstraintViolation"   # both editions (the double-r spelling is OCPP 2.1)

    async def main() -> None:
        async with rig(version) as (_, csms, _srv):
            await booted(csms, version)

            async def err(text: str, uid: str) -> str:
                resp = await csms.send_raw(text, uid)
                assert isinstance(resp.frame, CallError), resp.frame
                return resp.frame.error_code
            uid = new_message_id()
            assert await err(json.dumps([2, uid, "FlyToTheMoon", {}]), uid) == "NotImplemented"
            uid = new_message_id()
            assert await err(json.dumps([2, uid, "Reset", {}]), uid) == occ
            uid = new_message_id()
            assert await err(json.dumps([2, uid, "Reset", {"type": 5}]), uid) == "TypeConstraintViolation"
            uid = new_message_id()
            assert await err(json.dumps([2, uid, "Reset", {"type": "Sometimes"}]), uid) == "PropertyConstraintViolation"
            uid = new_message_id()
            action = "UnlockConnector" if version == "1.6" else "ClearCache"
            assert await err(json.dumps([2, uid, action, {"x": 1} if version == "2.0.1" else {"connectorId": 1, "x": 1}]), uid) in (
                "FormatViolation", "FormationViolation")
            uid = new_message_id()
            expected = "RpcFrameworkError" if version == "2.0.1" else "FormationViolation"
            assert await err(json.dumps([2, uid, "Reset"]), uid) == expected      # not a valid RPC frame
            uid = new_message_id()
            if version == "2.0.1":
                assert await err(json.dumps([7, uid, "Reset", {}]), uid) == "MessageTypeNotSupported"
            with pytest.raises(asyncio.TimeoutError):                              # no id to answer to
                await csms.send_raw("this is not json", new_message_id(), timeout=0.5)
            r = await csms.send("DataTransfer", {"vendorId": "acme"})              # still alive
            assert r.frame.payload["status"] == "UnknownVendorId"
    run(main())


def test_reconnects_and_boots_again_after_csms_closes() -> None:
    async def main() -> None:
        async with rig(reconnect_backoff_s=0.1) as (sim, csms, srv):
            await booted(csms)
            await csms.conn.close()
            await asyncio.wait_for(csms.closed.wait(), 3)
            csms = await reconnect(srv, csms)
            assert (await csms.expect("BootNotification")).payload["reason"] == "PowerUp"
            await asyncio.wait_for(sim.accepted.wait(), 3)
    run(main())


def test_stop_is_bounded_when_csms_unreachable() -> None:
    async def main() -> None:
        sim = StationSimulator(StationSimConfig(csms_url="ws://127.0.0.1:9/ocpp", reconnect_backoff_s=0.05))
        await sim.start()
        await asyncio.sleep(0.3)
        assert not sim.connected.is_set() and "connect" in sim.last_error
        await sim.perform("plug_in", {"evse": 1})       # offline actions still change state
        await asyncio.wait_for(sim.stop(), 3)
    run(main())


def test_basic_auth_password_is_offered() -> None:
    async def main() -> None:
        srv = await OcppServer(versions=("2.0.1",), password_check=lambda sid, pw: pw == "s3cret-pass-123",
                               security=SecurityProfile(1)).start()
        sim = StationSimulator(StationSimConfig(csms_url=srv.url(), password="s3cret-pass-123"))
        await sim.start()
        try:
            acc = await srv.next_connection(5)
            assert acc.station_id == "CH-SIM-001" and not srv.refusals
        finally:
            await sim.stop()
            await srv.stop()
    run(main())


# ---- faults: each one observably breaks its behaviour; the clean simulator passes the same probe -----

Probe = Callable[[StationSimulator, Csms, OcppServer], Awaitable[bool]]
PROBES: dict[str, tuple[str, bool, dict[str, Any], Probe]] = {}


def probe(fault: str, version: str = "2.0.1", boot: bool = True, **rig_kw: Any) -> Callable[[Probe], Probe]:
    """Register `fn` as the probe of `fault`: True = the station behaved as the spec says.
    boot=True lets the station boot (Accepted, statuses) before the probe runs."""
    def deco(fn: Probe) -> Probe:
        PROBES[fault] = (version, boot, rig_kw, fn)
        return fn
    return deco


@probe("boot_ignores_interval", boot_interval=1)
async def _p_boot_interval(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    return bool(await csms.none("Heartbeat", 2.3))


def _boot_then(status: str, interval: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda p: {"status": status, "currentTime": NOW, "interval": interval}


@probe("pending_sends_status", boot=False, replies={"BootNotification": _boot_then("Pending", 10)})
async def _p_pending(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await csms.expect("BootNotification")
    return not await csms.none(None, 1.0)


@probe("rejected_retries_immediately", boot=False, replies={"BootNotification": _boot_then("Rejected", 3)})
async def _p_rejected(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await csms.expect("BootNotification")
    return not await csms.none("BootNotification", 1.5)


@probe("no_status_after_boot", boot=False)
async def _p_status(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await csms.expect("BootNotification")
    return len(await csms.none("StatusNotification", 1.0)) == 2


@probe("invalid_status_enum", "1.6")
async def _p_enum(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await csms.none(None, 0.8)
    return not any("schema violation" in e.note for e in srv.trace.entries if e.direction == "rx")


@probe("garbage_heartbeat", boot_interval=1)
async def _p_garbage(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    beats = await csms.none("Heartbeat", 1.6)
    return bool(beats) and not csms.garbage


@probe("authorize_invalid_still_starts", replies={"Authorize": {"idTokenInfo": {"status": "Invalid"}}})
async def _p_invalid(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await sim.perform("plug_in", {"evse": 1})
    await sim.perform("present_token", {"id_token": "STRANGER"})
    await csms.expect("Authorize")
    return not await csms.none("TransactionEvent", 0.8)


@probe("tx_seqno_skips")
async def _p_seqno(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await start_tx_201(sim, csms)
    return (await csms.expect("TransactionEvent", timeout=3)).payload["seqNo"] == 1


@probe("tx_id_changes")
async def _p_txid(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    tx_id = (await start_tx_201(sim, csms)).payload["transactionInfo"]["transactionId"]
    return bool((await csms.expect("TransactionEvent", timeout=3)).payload["transactionInfo"]["transactionId"] == tx_id)


@probe("no_ended_on_unplug")
async def _p_ended(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await start_tx_201(sim, csms)
    await sim.perform("unplug", {"evse": 1})
    return any(c.payload["eventType"] == "Ended" for c in await csms.none("TransactionEvent", 0.8))


@probe("no_stop_transaction_on_unplug", "1.6")
async def _p_stop16(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await start_tx_16(sim, csms)
    await sim.perform("unplug", {"evse": 1})
    return bool(await csms.none("StopTransaction", 0.8))


@probe("drops_connection_in_tx")
async def _p_drop(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await start_tx_201(sim, csms)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(csms.closed.wait(), 2.0)
    return not csms.closed.is_set()


@probe("meter_missing_soc")
async def _p_soc(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await start_tx_201(sim, csms)
    return "SoC" in sampled((await csms.expect("TransactionEvent", timeout=3)).payload)


@probe("meter_power_in_kw", "1.6")
async def _p_kw(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await start_tx_16(sim, csms)
    mv = (await csms.expect("MeterValues", timeout=3)).payload
    power = next(sv for sv in mv["meterValue"][0]["sampledValue"] if sv["measurand"] == "Power.Active.Import")
    return power["unit"] == "W" and float(power["value"]) > 100_000


@probe("meter_energy_decreases")
async def _p_energy(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    start = sampled((await start_tx_201(sim, csms)).payload)["Energy.Active.Import.Register"]["value"]
    upd = sampled((await csms.expect("TransactionEvent", timeout=3)).payload)
    return bool(upd["Energy.Active.Import.Register"]["value"] >= start)


@probe("remote_start_ignored")
async def _p_rstart(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await sim.perform("plug_in", {"evse": 1})
    r = await csms.send("RequestStartTransaction", {"remoteStartId": 1, "idToken": {"idToken": "C", "type": "Central"}})
    assert r.frame.payload["status"] == "Accepted"
    return bool(await csms.none("TransactionEvent", 1.0))


@probe("remote_stop_ignored", "1.6")
async def _p_rstop(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await start_tx_16(sim, csms)
    assert (await csms.send("RemoteStopTransaction", {"transactionId": 4711})).frame.payload["status"] == "Accepted"
    return bool(await csms.none("StopTransaction", 1.0))


@probe("set_variable_not_applied")
async def _p_setvar(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    item = _gv("SampledDataCtrlr", "TxUpdatedInterval")
    r = await csms.send("SetVariables", {"setVariableData": [{**item, "attributeValue": "7"}]})
    assert r.frame.payload["setVariableResult"][0]["attributeStatus"] == "Accepted"
    got = await csms.send("GetVariables", {"getVariableData": [item]})
    return bool(got.frame.payload["getVariableResult"][0]["attributeValue"] == "7")


@probe("unknown_config_key_accepted", "1.6")
async def _p_unknown_key(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    r = await csms.send("ChangeConfiguration", {"key": "NoSuchKey", "value": "1"})
    return bool(r.frame.payload["status"] == "NotSupported")


@probe("reset_no_reboot")
async def _p_reset(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    assert (await csms.send("Reset", {"type": "Immediate"})).frame.payload["status"] == "Accepted"
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(csms.closed.wait(), 2.0)
    return csms.closed.is_set()


@probe("trigger_ignored", "1.6")
async def _p_trigger(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    assert (await csms.send("TriggerMessage", {"requestedMessage": "Heartbeat"})).frame.payload["status"] == "Accepted"
    return bool(await csms.none("Heartbeat", 1.0))


@probe("unknown_action_callresult", "1.6")
async def _p_unknown_action(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    uid = new_message_id()
    resp = await csms.send_raw(json.dumps([2, uid, "Teleport", {}]), uid)
    return isinstance(resp.frame, CallError) and resp.frame.error_code == "NotImplemented"


@probe("bad_payload_accepted")
async def _p_bad_payload(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    uid = new_message_id()
    resp = await csms.send_raw(json.dumps([2, uid, "GetVariables", {"getVariableData": "all"}]), uid)
    return isinstance(resp.frame, CallError)


@probe("hangs_on_call")
async def _p_hang(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    try:
        await csms.send("ClearCache", {}, timeout=1.0)
        return True
    except asyncio.TimeoutError:
        return False


@probe("wrong_response_id", "1.6")
async def _p_wrong_id(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    try:
        r = await csms.send("ClearCache", {}, timeout=1.0)
        return isinstance(r.frame, CallResult)
    except asyncio.TimeoutError:
        return False


@probe("change_availability_ignored")
async def _p_availability(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    r = await csms.send("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}})
    assert r.frame.payload["status"] == "Accepted"
    got = await csms.none("StatusNotification", 0.8)
    return any(c.payload["connectorStatus"] == "Unavailable" and c.payload["evseId"] == 1 for c in got)


@probe("local_stop_ignored")
async def _p_local_stop(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    started = await start_tx_201(sim, csms)
    token = started.payload["idToken"]["idToken"]
    await sim.perform("present_token", {"id_token": token, "evse": 1})
    return any(c.payload["eventType"] == "Ended" and c.payload["triggerReason"] == "StopAuthorized"
               for c in await csms.none("TransactionEvent", 0.8))


@probe("unlock_always_unlocked")
async def _p_unlock(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    r = await csms.send("UnlockConnector", {"evseId": 1, "connectorId": 99})
    return bool(r.frame.payload["status"] == "UnknownConnector")


@probe("clear_cache_rejected")
async def _p_clear_cache(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    return bool((await csms.send("ClearCache", {})).frame.payload["status"] == "Accepted")


@probe("notify_report_missing")
async def _p_notify_report(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    r = await csms.send("GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"})
    assert r.frame.payload["status"] == "Accepted"
    return any(c.payload["requestId"] == 7 for c in await csms.none("NotifyReport", 0.8))


def test_every_station_fault_has_a_probe() -> None:
    # smart charging: tests/test_sim_smart.py; TLS: tests/test_tls.py; functional blocks: tests/test_feature_*.py
    # dual stack (offers_only_*): tests/test_dual_stack.py
    others = {*SMART_CHARGING_FAULTS, *STATION_TLS_FAULTS, *features.station_faults(), "offers_only_201", "offers_only_16"}
    assert set(PROBES) == set(STATION_FAULTS) - others
    for name, (version, _, _, _) in PROBES.items():
        assert version in STATION_FAULTS[name].versions, name


@pytest.mark.parametrize("fault", sorted(PROBES))
def test_fault_breaks_exactly_its_behaviour(fault: str) -> None:
    version, boot, rig_kw, fn = PROBES[fault]

    async def one(f: str | None) -> bool:
        async with rig(version, fault=f, check_schema=False, **rig_kw) as (sim, csms, srv):
            if boot:
                await booted(csms, version)
            return await fn(sim, csms, srv)

    async def main() -> tuple[bool, bool]:
        clean, broken = await asyncio.gather(one(None), one(fault))
        return clean, broken
    clean, broken = run(main())
    assert clean, f"clean simulator fails the probe for {fault}"
    assert not broken, f"fault {fault} does not change the observed behaviour"


# ---- OCPP 1.6 Core operations: availability, unlock, local stop, cache, data transfer -----------

@probe("change_availability_ignored_16", "1.6")
async def _p_avail16(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    r = await csms.send("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert r.frame.payload["status"] == "Accepted"
    return any(c.payload["status"] == "Unavailable" for c in await csms.none("StatusNotification", 0.8))


@probe("scheduled_availability_forgotten", "1.6")
async def _p_sched16(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await start_tx_16(sim, csms)
    r = await csms.send("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert r.frame.payload["status"] == "Scheduled"
    await sim.perform("unplug", {"evse": 1})
    return any(c.payload["status"] == "Unavailable" for c in await csms.none("StatusNotification", 0.8))


@probe("unlock_unknown_connector_unlocked", "1.6")
async def _p_unlock_unknown(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    return bool((await csms.send("UnlockConnector", {"connectorId": 9})).frame.payload["status"] == "NotSupported")


@probe("unlock_keeps_transaction", "1.6")
async def _p_unlock_tx(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await start_tx_16(sim, csms)
    assert (await csms.send("UnlockConnector", {"connectorId": 1})).frame.payload["status"] == "Unlocked"
    return any(c.payload.get("reason") == "UnlockCommand" for c in await csms.none("StopTransaction", 0.8))


@probe("local_stop_ignored_16", "1.6")
async def _p_local_stop16(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await start_tx_16(sim, csms)
    await sim.perform("present_token", {"id_token": "TRUCK-0001"})
    return any(c.payload.get("reason") == "Local" for c in await csms.none("StopTransaction", 0.8))


@probe("clear_cache_rejected_16", "1.6")
async def _p_clear_cache16(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    return bool((await csms.send("ClearCache", {})).frame.payload["status"] == "Accepted")


@probe("data_transfer_accepts_unknown_vendor")
async def _p_data_transfer201(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    r = await csms.send("DataTransfer", {"vendorId": "org.example.nobody"})
    return isinstance(r.frame, CallResult) and r.frame.payload["status"] == "UnknownVendorId"


@probe("data_transfer_drops_message_id", replies={"DataTransfer": {"status": "UnknownVendorId"}})
async def _p_data_transfer_out(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    await sim.perform("data_transfer", {"vendor_id": "com.example.depot", "message_id": "TruckId"})
    return (await csms.expect("DataTransfer")).payload.get("messageId") == "TruckId"


@probe("data_transfer_not_implemented", "1.6")
async def _p_data_transfer16(sim: StationSimulator, csms: Csms, srv: OcppServer) -> bool:
    r = await csms.send("DataTransfer", {"vendorId": "org.example.nobody"})
    return isinstance(r.frame, CallResult) and r.frame.payload["status"] == "UnknownVendorId"
