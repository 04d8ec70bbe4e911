"""The e-truck depot model: trucks, chargers, the site (grid limit, BESS, PV, tariff).

Plain typed dataclasses, validated on construction, plus the two pieces of logic that
belong to the depot rather than to any controller:

- **the plug plan** (`plug_plan`): which EVSE each truck gets and when. Trucks arrive and
  leave at fixed times whatever their state of charge, so the plan does not depend on the
  DLB controller and is computed once, before a replay. Assignment rule: on arrival the
  truck takes the first free EVSE (depot order) of its own connector type; an MCS truck
  with no free MCS EVSE falls back to the first free CCS2 EVSE (MCS trucks carry a CCS2
  inlet too) and then charges at most at that EVSE's rating; a CCS2 truck never uses an
  MCS EVSE. A truck that finds nothing free queues (first come, first plugged) and is
  plugged when a compatible EVSE frees; if none frees before it leaves it never charges.
- **feasibility alone** (`feasibility`): could the truck have reached its target if it
  were alone in the depot? Defined precisely there; the replay's "every feasible truck
  reaches its target" check rests on it.

Times are seconds since midnight of day 0 of the scenario (a scenario starting at 16:00
starts at t = 57,600 s; 05:30 the next morning is t = 106,200 s). Tariff and PV are
functions of the time of day (t mod 86,400). Powers are kW, energies kWh, SoC a
fraction 0…1.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

DAY_S = 86_400
CCS2 = "CCS2"
MCS = "MCS"
CONNECTORS = (CCS2, MCS)
#: the highest DC power each connector standard carries (CCS2 up to 400 kW here, MCS 3.75 MW)
CONNECTOR_MAX_KW = {CCS2: 400.0, MCS: 3750.0}
TRUCK_CAPACITY_KWH = (300.0, 1000.0)
#: resolution of the SoC grid used for taper tables and time-to-target estimates
SOC_GRID = 1000


def clock(t_s: float) -> str:
    """`t` (seconds since day-0 midnight) as [+Nd ]HH:MM:SS, for messages."""
    t = int(round(t_s))
    day, rem = divmod(t, DAY_S)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    text = f"{h:02d}:{m:02d}:{s:02d}"
    return f"+{day}d {text}" if day else text


# --------------------------------------------------------------------------- trucks

@dataclass(frozen=True)
class TaperCurve:
    """Charge-power limit as a fraction of the truck's max power, as a function of SoC.

    Piecewise-linear through `points` ((soc, fraction), soc from 0 to 1 increasing). A full
    battery (SoC 1.0) accepts nothing, whatever the last point says.
    """

    points: tuple[tuple[float, float], ...] = ((0.0, 1.0), (0.8, 1.0), (1.0, 0.1))

    def __post_init__(self) -> None:
        pts = tuple((float(s), float(f)) for s, f in self.points)
        object.__setattr__(self, "points", pts)
        if len(pts) < 2:
            raise ValueError("taper curve needs at least two points")
        socs = [s for s, _ in pts]
        if socs[0] != 0.0 or socs[-1] != 1.0:
            raise ValueError(f"taper curve must span SoC 0.0 to 1.0, got {socs[0]} to {socs[-1]}")
        if any(b <= a for a, b in zip(socs, socs[1:])):
            raise ValueError(f"taper curve SoC points must increase strictly: {socs}")
        if any(not 0.0 <= f <= 1.0 for _, f in pts):
            raise ValueError("taper curve fractions must lie in 0…1")
        if any(f <= 0.0 for s, f in pts if s < 1.0):
            raise ValueError("taper curve fraction must be > 0 below SoC 1.0 (the truck would stall)")

    @classmethod
    def knee(cls, knee_soc: float = 0.8, end_fraction: float = 0.1) -> "TaperCurve":
        """Constant power up to `knee_soc`, then linear down to `end_fraction` at 100 %."""
        if not 0.0 < knee_soc < 1.0:
            raise ValueError(f"knee_soc must be in (0, 1), got {knee_soc}")
        return cls(((0.0, 1.0), (knee_soc, 1.0), (1.0, end_fraction)))

    def fraction(self, soc: float | np.ndarray) -> float | np.ndarray:
        xs, ys = zip(*self.points)
        f = np.interp(soc, xs, ys)
        f = np.where(np.asarray(soc) >= 1.0, 0.0, f)
        return float(f) if np.ndim(f) == 0 else f

    def table(self, grid: int = SOC_GRID) -> np.ndarray:
        """Fractions at SoC k/grid, k = 0…grid (the last one, a full battery, is 0)."""
        return np.asarray(self.fraction(np.linspace(0.0, 1.0, grid + 1)), dtype=float)


@dataclass(frozen=True)
class Truck:
    id: str
    capacity_kwh: float
    arrival_s: float
    arrival_soc: float
    target_soc: float
    departure_s: float
    max_kw: float
    connector: str = CCS2
    taper: TaperCurve = field(default_factory=TaperCurve)

    def __post_init__(self) -> None:
        lo, hi = TRUCK_CAPACITY_KWH
        if not lo <= self.capacity_kwh <= hi:
            raise ValueError(f"truck {self.id}: capacity {self.capacity_kwh} kWh outside {lo:g}–{hi:g} kWh")
        if self.connector not in CONNECTORS:
            raise ValueError(f"truck {self.id}: connector {self.connector!r} is not one of {CONNECTORS}")
        top = CONNECTOR_MAX_KW[self.connector]
        if not 0.0 < self.max_kw <= top:
            raise ValueError(f"truck {self.id}: max power {self.max_kw} kW outside (0, {top:g}] for {self.connector}")
        for name in ("arrival_soc", "target_soc"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"truck {self.id}: {name} {v} outside 0…1")
        if self.departure_s <= self.arrival_s:
            raise ValueError(f"truck {self.id}: departs ({clock(self.departure_s)}) before it arrives ({clock(self.arrival_s)})")

    @property
    def need_kwh(self) -> float:
        """Energy from arrival SoC to target SoC (0 if it arrives at or above target)."""
        return max(0.0, self.target_soc - self.arrival_soc) * self.capacity_kwh

    def limit_kw(self, soc: float) -> float:
        """What the truck accepts at `soc` (its BMS limit: max power × taper)."""
        return self.max_kw * float(self.taper.fraction(soc))


# --------------------------------------------------------------------------- chargers

@dataclass(frozen=True)
class Evse:
    id: str
    rating_kw: float
    connector: str = CCS2

    def __post_init__(self) -> None:
        if self.connector not in CONNECTORS:
            raise ValueError(f"EVSE {self.id}: connector {self.connector!r} is not one of {CONNECTORS}")
        top = CONNECTOR_MAX_KW[self.connector]
        if not 0.0 < self.rating_kw <= top:
            raise ValueError(f"EVSE {self.id}: rating {self.rating_kw} kW outside (0, {top:g}] for {self.connector}")

    def accepts(self, truck: Truck) -> bool:
        return self.connector == truck.connector or (truck.connector == MCS and self.connector == CCS2)


@dataclass(frozen=True)
class Charger:
    """A charger: one shared power cabinet feeding one or more EVSEs (dispensers)."""

    id: str
    evses: tuple[Evse, ...]
    cabinet_kw: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "evses", tuple(self.evses))
        if not self.evses:
            raise ValueError(f"charger {self.id}: no EVSEs")
        if self.cabinet_kw <= 0:
            raise ValueError(f"charger {self.id}: cabinet limit must be > 0 kW")


# --------------------------------------------------------------------------- site

@dataclass(frozen=True)
class StepSchedule:
    """A value that changes in steps: `points` are (t_s, value); the first value holds from −∞."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        pts = tuple((float(t), float(v)) for t, v in self.points)
        object.__setattr__(self, "points", pts)
        if not pts:
            raise ValueError("schedule needs at least one point")
        if any(b[0] <= a[0] for a, b in zip(pts, pts[1:])):
            raise ValueError("schedule times must increase strictly")

    @classmethod
    def constant(cls, value: float) -> "StepSchedule":
        return cls(((0.0, value),))

    def at(self, t: float | np.ndarray) -> float | np.ndarray:
        ts = np.array([p[0] for p in self.points])
        vs = np.array([p[1] for p in self.points])
        idx = np.clip(np.searchsorted(ts, t, side="right") - 1, 0, None)
        out = vs[idx]
        return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class Bess:
    """Battery storage. Power sign convention everywhere: + charging, − discharging."""

    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    soc_min: float = 0.1
    soc_max: float = 0.95
    round_trip_efficiency: float = 0.9
    initial_soc: float = 0.5

    def __post_init__(self) -> None:
        if self.capacity_kwh <= 0 or self.max_charge_kw < 0 or self.max_discharge_kw < 0:
            raise ValueError("BESS capacity must be > 0 and power limits ≥ 0")
        if not 0.0 <= self.soc_min < self.soc_max <= 1.0:
            raise ValueError(f"BESS needs 0 ≤ soc_min < soc_max ≤ 1, got {self.soc_min}, {self.soc_max}")
        if not self.soc_min <= self.initial_soc <= self.soc_max:
            raise ValueError(f"BESS initial_soc {self.initial_soc} outside [{self.soc_min}, {self.soc_max}]")
        if not 0.0 < self.round_trip_efficiency <= 1.0:
            raise ValueError("BESS round-trip efficiency must be in (0, 1]")

    @property
    def eta(self) -> float:
        """One-way efficiency (charging and discharging alike): √round-trip."""
        return math.sqrt(self.round_trip_efficiency)

    @property
    def e_min_kwh(self) -> float:
        return self.soc_min * self.capacity_kwh

    @property
    def e_max_kwh(self) -> float:
        return self.soc_max * self.capacity_kwh


