"""Fault catalogues of the reference simulators.

A fault is a realistic vendor bug that breaks exactly ONE behaviour; every test case names
the faults it must catch, and `charger-harness mutants` checks it does. The station
catalogue lives here; the CSMS catalogue is filled in `harness.sim.csms_faults` and looked
up lazily so neither simulator imports the other.
"""

from __future__ import annotations

from .api import Fault, UnknownFault

_BOTH = ("1.6", "2.0.1")
_V16 = ("1.6",)
_V201 = ("2.0.1",)


def _cs(name: str, versions: tuple[str, ...], description: str) -> tuple[str, Fault]:
    return name, Fault(name, "cs", versions, description)


STATION_FAULTS: dict[str, Fault] = dict([
    # --- provisioning / boot -------------------------------------------------------------
    _cs("boot_ignores_interval", _BOTH,
        "Heartbeats at its built-in default interval instead of the interval in the accepted BootNotification response."),
    _cs("pending_sends_status", _BOTH,
        "Sends StatusNotification for its connectors while its registration is Pending."),
    _cs("rejected_retries_immediately", _BOTH,
        "After a Rejected BootNotification retries within half a second, ignoring the retry interval."),
    _cs("no_status_after_boot", _BOTH,
        "Sends no StatusNotification for its connectors after the BootNotification is accepted."),
    _cs("garbage_heartbeat", _BOTH,
        "Sends a truncated, non-JSON frame instead of its first Heartbeat."),
    # --- authorization / transactions ----------------------------------------------------
    _cs("authorize_invalid_still_starts", _BOTH,
        "Starts a transaction although Authorize answered Invalid/Blocked/Unknown for the token."),
    _cs("tx_seqno_skips", _V201,
        "TransactionEvent seqNo jumps by 2 after the Started event."),
    _cs("tx_id_changes", _BOTH,
        "Reports a different transactionId after the start (2.0.1 Updated/Ended; 1.6 MeterValues/StopTransaction)."),
    _cs("no_ended_on_unplug", _V201,
        "Sends no TransactionEvent Ended when the cable is unplugged during a transaction."),
    _cs("no_stop_transaction_on_unplug", _V16,
        "Sends no StopTransaction when the cable is unplugged during a transaction."),
    _cs("drops_connection_in_tx", _BOTH,
        "Drops the websocket abnormally (no close frame) about one second after a transaction starts."),
    # --- metering ------------------------------------------------------------------------
    _cs("meter_missing_soc", _BOTH,
        "Leaves the SoC measurand out of meter values even when it is configured."),
    _cs("meter_power_in_kw", _BOTH,
        "Reports Power.Active.Import in kW while labelling the unit W (value 1000x too small)."),
    _cs("meter_energy_decreases", _BOTH,
        "The Energy.Active.Import.Register it reports goes backwards during a transaction."),
    # --- CSMS-initiated operations ---------------------------------------------------------
    _cs("remote_start_ignored", _BOTH,
        "Answers RequestStartTransaction/RemoteStartTransaction Accepted but never starts a transaction."),
    _cs("remote_stop_ignored", _BOTH,
        "Answers RequestStopTransaction/RemoteStopTransaction Accepted but never stops the transaction."),
    _cs("set_variable_not_applied", _BOTH,
        "Answers SetVariables/ChangeConfiguration Accepted but keeps the old value."),
    _cs("unknown_config_key_accepted", _BOTH,
        "Answers Accepted when asked to set an unknown variable/configuration key (should be UnknownVariable/NotSupported)."),
    _cs("reset_no_reboot", _BOTH,
        "Answers Reset Accepted but never reboots."),
    _cs("trigger_ignored", _BOTH,
        "Answers TriggerMessage Accepted but never sends the requested message."),
    # --- RPC framework ---------------------------------------------------------------------
    _cs("unknown_action_callresult", _BOTH,
        "Answers a CALL with an unknown action with an empty CALLRESULT instead of CALLERROR NotImplemented."),
    _cs("bad_payload_accepted", _BOTH,
        "Answers a schema-invalid request with a normal CALLRESULT instead of a CALLERROR."),
    _cs("hangs_on_call", _BOTH,
        "Stops answering CSMS-initiated CALLs (its own CALLs keep flowing)."),
    _cs("wrong_response_id", _BOTH,
        "Answers CSMS-initiated CALLs with a message id that does not match the CALL."),
    _cs("invalid_status_enum", _BOTH,
        "Reports connector status with a value outside the schema enum ('Free' instead of 'Available')."),
    # --- smart charging ----------------------------------------------------------------------
    _cs("ignores_stack_level", _BOTH,
        "Stacks charging profiles the wrong way round: of one purpose, the lowest stackLevel wins (composite and power)."),
    _cs("ignores_station_max", _BOTH,
        "Accepts a ChargingStationMaxProfile/ChargePointMaxProfile but leaves it out of the composite schedule and the power."),
    _cs("composite_ignores_validto", _BOTH,
        "Keeps counting a charging profile after its validTo (composite schedule and power)."),
    _cs("recurring_not_repeated", _BOTH,
        "Runs a Recurring (Daily/Weekly) charging profile once from its startSchedule, as if it were Absolute."),
    _cs("composite_unit_ignored", _BOTH,
        "Answers GetCompositeSchedule in the unit of its profiles, labelled with the requested chargingRateUnit."),
    _cs("limit_not_applied", _BOTH,
        "Accepts charging profiles and reports the right composite schedule, but keeps drawing full power."),
    _cs("clear_profile_ignored", _BOTH,
        "Answers ClearChargingProfile Accepted but keeps the profile installed."),
    _cs("tx_profile_without_tx_accepted", _BOTH,
        "Accepts a TxProfile for an EVSE/connector with no transaction (should be Rejected)."),
    # --- OCPP 2.0.1 availability / remote control / authorization cache ----------------------
    _cs("change_availability_ignored", _V201,
        "Answers ChangeAvailability Accepted but neither changes the EVSE's availability nor reports a new status."),
    _cs("local_stop_ignored", _V201,
        "Presenting the token that started the transaction again does not stop it (no Ended StopAuthorized/Local)."),
    _cs("unlock_always_unlocked", _V201,
        "Answers every UnlockConnector Unlocked, also for an unknown EVSE/connector or during a transaction."),
    _cs("clear_cache_rejected", _V201,
        "Answers ClearCache Rejected although its authorization cache is enabled."),
    _cs("notify_report_missing", _V201,
        "Answers GetBaseReport Accepted but never sends the NotifyReport with the report."),
])

