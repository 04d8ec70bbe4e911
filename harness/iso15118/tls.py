"""TLS contexts for the two ISO 15118 security profiles (all parameters are PEM file paths).

ISO 15118-2 ([V2G2-602] and neighbours): TLS 1.2 only, server authentication only (the
SECC presents its certificate chain up to a V2G root; the EVCC presents none), cipher suites
TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256 and TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 on
secp256r1 keys. OpenSSL ≥ 1.1 no longer implements the static-ECDH suites, so the contexts
offer only ECDHE-ECDSA-AES128-SHA256 (IANA 0xC023), with secp256r1 as the only key-exchange
group — an implementation offering just the static suite will fail to connect, which is
worth a finding in its own right.

ISO 15118-20 ([V2G20-2458] Table 6, [V2G20-2400]): TLS 1.3 only, mutual authentication (the
SECC sends a CertificateRequest; the EVCC answers with its vehicle certificate chain),
cipher suites TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256, key exchange on
secp521r1 (x448 is the alternative the text allows). Python's `ssl` cannot restrict TLS 1.3
suites (there is no SSL_CTX_set_ciphersuites binding); OpenSSL's default order already
puts TLS_AES_256_GCM_SHA384 first, the server prefers its own order, and
`check_negotiated` rejects a session that ended up on TLS_AES_128_GCM_SHA256 anyway. The
only key-exchange group offered is secp521r1 (`set_ecdh_curve` takes a single group).

The SECC certificate names the SECC, not a host name, so the EVCC checks the chain but no
host name. (Requirement ids as cited by public ISO 15118 stacks; the ISO text was not at hand.)

Key log: pass `keylog=path` (or set SSLKEYLOGFILE) and OpenSSL appends the session
secrets in NSS key-log format; Wireshark decrypts a capture with them via
Preferences → Protocols → TLS → (Pre)-Master-Secret log filename, or
`tshark -o tls.keylog_file:<path> -r capture.pcap`.
"""

from __future__ import annotations

import os
import ssl
from enum import Enum
from pathlib import Path

PathLike = str | os.PathLike

ISO2_CIPHERS = "ECDHE-ECDSA-AES128-SHA256"
ISO2_CIPHER_IANA = ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",)
ISO2_GROUP = "prime256v1"                        # secp256r1
ISO20_CIPHERS = frozenset({"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})
ISO20_GROUP = "secp521r1"


class Profile(str, Enum):
    ISO2 = "iso15118-2"
    ISO20 = "iso15118-20"


class TlsProfileError(ssl.SSLError):
    """The handshake completed, but on parameters the ISO 15118 profile does not allow."""


def _keylog(context: ssl.SSLContext, keylog: PathLike | None) -> None:
    path = keylog or os.environ.get("SSLKEYLOGFILE")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        context.keylog_filename = os.fspath(path)


def _load_chain(context: ssl.SSLContext, cert: PathLike, key: PathLike) -> None:
    # `cert` may hold the leaf followed by its sub-CAs: OpenSSL sends them all.
    for path in (cert, key):
        if not Path(path).is_file():
            raise FileNotFoundError(f"TLS credential {path} does not exist")
    context.load_cert_chain(os.fspath(cert), os.fspath(key))


def _trust(context: ssl.SSLContext, cafile: PathLike) -> None:
    if not Path(cafile).is_file():
        raise FileNotFoundError(f"trust anchor file {cafile} does not exist")
    context.load_verify_locations(cafile=os.fspath(cafile))


def _iso2(context: ssl.SSLContext, keylog: PathLike | None) -> ssl.SSLContext:
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ISO2_CIPHERS)
    context.set_ecdh_curve(ISO2_GROUP)
    context.options |= ssl.OP_NO_COMPRESSION
    _keylog(context, keylog)
    return context


def _iso20(context: ssl.SSLContext, keylog: PathLike | None) -> ssl.SSLContext:
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.set_ecdh_curve(ISO20_GROUP)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION
    _keylog(context, keylog)
    return context


def iso2_server_context(cert: PathLike, key: PathLike, *, keylog: PathLike | None = None) -> ssl.SSLContext:
    """SECC side, ISO 15118-2: presents `cert` (leaf + sub-CAs), asks the EVCC for nothing."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load_chain(context, cert, key)
    context.verify_mode = ssl.CERT_NONE
    return _iso2(context, keylog)


def iso2_client_context(cafile: PathLike, *, keylog: PathLike | None = None) -> ssl.SSLContext:
    """EVCC side, ISO 15118-2: verifies the SECC chain against the V2G root(s) in `cafile`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    _trust(context, cafile)
    return _iso2(context, keylog)


def iso20_server_context(cert: PathLike, key: PathLike, cafile: PathLike, *,
                         keylog: PathLike | None = None) -> ssl.SSLContext:
    """SECC side, ISO 15118-20: presents `cert`, requires an EVCC certificate chaining to `cafile`
    (the OEM / V2G roots the SECC trusts)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load_chain(context, cert, key)
    _trust(context, cafile)
    context.verify_mode = ssl.CERT_REQUIRED
    return _iso20(context, keylog)


def iso20_client_context(cafile: PathLike, cert: PathLike, key: PathLike, *,
                         keylog: PathLike | None = None) -> ssl.SSLContext:
    """EVCC side, ISO 15118-20: verifies the SECC against `cafile`, presents the vehicle `cert`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    _trust(context, cafile)
    _load_chain(context, cert, key)
    return _iso20(context, keylog)


def check_negotiated(ssl_object: ssl.SSLObject | ssl.SSLSocket, profile: Profile) -> tuple[str, str]:
    """(version, cipher) of an established session; TlsProfileError if the profile forbids them."""
    name, version, _bits = ssl_object.cipher() or ("", "", 0)
    if profile is Profile.ISO2:
        ok = version == "TLSv1.2" and name == ISO2_CIPHERS
    else:
        ok = version == "TLSv1.3" and name in ISO20_CIPHERS
    if not ok:
        raise TlsProfileError(f"{profile.value} does not allow {version or 'no TLS'} with {name or 'no cipher'}")
    return version, name
