"""Encode/decode canonical message dicts to/from schema-informed EXI (bit-packed, no options).

Stream layout as produced by the reference EXIficient setup of the iso15118 package:
header byte 0x80 (no cookie, no options, final version 1), document grammar, non-strict
element grammars, string values always literal (valuePartitionCapacity = 0).
"""

from __future__ import annotations

from typing import Any

from harness.iso15118.exi import datatypes as dt
from harness.iso15118.exi.bits import BitReader, BitWriter, DecodeError
from harness.iso15118.exi.grammar import AT, CH, EE, SE, SIMPLE, SIMPLE_ATTRS, Compiled

_HEADER = 0x80
_MISSING = object()


class EncodeError(ValueError):
    """The message does not fit the schema; the text names the path of the offending item."""


class Codec:
    def __init__(self, name: str, compiled: Compiled) -> None:
        self.name = name
        self._c = compiled
        self._g = compiled.grammars
        # (CH width, CH code, datatype, EE width, EE code) per simple-type grammar, else None
        self._simple = [
            (g.states[0].width, g.states[0].ch[4], g.states[0].ch[2], g.states[1].width, g.states[1].ee)
            if g.kind == SIMPLE else None
            for g in compiled.grammars]

    # -- public --------------------------------------------------------------------------
    @property
    def root_elements(self) -> list[str]:
        return [name for name, _gi in self._c.doc_prods]

    def encode(self, message: dict) -> bytes:
        if not isinstance(message, dict) or len(message) != 1:
            raise EncodeError("a message is a dict with exactly one key (its root element)")
        (root, value), = message.items()
        entry = self._c.doc_by_name.get(root)
        if entry is None:
            raise EncodeError(f"{root}: not a global element of schema {self.name!r}")
        code, gi = entry
        w = BitWriter()
        w.bits(_HEADER, 8)
        w.bits(code, self._c.doc_width)
        self._enc_elem(w, gi, value, root)
        return w.getvalue()  # DocEnd has ED only: 0 bits

    def decode(self, data: bytes) -> dict:
        r = BitReader(bytes(data))
        if r.bits(8) != _HEADER:
            raise DecodeError("EXI header must be 0x80 (no cookie, no options, version 1)")
        code = r.bits(self._c.doc_width)
        if code >= len(self._c.doc_prods):
            raise DecodeError("document starts with an element not declared in the schema")
        root, gi = self._c.doc_prods[code]
        return {root: self._dec_elem(r, gi, root)}

    def encode_fragment(self, message: dict) -> bytes:
        """EXI fragment (as signed in ISO 15118: SignedInfo, or a body element with an Id)."""
        if not isinstance(message, dict) or len(message) != 1:
            raise EncodeError("a fragment is a dict with exactly one key (its element)")
        (root, value), = message.items()
        entry = self._c.fragment_by_name.get(root)
        if entry is None:
            raise EncodeError(f"{root}: not an element of schema {self.name!r}")
        code, gi = entry
        if gi is None:
            raise EncodeError(f"{root}: declared with several types; relaxed fragment grammar unsupported")
        w = BitWriter()
        w.bits(_HEADER, 8)
        width = self._c.fragment_width
        w.bits(code, width)
        self._enc_elem(w, gi, value, root)
        w.bits(len(self._c.fragment_prods) + 1, width)  # ED
        return w.getvalue()

    def decode_fragment(self, data: bytes) -> dict:
        r = BitReader(bytes(data))
        if r.bits(8) != _HEADER:
            raise DecodeError("EXI header must be 0x80 (no cookie, no options, version 1)")
        width = self._c.fragment_width
        code = r.bits(width)
        if code >= len(self._c.fragment_prods):
            raise DecodeError("fragment starts with an element not declared in the schema")
        root, gi = self._c.fragment_prods[code]
        if gi is None:
            raise DecodeError(f"{root}: relaxed fragment grammar unsupported")
        out = {root: self._dec_elem(r, gi, root)}
        if r.bits(width) != len(self._c.fragment_prods) + 1:
            raise DecodeError("fragment holds more than one element")
        return out

    # -- encoding ------------------------------------------------------------------------
    def _enc_elem(self, w: BitWriter, gi: int, value: Any, path: str) -> None:
        g = self._g[gi]
        states = g.states
        if g.kind == SIMPLE:
            st = states[0]
            ch = st.ch
            w.bits(ch[4], st.width)
            _enc_value(w, ch[2], value, path)
            st = states[1]
            w.bits(st.ee, st.width)
            return
        if not isinstance(value, dict):
            raise EncodeError(f"{path}: expected a dict for complex element, got {type(value).__name__}")
        remaining = dict(value)
        simples = self._simple
        text = _MISSING
        if g.kind == SIMPLE_ATTRS:
            text = remaining.pop("value", _MISSING)
            if text is _MISSING:
                raise EncodeError(f"{path}: simple content with attributes needs a 'value' key")
        unknown = [k for k in remaining if k not in g.names]
        if unknown:
            raise EncodeError(f"{path}: unknown child/attribute {', '.join(map(repr, unknown))}"
                              f" (allowed: {', '.join(sorted(g.names))})")
        pos: dict = {}
        for name in g.list_names.intersection(remaining):
            items = remaining[name]
            if not isinstance(items, list):
                raise EncodeError(f"{path}/{name}: may repeat, so it must be a list")
            if not items:
                del remaining[name]
        s = 0
        while True:
            st = states[s]
            best = None
            by_name = st.by_name
            for name in remaining:
                p = by_name.get(name)
                if p is not None and (best is None or p[4] < best[4]):
                    best = p
            if best is None:
                if text is not _MISSING and st.ch is not None:
                    ch = st.ch
                    w.bits(ch[4], st.width)
                    _enc_value(w, ch[2], text, path)
                    text = _MISSING
                    s = ch[3]
                    continue
                if st.ee >= 0 and not remaining and text is _MISSING:
                    w.bits(st.ee, st.width)
                    return
                expected = [p[1] for p in st.prods if p[0] in (AT, SE)]
                if remaining:
                    raise EncodeError(f"{path}: {', '.join(remaining)} not allowed here "
                                      f"(expected {' | '.join(expected) or 'end of element'})")
                raise EncodeError(f"{path}: missing required {' | '.join(expected) or 'content'}")
            kind, name, arg, nxt, code = best
            w.bits(code, st.width)
            item = remaining[name]
            sub = f"{path}/{name}"
            if name in g.list_names:
                i = pos.get(name, 0)
                pos[name] = i + 1
                if i + 1 >= len(item):
                    del remaining[name]
                item = item[i]
                sub = f"{sub}[{i}]"
            else:
                del remaining[name]
            if kind == SE:
                simple = simples[arg]
                if simple is not None:  # inline the common CH-then-EE grammar of simple types
                    w.bits(simple[1], simple[0])
                    _enc_value(w, simple[2], item, sub)
                    w.bits(simple[4], simple[3])
                else:
                    self._enc_elem(w, arg, item, sub)
            elif kind == AT:
                _enc_value(w, arg, item, sub)
            else:  # SE(*): wildcard content needs built-in grammars
                raise EncodeError(f"{sub}: wildcard (xs:any) content is not supported")
            s = nxt

    # -- decoding ------------------------------------------------------------------------
    def _dec_elem(self, r: BitReader, gi: int, path: str) -> Any:
        g = self._g[gi]
        states = g.states
        if g.kind == SIMPLE:
            st = states[0]
            if r.bits(st.width) != st.ch[4]:
                raise DecodeError(f"{path}: untyped/second-level content is not supported")
            value = _dec_value(r, st.ch[2], path)
            st = states[1]
            if r.bits(st.width) != st.ee:
                raise DecodeError(f"{path}: expected end of element")
            return value
        out: dict = {}
        list_names = g.list_names
        s = 0
        while True:
            st = states[s]
            code = r.bits(st.width)
            prods = st.prods
            if code >= len(prods):
                raise DecodeError(f"{path}: second-level event (schema deviation) is not supported")
            kind, name, arg, nxt, _code = prods[code]
            if kind == EE:
                return out
            if kind == SE:
                simple = self._simple[arg]
                if simple is not None and r.bits(simple[0]) == simple[1]:
                    value = _dec_value(r, simple[2], path)
                    if r.bits(simple[3]) != simple[4]:
                        raise DecodeError(f"{path}/{name}: expected end of element")
                elif simple is not None:
                    raise DecodeError(f"{path}/{name}: untyped/second-level content is not supported")
                else:
                    value = self._dec_elem(r, arg, f"{path}/{name}")
            elif kind == AT:
                value = _dec_value(r, arg, f"{path}/{name}")
            elif kind == CH:
                out["value"] = _dec_value(r, arg, path)
                s = nxt
                continue
            else:
                raise DecodeError(f"{path}: wildcard (xs:any) content is not supported")
            if name in list_names:
                out.setdefault(name, []).append(value)
            else:
                out[name] = value
            s = nxt


