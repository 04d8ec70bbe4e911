"""TLS contexts for the security-profile test cases: the harness presenting a certificate the
DUT must refuse (untrusted, expired, revoked, none) or offering only one TLS version.

The certificates come from a test PKI made by `charger-harness pki init` (harness.pki): the
variants lie next to the CA the DUT trusts, so a lab that installed that CA in its DUT can run
the negative cases too.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from ..pki import PkiPaths, pki_layout
from .security import client_tls_context, server_tls_context

CLIENT_CERTIFICATES = ("valid", "untrusted", "expired", "revoked", "none")
SERVER_CERTIFICATES = ("valid", "untrusted")
_VERSIONS = {"1.1": ssl.TLSVersion.TLSv1_1, "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class MissingVariant(FileNotFoundError):
    """The PKI next to tls.ca lacks the certificate a negative case needs."""


def pki_of(ca: str | Path) -> PkiPaths:
    """The `pki init` layout around the CA file `ca`; MissingVariant names what is absent."""
    pki = pki_layout(Path(ca).parent)
    missing = [p.name for p in pki.files() if not p.is_file()]
    if missing:
        raise MissingVariant(f"the TLS test cases need the certificates of `charger-harness pki init` next to "
                             f"{ca}; missing: {', '.join(missing)}")
    return pki


def pin_version(ctx: ssl.SSLContext, version: str | None) -> ssl.SSLContext:
    """Offer exactly one TLS version. TLS 1.1 also needs OpenSSL's security level 0, or the
    library itself refuses it before any peer could (and the case would prove nothing)."""
    if version is None:
        return ctx
    if version not in _VERSIONS:
        raise ValueError(f"tls_version must be one of {', '.join(_VERSIONS)}, got {version!r}")
    if version == "1.1":
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = _VERSIONS[version]
    return ctx


def client_context(pki: PkiPaths, certificate: str = "valid", version: str | None = None) -> ssl.SSLContext:
    """The station side: trust the PKI's CA and present the chosen client certificate."""
    if certificate not in CLIENT_CERTIFICATES:
        raise ValueError(f"client_certificate must be one of {', '.join(CLIENT_CERTIFICATES)}, got {certificate!r}")
    stem = {"valid": "station", "untrusted": "station_untrusted", "expired": "station_expired",
            "revoked": "station_revoked"}.get(certificate)
    cert = getattr(pki, f"{stem}_cert") if stem else None
    key = getattr(pki, f"{stem}_key") if stem else None
    return pin_version(client_tls_context(pki.ca_cert, cert, key), version)


def server_context(pki: PkiPaths, certificate: str = "valid", version: str | None = None, *,
                   require_client_cert: bool = False) -> ssl.SSLContext:
    """The CSMS side: present the PKI's CSMS certificate or one from the untrusted CA."""
    if certificate not in SERVER_CERTIFICATES:
        raise ValueError(f"harness_tls.certificate must be one of {', '.join(SERVER_CERTIFICATES)}, got {certificate!r}")
    cert, key = ((pki.csms_cert, pki.csms_key) if certificate == "valid"
                 else (pki.csms_untrusted_cert, pki.csms_untrusted_key))
    return pin_version(server_tls_context(cert, key, pki.ca_cert, require_client_cert=require_client_cert,
                                          crl=pki.crl), version)
