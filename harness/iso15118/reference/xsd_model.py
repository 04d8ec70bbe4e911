"""Just enough of an XSD reader to know, for every element of a V2G message, which children
and attributes it may have, whether it repeats, and which simple type its text has.

The reference codec's JSON is untyped (hexBinary and base64Binary are both strings, a list
of one may look like one object), so the bridge needs the schema to turn it into the
canonical form and back. Only the XSD constructs the V2G schemas use are handled:
sequence/choice, complexContent and simpleContent extension, simpleType restriction,
element refs, and substitution groups (the -2/DIN Body and the abstract parameter elements).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache

from harness.iso15118.exi.xsd import parse_with_prefixes
from harness.iso15118.schemas import ENTRY_FILES as _CODEC_ENTRY_FILES

XS = "http://www.w3.org/2001/XMLSchema"
QName = tuple[str, str]  # (namespace, local name)

# Built-in XSD simple types grouped by the Python type of the canonical form.
_INT_TYPES = {
    "byte", "short", "int", "long", "integer", "unsignedByte", "unsignedShort", "unsignedInt",
    "unsignedLong", "nonNegativeInteger", "positiveInteger", "negativeInteger",
    "nonPositiveInteger",
}
_KIND_BY_BUILTIN = {"boolean": "bool", "hexBinary": "hex", "base64Binary": "base64"}
# Value ranges of the built-in integer types (the EXI grammar encodes them by range).
_INT_RANGES = {
    "byte": (-(2**7), 2**7 - 1), "short": (-(2**15), 2**15 - 1), "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1), "unsignedByte": (0, 2**8 - 1), "unsignedShort": (0, 2**16 - 1),
    "unsignedInt": (0, 2**32 - 1), "unsignedLong": (0, 2**64 - 1), "nonNegativeInteger": (0, None),
    "positiveInteger": (1, None), "negativeInteger": (None, -1), "nonPositiveInteger": (None, 0),
}
_FACETS = ("enumeration", "minInclusive", "maxInclusive", "minExclusive", "maxExclusive",
           "length", "minLength", "maxLength")

# The entry file of each message schema name (the codec's table; xmldsig is only a fragment
# schema the bridge never converts whole messages of).
ENTRY_FILES = {name: entry for name, entry in _CODEC_ENTRY_FILES.items() if name != "xmldsig"}


def builtin_kind(local: str) -> str:
    """'int', 'bool', 'hex', 'base64' or 'str' for an XSD built-in type name."""
    if local in _INT_TYPES:
        return "int"
    return _KIND_BY_BUILTIN.get(local, "str")


@dataclass
class Child:
    """One child element as seen from its parent's content model."""

    name: str
    type_key: object  # a QName of a named type, or the anonymous type's XML node
    repeats: bool
    required: bool = False  # minOccurs >= 1 and not one branch of a choice


@dataclass
class ComplexInfo:
    """What an element of a given type may contain."""

    children: dict[str, Child] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)  # name -> kind
    text_kind: str | None = None  # simple content (or a plain simple type): its kind
    # Facets of the text: "enumeration" (list), "minInclusive", "maxInclusive", "length",
    # "minLength", "maxLength" (ints; lengths count characters, or bytes for binaries).
    facets: dict = field(default_factory=dict)


