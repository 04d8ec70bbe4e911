"""Dynamic load balancing controllers for the depot: the interface, the reference, faults.

A controller sees a `DepotState` once per control step and answers an `Allocation`: a
power setpoint per EVSE (what a SetChargingProfile would carry) and a BESS setpoint
(+ charge / − discharge). It must keep

    grid import = Σ EVSE setpoints + BESS − PV ≤ site limit,

every EVSE within its rating and its truck's taper limit, every cabinet within its limit,
and the BESS within its power and SoC limits. The replay (`depot_sim`) checks all of it.

**Reference controller** (`ReferenceController`): departure-aware, never equal sharing.

1. Each plugged truck *wants* what it can take now: min(taper limit at its SoC, EVSE
   rating), rounded down to `quantum_kw` steps (so a tapering truck does not cause a new
   setpoint every second), and never more than finishes its remaining energy this step.
2. Priority is least laxity first: slack = (departure − now) − time to target at full
   power alone (taper-aware). Slack is bucketed (`slack_bucket_s`) with earliest departure
   breaking ties inside a bucket, which avoids the setpoint churn of pure least-laxity.
3. Power is handed out greedily in priority order under, jointly, each cabinet's limit and
   the site budget = site limit + PV + what the BESS may discharge now (peak shaving).
   The grid import limit therefore holds by construction; rounding is always downward.
4. Tariff: while the price is above the cheapest price still to come before a truck's
   departure, the truck is *deferred* if the cheaper hours before its departure give it
   ≥ `defer_factor` × its full-power time to target + `defer_margin_s`, and all plugged
   trucks' remaining energy fits in `defer_share` of the site limit over the tightest
   deferred truck's cheaper hours. Deferred trucks get only PV surplus.
5. BESS: discharges exactly what EV demand needs beyond grid + PV; otherwise charges
   from PV surplus, and from the grid in the cheapest tariff period, with the headroom
   left under the site limit; never outside its SoC window or power limits.

**Faults** (`DLB_FAULTS`, `build_controller(fault=…)`): each breaks exactly one of those
behaviours, the way a real DLB product gets it wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .depot import Bess, Tariff

DLB_FAULTS: dict[str, str] = {
    "ignores_site_limit_under_churn":
        "for 30 s after any plug-in or unplug the controller allocates as if there were no site limit "
        "(every truck gets what it can take; cabinets and ratings still respected)",
    "first_come_first_served":
        "priority by arrival time instead of departure/laxity: the first truck plugged in is served first",
    "forgets_bess_limits":
        "the BESS is driven without its SoC window and power limits (discharges below soc_min and "
        "above max_discharge_kw, charges above max_charge_kw)",
    "slow_reaction":
        "a change of the site limit is applied only 60 s after it took effect",
}

CHURN_BLIND_S = 30.0
SLOW_REACTION_S = 60.0


class UnknownDlbFault(ValueError):
    """No DLB fault of that name."""


# --------------------------------------------------------------------------- interface

@dataclass
class DepotState:
    """What a controller sees at one control step. Per-EVSE arrays (index = depot EVSE order).

    The replay updates these in place every step: read them, don't keep them.
    An idle EVSE has ev_limit_kw = ev_need_kwh = 0 and ev_departure_s = +inf.
    """

    t: float                          # seconds since day-0 midnight
    step_s: float
    evse_ids: list[str]
    evse_rating_kw: np.ndarray        # (E,)
    evse_cabinet: np.ndarray          # (E,) int: charger index
    cabinet_kw: np.ndarray            # (C,)
    plugged: np.ndarray               # (E,) bool
    ev_limit_kw: np.ndarray           # (E,) what the truck accepts now (max power × taper at its SoC)
    ev_need_kwh: np.ndarray           # (E,) energy to its target SoC
    ev_arrival_s: np.ndarray          # (E,)
    ev_departure_s: np.ndarray        # (E,)
    ev_time_to_target_s: np.ndarray   # (E,) alone at full power (taper, rating, cabinet), ignoring the site limit
    site_limit_kw: float
    pv_kw: float
    price: float
    tariff: Tariff
    bess: Bess | None
    bess_energy_kwh: float
    churn: int = 0                    # plug-ins + unplugs at this step


@dataclass
class Allocation:
    evse_kw: np.ndarray               # (E,) power setpoint per EVSE, kW ≥ 0
    bess_kw: float = 0.0              # + charge, − discharge


class Controller(Protocol):
    name: str

    def decide(self, state: DepotState, t: float) -> Allocation: ...


# --------------------------------------------------------------------------- helpers

def bess_headroom(state: DepotState, *, ignore_limits: bool = False) -> tuple[float, float]:
    """(max discharge kW, max charge kW) the BESS can do this step without leaving its limits."""
    b = state.bess
    if b is None:
        return 0.0, 0.0
    per_h = 3600.0 / state.step_s
    e = state.bess_energy_kwh
    if ignore_limits:   # the forgets_bess_limits fault: only physics (empty / full) stops it
        return max(0.0, e * b.eta * per_h), max(0.0, (b.capacity_kwh - e) / b.eta * per_h)
    dis = min(b.max_discharge_kw, max(0.0, (e - b.e_min_kwh) * b.eta * per_h))
    ch = min(b.max_charge_kw, max(0.0, (b.e_max_kwh - e) / b.eta * per_h))
    return dis, ch


def wants(state: DepotState, quantum_kw: float) -> np.ndarray:
    """What each EVSE's truck can take this step, rounded down to `quantum_kw`, capped by its need."""
    cap = np.minimum(state.ev_limit_kw, state.evse_rating_kw)
    if quantum_kw > 0:
        cap = np.where(cap >= quantum_kw, np.floor(cap / quantum_kw) * quantum_kw, cap)
    need_kw = state.ev_need_kwh * (3600.0 / state.step_s)
    return np.where(state.ev_need_kwh > 1e-9, np.minimum(cap, need_kw), 0.0)


