"""Schema-informed EXI grammars (EXI 1.0 section 8.5) compiled to flat, picklable tables.

Per type: attribute uses (sorted by local name, then uri) followed by the content model are
turned into an epsilon-NFA, then determinised (the spec's "normalisation"). Event codes per
state: AT(qname) sorted by qname, then SE(qname) in schema order (substitution-group members
lexically), SE(*), EE, CH. Encoding is non-strict (as the reference EXIficient setup is), so
every element grammar state also has second-level productions: a state with n first-level
productions uses ceil(log2(n + 1)) bits for its first event-code part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from harness.iso15118.exi import datatypes as dt
from harness.iso15118.exi.xsd import (XS, UNBOUNDED, Attribute, ComplexType, ElementDecl, ModelGroup,
                                      Particle, QName, Schema, SimpleType, Wildcard)

# production kinds
AT, SE, EE, CH, SE_ANY = 0, 1, 2, 3, 4

# grammar kinds
COMPLEX, SIMPLE, SIMPLE_ATTRS = 0, 1, 2

# A production: (kind, local name, arg, next state, code); arg = datatype (AT/CH) or grammar index (SE).
Production = tuple


@dataclass
class State:
    width: int
    prods: list                     # by event code
    by_name: dict                   # local name -> production (AT and SE)
    ee: int                         # EE code or -1
    ch: Optional[tuple]             # CH production or None


@dataclass
class Grammar:
    name: str
    kind: int
    states: list
    list_names: frozenset           # children that may repeat (always lists in dicts)
    names: frozenset                # every child/attribute local name of this type
    attr_names: frozenset = field(default_factory=frozenset)


@dataclass
class Compiled:
    grammars: list
    doc_width: int
    doc_prods: list                 # (local name, grammar index) by event code
    doc_by_name: dict               # local name -> (code, grammar index)
    fragment_width: int = 0
    fragment_prods: list = field(default_factory=list)
    fragment_by_name: dict = field(default_factory=dict)


class _NFA:
    def __init__(self) -> None:
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple]] = []  # (key, sort_key, payload, target)

    def node(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1


class Builder:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.grammars: list[Optional[Grammar]] = []
        self._index: dict = {}
        self._queue: list = []
        self._dt_cache: dict = {}

    # -- public --------------------------------------------------------------------------
    def compile(self) -> Compiled:
        globals_ = sorted(self.schema.elements.values(), key=lambda e: (e.qname[1], e.qname[0]))
        doc_prods = [(e.qname[1], self.grammar_for(e)) for e in globals_]
        self._drain()
        doc_by_name: dict = {}
        for code, (name, gi) in enumerate(doc_prods):
            doc_by_name.setdefault(name, (code, gi))
        # Document content: SE(G_0..G_n-1), SE(*) -> n + 1 first-level codes, no second level.
        doc_width = len(doc_prods).bit_length()
        frag_prods = self._fragment_elements()
        self._drain()
        frag_by_name: dict = {}
        for code, (name, gi) in enumerate(frag_prods):
            frag_by_name.setdefault(name, (code, gi))
        # Fragment content: SE(F_0..F_n-1), SE(*), ED -> n + 2 first-level codes.
        frag_width = (len(frag_prods) + 1).bit_length()
        return Compiled(self.grammars, doc_width, doc_prods, doc_by_name,
                        frag_width, frag_prods, frag_by_name)

    def _fragment_elements(self) -> list:
        """(local name, grammar index or None) for every element qname declared anywhere.

        A qname declared with different types gets the relaxed element-fragment grammar in
        EXI; that is not supported here (grammar index None).
        """
        decls: dict = {}

        def type_key(e: ElementDecl):
            return e.type if isinstance(e.type, tuple) else id(e.type)

        def walk(p: Optional[Particle], seen: set) -> None:
            if p is None:
                return
            t = p.term
            if isinstance(t, ElementDecl):
                if t.ref is None:
                    decls.setdefault(t.qname, {})[type_key(t)] = t
                    inner = self._resolve_type(t.type) if t.type is not None else None
                    if isinstance(inner, ComplexType) and inner.name is None and id(inner) not in seen:
                        seen.add(id(inner))
                        walk(inner.particle, seen)
            elif isinstance(t, ModelGroup):
                for sub in t.particles:
                    walk(sub, seen)

        seen: set = set()
        for e in self.schema.elements.values():
            decls.setdefault(e.qname, {})[type_key(e)] = e
            inner = self._resolve_type(e.type) if e.type is not None else None
            if isinstance(inner, ComplexType) and inner.name is None:
                walk(inner.particle, seen)
        for t in self.schema.types.values():
            if isinstance(t, ComplexType):
                walk(t.particle, seen)
        out = []
        for qname in sorted(decls, key=lambda q: (q[1], q[0])):
            variants = decls[qname]
            gi = self.grammar_for(next(iter(variants.values()))) if len(variants) == 1 else None
            out.append((qname[1], gi))
        return out

    def grammar_for(self, decl: ElementDecl) -> int:
        typ = decl.type
        if typ is None and decl.ref is not None:
            typ = self.schema.elements[decl.ref].type
        key = typ if isinstance(typ, tuple) else id(typ)
        if key in self._index:
            return self._index[key]
        gi = len(self.grammars)
        self.grammars.append(None)
        self._index[key] = gi
        self._queue.append((gi, typ))
        return gi

    # -- internals -----------------------------------------------------------------------
    def _drain(self) -> None:
        while self._queue:
            gi, typ = self._queue.pop()
            self.grammars[gi] = self._build(typ)

    def _datatype(self, typ: Union[QName, SimpleType]) -> tuple:
        key = typ if isinstance(typ, tuple) else id(typ)
        if key not in self._dt_cache:
            self._dt_cache[key] = dt.resolve(self.schema, typ)
        return self._dt_cache[key]

    def _resolve_type(self, typ) -> Union[ComplexType, SimpleType, QName]:
        if isinstance(typ, tuple):
            if typ[0] == XS:
                if typ[1] == "anyType":
                    return ComplexType(name=typ, mixed=True, particle=Particle(0, UNBOUNDED, Wildcard("##any")))
                return typ
            return self.schema.types[typ]
        return typ

    def _flatten(self, ct: ComplexType) -> tuple[list[Attribute], Optional[Particle], Optional[tuple], bool]:
        """(attributes, particle, simple-content datatype, mixed) with derivation applied."""
        attrs = list(ct.attributes)
        particle = ct.particle
        simple = None
        mixed = ct.mixed
        if ct.base is not None and ct.base != (XS, "anyType"):
            base = self._resolve_type(ct.base)
            if isinstance(base, ComplexType):
                b_attrs, b_particle, b_simple, b_mixed = self._flatten(base)
                own = {a.qname for a in attrs}
                attrs = attrs + [a for a in b_attrs if a.qname not in own]
                if ct.derivation == "extension":
                    if b_particle is not None and particle is not None:
                        particle = Particle(1, 1, ModelGroup("sequence", [b_particle, particle]))
                    elif particle is None:
                        particle = b_particle
                    mixed = mixed or b_mixed
                simple = b_simple
                if ct.simple_content and ct.derivation == "restriction" and ct.simple_type is not None:
                    simple = self._datatype(ct.simple_type)
            else:  # simple type base (simpleContent extension)
                simple = self._datatype(ct.base)
        return attrs, particle, simple, mixed

    def _build(self, typ) -> Grammar:
        typ = self._resolve_type(typ)
        if not isinstance(typ, ComplexType):
            d = self._datatype(typ)
            s0 = _state([(CH, "", d, 1)], ee=False)
            s1 = _state([], ee=True)
            return Grammar(str(d[1]), SIMPLE, [s0, s1], frozenset(), frozenset())
        attrs, particle, simple, mixed = self._flatten(typ)
        attrs.sort(key=lambda a: (a.qname[1], a.qname[0]))
        nfa = _NFA()
        start = cur = nfa.node()
        for a in attrs:
            nxt = nfa.node()
            nfa.edges[cur].append((("AT", a.qname), (0, a.qname[1], a.qname[0]), (AT, a.qname[1], self._datatype(a.type)), nxt))
            if not a.required:
                nfa.eps[cur].append(nxt)
            cur = nxt
        content_start = len(nfa.eps) - 1
        list_names: set[str] = set()
        names: set[str] = {a.qname[1] for a in attrs}
        if simple is not None:
            end = nfa.node()
            nfa.edges[cur].append((("CH",), (4,), (CH, "", simple, None), end))
            kind = SIMPLE_ATTRS
        else:
            kind = COMPLEX
            if particle is None:
                end = cur
            else:
                counter = [0]
                end = self._particle(nfa, particle, cur, counter, list_names, names, False)
            if mixed:
                for n in range(content_start, len(nfa.eps)):
                    nfa.edges[n].append((("CH",), (4,), (CH, "", (dt.STRING, "untyped", 0, None, None), None), n))
        states = _determinise(nfa, start, end)
        name = typ.name[1] if typ.name else "anonymous"
        return Grammar(name, kind, states, frozenset(list_names), frozenset(names),
                       frozenset(a.qname[1] for a in attrs))

    def _particle(self, nfa: _NFA, p: Particle, start: int, counter: list, list_names: set,
                  names: set, repeated: bool) -> int:
        repeated = repeated or p.max == UNBOUNDED or p.max > 1
        order = counter[0]
        counter[0] += 1
        cur = start
        copies = p.min
        for _ in range(copies):
            cur = self._term(nfa, p.term, cur, order, counter, list_names, names, repeated)
        if p.max == UNBOUNDED:
            loop_end = self._term(nfa, p.term, cur, order, counter, list_names, names, repeated)
            nfa.eps[loop_end].append(cur)
            end = nfa.node()
            nfa.eps[cur].append(end)
            return end
        optional_ends = []
        for _ in range(p.max - p.min):
            optional_ends.append(cur)
            cur = self._term(nfa, p.term, cur, order, counter, list_names, names, repeated)
        for n in optional_ends:
            nfa.eps[n].append(cur)
        return cur

    def _term(self, nfa: _NFA, term, start: int, order: int, counter: list, list_names: set,
              names: set, repeated: bool) -> int:
        if isinstance(term, ElementDecl):
            end = nfa.node()
            if term.ref is not None:
                members = self.schema.substitution_members(term.ref)
            else:
                members = [term]
            members.sort(key=lambda e: (e.qname[1], e.qname[0]))
            for rank, m in enumerate(members):
                local = m.qname[1]
                names.add(local)
                if repeated:
                    list_names.add(local)
                nfa.edges[start].append((("SE", m.qname), (1, order, rank), (SE, local, self.grammar_for(m)), end))
            return end
        if isinstance(term, Wildcard):
            end = nfa.node()
            nfa.edges[start].append((("SE*",), (2, order), (SE_ANY, "*", None), end))
            return end
        assert isinstance(term, ModelGroup)
        if term.kind == "sequence":
            cur = start
            for sub in term.particles:
                cur = self._particle(nfa, sub, cur, counter, list_names, names, repeated)
            return cur
        if term.kind == "choice":
            end = nfa.node()
            for sub in term.particles:
                e = self._particle(nfa, sub, start, counter, list_names, names, repeated)
                nfa.eps[e].append(end)
            return end
        raise NotImplementedError("xs:all is not supported")


def _closure(nfa: _NFA, nodes) -> frozenset:
    seen = set(nodes)
    todo = list(nodes)
    while todo:
        n = todo.pop()
        for m in nfa.eps[n]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return frozenset(seen)


def _determinise(nfa: _NFA, start: int, accept: int) -> list:
    first = _closure(nfa, [start])
    index = {first: 0}
    order = [first]
    raw: list = []
    i = 0
    while i < len(order):
        cur = order[i]
        i += 1
        groups: dict = {}
        for n in sorted(cur):
            for key, sort_key, payload, target in nfa.edges[n]:
                g = groups.get(key)
                if g is None:
                    groups[key] = [sort_key, payload, {target}]
                else:
                    g[0] = min(g[0], sort_key)
                    g[2].add(target)
        prods = []
        for key, (sort_key, payload, targets) in groups.items():
            target_set = _closure(nfa, targets)
            if target_set not in index:
                index[target_set] = len(order)
                order.append(target_set)
            prods.append((sort_key, payload, index[target_set]))
        prods.sort(key=lambda p: p[0])
        raw.append((prods, accept in cur))
    states = []
    for prods, has_ee in raw:
        states.append(_state([(payload[0], payload[1], payload[2], nxt) for _sk, payload, nxt in prods], has_ee))
    return states


def _state(prods: list, ee: bool) -> State:
    """Assign event codes: the given productions (already ordered AT, SE, SE(*)), EE, CH last."""
    body = [p for p in prods if p[0] != CH]
    chs = [p for p in prods if p[0] == CH]
    out = []
    for kind, name, arg, nxt in body:
        out.append((kind, name, arg, nxt, len(out)))
    ee_code = -1
    if ee:
        ee_code = len(out)
        out.append((EE, "", None, None, ee_code))
    ch = None
    for kind, name, arg, nxt in chs:
        ch = (CH, name, arg, nxt, len(out))
        out.append(ch)
    by_name: dict = {}
    for p in out:
        if p[0] in (AT, SE):
            if p[1] in by_name:
                raise NotImplementedError(f"two productions named {p[1]!r} in one grammar state")
            by_name[p[1]] = p
    return State(width=len(out).bit_length(), prods=out, by_name=by_name, ee=ee_code, ch=ch)
