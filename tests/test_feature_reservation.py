"""Unit tests of the reservation feature module (the TC_H_* / TC_046..052 cases are the integration test).

The station simulator is built but never started: its CALLs are captured from `enqueue`,
so each test runs in milliseconds inside one bounded event loop.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

import pytest

from harness.sim.csms import StationState
from harness.sim.features import reservation as res

from _features import with_recording_station


def iso(seconds: float) -> str:
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def with_station(version: str, body: Callable[[Any, list[tuple[str, dict[str, Any]]]], Awaitable[None]],
                 fault: str | None = None) -> None:
    """Run `body(front, sent)` against a fresh, unstarted station simulator of `version`."""
    with_recording_station(lambda sim, sent: body(sim.front, sent), version=version, fault=fault,
                           answer=lambda action, payload: {"idTokenInfo": {"status": "Accepted"},
                                                           "idTagInfo": {"status": "Accepted"}})


async def reserve(front: Any, rid: int, token: str = "TRUCK-0001", evse: int | None = None, **extra: Any) -> str:
    payload: dict[str, Any] = {"id": rid, "expiryDateTime": iso(600), "idToken": {"idToken": token, "type": "ISO14443"}}
    if evse is not None:
        payload["evseId"] = evse
    payload.update(extra)
    reply = await res.reserve_now_201(front, payload)
    if reply.after is not None:
        await reply.after()
    return str(reply.payload["status"])


def statuses(sent: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, str]]:
    return [(p["evseId"], p["connectorStatus"]) for a, p in sent if a == "StatusNotification"]


def test_parse_time_needs_an_offset() -> None:
    assert res.parse_time("2030-01-02T03:04:05Z") == datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        res.parse_time("2030-01-02T03:04:05")


def test_specific_reservation_reserved_occupied_and_replaced() -> None:
    async def body(front: Any, sent: list[tuple[str, dict[str, Any]]]) -> None:
        assert await reserve(front, 1, evse=1) == "Accepted"
        assert statuses(sent) == [(1, "Reserved")]
        assert await reserve(front, 2, token="TRUCK-0002", evse=1) == "Occupied"
        assert await reserve(front, 1, token="TRUCK-0002", evse=1) == "Accepted"     # same id replaces
        assert res.reservations(front).by_id[1].id_token == "TRUCK-0002"
    with_station("2.0.1", body)


def test_unspecified_reservations_hold_every_free_evse_once_they_equal_them() -> None:
    async def body(front: Any, sent: list[tuple[str, dict[str, Any]]]) -> None:
        assert await reserve(front, 1) == "Accepted"
        assert statuses(sent) == []                       # one of two EVSEs still free for anyone
        assert await reserve(front, 2, token="TRUCK-0002") == "Accepted"
        assert sorted(statuses(sent)) == [(1, "Reserved"), (2, "Reserved")]
        assert await reserve(front, 3, token="X") == "Occupied"
    with_station("2.0.1", body)


def test_connector_type_must_exist_and_match() -> None:
    async def body(front: Any, sent: list[tuple[str, dict[str, Any]]]) -> None:
        assert await reserve(front, 1, connectorType="cType2") == "Rejected"
        assert await reserve(front, 2, evse=2, connectorType="cCCS2") == "Rejected"   # EVSE 2 is MCS
        assert await reserve(front, 3, connectorType="cCCS2") == "Accepted"
        assert statuses(sent) == [(1, "Reserved")]          # the only CCS2 EVSE is now held
    with_station("2.0.1", body)


def test_unavailable_faulted_and_disabled_answers() -> None:
    async def body(front: Any, sent: list[tuple[str, dict[str, Any]]]) -> None:
        front.sim.evses[1].inoperative = True
        assert await reserve(front, 1, evse=1) == "Unavailable"
        res.reservations(front).faulted.add(2)
        assert await reserve(front, 2, evse=2) == "Faulted"
        front.sim.evses[1].inoperative = False
        front.sim.write_setting(res.ENABLED, "false")
        assert await reserve(front, 3, evse=1) == "Rejected"
    with_station("2.0.1", body)


@pytest.mark.parametrize("fault, other_token_gate", [(None, "Reserved"),
                                                     ("reservation_ignored_other_token_starts", None)])
def test_token_gate_refuses_other_tokens(fault: str | None, other_token_gate: str | None) -> None:
    async def body(front: Any, sent: list[tuple[str, dict[str, Any]]]) -> None:
        await reserve(front, 7, evse=1)
        evse = front.sim.evses[1]
        assert await res.token_gate(front, evse, "TRUCK-0001", "ISO14443") is None
        assert await res.token_gate(front, evse, "TRUCK-0002", "ISO14443") == other_token_gate
        assert await res.token_gate(front, front.sim.evses[2], "TRUCK-0002", "ISO14443") is None
    with_station("2.0.1", body, fault)


@pytest.mark.parametrize("fault, quoted", [(None, 7), ("no_reservation_id_in_tx", None)])
def test_started_event_quotes_and_consumes_the_reservation(fault: str | None, quoted: int | None) -> None:
    async def body(front: Any, sent: list[tuple[str, dict[str, Any]]]) -> None:
        await reserve(front, 7, evse=1)
        payload = {"eventType": "Started", "evse": {"id": 1, "connectorId": 1},
                   "idToken": {"idToken": "TRUCK-0001", "type": "ISO14443"}}
        res.outgoing(front, "TransactionEvent", payload)
        assert payload.get("reservationId") == quoted
        assert res.reservations(front).by_id == {}
    with_station("2.0.1", body, fault)


@pytest.mark.parametrize("fault, answer", [(None, "Rejected"), ("cancel_unknown_accepted", "Accepted")])
def test_cancel_unknown_reservation(fault: str | None, answer: str) -> None:
    async def body(front: Any, sent: list[tuple[str, dict[str, Any]]]) -> None:
        await reserve(front, 7, evse=1)
        assert (await res.cancel_reservation(front, {"reservationId": 99})).payload == {"status": answer}
        reply = await res.cancel_reservation(front, {"reservationId": 7})
        assert reply.payload == {"status": "Accepted"} and reply.after is not None
        await reply.after()
        assert statuses(sent)[-1] == (1, "Available")
    with_station("2.0.1", body, fault)


def test_expiry_sends_expired_and_frees_the_evse() -> None:
    async def body(front: Any, sent: list[tuple[str, dict[str, Any]]]) -> None:
        reply = await res.reserve_now_201(front, {"id": 5, "expiryDateTime": iso(0.05), "evseId": 1,
                                                  "idToken": {"idToken": "TRUCK-0001", "type": "ISO14443"}})
        assert reply.payload == {"status": "Accepted"}
        for _ in range(50):                               # bounded: at most ~1 s
            if any(a == "ReservationStatusUpdate" for a, _ in sent):
                break
            await asyncio.sleep(0.02)
        assert ("ReservationStatusUpdate", {"reservationId": 5, "reservationUpdateStatus": "Expired"}) in sent
        assert res.reservations(front).by_id == {}
    with_station("2.0.1", body)


def test_connector_zero_and_status_in_16() -> None:
    async def body(front: Any, sent: list[tuple[str, dict[str, Any]]]) -> None:
        front.sim.evses[2].inoperative = True
        reply = await res.reserve_now_16(front, {"connectorId": 0, "expiryDate": iso(600), "idTag": "TRUCK-0001",
                                                 "reservationId": 9})
        assert reply.payload == {"status": "Accepted"}
        assert reply.after is not None
        await reply.after()
        assert [(p["connectorId"], p["status"]) for a, p in sent if a == "StatusNotification"] == [(1, "Reserved")]
        payload = {"connectorId": 1, "idTag": "TRUCK-0001", "meterStart": 0, "timestamp": iso(0)}
        res.outgoing(front, "StartTransaction", payload)
        assert payload["reservationId"] == 9
        reply = await res.reserve_now_16(front, {"connectorId": 2, "expiryDate": iso(600), "idTag": "X",
                                                 "reservationId": 10})
        assert reply.payload == {"status": "Unavailable"}
    with_station("1.6", body)


# ---- CSMS side -----------------------------------------------------------------------------

class FakeCsms:
    def __init__(self, fault: str | None = None):
        self.fault = fault

    def faulty(self, name: str, version: str | None = None) -> bool:
        return self.fault == name

    def note(self, st: Any, text: str) -> None:
        pass


def test_reserve_now_201_payload_and_faults() -> None:
    st = StationState("CS-1")
    action, payload, valid = res._build_reserve_201(FakeCsms(), st, {    # type: ignore[arg-type]
        "evse": 1, "id_token": "TRUCK-0001", "group_id_token": "G", "reservation_id": 41})
    assert action == "ReserveNow" and valid
    assert payload["id"] == 41 and payload["evseId"] == 1 and payload["groupIdToken"]["idToken"] == "G"
    res.parse_time(payload["expiryDateTime"])
    _, wrong, _ = res._build_reserve_201(FakeCsms("reserve_now_wrong_evse"), st, {"evse": 1, "id_token": "T"})  # type: ignore[arg-type]
    assert wrong["evseId"] != 1
    _, local, valid = res._build_reserve_201(FakeCsms("reserve_expiry_local_time"), st, {"id_token": "T"})  # type: ignore[arg-type]
    assert not valid
    with pytest.raises(ValueError):
        res.parse_time(local["expiryDateTime"])


def test_cancel_picks_the_latest_open_reservation() -> None:
    st = StationState("CS-1")
    for rid in (51, 52):
        res._build_reserve_16(FakeCsms(), st, {"connector": 1, "id_tag": "TRUCK-0001", "reservation_id": rid})  # type: ignore[arg-type]
    st.received.append(("StartTransaction", {"reservationId": 52}))        # 52 was used
    assert res._build_cancel(FakeCsms(), st, {})[1] == {"reservationId": 51}    # type: ignore[arg-type]
    assert res._build_cancel(FakeCsms("cancel_wrong_reservation_id"), st, {})[1] == {"reservationId": 52}  # type: ignore[arg-type]
    assert res._build_cancel(FakeCsms("reservation_use_not_tracked"), st, {})[1] == {"reservationId": 52}  # type: ignore[arg-type]
    st.received.append(("ReservationStatusUpdate", {"reservationId": 51, "reservationUpdateStatus": "Expired"}))
    with pytest.raises(ValueError):
        res._build_cancel(FakeCsms(), st, {})                              # type: ignore[arg-type]


@pytest.mark.parametrize("fault, other_start", [(None, "Rejected"), ("remote_start_ignores_reservation", "Accepted")])
def test_remote_start_for_another_driver_on_a_reserved_evse(fault: str | None, other_start: str) -> None:
    async def body(front: Any, sent: list[tuple[str, dict[str, Any]]]) -> None:
        await reserve(front, 8, evse=1)
        front.sim.registration = "Accepted"               # the core refuses remote starts before acceptance
        other = await res.request_start_201(front, {"idToken": {"idToken": "TRUCK-0002", "type": "Central"},
                                                    "remoteStartId": 1, "evseId": 1})
        assert other.payload["status"] == other_start
    with_station("2.0.1", body, fault)


def test_group_member_is_recognised_from_the_authorize_answer() -> None:
    async def body(front: Any, sent: list[tuple[str, dict[str, Any]]]) -> None:
        await reserve(front, 9, evse=1, groupIdToken={"idToken": "G-1", "type": "Central"})

        def authorize(action: str, payload: dict[str, Any], *a: Any, **k: Any) -> asyncio.Future[Any]:
            sent.append((action, payload))
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            fut.set_result({"idTokenInfo": {"status": "Accepted", "groupIdToken": {"idToken": "G-1", "type": "Central"}}})
            return fut
        front.sim.enqueue = authorize
        assert await res.token_gate(front, front.sim.evses[1], "TRUCK-0002", "ISO14443") == "Accepted"
        assert sent[-1][0] == "Authorize"
        payload = {"eventType": "Started", "evse": {"id": 1}, "idToken": {"idToken": "TRUCK-0002", "type": "ISO14443"}}
        res.outgoing(front, "TransactionEvent", payload)
        assert payload["reservationId"] == 9
    with_station("2.0.1", body)
