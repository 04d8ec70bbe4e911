"""The scenario engine against small scripted DUTs over real websockets on 127.0.0.1.

A scripted station connects to the harness's CSMS endpoint when the fake adapter performs
`boot`; a scripted CSMS serves the harness-as-station. Cases are YAML files loaded with
`load_case`, so the loader is exercised too. Every run is bounded by an outer wait_for.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

from _aio import run
from harness import execute as execute_mod
from harness.dut.adapters import SimAdapter
from harness.dut.base import ActionOutcome, Adapter
from harness.dut.profile import profile_from_dict
from harness.ocpp.trace import Trace
from harness.ocpp.schemas import actions, validate
from harness.roles import defaults as default_replies
from harness.roles.endpoint import CsmsEndpoint
from harness.roles.session import CsmsSession, StationSession
from harness.scenario.engine import Engine
from harness.scenario.loader import load_case
from harness.scenario.model import TestCase
from harness.scenario.verdict import CaseResult, Verdict
from harness.transport.security import SecurityProfile
from harness.transport.server import OcppServer

STATION_ID = "CS1"
RECV_BOUND = 5.0
PIXIT = {"valid_id_token": "TRUCK-0001", "heartbeat_interval": 3}
BOOT_201 = {"reason": "PowerUp", "chargingStation": {"model": "M-400", "vendorName": "V-Trucks"}}
BOOT_16 = {"chargePointVendor": "V-Trucks", "chargePointModel": "M-400"}


# ---- scripted DUT peers ---------------------------------------------------------------------------

Op = Callable[["Peer"], Awaitable[None]]


class Peer:
    """One side of an OCPP-J connection played from a script; records every frame it receives."""

    def __init__(self, script: list[Op]):
        self.script = script
        self.ws: Any = None
        self.received: list[Any] = []           # parsed frames (or raw text if not JSON)
        self.answers: dict[str, list[Any]] = {}  # action → the CALLRESULT/CALLERROR frame we got
        self.finished = asyncio.Event()
        self.error: BaseException | None = None

    async def recv(self) -> Any:
        raw = await asyncio.wait_for(self.ws.recv(), RECV_BOUND)
        try:
            frame = json.loads(raw)
        except ValueError:
            frame = raw
        self.received.append(frame)
        return frame

    async def play(self) -> None:
        try:
            for op in self.script:
                await op(self)
            while True:                          # afterwards: listen (answer nothing) until closed
                await asyncio.wait_for(self.ws.recv(), 30)
        except (ConnectionClosed, asyncio.CancelledError):
            pass
        except BaseException as exc:            # surfaced by the test, never swallowed silently
            self.error = exc
        finally:
            self.finished.set()

    def calls_received(self, action: str) -> list[Any]:
        return [f for f in self.received if isinstance(f, list) and f[:1] == [2] and f[2] == action]


def send(frame: Any) -> Op:
    async def op(p: Peer) -> None:
        await p.ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    return op


def call(action: str, payload: dict[str, Any], uid: str | None = None) -> Op:
    """Send a CALL and wait for its answer (CALLs received meanwhile are recorded, not answered)."""
    async def op(p: Peer) -> None:
        mid = uid or f"{action}-{len(p.answers.get(action, []))}"
        await p.ws.send(json.dumps([2, mid, action, payload]))
        while True:
            frame = await p.recv()
            if isinstance(frame, list) and frame[0] in (3, 4) and frame[1] == mid:
                p.answers.setdefault(action, []).append(frame)
                return
    return op


def expect(action: str, reply: Any = None, error: str | None = None) -> Op:
    """Wait for a CALL of `action`; answer with `reply` (dict or function of the payload), `error`, or not at all."""
    async def op(p: Peer) -> None:
        while True:
            frame = await p.recv()
            if isinstance(frame, list) and frame[:1] == [2] and frame[2] == action:
                break
        if error is not None:
            await p.ws.send(json.dumps([4, frame[1], error, "scripted", {}]))
        elif reply is not None:
            payload = reply(frame[3]) if callable(reply) else reply
            await p.ws.send(json.dumps([3, frame[1], payload]))
    return op


def close(code: int = 1000) -> Op:
    async def op(p: Peer) -> None:
        await p.ws.close(code, "scripted close")
    return op


def wait_event(event: asyncio.Event) -> Op:
    async def op(p: Peer) -> None:
        await asyncio.wait_for(event.wait(), RECV_BOUND)
    return op


class Station(Peer):
    """A scripted charging station that connects to the harness's CSMS endpoint."""

    def __init__(self, script: list[Op], version: str = "2.0.1"):
        super().__init__(script)
        self.version = version
        self.url = ""

    def connect(self) -> Op:
        async def op(p: Peer) -> None:
            if p.ws is not None:
                await p.ws.close()
            p.ws = await ws_connect(self.url, subprotocols=[f"ocpp{self.version}"], open_timeout=RECV_BOUND)
        return op

    async def run(self) -> None:
        self.script = [self.connect(), *self.script]
        try:
            await self.play()
        finally:
            if self.ws is not None:
                await self.ws.close()


