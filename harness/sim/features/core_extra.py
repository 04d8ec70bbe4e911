"""Core-profile behaviour the core simulators leave out, and Core-profile vendor bugs.

Station simulator (OCPP 2.0.1):
- clock-aligned meter values (J01): AlignedDataCtrlr.Interval / Measurands. At every
  multiple of Interval seconds past midnight UTC the station samples each EVSE: an idle
  EVSE reports a MeterValuesRequest, an EVSE with a transaction a TransactionEvent Updated
  with triggerReason MeterValueClock; both with context Sample.Clock and the aligned
  instant as timestamp (J01.FR.01/02/03/06). Interval 0 switches it off (the default).
- the start button (C02): action `press_start_button {evse}` authorizes with an idToken of
  type NoAuthorization, locally, without an AuthorizeRequest; an idToken of type Central
  (credit/debit card paid at the payment terminal, C03) is not sent in an AuthorizeRequest either.
- lock failure (G05): action `lock_failure {evse, connector}` breaks the connector's
  retention lock; the next driver who tries to start there gets no transaction and the
  station reports ConnectorPlugRetentionLock.Problem = true in a NotifyEvent (G05.FR.01/02).
- TxCtrlr.StopTxOnEVSideDisconnect (read-only true): the core ends the transaction when the
  cable leaves the EV (E09), so the device model says so.
- retries of transaction messages (E13): a TransactionEvent the CSMS answers with a CALLERROR
  (or not at all) is sent again, unchanged and ahead of the queue, after
  OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent] × tries so far, up to
  MessageAttempts[TransactionEvent] tries in all; then it is dropped.
- another token during a transaction (C09 GroupId, C16 Master Pass): the station authorizes
  it; the same groupIdToken as the starting token's stops the transaction (Local), a
  groupIdToken equal to AuthCtrlr.MasterPassGroupId stops every transaction (MasterPass),
  anything else changes nothing. The core has no hook here, so the front end's on_token is
  wrapped once after the first accepted boot.

CSMS simulator (2.0.1): TransactionEvent and MeterValues answers are the core's, wrapped so
that the CSMS faults below can act.

Faults: the Core-profile bugs of the station (offline queueing E11/E12/E08, status after an
offline period B04, reset with a transaction B12, token types C02/C03/C04/C06, E05, E13, E15,
J01, G05, GroupId C09, Master Pass C16) and of the CSMS (offline-queued and retried
TransactionEvents, clock-aligned and signed readings, an Ended event without any idToken).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..api import Fault, Reply, Setting
from . import Feature, feature_state

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState
    from ..evse import Evse
    from ..station import FrontEnd, StationSimulator

V201 = "2.0.1"
ENERGY = "Energy.Active.Import.Register"
POLL_S = 0.5                  # how often the aligned-data loop re-reads its settings
ALIGNED_MEASURANDS = (ENERGY, "Power.Active.Import", "Current.Import", "Voltage", "SoC")

# Plain stored values (no attribute of the core behind them). Setting is frozen and the store
# is keyed by it: equal Settings share one value. The interval deliberately equals 1.6's
# ClockAlignedDataInterval (same concept); the read-only flags get a distinct `minimum`.
ALIGNED_INTERVAL = Setting(None, "int", const="0")
ALIGNED_MEASURANDS_SETTING = Setting(None, "list", const=ENERGY, choices=ALIGNED_MEASURANDS)
# E13: how often a transaction message is tried and the wait unit between tries.
MESSAGE_ATTEMPTS = Setting(None, "int", const="3", minimum=1)
MESSAGE_ATTEMPT_INTERVAL = Setting(None, "int", const="2", minimum=0)
GIVEN_UP = 1 << 30                     # attempts mark of a message that must not be tried again
# B04: the core boots on every new connection and then reports every connector, which covers
# both the long (all connectors, B04.FR.01) and the short offline period (changed ones, FR.02).
OFFLINE_THRESHOLD = Setting(None, "int", const="60")
MASTER_PASS_GROUP = Setting(None, "str", const="", minimum=9303)   # AuthCtrlr.MasterPassGroupId ("" = none)
_RO = {"readonly": True}


class _State:
    """Per station simulator: connectors whose retention lock is broken; tries per transaction message."""

    def __init__(self) -> None:
        self.broken_locks: set[tuple[int, int]] = set()
        self.attempts: dict[tuple[Any, ...], int] = {}
        self.groups: dict[str, str] = {}                      # idToken → groupIdToken the CSMS gave it


def _state(front: "FrontEnd") -> _State:
    return feature_state(front, "core_extra", _State)


def _utc_iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def next_aligned(now_epoch_s: float, interval_s: int) -> float:
    """The next instant after `now` that is a whole multiple of `interval_s` (clock-aligned, J01.FR.02)."""
    if interval_s <= 0:
        raise ValueError("interval must be positive")
    return (int(now_epoch_s // interval_s) + 1) * interval_s


# ---- clock-aligned meter values (J01) --------------------------------------------------------

def _aligned_interval(sim: "StationSimulator") -> int:
    try:
        return int(sim.read_setting(ALIGNED_INTERVAL) or 0)
    except ValueError:
        return 0


async def _aligned_loop(front: "FrontEnd", conn: Any) -> None:
    sim = front.sim
    # A stored device-model value changes without waking anyone, so the loop re-reads the
    # interval at least every POLL_S while it waits for the next aligned instant.
    while sim.conn is conn and not conn.closed.is_set():     # never outlive the connection
        interval = _aligned_interval(sim)
        if interval <= 0:
            await asyncio.sleep(POLL_S)
            continue
        now = datetime.now(timezone.utc).timestamp()
        at = next_aligned(now, interval)
        await asyncio.sleep(min(at - now, POLL_S))
        if _aligned_interval(sim) != interval or datetime.now(timezone.utc).timestamp() < at:
            continue                                          # changed, or not there yet
        if sim.conn is not conn or sim.has("aligned_meter_values_missing"):
            continue
        _send_aligned(front, at)


def _send_aligned(front: "FrontEnd", at: float) -> None:
    sim = front.sim
    measurands = [m for m in sim.read_setting(ALIGNED_MEASURANDS_SETTING).split(",") if m]
    context = "Sample.Periodic" if sim.has("aligned_context_periodic") else "Sample.Clock"
    for evse in sim.evses.values():
        meter = front.meter_value(evse, context, measurands)       # type: ignore[attr-defined]
        meter["timestamp"] = _utc_iso(at)
        if evse.tx is not None and not evse.tx.ended:
            front._tx_event(evse, evse.tx, "Updated", "MeterValueClock", meter=meter)   # type: ignore[attr-defined]
        else:
            sim.enqueue("MeterValues", {"evseId": evse.id, "meterValue": [meter]})


# ---- hooks -----------------------------------------------------------------------------------

def _boot_accepted(front: "FrontEnd") -> None:
    sim = front.sim
    if front.version != V201:
        return
    sim.spawn(_aligned_loop(front, sim.conn), "aligned-meter-values", session=True)
    _offline_queue_faults(front)
    _install_token_wrapper(front)


def _offline_queue_faults(front: "FrontEnd") -> None:
    """Runs right after acceptance, before the sender wakes: where the queue-handling bugs act."""
    sim = front.sim
    outbox = sim._outbox                                      # the core's FIFO of our CALLs
    dropped = []
    if sim.has("offline_status_not_reported"):
        dropped += [o for o in outbox if o.action == "StatusNotification"]
    offline = [o for o in outbox if o.action == "TransactionEvent" and o.payload.get("offline")]
    if sim.has("offline_queue_discarded"):
        dropped += offline
    elif sim.has("offline_events_reversed") and len(offline) > 1:
        slots = [i for i, o in enumerate(outbox) if o in offline]
        for i, item in zip(slots, reversed(offline)):
            outbox[i] = item
    for item in dropped:
        outbox.remove(item)
        if item.action == "TransactionEvent":
            _state(front).attempts[_message_key(item.payload)] = GIVEN_UP   # thrown away, not "unanswered"
        if not item.future.done():
            item.future.set_result(None)


def _outgoing(front: "FrontEnd", action: str, payload: dict[str, Any]) -> None:
    sim = front.sim
    if front.version != V201:
        return
    if action == "TransactionEvent":
        if sim.has("offline_flag_missing"):
            payload.pop("offline", None)
        info = payload.get("transactionInfo") or {}
        if sim.has("reset_stopped_reason_reboot") and info.get("stoppedReason") == "ImmediateReset":
            info["stoppedReason"] = "Reboot"
        if (sim.has("charging_state_not_updated") and payload.get("triggerReason") == "ChargingStateChanged"
                and info.get("chargingState") == "SuspendedEV"):
            info["chargingState"] = "Charging"
            payload["triggerReason"] = "MeterValuePeriodic"
    if action in ("Authorize", "TransactionEvent") and sim.has("token_type_lost"):
        token = payload.get("idToken")
        if isinstance(token, dict) and token.get("type") not in ("ISO14443", "NoAuthorization"):
            token["type"] = "ISO14443"                        # the bug: every token reported as an RFID card


def _answered(front: "FrontEnd", action: str, payload: dict[str, Any], response: dict[str, Any] | None) -> None:
    # The core's E05 check reads the same response object after this hook has run.
    if (action == "TransactionEvent" and response and front.sim.has("invalid_id_in_tx_response_ignored")
            and isinstance(response.get("idTokenInfo"), dict)):
        response["idTokenInfo"]["status"] = "Accepted"
    if action == "TransactionEvent" and front.version == V201:
        _maybe_retry(front, payload, response)
    if action in ("Authorize", "TransactionEvent") and response:
        _learn_group(front, payload, response)


def _learn_group(front: "FrontEnd", payload: dict[str, Any], response: dict[str, Any]) -> None:
    token = (payload.get("idToken") or {}).get("idToken")
    group = ((response.get("idTokenInfo") or {}).get("groupIdToken") or {}).get("idToken")
    if token and group:
        _state(front).groups[str(token)] = str(group)


# ---- another token while a transaction runs: GroupId (C09) and Master Pass (C16) ----------------

def _install_token_wrapper(front: "FrontEnd") -> None:
    """The core only knows "the same token again stops"; a different token presented during a
    transaction is handled here. There is no core hook for it, so the front end's on_token is
    wrapped once (the front end lives as long as its simulator)."""
    if getattr(front, "_core_extra_wrapped", False):
        return
    core_on_token = front.on_token

    async def on_token(evse: "Evse", id_token: str, token_type: str) -> None:
        tx = evse.tx
        if tx is not None and not tx.ended and tx.id_token != id_token:
            await _other_token_during_tx(front, evse, id_token, token_type)
            return
        await core_on_token(evse, id_token, token_type)

    front.on_token = on_token                                 # type: ignore[method-assign]
    front._core_extra_wrapped = True                          # type: ignore[attr-defined]


async def _other_token_during_tx(front: "FrontEnd", evse: "Evse", id_token: str, token_type: str) -> None:
    sim, st = front.sim, _state(front)
    tx = evse.tx
    assert tx is not None
    resp = await sim.enqueue("Authorize", {"idToken": {"idToken": id_token, "type": token_type}})
    info = (resp or {}).get("idTokenInfo") or {}
    if info.get("status") != "Accepted" or evse.tx is not tx:
        return
    group = (info.get("groupIdToken") or {}).get("idToken")
    master = sim.read_setting(MASTER_PASS_GROUP)
    if master and group == master and not sim.has("master_pass_ignored"):
        for other in list(sim.evses.values()):                # C16.FR.02 (no UI): stop them all
            if other.tx is not None and not other.tx.ended:
                front.end_tx(other, "StopAuthorized", "MasterPass", "EVConnected",   # type: ignore[attr-defined]
                             id_token=(id_token, token_type))
        return
    same_group = group is not None and group == st.groups.get(tx.id_token)
    if sim.has("group_id_not_checked"):
        same_group = True                                     # the bug: any accepted token may stop
    elif sim.has("group_id_ignored"):
        same_group = False                                    # the bug: only the very same token stops
    if same_group:                                            # C09.FR.03/04: a group member may stop it
        front.end_tx(evse, "StopAuthorized", "Local", "EVConnected", id_token=(id_token, token_type))   # type: ignore[attr-defined]


def _message_key(payload: dict[str, Any]) -> tuple[Any, ...]:
    info = payload.get("transactionInfo") or {}
    return (info.get("transactionId"), payload.get("seqNo"), payload.get("eventType"))


def _maybe_retry(front: "FrontEnd", payload: dict[str, Any], response: dict[str, Any] | None) -> None:
    """E13: a TransactionEvent the CSMS did not process (CALLERROR / no answer) is tried again,
    MessageAttempts times in all, waiting MessageAttemptInterval × tries so far, ahead of the queue."""
    sim, st = front.sim, _state(front)
    key = _message_key(payload)
    if response is not None:
        st.attempts.pop(key, None)
        return
    if sim.conn is None or sim.has("tx_message_not_retried"):
        return                                                # (a lost connection keeps it queued anyway)
    tries = st.attempts.get(key, 1)
    if tries >= int(sim.read_setting(MESSAGE_ATTEMPTS) or 1):
        st.attempts.pop(key, None)                            # E13.FR.03: give up, drop the message
        return
    st.attempts[key] = tries + 1
    again = dict(payload)
    if sim.has("tx_retry_new_seqno"):
        again["seqNo"] = _next_seq_no(sim, payload)           # the bug: the event is rebuilt, not resent
        st.attempts[_message_key(again)] = tries + 1
    delay = float(sim.read_setting(MESSAGE_ATTEMPT_INTERVAL) or 0) * tries
    sim.spawn(_resend(sim, again, delay), "tx-message-retry")


def _next_seq_no(sim: "StationSimulator", payload: dict[str, Any]) -> int:
    tx_id = (payload.get("transactionInfo") or {}).get("transactionId")
    for evse in sim.evses.values():
        if evse.tx is not None and evse.tx.tx_id == tx_id:
            evse.tx.seq_no += 1
            return evse.tx.seq_no - 1
    return int(payload.get("seqNo", 0)) + 1


async def _resend(sim: "StationSimulator", payload: dict[str, Any], delay: float) -> None:
    await asyncio.sleep(delay)
    sim.enqueue("TransactionEvent", payload, persistent=True)
    item = sim._outbox.pop()                                  # the retry goes first: order is kept
    sim._outbox.appendleft(item)


async def _token_gate(front: "FrontEnd", evse: "Evse", id_token: str, token_type: str) -> str | None:
    sim = front.sim
    connector = evse.plugged_connector or evse.cfg.connector_ids[0]
    if (evse.id, connector) in _state(front).broken_locks and front.version == V201:
        if not sim.has("lock_failure_not_reported"):
            _report_lock_problem(front, evse.id, connector)
        if sim.has("lock_failure_still_charges"):
            return None
        return "LockFailure"                                  # G05.FR.01: no charging without a locked plug
    if token_type == "NoAuthorization" and not sim.has("start_button_sends_authorize"):
        return "Accepted"                                     # C02: nothing to ask the CSMS about
    if token_type == "Central" and not sim.has("central_token_sends_authorize"):
        return "Accepted"                                     # C03.FR.01: authorized already (payment terminal)
    return None


def _report_lock_problem(front: "FrontEnd", evse_id: int, connector: int) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    front.sim.enqueue("NotifyEvent", {"generatedAt": now, "seqNo": 0, "eventData": [{
        "eventId": 1, "timestamp": now, "trigger": "Delta", "actualValue": "true",
        "eventNotificationType": "HardWiredNotification",
        "component": {"name": "ConnectorPlugRetentionLock", "evse": {"id": evse_id, "connectorId": connector}},
        "variable": {"name": "Problem"}}]})


# ---- station handlers and actions --------------------------------------------------------------

async def _reset_201(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    sim = front.sim
    busy = any(e.tx is not None for e in sim.evses.values())
    if sim.has("reset_on_idle_kills_transaction") and p.get("type") == "OnIdle" and busy and "evseId" not in p:
        # The bug: OnIdle treated like Immediate — the running transaction is cut off.
        return Reply({"status": "Accepted"}, lambda: sim.reset("reset", "RemoteReset"))
    return await front._reset(p)                              # type: ignore[attr-defined]


async def press_start_button(sim: "StationSimulator", params: dict[str, Any]) -> dict[str, Any]:
    evse = sim.evse(params.get("evse", 1))
    sim.spawn(sim.front.on_token(evse, "", "NoAuthorization"), "start-button")
    return {"evse": evse.id, "pressed": True}


async def lock_failure(sim: "StationSimulator", params: dict[str, Any]) -> dict[str, Any]:
    evse = sim.evse(params.get("evse", 1))
    connector = int(params.get("connector", evse.cfg.connector_ids[0]))
    if connector not in evse.cfg.connector_ids:
        raise ValueError(f"EVSE {evse.id} has no connector {connector}; it has {list(evse.cfg.connector_ids)}")
    broken = _state(sim.front).broken_locks
    if params.get("repaired"):
        broken.discard((evse.id, connector))
    else:
        broken.add((evse.id, connector))
    return {"evse": evse.id, "connector": connector, "lock_broken": not params.get("repaired")}


# ---- CSMS answers ----------------------------------------------------------------------------

def _csms_transaction_event(sim: "CsmsSimulator", st: "StationState", p: dict[str, Any]) -> dict[str, Any]:
    from .. import csms201                                    # late: csms201 imports this package
    if p.get("offline") and sim.faulty("csms_rejects_offline_events", V201):
        raise RuntimeError("transaction event timestamp outside the accepted window")   # → CALLERROR InternalError
    _reject_clock_readings(sim, p)
    _reject_signed_readings(sim, p)
    if p.get("eventType") == "Ended" and "idToken" not in p and sim.faulty("csms_ended_needs_idtoken", V201):
        known = st.transactions.get((p.get("transactionInfo") or {}).get("transactionId"))
        if known is None or known.id_token is None:
            raise AttributeError("'NoneType' object has no attribute 'idToken'")   # billing looks up a token
    if sim.faulty("csms_rejects_duplicate_tx_event", V201):
        known = st.transactions.get((p.get("transactionInfo") or {}).get("transactionId"))
        seq_no = p.get("seqNo")
        if known is not None and known.seq_no is not None and isinstance(seq_no, int) and seq_no <= known.seq_no:
            raise KeyError(f"duplicate key (transaction, seqNo {seq_no})")   # the bug: a retry is an error
    return csms201._transaction_event(sim, st, p)


def _csms_meter_values(sim: "CsmsSimulator", st: "StationState", p: dict[str, Any]) -> dict[str, Any]:
    from .. import csms201
    _reject_clock_readings(sim, p)
    _reject_signed_readings(sim, p)
    return csms201._meter_values(sim, st, p)


def _reject_signed_readings(sim: "CsmsSimulator", p: dict[str, Any]) -> None:
    """Fault csms_rejects_signed_meter_values: the reading parser chokes on signedMeterValue."""
    if sim.faulty("csms_rejects_signed_meter_values", V201):
        if any("signedMeterValue" in sv for mv in p.get("meterValue") or [] for sv in mv.get("sampledValue", [])):
            raise TypeError("unexpected field 'signedMeterValue' in sampled value")   # → CALLERROR InternalError


def _reject_clock_readings(sim: "CsmsSimulator", p: dict[str, Any]) -> None:
    """Fault meter_values_clock_rejected: the back end's reading parser knows no Sample.Clock."""
    if sim.faulty("meter_values_clock_rejected", V201):
        contexts = {sv.get("context") for mv in p.get("meterValue") or [] for sv in mv.get("sampledValue", [])}
        if "Sample.Clock" in contexts:
            raise ValueError("unsupported reading context 'Sample.Clock'")   # → CALLERROR InternalError


