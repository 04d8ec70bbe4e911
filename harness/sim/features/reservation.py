"""Reservation (OCPP 2.0.1 block H, OCPP 1.6 Reservation profile) for both reference simulators.

Station side
  ReserveNow / CancelReservation handlers (both editions), the device-model variables
  ReservationCtrlr.Enabled / Available / NonEvseSpecific and the 1.6 key
  ReserveConnectorZeroSupported. A reservation names one EVSE (2.0.1 evseId, 1.6 connectorId
  > 0) or none (2.0.1 no evseId, optionally a connectorType; 1.6 connectorId 0). Through the
  core's hooks it
  - shows Reserved on a held EVSE (`connector_status`): a specific reservation holds its EVSE;
    reservations without an EVSE hold every free EVSE they could use once there are as many
    of them as free EVSEs (2.0.1 H01, 1.6 §5.13: one EVSE must stay free for the driver);
  - refuses other tokens on a held EVSE without asking the CSMS (`token_gate`); a member of
    the reservation's group (2.0.1 groupIdToken, 1.6 parentIdTag) is recognised from the
    CSMS's Authorize answer; a remote start for another driver on a held EVSE is Rejected
    (the RequestStartTransaction / RemoteStartTransaction handlers wrap the core's);
  - quotes the reservationId in TransactionEvent Started / StartTransaction and consumes the
    reservation (`outgoing`);
  - ends a specific reservation whose EVSE goes Unavailable or Faulted (2.0.1:
    ReservationStatusUpdate Removed) and lets a reservation expire at its expiry time (2.0.1:
    ReservationStatusUpdate Expired), reporting the EVSE Available again.
  Station action `set_faulted {evse=1, faulted=true}` puts an EVSE into (or out of) Faulted.

CSMS side
  Operator actions `reserve_now` and `cancel_reservation` build the CALLs;
  ReservationStatusUpdate is acknowledged. The CSMS keeps the reservations it made per
  station and reads what became of them from the station's recent CALLs.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..api import Reply, Setting
from . import Feature, feature_state
from ._common import csms_fault as _csms, station_fault as _cs

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState
    from ..evse import Evse, Transaction
    from ..station import FrontEnd, StationSimulator

_V201, _BOTH = ("2.0.1",), ("2.0.1", "1.6")

# Plain stored values. Setting is a frozen dataclass and the store is keyed by it, so equal
# settings would share one value: a distinct `minimum` (unused for bools) gives each its own slot.
ENABLED = Setting(None, "bool", const="true", minimum=9201)                      # ReservationCtrlr.Enabled (RW)
AVAILABLE = Setting(None, "bool", const="true", readonly=True, minimum=9202)     # ReservationCtrlr.Available
NON_EVSE_SPECIFIC = Setting(None, "bool", const="true", minimum=9203)            # ReservationCtrlr.NonEvseSpecific
CONNECTOR_ZERO = Setting(None, "bool", const="true", readonly=True, minimum=9204)  # 1.6 ReserveConnectorZeroSupported


# ---- the station's reservations ---------------------------------------------------------------

@dataclass
class Reservation:
    id: int
    id_token: str
    group_token: str | None              # 2.0.1 groupIdToken / 1.6 parentIdTag
    expires_at: datetime
    evse_id: int | None                  # None: any EVSE (of connector_type, if given)
    connector_type: str | None = None
    timer: asyncio.Task[Any] | None = None

    def cancel_timer(self) -> None:
        if self.timer is not None and self.timer is not asyncio.current_task():
            self.timer.cancel()
        self.timer = None


@dataclass
class StationReservations:
    by_id: dict[int, Reservation] = field(default_factory=dict)
    faulted: set[int] = field(default_factory=set)          # EVSEs put into Faulted (set_faulted)
    held_shown: set[int] = field(default_factory=set)       # EVSEs last reported as held
    group_use: dict[int, int] = field(default_factory=dict)  # EVSE → reservation a group member authorized for


def reservations(front: FrontEnd) -> StationReservations:
    return feature_state(front, "reservation", StationReservations)


def parse_time(text: str) -> datetime:
    """An OCPP dateTime (RFC 3339) as an aware UTC datetime; ValueError for anything else."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment.astimezone(timezone.utc)


