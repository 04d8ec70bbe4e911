"""One OCPP-J connection: framing, message-id correlation, schema checks, trace.

Transport-agnostic: it takes any websockets connection (server or client side). What
the peer sends arrives as *events* on an inbox, so the scenario engine and the
simulators decide what to do with them; responses to our own CALLs are correlated
by message id and delivered to the awaiting sender.

Blame is kept apart: a schema violation in what the peer sent is recorded on the event
(`violation`) for the caller to judge; a violation in what *we* are about to send raises
`LocalSchemaError`, because that is a harness or test-case bug, not the DUT's.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from . import schemas
from .framing import Call, CallError, CallResult, Frame, FramingError, decode, encode, new_message_id
from .trace import Trace


class WebSocketLike(Protocol):
    subprotocol: Any

    async def send(self, message: str) -> None: ...
    async def recv(self) -> str | bytes: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class LocalSchemaError(Exception):
    """The harness (or a test case) tried to send a payload that violates the schema."""


class ConnectionLost(Exception):
    """The peer closed or dropped the connection."""


# ---- events delivered to the inbox -----------------------------------------------

@dataclass
class IncomingCall:
    call: Call
    violation: schemas.SchemaViolation | None = None   # request payload vs schema
    unknown_action: bool = False                          # no such action in this version


@dataclass
class Garbage:
    raw: str
    reason: str


@dataclass
class StrayResponse:
    """A CALLRESULT/CALLERROR whose message id matches no CALL we have outstanding."""
    frame: Frame


@dataclass
class Closed:
    code: int | None
    reason: str


Event = IncomingCall | Garbage | StrayResponse | Closed


@dataclass
class Response:
    """What came back for one of our CALLs."""
    call: Call
    frame: CallResult | CallError
    violation: schemas.SchemaViolation | None = None     # CALLRESULT payload vs schema
    elapsed: float = 0.0

    @property
    def is_error(self) -> bool:
        return isinstance(self.frame, CallError)


@dataclass
class _Pending:
    call: Call
    future: asyncio.Future[Response]
    sent_at: float


@dataclass
class OcppConnection:
    ws: WebSocketLike
    version: str                         # "1.6" | "2.0.1"
    trace: Trace
    peer: str = "dut"
    validate_outgoing: bool = True
    inbox: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    # Optional fast path for peers that only answer (simulators, load generators): CALLs are
    # handled in the reader task itself, one at a time like a real device, with no queue hop.
    # The handler must not await responses to its own CALLs (the reader would be blocked).
    answer_calls: Callable[[IncomingCall], Awaitable[None]] | None = None
    offered: list[str] = field(default_factory=list)   # subprotocols the client offered (server side)

    def start(self) -> "OcppConnection":
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read_loop(), name=f"ocpp-reader-{self.peer}")
        return self

    # ---- receiving -----------------------------------------------------------

    async def _read_loop(self) -> None:
        code: int | None = None
        reason = ""
        try:
            while True:
                raw = await self.ws.recv()
                direct = self._on_message(raw)
                if direct is not None:
                    await self.answer_calls(direct)   # type: ignore[misc]
        except asyncio.CancelledError:
            reason = "reader cancelled"
            raise
        except Exception as exc:  # websockets.ConnectionClosed and transport errors
            code = getattr(getattr(exc, "rcvd", None), "code", None)
            reason = getattr(getattr(exc, "rcvd", None), "reason", "") or type(exc).__name__
        finally:
            self.trace.event(self.peer, f"connection closed code={code} reason={reason!r}", "CLOSE")
            self.closed.set()
            for p in self._pending.values():
                if not p.future.done():
                    p.future.set_exception(ConnectionLost(f"connection closed before response to {p.call.action}"))
            self._pending.clear()
            self.inbox.put_nowait(Closed(code, reason))

    def _on_message(self, raw: str | bytes) -> IncomingCall | None:
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        try:
            frame = decode(raw)
        except FramingError as exc:
            self.trace.add("rx", self.peer, text, kind="GARBAGE", note=str(exc))
            self.inbox.put_nowait(Garbage(text, str(exc)))
            return
        if isinstance(frame, Call):
            unknown = frame.action not in schemas.actions(self.version)
            violation = None if unknown else schemas.validate(self.version, frame.action, "request", frame.payload)
            note = "unknown action" if unknown else (f"schema violation: {violation}" if violation else "")
            self.trace.add("rx", self.peer, text, kind="CALL", action=frame.action, unique_id=frame.unique_id, note=note)
            event = IncomingCall(frame, violation, unknown)
            if self.answer_calls is not None:
                return event
            self.inbox.put_nowait(event)
            return None
        pending = self._pending.pop(frame.unique_id, None)
        kind = "CALLRESULT" if isinstance(frame, CallResult) else "CALLERROR"
        if pending is None:
            self.trace.add("rx", self.peer, text, kind=kind, unique_id=frame.unique_id,
                           note="no outstanding CALL with this message id")
            self.inbox.put_nowait(StrayResponse(frame))
            return
        violation = None
        if isinstance(frame, CallResult):
            try:
                violation = schemas.validate(self.version, pending.call.action, "response", frame.payload)
            except schemas.UnknownAction:
                violation = None   # we sent a non-standard action on purpose; nothing to check
        loop = asyncio.get_running_loop()
        self.trace.add("rx", self.peer, text, kind=kind, action=pending.call.action, unique_id=frame.unique_id,
                       note=f"schema violation: {violation}" if violation else "")
        if not pending.future.done():
            pending.future.set_result(Response(pending.call, frame, violation, loop.time() - pending.sent_at))

    async def next_event(self, timeout: float | None = None) -> Event:
        """The next thing the peer did; raises TimeoutError when nothing arrives in time."""
        if timeout is None:
            return await self.inbox.get()
        return await asyncio.wait_for(self.inbox.get(), timeout)

    # ---- sending -------------------------------------------------------------

    async def _send_text(self, text: str, **trace_kw: Any) -> None:
        self.trace.add("tx", self.peer, text, **trace_kw)
        try:
            await self.ws.send(text)
        except Exception as exc:
            raise ConnectionLost(f"send failed: {type(exc).__name__}: {exc}") from None

    def _check_outgoing(self, action: str, kind: schemas.Kind, payload: dict[str, Any]) -> None:
        if not self.validate_outgoing:
            return
        try:
            violation = schemas.validate(self.version, action, kind, payload)
        except schemas.UnknownAction:
            raise LocalSchemaError(f"OCPP {self.version} has no action {action!r}") from None
        if violation:
            raise LocalSchemaError(f"{action} {kind} the harness was about to send violates the schema: {violation}")

    async def send_call(self, action: str, payload: dict[str, Any], *, validate: bool = True,
                        unique_id: str | None = None) -> asyncio.Future[Response]:
        """Send a CALL; returns a future that resolves to its Response (or ConnectionLost)."""
        if validate:
            self._check_outgoing(action, "request", payload)
        call = Call(unique_id or new_message_id(), action, payload)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Response] = loop.create_future()
        self._pending[call.unique_id] = _Pending(call, fut, loop.time())
        try:
            await self._send_text(encode(call), kind="CALL", action=action, unique_id=call.unique_id)
        except ConnectionLost:
            self._pending.pop(call.unique_id, None)
            raise
        return fut

    async def call(self, action: str, payload: dict[str, Any], timeout: float, **kw: Any) -> Response:
        fut = await self.send_call(action, payload, **kw)
        return await asyncio.wait_for(fut, timeout)

    async def reply(self, call: Call, payload: dict[str, Any], *, validate: bool = True) -> None:
        if validate:
            self._check_outgoing(call.action, "response", payload)
        await self._send_text(encode(CallResult(call.unique_id, payload)), kind="CALLRESULT",
                              action=call.action, unique_id=call.unique_id)

    async def reply_error(self, call: Call | str, code: str, description: str = "",
                          details: dict[str, Any] | None = None) -> None:
        uid = call.unique_id if isinstance(call, Call) else call
        action = call.action if isinstance(call, Call) else ""
        await self._send_text(encode(CallError(uid, code, description, details or {})), kind="CALLERROR",
                              action=action, unique_id=uid)

    async def send_raw(self, text: str, note: str = "deliberately malformed") -> None:
        """Send arbitrary text (negative tests); recorded verbatim in the trace."""
        kind, action, uid = "RAW", "", ""
        try:
            data = json.loads(text)
            if isinstance(data, list) and len(data) >= 3 and data[0] == 2:
                kind, uid, action = "CALL", str(data[1]), str(data[2])
        except ValueError:
            pass
        await self._send_text(text, kind=kind, action=action, unique_id=uid, note=note)

    def expect_response_to(self, unique_id: str, action: str) -> asyncio.Future[Response]:
        """Register interest in the answer to a raw CALL sent with send_raw."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Response] = loop.create_future()
        self._pending[unique_id] = _Pending(Call(unique_id, action, {}), fut, loop.time())
        return fut

    async def close(self, code: int = 1000, reason: str = "") -> None:
        try:
            await self.ws.close(code, reason)
        except Exception:
            pass
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 5)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                self._reader.cancel()
