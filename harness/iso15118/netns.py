"""EV and charger on the two ends of a veth pair, in rootless network namespaces.

The test process cannot configure networking itself, but `unshare -rn` gives it a user
namespace (where it is root) with a fresh network namespace. Inside that, this module's
runner (`python -m harness.iso15118.netns pair <spec.json>`):

  * creates a veth pair ev0 ↔ secc0 with fixed MACs and IPv6 link-local addresses
    (no DAD, no automatic addresses, so they are usable at once and predictable);
  * moves secc0 into a second network namespace (held by an `unshare -n sleep` process),
    so EV and SECC really are two hosts and every packet crosses the veth pair;
  * optionally runs `dumpcap` on ev0 (see capture.py);
  * starts the SECC side in the second namespace (via nsenter) and the EV side in the
    first; the EV's entry point runs once the SECC's has called `side.ready()`;
  * collects each side's JSON result.

Entry points are `"package.module:function"` or `"/path/to/file.py:function"`, an async
function taking a `Side` and returning something JSON-serialisable. Everything is bounded:
each side by the spec's timeout, the whole runner by `run_pair`'s timeout (the process
group is killed on overrun), and every child dies with the runner (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

EV_IFACE, SECC_IFACE = "ev0", "secc0"
EV_ADDRESS, SECC_ADDRESS = "fe80::e:1", "fe80::5ecc:1"
EV_MAC, SECC_MAC = "02:00:00:00:0e:01", "02:00:00:00:5e:cc"
_READY_POLL = 0.02


class NetnsError(RuntimeError):
    """The namespace pair could not be set up, or a side failed (its traceback is in the message)."""


class NetnsTimeout(NetnsError, TimeoutError):
    """The runner or a side overran its time bound and was killed."""


@lru_cache(maxsize=1)
def netns_available() -> str | None:
    """None if rootless namespaces with veth pairs work here, else the reason they do not."""
    for tool in ("unshare", "nsenter", "ip"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    probe = "ip link set lo up && ip link add t0 type veth peer name t1 && unshare -n true"
    try:
        done = subprocess.run(["unshare", "-rn", "--", "sh", "-c", probe],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -rn failed: {exc}"
    if done.returncode:
        return f"rootless network namespaces are not allowed here: {(done.stderr or done.stdout).strip()}"
    return None


@dataclass
class SideSpec:
    entry: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    # Another interpreter for this side (e.g. one with an independent ISO 15118 stack in its
    # own venv); it gets this source tree on PYTHONPATH for the side runner.
    python: str | None = None


@dataclass
class Side:
    """What an entry point gets: where it is on the link and what it was asked to do."""
    role: str                      # "ev" or "secc"
    iface: str
    address: str
    mac: str
    peer_address: str
    peer_mac: str
    workdir: Path
    kwargs: dict[str, Any]

    def ready(self) -> None:
        """Tell the runner this side is listening (the SECC: start the EV now)."""
        (self.workdir / f"{self.role}.ready").touch()

    def scoped(self, address: str | None = None) -> str:
        return f"{address or self.peer_address}%{self.iface}"


@dataclass
class PairResult:
    ev: Any
    secc: Any
    workdir: Path
    pcap: Path | None
    log: str


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)          # PR_SET_PDEATHSIG: no orphans if the runner dies


def run_pair(ev: SideSpec, secc: SideSpec, workdir: Path, *, timeout: float = 20.0,
             capture: bool = False) -> PairResult:
    """Run both sides on a fresh veth pair; returns their results (NetnsError if one failed)."""
    reason = netns_available()
    if reason:
        raise NetnsError(reason)
    if capture and not shutil.which("dumpcap"):
        raise NetnsError("capture=True needs dumpcap (Wireshark), which is not installed")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {"ev": asdict(ev), "secc": asdict(secc), "workdir": str(workdir),
            "side_timeout": timeout * 0.8, "capture": capture}
    (workdir / "spec.json").write_text(json.dumps(spec))
    log_path = workdir / "runner.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["unshare", "-rn", "--", sys.executable, "-m", "harness.iso15118.netns", "pair",
             str(workdir / "spec.json")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
            raise NetnsTimeout(f"namespace runner overran {timeout} s; log:\n{log_path.read_text()[-4000:]}")
    text = log_path.read_text(errors="replace")
    results = {role: _result(workdir, role, text) for role in ("ev", "secc")}
    if process.returncode:
        raise NetnsError(f"namespace runner exited with {process.returncode}:\n{text[-4000:]}")
    pcap = workdir / "capture.pcap"
    return PairResult(results["ev"], results["secc"], workdir, pcap if capture and pcap.exists() else None, text)


def _result(workdir: Path, role: str, log: str) -> Any:
    path = workdir / f"{role}.result.json"
    if not path.exists() and (workdir / f"{role}.killed").exists():
        raise NetnsTimeout(f"the {role} side overran its time bound and was killed; runner log:\n{log[-4000:]}")
    if not path.exists():
        raise NetnsError(f"the {role} side left no result; runner log:\n{log[-4000:]}")
    outcome = json.loads(path.read_text())
    if not outcome["ok"]:
        raise NetnsError(f"the {role} side failed:\n{outcome['error']}")
    return outcome["value"]


# --------------------------------------------------------------------------- inside the namespace

def _ip(*args: str, netns_pid: int | None = None) -> None:
    command = ["ip", *args]
    if netns_pid is not None:
        command = ["nsenter", f"--net=/proc/{netns_pid}/ns/net", "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    if done.returncode:
        raise NetnsError(f"{' '.join(command)}: {done.stderr.strip()}")


def _configure(iface: str, mac: str, address: str, netns_pid: int | None = None) -> None:
    _ip("link", "set", iface, "address", mac, netns_pid=netns_pid)
    _ip("link", "set", iface, "addrgenmode", "none", netns_pid=netns_pid)
    _ip("-6", "addr", "add", f"{address}/64", "dev", iface, "nodad", netns_pid=netns_pid)
    _ip("link", "set", "lo", "up", netns_pid=netns_pid)
    _ip("link", "set", iface, "up", netns_pid=netns_pid)


def _wait_until(condition, bound: float, what: str) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise NetnsTimeout(f"{what} did not happen within {bound} s")
        time.sleep(_READY_POLL)


SOURCE_ROOT = Path(__file__).resolve().parents[2]     # where the `harness` package lives


def _spawn(command: list[str], log) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=_die_with_parent)


def _stop(process: subprocess.Popen | None, sig: int = signal.SIGKILL, grace: float = 3.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(grace)


def _pair(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    workdir = Path(spec["workdir"])
    side_timeout = float(spec["side_timeout"])
    own_ns = os.readlink("/proc/self/ns/net")
    holder = dumpcap = secc = ev = None
    try:
        holder = _spawn(["unshare", "-n", "--", "sleep", str(int(side_timeout * 3) + 10)], None)
        _wait_until(lambda: os.readlink(f"/proc/{holder.pid}/ns/net") != own_ns, 5.0,
                    "the SECC namespace")
        _ip("link", "add", EV_IFACE, "type", "veth", "peer", "name", SECC_IFACE)
        _ip("link", "set", SECC_IFACE, "netns", str(holder.pid))
        _configure(EV_IFACE, EV_MAC, EV_ADDRESS)
        _configure(SECC_IFACE, SECC_MAC, SECC_ADDRESS, netns_pid=holder.pid)
        if spec["capture"]:
            from . import capture as capture_module       # scapy is slow to import: only when asked
            dumpcap = capture_module.start_dumpcap(EV_IFACE, workdir / "capture.pcap", workdir / "dumpcap.log")
        def side_command(role: str) -> list[str]:
            python = spec[role].get("python") or sys.executable
            return [python, "-m", "harness.iso15118.netns", "side", role, spec_path]

        with open(workdir / "secc.log", "wb") as secc_log, open(workdir / "ev.log", "wb") as ev_log:
            # Both start at once (Python start-up overlaps); the EV side itself waits for
            # the SECC's ready() before its entry point runs.
            secc = _spawn(["nsenter", f"--net=/proc/{holder.pid}/ns/net", "--", *side_command("secc")], secc_log)
            ev = _spawn(side_command("ev"), ev_log)
            deadline = time.monotonic() + side_timeout + 2.0
            for process in (ev, secc):
                try:
                    process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        return 0
    finally:
        for role, process in (("ev", ev), ("secc", secc)):
            if process is not None and process.poll() is None:
                (workdir / f"{role}.killed").touch()      # overran: tell run_pair why no result
            _stop(process)
        if dumpcap is not None:
            time.sleep(0.1)                 # let the last segments reach the capture
            capture_module.stop_dumpcap(dumpcap)
        _stop(holder)
        for role in ("ev", "secc"):
            log = workdir / f"{role}.log"
            if log.exists() and log.stat().st_size:
                print(f"--- {role} side output ---\n{log.read_text(errors='replace')[-3000:]}", flush=True)


def _load_entry(entry: str):
    target, _, name = entry.rpartition(":")
    if not target or not name:
        raise ValueError(f"entry point {entry!r} is not 'module:function' or 'file.py:function'")
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        sys.path.insert(0, str(Path(target).parent))     # the file's own sibling imports
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    return getattr(module, name)


def _side(role: str, spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    workdir = Path(spec["workdir"])
    mine, peer = (("ev", "secc") if role == "ev" else ("secc", "ev"))
    ends = {"ev": (EV_IFACE, EV_ADDRESS, EV_MAC), "secc": (SECC_IFACE, SECC_ADDRESS, SECC_MAC)}
    side = Side(role, ends[mine][0], ends[mine][1], ends[mine][2], ends[peer][1], ends[peer][2],
                workdir, spec[role]["kwargs"])
    try:
        function = _load_entry(spec[role]["entry"])
        if role == "ev":
            peer_result = workdir / "secc.result.json"
            _wait_until(lambda: (workdir / "secc.ready").exists() or peer_result.exists(),
                        float(spec["side_timeout"]), "the SECC side's ready()")
            if not (workdir / "secc.ready").exists():
                raise NetnsError("the SECC side ended without calling side.ready()")
        value = asyncio.run(asyncio.wait_for(function(side), float(spec["side_timeout"])))
        outcome = {"ok": True, "value": value}
    except BaseException:                      # reported to the test process, not swallowed
        outcome = {"ok": False, "error": traceback.format_exc()}
    (workdir / f"{role}.result.json").write_text(json.dumps(outcome, default=repr))
    return 0 if outcome["ok"] else 1


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "pair":
        return _pair(argv[1])
    if len(argv) == 3 and argv[0] == "side" and argv[1] in ("ev", "secc"):
        return _side(argv[1], argv[2])
    print("usage: python -m harness.iso15118.netns pair SPEC | side ev|secc SPEC", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
