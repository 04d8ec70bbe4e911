"""OCPP-J websocket server: the harness (or the CSMS simulator) as back end.

A charging station connects to `ws[s]://host:port/<path>/<station id>` offering one or
more subprotocols (`ocpp1.6`, `ocpp2.0.1`). The server picks the first of its own
versions the station offers, checks Basic auth for profiles 1–2, and hands each accepted
connection over as an `OcppConnection` on `accepted`. Every refused handshake is
recorded with its reason on `refusals` (a DUT using the wrong password is evidence too);
with TLS (profiles 2–3) a failed TLS handshake is recorded too (status 0, "TLS handshake
failed: certificate verify failed: …"), since asyncio itself keeps it quiet.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Callable
from urllib.parse import quote, unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from ..ocpp import schemas
from ..ocpp.connection import OcppConnection
from ..ocpp.trace import Trace
from .security import SecurityProfile, parse_basic_auth, record_handshake_failures

# Decides whether a station id / password pair may connect. None = no auth required.
PasswordCheck = Callable[[str, str], bool]


@dataclass
class Accepted:
    station_id: str
    version: str
    connection: OcppConnection
    path: str


@dataclass
class Refusal:
    path: str
    status: int
    reason: str


@dataclass
class OcppServer:
    versions: tuple[str, ...] = ("2.0.1", "1.6")     # preference order
    host: str = "127.0.0.1"
    port: int = 0                                      # 0 = pick a free port
    path_prefix: str = "/ocpp"
    security: SecurityProfile = field(default_factory=SecurityProfile)
    password_check: PasswordCheck | None = None
    trace: Trace = field(default_factory=Trace)
    accepted: asyncio.Queue[Accepted] = field(default_factory=asyncio.Queue)
    refusals: list[Refusal] = field(default_factory=list)
    tls_attempts: int = 0          # TLS handshakes clients began (completed or not)
    _server: Server | None = None

    @property
    def subprotocols(self) -> list[str]:
        return [schemas.SUBPROTOCOLS[v] for v in self.versions]

    async def start(self) -> "OcppServer":
        if self.security.ssl_context is not None:
            record_handshake_failures(self.security.ssl_context, self._tls_refused, self._tls_attempt)
        self._server = await serve(
            self._handler, self.host, self.port,
            subprotocols=self.subprotocols,  # type: ignore[arg-type]
            process_request=self._process_request,
            ssl=self.security.ssl_context,
            ping_interval=None,    # OCPP has its own heartbeat; don't let pings mask a hung DUT
            max_size=2**22,
            compression=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        return self

    def url(self, station_id: str = "") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"{self.security.scheme}://{host}:{self.port}{self.path_prefix}"
        return f"{base}/{quote(station_id, safe='')}" if station_id else base

    def _refuse(self, connection: ServerConnection, path: str, status: HTTPStatus, reason: str) -> Response:
        self.refusals.append(Refusal(path, int(status), reason))
        self.trace.event(path, f"handshake refused {int(status)}: {reason}", "REFUSED")
        return connection.respond(status, reason + "\n")

    def _tls_attempt(self) -> None:
        self.tls_attempts += 1

    def _tls_refused(self, reason: str) -> None:
        self.refusals.append(Refusal("", 0, f"TLS handshake failed: {reason}"))
        self.trace.event("", f"TLS handshake refused: {reason}", "REFUSED")

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        prefix = self.path_prefix.rstrip("/") + "/"
        if not path.startswith(prefix) or not path[len(prefix):] or "/" in path[len(prefix):]:
            return self._refuse(connection, path, HTTPStatus.NOT_FOUND,
                                f"expected path {prefix}<station id>, got {path}")
        station_id = unquote(path[len(prefix):])    # the identity travels percent-encoded
        offered = [p.strip() for p in ",".join(request.headers.get_all("Sec-WebSocket-Protocol")).split(",") if p.strip()]
        if not any(p in self.subprotocols for p in offered):
            what = ", ".join(offered) if offered else "none"
            return self._refuse(connection, path, HTTPStatus.BAD_REQUEST,
                                f"unsupported OCPP subprotocol (offered: {what}; this server speaks: "
                                f"{', '.join(self.subprotocols)})")
        if self.security.profile in (1, 2) and self.password_check is not None:
            creds = parse_basic_auth(request.headers.get("Authorization"))
            if creds is None:
                return self._refuse(connection, path, HTTPStatus.UNAUTHORIZED, "HTTP Basic authentication required")
            user, password = creds
            if user != station_id:
                return self._refuse(connection, path, HTTPStatus.UNAUTHORIZED,
                                    f"Basic auth user id {user!r} does not match station id {station_id!r}")
            if not self.password_check(station_id, password):
                return self._refuse(connection, path, HTTPStatus.UNAUTHORIZED, "wrong password")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        path = ws.request.path.split("?", 1)[0] if ws.request else ""
        station_id = unquote(path.rsplit("/", 1)[-1])
        version = schemas.VERSION_OF_SUBPROTOCOL[str(ws.subprotocol)]
        offered = ([p.strip() for p in ",".join(ws.request.headers.get_all("Sec-WebSocket-Protocol")).split(",")
                    if p.strip()] if ws.request else [])
        self.trace.event(station_id, f"station connected, subprotocol {ws.subprotocol} "
                                     f"(offered: {', '.join(offered) or 'none'})", "CONNECT")
        conn = OcppConnection(ws, version, self.trace, peer=station_id, offered=offered).start()
        await self.accepted.put(Accepted(station_id, version, conn, path))
        await conn.closed.wait()

    async def next_connection(self, timeout: float) -> Accepted:
        return await asyncio.wait_for(self.accepted.get(), timeout)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 5)
            except asyncio.TimeoutError:
                pass
            self._server = None
