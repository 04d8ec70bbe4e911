"""The V2G protocol table shared by the harness's EVCC and SECC: namespaces, codecs, framing
of a body into a full message, the SupportedAppProtocol handshake, and the timing constants.

Protocols (the names used everywhere in the harness):

    "din"       DIN SPEC 70121:2014        urn:din:70121:2012:MsgDef          version 2.0
    "iso2"      ISO 15118-2:2014           urn:iso:15118:2:2013:MsgDef        version 2.0
    "iso20_dc"  ISO 15118-20:2022 DC       urn:iso:std:iso:15118:-20:DC       version 1.0
    "iso20_ac"  ISO 15118-20:2022 AC       urn:iso:std:iso:15118:-20:AC       version 1.0

A *body* is what a message says without its header: for DIN/-2 the content of
V2G_Message/Body/<Name>, for -20 the content of the <Name> root without its Header.
`wrap` adds the header (SessionID, -20 TimeStamp, optional xmldsig Signature) and `unwrap`
takes it off again. Message dicts are the codec's canonical form (see harness.iso15118.exi).

-20 messages travel in several schemas: the DC_*/AC_* messages in the energy-specific one
(V2GTP payload type 0x8004 / 0x8003), everything else in CommonMessages (0x8002); the SAP
handshake uses the "app" schema and 0x8001 in every protocol.

Timing (seconds). The values are those of DIN SPEC 70121 §9.6 (Table 75/76), ISO 15118-2:2014
§9.6 (Tables 109/110) and ISO 15118-20:2022 §7.9 / Annex A timing tables, as cited by public
ISO 15118 stacks (the standards' text was not at hand to re-check every cell):
  - EVCC message timeout (V2G_EVCC_Msg_Timeout): how long the EV waits for a response;
  - SECC performance time (V2G_SECC_Msg_Performance_Time): how long the charger may take to
    answer; a response later than this is a finding even when it beats the EV's timeout;
  - sequence / loop timeouts (communication setup, ongoing, cable check, pre-charge, ...).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

from harness.iso15118.v2gtp import PayloadType

SAP_CODEC = "app"
SAP_PAYLOAD_TYPE = PayloadType.EXI


@dataclass(frozen=True)
class ProtocolInfo:
    name: str                  # "din" | "iso2" | "iso20_dc" | "iso20_ac"
    namespace: str             # ProtocolNamespace announced in supportedAppProtocolReq
    major: int
    minor: int
    family: str                # "din" | "iso2" | "iso20": how messages are framed
    codec: str                 # codec of the protocol's own messages
    energy: str                # "DC" | "AC"
    title: str

    @property
    def is_iso20(self) -> bool:
        return self.family == "iso20"


PROTOCOLS: dict[str, ProtocolInfo] = {
    "din": ProtocolInfo("din", "urn:din:70121:2012:MsgDef", 2, 0, "din", "din", "DC", "DIN SPEC 70121"),
    "iso2": ProtocolInfo("iso2", "urn:iso:15118:2:2013:MsgDef", 2, 0, "iso2", "iso2", "DC", "ISO 15118-2"),
    "iso20_dc": ProtocolInfo("iso20_dc", "urn:iso:std:iso:15118:-20:DC", 1, 0, "iso20", "iso20_dc", "DC",
                             "ISO 15118-20 DC"),
    "iso20_ac": ProtocolInfo("iso20_ac", "urn:iso:std:iso:15118:-20:AC", 1, 0, "iso20", "iso20_ac", "AC",
                             "ISO 15118-20 AC"),
}
NAMESPACE_TO_PROTOCOL = {p.namespace: p.name for p in PROTOCOLS.values()}


class MessageError(ValueError):
    """A message or body does not have the shape its protocol needs."""


def protocol_info(protocol: str) -> ProtocolInfo:
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise MessageError(f"unknown protocol {protocol!r} (choose one of {', '.join(PROTOCOLS)})") from None


# -- which schema and payload type a message uses ------------------------------------------
def codec_name(protocol: str, message_name: str) -> str:
    """The codec (schema) a message of `protocol` is encoded with."""
    info = protocol_info(protocol)
    if message_name.startswith("supportedAppProtocol"):
        return SAP_CODEC
    if not info.is_iso20:
        return info.codec
    if message_name.startswith("DC_"):
        return "iso20_dc"
    if message_name.startswith("AC_"):
        return "iso20_ac"
    return "iso20"


def payload_type(protocol: str, message_name: str) -> PayloadType:
    """The V2GTP payload type of a message (ISO 15118-20 Table 12 splits the -20 streams)."""
    info = protocol_info(protocol)
    if message_name.startswith("supportedAppProtocol") or not info.is_iso20:
        return PayloadType.EXI
    return {"iso20_dc": PayloadType.DC_MAIN_STREAM, "iso20_ac": PayloadType.AC_MAIN_STREAM}.get(
        codec_name(protocol, message_name), PayloadType.MAIN_STREAM)


def codec_for_payload(protocol: str, ptype: int) -> str:
    """The codec of a received V2GTP payload."""
    info = protocol_info(protocol)
    if not info.is_iso20:
        return info.codec
    return {PayloadType.DC_MAIN_STREAM: "iso20_dc", PayloadType.AC_MAIN_STREAM: "iso20_ac",
            PayloadType.EXI: SAP_CODEC}.get(ptype, "iso20")


def response_name(request_name: str) -> str:
    if not request_name.endswith("Req"):
        raise MessageError(f"{request_name!r} is not a request name (…Req)")
    return request_name[:-3] + "Res"


# -- wrap / unwrap ---------------------------------------------------------------------------
@dataclass
class Unwrapped:
    name: str
    body: dict
    session_id: bytes | None
    signature: dict | None = None
    timestamp: int | None = None


def wrap(protocol: str, name: str, body: dict, session_id: bytes, *, signature: dict | None = None,
         timestamp: int | None = None) -> dict:
    """The full message (root element dict) of `body` with its header."""
    info = protocol_info(protocol)
    if not isinstance(body, dict):
        raise MessageError(f"{name}: a body is a dict, got {type(body).__name__}")
    if info.is_iso20:
        header: dict[str, Any] = {"SessionID": bytes(session_id),
                                  "TimeStamp": int(time.time()) if timestamp is None else timestamp}
        if signature is not None:
            header["Signature"] = signature
        return {name: {"Header": header, **body}}
    header = {"SessionID": bytes(session_id)}
    if signature is not None:
        header["Signature"] = signature
    return {"V2G_Message": {"Header": header, "Body": {name: body}}}


def unwrap(protocol: str, message: dict) -> Unwrapped:
    """Split a decoded message into its name, body and header fields."""
    if not isinstance(message, dict) or len(message) != 1:
        raise MessageError("a message is a dict with exactly one root element")
    (root, content), = message.items()
    if root == "V2G_Message":
        header = content.get("Header", {})
        body = content.get("Body", {})
        if len(body) != 1:
            raise MessageError(f"V2G_Message Body holds {len(body)} elements, expected 1")
        (name, inner), = body.items()
        return Unwrapped(name, inner, header.get("SessionID"), header.get("Signature"))
    if root.startswith("supportedAppProtocol"):
        return Unwrapped(root, content, None)
    header = content.get("Header", {}) if isinstance(content, dict) else {}
    body = {k: v for k, v in content.items() if k != "Header"}
    return Unwrapped(root, body, header.get("SessionID"), header.get("Signature"), header.get("TimeStamp"))


# -- SupportedAppProtocol ------------------------------------------------------------------
def sap_request(protocols: list[str], *, minor: dict[str, int] | None = None) -> dict:
    """supportedAppProtocolReq offering `protocols` in priority order (first = Priority 1).
    SchemaID is the position too (1, 2, ...): the SECC echoes the one it picks."""
    if not protocols:
        raise MessageError("offer at least one protocol")
    if len(protocols) > 20:
        raise MessageError("the schema allows at most 20 AppProtocol entries")
    entries = []
    for i, name in enumerate(protocols, start=1):
        info = protocol_info(name)
        entries.append({"ProtocolNamespace": info.namespace, "VersionNumberMajor": info.major,
                        "VersionNumberMinor": (minor or {}).get(name, info.minor),
                        "SchemaID": i, "Priority": i})
    return {"supportedAppProtocolReq": {"AppProtocol": entries}}


def sap_selected(request: dict, response: dict) -> str | None:
    """The protocol the SECC picked in `response` to `request` (None when it picked nothing)."""
    res = response.get("supportedAppProtocolRes", {})
    schema_id = res.get("SchemaID")
    if schema_id is None:
        return None
    for entry in request["supportedAppProtocolReq"]["AppProtocol"]:
        if entry["SchemaID"] == schema_id:
            return NAMESPACE_TO_PROTOCOL.get(entry["ProtocolNamespace"])
    return None


SAP_OK = ("OK_SuccessfulNegotiation", "OK_SuccessfulNegotiationWithMinorDeviation")


# -- response codes --------------------------------------------------------------------------
def response_ok(code: str | None) -> bool:
    """Positive (OK*) or, in -20, a warning that lets the session go on (WARNING_*)."""
    return bool(code) and (code.startswith("OK") or code.startswith("WARNING"))


# -- physical values -------------------------------------------------------------------------
_PV_ORDER = (0, -1, -2, -3, 1, 2, 3)          # plain units first, then finer, then coarser
_RATIONAL_ORDER = (0, -1, -2, -3, 1, 2, 3, 4, 5, 6, 7, 8, 9)


def _scaled(value: float, order: tuple[int, ...]) -> tuple[int, int] | None:
    for exp in order:   # exact representations first
        scaled = value / 10 ** exp
        if abs(scaled) <= 32767 and math.isclose(scaled, round(scaled), abs_tol=1e-9):
            return exp, int(round(scaled))
    for exp in sorted(order):   # else the finest exponent that fits
        if abs(value / 10 ** exp) <= 32767:
            return exp, int(round(value / 10 ** exp))
    return None


def pv(value: float, unit: str) -> dict:
    """DIN/-2 PhysicalValueType: Value (int16) × 10^Multiplier (-3..3), exact where possible."""
    found = _scaled(value, _PV_ORDER)
    if found is None:
        raise MessageError(f"{value} {unit} does not fit a PhysicalValue (int16 × 10^3 at most)")
    return {"Multiplier": found[0], "Unit": unit, "Value": found[1]}


def rational(value: float) -> dict:
    """-20 RationalNumberType: Value (int16) × 10^Exponent (int8), exact where possible."""
    found = _scaled(value, _RATIONAL_ORDER)
    if found is None:
        raise MessageError(f"{value} does not fit a RationalNumber")
    return {"Exponent": found[0], "Value": found[1]}


def number(value: dict | None) -> float | None:
    """A PhysicalValue or RationalNumber dict as a float (None stays None)."""
    if value is None:
        return None
    if "Multiplier" in value:
        return value["Value"] * 10 ** value["Multiplier"]
    if "Exponent" in value:
        return value["Value"] * 10 ** value["Exponent"]
    raise MessageError(f"not a PhysicalValue/RationalNumber: {value!r}")


# -- trace text ------------------------------------------------------------------------------
def to_trace_json(message: Any) -> str:
    """JSON text of a canonical message, bytes as hex (what goes into the trace)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (bytes, bytearray)):
            return bytes(v).hex()
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v
    return json.dumps(plain(message), separators=(",", ":"))


