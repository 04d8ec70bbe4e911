"""OCSP over real HTTP on 127.0.0.1 for the V2G PKI (all flavours), and the OCPP 2.0.1 hash data
checked against a hand computation and the official JSON schemas."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import subprocess
import urllib.error
import urllib.request
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from harness.ocpp.schemas import validate
from harness.pki.crl import signing_hash
from harness.pki.ocsp import (MAX_BODY, OcspError, OcspResponder, certificate_hash_data,
                              iso15118_certificate_hash_data, ocsp_request_data, ocsp_status, serial_hex)
from harness.pki.v2g import FLAVOURS, V2GPki, issue_contract_certificate, make_v2g_pki


@pytest.fixture(scope="module", params=FLAVOURS)
def pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> V2GPki:
    return make_v2g_pki(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture(scope="module")
def responder(pki: V2GPki) -> Iterator[OcspResponder]:
    with OcspResponder.for_pki(pki, request_timeout=2.0) as r:
        yield r


def _status(pki: V2GPki, responder: OcspResponder, name: str, **kw: object) -> str:
    return ocsp_status(pki.certs[name], pki.issuer_of(name), responder.url, timeout=3.0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("name, expected", [("contract", "good"), ("contract_revoked", "revoked"),
                                            ("secc", "good"), ("secc_revoked", "revoked"),
                                            ("cps", "good"), ("oem_prov", "good"), ("mo_subca2", "good")])
def test_good_and_revoked(pki: V2GPki, responder: OcspResponder, name: str, expected: str, method: str) -> None:
    assert _status(pki, responder, name, method=method) == expected


@pytest.mark.parametrize("algo", ["SHA256", "SHA384", "SHA512"])
def test_every_ocpp_hash_algorithm(pki: V2GPki, responder: OcspResponder, algo: str) -> None:
    assert _status(pki, responder, "contract_revoked", hash_algorithm=algo) == "revoked"


def test_unknown_serial_of_a_served_ca(pki: V2GPki, responder: OcspResponder) -> None:
    _, fresh = issue_contract_certificate(pki)      # issued after the responder learnt the CA's certificates
    assert ocsp_status(fresh, pki.certs["mo_subca2"], responder.url, timeout=3.0) == "unknown"


def test_runtime_revocation(pki: V2GPki) -> None:
    with OcspResponder.for_pki(pki) as r:
        _, fresh = issue_contract_certificate(pki)
        r.revoke(pki.certs["mo_subca2"], fresh.serial_number)
        assert ocsp_status(fresh, pki.certs["mo_subca2"], r.url, timeout=3.0) == "revoked"
        assert r.log[-1] == ("OCSP", serial_hex(fresh), "revoked")


def test_issuer_not_served_is_unauthorized(pki: V2GPki) -> None:
    with OcspResponder() as r:
        r.add_authority(pki.certs["mo_subca2"], pki.keys["mo_subca2"], [pki.certs["contract"]])
        assert ocsp_status(pki.certs["contract"], pki.certs["mo_subca2"], r.url, timeout=3.0) == "good"
        with pytest.raises(OcspError, match="UNAUTHORIZED"):
            ocsp_status(pki.certs["secc"], pki.certs["cpo_subca2"], r.url, timeout=3.0)


def test_response_is_ca_signed_with_nonce_and_validity(pki: V2GPki, responder: OcspResponder) -> None:
    req = (ocsp.OCSPRequestBuilder().add_certificate(pki.certs["contract"], pki.certs["mo_subca2"], hashes.SHA256())
           .add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False).build())
    http = urllib.request.Request(responder.url, data=req.public_bytes(serialization.Encoding.DER),
                                  headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(http, timeout=3.0) as r:
        assert r.headers["Content-Type"] == "application/ocsp-response"
        resp = ocsp.load_der_ocsp_response(r.read())
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert resp.responder_key_hash == hashlib.sha1(
        pki.certs["mo_subca2"].public_key().public_bytes(serialization.Encoding.X962,
                                                         serialization.PublicFormat.UncompressedPoint)
        if pki.flavour != "iso20-ed448" else
        pki.certs["mo_subca2"].public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)).digest()
    assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"0123456789abcdef"
    assert resp.this_update_utc <= dt.datetime.now(dt.timezone.utc) < resp.next_update_utc  # type: ignore[operator]


def test_revoked_answer_carries_the_crl_time_and_reason(pki: V2GPki, responder: OcspResponder) -> None:
    req = ocsp.OCSPRequestBuilder().add_certificate(pki.certs["secc_revoked"], pki.certs["cpo_subca2"],
                                                    hashes.SHA256()).build()
    resp = ocsp.load_der_ocsp_response(responder.respond(req.public_bytes(serialization.Encoding.DER)))
    crl_entry = pki.crls["cpo_subca2"].get_revoked_certificate_by_serial_number(pki.certs["secc_revoked"].serial_number)
    assert crl_entry is not None
    assert resp.revocation_time_utc == crl_entry.revocation_date_utc
    assert resp.revocation_reason == x509.ReasonFlags.key_compromise


def test_bad_requests(responder: OcspResponder) -> None:
    resp = ocsp.load_der_ocsp_response(responder.respond(b"not DER"))
    assert resp.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(responder.url, data=b"x" * (MAX_BODY + 1)), timeout=3.0)
    assert e.value.code == 413
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(responder.url.replace("/ocsp", "/elsewhere"), timeout=3.0)
    assert e.value.code == 404


class _ForeignSigner(OcspResponder):
    """Answers "good" for anything, signed by a key the issuer never authorised."""

    def __init__(self, signer: x509.Certificate, key: object) -> None:
        super().__init__()
        self.signer, self.key = signer, key

    def respond(self, der_request: bytes) -> bytes:
        req = ocsp.load_der_ocsp_request(der_request)
        now = dt.datetime.now(dt.timezone.utc)
        b = (ocsp.OCSPResponseBuilder().add_response_by_hash(
            req.issuer_name_hash, req.issuer_key_hash, req.serial_number, hashes.SHA256(),
            ocsp.OCSPCertStatus.GOOD, now, now + dt.timedelta(hours=1), None, None)
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.signer).certificates([self.signer]))
        return b.sign(self.key, signing_hash(self.key)).public_bytes(serialization.Encoding.DER)  # type: ignore[arg-type]


def test_forged_response_is_refused(pki: V2GPki) -> None:
    with _ForeignSigner(pki.certs["foreign_mo_subca2"], pki.keys["foreign_mo_subca2"]) as r:
        with pytest.raises(OcspError, match="signed neither by the issuer"):
            ocsp_status(pki.certs["contract_revoked"], pki.certs["mo_subca2"], r.url, timeout=3.0)


def test_responder_failure_is_an_internal_error(pki: V2GPki) -> None:
    with OcspResponder() as r:    # wrong key for the CA: the responder cannot sign, answers internalError
        r.add_authority(pki.certs["mo_subca2"], pki.keys["foreign_mo_subca2"], [pki.certs["contract"]])
        with pytest.raises(OcspError, match="INTERNAL_ERROR"):
            ocsp_status(pki.certs["contract"], pki.certs["mo_subca2"], r.url, timeout=3.0)
        assert r.log[-1][2].startswith("internal error")


def test_stopped_responder_is_an_error(pki: V2GPki) -> None:
    r = OcspResponder.for_pki(pki).start()
    url = r.url
    r.stop()
    with pytest.raises(OcspError, match="failed"):
        ocsp_status(pki.certs["contract"], pki.certs["mo_subca2"], url, timeout=2.0)


def test_aia_url_is_the_default(pki: V2GPki, tmp_path_factory: pytest.TempPathFactory) -> None:
    with OcspResponder.for_pki(pki) as r:
        own = make_v2g_pki(tmp_path_factory.mktemp("aia"), pki.flavour, ocsp_url=r.url)
        with OcspResponder.for_pki(own) as r2:
            assert own.ocsp_url != r2.url     # a different port: the AIA URL is what the client uses
        with pytest.raises(OcspError):       # r2 is gone, the AIA URL points at r (which does not know own's CAs)
            ocsp_status(own.certs["contract"], own.certs["mo_subca2"], timeout=3.0)


# --- OCPP 2.0.1 hash data ------------------------------------------------------------------------

def _der_tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at `at` — enough ASN.1 for an SPKI."""
    tag, length, i = data[at], data[at + 1], at + 2
    if length & 0x80:
        n = length & 0x7F
        length, i = int.from_bytes(data[i:i + n], "big"), i + n
    return tag, i, i + length