class SchemaSet:
    """All XSD files reachable by import/include from one entry file."""

    def __init__(self, schemas_dir: str, entry: str) -> None:
        self.schemas_dir = schemas_dir
        self.elements: dict[QName, ET.Element] = {}
        self.types: dict[QName, ET.Element] = {}
        self.substitutes: dict[QName, list[QName]] = {}  # head -> direct members
        self._node_ns: dict[int, str] = {}  # id(node) -> target namespace of its file
        self._node_prefixes: dict[int, dict[str, str]] = {}
        self._loaded: set[str] = set()
        self._load(os.path.join(schemas_dir, entry))

    # -- loading -------------------------------------------------------------------------
    def _find_file(self, base_dir: str, location: str) -> str:
        candidate = os.path.normpath(os.path.join(base_dir, location))
        if os.path.exists(candidate):
            return candidate
        # Some schemas import xmldsig from their own folder though it ships only once.
        for root, _dirs, files in os.walk(self.schemas_dir):
            if os.path.basename(location) in files:
                return os.path.join(root, os.path.basename(location))
        raise FileNotFoundError(f"XSD {location!r} imported from {base_dir} not found")

    def _load(self, path: str) -> None:
        path = os.path.realpath(path)
        if path in self._loaded:
            return
        self._loaded.add(path)
        root, prefixes = parse_with_prefixes(path)
        target_ns = root.get("targetNamespace", "")
        for node in root.iter():
            self._node_ns[id(node)] = target_ns
            self._node_prefixes[id(node)] = prefixes
        for node in root:
            tag = node.tag
            name = node.get("name")
            if tag == f"{{{XS}}}element" and name:
                qn = (target_ns, name)
                self.elements[qn] = node
                head = node.get("substitutionGroup")
                if head:
                    self.substitutes.setdefault(self.qname(node, head), []).append(qn)
            elif tag in (f"{{{XS}}}complexType", f"{{{XS}}}simpleType") and name:
                self.types[(target_ns, name)] = node
        for node in root:
            if node.tag in (f"{{{XS}}}import", f"{{{XS}}}include") and node.get("schemaLocation"):
                self._load(self._find_file(os.path.dirname(path), node.get("schemaLocation")))

    def qname(self, node: ET.Element, text: str) -> QName:
        prefix, _, local = text.rpartition(":")
        prefixes = self._node_prefixes[id(node)]
        if prefix:
            return (prefixes[prefix], local)
        return (prefixes.get("", ""), local)

    # -- queries -------------------------------------------------------------------------
    def global_element(self, local: str) -> tuple[QName, ET.Element]:
        matches = [(qn, node) for qn, node in self.elements.items() if qn[1] == local]
        if not matches:
            raise KeyError(f"no global element {local!r} in this schema")
        return matches[0]

    def element_type_key(self, node: ET.Element) -> object:
        type_name = node.get("type")
        if type_name:
            return self.qname(node, type_name)
        anonymous = [c for c in node if c.tag in (f"{{{XS}}}complexType", f"{{{XS}}}simpleType")]
        if anonymous:
            return anonymous[0]
        return (XS, "anyType")

    def info(self, type_key: object) -> ComplexInfo:
        return _info_cached(self, type_key if isinstance(type_key, tuple) else _NodeKey(type_key))

    def _type_node(self, type_key: object) -> ET.Element | None:
        if isinstance(type_key, _NodeKey):
            return type_key.node
        assert isinstance(type_key, tuple)
        if type_key[0] == XS:
            return None
        if type_key not in self.types:
            raise KeyError(f"unknown XSD type {type_key}")
        return self.types[type_key]

    def _build_info(self, type_key: object) -> ComplexInfo:
        node = self._type_node(type_key)
        if node is None:  # an XSD built-in
            local = type_key[1]  # type: ignore[index]
            facets = {}
            low, high = _INT_RANGES.get(local, (None, None))
            if low is not None:
                facets["minInclusive"] = low
            if high is not None:
                facets["maxInclusive"] = high
            return ComplexInfo(text_kind=builtin_kind(local), facets=facets)
        if node.tag == f"{{{XS}}}simpleType":
            kind, facets = self._simple(node)
            return ComplexInfo(text_kind=kind, facets=facets)
        info = ComplexInfo()
        self._collect(node, info, repeats=False, optional=False)
        return info

    def _simple(self, node: ET.Element) -> tuple[str, dict]:
        """Kind and facets of a simpleType (its own facets narrow its base's)."""
        for child in node.iter():
            if child.tag == f"{{{XS}}}restriction" and child.get("base"):
                base = self.info(self.qname(child, child.get("base")))
                return base.text_kind or "str", {**base.facets, **_own_facets(child)}
            if child.tag in (f"{{{XS}}}list", f"{{{XS}}}union"):
                return "str", {}
        return "str", {}

    def _collect(self, node: ET.Element, info: ComplexInfo, repeats: bool, optional: bool) -> None:
        """Walk a complexType's content model, adding children and attributes to info."""
        for child in node:
            tag = child.tag.rpartition("}")[2]
            if tag in ("sequence", "choice", "all"):
                many = repeats or _max_occurs_many(child)
                # A choice's branches are each optional (which one is present is the choice).
                loose = optional or child.get("minOccurs") == "0" or tag == "choice"
                self._collect(child, info, many, loose)
            elif tag == "element":
                required = not optional and child.get("minOccurs", "1") != "0"
                self._add_element(child, info, repeats or _max_occurs_many(child), required)
            elif tag == "attribute":
                name = child.get("name") or self.qname(child, child.get("ref", ""))[1]
                type_name = child.get("type")
                kind = self.info(self.qname(child, type_name)).text_kind if type_name else "str"
                info.attributes[name] = kind or "str"
            elif tag in ("complexContent", "simpleContent"):
                self._collect(child, info, repeats, optional)
            elif tag in ("extension", "restriction"):
                base = self.qname(child, child.get("base", "xs:anyType"))
                if base != (XS, "anyType"):
                    base_info = self.info(base)
                    info.children.update(base_info.children)
                    info.attributes.update(base_info.attributes)
                    if base_info.text_kind is not None:
                        info.text_kind = base_info.text_kind
                        info.facets = {**base_info.facets, **_own_facets(child)}
                self._collect(child, info, repeats, optional)

    def _add_element(self, node: ET.Element, info: ComplexInfo, repeats: bool, required: bool) -> None:
        if node.get("ref"):
            ref = self.qname(node, node.get("ref"))
            for member in self._substitution_closure(ref):
                target = self.elements[member]
                if target.get("abstract") == "true":
                    continue
                # A substitution group is a choice: no single member is required.
                members = self._substitution_closure(ref)
                info.children[member[1]] = Child(
                    member[1], self.element_type_key(target), repeats, required and len(members) == 1
                )
            return
        name = node.get("name", "")
        info.children[name] = Child(name, self.element_type_key(node), repeats, required)

    def _substitution_closure(self, head: QName) -> list[QName]:
        found, todo = [head], [head]
        while todo:
            for member in self.substitutes.get(todo.pop(), []):
                if member not in found:
                    found.append(member)
                    todo.append(member)
        return found


