"""OCPP-J RPC framing: CALL / CALLRESULT / CALLERROR (OCPP-J 1.6 §4, 2.0.1 Part 4 §4).

A frame is a JSON array whose first element is the message type id. Parsing never
raises on the payload's content (that is the schema layer's job); it raises
`FramingError` only when the text is not an OCPP-J frame at all, with a reason that
names which rule was broken so a FAIL can quote it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Union


class MessageType(IntEnum):
    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4


# RPC framework error codes per edition. 1.6 spells one of them with a typo that the
# 2.0.1 edition fixed; both are accepted from a peer, each edition sends its own.
ERROR_CODES_16 = frozenset(
    {
        "NotImplemented", "NotSupported", "InternalError", "ProtocolError",
        "SecurityError", "FormationViolation", "PropertyConstraintViolation",
        "OccurenceConstraintViolation", "TypeConstraintViolation", "GenericError",
    }
)
ERROR_CODES_201 = frozenset(
    {
        "FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported",
        "NotImplemented", "NotSupported", "OccurrenceConstraintViolation",
        "OccurenceConstraintViolation",   # 2.0.1 kept 1.6's typo per the OCA's errata; stacks send both
        "PropertyConstraintViolation", "ProtocolError", "RpcFrameworkError",
        "SecurityError", "TypeConstraintViolation",
    }
)


class FramingError(ValueError):
    """The text received is not a well-formed OCPP-J frame."""


@dataclass(frozen=True, slots=True)
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]
    message_type: MessageType = field(default=MessageType.CALL, init=False)

    def to_list(self) -> list[Any]:
        return [int(MessageType.CALL), self.unique_id, self.action, self.payload]


@dataclass(frozen=True, slots=True)
class CallResult:
    unique_id: str
    payload: dict[str, Any]
    message_type: MessageType = field(default=MessageType.CALLRESULT, init=False)

    def to_list(self) -> list[Any]:
        return [int(MessageType.CALLRESULT), self.unique_id, self.payload]


@dataclass(frozen=True, slots=True)
class CallError:
    unique_id: str
    error_code: str
    error_description: str = ""
    error_details: dict[str, Any] = field(default_factory=dict)
    message_type: MessageType = field(default=MessageType.CALLERROR, init=False)

    def to_list(self) -> list[Any]:
        return [
            int(MessageType.CALLERROR), self.unique_id, self.error_code,
            self.error_description, self.error_details,
        ]


Frame = Union[Call, CallResult, CallError]


def new_message_id() -> str:
    return str(uuid.uuid4())


# One encoder/decoder each: json.dumps/loads with options build a new one per call (µs that
# matter at thousands of frames per second). Compact separators are what real stacks send.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode(frame: Frame) -> str:
    # Compact separators: what real stacks send, and fewer bytes on the wire.
    return _ENCODER.encode(frame.to_list())


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; RFC 8259 JSON does not, and a schema would take NaN for a number.
    raise ValueError(f"{name} is not a JSON value")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode(text: str | bytes) -> Frame:
    """Parse one websocket message into a frame, or raise FramingError with the reason."""
    if isinstance(text, bytes):
        # OCPP-J requires text frames; a binary frame is a framing violation.
        raise FramingError("binary websocket frame; OCPP-J frames are text (UTF-8 JSON)")
    try:
        data = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise FramingError(f"not JSON: {exc}") from None
    if not isinstance(data, list) or not data:
        raise FramingError("frame is not a non-empty JSON array")
    mtype = data[0]
    if not isinstance(mtype, int) or isinstance(mtype, bool) or mtype not in (2, 3, 4):   # 2.0 and true are not ids
        raise FramingError(f"unknown MessageTypeId {mtype!r} (expected 2, 3 or 4)")
    if len(data) < 2 or not isinstance(data[1], str):
        raise FramingError("MessageId missing or not a string")
    uid = data[1]
    if len(uid) > 36:
        raise FramingError(f"MessageId longer than 36 characters ({len(uid)})")
    if mtype == 2:
        if len(data) != 4:
            raise FramingError(f"CALL must have 4 elements, got {len(data)}")
        if not isinstance(data[2], str):
            raise FramingError("CALL Action is not a string")
        if not isinstance(data[3], dict):
            raise FramingError("CALL Payload is not a JSON object")
        return Call(uid, data[2], data[3])
    if mtype == 3:
        if len(data) != 3:
            raise FramingError(f"CALLRESULT must have 3 elements, got {len(data)}")
        if not isinstance(data[2], dict):
            raise FramingError("CALLRESULT Payload is not a JSON object")
        return CallResult(uid, data[2])
    if len(data) != 5:
        raise FramingError(f"CALLERROR must have 5 elements, got {len(data)}")
    code, desc, details = data[2], data[3], data[4]
    if not isinstance(code, str) or not isinstance(desc, str) or not isinstance(details, dict):
        raise FramingError("CALLERROR ErrorCode/ErrorDescription must be strings and ErrorDetails an object")
    return CallError(uid, code, desc, details)


def error_codes_for(version: str) -> frozenset[str]:
    return ERROR_CODES_16 if version == "1.6" else ERROR_CODES_201
