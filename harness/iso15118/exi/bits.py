"""Bit-packed EXI streams: writer and reader on Python ints (MSB first)."""

from __future__ import annotations


class DecodeError(ValueError):
    """The EXI stream does not fit the grammar (or is truncated)."""


class BitWriter:
    __slots__ = ("acc", "nbits")

    def __init__(self) -> None:
        self.acc = 0
        self.nbits = 0

    def bits(self, value: int, n: int) -> None:
        if n:
            self.acc = (self.acc << n) | value
            self.nbits += n

    def uint(self, value: int) -> None:
        """EXI Unsigned Integer: 7-bit groups, least significant first, high bit = more."""
        if value < 128:
            self.acc = (self.acc << 8) | value
            self.nbits += 8
            return
        while True:
            low = value & 0x7F
            value >>= 7
            if value:
                self.acc = (self.acc << 8) | 0x80 | low
            else:
                self.acc = (self.acc << 8) | low
            self.nbits += 8
            if not value:
                return

    def raw_bytes(self, data: bytes) -> None:
        if data:
            self.acc = (self.acc << (8 * len(data))) | int.from_bytes(data, "big")
            self.nbits += 8 * len(data)

    def getvalue(self) -> bytes:
        pad = -self.nbits % 8
        total = self.nbits + pad
        return (self.acc << pad).to_bytes(total // 8, "big")


class BitReader:
    __slots__ = ("val", "total", "pos")

    def __init__(self, data: bytes) -> None:
        self.val = int.from_bytes(data, "big")
        self.total = 8 * len(data)
        self.pos = 0

    def bits(self, n: int) -> int:
        if not n:
            return 0
        pos = self.pos + n
        if pos > self.total:
            raise DecodeError("EXI stream ends too early")
        self.pos = pos
        return (self.val >> (self.total - pos)) & ((1 << n) - 1)

    def uint(self) -> int:
        result = 0
        shift = 0
        while True:
            b = self.bits(8)
            result |= (b & 0x7F) << shift
            if b < 128:
                return result
            shift += 7

    def raw_bytes(self, n: int) -> bytes:
        return self.bits(8 * n).to_bytes(n, "big") if n else b""