@dataclass(frozen=True)
class PvProfile:
    """PV generation, piecewise-linear over the time of day: `points` are (seconds of day, kW)."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        pts = tuple(sorted((float(t), float(v)) for t, v in self.points))
        object.__setattr__(self, "points", pts)
        if not pts:
            raise ValueError("PV profile needs at least one point")
        if any(not 0 <= t <= DAY_S for t, _ in pts) or any(v < 0 for _, v in pts):
            raise ValueError("PV points need 0 ≤ time of day ≤ 24:00 and kW ≥ 0")

    @classmethod
    def bell(cls, peak_kw: float, sunrise_s: float, sunset_s: float, samples: int = 48) -> "PvProfile":
        """A clear-sky day: a half sine from sunrise to sunset peaking at `peak_kw`."""
        if not 0 <= sunrise_s < sunset_s <= DAY_S:
            raise ValueError("PV needs sunrise before sunset within the day")
        ts = np.linspace(sunrise_s, sunset_s, samples + 1)
        kw = peak_kw * np.sin(np.pi * (ts - sunrise_s) / (sunset_s - sunrise_s))
        kw[0] = kw[-1] = 0.0   # sin(π) is 1e-16, not 0: no PV after sunset
        pts = [(0.0, 0.0)] if sunrise_s > 0 else []
        pts += [(float(t), max(0.0, float(v))) for t, v in zip(ts, kw)]
        pts += [(float(DAY_S), 0.0)] if sunset_s < DAY_S else []
        return cls(tuple(pts))

    def kw_at(self, t: float | np.ndarray) -> float | np.ndarray:
        xs, ys = zip(*self.points)
        out = np.interp(np.mod(t, DAY_S), xs, ys)
        return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class Tariff:
    """Energy price by time of day: `periods` are (seconds of day the price starts, price/kWh).

    A step function repeating every day; the last period runs over midnight into the first.
    """

    periods: tuple[tuple[float, float], ...] = ((0.0, 0.20),)
    currency: str = "EUR"

    def __post_init__(self) -> None:
        ps = tuple(sorted((float(t), float(p)) for t, p in self.periods))
        object.__setattr__(self, "periods", ps)
        if not ps:
            raise ValueError("tariff needs at least one period")
        if any(not 0 <= t < DAY_S for t, _ in ps):
            raise ValueError("tariff period starts must lie in 00:00…23:59:59")
        if len({t for t, _ in ps}) != len(ps):
            raise ValueError("two tariff periods start at the same time")

    def _day_table(self) -> tuple[np.ndarray, np.ndarray]:
        starts = np.array([t for t, _ in self.periods])
        prices = np.array([p for _, p in self.periods])
        return starts, prices

    def price_at(self, t: float | np.ndarray) -> float | np.ndarray:
        starts, prices = self._day_table()
        idx = np.searchsorted(starts, np.mod(t, DAY_S), side="right") - 1  # −1 → last period (wraps)
        out = prices[idx]
        return float(out) if np.ndim(out) == 0 else out

    @property
    def min_price(self) -> float:
        return min(p for _, p in self.periods)

    @functools.lru_cache(maxsize=64)
    def _cheap_table(self, price: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Breakpoints of F(x) = seconds in [0, x) of one day with a price strictly below `price`."""
        starts, _ = self._day_table()
        bounds = np.concatenate([[0.0], starts[starts > 0], [float(DAY_S)]])
        cheap = (self.price_at(bounds[:-1]) < price) * np.diff(bounds)
        cum = np.concatenate([[0.0], np.cumsum(cheap)])
        return bounds, cum, float(cum[-1])

    def cheaper_seconds(self, t_from: float, t_to: np.ndarray | float, price: float) -> np.ndarray:
        """Seconds in [t_from, t_to) during which the price is strictly below `price` (vectorised over t_to)."""
        bounds, cum, per_day = self._cheap_table(float(price))

        def F(x: np.ndarray | float) -> np.ndarray:
            x = np.minimum(np.asarray(x, dtype=float), 1e9)   # an idle EVSE's departure is +inf
            days = np.floor(x / DAY_S)
            return days * per_day + np.interp(x - days * DAY_S, bounds, cum)

        return np.maximum(F(t_to) - F(t_from), 0.0)


