"""ISO 15118 step kinds: the harness plays the EV (EVCC) against the charger under test's SECC,
in the same case as its CSMS role — so one case can follow a Plug & Charge authorization from
the EV's contract certificate through the station's OCPP Authorize to the SECC's answer.

    - v2g_connect: {protocol: iso2, tls: true, auth: pnc, evse: 1}
    - v2g_session: {stop_after: PreChargeReq}       # the EV's autopilot up to and including that request
    - v2g: CurrentDemandReq                         # one request, default body from the EV model
      payload: {EVTargetCurrent: {Value: 200, Multiplier: 0, Unit: A}}
      expect_response: {ResponseCode: OK}
      repeat_until: {EVSEProcessing: Finished}      # e.g. while the SECC answers Ongoing (bounded)
    - v2g_close: {}

While the EV waits for the SECC, the station's OCPP CALLs that the case answers by `defaults:`
are answered at once (the SECC may need them to reply); all others wait for the case's next
OCPP step, in order. Every V2G message is in the case's trace (kind V2G).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, Awaitable, TypeVar

from ..ocpp.connection import IncomingCall
from ..roles.session import SessionEvent
from .matchers import match
from .verdict import DutFailure, HarnessError, Inconclusive

if TYPE_CHECKING:
    from .model import Step

T = TypeVar("T")


def _dut_errors() -> tuple[type[BaseException], ...]:
    """What the EV side raises when the SECC misbehaves (a FAIL); any other EvccError is the case's."""
    from ..iso15118.evcc import EvccSessionFailed, EvccUnexpectedResponse

    return (OSError, asyncio.TimeoutError, EvccSessionFailed, EvccUnexpectedResponse)

_PROTOCOLS = {"iso15118-2": "iso2", "iso15118-20": "iso20_dc", "iso15118-20-ac": "iso20_ac", "din70121": "din",
              "iso2": "iso2", "iso20_dc": "iso20_dc", "iso20_ac": "iso20_ac", "din": "din"}
MAX_REPEATS = 60            # repeat_until: a SECC that stays "Ongoing" longer than this FAILs


