"""Run one loaded test case against one DUT: set up the harness role and the adapter,
run the engine, tear everything down (bounded), and return the result with its trace.

This is the only place that knows how roles, adapters and the engine fit together; the
pytest plugin and the CLI both go through it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlparse

from .dut.adapters import AdapterUnavailable, DockerAdapter, SimAdapter, make_adapter
from .dut.docker_dut import DutNotReady
from .dut.docker_dut import stop_all as stop_docker_duts
from .dut.base import Adapter
from .dut.builtin import at_security_profile, is_builtin, with_v2g
from .dut.profile import DutProfile
from .ocpp.trace import Trace
from .roles.endpoint import CsmsEndpoint
from .roles.session import CsmsSession, SeccSession, Session, StationSession
from .scenario.engine import Engine
from .scenario.model import TestCase
from .scenario.verdict import CaseResult, StepResult, Verdict
from .transport.security import SecurityProfile, tls_security
from .transport.server import OcppServer

TEARDOWN_TIMEOUT = 10.0


@dataclass
class Execution:
    result: CaseResult
    trace: Trace
    logs: dict[str, str] = field(default_factory=dict)   # attachment name → text (e.g. "dut.log")


def applicability(case: TestCase, profile: DutProfile) -> str | None:
    """Why the case does not apply to this DUT (→ NOT APPLICABLE), or None."""
    if case.ocpp not in profile.ocpp_versions:
        return f"DUT profile declares OCPP {', '.join(profile.ocpp_versions)}; this case is OCPP {case.ocpp}"
    missing = [f for f in case.pics if not profile.supports(f)]
    if missing:
        return f"DUT PICS does not declare: {', '.join(missing)}"
    sp = case.security_profile
    if sp is not None and sp != profile.security_profile and not is_builtin(profile):
        return (f"the case needs security profile {sp}; the DUT profile is at security profile "
                f"{profile.security_profile} (run the TLS cases with a profile at {sp})")
    return None


def _ev_applicability(case: TestCase, profile: DutProfile) -> str | None:
    missing = [f for f in case.pics if not profile.supports(f)]
    return f"DUT PICS does not declare: {', '.join(missing)}" if missing else None


def _short_result(case: TestCase, verdict: Verdict, message: str) -> Execution:
    now = time.time()
    return Execution(CaseResult(case.id, verdict, message, start=now, stop=now), Trace())


def _fault_for(profile: DutProfile, fault: str | None) -> str | None:
    """A run-wide `--fault` applies to the simulator whose catalogue has it; the other runs clean."""
    if fault is None or profile.adapter != "sim":
        return fault
    if profile.kind == "charging_station":
        from .sim.faults import STATION_FAULTS as catalogue
    elif profile.kind == "ev":
        from .sim.ev_sim import EV_FAULTS as catalogue
    else:
        from .sim.csms_faults import CSMS_FAULTS as catalogue
    return fault if fault in catalogue else None


async def execute(case: TestCase, profile: DutProfile, *, fault: str | None = None, operator: str | None = None,
                  on_step: Callable[[StepResult], None] | None = None) -> Execution:
    reason = applicability(case, profile) if case.role != "secc" else _ev_applicability(case, profile)
    if reason:
        return _short_result(case, Verdict.NOT_APPLICABLE, reason)
    if case.security_profile is not None and is_builtin(profile):
        profile = at_security_profile(profile, case.security_profile)   # both simulators switch to TLS
    if is_builtin(profile) and any(s.kind.startswith("v2g") for s in case.steps):
        profile = with_v2g(profile)                                      # the station's SECC trusts our V2G PKI
    trace = Trace()
    variables = {"pixit": dict(profile.pixit), "dut": {"station_id": profile.station_id, **profile.identity}}
    endpoint: CsmsEndpoint | None = None
    session: Session | None = None
    try:
        adapter: Adapter = make_adapter(profile, fault=_fault_for(profile, fault), operator=operator)
    except AdapterUnavailable as exc:
        return _short_result(case, Verdict.INCONCLUSIVE, f"adapter '{profile.adapter}' unavailable: {exc}")
    logs: dict[str, str] = {}
    try:
        if case.role == "csms":
            endpoint = await _csms_endpoint(case, profile, trace)
            session = await CsmsSession(case.ocpp, trace, endpoint, profile.station_id).start()
            if isinstance(adapter, SimAdapter):
                await adapter.start_station(endpoint.server.url(), case.ocpp)
            if isinstance(adapter, DockerAdapter):   # the container's station must reach the harness
                ep = endpoint
                await adapter.ensure_running(lambda: _station_connected(ep, profile.station_id))
        elif case.role == "secc":    # the harness is the charger's SECC; the EV plugs in at `v2g_listen`
            session = SeccSession(trace)
            if isinstance(adapter, SimAdapter):
                await adapter.start_ev()
        else:
            dut_url = await adapter.start_csms(case.ocpp) if isinstance(adapter, SimAdapter) else profile.endpoint
            if isinstance(adapter, DockerAdapter):   # the container's CSMS must accept connections
                await adapter.ensure_running(lambda: _port_open(dut_url))
            if profile.security_profile >= 2:   # wss: verify the CSMS DUT's certificate; profile 3: present ours
                security = tls_security(profile.security_profile, "client", dict(profile.tls),
                                        profile.station_id, profile.password)
            else:
                security = SecurityProfile(profile.security_profile if profile.password or profile.security_profile == 0
                                           else 0, profile.station_id, profile.password)
            session = StationSession(case.ocpp, trace, dut_url, profile.station_id, security,
                                     tls_ca=str(profile.tls["ca"]) if profile.tls.get("ca") else None)
        engine = Engine(case, session, adapter, variables, on_step=on_step)
        result = await engine.run()
    except DutNotReady as exc:   # the DUT never came up: nothing about it was tested
        result = CaseResult(case.id, Verdict.INCONCLUSIVE, f"DUT container not ready: {exc}",
                            start=time.time(), stop=time.time())
        if exc.logs:
            logs["dut.log"] = exc.logs
    except Exception as exc:   # set-up failed: the harness's problem, never the DUT's
        result = CaseResult(case.id, Verdict.ERROR, f"harness set-up failed: {type(exc).__name__}: {exc}",
                            start=time.time(), stop=time.time())
    finally:
        await _bounded(session.close() if session else None)
        await _bounded(_close_v2g_captures(trace))
        await _bounded(adapter.stop())
        if endpoint is not None and (not _is_persistent(profile) or case.harness_tls):
            await _bounded(endpoint.stop())
    if isinstance(adapter, DockerAdapter) and "dut.log" not in logs:
        try:
            logs["dut.log"] = await asyncio.wait_for(adapter.case_logs(), TEARDOWN_TIMEOUT)
        except Exception:
            pass
    return Execution(result, trace, {k: v for k, v in logs.items() if v})


async def _close_v2g_captures(trace: Trace) -> None:
    """Stop the recording relays of a case's ISO 15118 sessions (their pcap is written with the evidence)."""
    from .iso15118.session_capture import capture_of, close_captures

    if capture_of(trace) is not None:
        await close_captures(trace)


