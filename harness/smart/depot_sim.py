"""Accelerated-time replay of a depot day, with every invariant checked at every step.

`replay(depot, controller)` runs the depot in simulated time (no sleeping) at its control
step (1 s by default): at each step the controller gets a `DepotState` and answers an
`Allocation`; the simulated chargers deliver exactly the setpoints (a plugged EVSE draws
what it is told, an idle one nothing) and the BESS does exactly its setpoint, so every
limit is checkable on the delivered power. Per step, vectorised over EVSEs:

| invariant | holds when |
|---|---|
| `site_limit` | grid import = Σ EVSE + BESS − PV ≤ allowed + tolerance; allowed = the limit in force, except for `reaction_time_s` after a change, when the higher of the old and new limit holds |
| `cabinet_limit` | Σ setpoints of a charger's EVSEs ≤ its cabinet limit |
| `evse_rating` | 0 ≤ setpoint ≤ EVSE rating |
| `truck_taper` | setpoint ≤ the truck's max power × taper at its SoC at the start of the step |
| `bess_power` | charge ≤ max_charge_kw, discharge ≤ max_discharge_kw |
| `bess_soc` | soc_min ≤ BESS SoC ≤ soc_max after the step |
| `energy_conservation` | energy into batteries (trucks, BESS with its efficiency) = delivered energy; breaks if energy is pushed into a full battery or drawn from an empty one |

and at each truck's departure:

| invariant | holds when |
|---|---|
| `target_missed` | a truck whose target was *feasible* alone (`depot.feasibility`) left more than `target_tolerance_kwh` short |
| `departure_priority` | a truck that missed a feasible target had been held (≥ 10 kW below what it could take) while trucks departing *later* got power over a constraint they shared with it (its cabinet, or the site limit when the site was binding: import within max(10 kW, 1 %) of the allowed limit) — more than `priority_tolerance_kwh` of it |

Trucks still plugged when the replay ends (departure after the end) are reported, not judged.
Invariants are judged at the control-step resolution, on the values at the start of the step
(a truck's taper limit at its SoC then), which is what a controller deciding at that step sees.

Consecutive violating steps of one invariant on one subject form one `Violation` episode
(start, end, worst value vs limit, energy above the limit for the site). KPIs: energy
delivered, unmet energy per truck and total, peak import, limit violations (count, total
duration, energy above), reaction latency after limit drops that needed a reduction
(p50/p99: first step the import is back under limit + tolerance), setpoint changes
(≈ SetChargingProfile messages, per second over the day and in the busiest minute),
energy cost, PV and BESS energy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .depot import SOC_GRID, Depot, Feasibility, Plug, clock, feasibility, full_power_table, plug_plan, time_table
from .dlb import Controller, DepotState

INVARIANTS: dict[str, str] = {
    "site_limit": "grid import ≤ site limit + tolerance (previous limit allowed for the reaction time after a change)",
    "cabinet_limit": "sum of a charger's EVSE setpoints ≤ its power cabinet limit",
    "evse_rating": "0 ≤ EVSE setpoint ≤ EVSE rating",
    "truck_taper": "EVSE setpoint ≤ the plugged truck's max power × taper(SoC)",
    "bess_power": "BESS charge/discharge power within its limits",
    "bess_soc": "BESS SoC within [soc_min, soc_max]",
    "energy_conservation": "energy stored in batteries equals energy delivered (with BESS efficiency)",
    "target_missed": "every truck whose target was feasible alone reaches it by departure",
    "departure_priority": "a truck that missed its target was not held back in favour of later departures",
}

THROTTLE_KW = 10.0       # "held back": setpoint at least this far below what the truck could take
EPS_KW = 1e-6


class ControllerError(RuntimeError):
    """The controller answered something that is not an allocation for this depot."""


@dataclass
class Violation:
    invariant: str
    subject: str               # "site", "charger C3", "EVSE C3-1", "truck T07", "BESS"
    t_start: float
    t_end: float               # end of the last violating step
    worst: float               # the worst value seen (kW, kWh, SoC …)
    limit: float               # the bound it broke at that moment
    unit: str
    message: str
    energy_kwh: float = 0.0    # site_limit: energy above the allowed limit

    @property
    def duration_s(self) -> float:
        return self.t_end - self.t_start

    def __str__(self) -> str:
        return f"[{self.invariant}] {clock(self.t_start)} {self.subject}: {self.message}"


@dataclass
class TruckOutcome:
    id: str
    evse: str | None
    arrival_s: float
    plug_s: float | None
    departure_s: float
    arrival_soc: float
    target_soc: float
    final_soc: float
    delivered_kwh: float
    unmet_kwh: float
    feasible: bool
    feasibility: str
    judged: bool               # False: still plugged when the replay ended
    reached: bool


class Judged:
    """Something with a list of invariant violations: the verdict reads off it."""

    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations

    def by_invariant(self, name: str) -> list[Violation]:
        return [v for v in self.violations if v.invariant == name]


@dataclass
class DepotResult(Judged):
    scenario: str
    controller: str
    checks: Any
    t_s: np.ndarray                       # start of each recorded window
    series: dict[str, np.ndarray]         # per window: import_kw (mean), import_max_kw, limit_kw, allowed_kw, ev_kw, bess_kw, bess_soc, pv_kw, price
    truck_kw: np.ndarray                  # (windows, trucks): mean power per truck
    truck_ids: list[str]
    violations: list[Violation]
    kpis: dict[str, Any]
    trucks: list[TruckOutcome]
    steps: int
    step_s: float
    wall_s: float


    def summary(self, max_violations: int = 10) -> str:
        k = self.kpis
        lines = [
            f"{self.scenario} with {self.controller}: {'PASS' if self.ok else 'FAIL'} — "
            f"{len(self.violations)} violation(s) in {self.steps} steps of {self.step_s:g} s "
            f"({self.wall_s:.2f} s wall, {k['speedup']:.0f}× real time)",
            f"  delivered {k['energy_delivered_kwh']:.1f} kWh, unmet {k['unmet_energy_kwh']:.1f} kWh, "
            f"feasible trucks reaching target {k['feasible_reached']}/{k['feasible_trucks']}, "
            f"peak import {k['peak_import_kw']:.1f} kW, "
            f"setpoint changes {k['setpoint_changes']} ({k['setpoint_changes_per_s']:.3f}/s)",
        ]
        for v in self.violations[:max_violations]:
            lines.append(f"  {v}")
        if len(self.violations) > max_violations:
            lines.append(f"  … {len(self.violations) - max_violations} more")
        return "\n".join(lines)


class _Episodes:
    """Merges consecutive violating steps of one (invariant, subject) into one Violation."""

    def __init__(self, start_s: float, step_s: float) -> None:
        self.start_s, self.step_s = start_s, step_s
        self.open: dict[tuple[str, str], list[Any]] = {}
        self.closed: list[Violation] = []

    def hit(self, k: int, invariant: str, subject: str, value: float, limit: float, unit: str,
            energy: float = 0.0, fmt: str = "") -> None:
        ep = self.open.get((invariant, subject))
        if ep is None:
            self.open[(invariant, subject)] = [k, k, value, limit, unit, energy, fmt]
            return
        ep[1] = k
        ep[5] += energy
        if value - limit > ep[2] - ep[3]:
            ep[2], ep[3] = value, limit

    def sweep(self, k: int) -> None:
        """Close the episodes not hit at step `k`."""
        for key in [key for key, ep in self.open.items() if ep[1] < k]:
            self._close(key)

    def close_all(self) -> None:
        for key in list(self.open):
            self._close(key)

    def _close(self, key: tuple[str, str]) -> None:
        k0, k1, worst, limit, unit, energy, fmt = self.open.pop(key)
        t0 = self.start_s + k0 * self.step_s
        t1 = self.start_s + (k1 + 1) * self.step_s
        msg = (fmt or "{worst:.3f} {unit} > {limit:.3f} {unit}").format(
            worst=worst, limit=limit, unit=unit, excess=worst - limit, duration=t1 - t0, energy=energy,
            neg_worst=-worst, neg_limit=-limit)
        msg += f" for {t1 - t0:g} s (until {clock(t1)})"
        self.closed.append(Violation(key[0], key[1], t0, t1, worst, limit, unit, msg, energy))

    def add(self, v: Violation) -> None:
        self.closed.append(v)


def _allowed_limit(depot: Depot, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[int, float]]]:
    """Per step: the limit in force, the limit allowed (reaction time after a drop), and the change steps."""
    sched = depot.site.grid_limit
    limit = np.asarray(sched.at(times), dtype=float)
    allowed = limit.copy()
    changes: list[tuple[int, float]] = []
    react = depot.checks.reaction_time_s
    pts = sched.points
    for (t_prev, v_prev), (t_c, v) in zip(pts, pts[1:]):
        if not depot.start_s < t_c < depot.end_s:
            continue
        k_c = depot.step_of(t_c)
        changes.append((k_c, v))
        if v_prev > v:
            k_end = depot.step_of(t_c + react)
            allowed[k_c:k_end] = np.maximum(allowed[k_c:k_end], v_prev)
    return limit, allowed, changes


def replay(depot: Depot, controller: Controller, *, record_every_s: float = 60.0) -> DepotResult:
    """Replay `depot` against `controller` in simulated time; see the module docstring."""
    wall0 = time.perf_counter()
    if hasattr(controller, "reset"):
        controller.reset()
    checks = depot.checks
    dt = float(depot.step_s)
    dt_h = dt / 3600.0
    K = depot.n_steps
    times = depot.start_s + np.arange(K) * dt
    G = SOC_GRID

    # --- site profiles per step (precomputed: the loop only indexes them)
    limit_a, allowed_a, limit_changes = _allowed_limit(depot, times)
    tol_a = checks.tolerance_kw + checks.tolerance_pct / 100.0 * allowed_a
    bound = (allowed_a + tol_a).tolist()
    allowed_l = allowed_a.tolist()
    bind_l = (allowed_a - np.maximum(10.0, 0.01 * allowed_a)).tolist()
    pv_a = (np.asarray(depot.site.pv.kw_at(times), dtype=float) if depot.site.pv else np.zeros(K))
    pv_l = pv_a.tolist()
    price_a = np.asarray(depot.site.tariff.price_at(times), dtype=float)
    price_l = price_a.tolist()
    limit_l = limit_a.tolist()
    times_l = times.tolist()

    # --- EVSEs
    evses = depot.evses
    E = len(evses)
    C = len(depot.chargers)
    rating = np.array([e.rating_kw for e in evses], dtype=float)
    cab_idx = np.array(depot.evse_cabinet, dtype=np.intp)
    cab_kw = np.array([c.cabinet_kw for c in depot.chargers], dtype=float)
    same_cab = cab_idx[:, None] == cab_idx[None, :]
    rating_eps = rating + EPS_KW
    cab_eps = cab_kw + EPS_KW

    # --- trucks and the plug plan
    trucks = depot.trucks
    N = len(trucks)
    plan = plug_plan(depot)
    feas = feasibility(depot, plan)
    events: dict[int, tuple[list[int], list[Plug]]] = {}
    for p in plan:
        if p.evse is None or p.plug_step >= p.unplug_step:
            continue
        events.setdefault(p.plug_step, ([], []))[1].append(p)
        if p.unplug_step < K:
            events.setdefault(p.unplug_step, ([], []))[0].append(p.truck)

    # --- per-EVSE slot state (the plugged truck's data lives in its EVSE's slot)
    slot_truck = np.full(E, -1, dtype=np.intp)
    truck_slot: dict[int, int] = {}
    cap_kwh = np.ones(E)
    e_kwh = np.zeros(E)
    target_kwh = np.zeros(E)
    kw_tab = np.zeros((E, G + 1))
    tau = np.zeros((E, G + 1))
    kw_flat, tau_flat = kw_tab.reshape(-1), tau.reshape(-1)     # views: 1-D take is the fast gather
    row0 = np.arange(E, dtype=np.intp) * (G + 1)
    tau_target = np.zeros(E)
    dep_s = np.full(E, math.inf)
    arr_s = np.full(E, math.inf)
    plugged = np.zeros(E, dtype=bool)
    plugged_f = np.zeros(E)
    e_arrival = np.zeros(N)
    final_e = np.full(N, math.nan)
    plug_time: dict[int, float] = {}
    later_site = np.zeros((E, E))
    later_cab = np.zeros((E, E))
    inv_pair = np.zeros((E, E))                       # kWh given to slot j while slot i was held back
    benefit: dict[int, dict[int, float]] = {}         # truck i → {later-departing truck j: kWh}

    bess = depot.site.bess
    eb = bess.initial_soc * bess.capacity_kwh if bess else 0.0
    eb0 = eb
    eta = bess.eta if bess else 1.0

    state = DepotState(
        t=depot.start_s, step_s=dt, evse_ids=[e.id for e in evses], evse_rating_kw=rating,
        evse_cabinet=cab_idx, cabinet_kw=cab_kw, plugged=plugged, ev_limit_kw=np.zeros(E),
        ev_need_kwh=np.zeros(E), ev_arrival_s=arr_s, ev_departure_s=dep_s,
        ev_time_to_target_s=np.zeros(E), site_limit_kw=limit_l[0] if K else 0.0, pv_kw=0.0,
        price=0.0, tariff=depot.site.tariff, bess=bess, bess_energy_kwh=eb,
    )

    episodes = _Episodes(depot.start_s, dt)
    outcomes: dict[int, TruckOutcome] = {}

    # --- recording
    imp_a = np.zeros(K)
    ev_a = np.zeros(K)
    pb_a = np.zeros(K)
    eb_a = np.zeros(K)
    chg_a = np.zeros(K, dtype=np.int32)
    R = max(1, int(round(record_every_s / dt)))
    W = (K + R - 1) // R
    truck_kw = np.zeros((W, N))
    truck_acc = np.zeros(N)
    occ_slots = np.zeros(0, dtype=np.intp)
    occ_trucks = np.zeros(0, dtype=np.intp)
    prev_p = np.zeros(E)
    prev_pb = 0.0
    bess_changes = 0
    lost_kwh = 0.0

    def refresh_occupancy() -> None:
        nonlocal occ_slots, occ_trucks, later_site, later_cab
        occ_slots = np.flatnonzero(plugged)
        occ_trucks = slot_truck[occ_slots]
        both = plugged[:, None] & plugged[None, :]
        ls = (dep_s[None, :] > dep_s[:, None]) & both
        later_site = ls.astype(float)
        later_cab = (ls & same_cab).astype(float)

    def unplug(i: int, k: int) -> None:
        s = truck_slot.pop(i)
        tr = trucks[i]
        # hand the inversion ledger over to truck level before the slot is reused
        for a in np.flatnonzero(inv_pair[:, s] > 0):
            benefit.setdefault(int(slot_truck[a]), {})[i] = benefit.get(int(slot_truck[a]), {}).get(i, 0.0) + inv_pair[a, s]
        for b in np.flatnonzero(inv_pair[s, :] > 0):
            j = int(slot_truck[b])
            benefit.setdefault(i, {})[j] = benefit.get(i, {}).get(j, 0.0) + inv_pair[s, b]
        inv_pair[:, s] = 0.0
        inv_pair[s, :] = 0.0
        final_e[i] = e_kwh[s]
        outcomes[i] = _outcome(depot, tr, i, evses[s].id, plug_time[i], e_arrival[i], e_kwh[s], feas[i], judged=True)
        _judge(depot, i, outcomes[i], feas[i], benefit.get(i, {}), episodes, k)
        slot_truck[s] = -1
        plugged[s] = False
        plugged_f[s] = 0.0
        cap_kwh[s] = 1.0
        e_kwh[s] = 0.0
        target_kwh[s] = 0.0
        kw_tab[s] = 0.0
        tau[s] = 0.0
        tau_target[s] = 0.0
        dep_s[s] = math.inf
        arr_s[s] = math.inf

    def plug(p: Plug, k: int) -> None:
        i, s = p.truck, int(p.evse)
        tr = trucks[i]
        truck_slot[i] = s
        slot_truck[s] = i
        plugged[s] = True
        plugged_f[s] = 1.0
        cap_kwh[s] = tr.capacity_kwh
        e_kwh[s] = tr.arrival_soc * tr.capacity_kwh
        e_arrival[i] = e_kwh[s]
        target_kwh[s] = tr.target_soc * tr.capacity_kwh
        kw_tab[s] = tr.max_kw * tr.taper.table(G)
        full = full_power_table(tr, min(rating[s], cab_kw[cab_idx[s]]), G)
        tau[s] = time_table(tr, full, G)
        tau_target[s] = float(np.interp(tr.target_soc, np.linspace(0, 1, G + 1), tau[s]))
        dep_s[s] = tr.departure_s
        arr_s[s] = tr.arrival_s
        plug_time[i] = depot.start_s + k * dt

    next_flush = R - 1
    w_idx = 0
    for k in range(K):
        t = times_l[k]
        ev_k = events.get(k)
        if ev_k is not None:
            for i in ev_k[0]:
                unplug(i, k)
            for p in ev_k[1]:
                plug(p, k)
            refresh_occupancy()
            state.churn = len(ev_k[0]) + len(ev_k[1])
        elif state.churn:
            state.churn = 0

        # --- what the controller sees (taper limit and time to target: linear interpolation in the SoC tables)
        x = e_kwh / cap_kwh
        np.minimum(x, 1.0, out=x)
        x *= G
        i0 = x.astype(np.intp)
        np.minimum(i0, G - 1, out=i0)
        w = x - i0
        j = row0 + i0
        lo = kw_flat.take(j)
        lim = lo + (kw_flat.take(j + 1) - lo) * w
        lo = tau_flat.take(j)
        ttt = tau_target - lo - (tau_flat.take(j + 1) - lo) * w
        np.maximum(ttt, 0.0, out=ttt)
        need = target_kwh - e_kwh
        np.maximum(need, 0.0, out=need)
        state.t = t
        state.ev_limit_kw = lim
        state.ev_need_kwh = need
        state.ev_time_to_target_s = ttt
        state.site_limit_kw = limit_l[k]
        pv = pv_l[k]
        state.pv_kw = pv
        state.price = price_l[k]
        state.bess_energy_kwh = eb

        alloc = controller.decide(state, t)
        try:
            p = np.asarray(alloc.evse_kw, dtype=float)
            pb = float(alloc.bess_kw) if bess else 0.0
        except (AttributeError, TypeError, ValueError) as exc:
            raise ControllerError(f"{controller.name} at {clock(t)}: not an Allocation ({exc})") from exc
        if p.shape != (E,) or not (math.isfinite(pb) and np.isfinite(p).all()):
            raise ControllerError(f"{controller.name} at {clock(t)}: allocation must be {E} finite EVSE "
                                  f"setpoints and a finite BESS setpoint, got shape {p.shape}")
        p = p * plugged_f                     # an idle EVSE draws nothing, whatever its setpoint

        # --- invariants on the delivered power
        ev = float(p.sum())
        imp = ev + pb - pv
        if imp > bound[k]:
            a = allowed_l[k]
            episodes.hit(k, "site_limit", "site", imp, a, "kW", (imp - a) * dt_h,
                         "grid import {worst:.1f} kW > allowed {limit:.1f} kW "
                         f"(+{bound[k] - a:.1f} kW tolerance), " "{energy:.2f} kWh above the limit")
        cap_now = np.minimum(lim, rating)
        if E and (float((p - cap_now).max()) > EPS_KW or float(p.min()) < -EPS_KW):
            for s in np.flatnonzero(p > rating_eps):
                episodes.hit(k, "evse_rating", f"EVSE {evses[s].id}", p[s], rating[s], "kW",
                             fmt="setpoint {worst:.1f} kW > rating {limit:.1f} kW")
            for s in np.flatnonzero(p < -EPS_KW):
                episodes.hit(k, "evse_rating", f"EVSE {evses[s].id}", -p[s], 0.0, "kW",
                             fmt="negative setpoint −{worst:.1f} kW (no V2G in the model)")
            for s in np.flatnonzero(p > lim + EPS_KW):
                episodes.hit(k, "truck_taper", f"truck {trucks[slot_truck[s]].id}", p[s], lim[s], "kW",
                             fmt=f"setpoint {{worst:.1f}} kW on EVSE {evses[s].id} > taper limit {{limit:.1f}} kW "
                                 f"at SoC {e_kwh[s] / cap_kwh[s]:.1%}")
        cab_sum = np.bincount(cab_idx, weights=p, minlength=C)
        if float((cab_sum - cab_eps).max()) > 0.0:
            for c in np.flatnonzero(cab_sum > cab_eps):
                episodes.hit(k, "cabinet_limit", f"charger {depot.chargers[c].id}", cab_sum[c], cab_kw[c], "kW",
                             fmt="cabinet load {worst:.1f} kW > cabinet limit {limit:.1f} kW")

        # --- advance the trucks
        e_new = e_kwh + p * dt_h
        over = e_new - cap_kwh
        if float(over.max()) > 1e-9:
            lost = float(over[over > 1e-9].sum())
            lost_kwh += lost
            np.minimum(e_new, cap_kwh, out=e_new)
            episodes.hit(k, "energy_conservation", "trucks", lost, 0.0, "kWh", lost,
                         "{energy:.3f} kWh delivered into full truck batteries (lost)")
        e_kwh = e_new

        # --- advance the BESS
        if bess:
            if pb > bess.max_charge_kw + EPS_KW:
                episodes.hit(k, "bess_power", "BESS", pb, bess.max_charge_kw, "kW",
                             fmt="charging at {worst:.1f} kW > max {limit:.1f} kW")
            elif -pb > bess.max_discharge_kw + EPS_KW:
                episodes.hit(k, "bess_power", "BESS", -pb, bess.max_discharge_kw, "kW",
                             fmt="discharging at {worst:.1f} kW > max {limit:.1f} kW")
            eb_new = eb + (pb * eta if pb >= 0 else pb / eta) * dt_h
            if eb_new < 0.0 or eb_new > bess.capacity_kwh:
                clamped = min(max(eb_new, 0.0), bess.capacity_kwh)
                lost_kwh += abs(eb_new - clamped)
                episodes.hit(k, "energy_conservation", "BESS", abs(eb_new - clamped), 0.0, "kWh",
                             abs(eb_new - clamped), "{energy:.3f} kWh set to flow into a full / out of an empty BESS")
                eb_new = clamped
            eb = eb_new
            if eb < bess.e_min_kwh - 1e-6 or eb > bess.e_max_kwh + 1e-6:
                soc = eb / bess.capacity_kwh
                if soc < bess.soc_min:   # stored negated so that "worst" is the lowest SoC
                    episodes.hit(k, "bess_soc", "BESS", -soc, -bess.soc_min, "SoC",
                                 fmt="SoC down to {neg_worst:.1%} < soc_min {neg_limit:.1%}")
                else:
                    episodes.hit(k, "bess_soc", "BESS", soc, bess.soc_max, "SoC",
                                 fmt="SoC {worst:.1%} above soc_max {limit:.1%}")
            if abs(pb - prev_pb) > 1e-3:
                bess_changes += 1
            prev_pb = pb

        if episodes.open:
            episodes.sweep(k)

        # --- priority ledger: power to later departures while a truck was held back
        held = (need > checks.target_tolerance_kwh) & (p < cap_now - THROTTLE_KW)
        if held.any():
            m = later_site if imp >= bind_l[k] else later_cab
            inv_pair[held] += m[held] * (p * dt_h)

        # --- records
        chg_a[k] = np.count_nonzero(np.abs(p - prev_p) > 1e-3)
        prev_p = p
        imp_a[k] = imp
        ev_a[k] = ev
        pb_a[k] = pb
        eb_a[k] = eb
        if occ_slots.size:
            truck_acc[occ_trucks] += p[occ_slots]
        if k == next_flush or k == K - 1:
            n = k - w_idx * R + 1
            truck_kw[w_idx] = truck_acc / n
            truck_acc[:] = 0.0
            w_idx += 1
            next_flush += R

    episodes.close_all()

    # --- trucks still plugged at the end, and trucks that never got an EVSE
    t_end = depot.start_s + K * dt
    for i, s in list(truck_slot.items()):
        final_e[i] = e_kwh[s]
        outcomes[i] = _outcome(depot, trucks[i], i, evses[s].id, plug_time[i], e_arrival[i], e_kwh[s], feas[i],
                               judged=trucks[i].departure_s <= t_end)
        if outcomes[i].judged:
            _judge(depot, i, outcomes[i], feas[i], benefit.get(i, {}), episodes, K)
    for i, tr in enumerate(trucks):
        if i not in outcomes:
            e0 = tr.arrival_soc * tr.capacity_kwh
            outcomes[i] = _outcome(depot, tr, i, None, None, e0, e0, feas[i], judged=tr.departure_s <= t_end)
            if outcomes[i].judged:
                _judge(depot, i, outcomes[i], feas[i], {}, episodes, K)

    violations = sorted(episodes.closed, key=lambda v: (v.t_start, v.invariant, v.subject))
    truck_list = [outcomes[i] for i in range(N)]
    wall = time.perf_counter() - wall0

    series = _downsample(R, K, imp_a, limit_a, allowed_a, ev_a, pb_a, eb_a, pv_a, price_a, bess)
    kpis = _kpis(depot, dt, imp_a, limit_a, tol_a, ev_a, pb_a, pv_a, price_a, chg_a, bess_changes, eb0, eb, eta,
                 limit_changes, violations, truck_list, lost_kwh, wall)
    return DepotResult(
        scenario=depot.name, controller=controller.name, checks=checks,
        t_s=times[::R].copy(), series=series, truck_kw=truck_kw, truck_ids=[t.id for t in trucks],
        violations=violations, kpis=kpis, trucks=truck_list, steps=K, step_s=dt, wall_s=wall,
    )


def _outcome(depot: Depot, tr: Any, i: int, evse: str | None, plug_s: float | None, e0: float, e1: float,
             feas: Feasibility, judged: bool) -> TruckOutcome:
    target = tr.target_soc * tr.capacity_kwh
    unmet = max(0.0, target - e1)
    return TruckOutcome(
        id=tr.id, evse=evse, arrival_s=tr.arrival_s, plug_s=plug_s, departure_s=tr.departure_s,
        arrival_soc=tr.arrival_soc, target_soc=tr.target_soc, final_soc=float(e1 / tr.capacity_kwh),
        delivered_kwh=float(e1 - e0), unmet_kwh=float(unmet), feasible=bool(feas.feasible),
        feasibility=feas.reason, judged=bool(judged), reached=bool(unmet <= depot.checks.target_tolerance_kwh),
    )


def _judge(depot: Depot, i: int, o: TruckOutcome, feas: Feasibility, benefit: dict[int, float],
           episodes: _Episodes, k: int) -> None:
    """Departure-time checks: a feasible target reached; no priority inversion behind a miss."""
    if o.reached or not feas.feasible:
        return
    t = o.departure_s
    tol = depot.checks.target_tolerance_kwh
    episodes.add(Violation(
        "target_missed", f"truck {o.id}", t, t, o.unmet_kwh, tol, "kWh",
        f"left at {clock(t)} with SoC {o.final_soc:.1%} < target {o.target_soc:.1%}: {o.unmet_kwh:.1f} kWh short "
        f"although feasible ({feas.reason})"))
    total = sum(benefit.values())
    if total > depot.checks.priority_tolerance_kwh:
        top = sorted(benefit.items(), key=lambda kv: -kv[1])[:3]
        names = ", ".join(f"{depot.trucks[j].id} (departs {clock(depot.trucks[j].departure_s)}) {e:.1f} kWh"
                          for j, e in top)
        episodes.add(Violation(
            "departure_priority", f"truck {o.id}", t, t, total, depot.checks.priority_tolerance_kwh, "kWh",
            f"departing {clock(t)} it missed its target while {total:.1f} kWh went to trucks departing later "
            f"over a shared constraint as it was held back: {names}"))


def _downsample(R: int, K: int, imp: np.ndarray, limit: np.ndarray, allowed: np.ndarray, ev: np.ndarray,
                pb: np.ndarray, eb: np.ndarray, pv: np.ndarray, price: np.ndarray, bess: Any) -> dict[str, np.ndarray]:
    W = (K + R - 1) // R
    pad = W * R - K

    def win(a: np.ndarray, how: str) -> np.ndarray:
        b = np.concatenate([a, np.full(pad, a[-1] if K else 0.0)]).reshape(W, R) if K else np.zeros((0, R))
        return getattr(b, how)(axis=1)

    return {
        "import_kw": win(imp, "mean"), "import_max_kw": win(imp, "max"),
        "limit_kw": win(limit, "min"), "allowed_kw": win(allowed, "max"),
        "ev_kw": win(ev, "mean"), "bess_kw": win(pb, "mean"),
        "bess_soc": win(eb, "max") / bess.capacity_kwh if bess else np.zeros(W),
        "pv_kw": win(pv, "mean"), "price": win(price, "mean"),
    }


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _kpis(depot: Depot, dt: float, imp: np.ndarray, limit: np.ndarray, tol: np.ndarray, ev: np.ndarray,
          pb: np.ndarray, pv: np.ndarray, price: np.ndarray, chg: np.ndarray, bess_changes: int, eb0: float,
          eb1: float, eta: float, limit_changes: list[tuple[int, float]], violations: list[Violation],
          trucks: list[TruckOutcome], lost_kwh: float, wall: float) -> dict[str, Any]:
    dt_h = dt / 3600.0
    K = len(imp)
    duration = K * dt
    # reaction latency after each limit change that needed a reduction
    latencies: list[float] = []
    unresolved = 0
    ends = [kc for kc, _ in limit_changes[1:]] + [K]
    for (kc, v), k_next in zip(limit_changes, ends):
        if kc == 0 or kc >= K or imp[kc - 1] <= v + tol[kc]:
            continue
        ok = np.flatnonzero(imp[kc:k_next] <= limit[kc:k_next] + tol[kc:k_next])
        if ok.size:
            latencies.append(float(ok[0]) * dt)
        else:
            unresolved += 1
            latencies.append(float(k_next - kc) * dt)   # a lower bound
    site = [v for v in violations if v.invariant == "site_limit"]
    judged = [o for o in trucks if o.judged]
    feasible = [o for o in judged if o.feasible]
    per_minute = max(1, int(round(60.0 / dt)))
    busiest = 0
    if K:
        pad = (-K) % per_minute
        busiest = int(np.concatenate([chg, np.zeros(pad, dtype=chg.dtype)]).reshape(-1, per_minute).sum(axis=1).max())
    pos_import = np.maximum(imp, 0.0)
    delivered = float(ev.sum() * dt_h)
    stored = sum(o.delivered_kwh for o in trucks)
    by_inv: dict[str, int] = {}
    for v in violations:
        by_inv[v.invariant] = by_inv.get(v.invariant, 0) + 1
    bess_in = float(np.clip(pb, 0, None).sum() * dt_h)
    bess_out = float(np.clip(-pb, 0, None).sum() * dt_h)
    return {
        "steps": K,
        "simulated_s": duration,
        "wall_s": wall,
        "speedup": duration / wall if wall > 0 else math.inf,
        "energy_delivered_kwh": delivered,
        "unmet_energy_kwh": float(sum(o.unmet_kwh for o in judged)),
        "unmet_by_truck_kwh": {o.id: round(o.unmet_kwh, 3) for o in judged if o.unmet_kwh > 0},
        "trucks": len(trucks),
        "trucks_judged": len(judged),
        "trucks_reached_target": int(sum(o.reached for o in judged)),
        "feasible_trucks": len(feasible),
        "feasible_reached": int(sum(o.reached for o in feasible)),
        "peak_import_kw": float(imp.max()) if K else 0.0,
        "peak_ev_kw": float(ev.max()) if K else 0.0,
        "grid_import_kwh": float(pos_import.sum() * dt_h),
        "grid_export_kwh": float(np.clip(-imp, 0, None).sum() * dt_h),
        "energy_cost": float((pos_import * price).sum() * dt_h),
        "pv_kwh": float(pv.sum() * dt_h),
        "bess_charged_kwh": bess_in,
        "bess_discharged_kwh": bess_out,
        "limit_violations": len(site),
        "limit_violation_s": float(sum(v.duration_s for v in site)),
        "energy_above_limit_kwh": float(sum(v.energy_kwh for v in site)),
        "limit_changes": len(limit_changes),
        "reaction_events": len(latencies),
        "reaction_unresolved": unresolved,
        "reaction_latency_p50_s": _percentile(latencies, 50),
        "reaction_latency_p99_s": _percentile(latencies, 99),
        "reaction_latency_max_s": max(latencies) if latencies else None,
        "setpoint_changes": int(chg.sum()),
        "setpoint_changes_per_s": float(chg.sum()) / duration if duration else 0.0,
        "setpoint_changes_busiest_minute": busiest,
        "bess_setpoint_changes": bess_changes,
        "energy_balance_residual_kwh": abs(delivered - stored - lost_kwh)
                                      + abs((eb1 - eb0) - (bess_in * eta - bess_out / eta) + 0.0)
                                      if depot.site.bess else abs(delivered - stored - lost_kwh),
        "violations": len(violations),
        "violations_by_invariant": by_inv,
    }
