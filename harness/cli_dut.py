"""`charger-harness dut …`: write and check DUT profiles; the real-DUT parts of `run`.

    charger-harness dut init                      # asks, step by step (rich prompts)
    charger-harness dut init fixtures/duts/lab7.yaml --no-interactive --kind charging_station \\
        --name "Depot charger 7" --station-id DEPOT-CH-07 --ocpp 2.0.1 --security-profile 1 \\
        --pics dc_charging --pics remote_start --pixit valid_id_token=04A1B2C3 --adapter manual
        # password from CHARGER_HARNESS_DUT_PASSWORD (or --password)
    charger-harness dut check fixtures/duts/lab7.yaml

The profile is validated with the same loader `run` uses before it is written, written
atomically (mode 0600: it holds a password), and never overwritten without --force. The
password is read with hidden input and never printed.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.console import Console
from rich.prompt import Confirm, IntPrompt, Prompt
from rich.table import Table

from .dut.profile import ADAPTERS, KINDS, ProfileError, load_profile

dut_app = typer.Typer(no_args_is_help=True, help="Write and check DUT profiles (fixtures/duts/*.yaml).")
console = Console()
PASSWORD_ENV = "CHARGER_HARNESS_DUT_PASSWORD"
_KIND_ALIASES = {"cs": "charging_station", "station": "charging_station", "charger": "charging_station",
                 "charging_station": "charging_station", "csms": "csms", "backend": "csms", "back-end": "csms"}


class _Abort(Exception):
    pass


def _fail(msg: str) -> None:
    console.print(f"[red]error:[/] {msg}")
    raise typer.Exit(2)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            _fail(f"{what} takes KEY=VALUE (got {item!r})")
        out[k.strip()] = v
    return out


def _typed(value: str, default: Any) -> Any:
    """A PIXIT value typed like its default: ids and intervals are ints, tokens stay strings."""
    if isinstance(default, bool):
        return value.strip().lower() in ("1", "true", "yes", "y")
    if isinstance(default, int):
        try:
            return int(value)
        except ValueError:
            _fail(f"{value!r} is not a whole number")
    if isinstance(default, float):
        return float(value)
    return value


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "dut"


@dataclass
class _Answers:
    data: dict[str, Any] = field(default_factory=dict)


@dut_app.command("init")
def init(
    path: Optional[Path] = typer.Argument(None, help="profile to write (default: fixtures/duts/<name>.yaml)"),
    kind: Optional[str] = typer.Option(None, help="charging_station (the harness plays the CSMS) or csms"),
    name: Optional[str] = typer.Option(None, help="a name for reports, e.g. 'Depot charger 7 (FW 4.2)'"),
    station_id: Optional[str] = typer.Option(None, "--station-id",
                                             help="station DUT: its station id; CSMS DUT: the id the harness uses"),
    endpoint: Optional[str] = typer.Option(None, help="station DUT: where the harness listens "
                                           "(ws://0.0.0.0:9000/ocpp); CSMS DUT: its OCPP base URL"),
    ocpp: list[str] = typer.Option([], "--ocpp", help="OCPP version(s): 1.6 and/or 2.0.1 (repeat or comma list)"),
    security_profile: Optional[int] = typer.Option(None, "--security-profile", min=0, max=3,
                                                   help="0 none, 1 Basic auth, 2 TLS + Basic, 3 mutual TLS"),
    password: Optional[str] = typer.Option(None, envvar=PASSWORD_ENV, show_envvar=True,
                                           help=f"Basic-auth password (prefer the {PASSWORD_ENV} variable)"),
    vendor: Optional[str] = typer.Option(None, help="identity: vendor"),
    model: Optional[str] = typer.Option(None, help="identity: model"),
    serial: Optional[str] = typer.Option(None, help="identity: serial number"),
    firmware: Optional[str] = typer.Option(None, help="identity: firmware version"),
    pics: list[str] = typer.Option([], "--pics", help="a PICS feature the DUT supports (repeatable; 'all', 'none')"),
    pixit: list[str] = typer.Option([], "--pixit", help="a PIXIT value KEY=VALUE (repeatable); others get defaults"),
    adapter: Optional[str] = typer.Option(None, help=f"out-of-band actions: {', '.join(ADAPTERS)}"),
    hook: list[str] = typer.Option([], "--hook", help="command/docker: ACTION=SHELL COMMAND or ACTION=http(s)://URL "
                                   "(POST with the params as JSON)"),
    image: Optional[str] = typer.Option(None, help="docker: the DUT's image"),
    docker_env: list[str] = typer.Option([], "--docker-env", help="docker: KEY=VALUE for the container "
                                         "(${csms_url}, ${station_id}, ${password} are filled in)"),
    port: list[str] = typer.Option([], "--port", help="docker: HOST:CONTAINER port to publish"),
    library: Path = typer.Option(Path("testcases"), help="the test library whose PICS/PIXIT/actions to offer"),
    interactive: Optional[bool] = typer.Option(None, "--interactive/--no-interactive",
                                               help="ask for what the flags leave open (default: when on a terminal)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing profile"),
) -> None:
    """Write a DUT profile, interactively or entirely from flags (CI), and validate it."""
    from .dut.library import PIXIT_HELP, pixit_defaults, scan_library

    ask = sys.stdin.isatty() if interactive is None else interactive
    if path is not None and path.exists() and not force:
        _fail(f"{path} exists; use --force to overwrite it")

    def text(label: str, given: Optional[str], default: Optional[str], required: bool = True) -> str:
        if given is not None:
            return given
        if ask:
            while True:
                value = Prompt.ask(label, default=default, console=console) if default is not None \
                    else Prompt.ask(label, console=console)
                if value or not required:
                    return value or ""
        if default is None and required:
            _fail(f"{label.split(' (')[0]} is needed: give it as a flag (see --help)")
        return default or ""

    if ask:
        console.print("[bold]New DUT profile[/] — Enter keeps the [cyan](default)[/]; "
                      f"PICS, PIXIT and actions offered are those the test library at {library} uses.")
    # kind
    if kind is None and ask:
        kind = Prompt.ask("What is the device under test? charging_station (harness plays the CSMS) or csms",
                          choices=list(KINDS), default="charging_station", console=console)
    kind = _KIND_ALIASES.get((kind or "charging_station").lower())
    if kind is None:
        _fail(f"--kind must be one of {', '.join(KINDS)}")
    station = kind == "charging_station"
    needs = scan_library(library, kind)
    # identity
    vendor = text("Vendor", vendor, "", required=False)
    model = text("Model", model, "", required=False)
    serial = text("Serial number", serial, "", required=False)
    firmware = text("Firmware version", firmware, "", required=False)
    name = text("Profile name (shown in reports)", name, " ".join(x for x in (vendor, model) if x) or
                ("Lab charging station" if station else "Back end under test"))
    station_id = text("Station id" + (" configured in the charger" if station else " the harness connects as"),
                      station_id, "CS-001" if station else "CH-HARNESS-001")
    endpoint = text("Endpoint: where the harness listens for the charger" if station
                    else "Endpoint: the CSMS's OCPP URL (ws://host:port/path)",
                    endpoint, "ws://0.0.0.0:9000/ocpp" if station else None)
    if not endpoint.startswith(("ws://", "wss://")):
        _fail(f"endpoint must be a ws:// or wss:// URL (got {endpoint!r})")
    # OCPP versions
    versions = [v.strip() for item in ocpp for v in item.split(",") if v.strip()]
    if not versions:
        versions = [v.strip() for v in text("OCPP versions (comma list of 1.6, 2.0.1)", None, "2.0.1").split(",")] \
            if ask else ["2.0.1"]
    # security
    if security_profile is None:
        security_profile = IntPrompt.ask("Security profile (0 none, 1 Basic auth, 2 TLS+Basic, 3 mTLS)",
                                         default=1, choices=["0", "1", "2", "3"], console=console) if ask else 1
    if security_profile >= 2:
        console.print("[yellow]note:[/] security profiles 2–3 (TLS) need the harness PKI; the run refuses them until then")
    if security_profile >= 1 and not password:
        if not ask:
            _fail(f"security profile {security_profile} needs a password: set {PASSWORD_ENV} (or --password)")
        while True:
            first = Prompt.ask("Basic-auth password (hidden)", password=True, console=console)
            again = Prompt.ask("Same password again (hidden)", password=True, console=console)
            if first and first == again:
                password = first
                break
            console.print("[red]empty, or the two entries differ[/]: try again")
    # PICS
    features = sorted(needs.pics, key=lambda f: (-needs.pics[f], f))
    claimed: dict[str, bool] = {}
    flat = [p.strip() for item in pics for p in item.split(",") if p.strip()]
    if flat:
        all_ = "all" in flat
        for f in features:
            claimed[f] = all_ or f in flat
        for f in flat:
            if f not in ("all", "none") and f not in claimed:
                console.print(f"[yellow]note:[/] PICS feature {f!r} is used by no case in {library}")
                claimed[f] = True
    elif ask and features:
        console.print("[bold]PICS[/]: which features does the DUT support? (a case needing an unsupported one "
                      "is NOT APPLICABLE)")
        for f in features:
            claimed[f] = Confirm.ask(f"  {f} (needed by {needs.pics[f]} case(s))", default=False, console=console)
    else:
        claimed = {f: False for f in features}
    # PIXIT
    defaults = pixit_defaults()
    given = _pairs(pixit, "--pixit")
    keys = list(dict.fromkeys([*[k for k in defaults if k in needs.pixit or not needs.pixit], *needs.pixit, *given]))
    values: dict[str, Any] = {}
    if ask:
        console.print("[bold]PIXIT[/]: parameters the cases use")
    for k in keys:
        default = defaults.get(k, "")
        if k in given:
            values[k] = _typed(given[k], default)
        elif ask:
            hint = PIXIT_HELP.get(k, f"used {needs.pixit.get(k, 0)} time(s) in the library")
            values[k] = _typed(Prompt.ask(f"  {k} [dim]— {hint}[/]", default=str(default), console=console), default)
        else:
            values[k] = default
    # adapter
    if adapter is None:
        adapter = Prompt.ask("Adapter for out-of-band actions (plug in, present a token, reset…)", choices=list(ADAPTERS),
                             default="manual" if station else "command", console=console) if ask \
            else ("manual" if station else "command")
    if adapter not in ADAPTERS:
        _fail(f"--adapter must be one of {', '.join(ADAPTERS)}")
    section = _adapter_section(adapter, hook, image, docker_env, port, ask, needs, station)

    data: dict[str, Any] = {
        "name": name, "kind": kind, "adapter": adapter, "ocpp_versions": versions,
        "security_profile": security_profile, "station_id": station_id, "endpoint": endpoint,
    }
    if password:
        data["credentials"] = {"password": password}
    identity = {k: v for k, v in (("vendor", vendor), ("model", model), ("serial", serial), ("firmware", firmware)) if v}
    if identity:
        data["identity"] = identity
    data["pics"] = claimed
    data["pixit"] = values
    if section is not None:
        data[adapter] = section

    target = path or Path("fixtures/duts") / f"{_slug(name)}.yaml"
    if target.exists() and not force:
        _fail(f"{target} exists; use --force to overwrite it (or give another path)")
    body = _render_profile(data, needs, adapter)
    _write_validated(target, body)
    _show(target)


def _adapter_section(adapter: str, hooks_given: list[str], image: Optional[str], env: list[str], ports: list[str],
                     ask: bool, needs: Any, station: bool) -> Optional[dict[str, Any]]:
    if adapter in ("sim", "manual"):
        return None
    actions: dict[str, Any] = {}
    for action, target in _pairs(hooks_given, "--hook").items():
        actions[action] = ({"url": target, "method": "POST", "body": {"action": "${action}", "params": "${params}"}}
                           if target.startswith(("http://", "https://")) else target)
    if ask and not hooks_given and needs.actions and \
            Confirm.ask(f"Configure hooks now for the library's actions ({', '.join(sorted(needs.actions))})?",
                        default=False, console=console):
        for a in sorted(needs.actions):
            value = Prompt.ask(f"  {a}: shell command or http(s):// URL (Enter: none)", default="", console=console)
            if value:
                actions.update({a: ({"url": value, "method": "POST",
                                     "body": {"action": "${action}", "params": "${params}"}}
                                    if value.startswith(("http://", "https://")) else value)})
    section: dict[str, Any] = {}
    if adapter == "docker":
        if image is None:
            image = Prompt.ask("Docker image of the DUT", console=console) if ask else None
        if not image:
            _fail("the docker adapter needs --image")
        section["image"] = image
        envs = _pairs(env, "--docker-env")
        if not envs and station:
            envs = {"CSMS_URL": "${csms_url}", "STATION_ID": "${station_id}"}
        if envs:
            section["env"] = envs
        if ports:
            section["ports"] = list(ports)
        section["ready_timeout"] = 60
    section["actions"] = actions
    return section


def _render_profile(data: dict[str, Any], needs: Any, adapter: str) -> str:
    head = [f"# DUT profile written by `charger-harness dut init` on {time.strftime('%Y-%m-%d %H:%M')}.",
            "# Check it:  charger-harness dut check <this file>     Run: charger-harness run --dut <this file>",
            "# credentials.password is a secret: redacted from every report; keep this file private (mode 0600)."]
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    tail: list[str] = []
    if adapter in ("command", "docker"):
        configured = set((data.get(adapter) or {}).get("actions") or {})
        missing = sorted(set(needs.actions) - configured)
        if missing:
            tail = ["", f"# Actions the test library asks for that have no hook yet (add them under {adapter}.actions):"]
            tail += [f"#   {a}: ./hooks/{a}.sh \"$CH_PARAM_EVSE_ID\"        # shell: params in CH_PARAM_* env vars"
                     for a in missing[:1]]
            tail += [f"#   {a}: {{url: \"http://vendor-api/{a}\", method: POST, body: {{station: \"${{station_id}}\"}}}}"
                     for a in missing[1:2]]
            tail += [f"#   {a}:" for a in missing[2:]]
    return "\n".join(head) + "\n" + body + ("\n".join(tail) + "\n" if tail else "")


def _write_validated(target: Path, body: str) -> None:
    """Validate with the run's own loader, then write atomically (0600), never half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".dut-", suffix=".yaml", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.chmod(tmp, 0o600)
        try:
            load_profile(tmp)
        except ProfileError as exc:
            _fail(str(exc).replace(tmp, str(target)))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _show(path: Path) -> None:
    p = load_profile(path)
    table = Table(title=f"wrote {path}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    view = p.public_view()
    for k in ("name", "kind", "adapter", "ocpp_versions", "security_profile", "station_id", "endpoint"):
        table.add_row(k, str(view[k]))
    table.add_row("password", "(set)" if p.password else "(none)")   # never the value
    table.add_row("identity", ", ".join(f"{k}={v}" for k, v in p.identity.items()) or "-")
    table.add_row("PICS supported", ", ".join(k for k, v in p.pics.items() if v) or "(none)")
    table.add_row("PIXIT", ", ".join(f"{k}={v}" for k, v in p.pixit.items()))
    if p.adapter in ("command", "docker"):
        table.add_row("hooks", ", ".join(sorted(p.adapter_options.get("actions") or {})) or "(none yet)")
    console.print(table)
    console.print(f"next: [bold]charger-harness dut check {path}[/], then "
                  f"[bold]charger-harness run --dut {path}[/]")


@dut_app.command("check")
def check(
    path: Path = typer.Argument(..., help="a DUT profile"),
    library: Path = typer.Option(Path("testcases"), help="the test library to check it against"),
) -> None:
    """Validate a DUT profile and compare it with what the test library needs."""
    from .dut.hooks import check_hooks
    from .dut.library import scan_library

    try:
        p = load_profile(path)
    except ProfileError as exc:
        _fail(str(exc))
    needs = scan_library(library, p.kind)
    notes: list[str] = []
    unknown = [f for f in p.pics if needs.pics and f not in needs.pics]
    if unknown:
        notes.append(f"PICS not used by any case: {', '.join(unknown)}")
    unset = [f for f in needs.pics if f not in p.pics]
    if unset:
        notes.append(f"PICS the library uses that the profile does not mention (taken as unsupported): {', '.join(unset)}")
    missing = [k for k in needs.pixit if k not in p.pixit]
    if missing:
        notes.append(f"PIXIT the library uses that the profile lacks (cases using them will ERROR): {', '.join(missing)}")
    if p.adapter in ("command", "docker"):
        problems = check_hooks(p)
        notes += problems
        no_hook = sorted(set(needs.actions) - set(p.adapter_options.get("actions") or {}))
        if no_hook:
            notes.append(f"actions without a hook (cases using them will be INCONCLUSIVE): {', '.join(no_hook)}")
    if p.adapter == "docker":
        from .dut.docker_dut import EngineUnavailable, docker_client

        try:
            docker_client()
            notes.append("docker engine: reachable")
        except EngineUnavailable as exc:
            notes.append(f"docker engine: {exc}")
    console.print(f"[green]{path}: valid DUT profile[/] ({p.kind}, adapter {p.adapter}, OCPP "
                  f"{', '.join(p.ocpp_versions)}, password {'set' if p.password else 'not set'})")
    for n in notes:
        console.print(f"  [yellow]•[/] {n}")


# ---- helpers for `charger-harness run` ---------------------------------------------------------

@dataclass
class RunPlan:
    extra: list[str]                  # pytest arguments to add
    keep_results: bool                # --resume: keep the results of the part already run
    serial: bool                      # manual/docker DUTs: one case at a time
    capture_off: bool                 # manual DUTs: the operator's terminal stays ours


def plan_run(progress: Path, duts: list[Path], fault: Optional[str], resume: bool, cases: list[str],
             library_root: Path = Path("testcases")) -> RunPlan:
    """What `run` adds for progress/resume, exact case ids and real-DUT adapters (prints what it decides)."""
    from .dut.builtin import builtin_profiles
    from .dut.progress import last_run, run_key

    extra = ["--progress", str(progress)]
    for c in cases:
        extra += ["--case", c]
    adapters = []
    profiles = []
    for d in duts:
        try:
            prof = load_profile(d)
        except ProfileError as exc:
            _fail(str(exc))
        profiles.append(prof)
        adapters.append(prof.adapter)
    keep = False
    if resume:
        previous = last_run(progress, run_key(profiles or builtin_profiles(), library_root, fault))
        if previous is None:
            console.print("[yellow]--resume:[/] no earlier run with this DUT profile and test library in "
                          f"{progress}; running everything")
        else:
            rerun = {r.get("case_id") for r in previous.records} & set(cases)
            done = len(previous.records) - len(rerun)
            console.print(f"--resume: continuing run {previous.run_id} (started {previous.started}): "
                          f"already done: {done}" + (f", running again: {', '.join(sorted(rerun))}" if rerun else ""))
            extra.append("--resume")
            keep = True
    return RunPlan(extra, keep, any(a in ("manual", "docker") for a in adapters), "manual" in adapters)


def call_interruptible(cmd: list[str], grace: float = 30.0) -> int:
    """Run pytest; on Ctrl-C let it finish the case teardown and write what it has (progress,
    verdicts, summary, containers stopped) instead of killing it, so `run --resume` can go on."""
    import subprocess

    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        console.print(f"\n[yellow]stopping[/]: letting the run close cleanly (up to {grace:g} s; Ctrl-C again "
                      "to kill). Continue later with [bold]charger-harness run --resume[/] and the same --dut.")
        try:
            proc.wait(grace)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            proc.wait()
        return 130
