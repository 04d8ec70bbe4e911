"""The composite schedule as a value: periods, unit conversion, the wire form, and the diff.

A :class:`CompositeSchedule` is what a station must report in ``GetCompositeSchedule``:
periods relative to a start, for a duration, in one charging-rate unit. It renders to
the exact response object of either OCPP version (:meth:`CompositeSchedule.to_payload`)
and :func:`compare` explains, period by period, how a schedule a DUT reported differs
from it — the text a test case's FAIL prints.

Units (1.6 §7.12, 2.0.1 ChargingRateUnitEnumType): ``A`` is the current *per phase*, ``W``
the *total* power; ``W = A × nominal voltage × number of phases`` where the number of
phases is the period's ``numberPhases``, 3 when absent. The nominal voltage is "the set
voltage for the area (hence, 230 or 110 volt)", a parameter here; a DC EVSE is described
with ``phases=1`` and its DC voltage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, NamedTuple

from harness.ocpp.schemas import validate
from harness.smart.profiles import Unit, Version, epoch, iso

# "No limit applies here" in CompositeSchedule.periods: no profile constrains the instant
# and no EVSE/station maximum was given to stand in for it (1.6 §3.13.6: "as if no
# constraints apply"). It cannot be put on the wire (limit is required), see to_payload.
NO_LIMIT = None

_EPS = 1e-6


class CompositePeriod(NamedTuple):
    start_offset_s: int                # seconds from the schedule start (startPeriod)
    limit: float | None                # in the schedule's unit; None = NO_LIMIT
    number_phases: int | None = None   # None = not stated (3 is then assumed, 1.6 §7.14)


def quantize(limit: float) -> float:
    """Round a limit *down* to the 0.1 step the wire accepts (1.6 schema ``multipleOf 0.1``;
    2.0.1 "Accepts at most one digit fraction"). Down, never up, so a reported limit is
    never above the computed one."""
    return math.floor(limit * 10 + _EPS) / 10


def convert(limit: float, from_unit: Unit, to_unit: Unit, *, voltage_v: float, phases: int) -> float:
    """Convert a limit between A (per phase) and W (total) at ``voltage_v`` on ``phases`` phases."""
    if from_unit == to_unit:
        return limit
    if voltage_v <= 0 or phases <= 0:
        raise ValueError(f"cannot convert {from_unit}→{to_unit} with voltage {voltage_v} V and {phases} phases")
    return limit * voltage_v * phases if from_unit == "A" else limit / (voltage_v * phases)


@dataclass(frozen=True)
class CompositeSchedule:
    start: datetime                    # scheduleStart (UTC, whole seconds)
    duration_s: int
    unit: Unit
    evse_id: int                       # 1.6 connectorId / 2.0.1 evseId
    periods: list[CompositePeriod]
    voltage_v: float = 230.0           # what W↔A conversions of this schedule assume
    phases: int = 3                    # phases assumed where a period states none
    unit_requested: bool = False       # True when the unit was asked for (the DUT must use it)

    # -- reading ---------------------------------------------------------------------------

    def limit_at_offset(self, offset_s: float) -> float | None:
        """The limit in force ``offset_s`` seconds after the start (NO_LIMIT outside the window)."""
        if offset_s < 0 or offset_s >= self.duration_s:
            return NO_LIMIT
        current = NO_LIMIT
        for p in self.periods:
            if p.start_offset_s > offset_s:
                break
            current = p.limit
        return current

    def in_unit(self, unit: Unit) -> CompositeSchedule:
        """The same schedule expressed in ``unit`` (quantized to 0.1, equal neighbours merged)."""
        if unit == self.unit:
            return self
        periods = [CompositePeriod(p.start_offset_s,
                                   None if p.limit is None else quantize(convert(
                                       p.limit, self.unit, unit, voltage_v=self.voltage_v,
                                       phases=p.number_phases or self.phases)),
                                   p.number_phases) for p in self.periods]
        return CompositeSchedule(self.start, self.duration_s, unit, self.evse_id, merge(periods),
                                 self.voltage_v, self.phases, self.unit_requested)

    # -- the wire --------------------------------------------------------------------------

    def to_payload(self, version: Version, *, no_limit: float | None = None) -> dict[str, Any]:
        """The ``chargingSchedule`` (1.6) / ``schedule`` (2.0.1) object of GetCompositeSchedule's
        response. Periods with NO_LIMIT need a stand-in value (``no_limit``, e.g. the EVSE's
        rated maximum in this unit): the wire has no way to say "unlimited"."""
        periods = []
        for p in self.periods:
            limit = p.limit if p.limit is not None else no_limit
            if limit is None:
                raise ValueError(
                    f"period at startPeriod {p.start_offset_s} s has no limit (no profile applies and no "
                    f"EVSE maximum was given); pass no_limit=<the EVSE's maximum in {self.unit}>")
            entry: dict[str, Any] = {"startPeriod": p.start_offset_s, "limit": round(quantize(limit), 1)}
            if p.number_phases is not None:
                entry["numberPhases"] = p.number_phases
            periods.append(entry)
        start = iso(epoch(self.start))
        if version == "1.6":
            # 1.6 §6.22: the schedule is relative to scheduleStart; startSchedule repeats it so the
            # object stands on its own.
            return {"duration": self.duration_s, "startSchedule": start, "chargingRateUnit": self.unit,
                    "chargingSchedulePeriod": periods}
        if version == "2.0.1":
            return {"evseId": self.evse_id, "duration": self.duration_s, "scheduleStart": start,
                    "chargingRateUnit": self.unit, "chargingSchedulePeriod": periods}
        raise ValueError(f"unsupported OCPP version {version!r}")

    def to_response(self, version: Version, *, no_limit: float | None = None) -> dict[str, Any]:
        """The whole GetCompositeSchedule response payload (status Accepted), schema-checked."""
        inner = self.to_payload(version, no_limit=no_limit)
        if version == "1.6":
            payload = {"status": "Accepted", "connectorId": self.evse_id,
                       "scheduleStart": inner["startSchedule"], "chargingSchedule": inner}
        else:
            payload = {"status": "Accepted", "schedule": inner}
        violation = validate(version, "GetCompositeSchedule", "response", payload)
        if violation is not None:   # a bug here, never the DUT's fault
            raise AssertionError(f"composite schedule renders to an invalid {version} payload: {violation}")
        return payload


def merge(periods: list[CompositePeriod]) -> list[CompositePeriod]:
    """Drop a period whose limit and numberPhases equal its predecessor's (they are one period)."""
    out: list[CompositePeriod] = []
    for p in periods:
        if out and out[-1].limit == p.limit and out[-1].number_phases == p.number_phases:
            continue
        out.append(p)
    return out


