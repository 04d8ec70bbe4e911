"""The TLS bugs of the reference simulators (security profiles 2–3), applied to the SSL
context each simulator builds. Each is a real-world misconfiguration: verification switched
off to "make it work", a CRL never loaded, TLS 1.1 left enabled, a self-signed certificate."""

from __future__ import annotations

import ssl
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

X509_V_FLAG_NO_CHECK_TIME = 0x200000       # OpenSSL: skip notBefore/notAfter checks

# The library's TLS cases (TC_A_04..08, 1.6 TC_086..088) are these faults' probes.
STATION_TLS_FAULTS = ("accepts_untrusted_csms_certificate", "accepts_tls_1_1_csms", "tls_no_basic_auth",
                      "tls_no_client_certificate")
CSMS_TLS_FAULTS = ("client_certificate_not_required", "accepts_revoked_client_certificate",
                   "accepts_expired_client_certificate", "accepts_tls_1_1", "serves_self_signed_certificate")


def _allow_tls_1_1(ctx: ssl.SSLContext) -> None:
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")      # OpenSSL 3 refuses TLS 1.1 at the default level
    ctx.minimum_version = ssl.TLSVersion.TLSv1_1


def station_tls_fault(ctx: ssl.SSLContext, fault: str | None) -> ssl.SSLContext:
    if fault == "accepts_untrusted_csms_certificate":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif fault == "accepts_tls_1_1_csms":
        _allow_tls_1_1(ctx)
    return ctx


def csms_tls_fault(ctx: ssl.SSLContext, fault: str | None) -> ssl.SSLContext:
    if fault == "client_certificate_not_required":
        ctx.verify_mode = ssl.CERT_OPTIONAL
    elif fault == "accepts_revoked_client_certificate":
        ctx.verify_flags &= ~ssl.VERIFY_CRL_CHECK_LEAF
    elif fault == "accepts_expired_client_certificate":
        ctx.verify_flags |= X509_V_FLAG_NO_CHECK_TIME    # type: ignore[assignment]
    elif fault == "accepts_tls_1_1":
        _allow_tls_1_1(ctx)
    elif fault == "serves_self_signed_certificate":
        cert, key = _self_signed()
        ctx.load_cert_chain(cert, key)
    return ctx


def _self_signed() -> tuple[str, str]:
    """A throw-away self-signed server certificate for 127.0.0.1 (what a CSMS left on its default shows)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    folder = Path(tempfile.mkdtemp(prefix="charger-harness-selfsigned-"))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)
