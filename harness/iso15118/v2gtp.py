"""V2G Transfer Protocol (V2GTP): the 8-byte header and its framing over asyncio streams.

Header (ISO 15118-2:2014 §7.8.3; the same header in ISO 15118-20), all big-endian:

    | version 0x01 | inverse version 0xFE | payload type (2) | payload length (4) | payload |

Payload types: ISO 15118-2 Table 10 knows 0x8001 (EXI-encoded V2G message, also used for
the supportedAppProtocol handshake and DIN SPEC 70121), 0x9000/0x9001 (SDP request/response).
ISO 15118-20 Table 12 splits the EXI streams by schema (0x8001 SAP, 0x8002 common
"main stream", 0x8003 AC, 0x8004 DC, 0x8005 ACDP, 0x8006 WPT), adds side streams
(0x8101 schedule renegotiation, 0x8102 metering confirmation, 0x8103 ACDP system status,
0x8104 parking status) and wireless SDP (0x9002/0x9003, used e.g. for ACDP and -8).
0xA000..0xFFFF are manufacturer specific; everything else is reserved.
(Values cross-checked against two public implementations that cite those tables.)

Error handling. The V2GTP header check (ISO 15118-2 §7.8.3.2, same in -20) has three
steps: version/inverse, payload type, payload length; a message that fails any of them is
not processed. ISO 15118 has no negative acknowledgement for this (the "generic header
NACK" exists only in DoIP, ISO 13400-2, from which the header was borrowed). On a TCP
stream a bad header also means the byte stream cannot be re-synchronised, so the exceptions
below say `close_connection = True`: the SECC/EVCC must drop the message and close the TCP
connection (and the V2G session ends per the -2 §8.8 / -20 error handling). On UDP (SDP) the
datagram is simply ignored.
"""

from __future__ import annotations

import asyncio
import struct
from enum import IntEnum

PROTOCOL_VERSION = 0x01
INVERSE_PROTOCOL_VERSION = 0xFE
HEADER = struct.Struct("!BBHI")
HEADER_LENGTH = HEADER.size            # 8
UDP_PORT = 15118                       # the SDP server port (V2G_UDP_SDP_SERVER)
DEFAULT_MAX_PAYLOAD = 64 * 1024        # the receiver's buffer: the spec leaves it to the implementation


class PayloadType(IntEnum):
    """V2GTP payload types of ISO 15118-2 Table 10 and ISO 15118-20 Table 12."""
    EXI = 0x8001                        # -2: EXI-encoded V2G message; -20: SAP (supportedAppProtocol)
    MAIN_STREAM = 0x8002                # -20: common messages schema
    AC_MAIN_STREAM = 0x8003
    DC_MAIN_STREAM = 0x8004
    ACDP_MAIN_STREAM = 0x8005
    WPT_MAIN_STREAM = 0x8006
    SCHEDULE_RENEGOTIATION = 0x8101
    METERING_CONFIRMATION = 0x8102
    ACDP_SYSTEM_STATUS = 0x8103
    PARKING_STATUS = 0x8104
    SDP_REQUEST = 0x9000
    SDP_RESPONSE = 0x9001
    SDP_REQUEST_WIRELESS = 0x9002
    SDP_RESPONSE_WIRELESS = 0x9003


SAP = PayloadType.EXI                  # the -20 name for 0x8001
ISO2_PAYLOAD_TYPES = frozenset({PayloadType.EXI, PayloadType.SDP_REQUEST, PayloadType.SDP_RESPONSE})
ISO20_PAYLOAD_TYPES = frozenset(PayloadType)
SDP_PAYLOAD_TYPES = frozenset({PayloadType.SDP_REQUEST, PayloadType.SDP_RESPONSE,
                               PayloadType.SDP_REQUEST_WIRELESS, PayloadType.SDP_RESPONSE_WIRELESS})
# What may travel on the TCP/TLS connection: everything except discovery.
TCP_PAYLOAD_TYPES = ISO20_PAYLOAD_TYPES - SDP_PAYLOAD_TYPES


def is_manufacturer_specific(payload_type: int) -> bool:
    return 0xA000 <= payload_type <= 0xFFFF


class V2gtpError(Exception):
    """A V2GTP message failed the header check; the message must not be processed."""
    close_connection = True            # on TCP: drop the message and close the connection
    check = "header"

    def __init__(self, message: str, header: bytes = b""):
        super().__init__(message)
        self.header = header


class V2gtpVersionError(V2gtpError):
    """Protocol version is not 0x01 or the inverse version is not its bitwise inverse."""
    check = "protocol version"


class V2gtpPayloadTypeError(V2gtpError):
    """The payload type is reserved or not supported by this receiver."""
    check = "payload type"


class V2gtpLengthError(V2gtpError):
    """The payload length exceeds what the receiver can buffer (or does not match the data)."""
    check = "payload length"


class V2gtpTruncatedError(V2gtpError):
    """The peer closed the connection in the middle of a V2GTP message."""
    check = "message completeness"


