"""The ISO 15118 Plug & Charge test PKI (`charger-harness pki v2g`, `make_v2g_pki`).

Four chains, each root → Sub-CA 1 → Sub-CA 2 → leaf (ISO 15118-2 [V2G2-009]: at most two Sub-CAs):

    V2G root ─ CPO Sub-CA 1 ─ CPO Sub-CA 2 ─ SECC leaf        (TLS server cert of the charger)
             └ CPS Sub-CA 1 ─ CPS Sub-CA 2 ─ CPS leaf         (signs CertificateInstallationRes)
    MO root  ─ MO Sub-CA 1  ─ MO Sub-CA 2  ─ contract leaf    (CN = eMAID)
    OEM root ─ OEM Sub-CA 1 ─ OEM Sub-CA 2 ─ OEM provisioning leaf (CN = PCID)

Certificate profiles, after ISO 15118-2:2014 Annex F (as published by the V2G PKI operators' CPs
and the RISE V2G / Josev test scripts; the ISO text itself was not available here):
- subject DN: CN, O, C and DC. DC marks the role: "V2G" on every CA, "CPO" on the SECC leaf,
  "MO" on the contract leaf, "OEM" on the provisioning leaf, "CPS" on the CPS leaf;
- SECC leaf CN = the EVSE / SECC id; contract leaf CN = the eMAID; OEM provisioning leaf CN = PCID;
- BasicConstraints critical: roots CA (no pathLen), Sub-CA 1 pathLen 1, Sub-CA 2 pathLen 0,
  leaves CA:false; KeyUsage critical: CAs keyCertSign+cRLSign; SECC and OEM provisioning
  digitalSignature+keyAgreement; contract digitalSignature+nonRepudiation+keyAgreement; CPS
  digitalSignature; SubjectKeyIdentifier everywhere, AuthorityKeyIdentifier below the roots;
- AuthorityInformationAccess with the OCSP responder URL on every non-root certificate
  (what OCSP stapling in the TLS handshake and OCPP 2.0.1 GetCertificateStatus / Authorize
  iso15118CertificateHashData.responderURL rely on);
- validity (typical V2G CP values): roots 10 y, Sub-CA 1 4 y, Sub-CA 2 2 y (CPO 1 y), SECC leaf
  90 d (ISO: 2–3 months), contract 2 y (ISO: 4 weeks–2 years), OEM provisioning 4 y, CPS leaf 90 d;
- serials: 63-bit random positive integers (≤ 16 hex digits; OCPP serialNumber is ≤ 40).

Flavours: "iso2" ECDSA secp256r1 + SHA-256 (ISO 15118-2 [V2G2-006/007]); "iso20-ec" ECDSA
secp521r1 + SHA-512 and "iso20-ed448" Ed448 (the two ISO 15118-20 options).

Negative variants (all under the same CAs unless said): contract_expired, contract_not_yet_valid,
contract_revoked (in MO Sub-CA 2's CRL and "revoked" from the OCSP responder), contract_wrong_emaid,
contract_foreign_root (a complete chain under an MO root nobody trusts), secc_expired, secc_revoked
(in CPO Sub-CA 2's CRL / OCSP), and the chain "contract_missing_intermediate" (Sub-CA 1 left out).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from . import PkiExists
from .crl import Revocation, make_crl, signing_hash
from .emaid import emaid_problem, with_check_digit
from .v2g_verify import Verdict, verify_chain, verify_contract_chain, verify_secc_chain

__all__ = ["FLAVOURS", "Flavour", "V2GPki", "V2GPkiError", "make_v2g_pki", "load_v2g_pki", "issue_contract_certificate",
           "new_key", "Verdict", "verify_chain", "verify_contract_chain", "verify_secc_chain",
           "DEFAULT_EMAID", "DEFAULT_EVSE_ID", "DEFAULT_PCID", "DEFAULT_OCSP_URL", "WRONG_EMAID"]

Flavour = Literal["iso2", "iso20-ec", "iso20-ed448"]
FLAVOURS: tuple[str, ...] = ("iso2", "iso20-ec", "iso20-ed448")
V2GKey = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey

DEFAULT_EMAID = with_check_digit("DE-CHH-C12345678")     # DECHHC123456786
WRONG_EMAID = with_check_digit("DE-CHH-C87654321")       # a valid eMAID, just not the expected one
DEFAULT_EVSE_ID = "DE*CHH*E0001*1"
DEFAULT_PCID = "WMICHH0000000001A"                        # 17-18 alphanumerics (OEM provisioning id)
DEFAULT_OCSP_URL = "http://127.0.0.1:18615/ocsp"         # placeholder: the responder binds where you say
MANIFEST = "manifest.json"
DAY = dt.timedelta(days=1)


class V2GPkiError(ValueError):
    """Bad input to the V2G PKI generator (flavour, eMAID, ...), or an unreadable manifest."""


@dataclass(frozen=True)
class _Spec:
    """One certificate to issue: who signs it and with which profile."""
    name: str
    cn: str
    dc: str
    issuer: str | None          # name of the issuing certificate, None = self-signed root
    role: Literal["root", "subca1", "subca2", "secc", "contract", "oem_prov", "cps"]
    days: int
    org: str
    offset: tuple[int, int] | None = None   # (not_before, not_after) in days from now, overriding `days`


@dataclass
class V2GPki:
    """A generated (or loaded) V2G PKI: where each file is, and the objects themselves.

    certs/keys/cert_paths/key_paths are keyed by certificate name ("v2g_root", "secc", "contract",
    "contract_expired", ...); crls/crl_paths by the issuing CA's name; chains by chain name with
    {"leaf": name, "intermediates": [names, leaf side first], "root": name}."""
    dir: Path
    flavour: str
    emaid: str
    evse_id: str
    pcid: str
    ocsp_url: str
    manifest_path: Path
    certs: dict[str, x509.Certificate] = field(default_factory=dict)
    keys: dict[str, V2GKey] = field(default_factory=dict)
    crls: dict[str, x509.CertificateRevocationList] = field(default_factory=dict)
    cert_paths: dict[str, Path] = field(default_factory=dict)
    key_paths: dict[str, Path] = field(default_factory=dict)
    crl_paths: dict[str, Path] = field(default_factory=dict)
    chain_paths: dict[str, Path] = field(default_factory=dict)
    chains: dict[str, dict] = field(default_factory=dict)
    revoked: dict[str, list[str]] = field(default_factory=dict)   # CA name -> names of revoked certs

    def chain(self, name: str) -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate]:
        """(leaf, intermediates leaf side first, root) of a named chain, ready for the verifiers."""
        c = self.chains[name]
        return self.certs[c["leaf"]], [self.certs[n] for n in c["intermediates"]], self.certs[c["root"]]

    @property
    def trusted_contract_roots(self) -> list[x509.Certificate]:
        """What a SECC/CSMS trusts for contracts: the MO root and the V2G root (never the foreign root)."""
        return [self.certs["mo_root"], self.certs["v2g_root"]]

    def issuer_of(self, name: str) -> x509.Certificate:
        """The issuing certificate of certificate `name` (a root is its own issuer)."""
        cert = self.certs[name]
        for other in self.certs.values():
            if other.subject == cert.issuer and _key_id(other) == _aki(cert):
                return other
        raise KeyError(f"issuer of {name} not in this PKI")


def _key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _aki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return _key_id(cert)          # a root without AKI: its own SKI


def new_key(flavour: str) -> V2GKey:
    """A fresh private key of the flavour's algorithm."""
    if flavour == "iso2":
        return ec.generate_private_key(ec.SECP256R1())
    if flavour == "iso20-ec":
        return ec.generate_private_key(ec.SECP521R1())
    if flavour == "iso20-ed448":
        return ed448.Ed448PrivateKey.generate()
    raise V2GPkiError(f"unknown flavour {flavour!r} (choose one of {', '.join(FLAVOURS)})")


