"""One test case's ISO 15118 traffic as a pcap, written with the case's evidence.

On loopback the harness has no link to sniff and no privileges for dumpcap, so the capture
is rebuilt (capture.synthesize_pcap) from what a `RecordingRelay` in front of the SECC saw:
the EV connects to the relay, which forwards every byte and records it both ways. A TLS
session is forwarded untouched, so the pcap holds the real TLS records; the EVCC (or SECC)
writes its session secrets to `keylog_path` (SSLKEYLOGFILE format), copied next to the pcap
as `<pcap>.keys`, and Wireshark decrypts the records with it.

What a loopback run does not have is made up, plausibly, and said so in `<pcap>.txt`:
  * SDP: the harness connects to host/port directly, so unless a real exchange is noted
    (`note_sdp`, `note_sdp_exchanges`) one request/response pair is synthesized per relay,
    naming the SECC's address, port and the security actually used (TLS when the EV's first
    bytes are a TLS handshake record);
  * addresses: by default the endpoints appear as IPv6 link-local addresses derived from the
    MACs (as on a PLC link) instead of ::1; ports stay the real ones;
  * SLAC (optional, `slac=True`): one matching sequence from layers.slac_matching_frames.

Wiring: `capture_for(trace)` returns the case's capture (one per Trace, kept in a registry
keyed by id(trace), checked through a weak reference); report/evidence.py calls
`write_captures(trace, folder)` after the case. Heavy imports (scapy) happen only when a
pcap is written, so OCPP-only runs do not pay for them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from .capture import RecordingRelay, TcpConversation
    from .sdp import SdpExchange

EV_MAC = "02:00:00:00:0e:01"
SECC_MAC = "02:00:00:00:5e:cc"
SDP_PORT = 15118
SDP_CLIENT_PORT = 50000               # the EV's UDP source port in synthesized SDP (any ephemeral one)
ALL_NODES = "ff02::1"
DYNAMIC_PORTS = (49152, 65535)        # where an SECC's TCP port lies (ISO 15118-2 §7.10.1.2)
PORT_ATTEMPTS = 20
TLS_HANDSHAKE_RECORD = 0x16
V2G_PCAP = "v2g.pcap"
KEYS_SUFFIX = ".keys"
NOTE_SUFFIX = ".txt"


class SessionCaptureError(RuntimeError):
    pass


def link_local_from_mac(mac: str) -> str:
    """The fe80:: address a host derives from its MAC (modified EUI-64), as on a PLC link."""
    octets = bytes(int(part, 16) for part in mac.split(":"))
    if len(octets) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    eui = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


@dataclass
class _Relay:
    relay: "RecordingRelay"
    target: tuple[str, int]
    listen: tuple[str, int]
    tls: bool | None                   # None: tell from the first bytes the EV sent
    loop: asyncio.AbstractEventLoop    # where the relay runs: write() may be called from another thread
    closed: bool = False


class SessionCapture:
    """Records a case's V2G connections through relays and writes them as one pcap."""

    def __init__(self, *, ev_mac: str = EV_MAC, secc_mac: str = SECC_MAC, link_local: bool = True,
                 slac: bool = False, keylog_dir: Path | None = None) -> None:
        self.ev_mac, self.secc_mac = ev_mac, secc_mac
        self.link_local = link_local
        self.slac = slac
        self._dir = Path(tempfile.mkdtemp(prefix="v2g-capture-", dir=keylog_dir))
        # removed with the capture (or at exit) whether or not a pcap was ever written
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._dir), True)
        self.keylog_path = self._dir / "sslkeylog.txt"
        self._relays: list[_Relay] = []
        self._sdp: list["SdpExchange"] = []
        self._sdp_noted = False

    # ---- recording ------------------------------------------------------------------------

    async def start_relay(self, target_host: str, target_port: int, *, tls: bool | None = None,
                          listen_host: str = "::1") -> tuple[str, int]:
        """Put a recording relay in front of the SECC at target; the EV connects to the returned
        (host, port) instead. The port lies in the dynamic range, like a real SECC's."""
        from .capture import RecordingRelay

        if not target_host or not target_port:
            raise SessionCaptureError(f"the relay needs the SECC's host and port, got {target_host!r}:{target_port!r}")
        error: OSError | None = None
        for port in random.sample(range(DYNAMIC_PORTS[0], DYNAMIC_PORTS[1] + 1), PORT_ATTEMPTS):
            relay = RecordingRelay((target_host, int(target_port)), (listen_host, port))
            try:
                await relay.start()
            except OSError as exc:
                error = exc
                continue
            self._relays.append(_Relay(relay, (target_host, int(target_port)), (listen_host, port), tls,
                                       asyncio.get_running_loop()))
            return listen_host, port
        raise SessionCaptureError(f"no free port for the capture relay on [{listen_host}]: {error}")

    def note_sdp(self, request: bytes, response: bytes, *, t: float | None = None) -> None:
        """A real SDP request/response pair (V2GTP datagrams as sent) instead of a synthesized one.
        The addresses are the capture's (EV link-local → ff02::1, SECC → EV)."""
        from .sdp import SdpExchange

        t = time.time() if t is None else t
        ev, secc = self._ev_address(), self._secc_address(None)
        ev_port = SDP_CLIENT_PORT + len(self._sdp)
        self._sdp.append(SdpExchange(t, True, (ALL_NODES, SDP_PORT), (ev, ev_port), bytes(request)))
        self._sdp.append(SdpExchange(t + 0.001, True, (ev, ev_port), (secc, SDP_PORT), bytes(response)))
        self._sdp_noted = True

    def note_sdp_exchanges(self, exchanges: Iterable["SdpExchange"]) -> None:
        """SDP datagrams an endpoint recorded (Discovery.exchanges, SdpServer.exchanges), as they were."""
        added = list(exchanges)
        self._sdp.extend(added)
        self._sdp_noted = self._sdp_noted or bool(added)

    async def close(self) -> None:
        """Stop the relays (recordings stay for write())."""
        for entry in self._relays:
            if not entry.closed:
                entry.closed = True
                await entry.relay.close()

    def close_soon(self) -> None:
        """Stop the relays from any thread (their loop does it): for a teardown that forgot close()."""
        for entry in self._relays:
            if not entry.closed and not entry.loop.is_closed():
                entry.closed = True
                entry.loop.call_soon_threadsafe(lambda r=entry.relay: asyncio.ensure_future(r.close()))

    # ---- writing --------------------------------------------------------------------------

    @property
    def has_traffic(self) -> bool:
        return bool(self._sdp) or any(entry.relay.conversations for entry in self._relays)

    def write(self, path: Path) -> Path:
        """Write the pcap (+ `<path>.keys` when a key log exists, + `<path>.txt`, what is synthesized)."""
        from . import layers
        from .capture import synthesize_pcap

        path = Path(path)
        conversations, sdp, notes = [], list(self._sdp), []
        for index, entry in enumerate(self._relays):
            recorded = list(entry.relay.conversations)      # the relay may still be appending
            shown = [self._renamed(c, entry) for c in recorded if c.segments]
            conversations += shown
            tls = self._is_tls(entry, recorded)
            if not self._sdp_noted and shown:
                first = min(c.segments[0].t for c in shown)
                sdp += self._synthesized_sdp(first - 0.05, SDP_CLIENT_PORT + index, shown[0].server, tls)
            ports = sorted({c.client[1] for c in shown})
            notes.append(f"relay {index + 1}: EV → [{entry.listen[0]}]:{entry.listen[1]} → SECC "
                         f"[{entry.target[0]}]:{entry.target[1]} ({'TLS' if tls else 'plain TCP'}), "
                         f"{len(shown)} connection(s), EV ports {ports or '-'}")
        extra = []
        if self.slac and (sdp or conversations):
            first = min([float(x.t) for x in sdp] + [c.segments[0].t for c in conversations])
            extra = layers.slac_matching_frames(self.ev_mac, self.secc_mac, start_time=first - 2.0)
        synthesize_pcap(path, sdp=sdp, conversations=conversations, extra=extra,
                        ev_mac=self.ev_mac, secc_mac=self.secc_mac)
        keys = path.with_name(path.name + KEYS_SUFFIX)
        if self.keylog_path.is_file() and self.keylog_path.stat().st_size:
            shutil.copyfile(self.keylog_path, keys)
        self._write_note(path, notes, bool(extra))
        return path

    def keys_path(self, path: Path) -> Path | None:
        keys = Path(path).with_name(Path(path).name + KEYS_SUFFIX)
        return keys if keys.is_file() else None

    def tcp_ports(self) -> tuple[list[int], list[int]]:
        """(plain V2GTP ports, TLS ports) as they appear in the pcap: for read_capture."""
        plain, secured = set(), set()
        for entry in self._relays:
            (secured if self._is_tls(entry, list(entry.relay.conversations)) else plain).add(entry.target[1])
        return sorted(plain), sorted(secured)

    def discard(self) -> None:
        """Remove the key log's temporary folder (after write)."""
        self._cleanup()

    # ---- helpers --------------------------------------------------------------------------

    def _ev_address(self) -> str:
        return link_local_from_mac(self.ev_mac) if self.link_local else "::1"

    def _secc_address(self, seen: str | None) -> str:
        if self.link_local or not seen:
            return link_local_from_mac(self.secc_mac) if self.link_local else "::1"
        return seen.split("%")[0]

    def _renamed(self, conversation: "TcpConversation", entry: _Relay) -> "TcpConversation":
        from .capture import TcpConversation

        client_address = self._ev_address() if self.link_local else conversation.client[0]
        return TcpConversation((client_address, conversation.client[1]),
                               (self._secc_address(entry.target[0]), entry.target[1]),
                               list(conversation.segments), self.ev_mac, self.secc_mac)

    @staticmethod
    def _is_tls(entry: _Relay, recorded: list["TcpConversation"]) -> bool:
        if entry.tls is not None:
            return entry.tls
        for conversation in recorded:
            for segment in conversation.segments:
                if segment.from_client and segment.data:
                    return segment.data[0] == TLS_HANDSHAKE_RECORD
        return False

    def _synthesized_sdp(self, t: float, ev_port: int, secc: tuple[str, int], tls: bool) -> list["SdpExchange"]:
        from .sdp import SdpExchange, SdpRequest, SdpResponse, Security

        security = Security.TLS if tls else Security.NO_TLS
        ev = self._ev_address()
        request = SdpRequest(security).encode()
        response = SdpResponse(secc[0], secc[1], security).encode()
        return [SdpExchange(t, True, (ALL_NODES, SDP_PORT), (ev, ev_port), request),
                SdpExchange(t + 0.002, True, (ev, ev_port), (secc[0], SDP_PORT), response)]

    def _write_note(self, path: Path, relays: list[str], slac: bool) -> None:
        _, tls_ports = self.tcp_ports()
        keys = path.name + KEYS_SUFFIX
        lines = [
            f"{path.name}: this case's ISO 15118 traffic, rebuilt from a recording relay on loopback.",
            "The TCP payload bytes (V2GTP, or TLS records) are exactly as forwarded; TCP handshakes,",
            "sequence numbers and Ethernet/IPv6 headers are synthesized.",
            "SDP: " + ("as the endpoints recorded it." if self._sdp_noted else
                       "SYNTHESIZED (the harness connected to the SECC directly; no SDP took place)."),
            "Addresses: " + (f"link-local from the MACs (EV {self._ev_address()}, SECC {self._secc_address(None)}) "
                             "instead of ::1; ports are the real ones." if self.link_local else "as seen."),
        ]
        if slac:
            lines.append("SLAC: SYNTHESIZED matching sequence, for context only.")
        lines += relays
        if tls_ports:
            decode = " ".join(f"-d tcp.port=={p},tls" for p in tls_ports)
            lines.append(f"Decrypt: wireshark -o tls.keylog_file:{keys} {decode} {path.name}")
        lines.append("V2GTP/EXI: Wireshark needs the V2G plug-ins (e.g. dsV2Gshark); scapy with "
                     "harness/iso15118/layers.py dissects it (capture.read_capture).")
        path.with_name(path.name + NOTE_SUFFIX).write_text("\n".join(lines) + "\n", "utf-8")


