"""Fault catalogue of the reference CSMS simulator.

Each fault is a realistic back-end bug that breaks exactly one behaviour. The simulator
checks a fault at the one place where it acts (`CsmsSimulator.faulty`), so the clean path
stays readable; a fault whose `versions` do not include the station's OCPP version is
inert on that connection. `harness/sim/faults.py` merges this table with the station
simulator's.
"""

from __future__ import annotations

from .api import Fault

_BOTH = ("2.0.1", "1.6")


def _f(name: str, versions: tuple[str, ...], description: str) -> tuple[str, Fault]:
    return name, Fault(name=name, target="csms", versions=versions, description=description)


CSMS_FAULTS: dict[str, Fault] = dict(
    [
        # --- provisioning -------------------------------------------------------------
        _f("boot_interval_zero", _BOTH,
           "BootNotification is answered Accepted with interval 0 (no heartbeat interval)"),
        _f("boot_always_pending", _BOTH,
           "every BootNotification is answered Pending; the station is never accepted"),
        _f("pending_accepts_calls", _BOTH,
           "CALLs from a Pending station (Heartbeat, StatusNotification, …) are answered normally "
           "instead of CALLERROR SecurityError (B02.FR.09)"),
        _f("pending_rejects_triggered", _BOTH,
           "while Pending, a message the CSMS itself triggered (TriggerMessage/GetReport) is refused "
           "with SecurityError although B02.FR.09 allows it"),
        _f("heartbeat_bad_time", _BOTH,
           "Heartbeat currentTime is not RFC 3339 (\"2024-01-01 10:00:00\": space, no offset)"),
        _f("status_callerror", _BOTH,
           "StatusNotification is answered with CALLERROR InternalError"),
        # --- authorization -----------------------------------------------------------
        _f("authorize_accepts_unknown", _BOTH,
           "an unknown id token is Accepted instead of Invalid (Authorize and transaction answers)"),
        _f("authorize_rejects_valid", _BOTH,
           "a valid id token is answered Invalid (Authorize and transaction answers)"),
        _f("authorize_accepts_blocked", _BOTH,
           "a blocked id token is answered Accepted instead of Blocked"),
        # --- transactions ------------------------------------------------------------
        _f("tx_id_reused", ("1.6",),
           "StartTransaction always gets the same transactionId"),
        _f("stop_tx_no_idtaginfo", ("1.6",),
           "StopTransaction carrying an idTag is answered without idTagInfo"),
        _f("tx_event_no_idtokeninfo", ("2.0.1",),
           "TransactionEvent carrying an idToken is answered without idTokenInfo"),
        # --- RPC framework -----------------------------------------------------------
        _f("unknown_action_callresult", _BOTH,
           "a CALL with an unknown action is answered with CALLRESULT {} instead of CALLERROR NotImplemented"),
        _f("bad_payload_accepted", _BOTH,
           "a CALL whose payload violates the schema is answered as if it were valid"),
        _f("slow_response", _BOTH,
           "every CALL from the station is answered only after 40 s"),
        _f("wrong_response_id", _BOTH,
           "CALLRESULTs carry a message id different from the CALL's"),
        # --- transport / security ----------------------------------------------------
        _f("basic_auth_not_enforced", _BOTH,
           "a station presenting a wrong Basic-auth password is let in"),
        _f("accepts_unknown_subprotocol", _BOTH,
           "a websocket offering only an unknown subprotocol (ocpp9.9) is accepted"),
        # --- operator-initiated CALLs ------------------------------------------------
        _f("remote_start_no_id_token", _BOTH,
           "RequestStartTransaction / RemoteStartTransaction is sent without the required id token"),
        _f("remote_start_wrong_evse", _BOTH,
           "remote start names another EVSE (2.0.1 evseId) / connector (1.6 connectorId) than the operator asked"),
        _f("remote_stop_wrong_tx", _BOTH,
           "remote stop names a transaction id the station does not have"),
        _f("reset_wrong_type", _BOTH,
           "Reset is sent with the other type (Immediate↔OnIdle, Hard↔Soft)"),
        _f("set_variables_wrong_value", _BOTH,
           "SetVariables / ChangeConfiguration carries a different value than the operator asked"),
        _f("trigger_wrong_message", _BOTH,
           "TriggerMessage requests another message than the operator asked"),
    ]
)

# --- 2.0.1 availability / remote control / device management (appended) -------------------
CSMS_FAULTS.update(dict([
    _f("change_availability_wrong_evse", ("2.0.1",),
       "ChangeAvailability names another EVSE than the operator asked"),
    _f("unlock_wrong_connector", ("2.0.1",),
       "UnlockConnector names another EVSE than the operator asked"),
    _f("tx_status_names_transaction", ("2.0.1",),
       "GetTransactionStatus always carries the latest transactionId, also when the operator asked about the queue only"),
    _f("notify_event_callerror", ("2.0.1",),
       "NotifyEvent is answered with CALLERROR InternalError instead of an empty NotifyEventResponse"),
    _f("change_availability_wrong_status", ("2.0.1",),
       "ChangeAvailability carries the opposite operationalStatus (Inoperative<->Operative)"),
    _f("get_base_report_wrong_base", ("2.0.1",),
       "GetBaseReport asks for the other inventory (FullInventory <-> ConfigurationInventory) than the operator chose"),
]))

