"""SECC Discovery Protocol (ISO 15118-2 §7.10.1, same messages in ISO 15118-20): asyncio client and server.

The EVCC multicasts an SDP request (V2GTP payload type 0x9000: security, transport
protocol) to the all-nodes address ff02::1 on UDP port 15118 of the PLC interface; the SECC
answers by unicast to the request's source with an SDP response (0x9001: SECC IPv6
address, TCP port, security, transport protocol). The EVCC repeats the request every
SDP_RETRANSMISSION_INTERVAL until it gets an answer, at most SDP_MAX_REQUESTS times
(SDP_max_request = 50 [V2G2-161], 250 ms between requests — values as used by public
-2/-20 stacks; the ISO text itself was not available to check).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Callable

from . import v2gtp
from .v2gtp import PayloadType

ALL_NODES = "ff02::1"
SDP_PORT = v2gtp.UDP_PORT
SDP_RETRANSMISSION_INTERVAL = 0.25     # s between SDP requests
SDP_MAX_REQUESTS = 50                  # SDP_max_request
MAX_RECORDS = 1000                     # datagrams an SdpServer keeps for traces
REQUEST = struct.Struct("!BB")         # security, transport protocol
RESPONSE = struct.Struct("!16sHBB")    # SECC IPv6 address, SECC port, security, transport protocol


class Security(IntEnum):
    TLS = 0x00
    NO_TLS = 0x10


class Transport(IntEnum):
    TCP = 0x00
    UDP = 0x10                         # reserved for future use; V2G messages go over TCP


class SdpError(Exception):
    """An SDP message is malformed or carries a value the spec does not define."""


class SdpTimeout(SdpError, TimeoutError):
    """No SDP response after SDP_MAX_REQUESTS requests."""


@dataclass(frozen=True)
class SdpRequest:
    security: Security
    transport: Transport = Transport.TCP

    def encode(self) -> bytes:
        return v2gtp.encode(PayloadType.SDP_REQUEST, REQUEST.pack(self.security, self.transport))

    @classmethod
    def decode(cls, datagram: bytes) -> "SdpRequest":
        payload = _payload(datagram, PayloadType.SDP_REQUEST, REQUEST.size)
        security, transport = REQUEST.unpack(payload)
        return cls(_enum(Security, security), _enum(Transport, transport))


@dataclass(frozen=True)
class SdpResponse:
    address: str                       # the SECC's IPv6 address (link-local on a PLC link)
    port: int
    security: Security
    transport: Transport = Transport.TCP

    def encode(self) -> bytes:
        packed = ipaddress.IPv6Address(self.address.split("%")[0]).packed
        return v2gtp.encode(PayloadType.SDP_RESPONSE,
                            RESPONSE.pack(packed, self.port, self.security, self.transport))

    @classmethod
    def decode(cls, datagram: bytes) -> "SdpResponse":
        payload = _payload(datagram, PayloadType.SDP_RESPONSE, RESPONSE.size)
        address, port, security, transport = RESPONSE.unpack(payload)
        return cls(str(ipaddress.IPv6Address(address)), port,
                   _enum(Security, security), _enum(Transport, transport))


def _payload(datagram: bytes, expected: PayloadType, size: int) -> bytes:
    try:
        payload_type, payload = v2gtp.decode(datagram, allowed={expected})
    except v2gtp.V2gtpError as exc:
        raise SdpError(str(exc)) from None
    if len(payload) != size:
        raise SdpError(f"{expected.name} payload is {len(payload)} bytes, expected {size}")
    return payload


def _enum(kind: type[IntEnum], value: int):
    try:
        return kind(value)
    except ValueError:
        raise SdpError(f"{kind.__name__} value 0x{value:02X} is not defined by ISO 15118") from None


def interface_index(iface: str) -> int:
    try:
        return socket.if_nametoindex(iface)
    except OSError:
        raise SdpError(f"no network interface named {iface!r} in this network namespace") from None


def link_local_address(iface: str) -> str:
    """The first IPv6 link-local address of `iface` (from /proc/net/if_inet6 of this namespace)."""
    with open("/proc/net/if_inet6") as table:
        for line in table:
            hex_address, _index, _prefix, scope, _flags, name = line.split()
            if name == iface and int(scope, 16) == 0x20:
                return str(ipaddress.IPv6Address(bytes.fromhex(hex_address)))
    raise SdpError(f"interface {iface!r} has no IPv6 link-local address")


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple]] = asyncio.Queue(maxsize=256)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if not self.queue.full():          # a flood must not grow memory without bound
            self.queue.put_nowait((data, addr))


@dataclass
class SdpExchange:
    """One datagram the SDP endpoint saw, for traces and synthesized captures."""
    t: float
    sent: bool
    peer: tuple
    local: tuple
    data: bytes


@dataclass
class SdpServer:
    """Answers SDP requests on one interface.

    `offers` maps each security option the SECC supports to its TCP port. A request asking
    for an offered security is answered with it; otherwise with the other offered option
    (the EVCC then decides whether that is acceptable).
    """
    iface: str
    offers: dict[Security, int]
    address: str | None = None                      # default: the interface's link-local address
    port: int = SDP_PORT
    exchanges: list[SdpExchange] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    on_request: Callable[[SdpRequest, tuple], None] | None = None

    def __post_init__(self) -> None:
        if not self.offers:
            raise ValueError("an SDP server must offer at least one security option")
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> "SdpServer":
        index = interface_index(self.iface)
        self.address = self.address or link_local_address(self.iface)
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("::", self.port))
            group = socket.inet_pton(socket.AF_INET6, ALL_NODES) + struct.pack("@I", index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise SdpError(f"cannot listen for SDP on [::]:{self.port} ({self.iface}): {exc}") from None
        loop = asyncio.get_running_loop()
        self._transport, protocol = await loop.create_datagram_endpoint(_Datagrams, sock=sock)
        self._index = index
        self._task = asyncio.create_task(self._serve(protocol.queue))
        return self

    def choose(self, request: SdpRequest) -> Security:
        if request.security in self.offers:
            return request.security
        return next(iter(self.offers))

    async def _serve(self, queue: asyncio.Queue) -> None:
        while True:
            data, peer = await queue.get()
            if len(peer) >= 4 and peer[3] not in (0, self._index):
                self._ignore(f"request from {peer[0]} on another interface")
                continue
            self._record(SdpExchange(time.time(), False, peer, self._local(), data))
            try:
                request = SdpRequest.decode(data)
            except SdpError as exc:          # the spec: an invalid SDP request is ignored
                self._ignore(str(exc))
                continue
            if request.transport is not Transport.TCP:
                self._ignore(f"request for unsupported transport {request.transport.name}")
                continue
            if self.on_request:
                self.on_request(request, peer)
            security = self.choose(request)
            response = SdpResponse(self.address, self.offers[security], security).encode()
            assert self._transport is not None
            self._transport.sendto(response, peer)
            self._record(SdpExchange(time.time(), True, peer, self._local(), response))

    # a peer flooding requests must not grow memory without bound
    def _record(self, exchange: SdpExchange) -> None:
        if len(self.exchanges) < MAX_RECORDS:
            self.exchanges.append(exchange)

    def _ignore(self, reason: str) -> None:
        if len(self.ignored) < MAX_RECORDS:
            self.ignored.append(reason)

    def _local(self) -> tuple:
        return (self.address, self.port, 0, self._index)

    async def __aenter__(self) -> "SdpServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._transport:
            self._transport.close()


@dataclass(frozen=True)
class Discovery:
    """The outcome of SDP: the SECC's answer and how many requests it took."""
    response: SdpResponse
    requests_sent: int
    iface: str
    exchanges: tuple[SdpExchange, ...] = ()

    def endpoint(self) -> tuple[str, int, int, int]:
        """A socket address for connecting to the SECC over this interface."""
        return (self.response.address, self.response.port, 0, interface_index(self.iface))


