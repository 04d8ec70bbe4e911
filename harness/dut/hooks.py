"""Vendor hooks for out-of-band actions (`command` and `docker` adapters).

A hook is configured per action name under `command.actions` (or `docker.actions`):

    actions:
      reset: ./hooks/reset.sh "$CH_PARAM_STATION_ID"          # shell command
      remote_start:                                            # HTTP request
        url: http://vendor-api:8080/stations/${station_id}/start
        method: POST                                           # default: POST with a body, else GET
        headers: {Authorization: "Bearer ${env.VENDOR_TOKEN}"}
        body: {idTag: "${id_token}", evse: "${evse_id}"}       # mapping → JSON; a string is sent as is
        expect_status: [200, 202]                              # default: any 2xx
        timeout: 10                                            # default: the step's timeout
      plug_in: {exec: [evsim, plug, --evse, "${evse_id}"]}    # docker only: inside the DUT container (no shell)

Shell hooks run with `/bin/sh -c`, in the profile's folder (or `command.cwd`), with:

    CH_ACTION            the action name (plug_in, reset, …)
    CH_PARAMS            all params as one JSON object
    CH_PARAM_<NAME>      each param (upper-cased; strings as is, other values as JSON)
    CH_SAY               the instruction text of the step
    CH_TIMEOUT           seconds the hook has before it is killed
    CH_STATION_ID, CH_DUT_NAME, CH_DUT_KIND, CH_ENDPOINT, CH_OCPP_VERSIONS   from the DUT profile
    + every `command.env` entry

Exit code 0 is done; anything else is failed (INCONCLUSIVE: the precondition was not
reached); stdout and stderr (their tails) go into the outcome detail and the report.
HTTP (and container `exec`) templates take `${name}` for any action param, `${action}`, `${station_id}`,
`${params}` (all params as JSON) and `${env.NAME}`; a value that is exactly one
`${name}` keeps its type inside a JSON body.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .base import ActionOutcome
from .profile import DutProfile

TAIL = 600                     # characters of each stream kept in the outcome detail
HTTP_BODY_LIMIT = 64 * 1024
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class HookConfigError(ValueError):
    """A hook in the DUT profile is malformed (message names the profile key)."""


def hook_kind(action: str, hook: Any, *, section: str = "command") -> str:
    """'shell' | 'http' | 'exec'; HookConfigError for anything else."""
    where = f"{section}.actions.{action}"
    if isinstance(hook, str) and hook.strip():
        return "shell"
    if isinstance(hook, dict):
        if "http" in hook and isinstance(hook["http"], dict):
            hook = hook["http"]
        if "url" in hook:
            if not isinstance(hook["url"], str) or not hook["url"].startswith(("http://", "https://", "${")):
                raise HookConfigError(f"{where}.url must be an http:// or https:// URL (got {hook['url']!r})")
            return "http"
        if isinstance(hook.get("shell") or hook.get("run"), str):
            return "shell"
        if "exec" in hook:
            if section != "docker":
                raise HookConfigError(f"{where}: 'exec' runs inside the DUT container: only with the docker adapter")
            return "exec"
    raise HookConfigError(f"{where}: give a shell command, {{url, method, body}} for HTTP"
                          + (", or {exec: …} to run inside the container" if section == "docker" else ""))


def check_hooks(profile: DutProfile) -> list[str]:
    """Every problem with the profile's hooks (empty when they are all usable)."""
    problems = []
    for action, hook in (profile.adapter_options.get("actions") or {}).items():
        try:
            hook_kind(str(action), hook, section=profile.adapter)
        except HookConfigError as exc:
            problems.append(str(exc))
    return problems


def hook_vars(profile: DutProfile, action: str, params: dict[str, Any]) -> dict[str, Any]:
    return {**params, "action": action, "station_id": params.get("station_id", profile.station_id),
            "params": params}           # whole-value in a JSON body: the object; inside a string: its JSON


def render(template: Any, variables: dict[str, Any], *, where: str) -> Any:
    """`${name}` substitution in strings (recursively in mappings/lists)."""
    if isinstance(template, dict):
        return {str(k): render(v, variables, where=where) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, variables, where=where) for v in template]
    if not isinstance(template, str):
        return template

    def value(name: str) -> Any:
        if name.startswith("env."):
            if name[4:] not in os.environ:
                raise HookConfigError(f"{where} uses ${{{name}}} but the environment variable {name[4:]} is not set")
            return os.environ[name[4:]]
        if name not in variables:
            have = ", ".join(sorted(variables))
            raise HookConfigError(f"{where} uses ${{{name}}}, which this action does not provide (available: {have})")
        return variables[name]

    whole = _VAR.fullmatch(template)
    if whole:
        return value(whole.group(1))            # keeps ints/bools as they are in a JSON body
    return _VAR.sub(lambda m: _text(value(m.group(1))), template)


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str)


def tail(text: str, limit: int = TAIL) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def streams_detail(out: str, err: str) -> str:
    parts = []
    if out.strip():
        parts.append(f"stdout: {tail(out)}")
    if err.strip():
        parts.append(f"stderr: {tail(err)}")
    return "; ".join(parts)


# ---- shell ------------------------------------------------------------------------------

