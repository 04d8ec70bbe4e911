"""Redaction of secrets from everything the report layer writes.

A secret can leak in more shapes than its plain text: inside a JSON string (escaped), in a
URL (percent-encoded), and above all base64-encoded in an `Authorization: Basic` header,
where it sits after an arbitrary `user:` prefix. `Redactor` handles all of these:

* literal forms (plain, JSON-escaped, percent-encoded) are replaced wherever they occur;
* `base64("<user>:<secret>")` is replaced exactly for every user name given;
* for any *other* prefix, base64 still contains a fixed run of characters that depends only
  on the secret (for each of the three byte alignments): any base64-looking token that
  contains such a run is replaced whole. This catches Basic-auth headers for user names we
  were never told about.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

MASK = "***"

# Base64 (standard and URL-safe alphabets) token, optionally padded.
_B64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{4,}={0,2}")
# Shorter alignment-independent cores match too much unrelated text.
_MIN_CORE = 6


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64_cores(secret: bytes) -> set[str]:
    """The base64 characters that encode only bytes of `secret`, for each alignment.

    With `a` bytes of arbitrary prefix, the 3-byte groups lying entirely inside the secret
    encode to the same 4 characters whatever the prefix is.
    """
    cores: set[str] = set()
    for a in range(3):
        enc = _b64(b"\0" * a + secret)
        first = -(-a // 3)                      # first group starting at/after the secret
        last = (a + len(secret)) // 3           # groups before this end inside the secret
        if last > first:
            core = enc[4 * first:4 * last]
            if len(core) >= _MIN_CORE:
                cores.add(core)
                cores.add(core.replace("+", "-").replace("/", "_"))   # URL-safe alphabet
    return cores


class Redactor:
    """Replaces secrets with `***` in text and in JSON-like data.

    `users` are user names that may pair with a secret in HTTP Basic auth (for OCPP the
    station id); their `base64(user:secret)` forms are redacted exactly.
    """

    def __init__(self, secrets: Iterable[str], users: Iterable[str] = ()):
        plain = {s for s in secrets if s}
        users = [u for u in users if u]
        literals: set[str] = set()
        for s in plain:
            literals.add(s)
            literals.add(json.dumps(s, ensure_ascii=False)[1:-1])   # as it appears inside a JSON string
            literals.add(json.dumps(s)[1:-1])
            literals.add(quote(s, safe=""))                          # in a URL
            for u in users:
                raw = f"{u}:{s}".encode()
                literals.add(_b64(raw))
                literals.add(base64.urlsafe_b64encode(raw).decode("ascii"))
        literals.discard("")
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(literals, key=len, reverse=True)
        self._literal = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._cores = sorted({c for s in plain for c in _b64_cores(s.encode())}, key=len, reverse=True)
        self.secrets: tuple[str, ...] = tuple(sorted(plain, key=len, reverse=True))

    @classmethod
    def for_profile(cls, profile: Any, extra: Iterable[str] = ()) -> Redactor:
        """A redactor for a DUT profile (`harness.dut.profile.DutProfile`): its secrets, with
        the station id and any configured user name as Basic-auth user names."""
        creds = getattr(profile, "credentials", {}) or {}
        users = [getattr(profile, "station_id", ""), *(str(creds[k]) for k in ("username", "user") if creds.get(k))]
        return cls([*profile.secrets(), *extra], users=users)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, s: str) -> str:
        if not self.secrets or not s:
            return s
        if self._literal is not None:
            s = self._literal.sub(MASK, s)
        if self._cores:
            s = _B64_TOKEN.sub(self._mask_b64_token, s)
        return s

    def _mask_b64_token(self, m: re.Match[str]) -> str:
        token = m.group(0)
        return MASK if any(core in token for core in self._cores) else token

    def obj(self, o: Any) -> Any:
        """A deep copy of JSON-like data with every string (keys included) redacted."""
        if isinstance(o, str):
            return self.text(o)
        if isinstance(o, dict):
            return {self.obj(k): self.obj(v) for k, v in o.items()}
        if isinstance(o, list):
            return [self.obj(v) for v in o]
        if isinstance(o, tuple):
            return tuple(self.obj(v) for v in o)
        if isinstance(o, (bytes, bytearray)):
            return self.text(bytes(o).decode("utf-8", "replace")).encode("utf-8")
        return o


NO_REDACTION = Redactor(())
