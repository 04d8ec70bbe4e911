"""Real websockets on 127.0.0.1: negotiation, refusals, Basic auth, correlation, events, trace."""

from __future__ import annotations

import asyncio
import base64
import json
from contextlib import asynccontextmanager
from typing import AsyncIterator

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from _aio import run, within
from harness.ocpp.connection import (Closed, ConnectionLost, Garbage, IncomingCall, LocalSchemaError, OcppConnection,
                                     StrayResponse)
from harness.ocpp.framing import CallError, CallResult
from harness.ocpp.trace import Trace
from harness.transport.client import HandshakeRefused, connect_station
from harness.transport.security import SecurityProfile, parse_basic_auth
from harness.transport.server import Accepted, OcppServer

PASSWORD = "s3cret-Pa55word-0001"


@asynccontextmanager
async def serving(**kw) -> AsyncIterator[OcppServer]:
    server = await OcppServer(**kw).start()
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def pair(version: str = "2.0.1") -> AsyncIterator[tuple[Accepted, OcppConnection, OcppServer, Trace]]:
    """A server and one station connected to it: (server side, client side, server, client trace)."""
    async with serving(versions=(version,)) as server:
        client_trace = Trace()
        client = await connect_station(server.url(), "CS1", (version,), client_trace)
        acc = await server.next_connection(5)
        try:
            yield acc, client, server, client_trace
        finally:
            await client.close()
            await acc.connection.close()


async def refused_status(url: str, **kw) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as exc:
        async with ws_connect(url, open_timeout=5, **kw):
            pass
    resp = exc.value.response
    return resp.status_code, resp.body.decode()


# ---- subprotocol negotiation ------------------------------------------------------------------------

@pytest.mark.parametrize("server_versions, offered, chosen", [
    (("2.0.1", "1.6"), ("1.6", "2.0.1"), "2.0.1"),     # the server's preference order decides
    (("1.6", "2.0.1"), ("2.0.1", "1.6"), "1.6"),
    (("2.0.1", "1.6"), ("1.6",), "1.6"),
    (("2.0.1", "1.6"), ("2.0.1",), "2.0.1"),
    (("1.6",), ("2.0.1", "1.6"), "1.6"),
])
def test_subprotocol_negotiation(server_versions, offered, chosen):
    async def go():
        async with serving(versions=server_versions) as server:
            trace = Trace()
            client = await connect_station(server.url(), "CS-7", offered, trace)
            acc = await server.next_connection(5)
            assert client.version == chosen and acc.version == chosen
            assert str(client.ws.subprotocol) == f"ocpp{chosen}"
            assert acc.station_id == "CS-7" and acc.path == "/ocpp/CS-7"
            assert acc.connection.version == chosen and acc.connection.peer == "CS-7"
            assert [e.kind for e in trace.entries] == ["CONNECT"]
            assert any(e.kind == "CONNECT" and f"ocpp{chosen}" in e.raw for e in server.trace.entries)
            assert server.refusals == []
            await client.close()
    run(go())


def test_unknown_subprotocol_is_refused_with_clear_400():
    async def go():
        async with serving() as server:
            status, body = await refused_status(server.url("CS1"), subprotocols=["ocpp9.9", "chat"])
            assert status == 400
            assert "unsupported OCPP subprotocol (offered: ocpp9.9, chat; this server speaks: ocpp2.0.1, ocpp1.6)" in body
            (refusal,) = server.refusals
            assert (refusal.path, refusal.status) == ("/ocpp/CS1", 400)
            assert "ocpp9.9" in refusal.reason
            (event,) = server.trace.entries
            assert event.kind == "REFUSED" and "400" in event.raw and event.direction == "event"
            assert server.accepted.empty()
    run(go())


def test_missing_subprotocol_is_refused():
    async def go():
        async with serving() as server:
            status, body = await refused_status(server.url("CS1"))
            assert status == 400 and "offered: none" in body
            assert server.refusals[-1].status == 400
    run(go())


def test_client_reports_refusal_as_handshake_refused():
    async def go():
        async with serving(versions=("1.6",)) as server:
            trace = Trace()
            with pytest.raises(HandshakeRefused) as exc:
                await connect_station(server.url(), "CS1", ("2.0.1",), trace)
            assert exc.value.status == 400 and "unsupported OCPP subprotocol" in exc.value.body
            assert "HTTP 400" in str(exc.value)
            assert trace.entries[-1].kind == "REFUSED" and "400" in trace.entries[-1].raw
    run(go())


