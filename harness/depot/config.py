"""From what a user names (a scenario, a DUT profile, a fault, a speed) to a depot run.

Shared by `charger-harness depot run` and the `depot:` step of test cases.

- A scenario is a shipped name (`testcases/depot/scenarios/<name>.yaml`) or a path.
- No DUT profile, or the built-in CSMS profile (adapter `sim` without `control_url`): the
  built-in CSMS simulator with its depot controller, in accelerated time (or at `speed`).
- Any other CSMS profile is a real back end at `endpoint`: it runs in real time unless a
  speed-up is given, the depot's stations use the profile's security profile and password,
  and their ids are `pixit.depot_station_prefix` + the charger id. Its site limit, tariff,
  PV and BESS must be configured in the CSMS out of band (`site_text` says what).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from ..dut.profile import DutProfile
from ..smart.depot import Depot, clock as clock_text
from ..smart.scenario import SCENARIO_DIR, ScenarioError, ScenarioIssue, load_scenario
from ..transport.security import SecurityProfile
from .run import BESS_ID, RunOptions

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


class DepotConfigError(ValueError):
    """The scenario, profile or options cannot make a depot run (a usage problem, not a verdict)."""


def parse_duration(value: Any) -> float:
    """Seconds from a number or "2h", "1h30m", "90m", "45s"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise DepotConfigError(f"duration must be > 0 s, got {value}")
        return float(value)
    m = _DURATION.match(str(value).replace(" ", ""))
    if not m or not any(m.groups()):
        raise DepotConfigError(f"not a duration: {value!r} (e.g. 2h, 1h30m, 90m, 45s, or seconds)")
    h, mi, s = (float(x) if x else 0.0 for x in m.groups())
    seconds = h * 3600 + mi * 60 + s
    if seconds <= 0:
        raise DepotConfigError(f"duration must be > 0 s, got {value!r}")
    return seconds


def scenario_path(name: str | Path) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    return SCENARIO_DIR / f"{name}.yaml"


def load_depot(name: str | Path, duration: Any = None) -> Depot:
    """A shipped scenario by name, or a scenario file; `duration` cuts (or extends) it from its start."""
    path = scenario_path(name)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
        raise ScenarioError([ScenarioIssue(str(path), 1, 1, f"no depot scenario {str(name)!r}",
                                           f"shipped scenarios: {known}")])
    depot = load_scenario(path)
    if duration is not None:
        depot = dataclasses.replace(depot, end_s=depot.start_s + parse_duration(duration))
    return depot


def is_builtin(profile: DutProfile | None) -> bool:
    return profile is None or (profile.adapter == "sim" and "control_url" not in profile.adapter_options)


def run_kwargs(profile: DutProfile | None, *, fault: str | None = None, speed: float | None = None,
               options: RunOptions | None = None) -> dict[str, Any]:
    """Keyword arguments for `DepotOcppRun` / `run_depot` against this CSMS DUT profile."""
    opt = options or RunOptions()
    if profile is not None and profile.kind != "csms":
        raise DepotConfigError(f"DUT profile {profile.name!r} is a {profile.kind}; a depot run over OCPP tests a CSMS "
                               "(kind: csms)")
    if speed is not None and speed <= 0:
        raise DepotConfigError(f"--speed must be > 0, got {speed}")
    if is_builtin(profile):
        if profile is not None and fault is None:
            fault = profile.adapter_options.get("fault")
        return {"fault": fault, "options": dataclasses.replace(opt, speed=speed)}
    assert profile is not None
    if fault:
        raise DepotConfigError("faults belong to the built-in CSMS simulator; a real CSMS runs as it is")
    if not profile.endpoint:
        raise DepotConfigError(f"DUT profile {profile.name!r} has no endpoint (the CSMS's base URL)")
    prefix = str(profile.pixit.get("depot_station_prefix", opt.station_prefix))
    bess = str(profile.pixit.get("depot_bess_station", opt.bess_station))
    password = profile.password

    def security(station_id: str) -> SecurityProfile | None:
        if profile.security_profile >= 1 and password:
            return SecurityProfile(1, station_id, password)
        return None

    return {"csms_url": profile.endpoint, "security": security,
            "options": dataclasses.replace(opt, speed=1.0 if speed is None else speed, station_prefix=prefix,
                                           bess_station=bess)}


def site_text(depot: Depot, options: RunOptions) -> str:
    """What a real CSMS must be configured with before the run (printed and written by the CLI)."""
    site = depot.site
    lines = [f"Depot {depot.name}: configure the CSMS under test with", "  chargers (station id: EVSE ratings, cabinet):"]
    for c in depot.chargers:
        evs = ", ".join(f"EVSE {n} {e.rating_kw:g} kW {e.connector}" for n, e in enumerate(c.evses, 1))
        lines.append(f"    {options.station_prefix}{c.id}: {evs}; cabinet {c.cabinet_kw:g} kW")
    lines.append("  site grid import limit (scenario clock, UTC on the wire):")
    for t, v in site.grid_limit.points:
        lines.append(f"    from {clock_text(max(t, depot.start_s))}: {v:g} kW")
    if site.bess:
        b = site.bess
        lines.append(f"  BESS station {options.station_prefix}{options.bess_station} (EVSE 1 charges, EVSE 2 discharges): "
                     f"{b.capacity_kwh:g} kWh, ±{b.max_charge_kw:g}/{b.max_discharge_kw:g} kW, "
                     f"SoC {b.soc_min:.0%}–{b.soc_max:.0%}")
    if site.pv:
        lines.append(f"  PV: peak {max(v for _, v in site.pv.points):g} kW (forecast = actual)")
    lines.append("  tariff: " + ", ".join(f"{clock_text(t)} {p:g} {site.tariff.currency}/kWh" for t, p in site.tariff.periods))
    return "\n".join(lines)


__all__ = ["BESS_ID", "DepotConfigError", "is_builtin", "load_depot", "parse_duration", "run_kwargs", "scenario_path",
           "site_text"]
