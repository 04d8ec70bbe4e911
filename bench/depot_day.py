"""Depot DLB: a 24 h depot day (50 trucks, 1 s control step) replayed in accelerated time.

Every invariant is checked at every step (site limit, cabinets, EVSE ratings, taper,
BESS power and SoC, energy conservation) and at every departure (feasible targets,
departure priority). Target (DESIGN.md): the day in under 60 s of wall time on this
machine. Prints the wall time, its ratio to the 60 s target, the speed-up over real time,
how the time splits between the controller and the replay/invariants, and the KPIs.

    python bench/depot_day.py [--scenario PATH] [--controller reference|equal_share]
                              [--fault NAME] [--plots DIR] [--all]

Exit status 1 if the wall time misses the target, or if the clean reference controller
breaks an invariant.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.smart.depot_sim import replay
from harness.smart.dlb import build_controller
from harness.smart.scenario import SCENARIO_DIR, load_scenario, shipped_scenarios

TARGET_S = 60.0
DEFAULT = SCENARIO_DIR / "day_50_trucks_mcs.yaml"


class Timed:
    """Wraps a controller to measure the time spent deciding (the rest is replay + invariants)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.spent = 0.0

    def reset(self) -> None:
        self.spent = 0.0
        if hasattr(self.inner, "reset"):
            self.inner.reset()

    def decide(self, state, t):
        t0 = time.perf_counter()
        out = self.inner.decide(state, t)
        self.spent += time.perf_counter() - t0
        return out


def bench(path: Path, controller: str, fault: str | None, plots: str | None) -> bool:
    depot = load_scenario(path)
    ctl = Timed(build_controller(controller, fault=fault))
    t0 = time.perf_counter()
    result = replay(depot, ctl)
    wall = time.perf_counter() - t0
    k = result.kpis
    sim_h = k["simulated_s"] / 3600
    print(f"scenario      {depot.name}: {len(depot.trucks)} trucks, {len(depot.evses)} EVSEs on "
          f"{len(depot.chargers)} chargers, {sim_h:g} h at {depot.step_s:g} s = {result.steps} steps")
    print(f"controller    {result.controller}")
    print(f"wall time     {wall:.2f} s  (target {TARGET_S:.0f} s: ratio {wall / TARGET_S:.3f}, "
          f"{TARGET_S / wall:.1f}× headroom)")
    print(f"speed-up      {k['simulated_s'] / wall:,.0f}× real time, {1e6 * wall / result.steps:.1f} µs per step "
          f"(controller {1e6 * ctl.spent / result.steps:.1f} µs, replay + invariants "
          f"{1e6 * (wall - ctl.spent) / result.steps:.1f} µs)")
    print(f"verdict       {'PASS' if result.ok else 'FAIL'}: {len(result.violations)} violation(s) "
          f"{k['violations_by_invariant'] or ''}")
    for v in result.violations[:8]:
        print(f"              {v}")
    p50, p99 = (("–" if v is None else f"{v:.0f}") for v in (k["reaction_latency_p50_s"], k["reaction_latency_p99_s"]))
    print(f"energy        delivered {k['energy_delivered_kwh']:.0f} kWh, unmet {k['unmet_energy_kwh']:.1f} kWh, "
          f"feasible trucks at target {k['feasible_reached']}/{k['feasible_trucks']}, "
          f"cost {k['energy_cost']:.0f}")
    print(f"grid          peak import {k['peak_import_kw']:.0f} kW, limit violations {k['limit_violations']} "
          f"({k['limit_violation_s']:.0f} s, {k['energy_above_limit_kwh']:.1f} kWh above), "
          f"reaction p50/p99 {p50}/{p99} s over {k['reaction_events']} limit drop(s) needing a reduction")
    print(f"BESS / PV     charged {k['bess_charged_kwh']:.0f} kWh, discharged {k['bess_discharged_kwh']:.0f} kWh, "
          f"PV {k['pv_kwh']:.0f} kWh")
    print(f"messages      {k['setpoint_changes']} setpoint changes = {k['setpoint_changes_per_s']:.3f}/s "
          f"(busiest minute {k['setpoint_changes_busiest_minute']}), BESS {k['bess_setpoint_changes']}")
    if plots:
        from harness.smart.plots import plot_depot_day

        for p in plot_depot_day(result, plots):
            print(f"plot          {p}")
    ok = wall < TARGET_S and (fault is not None or controller != "reference" or result.ok)
    print()
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=DEFAULT)
    ap.add_argument("--controller", default="reference")
    ap.add_argument("--fault", default=None)
    ap.add_argument("--plots", default=None, help="write PNG plots into this directory")
    ap.add_argument("--all", action="store_true", help="every shipped scenario, one after the other")
    a = ap.parse_args()
    paths = shipped_scenarios() if a.all else [a.scenario]
    ok = all([bench(p, a.controller, a.fault, a.plots) for p in paths])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
