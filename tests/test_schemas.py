"""Payload validation against the official OCPP 1.6 / 2.0.1 JSON schemas (compiled once)."""

from __future__ import annotations

import copy

import pytest

from harness.ocpp import schemas
from harness.ocpp.schemas import SchemaViolation, UnknownAction, actions, validate

BOOT_201 = {"reason": "PowerUp", "chargingStation": {"model": "DC-400", "vendorName": "ExampleVendor"}}
BOOT_16 = {"chargePointVendor": "ExampleVendor", "chargePointModel": "DC-400"}
METER_201 = {"evseId": 1, "meterValue": [{"timestamp": "2024-05-01T12:00:00Z",
                                          "sampledValue": [{"value": 12.5}, {"value": 7}]}]}


# ---- valid payloads ----------------------------------------------------------------------

@pytest.mark.parametrize("version, action, kind, payload", [
    ("2.0.1", "BootNotification", "request", BOOT_201),
    ("2.0.1", "BootNotification", "response", {"currentTime": "2024-05-01T12:00:00Z", "interval": 60, "status": "Accepted"}),
    ("2.0.1", "Heartbeat", "request", {}),
    ("2.0.1", "Heartbeat", "response", {"currentTime": "2024-05-01T12:00:00Z"}),
    ("2.0.1", "MeterValues", "request", METER_201),
    ("2.0.1", "StatusNotification", "request", {"timestamp": "2024-05-01T12:00:00Z", "connectorStatus": "Available",
                                                "evseId": 1, "connectorId": 1}),
    ("2.0.1", "StatusNotification", "response", {}),
    ("2.0.1", "Reset", "request", {"type": "Immediate"}),
    ("2.0.1", "Reset", "response", {"status": "Accepted"}),
    ("1.6", "BootNotification", "request", BOOT_16),
    ("1.6", "BootNotification", "response", {"currentTime": "2024-05-01T12:00:00Z", "interval": 300, "status": "Pending"}),
    ("1.6", "Heartbeat", "request", {}),
    ("1.6", "Authorize", "request", {"idTag": "TRUCK-0001"}),
    ("1.6", "Authorize", "response", {"idTagInfo": {"status": "Accepted"}}),
    ("1.6", "StartTransaction", "response", {"idTagInfo": {"status": "Accepted"}, "transactionId": 7}),
    ("1.6", "Reset", "request", {"type": "Hard"}),
])
def test_valid_payloads(version, action, kind, payload):
    before = copy.deepcopy(payload)
    assert validate(version, action, kind, payload) is None
    assert payload == before          # validation never fills in defaults or otherwise mutates


# ---- invalid payloads and the violation's path --------------------------------------------

def test_missing_required_top_level_key():
    v = validate("1.6", "Authorize", "response", {})
    assert isinstance(v, SchemaViolation)
    assert v.path == "" and v.rule == "required" and "idTagInfo" in v.message
    assert str(v).startswith("<payload>: ")


def test_nested_enum_violation_has_dotted_path():
    v = validate("1.6", "Authorize", "response", {"idTagInfo": {"status": "Bogus"}})
    assert v is not None
    assert v.path == "idTagInfo.status" and v.rule == "enum"
    assert "Accepted" in v.message
    assert str(v) == f"idTagInfo.status: {v.message}"
    assert not v.message.startswith("data")      # the path is reported apart from the message


def test_nested_required_violation():
    v = validate("1.6", "Authorize", "response", {"idTagInfo": {}})
    assert v is not None and v.path == "idTagInfo" and v.rule == "required" and "status" in v.message


def test_array_index_in_path():
    bad = copy.deepcopy(METER_201)
    bad["meterValue"][0]["sampledValue"][1]["value"] = "seven"
    v = validate("2.0.1", "MeterValues", "request", bad)
    assert v is not None
    assert v.path == "meterValue[0].sampledValue[1].value"
    assert v.rule == "type" and "number" in v.message


