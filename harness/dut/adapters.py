"""DUT adapters: who performs the out-of-band actions a test case asks for.

- `sim`: the built-in simulators, embedded per case (or a standalone one via `control_url`).
- `manual`: prompts an operator (rich), with a live countdown; done / skip / fail (+ note).
- `command`: runs the vendor's hooks, one per action name: shell commands or HTTP requests.
- `docker`: starts the DUT image with the docker SDK for the run, waits until it connects,
  hands its logs to the report; skips with how-to-fix where no engine is reachable.

Every adapter turns "could not do it" into `skipped`/`failed` outcomes, never an
exception, so the engine can call the case INCONCLUSIVE rather than blame the DUT.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import threading
import time
from dataclasses import replace
from typing import Any, Callable

from . import hooks
from .base import ActionOutcome, Adapter
from .profile import DutProfile


class AdapterUnavailable(Exception):
    """The adapter cannot work on this machine (reason in the message): the case is skipped."""


# ---- sim -----------------------------------------------------------------------------

class SimAdapter(Adapter):
    """Drives a reference simulator. One fresh simulator per case keeps cases independent."""

    name = "sim"

    def __init__(self, profile: DutProfile, fault: str | None = None):
        self.profile = profile
        self.fault = fault if fault is not None else profile.adapter_options.get("fault")
        self.control_url: str | None = profile.adapter_options.get("control_url")
        self.sim: Any = None

    async def start_station(self, csms_url: str, version: str) -> None:
        """Create (not start) the station simulator aimed at the harness's CSMS URL."""
        if self.control_url:
            return
        from ..sim.api import StationSimConfig
        from ..sim.station import StationSimulator

        opts = {k: v for k, v in self.profile.adapter_options.items() if k in StationSimConfig.__dataclass_fields__}
        cfg = replace(StationSimConfig(**opts), station_id=self.profile.station_id, csms_url=csms_url,
                      versions=self._offer(version), security_profile=self.profile.security_profile,
                      password=self.profile.password)
        self.sim = StationSimulator(cfg, fault=self.fault)

    def _offer(self, version: str) -> tuple[str, ...]:
        """Like a real dual-stack charger, the simulated station offers every edition its profile
        declares (the harness's server picks the case's); the case's edition is always among them."""
        versions = tuple(self.profile.ocpp_versions)
        return versions if version in versions else (version, *versions)

    async def start_ev(self) -> None:
        """Create the EV simulator (ISO 15118 EVCC); a `plug_in` action connects it to the harness's SECC."""
        from ..sim.ev_sim import EvSimConfig, EvSimulator

        opts = {k: v for k, v in self.profile.adapter_options.items() if k in EvSimConfig.__dataclass_fields__}
        self.sim = EvSimulator(EvSimConfig(**opts), fault=self.fault)

    async def start_csms(self, version: str) -> str:
        """Start the CSMS simulator; returns the base URL the harness connects to."""
        if self.control_url:
            return self.profile.endpoint
        from ..sim.api import CsmsSimConfig
        from ..sim.csms import CsmsSimulator

        opts = {k: v for k, v in self.profile.adapter_options.items() if k in CsmsSimConfig.__dataclass_fields__}
        pw = {self.profile.station_id: self.profile.password} if self.profile.password else {}
        cfg = replace(CsmsSimConfig(**opts), versions=tuple(self.profile.ocpp_versions),
                      security_profile=self.profile.security_profile, passwords=pw)
        self.sim = CsmsSimulator(cfg, fault=self.fault)
        await self.sim.start()
        return str(self.sim.url)

    async def perform(self, action: str, params: dict[str, Any], say: str, timeout: float) -> ActionOutcome:
        from ..sim.api import UnknownSimAction

        if action == "operator":
            return ActionOutcome("done", "simulator: no physical check needed", "sim")
        if self.profile.kind == "csms":
            params = {"station_id": self.profile.station_id, **params}
        try:
            if self.control_url:
                from ..sim.control import remote_perform

                result = await asyncio.to_thread(remote_perform, self.control_url, action, params, timeout)
            else:
                result = await asyncio.wait_for(self.sim.perform(action, params), timeout)
        except UnknownSimAction as exc:
            return ActionOutcome("failed", f"the simulator cannot '{action}': {exc}", "sim")
        except asyncio.TimeoutError:
            return ActionOutcome("failed", f"the simulator did not complete '{action}' within {timeout:g} s", "sim")
        except (ValueError, RuntimeError, OSError) as exc:   # e.g. station not connected to the CSMS sim
            return ActionOutcome("failed", f"the simulator could not '{action}': {type(exc).__name__}: {exc}", "sim")
        return ActionOutcome("done", "", "sim", result)

    async def stop(self) -> None:
        if self.sim is not None:
            try:
                await asyncio.wait_for(self.sim.stop(), 10)
            except asyncio.TimeoutError:
                pass
            self.sim = None


