"""Chain verification as a SECC or CSMS does it for ISO 15118 Plug & Charge.

`verify_contract_chain` (contract certificate + MO Sub-CAs against the trusted MO/V2G roots) and
`verify_secc_chain` (SECC leaf + CPO Sub-CAs against the V2G root) return a Verdict whose `status`
is the OCPP 2.0.1 AuthorizeCertificateStatusEnumType value a CSMS would answer (Accepted,
SignatureError, CertificateExpired, CertificateRevoked, CertChainError) and whose `reason` says
exactly what failed. Checks, in this order (the first failure is reported):

1. leaf profile: not a CA, KeyUsage digitalSignature (and the flavour's algorithm, if given);
2. path: issuer by issuer (names, then the signature, EC or Ed448) up to a trusted root, at most
   two Sub-CAs (ISO 15118-2 [V2G2-009]); every issuer a CA with keyCertSign whose pathLen
   allows the Sub-CAs below it;
3. validity of every certificate at `at` (default: now);
4. revocation of every non-root certificate in the CRLs given (only CRLs signed by its issuer count);
5. identity: contract CN is a well-formed eMAID (check digit verified when present) and, when
   `expected_emaid` is given, the same eMAID; SECC CN equals `expected_evse_id` when given.
OCSP is not consulted here (see harness.pki.ocsp.ocsp_status) so that verification stays offline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID

from .crl import revocation_of
from .emaid import emaid_problem, normalize, same_emaid

MAX_SUB_CAS = 2   # ISO 15118-2 [V2G2-009]: root + at most two Sub-CAs + leaf


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    status: str = "Accepted"          # OCPP 2.0.1 AuthorizeCertificateStatusEnumType
    path: tuple[x509.Certificate, ...] = ()   # leaf → root as built (empty if no path was found)

    def __bool__(self) -> bool:
        return self.ok


def _cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else cert.subject.rfc4514_string()


def _ext(cert: x509.Certificate, cls: type) -> object | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _algorithm_problem(cert: x509.Certificate, flavour: str) -> str | None:
    """Why `cert` does not use the flavour's key and signature algorithm, or None."""
    key = cert.public_key()
    h = cert.signature_hash_algorithm
    if flavour == "iso2":
        good = isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1" and h is not None \
            and h.name == "sha256"
        want = "ECDSA secp256r1 with SHA-256 (ISO 15118-2)"
    elif flavour == "iso20-ec":
        good = isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp521r1" and h is not None \
            and h.name == "sha512"
        want = "ECDSA secp521r1 with SHA-512 (ISO 15118-20)"
    elif flavour == "iso20-ed448":
        good = isinstance(key, ed448.Ed448PublicKey) and h is None
        want = "Ed448 (ISO 15118-20)"
    else:
        raise ValueError(f"unknown flavour {flavour!r}")
    if good:
        return None
    got = (f"ECDSA {key.curve.name}" if isinstance(key, ec.EllipticCurvePublicKey)
           else "Ed448" if isinstance(key, ed448.Ed448PublicKey) else type(key).__name__) + (f" with {h.name}" if h else "")
    return f"'{_cn(cert)}' uses {got}; the {flavour} flavour requires {want}"


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def _fmt(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _verify(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate],
            trusted_roots: Sequence[x509.Certificate], at: dt.datetime | None, label: str,
            crls: Sequence[x509.CertificateRevocationList], flavour: str | None) -> Verdict:
    at = at or dt.datetime.now(dt.timezone.utc)
    if at.tzinfo is None:
        raise ValueError("`at` must be timezone-aware (UTC)")

    # 1. leaf profile
    bc = _ext(leaf, x509.BasicConstraints)
    if isinstance(bc, x509.BasicConstraints) and bc.ca:
        return Verdict(False, f"{label} '{_cn(leaf)}' is a CA certificate, not a leaf", "CertChainError")
    ku = _ext(leaf, x509.KeyUsage)
    if not isinstance(ku, x509.KeyUsage) or not ku.digital_signature:
        return Verdict(False, f"{label} '{_cn(leaf)}' lacks KeyUsage digitalSignature", "CertChainError")

    # 2. path to a trusted root
    path = [leaf]
    cur = leaf
    for _ in range(MAX_SUB_CAS + 2):
        named_roots = [r for r in trusted_roots if r.subject == cur.issuer]
        root = next((r for r in named_roots if _signed_by(cur, r)), None)
        if root is not None:
            path.append(root)
            break
        if named_roots:
            return Verdict(False, f"signature of '{_cn(cur)}' does not verify with the key of trusted root "
                                  f"'{_cn(named_roots[0])}'", "SignatureError", tuple(path))
        if cur.issuer == cur.subject:
            return Verdict(False, f"chain ends in self-signed root '{_cn(cur)}', which is not trusted "
                                  "(unknown root)", "CertChainError", tuple(path))
        named = [c for c in intermediates if c.subject == cur.issuer and c is not cur]
        if not named:
            cur_bc = _ext(cur, x509.BasicConstraints)
            sub_ca1 = isinstance(cur_bc, x509.BasicConstraints) and cur_bc.ca and cur_bc.path_length == 1
            why = ("unknown root: no trusted root has that name" if sub_ca1
                   else "missing intermediate: the chain does not contain it")
            return Verdict(False, f"issuer '{cur.issuer.rfc4514_string()}' of '{_cn(cur)}' is neither a trusted "
                                  f"root nor among the intermediates ({why})", "CertChainError", tuple(path))
        issuer = next((c for c in named if _signed_by(cur, c)), None)
        if issuer is None:
            return Verdict(False, f"signature of '{_cn(cur)}' does not verify with the key of "
                                  f"'{_cn(named[0])}'", "SignatureError", tuple(path))
        if issuer.issuer != issuer.subject and len(path) > MAX_SUB_CAS:
            return Verdict(False, f"no trusted root within {MAX_SUB_CAS} Sub-CAs of {label} '{_cn(leaf)}' "
                                  "(ISO 15118-2 allows at most two)", "CertChainError", tuple(path))
        path.append(issuer)
        cur = issuer
    else:   # unreachable with the checks above; kept so the loop can never fall through silently
        return Verdict(False, f"no trusted root above {label} '{_cn(leaf)}'", "CertChainError", tuple(path))
    chain = tuple(path)

    if flavour is not None:
        for cert in chain:
            problem = _algorithm_problem(cert, flavour)
            if problem:
                return Verdict(False, problem, "CertChainError", chain)

    # CA flags, key usage, pathLen: path[i] has i-1 Sub-CAs between it and the leaf
    for i, ca in enumerate(chain[1:], start=1):
        cbc = _ext(ca, x509.BasicConstraints)
        if not isinstance(cbc, x509.BasicConstraints) or not cbc.ca:
            return Verdict(False, f"'{_cn(ca)}' issued '{_cn(chain[i - 1])}' but is not a CA "
                                  "(BasicConstraints cA false or absent)", "CertChainError", chain)
        cku = _ext(ca, x509.KeyUsage)
        if not isinstance(cku, x509.KeyUsage) or not cku.key_cert_sign:
            return Verdict(False, f"'{_cn(ca)}' lacks KeyUsage keyCertSign", "CertChainError", chain)
        below = i - 1
        if cbc.path_length is not None and below > cbc.path_length:
            return Verdict(False, f"'{_cn(ca)}' has pathLenConstraint {cbc.path_length} but {below} Sub-CA(s) "
                                  "follow it", "CertChainError", chain)

    # 3. validity
    for i, cert in enumerate(chain):
        what = f"{label} '{_cn(cert)}'" if i == 0 else f"CA certificate '{_cn(cert)}'"
        if at > cert.not_valid_after_utc:
            return Verdict(False, f"{what} expired on {_fmt(cert.not_valid_after_utc)}", "CertificateExpired", chain)
        if at < cert.not_valid_before_utc:
            return Verdict(False, f"{what} is not yet valid (valid from {_fmt(cert.not_valid_before_utc)})",
                           "CertChainError", chain)

    # 4. revocation (CRLs)
    for i, cert in enumerate(chain[:-1]):
        entry = revocation_of(cert, chain[i + 1], crls)
        if entry is not None:
            what = label if i == 0 else "CA certificate"
            return Verdict(False, f"{what} '{_cn(cert)}' (serial {cert.serial_number:x}) was revoked on "
                                  f"{_fmt(entry.revocation_date_utc)} per the CRL of '{_cn(chain[i + 1])}'",
                           "CertificateRevoked", chain)
    return Verdict(True, "valid", "Accepted", chain)