# ---- comparing a reported schedule -----------------------------------------------------------

@dataclass(frozen=True)
class Tolerance:
    """How far a reported schedule may stray before it is called different.

    ``time_s`` absorbs the transport delay between our start (when the request was sent)
    and the station's (when it was received) — the official test tools call it the
    "configured max time deviation". ``limit_abs``/``limit_rel`` absorb rounding (0.1 on the
    wire) and W↔A conversions. ``period_count`` also requires the same number of periods
    (the official TC_K_41_CS checks the count; it only differs when a DUT does not merge).
    """

    limit_abs: float = 0.1
    limit_rel: float = 0.0
    time_s: int = 2
    period_count: bool = True

    def limits_differ(self, expected: float, reported: float) -> bool:
        return abs(expected - reported) > self.limit_abs + self.limit_rel * abs(expected) + _EPS


class _Reported(NamedTuple):
    start: int | None
    duration: int | None
    unit: str
    periods: list[tuple[int, float, int | None]]
    version: str | None
    evse_id: int | None


def _read_reported(payload: Mapping[str, Any]) -> tuple[_Reported | None, list[str]]:
    problems: list[str] = []
    status = payload.get("status")
    if status is not None and status != "Accepted":
        info = payload.get("statusInfo")
        return None, [f"status is {status!r}{f' ({info})' if info else ''}, expected 'Accepted'"]
    if isinstance(payload.get("schedule"), Mapping):
        inner, version, start = payload["schedule"], "2.0.1", payload["schedule"].get("scheduleStart")
    elif isinstance(payload.get("chargingSchedule"), Mapping):
        inner, version = payload["chargingSchedule"], "1.6"
        start = payload.get("scheduleStart") or inner.get("startSchedule")
    elif "chargingSchedulePeriod" in payload:
        inner, version = payload, None
        start = payload.get("scheduleStart") or payload.get("startSchedule")
    else:
        return None, ["no composite schedule reported (neither 'schedule' nor 'chargingSchedule')"]
    raw_periods = inner.get("chargingSchedulePeriod")
    if not isinstance(raw_periods, list) or not raw_periods or not all(isinstance(p, Mapping) for p in raw_periods):
        return None, ["the reported schedule has no (readable) chargingSchedulePeriod"]
    try:
        start_ts = epoch(start) if start is not None else None
    except ValueError:
        problems.append(f"unreadable scheduleStart {start!r}")
        start_ts = None
    periods = [(int(p.get("startPeriod", 0)), float(p.get("limit", math.nan)), p.get("numberPhases"))
               for p in raw_periods]
    evse_id = inner.get("evseId") if version == "2.0.1" else payload.get("connectorId")
    return (_Reported(start_ts, inner.get("duration"), inner.get("chargingRateUnit", "?"), periods, version, evse_id),
            problems)


