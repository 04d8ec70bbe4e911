"""EV and SECC in two network namespaces joined by a veth pair: SDP discovery over IPv6
multicast, then V2GTP over TCP / TLS (-2 and -20 profiles) to the announced link-local
address, with a dumpcap capture read back through the V2G layers.

The async functions at the top are the entry points run inside the namespaces."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path

import pytest

from harness.iso15118 import netns, sdp, tls, v2gtp
from harness.iso15118.netns import Side, SideSpec
from harness.iso15118.sdp import Security

HERE = Path(__file__).resolve()
REASON = netns.netns_available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def _entry(name: str) -> str:
    return f"{HERE}:{name}"


# --------------------------------------------------------------------------- entry points

def _server_context(side: Side) -> ssl.SSLContext | None:
    k = side.kwargs
    if k["profile"] == "iso2":
        return tls.iso2_server_context(k["secc_cert"], k["secc_key"], keylog=k.get("keylog"))
    if k["profile"] == "iso20":
        return tls.iso20_server_context(k["secc_cert"], k["secc_key"], k["oem_root"], keylog=k.get("keylog"))
    return None


def _client_context(side: Side) -> ssl.SSLContext | None:
    k = side.kwargs
    if k["profile"] == "iso2":
        return tls.iso2_client_context(k["v2g_root"], keylog=k.get("keylog"))
    if k["profile"] == "iso20":
        return tls.iso20_client_context(k["v2g_root"], k["ev_cert"], k["ev_key"], keylog=k.get("keylog"))
    return None


async def secc_main(side: Side) -> dict:
    """SDP server + one V2GTP connection that answers each message with its reverse."""
    context = _server_context(side)
    profile = {"iso2": tls.Profile.ISO2, "iso20": tls.Profile.ISO20}.get(side.kwargs["profile"])
    done: asyncio.Future = asyncio.get_running_loop().create_future()
    report: dict = {"received": []}

    async def handle(reader, writer):
        try:
            if profile:
                report["tls"] = tls.check_negotiated(writer.get_extra_info("ssl_object"), profile)
            for _ in range(side.kwargs["messages"]):
                payload_type, payload = await v2gtp.read_v2gtp(reader, 5.0)
                report["received"].append([payload_type, payload.hex()])
                await v2gtp.write_v2gtp(writer, payload_type, payload[::-1])
            report["peer"] = writer.get_extra_info("peername")[0]
        except Exception as exc:            # reported, not raised inside the server task
            report["error"] = repr(exc)
        finally:
            writer.close()
            if not done.done():
                done.set_result(None)

    server = await asyncio.start_server(handle, f"{side.address}%{side.iface}", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    security = Security.TLS if context else Security.NO_TLS
    async with sdp.SdpServer(side.iface, {security: port}) as sdp_server:
        side.ready()
        await asyncio.wait_for(done, 15.0)
        report["sdp_requests"] = sum(1 for e in sdp_server.exchanges if not e.sent)
        report["port"] = port
    server.close()
    await server.wait_closed()
    return report


async def ev_main(side: Side) -> dict:
    """Discover the SECC, connect to what SDP announced, send the messages, collect the echoes."""
    context = _client_context(side)
    security = Security.TLS if context else Security.NO_TLS
    found = await sdp.discover_secc(side.iface, security, interval=0.25, max_requests=20)
    reader, writer = await v2gtp.open_v2g_connection(found.response.address, found.response.port,
                                                     side.iface, ssl_context=context)
    echoes = []
    for index in range(side.kwargs["messages"]):
        payload_type = v2gtp.PayloadType.EXI if index == 0 else v2gtp.PayloadType.MAIN_STREAM
        await v2gtp.write_v2gtp(writer, payload_type, f"message {index}".encode())
        received_type, payload = await v2gtp.read_v2gtp(reader, 5.0)
        echoes.append([received_type, payload.decode()])
    writer.close()
    return {"secc": found.response.address, "port": found.response.port,
            "security": int(found.response.security), "requests": found.requests_sent, "echoes": echoes}


async def ev_sdp_only(side: Side) -> dict:
    found = await sdp.discover_secc(side.iface, Security(side.kwargs["security"]), interval=0.25, max_requests=20)
    return {"address": found.response.address, "port": found.response.port,
            "security": int(found.response.security), "requests": found.requests_sent}


async def secc_sdp_only(side: Side) -> dict:
    async with sdp.SdpServer(side.iface, {Security.NO_TLS: 61000}) as server:
        side.ready()
        for _ in range(200):                      # bounded: until the EV has had its answer
            if any(e.sent for e in server.exchanges):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        return {"answered": sum(1 for e in server.exchanges if e.sent)}


async def ev_nobody_answers(side: Side) -> dict:
    try:
        await sdp.discover_secc(side.iface, Security.TLS, interval=0.05, max_requests=4)
    except sdp.SdpTimeout as exc:
        return {"timeout": str(exc)}
    return {"timeout": None}


async def secc_silent(side: Side) -> dict:
    side.ready()
    await asyncio.sleep(0.5)
    return {}


# --------------------------------------------------------------------------- tests

def test_sdp_across_the_veth_pair(tmp_path):
    result = netns.run_pair(SideSpec(_entry("ev_sdp_only"), {"security": Security.TLS}),
                            SideSpec(_entry("secc_sdp_only")), tmp_path, timeout=20)
    # the SECC only offers no-TLS, so it answers a TLS request with what it has
    assert result.ev == {"address": netns.SECC_ADDRESS, "port": 61000,
                         "security": Security.NO_TLS, "requests": 1}
    assert result.secc["answered"] >= 1


def test_sdp_gives_up_after_max_requests(tmp_path):
    result = netns.run_pair(SideSpec(_entry("ev_nobody_answers")), SideSpec(_entry("secc_silent")),
                            tmp_path, timeout=20)
    assert "after 4 requests" in result.ev["timeout"]


def test_a_failing_side_is_reported(tmp_path):
    with pytest.raises(netns.NetnsError, match="ZeroDivisionError|has no attribute"):
        netns.run_pair(SideSpec(_entry("no_such_entry")), SideSpec(_entry("secc_silent")), tmp_path, timeout=20)


def _session(tmp_path, profile: str, capture_traffic: bool = True):
    kwargs: dict = {"profile": profile, "messages": 2}
    if profile != "none":
        from test_iso15118_transport import make_credentials
        creds = make_credentials(tmp_path / "pki", profile)
        kwargs.update({name: str(path) for name, path in vars(creds).items()})
        kwargs["keylog"] = str(tmp_path / "keylog.txt")
    return netns.run_pair(SideSpec(_entry("ev_main"), kwargs), SideSpec(_entry("secc_main"), kwargs),
                          tmp_path / "run", timeout=25, capture=capture_traffic)


def test_plain_v2gtp_session_with_capture(tmp_path):
    from harness.iso15118 import capture          # scapy: imported here, not in the namespace sides
    if capture.dumpcap_available():
        pytest.skip(capture.dumpcap_available())
    result = _session(tmp_path, "none")
    assert result.ev["echoes"] == [[0x8001, "0 egassem"], [0x8002, "1 egassem"]]
    assert result.ev["secc"] == netns.SECC_ADDRESS and result.ev["security"] == Security.NO_TLS
    assert result.secc["peer"].startswith(netns.EV_ADDRESS)
    packets = capture.read_capture(result.pcap, v2g_tcp_ports=[result.secc["port"]])
    counts = capture.layer_counts(packets)
    _capture_or_skip(counts)
    assert counts["SDP request"] >= 1 and counts["SDP response"] == 1
    assert counts["EXI"] == 4                          # two messages each way
    from harness.iso15118.layers import V2GTP, SDPResponse
    response = next(p for p in packets if SDPResponse in p)[SDPResponse]
    assert response.secc_address == netns.SECC_ADDRESS and response.secc_port == result.secc["port"]
    assert {p[V2GTP].payload_type for p in packets if V2GTP in p} >= {0x8001, 0x8002, 0x9000, 0x9001}


def _capture_or_skip(counts) -> None:
    """dumpcap in a user namespace sometimes loses its buffered packets when it is stopped (only the
    first MLD reports reach the file, seen in CI): the session above has passed; say so, don't FAIL."""
    if "TCP" not in counts:
        pytest.skip(f"dumpcap kept only {sum(counts.values())} early packets (no TCP): its buffer was lost "
                    "on stop; the session itself passed and tests/test_session_capture.py checks the pcap")


