"""Unit tests of harness.sim.features.core_extra (the library cases are its integration test)."""

from __future__ import annotations

import asyncio
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest

from harness.sim.features import core_extra as cx
from harness.sim.features import csms_faults, station_faults


class FakeSim:
    def __init__(self, fault: str | None = None):
        self.fault = fault
        self._outbox: deque[Any] = deque()
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def has(self, name: str) -> bool:
        return self.fault == name

    def enqueue(self, action: str, payload: dict[str, Any]) -> None:
        self.sent.append((action, payload))


def _front(fault: str | None = None) -> Any:
    return SimpleNamespace(sim=FakeSim(fault), version="2.0.1")


def _item(action: str, offline: bool = False, n: int = 0) -> Any:
    loop = asyncio.new_event_loop()
    fut = loop.create_future()
    loop.close()
    payload: dict[str, Any] = {"n": n}
    if offline:
        payload["offline"] = True
    return SimpleNamespace(action=action, payload=payload, future=fut)


def test_next_aligned_is_the_next_whole_multiple() -> None:
    assert cx.next_aligned(100.0, 5) == 105
    assert cx.next_aligned(104.999, 5) == 105
    assert cx.next_aligned(105.0, 5) == 110          # "next": strictly after now
    with pytest.raises(ValueError):
        cx.next_aligned(1.0, 0)


def test_every_fault_is_registered_with_its_target() -> None:
    cs, csms = station_faults(), csms_faults()
    for fault in cx.FEATURE.station_faults:
        assert cs[fault.name].target == "cs"
    for fault in cx.FEATURE.csms_faults:
        assert csms[fault.name].target == "csms"


def test_clean_queue_is_left_alone() -> None:
    sim = FakeSim()
    sim._outbox.extend([_item("TransactionEvent", True, 1), _item("StatusNotification"),
                        _item("TransactionEvent", True, 2)])
    cx._offline_queue_faults(SimpleNamespace(sim=sim, version="2.0.1"))   # type: ignore[arg-type]
    assert [o.payload["n"] for o in sim._outbox] == [1, 0, 2]


def test_offline_events_reversed_swaps_only_offline_events() -> None:
    sim = FakeSim("offline_events_reversed")
    sim._outbox.extend([_item("TransactionEvent", True, 1), _item("StatusNotification", n=9),
                        _item("TransactionEvent", True, 2), _item("TransactionEvent", False, 3)])
    cx._offline_queue_faults(SimpleNamespace(sim=sim, version="2.0.1"))   # type: ignore[arg-type]
    assert [o.payload["n"] for o in sim._outbox] == [2, 9, 1, 3]


def test_offline_queue_discarded_drops_offline_events_for_good() -> None:
    sim = FakeSim("offline_queue_discarded")
    front = SimpleNamespace(sim=sim, version="2.0.1")
    sim._outbox.extend([_item("TransactionEvent", True, 1), _item("TransactionEvent", False, 2)])
    cx._offline_queue_faults(front)                   # type: ignore[arg-type]
    assert [o.payload["n"] for o in sim._outbox] == [2]
    assert cx.GIVEN_UP in cx._state(front).attempts.values()   # the E13 retry must not bring it back


def test_outgoing_faults_amend_the_payload() -> None:
    payload = {"offline": True, "triggerReason": "ResetCommand",
               "transactionInfo": {"stoppedReason": "ImmediateReset"}, "idToken": {"idToken": "1", "type": "KeyCode"}}
    cx._outgoing(_front(), "TransactionEvent", payload)
    assert payload["offline"] is True and payload["idToken"]["type"] == "KeyCode"   # clean: untouched
    cx._outgoing(_front("offline_flag_missing"), "TransactionEvent", payload)
    assert "offline" not in payload
    cx._outgoing(_front("reset_stopped_reason_reboot"), "TransactionEvent", payload)
    assert payload["transactionInfo"]["stoppedReason"] == "Reboot"
    cx._outgoing(_front("token_type_lost"), "TransactionEvent", payload)
    assert payload["idToken"]["type"] == "ISO14443"


def test_invalid_id_fault_rewrites_the_response_the_core_reads() -> None:
    response = {"idTokenInfo": {"status": "Invalid"}}
    cx._answered(_front(), "TransactionEvent", {}, response)
    assert response["idTokenInfo"]["status"] == "Invalid"
    cx._answered(_front("invalid_id_in_tx_response_ignored"), "TransactionEvent", {}, response)
    assert response["idTokenInfo"]["status"] == "Accepted"


def _gate(front: Any, token_type: str = "ISO14443") -> Any:
    evse = SimpleNamespace(id=1, plugged_connector=1, cfg=SimpleNamespace(connector_ids=(1,)))
    return asyncio.run(cx._token_gate(front, evse, "T", token_type)), front.sim.sent   # type: ignore[arg-type]


def test_start_button_is_authorized_locally() -> None:
    assert _gate(_front(), "NoAuthorization")[0] == "Accepted"
    assert _gate(_front("start_button_sends_authorize"), "NoAuthorization")[0] is None
    assert _gate(_front())[0] is None                 # ordinary tokens: ask the CSMS as usual