def _name(cn: str, org: str, dc: str, country: str = "DE") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COUNTRY_NAME, country),
                      x509.NameAttribute(NameOID.DOMAIN_COMPONENT, dc)])


def _key_usage(role: str) -> x509.KeyUsage:
    ca = role in ("root", "subca1", "subca2")
    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=role == "contract", key_encipherment=False,
        data_encipherment=False, key_agreement=role in ("secc", "contract", "oem_prov"),
        key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)


def _serial() -> int:
    return secrets.randbits(63) | (1 << 56)     # positive, 15–16 hex digits, never 0


def _issue(spec: _Spec, key: V2GKey, issuer_cert: x509.Certificate | None, issuer_key: V2GKey,
           now: dt.datetime, ocsp_url: str) -> x509.Certificate:
    if spec.offset is not None:
        not_before, not_after = now + spec.offset[0] * DAY, now + spec.offset[1] * DAY
    elif spec.role in ("root", "subca1", "subca2"):
        not_before, not_after = now - 60 * DAY, now + spec.days * DAY   # CAs cover back-dated leaves
    else:
        not_before, not_after = now - dt.timedelta(hours=1), now + spec.days * DAY
    subject = _name(spec.cn, spec.org, spec.dc)
    path_len = {"subca1": 1, "subca2": 0}.get(spec.role)
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer_cert.subject if issuer_cert else subject)
         .public_key(key.public_key()).serial_number(_serial())
         .not_valid_before(not_before).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=spec.role in ("root", "subca1", "subca2"), path_length=path_len),
                        critical=True)
         .add_extension(_key_usage(spec.role), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if issuer_cert is not None:
        b = (b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                             critical=False)
             .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                 AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]), critical=False))
    return b.sign(issuer_key, signing_hash(issuer_key))


