"""The real-DUT workflow: `dut init`, the manual / command / docker adapters, resume and re-run.

Nobody sits at a terminal here: operator answers are typed into a pseudo-terminal by the
test. HTTP hooks hit a server on 127.0.0.1; the docker lifecycle runs against a fake
docker client whose "containers" are the reference simulators (no Docker engine is
needed, and the no-engine path is tested as it is on this machine). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import termios
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from _library import cli, make_library
import yaml
from typer.testing import CliRunner

from harness.cli import app
from harness.dut import docker_dut
from harness.dut.adapters import AdapterUnavailable, CommandAdapter, DockerAdapter, ManualAdapter, make_adapter
from harness.dut.docker_dut import DockerDut, use_client
from harness.dut.hooks import HookConfigError
from harness.dut.profile import ProfileError, load_profile, profile_from_dict
from harness.dut.progress import ProgressLog, last_run, read_runs
from harness.execute import close_persistent_endpoints, execute
from harness.scenario.loader import load_case
from harness.scenario.verdict import Verdict

from _aio import run

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "harness.cli"]
SECRET = "Wr1tten-Never-Sh0wn-42"
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]")


@pytest.fixture(autouse=True)
def _interactive_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CI", "CHARGER_HARNESS_FORCE_TTY", "CHARGER_HARNESS_TTY", "CHARGER_HARNESS_OPERATOR",
                "CHARGER_HARNESS_DUT_PASSWORD"):
        monkeypatch.delenv(var, raising=False)


def flat(text: str) -> str:
    """Rich wraps long lines to the (narrow) test console: compare with whitespace folded."""
    return " ".join(text.split())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- a pseudo-terminal the test types into ---------------------------------------------------

class Pty:
    """A pty pair: the code under test opens `path` (the slave); the test reads/writes the master.

    `expect` consumes what it matched and everything before it: the next `expect` looks at
    what the other side wrote after the match.
    """

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.log = b""           # everything the other side wrote
        self.pending = ""        # … not yet consumed by an expect (escape sequences removed)

    def text(self) -> str:
        return ANSI.sub(b"", self.log).decode("utf-8", "replace")

    def pump(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:          # the other side closed
            return False
        self.log += data
        self.pending += ANSI.sub(b"", data).decode("utf-8", "replace")
        return bool(data)

    def drain(self) -> None:
        """Forget whatever has been written so far (e.g. the last redraws of a finished prompt)."""
        while self.pump(0):
            pass
        self.pending = ""

    def expect(self, needle: str, timeout: float = 10.0) -> str:
        return self.expect_any([needle], timeout)

    def expect_any(self, needles: list[str], timeout: float = 10.0) -> str:
        """Whichever of `needles` appears first in the output; consumes up to its end."""
        deadline = time.monotonic() + timeout
        while True:
            hits = [(self.pending.find(n), n) for n in needles if n in self.pending]
            if hits:
                pos, n = min(hits)
                self.pending = self.pending[pos + len(n):]
                return n
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"none of {needles} appeared within {timeout} s; terminal shows:\n"
                                     f"{self.text()[-2000:]}")
            self.pump(min(left, 0.5))

    def wait_echo_off(self, timeout: float = 10.0) -> None:
        """Hidden input: type only once the program has switched echo off (as a person would see)."""
        deadline = time.monotonic() + timeout
        while termios.tcgetattr(self.slave)[3] & termios.ECHO:
            if time.monotonic() > deadline:
                raise AssertionError("the terminal's echo was never switched off for the password")
            self.pump(0.02)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def pty_term() -> Iterator[Pty]:
    p = Pty()
    yield p
    p.close()


# ---- dut init / check ------------------------------------------------------------------------

def station_flags(path: Path) -> list[str]:
    return ["dut", "init", str(path), "--no-interactive", "--kind", "charging_station", "--name", "Depot charger 7",
            "--station-id", "DEPOT-CH-07", "--ocpp", "2.0.1,1.6", "--security-profile", "1",
            "--vendor", "ExampleVendor", "--model", "DC-400", "--pics", "dc_charging", "--pics", "remote_start",
            "--pixit", "valid_id_token=0012345678", "--pixit", "evse_id=2", "--adapter", "manual",
            "--library", str(ROOT / "testcases")]


def test_dut_init_from_flags_writes_a_valid_private_profile_and_never_shows_the_password(tmp_path: Path) -> None:
    target = tmp_path / "duts" / "lab7.yaml"
    res = CliRunner().invoke(app, station_flags(target), env={"CHARGER_HARNESS_DUT_PASSWORD": SECRET})
    assert res.exit_code == 0, flat(res.output)
    assert SECRET not in flat(res.output) and "password" in flat(res.output) and "(set)" in flat(res.output)
    prof = load_profile(target)
    assert (prof.kind, prof.station_id, prof.ocpp_versions, prof.security_profile, prof.password) == \
        ("charging_station", "DEPOT-CH-07", ("2.0.1", "1.6"), 1, SECRET)
    assert prof.endpoint == "ws://0.0.0.0:9000/ocpp"                  # station default: the harness listens
    assert prof.identity == {"vendor": "ExampleVendor", "model": "DC-400"}
    # every PICS feature the station cases use is listed; only the claimed ones are true
    assert prof.pics["dc_charging"] and prof.pics["remote_start"] and prof.pics["mcs"] is False
    assert prof.pixit["valid_id_token"] == "0012345678"               # a token stays a string
    assert prof.pixit["evse_id"] == 2 and prof.pixit["connector_id"] == 1   # typed override, default kept
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not list(target.parent.glob(".dut-*"))                     # no temporary left behind

    again = CliRunner().invoke(app, station_flags(target), env={"CHARGER_HARNESS_DUT_PASSWORD": "other-secret-99"})
    assert again.exit_code == 2 and "--force" in flat(again.output)
    assert load_profile(target).password == SECRET                    # untouched
    forced = CliRunner().invoke(app, station_flags(target) + ["--force"],
                                env={"CHARGER_HARNESS_DUT_PASSWORD": "other-secret-99"})
    assert forced.exit_code == 0 and load_profile(target).password == "other-secret-99"


def test_dut_init_refuses_what_the_run_could_not_use(tmp_path: Path) -> None:
    runner = CliRunner()
    no_pw = runner.invoke(app, station_flags(tmp_path / "a.yaml"))
    assert no_pw.exit_code == 2 and "CHARGER_HARNESS_DUT_PASSWORD" in flat(no_pw.output)
    assert not (tmp_path / "a.yaml").exists()
    csms_no_url = runner.invoke(app, ["dut", "init", str(tmp_path / "b.yaml"), "--no-interactive", "--kind", "csms",
                                      "--security-profile", "0"])
    assert csms_no_url.exit_code == 2 and "Endpoint" in flat(csms_no_url.output)
    docker_no_image = runner.invoke(app, ["dut", "init", str(tmp_path / "c.yaml"), "--no-interactive", "--kind", "csms",
                                          "--endpoint", "ws://127.0.0.1:8180/ocpp", "--security-profile", "0",
                                          "--adapter", "docker"])
    assert docker_no_image.exit_code == 2 and "--image" in flat(docker_no_image.output)


def test_dut_init_command_hooks_and_check(tmp_path: Path) -> None:
    target = tmp_path / "csms.yaml"
    res = CliRunner().invoke(app, [
        "dut", "init", str(target), "--no-interactive", "--kind", "csms", "--name", "Vendor CSMS",
        "--endpoint", "ws://127.0.0.1:8180/ocpp", "--security-profile", "0", "--adapter", "command",
        "--hook", "reset=./hooks/reset.sh", "--hook", "remote_start=http://127.0.0.1:8080/start",
        "--library", str(ROOT / "testcases")])
    assert res.exit_code == 0, flat(res.output)
    prof = load_profile(target)
    assert prof.adapter_options["actions"]["reset"] == "./hooks/reset.sh"
    assert prof.adapter_options["actions"]["remote_start"]["url"] == "http://127.0.0.1:8080/start"
    assert "# Actions the test library asks for that have no hook yet" in target.read_text()
    chk = CliRunner().invoke(app, ["dut", "check", str(target), "--library", str(ROOT / "testcases")])
    assert chk.exit_code == 0 and "valid DUT profile" in flat(chk.output)
    assert "set_registration" in flat(chk.output)                          # a CSMS action without a hook
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nkind: csms\nadapter: command\ncommand: {actions: {reset: {exec: reboot}}}\n")
    bad = CliRunner().invoke(app, ["dut", "check", str(broken)])
    assert bad.exit_code == 2 and "command.actions.reset" in flat(bad.output)


def test_dut_init_interactively_on_a_terminal(tmp_path: Path, pty_term: Pty) -> None:
    target = tmp_path / "lab.yaml"
    pid = os.fork()
    if pid == 0:   # child: the pty is its terminal (stdin/stdout/stderr and /dev/tty)
        try:
            os.setsid()
            fd = os.open(pty_term.path, os.O_RDWR)
            for n in (0, 1, 2):
                os.dup2(fd, n)
            os.execve(sys.executable, [*CLI, "dut", "init", str(target), "--library", str(ROOT / "testcases")],
                      {**os.environ, "COLUMNS": "120", "TERM": "xterm"})
        finally:
            os._exit(99)
    try:
        t = pty_term
        answers = [("What is the device under test?", "charging_station"), ("Vendor", "ExampleVendor"),
                   ("Model", "DC-400"), ("Serial number", "SN-1"), ("Firmware version", "4.2.0"),
                   ("Profile name", ""), ("Station id", "DEPOT-CH-09"), ("Endpoint", ""),
                   ("OCPP versions", "2.0.1"), ("Security profile", "1"),
                   ("Basic-auth password", SECRET), ("Same password again", SECRET)]
        for prompt, answer in answers:
            t.expect(prompt)
            if "password" in prompt:
                t.wait_echo_off()
            t.send(answer + "\r")
        t.expect("PICS")
        while t.expect_any(["PIXIT", "case(s))"]) != "PIXIT":
            t.send("y\r")                  # every feature the station cases use: supported
        while t.expect_any(["Adapter for out-of-band actions", "): "]) != "Adapter for out-of-band actions":
            t.send("\r")                   # keep every PIXIT default
        t.send("\r")                       # manual (the station default)
        t.expect("next:", 20)
    finally:
        deadline = time.monotonic() + 20
        status = -1
        while time.monotonic() < deadline:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                break
            pty_term.pump(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert status == 0, pty_term.text()[-3000:]
    assert SECRET not in pty_term.text()         # hidden input: never echoed, never printed
    prof = load_profile(target)
    assert prof.password == SECRET and prof.station_id == "DEPOT-CH-09" and prof.adapter == "manual"
    assert prof.name == "ExampleVendor DC-400" and prof.identity["firmware"] == "4.2.0"
    assert all(prof.pics.values()) and {"dc_charging", "remote_start"} <= set(prof.pics)
    assert prof.pixit["valid_id_token"] == "TRUCK-0001" and prof.pixit["evse_id"] == 1


# ---- manual adapter --------------------------------------------------------------------------

MANUAL = {"name": "Lab charger", "kind": "charging_station", "adapter": "manual", "station_id": "LAB-1",
          "security_profile": 0}


def test_manual_adapter_takes_the_operators_answer_from_the_terminal(pty_term: Pty) -> None:
    adapter = ManualAdapter(profile_from_dict({**MANUAL, "manual": {"tty": pty_term.path}}), operator="alice")

    async def scenario() -> list[Any]:
        outcomes = []
        for typed in ("fail latch broken\r", "nonsense\r", "\r", "skip no truck today\r"):
            t0 = time.time()
            task = asyncio.ensure_future(adapter.perform("plug_in", {"evse_id": 1}, "Plug the truck into EVSE 1.", 30))
            await asyncio.to_thread(pty_term.expect, "OPERATOR ACTION · plug_in")
            await asyncio.to_thread(pty_term.expect, "s left")                 # the live countdown
            pty_term.send(typed)
            if typed == "nonsense\r":
                await asyncio.to_thread(pty_term.expect, "is not an answer")
                assert not task.done()
                pty_term.send("done\r")
            out = await asyncio.wait_for(task, 10)
            assert t0 <= out.answered_at <= time.time()
            pty_term.drain()
            outcomes.append(out)
        return outcomes

    fail, corrected, enter, skip = run(scenario())
    assert (fail.status, fail.detail, fail.answered_by) == ("failed", "latch broken", "alice")
    assert (corrected.status, enter.status) == ("done", "done")
    assert (skip.status, skip.detail, skip.answered_by) == ("skipped", "no truck today", "alice")
    assert "answered by alice" in pty_term.text()
    assert termios.tcgetattr(pty_term.slave)[3] & termios.ECHO      # the terminal is given back as it was


def test_manual_adapter_times_out_to_skipped(pty_term: Pty) -> None:
    adapter = ManualAdapter(profile_from_dict({**MANUAL, "manual": {"tty": pty_term.path}}), operator="bob")
    out = run(adapter.perform("operator", {}, "Is the display showing 'Available'?", 0.6))
    assert out.status == "skipped" and "no answer within 0.6 s" in out.detail
    pty_term.expect("skipped (INCONCLUSIVE)")
    assert "OPERATOR CHECK" in pty_term.text() and "Is the display showing 'Available'?" in pty_term.text()


def test_manual_prompt_cancelled_when_the_case_ends_gives_the_terminal_back(pty_term: Pty) -> None:
    adapter = ManualAdapter(profile_from_dict({**MANUAL, "manual": {"tty": pty_term.path}}), operator="carol")

    async def scenario() -> None:
        task = asyncio.ensure_future(adapter.perform("unplug", {}, "Unplug the truck.", 30))
        await asyncio.to_thread(pty_term.expect, "s left")
        assert not termios.tcgetattr(pty_term.slave)[3] & termios.ECHO     # cbreak while asking
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    pty_term.expect("cancelled: the test case ended")
    deadline = time.monotonic() + 5
    while not termios.tcgetattr(pty_term.slave)[3] & termios.ECHO:      # restored by the prompt thread
        assert time.monotonic() < deadline, "terminal left without echo"
        pty_term.pump(0.05)


def test_manual_adapter_without_an_operator_skips_at_once_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = ManualAdapter(profile_from_dict({**MANUAL, "manual": {"tty": "/nonexistent/tty"}}))
    t0 = time.monotonic()
    out = run(adapter.perform("plug_in", {}, "Plug in.", 60))
    assert out.status == "skipped" and "no operator terminal" in out.detail and time.monotonic() - t0 < 5
    monkeypatch.setenv("CI", "true")
    out = run(ManualAdapter(profile_from_dict(MANUAL)).perform("plug_in", {}, "Plug in.", 60))
    assert out.status == "skipped" and "CI=true" in out.detail and "CHARGER_HARNESS_FORCE_TTY" in out.detail


MANUAL_CASES = {
    "TC_M_01_CS": """\
        id: TC_M_01_CS
        title: operator confirms the display
        ocpp: "2.0.1"
        role: csms
        profile: Core
        timeout: 60
        steps:
          - operator: Check that the charger display shows 'Available'.
            timeout: 30
        """,
    "TC_M_02_CS": """\
        id: TC_M_02_CS
        title: operator skips plugging in
        ocpp: "2.0.1"
        role: csms
        profile: Core
        timeout: 60
        steps:
          - action: plug_in
            params: {evse_id: 1}
            say: Plug the truck into EVSE 1.
            timeout: 30
          - expect: StatusNotification
            timeout: 40
        """,
}


def test_manual_run_through_pytest_with_output_captured(tmp_path: Path, pty_term: Pty) -> None:
    lib = tmp_path / "testcases" / "ocpp201"
    lib.mkdir(parents=True)
    for cid, text in MANUAL_CASES.items():
        (lib / f"{cid}.yaml").write_text(textwrap.dedent(text))
    prof = tmp_path / "lab.yaml"
    prof.write_text(yaml.safe_dump({**MANUAL, "endpoint": f"ws://127.0.0.1:{free_port()}/ocpp"}))
    results = tmp_path / "reports" / "allure-results"
    cmd = [sys.executable, "-m", "pytest", str(tmp_path / "testcases"), "-p", "no:cacheprovider", "-p",
           "no:hypothesispytest", "-o", "addopts=", "--rootdir", str(tmp_path), "-q", "--dut", str(prof),
           "--operator", "tester", "--allure-results", str(results), "--verdicts-json", str(tmp_path / "v.json")]
    env = {**os.environ, "CHARGER_HARNESS_TTY": pty_term.path}      # stdout/stderr captured by pytest as usual
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        pty_term.expect("OPERATOR CHECK", 60)
        pty_term.expect("s left")
        pty_term.send("done display ok\r")
        pty_term.expect("OPERATOR ACTION · plug_in", 30)
        pty_term.expect("s left")
        pty_term.send("skip\r")
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        print(proc.communicate()[0].decode(errors="replace"))
    verdicts = {v["case_id"]: v for v in json.loads((tmp_path / "v.json").read_text())}
    assert verdicts["TC_M_01_CS"]["verdict"] == "PASS", out
    assert verdicts["TC_M_02_CS"]["verdict"] == "INCONCLUSIVE"
    assert "answered by tester" in verdicts["TC_M_02_CS"]["message"]
    steps = {}
    for f in results.glob("*-result.json"):
        r = json.loads(f.read_text())
        steps[r["name"].split()[0]] = r["steps"]
    first = steps["TC_M_01_CS"][0]["statusDetails"]["message"]
    assert re.search(r"done by tester at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", first) and "display ok" in first
    assert "skipped by tester at" in steps["TC_M_02_CS"][0]["statusDetails"]["message"]


# ---- command adapter -------------------------------------------------------------------------

def command_profile(tmp_path: Path, actions: dict[str, Any], **extra: Any) -> Any:
    path = tmp_path / "vendor.yaml"
    path.write_text(yaml.safe_dump({"name": "Vendor CSMS", "kind": "csms", "adapter": "command",
                                    "station_id": "HARNESS-CS-01", "endpoint": "ws://127.0.0.1:1/ocpp",
                                    "command": {"actions": actions, **extra}}))
    return load_profile(path)


def test_command_shell_hooks_get_the_params_and_report_both_streams(tmp_path: Path) -> None:
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "start.sh").write_text('echo "start $CH_PARAM_ID_TOKEN on $CH_PARAM_EVSE_ID for $CH_STATION_ID"\n'
                                                 'echo "warn: $VENDOR_ENV $CH_ACTION" >&2\n')
    prof = command_profile(tmp_path, {
        "remote_start": "sh ./hooks/start.sh",        # relative to the profile's folder
        "reset": "echo resetting; echo 'no such station' >&2; exit 3",
        "reboot": {"shell": "sleep 30", "timeout": 0.5},
        "params": 'printf %s "$CH_PARAMS"',
    }, env={"VENDOR_ENV": "staging"})
    adapter = CommandAdapter(prof)

    async def scenario() -> list[Any]:
        return [await adapter.perform("remote_start", {"id_token": "TRUCK-0001", "evse_id": 2}, "say", 10),
                await adapter.perform("reset", {}, "say", 10),
                await adapter.perform("reboot", {}, "say", 10),
                await adapter.perform("params", {"evse_id": 2, "flag": True}, "say", 10),
                await adapter.perform("unplug", {}, "say", 10)]

    t0 = time.monotonic()
    ok, bad, slow, params, missing = run(scenario())
    assert ok.status == "done" and ok.answered_by == "command"
    assert "stdout: start TRUCK-0001 on 2 for HARNESS-CS-01" in ok.detail and "stderr: warn: staging remote_start" in ok.detail
    assert ok.result["exit"] == 0
    assert bad.status == "failed" and "exited 3" in bad.detail and "no such station" in bad.detail
    assert slow.status == "failed" and "within 0.5 s (killed)" in slow.detail
    assert time.monotonic() - t0 < 8                                  # the sleep was killed, not waited for
    assert json.loads(params.result["stdout"]) == {"evse_id": 2, "flag": True}
    assert missing.status == "skipped" and "command.actions.unplug" in missing.detail


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append({"path": self.path, "body": body.decode(), "auth": self.headers.get("Authorization"),
                                "type": self.headers.get("Content-Type")})
        code = 500 if "fail" in self.path else 202
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"result": "queued"}' if code == 202 else b"vendor API exploded")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_api() -> Iterator[str]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_command_http_hooks_fill_templates_and_judge_the_status(tmp_path: Path, http_api: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENDOR_TOKEN", "tok-123")
    prof = command_profile(tmp_path, {
        "remote_start": {"url": http_api + "/stations/${station_id}/start", "method": "POST",
                         "headers": {"Authorization": "Bearer ${env.VENDOR_TOKEN}"},
                         "body": {"idTag": "${id_token}", "evse": "${evse_id}", "all": "${params}",
                                  "note": "start ${id_token} on ${evse_id}"},
                         "expect_status": [202]},
        "reset": {"url": http_api + "/fail/reset", "body": "type=${type}"},
        "trigger_message": {"url": "http://127.0.0.1:%d/x" % free_port(), "timeout": 2},
        "remote_stop": {"url": http_api + "/stop", "body": {"tx": "${transaction_id}"}},
    })
    adapter = CommandAdapter(prof)

    async def scenario() -> list[Any]:
        return [await adapter.perform("remote_start", {"id_token": "TRUCK-0001", "evse_id": 2}, "", 10),
                await adapter.perform("reset", {"type": "Hard"}, "", 10),
                await adapter.perform("trigger_message", {}, "", 10)]

    ok, bad, unreachable = run(scenario())
    assert ok.status == "done" and ok.answered_by == "http" and "HTTP 202" in ok.detail and "queued" in ok.detail
    req = _Recorder.seen[0]
    assert req["path"] == "/stations/HARNESS-CS-01/start" and req["auth"] == "Bearer tok-123"
    assert req["type"] == "application/json"
    assert json.loads(req["body"]) == {"idTag": "TRUCK-0001", "evse": 2, "all": {"id_token": "TRUCK-0001", "evse_id": 2},
                                       "note": "start TRUCK-0001 on 2"}
    assert bad.status == "failed" and "HTTP 500" in bad.detail and "exploded" in bad.detail
    assert _Recorder.seen[1]["body"] == "type=Hard"
    assert unreachable.status == "failed" and "ConnectionRefusedError" in unreachable.detail
    with pytest.raises(HookConfigError, match=r"\$\{transaction_id\}.*available: action, evse_id"):
        run(adapter.perform("remote_stop", {"evse_id": 1}, "", 10))   # a profile mistake → ERROR, not the DUT's


def test_profile_rejects_malformed_hooks(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="command.actions.reset"):
        command_profile(tmp_path, {"reset": {"method": "POST"}})
    with pytest.raises(ProfileError, match="only with the docker adapter"):
        command_profile(tmp_path, {"reset": {"exec": "reboot"}})


# ---- docker adapter: a fake docker client whose containers are the reference simulators ------

class SimThread:
    """A simulator on its own event loop, like a process inside a container."""

    def __init__(self, make: Any):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = asyncio.run_coroutine_threadsafe(self._start(make), self.loop).result(10)

    async def _start(self, make: Any) -> Any:
        sim = make()
        await sim.start()
        return sim

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


class FakeContainer:
    def __init__(self, client: "FakeDocker", kwargs: dict[str, Any]):
        self.client, self.kwargs = client, kwargs
        self.name, self.labels = kwargs["name"], kwargs["labels"]
        self.status = "running"
        self.attrs: dict[str, Any] = {"State": {"ExitCode": None}}
        self.lines = [b"2025-01-01T00:00:00Z dut: starting " + kwargs["image"].encode() + b"\n"]
        self.sim: SimThread | None = None
        self.execs: list[tuple[Any, dict[str, str]]] = []
        self.stopped = self.removed = False
        behaviour = client.behaviour
        env = kwargs["environment"]
        if behaviour == "csms":
            from harness.sim.api import CsmsSimConfig
            from harness.sim.csms import CsmsSimulator

            port = next(iter(kwargs["ports"].values()))
            self.sim = SimThread(lambda: CsmsSimulator(CsmsSimConfig(port=port, security_profile=0)))
            self.lines.append(f"dut: CSMS listening on {port}\n".encode())
        elif behaviour == "station":
            from harness.sim.api import StationSimConfig
            from harness.sim.station import StationSimulator

            cfg = StationSimConfig(station_id=env["STATION_ID"], csms_url=env["CSMS_URL"], versions=("2.0.1",),
                                   security_profile=0)
            self.sim = SimThread(lambda: StationSimulator(cfg))
            self.lines.append(f"dut: connecting to {env['CSMS_URL']}\n".encode())
        elif behaviour == "exits":
            self.status = "exited"
            self.attrs["State"]["ExitCode"] = 3
            self.lines.append(b"dut: fatal: no licence key\n")

    def reload(self) -> None:
        if self.removed:
            raise RuntimeError("404 no such container")

    def logs(self, **kw: Any) -> bytes:
        self.client.log_calls.append(kw)
        return b"".join(self.lines)

    def exec_run(self, cmd: Any, environment: dict[str, str], demux: bool) -> Any:
        self.execs.append((cmd, environment))
        return SimpleNamespace(exit_code=0, output=(b"plugged " + environment["CH_PARAM_EVSE_ID"].encode(), b""))

    def stop(self, timeout: int) -> None:
        self.stopped = True
        self.status = "exited"
        if self.sim:
            self.sim.stop()

    def remove(self, force: bool = False) -> None:
        self.removed = True
        self.client.removed.append(self.name)


class FakeDocker:
    """The parts of docker.DockerClient the adapter uses."""

    def __init__(self, behaviour: str, have_images: tuple[str, ...] = ()):
        self.behaviour = behaviour
        self.have = set(have_images)
        self.pulled: list[tuple[str, Any]] = []
        self.runs: list[FakeContainer] = []
        self.removed: list[str] = []
        self.log_calls: list[dict[str, Any]] = []
        self.leftover: FakeContainer | None = None
        outer = self

        class Images:
            def get(self, image: str) -> Any:
                if image not in outer.have:
                    raise LookupError(image)
                return image

            def pull(self, repo: str, tag: Any = None) -> None:
                outer.pulled.append((repo, tag))

        class Containers:
            def run(self, **kwargs: Any) -> FakeContainer:
                c = FakeContainer(outer, kwargs)
                outer.runs.append(c)
                return c

            def get(self, name: str) -> Any:
                if outer.leftover is not None and outer.leftover.name == name:
                    return outer.leftover
                raise LookupError(name)

        self.images, self.containers = Images(), Containers()

    def ping(self) -> bool:
        return True


@pytest.fixture
def clean_docker_registry() -> Iterator[None]:
    docker_dut.stop_all()
    yield
    docker_dut.stop_all()


def docker_profile(tmp_path: Path, kind: str, port: int, **docker: Any) -> Any:
    path = tmp_path / f"docker-{kind}.yaml"
    base = {"name": f"containerised {kind}", "kind": kind, "adapter": "docker", "security_profile": 0,
            "ocpp_versions": ["2.0.1"], "station_id": "CT-STATION-1" if kind == "charging_station" else "HARNESS-CS-01",
            "endpoint": f"ws://127.0.0.1:{port}/ocpp",
            "pixit": {"evse_id": 1, "connector_id": 1},
            "docker": {"image": "vendor/dut:1.2", "ready_timeout": 15, **docker}}
    path.write_text(yaml.safe_dump(base))
    return load_profile(path)


def test_docker_without_an_engine_is_inconclusive_with_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  clean_docker_registry: None) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    prof = docker_profile(tmp_path, "csms", free_port())
    with pytest.raises(AdapterUnavailable) as info:
        make_adapter(prof)
    msg = str(info.value)
    assert ("pip install" in msg) or ("no Docker engine reachable" in msg and "To fix" in msg and "DOCKER_HOST" in msg)
    case = load_case(ROOT / "testcases" / "ocpp201" / "TC_B_01_CSMS.yaml")
    ex = run(execute(case, prof))
    assert ex.result.verdict == Verdict.INCONCLUSIVE
    assert ex.result.message.startswith("adapter 'docker' unavailable") and ("To fix" in ex.result.message
                                                                            or "pip install" in ex.result.message)


def test_docker_csms_dut_is_started_once_waited_for_logged_and_removed(tmp_path: Path, clean_docker_registry: None) -> None:
    port = free_port()
    prof = docker_profile(tmp_path, "csms", port, ports=[f"{port}:9000"],
                          env={"OCPP_URL": "${endpoint}", "ID": "${station_id}"}, command=["--ocpp", "${ocpp_version}"])
    fake = FakeDocker("csms")
    case = load_case(ROOT / "testcases" / "ocpp201" / "TC_B_01_CSMS.yaml")

    async def scenario() -> list[Any]:
        try:
            return [await execute(case, prof), await execute(case, prof)]
        finally:
            await close_persistent_endpoints()

    with use_client(fake):
        first, second = run(scenario(), 60)
    assert first.result.verdict == Verdict.PASS, first.result.summary()
    assert second.result.verdict == Verdict.PASS, second.result.summary()
    assert len(fake.runs) == 1                               # one container for the whole run
    kw = fake.runs[0].kwargs
    assert kw["image"] == "vendor/dut:1.2" and kw["detach"] is True and kw["ports"] == {"9000/tcp": port}
    assert kw["environment"] == {"OCPP_URL": f"ws://127.0.0.1:{port}/ocpp", "ID": "HARNESS-CS-01"}
    assert kw["command"] == ["--ocpp", "2.0.1"] and kw["labels"]["charger-harness.role"] == "dut"
    assert fake.pulled == [("vendor/dut", "1.2")]            # pull: missing (the image was not there)
    assert "starting vendor/dut:1.2" in first.logs["dut.log"] and "dut.log" in second.logs
    assert fake.runs[0].stopped and fake.removed == [kw["name"]]   # after the run: stopped and removed


CONNECT_CASE = """\
id: TC_D_01_CS
title: the containerised station connects and boots
ocpp: "2.0.1"
role: csms
profile: Core
timeout: 30
steps:
  - expect: BootNotification
    timeout: 15
    reply: {status: Accepted, currentTime: $now, interval: 300}