def compare(expected: CompositeSchedule, reported_payload: Mapping[str, Any],
            tolerance: Tolerance | float | None = None) -> list[str]:
    """Explain how a reported composite schedule differs from ``expected``; [] when it matches.

    ``reported_payload`` is a GetCompositeSchedule response (1.6 or 2.0.1) or just its
    ``chargingSchedule``/``schedule`` object. Both schedules are laid on absolute time, so a
    station that started its schedule a second later (it received the request later) is
    compared instant for instant, within ``tolerance.time_s``.
    """
    tol = tolerance if isinstance(tolerance, Tolerance) else (
        Tolerance() if tolerance is None else Tolerance(limit_abs=float(tolerance)))
    rep, problems = _read_reported(reported_payload)
    if rep is None:
        return problems
    out = list(problems)
    exp_start = epoch(expected.start)
    unit = expected.unit
    if rep.evse_id is not None and rep.evse_id != expected.evse_id:
        out.append(f"the schedule is for {'connector' if rep.version == '1.6' else 'EVSE'} {rep.evse_id}, "
                   f"expected {expected.evse_id}")

    # unit
    rep_periods = rep.periods
    if rep.unit != unit:
        if rep.unit not in ("A", "W"):
            return out + [f"chargingRateUnit {rep.unit!r} is neither 'A' nor 'W'"]
        if expected.unit_requested:
            out.append(f"chargingRateUnit is {rep.unit!r} but {unit!r} was requested "
                       "(1.6 §6.21 / 2.0.1 GetCompositeScheduleRequest.chargingRateUnit)")
        rep_periods = [(s, convert(lim, rep.unit, unit, voltage_v=expected.voltage_v,
                                   phases=n or expected.phases), n) for s, lim, n in rep_periods]

    # start and duration
    if rep.start is None:
        out.append(f"no scheduleStart reported; assumed the requested start {iso(exp_start)}")
        rep_start = exp_start
    else:
        rep_start = rep.start
        shift = rep_start - exp_start
        if abs(shift) > tol.time_s:
            out.append(f"scheduleStart {iso(rep_start)} is {abs(shift)} s {'after' if shift > 0 else 'before'} "
                       f"the expected {iso(exp_start)} (tolerance {tol.time_s} s)")
    exp_end = exp_start + expected.duration_s
    if rep.duration is not None:
        rep_end = rep_start + rep.duration
        if abs(rep.duration - expected.duration_s) > tol.time_s:
            out.append(f"duration is {rep.duration} s, expected {expected.duration_s} s")
    else:
        rep_end = max(exp_end, rep_start + (rep_periods[-1][0] if rep_periods else 0) + 1)

    # reported structure
    starts = [s for s, _, _ in rep_periods]
    if starts[0] != 0:
        out.append(f"the first reported period starts at {starts[0]} s, not 0 (1.6 §7.13 / 2.0.1 K01.FR.31): "
                   "the start of the schedule is undefined")
    if any(b <= a for a, b in zip(starts, starts[1:])):
        out.append(f"reported startPeriods do not increase: {starts}")
        rep_periods = sorted(rep_periods)
    reported_merged = sum(1 for a, b in zip(rep_periods, rep_periods[1:])
                          if not tol.limits_differ(a[1], b[1]) and a[2] == b[2])
    if tol.period_count and len(rep_periods) != len(expected.periods):
        note = f" ({reported_merged} adjacent pair(s) with equal limits not merged)" if reported_merged else ""
        out.insert(0, f"expected {len(expected.periods)} period(s), reported {len(rep_periods)}{note}")

    # absolute segments of the reported schedule
    rep_segments = []
    for i, (s, lim, n) in enumerate(rep_periods):
        a = rep_start + s
        b = min(rep_start + rep_periods[i + 1][0] if i + 1 < len(rep_periods) else rep_end, rep_end)
        if a < b:
            rep_segments.append((a, b, lim, n, i))

    # period by period
    for i, p in enumerate(expected.periods):
        a = exp_start + p.start_offset_s
        b = exp_start + (expected.periods[i + 1].start_offset_s if i + 1 < len(expected.periods)
                         else expected.duration_s)
        lo, hi = a + tol.time_s, b - tol.time_s     # ignore boundary jitter within the tolerance
        if lo >= hi:
            lo = hi = (a + b) / 2
        where = (f"period {i + 1} (startPeriod {p.start_offset_s} s, {iso(a)}–{iso(b)}, "
                 f"expected {_fmt(p.limit, unit)}{_ph(p.number_phases)})")
        overlapping = [seg for seg in rep_segments if seg[0] <= hi and seg[1] > lo]
        if not overlapping or max(seg[1] for seg in overlapping) <= hi:
            out.append(f"{where}: not covered by the reported schedule, which ends at {iso(rep_end)}")
            continue
        for ra, rb, lim, n, k in overlapping:
            if p.limit is not None and (math.isnan(lim) or tol.limits_differ(p.limit, lim)):
                direction = "higher" if lim > p.limit else "lower"
                out.append(f"{where}: reported {_fmt(lim, unit)} ({direction}) by reported period {k + 1} "
                           f"(startPeriod {ra - rep_start} s) from {iso(max(ra, a))} to {iso(min(rb, b))}")
            elif p.number_phases is not None and (n if n is not None else 3) != p.number_phases:
                out.append(f"{where}: reported numberPhases {n if n is not None else 'absent (= 3)'} "
                           f"by reported period {k + 1}")
    return out


def _fmt(limit: float | None, unit: str) -> str:
    return "no limit" if limit is None else f"{limit:g} {unit}"


def _ph(n: int | None) -> str:
    return "" if n is None else f" on {n} phase{'s' if n != 1 else ''}"


def utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)
