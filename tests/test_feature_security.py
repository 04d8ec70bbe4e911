"""Unit tests of the security / certificates feature modules (the library cases are the integration test)."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from harness.pki.ocsp import certificate_hash_data
from harness.sim.api import StationSimConfig
from harness.sim.features import _certificates_fixture as fixture
from harness.sim.features import certificates, security


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 5))


@dataclass
class FakeSim:
    fault: str | None = None
    cfg: StationSimConfig = field(default_factory=lambda: StationSimConfig(station_id=fixture.STATION_ID, password="x" * 16))
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return self.fault == name

    def enqueue(self, action: str, payload: dict[str, Any], *a: Any, **k: Any) -> None:
        self.sent.append((action, payload))

    send_triggered = enqueue


@dataclass
class FakeFront:
    version: str
    sim: FakeSim


def front(version: str = "2.0.1", fault: str | None = None) -> FakeFront:
    return FakeFront(version, FakeSim(fault))


def csr_pem(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256())
    from cryptography.hazmat.primitives import serialization
    return csr.public_bytes(serialization.Encoding.PEM).decode()


# ---- fixture ---------------------------------------------------------------------------------

def test_case_fragment_matches_the_fixture() -> None:
    steps = yaml.safe_load(fixture.FRAGMENT.read_text())["steps"]
    assert steps[0]["set"] == fixture.case_variables()


def test_root_hash_data_is_the_root_as_its_own_issuer() -> None:
    root = fixture.cert("csms_root")
    assert fixture.hash_data("csms_root") == certificate_hash_data(root, root)
    assert fixture.hash_data("secc")["issuerNameHash"] == certificate_hash_data(fixture.cert("secc"),
                                                                                 fixture.cert("v2g_root"))["issuerNameHash"]


# ---- chain checks and CSR signing ----------------------------------------------------------

def test_csms_signs_a_csr_under_its_sub_ca_and_the_station_trusts_it() -> None:
    chain = certificates.load_chain(certificates.sign_csr(csr_pem(fixture.STATION_ID)))
    assert chain[1] == fixture.cert("csms_subca")
    assert certificates.chain_problem(chain, [fixture.cert("csms_root")], fixture.STATION_ID) is None


@pytest.mark.parametrize("name, words, skip", [
    ("station_other_identity_chain", "not this station", "identity"),
    ("station_expired_chain", "not valid now", "validity"),
    ("station_untrusted_chain", "does not lead", "signature"),
])
def test_each_bad_fixture_chain_fails_for_its_own_reason(name: str, words: str, skip: str) -> None:
    chain = certificates.load_chain(fixture.case_variables()[name])
    anchors = [fixture.cert("csms_root")]
    assert words in (certificates.chain_problem(chain, anchors, fixture.STATION_ID) or "")
    assert certificates.chain_problem(chain, anchors, fixture.STATION_ID, frozenset({skip})) is None


def test_untrusted_signature_is_refused() -> None:
    chain = certificates.load_chain(certificates.sign_csr(csr_pem(fixture.STATION_ID), untrusted=True))
    assert "does not lead" in (certificates.chain_problem(chain, [fixture.cert("csms_root")], fixture.STATION_ID) or "")


def test_bad_pem_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="PEM"):
        certificates.load_chain("not a certificate")


# ---- station handlers -------------------------------------------------------------------------

def test_certificate_signed_rejects_and_reports_an_event() -> None:
    f = front()
    reply = run(certificates._certificate_signed(f, {"certificateChain": fixture.case_variables()["station_expired_chain"]}))
    assert reply.payload["status"] == "Rejected"
    run(reply.after())
    assert f.sim.sent[0][0] == "SecurityEventNotification"
    assert f.sim.sent[0][1]["type"] == "InvalidChargingStationCertificate"


def test_certificate_signed_accepts_a_chain_signed_for_this_station() -> None:
    f = front("1.6")
    chain = certificates.sign_csr(csr_pem(fixture.STATION_ID))
    assert run(certificates._certificate_signed(f, {"certificateChain": chain})).payload == {"status": "Accepted"}


def test_install_list_delete_round_trip() -> None:
    f = front()
    pem, want = fixture.load()["mo_root"]["cert"], fixture.hash_data("mo_root")
    assert run(certificates._install_certificate(f, {"certificateType": "MORootCertificate", "certificate": pem})
               ).payload["status"] == "Accepted"
    listed = run(certificates._get_installed_ids201(f, {"certificateType": ["MORootCertificate"]})).payload
    assert listed["certificateHashDataChain"] == [{"certificateType": "MORootCertificate", "certificateHashData": want}]
    assert run(certificates._delete_certificate(f, {"certificateHashData": want})).payload["status"] == "Accepted"
    assert run(certificates._get_installed_ids201(f, {"certificateType": ["MORootCertificate"]})).payload == {"status": "NotFound"}
    assert run(certificates._delete_certificate(f, {"certificateHashData": want})).payload["status"] == "NotFound"


def test_wrong_hash_fault_changes_only_the_key_hash() -> None:
    good = run(certificates._get_installed_ids16(front("1.6"), {"certificateType": "CentralSystemRootCertificate"})).payload
    bad = run(certificates._get_installed_ids16(front("1.6", "installed_ids_wrong_hash"),
                                                {"certificateType": "CentralSystemRootCertificate"})).payload
    assert good["certificateHashData"] == [fixture.hash_data("csms_root")]
    assert bad["certificateHashData"][0]["issuerKeyHash"] != good["certificateHashData"][0]["issuerKeyHash"]
    assert bad["certificateHashData"][0]["serialNumber"] == good["certificateHashData"][0]["serialNumber"]


def test_expired_root_is_rejected_with_a_csms_certificate_event() -> None:
    f = front()
    reply = run(certificates._install_certificate(f, {"certificateType": "CSMSRootCertificate",
                                                      "certificate": fixture.load()["expired_root"]["cert"]}))
    assert reply.payload["status"] == "Rejected"
    run(reply.after())
    assert f.sim.sent == [("SecurityEventNotification", f.sim.sent[0][1])]
    assert f.sim.sent[0][1]["type"] == "InvalidCsmsCertificate"


def test_csr_is_pem_with_the_station_identity() -> None:
    pem = certificates.make_csr(front())
    csr = x509.load_pem_x509_csr(pem.encode())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == fixture.STATION_ID
    assert "BEGIN" not in certificates.make_csr(front(fault="csr_not_pem"))


# ---- CSMS answers -------------------------------------------------------------------------------

def test_ocsp_answer_for_the_fixture_secc_is_a_signed_good_response() -> None:
    req = fixture.case_variables()["secc_ocsp"]
    der = certificates._ocsp_from_fixture(req)
    assert der is not None
    resp = ocsp.load_der_ocsp_response(der)
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert resp.serial_number == fixture.cert("secc").serial_number


def test_ocsp_for_an_unknown_issuer_is_not_invented() -> None:
    req = {**fixture.case_variables()["secc_ocsp"], "issuerKeyHash": "00" * 32}
    assert certificates._ocsp_from_fixture(req) is None


def test_ev_certificate_answer_checks_the_base64() -> None:
    class Sim:
        def faulty(self, *a: Any) -> bool:
            return False

        def note(self, st: Any, text: str) -> None:
            pass
    good = certificates._ev_certificate(Sim(), None, {"action": "Install", "exiRequest": base64.b64encode(b"x").decode()})
    assert good["status"] == "Accepted" and base64.b64decode(good["exiResponse"])
    assert certificates._ev_certificate(Sim(), None, {"action": "Install", "exiRequest": "not base64!"})["status"] == "Failed"


# ---- security -----------------------------------------------------------------------------------

def test_password_rules() -> None:
    assert security._password_problem("a" * 16) is None
    assert "16-40" in (security._password_problem("short") or "")
    assert security._password_problem("x" * 41) is not None
    assert security._password_problem("with space inside!!") is not None
    assert 16 <= len(security.new_password()) <= 40


def test_password_is_applied_for_the_next_connection_and_never_read_back() -> None:
    f = front()
    item = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
    out = run(security._set_variables(f, {"setVariableData": [{**item, "attributeValue": "N3w-Passw0rd-0123"}]}))
    assert out.payload["setVariableResult"][0]["attributeStatus"] == "Accepted"
    assert f.sim.cfg.password == "N3w-Passw0rd-0123"
    got = run(security._get_variables(f, {"getVariableData": [item]})).payload["getVariableResult"][0]
    assert got["attributeStatus"] == "Rejected" and "attributeValue" not in got


def test_no_downgrade_of_the_security_profile() -> None:
    f = front()          # the fake station runs profile 1
    low = {"configurationSlot": 1, "connectionData": {"securityProfile": 0}}
    assert run(security._set_network_profile(f, low)).payload["status"] == "Rejected"
    assert security._set_priority(f, "0") == "Accepted"
    assert security._set_priority(f, "7") == "Rejected"
    f16 = front("1.6")
    assert run(security._change_configuration(f16, {"key": "SecurityProfile", "value": "0"})).payload["status"] == "Rejected"
    assert run(security._change_configuration(f16, {"key": "SecurityProfile", "value": "2"})).payload["status"] == "Accepted"