def _specs(emaid: str, evse_id: str, pcid: str, operator: str) -> list[_Spec]:
    cpo, mo, oem, cps = f"{operator} CPO", f"{operator} MO", f"{operator} OEM", f"{operator} CPS"
    return [
        _Spec("v2g_root", "V2G Root CA (test)", "V2G", None, "root", 3650, operator),
        _Spec("cpo_subca1", "CPO Sub-CA 1 (test)", "V2G", "v2g_root", "subca1", 1460, cpo),
        _Spec("cpo_subca2", "CPO Sub-CA 2 (test)", "V2G", "cpo_subca1", "subca2", 365, cpo),
        _Spec("secc", evse_id, "CPO", "cpo_subca2", "secc", 90, cpo),
        _Spec("secc_expired", evse_id, "CPO", "cpo_subca2", "secc", 0, cpo, offset=(-30, -1)),
        _Spec("secc_revoked", evse_id, "CPO", "cpo_subca2", "secc", 90, cpo),
        _Spec("cps_subca1", "CPS Sub-CA 1 (test)", "V2G", "v2g_root", "subca1", 1460, cps),
        _Spec("cps_subca2", "CPS Sub-CA 2 (test)", "V2G", "cps_subca1", "subca2", 730, cps),
        _Spec("cps", "CPS Leaf (test)", "CPS", "cps_subca2", "cps", 90, cps),
        _Spec("mo_root", "MO Root CA (test)", "V2G", None, "root", 3650, mo),
        _Spec("mo_subca1", "MO Sub-CA 1 (test)", "V2G", "mo_root", "subca1", 1460, mo),
        _Spec("mo_subca2", "MO Sub-CA 2 (test)", "V2G", "mo_subca1", "subca2", 730, mo),
        _Spec("contract", emaid, "MO", "mo_subca2", "contract", 730, mo),
        _Spec("contract_expired", emaid, "MO", "mo_subca2", "contract", 0, mo, offset=(-30, -1)),
        _Spec("contract_not_yet_valid", emaid, "MO", "mo_subca2", "contract", 0, mo, offset=(1, 365)),
        _Spec("contract_revoked", emaid, "MO", "mo_subca2", "contract", 730, mo),
        _Spec("contract_wrong_emaid", WRONG_EMAID if WRONG_EMAID != emaid else DEFAULT_EMAID, "MO",
              "mo_subca2", "contract", 730, mo),
        _Spec("foreign_mo_root", "MO Root CA (foreign, untrusted)", "V2G", None, "root", 3650, "Foreign MO"),
        _Spec("foreign_mo_subca1", "MO Sub-CA 1 (foreign)", "V2G", "foreign_mo_root", "subca1", 1460, "Foreign MO"),
        _Spec("foreign_mo_subca2", "MO Sub-CA 2 (foreign)", "V2G", "foreign_mo_subca1", "subca2", 730, "Foreign MO"),
        _Spec("contract_foreign_root", emaid, "MO", "foreign_mo_subca2", "contract", 730, "Foreign MO"),
        _Spec("oem_root", "OEM Root CA (test)", "V2G", None, "root", 3650, oem),
        _Spec("oem_subca1", "OEM Sub-CA 1 (test)", "V2G", "oem_root", "subca1", 1460, oem),
        _Spec("oem_subca2", "OEM Sub-CA 2 (test)", "V2G", "oem_subca1", "subca2", 730, oem),
        _Spec("oem_prov", pcid, "OEM", "oem_subca2", "oem_prov", 1460, oem),
    ]


