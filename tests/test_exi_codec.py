"""The pure-Python EXI codec: round-trips, grammar spot checks, known bytes, clear errors.

Known byte strings below were produced by the iso15118 package's EXICodec.jar.
"""

from __future__ import annotations

import random
import string

import pytest

from harness.iso15118 import schemas
from harness.iso15118.schemas import SchemasUnavailable


@pytest.fixture(scope="module", autouse=True)
def _schemas_available():
    try:
        schemas.schemas_dir(download=False)
    except SchemasUnavailable as exc:
        pytest.skip(f"V2G schemas not cached (fill once: python -m harness.iso15118.schemas): {exc}")


def _codec(name: str):
    from harness.iso15118.exi import codec_for

    return codec_for(name)


def _abstract_names(name: str) -> frozenset:
    from harness.iso15118.exi.xsd import Schema

    schema = Schema(str(schemas.schema_file(name)))
    return frozenset(e.qname[1] for e in schema.elements.values() if e.abstract)


# -- a seeded message generator that walks the compiled grammars ------------------------------
def _value(d: tuple, rng: random.Random):
    from harness.iso15118.exi import datatypes as dt

    kind = d[0]
    if kind == dt.STRING:
        hi = min(d[3] if d[3] is not None else 12, 12)
        n = rng.randint(max(d[2], 1), max(hi, d[2], 1))
        return "i" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n - 1))
    if kind == dt.NBIT:
        return rng.randint(d[3], d[4])
    if kind == dt.UINT:
        hi = d[3] if d[3] is not None else 10**12
        return rng.choice([d[2], rng.randint(d[2], min(hi, 200)), hi])
    if kind == dt.INT:
        lo = d[2] if d[2] is not None else -(10**12)
        hi = d[3] if d[3] is not None else 10**12
        return rng.choice([lo, hi, 0, -1, rng.randint(max(lo, -300), min(hi, 300))])
    if kind == dt.ENUM:
        return rng.choice(d[3])
    if kind == dt.BOOLEAN:
        return rng.random() < 0.5
    if kind == dt.BINARY:
        hi = min(d[3] if d[3] is not None else 40, 40)
        return bytes(rng.randrange(256) for _ in range(rng.randint(max(d[2], 1), max(hi, d[2], 1))))
    raise AssertionError(f"no generator for {d}")


def _generate(codec, gi: int, rng: random.Random, avoid: frozenset, force: str | None = None,
              depth: int = 0):
    from harness.iso15118.exi.grammar import AT, CH, SIMPLE, SIMPLE_ATTRS

    g = codec._g[gi]
    if g.kind == SIMPLE:
        return _value(g.states[0].ch[2], rng)
    out: dict = {}
    counts: dict = {}
    s = 0
    for _ in range(200):  # bounded: every walk ends at EE well before this
        st = g.states[s]
        opts = [p for p in st.prods
                if (p[0] == AT or (p[0] == 1 and p[1] not in avoid)) and counts.get(p[1], 0) < 3
                or (p[0] == CH and g.kind == SIMPLE_ATTRS)]
        forced = force is not None and any(p[1] == force for p in opts)
        if forced:
            opts = [p for p in opts if p[1] == force]
        elif not opts or (st.ee >= 0 and (depth > 6 or rng.random() < 0.35)):
            assert st.ee >= 0, "generator got stuck"
            return out
        kind, name, arg, nxt, _code = opts[0] if rng.random() < 0.7 else rng.choice(opts)
        if kind == CH:
            out["value"] = _value(arg, rng)
        else:
            counts[name] = counts.get(name, 0) + 1
            v = _value(arg, rng) if kind == AT else _generate(codec, arg, rng, avoid, None, depth + 1)
            if name in g.list_names:
                out.setdefault(name, []).append(v)
            else:
                out[name] = v
        s = nxt
    raise AssertionError("generated message too long")


def _body_names(codec, avoid: frozenset) -> list[str]:
    g = codec._g[codec._c.doc_by_name["V2G_Message"][1]]
    body = codec._g[g.states[1].prods[0][2]]
    return [p[1] for p in body.states[0].prods if p[0] == 1 and p[1] not in avoid]


# Signature sub-trees contain xs:any (wildcards), which the codec does not support.
_NO_WILDCARDS = frozenset({"Signature", "BodyElement"})


@pytest.mark.parametrize("schema", ["iso2", "din"])
def test_every_v2g_body_round_trips(schema: str) -> None:
    codec = _codec(schema)
    avoid = _abstract_names(schema) | _NO_WILDCARDS
    rng = random.Random(15118)
    gi = codec._c.doc_by_name["V2G_Message"][1]
    names = _body_names(codec, avoid)
    assert len(names) >= 30
    for body in names:
        for _ in range(4):
            msg = {"V2G_Message": _generate(codec, gi, rng, avoid, force="Body")}
            msg["V2G_Message"]["Body"] = {body: _generate(codec, codec._g[gi].states[1].prods[0][2], rng,
                                                          avoid, force=body)[body]}
            data = codec.encode(msg)
            assert codec.decode(data) == msg, body


