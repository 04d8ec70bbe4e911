"""OCPP 2.0.1 behaviour of the reference CSMS: answers to a station's CALLs, and the CALLs
the operator's out-of-band actions make the CSMS send.

BootNotification, Heartbeat, the Pending gate and RPC errors are shared with 1.6 and live
in `csms.py`; this module only knows 2.0.1 payload shapes and the transaction model of
block E (transactions keyed by the station's transactionId, seqNo per transaction).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from . import features
from .csms_faults import OTHER_RESET_TYPE, other_evse, other_trigger, other_value

if TYPE_CHECKING:
    from .csms import CsmsSimulator, StationState

VERSION = "2.0.1"
ENERGY = "Energy.Active.Import.Register"

Outgoing = tuple[str, dict[str, Any], bool]        # action, payload, validate before sending
Handler = Callable[["CsmsSimulator", "StationState", dict[str, Any]], dict[str, Any]]
Builder = Callable[["CsmsSimulator", "StationState", dict[str, Any]], Outgoing]

# Station-initiated messages whose response has no required field: the CSMS acknowledges with {}.
_ACKNOWLEDGED = frozenset({
    "ClearedChargingLimit", "FirmwareStatusNotification", "LogStatusNotification", "NotifyChargingLimit",
    "NotifyCustomerInformation", "NotifyDisplayMessages", "NotifyEvent", "NotifyMonitoringReport",
    "NotifyReport", "PublishFirmwareStatusNotification", "ReportChargingProfiles", "ReservationStatusUpdate",
    "SecurityEventNotification",
})

# TriggerMessage.requestedMessage → the CALL it makes the station send.
_TRIGGERED_CALL = {"SignChargingStationCertificate": "SignCertificate", "SignV2GCertificate": "SignCertificate",
                   "SignCombinedCertificate": "SignCertificate"}


def provoked_calls(action: str, payload: dict[str, Any]) -> set[str]:
    """Station CALLs that this CSMS CALL legitimately provokes; allowed while Pending (B02.FR.09)."""
    if action == "TriggerMessage":
        message = str(payload.get("requestedMessage", ""))
        return {_TRIGGERED_CALL.get(message, message)}
    if action in ("GetBaseReport", "GetReport"):
        return {"NotifyReport"}
    return set(features.csms_provokes(action))


# ---- answers to the station's CALLs ------------------------------------------------------

def answer(sim: CsmsSimulator, st: StationState, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    handler = _HANDLERS.get(action)
    return handler(sim, st, payload) if handler else {}


def _token_status(sim: CsmsSimulator, id_token: dict[str, Any]) -> str:
    # NoAuthorization carries no token to check: the station did not authorize, so nothing to refuse.
    if id_token.get("type") == "NoAuthorization":
        return "Accepted"
    return sim.token_status(id_token.get("idToken"), VERSION)


def _authorize(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    return {"idTokenInfo": {"status": _token_status(sim, p.get("idToken") or {})}}


def _status_notification(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    st.status[(int(p.get("evseId", 0)), int(p.get("connectorId", 0)))] = str(p.get("connectorStatus"))
    return {}


def _energy_wh(meter_values: list[dict[str, Any]] | None) -> float | None:
    """Latest phase-less Energy.Active.Import.Register reading, in Wh."""
    found = None
    for mv in meter_values or []:
        for sv in mv.get("sampledValue", []):
            if sv.get("measurand", ENERGY) != ENERGY or sv.get("phase"):
                continue
            unit = sv.get("unitOfMeasure") or {}
            scale = 10 ** unit.get("multiplier", 0) * (1000 if unit.get("unit") == "kWh" else 1)
            found = float(sv["value"]) * scale
    return found


def _meter_values(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    energy = _energy_wh(p.get("meterValue"))
    if energy is not None:
        st.energy_wh[int(p.get("evseId", 0))] = energy
    return {}


def _transaction_event(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    info = p.get("transactionInfo") or {}
    tx_id, event_type, seq_no = info.get("transactionId"), p.get("eventType"), p.get("seqNo")
    evse = p.get("evse") or {}
    tx = st.transactions.get(tx_id)
    if tx is None:
        if event_type != "Started":
            sim.note(st, f"TransactionEvent {event_type} for transaction {tx_id!r} never Started here")
        tx = st.open_transaction(tx_id, started_at=p.get("timestamp"))
    elif event_type == "Started":
        sim.note(st, f"second TransactionEvent Started for transaction {tx_id!r}")
    # seqNo restarts at 0 per transaction (2.0.1 Ed.2 recommendation) and must have no gaps.
    if tx.seq_no is not None and seq_no != tx.seq_no + 1:
        sim.note(st, f"transaction {tx_id!r}: seqNo {seq_no} after {tx.seq_no} (expected {tx.seq_no + 1})")
    tx.seq_no = seq_no
    tx.events.append(f"{event_type}/{p.get('triggerReason')}")
    if "id" in evse:
        tx.evse_id, tx.connector_id = evse["id"], evse.get("connectorId", tx.connector_id)
    if "remoteStartId" in info:
        tx.remote_start_id = info["remoteStartId"]
    if "chargingState" in info:
        tx.charging_state = info["chargingState"]
    id_token = p.get("idToken")
    if id_token:
        tx.id_token = id_token.get("idToken")
    energy = _energy_wh(p.get("meterValue"))
    if energy is not None:
        if tx.meter_start_wh is None:
            tx.meter_start_wh = energy
        tx.energy_wh = energy
        if tx.evse_id is not None:
            st.energy_wh[int(tx.evse_id)] = energy
    if event_type == "Ended":
        tx.ended, tx.stopped_reason = True, info.get("stoppedReason")
    # E01/E05: a request that carries an idToken gets the CSMS's verdict on it.
    if id_token and not sim.faulty("tx_event_no_idtokeninfo", VERSION):
        return {"idTokenInfo": {"status": _token_status(sim, id_token)}}
    return {}


_HANDLERS: dict[str, Handler] = {
    "Authorize": _authorize,
    "StatusNotification": _status_notification,
    "MeterValues": _meter_values,
    "TransactionEvent": _transaction_event,
    # No vendor extensions here; no PKI yet, so certificate requests are refused honestly.
    "DataTransfer": lambda sim, st, p: ({"status": "Accepted"} if sim.faulty("data_transfer_accepts_unknown_vendor_csms", VERSION)
                                        else {"status": "UnknownVendorId"}),          # P02.FR.06
    "SignCertificate": lambda sim, st, p: {"status": "Rejected"},
    "Get15118EVCertificate": lambda sim, st, p: {"status": "Failed", "exiResponse": ""},
    "GetCertificateStatus": lambda sim, st, p: {"status": "Failed"},
    # "Accepted" = the CSMS processed the needs, not a promise to meet them (K15).
    "NotifyEVChargingNeeds": lambda sim, st, p: {"status": "Accepted"},
    "NotifyEVChargingSchedule": lambda sim, st, p: {"status": "Accepted"},
    "NotifyEvent": lambda sim, st, p: _notify_event(sim, st, p),
}

_HANDLERS.update(features.csms_answers(VERSION))
STATION_ACTIONS = frozenset({"BootNotification", "Heartbeat", *_HANDLERS, *_ACKNOWLEDGED})


# ---- CALLs for the operator's actions ----------------------------------------------------

def _id_token(params: dict[str, Any]) -> dict[str, Any]:
    token = params.get("id_token")
    if token is None:
        raise ValueError("id_token is required")
    if isinstance(token, dict):
        return token
    return {"idToken": str(token), "type": params.get("id_token_type", "Central")}


def _evse(params: dict[str, Any]) -> dict[str, Any] | None:
    if params.get("evse") is None:
        return None
    evse = {"id": int(params["evse"])}
    if params.get("connector") is not None:
        evse["connectorId"] = int(params["connector"])
    return evse


def _named(x: str | dict[str, Any]) -> dict[str, Any]:
    """Component/variable given as a bare name or as the full 2.0.1 object."""
    return {"name": x} if isinstance(x, str) else dict(x)


def _remote_start(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    payload: dict[str, Any] = {"idToken": _id_token(params), "remoteStartId": sim.next_remote_start_id()}
    if params.get("evse") is not None:
        evse = int(params["evse"])
        payload["evseId"] = other_evse(evse) if sim.faulty("remote_start_wrong_evse", VERSION) else evse
    if params.get("charging_profile") is not None:
        payload["chargingProfile"] = params["charging_profile"]
    if sim.faulty("remote_start_no_id_token", VERSION):
        del payload["idToken"]
        return "RequestStartTransaction", payload, False
    return "RequestStartTransaction", payload, True


def _remote_stop(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    tx_id = params.get("transaction_id")
    if tx_id is None:
        ongoing = st.ongoing()
        if not ongoing:
            raise ValueError(f"station {st.station_id} has no ongoing transaction the CSMS knows; "
                             "pass transaction_id")
        tx_id = ongoing[-1].transaction_id
    if sim.faulty("remote_stop_wrong_tx", VERSION):
        tx_id = f"{str(tx_id)[:30]}-GONE"
    return "RequestStopTransaction", {"transactionId": str(tx_id)}, True


def _reset(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    kind = params.get("type", "Immediate")
    if sim.faulty("reset_wrong_type", VERSION):
        kind = OTHER_RESET_TYPE.get(kind, kind)
    payload: dict[str, Any] = {"type": kind}
    if params.get("evse") is not None:
        payload["evseId"] = int(params["evse"])
    return "Reset", payload, True


def _get_variables(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    data = []
    for v in params.get("variables") or []:
        item = {"component": _named(v["component"]), "variable": _named(v["variable"])}
        if v.get("attribute_type"):
            item["attributeType"] = v["attribute_type"]
        data.append(item)
    return "GetVariables", {"getVariableData": data}, True


def _set_variables(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    data = []
    for v in params.get("variables") or []:
        value = str(v["value"])
        if sim.faulty("set_variables_wrong_value", VERSION):
            value = other_value(value)
        item = {"component": _named(v["component"]), "variable": _named(v["variable"]), "attributeValue": value}
        if v.get("attribute_type"):
            item["attributeType"] = v["attribute_type"]
        data.append(item)
    return "SetVariables", {"setVariableData": data}, True


def _trigger_message(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    message = str(params.get("message", ""))
    if sim.faulty("trigger_wrong_message", VERSION):
        message = other_trigger(message)
    payload: dict[str, Any] = {"requestedMessage": message}
    evse = _evse(params)
    if evse is not None:
        payload["evse"] = evse
    return "TriggerMessage", payload, True


def _change_availability(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    status = params.get("status", "Inoperative")
    if sim.faulty("change_availability_wrong_status", VERSION):
        status = "Operative" if status == "Inoperative" else "Inoperative"
    payload: dict[str, Any] = {"operationalStatus": status}
    evse = _evse(params)
    if evse is not None:
        if sim.faulty("change_availability_wrong_evse", VERSION):
            evse["id"] = other_evse(evse["id"])
        payload["evse"] = evse
    return "ChangeAvailability", payload, True


def _unlock_connector(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    evse_id, connector_id = int(params.get("evse", 1)), int(params.get("connector", 1))
    if sim.faulty("unlock_wrong_connector", VERSION):
        evse_id = other_evse(evse_id)
    return "UnlockConnector", {"evseId": evse_id, "connectorId": connector_id}, True


def _get_transaction_status(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    payload: dict[str, Any] = {}
    tx_id = params.get("transaction_id")
    if tx_id is None and sim.faulty("tx_status_names_transaction", VERSION):
        known = list(st.transactions)              # the bug: always asks about the latest transaction
        tx_id = known[-1] if known else "UNKNOWN-TX"
    if tx_id is not None:
        payload["transactionId"] = str(tx_id)
    return "GetTransactionStatus", payload, True


def _data_transfer_out(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    """P01: a vendor-specific request to the station (vendor_id, message_id?, data?)."""
    vendor = str(params.get("vendor_id") or "")
    if not vendor:
        raise ValueError("data_transfer needs vendor_id")
    if sim.faulty("data_transfer_own_vendor_id", VERSION):
        vendor = "com.refsim.csms"            # the bug: the back end's own id replaces the operator's
    payload: dict[str, Any] = {"vendorId": vendor}
    for key, field in (("message_id", "messageId"), ("data", "data")):
        if params.get(key) is not None:
            payload[field] = params[key]
    return "DataTransfer", payload, True


def _get_base_report(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    base = str(params.get("report_base", "FullInventory"))
    if sim.faulty("get_base_report_wrong_base", VERSION):
        base = "ConfigurationInventory" if base == "FullInventory" else "FullInventory"
    request_id = int(params.get("request_id", sim.next_remote_start_id()))
    return "GetBaseReport", {"requestId": request_id, "reportBase": base}, True


def _notify_event(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    if sim.faulty("notify_event_callerror", VERSION):
        raise RuntimeError("event store unavailable")   # answered CALLERROR InternalError by the dispatcher
    return {}


OPERATOR_ACTIONS: dict[str, Builder] = {
    "remote_start": _remote_start,
    "remote_stop": _remote_stop,
    "reset": _reset,
    "get_variables": _get_variables,
    "set_variables": _set_variables,
    "trigger_message": _trigger_message,
    "change_availability": _change_availability,
    "unlock_connector": _unlock_connector,
    "get_transaction_status": _get_transaction_status,
    "get_base_report": _get_base_report,
    "data_transfer": _data_transfer_out,
}
OPERATOR_ACTIONS.update(features.csms_operator(VERSION))
