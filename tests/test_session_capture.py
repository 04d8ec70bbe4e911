"""A case's ISO 15118 traffic as a pcap (harness/iso15118/session_capture.py): our EVCC against
our SECC on ::1 through the recording relay — ISO 15118-2 plain TCP and TLS 1.2, ISO 15118-20
TLS 1.3 — and the written pcap read back with scapy (SDP, V2GTP with EXI, TLS records) and,
where tshark is installed, decrypted with the key log to the V2GTP messages. Plus the registry
the engine and the evidence writer share, and the evidence folder / Allure attachment."""

from __future__ import annotations

import asyncio
import gc
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.iso15118 import capture, v2gtp
from harness.iso15118.evcc import Evcc
from harness.iso15118.layers import SDPRequest, SDPResponse
from harness.iso15118.sdp import Security
from harness.iso15118.secc import Secc
from harness.iso15118.session_capture import (
    SessionCapture, capture_for, capture_of, close_captures, link_local_from_mac, write_captures,
)
from harness.ocpp.trace import Trace

from _v2g import pki2, pki20  # noqa: F401  (module-wide PKI fixtures)

SESSION_BOUND = 30.0


async def _session_through_relay(trace: Trace, secc: Secc, protocol: str, *, pki=None) -> tuple[Evcc, int]:
    """A complete EIM session of our EVCC against our SECC, the EV connecting through the case's relay."""
    secc_host, secc_port = await secc.start("::1")
    cap = capture_for(trace)
    try:
        host, port = await cap.start_relay(secc_host, secc_port)
        evcc = Evcc(protocol, pki=pki, tls=secc.tls, trace=trace, keylog=cap.keylog_path)
        await evcc.connect(host, port, timeout=5)
        try:
            await asyncio.wait_for(evcc.run({"loops": 2, "ongoing_interval": 0.01}), SESSION_BOUND)
        finally:
            await evcc.close()
        await secc.wait_session_end(5)
    finally:
        await close_captures(trace)
        await secc.stop()
    return evcc, secc_port


def _v2gtp_stream(packets, port: int, from_ev: bool) -> list[tuple[int, bytes]]:
    """The V2GTP messages of one direction, reassembled from the TCP payloads in order."""
    from scapy.layers.inet import TCP

    data = b"".join(bytes(p[TCP].payload) for p in packets
                    if TCP in p and (p[TCP].dport if from_ev else p[TCP].sport) == port and len(p[TCP].payload))
    messages = []
    while data:
        length = int.from_bytes(data[4:8], "big")
        messages.append(v2gtp.decode(data[:8 + length]))
        data = data[8 + length:]
    return messages


def _sdp(packets) -> tuple:
    requests = [p[SDPRequest] for p in packets if SDPRequest in p]
    responses = [p[SDPResponse] for p in packets if SDPResponse in p]
    assert len(requests) == 1 and len(responses) == 1
    return requests[0], responses[0]


