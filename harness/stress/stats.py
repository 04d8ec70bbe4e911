"""Latency histograms, percentiles and message-rate counters for fleet load.

`Histogram` is log-bucketed (HDR-style): constant memory whatever the sample count, ≤ 1 %
relative error on any percentile, mergeable (one per action, per process). Samples are
seconds; reports are milliseconds. Values outside [1 µs, 1 h] are clamped into the edge
buckets and `max`/`min` stay exact.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

_MIN_S = 1e-6
_MAX_S = 3600.0
_GROWTH = 1.02                    # bucket width ratio: each bucket is 2 % wide → ≤ 1 % error at its midpoint
_LOG_G = math.log(_GROWTH)
_NBUCKETS = int(math.log(_MAX_S / _MIN_S) / _LOG_G) + 2
PERCENTILES = (50.0, 90.0, 99.0)


class Histogram:
    __slots__ = ("counts", "n", "total", "min", "max")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}       # sparse: a few dozen buckets are ever touched
        self.n = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def record(self, seconds: float) -> None:
        v = seconds if seconds > _MIN_S else _MIN_S
        i = int(math.log(v / _MIN_S) / _LOG_G)
        if i >= _NBUCKETS:
            i = _NBUCKETS - 1
        self.counts[i] = self.counts.get(i, 0) + 1
        self.n += 1
        self.total += seconds
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: "Histogram") -> None:
        for i, c in other.counts.items():
            self.counts[i] = self.counts.get(i, 0) + c
        self.n += other.n
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> float:
        """The p-th percentile (0–100) in seconds; 0.0 for an empty histogram."""
        if self.n == 0:
            return 0.0
        rank = max(1, math.ceil(p / 100.0 * self.n))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                mid = _MIN_S * _GROWTH ** (i + 0.5)          # geometric midpoint of the bucket
                return min(max(mid, self.min), self.max)     # never outside what was observed
        return self.max

    def summary_ms(self) -> dict[str, Any]:
        """count, mean, p50, p90, p99, max (milliseconds, 3 decimals)."""
        if self.n == 0:
            return {"count": 0}
        out: dict[str, Any] = {"count": self.n, "mean": _ms(self.total / self.n)}
        for p in PERCENTILES:
            out[f"p{p:g}"] = _ms(self.percentile(p))
        out["max"] = _ms(self.max)
        return out

    def to_json(self) -> dict[str, Any]:
        """Raw buckets (for merging histograms from several processes)."""
        return {"counts": {str(k): v for k, v in self.counts.items()}, "n": self.n, "total": self.total,
                "min": None if self.n == 0 else self.min, "max": self.max}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Histogram":
        h = cls()
        h.counts = {int(k): int(v) for k, v in data.get("counts", {}).items()}
        h.n, h.total = int(data.get("n", 0)), float(data.get("total", 0.0))
        h.min = math.inf if data.get("min") is None else float(data["min"])
        h.max = float(data.get("max", 0.0))
        return h


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


@dataclass
class Counter:
    """Named counts (per action, per error code, …)."""
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


@dataclass
class Timeline:
    """One sample per second of a few running totals, bounded to `max_points` (the run's length)."""
    max_points: int = 24 * 3600
    points: list[dict[str, float]] = field(default_factory=list)

    def sample(self, **values: float) -> None:
        if len(self.points) < self.max_points:
            self.points.append(values)


@dataclass
class ProcessUsage:
    """CPU seconds and resident memory of a process, read from the OS (Linux /proc; getrusage elsewhere)."""
    pid: int | None = None            # None = this process

    def cpu_seconds(self) -> float:
        if self.pid is None:
            t = time.process_time()
            return t
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            import os
            tick = os.sysconf("SC_CLK_TCK")
            return (int(fields[11]) + int(fields[12])) / tick      # utime + stime
        except (OSError, IndexError, ValueError):
            return float("nan")

    def rss_mb(self) -> float:
        path = f"/proc/{self.pid or 'self'}/status"
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        if self.pid is None:
            import resource
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # peak, KiB on Linux
        return float("nan")


class GcPauses:
    """Time spent in Python's cyclic garbage collector, per generation (a load process's hidden stalls).

    `start()` hooks `gc.callbacks`; `stop()` unhooks. Two clock reads per collection.
    """

    def __init__(self) -> None:
        self.by_gen = [Histogram(), Histogram(), Histogram()]
        self._t0 = 0.0
        self._on = False

    def _cb(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.by_gen[min(int(info.get("generation", 0)), 2)].record(time.perf_counter() - self._t0)

    def start(self) -> "GcPauses":
        import gc
        if not self._on:
            gc.callbacks.append(self._cb)
            self._on = True
        return self

    def stop(self) -> None:
        import gc
        if self._on:
            try:
                gc.callbacks.remove(self._cb)
            except ValueError:
                pass
            self._on = False

    def to_json(self) -> dict[str, Any]:
        total = sum(h.total for h in self.by_gen)
        return {"total_s": round(total, 3), "max_ms": round(max(h.max for h in self.by_gen) * 1000, 1),
                **{f"gen{i}": {"count": h.n, "max_ms": round(h.max * 1000, 1), "total_s": round(h.total, 3)}
                   for i, h in enumerate(self.by_gen)}}


class GrowthFreezer:
    """Keep the cyclic GC off the objects of a growing population of connections.

    Each connection leaves ~100 long-lived objects; while thousands connect, CPython's full
    collections walk all of them again and again (measured: 14 full collections, the longest
    1.2 s, at 6,000 stations). `gc.freeze()` moves everything alive into the permanent
    generation in O(1); doing it each time `step` more connections exist leaves the collector
    only young objects. Refcounting still frees frozen objects; only a reference cycle that
    becomes garbage after being frozen stays until `release()` (which unfreezes).
    """

    def __init__(self, step: int = 100) -> None:
        self.step = max(1, step)
        self.last = 0
        self.freezes = 0

    def observe(self, population: int) -> None:
        if population - self.last >= self.step:
            self.freeze_now()
            self.last = population

    def freeze_now(self) -> None:
        import gc
        gc.freeze()
        self.freezes += 1

    def release(self) -> None:
        import gc
        if self.freezes:
            gc.unfreeze()