def _idle(st: StationReservations, evse: Evse) -> bool:
    """Free for a new driver right now: nothing plugged, nobody authorized, in service."""
    return (not evse.plugged and evse.tx is None and evse.auth is None and not evse.inoperative
            and evse.id not in st.faulted)


def _specific(st: StationReservations) -> set[int]:
    return {r.evse_id for r in st.by_id.values() if r.evse_id is not None}


def _fits(r: Reservation, evse: Evse) -> bool:
    """Could the driver of reservation `r` charge at `evse`?"""
    if r.evse_id is not None:
        return r.evse_id == evse.id
    return r.connector_type is None or evse.cfg.connector_type == r.connector_type


def held_evses(sim: StationSimulator, st: StationReservations, *, ignore: int | None = None) -> set[int]:
    """EVSEs no other driver may take: specifically reserved ones, plus the free EVSEs that the
    reservations without an EVSE need (all of a kind once reservations ≥ free EVSEs of that kind)."""
    active = [r for r in st.by_id.values() if r.id != ignore]
    held = {r.evse_id for r in active if r.evse_id is not None}
    free = [e for e in sim.evses.values() if _idle(st, e) and e.id not in held]
    general = [r for r in active if r.evse_id is None]
    if general and len(general) >= len(free):
        held |= {e.id for e in free}
    for kind in {r.connector_type for r in general if r.connector_type}:
        of_kind = [e for e in free if e.cfg.connector_type == kind]
        if sum(1 for r in general if r.connector_type == kind) >= len(of_kind):
            held |= {e.id for e in of_kind}
    return held


def _status_for(sim: StationSimulator, st: StationReservations, evse_id: int | None,
                connector_type: str | None, ignore: int | None) -> str:
    """ReserveNow answer for a new reservation (2.0.1 ReserveNowStatusEnumType = 1.6 ReservationStatus)."""
    others = [r for r in st.by_id.values() if r.id != ignore]
    if evse_id is not None:
        candidates = [sim.evses[evse_id]]
    else:
        candidates = [e for e in sim.evses.values() if connector_type is None or e.cfg.connector_type == connector_type]
    if not candidates:
        return "Rejected"
    operative = [e for e in candidates if not e.inoperative and e.id not in st.faulted]
    if not operative:         # H01 / §5.13: every candidate is out of service
        if sim.has("reserve_unavailable_accepted"):
            return "Accepted"  # the bug: never looks at the availability of the EVSE
        return "Faulted" if all(e.id in st.faulted for e in candidates) else "Unavailable"
    if sim.has("reserve_occupied_accepted"):
        return "Accepted"      # the bug: never looks whether the EVSE is in use or reserved
    held = {r.evse_id for r in others if r.evse_id is not None}
    free = [e for e in operative if _idle(st, e) and e.id not in held]
    if evse_id is not None:
        return "Accepted" if free else "Occupied"
    # Reservations without an EVSE that compete for these EVSEs, plus this one, must fit.
    wanting = [r for r in others if r.evse_id is None
               and (connector_type is None or r.connector_type in (None, connector_type))]
    all_free = [e for e in sim.evses.values() if _idle(st, e) and e.id not in held]
    general = [r for r in others if r.evse_id is None]
    return "Accepted" if len(free) > len(wanting) and len(all_free) > len(general) else "Occupied"


def refresh(front: FrontEnd) -> None:
    """Report every EVSE whose held/free state changed (Reserved ↔ Available)."""
    sim, st = front.sim, reservations(front)
    now_held = held_evses(sim, st)
    if sim.has("reserved_status_not_reported"):
        st.held_shown = now_held
        return
    for evse_id in sorted(now_held ^ st.held_shown):
        evse = sim.evses[evse_id]
        if _idle(st, evse):
            front.send_status(evse)
    st.held_shown = now_held


def _remove(front: FrontEnd, r: Reservation, update: str | None) -> None:
    """End reservation `r`; 2.0.1 tells the CSMS why (H04 Expired / H01 Removed)."""
    st = reservations(front)
    st.by_id.pop(r.id, None)
    r.cancel_timer()
    st.group_use = {e: rid for e, rid in st.group_use.items() if rid != r.id}
    if update and front.version == "2.0.1":
        front.sim.enqueue("ReservationStatusUpdate", {"reservationId": r.id, "reservationUpdateStatus": update})
    refresh(front)


