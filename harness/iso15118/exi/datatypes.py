"""EXI datatype representations (EXI 1.0 section 7) chosen for XSD simple types.

A datatype is a plain tuple so compiled grammars pickle small and dispatch fast:
``(kind, name, a, b, c)`` where the meaning of a/b/c depends on kind (see below).
"""

from __future__ import annotations

from typing import Union

from harness.iso15118.exi.xsd import XS, QName, Schema, SimpleType

# kinds
STRING = 0   # a = minLength, b = maxLength
BOOLEAN = 1
NBIT = 2     # a = bits, b = min, c = max        (bounded integer, range < 4096)
UINT = 3     # a = min (>= 0), b = max or None   (unsigned integer)
INT = 4      # a = min or None, b = max or None  (signed integer)
ENUM = 5     # a = bits, b = tuple(values), c = {value: index}
BINARY = 6   # a = minLength, b = maxLength, c = "hex" | "base64"
LIST = 7     # a = item datatype

Datatype = tuple

_INT_RANGES: dict[str, tuple] = {
    "integer": (None, None), "long": (-(1 << 63), (1 << 63) - 1), "int": (-(1 << 31), (1 << 31) - 1),
    "short": (-32768, 32767), "byte": (-128, 127),
    "nonNegativeInteger": (0, None), "positiveInteger": (1, None),
    "unsignedLong": (0, (1 << 64) - 1), "unsignedInt": (0, (1 << 32) - 1),
    "unsignedShort": (0, 65535), "unsignedByte": (0, 255),
    "nonPositiveInteger": (None, 0), "negativeInteger": (None, -1),
}
_STRINGS = {"string", "normalizedString", "token", "language", "Name", "NCName", "NMTOKEN",
            "ID", "IDREF", "ENTITY", "anyURI", "anySimpleType", "QName"}


def resolve(schema: Schema, typ: Union[QName, SimpleType]) -> Datatype:
    """The EXI datatype of an XSD simple type (named or anonymous)."""
    facets: dict = {}
    enumeration = None
    display = None
    st = typ
    while True:
        if isinstance(st, tuple):
            if display is None:
                display = st[1]
            if st[0] == XS:
                return _builtin(st[1], facets, enumeration, display, schema)
            st = schema.types[st]
        if not isinstance(st, SimpleType):
            raise TypeError(f"{display}: not a simple type")
        if st.item_type is not None:
            return (LIST, display or "list", resolve(schema, st.item_type), None, None)
        for key, value in st.facets.items():
            facets.setdefault(key, value)
        if enumeration is None and st.enumeration is not None:
            enumeration = st.enumeration
        if st.base_inline is not None:
            st = st.base_inline
        else:
            st = st.base


def _builtin(base: str, facets: dict, enumeration, display: str, schema: Schema) -> Datatype:
    if enumeration is not None and base not in ("QName", "NOTATION"):
        values = tuple(enumeration)
        bits = (len(values) - 1).bit_length()
        return (ENUM, display, bits, values, {v: i for i, v in enumerate(values)})
    if base in _INT_RANGES:
        lo, hi = _INT_RANGES[base]
        if "minInclusive" in facets:
            lo = _tighter(lo, int(facets["minInclusive"]), max)
        if "minExclusive" in facets:
            lo = _tighter(lo, int(facets["minExclusive"]) + 1, max)
        if "maxInclusive" in facets:
            hi = _tighter(hi, int(facets["maxInclusive"]), min)
        if "maxExclusive" in facets:
            hi = _tighter(hi, int(facets["maxExclusive"]) - 1, min)
        if lo is not None and hi is not None and hi - lo < 4096:
            return (NBIT, display, (hi - lo).bit_length(), lo, hi)
        if lo is not None and lo >= 0:
            return (UINT, display, lo, hi, None)
        return (INT, display, lo, hi, None)
    if base == "boolean":
        return (BOOLEAN, display, None, None, None)
    if base in ("hexBinary", "base64Binary"):
        lo, hi = _lengths(facets)
        return (BINARY, display, lo, hi, "hex" if base == "hexBinary" else "base64")
    if base in _STRINGS:
        lo, hi = _lengths(facets)
        return (STRING, display, lo, hi, None)
    raise NotImplementedError(f"XSD built-in type xs:{base} is not supported")


def _tighter(current, new, pick):
    return new if current is None else pick(current, new)


def _lengths(facets: dict) -> tuple[int, int | None]:
    if "length" in facets:
        n = int(facets["length"])
        return n, n
    return int(facets.get("minLength", 0)), (int(facets["maxLength"]) if "maxLength" in facets else None)
