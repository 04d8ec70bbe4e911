"""Test PKI for OCPP security profiles 2–3 (`charger-harness pki init`, `make_test_pki`).

What it makes, following OCPP 2.0.1 Part 2 A00 / the 1.6 security whitepaper:
- a test root CA ("V2G/CSMS test root") that signs everything a test may trust, and its CRL;
- the CSMS server certificate: subject CN = the endpoint's host name (localhost), SAN
  localhost, 127.0.0.1 and ::1, serverAuth;
- the charging-station client certificate: subject CN = the station id (its unique serial),
  O = the operator (CSO), clientAuth;
- negative variants: an expired client certificate, one signed by an untrusted CA, and a
  revoked one (listed in `crl.pem`).

Keys are ECDSA P-256 (secp256r1, the curve of the TLS_ECDHE_ECDSA_* suites OCPP names; ≥ 224
bits EC) or RSA 2048 (the minimum for RSA). Every certificate carries a random serial
number. Certificates and keys are PEM; private keys are written with mode 0600 and are
never read by the report layer (DUT profiles hold their *paths* only).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

ROOT_CN = "V2G/CSMS test root"
UNTRUSTED_CN = "Untrusted test root"
DEFAULT_OPERATOR = "ChargerHarness Test CSO"


class PkiExists(FileExistsError):
    """The output directory already holds a PKI (use force=True / --force to overwrite)."""


@dataclass(frozen=True)
class PkiPaths:
    dir: Path
    ca_cert: Path                 # trusted test root (the CA bundle of both sides)
    ca_key: Path
    crl: Path                     # the root's CRL, listing station_revoked
    csms_cert: Path
    csms_key: Path
    station_cert: Path
    station_key: Path
    station_expired_cert: Path
    station_expired_key: Path
    station_untrusted_cert: Path  # signed by untrusted_ca
    station_untrusted_key: Path
    station_revoked_cert: Path
    station_revoked_key: Path
    untrusted_ca_cert: Path       # a root nobody trusts (also signs csms_untrusted)
    untrusted_ca_key: Path
    csms_untrusted_cert: Path     # a server certificate a station must refuse
    csms_untrusted_key: Path

    def keys(self) -> list[Path]:
        return [getattr(self, f.name) for f in fields(self) if f.name.endswith("_key")]

    def files(self) -> list[Path]:
        return [getattr(self, f.name) for f in fields(self) if f.name != "dir"]


def pki_layout(d: Path) -> PkiPaths:
    """Where `make_test_pki` puts (or put) each file in directory `d`."""
    paths: dict[str, Path] = {"crl": d / "crl.pem"}
    for f in fields(PkiPaths):
        if f.name in ("dir", "crl"):
            continue
        stem, kind = f.name.rsplit("_", 1)
        paths[f.name] = d / f"{stem.replace('_', '-')}.{'key' if kind == 'key' else 'pem'}"
    return PkiPaths(dir=d, **paths)


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _cert(subject: x509.Name, key: PrivateKey, issuer: x509.Name, issuer_key: PrivateKey, *,
          ca: bool, not_before: dt.datetime, not_after: dt.datetime,
          san: list[x509.GeneralName] | None = None, eku: list[x509.ObjectIdentifier] | None = None) -> x509.Certificate:
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=isinstance(key, rsa.RSAPrivateKey), data_encipherment=False,
                                          key_agreement=False, key_cert_sign=False, crl_sign=False,
                                          encipher_only=False, decipher_only=False), critical=True)
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write_key(path: Path, key: PrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)   # never world-readable, not even briefly
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)   # whatever the umask


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_test_pki(directory: str | Path, station_id: str = "CH-SIM-001", *, operator: str = DEFAULT_OPERATOR,
                  key_type: KeyType = "ec", server_names: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
                  force: bool = True, valid_days: int = 825) -> PkiPaths:
    """Generate the whole test PKI into `directory` and return where each file is."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = pki_layout(d)
    if not force:
        present = [p.name for p in paths.files() if p.exists()]
        if present:
            raise PkiExists(f"{d}: already holds {', '.join(present[:3])}{' …' if len(present) > 3 else ''} "
                            "(use --force to overwrite)")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=valid_days)

    def root(cn: str) -> tuple[PrivateKey, x509.Certificate]:
        k = _new_key(key_type)
        name = _name(cn, operator)
        return k, _cert(name, k, name, k, ca=True, not_before=start, not_after=end + dt.timedelta(days=365))

    ca_key, ca = root(ROOT_CN)
    bad_key, bad_ca = root(UNTRUSTED_CN)

    san: list[x509.GeneralName] = []
    for n in server_names:
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            san.append(x509.DNSName(n))
    host_cn = next((n for n in server_names if not _is_ip(n)), server_names[0])

    def leaf(subject: x509.Name, issuer: x509.Certificate, issuer_key: PrivateKey, *, server: bool,
             not_before: dt.datetime = start, not_after: dt.datetime = end) -> tuple[PrivateKey, x509.Certificate]:
        k = _new_key(key_type)
        return k, _cert(subject, k, issuer.subject, issuer_key, ca=False, not_before=not_before, not_after=not_after,
                        san=san if server else None,
                        eku=[ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH])

    station_name = _name(station_id, operator)   # A00.FR.3xx: CN = the station's unique serial/id, O = the CSO
    out: dict[str, tuple[PrivateKey, x509.Certificate]] = {
        "csms": leaf(_name(host_cn, operator), ca, ca_key, server=True),
        "station": leaf(station_name, ca, ca_key, server=False),
        "station_expired": leaf(station_name, ca, ca_key, server=False,
                                not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)),
        "station_untrusted": leaf(station_name, bad_ca, bad_key, server=False),
        "station_revoked": leaf(station_name, ca, ca_key, server=False),
        "csms_untrusted": leaf(_name(host_cn, "Untrusted"), bad_ca, bad_key, server=True),
    }
    revoked = (x509.RevokedCertificateBuilder().serial_number(out["station_revoked"][1].serial_number)
               .revocation_date(now - dt.timedelta(minutes=1)).build())
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(start)
           .next_update(end).add_revoked_certificate(revoked)
           .add_extension(x509.CRLNumber(1), critical=False).sign(ca_key, hashes.SHA256()))

    _write_cert(paths.ca_cert, ca)
    _write_key(paths.ca_key, ca_key)
    _write_cert(paths.untrusted_ca_cert, bad_ca)
    _write_key(paths.untrusted_ca_key, bad_key)
    for name, (k, c) in out.items():
        _write_cert(getattr(paths, f"{name}_cert"), c)
        _write_key(getattr(paths, f"{name}_key"), k)
    paths.crl.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return paths


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False
