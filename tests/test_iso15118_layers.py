"""scapy layers for V2GTP / SDP / EXI and SLAC: build and dissect with known bytes; the
SDP codec agrees with the layers and with Josev (an independent stack, where installed) and
Wireshark (SLAC); synthesized pcaps read back with the expected layers."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw
from scapy.contrib.homeplugav import HomePlugAV
from scapy.contrib.homepluggp import (
    CM_ATTEN_CHAR_IND, CM_MNBC_SOUND_IND, CM_SET_KEY_REQ, CM_SLAC_MATCH_CNF, CM_SLAC_MATCH_REQ,
    CM_SLAC_PARM_CNF, CM_SLAC_PARM_REQ, CM_START_ATTEN_CHAR_IND,
)

from harness.iso15118 import capture, layers, sdp, v2gtp
from harness.iso15118.layers import EXI, SDPRequest, SDPResponse, V2GTP
from harness.iso15118.sdp import SdpExchange, Security
from harness.iso15118.v2gtp import PayloadType

SECC = "fe80::5ecc:1"
# SDP response: header, fe80::5ecc:1, port 0xd6d8 (55000), TLS, TCP
SDP_RESPONSE_BYTES = bytes.fromhex("01fe900100000014" "fe80000000000000" "000000005ecc0001" "d6d8" "00" "00")


def test_sdp_request_known_bytes():
    assert raw(V2GTP(payload_type=0x9000) / SDPRequest(security=0x10, transport=0x00)) == \
        bytes.fromhex("01fe9000000000021000")
    assert raw(V2GTP() / SDPRequest()) == bytes.fromhex("01fe9000000000020000")   # binding sets the type


def test_sdp_response_dissects():
    packet = V2GTP(SDP_RESPONSE_BYTES)
    assert packet.payload_type == 0x9001 and packet.payload_length == 20
    response = packet[SDPResponse]
    assert (response.secc_address, response.secc_port, response.security, response.transport) == \
        (SECC, 55000, 0x00, 0x00)
    assert raw(V2GTP() / SDPResponse(secc_address=SECC, secc_port=55000)) == SDP_RESPONSE_BYTES


def test_codec_and_layers_agree():
    assert sdp.SdpRequest(Security.NO_TLS).encode() == raw(V2GTP() / SDPRequest(security=0x10))
    assert sdp.SdpResponse(SECC, 55000, Security.TLS).encode() == SDP_RESPONSE_BYTES
    assert sdp.SdpResponse.decode(SDP_RESPONSE_BYTES) == sdp.SdpResponse(SECC, 55000, Security.TLS)
    with pytest.raises(sdp.SdpError):
        sdp.SdpRequest.decode(bytes.fromhex("01fe9000000000020001"))    # transport 0x01 undefined
    with pytest.raises(sdp.SdpError):
        sdp.SdpRequest.decode(bytes.fromhex("01fe900000000003100000"))  # 3-byte payload
    with pytest.raises(sdp.SdpError):
        sdp.SdpResponse.decode(bytes.fromhex("01fe9000000000021000"))   # a request is no response


def test_udp_15118_carries_sdp():
    frame = (Ether(src="02:00:00:00:0e:01", dst="33:33:00:00:00:01") / IPv6(src="fe80::e:1", dst="ff02::1")
             / UDP(sport=50123, dport=15118) / V2GTP() / SDPRequest(security=0x00))
    dissected = Ether(raw(frame))
    assert dissected[SDPRequest].security == 0x00
    back = Ether(raw(Ether() / IPv6() / UDP(sport=15118, dport=50123) / SDP_RESPONSE_BYTES))
    assert back[SDPResponse].secc_port == 55000


@pytest.mark.parametrize("payload_type", [0x8001, 0x8002, 0x8003, 0x8004, 0x8005, 0x8006, 0x8101, 0x8104])
def test_exi_payload_types_carry_opaque_exi(payload_type):
    data = b"\x80\x98\x02\x10\x50\x90\x8c\x0c\x0c\x0e\x0c\x50\xd1\x00"
    packet = V2GTP(v2gtp.encode(payload_type, data))
    assert packet[EXI].data == data and packet.payload_length == len(data)


def test_wireless_sdp_is_not_taken_for_wired_sdp():
    packet = V2GTP(v2gtp.encode(PayloadType.SDP_RESPONSE_WIRELESS, bytes(60)))
    assert SDPResponse not in packet and len(packet[Raw].load) == 60


def test_exi_default_type_and_unknown_type():
    assert raw(V2GTP() / EXI(data=b"\x80\x00")) == bytes.fromhex("01fe8001000000028000")
    unknown = V2GTP(bytes.fromhex("01fea0000000000101"))      # manufacturer specific: left raw
    assert EXI not in unknown and unknown[Raw].load == b"\x01"


def test_two_messages_in_one_segment():
    layers.bind_v2g_tcp_port(61851)
    stream = v2gtp.encode(0x8001, b"ab") + v2gtp.encode(0x8002, b"cde")
    packet = Ether(raw(Ether() / IPv6() / TCP(sport=61851, dport=40000) / stream))
    assert packet[EXI].data == b"ab"
    assert V2GTP(raw(packet[V2GTP].payload.payload)).payload_type == 0x8002    # the rest, as padding


def test_slac_sequence_order_and_fields():
    ev, evse = "02:00:00:00:0e:01", "02:00:00:00:5e:cc"
    nmk = bytes(range(16))
    frames = layers.slac_matching_frames(ev, evse, run_id=b"RUNID123", nmk=nmk, seed=7)
    kinds = [type(f[HomePlugAV].payload).__name__ for f in frames]
    assert kinds[:2] == ["CM_SLAC_PARM_REQ", "CM_SLAC_PARM_CNF"]
    assert kinds[2:5] == ["CM_START_ATTEN_CHAR_IND"] * 3
    assert kinds[5:15] == ["CM_MNBC_SOUND_IND"] * 10
    assert kinds[15:] == ["CM_ATTEN_CHAR_IND", "CM_ATTEN_CHAR_RSP", "CM_SLAC_MATCH_REQ",
                          "CM_SLAC_MATCH_CNF", "CM_SET_KEY_REQ", "CM_SET_KEY_CNF"]
    assert all(f.type == 0x88E1 for f in frames)
    assert [f[CM_MNBC_SOUND_IND].Countdown for f in frames[5:15]] == list(range(9, -1, -1))
    assert frames[0].dst == "ff:ff:ff:ff:ff:ff" and frames[1].dst == ev
    assert frames[1][CM_SLAC_PARM_CNF].ForwardingSTA == ev and frames[1][CM_SLAC_PARM_CNF].NumberMSounds == 10
    assert frames[2][CM_START_ATTEN_CHAR_IND].RunID == b"RUNID123"
    attenuation = frames[15][CM_ATTEN_CHAR_IND]
    assert attenuation.NumberOfGroups == 58 and len(attenuation.Groups) == 58
    match_req, match_cnf = frames[17][CM_SLAC_MATCH_REQ], frames[18][CM_SLAC_MATCH_CNF]
    assert match_req.MatchVariableFieldLen == 0x3E and match_cnf.MatchVariableFieldLen == 0x56
    assert match_cnf.VariableField.NMK == nmk
    assert match_cnf.VariableField.NetworkID == layers.nid_from_nmk(nmk)
    assert frames[19][CM_SET_KEY_REQ].NewKey == nmk
    assert all(float(a.time) < float(b.time) for a, b in zip(frames, frames[1:]))


def test_slac_bytes_on_the_wire():
    frame = layers.slac_matching_frames("02:00:00:00:0e:01", "02:00:00:00:5e:cc", run_id=bytes(8), seed=1)[0]
    # MMV 0x01 (HomePlug AV 1.1), MMTYPE 0x6064 little-endian, FMI 0x0000, app type, security type, RunID
    assert raw(frame)[12:] == bytes.fromhex("88e1" "01" "6460" "0000" "00" "00") + bytes(8) + bytes(60 - 29)
    assert all(len(raw(f)) >= 60 for f in layers.slac_matching_frames("02:00:00:00:0e:01", "02:00:00:00:5e:cc"))
    assert CM_SLAC_PARM_REQ in Ether(raw(frame))


def test_nid_of_the_default_homeplug_key():
    # NMK of the default password "HomePlugAV" and its well-known NID
    assert layers.nid_from_nmk(bytes.fromhex("50d3e4933f855b7040784df815aa8db7")).hex() == "b0f2e695666b03"


def test_slac_is_reproducible_with_a_seed():
    a = layers.slac_matching_frames("02:00:00:00:0e:01", "02:00:00:00:5e:cc", seed=3)
    b = layers.slac_matching_frames("02:00:00:00:0e:01", "02:00:00:00:5e:cc", seed=3)
    assert [raw(x) for x in a] == [raw(y) for y in b]
    with pytest.raises(ValueError):
        layers.slac_matching_frames("02:00:00:00:0e:01", "02:00:00:00:5e:cc", attenuation=[1, 2])


def test_synthesized_pcap_reads_back(tmp_path):
    ev, secc_port = "fe80::e:1", 61852
    request, response = sdp.SdpRequest(Security.TLS).encode(), sdp.SdpResponse(SECC, secc_port, Security.NO_TLS).encode()
    exchanges = [SdpExchange(1.0, True, ("ff02::1", 15118, 0, 2), (ev, 50000, 0, 2), request),
                 SdpExchange(1.01, False, (SECC, 15118, 0, 2), (ev, 50000, 0, 2), response)]
    big = bytes(range(256)) * 12                                # > one MSS: split over segments
    conversation = capture.TcpConversation((ev, 50001), (SECC, secc_port), [
        capture.Segment(1.1, True, v2gtp.encode(0x8001, b"\x80\x00\xdb")),
        capture.Segment(1.2, False, v2gtp.encode(0x8001, b"\x80\x00\xdc")),
        capture.Segment(1.3, True, v2gtp.encode(0x8002, big)[:1400]),
    ])
    slac = layers.slac_matching_frames("02:00:00:00:0e:01", "02:00:00:00:5e:cc", seed=1, start_time=0.0)
    path = capture.synthesize_pcap(tmp_path / "session.pcap", sdp=exchanges, conversations=[conversation],
                                   extra=slac)
    packets = capture.read_capture(path, v2g_tcp_ports=[secc_port])
    counts = capture.layer_counts(packets)
    assert counts["SDP request"] == 1 and counts["SDP response"] == 1
    assert counts["EXI"] == 3 and counts["CM_SLAC_MATCH_CNF"] == 1
    assert packets[0].haslayer(CM_SLAC_PARM_REQ)                 # time-ordered: SLAC comes first
    response_packet = next(p for p in packets if SDPResponse in p)
    assert response_packet[IPv6].src == SECC and response_packet[UDP].sport == 15118
    tcp = [p for p in packets if TCP in p]
    assert tcp[0][TCP].flags == "S" and tcp[1][TCP].flags == "SA" and tcp[-1][TCP].flags == "A"
    data = [p for p in tcp if p[TCP].payload and p[TCP].sport == 50001]
    assert data[1][TCP].seq == data[0][TCP].seq + len(raw(data[0][TCP].payload))
    request_packet = next(p for p in packets if SDPRequest in p)
    assert request_packet[Ether].dst == "33:33:00:00:00:01"
    assert ipaddress.IPv6Address(request_packet[IPv6].dst).is_multicast


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark (Wireshark) is not installed")
def test_wireshark_reads_the_slac_frames(tmp_path):
    """An independent dissector agrees on every message type and the MATCH.CNF key fields."""
    nmk = bytes(range(16))
    frames = layers.slac_matching_frames("02:00:00:00:0e:01", "02:00:00:00:5e:cc", nmk=nmk, seed=2)
    path = capture.synthesize_pcap(tmp_path / "slac.pcap", extra=frames)
    done = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "homeplug_av.mmhdr.mmtype",
                           "-e", "homeplug_av.gp.cm_slac_match.nmk"],
                          capture_output=True, text=True, timeout=30)
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert [int(row[0], 16) for row in rows] == [0x6064, 0x6065] + [0x606A] * 3 + [0x6076] * 10 + \
        [0x606E, 0x606F, 0x607C, 0x607D, 0x6008, 0x6009]
    assert rows[18][1].replace(":", "") == nmk.hex()


# --------------------------------------------------------------------------- an independent stack

_JOSEV_SCRIPT = r'''
import json, sys
from iso15118.shared.messages.enums import ISOV2PayloadTypes, ISOV20PayloadTypes, Protocol
from iso15118.shared.messages.sdp import SDPRequest, SDPResponse, Security, Transport
from iso15118.shared.messages.v2gtp import V2GTPMessage
ours = {k: bytes.fromhex(v) for k, v in json.loads(sys.stdin.read()).items()}
request = SDPRequest.from_payload(V2GTPMessage.from_bytes(Protocol.UNKNOWN, ours["request"]).payload)
response = SDPResponse.from_payload(V2GTPMessage.from_bytes(Protocol.UNKNOWN, ours["response"]).payload)
dc = V2GTPMessage.from_bytes(Protocol.ISO_15118_20_DC, ours["dc"])
print(json.dumps({
    "request": [int(request.security), int(request.transport_protocol)],
    "response": [response.ip_address.hex(), response.port, int(response.security), int(response.transport_protocol)],
    "dc": [int(dc.payload_type), dc.payload.hex()],
    "josev_request": V2GTPMessage(Protocol.UNKNOWN, ISOV2PayloadTypes.SDP_REQUEST,
                                  SDPRequest(Security.NO_TLS, Transport.TCP).to_payload()).to_bytes().hex(),
    "josev_response": V2GTPMessage(Protocol.UNKNOWN, ISOV2PayloadTypes.SDP_RESPONSE, SDPResponse(
        ours["address"], 55000, Security.TLS, Transport.TCP).to_payload()).to_bytes().hex(),
    "josev_ac": V2GTPMessage(Protocol.ISO_15118_20_AC, ISOV20PayloadTypes.AC_MAINSTREAM, b"\x80\x84").to_bytes().hex(),
}))
'''


def _josev_python() -> str | None:
    """An interpreter with Josev (PyPI `iso15118`) installed, kept apart from the project's venv:
    $ISO15118_REFERENCE_PYTHON or the repository's .venv-iso15118."""
    candidate = os.environ.get("ISO15118_REFERENCE_PYTHON") or str(
        Path(__file__).resolve().parents[1] / ".venv-iso15118" / "bin" / "python")
    if not Path(candidate).exists():
        return None
    probe = subprocess.run([candidate, "-c", "import iso15118.shared.messages.v2gtp"],
                           capture_output=True, timeout=60)
    return candidate if probe.returncode == 0 else None