@pytest.mark.parametrize("path", ["/other/CS1", "/ocpp/", "/ocpp", "/ocpp/a/b", "/"])
def test_wrong_path_is_404(path):
    async def go():
        async with serving() as server:
            status, body = await refused_status(f"ws://127.0.0.1:{server.port}{path}", subprotocols=["ocpp2.0.1"])
            assert status == 404 and "expected path /ocpp/<station id>" in body
            assert server.refusals[-1].status == 404 and server.refusals[-1].path == path
    run(go())


def test_custom_path_prefix_and_query_string():
    async def go():
        async with serving(path_prefix="/steve/websocket") as server:
            assert server.url("X") == f"ws://127.0.0.1:{server.port}/steve/websocket/X"
            async with ws_connect(server.url("X") + "?a=1", subprotocols=["ocpp2.0.1"], open_timeout=5):
                acc = await server.next_connection(5)
                assert acc.station_id == "X"
    run(go())


def test_station_id_is_percent_encoded_on_the_wire():
    async def go():
        async with serving(security=SecurityProfile(1), password_check=lambda sid, pw: sid == "DEPOT 7/ü") as server:
            assert server.url("DEPOT 7/ü").endswith("/ocpp/DEPOT%207%2F%C3%BC")
            client = await connect_station(server.url(), "DEPOT 7/ü", ("2.0.1",), Trace(),
                                           SecurityProfile(1, "DEPOT 7/ü", PASSWORD))
            acc = await server.next_connection(5)
            assert acc.station_id == "DEPOT 7/ü" and acc.connection.peer == "DEPOT 7/ü"
            assert acc.path == "/ocpp/DEPOT%207%2F%C3%BC" and server.refusals == []
            await client.close()
    run(go())


# ---- HTTP Basic auth ----------------------------------------------------------------------------------

@asynccontextmanager
async def auth_server() -> AsyncIterator[OcppServer]:
    async with serving(security=SecurityProfile(1), password_check=lambda sid, pw: sid == "CS1" and pw == PASSWORD) as s:
        yield s


def test_basic_auth_missing_is_401():
    async def go():
        async with auth_server() as server:
            with pytest.raises(HandshakeRefused) as exc:
                await connect_station(server.url(), "CS1", ("2.0.1",), Trace())
            assert exc.value.status == 401 and "HTTP Basic authentication required" in exc.value.body
            assert server.refusals[-1].status == 401
    run(go())


def test_basic_auth_wrong_password_is_401():
    async def go():
        async with auth_server() as server:
            with pytest.raises(HandshakeRefused) as exc:
                await connect_station(server.url(), "CS1", ("2.0.1",), Trace(), SecurityProfile(1, "CS1", "wrong"))
            assert exc.value.status == 401 and "wrong password" in exc.value.body
            assert server.refusals[-1].reason == "wrong password"
    run(go())


def test_basic_auth_user_must_be_station_id():
    async def go():
        async with auth_server() as server:
            with pytest.raises(HandshakeRefused) as exc:
                await connect_station(server.url(), "CS1", ("2.0.1",), Trace(), SecurityProfile(1, "CS2", PASSWORD))
            assert exc.value.status == 401
            assert "user id 'CS2' does not match station id 'CS1'" in exc.value.body
    run(go())


def test_basic_auth_right_credentials_connect_and_password_never_traced():
    async def go():
        async with auth_server() as server:
            trace = Trace()
            client = await connect_station(server.url(), "CS1", ("2.0.1",), trace, SecurityProfile(1, "CS1", PASSWORD))
            acc = await server.next_connection(5)
            assert acc.station_id == "CS1" and server.refusals == []
            # a refused attempt with the password still leaves no secret in either trace
            with pytest.raises(HandshakeRefused):
                await connect_station(server.url(), "CS2", ("2.0.1",), trace, SecurityProfile(1, "CS2", PASSWORD))
            everything = server.trace.to_json() + trace.to_json()
            assert PASSWORD not in everything
            assert base64.b64encode(f"CS1:{PASSWORD}".encode()).decode() not in everything
            await client.close()
    run(go())


def test_no_password_check_means_no_auth_required():
    async def go():
        async with serving(security=SecurityProfile(1)) as server:
            client = await connect_station(server.url(), "CS1", ("1.6",), Trace())
            assert (await server.next_connection(5)).version == "1.6"
            await client.close()
    run(go())