# ---- one capture per case (per Trace) -----------------------------------------------------------

_REGISTRY: dict[int, tuple[weakref.ref, SessionCapture]] = {}


def capture_for(trace: Any, **options: Any) -> SessionCapture:
    """The case's capture (created on first use). `trace` is the case's Trace: report/evidence.py
    finds the capture through it after the case."""
    _forget_dead()
    key = id(trace)
    held = _REGISTRY.get(key)
    if held is not None and held[0]() is trace:
        return held[1]
    capture = SessionCapture(**options)
    _REGISTRY[key] = (weakref.ref(trace), capture)
    # a case whose evidence is never written must not keep its capture (and temp folder) alive
    weakref.finalize(trace, _REGISTRY.pop, key, None)
    return capture


def capture_of(trace: Any) -> SessionCapture | None:
    held = _REGISTRY.get(id(trace))
    return held[1] if held is not None and held[0]() is trace else None


async def close_captures(trace: Any, timeout: float = 5.0) -> None:
    """Stop the case's relays (engine teardown); the recordings stay for the evidence."""
    capture = capture_of(trace)
    if capture is not None:
        await asyncio.wait_for(capture.close(), timeout)


def write_captures(trace: Any, folder: Path, name: str = V2G_PCAP) -> dict[str, Path]:
    """Write the case's V2G pcap into `folder` and release the capture; returns the files
    written by attachment name ({} when the case had no V2G traffic)."""
    capture = capture_of(trace)
    if capture is None:
        return {}
    _REGISTRY.pop(id(trace), None)
    capture.close_soon()
    try:
        if not capture.has_traffic:
            return {}
        pcap = capture.write(Path(folder) / name)
        files = {name: pcap, name + NOTE_SUFFIX: pcap.with_name(pcap.name + NOTE_SUFFIX)}
        keys = capture.keys_path(pcap)
        if keys is not None:
            files[name + KEYS_SUFFIX] = keys
        return files
    finally:
        capture.discard()


def _forget_dead() -> None:
    for key in [k for k, (ref, _) in _REGISTRY.items() if ref() is None]:
        _REGISTRY.pop(key, None)