async def _expire_later(sim: StationSimulator, r: Reservation) -> None:
    delay = (r.expires_at - datetime.now(timezone.utc)).total_seconds()
    await asyncio.sleep(max(0.0, delay))
    front = sim.front
    st = reservations(front)
    if st.by_id.get(r.id) is r:
        r.timer = None
        _remove(front, r, "Expired")


def _store(front: FrontEnd, r: Reservation) -> None:
    st = reservations(front)
    old = st.by_id.get(r.id)
    if old is not None:
        old.cancel_timer()                 # H01.FR.02 / §5.13: the same id replaces the reservation
    st.by_id[r.id] = r
    if not front.sim.has("reservation_never_expires"):
        r.timer = front.sim.spawn(_expire_later(front.sim, r), f"reservation-{r.id}-expiry")


# ---- station: CSMS → station CALLs --------------------------------------------------------------

def _enabled(sim: StationSimulator) -> bool:
    return sim.read_setting(ENABLED) == "true" and sim.read_setting(AVAILABLE) == "true"


def _replacing(st: StationReservations, sim: StationSimulator, rid: int) -> int | None:
    """The id whose old reservation a new ReserveNow replaces (so it does not compete with itself)."""
    if rid in st.by_id and not sim.has("reservation_replace_keeps_old"):
        return rid
    return None


async def reserve_now_201(front: FrontEnd, p: dict[str, Any]) -> Reply:
    sim, st = front.sim, reservations(front)
    if not _enabled(sim):
        return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "Disabled"}})    # H01.FR.01
    rid, evse_id, kind = int(p["id"]), p.get("evseId"), p.get("connectorType")
    if evse_id is not None and evse_id not in sim.evses:
        return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}})
    if evse_id is not None and kind is not None and sim.evses[evse_id].cfg.connector_type != kind:
        return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "UnknownConnectorType"}})
    if evse_id is None and sim.read_setting(NON_EVSE_SPECIFIC) != "true":
        return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "NoEvseSpecified"}})  # H01.FR.18/19
    try:
        expires = parse_time(p["expiryDateTime"])
    except ValueError:
        return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue"}})
    if rid in st.by_id and sim.has("reservation_replace_keeps_old"):
        return Reply({"status": "Accepted"})       # the bug: says yes, keeps the old reservation
    status = _status_for(sim, st, evse_id, kind, _replacing(st, sim, rid))
    if status != "Accepted":
        return Reply({"status": status})
    group = (p.get("groupIdToken") or {}).get("idToken")
    _store(front, Reservation(rid, p["idToken"]["idToken"], group, expires, evse_id, kind))

    async def report() -> None:
        refresh(front)
    return Reply({"status": "Accepted"}, report)


async def reserve_now_16(front: FrontEnd, p: dict[str, Any]) -> Reply:
    sim, st = front.sim, reservations(front)
    cid, rid = int(p["connectorId"]), int(p["reservationId"])
    connectors: dict[int, tuple[Evse, int]] = getattr(front, "connectors")
    if cid == 0:
        if sim.read_setting(CONNECTOR_ZERO) != "true":
            return Reply({"status": "Rejected"})
        evse_id = None
    elif cid in connectors:
        evse_id = connectors[cid][0].id
    else:
        return Reply({"status": "Rejected"})
    try:
        expires = parse_time(p["expiryDate"])
    except ValueError:
        return Reply({"status": "Rejected"})
    if rid in st.by_id and sim.has("reservation_replace_keeps_old"):
        return Reply({"status": "Accepted"})
    status = _status_for(sim, st, evse_id, None, _replacing(st, sim, rid))
    if status != "Accepted":
        return Reply({"status": status})
    _store(front, Reservation(rid, str(p["idTag"]), p.get("parentIdTag"), expires, evse_id))

    async def report() -> None:
        refresh(front)
    return Reply({"status": "Accepted"}, report)


