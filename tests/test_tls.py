"""Security profiles 2–3 over real TLS on 127.0.0.1, with a test PKI made in tmp_path (ECDSA P-256).

Positive: profile 2 (server certificate verified, Basic auth) and profile 3 (mutual TLS).
Negative: an untrusted server certificate, a client certificate from an untrusted CA, an
expired or revoked one, and a client limited to TLS 1.1 are all refused — the client with
`TlsHandshakeFailed`, the server with a recorded refusal naming the reason.
"""

from __future__ import annotations

import asyncio
import ssl
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.dut.profile import ProfileError, profile_from_dict
from harness.ocpp.trace import Trace
from harness.pki import PkiPaths, make_test_pki
from harness.sim.api import CsmsSimConfig, StationSimConfig
from harness.sim.csms import CsmsSimulator
from harness.sim.station import StationSimulator
from harness.transport.client import HandshakeRefused, TlsHandshakeFailed, connect_station
from harness.transport.security import SecurityProfile, client_tls_context, server_tls_context, tls_security
from harness.transport.server import OcppServer

from _aio import run, within

SID = "CH-TLS-001"
PW = "tls-Station-Pa55word-01"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return make_test_pki(tmp_path_factory.mktemp("pki"), SID)


def _server(pki: PkiPaths, profile: int, cert: Path | None = None, key: Path | None = None) -> OcppServer:
    ctx = server_tls_context(cert or pki.csms_cert, key or pki.csms_key, pki.ca_cert,
                             require_client_cert=profile == 3, crl=pki.crl)
    check = (lambda sid, pw: pw == PW) if profile == 2 else None
    return OcppServer(versions=("2.0.1",), security=SecurityProfile(profile, ssl_context=ctx), password_check=check)


async def _attempt(server: OcppServer, client: SecurityProfile) -> str:
    """'ok: <TLS version>' or raises what connect_station raises; the server is always stopped."""
    await server.start()
    try:
        conn = await connect_station(server.url(), SID, ("2.0.1",), Trace(), client, open_timeout=3.0)
        accepted = await server.next_connection(3.0)
        assert accepted.station_id == SID
        version = conn.ws.transport.get_extra_info("ssl_object").version()
        await within(conn.ws.close(), 3)
        return f"ok: {version}"
    finally:
        await asyncio.sleep(0.05)     # let the server's side of a failed handshake finish
        await server.stop()


def _client(pki: PkiPaths, profile: int, which: str = "station", password: str = PW) -> SecurityProfile:
    if profile == 3:
        ctx = client_tls_context(pki.ca_cert, getattr(pki, f"{which}_cert"), getattr(pki, f"{which}_key"))
        return SecurityProfile(3, SID, None, ctx)
    return SecurityProfile(2, SID, password, client_tls_context(pki.ca_cert))


def test_profile_2_server_certificate_and_basic_auth(pki: PkiPaths) -> None:
    server = _server(pki, 2)
    assert run(_attempt(server, _client(pki, 2))).startswith("ok: TLSv1.")
    assert server.url().startswith("wss://127.0.0.1:") and server.refusals == []


def test_profile_2_wrong_password_is_refused_over_tls(pki: PkiPaths) -> None:
    server = _server(pki, 2)
    with pytest.raises(HandshakeRefused, match="401 wrong password"):
        run(_attempt(server, _client(pki, 2, password="not-the-password-00")))


def test_profile_3_mutual_tls(pki: PkiPaths) -> None:
    server = _server(pki, 3)
    assert run(_attempt(server, _client(pki, 3))).startswith("ok: TLSv1.")
    assert server.refusals == []


def test_untrusted_server_certificate_is_refused_by_the_station(pki: PkiPaths) -> None:
    server = _server(pki, 2, pki.csms_untrusted_cert, pki.csms_untrusted_key)
    with pytest.raises(TlsHandshakeFailed, match="TLS handshake failed: certificate verify failed"):
        run(_attempt(server, _client(pki, 2)))


