"""Reference charging-station simulator: a DUT stand-in that speaks OCPP 1.6J and 2.0.1.

This module is the version-neutral core: websocket lifecycle (connect, boot, reconnect,
reboot), the outgoing CALL queue, dispatch of CSMS-initiated CALLs, RPC-level errors,
settings shared by both device models, and the out-of-band actions a test drives
(`perform`). What each OCPP edition says on the wire lives in `station201.py` and
`station16.py`; EVSE/EV state lives in `evse.py` / `ev.py`.

Timing model (test authors rely on it):
- one CALL outstanding at a time (OCPP-J); the station's own CALLs go through a FIFO
  that is held back until the registration is Accepted, so nothing but BootNotification
  (and messages the CSMS triggers) leaves the station while Pending;
- transaction messages survive connection loss and reboots and are re-sent after the
  next acceptance; other queued messages are dropped on reboot;
- every new websocket connection starts with a BootNotification; its reason is that of
  the last (re)boot (PowerUp at first start and after `reboot`, RemoteReset after Reset);
- EV energy runs on the event-loop clock times `time_scale` (default 60: one real second
  is one simulated minute), so a few seconds of test show rising energy and SoC.
- charging profiles (`smart_charging.py`) run on wall-clock UTC, like a real station's:
  the power of every sample is capped at the composite limit in force at that instant.

Out-of-band actions (`perform(name, params)`; unknown names raise UnknownSimAction):
  reboot {}                                   power cycle (starts the simulator if not started)
  plug_in {evse=1, connector=1, ev={capacity_kwh, soc_percent, target_soc_percent,
           max_power_kw, departure_s, nominal_voltage_v}}
  present_token {id_token, type="ISO14443", evse=1}   the same token again stops its transaction
  unplug {evse=1}     stop_charging {evse=1} (EV-side stop)
  set_limit {evse=1, limit_kw=None}           external power limit (None clears)
  state {}                                    snapshot of registration and EVSEs
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Literal

from ..ocpp import schemas
from ..ocpp.connection import Closed, ConnectionLost, Garbage, IncomingCall, OcppConnection
from ..ocpp.framing import Call, new_message_id
from ..ocpp.trace import Trace
from ..transport.client import connect_station
from ..transport.security import SecurityProfile, client_tls_context, tls_security
from .api import Reply, Setting, StationSimConfig, UnknownSimAction
from .ev import EvModel
from .evse import Evse
from . import features
from .faults import get_fault
from .smart_charging import SmartCharging
from .tls_faults import station_tls_fault

MAX_BACKOFF_S = 10.0          # reconnect backoff doubles up to this
BOOT_RETRY_DEFAULT_S = 5.0    # when the CSMS gives interval 0 for Pending/Rejected
REJECTED_FAULT_RETRY_S = 0.5  # `rejected_retries_immediately`: fast, but not a busy loop

MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage", "SoC")


# Which RPC error a schema violation gets, by the JSON Schema keyword that failed. 1.6 keeps
# its own spellings ("Occurence", "Formation"); the editions agree on the rest.
_RULE_CODES = {
    "required": "Occurrence", "minItems": "Occurrence", "maxItems": "Occurrence",
    "type": "Type",
    "enum": "Property", "const": "Property", "maxLength": "Property", "minLength": "Property",
    "maximum": "Property", "minimum": "Property", "exclusiveMaximum": "Property",
    "exclusiveMinimum": "Property", "pattern": "Property", "format": "Property", "multipleOf": "Property",
}
_CODE_NAMES = {
    "2.0.1": {"Occurrence": "OccurenceConstraintViolation", "Type": "TypeConstraintViolation",
              "Property": "PropertyConstraintViolation", "": "FormatViolation"},
    "1.6": {"Occurrence": "OccurenceConstraintViolation", "Type": "TypeConstraintViolation",
            "Property": "PropertyConstraintViolation", "": "FormationViolation"},
}


Handler = Callable[[dict[str, Any]], Awaitable[Reply]]


def violation_code(version: str, rule: str) -> str:
    """CALLERROR code for a request that broke schema keyword `rule` (additionalProperties → Format…)."""
    return _CODE_NAMES[version][_RULE_CODES.get(rule, "")]


def garbage_code(version: str, message_type: Any) -> str | None:
    """CALLERROR code for an unparseable frame whose message id could still be read, or None.

    2.0.1 Part 4 names RpcFrameworkError (not a valid RPC request) and MessageTypeNotSupported;
    1.6 has neither, so a broken CALL there is a FormationViolation. Broken responses are
    never answered (nothing to correlate them with).
    """
    if version == "2.0.1":
        if message_type == 2 and not isinstance(message_type, bool):
            return "RpcFrameworkError"
        return None if message_type in (3, 4) else "MessageTypeNotSupported"
    return "FormationViolation" if message_type == 2 and not isinstance(message_type, bool) else None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Outgoing:
    action: str
    payload: dict[str, Any]
    future: asyncio.Future[dict[str, Any] | None]
    persistent: bool                           # transaction message: survives disconnects and reboots
    validate: bool = True


class FrontEnd:
    """What an OCPP edition adds to the core. See station201.Station201 / station16.Station16."""
    version: str = ""

    def __init__(self, sim: "StationSimulator"):
        self.sim = sim

    @property
    def handlers(self) -> dict[str, Handler]:
        raise NotImplementedError

    def boot_payload(self, reason: str) -> dict[str, Any]:
        raise NotImplementedError

    def send_all_status(self, direct: bool = False) -> None:
        raise NotImplementedError

    def on_plug(self, evse: Evse) -> None:
        raise NotImplementedError

    def on_unplug(self, evse: Evse) -> None:
        raise NotImplementedError

    async def on_token(self, evse: Evse, id_token: str, token_type: str) -> None:
        raise NotImplementedError

    def on_ev_stop(self, evse: Evse) -> None:
        raise NotImplementedError

    def end_all(self, why: str) -> list[asyncio.Future[dict[str, Any] | None]]:
        """End every transaction because of `why` ("reset_hard", "reset_soft", "power_loss", …)."""
        raise NotImplementedError

    # ---- feature hooks (harness.sim.features): both editions call these at the same points ----

    async def feature_token_gate(self, evse: Evse, id_token: str, token_type: str) -> str | None:
        """A feature's local decision on a presented token (None = ask the CSMS as usual)."""
        for f in features.with_hook("token_gate"):
            verdict = await f.token_gate(self, evse, id_token, token_type)   # type: ignore[misc]
            if verdict is not None:
                return verdict
        return None

    def feature_status(self, evse: Evse, connector: int, status: str) -> str:
        for f in features.with_hook("connector_status"):
            status = f.connector_status(self, evse, connector, status)       # type: ignore[misc]
        return status

    def feature_tx(self, hook: str, evse: Evse, tx: Any) -> None:
        for f in features.with_hook(hook):
            getattr(f, hook)(self, evse, tx)

    def profile_evse(self, target: int) -> Evse | None:
        """The EVSE a charging profile set on `target` (2.0.1 evseId / 1.6 connectorId > 0) governs."""
        return self.sim.evses.get(target) if isinstance(target, int) and target > 0 else None

    def profile_target(self, evse: Evse) -> int:
        """The evseId / connectorId under which `evse`'s profiles and composite schedule are addressed."""
        return evse.id