async def cancel_reservation(front: FrontEnd, p: dict[str, Any]) -> Reply:
    st = reservations(front)
    r = st.by_id.get(int(p["reservationId"]))
    if r is None:                              # H02.FR.02 / §5.1: no such reservation
        return Reply({"status": "Accepted" if front.sim.has("cancel_unknown_accepted") else "Rejected"})

    async def cancel() -> None:
        if st.by_id.get(r.id) is r:
            _remove(front, r, None)            # H02.FR.01: the EVSE is Available again
    return Reply({"status": "Accepted"}, cancel)


def _refused_remote(front: FrontEnd, evse: Evse | None, id_token: str) -> bool:
    """A remote start for another driver on an EVSE a reservation holds (§5.13, H01/H03)."""
    if evse is None or front.sim.has("remote_start_ignores_reservation"):
        return False
    usable = _usable(front, evse)
    if any(r.id_token == id_token or r.group_token for r in usable):
        return False                           # the reserved driver (a group is checked at the start)
    return evse.id in held_evses(front.sim, reservations(front))


# The core has no hook in front of a remote start, so these wrap the front end's own
# handler (looked up by name at call time) and only add the reservation check.
async def request_start_201(front: FrontEnd, p: dict[str, Any]) -> Reply:
    evse = front.sim.evses.get(p["evseId"]) if p.get("evseId") is not None else None
    if _refused_remote(front, evse, p["idToken"]["idToken"]):
        return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "Reserved"}})
    return await getattr(front, "_request_start")(p)


async def remote_start_16(front: FrontEnd, p: dict[str, Any]) -> Reply:
    entry = getattr(front, "connectors").get(p.get("connectorId")) if p.get("connectorId") else None
    if _refused_remote(front, entry[0] if entry else None, str(p["idTag"])):
        return Reply({"status": "Rejected"})
    return await getattr(front, "_remote_start")(p)


# ---- station: hooks into the core flow ----------------------------------------------------------

def connector_status(front: FrontEnd, evse: Evse, connector: int, status: str) -> str:
    st = reservations(front)
    if status != "Available":
        return status
    if evse.id in st.faulted:
        return "Faulted"
    if front.sim.has("reserved_status_not_reported"):
        return status
    return "Reserved" if evse.id in held_evses(front.sim, st) else status


def _usable(front: FrontEnd, evse: Evse) -> list[Reservation]:
    """Reservations whose driver may charge at `evse` now, the EVSE's own reservation first."""
    st = reservations(front)
    held = _specific(st)
    out = [r for r in st.by_id.values() if r.evse_id == evse.id]
    if evse.id not in held:
        out += [r for r in st.by_id.values() if r.evse_id is None and _fits(r, evse)]
    return out


async def _authorize_for_group(front: FrontEnd, id_token: str, token_type: str) -> tuple[str | None, str | None]:
    """Ask the CSMS about the token: (status, group/parent token)."""
    if front.version == "2.0.1":
        resp = await front.sim.enqueue("Authorize", {"idToken": {"idToken": id_token, "type": token_type}})
        info = (resp or {}).get("idTokenInfo") or {}
        return info.get("status"), (info.get("groupIdToken") or {}).get("idToken")
    resp = await front.sim.enqueue("Authorize", {"idTag": id_token})
    info = (resp or {}).get("idTagInfo") or {}
    return info.get("status"), info.get("parentIdTag")


async def token_gate(front: FrontEnd, evse: Evse, id_token: str, token_type: str) -> str | None:
    """H01.FR.15 / H03, §5.13: only the reserved token (or its group) may start on a held EVSE."""
    st = reservations(front)
    usable = _usable(front, evse)
    if any(r.id_token == id_token for r in usable):
        return None                            # the reserved driver: authorize as usual
    blocked = evse.id in held_evses(front.sim, st) and not front.sim.has("reservation_ignored_other_token_starts")
    groups = [r for r in usable if r.group_token] if not front.sim.has("reservation_group_ignored") else []
    if not groups:
        return "Reserved" if blocked else None
    status, group = await _authorize_for_group(front, id_token, token_type)
    mine = next((r for r in groups if r.group_token == group), None)
    if status == "Accepted" and mine is not None:
        st.group_use[evse.id] = mine.id
        return "Accepted"
    if blocked:
        return "Reserved"
    return "Accepted" if status == "Accepted" else "Invalid"


