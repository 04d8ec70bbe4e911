"""Recording a V2G session's traffic as a pcap, and reading it back with the V2G layers.

Real capture: inside the namespace pair (netns.py) the runner starts `dumpcap` on the EV's
veth end; user namespaces let it open the interface without privileges on the host. The
file is classic pcap (`-P`) so scapy's `rdpcap` and every Wireshark read it.

Synthesized capture (`synthesize_pcap`): where dumpcap is missing or cannot capture (no
privileges on a real interface), the packets are rebuilt from what the endpoints saw — SDP
datagrams as IPv6/UDP, each TCP connection as a handshake, data segments with consistent
seq/ack numbers and a FIN exchange. Bytes are written exactly as given. `RecordingRelay`
collects them for TCP: a transparent forwarder in front of either end that records the raw
byte stream both ways — for TLS sessions the TLS records, so the synthesized pcap decrypts
with the key log like a real capture.

TLS: capture files only hold ciphertext. The TLS contexts of tls.py write the session
secrets to a key-log file (`keylog=` or SSLKEYLOGFILE, NSS format); open the capture with
`wireshark -o tls.keylog_file:<keylog> capture.pcap` (or `tshark -o ...`) to see the
V2GTP messages inside. Wireshark has no built-in V2GTP dissector; with the V2G plug-ins
(e.g. dsV2Gshark) it decodes them, and scapy with `layers.py` does here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.plist import PacketList
from scapy.utils import rdpcap, wrpcap

from . import layers
from .sdp import SdpExchange

PCAP_HEADER_BYTES = 24
DUMPCAP_START_BOUND = 5.0
CAPTURE_SETTLE_S = 0.3          # after dumpcap's header: its capture loop is running by then


class CaptureError(RuntimeError):
    pass


def dumpcap_available() -> str | None:
    """None if dumpcap is installed, else why not."""
    return None if shutil.which("dumpcap") else "dumpcap (Wireshark) is not installed"


def start_dumpcap(iface: str, path: Path, log_path: Path) -> subprocess.Popen:
    """Start capturing `iface` into `path` (pcap); returns once dumpcap has the interface open."""
    reason = dumpcap_available()
    if reason:
        raise CaptureError(reason)
    path.unlink(missing_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(["dumpcap", "-q", "-P", "-i", iface, "-w", str(path)],
                                   stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + DUMPCAP_START_BOUND
    # dumpcap writes the file header once the interface is open and capturing
    while not (path.exists() and path.stat().st_size >= PCAP_HEADER_BYTES):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_dumpcap(process)
            raise CaptureError(f"dumpcap did not start on {iface}: {log_path.read_text(errors='replace')}")
        time.sleep(0.02)
    # The header can be on disk a moment before the capture loop runs; on a busy machine the
    # EV's first SDP multicast was lost in that gap (seen in CI), so give it a little more.
    time.sleep(CAPTURE_SETTLE_S)
    return process


def stop_dumpcap(process: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM lets dumpcap flush and close the file; SIGKILL only if it does not."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)


def read_capture(path: Path, *, v2g_tcp_ports: Iterable[int] = (), tls_tcp_ports: Iterable[int] = ()) -> PacketList:
    """Read a pcap with SDP/V2GTP dissected, and V2GTP (or TLS) on the given TCP ports."""
    for port in v2g_tcp_ports:
        layers.bind_v2g_tcp_port(port)
    for port in tls_tcp_ports:
        layers.bind_tls_tcp_port(port)
    return rdpcap(str(path))


def layer_counts(packets: Iterable[Packet]) -> Counter:
    """How many packets contain each layer (by scapy layer name): a quick content check."""
    counts: Counter = Counter()
    for packet in packets:
        seen = set()
        layer = packet
        while layer:
            seen.add(layer.name)
            for sub in getattr(layer, "msg", []) or []:       # TLS records carry messages
                if isinstance(sub, Packet):
                    seen.add(sub.name)
            layer = layer.payload
        counts.update(seen)
    return counts


@dataclass
class TlsView:
    """What Wireshark shows of a TLS session given the key log."""
    server_names: list[str]          # SNI of each ClientHello ("" where none was sent)
    payloads: list[bytes]            # decrypted application data, record by record


def tshark_tls_view(path: Path, tls_port: int, keylog: Path, timeout: float = 30.0) -> TlsView:
    """Decrypt the TLS traffic on `tls_port` with tshark and the key log: proof that the key
    log opens the capture, and exactly what Wireshark will show of it."""
    if not shutil.which("tshark"):
        raise CaptureError("tshark (Wireshark) is not installed")
    done = subprocess.run(
        ["tshark", "-r", str(path), "-o", f"tls.keylog_file:{keylog}", "-d", f"tcp.port=={tls_port},tls",
         "-Y", f"tcp.port == {tls_port} && (tls.handshake.type == 1 || data)", "-T", "fields", "-E", "separator=|",
         "-e", "tls.handshake.type", "-e", "tls.handshake.extensions_server_name", "-e", "data.data"],
        capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise CaptureError(f"tshark failed: {done.stderr.strip()}")
    view = TlsView([], [])
    for line in done.stdout.splitlines():
        handshake_types, server_name, data = (line.split("|") + ["", "", ""])[:3]
        if "1" in handshake_types.split(","):
            view.server_names.append(server_name)
        view.payloads.extend(bytes.fromhex(chunk) for chunk in data.split(",") if chunk)
    return view


# --------------------------------------------------------------------------- synthesis

@dataclass
class Segment:
    t: float
    from_client: bool
    data: bytes


@dataclass
class TcpConversation:
    """One TCP connection as the endpoints saw it (addresses without scope ids)."""
    client: tuple[str, int]
    server: tuple[str, int]
    segments: list[Segment] = field(default_factory=list)
    client_mac: str = "02:00:00:00:0e:01"
    server_mac: str = "02:00:00:00:5e:cc"


_SYN, _SYN_ACK, _ACK, _PSH_ACK, _FIN_ACK = "S", "SA", "A", "PA", "FA"
_MSS = 1400


def _mac_for(address: str, default: str) -> str:
    if ipaddress.IPv6Address(address).is_multicast:
        low = ipaddress.IPv6Address(address).packed[-4:]
        return "33:33:" + ":".join(f"{b:02x}" for b in low)
    return default


def _sdp_packets(exchanges: Iterable[SdpExchange], ev_mac: str, secc_mac: str) -> list[Packet]:
    packets = []
    for exchange in exchanges:
        local, peer = exchange.local, exchange.peer
        src, dst = (local, peer) if exchange.sent else (peer, local)
        # which side sent it: SDP requests come from the EV, responses from the SECC
        from_ev = exchange.data[2:4] in (b"\x90\x00", b"\x90\x02")
        src_mac, dst_mac = (ev_mac, secc_mac) if from_ev else (secc_mac, ev_mac)
        multicast = ipaddress.IPv6Address(dst[0].split("%")[0]).is_multicast
        packet = (Ether(src=src_mac, dst=_mac_for(dst[0].split("%")[0], dst_mac)) /
                  IPv6(src=src[0].split("%")[0], dst=dst[0].split("%")[0], hlim=1 if multicast else 64) /
                  UDP(sport=src[1], dport=dst[1]) / exchange.data)
        packet.time = exchange.t
        packets.append(packet)
    return packets


def _tcp_packets(conversation: TcpConversation) -> list[Packet]:
    c_ip, c_port = conversation.client
    s_ip, s_port = conversation.server
    base = {True: (Ether(src=conversation.client_mac, dst=conversation.server_mac) /
                   IPv6(src=c_ip, dst=s_ip), c_port, s_port),
            False: (Ether(src=conversation.server_mac, dst=conversation.client_mac) /
                    IPv6(src=s_ip, dst=c_ip), s_port, c_port)}
    seq = {True: 1000, False: 5000}
    packets: list[Packet] = []
    t0 = conversation.segments[0].t if conversation.segments else 0.0

    def emit(t: float, from_client: bool, flags: str, data: bytes = b"") -> None:
        head, sport, dport = base[from_client]
        syn_or_fin = 1 if ("S" in flags or "F" in flags) else 0
        ack = seq[not from_client] if flags != _SYN else 0
        packet = head.copy() / TCP(sport=sport, dport=dport, flags=flags, seq=seq[from_client],
                                   ack=ack, window=65535)
        if data:
            packet = packet / data
        packet.time = t
        packets.append(packet)
        seq[from_client] = (seq[from_client] + len(data) + syn_or_fin) & 0xFFFFFFFF

    emit(t0 - 0.003, True, _SYN)
    emit(t0 - 0.002, False, _SYN_ACK)
    emit(t0 - 0.001, True, _ACK)
    t = t0
    for segment in conversation.segments:
        t = max(t, segment.t)
        for offset in range(0, len(segment.data), _MSS):
            emit(t, segment.from_client, _PSH_ACK, segment.data[offset:offset + _MSS])
            t += 1e-6
        emit(t, not segment.from_client, _ACK)
        t += 1e-6
    emit(t + 0.001, True, _FIN_ACK)
    emit(t + 0.002, False, _FIN_ACK)
    emit(t + 0.003, True, _ACK)
    return packets


def synthesize_pcap(path: Path, *, sdp: Iterable[SdpExchange] = (),
                    conversations: Iterable[TcpConversation] = (), extra: Iterable[Packet] = (),
                    ev_mac: str = "02:00:00:00:0e:01", secc_mac: str = "02:00:00:00:5e:cc") -> Path:
    """Write the given SDP datagrams, TCP conversations and ready-made frames (e.g. the SLAC
    frames of layers.slac_matching_frames) as one time-ordered pcap."""
    packets = _sdp_packets(sdp, ev_mac, secc_mac) + list(extra)
    for conversation in conversations:
        packets.extend(_tcp_packets(conversation))
    packets.sort(key=lambda p: float(p.time))
    path.parent.mkdir(parents=True, exist_ok=True)
    wrpcap(str(path), packets)
    return path


class RecordingRelay:
    """A TCP forwarder that records every byte both ways, for `synthesize_pcap`.

    Listen on `listen` (host, port; port 0 picks one), forward each connection to `target`.
    The recorded conversations name the endpoints as `client_name`/`server_name` (address,
    port) when given — e.g. the EV's and SECC's link-local addresses — instead of the relay's.
    """

    def __init__(self, target: tuple[str, int], listen: tuple[str, int] = ("::1", 0), *,
                 client_name: tuple[str, int] | None = None, server_name: tuple[str, int] | None = None,
                 connect_timeout: float = 5.0, chunk: int = 65536):
        self.target, self.listen = target, listen
        self.client_name, self.server_name = client_name, server_name
        self.connect_timeout, self.chunk = connect_timeout, chunk
        self.conversations: list[TcpConversation] = []
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        """Start listening; returns the port."""
        self._server = await asyncio.start_server(self._accept, *self.listen)
        return self._server.sockets[0].getsockname()[1]

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        peer = client_writer.get_extra_info("peername")
        try:
            server_reader, server_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.target), self.connect_timeout)
        except (OSError, asyncio.TimeoutError):
            client_writer.close()
            return
        conversation = TcpConversation(self.client_name or (peer[0].split("%")[0], peer[1]),
                                       self.server_name or (self.target[0].split("%")[0], self.target[1]))
        self.conversations.append(conversation)
        pumps = [asyncio.create_task(self._pump(client_reader, server_writer, conversation, True)),
                 asyncio.create_task(self._pump(server_reader, client_writer, conversation, False))]
        self._tasks.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._tasks.difference_update(pumps)
            for writer in (client_writer, server_writer):
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    conversation: TcpConversation, from_client: bool) -> None:
        while data := await reader.read(self.chunk):    # ends at EOF; close() cancels it
            conversation.segments.append(Segment(time.time(), from_client, data))
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self.connect_timeout)
        if writer.can_write_eof():
            writer.write_eof()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 5.0)

    async def __aenter__(self) -> "RecordingRelay":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
