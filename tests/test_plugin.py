"""The pytest plugin end to end, in a pytest subprocess: YAML cases in, verdicts out.

No simulator is needed: cases where the harness plays the charging station run against a
scripted fake CSMS that this module serves from a background thread on 127.0.0.1; cases
where the harness plays the CSMS get a DUT that never connects (INCONCLUSIVE).
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.ocpp.connection import Closed, IncomingCall, OcppConnection
from harness.roles.defaults import default_reply
from harness.transport.server import OcppServer

pytest_plugins = ["pytester"]

RUN_TIMEOUT = 60          # bound on each pytest subprocess
# The subprocess needs none of hypothesis' reporting; its terminal summary alone costs >1 s per run.
QUIET = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]


def plugin_args() -> list[str]:
    """`-p harness.pytest_plugin` only where the entry point is not registered (uninstalled checkout)."""
    registered = any(ep.value == "harness.pytest_plugin" for ep in entry_points(group="pytest11"))
    return [] if registered else ["-p", "harness.pytest_plugin"]


# ---- a scripted fake CSMS in a background thread -------------------------------------------------------

class BackgroundCsms:
    """Answers every CALL with the harness's own default CSMS replies; nothing else."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-csms", daemon=True)
        self.server: OcppServer | None = None
        self.seen: list[str] = []                  # station ids that connected
        self.url = ""
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self) -> "BackgroundCsms":
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> str:
        self.server = await OcppServer(versions=("1.6", "2.0.1")).start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._accept()))
        return self.server.url()

    async def _accept(self) -> None:
        assert self.server is not None
        while True:
            acc = await self.server.accepted.get()
            self.seen.append(acc.station_id)
            self._tasks.append(asyncio.get_running_loop().create_task(self._serve(acc.connection)))

    async def _serve(self, conn: OcppConnection) -> None:
        while True:
            ev = await conn.next_event()
            if isinstance(ev, Closed):
                return
            if isinstance(ev, IncomingCall):
                payload = default_reply("csms", conn.version, ev.call.action, ev.call.payload, {})
                if payload is None or ev.unknown_action:
                    await conn.reply_error(ev.call, "NotImplemented")
                else:
                    await conn.reply(ev.call, payload)

    async def _stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.stop()

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture(scope="module")
def fake_csms() -> Iterator[BackgroundCsms]:
    csms = BackgroundCsms().start()
    try:
        yield csms
    finally:
        csms.stop()


# ---- the library under test ------------------------------------------------------------------------

CASES = {
    # harness = CSMS; the station DUT never connects → INCONCLUSIVE
    "testcases/ocpp201/TC_P_01_CS.yaml": """\
        id: TC_P_01_CS
        title: Station never shows up
        ocpp: "2.0.1"
        role: csms
        profile: Core
        block: B
        timeout: 5
        steps:
          - expect: BootNotification
            timeout: 0.5
        """,
    # needs a PICS feature the station profile does not declare → NOT APPLICABLE
    "testcases/ocpp201/TC_P_02_CS.yaml": """\
        id: TC_P_02_CS
        title: Megawatt charging only
        ocpp: "2.0.1"
        role: csms
        profile: MCS
        pics: [mcs]
        steps:
          - expect: BootNotification
        """,
    # unloadable → ERROR with file:line:column; the run goes on
    "testcases/ocpp201/TC_P_03_CS.yaml": """\
        id: TC_P_03_CS
        title: Broken case
        ocpp: "2.0.1"
        role: csms
        profile: Core
        steps:
          - expect: Heartbeat
            tiemout: 3
        """,
    # harness = station against the fake CSMS → PASS
    "testcases/ocpp16/TC_P_04_CSMS.yaml": """\
        id: TC_P_04_CSMS
        title: Boot and heartbeat against the back end
        ocpp: "1.6"
        role: cs
        profile: Core
        timeout: 10
        steps:
          - connect: {}
          - send: BootNotification
            timeout: 3
            payload: {chargePointVendor: Harness, chargePointModel: Probe}
            expect_result: {status: Accepted, interval: {$gte: 1}}
          - send: Heartbeat
            timeout: 3
            expect_result: {currentTime: {$type: string}}
          - disconnect: {}
        """,
    # harness = station; the back end's answer does not match → FAIL
    "testcases/ocpp16/TC_P_05_CSMS.yaml": """\
        id: TC_P_05_CSMS
        title: Back end must reject (it does not)
        ocpp: "1.6"
        role: cs
        profile: Core
        timeout: 10
        steps:
          - connect: {}
          - send: Authorize
            timeout: 3
            requirement: C01.FR.02
            payload: {idTag: UNKNOWN-9999}
            expect_result: {idTagInfo: {status: Invalid}}
        """,
    "testcases/_common/unused.yaml": "steps:\n  - wait: 0\n",
}

EXPECTED = {
    "TC_P_01_CS": "INCONCLUSIVE",
    "TC_P_02_CS": "NOT APPLICABLE",
    "TC_P_03_CS": "ERROR",
    "TC_P_04_CSMS": "PASS",
    "TC_P_05_CSMS": "FAIL",
}
ALLURE_STATUS = {"PASS": "passed", "FAIL": "failed", "INCONCLUSIVE": "unknown", "NOT APPLICABLE": "skipped",
                 "ERROR": "broken"}


@pytest.fixture
def library(pytester: pytest.Pytester, fake_csms: BackgroundCsms) -> pytest.Pytester:
    for rel, text in CASES.items():
        path = pytester.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    duts = pytester.path / "duts"
    duts.mkdir()
    (duts / "station.yaml").write_text(textwrap.dedent("""\
        name: Scripted nobody
        kind: charging_station
        adapter: command
        ocpp_versions: ["2.0.1"]
        security_profile: 0
        station_id: CS-NEVER
        pics: {mcs: false}
        """))
    (duts / "csms.yaml").write_text(textwrap.dedent(f"""\
        name: Fake back end
        kind: csms
        adapter: command
        ocpp_versions: ["1.6"]
        security_profile: 0
        station_id: HARNESS-CS-01
        endpoint: {fake_csms.url}
        """))
    return pytester


