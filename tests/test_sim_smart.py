"""Smart charging of the reference station simulator (harness/sim/smart_charging.py).

Most tests drive the front ends' handlers directly on a simulator that is not connected
(no network, no waiting); two run the whole wire path over loopback through the hand-played
CSMS of test_sim_station (schema-checked on exit). Each smart-charging fault has a probe
that the clean simulator passes and the faulty one fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from harness.ocpp import schemas
from harness.sim.api import StationSimConfig
from harness.sim.evse import Authorization
from harness.sim.faults import SMART_CHARGING_FAULTS, STATION_FAULTS
from harness.sim.smart_charging import SUPPLY_PHASES, SUPPLY_VOLTAGE_V
from harness.sim.station import StationSimulator
from harness.smart.oracle import composite_schedule
from harness.smart.schedule import compare
from test_sim_station import booted, rig

EV_MAX_W = 350_000.0          # the default truck (EvModel.max_power_kw)
EVSE1_W = 400_000.0           # EVSE 1 rating (EvseConfig default)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(seconds: float) -> str:
    return iso(datetime.now(timezone.utc) - timedelta(seconds=seconds))


def run(coro: Awaitable[Any], timeout: float = 15.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))   # type: ignore[arg-type]


# ---- profiles ---------------------------------------------------------------------------

def p201(pid: int, purpose: str = "TxDefaultProfile", limit: float = 100_000, *, level: int = 0, unit: str = "W",
         kind: str = "Absolute", periods: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    schedule: dict[str, Any] = {"id": 1, "chargingRateUnit": unit,
                                "chargingSchedulePeriod": periods or [{"startPeriod": 0, "limit": limit}]}
    if kind != "Relative":
        schedule["startSchedule"] = extra.pop("start", ago(2))
    if "duration" in extra:
        schedule["duration"] = extra.pop("duration")
    return {"id": pid, "stackLevel": level, "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
            "chargingSchedule": [schedule], **extra}


def p16(pid: int, purpose: str = "TxDefaultProfile", limit: float = 100_000, *, level: int = 0, unit: str = "W",
        kind: str = "Absolute", **extra: Any) -> dict[str, Any]:
    schedule: dict[str, Any] = {"chargingRateUnit": unit, "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
    if kind != "Relative":
        schedule["startSchedule"] = extra.pop("start", ago(2))
    return {"chargingProfileId": pid, "stackLevel": level, "chargingProfilePurpose": purpose,
            "chargingProfileKind": kind, "chargingSchedule": schedule, **extra}


# ---- a simulator driven through its handlers, no connection --------------------------------

class Bench:
    """A station simulator whose CSMS-initiated handlers are called directly."""

    def __init__(self, sim: StationSimulator):
        self.sim = sim

    @property
    def version(self) -> str:
        return self.sim.version

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        assert schemas.validate(self.version, action, "request", payload) is None, payload
        reply = await self.sim.front.handlers[action](payload)
        violation = schemas.validate(self.version, action, "response", reply.payload)
        assert violation is None, f"{action} response invalid: {violation}: {reply.payload}"
        if reply.after is not None:
            await reply.after()
        return reply.payload

    async def set(self, target: int, profile: dict[str, Any]) -> str:
        if self.version == "1.6":
            return str((await self.call("SetChargingProfile", {"connectorId": target, "csChargingProfiles": profile}))["status"])
        return str((await self.call("SetChargingProfile", {"evseId": target, "chargingProfile": profile}))["status"])

    async def composite(self, target: int, duration: int = 300, unit: str | None = "W") -> dict[str, Any]:
        key = "connectorId" if self.version == "1.6" else "evseId"
        payload: dict[str, Any] = {key: target, "duration": duration}
        if unit:
            payload["chargingRateUnit"] = unit
        return await self.call("GetCompositeSchedule", payload)

    async def first_limit(self, target: int = 1, unit: str = "W") -> float:
        resp = await self.composite(target, unit=unit)
        inner = resp["chargingSchedule" if self.version == "1.6" else "schedule"]
        return float(inner["chargingSchedulePeriod"][0]["limit"])

    def queued(self, action: str) -> list[dict[str, Any]]:
        return [o.payload for o in self.sim._outbox if o.action == action]

    async def start_tx(self, evse_id: int = 1, tx16: int = 4711) -> str:
        """Plug in and authorize: a transaction starts (1.6: StartTransaction answered with `tx16`)."""
        await self.sim.perform("plug_in", {"evse": evse_id})
        evse = self.sim.evse(evse_id)
        if self.version == "1.6":
            self.sim.front.authorize(evse, Authorization("TRUCK", "ISO14443", self.sim.now()))
            self.answer("StartTransaction", {"transactionId": tx16, "idTagInfo": {"status": "Accepted"}})
            for _ in range(50):                     # bounded: _started runs on the next loop turns
                if evse.tx is not None and evse.tx.cs16_id is not None:
                    break
                await asyncio.sleep(0.01)
        else:
            self.sim.front.authorize(evse, Authorization("TRUCK", "ISO14443", self.sim.now()), "Authorized")
        assert evse.tx is not None
        return evse.tx.tx_id

    def answer(self, action: str, payload: dict[str, Any]) -> None:
        for o in self.sim._outbox:
            if o.action == action and not o.future.done():
                o.future.set_result(payload)
                return
        raise AssertionError(f"no {action} queued")

    def power_w(self, evse_id: int = 1) -> float:
        return self.sim.evse(evse_id).sample(self.sim.now(), self.sim.time_scale).power_w


@contextlib.asynccontextmanager
async def bench(version: str = "2.0.1", fault: str | None = None) -> AsyncIterator[Bench]:
    sim = StationSimulator(StationSimConfig(versions=(version,)), fault=fault)
    try:
        yield Bench(sim)
    finally:
        await asyncio.wait_for(sim.stop(), 5)


def oracle_diff(b: Bench, response: dict[str, Any], profiles: list[Any], target: int, *, unit: str | None = "W",
                duration: int = 300, tx: str | None = None) -> list[str]:
    expected = composite_schedule(profiles, version=b.version, evse_id=target, start=datetime.now(timezone.utc),  # type: ignore[arg-type]
                                  duration_s=duration, unit=unit, transaction_id=tx,  # type: ignore[arg-type]
                                  max_limit=b.sim.smart.rating_w(target), max_limit_unit="W")
    return compare(expected, response)


# ---- 2.0.1: installing, validating, reporting ------------------------------------------------

def test_201_tx_default_accepted_reported_and_composed() -> None:
    async def main() -> None:
        async with bench() as b:
            prof = p201(1, periods=[{"startPeriod": 0, "limit": 100}, {"startPeriod": 60, "limit": 150}], unit="A")
            assert await b.set(1, prof) == "Accepted"
            resp = await b.composite(1, unit="W")
            assert oracle_diff(b, resp, [{"evseId": 1, "chargingProfile": prof}], 1) == []
            assert resp["schedule"]["chargingSchedulePeriod"][0]["limit"] == 100 * SUPPLY_VOLTAGE_V * SUPPLY_PHASES
            got = await b.call("GetChargingProfiles", {"requestId": 9, "evseId": 1, "chargingProfile": {}})
            assert got == {"status": "Accepted"}
            assert b.queued("ReportChargingProfiles") == [
                {"requestId": 9, "chargingLimitSource": "CSO", "evseId": 1, "chargingProfile": [prof]}]
            none = await b.call("GetChargingProfiles", {"requestId": 10, "evseId": 2, "chargingProfile": {}})
            assert none == {"status": "NoProfiles"}
    run(main())


def test_201_report_selects_and_splits_by_evse() -> None:
    async def main() -> None:
        async with bench() as b:
            assert await b.set(0, p201(1, "ChargingStationMaxProfile", 300_000)) == "Accepted"
            assert await b.set(1, p201(2, level=1)) == "Accepted"
            assert await b.set(2, p201(3, level=2)) == "Accepted"
            assert await b.call("GetChargingProfiles", {"requestId": 1, "chargingProfile": {}}) == {"status": "Accepted"}
            reports = b.queued("ReportChargingProfiles")
            assert [(r["evseId"], [p["id"] for p in r["chargingProfile"]], r.get("tbc", False)) for r in reports] == [
                (0, [1], True), (1, [2], True), (2, [3], False)]
            b.sim._outbox.clear()
            await b.call("GetChargingProfiles", {"requestId": 2, "chargingProfile": {"stackLevel": 2}})
            assert [r["evseId"] for r in b.queued("ReportChargingProfiles")] == [2]
            b.sim._outbox.clear()
            await b.call("GetChargingProfiles", {"requestId": 3, "chargingProfile": {"chargingProfileId": [1, 3]}})
            assert [[p["id"] for p in r["chargingProfile"]] for r in b.queued("ReportChargingProfiles")] == [[1], [3]]
            assert (await b.call("GetChargingProfiles", {"requestId": 4, "chargingProfile": {
                "chargingLimitSource": ["EMS"]}}))["status"] == "NoProfiles"
    run(main())


@pytest.mark.parametrize("target, profile, reason", [
    (9, p201(1), "UnknownEvse"),                                                   # TC_K_14
    (1, p201(1, "TxProfile", transactionId="T-1"), "TxNotFound"),                  # K01.FR.09
    (1, p201(1, "TxProfile"), "InvalidProfile"),                                   # K01.FR.03
    (0, p201(1, "TxProfile", transactionId="T-1"), "InvalidProfile"),              # K01.FR.16
    (1, p201(1, "ChargingStationMaxProfile"), "InvalidProfile"),                   # station max on EVSE 0 only
    (1, p201(1, periods=[{"startPeriod": 5, "limit": 10}]), "InvalidProfile"),     # K01.FR.31
    (1, p201(1, level=99), "InvalidStackLevel"),
    (1, p201(1, periods=[{"startPeriod": i * 10, "limit": 10} for i in range(30)]), "InvalidSchedule"),
])
def test_201_rejections(target: int, profile: dict[str, Any], reason: str) -> None:
    async def main() -> None:
        async with bench() as b:
            resp = await b.call("SetChargingProfile", {"evseId": target, "chargingProfile": profile})
            assert resp["status"] == "Rejected" and resp["statusInfo"]["reasonCode"] == reason, resp
            assert b.sim.smart.installed == []
    run(main())


def test_201_same_stack_level_and_purpose_rejected_unless_validity_apart() -> None:
    async def main() -> None:
        async with bench() as b:
            assert await b.set(1, p201(1, level=3)) == "Accepted"
            resp = await b.call("SetChargingProfile", {"evseId": 1, "chargingProfile": p201(2, level=3)})
            assert resp["status"] == "Rejected" and resp["statusInfo"]["reasonCode"] == "DuplicateProfile"   # K01.FR.06
            # a TxDefaultProfile on EVSE 0 with the level of one on an EVSE (K01.FR.52)
            assert await b.set(0, p201(3, level=3)) == "Rejected"
            # same id: replaces (K01.FR.05), even with another limit
            assert await b.set(1, p201(1, level=3, limit=55_000)) == "Accepted"
            assert [i.profile.schedules[0].periods[0].limit for i in b.sim.smart.installed] == [55_000]
            # same level, validity apart: both may stay
            now = datetime.now(timezone.utc)
            a = p201(10, level=5, validFrom=iso(now - timedelta(hours=2)), validTo=iso(now - timedelta(hours=1)))
            c = p201(11, level=5, validFrom=iso(now - timedelta(minutes=1)), validTo=iso(now + timedelta(hours=1)))
            assert [await b.set(1, a), await b.set(1, c)] == ["Accepted", "Accepted"]
    run(main())


def test_201_composite_unknown_evse_rejected_and_evse0_is_station_wide() -> None:
    async def main() -> None:
        async with bench() as b:
            assert (await b.composite(7))["status"] == "Rejected"
            assert await b.set(0, p201(1, "ChargingStationMaxProfile", 500_000)) == "Accepted"
            assert await b.set(1, p201(2, limit=90_000)) == "Accepted"
            assert await b.first_limit(0) == 500_000          # a TxDefaultProfile is no grid total (K08.FR.03)
            assert await b.first_limit(1) == 90_000
            assert await b.first_limit(2) == 500_000          # the MCS EVSE: only the station max limits it
            empty = await b.composite(1, unit=None)           # nothing asked: the profiles' unit
            assert empty["schedule"]["chargingRateUnit"] == "W"
    run(main())


def test_201_clear_by_id_and_criteria() -> None:
    async def main() -> None:
        async with bench() as b:
            for pid, target, level in ((1, 1, 0), (2, 1, 1), (3, 2, 1)):
                assert await b.set(target, p201(pid, level=level)) == "Accepted"
            assert (await b.call("ClearChargingProfile", {"chargingProfileId": 2}))["status"] == "Accepted"
            assert (await b.call("ClearChargingProfile", {"chargingProfileId": 2}))["status"] == "Unknown"
            crit = {"chargingProfileCriteria": {"stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile"}}
            assert (await b.call("ClearChargingProfile", crit))["status"] == "Accepted"
            assert [i.profile.id for i in b.sim.smart.installed] == [1]
            assert (await b.call("ClearChargingProfile", {"chargingProfileCriteria": {"evseId": 1}}))["status"] == "Accepted"
            assert (await b.call("ClearChargingProfile", {}))["status"] == "Unknown"
    run(main())


def test_201_device_model_announces_smart_charging() -> None:
    async def main() -> None:
        async with bench() as b:
            got = await b.call("GetVariables", {"getVariableData": [
                {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": n}} for n in ("Enabled", "RateUnit")]})
            assert [r["attributeValue"] for r in got["getVariableResult"]] == ["true", "A,W"]
    run(main())


# ---- 2.0.1: transactions and power ----------------------------------------------------------

def test_201_tx_profile_limits_power_and_dies_with_the_transaction() -> None:
    async def main() -> None:
        async with bench() as b:
            tx = await b.start_tx(1)
            assert b.power_w() == EV_MAX_W
            assert await b.set(1, p201(1, "TxProfile", 60_000, transactionId="someone-else")) == "Rejected"   # TC_K_16
            assert await b.set(1, p201(1, "TxProfile", 60_000, transactionId=tx)) == "Accepted"
            assert b.power_w() == 60_000
            resp = await b.composite(1)
            assert oracle_diff(b, resp, [{"evseId": 1, "chargingProfile": p201(1, "TxProfile", 60_000, transactionId=tx)}],
                               1, tx=tx) == []
            b.sim.front.end_tx(b.sim.evse(1), "RemoteStop", "Remote", "EVConnected")
            assert b.sim.smart.installed == []                  # a TxProfile lives as long as its transaction
    run(main())


def test_201_limit_in_amps_applied_via_supply_voltage_and_cleared() -> None:
    async def main() -> None:
        async with bench() as b:
            await b.start_tx(1)
            assert await b.set(1, p201(1, limit=50, unit="A")) == "Accepted"
            assert b.power_w() == pytest.approx(50 * SUPPLY_VOLTAGE_V * SUPPLY_PHASES)
            sample = dict((m, v) for m, v, _, _ in b.sim.readings(b.sim.evse(1), ["Power.Active.Import"], "Sample.Periodic"))
            assert sample["Power.Active.Import"] == pytest.approx(34_500)
            assert (await b.call("ClearChargingProfile", {"chargingProfileId": 1}))["status"] == "Accepted"
            assert b.power_w() == EV_MAX_W
    run(main())


def test_201_profile_limit_and_external_limit_both_cap() -> None:
    async def main() -> None:
        async with bench() as b:
            await b.start_tx(1)
            assert await b.set(1, p201(1, limit=100_000)) == "Accepted"
            await b.sim.perform("set_limit", {"evse": 1, "limit_kw": 80})
            assert b.power_w() == 80_000
            await b.sim.perform("set_limit", {"evse": 1, "limit_kw": None})
            assert b.power_w() == 100_000
    run(main())


def test_201_station_max_shared_between_drawing_evses() -> None:
    async def main() -> None:
        async with bench() as b:
            assert await b.set(0, p201(1, "ChargingStationMaxProfile", 300_000)) == "Accepted"
            await b.start_tx(1)
            assert b.power_w(1) == 300_000
            await b.start_tx(2)
            assert (b.power_w(1), b.power_w(2)) == (150_000, 150_000)
    run(main())


def test_201_schedule_period_change_reaches_the_power() -> None:
    async def main() -> None:
        async with bench() as b:
            await b.start_tx(1)
            periods = [{"startPeriod": 0, "limit": 50_000}, {"startPeriod": 3, "limit": 120_000}]
            assert await b.set(1, p201(1, periods=periods, start=ago(2))) == "Accepted"
            assert b.power_w() == 50_000
            for _ in range(40):                         # bounded: the next period starts within ~1 s
                if b.power_w() == 120_000:
                    break
                await asyncio.sleep(0.1)
            assert b.power_w() == 120_000
    run(main())


def test_201_remote_start_profile_installed_with_the_transaction() -> None:
    async def main() -> None:
        async with bench() as b:
            b.sim.registration = "Accepted"
            await b.sim.perform("plug_in", {"evse": 1})
            wrong = {"idToken": {"idToken": "C", "type": "Central"}, "remoteStartId": 1, "evseId": 1,
                     "chargingProfile": p201(1, "TxDefaultProfile", kind="Relative")}
            resp = await b.call("RequestStartTransaction", wrong)
            assert resp["status"] == "Rejected" and b.sim.evse(1).tx is None          # K05: a TxProfile only
            good = {**wrong, "chargingProfile": p201(2, "TxProfile", 40_000, kind="Relative")}
            assert (await b.call("RequestStartTransaction", good))["status"] == "Accepted"
            assert b.sim.evse(1).tx is not None
            assert [i.profile.id for i in b.sim.smart.installed] == [2]
            assert b.power_w() == 40_000
    run(main())


def test_201_profiles_survive_a_reboot() -> None:
    async def main() -> None:
        async with bench() as b:
            assert await b.set(1, p201(1)) == "Accepted"
            await b.sim.perform("reboot", {})
            assert [i.profile.id for i in b.sim.smart.installed] == [1]
    run(main())


# ---- 1.6 --------------------------------------------------------------------------------------

def test_16_replace_by_stack_level_and_purpose_and_composite() -> None:
    async def main() -> None:
        async with bench("1.6") as b:
            assert await b.set(1, p16(1, limit=200_000)) == "Accepted"
            assert await b.set(1, p16(2, limit=90_000)) == "Accepted"      # §3.13.2: same level+purpose replaces
            assert [i.profile.id for i in b.sim.smart.installed] == [2]
            assert await b.set(0, p16(3, "ChargePointMaxProfile", 80_000)) == "Accepted"
            resp = await b.composite(1)
            assert resp["connectorId"] == 1
            profiles = [{"connectorId": 1, "csChargingProfiles": p16(2, limit=90_000)},
                        {"connectorId": 0, "csChargingProfiles": p16(3, "ChargePointMaxProfile", 80_000)}]
            assert oracle_diff(b, resp, profiles, 1) == []
            assert (await b.composite(5))["status"] == "Rejected"
            assert await b.set(5, p16(4)) == "Rejected"
            assert await b.set(1, p16(5, "TxProfile", transactionId=1)) == "Rejected"   # §5.16: no transaction
    run(main())


def test_16_clear_fields_and_config_keys() -> None:
    async def main() -> None:
        async with bench("1.6") as b:
            for pid, cid, level in ((1, 1, 0), (2, 1, 1), (3, 2, 1)):
                assert await b.set(cid, p16(pid, level=level)) == "Accepted"
            assert (await b.call("ClearChargingProfile", {"connectorId": 2}))["status"] == "Accepted"
            assert (await b.call("ClearChargingProfile", {"id": 3}))["status"] == "Unknown"
            assert (await b.call("ClearChargingProfile", {"stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile"})
                    )["status"] == "Accepted"
            assert [i.profile.id for i in b.sim.smart.installed] == [1]
            cfg = await b.call("GetConfiguration", {"key": ["SupportedFeatureProfiles", "ChargeProfileMaxStackLevel"]})
            values = {k["key"]: k["value"] for k in cfg["configurationKey"]}
            assert "SmartCharging" in values["SupportedFeatureProfiles"].split(",")
            assert values["ChargeProfileMaxStackLevel"] == "8"
    run(main())


def test_16_tx_profile_for_the_transaction_and_remote_start_profile() -> None:
    async def main() -> None:
        async with bench("1.6") as b:
            await b.start_tx(1, tx16=77)
            assert await b.set(1, p16(1, "TxProfile", 45_000, transactionId=78)) == "Rejected"
            assert await b.set(1, p16(1, "TxProfile", 45_000, transactionId=77)) == "Accepted"
            assert b.power_w(1) == 45_000
            b.sim.front.stop_tx(b.sim.evse(1), "Remote")
            assert b.sim.smart.installed == []
            b.sim.registration = "Accepted"
            await b.sim.perform("plug_in", {"evse": 2})
            bad = {"connectorId": 2, "idTag": "X", "chargingProfile": p16(2, "TxDefaultProfile", kind="Relative")}
            assert (await b.call("RemoteStartTransaction", bad))["status"] == "Rejected"     # OCTT TC_060_CS
            good = {**bad, "chargingProfile": p16(3, "TxProfile", 30_000, kind="Relative")}
            assert (await b.call("RemoteStartTransaction", good))["status"] == "Accepted"
            assert b.sim.evse(2).tx is not None and b.power_w(2) == 30_000
    run(main())


# ---- the wire path over loopback --------------------------------------------------------------

def test_wire_201_report_composite_and_limited_meter_values() -> None:
    async def main() -> None:
        async with rig("2.0.1", replies={"ReportChargingProfiles": {}}) as (sim, csms, srv):
            await booted(csms)
            prof = p201(1, limit=70_000)
            r = await csms.send("SetChargingProfile", {"evseId": 1, "chargingProfile": prof})
            assert r.frame.payload == {"status": "Accepted"}
            r = await csms.send("GetChargingProfiles", {"requestId": 5, "chargingProfile": {}})
            assert r.frame.payload == {"status": "Accepted"}
            report = await csms.expect("ReportChargingProfiles")
            assert report.payload["chargingProfile"] == [prof]
            r = await csms.send("GetCompositeSchedule", {"evseId": 1, "duration": 600, "chargingRateUnit": "A"})
            assert compare(composite_schedule([{"evseId": 1, "chargingProfile": prof}], version="2.0.1", evse_id=1,
                                              start=datetime.now(timezone.utc), duration_s=600, unit="A"),
                           r.frame.payload) == []
            await sim.perform("plug_in", {"evse": 1})
            await sim.perform("present_token", {"id_token": "TRUCK-0001", "evse": 1})
            upd = await csms.expect("TransactionEvent", where=lambda p: p["eventType"] == "Updated")
            power = [s["value"] for s in upd.payload["meterValue"][0]["sampledValue"]
                     if s["measurand"] == "Power.Active.Import"]
            assert power == [70_000]
    run(main())


def test_wire_16_remote_start_with_profile_limits_meter_values() -> None:
    async def main() -> None:
        async with rig("1.6") as (sim, csms, srv):
            await booted(csms, "1.6")
            await sim.perform("plug_in", {"evse": 1})
            profile = p16(1, "TxProfile", 33_000, kind="Relative")
            r = await csms.send("RemoteStartTransaction", {"connectorId": 1, "idTag": "TRUCK-0001",
                                                           "chargingProfile": profile})
            assert r.frame.payload == {"status": "Accepted"}
            await csms.expect("StartTransaction")
            mv = await csms.expect("MeterValues")
            power = [s["value"] for s in mv.payload["meterValue"][0]["sampledValue"]
                     if s.get("measurand") == "Power.Active.Import"]
            assert power == ["33000"]
            r = await csms.send("GetCompositeSchedule", {"connectorId": 1, "duration": 300})
            assert r.frame.payload["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 33_000
            r = await csms.send("RemoteStopTransaction", {"transactionId": 4711})
            await csms.expect("StopTransaction")
            r = await csms.send("GetCompositeSchedule", {"connectorId": 1, "duration": 300, "chargingRateUnit": "W"})
            assert r.frame.payload["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": EVSE1_W}]
    run(main())


# ---- every smart-charging fault breaks its one behaviour ---------------------------------------

Probe = Callable[[Bench], Awaitable[bool]]
PROBES: dict[str, tuple[str, Probe]] = {}


def probe(name: str, version: str = "2.0.1") -> Callable[[Probe], Probe]:
    def deco(fn: Probe) -> Probe:
        PROBES[name] = (version, fn)
        return fn
    return deco


@probe("ignores_stack_level", "1.6")
async def _p_stack(b: Bench) -> bool:
    await b.set(1, p16(1, limit=200_000, level=0))
    await b.set(1, p16(2, limit=100_000, level=1))
    return await b.first_limit(1) == 100_000


@probe("ignores_station_max")
async def _p_station_max(b: Bench) -> bool:
    await b.set(0, p201(1, "ChargingStationMaxProfile", 150_000))
    return await b.first_limit(1) == 150_000 and await b.first_limit(0) == 150_000


@probe("composite_ignores_validto")
async def _p_validto(b: Bench) -> bool:
    await b.set(1, p201(1, limit=200_000))
    await b.set(1, p201(2, limit=50_000, level=1, validFrom=ago(100), validTo=ago(10), start=ago(100)))
    return await b.first_limit(1) == 200_000


@probe("recurring_not_repeated")
async def _p_recurring(b: Bench) -> bool:
    await b.set(1, p201(1, limit=100_000, kind="Recurring", recurrencyKind="Daily", start=ago(86_400 + 10), duration=600))
    return await b.first_limit(1) == 100_000


@probe("composite_unit_ignored", "1.6")
async def _p_unit(b: Bench) -> bool:
    await b.set(1, p16(1, limit=100, unit="A"))
    return await b.first_limit(1, unit="W") == 69_000


@probe("limit_not_applied")
async def _p_limit(b: Bench) -> bool:
    await b.start_tx(1)
    await b.set(1, p201(1, limit=50_000))
    return b.power_w() == 50_000 and await b.first_limit(1) == 50_000


@probe("clear_profile_ignored", "1.6")
async def _p_clear(b: Bench) -> bool:
    await b.set(1, p16(1, limit=60_000))
    status = (await b.call("ClearChargingProfile", {"id": 1}))["status"]
    assert status == "Accepted"
    return await b.first_limit(1) == EVSE1_W


@probe("tx_profile_without_tx_accepted")
async def _p_tx_without_tx(b: Bench) -> bool:
    return await b.set(1, p201(1, "TxProfile", transactionId="T-1")) == "Rejected"


def test_every_smart_charging_fault_has_a_probe() -> None:
    assert set(PROBES) == set(SMART_CHARGING_FAULTS)
    for name, (version, _) in PROBES.items():
        assert version in STATION_FAULTS[name].versions, name


@pytest.mark.parametrize("fault", sorted(PROBES))
def test_fault_breaks_exactly_its_behaviour(fault: str) -> None:
    version, fn = PROBES[fault]

    async def one(f: str | None) -> bool:
        async with bench(version, f) as b:
            return await fn(b)

    async def main() -> tuple[bool, bool]:
        return await one(None), await one(fault)
    clean, broken = run(main())
    assert clean, f"clean simulator fails the probe for {fault}"
    assert not broken, f"fault {fault} does not change the observed behaviour"


@pytest.mark.parametrize("fault", sorted(PROBES))
def test_smart_faults_leave_other_probes_alone(fault: str) -> None:
    """A fault breaks ONE behaviour: every other smart-charging probe still passes under it."""
    async def main() -> list[str]:
        broken = []
        for other, (version, fn) in PROBES.items():
            if other == fault or version not in STATION_FAULTS[fault].versions:
                continue
            async with bench(version, fault) as b:
                if not await fn(b):
                    broken.append(other)
        return broken
    assert run(main(), timeout=30) == []


# ---- the engine's expect_composite / set_time, end to end against the simulator ----------------

CASE = """\
id: TC_K_99_CS
title: expect_composite self-test
ocpp: "2.0.1"
role: csms
profile: Smart Charging
timeout: 30
steps:
  - action: reboot
  - expect: BootNotification
    allow_reconnect: true
    reply: {{status: Accepted, currentTime: $now, interval: 300}}
  - set_time: {{start: -2, later: 3600}}
  - set:
      installed: {{id: 9901, stackLevel: 0, chargingProfilePurpose: TxDefaultProfile, chargingProfileKind: Absolute,
                  chargingSchedule: [{{id: 1, startSchedule: $start, chargingRateUnit: W,
                                      chargingSchedulePeriod: [{{startPeriod: 0, limit: 75000}}]}}]}}
  - set: {{claimed: {claimed}}}
  - send: SetChargingProfile
    payload: {{evseId: 1, chargingProfile: $installed}}
    expect_result: {{status: Accepted}}
  - send: GetCompositeSchedule
    payload: {{evseId: 1, duration: 300, chargingRateUnit: W}}
    expect_composite:
      profiles: [{{evseId: 1, chargingProfile: $claimed}}]