class FakeAdapter(Adapter):
    """Out-of-band actions: each named action starts a coroutine (the scripted DUT) in the background."""

    name = "fake"

    def __init__(self, actions: dict[str, Callable[[], Awaitable[None]]] | None = None, status: str = "done"):
        self.actions = actions or {}
        self.status = status
        self.performed: list[tuple[str, dict[str, Any], str]] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def perform(self, action: str, params: dict[str, Any], say: str, timeout: float) -> ActionOutcome:
        self.performed.append((action, params, say))
        if self.status == "hang":                       # an operator who never answers
            await asyncio.Event().wait()
        if self.status != "done":
            return ActionOutcome(self.status, f"fake adapter answers {self.status}", "fake")
        starter = self.actions.get(action)
        if starter is not None:
            self.tasks.append(asyncio.get_running_loop().create_task(starter()))
        return ActionOutcome("done", "", "fake")

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


# ---- building and running cases -------------------------------------------------------------------

def make_case(tmp_path: Path, case_id: str, steps: str, *, ocpp: str = "2.0.1", role: str = "csms",
              timeout: float = 8, extra: str = "") -> TestCase:
    folder = tmp_path / "testcases" / ("ocpp16" if ocpp == "1.6" else "ocpp201")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case_id}.yaml"
    header = (f'id: {case_id}\ntitle: engine probe {case_id}\nocpp: "{ocpp}"\nrole: {role}\nprofile: Core\n'
              f"timeout: {timeout}\n")
    path.write_text(header + textwrap.dedent(extra) + "steps:\n" + textwrap.indent(textwrap.dedent(steps), "  "))
    return load_case(path)


async def run_csms_case(case: TestCase, station: Station | None, *, adapter: FakeAdapter | None = None,
                        station_id: str = STATION_ID) -> tuple[CaseResult, Trace]:
    """The harness plays the CSMS; `boot` starts the scripted station."""
    trace = Trace()
    server = OcppServer(versions=(case.ocpp,), trace=trace)
    endpoint = await CsmsEndpoint(server, dict(PIXIT)).start()
    session = await CsmsSession(case.ocpp, trace, endpoint, STATION_ID).start()
    if station is not None:
        station.url = server.url(station_id)
    adapter = adapter or FakeAdapter({"boot": station.run} if station else {})
    engine = Engine(case, session, adapter, {"pixit": dict(PIXIT), "dut": {"station_id": STATION_ID}})
    try:
        result = await engine.run()
    finally:
        await session.close()
        await adapter.stop()
        await endpoint.stop()
    if station is not None:
        assert station.error is None, station.error
    return result, trace


class Csms(Peer):
    """A scripted CSMS: serves one station connection with the script."""

    def __init__(self, script: list[Op], versions: tuple[str, ...] = ("1.6",)):
        super().__init__(script)
        self.versions = versions
        self.server: Any = None
        self.path = ""

    async def start(self) -> "Csms":
        async def handler(ws: Any) -> None:
            self.ws = ws
            self.path = ws.request.path
            await self.play()

        self.server = await ws_serve(handler, "127.0.0.1", 0, subprotocols=[f"ocpp{v}" for v in self.versions])
        return self

    @property
    def url(self) -> str:
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/ocpp"

    async def stop(self) -> None:
        self.server.close()
        await asyncio.wait_for(self.server.wait_closed(), 5)


async def run_cs_case(case: TestCase, endpoint: str, adapter: FakeAdapter | None = None,
                      security: SecurityProfile | None = None) -> tuple[CaseResult, Trace]:
    """The harness plays the charging station against the DUT CSMS at `endpoint`."""
    trace = Trace()
    session = StationSession(case.ocpp, trace, endpoint, STATION_ID, security or SecurityProfile())
    adapter = adapter or FakeAdapter()
    engine = Engine(case, session, adapter, {"pixit": dict(PIXIT), "dut": {"station_id": STATION_ID}})
    try:
        return await engine.run(), trace
    finally:
        await session.close()
        await adapter.stop()


def bounded(case: TestCase) -> float:
    """The outer bound of one run: the case's own budget plus teardown slack."""
    return case.timeout + 10


def verdict_of(result: CaseResult, verdict: Verdict) -> CaseResult:
    assert result.verdict == verdict, result.summary()
    return result


# ---- PASS, captures and defaults --------------------------------------------------------------------

def test_pass_with_captures_reused_later(tmp_path):
    case = make_case(tmp_path, "TC_T_01_CS", """\
        - action: boot
          say: Power the station up.
        - expect: BootNotification
          timeout: 3
          requirement: B01.FR.01
          match:
            reason: PowerUp
            chargingStation: {vendorName: {$type: string}, model: {$regex: "M-[0-9]+"}}
          capture: {vendor: chargingStation.vendorName, model: chargingStation.model}
          reply: {status: Accepted, currentTime: $now, interval: $pixit.heartbeat_interval}
        - expect: Heartbeat
          timeout: 3
        - send: DataTransfer
          timeout: 3
          payload: {vendorId: $vendor, messageId: "${model}-probe"}
          expect_result: {status: Accepted, data: $vendor}
          capture: {echo: data}
        - assert:
            - {value: $echo, match: $vendor}
            - {value: "${vendor}/${model}", match: {$regex: "^V-.*/M-400$"}}
        """)
    station = Station([
        call("BootNotification", BOOT_201),
        call("StatusNotification", {"timestamp": "2024-05-01T12:00:00Z", "connectorStatus": "Available",
                                    "evseId": 1, "connectorId": 1}),
        call("Heartbeat", {}),
        expect("DataTransfer", reply=lambda p: {"status": "Accepted", "data": p["vendorId"]}),
    ])
    result, trace = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.PASS)
    assert result.summary() == "PASS"
    assert [s.verdict for s in result.steps] == [Verdict.PASS] * 5
    assert [s.index for s in result.steps] == [1, 2, 3, 4, 5]
    assert result.captures == {"vendor": "V-Trucks", "model": "M-400", "echo": "V-Trucks"}
    assert result.dut_identity == {"vendor": "V-Trucks", "model": "M-400"}
    boot_answer = station.answers["BootNotification"][0]
    assert boot_answer[0] == 3 and boot_answer[2]["status"] == "Accepted" and boot_answer[2]["interval"] == 3
    assert boot_answer[2]["currentTime"].endswith("Z")
    assert station.answers["StatusNotification"][0][2] == {}          # default reply, no step waited for it
    assert "currentTime" in station.answers["Heartbeat"][0][2]          # the expected CALL gets the default too
    (dt,) = station.calls_received("DataTransfer")
    assert dt[3] == {"vendorId": "V-Trucks", "messageId": "M-400-probe"}
    assert [e.kind for e in trace.entries if e.direction != "event"].count("CALL") == 4
    assert result.start <= result.stop