def _hand_key_bits(issuer: x509.Certificate) -> bytes:
    spki = issuer.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    tag, start, _ = _der_tlv(spki, 0)            # SubjectPublicKeyInfo SEQUENCE
    assert tag == 0x30
    tag, _, alg_end = _der_tlv(spki, start)      # AlgorithmIdentifier
    tag, bits_start, bits_end = _der_tlv(spki, alg_end)
    assert tag == 0x03 and spki[bits_start] == 0  # BIT STRING, no unused bits
    return spki[bits_start + 1:bits_end]


def test_hash_data_matches_a_hand_computation(pki: V2GPki) -> None:
    cert, issuer = pki.certs["contract"], pki.certs["mo_subca2"]
    d = certificate_hash_data(cert, issuer)
    assert d == {"hashAlgorithm": "SHA256",
                 "issuerNameHash": hashlib.sha256(issuer.subject.public_bytes()).hexdigest(),
                 "issuerKeyHash": hashlib.sha256(_hand_key_bits(issuer)).hexdigest(),
                 "serialNumber": hex(cert.serial_number)[2:]}
    # the same values as cryptography's own RFC 6960 CertID
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    assert (req.issuer_name_hash.hex(), req.issuer_key_hash.hex()) == (d["issuerNameHash"], d["issuerKeyHash"])
    d512 = certificate_hash_data(cert, issuer, "SHA512")
    assert d512["issuerKeyHash"] == hashlib.sha512(_hand_key_bits(issuer)).hexdigest()