@dataclass(frozen=True)
class Site:
    grid_limit: StepSchedule
    bess: Bess | None = None
    pv: PvProfile | None = None
    tariff: Tariff = field(default_factory=Tariff)

    def __post_init__(self) -> None:
        if any(v < 0 for _, v in self.grid_limit.points):
            raise ValueError("the grid import limit must be ≥ 0 kW")


@dataclass(frozen=True)
class Checks:
    """How the invariants are judged (stated with every verdict)."""

    tolerance_kw: float = 1.0            # grid import may exceed the limit by this much …
    tolerance_pct: float = 0.0           # … plus this share of the limit (for metered DUTs)
    reaction_time_s: float = 10.0        # after a limit change the previous (higher) limit holds this long
    target_tolerance_kwh: float = 0.5    # a truck within this of its target has reached it
    feasibility_margin_s: float = 120.0  # "feasible" needs the target reachable alone this long before departure
    priority_tolerance_kwh: float = 1.0  # inversion energy below this is not a priority violation

    def __post_init__(self) -> None:
        for name in ("tolerance_kw", "tolerance_pct", "reaction_time_s", "target_tolerance_kwh",
                     "feasibility_margin_s", "priority_tolerance_kwh"):
            if getattr(self, name) < 0:
                raise ValueError(f"checks.{name} must be ≥ 0")