def test_parse_basic_auth():
    token = base64.b64encode(b"CS1:pa:ss").decode()
    assert parse_basic_auth(f"Basic {token}") == ("CS1", "pa:ss")        # password may contain ':'
    assert parse_basic_auth(f"basic {token}") == ("CS1", "pa:ss")        # scheme is case-insensitive
    assert parse_basic_auth(f"BASIC {token}") == ("CS1", "pa:ss")
    assert parse_basic_auth(None) is None
    assert parse_basic_auth("Basic") is None
    assert parse_basic_auth("Bearer abc") is None
    assert parse_basic_auth("Basic !!!not-base64") is None
    assert parse_basic_auth("Basic " + base64.b64encode(b"\xff\xfe").decode()) is None


def test_security_profile_rules():
    sp = SecurityProfile(1, "CS1", PASSWORD)
    assert sp.scheme == "ws" and PASSWORD not in repr(sp)
    assert sp.authorization_header() == "Basic " + base64.b64encode(f"CS1:{PASSWORD}".encode()).decode()
    assert SecurityProfile(0, "CS1", PASSWORD).authorization_header() is None
    with pytest.raises(ValueError, match="needs TLS"):
        SecurityProfile(2)
    with pytest.raises(ValueError, match="0–3"):
        SecurityProfile(4)


# ---- correlation and events -----------------------------------------------------------------------

def test_concurrent_calls_answered_out_of_order_are_correlated():
    async def go():
        async with pair() as (acc, client, server, _):
            conn = acc.connection
            fut_a = await conn.send_call("Reset", {"type": "Immediate"})
            fut_b = await conn.send_call("Reset", {"type": "OnIdle"})
            fut_c = await conn.send_call("ClearCache", {})
            got = [await client.next_event(5) for _ in range(3)]
            assert all(isinstance(e, IncomingCall) and e.violation is None for e in got)
            calls = [e.call for e in got]
            assert [c.action for c in calls] == ["Reset", "Reset", "ClearCache"]
            assert len({c.unique_id for c in calls}) == 3
            # answer in reverse order
            await client.reply(calls[2], {"status": "Rejected"})
            await client.reply_error(calls[1], "InternalError", "busy")
            await client.reply(calls[0], {"status": "Scheduled"})
            a, b, c = await within(asyncio.gather(fut_a, fut_b, fut_c))
            assert a.call.payload == {"type": "Immediate"} and a.frame.payload == {"status": "Scheduled"}
            assert b.is_error and isinstance(b.frame, CallError) and b.frame.error_code == "InternalError"
            assert c.call.action == "ClearCache" and c.frame.payload == {"status": "Rejected"}
            assert not a.is_error and a.violation is None and a.elapsed >= 0
            assert conn._pending == {}
    run(go())


def test_call_helper_and_response_schema_violation():
    async def go():
        async with pair() as (acc, client, server, _):
            task = asyncio.ensure_future(acc.connection.call("Reset", {"type": "Immediate"}, timeout=5))
            ev = await client.next_event(5)
            await client.reply(ev.call, {"status": "Maybe"}, validate=False)
            resp = await within(task)
            assert resp.violation is not None and resp.violation.path == "status"
            assert "schema violation" in server.trace.entries[-1].note
    run(go())


def test_call_helper_times_out():
    async def go():
        async with pair() as (acc, client, server, _):
            with pytest.raises(asyncio.TimeoutError):
                await acc.connection.call("Reset", {"type": "Immediate"}, timeout=0.2)
    run(go())


def test_incoming_call_with_violation_or_unknown_action():
    async def go():
        async with pair("1.6") as (acc, client, server, _):
            await client.send_call("BootNotification", {"chargePointVendor": "V"}, validate=False)
            await client.send_raw('[2,"u-1","MadeUpAction",{}]')
            bad = await acc.connection.next_event(5)
            assert isinstance(bad, IncomingCall) and bad.violation is not None and not bad.unknown_action
            assert "chargePointModel" in bad.violation.message
            unknown = await acc.connection.next_event(5)
            assert isinstance(unknown, IncomingCall) and unknown.unknown_action and unknown.violation is None
            notes = [e.note for e in server.trace.entries if e.direction == "rx"]
            assert notes[0].startswith("schema violation:") and notes[1] == "unknown action"
    run(go())


