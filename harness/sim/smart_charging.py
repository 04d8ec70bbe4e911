"""Smart charging of the simulated station: the charging profiles it holds and what they do.

Version-neutral: the 1.6 and 2.0.1 front ends turn requests into calls of
:class:`SmartCharging` and its answers into their own messages. A profile is addressed
by its *target*: the 1.6 connectorId or the 2.0.1 evseId it was set on (0 = the station).

What the station does (and the clause it follows):
- SetChargingProfile: the profile must pass the oracle's parser (schema + semantic rules,
  ``harness.smart.profiles``), name a known EVSE/connector (2.0.1 TC_K_14), stay within
  the station's limits (stack levels, periods, number of profiles). A TxProfile needs a
  transaction on its EVSE, and its transactionId must be that transaction's (1.6 §5.16 "If
  there is no transaction active on the connector … SHALL discard it and return an error
  status"; 2.0.1 K01.FR.09, TC_K_16); 2.0.1 requires the transactionId (K01.FR.03), 1.6
  lets it out. A profile with the id of an installed one replaces it (1.6 §3.13.2, 2.0.1
  K01.FR.05); 1.6 also replaces the one with the same stackLevel and purpose on the same
  connector; 2.0.1 rejects it instead when their validity overlaps (K01.FR.06/K01.FR.39,
  K01.FR.52/53 for a TxDefaultProfile on EVSE 0 vs one EVSE).
- A TxProfile lives as long as its transaction: it is dropped when the transaction ends.
  A profile given with RequestStartTransaction/RemoteStartTransaction must be a TxProfile
  without transactionId and is installed when the transaction it started begins (2.0.1
  K05.FR.02, 1.6 §5.11).
- GetCompositeSchedule is answered with the oracle's composite
  (``harness.smart.oracle.composite_schedule``); where nothing limits, the EVSE's rating
  (the station's total for EVSE/connector 0) stands in for "no limit".
- Power: every sample of an energizing EVSE is capped at the composite limit in force
  at that instant (in W; a limit in A is per phase on the station's 3-phase 230 V AC
  supply, the OCPP definition, so W = A × 230 × phases). A ChargingStationMax /
  ChargePointMax limit is shared equally between the EVSEs that are drawing power.
  The limit takes effect at the next sample: the reaction time is at most one meter
  interval.

Faults (``harness.sim.faults``) act in :meth:`SmartCharging.effective` (what the station
believes is installed) and at the one place each bug lives.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from ..smart.oracle import composite_schedule, limit_at
from ..smart.profiles import (
    EXTERNAL, STATION_MAX, TX, WIRE_PURPOSE, ChargingProfile, ProfileConflict, ProfileError,
    conflict_clause, conflicting, parse_profile,
)
from ..smart.schedule import CompositeSchedule

if TYPE_CHECKING:
    from .evse import Evse, Transaction
    from .station import StationSimulator

SUPPLY_VOLTAGE_V = 230.0         # A limits: per phase of the AC supply (1.6 §7.14, 2.0.1 ChargingSchedulePeriodType)
SUPPLY_PHASES = 3
MAX_STACK_LEVEL = 8              # 1.6 ChargeProfileMaxStackLevel / 2.0.1 SmartChargingCtrlr.ProfileStackLevel
MAX_PERIODS = 24                 # 1.6 ChargingScheduleMaxPeriods / 2.0.1 SmartChargingCtrlr.PeriodsPerSchedule
MAX_PROFILES = 32                # 1.6 MaxChargingProfilesInstalled / 2.0.1 SmartChargingCtrlr.Entries

Verdict = tuple[Literal["Accepted", "Rejected"], str, str]   # status, reasonCode, human-readable detail


@dataclass
class Installed:
    target: int                  # 1.6 connectorId / 2.0.1 evseId it was set on
    payload: dict[str, Any]      # the profile as received (reported back as is)
    profile: ChargingProfile     # parsed


def _accepted() -> Verdict:
    return "Accepted", "", ""


class SmartCharging:
    def __init__(self, sim: StationSimulator):
        self.sim = sim
        self.installed: list[Installed] = []

    # ---- what the front end tells us about its numbering ---------------------------

    @property
    def version(self) -> Literal["1.6", "2.0.1"]:
        return "1.6" if self.sim.version == "1.6" else "2.0.1"

    def _evse(self, target: int) -> Evse | None:
        return self.sim.front.profile_evse(target)

    def _known(self, target: int) -> bool:
        return target == 0 or self._evse(target) is not None

    @staticmethod
    def _tx(evse: Evse | None) -> Transaction | None:
        tx = evse.tx if evse is not None else None
        return tx if tx is not None and not tx.ended else None

    # ---- installing ------------------------------------------------------------------

    def check(self, target: int, raw: dict[str, Any], *, from_remote_start: bool = False) -> tuple[Verdict, ChargingProfile | None]:
        """Would this profile be accepted on ``target``? (status, reasonCode, detail) and the parsed profile."""
        if not self._known(target):
            return ("Rejected", "UnknownEvse", f"no EVSE/connector {target} on this station"), None
        try:
            p = parse_profile(self.version, raw, evse_id=target)
        except ProfileError as exc:
            return ("Rejected", "InvalidProfile", str(exc)), None
        if p.stack_level > MAX_STACK_LEVEL:
            return ("Rejected", "InvalidStackLevel", f"stackLevel {p.stack_level} above the supported {MAX_STACK_LEVEL}"), None
        if any(len(s.periods) > MAX_PERIODS for s in p.schedules):
            return ("Rejected", "InvalidSchedule", f"more than {MAX_PERIODS} periods in a schedule"), None
        if from_remote_start:
            if p.purpose != TX:
                return ("Rejected", "InvalidProfile", "the profile of a remote start must be a TxProfile "
                        "(1.6 §5.11 / 2.0.1 K05.FR.02)"), None
            if p.transaction_id is not None:
                return ("Rejected", "InvalidProfile", "the profile of a remote start carries no transactionId: "
                        "the transaction does not exist yet (2.0.1 K05)"), None
            return _accepted(), p
        if p.purpose == TX:
            if self.version == "2.0.1" and p.transaction_id is None:
                return ("Rejected", "InvalidProfile", "a TxProfile names its transaction (2.0.1 K01.FR.03)"), None
            tx = self._tx(self._evse(target))
            if tx is None and not self.sim.has("tx_profile_without_tx_accepted"):
                return ("Rejected", "TxNotFound", "no transaction on this EVSE/connector for a TxProfile "
                        "(1.6 §5.16 / 2.0.1 K01.FR.09)"), None
            if tx is not None and p.transaction_id is not None and p.transaction_id != (tx.tx_id or None):
                return ("Rejected", "TxNotFound", f"transactionId {p.transaction_id} is not the ongoing "
                        f"transaction {tx.tx_id or '(not yet known)'}"), None
        if len([i for i in self.installed if i.profile.id != p.id]) >= MAX_PROFILES:
            return ("Rejected", "NoMemory", f"already {MAX_PROFILES} profiles installed"), None
        q = conflicting((i.profile for i in self.installed), p) if self.version == "2.0.1" else None
        if q is not None:
            return ("Rejected", "DuplicateProfile", f"profile {q.id} already has purpose "
                    f"{WIRE_PURPOSE['2.0.1'][p.purpose]} and stackLevel {p.stack_level} there "
                    f"({conflict_clause(q, p)})"), None
        return _accepted(), p

    def set_profile(self, target: int, raw: dict[str, Any]) -> Verdict:
        """SetChargingProfile: validate, replace what it replaces, install."""
        verdict, p = self.check(target, raw)
        if p is None:
            return verdict
        self._install(target, raw, p)
        return verdict

    def _install(self, target: int, raw: dict[str, Any], p: ChargingProfile) -> None:
        def replaced(i: Installed) -> bool:
            q = i.profile
            if q.id == p.id:
                return True
            return (self.version == "1.6" and q.evse_id == p.evse_id and q.purpose == p.purpose
                    and q.stack_level == p.stack_level)
        self.installed = [i for i in self.installed if not replaced(i)] + [Installed(target, dict(raw), p)]

    def clear(self, profile_id: int | None = None, target: int | None = None, purpose: str | None = None,
              stack_level: int | None = None) -> bool:
        """ClearChargingProfile: True when something matched (→ Accepted), else Unknown.

        ``purpose`` is the wire name. With an id, that profile is cleared whatever the other
        fields say (2.0.1 K10.FR.03); without, every profile matching all given fields.
        ChargingStationExternalConstraints come from an external system, not the CSMS, so a
        ClearChargingProfile never removes them."""
        def hit(i: Installed) -> bool:
            q = i.profile
            if q.purpose == EXTERNAL:
                return False
            if profile_id is not None:
                return q.id == profile_id
            return ((target is None or q.evse_id == target)
                    and (purpose is None or WIRE_PURPOSE[q.version][q.purpose] == purpose)
                    and (stack_level is None or q.stack_level == stack_level))
        gone = [i for i in self.installed if hit(i)]
        if gone and not self.sim.has("clear_profile_ignored"):
            self.installed = [i for i in self.installed if not hit(i)]
        return bool(gone)

    def report(self, target: int | None = None, purpose: str | None = None, stack_level: int | None = None,
               ids: list[int] | None = None, sources: list[str] | None = None) -> dict[int, list[dict[str, Any]]]:
        """GetChargingProfiles (2.0.1 K09): the matching profiles as received, by evseId."""
        out: dict[int, list[dict[str, Any]]] = {}
        if sources is not None and "CSO" not in sources:
            return out                  # every profile here came from the CSMS (chargingLimitSource CSO)
        for i in self.installed:
            q = i.profile
            if target is not None and q.evse_id != target:
                continue
            if ids:
                if q.id not in ids:
                    continue
            elif ((purpose is not None and WIRE_PURPOSE[q.version][q.purpose] != purpose)
                  or (stack_level is not None and q.stack_level != stack_level)):
                continue
            out.setdefault(q.evse_id, []).append(i.payload)
        return out

    # ---- transactions ----------------------------------------------------------------

    def on_tx_started(self, target: int, raw_profile: dict[str, Any] | None) -> None:
        """A transaction began on ``target``: install the profile its remote start carried."""
        if raw_profile is None:
            return
        verdict, p = self.check(target, raw_profile, from_remote_start=True)
        if p is not None:
            self._install(target, raw_profile, p)

    def on_tx_ended(self, evse: Evse) -> None:
        """The transaction on ``evse`` ended: its TxProfiles go with it."""
        self.installed = [i for i in self.installed
                          if not (i.profile.purpose == TX and self._evse(i.target) is evse)]

    # ---- what the station believes --------------------------------------------------

    def effective(self) -> list[ChargingProfile]:
        """The installed profiles as the station's own logic sees them (faults act here)."""
        version = self.version
        out = [i.profile for i in self.installed if i.profile.version == version]
        if self.sim.has("ignores_station_max"):
            out = [p for p in out if p.purpose != STATION_MAX]
        if self.sim.has("composite_ignores_validto"):
            out = [replace(p, valid_to=None) for p in out]
        if self.sim.has("recurring_not_repeated"):
            out = [replace(p, kind="Absolute", recurrency=None) if p.kind == "Recurring" else p for p in out]
        if self.sim.has("ignores_stack_level") and out:
            top = max(p.stack_level for p in out)
            out = [replace(p, stack_level=top - p.stack_level) for p in out]   # the lowest level now wins
        return out

    def _tx_args(self, target: int) -> dict[str, Any]:
        tx = self._tx(self._evse(target)) if target else None
        if tx is None:
            return {}
        started = time.time() - (self.sim.now() - tx.started_at)
        return {"transaction_id": tx.tx_id or "(pending)",
                "transaction_start": datetime.fromtimestamp(math.floor(started), tz=timezone.utc)}

    def rating_w(self, target: int) -> float:
        """Where no profile limits: the EVSE's rating (the whole station's for target 0)."""
        evse = self._evse(target) if target else None
        evses = [evse] if evse is not None else list(self.sim.evses.values())
        return sum(e.cfg.max_power_kw * 1000.0 for e in evses)

    def composite(self, target: int, duration_s: int, unit: str | None) -> CompositeSchedule | None:
        """GetCompositeSchedule from now for ``duration_s``; None for an unknown target or a
        profile set the station cannot combine."""
        if not self._known(target) or duration_s <= 0:
            return None
        profiles = self.effective()
        ask = unit
        if self.sim.has("composite_unit_ignored"):
            units = {s.unit for p in profiles for s in p.schedules}
            ask = units.pop() if len(units) == 1 else unit     # the bug: computes in its own unit …
        try:
            cs = self._resolve(composite_schedule, profiles, version=self.version, evse_id=target,
                               start=datetime.now(timezone.utc), duration_s=duration_s,
                               unit=ask, voltage_v=SUPPLY_VOLTAGE_V, phases=SUPPLY_PHASES,
                               max_limit=self.rating_w(target), max_limit_unit="W", **self._tx_args(target))
        except ProfileConflict:
            return None
        if ask != unit and unit is not None:
            cs = replace(cs, unit=unit)                         # … and labels it with the one asked for
        return cs

    def limit_w(self, evse: Evse) -> float | None:
        """The power cap (W) in force on ``evse`` now; None when no profile limits it."""
        if not self.installed or self.sim.has("limit_not_applied"):
            return None
        target = self.sim.front.profile_target(evse)
        profiles = self.effective()
        now = datetime.now(timezone.utc)
        common = dict(version=self.version, unit="W", voltage_v=SUPPLY_VOLTAGE_V, phases=SUPPLY_PHASES)
        try:
            own = self._resolve(limit_at, profiles, now, evse_id=target, **common, **self._tx_args(target))
            station = self._resolve(limit_at, profiles, now, evse_id=0, **common)
        except ProfileConflict:
            return None
        if station is not None:
            drawing = sum(1 for e in self.sim.evses.values() if e.energizing) or 1
            share = station / drawing
            own = share if own is None else min(own, share)
        return own

    @staticmethod
    def _resolve(fn: Any, profiles: list[ChargingProfile], *args: Any, **kw: Any) -> Any:
        """Call the oracle; a pair it cannot combine (only a faulty station gets there: its view
        of the profiles lost what kept them apart) keeps the one installed last."""
        try:
            return fn(profiles, *args, **kw)
        except ProfileConflict:
            last: dict[tuple[str, int, int], ChargingProfile] = {}
            for p in profiles:
                last[(p.purpose, p.stack_level, p.evse_id)] = p
            return fn(list(last.values()), *args, **kw)