# The smart-charging group (profiles, composite schedule, applied limit); probed in tests/test_sim_smart.py.
SMART_CHARGING_FAULTS: tuple[str, ...] = (
    "ignores_stack_level", "ignores_station_max", "composite_ignores_validto", "recurring_not_repeated",
    "composite_unit_ignored", "limit_not_applied", "clear_profile_ignored", "tx_profile_without_tx_accepted",
)

# Filled by harness.sim.csms_faults (owned by the CSMS simulator); kept empty here on purpose.
CSMS_FAULTS: dict[str, Fault] = {}


def _catalogue(target: str) -> dict[str, Fault]:
    if target == "cs":
        return STATION_FAULTS
    if target == "csms":
        try:
            from .csms_faults import CSMS_FAULTS as csms  # lazy: the module is another engineer's
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.csms_faults":
                raise
            csms = CSMS_FAULTS
        return csms
    if target == "ev":
        from .ev_sim import EV_FAULTS
        return EV_FAULTS
    raise ValueError(f"fault target must be 'cs', 'csms' or 'ev', got {target!r}")


def get_fault(target: str, name: str) -> Fault:
    """The fault `name` of the simulator `target` ("cs" | "csms"), or UnknownFault listing the valid ones."""
    catalogue = _catalogue(target)
    try:
        return catalogue[name]
    except KeyError:
        valid = ", ".join(sorted(catalogue)) or "(none)"
        raise UnknownFault(f"no {target} fault named {name!r}; valid: {valid}") from None


# --- OCPP 1.6 Core operations (availability, unlock, local stop, cache, data transfer) ------------
# The *_16 names mirror 2.0.1 faults of the same idea; each is a separate bug of the 1.6 front end.
STATION_FAULTS.update(dict([
    _cs("change_availability_ignored_16", _V16,
        "Answers ChangeAvailability Accepted but the connector/charge point stays operative and no StatusNotification Unavailable is sent."),
    _cs("scheduled_availability_forgotten", _V16,
        "Answers ChangeAvailability Inoperative Scheduled during a transaction, but stays Available after the transaction ends."),
    _cs("unlock_unknown_connector_unlocked", _V16,
        "Answers UnlockConnector for a connectorId it does not have with Unlocked instead of NotSupported."),
    _cs("unlock_keeps_transaction", _V16,
        "Unlocks the connector during a transaction (Unlocked) but does not stop the transaction (no StopTransaction UnlockCommand)."),
    _cs("local_stop_ignored_16", _V16,
        "Presenting the idTag that started the transaction again does not stop it (no StopTransaction reason Local)."),
    _cs("clear_cache_rejected_16", _V16,
        "Answers ClearCache Rejected although it has an authorization cache."),
    _cs("data_transfer_not_implemented", _V16,
        "Answers DataTransfer (a Core message in 1.6) with CALLERROR NotImplemented instead of a DataTransfer.conf status."),
]))

# --- 2.0.1 DataTransfer (P) -----------------------------------------------------------------
STATION_FAULTS.update(dict([
    _cs("data_transfer_accepts_unknown_vendor", _V201,
        "Answers a DataTransfer for a vendorId it has no extension for with Accepted instead of UnknownVendorId."),
    _cs("data_transfer_drops_message_id", _BOTH,
        "Sends its vendor-specific DataTransfer without the messageId the vendor extension needs."),
]))


# --- dual stack (a depot charger must speak both editions) ----------------------------------
STATION_FAULTS.update(dict([
    _cs("offers_only_201", _BOTH,
        "A dual-stack charger offers only ocpp2.0.1 on the websocket upgrade, so a 1.6 back end cannot serve it."),
    _cs("offers_only_16", _BOTH,
        "A dual-stack charger offers only ocpp1.6 on the websocket upgrade, so a 2.0.1 back end cannot serve it."),
]))


# --- TLS (security profiles 2–3; applied in harness.sim.tls_faults) ---------------------------
STATION_FAULTS.update(dict([
    _cs("accepts_untrusted_csms_certificate", _BOTH,
        "Does not verify the CSMS's server certificate (verification switched off): connects to a CSMS whose certificate no trusted CA signed."),
    _cs("accepts_tls_1_1_csms", _BOTH,
        "Still allows TLS 1.1 and connects to a CSMS that offers nothing newer."),
    _cs("tls_no_basic_auth", _BOTH,
        "At security profile 2 sends no HTTP Basic credentials on the wss upgrade (TLS alone is taken as enough)."),
    _cs("tls_no_client_certificate", _BOTH,
        "At security profile 3 presents no client certificate in the TLS handshake."),
]))


# --- faults of the optional functional blocks (harness.sim.features, one module per block) ---
def _add_feature_faults() -> None:
    from .features import station_faults         # lazy: feature modules import this package's api
    STATION_FAULTS.update(station_faults())


_add_feature_faults()
