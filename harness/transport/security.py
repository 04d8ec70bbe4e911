"""OCPP security profiles as seen by the transport (OCPP 2.0.1 Part 2 A00, 1.6 Security Whitepaper).

Profile 0: plain ws, no auth (lab only).  Profile 1: ws + HTTP Basic auth.
Profile 2: wss (TLS, server certificate) + Basic auth.  Profile 3: wss with mutual TLS.
Profiles 2–3 need certificates; the seam is here (`ssl_context`), the PKI comes later.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from dataclasses import dataclass


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
                             "(TLS profiles arrive with `charger-harness pki`)")

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