_CHAINS: dict[str, tuple[str, list[str], str]] = {
    "secc": ("secc", ["cpo_subca2", "cpo_subca1"], "v2g_root"),
    "secc_expired": ("secc_expired", ["cpo_subca2", "cpo_subca1"], "v2g_root"),
    "secc_revoked": ("secc_revoked", ["cpo_subca2", "cpo_subca1"], "v2g_root"),
    "cps": ("cps", ["cps_subca2", "cps_subca1"], "v2g_root"),
    "contract": ("contract", ["mo_subca2", "mo_subca1"], "mo_root"),
    "contract_expired": ("contract_expired", ["mo_subca2", "mo_subca1"], "mo_root"),
    "contract_not_yet_valid": ("contract_not_yet_valid", ["mo_subca2", "mo_subca1"], "mo_root"),
    "contract_revoked": ("contract_revoked", ["mo_subca2", "mo_subca1"], "mo_root"),
    "contract_wrong_emaid": ("contract_wrong_emaid", ["mo_subca2", "mo_subca1"], "mo_root"),
    "contract_foreign_root": ("contract_foreign_root", ["foreign_mo_subca2", "foreign_mo_subca1"], "foreign_mo_root"),
    "contract_missing_intermediate": ("contract", ["mo_subca2"], "mo_root"),
    "oem_prov": ("oem_prov", ["oem_subca2", "oem_subca1"], "oem_root"),
}
_REVOKED = {"mo_subca2": ["contract_revoked"], "cpo_subca2": ["secc_revoked"]}


def _write_private_key(path: Path, key: V2GKey) -> None:
    """PKCS#8 PEM, unencrypted, created with mode 0600 so it is never world-readable, not even briefly."""
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)   # whatever the umask