class V2gSteps:
    """Mixed into the scenario Engine (which provides session, case, adapter, variables, …)."""

    evcc: Any = None
    _held: deque[SessionEvent]

    # ---- helpers -------------------------------------------------------------------------

    def _need_evcc(self) -> Any:
        if self.evcc is None:
            raise HarnessError("no ISO 15118 session: add a `v2g_connect` step first")
        return self.evcc

    async def _v2g_while(self, aw: Awaitable[T], step: "Step") -> T:
        """Await the EV side while answering the station's OCPP CALLs the case has defaults for."""
        task = asyncio.ensure_future(aw)
        try:
            while not task.done():
                getter = asyncio.ensure_future(self.session.events.get())           # type: ignore[attr-defined]
                done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                ev = getter.result()
                if isinstance(ev, IncomingCall) and ev.call.action in self.case.defaults:   # type: ignore[attr-defined]
                    await self._auto_reply(ev, step)                                       # type: ignore[attr-defined]
                else:
                    self._held.append(ev)    # the case's next OCPP step sees it, in order
            return await task
        finally:
            if not task.done():
                task.cancel()

    def _protocol(self, step: "Step", spec: dict[str, Any]) -> str:
        name = str(spec.get("protocol") or getattr(self.case, "protocol", "") or "iso15118-2")  # type: ignore[attr-defined]
        if name not in _PROTOCOLS:
            raise HarnessError(f"{step.source}:{step.line}: unknown ISO 15118 protocol {name!r}; "
                               f"use one of {', '.join(sorted(_PROTOCOLS))}")
        return _PROTOCOLS[name]

    # ---- step kinds ----------------------------------------------------------------------

    async def _step_v2g_connect(self, step: "Step") -> str:
        from ..iso15118.evcc import Evcc

        spec = dict(self._sub(step.spec.get("v2g_connect") or {}, step))                   # type: ignore[attr-defined]
        protocol = self._protocol(step, spec)
        where = await self._secc_address(spec, step)
        pki = None
        if spec.get("auth", "eim") == "pnc" or spec.get("tls"):
            pki = self._v2g_pki()
        ev = None
        if spec.get("ev"):
            from ..iso15118.ev_model import EvModel
            ev = EvModel(**spec["ev"])
        from ..iso15118.session_capture import capture_for

        cap = capture_for(self.session.trace)                                               # type: ignore[attr-defined]
        host, port = where.get("host"), where.get("port")
        if host and port:     # EV → recording relay → SECC: the case's evidence gets v2g.pcap
            host, port = await cap.start_relay(host, int(port))
        self.evcc = Evcc(protocol, ev=ev, pki=pki, tls=bool(spec.get("tls", where.get("tls", False))),
                         auth=str(spec.get("auth", "eim")), trace=self.session.trace,      # type: ignore[attr-defined]
                         keylog=cap.keylog_path,
                         peer_name=f"[{where['host']}]:{where['port']}" if where.get("host") else None)
        if pki is not None:
            self._present_contract(pki, str(spec.get("contract", "contract")), step)
        try:
            await self._v2g_while(self.evcc.connect(host, port, iface=where.get("iface"), timeout=step.timeout), step)
        except _dut_errors() as exc:
            raise DutFailure(f"the EV could not reach the charger's SECC: {type(exc).__name__}: {exc}",
                             expected="SDP answer, TCP/TLS connection and SupportedAppProtocol handshake",
                             received=str(exc)) from None
        if getattr(self.evcc, "discovery", None) is not None:
            cap.note_sdp_exchanges(self.evcc.discovery.exchanges)
        return f"connected to the SECC ({protocol}, {'TLS' if self.evcc.tls else 'TCP'})"

    def _present_contract(self, pki: Any, name: str, step: "Step") -> None:
        """The contract chain the EV presents: the PKI's good one or a negative variant
        (contract_revoked, contract_expired, contract_wrong_emaid, contract_foreign_root, …);
        ${v2g.emaid} is the eMAID the EV presents, ${v2g.pki_emaid} the PKI's own."""
        from cryptography.x509.oid import NameOID

        chains = {k: v for k, v in pki.chains.items() if k.startswith("contract")}
        if name not in chains:
            raise HarnessError(f"{step.source}:{step.line}: no contract chain {name!r}; the V2G PKI has "
                               f"{', '.join(sorted(chains))}")
        chain = chains[name]
        if name != "contract":
            self.evcc._use_contract(pki.keys[chain["leaf"]],
                                    [pki.certs[n] for n in [chain["leaf"], *chain["intermediates"]]])
        leaf = pki.certs[chain["leaf"]]
        cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        self.variables["v2g"] = {"emaid": str(cn[0].value) if cn else "", "pki_emaid": pki.emaid,    # type: ignore[attr-defined]
                                 "contract": name}

    async def _secc_address(self, spec: dict[str, Any], step: "Step") -> dict[str, Any]:
        """Explicit host/port, else the simulator's SECC (station action `secc`), else SDP on the
        interface in the PIXIT (`secc_iface`)."""
        if spec.get("host"):
            return {"host": spec["host"], "port": int(spec["port"]), "tls": spec.get("tls")}
        pixit = self.variables.get("pixit", {})                                             # type: ignore[attr-defined]
        if pixit.get("secc_iface"):
            return {"iface": pixit["secc_iface"]}
        outcome = await self.adapter.perform("secc", {"evse": spec.get("evse", pixit.get("evse_id", 1)),    # type: ignore[attr-defined]
                                                      "tls": spec.get("tls", False)},
                                             "Connect the harness EV to the charger's SECC.", step.timeout)
        data = outcome.result if isinstance(outcome.result, dict) else {}
        if outcome.status != "done" or not data.get("port"):
            raise Inconclusive(f"the DUT's SECC address is unknown ({outcome.status}: {outcome.detail or data}); "
                               "give v2g_connect host/port or the PIXIT secc_iface")
        return data

    def _v2g_pki(self) -> Any:
        from ..dut.builtin import process_v2g_pki
        from ..pki.v2g import load_v2g_pki

        pixit = self.variables.get("pixit", {})                                             # type: ignore[attr-defined]
        if pixit.get("v2g_pki"):
            return load_v2g_pki(pixit["v2g_pki"])
        return process_v2g_pki()

    async def _step_v2g_session(self, step: "Step") -> str:
        evcc = self._need_evcc()
        plan = dict(self._sub(step.spec.get("v2g_session") or {}, step))                    # type: ignore[attr-defined]
        try:
            exchanges = await self._v2g_while(evcc.run(plan), step)
        except _dut_errors() as exc:
            raise DutFailure(f"the ISO 15118 session broke off: {type(exc).__name__}: {exc}",
                             expected=f"a session per the standard{' up to ' + plan['stop_after'] if plan.get('stop_after') else ''}",
                             received=[f"{x.request_name} → {x.response_name} {x.response_code}" for x in evcc.exchanges[-4:]]) from None
        bad = [(x, v) for x in exchanges for v in getattr(x, "violations", [])]
        if bad:
            x, v = bad[0]
            raise DutFailure(f"{x.response_name}: {v}", expected="responses per ISO 15118 (codes, values, timing)",
                             received=x.response)
        failed = [x for x in exchanges if not str(x.response_code).startswith("OK")]
        if failed and not plan.get("allow_failed"):
            x = failed[0]
            raise DutFailure(f"{x.response_name} answered {x.response_code}", expected="ResponseCode OK",
                             received=x.response)
        return f"{len(exchanges)} exchanges, last {exchanges[-1].response_name if exchanges else '-'}"

    async def _step_v2g(self, step: "Step") -> str:
        evcc = self._need_evcc()
        name = step.target
        overrides = self._sub(step.spec.get("payload") or {}, step)                        # type: ignore[attr-defined]
        until = step.spec.get("repeat_until")
        variables = self._vars(step)                                                       # type: ignore[attr-defined]
        for attempt in range(1, MAX_REPEATS + 1):
            try:
                x = await self._v2g_while(evcc.request(name, overrides, timeout=step.spec.get("within")), step)
            except _dut_errors() as exc:
                raise DutFailure(f"{name}: no valid answer from the SECC: {type(exc).__name__}: {exc}",
                                 expected=f"{name.replace('Req', 'Res')} within the standard's timeout",
                                 received=str(exc)) from None
            for v in getattr(x, "violations", []):
                raise DutFailure(f"{x.response_name}: {v}", expected="a response per ISO 15118", received=x.response)
            if until is None or not match(until, v2g_jsonable(x.response), variables):
                break
            await asyncio.sleep(float(step.spec.get("repeat_every", 0.2)))
        else:
            raise DutFailure(f"{name}: the SECC never reached {until} in {MAX_REPEATS} requests",
                             expected=until, received=x.response)
        shown = v2g_jsonable(x.response)
        if "expect_response" in step.spec:
            mism = match(step.spec["expect_response"], shown, variables)
            if mism:
                raise DutFailure(f"{x.response_name} does not match: " + "; ".join(map(str, mism)),
                                 expected=self._shown(step.spec["expect_response"], step), received=shown)  # type: ignore[attr-defined]
        self._capture(step, shown)                                                         # type: ignore[attr-defined]
        tries = f" after {attempt} requests" if attempt > 1 else ""
        return f"{x.response_name} {x.response_code} in {x.elapsed_s * 1000:.0f} ms{tries}"

    async def _step_v2g_close(self, step: "Step") -> str:
        if self.evcc is not None:
            await self.evcc.close()
            self.evcc = None
        return "ISO 15118 session closed"

    # ---- the harness as the charger's SECC, the DUT an EV (role secc) ------------------------

    def _need_secc(self) -> Any:
        secc = getattr(self.session, "secc", None)                                        # type: ignore[attr-defined]
        if secc is None:
            raise HarnessError("no SECC: start with a `v2g_listen` step (role secc)")
        return secc

    async def _step_v2g_listen(self, step: "Step") -> str:
        from ..iso15118.charger_model import ChargerModel
        from ..iso15118.secc import Secc

        if getattr(self.session, "role", "") != "secc":                                   # type: ignore[attr-defined]
            raise HarnessError("`v2g_listen` is a step for cases where the harness plays the SECC (role: secc)")
        spec = dict(self._sub(step.spec.get("v2g_listen") or {}, step))                    # type: ignore[attr-defined]
        protocol = self._protocol(step, spec)
        tls = bool(spec.get("tls", protocol.startswith("iso20")))     # -20 mandates TLS
        charger = dict(spec.get("charger") or {})
        ac = bool(charger.pop("ac", False))
        if ac:    # an AC charger (ISO 15118-2 AC): ChargerModel.ac(power_kw, …)
            model = ChargerModel.ac(float(charger.pop("power_kw", 22.0)), **charger)      # type: ignore[attr-defined]
        else:
            model = (ChargerModel.mcs if charger.pop("mcs", False) else ChargerModel.ccs2_dc)(
                float(charger.pop("power_kw", 150.0)), **charger)
        from ..iso15118.session_capture import capture_for

        cap = capture_for(self.session.trace)                                               # type: ignore[attr-defined]
        secc = Secc((protocol,), charger=model, pki=self._v2g_pki() if tls else None, tls=tls,
                    trace=self.session.trace, keylog=str(cap.keylog_path))                  # type: ignore[attr-defined]
        secc.scripted = True
        pixit = self.variables.get("pixit", {})                                            # type: ignore[attr-defined]
        iface = pixit.get("ev_iface")
        host, port = await secc.start("::1" if not iface else "::", 0, iface=iface)
        if not iface:         # the EV under test connects through the recording relay (v2g.pcap)
            host, port = await cap.start_relay(host, port)
        self.session.secc = secc                                                            # type: ignore[attr-defined]
        outcome = await self.adapter.perform(                                               # type: ignore[attr-defined]
            "plug_in", {"host": host, "port": port, "protocol": protocol, "tls": tls,
                        "pki": secc.pki, "preset": pixit.get("ev_preset", "truck"),
                        **({"energy_mode": spec.get("energy_mode", "AC_three_phase_core")} if ac else {}),
                        # what the EV under test is asked to do (the built-in EV honours these)
                        **{k: v for k, v in (spec.get("ev") or {}).items() if k in ("auth", "dynamic", "preset")}},
            f"Plug the EV under test into the harness's charger (SECC on {iface or host}, port {port}).",
            step.timeout)
        if outcome.status != "done":
            raise Inconclusive(f"the EV was not plugged in ({outcome.status}: {outcome.detail})")
        return f"SECC listening on [{host}]:{port} ({protocol}, {'TLS' if tls else 'TCP'}); EV plugged in"

    def _new_violation(self, secc: Any, seen: int, request: str) -> None:
        if len(secc.violations) > seen:
            v = secc.violations[seen]
            raise DutFailure(f"{v.message or request}: {v.text}", expected=f"the EV follows ISO 15118 ({v.clause})",
                             received=v.text, requirement=v.clause)

    async def _step_v2g_expect(self, step: "Step") -> str:
        from ..iso15118.secc import SeccError

        secc = self._need_secc()
        name = step.target
        loop = asyncio.get_running_loop()
        deadline = loop.time() + step.timeout
        seen = len(secc.violations)
        skipped: list[str] = []
        while True:
            try:
                got, body = await secc.expect_request(None, timeout=min(0.3, max(deadline - loop.time(), 0.01)))
            except SeccError:
                self._new_violation(secc, seen, name)      # e.g. the SECC refused it itself (wrong SessionID)
                record = secc.sessions[-1] if secc.sessions else None
                if record is not None and record.ended_in:
                    raise DutFailure(f"the EV's session ended ({record.ended_in}: {record.reason}) before {name}",
                                     expected=name, received=skipped[-3:] or record.ended_in) from None
                if loop.time() < deadline:
                    continue
                raise DutFailure(f"no {name} from the EV within {step.timeout:g} s", expected=name,
                                 received=skipped[-3:] or "nothing") from None
            self._new_violation(secc, seen, got)
            if got == name:
                break
            skip = step.spec.get("skip_others")
            if not (skip is True or (isinstance(skip, list) and got in skip)):
                await secc.respond({})
                raise DutFailure(f"the EV sent {got} where {name} was due", expected=name, received=got)
            skipped.append(got)
            await secc.respond({})
        shown = v2g_jsonable(body)
        if "match" in step.spec:
            mism = match(step.spec["match"], shown, self._vars(step))                        # type: ignore[attr-defined]
            if mism:
                await secc.respond({})
                raise DutFailure(f"{name} does not match: " + "; ".join(map(str, mism)),
                                 expected=self._shown(step.spec["match"], step), received=shown)   # type: ignore[attr-defined]
        self._capture(step, shown)                                                          # type: ignore[attr-defined]
        await secc.respond(self._sub(step.spec.get("reply") or {}, step))                   # type: ignore[attr-defined]
        note = f" (answered {len(skipped)} before it)" if skipped else ""
        return f"{name} received{note}"

    async def _step_v2g_expect_end(self, step: "Step") -> str:
        from ..iso15118.secc import SeccError

        secc = self._need_secc()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + step.timeout
        seen = len(secc.violations)
        names: list[str] = []
        while loop.time() < deadline:
            record = secc.sessions[-1] if secc.sessions else None
            if record is not None and record.ended_in:
                break
            try:
                got, _ = await secc.expect_request(None, timeout=min(0.3, max(deadline - loop.time(), 0.01)))
            except SeccError:
                continue
            names.append(got)
            self._new_violation(secc, seen, got)
            await secc.respond({})
        else:
            raise DutFailure(f"the EV's session did not end within {step.timeout:g} s", expected="SessionStopReq",
                             received=names[-3:] or "nothing")
        await asyncio.sleep(0.05)                 # let the SECC record the close that follows SessionStopRes
        self._new_violation(secc, seen, names[-1] if names else "session end")
        record = secc.sessions[-1]
        if record.ended_in != "SessionStop":
            raise DutFailure(f"the EV ended the session without SessionStopReq ({record.ended_in}: {record.reason})",
                             expected="SessionStopReq, then the EV closes the connection",
                             received=f"{record.ended_in} after {names[-1] if names else 'nothing'}")
        return f"session ended with SessionStop after {len(names)} more requests"


def v2g_jsonable(value: Any) -> Any:
    """A V2G body for matchers: bytes as upper-case hex; a physical value (-2 Value × 10^Multiplier,
    -20 Value × 10^Exponent) gains `scaled`, its plain number, so a case can compare amounts."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex().upper()
    if isinstance(value, list):
        return [v2g_jsonable(v) for v in value]
    if isinstance(value, dict):
        out = {k: v2g_jsonable(v) for k, v in value.items()}
        if isinstance(value.get("Value"), int) and ("Multiplier" in value or "Exponent" in value):
            out["scaled"] = value["Value"] * 10 ** int(value.get("Multiplier", value.get("Exponent", 0)))
        return out
    return value