def test_plain_iso2_session_gives_sdp_and_v2gtp_with_exi(tmp_path):
    trace = Trace()
    evcc, port = asyncio.run(_session_through_relay(trace, Secc(("iso2",)), "iso2"))
    files = write_captures(trace, tmp_path)
    assert set(files) == {"v2g.pcap", "v2g.pcap.txt"}          # no TLS, no key log
    packets = capture.read_capture(files["v2g.pcap"], v2g_tcp_ports=[port])
    counts = capture.layer_counts(packets)
    assert counts["SDP request"] == 1 and counts["SDP response"] == 1
    request, response = _sdp(packets)
    assert request.security == Security.NO_TLS and response.security == Security.NO_TLS
    secc_address = link_local_from_mac("02:00:00:00:5e:cc")
    assert (response.secc_address, response.secc_port) == (secc_address, port)
    assert counts["V2GTP"] >= 2 * len(evcc.exchanges) - 1 and counts["EXI"] == counts["V2GTP"] - 2   # minus SDP
    sent, answered = _v2gtp_stream(packets, port, True), _v2gtp_stream(packets, port, False)
    assert len(sent) == len(answered) == len(evcc.exchanges)
    assert all(0x8001 <= payload_type < 0x9000 for payload_type, _ in sent + answered)
    from scapy.layers.inet6 import IPv6
    assert {p[IPv6].src for p in packets if IPv6 in p} <= {secc_address, link_local_from_mac("02:00:00:00:0e:01")}
    assert "SDP: SYNTHESIZED" in files["v2g.pcap.txt"].read_text()
    assert capture_of(trace) is None                               # released once written
    if shutil.which("tshark"):                                      # Wireshark opens it: no malformed or TCP warnings
        done = subprocess.run(["tshark", "-r", str(files["v2g.pcap"]), "-q", "-z", "expert,warn", "-z", "io,phs"],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and "udp" in done.stdout and "tcp" in done.stdout
        assert "Malformed" not in done.stdout and "Warning" not in done.stdout


def _tls_session(tmp_path, trace, secc, protocol, pki):
    evcc, port = asyncio.run(_session_through_relay(trace, secc, protocol, pki=pki))
    files = write_captures(trace, tmp_path)
    assert set(files) == {"v2g.pcap", "v2g.pcap.txt", "v2g.pcap.keys"}
    assert "CLIENT_RANDOM" in files["v2g.pcap.keys"].read_text() or "TRAFFIC_SECRET" in files["v2g.pcap.keys"].read_text()
    packets = capture.read_capture(files["v2g.pcap"], tls_tcp_ports=[port])
    counts = capture.layer_counts(packets)
    request, response = _sdp(packets)
    assert request.security == Security.TLS and response.security == Security.TLS and response.secc_port == port
    assert counts["TLS Handshake - Client Hello"] == 1
    assert counts["V2GTP"] == 2 and not counts["EXI"]              # only SDP is readable without the keys
    if shutil.which("tshark"):
        view = capture.tshark_tls_view(files["v2g.pcap"], port, files["v2g.pcap.keys"])
        stream = b"".join(view.payloads)
        messages = []
        while stream:                                               # decrypted records → V2GTP messages
            length = int.from_bytes(stream[4:8], "big")
            messages.append(v2gtp.decode(stream[:8 + length]))
            stream = stream[8 + length:]
        assert len(messages) == 2 * len(evcc.exchanges)
    return counts, files


def test_tls12_iso2_session_gives_tls_records_that_decrypt(tmp_path, pki2):
    counts, files = _tls_session(tmp_path, Trace(), Secc(("iso2",), pki=pki2), "iso2", pki2)
    assert counts["TLS Handshake - Server Hello"] == 1
    assert "tls.keylog_file:v2g.pcap.keys" in files["v2g.pcap.txt"].read_text()


def test_tls13_iso20_session_gives_tls_records_that_decrypt(tmp_path, pki20):
    counts, _ = _tls_session(tmp_path, Trace(), Secc(("iso20_dc",), pki=pki20), "iso20_dc", pki20)
    assert counts["TLS"] > 4


def test_registry_one_capture_per_trace_and_nothing_without_traffic(tmp_path):
    first, second = Trace(), Trace()
    cap = capture_for(first)
    assert capture_for(first) is cap and capture_for(second) is not cap
    assert write_captures(first, tmp_path) == {} and not list(tmp_path.iterdir())
    assert capture_of(first) is None and write_captures(Trace(), tmp_path) == {}
    keylog_dir = capture_for(second).keylog_path.parent
    del second
    gc.collect()
    assert not keylog_dir.exists()                                  # a dropped capture leaves no temp files


def test_real_sdp_and_slac_context(tmp_path):
    from harness.iso15118.sdp import SdpRequest, SdpResponse

    cap = SessionCapture(slac=True, link_local=False)
    cap.note_sdp(SdpRequest(Security.NO_TLS).encode(), SdpResponse("fe80::1", 61000, Security.NO_TLS).encode())
    path = cap.write(tmp_path / "v2g.pcap")
    packets = capture.read_capture(path)
    counts = capture.layer_counts(packets)
    assert counts["SDP request"] == 1 and counts["SDP response"] == 1 and counts["CM_SLAC_PARM_REQ"] == 1 and counts["CM_MNBC_SOUND_IND"] == 10
    note = (tmp_path / "v2g.pcap.txt").read_text()
    assert "as the endpoints recorded it" in note and "SLAC: SYNTHESIZED" in note
    cap.discard()


def test_relay_needs_a_target():
    with pytest.raises(Exception, match="host and port"):
        asyncio.run(SessionCapture().start_relay("", 0))


def test_evidence_folder_and_allure_attachment(tmp_path):
    from harness.report.evidence import write_case_evidence
    from harness.report.redact import Redactor
    from harness.scenario.model import TestCase
    from harness.scenario.verdict import CaseResult, Verdict

    trace = Trace()
    asyncio.run(_session_through_relay(trace, Secc(("din",)), "din"))
    case = TestCase(id="TC_V2G_CAPTURE", title="capture", ocpp="2.0.1", role="cs", profile="x", steps=[],
                    path=Path("x.yaml"))
    result = CaseResult(case.id, Verdict.PASS, "ok")
    evidence = write_case_evidence(tmp_path, case, result, trace, redactor=Redactor([]))
    assert (evidence["dir"] / "v2g.pcap").is_file() and (evidence["dir"] / "traffic.pcap").is_file()
    assert result.captures["attachments"]["v2g.pcap"] == str(evidence["dir"] / "v2g.pcap")
