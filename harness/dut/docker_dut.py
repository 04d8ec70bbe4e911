"""A DUT that ships as a container image, run with the docker SDK for the length of a test run.

Profile section (`adapter: docker`):

    docker:
      image: vendor/csms:1.4.2          # required
      command: ["--ocpp", "2.0.1"]      # optional; string or list
      env:                              # ${…} placeholders: station_id, password, endpoint,
        CSMS_URL: ${csms_url}           #   csms_url (the harness as the container sees it),
        STATION_ID: ${station_id}       #   ocpp_version (first of ocpp_versions), env.NAME
      ports: {"8180/tcp": 8180}         # or ["8180:8180"] (host:container)
      network_mode: bridge              # "host" → the container reaches the harness at 127.0.0.1
      harness_host: host.docker.internal  # how the container reaches the harness (bridge mode)
      pull: missing                     # missing | always | never
      ready_timeout: 60                 # s to wait for the DUT to connect / listen
      name: my-dut                      # default: charger-harness-dut-<station id>
      actions: {...}                    # out-of-band hooks as in `command` (+ {exec: …})

One container per profile for the whole run: started by the first case that needs it,
kept while the DUT stays up, stopped and removed when the run ends (`stop_all`). The
docker client is injected (`use_client`) so the lifecycle runs against a fake in tests.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from typing import Any, Callable, Iterator
from urllib.parse import urlparse, urlunparse

from .profile import DutProfile

LOG_LIMIT = 512 * 1024         # bytes of container log kept per case
STOP_TIMEOUT = 5


class EngineUnavailable(Exception):
    """No Docker engine (or SDK) here; the message says how to fix it."""


class DutNotReady(Exception):
    """The container did not come up (message); `logs` holds what it printed."""

    def __init__(self, message: str, logs: str = ""):
        super().__init__(message)
        self.logs = logs


# ---- the docker client (injectable) ------------------------------------------------------

_client_override: Any = None
_lock = threading.Lock()


@contextlib.contextmanager
def use_client(client: Any) -> Iterator[Any]:
    """Run with this docker client (an object with the docker SDK's `DockerClient` surface)."""
    global _client_override
    previous, _client_override = _client_override, client
    try:
        yield client
    finally:
        _client_override = previous


def _fix_hint() -> str:
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return (f"looked at {where}. To fix: start the engine (e.g. `sudo systemctl start docker`), or set DOCKER_HOST "
            "to a reachable one (e.g. ssh://user@build-host), or add yourself to the 'docker' group; "
            "or test this DUT with the command/manual adapter instead")


def docker_client() -> Any:
    """A pinged docker client; EngineUnavailable with a how-to-fix message otherwise."""
    client = _client_override
    if client is None:
        try:
            import docker
        except ImportError:
            raise EngineUnavailable("the docker adapter needs the docker SDK: pip install 'charger-harness[docker]'") from None
        try:
            client = docker.from_env(timeout=5)
        except Exception as exc:
            raise EngineUnavailable(f"no Docker engine reachable ({_short(exc)}); {_fix_hint()}") from None
    try:
        client.ping()
    except Exception as exc:
        raise EngineUnavailable(f"no Docker engine reachable ({_short(exc)}); {_fix_hint()}") from None
    return client


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}"


# ---- one DUT container --------------------------------------------------------------------