class V2gtpTimeoutError(V2gtpError, TimeoutError):
    """No complete V2GTP message arrived within the timeout."""
    check = "timeout"


def encode(payload_type: int, payload: bytes) -> bytes:
    """One V2GTP message: header + payload."""
    if not 0 <= payload_type <= 0xFFFF:
        raise ValueError(f"payload type {payload_type!r} does not fit in 16 bits")
    if len(payload) > 0xFFFFFFFF:
        raise ValueError("payload longer than the 32-bit length field")
    return HEADER.pack(PROTOCOL_VERSION, INVERSE_PROTOCOL_VERSION, payload_type, len(payload)) + payload


def check_header(header: bytes, *, allowed: frozenset[int] | set[int] = ISO20_PAYLOAD_TYPES,
                 max_payload: int = DEFAULT_MAX_PAYLOAD) -> tuple[int, int]:
    """The spec's three header checks in order; returns (payload type, payload length)."""
    if len(header) != HEADER_LENGTH:
        raise V2gtpTruncatedError(f"V2GTP header is {len(header)} bytes, expected {HEADER_LENGTH}", header)
    version, inverse, payload_type, length = HEADER.unpack(header)
    if version != PROTOCOL_VERSION or inverse != (version ^ 0xFF):
        raise V2gtpVersionError(
            f"V2GTP protocol version check failed: version 0x{version:02X}, inverse 0x{inverse:02X} "
            f"(expected 0x{PROTOCOL_VERSION:02X}/0x{INVERSE_PROTOCOL_VERSION:02X}); "
            "discard the message and close the connection", header)
    if payload_type not in allowed:
        raise V2gtpPayloadTypeError(
            f"V2GTP payload type 0x{payload_type:04X} is not supported here "
            f"({'manufacturer specific' if is_manufacturer_specific(payload_type) else 'reserved/unknown'}); "
            "discard the message and close the connection", header)
    if length > max_payload:
        raise V2gtpLengthError(
            f"V2GTP payload length {length} exceeds the receive buffer of {max_payload} bytes; "
            "discard the message and close the connection", header)
    return payload_type, length


def decode(data: bytes, **checks) -> tuple[int, bytes]:
    """One complete datagram (SDP over UDP) → (payload type, payload); the length must match exactly."""
    payload_type, length = check_header(data[:HEADER_LENGTH], **checks)
    if len(data) - HEADER_LENGTH != length:
        raise V2gtpLengthError(
            f"V2GTP payload length field says {length} bytes but the datagram carries "
            f"{len(data) - HEADER_LENGTH}", data[:HEADER_LENGTH])
    return payload_type, data[HEADER_LENGTH:]


async def read_v2gtp(reader: asyncio.StreamReader, timeout: float, *,
                     allowed: frozenset[int] | set[int] = TCP_PAYLOAD_TYPES,
                     max_payload: int = DEFAULT_MAX_PAYLOAD) -> tuple[int, bytes]:
    """Read one V2GTP message from a TCP/TLS stream within `timeout` seconds.

    Raises a `V2gtpError` subclass; after any of them the caller must close the connection.
    """
    async def read() -> tuple[int, bytes]:
        try:
            header = await reader.readexactly(HEADER_LENGTH)
        except asyncio.IncompleteReadError as exc:
            raise V2gtpTruncatedError(
                f"connection closed after {len(exc.partial)} of {HEADER_LENGTH} header bytes",
                exc.partial) from None
        payload_type, length = check_header(header, allowed=allowed, max_payload=max_payload)
        try:
            payload = await reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            raise V2gtpTruncatedError(
                f"connection closed after {len(exc.partial)} of {length} payload bytes", header) from None
        return payload_type, payload

    try:
        return await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        raise V2gtpTimeoutError(f"no complete V2GTP message within {timeout} s") from None


async def write_v2gtp(writer: asyncio.StreamWriter, payload_type: int, payload: bytes,
                      timeout: float = 5.0) -> None:
    """Send one V2GTP message and wait (bounded) until the transport has taken it."""
    writer.write(encode(payload_type, payload))
    try:
        await asyncio.wait_for(writer.drain(), timeout)
    except asyncio.TimeoutError:
        raise V2gtpTimeoutError(f"peer did not accept {len(payload)} bytes within {timeout} s") from None


async def open_v2g_connection(address: str, port: int, iface: str | None = None, *,
                              ssl_context=None, timeout: float = 5.0
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP (or TLS) connection to the SECC that SDP announced; `iface` scopes a link-local address.

    No SNI is sent: the SECC is addressed by a link-local IP literal, which RFC 6066 does
    not allow as a server name (asyncio would otherwise send "fe80::…%iface").
    """
    host = f"{address}%{iface}" if iface and "%" not in address else address
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ssl_context,
                                    server_hostname="" if ssl_context else None), timeout)
    except asyncio.TimeoutError:
        raise V2gtpTimeoutError(f"no TCP connection to [{host}]:{port} within {timeout} s") from None