def greedy(want: np.ndarray, order: np.ndarray, cabinet: np.ndarray, cabinet_free: np.ndarray,
           budget: float, quantum_kw: float) -> np.ndarray:
    """Serve `order` (EVSE indices, highest priority first): each gets min(want, its cabinet's
    free power, the budget left); a partial grant is rounded down to `quantum_kw`.

    A plain loop over the EVSEs that want power: measured here faster than a two-pass
    numpy formulation (cumulative sums per cabinet, then over the site) up to ≥ 60 EVSEs —
    8.5 µs vs 43 µs at 10, 27 µs vs 38 µs at 60 — because each numpy call costs ≈ 1 µs.
    """
    grant = [0.0] * len(want)
    w = want.tolist()
    cab = cabinet.tolist()
    free = cabinet_free.tolist()
    for e in order.tolist():
        if budget <= 1e-9:
            break
        c = cab[e]
        x = w[e]
        g = min(x, free[c], budget)
        if g < x - 1e-9 and quantum_kw > 0:
            g = (g // quantum_kw) * quantum_kw
        if g > 0:
            grant[e] = g
            free[c] -= g
            budget -= g
    return np.array(grant)


def bess_setpoint(state: DepotState, ev_kw: float, limit_kw: float, dis_kw: float, ch_kw: float,
                  grid_charge: bool) -> float:
    """Discharge what EV load needs beyond grid + PV; else charge from PV surplus (and grid if allowed)."""
    if state.bess is None:
        return 0.0
    net = ev_kw - state.pv_kw
    if net > limit_kw:
        return -min(dis_kw, net - limit_kw)
    if grid_charge:
        return min(ch_kw, limit_kw - net)
    return min(ch_kw, max(0.0, -net))


# --------------------------------------------------------------------------- reference

@dataclass
class ReferenceController:
    """Departure-aware reference DLB controller (see the module docstring); `fault` seeds one bug."""

    fault: str | None = None
    quantum_kw: float = 5.0
    slack_bucket_s: float = 900.0
    use_tariff: bool = True
    defer_factor: float = 1.5
    defer_margin_s: float = 1800.0
    defer_share: float = 0.6
    name: str = field(init=False)
    defer_refresh_s: float = 60.0
    churn_blind_s: float = CHURN_BLIND_S        # ignores_site_limit_under_churn: how long it is blind
    reaction_delay_s: float = SLOW_REACTION_S   # slow_reaction: how late a limit change is applied
    _last_churn: float = field(init=False, default=-math.inf)
    _limits_seen: list[tuple[float, float]] = field(init=False, default_factory=list)
    _defer_cache: tuple[float, tuple[float, float], np.ndarray | None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in DLB_FAULTS:
            raise UnknownDlbFault(f"unknown DLB fault {self.fault!r}; known: {', '.join(DLB_FAULTS)}")
        self.name = "reference" + (f"[{self.fault}]" if self.fault else "")

    def reset(self) -> None:
        self._last_churn = -math.inf
        self._limits_seen = []
        self._defer_cache = None

    # --- what the controller believes the site limit is
    def _limit(self, s: DepotState, t: float) -> float:
        if self.fault == "slow_reaction":
            seen = self._limits_seen
            if not seen or seen[-1][1] != s.site_limit_kw:
                seen.append((t, s.site_limit_kw))
            applied = seen[0][1]
            for t_seen, v in seen:
                if t_seen <= t - self.reaction_delay_s:
                    applied = v
            return applied
        if self.fault == "ignores_site_limit_under_churn":
            if s.churn:
                self._last_churn = t
            if t - self._last_churn < self.churn_blind_s:
                return math.inf
        return s.site_limit_kw

    def decide(self, s: DepotState, t: float) -> Allocation:
        limit = self._limit(s, t)
        min_price = s.tariff.min_price
        dis_kw, ch_kw = bess_headroom(s, ignore_limits=self.fault == "forgets_bess_limits")
        want = wants(s, self.quantum_kw)
        active = np.flatnonzero(want > 0)
        alloc = np.zeros_like(want)
        if active.size:
            if self.fault == "first_come_first_served":
                order = active[np.lexsort((active, s.ev_arrival_s[active]))]
            else:
                slack = (s.ev_departure_s[active] - t) - s.ev_time_to_target_s[active]
                bucket = np.floor(slack / self.slack_bucket_s)
                order = active[np.lexsort((active, s.ev_departure_s[active], bucket))]
            deferred = self._deferred_cached(s, t, active, limit, min_price)
            cab_free = s.cabinet_kw.astype(float)
            if deferred is not None:
                firm = order[~deferred[order]]
                later = order[deferred[order]]
            else:
                firm, later = order, order[:0]
            alloc = greedy(want, firm, s.evse_cabinet, cab_free, limit + s.pv_kw + dis_kw, self.quantum_kw)
            if later.size:
                cab_free = cab_free - np.bincount(s.evse_cabinet, weights=alloc, minlength=len(cab_free))
                pv_surplus = min(s.pv_kw - float(alloc.sum()), limit + s.pv_kw + dis_kw - float(alloc.sum()))
                alloc += greedy(want, later, s.evse_cabinet, cab_free, pv_surplus, self.quantum_kw)
        grid_charge = s.price <= min_price + 1e-9
        bess = bess_setpoint(s, float(alloc.sum()), limit, dis_kw, ch_kw, grid_charge)
        return Allocation(alloc, bess)

    def _deferred_cached(self, s: DepotState, t: float, active: np.ndarray, limit: float,
                         min_price: float) -> np.ndarray | None:
        """The deferral decision is re-taken on plug-in/unplug, a price or limit change, or every
        `defer_refresh_s` — it moves slowly, and recomputing it every second is most of the
        controller's cost. A truck that finished meanwhile simply wants nothing."""
        c = self._defer_cache
        if c is None or s.churn or t >= c[0] or c[1] != (s.price, limit):
            self._defer_cache = c = (t + self.defer_refresh_s, (s.price, limit),
                                     self._deferred(s, t, active, limit, min_price))
        return c[2]

    def _deferred(self, s: DepotState, t: float, active: np.ndarray, limit: float,
                  min_price: float) -> np.ndarray | None:
        """Trucks that can wait for cheaper hours (None: nobody waits)."""
        if not self.use_tariff or s.price <= min_price + 1e-9:
            return None
        dep = s.ev_departure_s[active]
        cheaper = s.tariff.cheaper_seconds(t, dep, s.price)
        ok = cheaper >= self.defer_factor * s.ev_time_to_target_s[active] + self.defer_margin_s
        if not ok.any() or not math.isfinite(limit):
            return None
        if float(s.ev_need_kwh.sum()) > self.defer_share * limit * float(cheaper[ok].min()) / 3600.0:
            return None
        out = np.zeros(len(s.ev_need_kwh), dtype=bool)
        out[active[ok]] = True
        return out


# --------------------------------------------------------------------------- equal share

@dataclass
class EqualShareController:
    """Plain equal sharing (for comparison): every truck gets the same share of grid + PV + BESS,
    water-filled up to what it can take; an over-full cabinet is scaled down pro rata. No
    departure awareness, no tariff."""

    name: str = "equal_share"

    def reset(self) -> None:
        pass

    def decide(self, s: DepotState, t: float) -> Allocation:
        dis_kw, ch_kw = bess_headroom(s)
        want = wants(s, 0.0)
        budget = s.site_limit_kw + s.pv_kw + dis_kw
        alloc = np.minimum(want, water_level(want[want > 0], budget))
        cab_sum = np.bincount(s.evse_cabinet, weights=alloc, minlength=len(s.cabinet_kw))
        scale = np.where(cab_sum > s.cabinet_kw, s.cabinet_kw / np.maximum(cab_sum, 1e-12), 1.0)
        alloc = alloc * scale[s.evse_cabinet]
        bess = bess_setpoint(s, float(alloc.sum()), s.site_limit_kw, dis_kw, ch_kw, grid_charge=False)
        return Allocation(alloc, bess)


def water_level(caps: np.ndarray, budget: float) -> float:
    """The level L with Σ min(cap, L) = budget (∞ if everything fits)."""
    if caps.size == 0 or caps.sum() <= budget:
        return math.inf
    c = np.sort(caps)
    n = len(c)
    level = (budget - (np.cumsum(c) - c)) / (n - np.arange(n))
    k = int(np.argmax(level <= c))
    return max(0.0, float(level[k]))


# --------------------------------------------------------------------------- factory

CONTROLLERS = ("reference", "equal_share")


def build_controller(name: str = "reference", fault: str | None = None, **params: float) -> Controller:
    """A controller by name; `fault` (one of `DLB_FAULTS`) seeds the reference controller with one bug."""
    if name == "reference":
        return ReferenceController(fault=fault, **params)
    if name == "equal_share":
        if fault:
            raise UnknownDlbFault("faults apply to the reference controller only")
        return EqualShareController(**params)
    raise ValueError(f"unknown controller {name!r}; known: {', '.join(CONTROLLERS)}")