@pytest.mark.parametrize("schema", ["app", "iso20", "iso20_dc", "iso20_ac"])
def test_every_root_message_round_trips(schema: str) -> None:
    codec = _codec(schema)
    avoid = _abstract_names(schema) | _NO_WILDCARDS
    rng = random.Random(20)
    roots = [r for r in codec.root_elements if r.endswith(("Req", "Res"))]
    assert roots
    for root in roots:
        for _ in range(4):
            msg = {root: _generate(codec, codec._c.doc_by_name[root][1], rng, avoid)}
            data = codec.encode(msg)
            assert codec.decode(data) == msg, root
            assert codec.encode(codec.decode(data)) == data


# -- known bytes (from the reference jar) -------------------------------------------------------
def test_session_setup_req_matches_reference_bytes() -> None:
    msg = {"V2G_Message": {"Header": {"SessionID": bytes.fromhex("00")},
                           "Body": {"SessionSetupReq": {"EVCCID": bytes.fromhex("0A0B0C0D0E0F")}}}}
    assert _codec("iso2").encode(msg).hex() == "8098004011d018282c3034383c00"


def test_current_demand_req_matches_reference_bytes() -> None:
    msg = {"V2G_Message": {"Header": {"SessionID": bytes.fromhex("0011223344556677")}, "Body": {
        "CurrentDemandReq": {
            "DC_EVStatus": {"EVReady": True, "EVErrorCode": "NO_ERROR", "EVRESSSOC": 55},
            "EVTargetCurrent": {"Multiplier": 0, "Unit": "A", "Value": 100},
            "EVTargetVoltage": {"Multiplier": 0, "Unit": "V", "Value": 400},
            "ChargingComplete": False}}}}
    data = _codec("iso2").encode(msg)
    assert data.hex() == "8098020004488cd115599dd0d1001b81860c8410c409003000"
    assert _codec("iso2").decode(data) == msg


def test_supported_app_protocol_req_matches_reference_bytes() -> None:
    msg = {"supportedAppProtocolReq": {"AppProtocol": [{
        "ProtocolNamespace": "urn:iso:15118:2:2013:MsgDef", "VersionNumberMajor": 2,
        "VersionNumberMinor": 0, "SchemaID": 1, "Priority": 1}]}}
    data = _codec("app").encode(msg)
    assert data.hex() == "8000ebab9371d34b9b79d189a98989c1d191d191818999d26b9b3a232b30020000040040"


# -- grammar spot checks ------------------------------------------------------------------------
def test_iso2_document_and_body_grammar_shape() -> None:
    codec = _codec("iso2")
    c = codec._c
    # 80 global elements (+ SE(*)) -> 7 bits; V2G_Message sorts at index 76.
    assert (c.doc_width, len(c.doc_prods)) == (7, 80)
    assert c.doc_by_name["V2G_Message"][0] == 76
    v2g = codec._g[c.doc_by_name["V2G_Message"][1]]
    body = codec._g[v2g.states[1].prods[0][2]]
    names = [p[1] for p in body.states[0].prods]
    # The abstract BodyElement keeps its event code (as in EXIficient); EE is last, 6 bits.
    assert names[:3] == ["AuthorizationReq", "AuthorizationRes", "BodyElement"]
    assert names.index("SessionSetupReq") == 29 and body.states[0].width == 6
    assert body.states[0].prods[-1][0] == 2  # EE (Body content is optional)


def test_attributes_precede_elements_and_lists_are_marked() -> None:
    codec = _codec("iso2")
    v2g = codec._g[codec._c.doc_by_name["V2G_Message"][1]]
    body = codec._g[v2g.states[1].prods[0][2]]
    auth = codec._g[body.states[0].by_name["AuthorizationReq"][2]]
    assert [p[1] for p in auth.states[0].prods[:2]] == ["Id", "GenChallenge"]
    app = _codec("app")
    req = app._g[app._c.doc_by_name["supportedAppProtocolReq"][1]]
    assert "AppProtocol" in req.list_names


# -- clear errors ------------------------------------------------------------------------------
def _cd_req(**overrides):
    req = {"DC_EVStatus": {"EVReady": True, "EVErrorCode": "NO_ERROR", "EVRESSSOC": 55},
           "EVTargetCurrent": {"Multiplier": 0, "Unit": "A", "Value": 100},
           "EVTargetVoltage": {"Multiplier": 0, "Unit": "V", "Value": 400},
           "ChargingComplete": False}
    req.update(overrides)
    return {"V2G_Message": {"Header": {"SessionID": bytes(8)}, "Body": {"CurrentDemandReq": req}}}


