"""Display messages (harness.sim.features.display) and tariff/cost texts (features.tariff): unit tests.

The station simulator is built but never started: handlers and hooks are called directly and
the CALLs it would send are read from its outbox.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from harness.sim import features
from harness.sim.evse import Transaction
from harness.sim.features import display, tariff
from harness.sim.station import StationSimulator

from _aio import run
from _features import call as _call, sent as _sent, station_sim as _sim


def _msg(mid: int, priority: str = "NormalCycle", fmt: str = "UTF8", **extra: Any) -> dict[str, Any]:
    return {"message": {"id": mid, "priority": priority, "message": {"format": fmt, "content": f"text {mid}"}, **extra}}


def _start_tx(sim: StationSimulator, evse_id: int = 1, tx_id: str = "TX-1") -> Transaction:
    tx = Transaction(tx_id=tx_id, evse_id=evse_id, connector_id=1, id_token="T", token_type="ISO14443",
                     meter_start_wh=0.0, started_at=0.0)
    sim.evses[evse_id].tx = tx
    return tx


def test_features_are_discovered_with_faults() -> None:
    names = {f.name for f in features.all_features()}
    assert {"display", "tariff"} <= names
    faults = features.station_faults()
    for name in ("display_message_priority_ignored", "display_clear_unknown_accepted",
                 "get_display_messages_wrong_request_id", "display_message_ignores_transaction",
                 "cost_updated_ignored", "fallback_tariff_not_shown", "personal_message_breaks_authorize"):
        assert name in faults
    assert {"set_display_message_wrong_priority", "cost_updated_wrong_transaction"} <= set(features.csms_faults())


def test_set_statuses_and_replace() -> None:
    async def go() -> None:
        sim = _sim()
        assert (await _call(sim, "SetDisplayMessage", _msg(1, "InFront")))["status"] == "Accepted"
        assert (await _call(sim, "SetDisplayMessage", _msg(2, fmt="HTML")))["status"] == "NotSupportedMessageFormat"
        assert (await _call(sim, "SetDisplayMessage", _msg(3, "AlwaysFront")))["status"] == "NotSupportedPriority"
        assert (await _call(sim, "SetDisplayMessage", _msg(4, state="Faulted")))["status"] == "NotSupportedState"
        assert (await _call(sim, "SetDisplayMessage", _msg(5, transactionId="nope")))["status"] == "UnknownTransaction"
        replaced = _msg(1, "NormalCycle")
        replaced["message"]["message"]["content"] = "new"
        assert (await _call(sim, "SetDisplayMessage", replaced))["status"] == "Accepted"
        messages = display.state(sim.front).messages
        assert list(messages) == [1] and messages[1]["message"]["content"] == "new"
    run(go())


def test_memory_full_is_rejected() -> None:
    async def go() -> None:
        sim = _sim()
        for i in range(display.MAX_MESSAGES):
            assert (await _call(sim, "SetDisplayMessage", _msg(i)))["status"] == "Accepted"
        assert (await _call(sim, "SetDisplayMessage", _msg(99)))["status"] == "Rejected"
        assert (await _call(sim, "SetDisplayMessage", _msg(0)))["status"] == "Accepted"   # replacing still works
    run(go())


def test_get_filters_unknown_and_request_id() -> None:
    async def go() -> None:
        sim = _sim()
        await _call(sim, "SetDisplayMessage", _msg(1, "InFront", state="Idle"))
        await _call(sim, "SetDisplayMessage", _msg(2, state="Charging"))
        assert (await _call(sim, "GetDisplayMessages", {"requestId": 7, "state": "Charging"}))["status"] == "Accepted"
        assert (await _call(sim, "GetDisplayMessages", {"requestId": 8, "id": [42]}))["status"] == "Unknown"
        notes = _sent(sim, "NotifyDisplayMessages")
        assert len(notes) == 1 and notes[0]["requestId"] == 7 and [m["id"] for m in notes[0]["messageInfo"]] == [2]
    run(go())


def test_clear_accepted_then_unknown() -> None:
    async def go() -> None:
        sim = _sim()
        await _call(sim, "SetDisplayMessage", _msg(1))
        assert (await _call(sim, "ClearDisplayMessage", {"id": 1}))["status"] == "Accepted"
        assert (await _call(sim, "ClearDisplayMessage", {"id": 1}))["status"] == "Unknown"
        faulty = _sim("display_clear_unknown_accepted")
        assert (await _call(faulty, "ClearDisplayMessage", {"id": 1}))["status"] == "Accepted"
    run(go())


def test_transaction_message_lives_with_its_transaction() -> None:
    async def go() -> None:
        sim = _sim()
        tx = _start_tx(sim)
        assert (await _call(sim, "SetDisplayMessage", _msg(1, transactionId="TX-1")))["status"] == "Accepted"
        shown = await display._display_action(sim, {"evse": 1})
        assert shown["state"] == "Charging" and shown["messages"] == ["text 1"]
        display._tx_ended(sim.front, sim.evses[1], tx)
        assert display.state(sim.front).messages == {}
    run(go())


@pytest.mark.parametrize("fault,check", [
    ("display_message_priority_ignored", lambda st: st.messages[1]["priority"] == "NormalCycle"),
])
def test_priority_fault(fault: str, check: Any) -> None:
    async def go() -> None:
        sim = _sim(fault)
        assert (await _call(sim, "SetDisplayMessage", _msg(1, "AlwaysFront")))["status"] == "Accepted"
        assert check(display.state(sim.front))
    run(go())


@pytest.mark.parametrize("fault,message", [("display_unsupported_format_accepted", _msg(1, fmt="HTML")),
                                           ("display_unsupported_state_accepted", _msg(1, state="Faulted"))])
def test_capability_faults_accept(fault: str, message: dict[str, Any]) -> None:
    async def go() -> None:
        assert (await _call(_sim(fault), "SetDisplayMessage", message))["status"] == "Accepted"
    run(go())


def test_stale_request_id_fault() -> None:
    async def go() -> None:
        sim = _sim("get_display_messages_wrong_request_id")
        await _call(sim, "SetDisplayMessage", _msg(1))
        await _call(sim, "GetDisplayMessages", {"requestId": 5})
        await _call(sim, "GetDisplayMessages", {"requestId": 6})
        assert [n["requestId"] for n in _sent(sim, "NotifyDisplayMessages")] == [0, 5]
    run(go())


def test_display_orders_by_priority_and_shows_fallback_tariff() -> None:
    async def go() -> None:
        sim = _sim()
        await _call(sim, "SetDisplayMessage", _msg(1))
        await _call(sim, "SetDisplayMessage", _msg(2, "InFront"))
        await _call(sim, "SetDisplayMessage", _msg(3, state="Charging"))
        shown = await display._display_action(sim, {})
        assert shown["messages"] == ["text 2", "text 1"]
        assert shown["tariff"] == tariff._FALLBACK_TARIFF.const
    run(go())


# ---- tariff and cost ------------------------------------------------------------------------

def _tx_event(event_type: str, tx_id: str = "TX-1", token: str | None = "T") -> dict[str, Any]:
    p: dict[str, Any] = {"eventType": event_type, "transactionInfo": {"transactionId": tx_id}, "evse": {"id": 1}}
    if token:
        p["idToken"] = {"idToken": token, "type": "ISO14443"}
    return p


def test_tariff_running_and_final_cost() -> None:
    async def go() -> None:
        sim = _sim()
        front = sim.front
        tariff._answered(front, "Authorize", {"idToken": {"idToken": "T"}},
                         {"idTokenInfo": {"status": "Accepted", "personalMessage": {"format": "UTF8", "content": "0.31"}}})
        _start_tx(sim)
        tariff._answered(front, "TransactionEvent", _tx_event("Started"), {"idTokenInfo": {"status": "Accepted"}})
        assert tariff.screen_texts(front, sim.evses[1]) == {"tariff": "0.31"}
        tariff._answered(front, "TransactionEvent", _tx_event("Updated", token=None), {"totalCost": 2.5})
        await _call(sim, "CostUpdated", {"transactionId": "TX-1", "totalCost": 3.25})
        assert tariff.screen_texts(front, sim.evses[1])["running_cost"] == "3.25 EUR"
        sim.evses[1].tx = None
        tariff._answered(front, "TransactionEvent", _tx_event("Ended", token=None), {"totalCost": 4})
        assert tariff.screen_texts(front, sim.evses[1]) == {"total_cost": "4.00 EUR"}
    run(go())


def test_total_cost_fallback_when_no_final_cost() -> None:
    async def go() -> None:
        sim = _sim()
        _start_tx(sim)
        tariff._answered(sim.front, "TransactionEvent", _tx_event("Started"), {})
        sim.evses[1].tx = None
        tariff._answered(sim.front, "TransactionEvent", _tx_event("Ended", token=None), {})
        assert tariff.screen_texts(sim.front, sim.evses[1]) == {"total_cost": tariff._FALLBACK_COST.const}
    run(go())


def test_cost_updated_ignored_is_a_callerror() -> None:
    async def go() -> None:
        sim = _sim("cost_updated_ignored")
        with pytest.raises(NotImplementedError):
            await sim.front.handlers["CostUpdated"]({"transactionId": "TX-1", "totalCost": 1.0})
    run(go())


def test_personal_message_fault_turns_the_answer_into_a_refusal() -> None:
    sim = _sim("personal_message_breaks_authorize")
    answer = {"idTokenInfo": {"status": "Accepted", "personalMessage": {"format": "UTF8", "content": "x"}}}
    tariff._answered(sim.front, "Authorize", {"idToken": {"idToken": "T"}}, answer)
    assert answer["idTokenInfo"]["status"] == "Invalid"


@pytest.mark.parametrize("fault,kept", [(None, True), ("fallback_tariff_not_shown", False)])
def test_fallback_texts_are_kept(fault: str | None, kept: bool) -> None:
    async def go() -> None:
        sim = _sim(fault)
        await _call(sim, "SetVariables", {"setVariableData": [
            {"component": {"name": "TariffCostCtrlr"}, "variable": {"name": "TariffFallbackMessage"},
             "attributeValue": "new tariff"}]})
        assert (sim.read_setting(tariff._FALLBACK_TARIFF) == "new tariff") is kept
    run(go())


def _csms(fault: str | None = None) -> Any:
    return SimpleNamespace(faulty=lambda name, version=None: name == fault, next_remote_start_id=lambda: 77)


def _station(*tx_ids: str) -> Any:
    txs = [SimpleNamespace(transaction_id=t) for t in tx_ids]
    return SimpleNamespace(station_id="CS1", ongoing=lambda: txs, transactions={t: None for t in tx_ids})


def test_csms_builders() -> None:
    action, payload, _ = display._op_set_display_message(_csms(), _station(), {"id": 3, "priority": "InFront",
                                                                              "content": "hi", "state": "Idle"})
    assert action == "SetDisplayMessage" and payload["message"]["priority"] == "InFront"
    assert payload["message"]["state"] == "Idle"
    _, payload, _ = display._op_set_display_message(_csms("set_display_message_wrong_priority"), _station(),
                                                    {"id": 3, "priority": "InFront", "content": "hi"})
    assert payload["message"]["priority"] == "NormalCycle"
    _, payload, _ = display._op_get_display_messages(_csms(), _station(), {"priority": "InFront"})
    assert payload == {"requestId": 77, "priority": "InFront"}
    _, payload, _ = display._op_clear_display_message(_csms("clear_display_message_wrong_id"), _station(), {"id": 3})
    assert payload == {"id": 4}
    _, payload, _ = tariff._op_cost_updated(_csms(), _station("A", "B"), {"total_cost": 1.5})
    assert payload == {"totalCost": 1.5, "transactionId": "B"}
    _, payload, _ = tariff._op_cost_updated(_csms("cost_updated_wrong_transaction"), _station("A", "B"), {"total_cost": 1})
    assert payload["transactionId"] == "A"
    with pytest.raises(ValueError):
        tariff._op_cost_updated(_csms(), _station(), {"total_cost": 1})
