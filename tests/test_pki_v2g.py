"""The ISO 15118 Plug & Charge test PKI: profiles, chains, negative variants with their reasons,
CRLs, the eMAID check digit, the ISO 15118-2 contract key encryption, and the CLI."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from harness.cli import app
from harness.pki import PkiExists
from harness.pki.contract_key import decrypt_contract_key_iso2, installation_res_pieces
from harness.pki.crl import crl_signed_by, revocation_of
from harness.pki.emaid import check_digit, emaid_problem, same_emaid, with_check_digit
from harness.pki.v2g import FLAVOURS, V2GPki, V2GPkiError, load_v2g_pki, make_v2g_pki
from harness.pki.v2g_verify import verify_chain, verify_contract_chain, verify_secc_chain

FLAVOUR_ALGO = {"iso2": ("secp256r1", "sha256"), "iso20-ec": ("secp521r1", "sha512"), "iso20-ed448": ("ed448", None)}


@pytest.fixture(scope="module", params=FLAVOURS)
def pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> V2GPki:
    return make_v2g_pki(tmp_path_factory.mktemp(request.param), request.param)


def _attr(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    return str(cert.subject.get_attributes_for_oid(oid)[0].value)


def _ext(cert: x509.Certificate, cls: type) -> object:
    return cert.extensions.get_extension_for_class(cls).value


# --- profiles -------------------------------------------------------------------------------

def test_algorithms_follow_the_flavour(pki: V2GPki) -> None:
    curve, digest = FLAVOUR_ALGO[pki.flavour]
    for name, cert in pki.certs.items():
        key = cert.public_key()
        if curve == "ed448":
            assert isinstance(key, ed448.Ed448PublicKey), name
            assert cert.signature_hash_algorithm is None
        else:
            assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == curve, name
            assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == digest


def test_chain_shapes_and_profiles(pki: V2GPki) -> None:
    for chain, root in (("secc", "v2g_root"), ("cps", "v2g_root"), ("contract", "mo_root"), ("oem_prov", "oem_root")):
        leaf, inter, r = pki.chain(chain)
        assert r is pki.certs[root] and len(inter) == 2
        sub2, sub1 = inter
        assert _ext(sub1, x509.BasicConstraints) == x509.BasicConstraints(ca=True, path_length=1)
        assert _ext(sub2, x509.BasicConstraints) == x509.BasicConstraints(ca=True, path_length=0)
        assert _ext(r, x509.BasicConstraints) == x509.BasicConstraints(ca=True, path_length=None)
        assert _ext(leaf, x509.BasicConstraints) == x509.BasicConstraints(ca=False, path_length=None)
        for ca in (sub2, sub1, r):
            ku = _ext(ca, x509.KeyUsage)
            assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
            assert ca.extensions.get_extension_for_class(x509.BasicConstraints).critical
            assert _attr(ca, NameOID.DOMAIN_COMPONENT) == "V2G"
        for c in (leaf, sub2, sub1):     # below the root: AIA with the OCSP URL
            aia = _ext(c, x509.AuthorityInformationAccess)
            assert [d.access_location.value for d in aia] == [pki.ocsp_url]
        assert leaf.extensions.get_extension_for_class(x509.KeyUsage).critical
    assert _attr(pki.certs["secc"], NameOID.COMMON_NAME) == pki.evse_id
    assert _attr(pki.certs["secc"], NameOID.DOMAIN_COMPONENT) == "CPO"
    assert _attr(pki.certs["contract"], NameOID.COMMON_NAME) == pki.emaid
    assert _attr(pki.certs["contract"], NameOID.DOMAIN_COMPONENT) == "MO"
    assert _attr(pki.certs["oem_prov"], NameOID.DOMAIN_COMPONENT) == "OEM"
    assert _attr(pki.certs["cps"], NameOID.DOMAIN_COMPONENT) == "CPS"
    ku = _ext(pki.certs["contract"], x509.KeyUsage)
    assert ku.digital_signature and ku.content_commitment and ku.key_agreement and not ku.key_cert_sign
    ku = _ext(pki.certs["secc"], x509.KeyUsage)
    assert ku.digital_signature and ku.key_agreement and not ku.content_commitment


def test_iso2_certificates_fit_800_bytes(pki: V2GPki) -> None:
    if pki.flavour != "iso2":
        pytest.skip("the 800-byte limit is ISO 15118-2's [V2G2-010]")
    for name, cert in pki.certs.items():
        assert len(cert.public_bytes(serialization.Encoding.DER)) <= 800, name


def test_serials_are_unique_positive_and_fit_ocpp(pki: V2GPki) -> None:
    serials = [c.serial_number for c in pki.certs.values()]
    assert len(set(serials)) == len(serials)
    assert all(0 < s and len(format(s, "x")) <= 16 for s in serials)


# --- verification: good chains and every negative variant -----------------------------------

def _contract(pki: V2GPki, chain: str, **kw: object):
    leaf, inter, _ = pki.chain(chain)
    return verify_contract_chain(leaf, inter, pki.trusted_contract_roots, expected_emaid=pki.emaid,
                                 crls=list(pki.crls.values()), flavour=pki.flavour, **kw)


def _secc(pki: V2GPki, chain: str, **kw: object):
    leaf, inter, _ = pki.chain(chain)
    return verify_secc_chain(leaf, inter, [pki.certs["v2g_root"]], expected_evse_id=pki.evse_id,
                             crls=list(pki.crls.values()), flavour=pki.flavour, **kw)


def test_good_chains_verify(pki: V2GPki) -> None:
    v = _contract(pki, "contract")
    assert v.ok and v.status == "Accepted" and len(v.path) == 4
    assert _secc(pki, "secc").ok
    leaf, inter, root = pki.chain("oem_prov")
    assert verify_chain(leaf, inter, [root], label="OEM provisioning certificate", flavour=pki.flavour).ok
    assert not verify_secc_chain(leaf, inter, [pki.certs["v2g_root"]]).ok   # not under the V2G root
    leaf, inter, root = pki.chain("cps")
    assert verify_chain(leaf, inter, [root], flavour=pki.flavour).ok


@pytest.mark.parametrize("chain, status, words", [
    ("contract_expired", "CertificateExpired", "contract certificate 'DECHHC123456786' expired on"),
    ("contract_not_yet_valid", "CertChainError", "is not yet valid (valid from"),
    ("contract_revoked", "CertificateRevoked", "per the CRL of 'MO Sub-CA 2 (test)'"),
    ("contract_foreign_root", "CertChainError", "unknown root"),
    ("contract_wrong_emaid", "CertChainError", "is for eMAID 'DECHHC876543214', expected 'DECHHC123456786'"),
    ("contract_missing_intermediate", "CertChainError", "missing intermediate"),
])
def test_contract_negative_variants(pki: V2GPki, chain: str, status: str, words: str) -> None:
    v = _contract(pki, chain)
    assert not v.ok and v.status == status and words in v.reason, v.reason


@pytest.mark.parametrize("chain, status, words", [
    ("secc_expired", "CertificateExpired", "SECC certificate 'DE*CHH*E0001*1' expired on"),
    ("secc_revoked", "CertificateRevoked", "per the CRL of 'CPO Sub-CA 2 (test)'"),
])
def test_secc_negative_variants(pki: V2GPki, chain: str, status: str, words: str) -> None:
    v = _secc(pki, chain)
    assert not v.ok and v.status == status and words in v.reason, v.reason


def test_revoked_contract_passes_without_crls(pki: V2GPki) -> None:
    leaf, inter, _ = pki.chain("contract_revoked")
    assert verify_contract_chain(leaf, inter, pki.trusted_contract_roots).ok


def test_foreign_root_supplied_as_intermediate_is_still_untrusted(pki: V2GPki) -> None:
    leaf, inter, root = pki.chain("contract_foreign_root")
    v = verify_contract_chain(leaf, [*inter, root], pki.trusted_contract_roots)
    assert not v.ok and "not trusted" in v.reason


def test_time_travel_expires_the_good_contract(pki: V2GPki) -> None:
    leaf, inter, _ = pki.chain("contract")
    later = leaf.not_valid_after_utc + dt.timedelta(seconds=1)
    v = verify_contract_chain(leaf, inter, pki.trusted_contract_roots, at=later)
    assert v.status == "CertificateExpired" and "expired on" in v.reason


def test_forged_signature_is_a_signature_error(pki: V2GPki) -> None:
    # A contract with the right issuer *name* but signed by the foreign Sub-CA 2's key.
    good = pki.certs["contract"]
    forged = (x509.CertificateBuilder().subject_name(good.subject).issuer_name(good.issuer)
              .public_key(good.public_key()).serial_number(7).not_valid_before(good.not_valid_before_utc)
              .not_valid_after(good.not_valid_after_utc))
    for e in good.extensions:
        forged = forged.add_extension(e.value, e.critical)
    from harness.pki.crl import signing_hash
    k = pki.keys["foreign_mo_subca2"]
    forged_cert = forged.sign(k, signing_hash(k))
    _, inter, _ = pki.chain("contract")
    v = verify_contract_chain(forged_cert, inter, pki.trusted_contract_roots)
    assert v.status == "SignatureError" and "does not verify" in v.reason


def test_wrong_flavour_is_reported(pki: V2GPki) -> None:
    other = "iso20-ed448" if pki.flavour != "iso20-ed448" else "iso2"
    leaf, inter, _ = pki.chain("contract")
    v = verify_contract_chain(leaf, inter, pki.trusted_contract_roots, flavour=other)
    assert not v.ok and f"the {other} flavour requires" in v.reason


def test_secc_evse_id_mismatch(pki: V2GPki) -> None:
    leaf, inter, root = pki.chain("secc")
    v = verify_secc_chain(leaf, inter, [root], expected_evse_id="DE*XXX*E9999")
    assert not v.ok and "is not the EVSE id" in v.reason


def test_a_ca_as_leaf_is_refused(pki: V2GPki) -> None:
    v = verify_contract_chain(pki.certs["mo_subca2"], [pki.certs["mo_subca1"]], pki.trusted_contract_roots)
    assert not v.ok and "is a CA certificate" in v.reason


# --- CRLs ------------------------------------------------------------------------------------

def test_crl_per_ca_with_the_revoked_ones(pki: V2GPki) -> None:
    cas = {n for n, c in pki.certs.items() if _ext(c, x509.BasicConstraints).ca}
    assert set(pki.crls) == cas
    for ca, crl in pki.crls.items():
        assert crl_signed_by(crl, pki.certs[ca])
        assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
        listed = {e.serial_number for e in crl}
        assert listed == {pki.certs[n].serial_number for n in pki.revoked[ca]}
    assert pki.revoked["mo_subca2"] == ["contract_revoked"] and pki.revoked["cpo_subca2"] == ["secc_revoked"]
    entry = revocation_of(pki.certs["contract_revoked"], pki.certs["mo_subca2"], list(pki.crls.values()))
    assert entry is not None and entry.extensions.get_extension_for_class(x509.CRLReason).value.reason \
        == x509.ReasonFlags.key_compromise
    # a CRL signed by someone else does not count
    assert revocation_of(pki.certs["contract_revoked"], pki.certs["mo_subca2"], [pki.crls["mo_subca1"]]) is None


# --- files, manifest, idempotency --------------------------------------------------------------

def test_files_and_manifest(pki: V2GPki) -> None:
    m = json.loads(pki.manifest_path.read_text())
    assert m["flavour"] == pki.flavour and m["emaid"] == pki.emaid and m["evse_id"] == pki.evse_id
    assert m["ocsp_url"] == pki.ocsp_url
    for name, e in m["certificates"].items():
        pem, der, key = (pki.dir / e[k] for k in ("pem", "der", "key"))
        assert x509.load_der_x509_certificate(der.read_bytes()) == x509.load_pem_x509_certificate(pem.read_bytes())
        assert e["serial"] == format(pki.certs[name].serial_number, "x")
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")   # PKCS#8
    chain_pem = (pki.dir / m["chains"]["contract"]["pem"]).read_bytes()
    assert [c.serial_number for c in x509.load_pem_x509_certificates(chain_pem)] == \
        [pki.certs[n].serial_number for n in ("contract", "mo_subca2", "mo_subca1")]
    assert (pki.dir / m["crls"]["mo_subca2"]["der"]).exists()


def test_load_roundtrip(pki: V2GPki) -> None:
    again = load_v2g_pki(pki.dir)
    assert again.certs == pki.certs and again.chains == pki.chains and again.revoked == pki.revoked
    assert all(again.keys[n].public_key() == pki.keys[n].public_key() for n in pki.keys)


def test_idempotent_and_force_renews(tmp_path: Path) -> None:
    a = make_v2g_pki(tmp_path, "iso2")
    b = make_v2g_pki(tmp_path, "iso2")
    assert b.certs["contract"].serial_number == a.certs["contract"].serial_number
    with pytest.raises(PkiExists, match="flavour='iso2'"):
        make_v2g_pki(tmp_path, "iso20-ec")
    c = make_v2g_pki(tmp_path, "iso2", force=True)
    assert c.certs["contract"].serial_number != a.certs["contract"].serial_number


def test_bad_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(V2GPkiError, match="unknown flavour"):
        make_v2g_pki(tmp_path, "iso3")
    with pytest.raises(V2GPkiError, match="check digit"):
        make_v2g_pki(tmp_path, emaid="DECHHC123456780")
    with pytest.raises(V2GPkiError, match="not an eMAID"):
        make_v2g_pki(tmp_path, emaid="hello")


# --- eMAID -------------------------------------------------------------------------------------

def test_emaid_check_digit_published_vectors() -> None:
    vectors = ["NN123ABCDEFGHI", "FRXYZ123456789", "ITA1B2C3E4F5G6", "ESZU8WOX834H1D", "PT73902837ABCZ",
               "DE83DUIEN83QGZ", "DE83DUIEN83ZGQ", "DE8AA001234567"]
    assert "".join(check_digit(v) for v in vectors) == "T24RZDM0"
    assert with_check_digit("de-83d-uien83qgz") == "DE83DUIEN83QGZD"


def test_emaid_format() -> None:
    assert emaid_problem("DE-83D-UIEN83QGZ-D") is None
    assert emaid_problem("DE83DUIEN83QGZ") is None                 # check digit optional
    assert "expected 'D'" in (emaid_problem("DE83DUIEN83QGZE") or "")
    assert emaid_problem("D183DUIEN83QGZ") is not None
    assert same_emaid("de-83d-uien83qgz", "DE83DUIEN83QGZD") and not same_emaid("DE83DUIEN83QGZ", "DE83DUIEN83QGA")


# --- ISO 15118-2 contract key encryption -------------------------------------------------------

def test_installation_res_pieces_roundtrip(pki: V2GPki) -> None:
    if pki.flavour != "iso2":
        with pytest.raises(NotImplementedError, match="ISO 15118-2"):
            installation_res_pieces(pki)
        return
    p = installation_res_pieces(pki)
    assert len(p.encrypted_private_key) == 48 and len(p.dh_public_key) == 65 and p.dh_public_key[0] == 4
    recovered = decrypt_contract_key_iso2(p.encrypted_private_key, p.dh_public_key, pki.keys["oem_prov"])
    assert recovered.private_numbers() == p.contract_key.private_numbers()
    leaf = p.contract_chain[0]
    assert leaf.public_key() == p.contract_key.public_key()
    assert verify_contract_chain(leaf, p.contract_chain[1:], pki.trusted_contract_roots,
                                 expected_emaid=pki.emaid, flavour="iso2").ok
    cps = p.sa_provisioning_chain
    assert verify_chain(cps[0], cps[1:], [pki.certs["v2g_root"]]).ok
    wrong = ec.generate_private_key(ec.SECP256R1())   # another EV cannot recover the key
    assert decrypt_contract_key_iso2(p.encrypted_private_key, p.dh_public_key, wrong).private_numbers() \
        != p.contract_key.private_numbers()


def test_concat_kdf_hand_computation() -> None:
    # ConcatKDF with one SHA-256 round: key = SHA256(00000001 ‖ Z ‖ 01 'U' 'V')[:16]
    import hashlib
    from harness.pki.contract_key import _session_key
    z = bytes(range(32))
    assert _session_key(z) == hashlib.sha256(b"\x00\x00\x00\x01" + z + b"\x01UV").digest()[:16]


# --- CLI ---------------------------------------------------------------------------------------

def test_cli_writes_and_keeps(tmp_path: Path) -> None:
    out = tmp_path / "v2g"
    r = CliRunner().invoke(app, ["pki", "v2g", "--out", str(out), "--flavour", "iso20-ec",
                                 "--ocsp-url", "http://127.0.0.1:9/ocsp"])
    assert r.exit_code == 0, r.output
    assert "written to" in r.output and (out / "manifest.json").exists() and (out / "contract-chain.pem").exists()
    assert load_v2g_pki(out).ocsp_url == "http://127.0.0.1:9/ocsp"
    r = CliRunner().invoke(app, ["pki", "v2g", "--out", str(out), "--flavour", "iso20-ec",
                                 "--ocsp-url", "http://127.0.0.1:9/ocsp"])
    assert r.exit_code == 0 and "unchanged" in r.output
    r = CliRunner().invoke(app, ["pki", "v2g", "--out", str(out)])
    assert r.exit_code == 2 and "--force" in r.output
    r = CliRunner().invoke(app, ["pki", "v2g", "--out", str(out), "--force"])
    assert r.exit_code == 0 and load_v2g_pki(out).flavour == "iso2"