# ---- manual --------------------------------------------------------------------------

class ManualAdapter(Adapter):
    """Asks a person on their terminal, with the step's instructions and a live countdown.

    done / skip / fail (+ note) become the outcome, with who answered and when. No
    answer in time → skipped (INCONCLUSIVE). No terminal, or CI → skipped at once, with
    the reason. The terminal is `/dev/tty` unless `manual.tty` or CHARGER_HARNESS_TTY
    names another (e.g. a second terminal next to the charger).
    """

    name = "manual"

    def __init__(self, profile: DutProfile, operator: str | None = None):
        self.profile = profile
        self.operator = (operator or os.environ.get("CHARGER_HARNESS_OPERATOR") or _login_name())
        self.tty_path = str(os.environ.get("CHARGER_HARNESS_TTY") or profile.adapter_options.get("tty") or "/dev/tty")

    async def perform(self, action: str, params: dict[str, Any], say: str, timeout: float) -> ActionOutcome:
        from . import operator as op

        why = op.non_interactive_reason()
        if why:
            return ActionOutcome("skipped", why, "")
        try:
            fd = op.open_terminal(self.tty_path)
        except op.NoTerminal as exc:
            return ActionOutcome("skipped", str(exc), "")
        cancel = threading.Event()
        try:
            answer = await asyncio.to_thread(op.ask, fd, action=action, say=say, params=params, timeout=timeout,
                                             operator=self.operator, cancel=cancel)
        except asyncio.CancelledError:
            cancel.set()             # the case ended: the prompt thread notices within a tick, closes fd
            raise
        if answer is None:
            return ActionOutcome("skipped", f"no answer within {timeout:g} s", "")
        detail = answer.note or {"done": "", "skipped": "operator skipped", "failed": "operator said fail"}[answer.status]
        return ActionOutcome(answer.status, detail, self.operator, answered_at=answer.at)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "operator"


# ---- command -------------------------------------------------------------------------

class CommandAdapter(Adapter):
    """Runs the vendor's hooks (`command.actions.<name>`): shell commands or HTTP requests.

    See `harness.dut.hooks` for the forms and the CH_* environment of shell hooks.
    """

    name = "command"

    def __init__(self, profile: DutProfile):
        self.profile = profile
        opts = profile.adapter_options
        self.actions: dict[str, Any] = dict(opts.get("actions") or {})
        self.env: dict[str, str] = {str(k): str(v) for k, v in (opts.get("env") or {}).items()}
        self.cwd = hooks.hook_cwd(profile, opts)

    async def perform(self, action: str, params: dict[str, Any], say: str, timeout: float) -> ActionOutcome:
        hook = self.actions.get(action)
        if hook is None:
            have = ", ".join(sorted(self.actions)) or "none"
            return ActionOutcome("skipped", f"no hook configured for '{action}' (profile: {self.profile.adapter}"
                                            f".actions.{action}; configured: {have})", self.name)
        where = f"{self.profile.adapter}.actions.{action}"
        kind = hooks.hook_kind(action, hook, section=self.profile.adapter)    # HookConfigError → ERROR
        if isinstance(hook, dict) and hook.get("timeout"):
            timeout = min(timeout, float(hook["timeout"]))
        if kind == "http":
            return await hooks.run_http(hook, hooks.hook_vars(self.profile, action, params), timeout, where=where)
        env = hooks.hook_env(self.profile, action, params, say, timeout, self.env)
        if kind == "exec":   # no shell in the container: ${name} placeholders as in HTTP hooks
            cmd = hooks.render(hook["exec"], hooks.hook_vars(self.profile, action, params), where=f"{where}.exec")
            cmd = [v if isinstance(v, str) else json.dumps(v) for v in cmd] if isinstance(cmd, list) else str(cmd)
            return await self._exec(cmd, env, timeout)
        cmd = hook if isinstance(hook, str) else str(hook.get("shell") or hook.get("run"))
        return await hooks.run_shell(cmd, env, self.cwd, timeout, self.name)

    async def _exec(self, cmd: Any, env: dict[str, str], timeout: float) -> ActionOutcome:
        raise hooks.HookConfigError("'exec' hooks need the docker adapter")


# ---- docker --------------------------------------------------------------------------

