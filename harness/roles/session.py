"""The harness's side of one test case: as CSMS (server) or as charging station (client).

Both roles present the same face to the scenario engine: one stream of events (what the
DUT did, including connects and disconnects) and the current `OcppConnection` to send
on. Reconnections are events too, so a case can follow a station through a Reset.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..ocpp.connection import Closed, Event, OcppConnection
from ..ocpp.trace import Trace
from ..transport.client import connect_station
from ..transport.security import SecurityProfile

if TYPE_CHECKING:
    from .endpoint import CsmsEndpoint


@dataclass
class Connected:
    connection: OcppConnection
    station_id: str


SessionEvent = Event | Connected


class Session:
    role: str = ""

    def __init__(self, version: str, trace: Trace):
        self.version = version
        self.trace = trace
        self.events: asyncio.Queue[SessionEvent] = asyncio.Queue()
        self.connection: OcppConnection | None = None
        self.ever_connected = False
        self.connection_info: dict[str, Any] = {}
        self._tasks: list[asyncio.Task[Any]] = []

    def _adopt(self, conn: OcppConnection, station_id: str) -> None:
        self.connection = conn
        # What a case can check about the connection, e.g. ${connection.offered} (dual-stack stations).
        self.connection_info = {"version": conn.version, "subprotocol": f"ocpp{conn.version}",
                                "offered": list(conn.offered), "station_id": station_id}
        self.ever_connected = True
        self.events.put_nowait(Connected(conn, station_id))
        self._tasks.append(asyncio.get_running_loop().create_task(self._forward(conn)))

    async def _forward(self, conn: OcppConnection) -> None:
        while True:
            ev = await conn.next_event()
            if isinstance(ev, Closed):
                # A close matters only for the current connection: one the harness closed
                # on purpose, or one superseded by a reconnect, is history (it's in the trace).
                if self.connection is conn:
                    self.connection = None
                    self.events.put_nowait(ev)
                return
            self.events.put_nowait(ev)

    async def next_event(self, timeout: float) -> SessionEvent:
        return await asyncio.wait_for(self.events.get(), max(timeout, 0.0))

    async def close(self) -> None:
        conn = self.connection
        if conn is not None:
            await conn.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class CsmsSession(Session):
    """Harness as CSMS: the DUT (a station) connects to the endpoint; this case listens."""

    role = "csms"

    def __init__(self, version: str, trace: Trace, endpoint: "CsmsEndpoint", station_id: str | None):
        super().__init__(version, trace)
        self.endpoint = endpoint
        self.station_id = station_id

    async def start(self) -> "CsmsSession":
        self.endpoint.attach(self)
        return self

    def wants(self, station_id: str, conn: OcppConnection) -> bool:
        if self.station_id and station_id != self.station_id:
            self.trace.event(station_id, f"ignored connection from unexpected station id {station_id!r}"
                             f" (DUT profile says {self.station_id!r})", "IGNORED")
            return False
        return True

    def take(self, conn: OcppConnection, station_id: str) -> None:
        if conn.version != self.version:
            self.trace.event(station_id, f"station speaks OCPP {conn.version}; this case is OCPP {self.version}", "NOTE")
        conn.trace = self.trace          # this case's evidence from now on
        self._adopt(conn, station_id)

    async def release(self) -> None:
        """Stop listening without closing the DUT's connection (it may serve the next case)."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def close(self) -> None:
        await self.endpoint.detach(self)


class StationSession(Session):
    """Harness as charging station: connects to the DUT (a CSMS)."""

    role = "cs"

    def __init__(self, version: str, trace: Trace, endpoint: str, station_id: str, security: SecurityProfile,
                 tls_ca: str | None = None):
        super().__init__(version, trace)
        self.endpoint = endpoint
        self.station_id = station_id
        self.security = security
        self.tls_ca = tls_ca            # the PKI (with its negative variants) lies next to this CA file

    async def connect(self, *, versions: tuple[str, ...] | None = None, password: str | None = None,
                      timeout: float = 10.0, subprotocols: list[str] | None = None,
                      no_auth: bool = False, client_certificate: str | None = None,
                      tls_version: str | None = None) -> OcppConnection:
        security = self.security
        if client_certificate or tls_version:
            if security.ssl_context is None or self.tls_ca is None:
                raise ValueError("client_certificate / tls_version need a TLS connection (security profile 2 or 3)")
            from ..transport.tls_variants import client_context, pki_of
            ctx = client_context(pki_of(self.tls_ca), client_certificate or
                                 ("valid" if security.profile == 3 else "none"), tls_version)
            security = SecurityProfile(security.profile, security.username, security.password, ctx)
        if password is not None:
            security = SecurityProfile(max(security.profile, 1), self.station_id, password, security.ssl_context)
        if no_auth:
            security = SecurityProfile(0, ssl_context=security.ssl_context)
        conn = await connect_station(self.endpoint, self.station_id, versions or (self.version,), self.trace,
                                     security, open_timeout=timeout, subprotocols=subprotocols)
        self._adopt(conn, self.station_id)
        return conn


class SeccSession(Session):
    """Harness as a charger's ISO 15118 SECC (DUT = an EV): no OCPP connection at all; the
    `v2g_listen` step starts the SECC (harness.iso15118.secc.Secc) and keeps it here."""

    role = "secc"

    def __init__(self, trace: Trace):
        super().__init__("", trace)
        self.secc: Any = None

    async def close(self) -> None:
        if self.secc is not None:
            await self.secc.stop()
            self.secc = None