async def discover_secc(iface: str, security: Security = Security.TLS, *,
                        interval: float = SDP_RETRANSMISSION_INTERVAL,
                        max_requests: int = SDP_MAX_REQUESTS,
                        port: int = SDP_PORT) -> Discovery:
    """Multicast SDP requests on `iface` until a valid response arrives (bounded)."""
    if max_requests < 1 or interval <= 0:
        raise ValueError("SDP needs at least one request and a positive retransmission interval")
    index = interface_index(iface)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        sock.bind(("::", 0, 0, index))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise SdpError(f"cannot send SDP requests on {iface}: {exc}") from None
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Datagrams, sock=sock)
    try:                                 # for traces: the address the kernel will send from
        local: tuple = (link_local_address(iface), sock.getsockname()[1], 0, index)
    except (SdpError, OSError):
        local = sock.getsockname()
    request = SdpRequest(security).encode()
    exchanges: list[SdpExchange] = []
    try:
        for attempt in range(1, max_requests + 1):
            transport.sendto(request, (ALL_NODES, port, 0, index))
            exchanges.append(SdpExchange(time.time(), True, (ALL_NODES, port, 0, index), local, request))
            deadline = loop.time() + interval
            while (left := deadline - loop.time()) > 0:
                try:
                    data, peer = await asyncio.wait_for(protocol.queue.get(), left)
                except asyncio.TimeoutError:
                    break
                if len(exchanges) < MAX_RECORDS:
                    exchanges.append(SdpExchange(time.time(), False, peer, local, data))
                try:
                    response = SdpResponse.decode(data)
                except SdpError:
                    continue                 # not an SDP response: keep waiting for one
                return Discovery(response, attempt, iface, tuple(exchanges))
        raise SdpTimeout(f"no SDP response on {iface} after {max_requests} requests "
                         f"every {interval} s")
    finally:
        transport.close()