class StationSimulator:
    """A charging station with `cfg.evses` that connects to `cfg.csms_url` (see module doc)."""

    ACTIONS = ("reboot", "plug_in", "present_token", "unplug", "stop_charging", "set_limit", "state", "data_transfer")

    def __init__(self, cfg: StationSimConfig, fault: str | None = None, trace: Trace | None = None, *,
                 time_scale: float = 60.0, call_timeout_s: float = 10.0, reboot_delay_s: float = 0.3,
                 boot_retry_default_s: float = BOOT_RETRY_DEFAULT_S):
        if fault is not None:
            get_fault("cs", fault)            # raises UnknownFault with the valid names
        self.cfg, self.fault = cfg, fault
        self.trace = trace if trace is not None else Trace()
        self.time_scale, self.call_timeout_s = time_scale, call_timeout_s
        self.reboot_delay_s, self.boot_retry_default_s = reboot_delay_s, boot_retry_default_s
        self.stored: dict[Setting, str] = {}    # values of settings with no behaviour behind them
        self.evses: dict[int, Evse] = {e.evse_id: Evse(e) for e in cfg.evses}
        for e in self.evses.values():
            e.energy_wh = 125_000.0 * e.id      # a used meter: registers never start at 0 in the field
        self.connected = asyncio.Event()
        self.accepted = asyncio.Event()
        self.registration: str | None = None   # last BootNotification status on this connection
        self.conn: OcppConnection | None = None
        self.last_error = ""
        self.boot_count = 0                     # BootNotifications sent, for tests and reports
        # Settings shared by both device models (see Setting).
        self.hb_interval = int(cfg.heartbeat_interval_s)
        self.meter_interval = float(cfg.meter_interval_s)
        self.measurands: list[str] = list(MEASURANDS)
        self.authorize_remote_start = False
        self.stop_tx_on_invalid = True
        self.ev_connection_timeout = 120
        from .station16 import Station16       # late: the front ends import this module
        from .station201 import Station201
        self.fronts: dict[str, FrontEnd] = {"2.0.1": Station201(self), "1.6": Station16(self)}
        self.version = cfg.versions[0]
        self.smart = SmartCharging(self)        # charging profiles: kept over reboots (2.0.1 TC_K_13)
        for e in self.evses.values():
            e.limit_source = (lambda e=e: self.smart.limit_w(e))
        self._boot_reason = "PowerUp"
        self._boot_trigger = asyncio.Event()
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()             # one CALL of ours outstanding at a time
        self._outbox: deque[_Outgoing] = deque()
        self._outbox_event = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._sender_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session_tasks: set[asyncio.Task[Any]] = set()
        self._rebooting = False
        self._reset_on_idle: str | None = None   # boot reason of a Reset waiting for idle
        self._heartbeats_sent = 0

    # ---- small helpers ------------------------------------------------------------------

    @property
    def front(self) -> FrontEnd:
        return self.fronts[self.version]

    def has(self, fault: str) -> bool:
        """True when the simulator runs with this fault (each check sits where the bug acts)."""
        return self.fault == fault

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def evse(self, evse_id: int) -> Evse:
        try:
            return self.evses[int(evse_id)]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"no EVSE {evse_id!r}; this station has {sorted(self.evses)}") from None

    def spawn(self, coro: Awaitable[Any], name: str = "", session: bool = False) -> asyncio.Task[Any]:
        """Background task owned by the simulator (session=True: cancelled when the socket goes)."""
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(f"{self.cfg.station_id}:{name}")
        bag = self._session_tasks if session else self._tasks
        bag.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._session_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.last_error = f"{task.get_name()}: {type(exc).__name__}: {exc}"
            self.trace.event(self.cfg.station_id, f"simulator task failed: {self.last_error}", "SIM-ERROR")

    def settings_changed(self) -> None:
        """Wake every loop that waits on an interval so a new value takes effect now."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_or_change(self, timeout: float | None) -> bool:
        """Sleep `timeout` s (None = forever); True if a setting changed first."""
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    # ---- metering -----------------------------------------------------------------------

    def readings(self, evse: Evse, measurands: list[str] | tuple[str, ...],
                 context: str) -> list[tuple[str, float, str, str | None]]:
        """(measurand, value, unit, location) of a DC EVSE right now; the metering faults act here."""
        s = evse.sample(self.now(), self.time_scale)
        out: list[tuple[str, float, str, str | None]] = []
        for m in measurands:
            if m == "Energy.Active.Import.Register":
                wh = s.energy_wh
                if self.has("meter_energy_decreases") and context != "Transaction.Begin":
                    wh /= 1000.0                   # the bug: register read in kWh, still labelled Wh
                out.append((m, round(wh, 1), "Wh", None))
            elif m == "Power.Active.Import":
                w = s.power_w / 1000.0 if self.has("meter_power_in_kw") else s.power_w
                out.append((m, round(w, 3), "W", None))
            elif m == "Current.Import":
                out.append((m, round(s.current_a, 1), "A", None))
            elif m == "Voltage":
                out.append((m, round(s.voltage_v, 1), "V", None))
            elif m == "SoC" and s.soc_percent is not None and not self.has("meter_missing_soc"):
                out.append((m, round(s.soc_percent, 1), "Percent", "EV"))
        return out

    # ---- settings -----------------------------------------------------------------------

    def read_setting(self, s: Setting) -> str:
        if s.attr is None:                      # a plain stored value (default: const)
            return self.stored.get(s, s.const)
        value = getattr(self, s.attr)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, list):
            return ",".join(value)
        return str(value)

    def write_setting(self, s: Setting, text: str) -> str:
        """Apply a new value: "Accepted", or "Rejected" for read-only or a malformed value."""
        if s.readonly:
            return "Rejected"
        value: Any
        try:
            if s.kind == "int":
                value = int(text.strip())
                if value < s.minimum:
                    return "Rejected"
            elif s.kind == "bool":
                if text.strip().lower() not in ("true", "false"):
                    return "Rejected"
                value = text.strip().lower() == "true"
            elif s.kind == "list":
                value = [m.strip() for m in text.split(",") if m.strip()]
                if s.choices and any(m not in s.choices for m in value):
                    return "Rejected"
            else:
                value = text
        except ValueError:
            return "Rejected"
        if self.has("set_variable_not_applied"):
            return "Accepted"                   # the bug: says yes, keeps the old value
        if s.attr is None:                      # no behaviour behind it: just remember it
            self.stored[s] = ("true" if value else "false") if s.kind == "bool" else \
                (",".join(value) if isinstance(value, list) else str(value))
            return "Accepted"
        if isinstance(getattr(self, s.attr), float):
            value = float(value)
        setattr(self, s.attr, value)
        self.settings_changed()
        return "Accepted"

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._run_task is None or self._run_task.done():
            self._run_task = asyncio.ensure_future(self._run())
            self._run_task.set_name(f"{self.cfg.station_id}:run")
        if self._sender_task is None or self._sender_task.done():
            self._sender_task = asyncio.ensure_future(self._sender())
            self._sender_task.set_name(f"{self.cfg.station_id}:sender")

    async def stop(self) -> None:
        tasks = [t for t in (self._run_task, self._sender_task) if t is not None]
        tasks += list(self._tasks) + list(self._session_tasks)
        for e in self.evses.values():
            if e.tx is not None:
                tasks += e.tx.tasks
        for t in tasks:
            t.cancel()
        if self.conn is not None:
            await self._close_conn(self.conn)
        # Python 3.11's wait_for can swallow a cancel that races with its result, so
        # cancel again until everything is gone (bounded: ~2 s at most).
        pending = {t for t in tasks if not t.done()}
        for _ in range(10):
            if not pending:
                break
            _, pending = await asyncio.wait(pending, timeout=0.2)
            for t in pending:
                t.cancel()
        self._run_task = self._sender_task = None
        self.connected.clear()
        self.accepted.clear()

    async def _close_conn(self, conn: OcppConnection, code: int = 1000) -> None:
        try:
            await asyncio.wait_for(conn.close(code), 2.0)
        except (asyncio.TimeoutError, Exception):
            self._abort(conn)

    @staticmethod
    def _abort(conn: OcppConnection) -> None:
        transport = getattr(conn.ws, "transport", None)
        if transport is not None:
            transport.abort()               # no close frame: the peer sees 1006

    def _offered_versions(self) -> tuple[str, ...]:
        if self.has("offers_only_201"):           # the bug: the dual-stack firmware offers one edition only
            return ("2.0.1",)
        if self.has("offers_only_16"):
            return ("1.6",)
        return self.cfg.versions

    def security(self) -> SecurityProfile:
        if self.cfg.security_profile >= 2:      # wss; profile 3 presents the client certificate
            password = None if self.has("tls_no_basic_auth") else self.cfg.password
            if self.has("tls_no_client_certificate"):     # the bug: no client certificate configured
                security = SecurityProfile(self.cfg.security_profile, self.cfg.station_id, password,
                                           client_tls_context(self.cfg.tls_files()["ca"]))
            else:
                security = tls_security(self.cfg.security_profile, "client", self.cfg.tls_files(),
                                        self.cfg.station_id, password)
            if security.ssl_context is not None:
                station_tls_fault(security.ssl_context, self.fault)
            return security
        if self.cfg.password:
            return SecurityProfile(1, self.cfg.station_id, self.cfg.password)
        return SecurityProfile()

    async def _run(self) -> None:
        backoff = self.cfg.reconnect_backoff_s
        while True:
            try:
                conn = await connect_station(self.cfg.csms_url, self.cfg.station_id, self._offered_versions(),
                                             self.trace, self.security(), open_timeout=5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:            # refused, unreachable, handshake timeout
                self.last_error = f"connect: {type(exc).__name__}: {exc}"
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, max(MAX_BACKOFF_S, self.cfg.reconnect_backoff_s))
                continue
            backoff = self.cfg.reconnect_backoff_s
            await self._session(conn)
            if self._rebooting:
                self._rebooting = False
                await asyncio.sleep(self.reboot_delay_s)
            else:
                await asyncio.sleep(backoff)

    async def _session(self, conn: OcppConnection) -> None:
        self.conn, self.version = conn, conn.version
        self.registration = None
        self.connected.set()
        self.spawn(self._boot_loop(conn), "boot", session=True)
        try:
            while True:
                event = await conn.next_event()
                if isinstance(event, Closed):
                    break
                if isinstance(event, IncomingCall):
                    await self._on_call(conn, event)
                elif isinstance(event, Garbage):
                    await self._on_garbage(conn, event)
                # StrayResponse: a late answer to a CALL we gave up on; nothing to do.
        except ConnectionLost:
            pass
        finally:
            self.connected.clear()
            self.accepted.clear()
            self.registration = None
            for t in list(self._session_tasks):
                t.cancel()
            if not conn.closed.is_set():
                await self._close_conn(conn)
            if self.conn is conn:
                self.conn = None

    async def reboot(self, reason: str) -> None:
        """Close the socket and come back with BootNotification(reason) after reboot_delay_s."""
        self._boot_reason = reason
        self._rebooting = True
        self._reset_on_idle = None
        for e in self.evses.values():
            e.auth = None                       # authorizations are volatile
        self._drop_volatile()
        self.accepted.clear()
        if self.conn is not None:
            await self._close_conn(self.conn)
        elif self._run_task is None:
            await self.start()

    def request_reboot_when_idle(self, reason: str) -> None:
        self._reset_on_idle = reason

    def transaction_ended(self) -> None:
        """Front ends call this after a transaction ends: a Reset OnIdle may now go ahead."""
        if self._reset_on_idle and all(e.tx is None for e in self.evses.values()):
            reason, self._reset_on_idle = self._reset_on_idle, None
            self.spawn(self._reboot_after_flush(reason), "reset-on-idle")

    async def _reboot_after_flush(self, reason: str,
                                  pending: list[asyncio.Future[dict[str, Any] | None]] | None = None) -> None:
        futures = pending if pending is not None else [o.future for o in self._outbox if o.persistent]
        if futures:
            await asyncio.wait(futures, timeout=5.0)   # let the transaction messages out first
        await self.reboot(reason)

    async def reset(self, why: str, reason: str) -> None:
        """End all transactions (`why` is the front end's stop cause), then reboot with `reason`."""
        await self._reboot_after_flush(reason, self.front.end_all(why))

    async def drop_connection_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.conn is not None:
            self.trace.event(self.cfg.station_id, "station drops the websocket (no close frame)", "CLOSE")
            self._abort(self.conn)

    # ---- boot and heartbeat ----------------------------------------------------------

    async def _boot_loop(self, conn: OcppConnection) -> None:
        reason = self._boot_reason
        while True:
            self.boot_count += 1
            resp = await self.direct_call("BootNotification", self.front.boot_payload(reason), conn)
            if resp is None:                       # CALLERROR or no answer: try again later
                await asyncio.sleep(self.boot_retry_default_s)
                continue
            status, interval = resp.get("status"), int(resp.get("interval", 0) or 0)
            self.registration = status
            if status == "Accepted":
                if interval > 0 and not self.has("boot_ignores_interval"):
                    self.hb_interval = interval
                    self.settings_changed()
                self.accepted.set()
                if not self.has("no_status_after_boot"):
                    self.front.send_all_status()
                for f in features.with_hook("boot_accepted"):
                    f.boot_accepted(self.front)        # type: ignore[misc]
                self.spawn(self._heartbeat_loop(conn), "heartbeat", session=True)
                return
            wait = float(interval) if interval > 0 else self.boot_retry_default_s
            if status == "Pending" and self.has("pending_sends_status"):
                self.front.send_all_status(direct=True)
            if status == "Rejected" and self.has("rejected_retries_immediately"):
                wait = REJECTED_FAULT_RETRY_S
            self._boot_trigger.clear()
            try:
                # A TriggerMessage(BootNotification) while Pending asks for the next one now.
                await asyncio.wait_for(self._boot_trigger.wait(), wait)
                reason = "Triggered"
            except asyncio.TimeoutError:
                reason = self._boot_reason

    def trigger_boot(self) -> bool:
        """TriggerMessage(BootNotification) before acceptance; False if already Accepted."""
        if self.registration == "Accepted":
            return False
        self._boot_trigger.set()
        return True

    async def _heartbeat_loop(self, conn: OcppConnection) -> None:
        while self.conn is conn and not conn.closed.is_set():   # never outlive its connection
            if self.hb_interval <= 0:
                await self.wait_or_change(None)
                continue
            if await self.wait_or_change(self.hb_interval):
                continue                           # interval changed: start counting again
            await self.heartbeat()

    async def heartbeat(self) -> None:
        self._heartbeats_sent += 1
        if self._heartbeats_sent == 1 and self.has("garbage_heartbeat") and self.conn is not None:
            async with self._lock:
                await self.conn.send_raw(f'[2,"{new_message_id()}","Heartbeat",{{', note="station sent garbage")
            return
        await self.enqueue("Heartbeat", {})

    # ---- our CALLs -------------------------------------------------------------------

    def enqueue(self, action: str, payload: dict[str, Any], persistent: bool = False,
                validate: bool = True) -> asyncio.Future[dict[str, Any] | None]:
        """Queue a CALL for when the station is Accepted; the future gets the CALLRESULT payload
        (None for a CALLERROR, a timeout, or a volatile message lost with its connection)."""
        fut: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        for f in features.with_hook("outgoing"):
            f.outgoing(self.front, action, payload)            # type: ignore[misc]
        if self._answer_hooks:
            fut.add_done_callback(lambda done: None if done.cancelled() else self._answered(action, payload, done.result()))
        self._outbox.append(_Outgoing(action, payload, fut, persistent, validate))
        self._outbox_event.set()
        return fut

    @property
    def _answer_hooks(self) -> tuple[features.Feature, ...]:
        return features.with_hook("answered")

    def _answered(self, action: str, payload: dict[str, Any], response: dict[str, Any] | None) -> None:
        for f in self._answer_hooks:
            f.answered(self.front, action, payload, response)  # type: ignore[misc]

    def _drop_volatile(self) -> None:
        keep: deque[_Outgoing] = deque()
        for item in self._outbox:
            if item.persistent:
                keep.append(item)
            elif not item.future.done():
                item.future.set_result(None)
        self._outbox = keep

    @property
    def messages_in_queue(self) -> bool:
        return any(o.persistent for o in self._outbox)

    async def _sender(self) -> None:
        while True:
            if not self._outbox:
                self._outbox_event.clear()
                await self._outbox_event.wait()
                continue
            await self.accepted.wait()
            conn = self.conn
            if conn is None or conn.closed.is_set():
                await asyncio.sleep(0.05)            # the session is winding down; wait for the next one
                continue
            item = self._outbox[0]
            result: dict[str, Any] | None = None
            done = True
            async with self._lock:
                if item not in self._outbox or not self.accepted.is_set():
                    continue
                try:
                    resp = await conn.call(item.action, item.payload, self.call_timeout_s, validate=item.validate)
                    result = None if resp.is_error else dict(resp.frame.payload)
                except ConnectionLost:
                    done = not item.persistent       # transaction messages stay at the head for the next session
                except asyncio.TimeoutError:
                    pass
                except Exception as exc:             # a payload bug of the simulator itself
                    self.last_error = f"{item.action}: {type(exc).__name__}: {exc}"
                    self.trace.event(self.cfg.station_id, f"simulator could not send {item.action}: {exc}", "SIM-ERROR")
            if not done:
                await asyncio.sleep(0.05)
                continue
            if item in self._outbox:
                self._outbox.remove(item)
            if not item.future.done():
                item.future.set_result(result)

    async def direct_call(self, action: str, payload: dict[str, Any], conn: OcppConnection | None = None,
                          validate: bool = True) -> dict[str, Any] | None:
        """Send now, bypassing the acceptance gate (BootNotification, triggered messages)."""
        conn = conn or self.conn
        if conn is None:
            return None
        for f in features.with_hook("outgoing"):
            f.outgoing(self.front, action, payload)            # type: ignore[misc]
        async with self._lock:
            try:
                resp = await conn.call(action, payload, self.call_timeout_s, validate=validate)
            except (ConnectionLost, asyncio.TimeoutError):
                return None
        result = None if resp.is_error else dict(resp.frame.payload)
        if self._answer_hooks:
            self._answered(action, payload, result)
        return result

    def send_triggered(self, action: str, payload: dict[str, Any], persistent: bool = False) -> None:
        """A message the CSMS asked for: allowed while Pending, so it skips the gate then."""
        if self.registration == "Accepted":
            self.enqueue(action, payload, persistent)
        else:
            self.spawn(self.direct_call(action, payload), f"triggered-{action}", session=True)

    # ---- CSMS-initiated CALLs --------------------------------------------------------

    async def _on_call(self, conn: OcppConnection, ev: IncomingCall) -> None:
        call = ev.call
        if self.has("hangs_on_call"):
            return
        if self.registration == "Rejected":
            return      # 1.6 §4.2 / 2.0.1 B03: while Rejected the station does not answer the CSMS
        if ev.unknown_action:
            if self.has("unknown_action_callresult"):
                await self._reply(conn, call, {}, validate=False)
            else:
                await self._error(conn, call, "NotImplemented", f"unknown action {call.action}")
            return
        if ev.violation is not None and not self.has("bad_payload_accepted"):
            await self._error(conn, call, violation_code(self.version, ev.violation.rule), str(ev.violation)[:200])
            return
        handler = self.front.handlers.get(call.action)
        if handler is None:
            await self._error(conn, call, "NotSupported", f"{call.action} is not supported by this station")
            return
        try:
            reply = await handler(call.payload)
        except Exception as exc:
            if ev.violation is None:
                await self._error(conn, call, "InternalError", f"{type(exc).__name__}: {exc}"[:200])
                return
            reply = Reply(self._plain_yes(call.action))   # bad_payload_accepted: a yes anyway
        await self._reply(conn, call, reply.payload, validate=ev.violation is None)
        if reply.after is not None:
            self.spawn(reply.after(), f"after-{call.action}")

    def _plain_yes(self, action: str) -> dict[str, Any]:
        for candidate in ({"status": "Accepted"}, {}):
            if schemas.validate(self.version, action, "response", candidate) is None:
                return candidate
        return {"status": "Accepted"}

    async def _reply(self, conn: OcppConnection, call: Call, payload: dict[str, Any], validate: bool = True) -> None:
        if self.has("wrong_response_id"):
            call = Call(new_message_id(), call.action, call.payload)
        try:
            await conn.reply(call, payload, validate=validate)
        except ConnectionLost:
            pass

    async def _error(self, conn: OcppConnection, call: Call | str, code: str, description: str) -> None:
        if self.has("wrong_response_id"):
            call = new_message_id()
        try:
            await conn.reply_error(call, code, description)
        except ConnectionLost:
            pass

    async def _on_garbage(self, conn: OcppConnection, ev: Garbage) -> None:
        """A frame that is not OCPP-J: answer it only when its message id can be read."""
        try:
            data = json.loads(ev.raw)
        except ValueError:
            return                                # no message id to answer to
        if not isinstance(data, list) or len(data) < 2 or not isinstance(data[1], str) or len(data[1]) > 36:
            return
        code = garbage_code(self.version, data[0])
        if code is not None and not self.has("hangs_on_call") and self.registration != "Rejected":
            await self._error(conn, data[1], code, ev.reason[:200])

    # ---- out-of-band actions ---------------------------------------------------------

    async def perform(self, action: str, params: dict[str, Any]) -> Any:
        params = dict(params or {})
        if action == "reboot":
            if self._run_task is None:
                await self.start()
                return {"rebooting": False, "started": True}
            self.front.end_all("power_loss")
            await self.reboot("PowerUp")
            return {"rebooting": True}
        if action == "plug_in":
            evse = self.evse(params.get("evse", 1))
            connector = int(params.get("connector", 1))
            if connector not in evse.cfg.connector_ids:
                raise ValueError(f"EVSE {evse.id} has no connector {connector}; it has {list(evse.cfg.connector_ids)}")
            if evse.plugged:
                raise ValueError(f"EVSE {evse.id} already has an EV plugged in")
            evse.ev = EvModel.from_params(params.get("ev"))
            evse.plugged_connector = connector
            evse.advance(self.now(), self.time_scale)
            self.front.on_plug(evse)
            return {"evse": evse.id, "connector": connector, "plugged": True}
        if action == "present_token":
            if not params.get("id_token"):
                raise ValueError("present_token needs id_token")
            evse = self.evse(params.get("evse", 1))
            self.spawn(self.front.on_token(evse, str(params["id_token"]), str(params.get("type", "ISO14443"))),
                       "present-token")
            return {"evse": evse.id, "id_token": params["id_token"]}
        if action == "unplug":
            evse = self.evse(params.get("evse", 1))
            if not evse.plugged:
                raise ValueError(f"nothing is plugged into EVSE {evse.id}")
            self.front.on_unplug(evse)
            return {"evse": evse.id, "plugged": False}
        if action == "stop_charging":
            evse = self.evse(params.get("evse", 1))
            if evse.tx is None:
                raise ValueError(f"no transaction on EVSE {evse.id}")
            self.front.on_ev_stop(evse)
            return {"evse": evse.id, "stopped": True}
        if action == "set_limit":
            evse = self.evse(params.get("evse", 1))
            limit = params.get("limit_kw")
            evse.advance(self.now(), self.time_scale)       # energy so far at the old power
            evse.limit_w = None if limit is None else float(limit) * 1000.0
            evse.advance(self.now(), self.time_scale)
            return {"evse": evse.id, "limit_kw": limit}
        if action == "state":
            return self.snapshot()
        if action == "data_transfer":           # P02 / 1.6 DataTransfer.req from the station
            if not params.get("vendor_id"):
                raise ValueError("data_transfer needs vendor_id")
            payload = {"vendorId": str(params["vendor_id"])}
            if self.has("data_transfer_drops_message_id"):
                params = {**params, "message_id": None}     # the bug: the messageId never leaves the station
            for key, field in (("message_id", "messageId"), ("data", "data")):
                if params.get(key) is not None:
                    payload[field] = params[key]
            answer = await self.enqueue("DataTransfer", payload)
            return {"request": payload, "response": answer}
        extra = features.station_actions()
        if action in extra:
            return await extra[action](self, params)
        valid = ", ".join([*self.ACTIONS, *sorted(extra)])
        raise UnknownSimAction(f"station simulator has no action {action!r}; valid: {valid}")

    def snapshot(self) -> dict[str, Any]:
        return {
            "station_id": self.cfg.station_id, "version": self.version, "connected": self.connected.is_set(),
            "registration": self.registration, "heartbeat_interval": self.hb_interval,
            "evses": [e.snapshot() for e in self.evses.values()],
            "charging_profiles": [{"target": i.target, "id": i.profile.id} for i in self.smart.installed],
        }

