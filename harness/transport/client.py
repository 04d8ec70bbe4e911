"""OCPP-J websocket client: the harness (or the station simulator) as charging station."""

from __future__ import annotations

import ssl
from urllib.parse import quote

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from ..ocpp import schemas
from ..ocpp.connection import OcppConnection
from ..ocpp.trace import Trace
from .security import SecurityProfile, tls_reason


class UnexpectedSubprotocol(Exception):
    """The back end completed the handshake with a subprotocol that is not OCPP 1.6 / 2.0.1."""

    def __init__(self, selected: str | None):
        super().__init__(f"back end accepted the handshake with subprotocol {selected!r}, "
                         "which is not one this harness offered as OCPP")
        self.selected = selected


class HandshakeRefused(Exception):
    """The back end refused the websocket upgrade (HTTP status and body in the message)."""

    def __init__(self, status: int, body: str):
        super().__init__(f"handshake refused: HTTP {status} {body.strip()}")
        self.status = status
        self.body = body


class TlsHandshakeFailed(HandshakeRefused):
    """The TLS handshake did not complete: the server's certificate was not trusted, or the
    server refused ours (profile 3), or no common TLS version/cipher (status 0, reason in body)."""

    def __init__(self, reason: str):
        Exception.__init__(self, f"TLS handshake failed: {reason}")
        self.status = 0
        self.body = reason
        self.reason = reason


def _tls_cause(exc: BaseException) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def connect_station(
    base_url: str,
    station_id: str,
    versions: tuple[str, ...],
    trace: Trace,
    security: SecurityProfile | None = None,
    open_timeout: float = 10.0,
    subprotocols: list[str] | None = None,
) -> OcppConnection:
    """Open `base_url/<station_id>` offering the given OCPP versions, in preference order.

    `subprotocols` overrides the offer with raw strings (negative tests: "ocpp9.9").
    """
    security = security or SecurityProfile()
    url = f"{base_url.rstrip('/')}/{quote(station_id, safe='')}"   # percent-encode the identity
    headers = {}
    auth = security.authorization_header()
    if auth:
        headers["Authorization"] = auth
    try:
        ws = await connect(
            url,
            subprotocols=subprotocols if subprotocols is not None  # type: ignore[arg-type]
            else [schemas.SUBPROTOCOLS[v] for v in versions],
            additional_headers=headers,
            ssl=security.ssl_context if url.startswith("wss:") else None,
            open_timeout=open_timeout,
            ping_interval=None,
            max_size=2**22,
            compression=None,
        )
    except InvalidStatus as exc:
        body = exc.response.body.decode("utf-8", "replace") if exc.response.body else ""
        trace.event(station_id, f"handshake refused by back end: HTTP {exc.response.status_code} {body.strip()}", "REFUSED")
        raise HandshakeRefused(exc.response.status_code, body) from None
    except (ssl.SSLError, InvalidMessage, ConnectionError, EOFError) as exc:
        if not url.startswith("wss:"):
            raise
        cause = _tls_cause(exc)
        if cause is None and isinstance(exc, ssl.SSLError):
            cause = exc
        # TLS 1.3: a client certificate is judged after our side finished; the refusal arrives
        # as an alert on the first read, or as a bare close.
        reason = tls_reason(cause) if cause is not None else \
            ("the server closed the connection during the TLS handshake (it may have refused our client certificate "
             f"or TLS version; {type(exc).__name__}: {exc or 'no details'})")
        trace.event(station_id, f"TLS handshake failed: {reason}", "REFUSED")
        raise TlsHandshakeFailed(reason) from None
    if ws.subprotocol is None or str(ws.subprotocol) not in schemas.VERSION_OF_SUBPROTOCOL:
        trace.event(station_id, f"back end accepted with subprotocol {ws.subprotocol!r}", "CONNECT")
        await ws.close()
        raise UnexpectedSubprotocol(None if ws.subprotocol is None else str(ws.subprotocol))
    version = schemas.VERSION_OF_SUBPROTOCOL[str(ws.subprotocol)]
    trace.event(station_id, f"connected to {url}, subprotocol {ws.subprotocol}", "CONNECT")
    return OcppConnection(ws, version, trace, peer=station_id).start()