def _fname(name: str) -> str:
    return name.replace("_", "-")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_v2g_pki(out_dir: str | Path, flavour: str = "iso2", *, emaid: str = DEFAULT_EMAID,
                 evse_id: str = DEFAULT_EVSE_ID, pcid: str = DEFAULT_PCID, ocsp_url: str | None = None,
                 operator: str = "ChargerHarness Test", force: bool = False) -> V2GPki:
    """Generate the V2G PKI into `out_dir` (or return the one already there when it was made with
    the same parameters and its good certificates are still valid: idempotent). `force` renews.
    A directory holding a PKI made with other parameters raises PkiExists unless `force`."""
    if flavour not in FLAVOURS:
        raise V2GPkiError(f"unknown flavour {flavour!r} (choose one of {', '.join(FLAVOURS)})")
    problem = emaid_problem(emaid)
    if problem:
        raise V2GPkiError(problem)
    if not evse_id.strip():
        raise V2GPkiError("evse_id must not be empty (it is the SECC leaf's CN)")
    ocsp_url = ocsp_url or DEFAULT_OCSP_URL
    d = Path(out_dir)
    manifest = d / MANIFEST
    if manifest.exists() and not force:
        wanted = {"flavour": flavour, "emaid": emaid, "evse_id": evse_id, "pcid": pcid, "ocsp_url": ocsp_url}
        try:
            existing = load_v2g_pki(d)
        except (V2GPkiError, OSError, ValueError) as exc:
            raise PkiExists(f"{d}: holds an unreadable V2G PKI ({exc}); use --force to renew") from None
        have = {k: getattr(existing, k) for k in wanted}
        if have != wanted:
            diff = ", ".join(f"{k}={have[k]!r} (wanted {wanted[k]!r})" for k in wanted if have[k] != wanted[k])
            raise PkiExists(f"{d}: already holds a V2G PKI with {diff}; use --force to renew")
        if _still_good(existing):
            return existing
    d.mkdir(parents=True, exist_ok=True)
    return _generate(d, flavour, emaid, evse_id, pcid, ocsp_url, operator)


def _still_good(pki: V2GPki) -> bool:
    """The positive certificates are valid now and for at least another day (else renew)."""
    now = dt.datetime.now(dt.timezone.utc)
    return all(pki.certs[n].not_valid_before_utc <= now and pki.certs[n].not_valid_after_utc > now + DAY
               for n in ("secc", "contract", "cps", "oem_prov", "cpo_subca2", "mo_subca2"))


