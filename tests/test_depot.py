"""Depot DLB: model, reference controller and its faults, replay invariants and KPIs, scenarios, plots.

Fast by design: short scenarios at a 1 s step; the two long shipped scenarios (16 h and
24 h) run here at a 5 s step, and at 1 s in `bench/depot_day.py` (the 60 s target).
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.smart.depot import (CCS2, MCS, Bess, Charger, Checks, Depot, Evse, PvProfile, Site, StepSchedule,
                                 Tariff, TaperCurve, Truck, feasibility, plug_plan)
from harness.smart.depot_sim import INVARIANTS, ControllerError, DepotResult, replay
from harness.smart.dlb import (DLB_FAULTS, Allocation, EqualShareController, ReferenceController, UnknownDlbFault,
                               build_controller, greedy, water_level)
from harness.smart.scenario import SCENARIO_DIR, ScenarioError, load_scenario, load_scenario_text, shipped_scenarios

PHYSICAL = ("site_limit", "cabinet_limit", "evse_rating", "truck_taper", "bess_power", "bess_soc",
            "energy_conservation")
H = 3600


def scenario(text: str) -> Depot:
    return load_scenario_text(textwrap.dedent(text), "<test>")


@lru_cache(maxsize=None)
def shipped(name: str, step_s: float = 1.0) -> Depot:
    d = load_scenario(SCENARIO_DIR / f"{name}.yaml")
    return d if step_s == d.step_s else dataclasses.replace(d, step_s=step_s)


@lru_cache(maxsize=None)
def run(name: str, controller: str = "reference", fault: str | None = None, step_s: float = 1.0) -> DepotResult:
    return replay(shipped(name, step_s), build_controller(controller, fault=fault))


# --------------------------------------------------------------------------- crafted scenarios

# B departs first with a large need; A arrived first. Only one truck fits under the limit.
PRIORITY = """\
    name: priority_two_trucks
    start: "08:00"
    duration: 1h20m             # B is judged at 09:15; A leaves after the end (not judged)
    site: {grid_limit_kw: 400}
    chargers: [{id: "C{n}", count: 2, cabinet_kw: 400, evses: [{rating_kw: 400, type: CCS2}]}]
    trucks:
      - {id: A, capacity_kwh: 800, max_kw: 400, type: CCS2, arrival: "08:00", soc: 0.2, target_soc: 0.9, departure: "11:00"}
      - {id: B, capacity_kwh: 540, max_kw: 350, type: CCS2, arrival: "08:05", soc: 0.2, target_soc: 0.8, departure: "09:15"}
"""

# Trucks plug in every 5 minutes; the limit fits fewer than all of them at full power.
CHURN = """\
    name: churn
    start: "08:00"
    duration: 40m
    site: {grid_limit_kw: 600}
    chargers: [{id: "C{n}", count: 4, cabinet_kw: 400, evses: [{rating_kw: 400, type: CCS2}]}]
    fleet:
      seed: 1
      count: 4
      arrival: {from: "08:00", to: "08:20"}
      dwell: {min: 3h, max: 4h}
      soc: 0.2
      target_soc: 0.8
      mix: [{capacity_kwh: 540, max_kw: 350, type: CCS2}]
"""

# Two trucks want 700 kW; grid gives 400, a small BESS may give 100.
BESS_SMALL = """\
    name: small_bess
    start: "08:00"
    duration: 30m
    site:
      grid_limit_kw: 400
      bess: {capacity_kwh: 200, max_charge_kw: 100, max_discharge_kw: 100, soc_min: 0.3, soc_max: 0.9, initial_soc: 0.5}
    chargers: [{id: "C{n}", count: 2, cabinet_kw: 400, evses: [{rating_kw: 400, type: CCS2}]}]
    trucks:
      - {id: A, capacity_kwh: 540, max_kw: 350, type: CCS2, arrival: "08:00", soc: 0.2, target_soc: 0.8, departure: "12:00"}
      - {id: B, capacity_kwh: 540, max_kw: 350, type: CCS2, arrival: "08:00", soc: 0.2, target_soc: 0.8, departure: "12:00"}
