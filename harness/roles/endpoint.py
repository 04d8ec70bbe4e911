"""The harness's CSMS endpoint: a server whose station connections can outlive a case.

While a case is attached, every connection's events go to that case's session. Between
cases (or before one attaches) an idle responder answers the station's Heartbeats and
StatusNotifications with the default replies, so a real charger that stays connected to
the harness is never left waiting on an unanswered CALL.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..ocpp.connection import Closed, IncomingCall, OcppConnection
from ..transport.server import OcppServer
from .defaults import default_reply

if TYPE_CHECKING:
    from .session import CsmsSession


class CsmsEndpoint:
    def __init__(self, server: OcppServer, variables: dict[str, Any] | None = None):
        self.server = server
        self.variables = variables or {}
        self.connections: dict[str, OcppConnection] = {}
        self.session: CsmsSession | None = None
        self._idle: dict[str, asyncio.Task[None]] = {}
        self._accept_task: asyncio.Task[None] | None = None

    async def start(self) -> "CsmsEndpoint":
        if self.server._server is None:
            await self.server.start()
        self._accept_task = asyncio.get_running_loop().create_task(self._accept_loop())
        return self

    async def _accept_loop(self) -> None:
        while True:
            acc = await self.server.accepted.get()
            old = self.connections.get(acc.station_id)
            if old is not None and not old.closed.is_set():
                await old.close(1000, "superseded by a new connection")   # OCPP: one connection per station id
            self.connections[acc.station_id] = acc.connection
            if self.session is not None and self.session.wants(acc.station_id, acc.connection):
                self.session.take(acc.connection, acc.station_id)
            else:
                self._start_idle(acc.station_id, acc.connection)

    def _start_idle(self, station_id: str, conn: OcppConnection) -> None:
        self._stop_idle(station_id)
        self._idle[station_id] = asyncio.get_running_loop().create_task(self._idle_responder(conn))

    def _stop_idle(self, station_id: str) -> None:
        task = self._idle.pop(station_id, None)
        if task is not None:
            task.cancel()   # Queue.get cancellation loses no event

    async def _idle_responder(self, conn: OcppConnection) -> None:
        while True:
            ev = await conn.next_event()
            if isinstance(ev, Closed):
                return
            if isinstance(ev, IncomingCall):
                payload = None if ev.unknown_action else default_reply("csms", conn.version, ev.call.action,
                                                                        ev.call.payload, self.variables)
                try:
                    if payload is None:
                        await conn.reply_error(ev.call, "NotImplemented", "harness idle between test cases")
                    else:
                        await conn.reply(ev.call, payload)
                except Exception:
                    pass

    def attach(self, session: "CsmsSession") -> None:
        self.session = session
        for station_id, conn in self.connections.items():
            if not conn.closed.is_set() and session.wants(station_id, conn):
                self._stop_idle(station_id)
                session.take(conn, station_id)

    async def detach(self, session: "CsmsSession") -> None:
        if self.session is not session:
            return
        self.session = None
        await session.release()
        for station_id, conn in self.connections.items():
            if not conn.closed.is_set():
                self._start_idle(station_id, conn)

    async def stop(self) -> None:
        for t in [*self._idle.values(), *([self._accept_task] if self._accept_task else [])]:
            t.cancel()
        for conn in self.connections.values():
            await conn.close(1001, "harness shutting down")
        await self.server.stop()