def test_josev_agrees_on_v2gtp_and_sdp_bytes():
    python = _josev_python()
    if python is None:
        pytest.skip("no interpreter with Josev (iso15118) installed; set ISO15118_REFERENCE_PYTHON")
    ours = {"request": sdp.SdpRequest(Security.TLS).encode(),
            "response": sdp.SdpResponse(SECC, 55000, Security.NO_TLS).encode(),
            "dc": v2gtp.encode(PayloadType.DC_MAIN_STREAM, b"\x80\x04\x01"),
            "address": ipaddress.IPv6Address(SECC).packed}
    done = subprocess.run([python, "-c", _JOSEV_SCRIPT], input=json.dumps({k: v.hex() for k, v in ours.items()}),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    assert theirs["request"] == [0x00, 0x00]
    assert theirs["response"] == [ipaddress.IPv6Address(SECC).packed.hex(), 55000, 0x10, 0x00]
    assert theirs["dc"] == [0x8004, "800401"]
    assert sdp.SdpRequest.decode(bytes.fromhex(theirs["josev_request"])) == sdp.SdpRequest(Security.NO_TLS)
    assert bytes.fromhex(theirs["josev_response"]) == SDP_RESPONSE_BYTES
    assert V2GTP(bytes.fromhex(theirs["josev_ac"]))[EXI].data == b"\x80\x84"
    assert V2GTP(bytes.fromhex(theirs["josev_ac"])).payload_type == PayloadType.AC_MAIN_STREAM