"""

# fault → (scenario, invariant it must break): shipped scenarios kill every fault (and the
# crafted ones above do it in miniature)
FAULT_CASES = {
    "ignores_site_limit_under_churn": ("grid_limit_drop", "site_limit"),
    "first_come_first_served": ("early_departures_priority", "target_missed"),
    "forgets_bess_limits": ("grid_limit_drop", "bess_power"),
    "slow_reaction": ("grid_limit_drop", "site_limit"),
}
CRAFTED_FAULT_CASES = {
    "ignores_site_limit_under_churn": (CHURN, "site_limit"),
    "first_come_first_served": (PRIORITY, "target_missed"),
    "forgets_bess_limits": (BESS_SMALL, "bess_power"),
}


@lru_cache(maxsize=None)
def replay_case(source: str, controller: str = "reference", fault: str | None = None, **params) -> DepotResult:
    if "\n" not in source:
        if not params:
            return run(source, controller, fault)
        return replay(shipped(source), build_controller(controller, fault=fault, **params))
    return replay(scenario(source), build_controller(controller, fault=fault, **params))


# --------------------------------------------------------------------------- model

def test_taper_knee_curve() -> None:
    t = TaperCurve.knee(0.8, 0.1)
    assert t.fraction(0.5) == 1.0 and t.fraction(0.8) == 1.0
    assert t.fraction(0.9) == pytest.approx(0.55)
    assert t.fraction(1.0) == 0.0                      # a full battery accepts nothing
    truck = Truck("T", 540, 0, 0.2, 0.8, 3600, 350)
    assert truck.limit_kw(0.5) == 350 and truck.limit_kw(0.9) == pytest.approx(192.5)
    with pytest.raises(ValueError):
        TaperCurve(((0.0, 1.0), (0.5, 0.0), (1.0, 0.0)))   # would stall mid-charge


@pytest.mark.parametrize("kwargs, match", [
    (dict(capacity_kwh=200), "capacity"),
    (dict(max_kw=500), "max power"),                     # CCS2 tops out at 400 kW
    (dict(connector="CHAdeMO"), "connector"),
    (dict(departure_s=0), "departs"),
])
def test_truck_validation(kwargs, match) -> None:
    base = dict(id="T", capacity_kwh=540, arrival_s=0, arrival_soc=0.2, target_soc=0.8, departure_s=3600, max_kw=350)
    with pytest.raises(ValueError, match=match):
        Truck(**{**base, **kwargs})
    assert Truck(**{**base, "connector": MCS, "max_kw": 3750}).max_kw == 3750


def _depot(trucks, chargers, limit=2000.0, **kw) -> Depot:
    return Depot("t", Site(StepSchedule.constant(limit)), tuple(chargers), tuple(trucks), 0, 4 * H, **kw)


def test_plug_plan_mcs_falls_back_to_ccs2_and_trucks_queue() -> None:
    chargers = [Charger("M", (Evse("M-1", 1200, MCS),), 1200), Charger("C", (Evse("C-1", 400, CCS2),), 400)]
    trucks = [
        Truck("m1", 800, 0, 0.2, 0.8, 2 * H, 1000, MCS),
        Truck("m2", 800, 60, 0.2, 0.8, 2 * H, 1000, MCS),       # MCS busy → CCS2
        Truck("c1", 540, 120, 0.2, 0.8, 3 * H, 350, CCS2),      # nothing free → queues until 2 h
        Truck("c2", 540, 180, 0.2, 0.8, 600, 350, CCS2),        # queues, leaves before anything frees
    ]
    plan = plug_plan(_depot(trucks, chargers))
    assert [(p.evse, p.plug_step) for p in plan] == [(0, 0), (1, 60), (1, 2 * H), (None, 600)]
    assert plan[2].queued_s == 2 * H - 120
    feas = feasibility(_depot(trucks, chargers), plan)
    assert not feas[3].feasible and "no compatible EVSE" in feas[3].reason


def test_feasibility_alone_uses_site_limit_schedule_and_margin() -> None:
    ch = [Charger("C", (Evse("C-1", 400),), 400)]
    truck = Truck("T", 500, 0, 0.2, 0.6, 3600, 400)          # 200 kWh in 1 h
    d = _depot([truck], ch, limit=400)
    assert feasibility(d, plug_plan(d))[0].feasible            # 200 kWh at 400 kW = 30 min
    d = _depot([truck], ch, limit=150)
    f = feasibility(d, plug_plan(d))[0]
    assert not f.feasible                                       # 150 kW × 1 h < 200 kWh
    # 200 kWh at 200 kW finishes exactly at departure: inside the 120 s margin → not feasible
    d = _depot([truck], ch, limit=200)
    assert not feasibility(d, plug_plan(d))[0].feasible
    d = dataclasses.replace(d, checks=Checks(feasibility_margin_s=0))
    f = feasibility(d, plug_plan(d))[0]
    assert f.feasible and f.finish_s == pytest.approx(3600, abs=1)
    # the limit schedule counts: 400 kW for 10 min, then 100 kW → 66.7 + 83.3 kWh < 200
    d = Depot("t", Site(StepSchedule(((0, 400), (600, 100)))), tuple(ch), (truck,), 0, 2 * H)
    assert not feasibility(d, plug_plan(d))[0].feasible


def test_tariff_cheaper_seconds_matches_brute_force() -> None:
    tariff = Tariff(((0, 0.1), (6 * H, 0.3), (11 * H, 0.2), (22 * H, 0.1)))
    assert tariff.price_at(23 * H) == 0.1 and tariff.price_at(7 * H) == 0.3 and tariff.min_price == 0.1
    t0 = 20 * H + 123
    ends = np.array([t0, t0 + 5 * H, t0 + 30 * H + 17])
    secs = np.arange(t0, ends[-1])
    prices = tariff.price_at(secs)
    for price in (0.3, 0.2, 0.1):
        got = tariff.cheaper_seconds(t0, ends, price)
        want = [np.count_nonzero(prices[: e - t0] < price) for e in ends]
        assert got.tolist() == pytest.approx(want)


def test_pv_bell_profile() -> None:
    pv = PvProfile.bell(500, 6 * H, 20 * H)
    assert pv.kw_at(13 * H) == pytest.approx(500)
    assert pv.kw_at(3 * H) == 0 and pv.kw_at(21 * H) == 0 and pv.kw_at(13 * H + 86400) == pytest.approx(500)


# --------------------------------------------------------------------------- controllers

def test_greedy_serves_in_order_within_cabinet_and_budget() -> None:
    want = np.array([300.0, 300.0, 300.0, 300.0])
    cab = np.array([0, 0, 1, 1])
    got = greedy(want, np.array([3, 0, 1, 2]), cab, np.array([400.0, 1000.0]), 900.0, 5.0)
    # EVSE 3 first (300), then 0 (300), then 1 gets the cabinet's last 100, then 2 the site's last 200
    assert got.tolist() == [300.0, 100.0, 200.0, 300.0]
    got = greedy(want, np.array([0, 1]), cab, np.array([1000.0, 1000.0]), 452.0, 5.0)
    assert got.tolist() == [300.0, 150.0, 0.0, 0.0]                 # partial grant rounded down to 5 kW


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 500), min_size=1, max_size=12), st.floats(0, 3000), st.integers(0, 10**6))
def test_greedy_and_water_level_respect_limits(wants, budget, seed) -> None:
    rng = np.random.default_rng(seed)
    want = np.array(wants)
    cab = rng.integers(0, 3, len(want))
    free = rng.uniform(0, 800, 3)
    got = greedy(want, rng.permutation(len(want)), cab, free, budget, 5.0)
    assert (got <= want + 1e-9).all() and (got >= 0).all()
    assert got.sum() <= budget + 1e-6
    assert (np.bincount(cab, got, 3) <= free + 1e-6).all()
    level = water_level(want[want > 0], budget)
    assert np.minimum(want, level).sum() <= max(budget, 0) + 1e-6 or level == math.inf


def test_fault_catalogue_and_factory() -> None:
    assert set(DLB_FAULTS) == set(FAULT_CASES)          # every fault is killed by a shipped scenario
    assert all(isinstance(v, str) and v for v in DLB_FAULTS.values())
    assert build_controller("reference", fault="slow_reaction").name == "reference[slow_reaction]"
    assert isinstance(build_controller("equal_share"), EqualShareController)
    with pytest.raises(UnknownDlbFault):
        ReferenceController(fault="nope")
    with pytest.raises(ValueError, match="unknown controller"):
        build_controller("fifo")


def test_controller_answer_is_checked() -> None:
    class Broken:
        name = "broken"

        def decide(self, state, t):
            return Allocation(np.zeros(3), 0.0)   # wrong number of EVSEs

    with pytest.raises(ControllerError, match="allocation must be 2"):
        replay(scenario(PRIORITY), Broken())


# --------------------------------------------------------------------------- shipped scenarios

SHIPPED = {"overnight_40_trucks_2MW_bess_pv": 5.0, "day_50_trucks_mcs": 5.0, "grid_limit_drop": 1.0,
           "early_departures_priority": 1.0}


def test_shipped_scenarios_are_the_ones_tested() -> None:
    assert {p.stem for p in shipped_scenarios()} == set(SHIPPED)
    d = shipped("overnight_40_trucks_2MW_bess_pv")
    assert (len(d.trucks), d.site.grid_limit.at(d.start_s), d.site.bess.capacity_kwh) == (40, 2000, 1000)
    assert d.site.pv is not None and d.description == "40 trucks, 2 MW grid, 1 MWh BESS, PV, overnight"
    d = shipped("day_50_trucks_mcs")
    assert len(d.trucks) == 50 and d.end_s - d.start_s == 24 * H and {t.connector for t in d.trucks} == {CCS2, MCS}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_reference_passes_shipped_scenario(name) -> None:
    r = run(name, step_s=SHIPPED[name])
    assert r.ok, r.summary()
    k = r.kpis
    assert k["feasible_trucks"] == k["trucks_judged"] == len(r.trucks)   # the scenarios are built feasible
    assert k["feasible_reached"] == k["feasible_trucks"]
    assert k["unmet_energy_kwh"] <= len(r.trucks) * r.checks.target_tolerance_kwh


def test_reference_prefers_cheap_hours_and_shaves_with_bess() -> None:
    ref = run("overnight_40_trucks_2MW_bess_pv", step_s=5.0)
    eq = run("overnight_40_trucks_2MW_bess_pv", "equal_share", step_s=5.0)
    assert ref.kpis["energy_delivered_kwh"] == pytest.approx(eq.kpis["energy_delivered_kwh"], rel=1e-3)
    assert ref.kpis["energy_cost"] < 0.8 * eq.kpis["energy_cost"]
    assert ref.kpis["bess_discharged_kwh"] > 100 and ref.kpis["peak_ev_kw"] > ref.kpis["peak_import_kw"]
    assert ref.kpis["setpoint_changes"] < eq.kpis["setpoint_changes"] / 10


def test_equal_share_misses_an_early_departure_the_reference_makes() -> None:
    eq = run("grid_limit_drop", "equal_share")
    (miss,) = eq.by_invariant("target_missed")
    assert miss.subject == "truck R2" and miss.worst > 50
    (prio,) = eq.by_invariant("departure_priority")
    assert prio.subject == "truck R2" and "R1 (departs 20:15:00)" in prio.message
    assert run("grid_limit_drop").ok
    eq = run("early_departures_priority", "equal_share")
    assert {v.subject for v in eq.by_invariant("target_missed")} == {"truck E1", "truck E2"}
    assert run("early_departures_priority").ok


def test_first_come_first_served_strands_the_delivery_trucks() -> None:
    bad = run("early_departures_priority", fault="first_come_first_served")
    assert {v.subject for v in bad.by_invariant("target_missed")} == {"truck E1", "truck E2"}
    assert {v.subject for v in bad.by_invariant("departure_priority")} == {"truck E1", "truck E2"}
    assert bad.kpis["feasible_reached"] == 4 and bad.kpis["unmet_energy_kwh"] > 100


# --------------------------------------------------------------------------- faults

@pytest.mark.parametrize("source, fault, invariant",
                         [(s, f, i) for f, (s, i) in sorted(FAULT_CASES.items())]
                         + [(s, f, i) for f, (s, i) in sorted(CRAFTED_FAULT_CASES.items())],
                         ids=[f"shipped-{f}" for f in sorted(FAULT_CASES)] + [f"crafted-{f}" for f in sorted(CRAFTED_FAULT_CASES)])
def test_reference_passes_what_each_fault_fails(source, fault, invariant) -> None:
    clean = replay_case(source)
    assert clean.ok, clean.summary()
    bad = replay_case(source, fault=fault)
    assert bad.by_invariant(invariant), bad.summary()
    v = bad.by_invariant(invariant)[0]
    assert v.message and v.worst > v.limit       # the verdict carries the numbers


def test_first_come_first_served_starves_the_early_departure() -> None:
    bad = replay_case(PRIORITY, fault="first_come_first_served")
    (miss,) = bad.by_invariant("target_missed")
    assert miss.subject == "truck B" and miss.t_start == 9 * H + 15 * 60
    (prio,) = bad.by_invariant("departure_priority")
    assert "A (departs 11:00:00)" in prio.message and prio.worst > 100
    assert not bad.by_invariant("site_limit")
    assert replay_case(PRIORITY, "equal_share").by_invariant("target_missed")   # equal sharing misses too


def test_slow_reaction_violates_limit_after_the_allowed_reaction_time() -> None:
    bad = run("grid_limit_drop", fault="slow_reaction")
    (v,) = bad.by_invariant("site_limit")
    drop = 18 * H + 40 * 60
    assert v.t_start == drop + 10 and v.t_end == drop + 60      # allowed 10 s, fault reacts after 60 s
    assert v.limit == 800 and v.worst > 1000 and v.energy_kwh > 5
    assert bad.kpis["reaction_latency_p50_s"] == 60 and bad.kpis["limit_violation_s"] == 50
    ok = run("grid_limit_drop")
    assert ok.kpis["reaction_events"] >= 1 and ok.kpis["reaction_latency_p99_s"] == 0
    # a 5 s reaction is inside the stated 10 s: no violation, latency measured
    quick = replay_case("grid_limit_drop", fault="slow_reaction", reaction_delay_s=5)
    assert not quick.by_invariant("site_limit") and quick.kpis["reaction_latency_p50_s"] == 5


def test_churn_fault_overshoots_right_after_plug_in() -> None:
    bad = replay_case(CHURN, fault="ignores_site_limit_under_churn")
    plugs = sorted(t.arrival_s for t in scenario(CHURN).trucks)
    site = bad.by_invariant("site_limit")
    assert site and all(any(0 <= v.t_start - p < 30 for p in plugs) for v in site)
    assert all(v.duration_s <= 30 for v in site)


def test_forgets_bess_limits_breaks_power_and_soc_window() -> None:
    bad = replay_case(BESS_SMALL, fault="forgets_bess_limits")
    (p,) = bad.by_invariant("bess_power")
    assert p.limit == 100 and p.worst > 250
    (soc,) = bad.by_invariant("bess_soc")
    assert soc.worst < -0.0 and "< soc_min 30.0%" in soc.message and soc.t_start > p.t_start


# --------------------------------------------------------------------------- KPIs

def test_kpis_are_consistent() -> None:
    r = run("grid_limit_drop")
    k = r.kpis
    assert k["steps"] == 9000 and k["simulated_s"] == 9000 and k["speedup"] > 1
    need = sum(t.need_kwh for t in shipped("grid_limit_drop").trucks)
    assert k["energy_delivered_kwh"] == pytest.approx(need, abs=8 * 0.5)
    assert k["energy_delivered_kwh"] == pytest.approx(sum(o.delivered_kwh for o in r.trucks))
    assert k["energy_balance_residual_kwh"] < 1e-6
    assert k["peak_import_kw"] <= 2000 + r.checks.tolerance_kw
    assert k["limit_violations"] == 0 and k["energy_above_limit_kwh"] == 0
    assert k["setpoint_changes"] > 0
    assert k["setpoint_changes_per_s"] == pytest.approx(k["setpoint_changes"] / 9000)
    assert 0 < k["setpoint_changes_busiest_minute"] <= 60 * 8
    assert k["energy_cost"] == pytest.approx(0.20 * k["grid_import_kwh"])
    assert k["unmet_by_truck_kwh"] == {}
    # the per-step series are downsampled to the recording window (60 s)
    assert len(r.t_s) == 150 and r.truck_kw.shape == (150, 8)
    assert r.series["import_max_kw"].max() == pytest.approx(k["peak_import_kw"])
    assert (r.series["import_kw"] <= r.series["import_max_kw"] + 1e-9).all()


def test_unmet_energy_reported_per_truck() -> None:
    bad = replay_case(PRIORITY, fault="first_come_first_served")
    assert set(bad.kpis["unmet_by_truck_kwh"]) == {"B"}
    assert bad.kpis["unmet_energy_kwh"] == pytest.approx(bad.kpis["unmet_by_truck_kwh"]["B"], abs=1e-3)
    assert bad.kpis["violations_by_invariant"]["target_missed"] == 1


# --------------------------------------------------------------------------- property: never above the limit

@st.composite
def small_depots(draw) -> Depot:
    start = 8 * H
    chargers = []
    for c in range(draw(st.integers(1, 3))):
        evses = tuple(Evse(f"C{c}-{m}", draw(st.sampled_from([150.0, 250.0, 400.0])))
                      for m in range(draw(st.integers(1, 2))))
        chargers.append(Charger(f"C{c}", evses, draw(st.sampled_from([200.0, 400.0, 800.0]))))
    trucks = []
    for i in range(draw(st.integers(1, 6))):
        arrival = start + draw(st.integers(0, 1200))
        soc = draw(st.floats(0.0, 0.9))
        trucks.append(Truck(f"T{i}", draw(st.floats(300, 1000)), arrival, soc, draw(st.floats(soc, 1.0)),
                            arrival + draw(st.integers(60, 3600)), draw(st.floats(150, 400)),
                            taper=TaperCurve.knee(draw(st.floats(0.5, 0.95)), draw(st.floats(0.05, 0.5)))))
    times = sorted(set(draw(st.lists(st.integers(1, 1799), max_size=3))))
    limit = StepSchedule(tuple([(start, draw(st.floats(0, 1500)))] + [(start + t, draw(st.floats(0, 1500))) for t in times]))
    bess = None
    if draw(st.booleans()):
        lo = draw(st.floats(0.0, 0.4))
        bess = Bess(draw(st.floats(50, 500)), draw(st.floats(0, 300)), draw(st.floats(0, 300)), lo,
                    draw(st.floats(lo + 0.1, 1.0)), draw(st.floats(0.7, 1.0)), lo + 0.05)
    pv = PvProfile.bell(draw(st.floats(0, 600)), 6 * H, 20 * H) if draw(st.booleans()) else None
    tariff = Tariff(((0.0, 0.1), (draw(st.integers(1, 23)) * H, draw(st.floats(0.05, 0.5)))))
    return Depot("random", Site(limit, bess, pv, tariff), tuple(chargers), tuple(trucks), start, start + 1800,
                 checks=Checks(reaction_time_s=0.0))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_depots())
def test_reference_never_exceeds_site_limit(depot) -> None:
    r = replay(depot, ReferenceController(), record_every_s=600)
    assert not r.by_invariant("site_limit"), r.summary()
    broken = [v for v in r.violations if v.invariant in PHYSICAL]
    assert not broken, r.summary()


# --------------------------------------------------------------------------- scenario files

def test_fleet_generation_is_seeded() -> None:
    a, b = scenario(CHURN), scenario(CHURN)
    assert a.trucks == b.trucks and len(a.trucks) == 4
    c = scenario(CHURN.replace("seed: 1", "seed: 2"))
    assert c.trucks != a.trucks
    assert all(8 * H <= t.arrival_s <= 8 * H + 20 * 60 and 3 * H <= t.departure_s - t.arrival_s <= 4 * H for t in a.trucks)


def test_clock_times_roll_over_midnight() -> None:
    d = shipped("overnight_40_trucks_2MW_bess_pv")
    assert d.start_s == 16 * H and d.end_s == 32 * H
    assert all(16.5 * H <= t.arrival_s <= 21 * H and 28.5 * H <= t.departure_s <= 31.5 * H for t in d.trucks)
    d = shipped("grid_limit_drop")
    assert d.site.grid_limit.points == ((18 * H, 2000.0), (18 * H + 40 * 60, 800.0), (19 * H + 20 * 60, 1500.0))


@pytest.mark.parametrize("patch, where, message", [
    (("cabinet_kw: 400", "cabinet_kwh: 400"), "5:", "unknown key 'cabinet_kwh'"),
    (('start: "08:00"', 'start: "8 o\'clock"'), "2:", "is not a time of day"),
    (("type: CCS2}]}]", "type: CCS3}]}]"), "5:", "unknown connector type 'CCS3'"),
    (("grid_limit_kw: 400", "grid_limit_kw: -5"), "4:", "must be ≥ 0"),
    (("capacity_kwh: 800", "capacity_kwh: 80"), "7:", "capacity 80.0 kWh outside 300–1000"),
    (("duration: 1h20m", "duration: 80 minutes"), "3:", "is not a duration"),
])
def test_scenario_errors_are_positioned(patch, where, message) -> None:
    text = textwrap.dedent(PRIORITY).replace(*patch)
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(text, "depot.yaml")
    text = str(exc.value)
    assert f"depot.yaml:{where}" in text and message in text, text


def test_scenario_error_hints() -> None:
    text = textwrap.dedent(PRIORITY).replace("cabinet_kw: 400", "cabinet_kwh: 400").replace("departure:", "departs:", 1)
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(text, "depot.yaml")
    issues = exc.value.issues
    assert any(i.hint == "did you mean 'cabinet_kw'?" for i in issues)
    assert any("arrival and departure are required" in i.message for i in issues)
    with pytest.raises(ScenarioError, match="YAML syntax"):
        load_scenario_text("site: [", "x.yaml")
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(SCENARIO_DIR / "missing.yaml")


# --------------------------------------------------------------------------- plots

def test_plots_are_written(tmp_path) -> None:
    from harness.smart.plots import plot_depot_day

    paths = plot_depot_day(run("grid_limit_drop", fault="slow_reaction"), tmp_path)
    assert [p.name.split("__")[-1] for p in paths] == ["power_by_truck.png", "grid_import.png", "bess.png", "pv.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_invariant_names_are_documented() -> None:
    assert set(PHYSICAL) | {"target_missed", "departure_priority"} == set(INVARIANTS)
