"""PNG plots of a replayed depot day (matplotlib, Agg canvas: no display, thread-safe).

`plot_depot_day(result, out_dir)` writes four figures and returns their paths, for the
report layer to attach (Allure):

- `<prefix>power_by_truck.png` — mean power per truck, stacked, over the day
- `<prefix>grid_import.png` — grid import (window mean and max) against the limit in force
  and the allowed limit (reaction time after a change); violations shaded
- `<prefix>bess.png` — BESS power (+ charge / − discharge) and SoC with its window
- `<prefix>pv.png` — PV generation against EV load
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .depot_sim import DepotResult


def _hours(t_s: np.ndarray) -> np.ndarray:
    return np.asarray(t_s, dtype=float) / 3600.0


def _clock_axis(ax) -> None:
    ax.xaxis.set_major_formatter(FuncFormatter(lambda h, _: f"{int(h) % 24:02d}:{int(round((h % 1) * 60)) % 60:02d}"))
    ax.set_xlabel("time of day")
    ax.grid(True, alpha=0.3)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _title(result: DepotResult, what: str) -> str:
    return f"{result.scenario} · {result.controller} — {what}"


def plot_depot_day(result: DepotResult, out_dir: str | Path, prefix: str | None = None) -> list[Path]:
    """Write the day's plots into `out_dir`; returns the PNG paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if prefix is None:
        prefix = "__".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", x).strip("_")
                           for x in (result.scenario, result.controller)) + "__"
    h = _hours(result.t_s)
    s = result.series
    paths = []

    # power by truck (stacked)
    fig = Figure(figsize=(11, 5))
    ax = fig.add_subplot()
    active = result.truck_kw.max(axis=0) > 0 if result.truck_kw.size else np.zeros(0, dtype=bool)
    if active.any():
        cmap = matplotlib.colormaps["tab20"]
        cols = [cmap(i % 20) for i in range(int(active.sum()))]
        ax.stackplot(h, result.truck_kw[:, active].T, colors=cols, linewidth=0)
    ax.step(h, s["limit_kw"] + s["pv_kw"], where="post", color="k", lw=1, ls="--", label="grid limit + PV")
    ax.set_ylabel("kW")
    ax.set_title(_title(result, f"power by truck ({int(active.sum())} trucks, stacked)"))
    ax.legend(loc="upper right")
    _clock_axis(ax)
    paths.append(_save(fig, out / f"{prefix}power_by_truck.png"))

    # grid import vs limit
    fig = Figure(figsize=(11, 4.5))
    ax = fig.add_subplot()
    ax.plot(h, s["import_kw"], lw=1, label="grid import (mean)")
    ax.plot(h, s["import_max_kw"], lw=0.6, alpha=0.7, label="grid import (max)")
    ax.step(h, s["limit_kw"], where="post", color="r", lw=1.2, label="site limit")
    ax.step(h, s["allowed_kw"], where="post", color="r", lw=0.8, ls=":", label="allowed (reaction time)")
    for v in result.by_invariant("site_limit"):
        ax.axvspan(v.t_start / 3600.0, max(v.t_end, v.t_start + 60) / 3600.0, color="r", alpha=0.15)
    ax.set_ylabel("kW")
    ax.set_title(_title(result, f"grid import vs limit (peak {result.kpis['peak_import_kw']:.0f} kW, "
                                f"{result.kpis['limit_violations']} violation(s))"))
    ax.legend(loc="upper right")
    _clock_axis(ax)
    paths.append(_save(fig, out / f"{prefix}grid_import.png"))

    # BESS
    fig = Figure(figsize=(11, 4.5))
    ax = fig.add_subplot()
    ax.fill_between(h, s["bess_kw"], 0, step="post", alpha=0.5, label="BESS power (+ charge / − discharge)")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("kW")
    ax2 = ax.twinx()
    ax2.plot(h, 100 * s["bess_soc"], color="g", lw=1.2, label="BESS SoC")
    ax2.set_ylabel("SoC %")
    ax2.set_ylim(0, 100)
    ax.set_title(_title(result, "BESS"))
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right")
    _clock_axis(ax)
    paths.append(_save(fig, out / f"{prefix}bess.png"))

    # PV
    fig = Figure(figsize=(11, 4))
    ax = fig.add_subplot()
    ax.fill_between(h, s["pv_kw"], 0, color="gold", alpha=0.6, label="PV generation")
    ax.plot(h, s["ev_kw"], color="C0", lw=1, label="EV load")
    ax.set_ylabel("kW")
    ax.set_title(_title(result, f"PV ({result.kpis['pv_kwh']:.0f} kWh) and EV load"))
    ax.legend(loc="upper right")
    _clock_axis(ax)
    paths.append(_save(fig, out / f"{prefix}pv.png"))
    return paths

