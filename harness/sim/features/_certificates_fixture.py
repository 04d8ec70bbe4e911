"""The fixed test PKI of the certificate-management cases (blocks A and M, 1.6 security).

Test cases are data: a case that installs, lists or deletes a certificate must name the exact
PEM and hash data it expects on the wire, so these certificates are generated once and
committed (`certificates_fixture.json` beside this module, `testcases/_common/test_pki.yaml`
for the cases). Both simulators read the same file: the station simulator trusts `csms_root`
out of the box, the CSMS simulator signs CSRs with `csms_subca` (chain = leaf + sub-CA).

The private keys here are TEST keys, public on purpose; nothing outside the simulators trusts
these roots. Regenerate with `python -m harness.sim.features._certificates_fixture` (then
commit both files): every id, PEM and hash in the cases changes with it. `--fragment-only`
rewrites the case fragment from the committed JSON.

Validity: the good certificates run 2025-01-01 … 2045-01-01; `*_expired` ended in 2021.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness.pki.ocsp import certificate_hash_data

FIXTURE = Path(__file__).with_name("certificates_fixture.json")
FRAGMENT = Path(__file__).resolve().parents[3] / "testcases" / "_common" / "test_pki.yaml"

STATION_ID = "CH-SIM-001"          # the built-in station simulator's identity (harness.dut.builtin)
HARNESS_STATION_ID = "CH-HARNESS-001"  # the harness's identity when it plays the station
OPERATOR = "ChargerHarness Test CSO"
OCSP_URL = "http://127.0.0.1:9/ocsp"  # discard port: nothing answers; the CSMS simulator answers itself

_GOOD = (dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2045, 1, 1, tzinfo=dt.timezone.utc))
_EXPIRED = (dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc))


def _name(cn: str, org: str = OPERATOR) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])


def _issue(cn: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
           *, ca: bool, period: tuple[dt.datetime, dt.datetime] = _GOOD, org: str = OPERATOR,
           ocsp_url: str | None = None) -> x509.Certificate:
    subject = _name(cn, org)
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(period[0]).not_valid_after(period[1])
         .add_extension(x509.BasicConstraints(ca=ca, path_length=1 if ca else None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=not ca, key_cert_sign=ca, crl_sign=ca,
                                      encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if ocsp_url:
        b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(obj: Any) -> str:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    if isinstance(obj, x509.CertificateSigningRequest):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def generate() -> dict[str, dict[str, str]]:
    """A fresh fixture PKI: name → {cert, key?} (PEM); "harness_csr" → {csr, key}."""
    k = {n: ec.generate_private_key(ec.SECP256R1()) for n in (
        "csms_root", "csms_subca", "untrusted_root", "v2g_root", "mo_root", "manufacturer_root", "expired_root",
        "station_other_identity", "station_expired", "station_untrusted", "secc", "harness")}
    c: dict[str, x509.Certificate] = {}
    c["csms_root"] = _issue("ChargerHarness fixture CSMS root", k["csms_root"], None, ca=True)
    c["csms_subca"] = _issue("ChargerHarness fixture CSMS sub-CA", k["csms_subca"], (c["csms_root"], k["csms_root"]), ca=True)
    c["untrusted_root"] = _issue("Untrusted fixture root", k["untrusted_root"], None, ca=True, org="Nobody Trusts Me")
    c["v2g_root"] = _issue("ChargerHarness fixture V2G root", k["v2g_root"], None, ca=True)
    c["mo_root"] = _issue("ChargerHarness fixture MO root", k["mo_root"], None, ca=True, org="ChargerHarness Test eMSP")
    c["manufacturer_root"] = _issue("ChargerHarness fixture manufacturer root", k["manufacturer_root"], None, ca=True,
                                    org="ChargerHarness Test OEM")
    c["expired_root"] = _issue("ChargerHarness fixture expired root", k["expired_root"], None, ca=True, period=_EXPIRED)
    sub = (c["csms_subca"], k["csms_subca"])
    c["station_other_identity"] = _issue("OTHER-STATION-999", k["station_other_identity"], sub, ca=False)
    c["station_expired"] = _issue(STATION_ID, k["station_expired"], sub, ca=False, period=_EXPIRED)
    c["station_untrusted"] = _issue(STATION_ID, k["station_untrusted"], (c["untrusted_root"], k["untrusted_root"]), ca=False)
    c["secc"] = _issue(f"{STATION_ID} SECC", k["secc"], (c["v2g_root"], k["v2g_root"]), ca=False, ocsp_url=OCSP_URL)
    out: dict[str, dict[str, str]] = {}
    for name, cert in c.items():
        entry = {"cert": _pem(cert)}
        if name in ("csms_root", "csms_subca", "untrusted_root", "v2g_root"):
            entry["key"] = _pem(k[name])     # the CAs a simulator signs with (CSRs, OCSP answers)
        out[name] = entry
    csr = (x509.CertificateSigningRequestBuilder().subject_name(_name(HARNESS_STATION_ID))
           .sign(k["harness"], hashes.SHA256()))
    out["harness_csr"] = {"csr": _pem(csr), "key": _pem(k["harness"])}
    return out


@lru_cache(maxsize=1)
def load() -> dict[str, dict[str, str]]:
    return json.loads(FIXTURE.read_text())


def cert(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(load()[name]["cert"].encode())


def key(name: str) -> ec.EllipticCurvePrivateKey:
    pem = load()[name].get("key")
    if pem is None:
        raise KeyError(f"the fixture keeps no private key for {name!r}")
    return serialization.load_pem_private_key(pem.encode(), password=None)   # type: ignore[return-value]


def certificate_names() -> list[str]:
    return [n for n, entry in load().items() if "cert" in entry]


def issuer_of(name: str) -> x509.Certificate:
    """The fixture certificate that issued `name` (a root is its own issuer)."""
    c = cert(name)
    if c.issuer == c.subject:
        return c
    return next(cert(n) for n in certificate_names() if cert(n).subject == c.issuer)


def hash_data(name: str) -> dict[str, str]:
    """CertificateHashDataType of a fixture certificate (roots are their own issuer)."""
    return certificate_hash_data(cert(name), issuer_of(name))


def case_variables() -> dict[str, Any]:
    """What testcases/_common/test_pki.yaml sets: PEMs, chains and hash data by name."""
    data = load()
    v: dict[str, Any] = {}
    for name, entry in data.items():
        if "cert" in entry:
            v[f"{name}_pem"] = entry["cert"]
            v[f"{name}_hash"] = hash_data(name)
    sub = data["csms_subca"]["cert"]
    for leaf in ("station_other_identity", "station_expired"):
        v[f"{leaf}_chain"] = data[leaf]["cert"] + sub
    v["station_untrusted_chain"] = data["station_untrusted"]["cert"] + data["untrusted_root"]["cert"]
    v["harness_csr"] = data["harness_csr"]["csr"]
    v["csms_subca_key"] = data["csms_subca"]["key"]      # the harness-as-CSMS signs station CSRs with it (sign_csr)
    v["secc_ocsp"] = {**hash_data("secc"), "responderURL": OCSP_URL}
    # Regular expressions ($regex) for what a peer generates at run time: any PEM CSR / chain,
    # and a chain (leaf first) issued under the fixture CSMS sub-CA, i.e. one the station trusts.
    b64 = r"[A-Za-z0-9+/=\r\n]+"
    pem_cert = rf"-----BEGIN CERTIFICATE-----\r?\n{b64}-----END CERTIFICATE-----\r?\n?"
    v["pem_csr_regex"] = rf"\s*-----BEGIN CERTIFICATE REQUEST-----\r?\n{b64}-----END CERTIFICATE REQUEST-----\s*"
    v["pem_chain_regex"] = rf"\s*(?:{pem_cert}\s*)+"
    v["chain_from_csms_subca_regex"] = rf"\s*{pem_cert}\s*{re.escape(sub)}\s*"
    v["chain_from_v2g_root_regex"] = rf"\s*{pem_cert}\s*{re.escape(data['v2g_root']['cert'])}\s*"
    return v


def _write_fragment() -> None:
    import yaml   # PyYAML: a dev-time dependency of the harness already

    head = ("# Generated by `python -m harness.sim.features._certificates_fixture` — do not edit by hand.\n"
            "# The fixed test PKI of the certificate-management cases (see that module): PEMs (<name>_pem),\n"
            "# leaf+sub-CA chains (<name>_chain), CertificateHashDataType (<name>_hash), the harness's CSR.\n")
    class _Dumper(yaml.SafeDumper):
        pass

    def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None     # PEMs as literal blocks, readable in the file
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _text)
    body = {"steps": [{"name": "the fixture test PKI (certificates, hash data)", "set": case_variables()}]}
    FRAGMENT.write_text(head + yaml.dump(body, Dumper=_Dumper, sort_keys=False, width=200))


if __name__ == "__main__":
    import sys

    if "--fragment-only" not in sys.argv:      # new keys and certificates: every case value changes
        FIXTURE.write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")
        load.cache_clear()
    _write_fragment()
    print(f"wrote {FIXTURE} and {FRAGMENT}")
