"""eMAID (e-Mobility Account Identifier): format and check digit.

Format (ISO 15118-2 Annex H / DIN SPEC 91286 / eMI3 "Contract-ID"), separators "-" optional:
    <Country 2 alpha> <Provider 3 alnum> <Instance 9 alnum> [<Check digit 1 alnum>]
so 14 characters, or 15 with the check digit. ISO 15118-2's variant starts the instance with the ID
type "C" (DE-8AA-C12345678-x); that is a special case of the same pattern. Case-insensitive.

Check digit: the eMI3 "Check Digit Calculation for Contract-IDs" scheme. Each character c in
0-9A-Z has a value v (0..35), split into q = v // 9 (two bits, Z2 x Z2) and r = v % 9 (two base-3
digits, Z3 x Z3). Position i (1-based) weighs q with P1^i over Z2 and r with P2^i over Z3, where
P1 = [[0,1],[1,1]] (order 3) and P2 = [[0,1],[1,2]] (order 8). The check digit is the one
character that makes both weighted sums over all 15 positions zero. Verified against the published
vectors (DE83DUIEN83QGZ -> D, FRXYZ123456789 -> 2, DE8AA001234567 -> 0; see tests).
"""

from __future__ import annotations

import re

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
EMAID_RE = re.compile(r"^[A-Z]{2}-?[A-Z0-9]{3}-?[A-Z0-9]{9}(-?[A-Z0-9])?$", re.IGNORECASE)

Matrix = tuple[tuple[int, int], tuple[int, int]]
_P1: Matrix = ((0, 1), (1, 1))
_P2: Matrix = ((0, 1), (1, 2))


def _mul(a: Matrix, b: Matrix, mod: int) -> Matrix:
    return (((a[0][0] * b[0][0] + a[0][1] * b[1][0]) % mod, (a[0][0] * b[0][1] + a[0][1] * b[1][1]) % mod),
            ((a[1][0] * b[0][0] + a[1][1] * b[1][0]) % mod, (a[1][0] * b[0][1] + a[1][1] * b[1][1]) % mod))


def _powers(p: Matrix, mod: int, n: int) -> list[Matrix]:
    out, cur = [], p
    for _ in range(n):          # out[i] = p^(i+1)
        out.append(cur)
        cur = _mul(cur, p, mod)
    return out


_P1_POW = _powers(_P1, 2, 15)
_P2_POW = _powers(_P2, 3, 15)


def _apply(m: Matrix, v: tuple[int, int], mod: int) -> tuple[int, int]:
    return ((m[0][0] * v[0] + m[0][1] * v[1]) % mod, (m[1][0] * v[0] + m[1][1] * v[1]) % mod)


def _sums(chars: str) -> tuple[tuple[int, int], tuple[int, int]]:
    q_sum, r_sum = (0, 0), (0, 0)
    for i, ch in enumerate(chars):
        v = ALPHABET.index(ch)
        q, r = divmod(v, 9)
        qa = _apply(_P1_POW[i], (q >> 1, q & 1), 2)
        ra = _apply(_P2_POW[i], divmod(r, 3), 3)
        q_sum = ((q_sum[0] + qa[0]) % 2, (q_sum[1] + qa[1]) % 2)
        r_sum = ((r_sum[0] + ra[0]) % 3, (r_sum[1] + ra[1]) % 3)
    return q_sum, r_sum


def normalize(emaid: str) -> str:
    """Upper case, separators removed ("de-8aa-c12345678" -> "DE8AAC12345678")."""
    return emaid.replace("-", "").upper()


def check_digit(emaid14: str) -> str:
    """The check digit of a 14-character eMAID (separators allowed)."""
    base = normalize(emaid14)
    if len(base) != 14 or any(c not in ALPHABET for c in base):
        raise ValueError(f"eMAID without check digit must be 14 characters 0-9A-Z, got {emaid14!r}")
    for candidate in ALPHABET:     # exactly one candidate zeroes both sums (the scheme is a bijection)
        if _sums(base + candidate) == ((0, 0), (0, 0)):
            return candidate
    raise AssertionError("no eMAID check digit found")  # unreachable for valid input


def with_check_digit(emaid14: str) -> str:
    """The 15-character eMAID: `emaid14` (normalized) followed by its check digit."""
    return normalize(emaid14) + check_digit(emaid14)


def emaid_problem(emaid: str) -> str | None:
    """Why `emaid` is not a well-formed eMAID, or None. A 15th character must be the right check digit."""
    if not EMAID_RE.match(emaid):
        return (f"{emaid!r} is not an eMAID (expected <country 2><provider 3><instance 9>[<check digit>], "
                "e.g. DE-8AA-C12345678-X)")
    n = normalize(emaid)
    if len(n) == 15 and check_digit(n[:14]) != n[14]:
        return f"eMAID {emaid!r} has check digit {n[14]!r}, expected {check_digit(n[:14])!r}"
    return None


def same_emaid(a: str, b: str) -> bool:
    """Equal as eMAIDs: case and separators ignored; a missing check digit on one side is tolerated."""
    na, nb = normalize(a), normalize(b)
    return na == nb or na[:14] == nb[:14] and min(len(na), len(nb)) == 14