@dataclass(frozen=True)
class Depot:
    """A whole scenario: the site, its chargers, the trucks, the simulated period."""

    name: str
    site: Site
    chargers: tuple[Charger, ...]
    trucks: tuple[Truck, ...]
    start_s: float
    end_s: float
    step_s: float = 1.0
    description: str = ""
    checks: Checks = field(default_factory=Checks)

    def __post_init__(self) -> None:
        object.__setattr__(self, "chargers", tuple(self.chargers))
        object.__setattr__(self, "trucks", tuple(self.trucks))
        if self.end_s <= self.start_s:
            raise ValueError("scenario end must be after its start")
        if self.step_s <= 0:
            raise ValueError("step must be > 0 s")
        if not self.chargers:
            raise ValueError("depot has no chargers")
        for kind, ids in (("truck", [t.id for t in self.trucks]), ("charger", [c.id for c in self.chargers]),
                          ("EVSE", [e.id for e in self.evses])):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"duplicate {kind} id(s): {', '.join(dup)}")

    @property
    def evses(self) -> list[Evse]:
        return [e for c in self.chargers for e in c.evses]

    @property
    def evse_cabinet(self) -> list[int]:
        """Index of the charger (cabinet) of each EVSE, in `evses` order."""
        return [ci for ci, c in enumerate(self.chargers) for _ in c.evses]

    @property
    def n_steps(self) -> int:
        return int(math.ceil((self.end_s - self.start_s) / self.step_s - 1e-9))

    def step_of(self, t: float) -> int:
        """The first control step at or after `t` (clamped to the simulated period)."""
        k = math.ceil((t - self.start_s) / self.step_s - 1e-9)
        return min(max(k, 0), self.n_steps)