def test_default_replies_to_unexpected_calls(tmp_path):
    case = make_case(tmp_path, "TC_T_02_CS", """\
        - action: boot
        - expect: Heartbeat
          timeout: 3
        """, extra="""\
        defaults:
          Authorize: {idTokenInfo: {status: Blocked}}
        """)
    station = Station([
        call("Authorize", {"idToken": {"idToken": "X", "type": "ISO14443"}}),
        call("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": "2024-05-01T12:00:00Z",
                                                           "sampledValue": [{"value": 1.0}]}]}),
        call("Reset", {"type": "Immediate"}),             # valid, but a CSMS has no answer for it
        call("NoSuchAction", {}),
        call("Heartbeat", {}),
    ])
    result, trace = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.PASS)
    assert station.answers["Authorize"][0][2] == {"idTokenInfo": {"status": "Blocked"}}   # the case's default
    assert station.answers["MeterValues"][0][2] == {}
    reset = station.answers["Reset"][0]
    assert reset[0] == 4 and reset[2] == "NotImplemented"
    unknown = station.answers["NoSuchAction"][0]
    assert unknown[0] == 4 and unknown[2] == "NotImplemented"
    assert "meanwhile" not in result.steps[-1].message


# Requests whose default answer echoes part of the request (all others are answered from nothing).
_ECHO_REQUESTS = {
    "GetVariables": {"getVariableData": [{"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}}]},
    "SetVariables": {"setVariableData": [{"attributeValue": "1", "component": {"name": "C"}, "variable": {"name": "V"}}]},
    "GetConfiguration": {"key": ["HeartbeatInterval"]},
    "StopTransaction": {"idTag": "X", "meterStop": 1, "timestamp": "2024-05-01T12:00:00Z", "transactionId": 1},
    "TransactionEvent": {"idToken": {"idToken": "X", "type": "ISO14443"}},
}


@pytest.mark.parametrize("role, version", sorted(default_replies._TABLES))
def test_every_default_reply_is_schema_valid(role, version):
    table = default_replies._TABLES[(role, version)]
    assert table, (role, version)
    for action in table:
        assert action in actions(version), f"{action} is not an OCPP {version} action"
        # only requests a DUT could validly send: an invalid one gets a FormatViolation instead
        candidates = [{}, _ECHO_REQUESTS.get(action, {})]
        requests = [r for r in candidates if r is not candidates[0] or validate(version, action, "request", r) is None]
        for request in requests:
            reply = default_replies.default_reply(role, version, action, request, {"_next_tx_id": 7})
            assert validate(version, action, "response", reply) is None, (action, reply)
    assert default_replies.default_reply(role, version, "NoSuchAction", {}, {}) is None


def test_pass_through_execute_with_a_sim_like_adapter(tmp_path, monkeypatch):
    """The same flow through harness.execute: role set-up, adapter hand-over, teardown."""
    case = make_case(tmp_path, "TC_T_03_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
          reply: {status: Accepted, currentTime: $now, interval: 10}
        """)
    station = Station([call("BootNotification", BOOT_201)])

    class FakeSim(SimAdapter):
        def __init__(self, profile, fault=None):
            super().__init__(profile, fault)
            self.fake = FakeAdapter({"boot": station.run})

        async def start_station(self, csms_url: str, version: str) -> None:
            station.url = f"{csms_url}/{self.profile.station_id}"

        async def perform(self, action, params, say, timeout):
            return await self.fake.perform(action, params, say, timeout)

        async def stop(self) -> None:
            await self.fake.stop()

    monkeypatch.setattr(execute_mod, "make_adapter", lambda profile, **kw: FakeSim(profile))
    profile = profile_from_dict({"name": "scripted", "kind": "charging_station", "adapter": "sim",
                                 "ocpp_versions": ["2.0.1"], "security_profile": 0, "station_id": STATION_ID,
                                 "pixit": PIXIT})
    execution = run(execute_mod.execute(case, profile), bounded(case))
    verdict_of(execution.result, Verdict.PASS)
    assert any(e.kind == "CONNECT" for e in execution.trace.entries)
    assert station.answers["BootNotification"][0][2]["interval"] == 10


def test_not_applicable_without_running(tmp_path):
    case = make_case(tmp_path, "TC_T_04_CS", "- expect: Heartbeat\n", extra="pics: [mcs]\n")
    profile = profile_from_dict({"name": "p", "kind": "charging_station", "adapter": "command",
                                 "ocpp_versions": ["2.0.1"], "pics": {"mcs": False}})
    execution = run(execute_mod.execute(case, profile))
    verdict_of(execution.result, Verdict.NOT_APPLICABLE)
    assert "mcs" in execution.result.message and execution.trace.entries == []
    old = profile_from_dict({"name": "p", "kind": "charging_station", "adapter": "command",
                             "ocpp_versions": ["1.6"], "pics": {"mcs": True}})
    execution = run(execute_mod.execute(case, old))
    verdict_of(execution.result, Verdict.NOT_APPLICABLE)
    assert "OCPP 1.6" in execution.result.message


# ---- FAIL -------------------------------------------------------------------------------------------

def test_fail_on_payload_mismatch_names_path_expected_and_received(tmp_path):
    case = make_case(tmp_path, "TC_T_10_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
          requirement: B01.FR.01
          match: {reason: PowerUp, chargingStation: {model: DC-400}}
          reply: {status: Accepted, currentTime: $now, interval: 10}
        """)
    station = Station([call("BootNotification", BOOT_201)])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert 'chargingStation.model: expected "DC-400", found "M-400"' in result.message
    assert result.failed_step == 2 and result.failed_step_name == "expect BootNotification"
    assert result.requirement == "B01.FR.01"
    assert result.expected == {"reason": "PowerUp", "chargingStation": {"model": "DC-400"}}
    assert result.received == BOOT_201
    assert station.answers["BootNotification"][0][0] == 3            # answered first, judged after
    text = result.summary()
    assert text.startswith("FAIL: ") and "at step 2" in text and "expected:" in text and "received:" in text
    assert result.steps[-1].verdict == Verdict.FAIL and result.steps[-1].details["received"] == BOOT_201


def test_fail_on_schema_invalid_call_from_dut(tmp_path):
    case = make_case(tmp_path, "TC_T_11_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        """)
    station = Station([call("BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"}})])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert "violates the OCPP 2.0.1 schema" in result.message and "reason" in result.message
    assert result.requirement == "OCPP 2.0.1 JSON schema"
    answer = station.answers["BootNotification"][0]
    assert answer[0] == 4 and answer[2] == "FormatViolation"


def test_fail_on_schema_invalid_call_16_gets_formation_violation(tmp_path):
    case = make_case(tmp_path, "TC_T_12_CS", """\
        - action: boot
        - expect: Heartbeat
          timeout: 3
        """, ocpp="1.6")
    station = Station([call("StatusNotification", {"connectorId": 1, "status": "Available"})], version="1.6")
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)               # the schema rule holds in every step, not just the awaited one
    assert "StatusNotification that violates the OCPP 1.6 schema" in result.message
    assert station.answers["StatusNotification"][0][2] == "FormationViolation"


