"""Composite-schedule oracle: time per call for a busy depot EVSE.

20 installed profiles (a station max, external constraints on EVSE 0 and the EVSE, stacked
daily/weekly TxDefaultProfiles on EVSE 0 and the EVSE, absolute and relative TxProfiles of
the running transaction), composite for 24 h in A and W. Reports µs per call, separately
for pre-parsed profiles (the hot path inside a test run) and for raw payloads (parsing
and schema validation included), plus ``limit_at``. No assertions: numbers only.

    python bench/composite_schedule.py [--n 300]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timedelta, timezone

from harness.smart.oracle import composite_schedule, limit_at
from harness.smart.profiles import parse_profiles

START = datetime(2024, 6, 3, 6, 0, tzinfo=timezone.utc)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _periods(rng: random.Random, n: int, horizon: int, unit: str) -> list[dict]:
    starts = [0] + sorted(rng.sample(range(60, horizon, 60), n - 1))
    scale = 230 * 3 if unit == "W" else 1
    return [{"startPeriod": s, "limit": rng.randrange(60, 5000) / 10 * scale, "numberPhases": 3} for s in starts]


def payloads(seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    out: list[dict] = []
    pid = 0

    def add(evse: int, purpose: str, level: int, kind: str, n_periods: int, *, unit="A", recurrency=None,
            start=None, duration=None, tx=None) -> None:
        nonlocal pid
        pid += 1
        horizon = duration or (86400 if recurrency != "Weekly" else 7 * 86400)
        schedule = {"id": 1, "chargingRateUnit": unit, "chargingSchedulePeriod": _periods(rng, n_periods, horizon, unit)}
        if start is not None:
            schedule["startSchedule"] = _iso(start)
        if duration is not None:
            schedule["duration"] = duration
        profile = {"id": pid, "stackLevel": level, "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
                   "chargingSchedule": [schedule]}
        if recurrency:
            profile["recurrencyKind"] = recurrency
        if tx:
            profile["transactionId"] = tx
        out.append({"evseId": evse, "chargingProfile": profile})

    day0 = START.replace(hour=0)
    add(0, "ChargingStationMaxProfile", 0, "Absolute", 1, unit="W", start=day0 - timedelta(days=30))
    add(0, "ChargingStationMaxProfile", 1, "Recurring", 6, unit="W", recurrency="Daily", start=day0, duration=64800)
    add(0, "ChargingStationExternalConstraints", 0, "Absolute", 24, start=day0, duration=2 * 86400)
    add(1, "ChargingStationExternalConstraints", 0, "Absolute", 12, start=START, duration=43200)
    for level in range(4):      # EVSE 0 defaults, daily with holes, weekly on top
        add(0, "TxDefaultProfile", level, "Recurring", 8, recurrency="Daily" if level < 3 else "Weekly",
            start=day0 + timedelta(hours=level), duration=20000 + 10000 * level)
    for level in range(4, 10):  # the EVSE's own defaults
        add(1, "TxDefaultProfile", level, "Absolute", 10, start=START + timedelta(hours=level - 4), duration=14400)
    for level in range(6):      # the transaction's profiles
        kind = "Relative" if level % 2 else "Absolute"
        add(1, "TxProfile", level, kind, 16, start=None if kind == "Relative" else START + timedelta(hours=2 * level),
            duration=7200 + 1800 * level, tx="T-1")
    return out


def _time(label: str, n: int, fn) -> None:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    dt = (time.perf_counter() - t0) / n
    print(f"{label:<52} {dt * 1e6:10.1f} µs/call")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="calls per measurement")
    args = ap.parse_args()
    raw = payloads()
    parsed = parse_profiles("2.0.1", raw)
    common = dict(version="2.0.1", evse_id=1, start=START, duration_s=86400, transaction_id="T-1",
                  transaction_start=START - timedelta(minutes=20))
    cs = composite_schedule(parsed, unit="A", **common)
    print(f"{len(raw)} profiles, 24 h window → {len(cs.periods)} composite periods")
    _time("composite_schedule, parsed profiles, A", args.n, lambda: composite_schedule(parsed, unit="A", **common))
    _time("composite_schedule, parsed profiles, W", args.n, lambda: composite_schedule(parsed, unit="W", **common))
    _time("composite_schedule, raw payloads (parse+validate), A", args.n,
          lambda: composite_schedule(raw, unit="A", **common))
    _time("parse_profiles only (schema + semantic checks)", args.n, lambda: parse_profiles("2.0.1", raw))
    t = START + timedelta(hours=5, minutes=3)
    _time("limit_at, parsed profiles", args.n,
          lambda: limit_at(parsed, t, version="2.0.1", evse_id=1, unit="A", transaction_id="T-1",
                           transaction_start=START - timedelta(minutes=20)))
    _time("CompositeSchedule.to_response('2.0.1') (schema-checked)", args.n, lambda: cs.to_response("2.0.1"))


if __name__ == "__main__":
    main()