def test_out_of_range_value_names_the_path() -> None:
    from harness.iso15118.exi import EncodeError

    bad = _cd_req(EVTargetCurrent={"Multiplier": 0, "Unit": "A", "Value": 70000})
    with pytest.raises(EncodeError, match=r"V2G_Message/Body/CurrentDemandReq/EVTargetCurrent/Value: "
                                          r"70000 out of range short"):
        _codec("iso2").encode(bad)


@pytest.mark.parametrize("override, pattern", [
    ({"Bogus": 1}, r"CurrentDemandReq: unknown child/attribute 'Bogus'"),
    ({"ChargingComplete": 1}, r"ChargingComplete: expected bool"),
    ({"EVTargetCurrent": {"Multiplier": 0, "Unit": "parsec", "Value": 1}}, r"Unit: 'parsec' is not"),
    ({"DC_EVStatus": {"EVReady": True, "EVErrorCode": "NO_ERROR"}}, r"DC_EVStatus: missing required EVRESSSOC"),
])
def test_bad_input_is_rejected_with_path(override: dict, pattern: str) -> None:
    from harness.iso15118.exi import EncodeError

    with pytest.raises(EncodeError, match=pattern):
        _codec("iso2").encode(_cd_req(**override))


def test_repeating_element_must_be_a_list() -> None:
    from harness.iso15118.exi import EncodeError

    msg = {"supportedAppProtocolReq": {"AppProtocol": {
        "ProtocolNamespace": "x", "VersionNumberMajor": 2, "VersionNumberMinor": 0, "SchemaID": 1,
        "Priority": 1}}}
    with pytest.raises(EncodeError, match="supportedAppProtocolReq/AppProtocol: may repeat"):
        _codec("app").encode(msg)


def test_unknown_root_and_truncated_stream() -> None:
    from harness.iso15118.exi import DecodeError, EncodeError

    with pytest.raises(EncodeError, match="not a global element"):
        _codec("iso2").encode({"Nope": {}})
    data = _codec("iso2").encode(_cd_req())
    with pytest.raises(DecodeError):
        _codec("iso2").decode(data[:8])
    with pytest.raises(DecodeError, match="header"):
        _codec("iso2").decode(b"\x00" + data[1:])


# -- fragments (what ISO 15118 signs), reference bytes from the jar ----------------------------
_SIGNED_INFO = {"SignedInfo": {
    "CanonicalizationMethod": {"Algorithm": "http://www.w3.org/TR/canonical-exi/"},
    "SignatureMethod": {"Algorithm": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"},
    "Reference": [{"URI": "#id1",
                   "Transforms": {"Transform": [{"Algorithm": "http://www.w3.org/TR/canonical-exi/"}]},
                   "DigestMethod": {"Algorithm": "http://www.w3.org/2001/04/xmlenc#sha256"},
                   "DigestValue": bytes(range(32))}]}}


@pytest.mark.parametrize("schema, msg, expected", [
    ("iso2", {"AuthorizationReq": {"Id": "id1", "GenChallenge": bytes(range(16))}},
     "8004015a590c408000081018202830384048505860687079e8"),
    ("iso2", {"MeteringReceiptReq": {"Id": "id1", "SessionID": bytes(8), "SAScheduleTupleID": 1,
                                     "MeterInfo": {"MeterID": "M1", "MeterReading": 5}}},
     "8079015a590c40800000000000000000000044d310029bd0"),
    ("xmldsig", _SIGNED_INFO,
     "808112b43a3a381d1797bbbbbb973b999737b93397aa2917b1b0b737b734b1b0b616b2bc3497a1ab43a3a381d17"
     "97bbbbbb973b999737b933979918181897981a17bc36b63239b4b396b6b7b93291b2b1b239b096b9b430991a9b2"
     "20623696431025687474703a2f2f7777772e77332e6f72672f54522f63616e6f6e6963616c2d6578692f4852d0"
     "e8e8e0745e5eeeeeee5cee665cdee4ce5e646060625e60685ef0dad8cadcc646e6d0c2646a6c84000020406080"
     "a0c0e10121416181a1c1e20222426282a2c2e30323436383a3c3e370"),
    ("iso20", {"PnC_AReqAuthorizationMode": {
        "Id": "id1", "GenChallenge": bytes(range(16)),
        "ContractCertificateChain": {"Certificate": bytes(range(20)),
                                     "SubCertificates": {"Certificate": [bytes(5)]}}}},
     "804b815a590c410000102030405060708090a0b0c0d0e0f014000102030405060708090a0b0c0d0e0f1011121300"
     "5000000000024680"),
    ("iso20", {"OEMProvisioningCertificateChain": {"Id": "id2", "Certificate": bytes(range(20))}},
     "8040015a590c814000102030405060708090a0b0c0d0e0f1011121331a"),
])
def test_fragment_matches_reference_bytes(schema: str, msg: dict, expected: str) -> None:
    codec = _codec(schema)
    data = codec.encode_fragment(msg)
    assert data.hex() == expected
    assert codec.decode_fragment(data) == msg
