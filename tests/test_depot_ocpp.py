"""Depot DLB through OCPP 2.0.1 smart charging, end to end over real websockets on loopback.

The CSMS under test: the harness plays the chargers and the BESS of a one-hour depot
(three trucks, a limit drop, a small BESS) against the built-in CSMS simulator's depot
controller in accelerated time; the reference passes, each dlb_* fault fails with the
invariant it breaks. Also: the same through the `depot:` step of a test case and through
`charger-harness depot run`; a CSMS without DLB fails in (accelerated) real time; the
harness's stations check profiles like a conformant station. The charger under test:
the harness as CSMS sets the site limit on two built-in chargers and checks their draw.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from functools import lru_cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.depot.charger import LimitPlan, check_chargers_async
from harness.depot.run import PROTOCOL, DepotOcppResult, RunOptions, run_depot, run_depot_async
from harness.depot.stations import DepotStation, StationEvse
from harness.ocpp.trace import Trace
from harness.sim.csms_faults import CSMS_FAULTS, DLB_CSMS_FAULTS
from harness.smart.depot import Depot
from harness.smart.dlb import DLB_FAULTS
from harness.smart.scenario import load_scenario_text
from harness.smart.simclock import SimClock

H = 3600
# Three trucks, 700 kW site dropping to 450 kW at 08:40, a small BESS. E arrives last and leaves
# first (08:55); A and B stay beyond the end (not judged). Each dlb_* fault breaks one invariant.
SHORT = """\
    name: ocpp_short_hour
    start: "08:00"
    duration: 1h
    site:
      grid_limit_schedule: [{at: "08:00", kw: 700}, {at: "08:40", kw: 450}]
      bess: {capacity_kwh: 200, max_charge_kw: 100, max_discharge_kw: 100, soc_min: 0.3, soc_max: 0.9, initial_soc: 0.5}
    chargers: [{id: "C{n}", count: 2, cabinet_kw: 800, evses: [{rating_kw: 400, type: CCS2, count: 2}]}]
    trucks:
      - {id: A, capacity_kwh: 800, max_kw: 400, type: CCS2, arrival: "08:00", soc: 0.2, target_soc: 0.9, departure: "12:00"}
      - {id: B, capacity_kwh: 540, max_kw: 350, type: CCS2, arrival: "08:02", soc: 0.2, target_soc: 0.9, departure: "12:00"}
      - {id: E, capacity_kwh: 540, max_kw: 350, type: CCS2, arrival: "08:05", soc: 0.3, target_soc: 0.7, departure: "08:55"}
