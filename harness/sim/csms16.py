"""OCPP 1.6J behaviour of the reference CSMS (Central System): answers to a charge point's
CALLs, and the CALLs the operator's out-of-band actions make it send.

BootNotification, Heartbeat, the Pending gate and RPC errors are shared with 2.0.1 and live
in `csms.py`. In 1.6 the Central System issues transaction ids (integers, unique across
all charge points here) and a connector stands where 2.0.1 has an EVSE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from . import features
from .csms_faults import OTHER_RESET_TYPE, other_evse, other_trigger, other_value

if TYPE_CHECKING:
    from .csms import CsmsSimulator, StationState

VERSION = "1.6"
ENERGY = "Energy.Active.Import.Register"

Outgoing = tuple[str, dict[str, Any], bool]        # action, payload, validate before sending
Handler = Callable[["CsmsSimulator", "StationState", dict[str, Any]], dict[str, Any]]
Builder = Callable[["CsmsSimulator", "StationState", dict[str, Any]], Outgoing]

# Charge-point-initiated messages whose response is empty (incl. the 1.6 security whitepaper's).
_ACKNOWLEDGED = frozenset({
    "DiagnosticsStatusNotification", "FirmwareStatusNotification", "LogStatusNotification",
    "SecurityEventNotification", "SignedFirmwareStatusNotification",
})

_TRIGGERED_CALL = {"SignChargePointCertificate": "SignCertificate"}


def provoked_calls(action: str, payload: dict[str, Any]) -> set[str]:
    """Charge point CALLs this Central System CALL legitimately provokes; allowed while Pending."""
    if action in ("TriggerMessage", "ExtendedTriggerMessage"):
        message = str(payload.get("requestedMessage", ""))
        return {_TRIGGERED_CALL.get(message, message)}
    return set(features.csms_provokes(action))


def _status_key(connector_id: int) -> tuple[int, int]:
    # See StationState.status: connector n ↔ EVSE n connector 1; connector 0 = whole charge point.
    return (connector_id, 1) if connector_id > 0 else (0, 0)


# ---- answers to the charge point's CALLs ---------------------------------------------------

def answer(sim: CsmsSimulator, st: StationState, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    handler = _HANDLERS.get(action)
    return handler(sim, st, payload) if handler else {}


def _id_tag_info(sim: CsmsSimulator, id_tag: str | None) -> dict[str, Any]:
    return {"status": sim.token_status(id_tag, VERSION)}


def _authorize(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    return {"idTagInfo": _id_tag_info(sim, p.get("idTag"))}


def _status_notification(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    st.status[_status_key(int(p.get("connectorId", 0)))] = str(p.get("status"))
    return {}


def _energy_wh(meter_values: list[dict[str, Any]] | None) -> float | None:
    """Latest phase-less Energy.Active.Import.Register reading, in Wh (1.6 values are strings)."""
    found = None
    for mv in meter_values or []:
        for sv in mv.get("sampledValue", []):
            if sv.get("measurand", ENERGY) != ENERGY or sv.get("phase"):
                continue
            try:
                value = float(sv["value"])
            except (KeyError, ValueError):
                continue
            found = value * (1000 if sv.get("unit") == "kWh" else 1)
    return found


def _start_transaction(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    tx_id = 1 if sim.faulty("tx_id_reused", VERSION) else sim.next_tx_id()
    connector = int(p.get("connectorId", 0))
    meter_start = float(p.get("meterStart", 0))
    st.open_transaction(tx_id, evse_id=connector, connector_id=connector, id_token=p.get("idTag"),
                        started_at=p.get("timestamp"), meter_start_wh=meter_start, energy_wh=meter_start,
                        events=["Start"])
    st.energy_wh[connector] = meter_start
    return {"transactionId": tx_id, "idTagInfo": _id_tag_info(sim, p.get("idTag"))}


def _stop_transaction(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    tx_id = p.get("transactionId")
    _parse_values(sim, p.get("transactionData"))
    tx = st.transactions.get(tx_id)
    if tx is None:
        sim.note(st, f"StopTransaction for unknown transactionId {tx_id!r}")
        tx = st.open_transaction(tx_id)
    elif tx.ended:
        sim.note(st, f"StopTransaction for already stopped transactionId {tx_id!r}")
    tx.events.append("Stop")
    tx.ended, tx.stopped_reason = True, p.get("reason", "Local")   # 1.6: absent reason means Local
    if "meterStop" in p:
        tx.energy_wh = float(p["meterStop"])
        if tx.evse_id is not None:
            st.energy_wh[tx.evse_id] = tx.energy_wh
    if "idTag" in p and not sim.faulty("stop_tx_no_idtaginfo", VERSION):
        return {"idTagInfo": _id_tag_info(sim, p["idTag"])}
    return {}


def _parse_values(sim: CsmsSimulator, meter_values: list[dict[str, Any]] | None) -> None:
    """The `meter_decimal_rejected` bug: every sampled value parsed as an integer (1.6 sends decimal strings)."""
    if sim.faulty("meter_decimal_rejected", VERSION):
        for mv in meter_values or []:
            for sv in mv.get("sampledValue", []):
                int(sv.get("value", "0"))          # ValueError on "1234.5" → CALLERROR InternalError


def _meter_values(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    _parse_values(sim, p.get("meterValue"))
    energy = _energy_wh(p.get("meterValue"))
    if energy is None:
        return {}
    st.energy_wh[int(p.get("connectorId", 0))] = energy
    tx = st.transactions.get(p.get("transactionId"))
    if tx is not None:
        tx.energy_wh = energy
    elif "transactionId" in p:
        sim.note(st, f"MeterValues for unknown transactionId {p['transactionId']!r}")
    return {}


def _data_transfer(sim: CsmsSimulator) -> dict[str, Any]:
    if sim.faulty("data_transfer_callerror", VERSION):   # the bug: no handler → CALLERROR InternalError
        raise NotImplementedError("DataTransfer")
    return {"status": "UnknownVendorId"}                 # no vendor extensions here (§4.3)


_HANDLERS: dict[str, Handler] = {
    "Authorize": _authorize,
    "StatusNotification": _status_notification,
    "StartTransaction": _start_transaction,
    "StopTransaction": _stop_transaction,
    "MeterValues": _meter_values,
    "DataTransfer": lambda sim, st, p: _data_transfer(sim),
    "SignCertificate": lambda sim, st, p: {"status": "Rejected"},    # no PKI yet
}

_HANDLERS.update(features.csms_answers(VERSION))
STATION_ACTIONS = frozenset({"BootNotification", "Heartbeat", *_HANDLERS, *_ACKNOWLEDGED})


# ---- CALLs for the operator's actions ----------------------------------------------------

def _connector(params: dict[str, Any]) -> int | None:
    # 1.6 has no EVSE; a version-neutral test case may name the `evse`, which is the connector here.
    value = params.get("connector", params.get("evse"))
    return None if value is None else int(value)


def _id_tag(params: dict[str, Any]) -> str:
    token = params.get("id_token")
    if token is None:
        raise ValueError("id_token is required")
    return str(token["idToken"]) if isinstance(token, dict) else str(token)


def _remote_start(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    payload: dict[str, Any] = {"idTag": _id_tag(params)}
    connector = _connector(params)
    if connector is not None:
        payload["connectorId"] = other_evse(connector) if sim.faulty("remote_start_wrong_evse", VERSION) else connector
    if params.get("charging_profile") is not None:
        payload["chargingProfile"] = params["charging_profile"]
    if sim.faulty("remote_start_no_id_token", VERSION):
        del payload["idTag"]
        return "RemoteStartTransaction", payload, False
    return "RemoteStartTransaction", payload, True


def _remote_stop(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    tx_id = params.get("transaction_id")
    if tx_id is None:
        ongoing = st.ongoing()
        if not ongoing:
            raise ValueError(f"charge point {st.station_id} has no ongoing transaction the CSMS knows; "
                             "pass transaction_id")
        tx_id = ongoing[-1].transaction_id
    tx_id = int(tx_id)
    if sim.faulty("remote_stop_wrong_tx", VERSION):
        tx_id += 1000
    return "RemoteStopTransaction", {"transactionId": tx_id}, True


def _reset(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    kind = params.get("type", "Hard")
    if sim.faulty("reset_wrong_type", VERSION):
        kind = OTHER_RESET_TYPE.get(kind, kind)
    return "Reset", {"type": kind}, True


def _get_configuration(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    keys = params.get("keys")
    return "GetConfiguration", ({"key": list(keys)} if keys else {}), True


def _change_configuration(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    value = str(params["value"])
    if sim.faulty("set_variables_wrong_value", VERSION):
        value = other_value(value)
    return "ChangeConfiguration", {"key": str(params["key"]), "value": value}, True


def _trigger_message(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    message = str(params.get("message", ""))
    if sim.faulty("trigger_wrong_message", VERSION):
        message = other_trigger(message)
    payload: dict[str, Any] = {"requestedMessage": message}
    connector = _connector(params)
    if connector is not None:
        payload["connectorId"] = connector
    return "TriggerMessage", payload, True


def _change_availability(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    connector = _connector(params)
    kind = str(params.get("status", "Inoperative"))
    if sim.faulty("change_availability_wrong_type", VERSION):
        kind = "Operative" if kind == "Inoperative" else "Inoperative"
    return "ChangeAvailability", {"connectorId": 0 if connector is None else connector, "type": kind}, True


def _unlock_connector(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    connector = _connector(params)
    if connector is None:
        raise ValueError("unlock_connector needs connector")
    if sim.faulty("unlock_wrong_connector_16", VERSION):
        connector = other_evse(connector)
    return "UnlockConnector", {"connectorId": connector}, True


def _clear_cache(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> Outgoing:
    return "ClearCache", {}, True


OPERATOR_ACTIONS: dict[str, Builder] = {
    "remote_start": _remote_start,
    "remote_stop": _remote_stop,
    "reset": _reset,
    "get_configuration": _get_configuration,
    "change_configuration": _change_configuration,
    "trigger_message": _trigger_message,
    "change_availability": _change_availability,
    "unlock_connector": _unlock_connector,
    "clear_cache": _clear_cache,
}
OPERATOR_ACTIONS.update(features.csms_operator(VERSION))