def _station_connected(endpoint: CsmsEndpoint, station_id: str) -> bool:
    conn = endpoint.connections.get(station_id)
    return conn is not None and not conn.closed.is_set()


async def _port_open(url: str) -> bool:
    """The CSMS answers HTTP at its URL (a bare TCP accept may be docker's port proxy alone)."""
    u = urlparse(url)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "wss" else 80)), 2)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        if u.scheme == "wss":
            return True                 # TLS: the accept is all we can see without a handshake
        writer.write(f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.read(5), 2)
        return head.startswith(b"HTTP/")
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()


# Endpoints for DUTs configured with a fixed harness URL live for the whole session.
_persistent: dict[tuple[str, int, str], CsmsEndpoint] = {}


def _is_persistent(profile: DutProfile) -> bool:
    return bool(profile.endpoint) and (profile.adapter != "sim" or "control_url" in profile.adapter_options)


async def _csms_endpoint(case: TestCase, profile: DutProfile, trace: Trace) -> CsmsEndpoint:
    password = profile.password
    check = (lambda station_id, pw: pw == password) if password and profile.security_profile >= 1 else None
    if profile.security_profile >= 2:   # wss with the harness's server certificate; profile 3: mutual TLS
        security = tls_security(profile.security_profile, "server", dict(profile.tls))
        check = check if profile.security_profile == 2 else None
    else:
        security = SecurityProfile(1 if check else 0)
    pixit = dict(profile.pixit)
    if case.harness_tls:   # a negative TLS case: serve what the station must refuse, for this case only
        security = _variant_security(case, profile)
        if _is_persistent(profile):   # free the DUT's configured address; the next case listens there again
            url = urlparse(profile.endpoint)
            key = (url.hostname or "0.0.0.0", url.port or 9000, url.path.rstrip("/") or "/ocpp")
            if key in _persistent:
                await _bounded(_persistent.pop(key).stop())
            server = OcppServer(versions=tuple(profile.ocpp_versions), host=key[0], port=key[1], path_prefix=key[2],
                                security=security, password_check=check, trace=trace)
        else:
            server = OcppServer(versions=(case.ocpp,), security=security, password_check=check, trace=trace)
        return await CsmsEndpoint(server, pixit).start()
    if not _is_persistent(profile):
        # Embedded simulator: a fresh server on a free port per case keeps cases independent.
        server = OcppServer(versions=(case.ocpp,), security=security, password_check=check, trace=trace)
        return await CsmsEndpoint(server, pixit).start()
    # A real station is configured with a fixed URL: listen exactly there, for the whole run.
    url = urlparse(profile.endpoint)
    key = (url.hostname or "0.0.0.0", url.port or 9000, url.path.rstrip("/") or "/ocpp")
    if key not in _persistent:
        server = OcppServer(versions=tuple(profile.ocpp_versions), host=key[0], port=key[1], path_prefix=key[2],
                            security=security, password_check=check)
        _persistent[key] = await CsmsEndpoint(server, pixit).start()
    return _persistent[key]


def _variant_security(case: TestCase, profile: DutProfile) -> SecurityProfile:
    from .transport.tls_variants import pki_of, server_context

    if profile.security_profile < 2 or not profile.tls.get("ca"):
        raise ValueError("harness_tls needs the DUT at security profile 2 or 3 with a tls.ca of `charger-harness pki init`")
    ctx = server_context(pki_of(profile.tls["ca"]), case.harness_tls.get("certificate", "valid"),
                         case.harness_tls.get("version"), require_client_cert=profile.security_profile == 3)
    return SecurityProfile(profile.security_profile, ssl_context=ctx)


async def close_persistent_endpoints() -> None:
    """End of the run: stop the DUT containers (docker adapter), then the run-long endpoints."""
    try:   # docker stop waits up to docker.stop_timeout for a clean exit, then kills; removal follows
        await asyncio.wait_for(asyncio.to_thread(stop_docker_duts), 2 * TEARDOWN_TIMEOUT)
    except Exception:
        pass
    for ep in list(_persistent.values()):
        await _bounded(ep.stop())
    _persistent.clear()


async def _bounded(aw: object) -> None:
    if aw is None:
        return
    try:
        await asyncio.wait_for(aw, TEARDOWN_TIMEOUT)  # type: ignore[arg-type]
    except (asyncio.TimeoutError, Exception):
        pass   # teardown must never turn a verdict into a hang
