"""Default replies for CALLs that no test step is waiting for.

A real back end or station answers everything; so must the harness, or the DUT would
stall on an unanswered Heartbeat while a case waits for something else. Each default is
the plainest schema-valid answer the spec allows. Cases override them with `defaults:`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

Payload = dict[str, Any]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Harness as CSMS: answers to what a charging station sends.
_CSMS_201: dict[str, Callable[[Payload, dict[str, Any]], Payload]] = {
    "BootNotification": lambda p, v: {"currentTime": _now(), "interval": int(v.get("heartbeat_interval", 60)), "status": "Accepted"},
    "Heartbeat": lambda p, v: {"currentTime": _now()},
    "StatusNotification": lambda p, v: {},
    "Authorize": lambda p, v: {"idTokenInfo": {"status": "Accepted"}},
    "TransactionEvent": lambda p, v: {"idTokenInfo": {"status": "Accepted"}} if "idToken" in p else {},
    "MeterValues": lambda p, v: {},
    "NotifyEvent": lambda p, v: {},
    "NotifyReport": lambda p, v: {},
    "NotifyMonitoringReport": lambda p, v: {},
    "NotifyChargingLimit": lambda p, v: {},
    "NotifyEVChargingNeeds": lambda p, v: {"status": "Accepted"},
    "NotifyEVChargingSchedule": lambda p, v: {"status": "Accepted"},
    "NotifyDisplayMessages": lambda p, v: {},
    "NotifyCustomerInformation": lambda p, v: {},
    "ReportChargingProfiles": lambda p, v: {},
    "ReservationStatusUpdate": lambda p, v: {},
    "SecurityEventNotification": lambda p, v: {},
    "FirmwareStatusNotification": lambda p, v: {},
    "LogStatusNotification": lambda p, v: {},
    "PublishFirmwareStatusNotification": lambda p, v: {},
    "ClearedChargingLimit": lambda p, v: {},
    "DataTransfer": lambda p, v: {"status": "UnknownVendorId"},
    "SignCertificate": lambda p, v: {"status": "Rejected"},
    "Get15118EVCertificate": lambda p, v: {"status": "Failed", "exiResponse": ""},
    "GetCertificateStatus": lambda p, v: {"status": "Failed"},
}

_CSMS_16: dict[str, Callable[[Payload, dict[str, Any]], Payload]] = {
    "BootNotification": lambda p, v: {"currentTime": _now(), "interval": int(v.get("heartbeat_interval", 60)), "status": "Accepted"},
    "Heartbeat": lambda p, v: {"currentTime": _now()},
    "StatusNotification": lambda p, v: {},
    "Authorize": lambda p, v: {"idTagInfo": {"status": "Accepted"}},
    "StartTransaction": lambda p, v: {"idTagInfo": {"status": "Accepted"}, "transactionId": v.get("_next_tx_id", 1)},
    "StopTransaction": lambda p, v: {"idTagInfo": {"status": "Accepted"}} if "idTag" in p else {},
    "MeterValues": lambda p, v: {},
    "DataTransfer": lambda p, v: {"status": "UnknownVendorId"},
    "DiagnosticsStatusNotification": lambda p, v: {},
    "FirmwareStatusNotification": lambda p, v: {},
    "SecurityEventNotification": lambda p, v: {},
    "SignedFirmwareStatusNotification": lambda p, v: {},
    "LogStatusNotification": lambda p, v: {},
    "SignCertificate": lambda p, v: {"status": "Rejected"},
}

# Harness as charging station: answers to what a CSMS sends. Refuse politely by default:
# a case that wants the station to accept something says so in its steps.
_CS_201: dict[str, Callable[[Payload, dict[str, Any]], Payload]] = {
    "GetVariables": lambda p, v: {"getVariableResult": [
        {"attributeStatus": "UnknownComponent", "component": g["component"], "variable": g["variable"]}
        for g in p.get("getVariableData", [])]},
    "SetVariables": lambda p, v: {"setVariableResult": [
        {"attributeStatus": "UnknownComponent", "component": s["component"], "variable": s["variable"]}
        for s in p.get("setVariableData", [])]},
    "ChangeAvailability": lambda p, v: {"status": "Accepted"},
    "TriggerMessage": lambda p, v: {"status": "NotImplemented"},
    "Reset": lambda p, v: {"status": "Rejected"},
    "RequestStartTransaction": lambda p, v: {"status": "Rejected"},
    "RequestStopTransaction": lambda p, v: {"status": "Rejected"},
    "GetBaseReport": lambda p, v: {"status": "NotSupported"},
    "SetChargingProfile": lambda p, v: {"status": "Rejected"},
    "ClearChargingProfile": lambda p, v: {"status": "Unknown"},
    "DataTransfer": lambda p, v: {"status": "UnknownVendorId"},
    "GetLocalListVersion": lambda p, v: {"versionNumber": 0},
    "ClearCache": lambda p, v: {"status": "Accepted"},
    "UnlockConnector": lambda p, v: {"status": "UnknownConnector"},
}

_CS_16: dict[str, Callable[[Payload, dict[str, Any]], Payload]] = {
    "GetConfiguration": lambda p, v: {"configurationKey": [], "unknownKey": list(p.get("key", []))},
    "ChangeConfiguration": lambda p, v: {"status": "NotSupported"},
    "ChangeAvailability": lambda p, v: {"status": "Accepted"},
    "TriggerMessage": lambda p, v: {"status": "NotImplemented"},
    "Reset": lambda p, v: {"status": "Rejected"},
    "RemoteStartTransaction": lambda p, v: {"status": "Rejected"},
    "RemoteStopTransaction": lambda p, v: {"status": "Rejected"},
    "ClearCache": lambda p, v: {"status": "Accepted"},
    "DataTransfer": lambda p, v: {"status": "UnknownVendorId"},
    "GetLocalListVersion": lambda p, v: {"listVersion": 0},
    "UnlockConnector": lambda p, v: {"status": "NotSupported"},
    "SetChargingProfile": lambda p, v: {"status": "Rejected"},
    "ClearChargingProfile": lambda p, v: {"status": "Unknown"},
}

_TABLES = {("csms", "2.0.1"): _CSMS_201, ("csms", "1.6"): _CSMS_16, ("cs", "2.0.1"): _CS_201, ("cs", "1.6"): _CS_16}


def default_reply(role: str, version: str, action: str, payload: Payload, variables: dict[str, Any]) -> Payload | None:
    """The default answer the harness in `role` gives to `action`, or None (→ NotImplemented)."""
    fn = _TABLES[(role, version)].get(action)
    return fn(payload, variables) if fn else None