# --- 2.0.1 DataTransfer (P) ---------------------------------------------------------------
CSMS_FAULTS.update(dict([
    _f("data_transfer_accepts_unknown_vendor_csms", ("2.0.1",),
       "a DataTransfer with a vendorId the CSMS has no extension for is answered Accepted instead of UnknownVendorId"),
    _f("data_transfer_own_vendor_id", ("2.0.1",),
       "DataTransfer to a station carries the back end's own vendorId instead of the one the operator chose"),
]))

# --- TLS (security profiles 2–3; applied in harness.sim.tls_faults) ---------------------------
CSMS_FAULTS.update(dict([
    _f("client_certificate_not_required", _BOTH,
       "at security profile 3 a station that presents no client certificate is let in"),
    _f("accepts_revoked_client_certificate", _BOTH,
       "the CRL is never consulted: a revoked station certificate is accepted"),
    _f("accepts_expired_client_certificate", _BOTH,
       "certificate validity dates are not checked: an expired station certificate is accepted"),
    _f("accepts_tls_1_1", _BOTH,
       "TLS 1.1 is still enabled: a station offering only TLS 1.1 is let in"),
    _f("serves_self_signed_certificate", _BOTH,
       "the CSMS presents a self-signed server certificate (its default one), not one from the operator's CA"),
]))

# Faults of the optional functional blocks (harness.sim.features, one module per block).
from .features import csms_faults as _feature_faults  # noqa: E402  (after the core catalogue on purpose)

CSMS_FAULTS.update(_feature_faults())

# Delay applied by the `slow_response` fault: longer than any sane CALL timeout.
SLOW_RESPONSE_DELAY_S = 40.0
# What `accepts_unknown_subprotocol` additionally agrees to.
UNKNOWN_SUBPROTOCOL = "ocpp9.9"


# ---- what the buggy CSMS sends instead (used only where the matching fault acts) ---------

def other_evse(evse_id: int) -> int:
    """A neighbouring EVSE/connector id: 1 ↔ 2, anything else → 1."""
    return 2 if evse_id == 1 else 1


def other_value(value: str) -> str:
    """A plausible but different configuration value (off by one, flipped, or suffixed)."""
    if value.lstrip("-").isdigit():
        return str(int(value) + 1)
    flips = {"true": "false", "false": "true", "True": "False", "False": "True"}
    return flips.get(value, value + "X")


OTHER_RESET_TYPE = {"Immediate": "OnIdle", "OnIdle": "Immediate", "Hard": "Soft", "Soft": "Hard"}


def other_trigger(message: str) -> str:
    return "StatusNotification" if message == "Heartbeat" else "Heartbeat"


# ---- depot DLB (csms_dlb.py): the reference DLB controller with one seeded bug (dlb.DLB_FAULTS) ----
CSMS_FAULTS.update(dict([
    _f("dlb_ignores_site_limit_under_churn", ("2.0.1",),
       "depot DLB: for 30 s after any plug-in or unplug the setpoints ignore the site grid limit"),
    _f("dlb_first_come_first_served", ("2.0.1",),
       "depot DLB: power goes to trucks in arrival order instead of by departure time / laxity"),
    _f("dlb_forgets_bess_limits", ("2.0.1",),
       "depot DLB: the BESS station is driven past its SoC window and power limits"),
    _f("dlb_slow_reaction", ("2.0.1",),
       "depot DLB: a change of the site grid limit reaches the setpoints only 60 s after it took effect"),
]))

#: The depot DLB faults: probed by depot runs (tests/test_depot_ocpp.py), not by the per-call probes.
DLB_CSMS_FAULTS: tuple[str, ...] = tuple(name for name in CSMS_FAULTS if name.startswith("dlb_"))

# ---- OCPP 1.6 Core: data transfer, meter values, availability, unlock ----------------------------
CSMS_FAULTS.update(dict([
    _f("data_transfer_callerror", ("1.6",),
       "DataTransfer from the charge point is answered with CALLERROR InternalError (no handler) instead of "
       "a DataTransfer.conf status"),
    _f("meter_decimal_rejected", ("1.6",),
       "sampled values are parsed as integers: MeterValues / StopTransaction transactionData with a decimal "
       "value ('1234.5') are answered with CALLERROR InternalError"),
    _f("change_availability_wrong_type", ("1.6",),
       "ChangeAvailability is sent with the opposite type (Inoperative↔Operative)"),
    _f("unlock_wrong_connector_16", ("1.6",),
       "UnlockConnector names another connectorId than the operator asked"),
]))