def test_fail_on_garbage_frame(tmp_path):
    case = make_case(tmp_path, "TC_T_13_CS", """\
        - action: boot
        - expect: Heartbeat
          timeout: 3
        """)
    station = Station([send("this is not OCPP")])
    result, trace = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert "not valid OCPP-J" in result.message and "not JSON" in result.message
    assert result.received == "this is not OCPP"
    assert any(e.kind == "GARBAGE" for e in trace.entries)


def test_fail_on_stray_response(tmp_path):
    case = make_case(tmp_path, "TC_T_14_CS", """\
        - action: boot
        - expect: Heartbeat
          timeout: 3
        """)
    station = Station([send([3, "no-such-call", {}])])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert "matches no CALL" in result.message


def test_fail_when_dut_closes_mid_case(tmp_path):
    case = make_case(tmp_path, "TC_T_15_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - expect: Heartbeat
          timeout: 3
        """)
    station = Station([call("BootNotification", BOOT_201), close()])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert result.failed_step == 3
    assert "DUT closed the connection (code=1000" in result.message and "expect Heartbeat" in result.message


def test_reconnect_allowed_and_expect_disconnect(tmp_path):
    case = make_case(tmp_path, "TC_T_16_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - expect_disconnect: {}
          timeout: 3
        - expect: BootNotification
          allow_reconnect: true
          timeout: 3
          match: {reason: RemoteReset}
        """)
    station = Station([call("BootNotification", BOOT_201), close()])
    station.script += [station.connect(), call("BootNotification", {**BOOT_201, "reason": "RemoteReset"})]
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.PASS)
    assert result.steps[2].message.startswith("closed (code=1000")


def test_fail_on_timeout_with_no_message(tmp_path):
    case = make_case(tmp_path, "TC_T_17_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - expect: Heartbeat
          timeout: 0.5
        """)
    station = Station([call("BootNotification", BOOT_201)])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert result.message == "no Heartbeat from the DUT within 0.5 s"
    assert result.expected == {"action": "Heartbeat", "match": None}
    assert any("BootNotification" in r for r in result.received)      # what did arrive, for the reader


def test_fail_on_timeout_names_what_arrived_meanwhile(tmp_path):
    case = make_case(tmp_path, "TC_T_18_CS", """\
        - action: boot
        - expect: Heartbeat
          timeout: 0.5
        """)
    station = Station([call("StatusNotification", {"timestamp": "2024-05-01T12:00:00Z", "connectorStatus": "Available",
                                                   "evseId": 1, "connectorId": 1})])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert "meanwhile received: StatusNotification" in result.message


def test_fail_when_not_before_is_violated(tmp_path):
    case = make_case(tmp_path, "TC_T_19_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - expect: Heartbeat
          not_before: 2
          timeout: 3
        """)
    station = Station([call("BootNotification", BOOT_201), call("Heartbeat", {})])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert "earlier than the allowed 2 s" in result.message
    assert result.expected == "Heartbeat not before 2 s"
    assert "currentTime" in station.answers["Heartbeat"][0][2]         # still answered