@pytest.mark.parametrize("which, reason", [
    ("station_untrusted", "unable to get local issuer certificate"),
    ("station_expired", "certificate has expired"),
    ("station_revoked", "certificate revoked"),
])
def test_bad_client_certificate_is_refused_by_the_csms(pki: PkiPaths, which: str, reason: str) -> None:
    server = _server(pki, 3)
    with pytest.raises(TlsHandshakeFailed, match="TLS handshake failed"):
        run(_attempt(server, _client(pki, 3, which)))
    assert [(r.status, r.reason) for r in server.refusals] == [(0, f"TLS handshake failed: certificate verify failed: {reason}")]


def test_profile_3_without_client_certificate_is_refused(pki: PkiPaths) -> None:
    server = _server(pki, 3)
    with pytest.raises(TlsHandshakeFailed):
        run(_attempt(server, SecurityProfile(3, SID, None, client_tls_context(pki.ca_cert))))
    assert server.refusals and "did not return a certificate" in server.refusals[0].reason


def test_tls_1_1_client_is_refused(pki: PkiPaths) -> None:
    ctx = client_tls_context(pki.ca_cert)
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with pytest.warns(DeprecationWarning):
            ctx.minimum_version = ssl.TLSVersion.TLSv1_1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ssl.SSLError, ValueError) as exc:
        pytest.skip(f"local OpenSSL cannot offer TLS 1.1: {exc}")
    server = _server(pki, 2)
    try:
        run(_attempt(server, SecurityProfile(2, SID, PW, ctx)))
    except TlsHandshakeFailed as exc:
        if "no protocols available" in str(exc):
            pytest.skip(f"local OpenSSL cannot offer TLS 1.1: {exc}")
    else:
        pytest.fail("a TLS 1.1-only client connected")
    assert [r.reason for r in server.refusals] == ["TLS handshake failed: unsupported protocol"]


def test_simulators_talk_profile_3(pki: PkiPaths) -> None:
    async def go() -> None:
        csms = CsmsSimulator(CsmsSimConfig(versions=("2.0.1",), security_profile=3, tls_cert=str(pki.csms_cert),
                                           tls_key=str(pki.csms_key), tls_ca=str(pki.ca_cert), tls_crl=str(pki.crl)))
        await csms.start()
        station = StationSimulator(StationSimConfig(station_id=SID, csms_url=csms.url, security_profile=3,
                                                    tls_ca=str(pki.ca_cert), tls_cert=str(pki.station_cert),
                                                    tls_key=str(pki.station_key)))
        try:
            assert csms.url.startswith("wss://")
            await station.start()
            await within(station.accepted.wait(), 10)
            assert csms.stations[SID].boots >= 1
        finally:
            await within(station.stop(), 5)
            await within(csms.stop(), 5)

    run(go())


def test_dut_profile_tls_section(pki: PkiPaths, tmp_path: Path) -> None:
    (tmp_path / "pki").symlink_to(pki.dir)
    prof = profile_from_dict({"name": "x", "kind": "charging_station", "security_profile": 3,
                              "tls": {"ca": "pki/ca.pem", "cert": "pki/csms.pem", "key": "pki/csms.key"}},
                             tmp_path / "dut.yaml")
    assert prof.tls["key"] == tmp_path / "pki" / "csms.key"
    sec = tls_security(3, "server", dict(prof.tls))
    assert sec.scheme == "wss" and sec.ssl_context is not None and sec.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert not any("BEGIN" in s for s in prof.secrets())    # key contents never enter the profile
    with pytest.raises(ProfileError, match="needs a tls: section"):
        profile_from_dict({"name": "x", "kind": "csms", "security_profile": 2})
    with pytest.raises(ProfileError, match="file not found"):
        profile_from_dict({"name": "x", "kind": "csms", "security_profile": 2, "tls": {"ca": "nope.pem"}}, tmp_path / "d.yaml")