def test_stray_response():
    async def go():
        async with pair() as (acc, client, server, _):
            await client.send_raw('[3,"nobody-asked",{"status":"Accepted"}]')
            await client.send_raw('[4,"nobody-either","GenericError","",{}]')
            ev = await acc.connection.next_event(5)
            assert isinstance(ev, StrayResponse) and isinstance(ev.frame, CallResult)
            assert ev.frame.unique_id == "nobody-asked"
            ev2 = await acc.connection.next_event(5)
            assert isinstance(ev2, StrayResponse) and isinstance(ev2.frame, CallError)
            rx = [e for e in server.trace.entries if e.direction == "rx"]
            assert rx[0].kind == "CALLRESULT" and rx[0].note == "no outstanding CALL with this message id"
    run(go())


def test_garbage_frames_are_events():
    async def go():
        async with pair() as (acc, client, server, _):
            await client.send_raw("hello, not ocpp")
            await client.ws.send(b'[2,"u","Heartbeat",{}]')        # binary frame
            await client.send_raw('[9,"u",{}]')
            events = [await acc.connection.next_event(5) for _ in range(3)]
            assert all(isinstance(e, Garbage) for e in events)
            assert events[0].raw == "hello, not ocpp" and events[0].reason.startswith("not JSON")
            assert "binary websocket frame" in events[1].reason
            assert "unknown MessageTypeId 9" in events[2].reason
            garbage = [e for e in server.trace.entries if e.kind == "GARBAGE"]
            assert [g.raw for g in garbage] == ["hello, not ocpp", '[2,"u","Heartbeat",{}]', '[9,"u",{}]']
            assert all(g.note for g in garbage)
            # the connection survives garbage
            fut = await acc.connection.send_call("ClearCache", {})
            ev = await client.next_event(5)
            await client.reply(ev.call, {"status": "Accepted"})
            assert (await within(fut)).frame.payload == {"status": "Accepted"}
    run(go())


def test_close_event_and_pending_futures_fail_with_connection_lost():
    async def go():
        async with pair() as (acc, client, server, _):
            conn = acc.connection
            fut = await conn.send_call("Reset", {"type": "Immediate"})
            assert isinstance(await client.next_event(5), IncomingCall)
            await client.close(1000, "bye")
            closed = await conn.next_event(5)
            assert isinstance(closed, Closed) and closed.code == 1000 and closed.reason == "bye"
            with pytest.raises(ConnectionLost, match="before response to Reset"):
                await within(fut)
            assert conn.closed.is_set() and conn._pending == {}
            with pytest.raises(ConnectionLost, match="send failed"):
                await conn.send_call("ClearCache", {})
            assert conn._pending == {}
            close = [e for e in server.trace.entries if e.kind == "CLOSE"]
            assert len(close) == 1 and "code=1000" in close[0].raw
            # the client side sees its own close too
            assert isinstance(await client.next_event(5), Closed)
    run(go())


def test_server_stop_closes_station_connections():
    async def go():
        server = await OcppServer().start()
        client = await connect_station(server.url(), "CS1", ("2.0.1",), Trace())
        acc = await server.next_connection(5)
        await acc.connection.close(1001, "going away")
        await server.stop()
        ev = await client.next_event(5)
        assert isinstance(ev, Closed) and ev.code == 1001
    run(go())


# ---- what the harness sends -------------------------------------------------------------------------

def test_local_schema_error_for_invalid_outgoing_payloads():
    async def go():
        async with pair() as (acc, client, server, _):
            conn = acc.connection
            n = len(server.trace.entries)
            with pytest.raises(LocalSchemaError, match="Reset request the harness was about to send violates the schema: type"):
                await conn.send_call("Reset", {"type": "Now!"})
            with pytest.raises(LocalSchemaError, match="OCPP 2.0.1 has no action 'Bogus'"):
                await conn.send_call("Bogus", {})
            await client.send_call("Heartbeat", {})
            ev = await acc.connection.next_event(5)
            with pytest.raises(LocalSchemaError, match="Heartbeat response"):
                await conn.reply(ev.call, {})
            assert [e.direction for e in server.trace.entries[n:]] == ["rx"]     # nothing invalid went out
            assert conn._pending == {}
            # on purpose: validate=False lets it out, and the peer sees the violation
            await conn.send_call("Reset", {"type": "Now!"}, validate=False)
            got = await client.next_event(5)
            assert isinstance(got, IncomingCall) and got.violation is not None and got.violation.path == "type"
    run(go())


def test_validate_outgoing_flag_off():
    async def go():
        async with pair() as (acc, client, server, _):
            acc.connection.validate_outgoing = False
            await acc.connection.send_call("Reset", {"type": "Now!"})
            assert (await client.next_event(5)).violation is not None
    run(go())