def _claim(front: FrontEnd, evse: Evse, id_token: str | None) -> Reservation | None:
    """The reservation a transaction starting at `evse` for `id_token` uses, if any."""
    st = reservations(front)
    rid = st.group_use.pop(evse.id, None)
    if rid is not None and rid in st.by_id:
        return st.by_id[rid]
    return next((r for r in _usable(front, evse) if r.id_token == id_token), None)


def _evse_of_status(front: FrontEnd, payload: dict[str, Any]) -> Evse | None:
    if front.version == "2.0.1":
        return front.sim.evses.get(payload.get("evseId", 0))
    entry = getattr(front, "connectors").get(payload.get("connectorId", 0))
    return entry[0] if entry else None


def outgoing(front: FrontEnd, action: str, payload: dict[str, Any]) -> None:
    sim, st = front.sim, reservations(front)
    if action == "TransactionEvent" and payload.get("eventType") == "Started":
        evse = sim.evses.get((payload.get("evse") or {}).get("id", 0))
        if evse is not None:
            r = _claim(front, evse, (payload.get("idToken") or {}).get("idToken"))
            if r is not None:                  # H03: the reservation is used and ends
                if not sim.has("no_reservation_id_in_tx"):
                    payload["reservationId"] = r.id
                st.by_id.pop(r.id, None)
                r.cancel_timer()
    elif action == "StartTransaction":
        entry = getattr(front, "connectors").get(payload.get("connectorId", 0))
        if entry is not None:
            r = _claim(front, entry[0], payload.get("idTag"))
            if r is not None:                  # §5.13: StartTransaction.req carries the reservationId
                if not sim.has("no_reservation_id_in_tx"):
                    payload["reservationId"] = r.id
                st.by_id.pop(r.id, None)
                r.cancel_timer()
    elif action == "StatusNotification":
        status = payload.get("connectorStatus", payload.get("status"))
        if status == "Faulted" and payload.get("errorCode") == "NoError":
            payload["errorCode"] = "OtherError"    # 1.6: a Faulted connector names an error
        evse = _evse_of_status(front, payload)
        if evse is not None and (evse.inoperative or evse.id in st.faulted):
            sim.spawn(_drop_for_out_of_service(front, evse), "reservation-removed")


async def _drop_for_out_of_service(front: FrontEnd, evse: Evse) -> None:
    """H01 / §5.13: a reservation ends when its EVSE becomes Unavailable or Faulted (2.0.1: Removed)."""
    if front.sim.has("reservation_not_removed_when_unavailable"):
        return
    st = reservations(front)
    for r in [r for r in st.by_id.values() if r.evse_id == evse.id]:
        _remove(front, r, "Removed")
    operative = [e for e in front.sim.evses.values() if not e.inoperative and e.id not in st.faulted]
    for r in [r for r in st.by_id.values() if r.evse_id is None]:
        if not any(_fits(r, e) for e in operative):
            _remove(front, r, "Removed")


def tx_changed(front: FrontEnd, evse: Evse, tx: Transaction) -> None:
    front.sim.spawn(_refresh_soon(front), "reservation-refresh")


async def _refresh_soon(front: FrontEnd) -> None:
    refresh(front)


# ---- station: out-of-band action --------------------------------------------------------------

async def set_faulted(sim: StationSimulator, params: dict[str, Any]) -> dict[str, Any]:
    """Put an EVSE into Faulted (a hardware error) or clear it, and report its status."""
    evse = sim.evse(params.get("evse", 1))
    st = reservations(sim.front)
    faulted = bool(params.get("faulted", True))
    (st.faulted.add if faulted else st.faulted.discard)(evse.id)
    sim.front.send_status(evse)
    return {"evse": evse.id, "faulted": faulted}


# ---- CSMS side ----------------------------------------------------------------------------------

@dataclass
class CsmsReservation:
    id: int
    target: int | None                      # evseId / connectorId asked for
    id_token: str


_reservation_ids = itertools.count(1)


def csms_reservations(st: StationState) -> dict[int, CsmsReservation]:
    """What this CSMS asked the station to reserve (kept on the station model)."""
    return st.__dict__.setdefault("_reservations", {})