def test_serial_without_leading_zeroes(pki: V2GPki) -> None:
    k = pki.keys["mo_subca2"]
    c = (x509.CertificateBuilder().subject_name(pki.certs["contract"].subject).issuer_name(pki.certs["mo_subca2"].subject)
         .public_key(pki.keys["contract"].public_key()).serial_number(0x0ABC)
         .not_valid_before(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
         .not_valid_after(dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)).sign(k, signing_hash(k)))
    assert certificate_hash_data(c, pki.certs["mo_subca2"])["serialNumber"] == "abc"


def test_root_hash_data_uses_itself_as_issuer(pki: V2GPki) -> None:
    root = pki.certs["v2g_root"]
    d = certificate_hash_data(root, root)
    assert d["issuerNameHash"] == hashlib.sha256(root.subject.public_bytes()).hexdigest()
    with pytest.raises(ValueError, match="is not the issuer"):
        certificate_hash_data(pki.certs["contract"], root)


def test_payloads_are_schema_valid(pki: V2GPki) -> None:
    leaf, inter, root = pki.chain("contract")
    hash_data = iso15118_certificate_hash_data([leaf, *inter, root])
    assert [h["serialNumber"] for h in hash_data] == [serial_hex(c) for c in (leaf, *inter)]
    assert all(h["responderURL"] == pki.ocsp_url for h in hash_data)
    authorize = {"idToken": {"idToken": pki.emaid, "type": "eMAID"},
                 "certificate": b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, *inter)).decode(),
                 "iso15118CertificateHashData": hash_data}
    assert validate("2.0.1", "Authorize", "request", authorize) is None
    status = {"ocspRequestData": ocsp_request_data(leaf, inter[0])}
    assert validate("2.0.1", "GetCertificateStatus", "request", status) is None
    delete = {"certificateHashData": certificate_hash_data(pki.certs["v2g_root"], pki.certs["v2g_root"], "SHA512")}
    assert validate("2.0.1", "DeleteCertificate", "request", delete) is None
    installed = {"status": "Accepted", "certificateHashDataChain": [
        {"certificateType": "V2GRootCertificate", "certificateHashData": delete["certificateHashData"]}]}
    assert validate("2.0.1", "GetInstalledCertificateIds", "response", installed) is None


# --- an independent client --------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_openssl_agrees(pki: V2GPki, responder: OcspResponder) -> None:
    if pki.flavour == "iso20-ed448":
        pytest.skip("openssl ocsp's -VAfile check is exercised with the EC flavours")
    for name, word in (("contract", "good"), ("contract_revoked", "revoked")):
        out = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(pki.cert_paths["mo_subca2"]), "-cert", str(pki.cert_paths[name]),
             "-url", responder.url, "-VAfile", str(pki.cert_paths["mo_subca2"]), "-timeout", "5"],
            capture_output=True, text=True, timeout=15)
        assert "Response verify OK" in out.stderr + out.stdout, out.stderr
        assert f"{pki.cert_paths[name]}: {word}" in out.stdout


def test_ipv6_loopback(pki: V2GPki) -> None:
    try:
        r = OcspResponder.for_pki(pki, host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert r.url.startswith("http://[::1]:")
        assert ocsp_status(pki.certs["secc_revoked"], pki.certs["cpo_subca2"], r.url, timeout=3.0) == "revoked"
    finally:
        r.stop()


def test_only_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        OcspResponder(host="0.0.0.0")