@pytest.mark.parametrize("profile, version, cipher", [
    ("iso2", "TLSv1.2", "ECDHE-ECDSA-AES128-SHA256"),
    ("iso20", "TLSv1.3", "TLS_AES_256_GCM_SHA384"),
])
def test_tls_session_over_the_veth_pair(tmp_path, profile, version, cipher):
    from harness.iso15118 import capture
    result = _session(tmp_path, profile, capture_traffic=capture.dumpcap_available() is None)
    assert result.ev["echoes"] == [[0x8001, "0 egassem"], [0x8002, "1 egassem"]]
    assert result.ev["security"] == Security.TLS
    assert result.secc["tls"] == [version, cipher]
    keylog = tmp_path / "keylog.txt"
    assert ("CLIENT_RANDOM" if profile == "iso2" else "CLIENT_TRAFFIC_SECRET_0") in keylog.read_text()
    if result.pcap:
        packets = capture.read_capture(result.pcap, tls_tcp_ports=[result.secc["port"]])
        counts = capture.layer_counts(packets)
        _capture_or_skip(counts)
        assert counts["SDP request"] >= 1 and counts["SDP response"] == 1
        names = " ".join(counts)
        assert "TLS" in names, counts
        assert "EXI" not in counts                     # the V2GTP messages are encrypted on the wire
        if shutil.which("tshark"):                     # …and the key log opens them; no SNI was sent
            view = capture.tshark_tls_view(result.pcap, result.secc["port"], keylog)
            assert view.server_names == [""]
            assert view.payloads == [v2gtp.encode(0x8001, b"message 0"), v2gtp.encode(0x8001, b"0 egassem"),
                             v2gtp.encode(0x8002, b"message 1"), v2gtp.encode(0x8002, b"1 egassem")]


