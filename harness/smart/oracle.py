"""The composite-schedule oracle: what a station must report in GetCompositeSchedule.

Given the charging profiles installed on a station, :func:`composite_schedule` computes
the composite schedule for an EVSE/connector, a start, a duration and a unit under the
rules of OCPP 1.6 (§3.13 Smart Charging, §5.7 Get Composite Schedule, §5.16 and errata
v4 §3.29–3.45) and OCPP 2.0.1 (Part 2, K01 SetChargingProfile, K08 Get Composite
Schedule; "Charging profile stacking", "Combining charging profile purposes").
:func:`limit_at` gives the limit in force at one instant, for checking a DUT's meter
values against it.

The rules, and the choices made where the text leaves room (the stricter reading,
a parameter where implementations disagree):

1. Validity. A profile counts at instant t when validFrom ≤ t < validTo (1.6 §7.8,
   2.0.1 ChargingProfileType). No validFrom: "valid as soon as it is received" — we do not
   know when that was, so valid since ever; no validTo: valid until replaced.
2. Placing a schedule in time (1.6 §7.9/§7.13, 2.0.1 ChargingProfileKindEnumType):
   Absolute from startSchedule; Relative from the start of the transaction (a 1.6 schedule
   without startSchedule too: "relative to start of charging"). Without a transaction the
   requested start stands in for it, as if the transaction started now (the stricter
   reading: the profile limits rather than vanishes; EVerest does the same). Recurring
   Daily/Weekly restarts every 86 400 / 604 800 s after startSchedule, counted in UTC
   seconds (1.6 §3.13.7 note: DST days need a profile of their own); a recurring profile
   has no period before its first startSchedule. A schedule ends after ``duration``; no
   duration: the last period runs on (1.6 §7.13), in a recurring profile until the next
   recurrence. Periods beyond duration or beyond the recurrence period are not executed
   (1.6 §5.16.4 notes, errata v4 §3.43/§3.44).
3. Stacking, within one purpose (1.6 §3.13.2, 2.0.1 "Charging profile stacking"): at each
   instant the valid profile with the highest stackLevel *that has a period there* wins;
   where its schedule has ended (or not begun) the next lower level applies ("the Charge
   Point SHALL use a ChargingProfile with a lower stackLevel if available", 1.6 errata v4
   §3.43). Two applicable profiles of one purpose with the same stackLevel are an error
   (:class:`ProfileConflict`): 1.6 §3.13.2 "not allowed"; 2.0.1 K01.FR.06/K01.FR.39 when
   their validity overlaps, K01.FR.52/53 for a TxDefaultProfile on EVSE 0 vs one EVSE.
4. TxDefaultProfile on connector/EVSE 0 applies to every connector/EVSE and stacks with
   the ones set on the EVSE itself. 1.6 §3.13.1: a connector-specific TxDefaultProfile
   "SHALL be replaced only for that specific connector" — read as: it replaces the
   connector-0 profile *of the same stackLevel* (the §3.13.2 replacement rule). Some
   stations instead let any connector-specific TxDefaultProfile hide connector 0's
   altogether: ``tx_default_scope="evse-hides-zero"``.
5. Purposes combined (1.6 §3.13.3, 2.0.1 K08.FR.04): a TxProfile of the current transaction
   overrules the TxDefaultProfile (1.6 §3.13.1) wherever it has a period — where it has none
   (duration over) the TxDefaultProfile applies again (this is what the official test
   TC_K_41_CS expects). The composite is the minimum, at every instant, of that limit, the
   station max (ChargePointMaxProfile / ChargingStationMaxProfile) and every
   ChargingStationExternalConstraints (EVSE 0 and the EVSE's own). TxProfiles apply only
   when a transaction is given and their transactionId is absent or equals it (1.6 §7.8
   "MAY be used to match"; 2.0.1 K05: a RequestStartTransaction profile carries none).
6. EVSE 0 asks for "the total expected consumption of the grid connection" (1.6 §5.7,
   2.0.1 K08.FR.03): only the station-wide profiles (station max, external constraints on
   EVSE 0) apply — TxDefaultProfiles on EVSE 0 are per EVSE, not a grid total.
7. Units and phases (1.6 §7.12/§7.14, 2.0.1 ChargingSchedulePeriodType): A is per phase, W
   is total, W = A × voltage × phases; an absent numberPhases means 3 (``phases``). Limits
   in A are used "as given, for the amount of phases that are/can be used" (1.6 errata v4
   §3.34). When the periods in force state different numberPhases the lowest applies
   (OCPP 2.1 K01.FR.140 — 2.0.1 is silent; stricter) and every limit is compared at that
   phase count, so the A and W composites describe the same physical limit. Requested no
   unit: the unit of the profiles, or A when they mix (2.0.1 leaves it to the station;
   :func:`~harness.smart.schedule.compare` converts, so the choice does not decide a verdict).
8. The result starts at the requested start (truncated to the second), lasts the requested
   duration (1.6 §5.7 "from … Time X, up to X + Duration"), limits are rounded *down* to
   0.1 and neighbours with equal limit and numberPhases are merged. Where nothing limits,
   the period's limit is ``max_limit`` (the EVSE/station maximum) if given, else NO_LIMIT.
9. A 2.0.1 profile may carry up to three chargingSchedules (ISO 15118 alternatives);
   ``schedule_index`` selects which: a single-schedule profile always applies, a
   multi-schedule one contributes its schedule at that index if it has one (OCPP 2.1
   errata 2025-09, K15.FR.22: "the first with the first, the second with the second (if
   existing)").
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from harness.smart.profiles import (
    EXTERNAL, RECURRENCE_S, STATION_MAX, TX, TX_DEFAULT, ChargingProfile, ChargingSchedule, ProfileConflict, conflict_clause,
    ProfileInput, Unit, Version, parse_profiles, epoch,
)
from harness.smart.schedule import NO_LIMIT, CompositePeriod, CompositeSchedule, convert, merge, quantize, utc

TxDefaultScope = Literal["stack", "evse-hides-zero"]
_INF = math.inf


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int            # exclusive; may be inf
    limit: float
    unit: Unit
    phases: int | None


class _Track:
    """One profile laid out on the time line of the request window: its pieces, in order."""

    __slots__ = ("profile", "pieces", "starts")

    def __init__(self, profile: ChargingProfile, pieces: list[_Piece]):
        self.profile = profile
        self.pieces = pieces
        self.starts = [p.start for p in pieces]

    def at(self, t: int) -> _Piece | None:
        i = bisect_right(self.starts, t) - 1
        if i >= 0 and t < self.pieces[i].end:
            return self.pieces[i]
        return None


def composite_schedule(
    profiles: Iterable[ProfileInput], *, version: Version, evse_id: int, start: datetime | str,
    duration_s: int, unit: Unit | None = None, voltage_v: float = 230.0,
    transaction_id: str | int | None = None, transaction_start: datetime | str | None = None,
    phases: int = 3, max_limit: float | None = None, max_limit_unit: Unit | None = None,
    schedule_index: int = 0, tx_default_scope: TxDefaultScope = "stack",
) -> CompositeSchedule:
    """The composite schedule a station with ``profiles`` installed must report for
    ``evse_id`` from ``start`` for ``duration_s`` seconds, in ``unit`` (see the module text).

    ``profiles``: parsed profiles, SetChargingProfile request payloads, or
    ``(evse_id, csChargingProfiles/chargingProfile payload)`` pairs; garbage raises
    :class:`~harness.smart.profiles.ProfileError`. ``transaction_id``: the transaction running
    on the EVSE (None: none), ``transaction_start``: when it started (anchor of Relative
    profiles). ``max_limit``: the EVSE/station maximum (in ``max_limit_unit``, default the
    result's unit) reported where no profile limits.
    """
    if duration_s <= 0:
        raise ValueError(f"duration must be a positive number of seconds, got {duration_s}")
    if unit not in (None, "A", "W"):
        raise ValueError(f"chargingRateUnit must be 'A', 'W' or None, got {unit!r}")
    if tx_default_scope not in ("stack", "evse-hides-zero"):
        raise ValueError(f"unknown tx_default_scope {tx_default_scope!r}")
    parsed = parse_profiles(version, profiles)
    w0 = epoch(start)
    w1 = w0 + duration_s
    anchor = epoch(transaction_start) if transaction_start is not None else w0
    tx = None if transaction_id is None else str(transaction_id)

    tx_groups, limit_groups, used = _groups(parsed, version, evse_id, tx, tx_default_scope)
    if unit is None:
        units = {s.unit for p in used for s in p.schedules}
        target: Unit = units.pop() if len(units) == 1 else (max_limit_unit if not units and max_limit_unit else "A")
    else:
        target = unit
    fill = None
    if max_limit is not None:
        fill = quantize(convert(max_limit, max_limit_unit or target, target, voltage_v=voltage_v, phases=phases))

    tracks: dict[int, _Track] = {}
    for p in used:
        schedule = _pick(p, schedule_index)
        tracks[id(p)] = _Track(p, [] if schedule is None else _pieces(p, schedule, anchor, w0, w1))
    tx_tracks = [[tracks[id(p)] for p in g] for g in tx_groups]
    limit_tracks = [[tracks[id(p)] for p in g] for g in limit_groups]

    cuts = {w0}
    for track in tracks.values():
        for piece in track.pieces:
            if w0 < piece.start < w1:
                cuts.add(piece.start)
            if w0 < piece.end < w1:
                cuts.add(int(piece.end))
    periods = []
    for t in sorted(cuts):
        limit, n = _combine(t, tx_tracks, limit_tracks, target, voltage_v, phases)
        if limit is None:
            limit = fill
        periods.append(CompositePeriod(t - w0, limit, n))
    return CompositeSchedule(start=utc(w0), duration_s=duration_s, unit=target, evse_id=evse_id,
                             periods=merge(periods), voltage_v=voltage_v, phases=phases,
                             unit_requested=unit is not None)


def limit_at(profiles: Iterable[ProfileInput], t: datetime | str, *, version: Version, evse_id: int,
             unit: Unit | None = None, voltage_v: float = 230.0, transaction_id: str | int | None = None,
             transaction_start: datetime | str | None = None, phases: int = 3,
             max_limit: float | None = None, max_limit_unit: Unit | None = None, schedule_index: int = 0,
             tx_default_scope: TxDefaultScope = "stack") -> float | None:
    """The composite limit in force at instant ``t`` (NO_LIMIT when nothing limits), e.g. to
    check a DUT's Power.Active.Import / Current.Import meter value against. Pass
    ``transaction_start`` when Relative profiles are installed: without it they are placed as
    if the transaction started at ``t``."""
    cs = composite_schedule(profiles, version=version, evse_id=evse_id, start=t, duration_s=1, unit=unit,
                            voltage_v=voltage_v, transaction_id=transaction_id, transaction_start=transaction_start,
                            phases=phases, max_limit=max_limit, max_limit_unit=max_limit_unit,
                            schedule_index=schedule_index, tx_default_scope=tx_default_scope)
    return cs.periods[0].limit


# ---- which profiles apply, in which stacks ------------------------------------------------

def _groups(profiles: Sequence[ChargingProfile], version: Version, evse_id: int, tx: str | None,
            scope: TxDefaultScope) -> tuple[list[list[ChargingProfile]], list[list[ChargingProfile]],
                                            list[ChargingProfile]]:
    """Split the applicable profiles into stacks. Returns (tx_groups, limit_groups, used):
    the first tx group with a period at an instant gives the Tx/TxDefault limit; every limit
    group's winner caps it. Each group is ordered by precedence (highest stackLevel first)."""
    station_max = [p for p in profiles if p.purpose == STATION_MAX]
    external_0 = [p for p in profiles if p.purpose == EXTERNAL and p.evse_id == 0]
    limit_groups = [station_max, external_0]
    tx_groups: list[list[ChargingProfile]] = []
    if evse_id != 0:
        limit_groups.append([p for p in profiles if p.purpose == EXTERNAL and p.evse_id == evse_id])
        tx_profiles = [p for p in profiles if p.purpose == TX and p.evse_id == evse_id and tx is not None
                       and (p.transaction_id is None or p.transaction_id == tx)]
        own = [p for p in profiles if p.purpose == TX_DEFAULT and p.evse_id == evse_id]
        zero = [p for p in profiles if p.purpose == TX_DEFAULT and p.evse_id == 0]
        if scope == "evse-hides-zero":
            tx_groups = [tx_profiles, own, zero]
        else:
            if version == "1.6":
                # 1.6 §3.13.1: a connector-specific TxDefaultProfile replaces connector 0's of the
                # same stackLevel for that connector (§3.13.2 replacement by stackLevel+purpose).
                levels = {p.stack_level for p in own}
                zero = [p for p in zero if p.stack_level not in levels]
            tx_groups = [tx_profiles, own + zero]
    groups = [g for g in tx_groups + limit_groups if g]
    for g in groups:
        _check_conflicts(g, version)
        g.sort(key=lambda p: (-p.stack_level, p.evse_id == 0, p.id))
    used = [p for g in groups for p in g]
    return [g for g in tx_groups if g], [g for g in limit_groups if g], used


def _check_conflicts(group: list[ChargingProfile], version: Version) -> None:
    by_level: dict[int, list[ChargingProfile]] = {}
    for p in group:
        by_level.setdefault(p.stack_level, []).append(p)
    for level, same in by_level.items():
        for i, a in enumerate(same):
            for b in same[i + 1:]:
                if version == "1.6":
                    raise ProfileConflict(
                        f"{a.label} and {b.label} share purpose and stackLevel {level}: OCPP 1.6 §3.13.2 does "
                        "not allow both (the station SHALL have replaced the older one)")
                if a.valid_overlaps(b):
                    clause = conflict_clause(a, b)
                    raise ProfileConflict(
                        f"{a.label} and {b.label} share purpose and stackLevel {level} with overlapping "
                        f"validity: OCPP 2.0.1 {clause} requires the station to reject the second one")


def _pick(p: ChargingProfile, index: int) -> ChargingSchedule | None:
    if len(p.schedules) == 1:
        return p.schedules[0]
    return p.schedules[index] if index < len(p.schedules) else None


# ---- laying a schedule on the time line ---------------------------------------------------

def _pieces(p: ChargingProfile, s: ChargingSchedule, anchor: int, w0: int, w1: int) -> list[_Piece]:
    lo = max(w0, p.valid_from if p.valid_from is not None else w0)
    hi = min(w1, p.valid_to if p.valid_to is not None else w1)
    if lo >= hi:
        return []
    out: list[_Piece] = []
    if p.kind == "Recurring":
        period = RECURRENCE_S[p.recurrency]  # type: ignore[index]
        base = s.start_schedule if s.start_schedule is not None else anchor
        length = min(s.duration, period) if s.duration is not None else period
        k = max(0, (lo - base) // period)
        while base + k * period < hi:
            _lay(out, s, base + k * period, length, lo, hi)
            k += 1
    else:
        origin = s.start_schedule if (p.kind == "Absolute" and s.start_schedule is not None) else anchor
        _lay(out, s, origin, s.duration if s.duration is not None else _INF, lo, hi)
    return out


def _lay(out: list[_Piece], s: ChargingSchedule, origin: int, length: float, lo: int, hi: int) -> None:
    """Append the periods of ``s`` started at ``origin`` and cut off after ``length`` s, clipped to [lo, hi)."""
    end_of_schedule = origin + length
    periods = s.periods
    for i, q in enumerate(periods):
        a = origin + q.start_period
        if q.start_period >= length or a >= hi:
            break
        b = origin + periods[i + 1].start_period if i + 1 < len(periods) else _INF
        b = min(b, end_of_schedule)
        a, b = max(a, lo), min(b, hi)
        if a < b:
            out.append(_Piece(int(a), b if b == _INF else int(b), q.limit, s.unit, q.number_phases))


# ---- combining purposes at one instant ----------------------------------------------------

def _winner(group: list[_Track], t: int) -> _Piece | None:
    for track in group:            # ordered: highest stackLevel first
        piece = track.at(t)
        if piece is not None:
            return piece
    return None


def _combine(t: int, tx_tracks: list[list[_Track]], limit_tracks: list[list[_Track]], target: Unit,
             voltage_v: float, phases: int) -> tuple[float | None, int | None]:
    pieces: list[_Piece] = []
    for group in tx_tracks:        # TxProfile, else TxDefaultProfile (1.6 §3.13.1)
        piece = _winner(group, t)
        if piece is not None:
            pieces.append(piece)
            break
    for group in limit_tracks:     # every cap applies (1.6 §3.13.3, 2.0.1 K08.FR.04)
        piece = _winner(group, t)
        if piece is not None:
            pieces.append(piece)
    if not pieces:
        return NO_LIMIT, None
    stated = [q.phases for q in pieces if q.phases is not None]
    n = min([q.phases if q.phases is not None else phases for q in pieces])
    value = min(convert(q.limit, q.unit, target, voltage_v=voltage_v, phases=n) for q in pieces)
    return quantize(value), (n if stated else None)
