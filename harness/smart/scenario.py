"""Depot scenarios as YAML (`testcases/depot/scenarios/*.yaml`) → `depot.Depot`.

Every problem is reported at once as file:line:column: message, with a hint where one
helps (unknown keys get a "did you mean"). The format:

```yaml
name: overnight_40_trucks_2MW_bess_pv      # default: the file name
description: 40 trucks, 2 MW grid, 1 MWh BESS, PV, overnight
start: "16:00"                 # time of day the replay starts (day 0)
duration: 16h                  # or  end: "08:00"  (first occurrence after start)
step_s: 1                      # control step (default 1 s)
checks:                        # optional, defaults shown
  {tolerance_kw: 1, tolerance_pct: 0, reaction_time_s: 10, target_tolerance_kwh: 0.5,
   feasibility_margin_s: 120, priority_tolerance_kwh: 1}
site:
  grid_limit_kw: 2000          # a constant limit, or a step function:
  # grid_limit_schedule: [{at: "16:00", kw: 2000}, {at: "02:00", kw: 1200}]
  bess: {capacity_kwh: 1000, max_charge_kw: 500, max_discharge_kw: 500,
         soc_min: 0.1, soc_max: 0.95, round_trip_efficiency: 0.9, initial_soc: 0.5}
  pv: {peak_kw: 400, sunrise: "06:30", sunset: "20:30"}   # or points: [["06:00", 0], ["13:00", 380], …]
  tariff:                      # price per kWh by time of day, repeating daily
    currency: EUR
    periods: [{from: "00:00", price: 0.12}, {from: "07:00", price: 0.28}, {from: "22:00", price: 0.12}]
chargers:
  - id: "C{n}"                 # {n} numbers the copies 1…count
    count: 10
    cabinet_kw: 700            # shared power cabinet
    evses: [{rating_kw: 350, type: CCS2, count: 2}]     # EVSE ids: C1-1, C1-2
trucks:                        # explicit trucks (optional)
  - {id: T1, capacity_kwh: 540, max_kw: 350, type: CCS2, arrival: "17:00", soc: 0.2,
     target_soc: 0.9, departure: "05:00", taper: {knee_soc: 0.8, end_fraction: 0.1}}
fleet:                         # generated trucks (optional; seeded, so reproducible)
  seed: 7
  count: 40
  id_prefix: T
  arrival: {from: "16:30", to: "20:30"}
  departure: {from: "04:30", to: "07:00"}      # or  dwell: {min: 8h, max: 11h}
  soc: {min: 0.1, max: 0.4}                    # uniform, or {mean: 0.25, sd: 0.08}
  target_soc: 0.9                              # or {min: 0.8, max: 0.95}
  taper: {knee_soc: 0.8, end_fraction: 0.1}    # default taper of the fleet
  mix:                                         # capacity_kwh: a number or [min, max]
    - {weight: 3, capacity_kwh: 540, max_kw: 350, type: CCS2}
    - {weight: 1, capacity_kwh: [700, 900], max_kw: 1000, type: MCS}
```

Times: "HH:MM[:SS]" means its first occurrence at or after the scenario start (a truck's
departure: strictly after its arrival), so an overnight scenario starting at 16:00 reads
"05:00" as the next morning; a plain number is seconds after the start. Durations: a
number of seconds or "1h30m", "90m", "45s". Taper: {knee_soc, end_fraction} (constant to
the knee, then linear down) or {points: [[soc, fraction], …]} from SoC 0 to 1.
"""

from __future__ import annotations

import difflib
import random
import re
from pathlib import Path
from typing import Any, Callable

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from ..scenario.loader import CaseLoadError, LoadIssue
from .depot import (CONNECTORS, DAY_S, Bess, Charger, Checks, Depot, Evse, PvProfile, Site, StepSchedule, Tariff,
                    TaperCurve, Truck)

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "testcases" / "depot" / "scenarios"


# Same positioned-error shape as test cases, so editors and users read both alike.
ScenarioIssue = LoadIssue


class ScenarioError(CaseLoadError):
    """The scenario cannot be used; carries every issue found."""


class _Bad(Exception):
    """One field is wrong (already recorded); the caller skips what depends on it."""


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")