def test_broken_lock_refuses_and_reports() -> None:
    front = _front()
    cx._state(front).broken_locks.add((1, 1))
    verdict, sent = _gate(front)
    assert verdict == "LockFailure"
    assert sent[0][0] == "NotifyEvent"
    event = sent[0][1]["eventData"][0]
    assert event["component"]["name"] == "ConnectorPlugRetentionLock" and event["actualValue"] == "true"

    quiet = _front("lock_failure_not_reported")
    cx._state(quiet).broken_locks.add((1, 1))
    assert _gate(quiet) == ("LockFailure", [])
    lax = _front("lock_failure_still_charges")
    cx._state(lax).broken_locks.add((1, 1))
    assert _gate(lax)[0] is None


def test_csms_offline_and_clock_faults_raise() -> None:
    sim = SimpleNamespace(faulty=lambda name, version=None: name == "csms_rejects_offline_events")
    with pytest.raises(RuntimeError):
        cx._csms_transaction_event(sim, None, {"offline": True})   # type: ignore[arg-type]
    clock = SimpleNamespace(faulty=lambda name, version=None: name == "meter_values_clock_rejected")
    with pytest.raises(ValueError):
        cx._reject_clock_readings(clock, {"meterValue": [{"sampledValue": [{"context": "Sample.Clock"}]}]})  # type: ignore[arg-type]
    cx._reject_clock_readings(clock, {"meterValue": [{"sampledValue": [{"context": "Sample.Periodic"}]}]})  # type: ignore[arg-type]


class RetrySim(FakeSim):
    """Enough of a station simulator for the E13 retry decision."""

    def __init__(self, fault: str | None = None, attempts: str = "3"):
        super().__init__(fault)
        self.conn = object()
        self.evses: dict[int, Any] = {}
        self.spawned: list[Any] = []
        self.settings = {cx.MESSAGE_ATTEMPTS: attempts, cx.MESSAGE_ATTEMPT_INTERVAL: "2"}

    def read_setting(self, s: Any) -> str:
        return self.settings[s]

    def spawn(self, coro: Any, name: str = "") -> None:
        self.spawned.append(coro)
        coro.close()                                  # not run: only the decision is under test


def _ended(seq: int = 4) -> dict[str, Any]:
    return {"eventType": "Ended", "seqNo": seq, "transactionInfo": {"transactionId": "T1"}}


def test_unprocessed_tx_message_is_retried_until_attempts_run_out() -> None:
    front = SimpleNamespace(sim=RetrySim(attempts="3"), version="2.0.1")
    for expected_retries in (1, 2, 2):                # 3 attempts in all: 2 retries, then give up
        cx._maybe_retry(front, _ended(), None)       # type: ignore[arg-type]
        assert len(front.sim.spawned) == expected_retries
    assert cx._state(front).attempts == {}


def test_answered_tx_message_is_not_retried_and_faults_act() -> None:
    front = SimpleNamespace(sim=RetrySim(), version="2.0.1")
    cx._maybe_retry(front, _ended(), {})             # type: ignore[arg-type]
    assert front.sim.spawned == []
    lazy = SimpleNamespace(sim=RetrySim("tx_message_not_retried"), version="2.0.1")
    cx._maybe_retry(lazy, _ended(), None)            # type: ignore[arg-type]
    assert lazy.sim.spawned == []
    assert cx._next_seq_no(RetrySim(), _ended(4)) == 5   # type: ignore[arg-type]


class TokenSim(FakeSim):
    """A station simulator stand-in for a token presented during a transaction."""

    def __init__(self, fault: str | None = None, master: str = "", answer: dict[str, Any] | None = None):
        super().__init__(fault)
        self.master, self.answer = master, answer or {}
        self.evses: dict[int, Any] = {}

    def read_setting(self, s: Any) -> str:
        return self.master

    def enqueue(self, action: str, payload: dict[str, Any]) -> Any:   # type: ignore[override]
        self.sent.append((action, payload))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(self.answer)
        return fut


def _token_run(fault: str | None, group: str, master: str = "") -> list[tuple[Any, ...]]:
    answer = {"idTokenInfo": {"status": "Accepted", "groupIdToken": {"idToken": group, "type": "Central"}}}
    sim = TokenSim(fault, master, answer)
    ended: list[tuple[Any, ...]] = []
    tx = SimpleNamespace(id_token="A", ended=False)
    evse = SimpleNamespace(id=1, tx=tx)
    sim.evses = {1: evse}
    front = SimpleNamespace(sim=sim, version="2.0.1",
                            end_tx=lambda e, trigger, reason, state, id_token=None: ended.append((trigger, reason, id_token)))
    cx._state(front).groups["A"] = "G1"
    asyncio.run(cx._other_token_during_tx(front, evse, "B", "ISO14443"))   # type: ignore[arg-type]
    return ended


def test_same_group_stops_other_group_does_not() -> None:
    assert _token_run(None, "G1") == [("StopAuthorized", "Local", ("B", "ISO14443"))]
    assert _token_run(None, "G2") == []
    assert _token_run("group_id_ignored", "G1") == []
    assert _token_run("group_id_not_checked", "G2") == [("StopAuthorized", "Local", ("B", "ISO14443"))]


def test_master_pass_stops_with_reason_master_pass() -> None:
    assert _token_run(None, "MASTER", master="MASTER") == [("StopAuthorized", "MasterPass", ("B", "ISO14443"))]
    assert _token_run("master_pass_ignored", "MASTER", master="MASTER") == []
