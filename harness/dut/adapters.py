"""DUT adapters: who performs the out-of-band actions a test case asks for.

- `sim`: the built-in simulators, embedded per case (or a standalone one via `control_url`).
- `manual`: prompts an operator (rich), with a countdown; done / skip / fail.
- `command`: runs the vendor's shell hooks, one per action name.
- `docker`: starts the DUT image with the docker SDK; skips clearly where no engine runs.

Every adapter turns "could not do it" into `skipped`/`failed` outcomes, never an
exception, so the engine can call the case INCONCLUSIVE rather than blame the DUT.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from dataclasses import replace
from typing import Any

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
                      versions=(version,), security_profile=self.profile.security_profile,
                      password=self.profile.password)
        self.sim = StationSimulator(cfg, fault=self.fault)

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
    """Asks a person. Without a terminal (CI) every prompt is answered 'skip' at once."""

    name = "manual"

    def __init__(self, profile: DutProfile, operator: str | None = None):
        self.profile = profile
        self.operator = operator or os.environ.get("CHARGER_HARNESS_OPERATOR") or os.environ.get("USER", "operator")

    async def perform(self, action: str, params: dict[str, Any], say: str, timeout: float) -> ActionOutcome:
        tty = _open_tty()
        if tty is None:
            return ActionOutcome("skipped", "no operator terminal (non-interactive run)", "")
        try:
            answer = await asyncio.wait_for(asyncio.to_thread(_prompt, tty, action, say, timeout), timeout)
        except asyncio.TimeoutError:
            return ActionOutcome("skipped", f"no answer within {timeout:g} s", "")
        finally:
            tty.close()
        word, _, note = answer.strip().partition(" ")
        word = word.lower()
        if word in ("d", "done", "y", "yes", ""):
            return ActionOutcome("done", note, self.operator)
        if word in ("f", "fail"):
            return ActionOutcome("failed", note or "operator said fail", self.operator)
        return ActionOutcome("skipped", note or "operator skipped", self.operator)


def _open_tty() -> Any:
    if not sys.stdin.isatty() and not os.environ.get("CHARGER_HARNESS_FORCE_TTY"):
        try:
            return open("/dev/tty", "r+", encoding="utf-8")
        except OSError:
            return None
    try:
        return open("/dev/tty", "r+", encoding="utf-8")
    except OSError:
        return None


def _prompt(tty: Any, action: str, say: str, timeout: float) -> str:
    from rich.console import Console

    console = Console(file=tty, force_terminal=True)
    console.print(f"\n[bold yellow]OPERATOR[/] [bold]{action}[/]: {say}")
    console.print(f"  answer within {timeout:g} s: [green]done[/] (Enter) / [yellow]skip[/] / [red]fail[/] [note]")
    tty.write("> ")
    tty.flush()
    return tty.readline()


# ---- command -------------------------------------------------------------------------

class CommandAdapter(Adapter):
    """Runs `command.actions.<name>` from the profile: a shell command, params in CH_PARAM_* env vars."""

    name = "command"

    def __init__(self, profile: DutProfile):
        self.profile = profile
        self.actions: dict[str, str] = dict(profile.adapter_options.get("actions") or {})

    async def perform(self, action: str, params: dict[str, Any], say: str, timeout: float) -> ActionOutcome:
        cmd = self.actions.get(action)
        if cmd is None:
            return ActionOutcome("skipped", f"no command configured for '{action}' (profile: command.actions.{action})", "command")
        env = {**os.environ, "CH_ACTION": action, "CH_PARAMS": json.dumps(params),
               **{f"CH_PARAM_{k.upper()}": str(v) for k, v in params.items()}}
        proc = await asyncio.create_subprocess_shell(cmd, env=env, stdout=asyncio.subprocess.PIPE,
                                                     stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return ActionOutcome("failed", f"`{shlex.quote(cmd)}` did not finish within {timeout:g} s", "command")
        text = out.decode("utf-8", "replace").strip()[-500:]
        if proc.returncode != 0:
            return ActionOutcome("failed", f"`{cmd}` exited {proc.returncode}: {text}", "command")
        return ActionOutcome("done", text, "command")


# ---- docker --------------------------------------------------------------------------

class DockerAdapter(CommandAdapter):
    """Starts the DUT's container image; actions after that run as in `command`."""

    name = "docker"

    def __init__(self, profile: DutProfile):
        super().__init__(profile)
        self.container: Any = None

    def check_engine(self) -> None:
        try:
            import docker
        except ImportError:
            raise AdapterUnavailable("the docker adapter needs the 'docker' package: pip install 'charger-harness[docker]'") from None
        try:
            docker.from_env(timeout=3).ping()
        except Exception as exc:
            raise AdapterUnavailable(f"no Docker engine reachable ({type(exc).__name__}: {exc}); "
                                     "start dockerd or set DOCKER_HOST") from None


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