def test_pki_init_cli_writes_pem_files_with_private_keys_0600(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    result = CliRunner().invoke(app, ["pki", "init", "--out", str(out), "--station-id", SID])
    assert result.exit_code == 0, result.output
    for name in ("ca.pem", "csms.pem", "station.pem", "station-expired.pem", "station-untrusted.pem",
                 "station-revoked.pem", "crl.pem"):
        assert (out / name).read_text().startswith("-----BEGIN")
    keys = sorted(out.glob("*.key"))
    assert len(keys) == 8 and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
    assert "PRIVATE KEY" not in result.output
    again = CliRunner().invoke(app, ["pki", "init", "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
    assert CliRunner().invoke(app, ["pki", "init", "--out", str(out), "--force"]).exit_code == 0


@pytest.mark.parametrize("case_file, dut, station_id", [
    ("ocpp201/TC_B_06_CS.yaml", "station", "CH-SIM-001"),      # harness = CSMS with the server cert
    ("ocpp201/TC_E_04_CSMS.yaml", "csms", "CH-HARNESS-001"),   # harness = station with the client cert
    ("ocpp16/TC_001_CSMS.yaml", "csms", "CH-HARNESS-001"),
])
def test_library_cases_pass_at_security_profile_3_against_the_simulators(tmp_path: Path, case_file: str, dut: str,
                                                                           station_id: str) -> None:
    import copy

    from harness.dut.builtin import CSMS, STATION
    from harness.execute import execute
    from harness.scenario.loader import load_case
    from harness.scenario.verdict import Verdict

    pki = make_test_pki(tmp_path / "pki", station_id)
    data = copy.deepcopy(STATION if dut == "station" else CSMS)
    data["security_profile"] = 3
    if dut == "station":    # the harness serves TLS; the simulated station presents its client cert
        data["tls"] = {"ca": str(pki.ca_cert), "cert": str(pki.csms_cert), "key": str(pki.csms_key)}
        data["sim"] = {**data["sim"], "tls_ca": str(pki.ca_cert), "tls_cert": str(pki.station_cert),
                       "tls_key": str(pki.station_key)}
    else:                   # the simulated CSMS serves TLS; the harness presents the station cert
        data["tls"] = {"ca": str(pki.ca_cert), "cert": str(pki.station_cert), "key": str(pki.station_key)}
        data["sim"] = {**data["sim"], "tls_ca": str(pki.ca_cert), "tls_cert": str(pki.csms_cert),
                       "tls_key": str(pki.csms_key)}
    case = load_case(Path(__file__).resolve().parents[1] / "testcases" / case_file)
    execution = run(execute(case, profile_from_dict(data)))
    assert execution.result.verdict == Verdict.PASS, execution.result.summary()
    assert any(e.kind == "CONNECT" for e in execution.trace.entries)


# ---- the simulators' TLS faults: each breaks exactly the library case that names it -----------

_TLS_PROBES = {
    "accepts_untrusted_csms_certificate": "ocpp201/TC_A_05_CS.yaml",
    "accepts_tls_1_1_csms": "ocpp201/TC_A_06_CS.yaml",
    "tls_no_basic_auth": "ocpp201/TC_A_04_CS.yaml",
    "tls_no_client_certificate": "ocpp201/TC_A_07_CS.yaml",
    "client_certificate_not_required": "ocpp201/TC_A_08_CSMS.yaml",
    "accepts_revoked_client_certificate": "ocpp201/TC_A_08_CSMS.yaml",
    "accepts_expired_client_certificate": "ocpp201/TC_A_08_CSMS.yaml",
    "accepts_tls_1_1": "ocpp201/TC_A_06_CSMS.yaml",
    "serves_self_signed_certificate": "ocpp201/TC_A_04_CSMS.yaml",
}


def test_every_tls_fault_has_a_probe() -> None:
    from harness.sim.tls_faults import CSMS_TLS_FAULTS, STATION_TLS_FAULTS

    assert set(_TLS_PROBES) == {*STATION_TLS_FAULTS, *CSMS_TLS_FAULTS}


@pytest.mark.parametrize("fault", sorted(_TLS_PROBES))
def test_tls_fault_fails_its_case_and_the_clean_simulator_passes(fault: str) -> None:
    from harness.dut.builtin import builtin_profiles
    from harness.execute import execute
    from harness.scenario.loader import load_case
    from harness.scenario.verdict import Verdict

    case = load_case(Path(__file__).resolve().parents[1] / "testcases" / _TLS_PROBES[fault])
    station, csms = builtin_profiles()[:2]
    dut = station if case.role == "csms" else csms
    clean = run(execute(case, dut))
    broken = run(execute(case, dut, fault=fault))
    assert clean.result.verdict == Verdict.PASS, clean.result.summary()
    assert broken.result.verdict == Verdict.FAIL, broken.result.summary()