def _generate(d: Path, flavour: str, emaid: str, evse_id: str, pcid: str, ocsp_url: str, operator: str) -> V2GPki:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    certs: dict[str, x509.Certificate] = {}
    keys: dict[str, V2GKey] = {}
    for spec in _specs(emaid, evse_id, pcid, operator):
        key = new_key(flavour)
        issuer_cert = certs[spec.issuer] if spec.issuer else None
        issuer_key = keys[spec.issuer] if spec.issuer else key
        certs[spec.name] = _issue(spec, key, issuer_cert, issuer_key, now, ocsp_url)
        keys[spec.name] = key

    pki = V2GPki(dir=d, flavour=flavour, emaid=emaid, evse_id=evse_id, pcid=pcid, ocsp_url=ocsp_url,
                 manifest_path=d / MANIFEST, certs=certs, keys=keys)
    manifest: dict = {"format": "charger-harness v2g pki 1", "flavour": flavour, "emaid": emaid,
                      "evse_id": evse_id, "pcid": pcid, "ocsp_url": ocsp_url,
                      "created": now.isoformat(), "certificates": {}, "crls": {}, "chains": {}}
    for name, cert in certs.items():
        pem, der, keyf = d / f"{_fname(name)}.pem", d / f"{_fname(name)}.der", d / f"{_fname(name)}.key"
        pem.write_bytes(_pem(cert))
        der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        _write_private_key(keyf, keys[name])
        pki.cert_paths[name], pki.key_paths[name] = pem, keyf
        manifest["certificates"][name] = {
            "pem": pem.name, "der": der.name, "key": keyf.name, "serial": format(cert.serial_number, "x"),
            "subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "not_before": cert.not_valid_before_utc.isoformat(), "not_after": cert.not_valid_after_utc.isoformat()}

    ca_names = [n for n, c in certs.items() if _is_ca(c)]
    for ca in ca_names:
        revoked = [Revocation(certs[n].serial_number, now - dt.timedelta(minutes=30)) for n in _REVOKED.get(ca, [])]
        crl = make_crl(certs[ca], keys[ca], revoked, number=1, last_update=now - dt.timedelta(hours=1),
                       next_update=now + 30 * DAY)
        pem, der = d / f"{_fname(ca)}.crl.pem", d / f"{_fname(ca)}.crl"
        pem.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        der.write_bytes(crl.public_bytes(serialization.Encoding.DER))
        pki.crls[ca], pki.crl_paths[ca] = crl, pem
        pki.revoked[ca] = list(_REVOKED.get(ca, []))
        manifest["crls"][ca] = {"pem": pem.name, "der": der.name, "revoked": list(_REVOKED.get(ca, [])),
                                "revoked_serials": [format(r.serial, "x") for r in revoked]}

    for name, (leaf, inter, root) in _CHAINS.items():
        path = d / f"{_fname(name)}-chain.pem"      # leaf first, then the Sub-CAs: the order sent on the wire
        path.write_bytes(b"".join(_pem(certs[n]) for n in [leaf, *inter]))
        pki.chains[name] = {"leaf": leaf, "intermediates": list(inter), "root": root}
        pki.chain_paths[name] = path
        manifest["chains"][name] = {**pki.chains[name], "pem": path.name}
    pki.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return pki


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def load_v2g_pki(directory: str | Path) -> V2GPki:
    """Load a PKI written by make_v2g_pki (certificates, keys, CRLs) from its manifest."""
    d = Path(directory)
    try:
        m = json.loads((d / MANIFEST).read_text())
    except FileNotFoundError:
        raise V2GPkiError(f"{d}: no {MANIFEST} (generate with `charger-harness pki v2g --out {d}`)") from None
    except json.JSONDecodeError as exc:
        raise V2GPkiError(f"{d / MANIFEST}: not JSON ({exc})") from None
    if m.get("format") != "charger-harness v2g pki 1":
        raise V2GPkiError(f"{d / MANIFEST}: unknown format {m.get('format')!r}")
    pki = V2GPki(dir=d, flavour=m["flavour"], emaid=m["emaid"], evse_id=m["evse_id"], pcid=m["pcid"],
                 ocsp_url=m["ocsp_url"], manifest_path=d / MANIFEST)
    for name, e in m["certificates"].items():
        pki.cert_paths[name], pki.key_paths[name] = d / e["pem"], d / e["key"]
        pki.certs[name] = x509.load_pem_x509_certificate(pki.cert_paths[name].read_bytes())
        key = serialization.load_pem_private_key(pki.key_paths[name].read_bytes(), password=None)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, ed448.Ed448PrivateKey)):
            raise V2GPkiError(f"{pki.key_paths[name]}: not an EC or Ed448 key")
        pki.keys[name] = key
    for ca, e in m["crls"].items():
        pki.crl_paths[ca] = d / e["pem"]
        pki.crls[ca] = x509.load_pem_x509_crl(pki.crl_paths[ca].read_bytes())
        pki.revoked[ca] = list(e["revoked"])
    for name, e in m["chains"].items():
        pki.chains[name] = {"leaf": e["leaf"], "intermediates": list(e["intermediates"]), "root": e["root"]}
        pki.chain_paths[name] = d / e["pem"]
    return pki


def issue_contract_certificate(pki: V2GPki, emaid: str | None = None,
                               key: V2GKey | None = None) -> tuple[V2GKey, x509.Certificate]:
    """A fresh contract key pair and certificate from the PKI's MO Sub-CA 2 (what an MO makes for a
    CertificateInstallationRes). Not written to disk; the OCSP responder of `pki` will call it unknown
    unless you register it."""
    emaid = emaid or pki.emaid
    problem = emaid_problem(emaid)
    if problem:
        raise V2GPkiError(problem)
    key = key or new_key(pki.flavour)
    spec = _Spec("contract_new", emaid, "MO", "mo_subca2", "contract", 730,
                 pki.certs["mo_subca2"].subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return key, _issue(spec, key, pki.certs["mo_subca2"], pki.keys["mo_subca2"], now, pki.ocsp_url)