def verify_chain(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate],
                 trusted_roots: Sequence[x509.Certificate], at: dt.datetime | None = None, *,
                 label: str = "certificate", crls: Sequence[x509.CertificateRevocationList] = (),
                 flavour: str | None = None) -> Verdict:
    """Checks 1–4 only, for any V2G leaf (CPS leaf, OEM provisioning certificate, ...)."""
    return _verify(leaf, intermediates, trusted_roots, at, label, crls, flavour)


def verify_contract_chain(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate],
                          trusted_roots: Sequence[x509.Certificate], at: dt.datetime | None = None, *,
                          expected_emaid: str | None = None, crls: Sequence[x509.CertificateRevocationList] = (),
                          flavour: str | None = None) -> Verdict:
    """Verify a contract certificate chain (ContractSignatureCertChain / AuthorizeRequest.certificate)."""
    v = _verify(leaf, intermediates, trusted_roots, at, "contract certificate", crls, flavour)
    if not v.ok:
        return v
    emaid = _cn(leaf)
    problem = emaid_problem(emaid)
    if problem:
        return Verdict(False, f"contract certificate CN: {problem}", "CertChainError", v.path)
    if expected_emaid is not None and not same_emaid(emaid, expected_emaid):
        return Verdict(False, f"contract certificate is for eMAID {normalize(emaid)!r}, expected "
                              f"{normalize(expected_emaid)!r}", "CertChainError", v.path)
    return v


def verify_secc_chain(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate],
                      trusted_roots: Sequence[x509.Certificate], at: dt.datetime | None = None, *,
                      expected_evse_id: str | None = None, crls: Sequence[x509.CertificateRevocationList] = (),
                      flavour: str | None = None) -> Verdict:
    """Verify an SECC certificate chain (what the EVCC checks in the TLS handshake)."""
    v = _verify(leaf, intermediates, trusted_roots, at, "SECC certificate", crls, flavour)
    if not v.ok:
        return v
    if expected_evse_id is not None and _cn(leaf).casefold() != expected_evse_id.casefold():
        return Verdict(False, f"SECC certificate CN {_cn(leaf)!r} is not the EVSE id {expected_evse_id!r}",
                       "CertChainError", v.path)
    return v
