"""The reference package's own SECC and EVCC as subprocesses (independent test peers).

They run with the iso15118 venv's python through reference_worker/peer_main.py, which does
what the package's `iso15118.secc.main` / `iso15118.evcc.main` do (simulated EVSE / EV
controllers, EXIficient codec) and is configured the package's way: environment variables
(NETWORK_INTERFACE, PROTOCOLS, AUTH_MODES, SECC_ENFORCE_TLS, PKI_PATH, LOG_LEVEL, ...) and,
for the EVCC, a JSON config file (supportedProtocols, energyTransferMode, useTls, ...).

Networking needs: an interface with an IPv6 link-local address (the SECC binds its TCP
server to it and joins ff02::1 there for SDP on UDP 15118; the EVCC multicasts its SDP
request out of it). Run them inside a network namespace the test made (see netns.py).

    with start_reference_secc("secc0", workdir) as secc:
        secc.wait_for(SECC_READY, timeout=30)
        ...
        secc.wait_for(SECC_SESSION_ENDED, timeout=30)

Every wait is bounded; stop() ends the peer (SIGINT, then SIGKILL of its process group,
which includes the JVM of its EXI codec).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from harness.iso15118.reference import environment
from harness.iso15118.reference.canonical import to_codec_json
from harness.iso15118.reference.xsd_model import load_schema

PEER_SCRIPT = Path(__file__).resolve().parents[1] / "reference_worker" / "peer_main.py"

# Log lines that mark a peer's phases (the package's own INFO log messages).
SECC_READY = r"UDP server started at address"
EVCC_SDP_DONE = r"SDPResponse received"
SESSION_STOPPED_EV = r"SessionStopRes received"
SECC_SESSION_ENDED = r"Session ended in (\w+) \((.*)\)"
_MESSAGE_LINE = re.compile(r"comm_session \(\d+\): (?:Sent (\w+)|(\w+) received)$")
_POLL = 0.05


class PeerError(RuntimeError):
    """A reference peer could not start, exited early, or missed a deadline (log tail inside)."""


class ReferencePeer:
    """One running SECC or EVCC of the reference package."""

    def __init__(self, role: str, process: subprocess.Popen, log_path: Path, workdir: Path) -> None:
        self.role = role
        self.process = process
        self.log_path = log_path
        self.workdir = workdir

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> ReferencePeer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- observing -------------------------------------------------------------------------
    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def running(self) -> bool:
        return self.process.poll() is None

    def messages(self) -> list[tuple[str, str]]:
        """[("sent" | "received", message name), ...] in log order."""
        found = []
        for line in self.log().splitlines():
            match = _MESSAGE_LINE.search(line.rstrip())
            if match:
                found.append(("sent", match.group(1)) if match.group(1) else ("received", match.group(2)))
        return found

    def _check(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        return pattern.search(self.log())

    def _failure(self, what: str) -> PeerError:
        return PeerError(f"reference {self.role}: {what}; log tail:\n{self.log_tail()}")

    def _poller(self, pattern: str, timeout: float) -> Callable[[], re.Match[str] | None]:
        """One look at the log per call, for wait_for/wait_for_async: the match, None to keep
        waiting, or PeerError once the peer has exited or `timeout` s have passed."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout

        def poll() -> re.Match[str] | None:
            match = self._check(compiled)
            if match:
                return match
            if not self.running():
                match = self._check(compiled)  # it may have logged and exited in between
                if match:
                    return match
                raise self._failure(f"exited with {self.process.returncode} before {pattern!r}")
            if time.monotonic() > deadline:
                raise self._failure(f"no {pattern!r} within {timeout} s")
            return None
        return poll

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Block until the log matches pattern (PeerError on timeout or if the peer exits first)."""
        poll = self._poller(pattern, timeout)
        while (match := poll()) is None:
            time.sleep(_POLL)
        return match

    async def wait_for_async(self, pattern: str, timeout: float) -> re.Match[str]:
        """wait_for for asyncio code (polls without blocking the loop)."""
        poll = self._poller(pattern, timeout)
        while (match := poll()) is None:
            await asyncio.sleep(_POLL)
        return match

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._failure(f"still running after {timeout} s") from None

    async def wait_exit_async(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                raise self._failure(f"still running after {timeout} s")
            await asyncio.sleep(_POLL)
        return self.process.returncode

    # -- stopping --------------------------------------------------------------------------
    def stop(self, grace: float = 5.0) -> int | None:
        """SIGINT (the package's own clean stop), then SIGKILL the whole process group."""
        if self.running():
            try:
                os.killpg(self.process.pid, signal.SIGINT)
                self.process.wait(grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:  # the JVM the peer's codec started lives in the same group
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        return self.process.returncode


def make_reference_pki(dest: Path, version: str = "iso-2", timeout: float = 60.0) -> Path:
    """Create the package's test PKI (its own create_certs.sh, OpenSSL) under dest; returns
    the PKI_PATH to give both peers. version: "iso-2" or "iso-20"."""
    package = environment.package_dir()
    if package is None:
        raise PeerError(environment.missing_reason(need_java=False) or "iso15118 package not found")
    if shutil.which("openssl") is None:
        raise PeerError("the package's PKI script needs openssl on PATH")
    dest = Path(dest)
    shutil.copytree(package / "shared" / "pki", dest, dirs_exist_ok=True)
    try:  # the script works relative to its folder (configs/ in, iso15118_x/ out)
        done = subprocess.run(["bash", "create_certs.sh", "-v", version], cwd=dest,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise PeerError(f"create_certs.sh -v {version} took over {timeout} s") from exc
    if done.returncode:
        raise PeerError(f"create_certs.sh -v {version} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return dest


# The namespace the package hands its codec for each schema name of the harness.
NAMESPACES = {
    "app": "urn:iso:15118:2:2010:AppProtocol",
    "din": "urn:din:70121:2012:MsgDef",
    "iso2": "urn:iso:15118:2:2013:MsgDef",
    "iso20": "urn:iso:std:iso:15118:-20:CommonMessages",
    "iso20_dc": "urn:iso:std:iso:15118:-20:DC",
    "iso20_ac": "urn:iso:std:iso:15118:-20:AC",
}


def write_warmup_file(dest: Path, messages: Iterable[tuple[str, dict]]) -> Path:
    """Write (schema, canonical message) pairs as the warm-up list a peer's codec encodes
    and decodes once before the peer starts (start_* warmup_file=): with it the package's
    unscaled timeouts hold even for the first message of each kind on a slow machine."""
    package = environment.package_dir()
    if package is None:
        raise PeerError(environment.missing_reason(need_java=False) or "iso15118 package not found")
    schemas_dir = str(package / "shared" / "schemas")
    items = [{"namespace": NAMESPACES[schema],
              "json": json.dumps(to_codec_json(load_schema(schemas_dir, schema), message))}
             for schema, message in messages]
    dest = Path(dest)
    dest.write_text(json.dumps(items), encoding="utf-8")
    return dest


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: if the harness process dies, the peer does too (no orphaned peers).
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    os.setsid()


def _peer_env(iface: str, extra: Mapping[str, str], timeout_scale: float,
              warmup_file: Path | None, log_level: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update({"NETWORK_INTERFACE": iface, "LOG_LEVEL": log_level,
                "ISO15118_REF_TIMEOUT_SCALE": str(timeout_scale)})
    if warmup_file is not None:
        env["ISO15118_REF_WARMUP"] = str(warmup_file)
    env.update(extra)
    return environment.java_env(env)


def _spawn(role: str, args: list[str], workdir: Path, env: dict[str, str]) -> ReferencePeer:
    reason = environment.missing_reason(need_java=True)
    if reason:
        raise PeerError(reason)
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / ".env").exists():
        # The package reads ./.env; only our explicit environment must configure the peer.
        raise PeerError(f"{workdir}/.env exists; give the reference {role} a clean working directory")
    log_path = workdir / f"{role}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(environment.venv_python()), "-E", "-s", "-u", str(PEER_SCRIPT), role, *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=workdir, env=env, preexec_fn=_die_with_parent,
        )
    return ReferencePeer(role, process, log_path, workdir)


def _csv(values: Iterable[str]) -> str:
    return ",".join(values)


def start_reference_secc(
    iface: str,
    workdir: Path,
    *,
    protocols: Iterable[str] | None = None,
    auth_modes: Iterable[str] = ("EIM",),
    enforce_tls: bool = False,
    pki_path: Path | None = None,
    free_charging: bool | None = None,
    timeout_scale: float = 1.0,
    warmup_file: Path | None = None,
    log_level: str = "INFO",
    env: Mapping[str, str] | None = None,
) -> ReferencePeer:
    """Start the package's SECC on iface (it waits for SDP there).

    protocols: Protocol enum names in priority order (package default: DIN_SPEC_70121,
    ISO_15118_2, ISO_15118_20_AC, ISO_15118_20_DC). auth_modes: "EIM" and/or "PNC" (the
    package offers PnC only over TLS, which needs pki_path with its certificates).
    """
    extra: dict[str, str] = {"AUTH_MODES": _csv(auth_modes), "SECC_ENFORCE_TLS": str(enforce_tls).lower()}
    if protocols is not None:
        extra["PROTOCOLS"] = _csv(protocols)
    if pki_path is not None:
        extra["PKI_PATH"] = str(pki_path).rstrip("/") + "/"
    if free_charging is not None:
        extra["FREE_CHARGING_SERVICE"] = str(free_charging).lower()
    extra.update(env or {})
    workdir = Path(workdir) / "reference-secc"
    return _spawn("secc", [], workdir, _peer_env(iface, extra, timeout_scale, warmup_file, log_level))


def start_reference_evcc(
    iface: str,
    workdir: Path,
    *,
    protocols: Iterable[str] = ("ISO_15118_2",),
    energy_services: Iterable[str] = ("DC",),
    energy_transfer_mode: str = "DC_extended",
    use_tls: bool = False,
    enforce_tls: bool = False,
    cert_install_needed: bool = False,
    charge_loop_cycles: int = 10,
    config: Mapping[str, object] | None = None,
    pki_path: Path | None = None,
    timeout_scale: float = 1.0,
    warmup_file: Path | None = None,
    log_level: str = "INFO",
    env: Mapping[str, str] | None = None,
) -> ReferencePeer:
    """Start the package's EVCC on iface: SDP, then one session, then it exits.

    The keyword arguments fill the package's EVCC config file (its JSON field names in
    `config` override them). It authorizes with EIM unless the SECC offers PnC over TLS.
    """
    workdir = Path(workdir) / "reference-evcc"
    workdir.mkdir(parents=True, exist_ok=True)
    evcc_config: dict[str, object] = {
        "supportedProtocols": list(protocols),
        "supportedEnergyServices": list(energy_services),
        "energyTransferMode": energy_transfer_mode,
        "useTls": use_tls,
        "enforceTls": enforce_tls,
        "isCertInstallNeeded": cert_install_needed,
        "chargeLoopCycle": charge_loop_cycles,
        **(config or {}),
    }
    config_path = workdir / "evcc_config.json"
    config_path.write_text(json.dumps(evcc_config, indent=1), encoding="utf-8")
    extra: dict[str, str] = {"EVCC_CONFIG_PATH": str(config_path)}
    if pki_path is not None:
        extra["PKI_PATH"] = str(pki_path).rstrip("/") + "/"
    extra.update(env or {})
    return _spawn("evcc", [str(config_path)], workdir,
                  _peer_env(iface, extra, timeout_scale, warmup_file, log_level))