def test_send_raw_goes_out_verbatim_and_is_traced():
    async def go():
        async with serving() as server:
            async with ws_connect(server.url("CS1"), subprotocols=["ocpp2.0.1"], open_timeout=5) as ws:
                conn = (await server.next_connection(5)).connection
                text = '[2, "raw-1", "Reset", {"type": "Immediate"}]'
                fut = conn.expect_response_to("raw-1", "Reset")
                await conn.send_raw(text)
                assert await within(ws.recv()) == text           # exactly as written, spaces and all
                await ws.send('[3,"raw-1",{"status":"Accepted"}]')
                resp = await within(fut)
                assert resp.frame.payload == {"status": "Accepted"} and resp.call.action == "Reset"
                await conn.send_raw("{{{ not json", note="negative test")
                assert await within(ws.recv()) == "{{{ not json"
                tx = [e for e in server.trace.entries if e.direction == "tx"]
                assert (tx[0].kind, tx[0].action, tx[0].unique_id, tx[0].raw) == ("CALL", "Reset", "raw-1", text)
                assert (tx[1].kind, tx[1].raw, tx[1].note) == ("RAW", "{{{ not json", "negative test")
                await conn.close()
    run(go())


# ---- the trace -------------------------------------------------------------------------------------

def test_trace_entries_in_order_with_monotonic_timestamps():
    async def go():
        async with pair() as (acc, client, server, client_trace):
            conn = acc.connection
            await client.send_call("Heartbeat", {})
            ev = await conn.next_event(5)
            await conn.reply(ev.call, {"currentTime": "2024-05-01T12:00:00Z"})
            fut = await conn.send_call("ClearCache", {})
            got = await client.next_event(5)
            await client.reply(got.call, {"status": "Accepted"})
            await within(fut)
            await client.send_raw("garbage!")
            assert isinstance(await conn.next_event(5), Garbage)
            await client.close()
            assert isinstance(await conn.next_event(5), Closed)
            entries = server.trace.entries
            assert [(e.direction, e.kind) for e in entries] == [
                ("event", "CONNECT"), ("rx", "CALL"), ("tx", "CALLRESULT"), ("tx", "CALL"), ("rx", "CALLRESULT"),
                ("rx", "GARBAGE"), ("event", "CLOSE")]
            assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
            assert all(a.mono <= b.mono for a, b in zip(entries, entries[1:]))
            assert entries[1].action == "Heartbeat" and entries[1].unique_id == entries[2].unique_id
            assert entries[4].action == "ClearCache"           # responses are named after their CALL
            assert all(e.peer == "CS1" for e in entries)
            data = json.loads(server.trace.to_json())
            assert [d["seq"] for d in data] == [e.seq for e in entries]
            assert all(d["t"] >= 0 for d in data) and all(a["t"] <= b["t"] for a, b in zip(data, data[1:]))
            view = server.trace.sequence_view()
            assert "<------" in view and "------>" in view and "CALLRESULT Heartbeat" in view and "!! not JSON" in view
            assert [e.direction for e in client_trace.entries][:3] == ["event", "tx", "rx"]
            assert server.trace.last(2) == entries[-2:]
    run(go())


def test_sequence_view_truncates_long_frames():
    trace = Trace()
    trace.add("rx", "CS1", "x" * 1000, kind="CALL", action="DataTransfer", unique_id="u")
    view = trace.sequence_view()
    assert "… (1000 chars)" in view and "x" * 401 not in view


def test_answer_calls_handles_calls_in_the_reader_without_the_queue():
    async def body() -> None:
        server = await OcppServer(versions=("2.0.1",)).start()
        try:
            client = await connect_station(server.url(), "CS-DIRECT", ("2.0.1",), Trace())
            conn = (await within(server.accepted.get())).connection
            seen: list[str] = []

            async def answer(ev: IncomingCall) -> None:
                seen.append(ev.call.action)
                await conn.reply(ev.call, {"currentTime": "2026-01-01T00:00:00Z"})

            conn.answer_calls = answer
            response = await client.call("Heartbeat", {}, timeout=5)
            assert isinstance(response.frame, CallResult) and response.violation is None
            assert seen == ["Heartbeat"] and conn.inbox.empty()     # no queue hop
            await client.close()
            assert isinstance(await within(conn.next_event()), Closed)   # other events still queue
        finally:
            await server.stop()

    run(body())
