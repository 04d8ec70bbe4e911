"""`charger-harness depot …`: depot DLB through OCPP 2.0.1 smart charging.

    charger-harness depot list
    charger-harness depot run grid_limit_drop                      # built-in CSMS, accelerated time
    charger-harness depot run overnight_40_trucks_2MW_bess_pv --fault dlb_slow_reaction
    charger-harness depot run my_depot.yaml --dut fixtures/duts/vendor-csms.yaml --speed 10
    charger-harness depot charger                                  # the charger under test (harness = CSMS)

`run` writes `OUT/depot/<scenario>[__<fault>]/`: kpis.json, violations.json/.txt,
profiles.csv, frames-tail.json and the PNG plots; exit status 1 on any violated
invariant (or OCPP problem), 2 when the run could not be made.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

depot_app = typer.Typer(no_args_is_help=True, help="Depot DLB through OCPP 2.0.1 smart charging (both directions).")
console = Console()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


@depot_app.command("list")
def list_scenarios() -> None:
    """The shipped depot scenarios."""
    from .smart.scenario import ScenarioError, load_scenario, shipped_scenarios

    table = Table(title="depot scenarios (testcases/depot/scenarios)")
    for col in ("name", "trucks", "EVSEs", "period", "description"):
        table.add_column(col)
    for p in shipped_scenarios():
        try:
            d = load_scenario(p)
        except ScenarioError as exc:
            table.add_row(p.stem, "", "", "", f"UNLOADABLE: {exc.issues[0].message}")
            continue
        hours = (d.end_s - d.start_s) / 3600
        table.add_row(d.name, str(len(d.trucks)), str(len(d.evses)), f"{hours:g} h", d.description)
    console.print(table)


@depot_app.command("run")
def run(
    scenario: str = typer.Argument(..., help="shipped scenario name (depot list) or a scenario YAML file"),
    dut: Optional[Path] = typer.Option(None, "--dut", help="CSMS DUT profile (default: the built-in CSMS simulator)"),
    speed: Optional[float] = typer.Option(None, help="× real time (default: accelerated with the built-in CSMS, "
                                                     "1 = real time with a real CSMS)"),
    fault: Optional[str] = typer.Option(None, help="built-in CSMS fault (dlb_* break the DLB controller)"),
    out: Path = typer.Option(Path("reports"), "--out", help="the run's reports folder"),
    duration: Optional[str] = typer.Option(None, help="cut the scenario to this long from its start (e.g. 2h)"),
    meter_interval: float = typer.Option(60.0, help="seconds between periodic meter values of a charging truck"),
    reconnect_every: float = typer.Option(0.0, help="each charger drops and reopens its websocket this often "
                                                    "(simulated seconds, staggered; 0 = never)"),
    plots: bool = typer.Option(True, help="write the PNG plots"),
) -> None:
    """Run a depot scenario against a CSMS over OCPP 2.0.1; judge every invariant at every step."""
    from .depot.artifacts import write_artifacts
    from .depot.config import DepotConfigError, is_builtin, load_depot, run_kwargs, site_text
    from .depot.run import RunOptions, StationError, run_depot
    from .dut.profile import ProfileError, load_profile
    from .sim.csms_faults import CSMS_FAULTS
    from .smart.scenario import ScenarioError

    try:
        depot = load_depot(scenario, duration)
        profile = load_profile(dut) if dut else None
        if fault and fault not in CSMS_FAULTS:
            raise DepotConfigError(f"unknown CSMS fault {fault!r}; try `charger-harness sim csms --list-faults`")
        kw = run_kwargs(profile, fault=fault, speed=speed, options=RunOptions(meter_interval_s=meter_interval,
                                                                                 reconnect_every_s=reconnect_every))
    except (ScenarioError, ProfileError, DepotConfigError) as exc:
        console.print(f"[red]cannot run:[/] {exc}")
        raise typer.Exit(2)
    folder = out / "depot" / (_slug(depot.name) + (f"__{_slug(fault)}" if fault else ""))
    opts: RunOptions = kw["options"]
    if not is_builtin(profile):
        note = site_text(depot, opts)
        console.print(note)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "site.txt").write_text(note + "\n", encoding="utf-8")
    where = "the built-in CSMS simulator" if is_builtin(profile) else f"{profile.name} ({profile.endpoint})"   # type: ignore[union-attr]
    pace = "accelerated time" if opts.speed is None else f"{opts.speed:g}× real time"
    console.print(f"[bold]depot[/] {depot.name}: {len(depot.trucks)} trucks, {len(depot.evses)} EVSEs, "
                  f"{(depot.end_s - depot.start_s) / 3600:g} h against {where} in {pace}"
                  + (f", fault [yellow]{fault}[/]" if fault else ""))
    try:
        result = run_depot(depot, **kw)
    except (StationError, OSError, ValueError) as exc:
        console.print(f"[red]the run could not be made:[/] {type(exc).__name__}: {exc}")
        raise typer.Exit(2)
    files = write_artifacts(result, folder, plots=plots)
    print(result.summary())
    console.print(f"wrote {len(files)} file(s) to {folder}")
    raise typer.Exit(0 if result.ok else 1)


@depot_app.command("charger")
def charger(
    dut: Optional[Path] = typer.Option(None, "--dut", help="charging-station DUT profile (default: the built-in "
                                                           "station simulator, one per charger)"),
    chargers: int = typer.Option(2, help="how many built-in chargers (2 EVSEs each)"),
    fault: Optional[str] = typer.Option(None, help="built-in station fault"),
    purpose: str = typer.Option("ChargingStationMaxProfile", help="ChargingStationMaxProfile or "
                                "ChargingStationExternalConstraints"),
    site_kw: float = typer.Option(600.0, help="site limit, shared equally by the chargers"),
    drop_kw: float = typer.Option(300.0, help="the limit after the drop"),
    hold: float = typer.Option(8.0, help="seconds each limit holds (real time)"),
    reaction: float = typer.Option(5.0, help="seconds a charger may take to follow a new limit"),
    out: Path = typer.Option(Path("reports"), "--out"),
) -> None:
    """The charger under test: the harness plays the CSMS, sets the site limit, checks the draw (real time)."""
    from .depot.artifacts import dumps
    from .depot.charger import ChargerCheckError, LimitPlan, check_chargers
    from .dut.profile import ProfileError, load_profile

    try:
        profile = load_profile(dut) if dut else None
        plan = LimitPlan(site_kw=site_kw, drop_kw=drop_kw, hold_s=hold, reaction_s=reaction, purpose=purpose)
        result = check_chargers(plan, profile=profile, chargers=chargers, fault=fault)
    except (ProfileError, ChargerCheckError, ValueError) as exc:
        console.print(f"[red]cannot run:[/] {exc}")
        raise typer.Exit(2)
    folder = out / "depot" / ("charger" + (f"__{_slug(fault)}" if fault else ""))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "charger.json").write_text(dumps(result.to_json()), encoding="utf-8")
    print(result.summary())
    console.print(f"wrote {folder / 'charger.json'}")
    raise typer.Exit(0 if result.ok else 1)
