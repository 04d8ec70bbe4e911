"""A small XSD reader: just the constructs the V2G schemas use, resolved to plain objects.

Handles global/local elements (ref, substitutionGroup, abstract), named and anonymous
complex types (sequence/choice, extension/restriction, simpleContent, mixed, any),
attributes, and simple types (restriction facets, enumerations, lists).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Optional, Union

XS = "http://www.w3.org/2001/XMLSchema"
QName = tuple[str, str]  # (namespace uri, local name)

UNBOUNDED = -1


@dataclass
class SimpleType:
    name: Optional[QName]
    base: Optional[QName]  # None for built-ins
    facets: dict = field(default_factory=dict)
    enumeration: Optional[list[str]] = None
    item_type: Optional[Union[QName, "SimpleType"]] = None  # list variety
    base_inline: Optional["SimpleType"] = None


@dataclass
class Attribute:
    qname: QName
    type: Union[QName, SimpleType]
    required: bool


@dataclass
class Wildcard:
    namespace: str  # "##any", "##other", or a list of uris


@dataclass
class ElementDecl:
    qname: QName
    type: Union[QName, "ComplexType", SimpleType, None]
    abstract: bool = False
    substitution_head: Optional[QName] = None
    is_global: bool = False
    ref: Optional[QName] = None  # local particle that refers to a global element


@dataclass
class Particle:
    min: int
    max: int  # UNBOUNDED for unbounded
    term: Union[ElementDecl, Wildcard, "ModelGroup"]


@dataclass
class ModelGroup:
    kind: str  # "sequence" | "choice" | "all"
    particles: list[Particle]


@dataclass
class ComplexType:
    name: Optional[QName]
    base: Optional[QName] = None
    derivation: Optional[str] = None  # "extension" | "restriction"
    simple_content: bool = False
    simple_type: Optional[Union[QName, SimpleType]] = None  # simpleContent restriction facets
    mixed: bool = False
    attributes: list[Attribute] = field(default_factory=list)
    particle: Optional[Particle] = None
    abstract: bool = False


class Schema:
    """All components reachable from one entry XSD (imports/includes followed)."""

    def __init__(self, entry: str) -> None:
        self.entry = os.path.abspath(entry)
        self.elements: dict[QName, ElementDecl] = {}
        self.types: dict[QName, Union[ComplexType, SimpleType]] = {}
        self.files: list[str] = []
        self._seen: set[str] = set()
        self._load(self.entry)

    # -- loading -------------------------------------------------------------------------
    def _locate(self, base_dir: str, location: str) -> str:
        path = os.path.normpath(os.path.join(base_dir, location))
        if os.path.isfile(path):
            return path
        # The -2 schemas import xmldsig from their own folder though it ships one level up.
        alt = os.path.normpath(os.path.join(base_dir, "..", os.path.basename(location)))
        if os.path.isfile(alt):
            return alt
        raise FileNotFoundError(f"XSD {location!r} imported from {base_dir} not found")

    def _load(self, path: str) -> None:
        if path in self._seen:
            return
        self._seen.add(path)
        self.files.append(path)
        tree_root, nsmap = parse_with_prefixes(path)
        ctx = _Ctx(self, tree_root.get("targetNamespace", ""), nsmap,
                   tree_root.get("elementFormDefault") == "qualified",
                   tree_root.get("attributeFormDefault") == "qualified")
        base_dir = os.path.dirname(path)
        for node in tree_root:
            if node.tag in (f"{{{XS}}}import", f"{{{XS}}}include") and node.get("schemaLocation"):
                self._load(self._locate(base_dir, node.get("schemaLocation")))
        for node in tree_root:
            tag = _local(node.tag)
            if tag == "element":
                decl = ctx.element(node, is_global=True)
                self.elements[decl.qname] = decl
            elif tag == "complexType":
                ct = ctx.complex_type(node)
                self.types[ct.name] = ct
            elif tag == "simpleType":
                st = ctx.simple_type(node)
                self.types[st.name] = st

    # -- queries -------------------------------------------------------------------------
    def substitution_members(self, head: QName) -> list[ElementDecl]:
        """The head and every element substitutable for it, transitively.

        Abstract declarations are kept: EXIficient (the reference) gives them event codes too.
        """
        out: list[ElementDecl] = []
        todo = [head]
        seen: set[QName] = set()
        while todo:
            qn = todo.pop()
            if qn in seen:
                continue
            seen.add(qn)
            decl = self.elements[qn]
            out.append(decl)
            todo.extend(e.qname for e in self.elements.values() if e.substitution_head == qn)
        return out


def parse_with_prefixes(path: str) -> tuple[ET.Element, dict[str, str]]:
    """An XSD file's root element and its namespace prefixes (first declaration of each wins).

    Prefixes are needed to resolve type="p:name" (ElementTree drops them); the V2G schemas
    declare every prefix once, on the root."""
    nsmap: dict[str, str] = {}
    root = None
    for event, item in ET.iterparse(path, events=("start-ns", "end")):
        if event == "start-ns":
            prefix, uri = item
            nsmap.setdefault(prefix, uri)
        else:
            root = item                  # the root element ends last
    if root is None:
        raise ValueError(f"{path}: no XML element")
    return root, nsmap


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _occurs(node: ET.Element, name: str) -> int:
    value = node.get(name, "1")
    return UNBOUNDED if value == "unbounded" else int(value)


class _Ctx:
    def __init__(self, schema: Schema, tns: str, nsmap: dict[str, str],
                 qualified_elements: bool, qualified_attributes: bool) -> None:
        self.schema = schema
        self.tns = tns
        self.nsmap = nsmap
        self.qe = qualified_elements
        self.qa = qualified_attributes

    def qname(self, text: str) -> QName:
        prefix, _, local = text.rpartition(":")
        uri = self.nsmap.get(prefix, "" if prefix == "" else None)
        if uri is None:
            raise ValueError(f"unknown prefix in {text!r}")
        return (uri, local)

    def element(self, node: ET.Element, is_global: bool) -> ElementDecl:
        if node.get("ref"):
            ref = self.qname(node.get("ref"))
            return ElementDecl(qname=ref, type=None, ref=ref)
        name = node.get("name")
        ns = self.tns if (is_global or node.get("form", "qualified" if self.qe else "unqualified") == "qualified") else ""
        decl = ElementDecl(qname=(ns, name), type=None, is_global=is_global,
                           abstract=node.get("abstract") == "true")
        if node.get("substitutionGroup"):
            decl.substitution_head = self.qname(node.get("substitutionGroup"))
        if node.get("type"):
            decl.type = self.qname(node.get("type"))
        else:
            for child in node:
                tag = _local(child.tag)
                if tag == "complexType":
                    decl.type = self.complex_type(child)
                elif tag == "simpleType":
                    decl.type = self.simple_type(child)
            if decl.type is None:
                decl.type = (XS, "anyType")
        return decl

    def simple_type(self, node: ET.Element) -> SimpleType:
        name = (self.tns, node.get("name")) if node.get("name") else None
        st = SimpleType(name=name, base=None)
        for child in node:
            tag = _local(child.tag)
            if tag == "restriction":
                if child.get("base"):
                    st.base = self.qname(child.get("base"))
                for facet in child:
                    ftag = _local(facet.tag)
                    if ftag == "enumeration":
                        st.enumeration = (st.enumeration or []) + [facet.get("value")]
                    elif ftag == "simpleType":
                        st.base_inline = self.simple_type(facet)
                    elif ftag not in ("annotation",):
                        st.facets[ftag] = facet.get("value")
            elif tag == "list":
                if child.get("itemType"):
                    st.item_type = self.qname(child.get("itemType"))
                else:
                    st.item_type = self.simple_type(next(c for c in child if _local(c.tag) == "simpleType"))
            elif tag == "union":
                raise NotImplementedError("xs:union is not supported")
        return st

    def complex_type(self, node: ET.Element) -> ComplexType:
        name = (self.tns, node.get("name")) if node.get("name") else None
        ct = ComplexType(name=name, mixed=node.get("mixed") == "true",
                         abstract=node.get("abstract") == "true")
        self._complex_body(node, ct)
        return ct

    def _complex_body(self, node: ET.Element, ct: ComplexType) -> None:
        for child in node:
            tag = _local(child.tag)
            if tag in ("sequence", "choice", "all"):
                ct.particle = self.particle(child)
            elif tag == "attribute":
                ct.attributes.append(self.attribute(child))
            elif tag == "anyAttribute":
                raise NotImplementedError("xs:anyAttribute is not supported")
            elif tag in ("complexContent", "simpleContent"):
                if child.get("mixed") == "true":
                    ct.mixed = True
                ct.simple_content = tag == "simpleContent"
                for deriv in child:
                    dtag = _local(deriv.tag)
                    if dtag in ("extension", "restriction"):
                        ct.base = self.qname(deriv.get("base"))
                        ct.derivation = dtag
                        if ct.simple_content and dtag == "restriction":
                            st = self.simple_type_from_facets(deriv, ct.base)
                            ct.simple_type = st
                        self._complex_body(deriv, ct)

    def simple_type_from_facets(self, node: ET.Element, base: QName) -> SimpleType:
        st = SimpleType(name=None, base=base)
        for facet in node:
            ftag = _local(facet.tag)
            if ftag == "enumeration":
                st.enumeration = (st.enumeration or []) + [facet.get("value")]
            elif ftag not in ("annotation", "attribute", "anyAttribute", "sequence", "choice"):
                st.facets[ftag] = facet.get("value")
        return st

    def attribute(self, node: ET.Element) -> Attribute:
        if node.get("ref"):
            raise NotImplementedError("attribute ref is not supported")
        name = node.get("name")
        qualified = node.get("form", "qualified" if self.qa else "unqualified") == "qualified"
        qn = (self.tns if qualified else "", name)
        if node.get("type"):
            typ: Union[QName, SimpleType] = self.qname(node.get("type"))
        else:
            inline = [c for c in node if _local(c.tag) == "simpleType"]
            typ = self.simple_type(inline[0]) if inline else (XS, "anySimpleType")
        return Attribute(qname=qn, type=typ, required=node.get("use") == "required")

    def particle(self, node: ET.Element) -> Particle:
        tag = _local(node.tag)
        lo, hi = _occurs(node, "minOccurs"), _occurs(node, "maxOccurs")
        if tag == "element":
            return Particle(lo, hi, self.element(node, is_global=False))
        if tag == "any":
            return Particle(lo, hi, Wildcard(node.get("namespace", "##any")))
        if tag in ("sequence", "choice", "all"):
            parts = [self.particle(c) for c in node if _local(c.tag) in ("element", "any", "sequence", "choice", "all")]
            return Particle(lo, hi, ModelGroup(tag, parts))
        raise NotImplementedError(f"particle {tag} is not supported")