def test_fail_on_wrong_callerror_code(tmp_path):
    case = make_case(tmp_path, "TC_T_20_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - send: Reset
          timeout: 3
          payload: {type: Immediate}
          expect_error: {code: NotSupported}
        """)
    station = Station([call("BootNotification", BOOT_201), expect("Reset", error="InternalError")])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert result.message.startswith("wrong CALLERROR code to Reset")
    assert 'code: expected "NotSupported", found "InternalError"' in result.message
    assert result.received[:3] == [4, result.received[1], "InternalError"]


def test_expected_callerror_matchers_and_raw_send(tmp_path):
    case = make_case(tmp_path, "TC_T_21_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - send: Reset
          timeout: 3
          payload: {type: Immediate}
          expect_error: {code: {$one_of: [NotSupported, NotImplemented]}}
        - send: NoSuchAction
          timeout: 3
          raw: '[2,"$uid","NoSuchAction",{}]'
          expect_error: {code: NotImplemented}
        """)
    station = Station([call("BootNotification", BOOT_201), expect("Reset", error="NotSupported"),
                       expect("NoSuchAction", error="NotImplemented")])
    result, trace = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.PASS)
    (raw_call,) = station.calls_received("NoSuchAction")
    assert raw_call[1] != "$uid" and len(raw_call[1]) == 36            # a fresh message id was put in
    assert [s.message for s in result.steps][-1].startswith("CALLERROR NotImplemented")


def test_fail_on_callerror_when_a_result_was_expected(tmp_path):
    case = make_case(tmp_path, "TC_T_22_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - send: Reset
          timeout: 3
          payload: {type: Immediate}
          expect_result: {status: Accepted}
        """)
    station = Station([call("BootNotification", BOOT_201), expect("Reset", error="GenericError")])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert "answered Reset with CALLERROR GenericError" in result.message


def test_fail_on_result_mismatch_and_schema_invalid_result(tmp_path):
    case = make_case(tmp_path, "TC_T_23_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - send: Reset
          timeout: 3
          payload: {type: Immediate}
          expect_result: {status: Accepted}
        """)
    station = Station([call("BootNotification", BOOT_201), expect("Reset", reply={"status": "Rejected"})])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert 'status: expected "Accepted", found "Rejected"' in result.message

    case2 = make_case(tmp_path, "TC_T_24_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - send: Reset
          timeout: 3
          payload: {type: Immediate}
        """)
    station2 = Station([call("BootNotification", BOOT_201), expect("Reset", reply={"status": "Maybe"})])
    result2, _ = run(run_csms_case(case2, station2), bounded(case2))
    verdict_of(result2, Verdict.FAIL)
    assert "Reset response violates the OCPP 2.0.1 schema: status" in result2.message


def test_fail_when_dut_never_answers_a_call(tmp_path):
    case = make_case(tmp_path, "TC_T_25_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - send: Reset
          timeout: 0.5
          payload: {type: Immediate}
        """)
    station = Station([call("BootNotification", BOOT_201), expect("Reset")])        # received, never answered
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert result.message == "no response to Reset within 0.5 s"
    assert result.expected == "CALLRESULT or CALLERROR"


def test_calls_arriving_while_waiting_for_a_response_are_served(tmp_path):
    case = make_case(tmp_path, "TC_T_26_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - send: Reset
          timeout: 3
          payload: {type: Immediate}
          expect_result: {status: Accepted}
        """)

    async def heartbeat_then_answer(p: Peer) -> None:
        while True:
            frame = await p.recv()
            if isinstance(frame, list) and frame[:1] == [2] and frame[2] == "Reset":
                break
        await call("Heartbeat", {})(p)                     # the station asks something before answering
        await p.ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))

    station = Station([call("BootNotification", BOOT_201), heartbeat_then_answer])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.PASS)
    assert "currentTime" in station.answers["Heartbeat"][0][2]


def test_send_waits_for_a_station_that_connects_silently(tmp_path):
    """A station may connect and wait for the CSMS to speak first: `send` must not call that a FAIL."""
    case = make_case(tmp_path, "TC_T_33_CS", """\
        - action: boot
        - send: ClearCache
          timeout: 3
          expect_result: {status: Accepted}
        """)
    station = Station([expect("ClearCache", reply={"status": "Accepted"})])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.PASS)


def test_station_with_another_id_is_ignored(tmp_path):
    case = make_case(tmp_path, "TC_T_34_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 0.5
        """)
    station = Station([call("BootNotification", BOOT_201)])
    result, trace = run(run_csms_case(case, station, station_id="SOMEONE-ELSE"), bounded(case))
    verdict_of(result, Verdict.INCONCLUSIVE)
    assert any(e.kind == "IGNORED" and "SOMEONE-ELSE" in e.raw for e in trace.entries)


