"""Reference CSMS simulator: a real back end (OCPP 1.6J and 2.0.1 side by side), a DUT stand-in.

Test cases where the harness plays the charging station run against it; every such case
must PASS against the clean simulator and FAIL against each fault it lists (see
`csms_faults.py`). It serves many stations at once, one task per connection; the
subprotocol a station negotiates decides which protocol module (`csms16`, `csms201`)
answers it. This module keeps what both versions share: connections, registration
(BootNotification, the Pending/Rejected gate), Heartbeat, the RPC-framework error
answers, and the operator's out-of-band actions (`perform`).

The per-station model (`stations`) is kept across reconnects, like a real back end keeps
its database: a 2.0.1 station that reconnects without rebooting stays Accepted.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Union

from ..ocpp import schemas
from ..ocpp.connection import (
    Closed, ConnectionLost, Garbage, IncomingCall, OcppConnection, StrayResponse,
)
from ..ocpp.framing import CallError, CallResult, encode, new_message_id
from ..ocpp.trace import Trace
from ..transport.security import tls_security
from .tls_faults import csms_tls_fault
from ..transport.server import OcppServer, PasswordCheck
from . import csms16, csms201
from .api import CsmsSimConfig, UnknownFault, UnknownSimAction
from .csms_faults import CSMS_FAULTS, SLOW_RESPONSE_DELAY_S, UNKNOWN_SUBPROTOCOL

log = logging.getLogger(__name__)

PROTOCOLS = {"1.6": csms16, "2.0.1": csms201}
REGISTRATION_STATUSES = ("Accepted", "Pending", "Rejected")
CALL_TIMEOUT_S = 20.0          # how long an operator action waits for the station's answer


class StationNotConnected(RuntimeError):
    """An operator action needs a station that has no open connection to this CSMS."""


# ---- the per-station model ----------------------------------------------------------------

@dataclass
class Transaction:
    transaction_id: str | int          # 2.0.1: station-chosen string; 1.6: CSMS-issued integer
    evse_id: int | None                # 1.6: the connectorId
    connector_id: int | None
    id_token: str | None
    started_at: str | None
    ended: bool = False
    stopped_reason: str | None = None
    remote_start_id: int | None = None
    charging_state: str | None = None
    seq_no: int | None = None          # 2.0.1: last seqNo seen
    events: list[str] = field(default_factory=list)   # "Started/CablePluggedIn", "Start", "Stop", …
    meter_start_wh: float | None = None
    energy_wh: float | None = None     # latest Energy.Active.Import.Register reading


@dataclass
class Registration:
    status: str          # what the next BootNotification gets
    interval: int


@dataclass
class StationState:
    station_id: str
    version: str = ""                       # negotiated on the last connection
    connected: bool = False
    registration: str | None = None         # what the last BootNotification got; None = never booted
    plan: Registration | None = None        # set_registration (sticky until changed)
    boot: dict[str, Any] | None = None      # last BootNotification payload
    boots: int = 0
    heartbeats: int = 0
    last_heartbeat: str | None = None       # UTC time the last Heartbeat arrived
    # (evse id, connector id) → status. 1.6 has no EVSE: connectorId n is kept as (n, 1) as in
    # OCA's 1.6→2.0.1 mapping, connectorId 0 (the whole charge point) as (0, 0).
    status: dict[tuple[int, int], str] = field(default_factory=dict)
    energy_wh: dict[int, float] = field(default_factory=dict)   # evse → latest energy register
    transactions: dict[str | int, Transaction] = field(default_factory=dict)
    triggered: set[str] = field(default_factory=set)  # CALLs allowed while Pending (B02.FR.09)
    notes: list[str] = field(default_factory=list)    # protocol oddities the CSMS noticed
    # Recent CALLs (action, payload), bounded so thousands of stations in a fleet run stay cheap.
    received: deque[tuple[str, dict[str, Any]]] = field(default_factory=lambda: deque(maxlen=50))

    def ongoing(self) -> list[Transaction]:
        return [t for t in self.transactions.values() if not t.ended]

    def open_transaction(self, transaction_id: str | int, **kw: Any) -> Transaction:
        tx = Transaction(transaction_id=transaction_id, **{"evse_id": None, "connector_id": None,
                                                           "id_token": None, "started_at": None, **kw})
        self.transactions[transaction_id] = tx
        return tx

    def to_json(self) -> dict[str, Any]:
        return {
            "station_id": self.station_id, "version": self.version, "connected": self.connected,
            "registration": self.registration, "boots": self.boots, "heartbeats": self.heartbeats,
            "last_heartbeat": self.last_heartbeat, "boot": self.boot,
            "status": {f"{e}/{c}": s for (e, c), s in self.status.items()},
            "energy_wh": {str(k): v for k, v in self.energy_wh.items()},
            "transactions": [dict(vars(t)) for t in self.transactions.values()],
            "notes": list(self.notes),
        }


# ---- what the CSMS answers to one CALL ---------------------------------------------------------

@dataclass
class Result:
    payload: dict[str, Any]
    validate: bool = True          # False only where a fault sends a schema-invalid answer on purpose


@dataclass
class Error:
    code: str
    description: str = ""


Outcome = Union[Result, Error]

# A violated JSON-Schema keyword → the RPC error code naming that kind of violation.
_OCCURRENCE_RULES = {"required", "minItems", "maxItems", "minProperties", "maxProperties"}
_PROPERTY_RULES = {"enum", "const", "maxLength", "minLength", "pattern", "format", "minimum", "maximum",
                   "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "uniqueItems"}


def violation_error_code(rule: str, version: str) -> str:
    """OCPP-J error code for a payload that breaks schema keyword `rule` (1.6 keeps its spellings)."""
    v16 = version == "1.6"
    if rule in _OCCURRENCE_RULES:
        return "OccurenceConstraintViolation"   # 1.6 and 2.0.1 (the double-r spelling is 2.1)
    if rule == "type":
        return "TypeConstraintViolation"
    if rule in _PROPERTY_RULES:
        return "PropertyConstraintViolation"
    # additionalProperties and anything structural: the payload does not fit the PDU.
    return "FormationViolation" if v16 else "FormatViolation"


def utc_now() -> str:
    """RFC 3339 UTC with milliseconds and 'Z', as both OCPP editions want dateTime."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _AliasedSubprotocol:
    """The websocket as the buggy back end sees it: an unknown subprotocol taken for its own."""

    def __init__(self, ws: Any, subprotocol: str):
        self._ws, self.subprotocol = ws, subprotocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)


