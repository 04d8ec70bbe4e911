"""The depot's clock, shared by everything that takes part in a depot run over OCPP.

Scenario time is seconds since midnight of day 0 (`harness.smart.depot`). On the wire it
becomes an RFC 3339 UTC date-time: `epoch` + t. Both sides of a run — the stations the
harness plays and the CSMS simulator with its DLB controller — read the *same* clock
object, so timestamps, departure times, charging-profile start times and the site-limit
schedule all agree.

- `SimClock` (accelerated time, the built-in simulators): time moves only when the run
  calls `advance(t)` — one control step at a time, never by sleeping. `advance` then runs
  every subscriber (the CSMS simulator's DLB tick) to completion before it returns, so
  what the CSMS decides at t is on the wire before the chargers draw power for step t.
- `WallClock` (a real CSMS): the same scenario in real time, or `speed` times faster when
  the DUT supports it; `advance(t)` sleeps until the wall clock reaches t. Day 0 is
  placed so that the scenario start is "now" on the wire.

Every subscriber is `async def tick(t: float) -> None`, optionally with its synchronous half
(`plan`, see `subscribe`).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Awaitable, Callable

Tick = Callable[[float], Awaitable[None]]
Plan = Callable[[float], "Awaitable[None] | None"]

#: Midnight (UTC) of day 0 in accelerated runs: fixed, so runs are reproducible to the byte.
EPOCH = datetime(2025, 1, 6, tzinfo=timezone.utc)


class SimClock:
    """Accelerated simulated time (see the module docstring)."""

    accelerated = True
    speed: float | None = None

    def __init__(self, start_s: float = 0.0, epoch: datetime = EPOCH):
        if epoch.tzinfo is None:
            raise ValueError("the clock's epoch must be timezone-aware (UTC)")
        self.start_s = float(start_s)
        self.t = float(start_s)
        self.epoch_ts = epoch.timestamp()
        self._subscribers: list[Tick] = []
        self._plans: dict[Tick, Plan] = {}
        self._iso_cache: tuple[float, str] = (float("nan"), "")

    # --- reading
    def now(self) -> float:
        """Scenario seconds of the current control step."""
        return self.t

    def to_datetime(self, t: float | None = None) -> datetime:
        return datetime.fromtimestamp(self.epoch_ts + (self.t if t is None else t), tz=timezone.utc)

    def iso(self, t: float | None = None) -> str:
        """RFC 3339 UTC with 'Z' (whole seconds; milliseconds when t has a fraction)."""
        t = self.t if t is None else t
        if t == self._iso_cache[0]:
            return self._iso_cache[1]
        ts = self.epoch_ts + t
        dt = datetime.fromtimestamp(ts, tz=timezone.utc)
        text = (dt.strftime("%Y-%m-%dT%H:%M:%SZ") if ts == int(ts)
                else dt.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        self._iso_cache = (t, text)
        return text

    def from_iso(self, text: str) -> float:
        """Scenario seconds of an RFC 3339 date-time (naive = UTC)."""
        dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp() - self.epoch_ts

    # --- moving
    def subscribe(self, tick: Tick, plan: Plan | None = None) -> None:
        """`tick(t)` runs at every step. `plan(t)`, if given, is its synchronous first half: it does
        the tick's work and returns the part that must still be awaited (None: nothing), so a
        step where nothing goes on the wire needs no event loop at all (`plan_all`)."""
        self._subscribers.append(tick)
        if plan is not None:
            self._plans[tick] = plan

    def unsubscribe(self, tick: Tick) -> None:
        if tick in self._subscribers:
            self._subscribers.remove(tick)
        self._plans.pop(tick, None)

    def plan_all(self, t: float) -> list[Awaitable[None]] | None:
        """Reach `t` and run every subscriber's synchronous half; the awaitables still to do, or
        None when a subscriber has no synchronous half (use `advance`). Accelerated time only."""
        if not self.accelerated or any(tick not in self._plans for tick in self._subscribers):
            return None
        self.t = float(t)
        pending = []
        for tick in list(self._subscribers):
            rest = self._plans[tick](self.t)
            if rest is not None:
                pending.append(rest)
        return pending

    async def reach(self, t: float) -> None:
        """Make `t` the current step (a simulated clock simply jumps there)."""
        self.t = float(t)

    async def advance(self, t: float) -> None:
        """Reach `t`, then run every subscriber for it, in subscription order."""
        await self.reach(t)
        for tick in list(self._subscribers):
            plan = self._plans.get(tick)
            if plan is None:
                await tick(self.t)
            else:
                rest = plan(self.t)
                if rest is not None:
                    await rest

    def describe(self) -> str:
        return "accelerated simulated time (one control step per advance, no sleeping)"


class WallClock(SimClock):
    """Real time, or `speed` × real time; day 0 placed so the scenario start is now."""

    accelerated = False

    def __init__(self, start_s: float = 0.0, speed: float = 1.0):
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        now = time.time()
        super().__init__(start_s, datetime.fromtimestamp(now - start_s, tz=timezone.utc))
        self.speed = float(speed)
        self._m0 = time.monotonic()
        self.max_lag_s = 0.0          # scenario seconds a step started behind the wall clock (the run was slower)

    def wall_now(self) -> float:
        """Scenario seconds by the wall clock (may be ahead of the current step)."""
        return self.start_s + (time.monotonic() - self._m0) * self.speed

    async def reach(self, t: float) -> None:
        """Sleep until the wall clock (× speed) reaches `t`; a late step is recorded as lag."""
        if t > self.t or t == self.start_s:
            delay = (t - self.start_s) / self.speed - (time.monotonic() - self._m0)
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.max_lag_s = max(self.max_lag_s, -delay * self.speed)
        self.t = float(t)

    def describe(self) -> str:
        return "real time" if self.speed == 1 else f"{self.speed:g}× real time"