# --------------------------------------------------------------------------- plug plan

@dataclass(frozen=True)
class Plug:
    """Where and when one truck charges. Steps are control steps of the replay."""

    truck: int                   # index into depot.trucks
    evse: int | None             # index into depot.evses; None: never found a free compatible EVSE
    plug_step: int               # first step plugged (arrival, or later if it queued)
    unplug_step: int             # first step gone (its departure)
    queued_s: float              # time spent waiting for an EVSE


def plug_plan(depot: Depot) -> list[Plug]:
    """Assign trucks to EVSEs in time order (see the module docstring for the rule)."""
    evses = depot.evses
    arrive = {i: depot.step_of(t.arrival_s) for i, t in enumerate(depot.trucks)}
    leave = {i: depot.step_of(t.departure_s) for i, t in enumerate(depot.trucks)}
    events: list[tuple[int, int, int]] = []   # (step, 0 = leave / 1 = arrive, truck): leaving first frees EVSEs
    for i in range(len(depot.trucks)):
        if arrive[i] < leave[i]:
            events += [(arrive[i], 1, i), (leave[i], 0, i)]
    events.sort()
    busy: dict[int, int] = {}                 # evse → truck
    queue: list[int] = []
    plugged: dict[int, tuple[int, int]] = {}  # truck → (evse, step)

    def pick(truck: Truck) -> int | None:
        for want in (truck.connector, CCS2):
            for e, ev in enumerate(evses):
                if e not in busy and ev.connector == want and ev.accepts(truck):
                    return e
        return None

    for step, kind, i in events:
        if kind == 1:
            e = pick(depot.trucks[i])
            if e is None:
                queue.append(i)
            else:
                busy[e] = i
                plugged[i] = (e, step)
            continue
        if i in queue:
            queue.remove(i)
        if i in plugged and busy.get(plugged[i][0]) == i:
            del busy[plugged[i][0]]
            for q in list(queue):             # first queued compatible truck takes a freed EVSE
                e = pick(depot.trucks[q])
                if e is not None:
                    queue.remove(q)
                    busy[e] = q
                    plugged[q] = (e, step)
    plan = []
    for i, t in enumerate(depot.trucks):
        e, s = plugged.get(i, (None, leave[i]))
        plan.append(Plug(truck=i, evse=e, plug_step=s, unplug_step=leave[i],
                         queued_s=max(0, s - arrive[i]) * depot.step_s))
    return plan