async def secc_hangs(side: Side) -> dict:
    side.ready()
    await asyncio.Event().wait()          # never set: the side timeout must end this
    return {}


def test_a_hanging_side_is_bounded(tmp_path):
    with pytest.raises(netns.NetnsError, match="TimeoutError|overran"):
        netns.run_pair(SideSpec(_entry("secc_silent")), SideSpec(_entry("secc_hangs")), tmp_path, timeout=3)


# --------------------------------------------------------------------------- against Josev's SDP

_JOSEV_SIDES = r'''
import asyncio, ipaddress
from iso15118.shared.messages.enums import ISOV2PayloadTypes, Protocol
from iso15118.shared.messages.sdp import SDPRequest, SDPResponse, Security, Transport, create_sdp_response
from iso15118.shared.messages.v2gtp import V2GTPMessage


async def josev_ev(side):
    """Josev's EVCC UDP client multicasts its SDP request; we decode the answer with Josev."""
    from iso15118.evcc.transport.udp_client import UDPClient
    queue = asyncio.Queue()
    client = UDPClient(queue, side.iface)
    await client.start()
    request = V2GTPMessage(Protocol.UNKNOWN, ISOV2PayloadTypes.SDP_REQUEST,
                           SDPRequest(Security.NO_TLS, Transport.TCP).to_payload())
    for _ in range(20):                              # Josev's own 250 ms SDP timeout, bounded
        await client.send_and_receive(request)
        notification = await asyncio.wait_for(queue.get(), 5)
        if hasattr(notification, "data"):
            break
    response = SDPResponse.from_payload(V2GTPMessage.from_bytes(Protocol.UNKNOWN, bytes(notification.data)).payload)
    return {"address": str(ipaddress.IPv6Address(response.ip_address)), "port": response.port,
            "security": int(response.security)}


async def josev_secc(side):
    """Josev's SECC UDP server receives; Josev's create_sdp_response answers."""
    from iso15118.secc.transport.udp_server import UDPServer
    queue, ready = asyncio.Queue(), asyncio.Event()
    server = UDPServer(queue, side.iface)
    task = asyncio.create_task(server.start(ready))
    await asyncio.wait_for(ready.wait(), 5)
    side.ready()
    packet = await asyncio.wait_for(queue.get(), 10)
    request = SDPRequest.from_payload(V2GTPMessage.from_bytes(Protocol.UNKNOWN, bytes(packet.data)).payload)
    response = create_sdp_response(request, ipaddress.IPv6Address(side.address).packed, 64001, tls_enabled=True)
    server.send(V2GTPMessage(Protocol.UNKNOWN, ISOV2PayloadTypes.SDP_RESPONSE, response.to_payload()), packet.addr)
    await asyncio.sleep(0.2)
    task.cancel()
    return {"security": int(request.security), "transport": int(request.transport_protocol)}
'''


def _josev_python() -> str | None:
    import os
    import subprocess
    candidate = os.environ.get("ISO15118_REFERENCE_PYTHON") or str(HERE.parents[1] / ".venv-iso15118" / "bin" / "python")
    if not Path(candidate).exists():
        return None
    probe = subprocess.run([candidate, "-c", "import iso15118.evcc.transport.udp_client"], capture_output=True, timeout=60)
    return candidate if probe.returncode == 0 else None


@pytest.mark.parametrize("josev_role", ["ev", "secc"])
def test_sdp_against_josev(tmp_path, josev_role):
    python = _josev_python()
    if python is None:
        pytest.skip("no interpreter with Josev (iso15118) installed; set ISO15118_REFERENCE_PYTHON")
    sides = tmp_path / "josev_sides.py"
    sides.write_text(_JOSEV_SIDES)
    if josev_role == "ev":
        result = netns.run_pair(SideSpec(f"{sides}:josev_ev", python=python),
                                SideSpec(_entry("secc_sdp_only")), tmp_path / "run", timeout=25)
        assert result.ev == {"address": netns.SECC_ADDRESS, "port": 61000, "security": Security.NO_TLS}
    else:
        result = netns.run_pair(SideSpec(_entry("ev_sdp_only"), {"security": Security.NO_TLS}),
                                SideSpec(f"{sides}:josev_secc", python=python), tmp_path / "run", timeout=25)
        assert result.secc == {"security": Security.NO_TLS, "transport": 0}
        assert result.ev["address"] == netns.SECC_ADDRESS and result.ev["port"] == 64001
        assert result.ev["security"] == Security.TLS      # Josev answers with what it offers