"""


def test_docker_station_dut_counts_as_ready_when_its_websocket_reaches_the_harness(
        tmp_path: Path, clean_docker_registry: None) -> None:
    port = free_port()
    prof = docker_profile(tmp_path, "charging_station", port, network_mode="host",
                          env={"CSMS_URL": "${csms_url}", "STATION_ID": "${station_id}"},
                          actions={"plug_in": {"exec": ["evsim", "plug", "--evse", "${evse_id}"]}})
    (tmp_path / "TC_D_01_CS.yaml").write_text(CONNECT_CASE)
    case = load_case(tmp_path / "TC_D_01_CS.yaml")
    fake = FakeDocker("station", have_images=("vendor/dut:1.2",))

    async def scenario() -> Any:
        try:
            ex = await execute(case, prof)
            adapter = make_adapter(prof)
            assert isinstance(adapter, DockerAdapter)
            plug = await adapter.perform("plug_in", {"evse_id": 2}, "plug", 5)
            return ex, plug
        finally:
            await close_persistent_endpoints()

    with use_client(fake):
        ex, plug = run(scenario(), 60)
    assert ex.result.verdict == Verdict.PASS, ex.result.summary()
    kw = fake.runs[0].kwargs
    assert kw["environment"]["CSMS_URL"] == f"ws://127.0.0.1:{port}/ocpp"   # host network: the harness on loopback
    assert kw["network_mode"] == "host" and fake.pulled == []               # image present: no pull
    assert plug.status == "done" and plug.detail == "stdout: plugged 2" and plug.answered_by == "docker"
    assert fake.runs[0].execs[0][0] == ["evsim", "plug", "--evse", "2"] and fake.removed


def test_docker_container_that_dies_or_never_connects_is_inconclusive_with_its_log(
        tmp_path: Path, clean_docker_registry: None) -> None:
    case = load_case(ROOT / "testcases" / "ocpp201" / "TC_B_01_CSMS.yaml")
    prof = docker_profile(tmp_path, "csms", free_port())
    with use_client(FakeDocker("exits")):
        ex = run(execute(case, prof))
        docker_dut.stop_all()
    assert ex.result.verdict == Verdict.INCONCLUSIVE and "exit code 3" in ex.result.message
    assert "no licence key" in ex.logs["dut.log"]

    prof = docker_profile(tmp_path, "csms", free_port(), ready_timeout=0.5)
    with use_client(FakeDocker("silent")):
        t0 = time.monotonic()
        ex = run(execute(case, prof))
        docker_dut.stop_all()
    assert ex.result.verdict == Verdict.INCONCLUSIVE and "within 0.5 s" in ex.result.message
    assert time.monotonic() - t0 < 10


def test_docker_lifecycle_details(tmp_path: Path, clean_docker_registry: None) -> None:
    prof = docker_profile(tmp_path, "charging_station", 9000, harness_host="10.0.0.5",
                          env={"URL": "${csms_url}/${station_id}", "PW": "${password}"})
    fake = FakeDocker("silent")
    fake.leftover = FakeContainer(fake, {"name": "charger-harness-dut-ct-station-1", "labels": {
        "charger-harness.role": "dut"}, "image": "x", "environment": {}})
    dut = DockerDut(prof, fake)
    kw = dut.run_kwargs()
    assert kw["environment"]["URL"] == "ws://10.0.0.5:9000/ocpp/CT-STATION-1"     # bridge: the harness host
    assert kw["extra_hosts"] == {"10.0.0.5": "host-gateway"}
    dut.start()
    assert fake.removed == ["charger-harness-dut-ct-station-1"]                # a killed run's leftover goes first
    assert dut.status() == "running"
    assert "starting" in dut.logs(since=123.9) and fake.log_calls[-1]["since"] == 123
    logs = dut.stop()
    assert "starting" in logs and dut.container is None
    with pytest.raises(ProfileError, match="docker.image"):
        profile_from_dict({"name": "x", "kind": "csms", "adapter": "docker", "endpoint": "ws://h:1/o", "docker": {}})
    bad_env = profile_from_dict({"name": "x", "kind": "csms", "adapter": "docker", "endpoint": "ws://h:1/o",
                                 "docker": {"image": "i", "env": {"PW": "${nope}"}}})
    with pytest.raises(HookConfigError, match=r"docker.env.PW uses \$\{nope\}"):
        DockerDut(bad_env, fake).run_kwargs()


# ---- progress and resume ---------------------------------------------------------------------

def test_progress_log_carries_finished_cases_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    first = ProgressLog(path, "k1", secrets=["s3cr3t-pw"])
    assert not path.exists()                                  # nothing until a case finishes
    first.record({"nodeid": "a.yaml::A", "case_id": "A", "verdict": "PASS", "message": "used s3cr3t-pw"})
    first.record({"nodeid": "b.yaml::B", "case_id": "B", "verdict": "FAIL", "message": ""})
    with path.open("a") as f:
        f.write('{"type": "case", "run": "' + first.run_id + '", "nodeid": "c.yaml::C", "verd')   # killed mid-write
    assert "s3cr3t-pw" not in path.read_text()
    other = ProgressLog(path, "k2")
    other.record({"nodeid": "a.yaml::A", "case_id": "A", "verdict": "ERROR"})
    prev = last_run(path, "k1")
    assert prev is not None and prev.run_id == first.run_id and [r["case_id"] for r in prev.records] == ["A", "B"]
    resumed = ProgressLog(path, "k1", previous=prev, rerun={"B"})
    assert resumed.done() == {"a.yaml::A"}                    # B was asked for again by id
    resumed.close()                                           # nothing new ran: still the latest run, with A carried
    again = last_run(path, "k1")
    assert again.run_id == resumed.run_id and again.records[0]["carried_from"] == first.run_id
    assert len(read_runs(path)) == 3


def verdicts(tmp: Path) -> dict[str, dict[str, Any]]:
    return {v["case_id"]: v for v in json.loads((tmp / "reports" / "verdicts.json").read_text())}


CASES = ("TC_B_01_CSMS", "TC_B_02_CSMS", "TC_B_01_CS")


def test_run_stopped_by_the_operator_resumes_where_it_stopped(tmp_path: Path) -> None:
    make_library(tmp_path, *CASES)
    progress = tmp_path / "reports" / "progress.jsonl"
    proc = subprocess.Popen([*CLI, "run", "--no-html", "-j", "1"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if progress.exists() and '"type": "case"' in progress.read_text():
                break
            time.sleep(0.05)                                    # bounded poll for the first finished case
        os.killpg(proc.pid, signal.SIGINT)                      # the operator presses Ctrl-C
        first_out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    done_first = [json.loads(line)["case_id"] for line in progress.read_text().splitlines()
                  if json.loads(line)["type"] == "case"]
    assert 1 <= len(done_first) < len(CASES), first_out                  # stopped part-way
    results_before = set((tmp_path / "reports" / "allure-results").glob("*-result.json"))

    second = cli("run", "--no-html", "-j", "1", "--resume", cwd=tmp_path)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    assert f"already done: {len(done_first)}" in out
    final = verdicts(tmp_path)
    assert set(final) == set(CASES) and all(v["verdict"] == "PASS" for v in final.values()), final
    for cid in done_first:
        assert final[cid].get("carried_from"), final[cid]          # not run again
    assert results_before <= set((tmp_path / "reports" / "allure-results").glob("*-result.json"))   # kept
    summary = json.loads((tmp_path / "reports" / "certification-summary.json").read_text())
    assert len(summary["verdicts"]) == len(CASES)

    third = cli("run", "--no-html", "-j", "1", "--resume", cwd=tmp_path)       # nothing left to do
    assert "already done: 3" in third.stdout + third.stderr and set(verdicts(tmp_path)) == set(CASES)


def test_case_by_exact_id_and_rerun_within_a_resumed_run(tmp_path: Path) -> None:
    make_library(tmp_path, "TC_B_01_CS", "TC_B_01_CSMS")
    only = cli("run", "--no-html", "-j", "1", "--case", "TC_B_01_CS", cwd=tmp_path)
    assert only.returncode == 0, only.stdout + only.stderr
    assert set(verdicts(tmp_path)) == {"TC_B_01_CS"}               # not TC_B_01_CSMS (which -k would also pick)

    full = cli("run", "--no-html", "-j", "1", "--resume", cwd=tmp_path)     # the rest of that run
    assert "already done: 1" in full.stdout + full.stderr
    assert set(verdicts(tmp_path)) == {"TC_B_01_CS", "TC_B_01_CSMS"}

    rerun = cli("run", "--no-html", "-j", "1", "--resume", "--case", "TC_B_01_CSMS", cwd=tmp_path)
    out = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0 and "running again: TC_B_01_CSMS" in out, out
    final = verdicts(tmp_path)
    assert "carried_from" not in final["TC_B_01_CSMS"] and final["TC_B_01_CS"]["carried_from"]

    fresh = cli("run", "--no-html", "-j", "1", "--case", "TC_B_01_CSMS", cwd=tmp_path)   # no --resume: just that case
    assert set(verdicts(tmp_path)) == {"TC_B_01_CSMS"} and "already done" not in fresh.stdout + fresh.stderr
    unknown = cli("run", "--no-html", "-j", "1", "--case", "TC_NOPE_CS", cwd=tmp_path)
    assert "--case TC_NOPE_CS: no case with this id" in unknown.stdout + unknown.stderr
