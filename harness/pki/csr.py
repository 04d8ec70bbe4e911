"""Sign a peer's certificate signing request at run time (the harness playing the CSMS's CA in
A02/A03: SignCertificateRequest → CertificateSignedRequest with a real chain)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa


class CsrError(ValueError):
    """The CSR is not a PEM PKCS#10 request or its self-signature does not verify."""


def sign_csr(csr_pem: str, ca_cert_pem: str, ca_key_pem: str, *, days: int = 30) -> str:
    """The leaf certificate (PEM) for `csr_pem`, issued by the CA; subject and key come from the
    CSR, which must carry a valid self-signature (proof the requester holds the key)."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.strip().encode())
    except ValueError as exc:
        raise CsrError(f"not a PEM PKCS#10 certificate request: {exc}") from None
    if not csr.is_signature_valid:
        raise CsrError("the CSR's self-signature does not verify (the requester does not hold the key)")
    ca = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    now = datetime.now(timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject)
               .public_key(csr.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False))  # type: ignore[arg-type]
    algorithm = None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        raise CsrError(f"unsupported CA key type {type(key).__name__}")
    leaf = builder.sign(key, algorithm)
    return leaf.public_bytes(serialization.Encoding.PEM).decode()