def harness_run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "testcases", *plugin_args(), *QUIET, "--dut", "duts/station.yaml", "--dut", "duts/csms.yaml",
        *args, timeout=RUN_TIMEOUT)


def read_verdicts(path: Path) -> dict[str, dict[str, Any]]:
    return {v["case_id"]: v for v in json.loads(path.read_text())}


# ---- tests -----------------------------------------------------------------------------------------

def test_entry_point_is_registered():
    assert any(ep.name == "charger_harness" and ep.value == "harness.pytest_plugin"
               for ep in entry_points(group="pytest11"))


def test_every_verdict_json_and_allure_results(library: pytest.Pytester, fake_csms: BackgroundCsms):
    result = harness_run(library, "--verdicts-json", "out/verdicts.json", "--allure-results", "out/allure", "-rA")
    out = result.stdout.str()
    assert result.ret == 1, out                           # a FAIL and an ERROR: the run fails
    # the run completed: every case has a verdict, the broken one did not stop the others
    verdicts = read_verdicts(library.path / "out" / "verdicts.json")
    assert {k: v["verdict"] for k, v in verdicts.items()} == EXPECTED, out
    assert verdicts["TC_P_04_CSMS"]["dut"] == "Fake back end" and verdicts["TC_P_01_CS"]["dut"] == "Scripted nobody"
    assert verdicts["TC_P_04_CSMS"]["ocpp"] == "1.6" and verdicts["TC_P_04_CSMS"]["role"] == "cs"
    assert "never connected" in verdicts["TC_P_01_CS"]["message"]
    assert "mcs" in verdicts["TC_P_02_CS"]["message"]
    assert 'idTagInfo.status: expected "Invalid", found "Accepted"' in verdicts["TC_P_05_CSMS"]["message"]
    broken = library.path / "testcases" / "ocpp201" / "TC_P_03_CS.yaml"
    assert verdicts["TC_P_03_CS"]["message"].startswith(f"{broken}:8:5: ")
    assert all(v["duration"] >= 0 for v in verdicts.values())
    # what the tester reads in the terminal
    assert f"{broken}:8:5: steps/0: Additional properties are not allowed ('tiemout' was unexpected)" in out
    assert "hint: did you mean 'timeout'?" in out
    assert "charger-harness verdicts" in out
    assert "requirement: C01.FR.02" in out and "last frames:" in out
    assert "HARNESS-CS-01" in fake_csms.seen
    # Allure: one result per case, status by verdict
    results = [json.loads(p.read_text()) for p in (library.path / "out" / "allure").glob("*-result.json")]
    status = {r["name"].split()[0]: r["status"] for r in results}
    assert status == {cid: ALLURE_STATUS[v] for cid, v in EXPECTED.items()}, status


def test_marker_and_keyword_selection(library: pytest.Pytester):
    by_marker = harness_run(library, "-m", "ocpp16", "--verdicts-json", "m.json")
    assert set(read_verdicts(library.path / "m.json")) == {"TC_P_04_CSMS", "TC_P_05_CSMS"}, by_marker.stdout.str()
    by_role = harness_run(library, "-m", "role_csms and profile_core", "--verdicts-json", "r.json")
    assert set(read_verdicts(library.path / "r.json")) == {"TC_P_01_CS"}, by_role.stdout.str()
    by_keyword = harness_run(library, "-k", "TC_P_04_CSMS", "--verdicts-json", "k.json")
    assert by_keyword.ret == 0, by_keyword.stdout.str()
    assert read_verdicts(library.path / "k.json")["TC_P_04_CSMS"]["verdict"] == "PASS"
    assert len(read_verdicts(library.path / "k.json")) == 1


def test_collect_only_lists_cases_by_id(library: pytest.Pytester):
    result = harness_run(library, "--collect-only", "-q")
    out = result.stdout.str()
    for case_id in EXPECTED:
        assert f"::{case_id}" in out, out
    assert "unused" not in out                      # fragments are not cases


def test_cases_without_a_matching_dut_are_deselected(library: pytest.Pytester):
    result = library.runpytest_subprocess("testcases", *plugin_args(), *QUIET,
                                          "--dut", "duts/csms.yaml", "--verdicts-json", "d.json",
                                          timeout=RUN_TIMEOUT)
    verdicts = read_verdicts(library.path / "d.json")
    assert set(verdicts) == {"TC_P_03_CS", "TC_P_04_CSMS", "TC_P_05_CSMS"}, result.stdout.str()
    assert "2 case(s) deselected: no DUT profile of the kind they test" in result.stdout.str()


def test_xdist_gives_the_same_verdicts(library: pytest.Pytester):
    result = harness_run(library, "-n", "2", "--verdicts-json", "x.json")
    verdicts = read_verdicts(library.path / "x.json")
    assert {k: v["verdict"] for k, v in verdicts.items()} == EXPECTED, result.stdout.str()
    assert result.ret == 1


def test_bad_dut_profile_is_a_usage_error(library: pytest.Pytester):
    (library.path / "duts" / "bad.yaml").write_text("name: x\nkind: toaster\n")
    result = library.runpytest_subprocess("testcases", *plugin_args(), *QUIET,
                                          "--dut", "duts/bad.yaml", timeout=RUN_TIMEOUT)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "kind must be one of charging_station, csms, ev (got 'toaster')" in result.stderr.str()