"""
DROP = 8 * H + 40 * 60

# fault → (invariant it breaks, when the first violation starts)
EXPECTED = {
    "dlb_ignores_site_limit_under_churn": ("site_limit", 8 * H + 2 * 60),     # B plugs in: 30 s blind
    "dlb_forgets_bess_limits": ("bess_power", 8 * H),
    "dlb_slow_reaction": ("site_limit", DROP + 10),                            # allowed 10 s, reacts after 60 s
    "dlb_first_come_first_served": ("target_missed", 8 * H + 55 * 60),         # E leaves short
}


def short_depot() -> Depot:
    return load_scenario_text(textwrap.dedent(SHORT), "<short>")


@lru_cache(maxsize=None)
def run(fault: str | None = None) -> DepotOcppResult:
    return run_depot(short_depot(), fault=fault)


# --------------------------------------------------------------------------- CSMS under test

def test_reference_passes_over_ocpp() -> None:
    r = run()
    assert r.ok, r.summary()
    k = r.kpis
    assert k["feasible_trucks"] == k["feasible_reached"] == 1          # E (A and B leave after the end)
    assert k["peak_import_kw"] <= 700 + 1
    o = k["ocpp"]
    assert o["stations"] == 3 and o["protocol_problems"] == 0 and o["profiles_rejected"] == 0
    assert o["sessions_without_tx_profile"] == 0 and o["plug_in_to_tx_profile_p99_s"] == 0.0
    by = o["calls_by_action"]
    assert by["CS→CSMS NotifyEVChargingNeeds"] == 3 and by["CSMS→CS SetChargingProfile"] == o["set_charging_profile"]
    assert by["CS→CSMS TransactionEvent"] >= 3 * 2 + 60                # Started/Ended + periodic meter values
    # the site limit drop was followed within the allowed reaction time
    assert k["reaction_latency_max_s"] is not None and k["reaction_latency_max_s"] <= 10


def test_messages_carry_the_simulated_clock() -> None:
    r = run()
    frames = [json.loads(e.raw) for e in r.trace.entries if e.kind in ("CALL", "CALLRESULT")]
    boot = next(f for f in frames if f[0] == 3 and "currentTime" in f[2])
    assert boot[2]["currentTime"] == "2025-01-06T08:00:00Z"             # the CSMS answers on the shared clock
    stamps = [f[3]["timestamp"] for f in frames if f[0] == 2 and f[2] == "TransactionEvent"]
    assert stamps[-1].startswith("2025-01-06T08:5") and stamps == sorted(stamps)
    needs = [f[3] for f in frames if f[0] == 2 and f[2] == "NotifyEVChargingNeeds"]
    assert {n["chargingNeeds"]["departureTime"] for n in needs} == {"2025-01-06T12:00:00Z", "2025-01-06T08:55:00Z"}
    e = next(n for n in needs if n["chargingNeeds"]["departureTime"].endswith("08:55:00Z"))
    dc = e["chargingNeeds"]["dcChargingParameters"]
    assert dc["energyAmount"] == 216000 and dc["evMaxPower"] == 350000 and dc["stateOfCharge"] == 30
    profiles = [f[3] for f in frames if f[0] == 2 and f[2] == "SetChargingProfile"]
    assert all(p["chargingProfile"]["chargingSchedule"][0]["startSchedule"].startswith("2025-01-06T08:")
               for p in profiles)


def test_every_dlb_fault_is_a_csms_fault() -> None:
    assert set(DLB_CSMS_FAULTS) == {f"dlb_{n}" for n in DLB_FAULTS} == set(EXPECTED)
    assert all(CSMS_FAULTS[n].versions == ("2.0.1",) for n in DLB_CSMS_FAULTS)


@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_each_dlb_fault_fails_with_its_invariant(fault: str) -> None:
    r = run(fault)
    invariant, t_start = EXPECTED[fault]
    assert not r.ok and r.kpis["ocpp"]["protocol_problems"] == 0
    hits = r.by_invariant(invariant)
    assert hits, r.summary()
    assert hits[0].t_start == t_start, str(hits[0])
    assert fault.removeprefix("dlb_") in r.csms


def test_bess_is_driven_through_its_two_evse_station() -> None:
    r = run()
    bess = [p for p in r.profiles if p.station_id == "BESS"]
    assert bess and all(p.purpose == "TxProfile" and p.status == "Accepted" and p.limit >= 0 for p in bess)
    assert {p.evse_id for p in bess} == {1, 2}                          # charged and discharged
    assert r.kpis["bess_discharged_kwh"] > 10 and "bess_soc" not in r.kpis["violations_by_invariant"]


def test_a_csms_without_dlb_fails_in_real_time() -> None:
    """No SetChargingProfile at all: the trucks draw what they can and the site limit breaks.
    Runs on the wall clock (100× real time) against a CSMS simulator that has no depot controller."""
    from harness.sim.api import CsmsSimConfig
    from harness.sim.csms import CsmsSimulator

    depot = short_depot()
    depot = Depot(**{**depot.__dict__, "end_s": depot.start_s + 4 * 60})

    async def main() -> DepotOcppResult:
        sim = CsmsSimulator(CsmsSimConfig(port=0, versions=("2.0.1",)), fault="ev_charging_needs_ignored")   # no K15 planning either
        await sim.start()
        try:
            return await run_depot_async(depot, csms_url=sim.url, options=RunOptions(speed=100.0))
        finally:
            await sim.stop()

    r = asyncio.run(asyncio.wait_for(main(), 30))
    assert not r.ok
    site = r.by_invariant("site_limit")
    assert site and site[0].t_start == 8 * H + 2 * 60 and site[0].worst >= 750 - 1e-6
    assert r.kpis["ocpp"]["set_charging_profile"] == 0 and r.kpis["ocpp"]["sessions_without_tx_profile"] == 2
    assert "real time" in r.clock and not r.by_invariant(PROTOCOL)


def test_depot_step_of_a_test_case(tmp_path: Path) -> None:
    """The `depot:` step through execute(): PASS on the reference, FAIL naming the invariant
    under a fault; KPIs in the captures, plots published as attachments."""
    from harness.dut.builtin import builtin_profiles
    from harness.execute import execute
    from harness.scenario.loader import load_case
    from harness.scenario.verdict import Verdict

    (tmp_path / "short.yaml").write_text(textwrap.dedent(SHORT))
    case_file = tmp_path / "TC_DEPOT_99_CSMS.yaml"
    case_file.write_text(textwrap.dedent(f"""\
        id: TC_DEPOT_99_CSMS
        title: short depot over OCPP
        ocpp: "2.0.1"
        role: cs
        profile: Depot DLB
        faults: [dlb_slow_reaction]
        timeout: 120
        steps:
          - depot: {{scenario: {tmp_path / 'short.yaml'}, duration: 45m}}
            timeout: 100
        """))
    case = load_case(case_file)
    csms = next(p for p in builtin_profiles() if p.kind == "csms")

    async def both():
        return await execute(case, csms), await execute(case, csms, fault="dlb_slow_reaction")

    good, bad = asyncio.run(asyncio.wait_for(both(), 60))
    assert good.result.verdict == Verdict.PASS, good.result.summary()
    cap = good.result.captures
    assert cap["depot"]["verdict"] == "PASS" and cap["depot"]["feasible_reached"] == cap["depot"]["feasible_trucks"]
    assert Path(cap["attachments"]["depot-grid_import.png"]).read_bytes()[:4] == b"\x89PNG"
    assert json.loads(Path(cap["attachments"]["depot-kpis.json"]).read_text())["verdict"] == "PASS"
    assert bad.result.verdict == Verdict.FAIL
    assert "site_limit" in bad.result.message and "08:40:10" in bad.result.message
    assert bad.result.requirement and "depot" in bad.result.requirement


def test_cli_depot_run_writes_the_reports(tmp_path: Path) -> None:
    from harness.cli import app

    (tmp_path / "short.yaml").write_text(textwrap.dedent(SHORT))
    res = CliRunner().invoke(app, ["depot", "run", str(tmp_path / "short.yaml"), "--duration", "45m",
                                   "--fault", "dlb_slow_reaction", "--out", str(tmp_path / "reports")])
    assert res.exit_code == 1, res.output
    folder = tmp_path / "reports" / "depot" / "ocpp_short_hour__dlb_slow_reaction"
    kpis = json.loads((folder / "kpis.json").read_text())
    assert kpis["verdict"] == "FAIL" and kpis["kpis"]["violations_by_invariant"] == {"site_limit": 1}
    violations = json.loads((folder / "violations.json").read_text())
    assert violations[0]["invariant"] == "site_limit" and violations[0]["start"] == "08:40:10"
    assert {"grid_import.png", "power_by_truck.png", "bess.png", "pv.png", "profiles.csv"} <= {p.name for p in folder.iterdir()}
    assert "SetChargingProfile" not in (folder / "profiles.csv").read_text().splitlines()[0]
    bad = CliRunner().invoke(app, ["depot", "run", "no_such_scenario"])
    assert bad.exit_code == 2 and "shipped scenarios" in bad.output


# --------------------------------------------------------------------------- the harness's stations

def _station() -> DepotStation:
    clock = SimClock(8 * H)
    return DepotStation("C1", [StationEvse(1, 400.0, 0), StationEvse(2, 400.0, 1)], 600.0, clock, 9 * H, Trace())


def _tx(pid: int, kw: float, tx: str | None = None, stack: int = 0, purpose: str = "TxProfile", evse: int = 1) -> dict:
    p = {"id": pid, "stackLevel": stack, "chargingProfilePurpose": purpose, "chargingProfileKind": "Absolute",
         "chargingSchedule": [{"id": pid, "startSchedule": "2025-01-06T08:00:00Z", "chargingRateUnit": "W",
                               "chargingSchedulePeriod": [{"startPeriod": 0, "limit": kw * 1000},
                                                          {"startPeriod": 600, "limit": kw * 500}]}]}
    if tx:
        p["transactionId"] = tx
    return {"evseId": evse, "chargingProfile": p}


def test_station_checks_profiles_like_a_conformant_station() -> None:
    st = _station()
    e = st.evses[1]
    assert st.set_profile(_tx(1, 300))[0]["statusInfo"]["reasonCode"] == "TxNotFound"        # K01.FR.09
    st.start_tx(e)
    assert st.set_profile(_tx(1, 300, tx="other"))[0]["status"] == "Rejected"
    assert st.set_profile(_tx(1, 300, tx=e.tx_id))[0] == {"status": "Accepted"}
    assert st.set_profile(_tx(1, 250, tx=e.tx_id))[0] == {"status": "Accepted"}               # same id replaces
    dup = st.set_profile(_tx(2, 100, tx=e.tx_id))[0]
    assert dup["statusInfo"]["reasonCode"] == "DuplicateProfile"                              # K01.FR.06
    assert st.set_profile({"evseId": 9, "chargingProfile": _tx(3, 1)["chargingProfile"]})[0]["status"] == "Rejected"
    bad = _tx(4, 100, purpose="ChargingStationMaxProfile", evse=1)                            # must be EVSE 0
    assert st.set_profile(bad)[0]["statusInfo"]["reasonCode"] == "InvalidProfile"
    # the composite in force, read forwards in time (the oracle lays it out once)
    assert st.limit_kw(1, 8 * H) == 250.0 and st.limit_kw(1, 8 * H + 600) == 125.0 and st.limit_kw(2, 8 * H) is None
    wide = _tx(5, 200, purpose="ChargingStationMaxProfile", evse=0)
    assert st.set_profile(wide)[0] == {"status": "Accepted"}
    assert st.station_track.at(8 * H + 1) == 200.0
    st.end_tx(e)
    assert st.limit_kw(1, 8 * H + 700) is None                                                # TxProfile ends with its tx
    assert st.clear_profile({"chargingProfileId": 5})[0] == {"status": "Accepted"}
    assert st.station_track.at(8 * H + 700) is None


# --------------------------------------------------------------------------- the charger under test

def test_chargers_follow_the_site_limit_and_a_faulty_one_is_caught() -> None:
    """Harness as CSMS: two built-in chargers with ChargingStationMaxProfile, a third pair with
    ExternalConstraints; a charger that ignores the station max profile fails."""
    plan = LimitPlan(site_kw=600, drop_kw=300, hold_s=2.0, reaction_s=1.5)
    ext = LimitPlan(site_kw=600, drop_kw=300, hold_s=2.0, reaction_s=1.5, purpose="ChargingStationExternalConstraints")

    async def main():
        return await asyncio.gather(check_chargers_async(plan), check_chargers_async(ext),
                                    check_chargers_async(plan, fault="ignores_station_max"))

    good, external, bad = asyncio.run(asyncio.wait_for(main(), 40))
    assert good.ok, good.summary()
    assert external.ok, external.summary()
    assert all(x is not None and x <= 1.5 for lat in good.latencies.values() for x in lat)
    assert max(good.peaks.values()) <= 300 + 1
    assert not bad.ok and {v.subject for v in bad.violations} >= {"site", "DEPOT-CH-01"}
    assert bad.violations[0].worst_kw > 300


def test_depot_step_against_a_real_csms_endpoint(tmp_path: Path) -> None:
    """A CSMS DUT that is not the built-in simulator: the step connects to its endpoint in real time
    (or at pixit.depot_speed); a run that cannot fit the step's timeout is INCONCLUSIVE up front.
    The "real" CSMS here is the simulator without a depot controller (and without K15 planning from the
    EVs' charging needs): it never limits anything."""
    from harness.dut.profile import profile_from_dict
    from harness.execute import execute
    from harness.scenario.loader import load_case
    from harness.scenario.verdict import Verdict
    from harness.sim.api import CsmsSimConfig
    from harness.sim.csms import CsmsSimulator

    (tmp_path / "short.yaml").write_text(textwrap.dedent(SHORT))

    def case(duration: str) -> Path:
        f = tmp_path / duration / "TC_DEPOT_98_CSMS.yaml"
        f.parent.mkdir()
        f.write_text(textwrap.dedent(f"""\
            id: TC_DEPOT_98_CSMS
            title: depot against an endpoint
            ocpp: "2.0.1"
            role: cs
            profile: Depot DLB
            timeout: 30
            steps:
              - depot: {{scenario: {tmp_path / 'short.yaml'}, duration: {duration}}}
                timeout: 20
            """))
        return f

    async def main():
        sim = CsmsSimulator(CsmsSimConfig(port=0, versions=("2.0.1",)), fault="ev_charging_needs_ignored")   # no K15 planning either
        await sim.start()
        try:
            def profile(speed: float | None):
                return profile_from_dict({"name": "some CSMS", "kind": "csms", "adapter": "manual",
                                          "ocpp_versions": ["2.0.1"], "security_profile": 0, "endpoint": sim.url,
                                          "pixit": {"depot_station_prefix": "LAB-"} | ({"depot_speed": speed} if speed else {})})
            too_long = await execute(load_case(case("1h")), profile(None))
            fast = await execute(load_case(case("4m")), profile(600.0))
            return too_long, fast, sorted(sim.stations)
        finally:
            await sim.stop()

    too_long, fast, seen = asyncio.run(asyncio.wait_for(main(), 40))
    assert too_long.result.verdict == Verdict.INCONCLUSIVE and "nothing was run" in too_long.result.message
    assert fast.result.verdict == Verdict.FAIL and "site_limit" in fast.result.message
    assert seen == ["LAB-BESS", "LAB-C1", "LAB-C2"]


def test_reconnect_churn_keeps_the_reference_passing() -> None:
    """Every charger (and the BESS) drops and reopens its websocket every 5 simulated minutes;
    the CSMS keeps its depot model across reconnects and every invariant still holds."""
    r = run_depot(short_depot(), options=RunOptions(reconnect_every_s=300))
    assert r.ok, r.summary()
    assert r.kpis["ocpp"]["reconnects"] == 3 * 12 and r.kpis["ocpp"]["protocol_problems"] == 0
    assert sum(1 for e in r.trace.entries if e.kind == "CONNECT") >= 3 * 12