"""


def _run_case(tmp_path: Any, claimed: str) -> Any:
    from harness.dut.builtin import builtin_profiles
    from harness.execute import execute
    from harness.scenario.loader import load_case

    path = tmp_path / "TC_K_99_CS.yaml"
    path.write_text(CASE.format(claimed=claimed))
    station = next(p for p in builtin_profiles() if p.kind == "charging_station")
    return run(execute(load_case(path), station), timeout=40).result


def test_expect_composite_passes_on_the_oracles_schedule(tmp_path: Any) -> None:
    result = _run_case(tmp_path, "$installed")
    assert result.verdict.name == "PASS", result.message
    assert result.captures["later"] > result.captures["start"]           # set_time: ISO UTC, whole seconds
    assert len(result.captures["start"]) == len("2025-01-01T00:00:00Z") and result.captures["start"].endswith("Z")


def test_expect_composite_difference_is_a_fail_listing_the_periods(tmp_path: Any) -> None:
    other = ("{id: 9902, stackLevel: 0, chargingProfilePurpose: TxDefaultProfile, chargingProfileKind: Absolute, "
             "chargingSchedule: [{id: 1, startSchedule: $start, chargingRateUnit: W, "
             "chargingSchedulePeriod: [{startPeriod: 0, limit: 50000}, {startPeriod: 100, limit: 90000}]}]}")
    result = _run_case(tmp_path, other)
    assert result.verdict.name == "FAIL"
    assert "differs from the oracle's" in result.message and "expected 50000 W" in result.message
    assert "reported 75000 W" in result.message
    assert [p["limit"] for p in result.expected["chargingSchedulePeriod"]] == [50000, 90000]
    assert result.requirement == "OCPP 2.0.1 K08"          # the step names none: the use case


def test_expect_composite_with_a_broken_profile_is_the_cases_error(tmp_path: Any) -> None:
    broken = "{id: 9903, stackLevel: 0, chargingProfilePurpose: TxDefaultProfile, chargingProfileKind: Absolute}"
    result = _run_case(tmp_path, broken)
    assert result.verdict.name == "ERROR"
    assert "expect_composite cannot compute" in result.message