class _LaxSubprotocolServer(OcppServer):
    """Fault `accepts_unknown_subprotocol`: also agrees to `ocpp9.9`, then talks its first version."""

    @property
    def subprotocols(self) -> list[str]:
        return [*super().subprotocols, UNKNOWN_SUBPROTOCOL]

    async def _handler(self, ws: Any) -> None:
        if str(ws.subprotocol) == UNKNOWN_SUBPROTOCOL:
            own = schemas.SUBPROTOCOLS[self.versions[0]]
            self.trace.event(ws.request.path if ws.request else "", f"fault: agreed to {UNKNOWN_SUBPROTOCOL}, "
                             f"talking {own}", "FAULT")
            ws = _AliasedSubprotocol(ws, own)
        await super()._handler(ws)


# ---- the simulator ---------------------------------------------------------------------------

class CsmsSimulator:
    """A CSMS that stations connect to at `url + "/<station id>"` (see the module docstring).

    Defaults a test-case author relies on (CsmsSimConfig): BootNotification → Accepted with
    interval 60 s; tokens TRUCK-0001/TRUCK-0002 valid, BLOCKED-01 blocked, anything else
    Invalid; `registration` may pre-set a station's boot answer (key "*" = every station);
    with `passwords` empty any station may connect.
    """

    def __init__(self, cfg: CsmsSimConfig, fault: str | None = None, trace: Trace | None = None,
                 clock: Any = None):
        if fault is not None and fault not in CSMS_FAULTS:
            raise UnknownFault(f"unknown CSMS fault {fault!r}; known: {', '.join(sorted(CSMS_FAULTS))}")
        for sid, status in cfg.registration.items():
            if status not in REGISTRATION_STATUSES:
                raise ValueError(f"registration of {sid!r} must be one of {REGISTRATION_STATUSES}, got {status!r}")
        self.cfg, self.fault = cfg, fault
        self.trace = trace if trace is not None else Trace()
        self.stations: dict[str, StationState] = {}
        self._conns: dict[str, OcppConnection] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._accept_task: asyncio.Task[None] | None = None
        self._tx_ids = itertools.count(1)            # 1.6 transactionIds, unique across stations
        self._remote_start_ids = itertools.count(1)
        self.dlb: Any = None                         # depot DLB controller (csms_dlb.attach_depot)
        self.clock: Any = clock                      # a shared simulated clock (smart.simclock); None: UTC now
        server_cls = _LaxSubprotocolServer if self.faulty("accepts_unknown_subprotocol") else OcppServer
        security = tls_security(cfg.security_profile, "server", cfg.tls_files())
        if security.ssl_context is not None:
            csms_tls_fault(security.ssl_context, fault)
        self.server = server_cls(
            versions=tuple(cfg.versions), host=cfg.host, port=cfg.port, path_prefix=cfg.path_prefix,
            security=security, password_check=self._password_check(),
            trace=self.trace,
        )

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.server.start()
        self._accept_task = asyncio.get_running_loop().create_task(self._accept_loop(), name="csms-accept")

    @property
    def url(self) -> str:
        """Base URL; a station appends `/<station id>`."""
        if self._accept_task is None:
            raise RuntimeError("CSMS simulator not started")
        return self.server.url()

    async def stop(self) -> None:
        """Close everything within a bounded time, whatever state the stations are in."""
        if self._accept_task is not None:
            self._accept_task.cancel()
        for task in self._tasks:
            task.cancel()
        closers = [asyncio.ensure_future(c.close(1001, "CSMS shutting down")) for c in self._conns.values()]
        pending = [*closers, *self._tasks]
        if pending:
            await asyncio.wait(pending, timeout=3)
        try:
            await asyncio.wait_for(self.server.stop(), 6)
        except asyncio.TimeoutError:
            log.warning("CSMS simulator: server did not close within 6 s")
        self._accept_task = None

    async def _accept_loop(self) -> None:
        while True:
            accepted = await self.server.accepted.get()
            self._spawn(self._serve(accepted.station_id, accepted.version, accepted.connection),
                        f"csms-{accepted.station_id}")

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- helpers the protocol modules use -------------------------------------------------

    def faulty(self, name: str, version: str | None = None) -> bool:
        """Is fault `name` active (and, when a version is given, does it apply to that version)?"""
        return self.fault == name and (version is None or version in CSMS_FAULTS[name].versions)

    def token_status(self, token: str | None, version: str) -> str:
        """Authorization verdict for an id token, the same for Authorize and transaction answers."""
        if token in self.cfg.blocked_tokens:
            return "Accepted" if self.faulty("authorize_accepts_blocked", version) else "Blocked"
        if token in self.cfg.valid_tokens:
            return "Invalid" if self.faulty("authorize_rejects_valid", version) else "Accepted"
        return "Accepted" if self.faulty("authorize_accepts_unknown", version) else "Invalid"

    def now_iso(self) -> str:
        return self.clock.iso() if self.clock is not None else utc_now()

    def next_tx_id(self) -> int:
        return next(self._tx_ids)

    def next_remote_start_id(self) -> int:
        return next(self._remote_start_ids)

    def note(self, st: StationState, text: str) -> None:
        """Record something odd the station did: kept on the model and in the trace, never fatal."""
        st.notes.append(text)
        self.trace.event(st.station_id, f"CSMS note: {text}", "NOTE")
        log.info("%s: %s", st.station_id, text)

    def _password_check(self) -> PasswordCheck | None:
        if not self.cfg.passwords:
            return None      # no credentials configured: any station may connect
        if self.faulty("basic_auth_not_enforced"):
            return lambda station_id, password: True
        passwords = self.cfg.passwords

        def check(station_id: str, password: str) -> bool:
            expected = passwords.get(station_id)
            return expected is not None and hmac.compare_digest(expected.encode(), password.encode())
        return check

    def _state(self, station_id: str) -> StationState:
        st = self.stations.get(station_id)
        if st is None:
            st = self.stations[station_id] = StationState(station_id)
        return st

    # ---- one station connection -------------------------------------------------------

    async def _serve(self, station_id: str, version: str, conn: OcppConnection) -> None:
        st = self._state(station_id)
        previous = self._conns.get(station_id)
        if previous is not None:
            # A station that reconnects replaces its old connection, as real back ends do.
            self.note(st, "new connection replaces an open one")
            self._spawn(previous.close(1000, "replaced by a new connection"), f"csms-close-{station_id}")
        self._conns[station_id] = conn
        st.version, st.connected = version, True
        try:
            while True:
                event = await conn.next_event()
                if isinstance(event, Closed):
                    break
                try:
                    if isinstance(event, IncomingCall):
                        await self._respond(st, conn, event, self._decide(st, event))
                    elif isinstance(event, Garbage):
                        await self._on_garbage(st, conn, event)
                    elif isinstance(event, StrayResponse):
                        self.note(st, f"response with unknown message id {event.frame.unique_id!r}")
                except ConnectionLost:
                    break
        finally:
            if self._conns.get(station_id) is conn:
                del self._conns[station_id]
                st.connected = False

    def _decide(self, st: StationState, event: IncomingCall) -> Outcome:
        """What the CSMS answers to one CALL, in the order a real back end checks things."""
        call, version = event.call, st.version
        proto = PROTOCOLS[version]
        st.received.append((call.action, call.payload))
        if event.unknown_action:
            if self.faulty("unknown_action_callresult", version):
                return Result({}, validate=False)
            return Error("NotImplemented", f"unknown action {call.action!r}")
        if call.action not in proto.STATION_ACTIONS:
            return Error("NotSupported", f"{call.action} is not a charging-station-initiated message")
        if event.violation is not None and not self.faulty("bad_payload_accepted", version):
            return Error(violation_error_code(event.violation.rule, version), str(event.violation))
        if not self._may_send(st, call.action):
            return Error("SecurityError", f"station is not accepted (registration {st.registration}); "
                                          f"only BootNotification is allowed")
        if call.action == "StatusNotification" and self.faulty("status_callerror", version):
            return Error("InternalError", "status store unavailable")
        try:
            if call.action == "BootNotification":
                return self._boot(st, call.payload)
            if call.action == "Heartbeat":
                return self._heartbeat(st)
            out = Result(proto.answer(self, st, call.action, call.payload))
            if self.dlb is not None:
                self.dlb.observe(st, call.action, call.payload)
            return out
        except Exception as exc:  # a bug or an unchecked payload: answer like a back end that crashed
            log.exception("CSMS simulator: %s from %s", call.action, st.station_id)
            return Error("InternalError", f"{type(exc).__name__}: {exc}")

    def _may_send(self, st: StationState, action: str) -> bool:
        """B02.FR.09 / B03.FR.07: until Accepted, only BootNotification and (Pending) triggered CALLs."""
        if action == "BootNotification" or st.registration in (None, "Accepted"):
            # None: never booted here (e.g. reconnect after a CSMS restart); a 2.0.1 station does
            # not re-boot on reconnect, so an unknown-but-connected station is not refused.
            return True
        if st.registration == "Pending":
            if action in st.triggered:
                return not self.faulty("pending_rejects_triggered", st.version)
            return self.faulty("pending_accepts_calls", st.version)
        return False

    def _registration_for(self, station_id: str) -> Registration:
        st = self._state(station_id)
        if st.plan is not None:
            return st.plan
        status = self.cfg.registration.get(station_id, self.cfg.registration.get("*", "Accepted"))
        return Registration(status, self.cfg.heartbeat_interval_s)

    def _boot(self, st: StationState, payload: dict[str, Any]) -> Outcome:
        reg = self._registration_for(st.station_id)
        status, interval = reg.status, reg.interval
        if self.faulty("boot_always_pending", st.version):
            status = "Pending"
        if status == "Accepted" and self.faulty("boot_interval_zero", st.version):
            interval = 0
        st.registration, st.boot, st.boots = status, dict(payload), st.boots + 1
        st.triggered.clear()     # a new boot starts a new registration; old triggers are spent
        return Result({"currentTime": self.now_iso(), "interval": interval, "status": status})

    def _heartbeat(self, st: StationState) -> Outcome:
        st.heartbeats += 1
        st.last_heartbeat = self.now_iso()
        if self.faulty("heartbeat_bad_time", st.version):
            return Result({"currentTime": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")}, validate=False)
        return Result({"currentTime": st.last_heartbeat})

    async def _respond(self, st: StationState, conn: OcppConnection, event: IncomingCall, outcome: Outcome) -> None:
        call = event.call
        if self.faulty("slow_response", st.version):
            await asyncio.sleep(SLOW_RESPONSE_DELAY_S)
        if isinstance(outcome, Error):
            await conn.reply_error(call, outcome.code, outcome.description)
        elif self.faulty("wrong_response_id", st.version):
            await conn.send_raw(encode(CallResult(new_message_id(), outcome.payload)),
                                note=f"fault wrong_response_id: answer to {call.action} {call.unique_id}")
        else:
            await conn.reply(call, outcome.payload, validate=outcome.validate)

    async def _on_garbage(self, st: StationState, conn: OcppConnection, event: Garbage) -> None:
        """1.6 has no error for an unreadable frame: ignore it. 2.0.1 (Part 4 §4.2.3) answers
        RpcFrameworkError / MessageTypeNotSupported when the message id can still be read."""
        if st.version == "1.6":
            return
        try:
            data = json.loads(event.raw)
        except ValueError:
            return
        if not (isinstance(data, list) and len(data) >= 2 and isinstance(data[1], str)):
            return
        if data[0] == 2:
            await conn.reply_error(data[1], "RpcFrameworkError", event.reason)
        elif data[0] not in (3, 4):      # never answer something that claims to be a response
            await conn.reply_error(data[1], "MessageTypeNotSupported", f"MessageTypeId {data[0]!r} not supported")

    # ---- operator actions ---------------------------------------------------------------

    async def perform(self, action: str, params: dict[str, Any]) -> Any:
        """The operator's out-of-band actions. All take `station_id`; those that send a CALL
        also take `timeout` (s, default 20) and `connect_timeout` (s to wait for the station to
        be connected, default 0), and return {"action", "request", "response" | "error"
        {code, description, details}, "violation"? (the answer breaks the schema)}.

        set_registration  status Accepted|Pending|Rejected, interval? → next boots' answer (sticky)
        remote_start      id_token (str or IdTokenType), evse? (2.0.1) / connector? (1.6),
                          id_token_type? (default Central), charging_profile?
        remote_stop       transaction_id? (default: the station's latest ongoing transaction)
        reset             type? (default Immediate / Hard), evse? (2.0.1)
        get_variables     variables [{component, variable, attribute_type?}]           (2.0.1)
        set_variables     variables [{component, variable, value, attribute_type?}]    (2.0.1)
        get_configuration keys?                                                         (1.6)
        change_configuration key, value                                                 (1.6)
        trigger_message   message, evse?, connector?
        change_availability status? (default Inoperative), evse?/connector?
        send              action, payload, validate? (default true): any CALL
        station_state     → the CSMS's model of the station as JSON
        disconnect        the CSMS closes the station's websocket
        """
        params = dict(params or {})
        generic: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "set_registration": self._set_registration, "send": self._send,
            "station_state": self._station_state, "disconnect": self._disconnect,
        }
        if action in generic:
            return await generic[action](params)
        by_version = {v: p.OPERATOR_ACTIONS for v, p in PROTOCOLS.items()}
        if not any(action in names for names in by_version.values()):
            valid = sorted({*generic, *csms16.OPERATOR_ACTIONS, *csms201.OPERATOR_ACTIONS})
            raise UnknownSimAction(f"CSMS simulator has no action {action!r}; valid: {', '.join(valid)}")
        st, conn = await self._connected(params)
        build = by_version[st.version].get(action)
        if build is None:
            other = [v for v, names in by_version.items() if action in names]
            raise ValueError(f"{action} is an OCPP {'/'.join(other)} action; station {st.station_id} "
                             f"speaks {st.version}")
        out_action, payload, validate = build(self, st, params)
        return await self._call(st, conn, out_action, payload, validate, params)

    async def _connected(self, params: dict[str, Any]) -> tuple[StationState, OcppConnection]:
        station_id = params.get("station_id")
        if not station_id:
            raise ValueError("station_id is required")
        # Optional grace for a station that is just reconnecting (e.g. after a Reset).
        deadline = asyncio.get_running_loop().time() + float(params.get("connect_timeout", 0))
        while station_id not in self._conns and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        conn = self._conns.get(station_id)
        if conn is None:
            connected = ", ".join(sorted(self._conns)) or "none"
            raise StationNotConnected(f"station {station_id!r} is not connected to the CSMS simulator "
                                      f"(connected: {connected})")
        return self.stations[station_id], conn

    async def _call(self, st: StationState, conn: OcppConnection, action: str, payload: dict[str, Any],
                    validate: bool, params: dict[str, Any]) -> dict[str, Any]:
        """Send one CALL to the station and return its answer as JSON-able data."""
        # Allow what this CALL provokes before sending: the answer may arrive before the CALLRESULT.
        st.triggered |= PROTOCOLS[st.version].provoked_calls(action, payload)
        timeout = float(params.get("timeout", CALL_TIMEOUT_S))
        try:
            resp = await conn.call(action, payload, timeout=timeout, validate=validate)
        except asyncio.TimeoutError:
            raise TimeoutError(f"station {st.station_id} did not answer {action} within {timeout} s") from None
        out: dict[str, Any] = {"action": action, "request": payload}
        if isinstance(resp.frame, CallError):
            out["error"] = {"code": resp.frame.error_code, "description": resp.frame.error_description,
                            "details": resp.frame.error_details}
        else:
            out["response"] = resp.frame.payload
        if resp.violation is not None:
            out["violation"] = str(resp.violation)
        return out

    async def _set_registration(self, params: dict[str, Any]) -> dict[str, Any]:
        station_id, status = params.get("station_id"), params.get("status", "Accepted")
        if not station_id:
            raise ValueError("station_id is required")
        if status not in REGISTRATION_STATUSES:
            raise ValueError(f"status must be one of {REGISTRATION_STATUSES}, got {status!r}")
        interval = int(params.get("interval", self.cfg.heartbeat_interval_s))
        self._state(station_id).plan = Registration(status, interval)
        return {"station_id": station_id, "status": status, "interval": interval}

    async def _send(self, params: dict[str, Any]) -> dict[str, Any]:
        st, conn = await self._connected(params)
        if "action" not in params:
            raise ValueError("send needs action and payload")
        return await self._call(st, conn, params["action"], dict(params.get("payload") or {}),
                                bool(params.get("validate", True)), params)

    async def _station_state(self, params: dict[str, Any]) -> dict[str, Any]:
        station_id = params.get("station_id")
        if station_id not in self.stations:
            raise ValueError(f"no station {station_id!r} known to the CSMS simulator")
        return self.stations[station_id].to_json()

    async def _disconnect(self, params: dict[str, Any]) -> dict[str, Any]:
        st, conn = await self._connected(params)
        try:
            await asyncio.wait_for(conn.close(1000, "closed by CSMS operator"), 5)
        except asyncio.TimeoutError:
            pass
        return {"station_id": st.station_id, "closed": True}
