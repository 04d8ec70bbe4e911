"""OCPP security profiles as seen by the transport (OCPP 2.0.1 Part 2 A00, 1.6 Security Whitepaper).

Profile 0: plain ws, no auth (lab only).  Profile 1: ws + HTTP Basic auth.
Profile 2: wss (TLS, server certificate) + Basic auth.  Profile 3: wss with mutual TLS.
Profiles 2–3 carry an `ssl.SSLContext` built by `server_tls_context` / `client_tls_context`
from PEM files (the test PKI comes from `charger-harness pki init`): TLS 1.2 at least, the
server presents its certificate, the client verifies it against the CA bundle and the host
name; for profile 3 the server requires a client certificate from the CA bundle (checked
against a CRL when one is given) and the client presents it instead of Basic auth.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

PathLike = str | Path


@dataclass(frozen=True)
class SecurityProfile:
    profile: int = 0
    username: str | None = None          # Basic auth user id (= station id for OCPP)
    password: str | None = None
    ssl_context: ssl.SSLContext | None = None

    @property
    def scheme(self) -> str:
        return "wss" if self.profile >= 2 else "ws"

    def __post_init__(self) -> None:
        if self.profile not in (0, 1, 2, 3):
            raise ValueError(f"security profile must be 0–3, got {self.profile}")
        if self.profile in (2, 3) and self.ssl_context is None:
            raise ValueError(f"security profile {self.profile} needs TLS: no certificates configured "
                             "(make a test PKI with `charger-harness pki init`, then give the DUT profile a "
                             "`tls:` section with ca/cert/key)")

    def authorization_header(self) -> str | None:
        if self.profile in (1, 2) and self.username is not None and self.password is not None:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return f"Basic {token}"
        return None

    def __repr__(self) -> str:  # never print the password
        return f"SecurityProfile(profile={self.profile}, username={self.username!r}, password={'***' if self.password else None})"


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """Decode an `Authorization: Basic …` header; None when absent or malformed."""
    if not header or header[:6].lower() != "basic ":     # the auth scheme is case-insensitive (RFC 7235)
        return None
    try:
        user, _, pw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, pw


# ---- TLS contexts (profiles 2–3) ------------------------------------------------------------

# OCPP 2.0.1 A00 / 1.6 whitepaper: TLS 1.2 or above with (at least) these TLS 1.2 suites.
OCPP_TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                      "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:AES128-GCM-SHA256:AES256-GCM-SHA384")

TlsFailure = Callable[[str], None]


class _RecordingSSLObject(ssl.SSLObject):
    """Reports a failed server-side handshake (asyncio swallows it) to `on_failure`."""

    on_failure: TlsFailure | None = None
    on_attempt: Callable[[], None] | None = None      # once per connection: a client began a handshake
    _attempt_seen = False

    def do_handshake(self) -> None:
        if not self._attempt_seen:
            # A client that aborts (e.g. it does not trust our certificate) often just closes the
            # socket: asyncio then never calls us again, so the attempt is the only trace it leaves.
            self._attempt_seen = True
            if self.on_attempt is not None:
                try:
                    self.on_attempt()
                except Exception:
                    pass
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            if self.on_failure is not None:
                try:
                    self.on_failure(tls_reason(exc))
                except Exception:
                    pass
            raise


def tls_reason(exc: BaseException) -> str:
    """A short readable reason for an ssl error: 'certificate verify failed: certificate has expired'."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    reason = getattr(exc, "reason", None)
    if isinstance(exc, ssl.SSLError) and reason:
        return reason.replace("_", " ").lower()
    return str(exc) or type(exc).__name__


def record_handshake_failures(ctx: ssl.SSLContext, on_failure: TlsFailure,
                              on_attempt: Callable[[], None] | None = None) -> None:
    """Make every failed server-side TLS handshake on `ctx` call `on_failure(reason)`, and every
    handshake a client begins call `on_attempt()`."""
    ctx.sslobject_class = type("RecordingSSLObject", (_RecordingSSLObject,),  # type: ignore[assignment]
                               {"on_failure": staticmethod(on_failure),
                                "on_attempt": staticmethod(on_attempt) if on_attempt else None})


def server_tls_context(cert: PathLike, key: PathLike, ca: PathLike | None = None, *,
                       require_client_cert: bool = False, crl: PathLike | None = None) -> ssl.SSLContext:
    """The CSMS side: present `cert`/`key`; profile 3 (`require_client_cert`) verifies the
    station's certificate against `ca` (and `crl`: a revoked certificate is refused)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(OCPP_TLS12_CIPHERS)
    ctx.load_cert_chain(str(cert), str(key))
    if require_client_cert:
        if ca is None:
            raise ValueError("security profile 3 needs the CA bundle that signs station certificates (tls.ca)")
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(ca))
        if crl is not None:
            ctx.load_verify_locations(cafile=str(crl))
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx


def client_tls_context(ca: PathLike, cert: PathLike | None = None, key: PathLike | None = None, *,
                       check_hostname: bool = True) -> ssl.SSLContext:
    """The station side: trust only `ca`, check the server's host name; profile 3 presents `cert`/`key`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(OCPP_TLS12_CIPHERS)
    ctx.load_verify_locations(cafile=str(ca))
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
    return ctx


def tls_security(profile: int, role: str, tls: dict[str, PathLike], username: str | None = None,
                 password: str | None = None) -> SecurityProfile:
    """SecurityProfile for `role` ("server" = the CSMS side, "client" = the station side) from a
    `tls:` mapping (ca, cert, key, crl; station side of profile 3: client_cert/client_key or cert/key)."""
    if profile < 2:
        return SecurityProfile(profile, username, password)
    missing = [k for k in (("cert", "key") if role == "server" else ("ca",)) if not tls.get(k)]
    if role == "server" and profile == 3 and not tls.get("ca"):
        missing.append("ca")
    if role == "client" and profile == 3 and not (tls.get("client_cert") or tls.get("cert")):
        missing.append("client_cert")
    if missing:
        raise ValueError(f"security profile {profile} ({role} side) needs tls.{', tls.'.join(missing)}")
    if role == "server":
        ctx = server_tls_context(tls["cert"], tls["key"], tls.get("ca"), require_client_cert=profile == 3,
                                 crl=tls.get("crl"))
    else:
        cert = tls.get("client_cert") or tls.get("cert") if profile == 3 else None
        key = tls.get("client_key") or tls.get("key") if profile == 3 else None
        ctx = client_tls_context(tls["ca"], cert, key)
    return SecurityProfile(profile, username, password, ctx)