# -- timing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    seconds: float
    clause: str


_DIN_T = "DIN SPEC 70121 §9.6.2 Table 75"
_ISO2_T = "ISO 15118-2:2014 §9.6 Table 109"
_ISO20_T = "ISO 15118-20:2022 §7.9 (message timing table)"

# V2G_EVCC_Msg_Timeout per request (the EV gives up waiting for the response after this).
_EVCC_TIMEOUT: dict[str, dict[str, float]] = {
    "din": {"supportedAppProtocolReq": 2, "SessionSetupReq": 2, "ServiceDiscoveryReq": 2,
            "ServicePaymentSelectionReq": 2, "ContractAuthenticationReq": 2,
            "ChargeParameterDiscoveryReq": 2, "PowerDeliveryReq": 2, "CableCheckReq": 2,
            "PreChargeReq": 2, "CurrentDemandReq": 0.25, "WeldingDetectionReq": 2, "SessionStopReq": 2},
    "iso2": {"supportedAppProtocolReq": 2, "SessionSetupReq": 2, "ServiceDiscoveryReq": 2,
             "ServiceDetailReq": 5, "PaymentServiceSelectionReq": 2, "PaymentDetailsReq": 5,
             "CertificateInstallationReq": 5, "CertificateUpdateReq": 5, "AuthorizationReq": 2,
             "ChargeParameterDiscoveryReq": 2, "PowerDeliveryReq": 5, "ChargingStatusReq": 2,
             "MeteringReceiptReq": 2, "CableCheckReq": 2, "PreChargeReq": 2, "CurrentDemandReq": 0.25,
             "WeldingDetectionReq": 2, "SessionStopReq": 2},
    "iso20": {"supportedAppProtocolReq": 2, "SessionSetupReq": 2, "AuthorizationSetupReq": 2,
              "AuthorizationReq": 2, "CertificateInstallationReq": 5, "ServiceDiscoveryReq": 2,
              "ServiceDetailReq": 5, "ServiceSelectionReq": 2, "ScheduleExchangeReq": 2,
              "PowerDeliveryReq": 2, "MeteringConfirmationReq": 2, "SessionStopReq": 2,
              "VehicleCheckInReq": 2, "VehicleCheckOutReq": 2,
              "DC_ChargeParameterDiscoveryReq": 2, "DC_CableCheckReq": 2, "DC_PreChargeReq": 2,
              "DC_ChargeLoopReq": 0.5, "DC_WeldingDetectionReq": 2,
              "AC_ChargeParameterDiscoveryReq": 2, "AC_ChargeLoopReq": 0.5},
}
# V2G_SECC_Msg_Performance_Time: -2 gives 1.5 s, 4.5 s for the 5 s messages and 25 ms for
# CurrentDemandRes; DIN 1.5 s / 25 ms; -20 1.5 s / 4.5 s and 0.25 s for the charge loops.
_LONG = {"ServiceDetailReq", "PaymentDetailsReq", "CertificateInstallationReq", "CertificateUpdateReq"}