# --------------------------------------------------------------------------- feasibility

def full_power_table(truck: Truck, cap_kw: float, grid: int = SOC_GRID) -> np.ndarray:
    """Max power per SoC cell [k/grid, (k+1)/grid): the truck's taper at the cell's lower edge capped at `cap_kw`."""
    return np.minimum(truck.max_kw * truck.taper.table(grid)[:-1], cap_kw)


def time_table(truck: Truck, power_kw: np.ndarray, grid: int = SOC_GRID) -> np.ndarray:
    """Seconds to charge from SoC 0 to SoC k/grid at `power_kw` per cell (k = 0…grid); ∞-free (1e12 for 0 kW)."""
    cell_kwh = truck.capacity_kwh / grid
    dt = np.where(power_kw > 0, cell_kwh * 3600.0 / np.maximum(power_kw, 1e-12), 1e12)
    return np.concatenate([[0.0], np.cumsum(dt)])


@dataclass(frozen=True)
class Feasibility:
    feasible: bool
    finish_s: float | None       # when it would reach target alone (None: never before departure)
    reason: str


def feasibility(depot: Depot, plan: Sequence[Plug]) -> list[Feasibility]:
    """Could each truck have reached its target alone?

    Definition: the truck charges alone in the depot (no other truck, no BESS, no PV) on the
    EVSE the plug plan gave it, from its plug-in step to its departure step, at every moment
    at the highest power allowed by its taper curve × max power, the EVSE rating, its
    charger's cabinet limit and the site grid limit in force (the limit schedule as it
    changes over time). It is *feasible* if it reaches its target SoC at least
    `checks.feasibility_margin_s` before departure. A truck that arrives at or above target
    is feasible; a truck that never got an EVSE is not.
    """
    grid = SOC_GRID
    evses, cab_of = depot.evses, depot.evse_cabinet
    margin = depot.checks.feasibility_margin_s
    socs = np.linspace(0.0, 1.0, grid + 1)
    out = []
    for p in plan:
        truck = depot.trucks[p.truck]
        if truck.arrival_soc >= truck.target_soc:
            out.append(Feasibility(True, truck.arrival_s, "arrives at or above target"))
            continue
        if p.evse is None:
            out.append(Feasibility(False, None, "no compatible EVSE free during its stay"))
            continue
        cap = min(evses[p.evse].rating_kw, depot.chargers[cab_of[p.evse]].cabinet_kw)
        full = full_power_table(truck, cap, grid)
        t0 = depot.start_s + p.plug_step * depot.step_s
        t_end = depot.start_s + p.unplug_step * depot.step_s
        # the grid-limit segments overlapping [t0, t_end)
        cuts = [t0] + [t for t, _ in depot.site.grid_limit.points if t0 < t < t_end] + [t_end]
        soc, finish = truck.arrival_soc, None
        for a, b in zip(cuts, cuts[1:]):
            limit = float(depot.site.grid_limit.at(a))
            tau = time_table(truck, np.minimum(full, limit), grid)
            t_soc = float(np.interp(soc, socs, tau))
            t_need = float(np.interp(truck.target_soc, socs, tau)) - t_soc
            if t_need <= b - a:
                finish = a + t_need
                break
            soc = float(np.interp(t_soc + (b - a), tau, socs))
        if finish is None:
            out.append(Feasibility(False, None, "cannot reach target alone before departure"))
        elif finish > t_end - margin:
            out.append(Feasibility(False, finish, f"alone it would finish at {clock(finish)}, "
                                                  f"less than {margin:g} s before departure"))
        else:
            out.append(Feasibility(True, finish, f"alone it would finish at {clock(finish)}"))
    return out
