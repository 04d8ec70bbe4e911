"""The depot's chargers (and its BESS) as the harness plays them: lightweight OCPP 2.0.1 stations.

One `DepotStation` per charger of the scenario, one websocket each
(`transport.client.connect_station` + `ocpp.connection.OcppConnection`: every frame
schema-checked both ways). Nothing here runs on its own: the run (`depot.run`) tells a
station what happened at a control step (`plug`, `unplug`, `meter`), the station queues
the messages and sends them in order when the run `flush`es — one outstanding CALL at a
time per station, as OCPP-J wants. Timestamps come from the run's shared clock.

What the station does with the CSMS's calls (its reader task answers them at once):

- SetChargingProfile is checked like a conformant 2.0.1 station checks it: the profile must
  parse (schema + the semantic rules of `smart.profiles`), name an EVSE of this station; a
  TxProfile needs the ongoing transaction on that EVSE (K01.FR.09); the same id replaces
  (K01.FR.05); another profile with the same purpose, stackLevel and EVSE and overlapping
  validity is Rejected (K01.FR.06/.39). Accepted profiles are laid out with the oracle
  (`smart.oracle.composite_schedule`, unit W) from now to the end of the scenario, so the
  limit in force at any step is a lookup.
- The limit an EVSE gives its truck: its own composite (TxProfile / TxDefaultProfile /
  its ChargingStationExternalConstraints), the station-wide composite
  (ChargingStationMaxProfile, external constraints on EVSE 0) shared by the EVSEs in
  proportion to what each could take, and the charger's power cabinet (the hardware
  never exceeds it). No profile at all: nothing limits but the rating.
- ClearChargingProfile, GetChargingProfiles (+ ReportChargingProfiles), GetCompositeSchedule
  (the oracle's answer) are supported; anything else gets the harness's default reply.
- TxProfiles end with their transaction.

Message content (2.0.1): plug-in → StatusNotification Occupied, TransactionEvent Started
(CablePluggedIn, chargingState EVConnected, energy register), NotifyEVChargingNeeds (DC:
departureTime, energyAmount, evMaxPower, evMaxCurrent/Voltage, stateOfCharge,
evEnergyCapacity, bulkSoC = target); then TransactionEvent Updated with
Energy.Active.Import.Register, Power.Active.Import and SoC — periodically
(MeterValuePeriodic), when the power moved by the deadband (ChargingRateChanged) or the
charging state changed (ChargingStateChanged); unplug → TransactionEvent Ended
(EVCommunicationLost / EVDisconnected), StatusNotification Available.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..ocpp.connection import Closed, ConnectionLost, Garbage, IncomingCall, OcppConnection, StrayResponse
from ..ocpp.framing import CallError
from ..ocpp.trace import Trace
from ..roles.defaults import default_reply
from ..smart.oracle import composite_schedule
from ..smart.profiles import (EXTERNAL, STATION_MAX, TX, TX_DEFAULT, WIRE_PURPOSE, ChargingProfile, ProfileError,
                              conflict_clause, conflicting, parse_profile)
from ..transport.client import connect_station
from ..transport.security import SecurityProfile

if TYPE_CHECKING:
    from ..smart.simclock import SimClock

VERSION = "2.0.1"
CALL_TIMEOUT_S = 30.0
DC_VOLTAGE_V = 800.0
MAX_STACK_LEVEL = 8


class StationError(RuntimeError):
    """A station could not take part (refused, not accepted, connection lost at set-up)."""


@dataclass
class Track:
    """A limit over time (absolute scenario seconds → kW, None = nothing limits), read forwards."""

    starts: list[float] = field(default_factory=list)
    limits: list[float | None] = field(default_factory=list)
    end: float = math.inf
    i: int = 0

    def value(self, t: float) -> tuple[float | None, float]:
        """(limit at t, when it next changes)."""
        if not self.starts or t >= self.end:
            return None, math.inf
        if t < self.starts[0]:
            return None, self.starts[0]
        v = self.at(t)
        nxt = self.starts[self.i + 1] if self.i + 1 < len(self.starts) else self.end
        return v, nxt

    def at(self, t: float) -> float | None:
        if not self.starts or t < self.starts[0] or t >= self.end:
            return None
        if t < self.starts[self.i]:
            self.i = 0
        n = len(self.starts)
        while self.i + 1 < n and self.starts[self.i + 1] <= t:
            self.i += 1
        return self.limits[self.i]


@dataclass
class Installed:
    payload: dict[str, Any]
    profile: ChargingProfile


@dataclass
class StationEvse:
    evse_id: int
    rating_kw: float
    slot: int = -1                   # index of this EVSE in depot.evses (-1: a BESS path)
    name: str = ""
    tx_id: str | None = None
    tx_start: float = 0.0
    tx_count: int = 0
    seq: int = 0
    register_wh: float = 0.0         # Energy.Active.Import.Register (Export for the BESS discharge path)
    reported_kw: float = 0.0
    report_t: float = -math.inf
    state: str = "EVConnected"       # chargingState last reported
    own: Track = field(default_factory=Track)


class DepotStation:
    """One charger (or the BESS) of the depot (see the module docstring)."""

    def __init__(self, station_id: str, evses: list[StationEvse], cabinet_kw: float, clock: SimClock,
                 end_s: float, trace: Trace, *, kind: str = "charger", log: Any = None):
        self.station_id = station_id
        self.evses = {e.evse_id: e for e in evses}
        self.cabinet_kw = cabinet_kw
        self.clock = clock
        self.end_s = end_s
        self.trace = trace
        self.kind = kind
        self.log = log                     # run-wide record (`run.RunLog`): profiles, protocol problems
        self.conn: OcppConnection | None = None
        self.installed: list[Installed] = []
        self.station_track = Track()
        self.revision = 0                  # bumped whenever a limit track is laid out anew
        self.reconnect_pending = False
        self.reconnects = 0
        self._url = ""
        self._security: SecurityProfile | None = None
        self.outbox: list[tuple[str, dict[str, Any]]] = []
        self.last_sent_t = -math.inf
        self.heartbeat_s = 60.0
        self.closing = False
        self._reader: asyncio.Task[None] | None = None

    # ---- connection ------------------------------------------------------------------------

    async def connect(self, url: str, security: SecurityProfile | None = None) -> None:
        try:
            self.conn = await connect_station(url, self.station_id, (VERSION,), self.trace, security)
        except Exception as exc:
            raise StationError(f"station {self.station_id} could not connect to {url}: {type(exc).__name__}: {exc}") from exc
        self._url, self._security = url, security
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(), name=f"depot-{self.station_id}")

    async def reconnect(self) -> None:
        """Drop the websocket and open a new one (no reboot: 2.0.1 sends no BootNotification;
        transactions and profiles live on). The first CALL on the new connection follows."""
        self.closing = True
        if self.conn is not None:
            await self.conn.close(1001, "depot charger reconnects")
        await self._stop_reader()
        self.closing = False
        self.reconnects += 1
        try:
            await self.connect(self._url, self._security)
        except StationError as exc:
            self._problem(f"{self.station_id}: could not reconnect: {exc}")

    async def boot(self) -> None:
        model = "DepotBESS" if self.kind == "bess" else "DepotCharger"
        resp = await self.call("BootNotification", {"reason": "PowerUp", "chargingStation": {
            "model": model, "vendorName": "ChargerHarness", "serialNumber": self.station_id[:25]}})
        if resp is None or resp.get("status") != "Accepted":
            raise StationError(f"station {self.station_id}: BootNotification answered "
                               f"{None if resp is None else resp.get('status')!r}, not Accepted")
        self.heartbeat_s = float(resp.get("interval") or 60) or 60.0
        for e in self.evses.values():
            self.queue("StatusNotification", {"timestamp": self.clock.iso(), "connectorStatus": "Available",
                                              "evseId": e.evse_id, "connectorId": 1})
        await self.flush()

    async def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass

    async def close(self) -> None:
        self.closing = True
        if self.conn is not None:
            await self.conn.close(1000, "depot run finished")
        await self._stop_reader()

    # ---- outgoing ----------------------------------------------------------------------------

    def queue(self, action: str, payload: dict[str, Any]) -> None:
        self.outbox.append((action, payload))

    async def flush(self) -> None:
        if self.reconnect_pending:
            self.reconnect_pending = False
            await self.reconnect()
        box, self.outbox = self.outbox, []
        for action, payload in box:
            await self.call(action, payload)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Send one CALL and wait for its answer; a CALLERROR or a bad answer is logged, not raised."""
        if self.conn is None:
            raise StationError(f"station {self.station_id} is not connected")
        self.last_sent_t = self.clock.now()
        try:
            resp = await self.conn.call(action, payload, timeout=CALL_TIMEOUT_S)
        except asyncio.TimeoutError:
            self._problem(f"{self.station_id}: the CSMS did not answer {action} within {CALL_TIMEOUT_S:g} s")
            return None
        except ConnectionLost as exc:
            self._problem(f"{self.station_id}: connection lost during {action}: {exc}")
            return None
        if isinstance(resp.frame, CallError):
            self._problem(f"{self.station_id}: the CSMS answered {action} with CALLERROR "
                          f"{resp.frame.error_code} {resp.frame.error_description!r}")
            return None
        if resp.violation is not None:
            self._problem(f"{self.station_id}: the CSMS's {action} answer violates the schema: {resp.violation}")
        return resp.frame.payload

    def _problem(self, text: str) -> None:
        if self.log is not None and not self.closing:
            self.log.protocol(self.clock.now(), text)

    def tx_event(self, e: StationEvse, event: str, trigger: str, *, meter: list[dict[str, Any]] | None = None,
                 stopped: str | None = None, first: bool = False) -> None:
        info: dict[str, Any] = {"transactionId": e.tx_id, "chargingState": e.state}
        if stopped:
            info["stoppedReason"] = stopped
        p: dict[str, Any] = {"eventType": event, "timestamp": self.clock.iso(), "triggerReason": trigger,
                             "seqNo": e.seq, "transactionInfo": info}
        if first:
            p["evse"] = {"id": e.evse_id, "connectorId": 1}
        if meter:
            p["meterValue"] = meter
        e.seq += 1
        self.queue("TransactionEvent", p)

    def start_tx(self, e: StationEvse, state: str = "EVConnected") -> None:
        e.tx_count += 1
        e.tx_id = f"{self.station_id}-{e.evse_id}-{e.tx_count}"[-36:]
        e.tx_start = self.clock.now()
        e.seq = 0
        e.state = state
        e.reported_kw = 0.0
        e.report_t = self.clock.now()
        self.queue("StatusNotification", {"timestamp": self.clock.iso(), "connectorStatus": "Occupied",
                                          "evseId": e.evse_id, "connectorId": 1})
        self.tx_event(e, "Started", "CablePluggedIn", first=True,
                      meter=[self.sample(e, power_kw=0.0, context="Transaction.Begin")])
        if self.installed:
            self.recompute(e)

    def end_tx(self, e: StationEvse, soc_pct: float | None = None) -> None:
        self.tx_event(e, "Ended", "EVCommunicationLost", stopped="EVDisconnected",
                      meter=[self.sample(e, power_kw=0.0, soc_pct=soc_pct, context="Transaction.End")])
        self.queue("StatusNotification", {"timestamp": self.clock.iso(), "connectorStatus": "Available",
                                          "evseId": e.evse_id, "connectorId": 1})
        e.tx_id = None
        before = len(self.installed)
        self.installed = [i for i in self.installed if not (i.profile.purpose == TX and i.profile.evse_id == e.evse_id)]
        if self.installed or before:
            self.recompute(e)

    def sample(self, e: StationEvse, *, power_kw: float, soc_pct: float | None = None, context: str = "Sample.Periodic",
               export: bool = False) -> dict[str, Any]:
        energy = "Energy.Active.Export.Register" if export else "Energy.Active.Import.Register"
        power = "Power.Active.Export" if export else "Power.Active.Import"
        sv = [{"value": round(e.register_wh, 3), "measurand": energy, "context": context, "unitOfMeasure": {"unit": "Wh"}},
              {"value": round(power_kw * 1000.0, 1), "measurand": power, "context": context, "unitOfMeasure": {"unit": "W"}}]
        if soc_pct is not None:
            sv.append({"value": round(soc_pct, 6), "measurand": "SoC", "context": context,
                       "unitOfMeasure": {"unit": "Percent"}})
        return {"timestamp": self.clock.iso(), "sampledValue": sv}

    # ---- incoming ----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self.conn is not None
        conn = self.conn
        while True:
            ev = await conn.next_event()
            if isinstance(ev, Closed):
                if not self.closing:
                    self._problem(f"{self.station_id}: the CSMS closed the connection (code {ev.code}, {ev.reason})")
                return
            if isinstance(ev, Garbage):
                self._problem(f"{self.station_id}: the CSMS sent a frame that is not OCPP-J ({ev.reason})")
                continue
            if isinstance(ev, StrayResponse):
                self._problem(f"{self.station_id}: the CSMS sent a response matching no CALL "
                              f"(id {ev.frame.unique_id!r})")
                continue
            if not isinstance(ev, IncomingCall):
                continue
            call = ev.call
            try:
                if ev.unknown_action:
                    await conn.reply_error(call, "NotImplemented", f"unknown action {call.action}")
                    self._problem(f"{self.station_id}: the CSMS sent unknown action {call.action!r}")
                    continue
                if ev.violation is not None:
                    await conn.reply_error(call, "FormatViolation", str(ev.violation))
                    self._problem(f"{self.station_id}: the CSMS's {call.action} violates the schema: {ev.violation}")
                    continue
                handler = _HANDLERS.get(call.action)
                if handler is not None:
                    payload, after = handler(self, call.payload)
                    await conn.reply(call, payload)
                    if after is not None:
                        asyncio.get_running_loop().create_task(after)
                    continue
                reply = default_reply("cs", VERSION, call.action, call.payload, {})
                if reply is None:
                    await conn.reply_error(call, "NotSupported", f"{call.action} is not supported by a depot charger")
                else:
                    await conn.reply(call, reply)
            except ConnectionLost:
                return

    # ---- smart charging ----------------------------------------------------------------------

    def set_profile(self, p: dict[str, Any]) -> tuple[dict[str, Any], None]:
        evse_id = int(p.get("evseId", -1))
        raw = p.get("chargingProfile") or {}
        status, reason, detail = self._check(evse_id, raw)
        if self.log is not None:
            self.log.profile(self.clock.now(), self.station_id, evse_id, raw, status, reason or detail)
        if status != "Accepted":
            return {"status": "Rejected", "statusInfo": {"reasonCode": reason, "additionalInfo": detail[:512]}}, None
        e = self.evses.get(evse_id)
        if self.log is not None and e is not None and e.tx_id and raw.get("chargingProfilePurpose") == "TxProfile":
            self.log.first_tx_profile.setdefault(e.tx_id, self.clock.now())
        return {"status": "Accepted"}, None

    def _check(self, evse_id: int, raw: dict[str, Any]) -> tuple[str, str, str]:
        if evse_id != 0 and evse_id not in self.evses:
            return "Rejected", "UnknownEvse", f"no EVSE {evse_id} on this station"
        try:
            prof = parse_profile(VERSION, raw, evse_id=evse_id)
        except ProfileError as exc:
            return "Rejected", "InvalidProfile", str(exc)
        if prof.stack_level > MAX_STACK_LEVEL:
            return "Rejected", "InvalidStackLevel", f"stackLevel {prof.stack_level} > {MAX_STACK_LEVEL}"
        if prof.purpose == TX:
            e = self.evses.get(evse_id)
            if e is None or e.tx_id is None:
                return "Rejected", "TxNotFound", "no transaction on this EVSE for a TxProfile (K01.FR.09)"
            if prof.transaction_id is not None and prof.transaction_id != e.tx_id:
                return "Rejected", "TxNotFound", f"transactionId {prof.transaction_id} is not the ongoing {e.tx_id}"
        q = conflicting((i.profile for i in self.installed), prof)
        if q is not None:
            return ("Rejected", "DuplicateProfile",
                    f"profile {q.id} already has purpose {WIRE_PURPOSE[VERSION][prof.purpose]} and stackLevel "
                    f"{prof.stack_level} there ({conflict_clause(q, prof)})")
        self.installed = [i for i in self.installed if i.profile.id != prof.id] + [Installed(dict(raw), prof)]
        self._recompute_for(evse_id)
        return "Accepted", "", ""

    def _recompute_for(self, evse_id: int) -> None:
        if evse_id == 0:
            self.recompute_station()
            for e in self.evses.values():
                self.recompute(e)
        else:
            self.recompute(self.evses[evse_id])

    def clear_profile(self, p: dict[str, Any]) -> tuple[dict[str, Any], None]:
        pid = p.get("chargingProfileId")
        crit = p.get("chargingProfileCriteria") or {}

        def hit(i: Installed) -> bool:
            q = i.profile
            if q.purpose == EXTERNAL:
                return False             # not the CSMS's to clear (K10.FR.05)
            if pid is not None:
                return q.id == pid
            return (("evseId" not in crit or q.evse_id == crit["evseId"])
                    and ("chargingProfilePurpose" not in crit
                         or WIRE_PURPOSE[VERSION][q.purpose] == crit["chargingProfilePurpose"])
                    and ("stackLevel" not in crit or q.stack_level == crit["stackLevel"]))
        gone = [i for i in self.installed if hit(i)]
        self.installed = [i for i in self.installed if not hit(i)]
        if gone:
            self.recompute_station()
            for e in self.evses.values():
                self.recompute(e)
        return {"status": "Accepted" if gone else "Unknown"}, None

    def get_profiles(self, p: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        req_id = p.get("requestId", 0)
        crit = p.get("chargingProfile") or {}
        evse = p.get("evseId")
        found = [i for i in self.installed
                 if (evse is None or i.profile.evse_id == evse)
                 and (not crit.get("chargingProfileId") or i.profile.id in crit["chargingProfileId"])
                 and ("chargingProfilePurpose" not in crit
                      or WIRE_PURPOSE[VERSION][i.profile.purpose] == crit["chargingProfilePurpose"])
                 and ("stackLevel" not in crit or i.profile.stack_level == crit["stackLevel"])]
        if not found:
            return {"status": "NoProfiles"}, None
        by_evse: dict[int, list[dict[str, Any]]] = {}
        for i in found:
            by_evse.setdefault(i.profile.evse_id, []).append(i.payload)

        async def report() -> None:
            items = list(by_evse.items())
            for n, (e, profiles) in enumerate(items):
                payload = {"requestId": req_id, "chargingLimitSource": "CSO", "evseId": e,
                           "chargingProfile": profiles}
                if n < len(items) - 1:
                    payload["tbc"] = True
                await self.call("ReportChargingProfiles", payload)
        return {"status": "Accepted"}, report()

    def composite(self, p: dict[str, Any]) -> tuple[dict[str, Any], None]:
        evse_id = int(p.get("evseId", 0))
        if evse_id != 0 and evse_id not in self.evses:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}, None
        e = self.evses.get(evse_id)
        tx = {} if e is None or e.tx_id is None else {
            "transaction_id": e.tx_id, "transaction_start": self.clock.to_datetime(e.tx_start)}
        rating = sum(x.rating_kw for x in self.evses.values()) if e is None else e.rating_kw
        cs = composite_schedule([i.profile for i in self.installed], version=VERSION, evse_id=evse_id,
                                start=self.clock.to_datetime(), duration_s=max(1, int(p.get("duration", 1))),
                                unit=p.get("chargingRateUnit"), max_limit=min(rating, self.cabinet_kw) * 1000.0,
                                max_limit_unit="W", **tx)
        return cs.to_response(VERSION), None

    def _lay_out(self, profiles: list[ChargingProfile], evse_id: int, e: StationEvse | None) -> Track:
        if not profiles:
            return Track()
        t = self.clock.now()
        t0 = math.floor(self.clock.epoch_ts + t) - self.clock.epoch_ts
        horizon = max(1, int(math.ceil(self.end_s - t0)) + 1)
        tx = {} if e is None or e.tx_id is None else {
            "transaction_id": e.tx_id, "transaction_start": self.clock.to_datetime(e.tx_start)}
        cs = composite_schedule(profiles, version=VERSION, evse_id=evse_id, start=self.clock.to_datetime(t),
                                duration_s=horizon, unit="W", **tx)
        return Track([t0 + q.start_offset_s for q in cs.periods],
                     [None if q.limit is None else q.limit / 1000.0 for q in cs.periods], t0 + horizon)

    def recompute(self, e: StationEvse) -> None:
        own = [i.profile for i in self.installed
               if (i.profile.purpose in (TX, TX_DEFAULT) and i.profile.evse_id in (0, e.evse_id))
               or (i.profile.purpose == EXTERNAL and i.profile.evse_id == e.evse_id)]
        e.own = self._lay_out(own, e.evse_id, e)
        self.revision += 1

    def recompute_station(self) -> None:
        wide = [i.profile for i in self.installed
                if i.profile.purpose == STATION_MAX or (i.profile.purpose == EXTERNAL and i.profile.evse_id == 0)]
        self.station_track = self._lay_out(wide, 0, None)
        self.revision += 1

    # ---- power -------------------------------------------------------------------------------

    def limit_kw(self, evse_id: int, t: float) -> float | None:
        """The EVSE's own limit at `t` (None: no profile limits it)."""
        return self.evses[evse_id].own.at(t)


_HANDLERS = {
    "SetChargingProfile": DepotStation.set_profile,
    "ClearChargingProfile": DepotStation.clear_profile,
    "GetChargingProfiles": DepotStation.get_profiles,
    "GetCompositeSchedule": DepotStation.composite,
}