def evcc_timeout(protocol: str, request_name: str) -> Timing:
    """V2G_EVCC_Msg_Timeout of one request (2 s where the table has no entry)."""
    family = protocol_info(protocol).family
    clause = {"din": _DIN_T, "iso2": _ISO2_T, "iso20": _ISO20_T}[family]
    seconds = _EVCC_TIMEOUT[family].get(request_name, 2.0)
    return Timing(float(seconds), f"{clause} V2G_EVCC_Msg_Timeout({request_name})")


def secc_performance_time(protocol: str, request_name: str) -> Timing:
    """V2G_SECC_Msg_Performance_Time for the response to `request_name`."""
    family = protocol_info(protocol).family
    clause = {"din": _DIN_T, "iso2": _ISO2_T, "iso20": _ISO20_T}[family]
    if request_name == "CurrentDemandReq":
        seconds = 0.025
    elif request_name in ("DC_ChargeLoopReq", "AC_ChargeLoopReq"):
        seconds = 0.25
    elif request_name in _LONG or (family == "iso2" and request_name == "PowerDeliveryReq"):
        seconds = 4.5
    else:
        seconds = 1.5
    return Timing(seconds, f"{clause} V2G_SECC_Msg_Performance_Time({request_name})")


@dataclass(frozen=True)
class SequenceTimings:
    communication_setup: Timing       # SAP request .. SessionSetup done (V2G_EVCC_CommunicationSetup_Timeout)
    ongoing: Timing                   # EVSEProcessing=Ongoing loops (Authorization, ChargeParameterDiscovery)
    cable_check: Timing
    pre_charge: Timing
    secc_sequence: Timing             # SECC waits this long for the next request


