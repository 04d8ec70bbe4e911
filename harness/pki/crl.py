"""Certificate revocation lists for the test PKIs: build one per CA, ask whether a certificate is listed.

RFC 5280 §5 CRLs signed by the issuing CA itself (no indirect CRLs): the CRL issuer is the CA's
subject, it carries a CRLNumber and an AuthorityKeyIdentifier, and each entry may carry a reason.
Signature: the CA's own algorithm (ECDSA with the flavour's hash, or Ed448 without a separate hash).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

CaKey = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Revocation:
    serial: int
    when: dt.datetime
    reason: x509.ReasonFlags | None = x509.ReasonFlags.key_compromise


def signing_hash(key: CaKey) -> hashes.HashAlgorithm | None:
    """The digest to pass to cryptography's sign(): None for EdDSA (the algorithm fixes it),
    SHA-512 for P-521 (ISO 15118-20), SHA-384 for P-384, SHA-256 otherwise (ISO 15118-2)."""
    if isinstance(key, (ed448.Ed448PrivateKey, ed25519.Ed25519PrivateKey)):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {521: hashes.SHA512(), 384: hashes.SHA384()}.get(key.curve.key_size, hashes.SHA256())
    return hashes.SHA256()


def make_crl(ca_cert: x509.Certificate, ca_key: CaKey, revoked: Iterable[Revocation] = (), *,
             number: int = 1, last_update: dt.datetime, next_update: dt.datetime) -> x509.CertificateRevocationList:
    """A CRL issued by `ca_cert` listing `revoked` (possibly none: an empty CRL is still a statement)."""
    if next_update <= last_update:
        raise ValueError("CRL next_update must be after last_update")
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
         .last_update(last_update).next_update(next_update)
         .add_extension(x509.CRLNumber(number), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    for r in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(r.serial).revocation_date(r.when)
        if r.reason is not None:
            entry = entry.add_extension(x509.CRLReason(r.reason), critical=False)
        b = b.add_revoked_certificate(entry.build())
    return b.sign(ca_key, signing_hash(ca_key))


def crl_signed_by(crl: x509.CertificateRevocationList, ca_cert: x509.Certificate) -> bool:
    """True when `crl` names `ca_cert` as its issuer and its signature verifies with the CA's key."""
    if crl.issuer != ca_cert.subject:
        return False
    try:
        return crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def revocation_of(cert: x509.Certificate, issuer: x509.Certificate,
                  crls: Sequence[x509.CertificateRevocationList]) -> x509.RevokedCertificate | None:
    """The CRL entry revoking `cert`, looked up only in CRLs genuinely signed by `issuer` (a CRL from
    anyone else proves nothing), or None."""
    for crl in crls:
        if crl_signed_by(crl, issuer):
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None:
                return entry
    return None