def _ended(sim: CsmsSimulator, st: StationState, rid: int) -> bool:
    """Has the station reported the reservation used (H03 / §4.8: the reservationId of a
    transaction), expired or removed? Read from the station's recent CALLs."""
    for action, p in st.received:
        if action in ("TransactionEvent", "StartTransaction") and p.get("reservationId") == rid:
            if not sim.faulty("reservation_use_not_tracked"):
                return True
        if action == "ReservationStatusUpdate" and p.get("reservationId") == rid:
            return True
    return False


def _expiry(sim: CsmsSimulator, params: dict[str, Any]) -> tuple[str, bool]:
    """expiryDateTime / expiryDate: `expiry` as given, else now + `expiry_s` (default 3600 s)."""
    if params.get("expiry"):
        return str(params["expiry"]), True
    moment = datetime.now(timezone.utc) + timedelta(seconds=float(params.get("expiry_s", 3600)))
    if sim.faulty("reserve_expiry_local_time"):
        return moment.replace(tzinfo=None).isoformat(timespec="seconds"), False   # the bug: no UTC offset
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z"), True


def _new_id(params: dict[str, Any]) -> int:
    return int(params["reservation_id"]) if params.get("reservation_id") is not None else next(_reservation_ids)


def _build_reserve_201(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    from ..csms_faults import other_evse

    token = params.get("id_token")
    if not token:
        raise ValueError("reserve_now needs id_token")
    expiry, valid = _expiry(sim, params)
    rid = _new_id(params)
    payload: dict[str, Any] = {"id": rid, "expiryDateTime": expiry,
                               "idToken": {"idToken": str(token), "type": params.get("id_token_type", "Central")}}
    evse = params.get("evse")
    if evse is not None:
        payload["evseId"] = other_evse(int(evse)) if sim.faulty("reserve_now_wrong_evse") else int(evse)
    if params.get("connector_type"):
        payload["connectorType"] = str(params["connector_type"])
    if params.get("group_id_token") and not sim.faulty("reserve_now_drops_group"):
        payload["groupIdToken"] = {"idToken": str(params["group_id_token"]),
                                   "type": params.get("group_id_token_type", "Central")}
    csms_reservations(st)[rid] = CsmsReservation(rid, evse, str(token))
    return "ReserveNow", payload, valid


def _build_reserve_16(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    from ..csms_faults import other_evse

    tag = params.get("id_tag") or params.get("id_token")
    if not tag:
        raise ValueError("reserve_now needs id_tag")
    expiry, valid = _expiry(sim, params)
    rid = _new_id(params)
    connector = int(params.get("connector", 0))
    if connector and sim.faulty("reserve_now_wrong_evse"):
        connector = other_evse(connector)
    payload: dict[str, Any] = {"connectorId": connector, "expiryDate": expiry, "idTag": str(tag)[:20],
                               "reservationId": rid}
    if params.get("parent_id_tag") and not sim.faulty("reserve_now_drops_group"):
        payload["parentIdTag"] = str(params["parent_id_tag"])[:20]
    csms_reservations(st)[rid] = CsmsReservation(rid, connector, str(tag))
    return "ReserveNow", payload, valid


def _build_cancel(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    rid = params.get("reservation_id")
    if rid is None:
        open_ones = [r for r in csms_reservations(st).values() if not _ended(sim, st, r.id)]
        if not open_ones:
            raise ValueError(f"the CSMS has no open reservation on station {st.station_id}; pass reservation_id")
        rid = open_ones[-1].id
    rid = int(rid)
    if sim.faulty("cancel_wrong_reservation_id"):
        rid += 1                               # the bug: an off-by-one row id instead of the reservation id
    return "CancelReservation", {"reservationId": rid}, True


def _reservation_status_update(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    if sim.faulty("reservation_status_update_callerror"):
        raise RuntimeError("reservation store has no handler for status updates")   # → CALLERROR InternalError
    r = csms_reservations(st).get(int(p.get("reservationId", -1)))
    if r is None:
        sim.note(st, f"ReservationStatusUpdate for reservation {p.get('reservationId')!r} this CSMS never made")
    return {}


# ---- faults -------------------------------------------------------------------------------------

FEATURE = Feature(
    name="reservation",
    order=10,                       # its token gate decides before a local list can accept a token
    station_handlers={
        "2.0.1": {"ReserveNow": reserve_now_201, "CancelReservation": cancel_reservation,
                  "RequestStartTransaction": request_start_201},
        "1.6": {"ReserveNow": reserve_now_16, "CancelReservation": cancel_reservation,
                "RemoteStartTransaction": remote_start_16},
    },
    station_variables={
        ("ReservationCtrlr", "Enabled", None): ENABLED,
        ("ReservationCtrlr", "Available", None): AVAILABLE,
        ("ReservationCtrlr", "NonEvseSpecific", None): NON_EVSE_SPECIFIC,
    },
    station_config={"ReserveConnectorZeroSupported": CONNECTOR_ZERO},
    profile16="Reservation",
    station_actions={"set_faulted": set_faulted},
    token_gate=token_gate,
    connector_status=connector_status,
    outgoing=outgoing,
    tx_started=tx_changed,
    tx_ended=tx_changed,
    csms_answers={"2.0.1": {"ReservationStatusUpdate": _reservation_status_update}},
    csms_operator={
        "2.0.1": {"reserve_now": _build_reserve_201, "cancel_reservation": _build_cancel},
        "1.6": {"reserve_now": _build_reserve_16, "cancel_reservation": _build_cancel},
    },
    csms_provokes={"ReserveNow": frozenset({"StatusNotification"}),
                   "CancelReservation": frozenset({"StatusNotification"})},
    station_faults=[
        _cs("reservation_ignored_other_token_starts", _BOTH,
            "Lets any token start on a reserved EVSE/connector, not only the reserved one (or its group)."),
        _cs("no_reservation_id_in_tx", _BOTH,
            "Uses the reservation but leaves reservationId out of TransactionEvent Started / StartTransaction."),
        _cs("reservation_never_expires", _BOTH,
            "Never ends a reservation at its expiry time: no ReservationStatusUpdate Expired, the EVSE stays Reserved."),
        _cs("reserved_status_not_reported", _BOTH,
            "Accepts reservations but never reports the connector Reserved (StatusNotification stays Available)."),
        _cs("cancel_unknown_accepted", _BOTH,
            "Answers CancelReservation Accepted for a reservation id it does not have."),
        _cs("reserve_occupied_accepted", _BOTH,
            "Accepts ReserveNow for an EVSE/connector that is occupied or already reserved."),
        _cs("reserve_unavailable_accepted", _BOTH,
            "Accepts ReserveNow for an EVSE/connector that is Unavailable or Faulted."),
        _cs("reservation_group_ignored", _BOTH,
            "Ignores the reservation's groupIdToken/parentIdTag: a group member is refused on the reserved EVSE."),
        _cs("reservation_replace_keeps_old", _BOTH,
            "Answers Accepted to a ReserveNow that reuses a reservation id but keeps the old reservation."),
        _cs("remote_start_ignores_reservation", _BOTH,
            "Accepts a remote start for another driver's token on a reserved EVSE/connector."),
        _cs("reservation_not_removed_when_unavailable", _BOTH,
            "Keeps a reservation when its EVSE becomes Unavailable/Faulted (2.0.1: no ReservationStatusUpdate Removed)."),
    ],
    csms_faults=[
        _csms("reserve_now_wrong_evse", _BOTH,
              "ReserveNow names another EVSE/connector than the operator chose."),
        _csms("reserve_now_drops_group", _BOTH,
              "ReserveNow leaves out the groupIdToken / parentIdTag the operator gave."),
        _csms("reserve_expiry_local_time", _BOTH,
              "ReserveNow's expiry is written in local time without a UTC offset (not an RFC 3339 dateTime)."),
        _csms("cancel_wrong_reservation_id", _BOTH,
              "CancelReservation names another reservation id than the one to cancel."),
        _csms("reservation_use_not_tracked", _BOTH,
              "Ignores the reservationId in TransactionEvent / StartTransaction: a reservation a transaction "
              "already used still counts as open (and is what the operator's cancel then names)."),
        _csms("reservation_status_update_callerror", _V201,
              "ReservationStatusUpdate is answered with CALLERROR InternalError instead of a response."),
    ],
)