TOP_KEYS = ("name", "description", "start", "duration", "end", "step_s", "checks", "site", "chargers", "trucks", "fleet")
CHECK_KEYS = ("tolerance_kw", "tolerance_pct", "reaction_time_s", "target_tolerance_kwh", "feasibility_margin_s",
              "priority_tolerance_kwh")
SITE_KEYS = ("grid_limit_kw", "grid_limit_schedule", "bess", "pv", "tariff")
BESS_KEYS = ("capacity_kwh", "max_charge_kw", "max_discharge_kw", "soc_min", "soc_max", "round_trip_efficiency",
             "initial_soc")
TRUCK_KEYS = ("id", "capacity_kwh", "max_kw", "type", "arrival", "soc", "target_soc", "departure", "taper")
FLEET_KEYS = ("seed", "count", "id_prefix", "arrival", "departure", "dwell", "soc", "target_soc", "taper", "mix")
MIX_KEYS = ("weight", "capacity_kwh", "max_kw", "type", "taper")


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[ScenarioIssue] = []

    # --- positions and errors
    def pos(self, node: Any, key: Any = None) -> tuple[int, int]:
        try:
            if key is not None and isinstance(node, CommentedMap) and key in node:
                ln, col = node.lc.value(key)
            elif key is not None and isinstance(node, CommentedMap):
                ln, col = node.lc.line, node.lc.col
            elif key is not None and isinstance(node, CommentedSeq):
                ln, col = node.lc.item(key)
            else:
                ln, col = node.lc.line, node.lc.col
            return ln + 1, col + 1
        except (AttributeError, KeyError, IndexError, TypeError):
            return 1, 1

    def error(self, node: Any, key: Any, message: str, hint: str = "") -> _Bad:
        line, col = self.pos(node, key)
        self.issues.append(ScenarioIssue(self.file, line, col, message, hint))
        return _Bad(message)

    # --- structure
    def mapping(self, parent: Any, key: Any, where: str, allowed: tuple[str, ...], required: bool = True) -> CommentedMap | None:
        node = parent.get(key) if isinstance(parent, dict) else parent[key]
        if node is None:
            if required:
                raise self.error(parent, key, f"{where}: missing")
            return None
        if not isinstance(node, CommentedMap):
            raise self.error(parent, key, f"{where}: expected a mapping, got {type(node).__name__}")
        self.keys(node, where, allowed)
        return node

    def keys(self, node: CommentedMap, where: str, allowed: tuple[str, ...]) -> None:
        for k in node:
            if k not in allowed:
                close = difflib.get_close_matches(str(k), allowed, n=1)
                line, col = node.lc.key(k)
                self.issues.append(ScenarioIssue(
                    self.file, line + 1, col + 1, f"{where}: unknown key {k!r}",
                    f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(allowed)}"))

    def seq(self, parent: CommentedMap, key: str, where: str) -> CommentedSeq:
        node = parent.get(key)
        if not isinstance(node, CommentedSeq):
            raise self.error(parent, key, f"{where}: expected a list")
        return node

    # --- scalars
    def num(self, node: CommentedMap, key: str, where: str, *, default: float | None = None, lo: float | None = None,
            hi: float | None = None, lo_open: bool = False) -> float:
        if key not in node:
            if default is None:
                raise self.error(node, key, f"{where}.{key}: missing")
            return default
        v = node[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.error(node, key, f"{where}.{key}: expected a number, got {v!r}")
        v = float(v)
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise self.error(node, key, f"{where}.{key}: {v:g} must be {'>' if lo_open else '≥'} {lo:g}")
        if hi is not None and v > hi:
            raise self.error(node, key, f"{where}.{key}: {v:g} must be ≤ {hi:g}")
        return v

    def text(self, node: CommentedMap, key: str, where: str, default: str | None = None) -> str:
        if key not in node:
            if default is None:
                raise self.error(node, key, f"{where}.{key}: missing")
            return default
        v = node[key]
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise self.error(node, key, f"{where}.{key}: expected text, got {v!r}")
        return str(v)

    def connector(self, node: CommentedMap, key: str, where: str, default: str = "CCS2") -> str:
        v = self.text(node, key, where, default)
        if v not in CONNECTORS:
            raise self.error(node, key, f"{where}.{key}: unknown connector type {v!r}", f"one of {', '.join(CONNECTORS)}")
        return v

    def time_of_day(self, node: Any, key: Any, where: str) -> float:
        """"HH:MM[:SS]" → seconds of day."""
        v = node[key]
        m = _CLOCK.match(str(v)) if isinstance(v, str) else None
        if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
            raise self.error(node, key, f"{where}: {v!r} is not a time of day", 'write "HH:MM" or "HH:MM:SS", quoted')
        s = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3) or 0)
        if s > DAY_S:
            raise self.error(node, key, f"{where}: {v!r} is after 24:00")
        return float(s)

    def when(self, node: Any, key: Any, where: str, after: float, strictly: bool = False, start: float = 0.0) -> float:
        """A clock time's first occurrence at/after `after`, or seconds after the scenario `start`."""
        v = node[key]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return start + float(v)
        tod = self.time_of_day(node, key, where)
        day = (after // DAY_S) * DAY_S
        t = day + tod
        while t < after or (strictly and t <= after):
            t += DAY_S
        return t

    def duration(self, node: Any, key: Any, where: str) -> float:
        v = node[key]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if v <= 0:
                raise self.error(node, key, f"{where}: duration must be > 0")
            return float(v)
        m = _DURATION.match(str(v).replace(" ", "")) if isinstance(v, str) else None
        if not m or not any(m.groups()):
            raise self.error(node, key, f"{where}: {v!r} is not a duration", 'seconds, or like "16h", "1h30m", "90s"')
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        return h * 3600 + mi * 60 + s

    def guard(self, fn: Callable[[], Any], default: Any = None) -> Any:
        try:
            return fn()
        except _Bad:
            return default


def load_scenario(path: str | Path) -> Depot:
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ScenarioError([ScenarioIssue(str(path), 1, 1, f"cannot read scenario: {exc}")]) from exc
    return load_scenario_text(text, str(path), default_name=path.stem)


def load_scenario_text(text: str, file: str = "<scenario>", default_name: str = "scenario") -> Depot:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        root = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ScenarioError([ScenarioIssue(file, line, col, f"YAML syntax: {exc.problem or exc}")]) from exc
    except Exception as exc:   # duplicate keys and the like
        raise ScenarioError([ScenarioIssue(file, 1, 1, f"YAML: {exc}")]) from exc
    r = _Reader(file)
    if not isinstance(root, CommentedMap):
        raise ScenarioError([ScenarioIssue(file, 1, 1, "a depot scenario is a mapping (name, site, chargers, trucks …)")])
    depot = _build(r, root, default_name)
    if r.issues or depot is None:
        raise ScenarioError(r.issues or [ScenarioIssue(file, 1, 1, "scenario is unusable")])
    return depot


def _build(r: _Reader, root: CommentedMap, default_name: str) -> Depot | None:
    r.keys(root, "scenario", TOP_KEYS)
    name = r.guard(lambda: r.text(root, "name", "scenario", default_name), default_name)
    description = r.guard(lambda: r.text(root, "description", "scenario", ""), "")
    if "start" not in root:
        r.error(root, None, "scenario.start: missing", 'the time of day the replay starts, e.g. start: "16:00"')
        return None
    start = r.guard(lambda: r.time_of_day(root, "start", "scenario.start"))
    if start is None:
        return None
    end = None
    if ("duration" in root) == ("end" in root):
        r.error(root, "duration" if "duration" in root else None, "scenario: give exactly one of duration / end")
    elif "duration" in root:
        end = r.guard(lambda: start + r.duration(root, "duration", "scenario.duration"))
    else:
        end = r.guard(lambda: r.when(root, "end", "scenario.end", start, strictly=True, start=start))
    step = r.guard(lambda: r.num(root, "step_s", "scenario", default=1.0, lo=0.0, lo_open=True), 1.0)
    checks = r.guard(lambda: _checks(r, root), Checks())
    site = r.guard(lambda: _site(r, root, start))
    chargers = r.guard(lambda: _chargers(r, root), [])
    trucks = r.guard(lambda: _trucks(r, root, start), [])
    if "fleet" in root:
        trucks += r.guard(lambda: _fleet(r, root, start, {t.id for t in trucks}), [])
    if not trucks and not r.issues:
        r.error(root, None, "scenario: no trucks", "add trucks: (explicit) and/or fleet: (generated)")
    if r.issues or site is None or end is None:
        return None
    try:
        return Depot(name=name, description=description, site=site, chargers=tuple(chargers), trucks=tuple(trucks),
                     start_s=start, end_s=end, step_s=step, checks=checks)
    except ValueError as exc:
        r.error(root, None, f"scenario: {exc}")
        return None


def _checks(r: _Reader, root: CommentedMap) -> Checks:
    node = r.mapping(root, "checks", "checks", CHECK_KEYS, required=False)
    if node is None:
        return Checks()
    d = Checks()
    return Checks(**{k: r.num(node, k, "checks", default=getattr(d, k), lo=0.0) for k in CHECK_KEYS})


def _site(r: _Reader, root: CommentedMap, start: float) -> Site:
    node = r.mapping(root, "site", "site", SITE_KEYS)
    if ("grid_limit_kw" in node) == ("grid_limit_schedule" in node):
        raise r.error(node, None, "site: give exactly one of grid_limit_kw / grid_limit_schedule")
    if "grid_limit_kw" in node:
        limit = StepSchedule.constant(r.num(node, "grid_limit_kw", "site", lo=0.0))
    else:
        pts = []
        seq = r.seq(node, "grid_limit_schedule", "site.grid_limit_schedule")
        for i, item in enumerate(seq):
            where = f"site.grid_limit_schedule[{i}]"
            if not isinstance(item, CommentedMap):
                raise r.error(seq, i, f"{where}: expected {{at: …, kw: …}}")
            r.keys(item, where, ("at", "kw"))
            if "at" not in item:
                raise r.error(item, None, f"{where}.at: missing")
            pts.append((r.when(item, "at", f"{where}.at", start, start=start), r.num(item, "kw", where, lo=0.0), item))
        if not pts:
            raise r.error(node, "grid_limit_schedule", "site.grid_limit_schedule: empty")
        if pts[0][0] > start:
            r.error(pts[0][2], "at", "site.grid_limit_schedule: the first point must be at the scenario start",
                    "the limit before the first point would be undefined")
        for (a, _, _), (b, _, item) in zip(pts, pts[1:]):
            if b <= a:
                r.error(item, "at", "site.grid_limit_schedule: points must be in time order (after the start)")
        limit = StepSchedule(tuple((t, v) for t, v, _ in pts))
    bess = r.guard(lambda: _bess(r, node))
    pv = r.guard(lambda: _pv(r, node))
    tariff = r.guard(lambda: _tariff(r, node), Tariff())
    return Site(grid_limit=limit, bess=bess, pv=pv, tariff=tariff)


def _bess(r: _Reader, site: CommentedMap) -> Bess | None:
    node = r.mapping(site, "bess", "site.bess", BESS_KEYS, required=False)
    if node is None:
        return None
    w = "site.bess"
    kw = dict(
        capacity_kwh=r.num(node, "capacity_kwh", w, lo=0.0, lo_open=True),
        max_charge_kw=r.num(node, "max_charge_kw", w, lo=0.0),
        max_discharge_kw=r.num(node, "max_discharge_kw", w, lo=0.0),
        soc_min=r.num(node, "soc_min", w, default=0.1, lo=0.0, hi=1.0),
        soc_max=r.num(node, "soc_max", w, default=0.95, lo=0.0, hi=1.0),
        round_trip_efficiency=r.num(node, "round_trip_efficiency", w, default=0.9, lo=0.0, hi=1.0, lo_open=True),
        initial_soc=r.num(node, "initial_soc", w, default=0.5, lo=0.0, hi=1.0),
    )
    try:
        return Bess(**kw)
    except ValueError as exc:
        raise r.error(site, "bess", f"site.bess: {exc}") from exc


def _pv(r: _Reader, site: CommentedMap) -> PvProfile | None:
    node = r.mapping(site, "pv", "site.pv", ("peak_kw", "sunrise", "sunset", "points"), required=False)
    if node is None:
        return None
    if "points" in node:
        seq = r.seq(node, "points", "site.pv.points")
        pts = []
        for i, item in enumerate(seq):
            if not isinstance(item, CommentedSeq) or len(item) != 2:
                raise r.error(seq, i, f"site.pv.points[{i}]: expected [\"HH:MM\", kW]")
            kw = item[1]
            if isinstance(kw, bool) or not isinstance(kw, (int, float)) or kw < 0:
                raise r.error(item, 1, f"site.pv.points[{i}]: kW must be a number ≥ 0")
            pts.append((r.time_of_day(item, 0, f"site.pv.points[{i}]"), float(kw)))
        if not pts:
            raise r.error(node, "points", "site.pv.points: empty")
        return PvProfile(tuple(pts))
    peak = r.num(node, "peak_kw", "site.pv", lo=0.0)
    rise = r.time_of_day(node, "sunrise", "site.pv.sunrise") if "sunrise" in node else 6 * 3600.0
    sset = r.time_of_day(node, "sunset", "site.pv.sunset") if "sunset" in node else 20 * 3600.0
    if sset <= rise:
        raise r.error(node, "sunset", "site.pv: sunset must be after sunrise")
    return PvProfile.bell(peak, rise, sset)


def _tariff(r: _Reader, site: CommentedMap) -> Tariff:
    node = r.mapping(site, "tariff", "site.tariff", ("currency", "periods"), required=False)
    if node is None:
        return Tariff()
    seq = r.seq(node, "periods", "site.tariff.periods")
    periods = []
    for i, item in enumerate(seq):
        where = f"site.tariff.periods[{i}]"
        if not isinstance(item, CommentedMap):
            raise r.error(seq, i, f"{where}: expected {{from: \"HH:MM\", price: …}}")
        r.keys(item, where, ("from", "price"))
        if "from" not in item:
            raise r.error(item, None, f"{where}.from: missing")
        periods.append((r.time_of_day(item, "from", f"{where}.from") % DAY_S, r.num(item, "price", where, lo=0.0)))
    if not periods:
        raise r.error(node, "periods", "site.tariff.periods: empty")
    try:
        return Tariff(tuple(periods), currency=r.text(node, "currency", "site.tariff", "EUR"))
    except ValueError as exc:
        raise r.error(node, "periods", f"site.tariff: {exc}") from exc


def _chargers(r: _Reader, root: CommentedMap) -> list[Charger]:
    seq = r.seq(root, "chargers", "chargers")
    out: list[Charger] = []
    for i, item in enumerate(seq):
        where = f"chargers[{i}]"
        try:
            if not isinstance(item, CommentedMap):
                raise r.error(seq, i, f"{where}: expected a mapping")
            r.keys(item, where, ("id", "count", "cabinet_kw", "evses"))
            count = int(r.num(item, "count", where, default=1.0, lo=1.0))
            id_fmt = r.text(item, "id", where)
            cabinet = r.num(item, "cabinet_kw", where, lo=0.0, lo_open=True)
            evse_seq = r.seq(item, "evses", f"{where}.evses")
            specs = []
            for j, e in enumerate(evse_seq):
                ew = f"{where}.evses[{j}]"
                if not isinstance(e, CommentedMap):
                    raise r.error(evse_seq, j, f"{ew}: expected {{rating_kw: …, type: CCS2|MCS}}")
                r.keys(e, ew, ("rating_kw", "type", "count"))
                specs.append((r.num(e, "rating_kw", ew, lo=0.0, lo_open=True), r.connector(e, "type", ew),
                              int(r.num(e, "count", ew, default=1.0, lo=1.0)), e))
            if count > 1 and "{n}" not in id_fmt:
                raise r.error(item, "id", f"{where}.id: {count} copies need {{n}} in the id", 'e.g. id: "C{n}"')
            for n in range(1, count + 1):
                cid = id_fmt.replace("{n}", str(n))
                evses, m = [], 0
                for rating, conn, copies, node in specs:
                    for _ in range(copies):
                        m += 1
                        try:
                            evses.append(Evse(f"{cid}-{m}", rating, conn))
                        except ValueError as exc:
                            raise r.error(node, "rating_kw", f"{where}: {exc}") from exc
                out.append(Charger(cid, tuple(evses), cabinet))
        except _Bad:
            continue
        except ValueError as exc:
            r.error(seq, i, f"{where}: {exc}")
    if not out and not r.issues:
        raise r.error(root, "chargers", "chargers: empty")
    return out


def _taper(r: _Reader, node: CommentedMap, key: str, where: str, default: TaperCurve) -> TaperCurve:
    if key not in node:
        return default
    t = r.mapping(node, key, f"{where}.{key}", ("knee_soc", "end_fraction", "points"))
    try:
        if "points" in t:
            seq = r.seq(t, "points", f"{where}.{key}.points")
            for i, p in enumerate(seq):
                if not isinstance(p, CommentedSeq) or len(p) != 2:
                    raise r.error(seq, i, f"{where}.{key}.points[{i}]: each point is [soc, fraction]")
            return TaperCurve(tuple((float(p[0]), float(p[1])) for p in seq))
        return TaperCurve.knee(r.num(t, "knee_soc", f"{where}.{key}", default=0.8),
                               r.num(t, "end_fraction", f"{where}.{key}", default=0.1, lo=0.0, hi=1.0))
    except (ValueError, TypeError, IndexError) as exc:
        raise r.error(node, key, f"{where}.{key}: {exc}",
                      "{knee_soc: 0.8, end_fraction: 0.1} or {points: [[0, 1], [0.8, 1], [1, 0.1]]}") from exc


def _trucks(r: _Reader, root: CommentedMap, start: float) -> list[Truck]:
    if "trucks" not in root:
        return []
    seq = r.seq(root, "trucks", "trucks")
    out = []
    for i, item in enumerate(seq):
        where = f"trucks[{i}]"
        try:
            if not isinstance(item, CommentedMap):
                raise r.error(seq, i, f"{where}: expected a mapping")
            r.keys(item, where, TRUCK_KEYS)
            if "arrival" not in item or "departure" not in item:
                raise r.error(item, None, f"{where}: arrival and departure are required")
            arrival = r.when(item, "arrival", f"{where}.arrival", start, start=start)
            out.append(Truck(
                id=r.text(item, "id", where), capacity_kwh=r.num(item, "capacity_kwh", where),
                arrival_s=arrival, arrival_soc=r.num(item, "soc", where, lo=0.0, hi=1.0),
                target_soc=r.num(item, "target_soc", where, lo=0.0, hi=1.0),
                departure_s=r.when(item, "departure", f"{where}.departure", arrival, strictly=True, start=start),
                max_kw=r.num(item, "max_kw", where), connector=r.connector(item, "type", where),
                taper=_taper(r, item, "taper", where, TaperCurve())))
        except _Bad:
            continue
        except ValueError as exc:
            r.error(seq, i, f"{where}: {exc}")
    return out


def _range(r: _Reader, node: CommentedMap, key: str, where: str, lo: float, hi: float) -> Callable[[random.Random], float]:
    """A number, {min, max} (uniform) or {mean, sd} (normal, clipped to lo…hi) → a sampler."""
    v = node.get(key)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        x = r.num(node, key, where, lo=lo, hi=hi)
        return lambda rng: x
    if isinstance(v, CommentedMap) and ("min" in v or "max" in v):
        r.keys(v, f"{where}.{key}", ("min", "max"))
        a, b = r.num(v, "min", f"{where}.{key}", lo=lo, hi=hi), r.num(v, "max", f"{where}.{key}", lo=lo, hi=hi)
        if b < a:
            raise r.error(v, "max", f"{where}.{key}: max < min")
        return lambda rng: rng.uniform(a, b)
    if isinstance(v, CommentedMap) and "mean" in v:
        r.keys(v, f"{where}.{key}", ("mean", "sd"))
        mu, sd = r.num(v, "mean", f"{where}.{key}", lo=lo, hi=hi), r.num(v, "sd", f"{where}.{key}", lo=0.0)
        return lambda rng: min(hi, max(lo, rng.gauss(mu, sd)))
    raise r.error(node, key, f"{where}.{key}: expected a number, {{min, max}} or {{mean, sd}}")


def _window(r: _Reader, node: CommentedMap, key: str, where: str) -> tuple[float, float]:
    w = r.mapping(node, key, f"{where}.{key}", ("from", "to"))
    if "from" not in w or "to" not in w:
        raise r.error(w, None, f"{where}.{key}: needs from and to")
    a = r.time_of_day(w, "from", f"{where}.{key}.from")
    b = r.time_of_day(w, "to", f"{where}.{key}.to")
    return a, b if b >= a else b + DAY_S


def _fleet(r: _Reader, root: CommentedMap, start: float, taken: set[str]) -> list[Truck]:
    where = "fleet"
    node = r.mapping(root, "fleet", where, FLEET_KEYS)
    rng = random.Random(int(r.num(node, "seed", where, default=0.0)))
    count = int(r.num(node, "count", where, lo=1.0))
    prefix = r.text(node, "id_prefix", where, "T")
    a_from, a_to = _window(r, node, "arrival", where)
    if ("departure" in node) == ("dwell" in node):
        raise r.error(node, None, "fleet: give exactly one of departure (window) / dwell (min, max)")
    dep_window = _window(r, node, "departure", where) if "departure" in node else None
    dwell = None
    if "dwell" in node:
        dn = r.mapping(node, "dwell", "fleet.dwell", ("min", "max"))
        dwell = (r.duration(dn, "min", "fleet.dwell.min"), r.duration(dn, "max", "fleet.dwell.max"))
        if dwell[1] < dwell[0]:
            raise r.error(dn, "max", "fleet.dwell: max < min")
    soc = _range(r, node, "soc", where, 0.0, 1.0)
    target = _range(r, node, "target_soc", where, 0.0, 1.0)
    taper = _taper(r, node, "taper", where, TaperCurve())
    mix_seq = r.seq(node, "mix", "fleet.mix")
    mix = []
    for i, m in enumerate(mix_seq):
        mw = f"fleet.mix[{i}]"
        if not isinstance(m, CommentedMap):
            raise r.error(mix_seq, i, f"{mw}: expected a mapping")
        r.keys(m, mw, MIX_KEYS)
        cap = m.get("capacity_kwh")
        if isinstance(cap, CommentedSeq) and len(cap) == 2 and all(isinstance(c, (int, float)) for c in cap):
            caps = (float(cap[0]), float(cap[1]))
        else:
            c = r.num(m, "capacity_kwh", mw)
            caps = (c, c)
        mix.append((r.num(m, "weight", mw, default=1.0, lo=0.0, lo_open=True), caps, r.num(m, "max_kw", mw),
                    r.connector(m, "type", mw), _taper(r, m, "taper", mw, taper), m))
    if not mix:
        raise r.error(node, "mix", "fleet.mix: empty")
    # the arrival window's first occurrence at/after the start
    day0 = start if a_from >= start % DAY_S else start + DAY_S
    base = (day0 // DAY_S) * DAY_S
    out = []
    for n in range(1, count + 1):
        weight, caps, max_kw, conn, tp, m = rng.choices(mix, weights=[x[0] for x in mix])[0]
        arrival = base + round(rng.uniform(a_from, a_to) / 60.0) * 60.0
        if dwell:
            departure = arrival + round(rng.uniform(*dwell) / 60.0) * 60.0
        else:
            d = round(rng.uniform(*dep_window) / 60.0) * 60.0
            departure = (arrival // DAY_S) * DAY_S + d % DAY_S
            while departure <= arrival:
                departure += DAY_S
        cap = round(rng.uniform(*caps) / 10.0) * 10.0
        s0 = soc(rng)
        tgt = target(rng)
        tid = f"{prefix}{n:02d}"
        if tid in taken:
            raise r.error(node, "id_prefix", f"fleet: generated id {tid} clashes with an explicit truck")
        try:
            out.append(Truck(tid, cap, arrival, round(min(s0, tgt), 3), round(tgt, 3), departure, max_kw, conn, tp))
        except ValueError as exc:
            raise r.error(m, "capacity_kwh", f"fleet.mix: {exc}") from exc
    return out


def shipped_scenarios() -> list[Path]:
    """The scenario files shipped with the harness."""
    return sorted(SCENARIO_DIR.glob("*.yaml"))
