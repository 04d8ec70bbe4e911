"""V2GTP framing over TCP (plain, ISO 15118-2 TLS 1.2, ISO 15118-20 mutual TLS 1.3) on ::1,
and the framing error cases. Certificates are throw-away ones made here with `cryptography`
(EC P-256 for -2, P-521 for -20) until the V2G PKI module lands."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from _aio import run, within
from harness.iso15118 import tls, v2gtp
from harness.iso15118.v2gtp import PayloadType

# --------------------------------------------------------------------------- throw-away PKI

_CURVES = {"iso2": (ec.SECP256R1(), hashes.SHA256()), "iso20": (ec.SECP521R1(), hashes.SHA512())}


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _certificate(subject: str, key, issuer_name: x509.Name | None, issuer_key, hash_, ca: bool):
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=not ca,
                                            encipher_only=False, decipher_only=False), critical=True))
    return builder.sign(issuer_key or key, hash_)


@dataclass
class Credentials:
    v2g_root: Path          # trust anchor of the EVCC
    secc_cert: Path         # leaf + chain
    secc_key: Path
    oem_root: Path          # trust anchor of the SECC for -20 client certificates
    ev_cert: Path
    ev_key: Path


def make_credentials(directory: Path, profile: str) -> Credentials:
    """A V2G root → SECC leaf and an OEM root → vehicle leaf on the profile's curve."""
    curve, hash_ = _CURVES[profile]
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for root_name, leaf_name in (("v2g_root", "secc"), ("oem_root", "ev")):
        root_key, leaf_key = ec.generate_private_key(curve), ec.generate_private_key(curve)
        root = _certificate(f"{root_name} {profile}", root_key, None, None, hash_, ca=True)
        leaf = _certificate(f"{leaf_name.upper()} {profile}", leaf_key, root.subject, root_key, hash_, ca=False)
        paths[root_name] = directory / f"{root_name}.pem"
        paths[root_name].write_bytes(root.public_bytes(serialization.Encoding.PEM))
        paths[f"{leaf_name}_cert"] = directory / f"{leaf_name}.pem"
        paths[f"{leaf_name}_cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        paths[f"{leaf_name}_key"] = directory / f"{leaf_name}.key"
        _write_key(leaf_key, paths[f"{leaf_name}_key"])
    return Credentials(**paths)


def contexts(creds: Credentials, profile: str, keylog: Path | None = None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts of a profile."""
    if profile == "iso2":
        return (tls.iso2_server_context(creds.secc_cert, creds.secc_key, keylog=keylog),
                tls.iso2_client_context(creds.v2g_root, keylog=keylog))
    return (tls.iso20_server_context(creds.secc_cert, creds.secc_key, creds.oem_root, keylog=keylog),
            tls.iso20_client_context(creds.v2g_root, creds.ev_cert, creds.ev_key, keylog=keylog))


# --------------------------------------------------------------------------- framing

def test_encode_known_bytes():
    assert v2gtp.encode(PayloadType.SDP_REQUEST, b"\x10\x00") == bytes.fromhex("01fe9000000000021000")
    assert v2gtp.encode(0x8001, b"\x80\x00") == bytes.fromhex("01fe8001000000028000")


def test_payload_types_of_both_editions():
    assert {int(t) for t in v2gtp.ISO2_PAYLOAD_TYPES} == {0x8001, 0x9000, 0x9001}
    assert PayloadType.AC_MAIN_STREAM == 0x8003 and PayloadType.DC_MAIN_STREAM == 0x8004
    assert PayloadType.SCHEDULE_RENEGOTIATION == 0x8101 and PayloadType.PARKING_STATUS == 0x8104
    assert PayloadType.SDP_REQUEST_WIRELESS == 0x9002 and v2gtp.SAP == 0x8001
    assert PayloadType.SDP_REQUEST not in v2gtp.TCP_PAYLOAD_TYPES


@pytest.mark.parametrize("header, error", [
    ("02fe800100000001", v2gtp.V2gtpVersionError),            # wrong version
    ("01ff800100000001", v2gtp.V2gtpVersionError),            # inverse does not match
    ("01fe800700000001", v2gtp.V2gtpPayloadTypeError),        # reserved type
    ("01fea00000000001", v2gtp.V2gtpPayloadTypeError),        # manufacturer specific, not enabled
    ("01fe800100100001", v2gtp.V2gtpLengthError),             # 1 MiB + 1 > the 64 KiB buffer
])
def test_header_check_rejects(header, error):
    with pytest.raises(error) as caught:
        v2gtp.check_header(bytes.fromhex(header))
    assert caught.value.close_connection


def test_header_check_order_follows_the_spec():
    # version is checked before payload type, which is checked before length
    with pytest.raises(v2gtp.V2gtpVersionError):
        v2gtp.check_header(bytes.fromhex("00ff0000ffffffff"))
    with pytest.raises(v2gtp.V2gtpPayloadTypeError):
        v2gtp.check_header(bytes.fromhex("01fe0000ffffffff"))


def test_decode_datagram_length_mismatch():
    with pytest.raises(v2gtp.V2gtpLengthError):
        v2gtp.decode(bytes.fromhex("01fe900000000002") + b"\x10")
    assert v2gtp.decode(bytes.fromhex("01fe90000000000210 00".replace(" ", ""))) == (0x9000, b"\x10\x00")


def _reader(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def test_read_v2gtp_errors():
    async def scenario():
        with pytest.raises(v2gtp.V2gtpVersionError):
            await v2gtp.read_v2gtp(_reader(bytes.fromhex("02fd800100000000")), 1.0)
        with pytest.raises(v2gtp.V2gtpPayloadTypeError):       # SDP does not belong on TCP
            await v2gtp.read_v2gtp(_reader(v2gtp.encode(0x9000, b"\x00\x00")), 1.0)
        with pytest.raises(v2gtp.V2gtpLengthError):
            await v2gtp.read_v2gtp(_reader(v2gtp.encode(0x8001, bytes(100))), 1.0, max_payload=99)
        with pytest.raises(v2gtp.V2gtpTruncatedError):
            await v2gtp.read_v2gtp(_reader(v2gtp.encode(0x8001, bytes(10))[:12]), 1.0)
        with pytest.raises(v2gtp.V2gtpTruncatedError):
            await v2gtp.read_v2gtp(_reader(b"\x01\xfe"), 1.0)
        with pytest.raises(v2gtp.V2gtpTimeoutError):
            await v2gtp.read_v2gtp(_reader(b"\x01\xfe\x80", eof=False), 0.05)
        two = v2gtp.encode(0x8001, b"a") + v2gtp.encode(0x8004, b"bc")
        reader = _reader(two)
        assert await v2gtp.read_v2gtp(reader, 1.0) == (0x8001, b"a")
        assert await v2gtp.read_v2gtp(reader, 1.0) == (0x8004, b"bc")
    run(scenario())


def test_read_v2gtp_reassembles_a_message_split_over_segments():
    message = v2gtp.encode(PayloadType.MAIN_STREAM, bytes(range(50)))

    async def scenario():
        reader = asyncio.StreamReader()

        async def trickle():
            start = 0
            for cut in (3, 9, 30, len(message)):           # header split, payload split
                reader.feed_data(message[start:cut])
                start = cut
                await asyncio.sleep(0)

        feeder = asyncio.create_task(trickle())
        result = await v2gtp.read_v2gtp(reader, 1.0)
        await feeder
        return result

    assert run(scenario()) == (0x8002, bytes(range(50)))


# --------------------------------------------------------------------------- over TCP / TLS on ::1

def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")


async def _echo_session(server_ctx, client_ctx, messages, profile: tls.Profile | None):
    seen: dict = {}

    async def handle(reader, writer):
        try:
            if profile:
                seen["server"] = tls.check_negotiated(writer.get_extra_info("ssl_object"), profile)
                seen["peer_cert"] = writer.get_extra_info("peercert")
            for _ in messages:
                payload_type, payload = await v2gtp.read_v2gtp(reader, 2.0)
                await v2gtp.write_v2gtp(writer, payload_type, payload[::-1])
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "::1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await within(asyncio.open_connection("::1", port, ssl=client_ctx))
        if profile:
            seen["client"] = tls.check_negotiated(writer.get_extra_info("ssl_object"), profile)
        answers = []
        for payload_type, payload in messages:
            await v2gtp.write_v2gtp(writer, payload_type, payload)
            answers.append(await v2gtp.read_v2gtp(reader, 2.0))
        writer.close()
        return answers, seen
    finally:
        server.close()
        await within(server.wait_closed())


@needs_ipv6
@pytest.mark.parametrize("bad, error", [
    (bytes.fromhex("02fd800100000001") + b"x", "V2gtpVersionError"),
    (v2gtp.encode(0x8007, b"x"), "V2gtpPayloadTypeError"),
    (bytes.fromhex("01fe8001ffffffff"), "V2gtpLengthError"),
])
def test_secc_closes_the_connection_on_a_bad_header(bad, error):
    """The receiving side drops the message and closes: the EVCC sees the connection end."""
    async def scenario():
        caught: list[str] = []

        async def handle(reader, writer):
            try:
                await v2gtp.read_v2gtp(reader, 2.0)
            except v2gtp.V2gtpError as exc:
                caught.append(type(exc).__name__)
                assert exc.close_connection
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "::1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await within(asyncio.open_connection("::1", port))
            writer.write(bad)
            await writer.drain()
            assert await within(reader.read(100)) == b""          # closed, nothing answered
            writer.close()
        finally:
            server.close()
            await within(server.wait_closed())
        return caught

    assert run(scenario()) == [error]


MESSAGES = [(PayloadType.EXI, b"\x80\x00\xdb\xab\x93\x71"), (PayloadType.DC_MAIN_STREAM, bytes(range(200)))]


@needs_ipv6
def test_plain_tcp_echo():
    answers, _ = run(_echo_session(None, None, MESSAGES, None))
    assert answers == [(t, p[::-1]) for t, p in MESSAGES]


@needs_ipv6
def test_iso2_tls12_server_auth(tmp_path):
    creds = make_credentials(tmp_path / "pki", "iso2")
    keylog = tmp_path / "keys.log"
    server_ctx, client_ctx = contexts(creds, "iso2", keylog)
    answers, seen = run(_echo_session(server_ctx, client_ctx, MESSAGES[:1], tls.Profile.ISO2))
    assert answers == [(MESSAGES[0][0], MESSAGES[0][1][::-1])]
    assert seen["server"] == seen["client"] == ("TLSv1.2", "ECDHE-ECDSA-AES128-SHA256")
    assert not seen["peer_cert"]                                  # no client certificate in -2
    assert "CLIENT_RANDOM" in keylog.read_text()


@needs_ipv6
def test_iso20_tls13_mutual(tmp_path):
    creds = make_credentials(tmp_path / "pki", "iso20")
    keylog = tmp_path / "keys.log"
    server_ctx, client_ctx = contexts(creds, "iso20", keylog)
    messages = [(PayloadType.EXI, b"sap"), (PayloadType.MAIN_STREAM, b"session setup")]
    answers, seen = run(_echo_session(server_ctx, client_ctx, messages, tls.Profile.ISO20))
    assert [p for _, p in answers] == [b"pas", b"putes noisses"]
    assert seen["server"] == seen["client"] == ("TLSv1.3", "TLS_AES_256_GCM_SHA384")
    assert seen["peer_cert"]                                      # the vehicle certificate
    assert "CLIENT_TRAFFIC_SECRET_0" in keylog.read_text()


@needs_ipv6
def test_iso20_server_refuses_a_client_without_certificate(tmp_path):
    creds = make_credentials(tmp_path / "pki", "iso20")
    server_ctx, _ = contexts(creds, "iso20")
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    client_ctx.check_hostname = False
    client_ctx.load_verify_locations(cafile=str(creds.v2g_root))

    async def scenario():
        closed = asyncio.Event()

        async def handle(reader, writer):
            closed.set()
            writer.close()

        server = await asyncio.start_server(handle, "::1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await within(asyncio.open_connection("::1", port, ssl=client_ctx))
            # TLS 1.3: the client learns of the refusal on its first read
            with pytest.raises((ssl.SSLError, ConnectionError, v2gtp.V2gtpTruncatedError)):
                await v2gtp.write_v2gtp(writer, 0x8001, b"x")
                await v2gtp.read_v2gtp(reader, 2.0)
            writer.close()
        finally:
            server.close()
            await within(server.wait_closed())
        return closed.is_set()

    assert run(scenario()) is False          # the server never got a connection to handle


@needs_ipv6
def test_iso2_client_refuses_untrusted_secc(tmp_path):
    good = make_credentials(tmp_path / "good", "iso2")
    other = make_credentials(tmp_path / "other", "iso2")
    server_ctx = tls.iso2_server_context(good.secc_cert, good.secc_key)
    client_ctx = tls.iso2_client_context(other.v2g_root)

    async def scenario():
        server = await asyncio.start_server(lambda r, w: w.close(), "::1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(ssl.SSLCertVerificationError):
                await within(asyncio.open_connection("::1", port, ssl=client_ctx))
        finally:
            server.close()
            await within(server.wait_closed())
    run(scenario())


def test_profile_check_rejects_wrong_version():
    class Fake:
        def cipher(self):
            return ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128)
    with pytest.raises(tls.TlsProfileError):
        tls.check_negotiated(Fake(), tls.Profile.ISO20)
    with pytest.raises(tls.TlsProfileError):
        tls.check_negotiated(Fake(), tls.Profile.ISO2)


def test_missing_credentials_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pem"):
        tls.iso2_server_context(tmp_path / "nope.pem", tmp_path / "nope.key")


# --------------------------------------------------------------------------- with the project's V2G PKI

def _v2g_pki(tmp_path, flavour: str):
    v2g = pytest.importorskip("harness.pki.v2g")
    return v2g.make_v2g_pki(tmp_path / flavour, flavour)


@needs_ipv6
@pytest.mark.parametrize("flavour, profile, cipher", [
    ("iso2", tls.Profile.ISO2, "ECDHE-ECDSA-AES128-SHA256"),
    ("iso20-ec", tls.Profile.ISO20, "TLS_AES_256_GCM_SHA384"),
    ("iso20-ed448", tls.Profile.ISO20, "TLS_AES_256_GCM_SHA384"),
])
def test_tls_with_the_v2g_pki_chains(tmp_path, flavour, profile, cipher):
    """SECC leaf + two CPO Sub-CAs on the wire, verified up to the V2G root; for -20 the EVCC
    authenticates with its OEM provisioning chain, verified up to the OEM root."""
    pki = _v2g_pki(tmp_path, flavour)
    secc_chain, secc_key = pki.chain_paths["secc"], pki.key_paths["secc"]
    if profile is tls.Profile.ISO2:
        server_ctx = tls.iso2_server_context(secc_chain, secc_key)
        client_ctx = tls.iso2_client_context(pki.cert_paths["v2g_root"])
    else:
        server_ctx = tls.iso20_server_context(secc_chain, secc_key, pki.cert_paths["oem_root"])
        client_ctx = tls.iso20_client_context(pki.cert_paths["v2g_root"], pki.chain_paths["oem_prov"],
                                              pki.key_paths["oem_prov"])
    answers, seen = run(_echo_session(server_ctx, client_ctx, MESSAGES[:1], profile))
    assert answers == [(MESSAGES[0][0], MESSAGES[0][1][::-1])]
    assert seen["server"][1] == cipher
    if profile is tls.Profile.ISO20:
        subject = dict(pair[0] for pair in seen["peer_cert"]["subject"])
        assert subject["commonName"] == pki.pcid


@needs_ipv6
def test_evcc_refuses_an_expired_secc_certificate(tmp_path):
    pki = _v2g_pki(tmp_path, "iso2")
    server_ctx = tls.iso2_server_context(pki.chain_paths["secc_expired"], pki.key_paths["secc_expired"])
    client_ctx = tls.iso2_client_context(pki.cert_paths["v2g_root"])

    async def scenario():
        server = await asyncio.start_server(lambda r, w: w.close(), "::1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
                await within(asyncio.open_connection("::1", port, ssl=client_ctx))
        finally:
            server.close()
            await within(server.wait_closed())
    run(scenario())


# --------------------------------------------------------------------------- recorded, synthesized capture

@needs_ipv6
@pytest.mark.parametrize("profile", ["iso2", "iso20"])
def test_relay_recording_becomes_a_decryptable_pcap(tmp_path, profile):
    """No namespace, no dumpcap: a recording relay in front of the SECC gives the raw TLS
    records; the synthesized pcap shows the handshake and, with the key log, the V2GTP messages."""
    import shutil
    from harness.iso15118 import capture
    creds = make_credentials(tmp_path / "pki", profile)
    keylog = tmp_path / "keys.log"
    server_ctx, client_ctx = contexts(creds, profile, keylog)
    ev, secc = ("fe80::e:1", 50100), ("fe80::5ecc:1", 61853)

    async def scenario():
        async def handle(reader, writer):
            try:
                payload_type, payload = await v2gtp.read_v2gtp(reader, 2.0)
                await v2gtp.write_v2gtp(writer, payload_type, payload[::-1])
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "::1", 0, ssl=server_ctx)
        target = ("::1", server.sockets[0].getsockname()[1])
        relay = capture.RecordingRelay(target, client_name=ev, server_name=secc)
        try:
            port = await relay.start()
            reader, writer = await v2gtp.open_v2g_connection("::1", port, ssl_context=client_ctx)
            await v2gtp.write_v2gtp(writer, 0x8001, b"hello")
            answer = await v2gtp.read_v2gtp(reader, 2.0)
            assert await within(reader.read(10)) == b""
            writer.close()
        finally:
            await relay.close()
            server.close()
            await within(server.wait_closed())
        return answer, relay.conversations

    answer, conversations = run(scenario())
    assert answer == (0x8001, b"olleh") and len(conversations) == 1
    pcap = capture.synthesize_pcap(tmp_path / "session.pcap", conversations=conversations)
    counts = capture.layer_counts(capture.read_capture(pcap, tls_tcp_ports=[secc[1]]))
    assert counts["TLS Handshake - Client Hello"] == 1 and counts["TLS Handshake - Server Hello"] == 1
    if shutil.which("tshark"):
        view = capture.tshark_tls_view(pcap, secc[1], keylog)
        assert view.payloads == [v2gtp.encode(0x8001, b"hello"), v2gtp.encode(0x8001, b"olleh")]
        assert view.server_names == [""]
