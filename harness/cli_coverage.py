"""`charger-harness coverage`: which spec use cases the test library covers, per OCPP
version, functional block and harness role, with certification-profile totals and the gaps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _pct_style(p: float) -> str:
    return "green" if p >= 80 else "yellow" if p >= 40 else "red"


def render(result: dict[str, Any], con: Console, *, show_gaps: bool = True) -> None:
    for v in result["versions"]:
        for r in v["roles"]:
            if not r["total"]:
                continue
            title = (f"OCPP {v['ocpp']} - harness plays {r['role']} (tests a {r['dut']}): "
                     f"{r['covered']}/{r['total']} use cases ({r['percent']}%), {r['cases']} cases")
            t = Table(title=title, title_justify="left")
            for col, kw in (("block", {}), ("name", {}), ("profile", {}), ("covered", {"justify": "right"}),
                            ("%", {"justify": "right"}), ("gaps", {"overflow": "fold"})):
                t.add_column(col, **kw)
            for b in r["blocks"]:
                t.add_row(b["block"], b["name"], b["profile"], f"{b['covered']}/{b['total']}",
                          f"[{_pct_style(b['percent'])}]{b['percent']}[/]",
                          ", ".join(g["id"] for g in b["gaps"]))
            con.print(t)
            pt = Table(title=f"certification profiles - OCPP {v['ocpp']}, harness plays {r['role']}",
                       title_justify="left")
            for col in ("profile", "covered", "%"):
                pt.add_column(col, justify="left" if col == "profile" else "right")
            for p in r["profiles"]:
                pt.add_row(p["profile"], f"{p['covered']}/{p['total']}",
                           f"[{_pct_style(p['percent'])}]{p['percent']}[/]")
            con.print(pt)
            reasoned = [g for b in r["blocks"] for g in b["gaps"] if g["reason"]]
            if show_gaps and reasoned:
                con.print("gaps with a known reason:")
                for g in reasoned:
                    con.print(f"  {g['id']} {g['title']}: {g['reason']}", markup=False)
            con.print()
    if result["unmatched"]:
        names = sorted({f"{u['use_case']} ({u['ocpp']})" for u in result["unmatched"]})
        con.print(f"[yellow]{len(names)} use-case name(s) in test cases not in the catalogue:[/] " + ", ".join(names),
                  markup=True, highlight=False)
    if result["unloadable"]:
        con.print(f"[red]{len(result['unloadable'])} unloadable case file(s) not counted[/]")
    con.print("coverage: " + ", ".join(f"{k} = {v}" for k, v in result["figures"].items()))


def coverage_command(
    paths: Optional[list[Path]] = typer.Argument(None, help="test cases or folders (default: testcases/)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    ocpp: Optional[str] = typer.Option(None, help="only this OCPP version (1.6 or 2.0.1)"),
    role: Optional[str] = typer.Option(None, help="only this harness role (csms or cs)"),
    catalogue: Optional[Path] = typer.Option(None, help="use-case catalogue YAML (default: the built-in one)"),
) -> None:
    """Use-case coverage of the test library per OCPP version, block and role, with the gaps."""
    from .coverage import CatalogueError, library_coverage, load_catalogue

    if not paths:
        if not Path("testcases").is_dir():
            console.print("[red]no test library here[/]: run from the charger-harness checkout or pass paths")
            raise typer.Exit(2)
        paths = [Path("testcases")]
    try:
        cat = load_catalogue(catalogue)
    except (OSError, CatalogueError) as exc:
        console.print(f"[red]cannot load the catalogue:[/] {exc}")
        raise typer.Exit(2)
    if ocpp:
        if ocpp not in cat:
            console.print(f"[red]unknown OCPP version {ocpp!r}[/]; the catalogue has {', '.join(cat)}")
            raise typer.Exit(2)
        cat = {ocpp: cat[ocpp]}
    result = library_coverage(paths, cat)
    result["unmatched"] = [u for u in result["unmatched"]
                           if (not ocpp or u["ocpp"] == ocpp) and (not role or u["role"] == role)]
    if role:
        if role not in ("csms", "cs"):
            console.print("[red]role must be csms or cs[/]")
            raise typer.Exit(2)
        for v in result["versions"]:
            v["roles"] = [r for r in v["roles"] if r["role"] == role]
        result["figures"] = {k: f for k, f in result["figures"].items() if k.endswith(f".{role}")}
    if as_json:
        print(json.dumps(result, indent=1))
        return
    render(result, console)


def register(app: typer.Typer) -> None:
    app.command("coverage")(coverage_command)