SEQUENCE: dict[str, SequenceTimings] = {
    "din": SequenceTimings(
        Timing(20, "DIN SPEC 70121 §9.6.5 Table 77 V2G_EVCC_CommunicationSetup_Timeout"),
        Timing(60, "DIN SPEC 70121 §9.6.5 Table 77 V2G_EVCC_Ongoing_Timeout"),
        Timing(40, "DIN SPEC 70121 §9.6.5 Table 77 V2G_EVCC_CableCheck_Timeout"),
        Timing(7, "DIN SPEC 70121 §9.6.5 Table 77 V2G_EVCC_PreCharge_Timeout"),
        Timing(60, "DIN SPEC 70121 §9.6.3 Table 76 V2G_SECC_Sequence_Timeout")),
    "iso2": SequenceTimings(
        Timing(20, "ISO 15118-2:2014 §9.6 Table 110 V2G_EVCC_CommunicationSetup_Timeout"),
        Timing(60, "ISO 15118-2:2014 §9.6 Table 110 V2G_EVCC_Ongoing_Timeout"),
        Timing(40, "ISO 15118-2:2014 §9.6 Table 110 V2G_EVCC_CableCheck_Timeout"),
        Timing(7, "ISO 15118-2:2014 §9.6 Table 110 V2G_EVCC_PreCharge_Timeout"),
        Timing(60, "ISO 15118-2:2014 §9.6 Table 110 V2G_SECC_Sequence_Timeout")),
    "iso20": SequenceTimings(
        Timing(20, "ISO 15118-20:2022 §7.9 V2G_EVCC_CommunicationSetup_Timeout"),
        Timing(60, "ISO 15118-20:2022 §7.9 V2G_EVCC_Ongoing_Timeout"),
        Timing(40, "ISO 15118-20:2022 §7.9 V2G_EVCC_CableCheck_Timeout"),
        Timing(10, "ISO 15118-20:2022 §7.9 V2G_EVCC_PreCharge_Timeout"),
        Timing(60, "ISO 15118-20:2022 §7.9 V2G_SECC_Sequence_Timeout")),
}


def sequence_timings(protocol: str) -> SequenceTimings:
    return SEQUENCE[protocol_info(protocol).family]


# Which sequence loop a repeated request belongs to (for the loop-duration checks).
LOOPS: dict[str, str] = {
    "AuthorizationReq": "ongoing", "ContractAuthenticationReq": "ongoing",
    "ChargeParameterDiscoveryReq": "ongoing", "ScheduleExchangeReq": "ongoing",
    "CableCheckReq": "cable_check", "DC_CableCheckReq": "cable_check",
    "PreChargeReq": "pre_charge", "DC_PreChargeReq": "pre_charge",
}