def _cs(name: str, description: str) -> Fault:
    return Fault(name, "cs", (V201,), description)


def _csms(name: str, description: str) -> Fault:
    return Fault(name, "csms", (V201,), description)


FEATURE = Feature(
    name="core_extra",
    station_handlers={V201: {"Reset": _reset_201}},
    station_variables={
        ("AlignedDataCtrlr", "Enabled", None): Setting(None, "bool", const="true", minimum=9301, **_RO),
        ("AlignedDataCtrlr", "Interval", None): ALIGNED_INTERVAL,
        ("AlignedDataCtrlr", "Measurands", None): ALIGNED_MEASURANDS_SETTING,
        ("AuthCtrlr", "MasterPassGroupId", None): MASTER_PASS_GROUP,
        ("OCPPCommCtrlr", "OfflineThreshold", None): OFFLINE_THRESHOLD,
        ("OCPPCommCtrlr", "MessageAttempts", "TransactionEvent"): MESSAGE_ATTEMPTS,
        ("OCPPCommCtrlr", "MessageAttemptInterval", "TransactionEvent"): MESSAGE_ATTEMPT_INTERVAL,
        ("TxCtrlr", "StopTxOnEVSideDisconnect", None): Setting(None, "bool", const="true",
                                                               minimum=9302, **_RO),
    },
    station_actions={"press_start_button": press_start_button, "lock_failure": lock_failure},
    token_gate=_token_gate,
    outgoing=_outgoing,
    answered=_answered,
    boot_accepted=_boot_accepted,
    csms_answers={V201: {"TransactionEvent": _csms_transaction_event, "MeterValues": _csms_meter_values}},
    station_faults=[
        _cs("offline_flag_missing",
            "TransactionEvents queued while the CSMS was unreachable are sent without offline=true (E11.FR.xx/E12)."),
        _cs("offline_queue_discarded",
            "After reconnecting, the station throws away the TransactionEvents it queued while offline."),
        _cs("offline_events_reversed",
            "After reconnecting, the queued TransactionEvents are sent newest first (Ended before the Updated events)."),
        _cs("offline_status_not_reported",
            "After reconnecting, queued StatusNotifications (changes while offline, the post-boot report) are flushed unsent."),
        _cs("reset_on_idle_kills_transaction",
            "Reset OnIdle during a transaction is executed at once like Immediate (answered Accepted, transaction cut off)."),
        _cs("reset_stopped_reason_reboot",
            "A transaction ended by Reset Immediate is reported with stoppedReason Reboot instead of ImmediateReset."),
        _cs("token_type_lost",
            "Every idToken is reported as type ISO14443, whatever was presented (KeyCode PIN, Local id, …)."),
        _cs("start_button_sends_authorize",
            "The start button (NoAuthorization) sends an AuthorizeRequest and waits for the CSMS's verdict."),
        _cs("central_token_sends_authorize",
            "An idToken of type Central (e.g. from the payment terminal) is sent in an AuthorizeRequest (C03.FR.01)."),
        _cs("invalid_id_in_tx_response_ignored",
            "A TransactionEvent response with idTokenInfo not Accepted is ignored: charging goes on (E05)."),
        _cs("charging_state_not_updated",
            "When the EV stops drawing power (full), the station keeps reporting chargingState Charging (E15)."),
        _cs("group_id_ignored",
            "A different idToken with the same groupIdToken cannot stop a transaction; only the starting token can (C09)."),
        _cs("group_id_not_checked",
            "Any Accepted idToken presented during a transaction stops it, whatever its groupIdToken (C09)."),
        _cs("master_pass_ignored",
            "An idToken whose groupIdToken is AuthCtrlr.MasterPassGroupId does not stop the running transactions (C16)."),
        _cs("tx_message_not_retried",
            "A TransactionEvent the CSMS answers with a CALLERROR (or not at all) is dropped, never tried again (E13)."),
        _cs("tx_retry_new_seqno",
            "A TransactionEvent the CSMS did not process is rebuilt with a new seqNo instead of being resent as it was."),
        _cs("aligned_meter_values_missing",
            "AlignedDataCtrlr.Interval is accepted but no clock-aligned meter values are ever sent (J01)."),
        _cs("aligned_context_periodic",
            "Clock-aligned meter values are labelled context Sample.Periodic instead of Sample.Clock (J01)."),
        _cs("lock_failure_not_reported",
            "A connector whose retention lock fails is not reported (no NotifyEvent ConnectorPlugRetentionLock Problem)."),
        _cs("lock_failure_still_charges",
            "Charging starts although the connector's retention lock failed (G05.FR.01)."),
    ],
    csms_faults=[
        _csms("csms_rejects_offline_events",
              "TransactionEvents flagged offline=true are answered with CALLERROR InternalError (stale timestamp check)."),
        _csms("csms_rejects_duplicate_tx_event",
              "A retried TransactionEvent (a seqNo already stored for that transaction) is answered with CALLERROR "
              "InternalError instead of being acknowledged again (E13)."),
        _csms("csms_ended_needs_idtoken",
              "A TransactionEvent Ended of a transaction that never carried an idToken (e.g. cable pulled on the EV "
              "side after a plug-in start) is answered with CALLERROR InternalError: billing looks up the token."),
        _csms("csms_rejects_signed_meter_values",
              "Sampled values carrying a signedMeterValue (SampledDataCtrlr.SignReadings) are answered with CALLERROR "
              "InternalError."),
        _csms("meter_values_clock_rejected",
              "MeterValues / TransactionEvents with clock-aligned readings (context Sample.Clock) are answered "
              "with CALLERROR InternalError."),
    ],
)
