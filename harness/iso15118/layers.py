"""scapy layers for ISO 15118 traces: V2GTP, SDP request/response, opaque EXI, and SLAC.

Importing this module binds:
  UDP port 15118 → V2GTP; V2GTP 0x9000 → SDPRequest, 0x9001 → SDPResponse; every
  EXI-carrying payload type (0x8001..0x8006, 0x8101..0x8104) → EXI, which keeps the bytes
  opaque. The -20 wireless SDP variants (0x9002/0x9003: longer messages with coupling type,
  EV/EVSE IDs, …) are left as Raw: their layout is not modelled here.
TCP has no fixed V2G port (the SECC announces it in the SDP response): call
`bind_v2g_tcp_port(port)` for a plain-TCP session, or `bind_tls_tcp_port(port)` to have
scapy's TLS layer dissect the records of a TLS session.

SLAC (ISO 15118-3, HomePlug Green PHY management messages) uses scapy's contrib
`homeplugav`/`homepluggp` layers; `slac_matching_frames` builds the frames of one
complete matching sequence for traces and tests (no modem involved).
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Iterable

from scapy.contrib.homeplugav import HomePlugAV
from scapy.contrib.homepluggp import (
    CM_ATTEN_CHAR_IND, CM_ATTEN_CHAR_RSP, CM_MNBC_SOUND_IND, CM_SET_KEY_CNF, CM_SET_KEY_REQ,
    CM_SLAC_MATCH_CNF, CM_SLAC_MATCH_REQ, CM_SLAC_PARM_CNF, CM_SLAC_PARM_REQ,
    CM_START_ATTEN_CHAR_IND, HPGP_GROUP, SLAC_varfield, SLAC_varfield_cnf,
)
from scapy.fields import ByteEnumField, IntField, IP6Field, ShortField, StrField, XByteField, XShortEnumField
from scapy.layers.inet import TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, bind_layers

from .v2gtp import INVERSE_PROTOCOL_VERSION, PROTOCOL_VERSION, UDP_PORT, PayloadType

PAYLOAD_TYPE_NAMES = {int(t): t.name for t in PayloadType}
SECURITY_NAMES = {0x00: "TLS", 0x10: "no TLS"}
TRANSPORT_NAMES = {0x00: "TCP", 0x10: "UDP"}
EXI_PAYLOAD_TYPES = [t for t in PayloadType if t < 0x9000]


class V2GTP(Packet):
    name = "V2GTP"
    fields_desc = [XByteField("version", PROTOCOL_VERSION),
                   XByteField("inverse_version", INVERSE_PROTOCOL_VERSION),
                   XShortEnumField("payload_type", PayloadType.EXI, PAYLOAD_TYPE_NAMES),
                   IntField("payload_length", None)]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.payload_length is None:
            pkt = pkt[:4] + len(pay).to_bytes(4, "big")
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        # Several V2GTP messages may share one TCP segment: the length field delimits each.
        return s[:self.payload_length], s[self.payload_length:]

    def mysummary(self) -> str:
        return self.sprintf("V2GTP %payload_type% len=%payload_length%")


class SDPRequest(Packet):
    name = "SDP request"
    fields_desc = [ByteEnumField("security", 0x00, SECURITY_NAMES),
                   ByteEnumField("transport", 0x00, TRANSPORT_NAMES)]


class SDPResponse(Packet):
    name = "SDP response"
    fields_desc = [IP6Field("secc_address", "::"),
                   ShortField("secc_port", 0),
                   ByteEnumField("security", 0x00, SECURITY_NAMES),
                   ByteEnumField("transport", 0x00, TRANSPORT_NAMES)]


class EXI(Packet):
    """An EXI-encoded V2G message, kept as opaque bytes (decoding is the codec's job)."""
    name = "EXI"
    fields_desc = [StrField("data", b"")]


bind_layers(UDP, V2GTP, dport=UDP_PORT)
bind_layers(UDP, V2GTP, sport=UDP_PORT)
bind_layers(V2GTP, SDPRequest, payload_type=PayloadType.SDP_REQUEST)
bind_layers(V2GTP, SDPResponse, payload_type=PayloadType.SDP_RESPONSE)
for _type in reversed(EXI_PAYLOAD_TYPES):     # the last binding is the default when building: 0x8001
    bind_layers(V2GTP, EXI, payload_type=_type)


def bind_v2g_tcp_port(port: int) -> None:
    """Dissect plain TCP traffic to/from `port` as V2GTP."""
    bind_layers(TCP, V2GTP, dport=port)
    bind_layers(TCP, V2GTP, sport=port)


def bind_tls_tcp_port(port: int) -> None:
    """Dissect TCP traffic to/from `port` as TLS records (scapy's TLS layer)."""
    from scapy.layers.tls.record import TLS
    bind_layers(TCP, TLS, dport=port)
    bind_layers(TCP, TLS, sport=port)


# --------------------------------------------------------------------------- SLAC

HOMEPLUG_ETHERTYPE = 0x88E1
MIN_FRAME = 60                  # Ethernet minimum frame size without FCS
BROADCAST = "ff:ff:ff:ff:ff:ff"
C_EV_MATCH_MNBC = 10            # sounds the EV sends (ISO 15118-3 C_EV_match_MNBC)
C_EV_START_ATTEN_CHAR_INDS = 3  # CM_START_ATTEN_CHAR.IND repetitions
TT_EVSE_MATCH_MNBC = 6          # sounding time-out, in units of 100 ms
ATTEN_GROUPS = 58               # AAG groups of a Green PHY attenuation profile
RESP_TYPE_OTHER_GP_STATION = 0x01


def nid_from_nmk(nmk: bytes, security_level: int = 0) -> bytes:
    """HomePlug AV network identifier derived from the network membership key
    (PBKDF1-style: SHA-256 applied five times, leftmost 52 bits, security level in bits 4-5)."""
    digest = nmk
    for _ in range(5):
        digest = hashlib.sha256(digest).digest()
    nid = bytearray(digest[:7])
    nid[6] = (nid[6] >> 4) | ((security_level & 0x03) << 4)
    return bytes(nid)


def _mme(src: str, dst: str, body: Packet) -> Packet:
    return Ether(src=src, dst=dst, type=HOMEPLUG_ETHERTYPE) / HomePlugAV(version=1) / body


def slac_matching_frames(ev_mac: str, evse_mac: str, *, run_id: bytes | None = None,
                         nmk: bytes | None = None, sounds: int = C_EV_MATCH_MNBC,
                         attenuation: Iterable[int] | None = None, seed: int | None = None,
                         start_time: float = 0.0) -> list[Packet]:
    """The HomePlug frames of one successful SLAC matching between an EV and an EVSE host.

    Order (ISO 15118-3 matching process): CM_SLAC_PARM.REQ (broadcast) / .CNF, 3× CM_START_ATTEN_CHAR.IND,
    `sounds`× CM_MNBC_SOUND.IND (broadcast, countdown), CM_ATTEN_CHAR.IND / .RSP,
    CM_SLAC_MATCH.REQ / .CNF (carrying NID and NMK), and the EV host's CM_SET_KEY.REQ/.CNF
    with its own modem. `seed` makes RunID, NMK, random values and attenuations reproducible.
    Packet times start at `start_time` with plausible spacing, for writing pcaps.
    """
    rng = random.Random(seed) if seed is not None else random.SystemRandom()
    run_id = run_id if run_id is not None else bytes(rng.getrandbits(8) for _ in range(8))
    nmk = nmk if nmk is not None else bytes(rng.getrandbits(8) for _ in range(16))
    if len(run_id) != 8 or len(nmk) != 16:
        raise ValueError("RunID must be 8 bytes and the NMK 16 bytes")
    profile = list(attenuation) if attenuation is not None else [rng.randint(20, 40) for _ in range(ATTEN_GROUPS)]
    if len(profile) != ATTEN_GROUPS or not all(0 <= a <= 255 for a in profile):
        raise ValueError(f"the attenuation profile needs {ATTEN_GROUPS} values in 0..255 (dB)")
    nid = nid_from_nmk(nmk)
    ev_modem = "00:b0:52:00:00:01"      # the EV's own PLC modem (Qualcomm OUI), target of CM_SET_KEY

    frames: list[tuple[float, Packet]] = []
    t = start_time

    def add(delay: float, frame: Packet) -> None:
        nonlocal t
        t += delay
        frames.append((t, frame))

    add(0.0, _mme(ev_mac, BROADCAST, CM_SLAC_PARM_REQ(RunID=run_id)))
    add(0.05, _mme(evse_mac, ev_mac, CM_SLAC_PARM_CNF(
        MSoundTargetMAC=BROADCAST, NumberMSounds=sounds, TimeOut=TT_EVSE_MATCH_MNBC,
        ResponseType=RESP_TYPE_OTHER_GP_STATION, ForwardingSTA=ev_mac, RunID=run_id)))
    for _ in range(C_EV_START_ATTEN_CHAR_INDS):
        add(0.02, _mme(ev_mac, BROADCAST, CM_START_ATTEN_CHAR_IND(
            NumberOfSounds=sounds, TimeOut=TT_EVSE_MATCH_MNBC,
            ResponseType=RESP_TYPE_OTHER_GP_STATION, ForwardingSTA=ev_mac, RunID=run_id)))
    for countdown in reversed(range(sounds)):
        add(0.02, _mme(ev_mac, BROADCAST, CM_MNBC_SOUND_IND(
            Countdown=countdown, RunID=run_id,
            RandomValue=bytes(rng.getrandbits(8) for _ in range(16)))))
    add(0.6, _mme(evse_mac, ev_mac, CM_ATTEN_CHAR_IND(
        SourceAdress=ev_mac, RunID=run_id, NumberOfSounds=sounds,
        Groups=[HPGP_GROUP(group=a) for a in profile])))
    add(0.02, _mme(ev_mac, evse_mac, CM_ATTEN_CHAR_RSP(SourceAdress=ev_mac, RunID=run_id, Result=0)))
    add(0.05, _mme(ev_mac, evse_mac, CM_SLAC_MATCH_REQ(VariableField=SLAC_varfield(
        EVMAC=ev_mac, EVSEMAC=evse_mac, RunID=run_id))))
    add(0.05, _mme(evse_mac, ev_mac, CM_SLAC_MATCH_CNF(VariableField=SLAC_varfield_cnf(
        EVMAC=ev_mac, EVSEMAC=evse_mac, RunID=run_id, NetworkID=nid, NMK=nmk))))
    add(0.01, _mme(ev_mac, ev_modem, CM_SET_KEY_REQ(
        KeyType=0x01, PID=0x04, NetworkID=nid, NewEncKeySelect=0x01, NewKey=nmk)))
    add(0.01, _mme(ev_modem, ev_mac, CM_SET_KEY_CNF(Result=0, PID=0x04)))

    packets = []
    for when, frame in frames:
        wire = bytes(frame)
        wire += bytes(max(0, MIN_FRAME - len(wire)))    # Ethernet pads short MMEs to 60 bytes
        built = Ether(wire)             # freeze lengths/defaults as they go on the wire
        built.time = when
        packets.append(built)
    return packets


def random_mac(seed: int | None = None) -> str:
    """A locally administered unicast MAC address."""
    data = bytearray(random.Random(seed).randbytes(6) if seed is not None else os.urandom(6))
    data[0] = (data[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in data)