def test_reply_error_no_reply_until_match_wait_and_operator(tmp_path):
    case = make_case(tmp_path, "TC_T_35_CS", """\
        - action: boot
        - operator: Check the display shows the station id.
        - expect: Authorize
          timeout: 3
          reply_error: {code: SecurityError, description: scripted refusal}
        - expect: StatusNotification
          timeout: 3
          until_match: true
          match: {connectorStatus: Occupied}
        - expect: Heartbeat
          timeout: 3
          no_reply: true
        - wait: 0.3
        """)
    status = {"timestamp": "2024-05-01T12:00:00Z", "evseId": 1, "connectorId": 1}
    station = Station([
        call("Authorize", {"idToken": {"idToken": "X", "type": "ISO14443"}}),
        call("StatusNotification", {**status, "connectorStatus": "Available"}),
        call("StatusNotification", {**status, "connectorStatus": "Occupied"}),
        send([2, "hb-unanswered", "Heartbeat", {}]),
        call("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": "2024-05-01T12:00:00Z",
                                                           "sampledValue": [{"value": 1}]}]}),
    ])
    adapter = FakeAdapter({"boot": station.run})
    result, _ = run(run_csms_case(case, station, adapter=adapter), bounded(case))
    verdict_of(result, Verdict.PASS)
    assert adapter.performed[1] == ("operator", {}, "Check the display shows the station id.")
    authorize = station.answers["Authorize"][0]
    assert authorize[0] == 4 and authorize[2:4] == ["SecurityError", "scripted refusal"]
    assert [a[2] for a in station.answers["StatusNotification"]] == [{}, {}]   # the skipped one was answered too
    assert not any(f[1] == "hb-unanswered" for f in station.received if isinstance(f, list))   # no_reply held
    assert station.answers["MeterValues"][0][2] == {}                          # served during `wait`


def test_inconclusive_when_an_unconfirmed_action_outlives_an_expect(tmp_path):
    case = make_case(tmp_path, "TC_T_36_CS", """\
        - action: plug_in
          say: Plug the cable in.
        - expect: StatusNotification
          timeout: 0.5
        """)
    result, _ = run(run_csms_case(case, None, adapter=FakeAdapter(status="hang")), bounded(case))
    verdict_of(result, Verdict.INCONCLUSIVE)
    assert "out-of-band action 'plug_in' (step 1) was not confirmed" in result.message


def test_expect_none(tmp_path):
    steps = """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - expect_none: [Heartbeat, MeterValues]
          for: {window}
        """
    case = make_case(tmp_path, "TC_T_27_CS", steps.format(window=2))     # a violation ends the window at once
    station = Station([call("BootNotification", BOOT_201), call("Heartbeat", {})])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert "DUT sent Heartbeat although it must not during this 2 s window" in result.message
    assert "currentTime" in station.answers["Heartbeat"][0][2]

    ok_case = make_case(tmp_path, "TC_T_28_CS", steps.format(window=0.6))
    status = {"timestamp": "2024-05-01T12:00:00Z", "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
    ok_station = Station([call("BootNotification", BOOT_201), call("StatusNotification", status)])
    ok_result, _ = run(run_csms_case(ok_case, ok_station), bounded(ok_case))
    verdict_of(ok_result, Verdict.PASS)
    assert "answered: StatusNotification" in ok_result.steps[-1].message


def test_expect_none_star_forbids_everything(tmp_path):
    case = make_case(tmp_path, "TC_T_29_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - expect_none: "*"
          for: 2
        """)
    status = {"timestamp": "2024-05-01T12:00:00Z", "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
    station = Station([call("BootNotification", BOOT_201), call("StatusNotification", status)])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert "DUT sent StatusNotification" in result.message


def test_failed_assertion(tmp_path):
    case = make_case(tmp_path, "TC_T_30_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
          capture: {model: chargingStation.model}
        - assert:
            - {value: $model, match: DC-400, message: the model reported is not the one on the name plate}
        """)
    station = Station([call("BootNotification", BOOT_201)])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert result.message == "the model reported is not the one on the name plate"
    assert (result.expected, result.received) == ("DC-400", "M-400")


def test_fail_when_a_capture_path_is_missing(tmp_path):
    case = make_case(tmp_path, "TC_T_31_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
          capture: {serial: chargingStation.serialNumber}
        """)
    station = Station([call("BootNotification", BOOT_201)])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert "cannot capture serial" in result.message


def test_operator_failed_check_is_fail(tmp_path):
    case = make_case(tmp_path, "TC_T_32_CS", """\
        - operator: Is the cable locked?
        """)
    adapter = FakeAdapter(status="failed")
    result, _ = run(run_csms_case(case, None, adapter=adapter), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert "operator reported the check failed" in result.message
    assert adapter.performed == [("operator", {}, "Is the cable locked?")]


# ---- INCONCLUSIVE --------------------------------------------------------------------------------------

def test_inconclusive_when_dut_never_connects(tmp_path):
    case = make_case(tmp_path, "TC_T_40_CS", """\
        - action: boot
          params: {delay: 0}
        - expect: BootNotification
          timeout: 0.5
        """)
    adapter = FakeAdapter()             # performs 'boot' but no station ever shows up
    result, trace = run(run_csms_case(case, None, adapter=adapter), bounded(case))
    verdict_of(result, Verdict.INCONCLUSIVE)
    assert "never connected" in result.message
    assert adapter.performed[0][:2] == ("boot", {"delay": 0})
    assert "Perform 'boot' on the DUT" in adapter.performed[0][2]       # the default operator text


def test_inconclusive_when_a_send_has_no_connection(tmp_path):
    case = make_case(tmp_path, "TC_T_41_CS", """\
        - send: Reset
          timeout: 0.5
          payload: {type: Immediate}
        """)
    result, _ = run(run_csms_case(case, None), bounded(case))
    verdict_of(result, Verdict.INCONCLUSIVE)
    assert "never connected" in result.message


def test_inconclusive_when_the_adapter_skips(tmp_path):
    case = make_case(tmp_path, "TC_T_42_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 0.5
        """)
    result, _ = run(run_csms_case(case, None, adapter=FakeAdapter(status="skipped")), bounded(case))
    verdict_of(result, Verdict.INCONCLUSIVE)
    assert result.message.startswith("'boot' was skipped (fake adapter answers skipped)")


def test_inconclusive_when_the_action_cannot_be_performed(tmp_path):
    case = make_case(tmp_path, "TC_T_43_CS", """\
        - action: plug_in
        - expect: StatusNotification
          timeout: 0.5
        """)
    result, _ = run(run_csms_case(case, None, adapter=FakeAdapter(status="failed")), bounded(case))
    verdict_of(result, Verdict.INCONCLUSIVE)
    assert "out-of-band action 'plug_in' could not be performed" in result.message


# ---- ERROR: the case or the harness is wrong --------------------------------------------------------

def test_error_when_the_cases_reply_is_schema_invalid(tmp_path):
    case = make_case(tmp_path, "TC_T_50_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
          reply: {status: Maybe, currentTime: $now, interval: 10}
        """)
    station = Station([send([2, "b-1", "BootNotification", BOOT_201])])
    result, trace = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.ERROR)
    assert "the case's reply is invalid" in result.message and "status" in result.message
    assert result.failed_step == 2
    assert not any(e.direction == "tx" and e.kind == "CALLRESULT" for e in trace.entries)   # nothing invalid went out


def test_error_when_a_matcher_is_malformed(tmp_path):
    case = make_case(tmp_path, "TC_T_51_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
          match: {reason: {$regexp: Power.*}}
        """)
    station = Station([call("BootNotification", BOOT_201)])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.ERROR)
    assert "test case error in step 2" in result.message
    assert f"{case.path}:" in result.message and "unknown matcher operator(s) $regexp" in result.message