def test_additional_property_rejected():
    bad = copy.deepcopy(BOOT_201)
    bad["chargingStation"]["colour"] = "red"
    v = validate("2.0.1", "BootNotification", "request", bad)
    assert v is not None and v.path == "chargingStation" and "colour" in v.message


def test_string_too_long():
    v = validate("1.6", "BootNotification", "request", {**BOOT_16, "chargePointVendor": "V" * 21})
    assert v is not None and v.path == "chargePointVendor" and "20" in v.message


def test_wrong_type_of_whole_payload():
    v = validate("1.6", "Heartbeat", "request", [])
    assert v is not None and v.path == "" and v.rule == "type"


def test_enum_differs_between_versions():
    # "Immediate" is a 2.0.1 reset type; 1.6 knows Hard/Soft only.
    assert validate("2.0.1", "Reset", "request", {"type": "Immediate"}) is None
    v = validate("1.6", "Reset", "request", {"type": "Immediate"})
    assert v is not None and v.path == "type" and v.rule == "enum"


def test_request_and_response_schemas_are_distinct():
    boot_response = {"currentTime": "2024-05-01T12:00:00Z", "interval": 60, "status": "Accepted"}
    assert validate("2.0.1", "BootNotification", "response", boot_response) is None
    assert validate("2.0.1", "BootNotification", "request", boot_response) is not None
    assert validate("2.0.1", "BootNotification", "response", BOOT_201) is not None


def test_response_violation():
    v = validate("2.0.1", "BootNotification", "response", {"currentTime": "2024-05-01T12:00:00Z", "interval": "60",
                                                           "status": "Accepted"})
    assert v is not None and v.path == "interval" and v.rule == "type"


# ---- unknown actions and versions ------------------------------------------------------

def test_unknown_action_raises():
    with pytest.raises(UnknownAction, match="OCPP 1.6 has no action 'NoSuchThing'"):
        validate("1.6", "NoSuchThing", "request", {})
    assert issubclass(UnknownAction, KeyError)


def test_action_of_the_other_version_is_unknown():
    assert "TransactionEvent" in actions("2.0.1") and "TransactionEvent" not in actions("1.6")
    assert "StartTransaction" in actions("1.6") and "StartTransaction" not in actions("2.0.1")
    with pytest.raises(UnknownAction):
        validate("1.6", "TransactionEvent", "request", {})
    with pytest.raises(UnknownAction):
        validate("2.0.1", "StartTransaction", "response", {})


def test_unsupported_version():
    with pytest.raises(ValueError, match="unsupported OCPP version '3.0'"):
        validate("3.0", "Heartbeat", "request", {})


def test_action_names_exclude_response_files():
    assert not any(a.endswith("Response") for a in actions("1.6"))
    assert not any(a.endswith(("Request", "Response")) for a in actions("2.0.1"))
    assert {"BootNotification", "Heartbeat", "Authorize", "RemoteStartTransaction"} <= actions("1.6")
    assert {"BootNotification", "Heartbeat", "TransactionEvent", "RequestStartTransaction"} <= actions("2.0.1")
    assert len(actions("1.6")) >= 28 and len(actions("2.0.1")) >= 60


def test_subprotocol_tables_are_inverse():
    assert schemas.SUBPROTOCOLS == {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
    assert all(schemas.VERSION_OF_SUBPROTOCOL[sp] == v for v, sp in schemas.SUBPROTOCOLS.items())


# ---- every schema of both versions compiles ------------------------------------------------

@pytest.mark.parametrize("version", schemas.SUPPORTED_VERSIONS)
def test_every_action_compiles_both_kinds(version):
    for action in sorted(actions(version)):
        for kind in ("request", "response"):
            # A wrong type for the whole payload is rejected by every schema: proves it compiled and runs.
            v = validate(version, action, kind, "not an object")
            assert v is not None, (version, action, kind)
            assert v.rule == "type", (version, action, kind, v)