class DockerAdapter(CommandAdapter):
    """The DUT runs in a container started with the docker SDK (one per run, see docker_dut).

    Before each case the harness calls `ensure_running` with a readiness probe (station
    DUT: its websocket reached the harness; CSMS DUT: its port accepts TCP); after each
    case `case_logs` returns what the container printed meanwhile, for the report.
    Actions run as in `command`, plus `{exec: …}` hooks inside the container.
    """

    name = "docker"
    POLL_S = 0.2

    def __init__(self, profile: DutProfile):
        super().__init__(profile)
        self.dut: Any = None
        self.case_started = time.time()

    def check_engine(self) -> None:
        from .docker_dut import EngineUnavailable, dut_for

        try:
            self.dut = dut_for(self.profile)
        except EngineUnavailable as exc:
            raise AdapterUnavailable(str(exc)) from None

    async def ensure_running(self, probe: Callable[[], Any], timeout: float | None = None) -> str:
        """Start the container if needed and wait until `probe()` is true; DutNotReady otherwise."""
        from .docker_dut import DutNotReady

        dut = self.dut
        self.case_started = time.time()
        timeout = float(timeout if timeout is not None else self.profile.adapter_options.get("ready_timeout", 60))
        status = await asyncio.to_thread(dut.status)
        if status in ("absent", "gone"):
            try:
                await asyncio.to_thread(dut.start)
            except (DutNotReady, hooks.HookConfigError):
                raise                # a profile mistake is an ERROR (execute), not the DUT's doing
            except Exception as exc:
                raise DutNotReady(f"could not start the DUT container ({type(exc).__name__}: {str(exc)[:300]})") from None
            self.case_started = dut.started_at or self.case_started
            note = f"started container {dut.run_kwargs()['name']} from {dut.run_kwargs()['image']}"
        elif status not in ("running", "created", "restarting"):
            logs = await asyncio.to_thread(dut.logs)
            raise DutNotReady(f"the DUT container is {status} (exit code {dut.exit_code()}); see dut.log", logs)
        else:
            note = "container already running"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ok = probe()
            if asyncio.iscoroutine(ok):
                ok = await ok
            if ok:
                dut.ready = True
                return note
            status = await asyncio.to_thread(dut.status)
            if status in ("exited", "dead", "gone", "absent"):
                logs = await asyncio.to_thread(dut.logs)
                raise DutNotReady(f"the DUT container stopped ({status}, exit code {dut.exit_code()}) before it "
                                  "was ready; see dut.log", logs)
            if loop.time() >= deadline:
                logs = await asyncio.to_thread(dut.logs)
                what = ("connect to the harness at " + dut.harness_url() if self.profile.kind == "charging_station"
                        else "accept connections at " + self.profile.endpoint)
                raise DutNotReady(f"the DUT container did not {what} within {timeout:g} s (docker.ready_timeout); "
                                  "see dut.log", logs)
            await asyncio.sleep(self.POLL_S)

    async def case_logs(self) -> str:
        """What the container printed since this case began (for the report's dut.log)."""
        if self.dut is None or self.dut.container is None:
            return ""
        return await asyncio.to_thread(self.dut.logs, self.case_started)

    async def _exec(self, cmd: Any, env: dict[str, str], timeout: float) -> ActionOutcome:
        if self.dut is None or self.dut.container is None:
            return ActionOutcome("failed", "the DUT container is not running", "docker")
        try:
            code, out, err = await asyncio.wait_for(asyncio.to_thread(self.dut.exec, cmd, env), timeout)
        except asyncio.TimeoutError:
            return ActionOutcome("failed", f"`{cmd}` in the container did not finish within {timeout:g} s", "docker")
        except Exception as exc:
            return ActionOutcome("failed", f"`{cmd}` in the container: {type(exc).__name__}: {exc}", "docker")
        streams = hooks.streams_detail(out, err)
        result = {"exit": code, "stdout": hooks.tail(out), "stderr": hooks.tail(err)}
        if code not in (0, None):
            return ActionOutcome("failed", f"`{cmd}` in the container exited {code}" + (f"; {streams}" if streams else ""),
                                 "docker", result)
        return ActionOutcome("done", streams, "docker", result)


def make_adapter(profile: DutProfile, *, fault: str | None = None, operator: str | None = None) -> Adapter:
    if profile.adapter == "sim":
        return SimAdapter(profile, fault)
    if profile.adapter == "manual":
        return ManualAdapter(profile, operator)
    if profile.adapter == "command":
        return CommandAdapter(profile)
    adapter = DockerAdapter(profile)
    adapter.check_engine()
    return adapter