def test_error_on_undefined_variable(tmp_path):
    case = make_case(tmp_path, "TC_T_52_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
          reply: {status: Accepted, currentTime: $now, interval: $never_captured}
        """)
    station = Station([call("BootNotification", BOOT_201)])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.ERROR)
    assert "$never_captured is not defined" in result.message


def test_error_when_the_harness_sends_an_invalid_call(tmp_path):
    case = make_case(tmp_path, "TC_T_53_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - send: Reset
          timeout: 3
          payload: {type: Whenever}
        """)
    station = Station([call("BootNotification", BOOT_201)])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.ERROR)
    assert "violates the schema" in result.message


def test_inconclusive_when_the_case_budget_is_exceeded_and_the_dut_never_connected(tmp_path):
    case = make_case(tmp_path, "TC_T_54_CS", """\
        - wait: 5
        """, timeout=0.5)
    result, _ = run(run_csms_case(case, None), bounded(case))
    verdict_of(result, Verdict.INCONCLUSIVE)
    assert "case exceeded its 0.5 s budget during step 1" in result.message
    assert "never connected" in result.message


def test_error_when_the_case_budget_is_exceeded_with_the_dut_online(tmp_path):
    case = make_case(tmp_path, "TC_T_56_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 3
        - wait: 5
        """, timeout=1.5)
    station = Station([call("BootNotification", BOOT_201)])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.ERROR)                    # the case's own budget is wrong, not the DUT
    assert "case exceeded its 1.5 s budget during step 3" in result.message
    assert "raise the case `timeout:`" in result.message


def test_connect_step_is_an_error_when_the_harness_is_the_csms(tmp_path):
    case = make_case(tmp_path, "TC_T_55_CS", "- connect: {}\n")
    result, _ = run(run_csms_case(case, None), bounded(case))
    verdict_of(result, Verdict.ERROR)
    assert "role: cs" in result.message


# ---- harness as charging station (DUT is a CSMS) ------------------------------------------------------

def test_cs_role_pass_with_out_of_band_trigger(tmp_path):
    case = make_case(tmp_path, "TC_T_60_CSMS", """\
        - connect: {}
        - send: BootNotification
          timeout: 3
          payload: {chargePointVendor: Harness, chargePointModel: Probe}
          expect_result: {status: Accepted, interval: {$gte: 1}}
          capture: {interval: interval}
        - action: remote_start
          params: {id_token: $pixit.valid_id_token}
        - expect: RemoteStartTransaction
          timeout: 3
          match: {idTag: $pixit.valid_id_token}
          reply: {status: Accepted}
        - send: Heartbeat
          timeout: 3
          expect_result: {currentTime: {$type: string}}
        - disconnect: {}
        """, ocpp="1.6", role="cs")
    trigger = asyncio.Event()

    async def remote_start() -> None:
        trigger.set()

    csms = Csms([
        expect("BootNotification", reply={"currentTime": "2024-05-01T12:00:00Z", "interval": 30, "status": "Accepted"}),
        wait_event(trigger),
        call("RemoteStartTransaction", {"idTag": "TRUCK-0001"}),
        expect("Heartbeat", reply={"currentTime": "2024-05-01T12:00:01Z"}),
    ])
    adapter = FakeAdapter({"remote_start": remote_start})

    async def go():
        await csms.start()
        try:
            return await run_cs_case(case, csms.url, adapter)
        finally:
            await csms.stop()

    result, trace = run(go(), bounded(case))
    verdict_of(result, Verdict.PASS)
    assert csms.error is None
    assert csms.path == f"/ocpp/{STATION_ID}"
    assert result.captures["interval"] == 30
    assert csms.answers["RemoteStartTransaction"][0][2] == {"status": "Accepted"}
    assert adapter.performed[0][:2] == ("remote_start", {"id_token": "TRUCK-0001"})
    assert trace.entries[0].kind == "CONNECT" and trace.entries[-1].kind == "CLOSE"


def test_cs_role_fail_when_csms_never_answers(tmp_path):
    case = make_case(tmp_path, "TC_T_61_CSMS", """\
        - connect: {}
        - send: BootNotification
          timeout: 0.5
          payload: {chargePointVendor: Harness, chargePointModel: Probe}
        """, ocpp="1.6", role="cs")
    csms = Csms([expect("BootNotification")])          # hangs: reads the CALL, never answers

    async def go():
        await csms.start()
        try:
            return await run_cs_case(case, csms.url)
        finally:
            await csms.stop()

    result, _ = run(go(), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert result.message == "no response to BootNotification within 0.5 s"


def test_cs_role_fail_when_csms_closes_before_answering(tmp_path):
    case = make_case(tmp_path, "TC_T_62_CSMS", """\
        - connect: {}
        - send: BootNotification
          timeout: 3
          payload: {chargePointVendor: Harness, chargePointModel: Probe}
        """, ocpp="1.6", role="cs")
    csms = Csms([expect("BootNotification"), close()])

    async def go():
        await csms.start()
        try:
            return await run_cs_case(case, csms.url)
        finally:
            await csms.stop()

    result, _ = run(go(), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert "closed the connection" in result.message


def test_cs_role_connect_refused(tmp_path):
    refused = make_case(tmp_path, "TC_T_63_CSMS", """\
        - connect: {}
          expect_refused: true
          password: wrong-password
        """, ocpp="2.0.1", role="cs")
    must_connect = make_case(tmp_path, "TC_T_64_CSMS", "- connect: {}\n", ocpp="2.0.1", role="cs")

    async def go():
        server = await OcppServer(versions=("2.0.1",), security=SecurityProfile(1),
                                  password_check=lambda sid, pw: pw == "right-password").start()
        try:
            first = await run_cs_case(refused, server.url())
            second = await run_cs_case(must_connect, server.url())
            third = await run_cs_case(refused, server.url(), security=SecurityProfile(1, STATION_ID, "unused"))
            return first, second, third, server.refusals
        finally:
            await server.stop()

    (first, _), (second, _), (third, _), refusals = run(go(), 30)
    verdict_of(first, Verdict.PASS)
    assert first.steps[0].message == "refused as required: HTTP 401"
    verdict_of(second, Verdict.FAIL)
    assert "refused the websocket handshake" in second.message and second.received.startswith("HTTP 401")
    verdict_of(third, Verdict.PASS)
    assert [r.reason for r in refusals] == ["wrong password", "HTTP Basic authentication required", "wrong password"]


def test_cs_role_accepting_a_connection_it_must_refuse_is_fail(tmp_path):
    case = make_case(tmp_path, "TC_T_65_CSMS", """\
        - connect: {}
          expect_refused: true
          password: anything
        """, role="cs")

    async def go():
        server = await OcppServer(versions=("2.0.1",)).start()     # no auth at all
        try:
            return await run_cs_case(case, server.url())
        finally:
            await server.stop()

    result, _ = run(go(), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert "accepted a connection it must refuse" in result.message


def test_cs_role_unreachable_dut_is_inconclusive(tmp_path):
    case = make_case(tmp_path, "TC_T_66_CSMS", "- connect: {}\n  timeout: 2\n", role="cs")

    async def go():
        server = await OcppServer().start()
        url = server.url()
        await server.stop()                                   # nothing listens there any more
        return await run_cs_case(case, url)

    result, _ = run(go(), bounded(case))
    verdict_of(result, Verdict.INCONCLUSIVE)
    assert "cannot reach the DUT" in result.message


def test_cs_role_send_before_connect_is_inconclusive(tmp_path):
    case = make_case(tmp_path, "TC_T_67_CSMS", "- send: Heartbeat\n  timeout: 0.5\n", role="cs")
    result, _ = run(run_cs_case(case, "ws://127.0.0.1:9/ocpp"), bounded(case))
    verdict_of(result, Verdict.INCONCLUSIVE)
    assert "connect first" in result.message


# ---- the run is bounded --------------------------------------------------------------------------------

def test_a_hung_dut_cannot_hold_the_run_beyond_its_timeouts(tmp_path):
    """A station that connects and then says nothing while every step waits: the run still ends."""
    case = make_case(tmp_path, "TC_T_70_CS", """\
        - action: boot
        - expect: BootNotification
          timeout: 0.5
        """, timeout=2)
    station = Station([])                                   # connects, then silence

    async def go():
        return await asyncio.wait_for(run_csms_case(case, station), case.timeout + 5)

    result, _ = run(go(), bounded(case))
    verdict_of(result, Verdict.FAIL)
    assert result.message == "no BootNotification from the DUT within 0.5 s"


def test_failed_precondition_step_is_inconclusive_not_fail(tmp_path):
    case = make_case(tmp_path, "TC_T_90_CS", """\
        - action: boot
        - expect: BootNotification
          name: boots as model ${wanted}
          timeout: 3
          precondition: true
          match: {chargingStation: {model: $wanted}}
          reply: {status: Accepted, currentTime: $now, interval: 10}
        """, )
    case.vars = {"wanted": "DC-400"}
    station = Station([call("BootNotification", BOOT_201)])
    result, _ = run(run_csms_case(case, station), bounded(case))
    verdict_of(result, Verdict.INCONCLUSIVE)
    assert result.message.startswith("precondition not met: BootNotification does not match")
    assert result.failed_step == 2 and result.failed_step_name == "boots as model DC-400"