class DockerDut:
    def __init__(self, profile: DutProfile, client: Any):
        self.profile = profile
        self.opts = dict(profile.adapter_options)
        self.client = client
        self.container: Any = None
        self.started_at = 0.0
        self.ready = False

    # -- what to start

    def harness_url(self) -> str:
        """The harness's CSMS URL as the container sees it (station DUTs)."""
        url = urlparse(self.profile.endpoint or "ws://0.0.0.0:9000/ocpp")
        host = url.hostname or "0.0.0.0"
        if self.opts.get("network_mode") == "host":
            new_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        else:
            new_host = str(self.opts.get("harness_host") or "host.docker.internal")
        netloc = f"{new_host}:{url.port}" if url.port else new_host
        return urlunparse(url._replace(netloc=netloc))

    def variables(self) -> dict[str, str]:
        p = self.profile
        return {"station_id": p.station_id, "password": p.password or "", "endpoint": p.endpoint,
                "csms_url": self.harness_url() if p.kind == "charging_station" else p.endpoint,
                "ocpp_version": p.ocpp_versions[0] if p.ocpp_versions else "",
                "ocpp_versions": ",".join(p.ocpp_versions)}

    def run_kwargs(self) -> dict[str, Any]:
        from .hooks import render

        image = self.opts.get("image")
        if not image:
            raise DutNotReady("the DUT profile has no docker.image")
        variables = self.variables()
        env = {str(k): str(render(str(v), variables, where=f"docker.env.{k}"))
               for k, v in (self.opts.get("env") or {}).items()}
        kwargs: dict[str, Any] = {
            "image": str(image), "detach": True, "environment": env,
            "name": str(self.opts.get("name") or f"charger-harness-dut-{_slug(self.profile.station_id)}"),
            "labels": {"charger-harness.role": "dut", "charger-harness.profile": self.profile.name},
        }
        if self.opts.get("command"):
            cmd = self.opts["command"]
            kwargs["command"] = render(cmd if isinstance(cmd, list) else str(cmd), variables, where="docker.command")
        ports = _ports(self.opts.get("ports"))
        if ports:
            kwargs["ports"] = ports
        if self.opts.get("network_mode"):
            kwargs["network_mode"] = str(self.opts["network_mode"])
        elif self.profile.kind == "charging_station":
            kwargs["extra_hosts"] = {str(self.opts.get("harness_host") or "host.docker.internal"): "host-gateway"}
        return kwargs

    # -- lifecycle (blocking: call from a thread)

    def start(self) -> None:
        kwargs = self.run_kwargs()
        self._pull(kwargs["image"])
        self._remove_leftover(kwargs["name"])
        self.started_at = time.time()
        self.container = self.client.containers.run(**kwargs)

    def _pull(self, image: str) -> None:
        policy = str(self.opts.get("pull", "missing"))
        if policy == "never":
            return
        if policy == "missing":
            try:
                self.client.images.get(image)
                return
            except Exception:
                pass
        if "@" in image:                       # pinned by digest
            self.client.images.pull(image)
            return
        repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        self.client.images.pull(repo, tag=tag or "latest")

    def _remove_leftover(self, name: str) -> None:
        """A container of the same name left by a killed run would block `run`."""
        try:
            old = self.client.containers.get(name)
        except Exception:
            return
        labels = getattr(old, "labels", None) or {}
        if labels.get("charger-harness.role") == "dut":
            with contextlib.suppress(Exception):
                old.remove(force=True)

    def status(self) -> str:
        if self.container is None:
            return "absent"
        try:
            self.container.reload()
        except Exception:
            return "gone"
        return str(self.container.status)

    def exit_code(self) -> Any:
        state = (getattr(self.container, "attrs", None) or {}).get("State") or {}
        return state.get("ExitCode")

    def logs(self, since: float | None = None) -> str:
        if self.container is None:
            return ""
        kw: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": True}
        if since:
            kw["since"] = int(since)          # whole seconds: the docker API's resolution
        try:
            data = self.container.logs(**kw)
        except Exception as exc:
            return f"(container logs unavailable: {_short(exc)})"
        if isinstance(data, bytes):
            data = data[-LOG_LIMIT:].decode("utf-8", "replace")
        return str(data)

    def exec(self, cmd: Any, env: dict[str, str]) -> tuple[int | None, str, str]:
        res = self.container.exec_run(cmd, environment=env, demux=True)
        code, output = (res.exit_code, res.output) if hasattr(res, "exit_code") else res
        out, err = output if isinstance(output, tuple) else (output, b"")
        return code, (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace")

    def stop(self) -> str:
        """Stop and remove; returns the container's whole log (read before removal)."""
        if self.container is None:
            return ""
        logs = self.logs()
        with contextlib.suppress(Exception):
            self.container.stop(timeout=int(self.opts.get("stop_timeout", STOP_TIMEOUT)))
        with contextlib.suppress(Exception):
            self.container.remove(force=True)
        self.container = None
        self.ready = False
        return logs


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-").lower() or "dut"


def _ports(spec: Any) -> dict[str, Any]:
    if not spec:
        return {}
    if isinstance(spec, dict):
        return {(str(k) if "/" in str(k) else f"{k}/tcp"): v for k, v in spec.items()}
    out: dict[str, Any] = {}
    for item in spec:
        host, _, cont = str(item).rpartition(":")
        cont = cont if "/" in cont else f"{cont}/tcp"
        out[cont] = int(host) if host.isdigit() else (host or None)
    return out


# ---- the run's containers -------------------------------------------------------------------

_running: dict[str, DockerDut] = {}
_unavailable: list[str] = []      # why the engine was unreachable (asked once per run, not per case)


def _key(profile: DutProfile) -> str:
    return str(profile.path.resolve()) if profile.path else f"{profile.name}|{profile.station_id}"


def dut_for(profile: DutProfile, client_factory: Callable[[], Any] = docker_client) -> DockerDut:
    """The run's container for this profile (created, not yet started, on first use)."""
    with _lock:
        key = _key(profile)
        if key not in _running:
            if _unavailable:
                raise EngineUnavailable(_unavailable[0])
            try:
                client = client_factory()
            except EngineUnavailable as exc:
                _unavailable.append(str(exc))
                raise
            _running[key] = DockerDut(profile, client)
        return _running[key]


def stop_all() -> dict[str, str]:
    """Stop and remove every DUT container of this run; their logs by profile name."""
    with _lock:
        duts = list(_running.values())
        _running.clear()
        _unavailable.clear()
    return {d.profile.name: d.stop() for d in duts}


def running() -> list[DockerDut]:
    return list(_running.values())
