"""OCPP-J framing: CALL / CALLRESULT / CALLERROR encode/decode and every FramingError."""

from __future__ import annotations

import json

import pytest

from harness.ocpp.framing import (ERROR_CODES_16, ERROR_CODES_201, Call, CallError, CallResult, FramingError,
                                  MessageType, decode, encode, error_codes_for, new_message_id)


# ---- round trips ---------------------------------------------------------------------

def test_call_round_trip():
    call = Call("abc-1", "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "m", "vendorName": "v"}})
    text = encode(call)
    assert json.loads(text) == [2, "abc-1", "BootNotification", call.payload]
    assert " " not in text          # compact separators on the wire
    back = decode(text)
    assert isinstance(back, Call)
    assert back == call
    assert back.message_type is MessageType.CALL


def test_callresult_round_trip():
    res = CallResult("abc-1", {"currentTime": "2024-01-01T00:00:00Z", "interval": 60, "status": "Accepted"})
    assert json.loads(encode(res)) == [3, "abc-1", res.payload]
    back = decode(encode(res))
    assert isinstance(back, CallResult) and back == res
    assert back.message_type is MessageType.CALLRESULT


def test_callerror_round_trip_with_defaults():
    err = CallError("abc-1", "NotImplemented")
    assert json.loads(encode(err)) == [4, "abc-1", "NotImplemented", "", {}]
    back = decode(encode(err))
    assert isinstance(back, CallError)
    assert (back.unique_id, back.error_code, back.error_description, back.error_details) == ("abc-1", "NotImplemented", "", {})
    assert back.message_type is MessageType.CALLERROR


def test_callerror_with_description_and_details():
    back = decode('[4,"u","FormatViolation","bad payload",{"path":"x"}]')
    assert isinstance(back, CallError)
    assert back.error_description == "bad payload" and back.error_details == {"path": "x"}


def test_non_ascii_is_kept_verbatim():
    text = encode(Call("u", "DataTransfer", {"vendorId": "Größe", "data": "€"}))
    assert "Größe" in text and "€" in text
    assert decode(text).payload == {"vendorId": "Größe", "data": "€"}


def test_decode_accepts_whitespace_and_36_char_id():
    uid = "x" * 36
    frame = decode(f' [ 2 , "{uid}" , "Heartbeat" , {{ }} ] ')
    assert isinstance(frame, Call) and frame.unique_id == uid and frame.payload == {}


def test_new_message_ids_are_unique_and_short_enough():
    ids = {new_message_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) <= 36 for i in ids)


def test_error_codes_per_edition():
    assert "FormationViolation" in ERROR_CODES_16 and "FormatViolation" not in ERROR_CODES_16
    assert "FormatViolation" in ERROR_CODES_201 and "RpcFrameworkError" in ERROR_CODES_201
    assert "OccurenceConstraintViolation" in ERROR_CODES_16            # 1.6's own spelling
    assert "OccurrenceConstraintViolation" in ERROR_CODES_201
    assert error_codes_for("1.6") is ERROR_CODES_16
    assert error_codes_for("2.0.1") is ERROR_CODES_201


# ---- every FramingError branch ---------------------------------------------------------

@pytest.mark.parametrize("text, reason", [
    ("not json at all", "not JSON"),
    ("[2, \"u\", \"Heartbeat\", {}", "not JSON"),
    ("", "not JSON"),
    ("[" * 100_000 + "]" * 100_000, "not JSON"),                   # too deep to parse: still a FramingError
    ('[2, "u", "MeterValues", {"value": NaN}]', "not JSON: NaN is not a JSON value"),
    ('[2, "u", "MeterValues", {"value": -Infinity}]', "not JSON: -Infinity is not a JSON value"),
    ('{"a": 1}', "not a non-empty JSON array"),
    ('"just a string"', "not a non-empty JSON array"),
    ("42", "not a non-empty JSON array"),
    ("null", "not a non-empty JSON array"),
    ("[]", "not a non-empty JSON array"),
    ('[5, "u", "Heartbeat", {}]', "unknown MessageTypeId 5"),
    ('[1, "u", {}]', "unknown MessageTypeId 1"),
    ('["2", "u", "Heartbeat", {}]', "unknown MessageTypeId '2'"),
    ('[null, "u", {}]', "unknown MessageTypeId None"),
    ('[true, "u", "Heartbeat", {}]', "unknown MessageTypeId True"),   # bool is not an int here
    ('[2.0, "u", "Heartbeat", {}]', "unknown MessageTypeId 2.0"),     # an integer is required
    ("[2]", "MessageId missing"),
    ('[2, 17, "Heartbeat", {}]', "MessageId missing or not a string"),
    ('[3, null, {}]', "MessageId missing or not a string"),
    ('[2, "' + "x" * 37 + '", "Heartbeat", {}]', "MessageId longer than 36 characters (37)"),
    ('[2, "u", "Heartbeat"]', "CALL must have 4 elements, got 3"),
    ('[2, "u", "Heartbeat", {}, {}]', "CALL must have 4 elements, got 5"),
    ('[2, "u", 7, {}]', "CALL Action is not a string"),
    ('[2, "u", "Heartbeat", []]', "CALL Payload is not a JSON object"),
    ('[2, "u", "Heartbeat", null]', "CALL Payload is not a JSON object"),
    ('[3, "u"]', "CALLRESULT must have 3 elements, got 2"),
    ('[3, "u", {}, {}]', "CALLRESULT must have 3 elements, got 4"),
    ('[3, "u", "Accepted"]', "CALLRESULT Payload is not a JSON object"),
    ('[4, "u", "GenericError", ""]', "CALLERROR must have 5 elements, got 4"),
    ('[4, "u", "GenericError", "", {}, 1]', "CALLERROR must have 5 elements, got 6"),
    ('[4, "u", 500, "", {}]', "CALLERROR ErrorCode/ErrorDescription must be strings"),
    ('[4, "u", "GenericError", null, {}]', "CALLERROR ErrorCode/ErrorDescription must be strings"),
    ('[4, "u", "GenericError", "", []]', "ErrorDetails an object"),
])
def test_framing_errors(text, reason):
    with pytest.raises(FramingError) as exc:
        decode(text)
    assert reason in str(exc.value)


def test_binary_frame_is_a_framing_error():
    with pytest.raises(FramingError, match="binary websocket frame"):
        decode(b'[2, "u", "Heartbeat", {}]')


def test_framing_error_is_a_value_error():
    assert issubclass(FramingError, ValueError)


def test_decode_does_not_judge_payload_content():
    # Unknown actions and schema-invalid payloads are the schema layer's business, not framing's.
    frame = decode('[2, "u", "NoSuchAction", {"anything": [1, 2, 3]}]')
    assert isinstance(frame, Call) and frame.action == "NoSuchAction"
    assert isinstance(decode('[4, "u", "MadeUpCode", "", {}]'), CallError)
