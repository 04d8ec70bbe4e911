"""The OCPP traffic of a run as a pcap file that Wireshark reads as WebSocket over TCP.

The harness does not sniff the wire (that would need privileges and would see TLS only
once security profiles 2–3 exist); it records every frame it sends and receives in the
trace (`harness/ocpp/trace.py`). This module turns traces back into packets over loopback:

* one TCP connection per websocket connection in the trace (a CONNECT event opens one, a
  CLOSE ends it; frames seen without a CONNECT — a persistent endpoint — open one
  implicitly), with a three-way handshake, consistent sequence/acknowledgement numbers per
  direction, a pure ACK after every data segment and a FIN exchange at the end;
* the HTTP upgrade (GET with `Upgrade: websocket` and the OCPP subprotocol, `101` with the
  correct `Sec-WebSocket-Accept`) so Wireshark's HTTP dissector hands the conversation to
  its WebSocket dissector; no `Authorization` header is ever written (credentials are not
  in the trace, and must not be in the evidence);
* every traced frame as one RFC 6455 text frame with its exact (already redacted) payload,
  masked when the websocket client sends it — the DUT for cases where the harness plays the
  CSMS, the harness where it plays the station; a refused handshake becomes the GET and its
  HTTP error; a traced close code becomes close frames.

The server port is the traced one where the trace names it (the harness connecting to a
CSMS: `connected to ws://host:port/…`); where it does not (a station connecting to the
harness's per-case server) it is 80 (`SERVER_PORT`), where every Wireshark version's HTTP
dissector is registered without "Decode As" (Wireshark 3+ also finds HTTP on other ports
heuristically, which is what decodes the traced ports). URL path and subprotocol are the
traced ones. Client ports count up from 49152 per connection, so a
merged run file holds every case's connections side by side.

Headers come from scapy's Ethernet/IPv4/TCP layers, built once per connection direction;
per segment only sequence/ack numbers, flags, lengths, IP id and checksums are patched in.
Building every packet through scapy costs ≈0.8 ms each here, i.e. seconds per run, while
patching costs microseconds and yields byte-identical packets (the tests read the file
back with scapy and compare).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import re
import struct
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LOOPBACK = "127.0.0.1"
SERVER_PORT = 80
FIRST_CLIENT_PORT = 49152
MSS = 32768                      # loopback carries large segments; keeps IPv4 total length < 64 KiB
_EPS = 1e-6                      # spacing of synthesized packets (s)
OP_TEXT, OP_CLOSE = 0x1, 0x8
_SYN, _FIN, _ACK, _PSH = 0x02, 0x01, 0x10, 0x08

_URL = re.compile(r"wss?://[^/\s:]+(?::(\d+))?(/[^\s,]*)?")
_SUBPROTOCOL = re.compile(r"subprotocol\s+'?([A-Za-z0-9._-]+)")
_CODE = re.compile(r"code=(\d+)")
_REASON = re.compile(r"reason=(['\"])(.*)\1\s*$")
_STATUS = re.compile(r"(?:HTTP\s+|refused\s+)(\d{3})\b")


@dataclass
class WsMessage:
    t: float
    from_client: bool
    payload: bytes
    opcode: int = OP_TEXT


@dataclass
class WsConnection:
    """One websocket connection between a client and a server, as reconstructed."""
    client_port: int
    opened: float
    path: str = "/ocpp"
    subprotocol: str = ""
    server_port: int = SERVER_PORT
    messages: list[WsMessage] = field(default_factory=list)
    closed: float | None = None
    close_code: int | None = None          # a close frame was traced with this code
    close_reason: str = ""
    close_from_client: bool = False
    refused_status: int | None = None      # handshake refused with this HTTP status
    refused_text: str = ""


# ---------------------------------------------------------------------------- trace → connections

def entry_times(entries: list[dict[str, Any]]) -> list[float]:
    """Epoch seconds per entry: the wall clock of the first entry plus the monotonic offsets
    (`t`, µs resolution), so frames within a millisecond keep their order and spacing."""
    if not entries:
        return []
    base = None
    for e in entries:
        wall = _parse_wall(e.get("wall"))
        if wall is not None and isinstance(e.get("t"), (int, float)):
            base = wall - float(e["t"])
            break
    out: list[float] = []
    last = 0.0
    for e in entries:
        if base is not None and isinstance(e.get("t"), (int, float)):
            t = base + float(e["t"])
        else:
            t = _parse_wall(e.get("wall")) or last
        t = max(t, last)
        out.append(t)
        last = t
    return out


def _parse_wall(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


class PortAllocator:
    def __init__(self, first: int = FIRST_CLIENT_PORT):
        self.next = first

    def __call__(self) -> int:
        port = self.next
        self.next = self.next + 1 if self.next < 65535 else FIRST_CLIENT_PORT
        return port


def connections_from_trace(entries: list[dict[str, Any]], *, harness_is_client: bool,
                           ports: PortAllocator | None = None, default_path: str = "/ocpp") -> list[WsConnection]:
    """Split one case's trace (dicts as in `Trace.to_json()`) into websocket connections.

    `harness_is_client`: the harness plays the charging station (the DUT is a CSMS), so
    frames it sends (`tx`) travel client → server; otherwise the DUT is the client (`rx`).
    """
    ports = ports or PortAllocator()
    times = entry_times(entries)
    current: dict[str, WsConnection] = {}
    done: list[WsConnection] = []

    def open_conn(peer: str, t: float, text: str = "") -> WsConnection:
        m = _URL.search(text)
        path = (m.group(2) if m and m.group(2) else f"{default_path.rstrip('/')}/{peer}" if peer else default_path)
        sub = _SUBPROTOCOL.search(text)
        return WsConnection(client_port=ports(), opened=t, path=path, subprotocol=sub.group(1) if sub else "",
                            server_port=int(m.group(1)) if m and m.group(1) else SERVER_PORT)

    for e, t in zip(entries, times):
        peer = str(e.get("peer") or "")
        kind = str(e.get("kind") or "")
        direction = e.get("direction")
        raw = str(e.get("raw") or "")
        if direction in ("rx", "tx"):
            conn = current.get(peer)
            if conn is None:
                conn = current[peer] = open_conn(peer, t)
            from_client = (direction == "tx") == harness_is_client
            conn.messages.append(WsMessage(t, from_client, raw.encode("utf-8", "surrogatepass")))
        elif kind == "CONNECT":
            if peer in current:
                _end(current.pop(peer), t, done)
            current[peer] = open_conn(peer, t, raw)
        elif kind == "CLOSE":
            conn = current.pop(peer, None)
            if conn is None:
                continue
            code = _CODE.search(raw)
            if code and int(code.group(1)) not in (1005, 1006):
                conn.close_code = int(code.group(1))
                reason = _REASON.search(raw)
                conn.close_reason = reason.group(2) if reason and reason.group(2) != "ConnectionClosedOK" else ""
                # The trace records the close code the harness *received*: it came from the DUT.
                conn.close_from_client = not harness_is_client
            _end(conn, t, done)
        elif kind == "REFUSED":
            status = _STATUS.search(raw)
            conn = open_conn(peer, t, raw)
            conn.refused_status = int(status.group(1)) if status else 400
            conn.refused_text = raw
            _end(conn, t, done)
    last = times[-1] if times else 0.0
    for conn in current.values():
        _end(conn, last, done)
    done.sort(key=lambda c: c.opened)
    return done


def _end(conn: WsConnection, t: float, done: list[WsConnection]) -> None:
    conn.closed = t
    done.append(conn)


# ---------------------------------------------------------------------------- websocket framing

def ws_frame(payload: bytes, *, opcode: int = OP_TEXT, mask: bytes | None = None) -> bytes:
    """One final RFC 6455 frame; client → server frames carry a 4-byte mask (§5.3)."""
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([0x80 | opcode, mbit | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x80 | opcode, mbit | 127]) + struct.pack("!Q", n)
    if mask:
        assert len(mask) == 4
        key = (mask * (n // 4 + 1))[:n]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""
        head += mask
    return head + payload


def unmask(data: bytes, mask: bytes) -> bytes:
    key = (mask * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(len(data), "big") if data else b""


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def _mask_for(port: int, index: int) -> bytes:
    return hashlib.sha256(f"{port}:{index}".encode()).digest()[:4]


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 426: "Upgrade Required",
            500: "Internal Server Error", 503: "Service Unavailable"}


# ---------------------------------------------------------------------------- TCP

class _Tcp:
    """Sequence numbers for one TCP connection and the packets on it, as (time, bytes)."""

    def __init__(self, conn: WsConnection, host: str = LOOPBACK):
        self.conn = conn
        self.packets: list[tuple[float, bytes]] = []
        self.t = conn.opened
        c_isn = int.from_bytes(hashlib.sha256(f"c{conn.client_port}:{conn.opened}".encode()).digest()[:4], "big")
        s_isn = int.from_bytes(hashlib.sha256(f"s{conn.client_port}:{conn.opened}".encode()).digest()[:4], "big")
        self.next = {True: c_isn, False: s_isn}          # keyed by "from client"
        self.templates = {True: _template(host, host, conn.client_port, conn.server_port),
                          False: _template(host, host, conn.server_port, conn.client_port)}
        self.ip_id = {True: 1, False: 1}

    def emit(self, t: float, from_client: bool, flags: int, payload: bytes = b"") -> None:
        self.t = max(t, self.t + _EPS)
        seq = self.next[from_client]
        ack = self.next[not from_client] if flags & _ACK else 0
        pkt = _patch(self.templates[from_client], seq=seq, ack=ack, flags=flags, payload=payload,
                     ip_id=self.ip_id[from_client])
        self.ip_id[from_client] = (self.ip_id[from_client] + 1) & 0xFFFF
        self.packets.append((self.t, pkt))
        self.next[from_client] = (seq + len(payload) + (1 if flags & (_SYN | _FIN) else 0)) & 0xFFFFFFFF

    def data(self, t: float, from_client: bool, payload: bytes) -> None:
        for i in range(0, len(payload), MSS):
            self.emit(t, from_client, _PSH | _ACK, payload[i:i + MSS])
        self.emit(self.t, not from_client, _ACK)      # the receiver acknowledges what it got

    def handshake(self, t: float) -> None:
        t0 = t - 6 * _EPS
        self.t = t0 - _EPS
        self.emit(t0, True, _SYN)
        self._syn_ack(t0)
        self.emit(t0, True, _ACK)

    def _syn_ack(self, t: float) -> None:
        self.t = max(t, self.t + _EPS)
        seq = self.next[False]
        pkt = _patch(self.templates[False], seq=seq, ack=self.next[True], flags=_SYN | _ACK, payload=b"",
                     ip_id=self.ip_id[False])
        self.packets.append((self.t, pkt))
        self.next[False] = (seq + 1) & 0xFFFFFFFF

    def fin(self, t: float, first_from_client: bool) -> None:
        self.emit(t, first_from_client, _FIN | _ACK)
        self.emit(t, not first_from_client, _FIN | _ACK)
        self.emit(t, first_from_client, _ACK)


def _template(src: str, dst: str, sport: int, dport: int) -> bytes:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    pkt = (Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00", type=0x0800)
           / IP(src=src, dst=dst, ttl=64, flags="DF", id=0) / TCP(sport=sport, dport=dport, window=65535, dataofs=5))
    return bytes(pkt)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _patch(template: bytes, *, seq: int, ack: int, flags: int, payload: bytes, ip_id: int) -> bytes:
    eth, ip, tcp = bytearray(template[:14]), bytearray(template[14:34]), bytearray(template[34:54])
    struct.pack_into("!HH", ip, 2, 20 + 20 + len(payload), ip_id)
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, _checksum(bytes(ip)))
    struct.pack_into("!II", tcp, 4, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF)
    tcp[13] = flags
    struct.pack_into("!H", tcp, 16, 0)
    pseudo = bytes(ip[12:20]) + struct.pack("!BBH", 0, 6, 20 + len(payload))
    struct.pack_into("!H", tcp, 16, _checksum(pseudo + bytes(tcp) + payload))
    return bytes(eth) + bytes(ip) + bytes(tcp) + payload


def connection_packets(conn: WsConnection) -> list[tuple[float, bytes]]:
    """The packets of one connection, in order, as (epoch seconds, Ethernet frame bytes)."""
    tcp = _Tcp(conn)
    first_t = conn.messages[0].t if conn.messages else (conn.closed or conn.opened)
    tcp.handshake(min(conn.opened, first_t))
    key = base64.b64encode(hashlib.sha256(f"key{conn.client_port}:{conn.opened}".encode()).digest()[:16]).decode()
    request = (f"GET {conn.path} HTTP/1.1\r\nHost: {LOOPBACK}:{conn.server_port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               + (f"Sec-WebSocket-Protocol: {conn.subprotocol or 'ocpp2.0.1, ocpp1.6'}\r\n")
               + "\r\n")
    tcp.data(tcp.t, True, request.encode("latin-1", "replace"))
    if conn.refused_status is not None:
        reason = _REASONS.get(conn.refused_status, "Refused")
        body = (conn.refused_text + "\n").encode("utf-8", "replace")
        response = (f"HTTP/1.1 {conn.refused_status} {reason}\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
        tcp.data(tcp.t, False, response)
        tcp.fin(tcp.t, False)
        return tcp.packets
    response = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_key(key)}\r\n"
                + (f"Sec-WebSocket-Protocol: {conn.subprotocol}\r\n" if conn.subprotocol else "") + "\r\n")
    tcp.data(tcp.t, False, response.encode())
    for i, msg in enumerate(conn.messages):
        mask = _mask_for(conn.client_port, i) if msg.from_client else None
        tcp.data(msg.t, msg.from_client, ws_frame(msg.payload, opcode=msg.opcode, mask=mask))
    end = conn.closed if conn.closed is not None else tcp.t
    if conn.close_code is not None:
        body = struct.pack("!H", conn.close_code) + conn.close_reason.encode("utf-8", "replace")[:120]
        n = len(conn.messages)
        for k, from_client in enumerate((conn.close_from_client, not conn.close_from_client)):
            tcp.data(end, from_client, ws_frame(body, opcode=OP_CLOSE,
                                                mask=_mask_for(conn.client_port, n + k) if from_client else None))
        tcp.fin(end, False)     # RFC 6455 §7.1.1: the server closes the TCP connection first
    else:
        tcp.fin(end, not conn.close_from_client)
    return tcp.packets


# ---------------------------------------------------------------------------- files

def write_pcap(path: Path, connections: Iterable[WsConnection]) -> Path:
    """Write the connections' packets, merged in time order, as a classic pcap (Ethernet)."""
    from scapy.utils import RawPcapWriter

    packets: list[tuple[float, int, bytes]] = []
    for n, conn in enumerate(connections):
        packets.extend((t, n, p) for t, p in connection_packets(conn))
    packets.sort(key=lambda x: (x[0], x[1]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = RawPcapWriter(str(path), linktype=1, snaplen=65535, sync=False)
    try:
        writer._write_header(None)     # an empty capture is still a valid file
        for t, _, pkt in packets:
            sec = int(t)
            writer.write_packet(pkt, sec=sec, usec=int(round((t - sec) * 1e6)) % 1_000_000)
    finally:
        writer.close()
    return path


def iter_ws_messages(path: Path) -> Iterator[dict[str, Any]]:
    """Read a pcap written here back with scapy: every websocket frame, in capture order,
    with its TCP ports, time, opcode, whether it was masked and its unmasked payload.
    Reassembles each direction's byte stream first, so frames spanning segments decode
    too (used by the tests and handy for a quick look without Wireshark)."""
    from scapy.layers.inet import TCP
    from scapy.utils import rdpcap

    streams: dict[tuple[int, int], bytearray] = {}
    starts: dict[tuple[int, int], list[tuple[int, float, int]]] = {}   # (offset, time, packet index)
    for n, pkt in enumerate(rdpcap(str(path))):
        if TCP not in pkt:
            continue
        seg = bytes(pkt[TCP].payload)
        if not seg:
            continue
        key = (pkt[TCP].sport, pkt[TCP].dport)
        buf = streams.setdefault(key, bytearray())
        starts.setdefault(key, []).append((len(buf), float(pkt.time), n))
        buf += seg
    found: list[tuple[int, dict[str, Any]]] = []
    offsets = {key: [s[0] for s in v] for key, v in starts.items()}
    for key, buf in streams.items():
        data = bytes(buf)
        end = data.find(b"\r\n\r\n")
        if not data.startswith((b"GET ", b"HTTP/1.1 101")) or end < 0:
            continue
        i = end + 4
        while i + 2 <= len(data):
            at = starts[key][bisect.bisect_right(offsets[key], i) - 1]
            b0, b1 = data[i], data[i + 1]
            n, i = b1 & 0x7F, i + 2
            if n == 126:
                n, i = struct.unpack("!H", data[i:i + 2])[0], i + 2
            elif n == 127:
                n, i = struct.unpack("!Q", data[i:i + 8])[0], i + 8
            mask = data[i:i + 4] if b1 & 0x80 else None
            i += 4 if mask else 0
            payload = data[i:i + n]
            i += n
            found.append((at[2], {"sport": key[0], "dport": key[1], "time": at[1], "opcode": b0 & 0x0F,
                                  "fin": bool(b0 & 0x80), "masked": mask is not None,
                                  "payload": unmask(payload, mask) if mask else payload}))
    for _, msg in sorted(found, key=lambda x: x[0]):
        yield msg
