"""What a depot run over OCPP leaves behind, for people and for the report.

`write_artifacts(result, out_dir)` writes, and returns by attachment name:

| file | content |
|---|---|
| `kpis.json` | verdict, what played the CSMS, the clock, the checks, every KPI (depot + `ocpp`), trucks |
| `violations.json` / `violations.txt` | each violated invariant: subject, start/end, worst value vs limit, message |
| `profiles.csv` | every SetChargingProfile the chargers received: time, station, EVSE, purpose, limit, status |
| `frames-tail.json` | the last frames on the wire (the full run is counted, not kept) |
| `power_by_truck.png`, `grid_import.png`, `bess.png`, `pv.png` | `smart.plots` of the day |
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..smart.depot import clock as clock_text
from .run import DepotOcppResult


def _plain(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and x != x:
        return None
    raise TypeError(f"not JSON: {type(x).__name__}")


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1, default=_plain, ensure_ascii=False)


def violation_dict(v: Any) -> dict[str, Any]:
    d = asdict(v)
    d["start"] = clock_text(v.t_start)
    d["end"] = clock_text(v.t_end)
    d["text"] = str(v)
    return d


def summary_dict(result: DepotOcppResult) -> dict[str, Any]:
    r = result.depot
    return {
        "scenario": r.scenario,
        "verdict": "PASS" if result.ok else "FAIL",
        "csms": result.csms,
        "clock": result.clock,
        "checks": asdict(r.checks),
        "kpis": result.kpis,
        "violations": len(result.violations),
        "trucks": [asdict(o) for o in r.trucks],
    }


def write_artifacts(result: DepotOcppResult, out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def put(name: str, text: str) -> None:
        path = out / name
        path.write_text(text, encoding="utf-8")
        files[name] = path

    put("kpis.json", dumps(summary_dict(result)))
    put("violations.json", dumps([violation_dict(v) for v in result.violations]))
    put("violations.txt", "\n".join(str(v) for v in result.violations) + ("\n" if result.violations else "none\n"))
    with (out / "profiles.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["t_s", "time", "station", "evse", "purpose", "limit", "unit", "status", "reason"])
        for p in result.profiles:
            w.writerow([p.t, clock_text(p.t), p.station_id, p.evse_id, p.purpose, p.limit, p.unit, p.status, p.reason])
    files["profiles.csv"] = out / "profiles.csv"
    put("frames-tail.json", result.trace.to_json())
    if plots:
        from ..smart.plots import plot_depot_day

        for path in plot_depot_day(result.depot, out, prefix=""):
            files[path.name] = path
    return files
