"""Depot DLB through OCPP 2.0.1: a full depot day, every charger a websocket, in accelerated time.

The harness plays every charger (and the BESS) of the scenario over loopback websockets
against the built-in CSMS simulator's depot controller; one control step per simulated
second; every frame schema-checked both ways; every depot invariant checked at every
step by the same replay as bench/depot_day.py. Prints, honestly:

- wall time and process CPU time of the whole run (set-up included), the ratio to real
  time, µs per control step;
- OCPP traffic: CALLs and frames (CALL + CALLRESULT/CALLERROR, both directions), frames
  per second of wall time, per action;
- the same scenario replayed in-process against the same controller (no OCPP), so the
  cost of going through OCPP is visible;
- verdict and KPIs.

    python bench/depot_ocpp.py [--scenario NAME|PATH] [--fault NAME] [--duration 4h]
                               [--meter-interval 60] [--out DIR] [--no-inprocess]

Exit status 1 if the clean reference breaks an invariant over OCPP.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from harness.depot.config import load_depot
from harness.depot.run import RunOptions, run_depot
from harness.smart.depot_sim import replay
from harness.smart.dlb import build_controller

DEFAULT = "day_50_trucks_mcs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=DEFAULT)
    ap.add_argument("--fault", default=None, help="CSMS fault, e.g. dlb_slow_reaction")
    ap.add_argument("--duration", default=None, help="cut the scenario, e.g. 4h")
    ap.add_argument("--meter-interval", type=float, default=60.0)
    ap.add_argument("--out", default=None, help="write KPIs, violations and plots here")
    ap.add_argument("--no-inprocess", action="store_true", help="skip the in-process comparison replay")
    a = ap.parse_args()

    depot = load_depot(a.scenario, a.duration)
    sim_s = depot.end_s - depot.start_s
    print(f"scenario      {depot.name}: {len(depot.trucks)} trucks, {len(depot.evses)} EVSEs on "
          f"{len(depot.chargers)} chargers{' + BESS' if depot.site.bess else ''}, {sim_s / 3600:g} h at "
          f"{depot.step_s:g} s = {depot.n_steps} steps; {os.cpu_count()} CPU(s), load {os.getloadavg()[0]:.1f}")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    r = run_depot(depot, fault=a.fault, options=RunOptions(meter_interval_s=a.meter_interval))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    k, o = r.kpis, r.kpis["ocpp"]
    print(f"csms          {r.csms}; {o['stations']} station websockets on loopback")
    print(f"wall time     {wall:.1f} s (process CPU {cpu:.1f} s; both sides of the wire in this process)")
    print(f"speed-up      {sim_s / wall:,.0f}× real time, {1e6 * wall / depot.n_steps:.0f} µs per control step")
    print(f"OCPP          {o['calls']} CALLs, {o['frames']} frames = {o['frames'] / wall:,.0f} frames/s wall "
          f"({o['calls'] / wall:,.0f} CALL round trips/s), {o['calls_per_simulated_s']:.2f} CALLs per simulated s")
    for action, n in list(o["calls_by_action"].items())[:8]:
        print(f"              {n:7d}  {action}")
    print(f"profiles      {o['set_charging_profile']} SetChargingProfile ({o['profiles_rejected']} rejected), "
          f"plug-in → first TxProfile p50/p99 {o['plug_in_to_tx_profile_p50_s']}/{o['plug_in_to_tx_profile_p99_s']} s, "
          f"protocol problems {o['protocol_problems']}")
    print(f"verdict       {'PASS' if r.ok else 'FAIL'}: {len(r.violations)} violation(s) {k['violations_by_invariant'] or ''}")
    for v in r.violations[:8]:
        print(f"              {v}")
    p50, p99 = (("–" if v is None else f"{v:.0f}") for v in (k["reaction_latency_p50_s"], k["reaction_latency_p99_s"]))
    print(f"energy        delivered {k['energy_delivered_kwh']:.0f} kWh, unmet {k['unmet_energy_kwh']:.1f} kWh, "
          f"feasible trucks at target {k['feasible_reached']}/{k['feasible_trucks']}, cost {k['energy_cost']:.0f}")
    print(f"grid          peak import {k['peak_import_kw']:.0f} kW, limit violations {k['limit_violations']}, "
          f"reaction p50/p99 {p50}/{p99} s over {k['reaction_events']} limit drop(s) needing a reduction")
    print(f"BESS / PV     charged {k['bess_charged_kwh']:.0f} kWh, discharged {k['bess_discharged_kwh']:.0f} kWh, "
          f"PV {k['pv_kwh']:.0f} kWh")
    if not a.no_inprocess:
        t0 = time.perf_counter()
        ref = replay(depot, build_controller("reference", fault=(a.fault or "")[4:] or None))
        t_in = time.perf_counter() - t0
        print(f"in-process    same scenario, same controller, no OCPP: {t_in:.1f} s wall, "
              f"{'PASS' if ref.ok else 'FAIL'}, delivered {ref.kpis['energy_delivered_kwh']:.0f} kWh, "
              f"{ref.kpis['setpoint_changes']} setpoint changes → OCPP costs {wall / t_in:.1f}× the replay")
    if a.out:
        from harness.depot.artifacts import write_artifacts

        files = write_artifacts(r, a.out)
        print(f"wrote         {len(files)} files to {a.out}")
    return 0 if (r.ok or a.fault) else 1


if __name__ == "__main__":
    sys.exit(main())