def _enc_value(w: BitWriter, d: tuple, v: Any, path: str) -> None:
    kind = d[0]
    if kind == dt.STRING:
        if not isinstance(v, str):
            raise EncodeError(f"{path}: expected str for {d[1]}, got {type(v).__name__}")
        n = len(v)
        if n < d[2] or (d[3] is not None and n > d[3]):
            raise EncodeError(f"{path}: length {n} outside {d[2]}..{d[3]} of {d[1]}")
        w.uint(n + 2)  # string-table miss: length + 2 (the table is never hit, capacity 0)
        if v.isascii():
            w.raw_bytes(v.encode("ascii"))
        else:
            for c in v:
                w.uint(ord(c))
    elif kind == dt.NBIT:
        if type(v) is not int:
            raise EncodeError(f"{path}: expected int for {d[1]}, got {type(v).__name__}")
        if v < d[3] or v > d[4]:
            raise EncodeError(f"{path}: {v} out of range {d[1]} ({d[3]}..{d[4]})")
        w.bits(v - d[3], d[2])
    elif kind == dt.ENUM:
        i = d[4].get(v) if isinstance(v, str) else None
        if i is None:
            raise EncodeError(f"{path}: {v!r} is not a {d[1]} value ({', '.join(d[3])})")
        w.bits(i, d[2])
    elif kind == dt.BOOLEAN:
        if type(v) is not bool:
            raise EncodeError(f"{path}: expected bool, got {type(v).__name__}")
        w.bits(1 if v else 0, 1)
    elif kind == dt.UINT or kind == dt.INT:
        if type(v) is not int:
            raise EncodeError(f"{path}: expected int for {d[1]}, got {type(v).__name__}")
        lo, hi = d[2], d[3]
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise EncodeError(f"{path}: {v} out of range {d[1]} ({lo}..{hi})")
        if kind == dt.UINT:
            w.uint(v)
        elif v < 0:
            w.bits(1, 1)
            w.uint(-v - 1)
        else:
            w.bits(0, 1)
            w.uint(v)
    elif kind == dt.BINARY:
        if not isinstance(v, (bytes, bytearray)):
            raise EncodeError(f"{path}: expected bytes for {d[1]}, got {type(v).__name__}")
        n = len(v)
        if n < d[2] or (d[3] is not None and n > d[3]):
            raise EncodeError(f"{path}: {n} bytes outside {d[2]}..{d[3]} of {d[1]}")
        w.uint(n)
        w.raw_bytes(bytes(v))
    elif kind == dt.LIST:
        if not isinstance(v, list):
            raise EncodeError(f"{path}: expected a list for {d[1]}")
        w.uint(len(v))
        for i, item in enumerate(v):
            _enc_value(w, d[2], item, f"{path}[{i}]")
    else:
        raise EncodeError(f"{path}: datatype {d[1]} is not supported")


def _dec_value(r: BitReader, d: tuple, path: str) -> Any:
    kind = d[0]
    if kind == dt.STRING:
        n = r.uint()
        if n < 2:
            raise DecodeError(f"{path}: string-table hit, but the string table is disabled")
        n -= 2
        chars = []
        for _ in range(n):
            chars.append(chr(r.uint()))
        return "".join(chars)
    if kind == dt.NBIT:
        return r.bits(d[2]) + d[3]
    if kind == dt.ENUM:
        i = r.bits(d[2])
        if i >= len(d[3]):
            raise DecodeError(f"{path}: enumeration index {i} out of range for {d[1]}")
        return d[3][i]
    if kind == dt.BOOLEAN:
        return bool(r.bits(1))
    if kind == dt.UINT:
        return r.uint()
    if kind == dt.INT:
        if r.bits(1):
            return -r.uint() - 1
        return r.uint()
    if kind == dt.BINARY:
        return r.raw_bytes(r.uint())
    if kind == dt.LIST:
        return [_dec_value(r, d[2], path) for _ in range(r.uint())]
    raise DecodeError(f"{path}: datatype {d[1]} is not supported")