def hook_env(profile: DutProfile, action: str, params: dict[str, Any], say: str, timeout: float,
             extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"CH_ACTION": action, "CH_PARAMS": json.dumps(params, default=str), "CH_SAY": say,
           "CH_TIMEOUT": f"{timeout:g}", "CH_STATION_ID": profile.station_id, "CH_DUT_NAME": profile.name,
           "CH_DUT_KIND": profile.kind, "CH_ENDPOINT": profile.endpoint,
           "CH_OCPP_VERSIONS": ",".join(profile.ocpp_versions)}
    for k, v in params.items():
        env["CH_PARAM_" + re.sub(r"[^0-9A-Za-z]", "_", str(k)).upper()] = _text(v)
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    return env


async def run_shell(cmd: str, env: dict[str, str], cwd: str | None, timeout: float, who: str = "command") -> ActionOutcome:
    """Run `cmd` with a hard bound; the whole process group is killed on timeout."""
    try:
        proc = await asyncio.create_subprocess_shell(
            cmd, env={**os.environ, **env}, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return ActionOutcome("failed", f"`{cmd}` could not start: {exc}", who)
    try:
        out_b, err_b = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        _kill_group(proc.pid)
        try:
            out_b, err_b = await asyncio.wait_for(proc.communicate(), 5)
        except asyncio.TimeoutError:
            out_b, err_b = b"", b""
        out, err = out_b.decode("utf-8", "replace"), err_b.decode("utf-8", "replace")
        detail = f"`{cmd}` did not finish within {timeout:g} s (killed)"
        more = streams_detail(out, err)
        return ActionOutcome("failed", f"{detail}; {more}" if more else detail, who,
                             {"exit": None, "stdout": tail(out), "stderr": tail(err), "timeout": True})
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        raise
    out, err = out_b.decode("utf-8", "replace"), err_b.decode("utf-8", "replace")
    result = {"exit": proc.returncode, "stdout": tail(out), "stderr": tail(err)}
    streams = streams_detail(out, err)
    if proc.returncode != 0:
        return ActionOutcome("failed", f"`{cmd}` exited {proc.returncode}" + (f"; {streams}" if streams else ""), who,
                             result)
    return ActionOutcome("done", streams, who, result)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---- HTTP -------------------------------------------------------------------------------

def http_request(hook: dict[str, Any], variables: dict[str, Any], *, where: str) -> urllib.request.Request:
    """Build the request of an HTTP hook (HookConfigError if a template can't be filled)."""
    spec = hook["http"] if isinstance(hook.get("http"), dict) else hook
    url = str(render(spec["url"], variables, where=f"{where}.url"))
    headers = {str(k): str(render(v, variables, where=f"{where}.headers.{k}"))
               for k, v in (spec.get("headers") or {}).items()}
    body = spec.get("body")
    data: bytes | None = None
    if isinstance(body, (dict, list)):
        data = json.dumps(render(body, variables, where=f"{where}.body"), default=str).encode()
        headers.setdefault("Content-Type", "application/json")
    elif body is not None:
        data = _text(render(str(body), variables, where=f"{where}.body")).encode()
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
    method = str(spec.get("method") or ("POST" if data is not None else "GET")).upper()
    return urllib.request.Request(url, data=data, method=method, headers=headers)


def http_call(req: urllib.request.Request, timeout: float, expect: list[int] | None) -> ActionOutcome:
    """Blocking: send `req` (run it in a thread). Loopback never goes through a proxy."""
    host = urlparse(req.full_url).hostname or ""
    opener = (urllib.request.build_opener(urllib.request.ProxyHandler({})) if host in LOOPBACK
              else urllib.request.build_opener())
    what = f"{req.get_method()} {req.full_url}"
    try:
        with opener.open(req, timeout=timeout) as resp:
            status, body = resp.status, resp.read(HTTP_BODY_LIMIT)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(HTTP_BODY_LIMIT) if exc.fp else b""
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return ActionOutcome("failed", f"{what} failed: {type(reason).__name__}: {reason}", "http",
                             {"status": None, "error": str(reason)})
    text = body.decode("utf-8", "replace")
    ok = status in expect if expect else 200 <= status < 300
    detail = f"HTTP {status} from {what}" + (f": {tail(text)}" if text.strip() else "")
    return ActionOutcome("done" if ok else "failed", detail, "http", {"status": status, "body": tail(text, 4000)})


async def run_http(hook: dict[str, Any], variables: dict[str, Any], timeout: float, *, where: str) -> ActionOutcome:
    spec = hook["http"] if isinstance(hook.get("http"), dict) else hook
    req = http_request(hook, variables, where=where)
    expect = [int(s) for s in spec["expect_status"]] if spec.get("expect_status") else None
    try:
        return await asyncio.wait_for(asyncio.to_thread(http_call, req, timeout, expect), timeout + 1)
    except asyncio.TimeoutError:
        return ActionOutcome("failed", f"{req.get_method()} {req.full_url} did not answer within {timeout:g} s", "http")


def hook_cwd(profile: DutProfile, section: dict[str, Any]) -> str | None:
    """Hooks run in `cwd` (relative to the profile's folder), else in the profile's folder."""
    base = profile.path.parent if profile.path else None
    cwd = section.get("cwd")
    if cwd:
        p = Path(str(cwd)).expanduser()
        return str(p if p.is_absolute() or base is None else base / p)
    return str(base) if base else None