class _NodeKey:
    """Hashable wrapper for an anonymous type's XML node (identity-based)."""

    __slots__ = ("node",)

    def __init__(self, node: ET.Element) -> None:
        self.node = node

    def __hash__(self) -> int:
        return id(self.node)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _NodeKey) and other.node is self.node


@lru_cache(maxsize=None)
def _info_cached(schema: SchemaSet, key: object) -> ComplexInfo:
    return schema._build_info(key)


def _own_facets(restriction: ET.Element) -> dict:
    facets: dict = {}
    for facet in restriction:
        name = facet.tag.rpartition("}")[2]
        if name not in _FACETS or facet.get("value") is None:
            continue
        value = facet.get("value", "")
        if name == "enumeration":
            facets.setdefault("enumeration", []).append(value)
        else:
            try:
                facets[name] = int(value)
            except ValueError:
                continue  # non-integer bounds (none in the V2G schemas) are not checked
    return facets


def _max_occurs_many(node: ET.Element) -> bool:
    value = node.get("maxOccurs", "1")
    return value == "unbounded" or int(value) > 1


@lru_cache(maxsize=None)
def load_schema(schemas_dir: str, schema: str) -> SchemaSet:
    if schema not in ENTRY_FILES:
        raise ValueError(f"unknown schema {schema!r}; known: {sorted(ENTRY_FILES)}")
    return SchemaSet(schemas_dir, ENTRY_FILES[schema])
