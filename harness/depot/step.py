"""The `depot:` step of YAML test cases: a depot scenario over OCPP against the DUT CSMS.

```yaml
- depot:
    scenario: grid_limit_drop      # shipped name or a path
    duration: 1h                   # optional: cut the scenario from its start
    speed: 10                      # optional: × real time (default: accelerated with the built-in CSMS,
                                   #   real time with a real CSMS)
    meter_interval: 60             # optional: seconds between periodic meter values
    reconnect_every: 30m           # optional: each charger drops and reopens its websocket this often
  timeout: 600                     # the step's wall-clock budget (default: the case's)
```

Against the built-in CSMS (the sim adapter) the step attaches the depot controller to the
simulator the adapter started — with the fault the run was given — and runs in
accelerated time. Against a real CSMS it connects one station per charger to the DUT's
endpoint (ids: `pixit.depot_station_prefix` + charger id; the BESS: `pixit.depot_bess_station`)
in real time, or at `pixit.depot_speed` when the step gives no speed; a run that cannot
finish within the step's timeout at that pace is INCONCLUSIVE before it starts. The verdict: PASS when no invariant is violated; FAIL naming each violated
invariant, when, and by how much; INCONCLUSIVE when the stations could not take part
(refused, not accepted); ERROR for a bad scenario or options. The KPIs become the case
variable `depot` (in captures.json); the KPIs JSON, violations, profile log and PNG plots
are published through the case variable `attachments` (name → file).
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..scenario.verdict import DutFailure, HarnessError, Inconclusive
from ..smart.scenario import ScenarioError
from ..transport.security import SecurityProfile
from .config import DepotConfigError, load_depot, parse_duration
from .run import RunOptions, StationError, run_depot_async

if TYPE_CHECKING:
    from ..scenario.engine import Engine
    from ..scenario.model import Step

KEYS = ("scenario", "duration", "speed", "meter_interval", "reconnect_every")
REQUIREMENT = "depot DLB invariants (harness/smart/depot_sim.py); OCPP 2.0.1 K01, K15"
KPI_KEYS = ("energy_delivered_kwh", "unmet_energy_kwh", "feasible_trucks", "feasible_reached", "peak_import_kw",
            "limit_violations", "limit_violation_s", "energy_above_limit_kwh", "reaction_latency_p50_s",
            "reaction_latency_p99_s", "violations", "violations_by_invariant")


async def run_depot_step(engine: Engine, step: Step) -> str:
    spec = engine._sub(step.target, step)
    if not isinstance(spec, dict) or "scenario" not in spec:
        raise HarnessError(f"depot step ({step.source}:{step.line}) needs a mapping with scenario: <name or path>")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise HarnessError(f"depot step ({step.source}:{step.line}): unknown key(s) {', '.join(unknown)}; "
                           f"known: {', '.join(KEYS)}")
    try:
        depot = load_depot(spec["scenario"], spec.get("duration"))
        speed = None if spec.get("speed") in (None, 0) else float(spec["speed"])
        interval = parse_duration(spec.get("meter_interval", 60))
        reconnect = parse_duration(spec["reconnect_every"]) if spec.get("reconnect_every") else 0.0
    except (ScenarioError, DepotConfigError, TypeError, ValueError) as exc:
        raise HarnessError(f"depot step ({step.source}:{step.line}): {exc}") from None
    pixit = engine.variables.get("pixit") or {}
    options = RunOptions(meter_interval_s=interval, speed=speed, reconnect_every_s=reconnect,
                         station_prefix=str(pixit.get("depot_station_prefix", "")),
                         bess_station=str(pixit.get("depot_bess_station", "BESS")))
    from ..sim.csms import CsmsSimulator

    sim = getattr(engine.adapter, "sim", None)
    session = engine.session
    base = getattr(session, "security", None) or SecurityProfile()
    password = base.password

    def security(station_id: str) -> SecurityProfile | None:
        return SecurityProfile(1, station_id, password) if base.profile >= 1 and password else None

    kw: dict[str, Any] = {"options": options, "security": security}
    if isinstance(sim, CsmsSimulator):
        kw["csms_sim"] = sim
    else:
        endpoint = getattr(session, "endpoint", None)
        if not endpoint:
            raise HarnessError("depot step: the harness plays the charging stations here; the case's role must be cs")
        kw["csms_url"] = endpoint
        if speed is None:        # a real CSMS: real time, or the speed-up its PIXIT says it supports
            kw["options"] = dataclasses.replace(options, speed=float(pixit.get("depot_speed", 1.0)))
    budget = float(step.spec.get("timeout", engine.case.timeout))
    pace = kw["options"].speed
    if pace is not None and (depot.end_s - depot.start_s) / pace > budget:
        raise Inconclusive(f"{depot.name} takes {(depot.end_s - depot.start_s) / pace:,.0f} s at {pace:g}× real time, "
                           f"more than the step's {budget:g} s: give the step a `duration:` or `timeout:`, or "
                           "pixit.depot_speed the CSMS supports; nothing was run")
    try:
        result = await asyncio.wait_for(run_depot_async(depot, **kw), budget)
    except asyncio.TimeoutError:
        raise Inconclusive(f"the depot run did not finish within the step's {budget:g} s; raise `timeout:` or "
                           "shorten `duration:`") from None
    except StationError as exc:
        raise Inconclusive(f"the depot's stations could not take part: {exc}") from None

    from .artifacts import write_artifacts

    out = Path(tempfile.mkdtemp(prefix=f"depot-{engine.case.id}-"))
    files = write_artifacts(result, out)
    k = result.kpis
    engine.variables["depot"] = {"scenario": depot.name, "verdict": "PASS" if result.ok else "FAIL",
                                 "csms": result.csms, **{x: k.get(x) for x in KPI_KEYS},
                                 "ocpp_calls": k["ocpp"]["calls"], "artifacts": str(out)}
    attachments = engine.variables.setdefault("attachments", {})
    for name in ("kpis.json", "violations.txt", "profiles.csv", "frames-tail.json", "grid_import.png",
                 "power_by_truck.png", "bess.png", "pv.png"):
        if name in files:
            attachments[f"depot-{name}"] = str(files[name])
    if not result.ok:
        v = result.violations
        names = sorted({x.invariant for x in v})
        raise DutFailure(f"{len(v)} depot invariant violation(s) ({', '.join(names)}): {v[0]}",
                         expected="every invariant holds at every step (site limit within tolerance and reaction "
                                  "time, BESS limits, priority for earlier departures, feasible targets reached)",
                         received=[str(x) for x in v[:12]], requirement=REQUIREMENT)
    return (f"{depot.name}: PASS in {result.depot.steps} steps; delivered {k['energy_delivered_kwh']:.0f} kWh, "
            f"peak import {k['peak_import_kw']:.0f} kW, {k['ocpp']['calls']} OCPP calls")
