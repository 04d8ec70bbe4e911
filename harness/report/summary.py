"""Certification summary: verdict counts and a verdict per certification profile.

A profile is PASSED only if every mandatory case in it is PASS or NOT APPLICABLE; one
mandatory FAIL, ERROR or INCONCLUSIVE makes it NOT PASSED (nothing unproven is certified).
A profile whose cases were all NOT APPLICABLE proved nothing and is reported as such
rather than as passed. Optional cases are counted but never decide the verdict.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text

from harness.scenario.model import TestCase
from harness.scenario.verdict import CaseResult, Verdict

VERDICTS: tuple[Verdict, ...] = (Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.NOT_APPLICABLE, Verdict.ERROR)
PASSED, NOT_PASSED, NOT_APPLICABLE = "PASSED", "NOT PASSED", "NOT APPLICABLE"
_OK = (Verdict.PASS, Verdict.NOT_APPLICABLE)


def _counts() -> dict[str, int]:
    return {v.value: 0 for v in VERDICTS}


def summarize(results: Iterable[tuple[TestCase, CaseResult]]) -> dict[str, Any]:
    """Per-profile and total verdict counts plus each profile's verdict.

    Shape (JSON-serialisable)::

        {"profiles": {name: {"counts": {"PASS": n, …}, "total": n, "mandatory": n,
                             "verdict": "PASSED" | "NOT PASSED" | "NOT APPLICABLE",
                             "passed": bool, "blocking": [{"id", "verdict", "message"}]}},
         "totals": {"counts": {…}, "total": n, "profiles": n, "profiles_passed": n,
                    "verdict": …, "passed": bool}}
    """
    profiles: dict[str, dict[str, Any]] = {}
    totals = _counts()
    for case, result in results:
        p = profiles.setdefault(case.profile, {"counts": _counts(), "total": 0, "mandatory": 0, "blocking": []})
        p["counts"][result.verdict.value] += 1
        p["total"] += 1
        totals[result.verdict.value] += 1
        if case.mandatory:
            p["mandatory"] += 1
            if result.verdict not in _OK:
                p["blocking"].append({"id": case.id, "verdict": result.verdict.value, "message": result.message})

    for p in profiles.values():
        if p["blocking"]:
            p["verdict"] = NOT_PASSED
        elif p["counts"][Verdict.NOT_APPLICABLE.value] == p["total"]:
            p["verdict"] = NOT_APPLICABLE
        else:
            p["verdict"] = PASSED
        p["passed"] = p["verdict"] == PASSED

    ordered = dict(sorted(profiles.items()))
    decided = [p for p in ordered.values() if p["verdict"] != NOT_APPLICABLE]
    overall = (NOT_APPLICABLE if not decided
               else PASSED if all(p["passed"] for p in decided) else NOT_PASSED)
    return {
        "profiles": ordered,
        "totals": {
            "counts": totals, "total": sum(totals.values()), "profiles": len(ordered),
            "profiles_passed": sum(p["passed"] for p in ordered.values()),
            "verdict": overall, "passed": overall == PASSED,
        },
    }


_HEAD = ("PASS", "FAIL", "INCONC", "N/A", "ERROR")


def render_text(summary: dict[str, Any]) -> str:
    """A compact fixed-width table for the terminal, then the cases that block each profile."""
    rows = [(name, p) for name, p in summary["profiles"].items()]
    width = max([len("Profile"), len("Total"), *(len(n) for n, _ in rows)])
    line = lambda name, counts, total, verdict: (  # noqa: E731
        f"{name:<{width}}  " + " ".join(f"{counts[v.value]:>{len(h)}}" for v, h in zip(VERDICTS, _HEAD))
        + f"  {total:>5}  {verdict}")
    out = [f"{'Profile':<{width}}  " + " ".join(_HEAD) + f"  {'Total':>5}  Verdict"]
    out += [line(n, p["counts"], p["total"], p["verdict"]) for n, p in rows]
    t = summary["totals"]
    out.append("-" * len(out[0]))
    out.append(line("Total", t["counts"], t["total"], f"{t['verdict']} ({t['profiles_passed']}/{t['profiles']} profiles)"))
    for name, p in rows:
        if p["blocking"]:
            out.append(f"{name}: " + ", ".join(f"{b['id']} {b['verdict']}" for b in p["blocking"]))
    return "\n".join(out)


_STYLE = {PASSED: "bold green", NOT_PASSED: "bold red", NOT_APPLICABLE: "dim"}
_COUNT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.INCONCLUSIVE: "yellow",
                Verdict.NOT_APPLICABLE: "dim", Verdict.ERROR: "magenta"}


def render_rich(summary: dict[str, Any]) -> Table:
    """The same table for `rich` consoles, verdicts coloured."""
    table = Table(title="Certification summary", show_footer=True)
    t = summary["totals"]
    table.add_column("Profile", footer="Total")
    for v, h in zip(VERDICTS, _HEAD):
        table.add_column(h, justify="right", style=_COUNT_STYLE[v], footer=str(t["counts"][v.value]))
    table.add_column("Total", justify="right", footer=str(t["total"]))
    table.add_column("Verdict", footer=f"[{_STYLE[t['verdict']]}]{t['verdict']}[/] ({t['profiles_passed']}/{t['profiles']})")
    for name, p in summary["profiles"].items():
        table.add_row(Text(name), *(str(p["counts"][v.value]) for v in VERDICTS), str(p["total"]),
                      f"[{_STYLE[p['verdict']]}]{p['verdict']}[/]")
    return table
