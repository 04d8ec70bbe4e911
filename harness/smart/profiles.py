"""Charging profiles as installed on a station: typed, validated, parsed from OCPP payloads.

A profile is accepted in the shape it travels in ``SetChargingProfile``:

- OCPP 1.6:   ``csChargingProfiles`` (plus the request's ``connectorId``)
- OCPP 2.0.1: ``chargingProfile``    (plus the request's ``evseId``)

Every profile is first checked against the official request schema of the ``ocpp``
package (``harness.ocpp.schemas.validate``), then against the semantic rules the
schemas cannot express; anything that breaks either raises :class:`ProfileError`
naming the profile and the clause. Times are kept as integer UTC epoch seconds:
OCPP periods have a resolution of one second, so sub-second parts are truncated
(timestamps without an offset are read as UTC, the spec's recommendation:
1.6 §3.14, 2.0.1 Part 2 "Time zones").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Union

from harness.ocpp.schemas import validate

Version = Literal["1.6", "2.0.1"]
Unit = Literal["A", "W"]

# Purposes, normalised: 1.6 ChargePointMaxProfile and 2.0.1 ChargingStationMaxProfile are
# the same idea (a cap on the whole station), so both map to STATION_MAX.
STATION_MAX = "StationMax"
EXTERNAL = "ExternalConstraints"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"

_PURPOSES: dict[str, dict[str, str]] = {
    "1.6": {"ChargePointMaxProfile": STATION_MAX, "TxDefaultProfile": TX_DEFAULT, "TxProfile": TX},
    "2.0.1": {"ChargingStationMaxProfile": STATION_MAX, "ChargingStationExternalConstraints": EXTERNAL,
              "TxDefaultProfile": TX_DEFAULT, "TxProfile": TX},
}
WIRE_PURPOSE = {"1.6": {v: k for k, v in _PURPOSES["1.6"].items()},
                "2.0.1": {v: k for k, v in _PURPOSES["2.0.1"].items()}}

RECURRENCE_S = {"Daily": 86_400, "Weekly": 7 * 86_400}


class ProfileError(ValueError):
    """A charging profile the station must not have accepted (schema or semantic rule)."""


class ProfileConflict(ProfileError):
    """Two installed profiles the spec does not allow side by side (same purpose and stackLevel)."""


@dataclass(frozen=True)
class SchedulePeriod:
    start_period: int                 # seconds from the start of the schedule
    limit: float                      # in the schedule's chargingRateUnit
    number_phases: int | None = None  # absent = 3 where a number is needed (schema description)
    phase_to_use: int | None = None   # 2.0.1 only


@dataclass(frozen=True)
class ChargingSchedule:
    unit: Unit
    periods: tuple[SchedulePeriod, ...]
    start_schedule: int | None = None   # epoch seconds
    duration: int | None = None         # seconds; None = the last period runs on
    min_charging_rate: float | None = None
    id: int | None = None               # 2.0.1 only


@dataclass(frozen=True)
class ChargingProfile:
    """One installed profile. ``evse_id`` is the 1.6 connectorId / 2.0.1 evseId it was set on."""

    version: Version
    evse_id: int
    id: int
    purpose: str                        # STATION_MAX | EXTERNAL | TX_DEFAULT | TX
    kind: Literal["Absolute", "Recurring", "Relative"]
    stack_level: int
    schedules: tuple[ChargingSchedule, ...]
    recurrency: Literal["Daily", "Weekly"] | None = None
    valid_from: int | None = None       # epoch seconds, inclusive
    valid_to: int | None = None         # epoch seconds, exclusive
    transaction_id: str | None = None   # as text: 1.6 sends an integer, 2.0.1 a string

    @property
    def label(self) -> str:
        return (f"{WIRE_PURPOSE[self.version][self.purpose]} id={self.id} stackLevel={self.stack_level} "
                f"on {'connector' if self.version == '1.6' else 'EVSE'} {self.evse_id}")

    def valid_overlaps(self, other: ChargingProfile) -> bool:
        lo = max(self.valid_from if self.valid_from is not None else -math.inf,
                 other.valid_from if other.valid_from is not None else -math.inf)
        hi = min(self.valid_to if self.valid_to is not None else math.inf,
                 other.valid_to if other.valid_to is not None else math.inf)
        return lo < hi


# ---- time ----------------------------------------------------------------------------------

def conflict_clause(a: ChargingProfile, b: ChargingProfile) -> str:
    """The 2.0.1 requirement two profiles of one purpose and stackLevel with overlapping validity break."""
    if a.purpose == TX_DEFAULT and a.evse_id != b.evse_id:
        return "K01.FR.52/K01.FR.53"      # EVSE 0 vs one EVSE
    return "K01.FR.39" if a.purpose == TX else "K01.FR.06"


def conflicting(installed: Iterable[ChargingProfile], new: ChargingProfile) -> ChargingProfile | None:
    """2.0.1: the installed profile that `new` may not join (same purpose and stackLevel at the same
    place, overlapping validity), or None. The same id is a replacement, never a conflict."""
    for q in installed:
        if q.id == new.id or q.purpose != new.purpose or q.stack_level != new.stack_level:
            continue
        same_place = q.evse_id == new.evse_id or (new.purpose == TX_DEFAULT and 0 in (q.evse_id, new.evse_id))
        if same_place and q.valid_overlaps(new):
            return q
    return None


def epoch(value: datetime | str) -> int:
    """UTC epoch seconds of a datetime or an ISO 8601 string (naive = UTC; fractions truncated)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ProfileError(f"not an ISO 8601 date-time: {value!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return math.floor(value.timestamp())


def iso(ts: int) -> str:
    """Epoch seconds → OCPP date-time text, e.g. ``2024-08-21T12:24:40Z``."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- parsing -------------------------------------------------------------------------------

ProfileInput = Union[ChargingProfile, Mapping[str, Any], tuple[int, Mapping[str, Any]]]


def parse_profile(version: Version, profile: Mapping[str, Any], *, evse_id: int) -> ChargingProfile:
    """Parse one ``csChargingProfiles`` (1.6) / ``chargingProfile`` (2.0.1) object set on ``evse_id``."""
    if version not in _PURPOSES:
        raise ValueError(f"unsupported OCPP version {version!r}; supported: 1.6, 2.0.1")
    request = ({"connectorId": evse_id, "csChargingProfiles": profile} if version == "1.6"
               else {"evseId": evse_id, "chargingProfile": profile})
    return _parse_request(version, request)


def parse_profiles(version: Version, items: Iterable[ProfileInput]) -> list[ChargingProfile]:
    """Parse many profiles. Each item is a parsed :class:`ChargingProfile`, a whole
    ``SetChargingProfile`` request payload, or an ``(evse_id, profile_payload)`` pair."""
    out = []
    for item in items:
        if isinstance(item, ChargingProfile):
            if item.version != version:
                raise ProfileError(f"{item.label} is an OCPP {item.version} profile, not {version}")
            out.append(item)
        elif isinstance(item, tuple):
            evse_id, payload = item
            out.append(parse_profile(version, payload, evse_id=evse_id))
        elif isinstance(item, Mapping):
            out.append(_parse_request(version, item))
        else:
            raise TypeError(f"cannot read a charging profile from {type(item).__name__}")
    return out


def _parse_request(version: Version, request: Mapping[str, Any]) -> ChargingProfile:
    violation = validate(version, "SetChargingProfile", "request", request)
    inner_key = "csChargingProfiles" if version == "1.6" else "chargingProfile"
    raw = request.get(inner_key) if isinstance(request, Mapping) else None
    ident = raw.get("chargingProfileId" if version == "1.6" else "id") if isinstance(raw, Mapping) else None
    if violation is not None:
        raise ProfileError(f"charging profile id={ident}: violates the OCPP {version} SetChargingProfile "
                           f"schema at {violation}")
    evse_id = request["connectorId" if version == "1.6" else "evseId"]
    purpose = _PURPOSES[version][raw["chargingProfilePurpose"]]
    schedules_raw = [raw["chargingSchedule"]] if version == "1.6" else raw["chargingSchedule"]
    tx = raw.get("transactionId")
    profile = ChargingProfile(
        version=version, evse_id=evse_id, id=ident, purpose=purpose,
        kind=raw["chargingProfileKind"], stack_level=raw["stackLevel"],
        schedules=tuple(_schedule(s) for s in schedules_raw),
        recurrency=raw.get("recurrencyKind"),
        valid_from=epoch(raw["validFrom"]) if "validFrom" in raw else None,
        valid_to=epoch(raw["validTo"]) if "validTo" in raw else None,
        transaction_id=None if tx is None else str(tx),
    )
    _check_semantics(profile)
    return profile


def _schedule(raw: Mapping[str, Any]) -> ChargingSchedule:
    return ChargingSchedule(
        unit=raw["chargingRateUnit"],
        periods=tuple(SchedulePeriod(p["startPeriod"], float(p["limit"]), p.get("numberPhases"),
                                     p.get("phaseToUse"))
                      for p in raw["chargingSchedulePeriod"]),
        start_schedule=epoch(raw["startSchedule"]) if "startSchedule" in raw else None,
        duration=raw.get("duration"),
        min_charging_rate=raw.get("minChargingRate"),
        id=raw.get("id"),
    )


def _check_semantics(p: ChargingProfile) -> None:
    """Rules the JSON schemas do not carry. Each names its clause."""
    v16 = p.version == "1.6"

    def fail(rule: str, clause: str) -> None:
        raise ProfileError(f"{p.label}: {rule} ({clause})")

    if p.evse_id < 0:
        fail("the connector/EVSE id must not be negative", "connectorId/evseId 0 = the whole station")
    if p.stack_level < 0:
        fail("stackLevel must be ≥ 0 (lowest level is 0)", "1.6 §7.8 / 2.0.1 ChargingProfileType")
    if p.purpose == STATION_MAX and p.evse_id != 0:
        fail("a station-wide max profile can only be set on " + ("connector 0" if v16 else "EVSE 0"),
             "1.6 §3.13.1" if v16 else "2.0.1 K01 (ChargingStationMaxProfile, evseId 0)")
    if p.purpose == TX and p.evse_id == 0:
        fail("a TxProfile can only be set on a connector/EVSE > 0", "1.6 §3.13.1" if v16 else "2.0.1 K01.FR.16")
    if p.transaction_id is not None and p.purpose != TX:
        fail("transactionId is only allowed with purpose TxProfile",
             "1.6 §7.8 ChargingProfile.transactionId" if v16 else "2.0.1 ChargingProfileType.transactionId")
    if p.kind == "Recurring" and p.recurrency is None:
        fail("a Recurring profile needs recurrencyKind", "1.6 §7.9 / 2.0.1 ChargingProfileKindEnumType: "
             "the schedule restarts periodically, recurrencyKind says when")
    if p.kind != "Recurring" and p.recurrency is not None:
        fail("recurrencyKind is only meaningful with chargingProfileKind Recurring",
             "1.6 §7.8 / 2.0.1 ChargingProfileType")
    if not v16 and p.purpose == STATION_MAX and p.kind == "Relative":
        fail("ChargingStationMaxProfile cannot be Relative", "2.0.1 K01.FR.38")
    if p.valid_from is not None and p.valid_to is not None and p.valid_to <= p.valid_from:
        fail("validTo is not after validFrom: the profile is never valid", "1.6 §7.8 / 2.0.1 ChargingProfileType")
    for s in p.schedules:
        if not v16 and p.kind in ("Absolute", "Recurring") and s.start_schedule is None:
            fail("an Absolute or Recurring profile needs startSchedule", "2.0.1 K01.FR.40")
        if not v16 and p.kind == "Relative" and s.start_schedule is not None:
            fail("a Relative profile must not have startSchedule", "2.0.1 K01.FR.41")
        if s.duration is not None and s.duration <= 0:
            fail("chargingSchedule.duration must be positive", "1.6 §7.13 / 2.0.1 ChargingScheduleType")
        if s.periods[0].start_period != 0:
            fail("the first chargingSchedulePeriod must have startPeriod 0",
                 "1.6 errata v4 §3.45 (5.16.4)" if v16 else "2.0.1 K01.FR.31")
        starts = [q.start_period for q in s.periods]
        if any(b <= a for a, b in zip(starts, starts[1:])):
            fail(f"startPeriods must increase strictly, got {starts}",
                 "1.6 §7.14 (startPeriod also ends the previous period)" if v16 else "2.0.1 K01.FR.35")
        for q in s.periods:
            if q.limit < 0:
                fail(f"negative limit {q.limit} in startPeriod {q.start_period}",
                     "1.6 §7.14 / 2.0.1 ChargingSchedulePeriodType (a charging rate limit)")
            if q.number_phases is not None and q.number_phases not in (1, 2, 3):
                fail(f"numberPhases {q.number_phases} is not 1, 2 or 3",
                     "1.6 §7.14 / 2.0.1 ChargingSchedulePeriodType.numberPhases")
            if q.phase_to_use is not None and (q.phase_to_use not in (1, 2, 3) or q.number_phases != 1):
                fail("phaseToUse needs numberPhases 1 and a value 1..3",
                     "2.0.1 ChargingSchedulePeriodType.phaseToUse, K01.FR.19")
