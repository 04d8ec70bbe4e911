"""Runs one test case: steps in order against a role session and a DUT adapter.

Blame rules (DESIGN.md "Verdicts"):
- The DUT did something forbidden or failed to act in time → `DutFailure` (FAIL).
- A precondition could not be reached (DUT never connected, operator skipped or an
  out-of-band action did not complete) → `Inconclusive`.
- The case or the harness is wrong (bad matcher, harness-side schema violation,
  exception) → `HarnessError` (ERROR).

Out-of-band actions run in the background: a station reacts to a plugged-in cable while
the operator is still confirming, so the next `expect` must already be listening. An
`expect` that times out while an action is unconfirmed is INCONCLUSIVE, not FAIL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable

from ..ocpp.connection import Closed, ConnectionLost, Garbage, IncomingCall, LocalSchemaError, Response, StrayResponse
from ..ocpp.framing import CallError, new_message_id
from ..dut.base import ActionOutcome, Adapter
from ..roles.defaults import default_reply
from ..roles.session import Connected, CsmsSession, Session, SessionEvent, StationSession
from ..transport.client import HandshakeRefused, TlsHandshakeFailed, UnexpectedSubprotocol
from .matchers import MatcherError, get_path, match, substitute
from .model import Step, TestCase
from .v2g_steps import V2gSteps
from .verdict import CaseResult, DutFailure, HarnessError, Inconclusive, Outcome, StepResult, Verdict


@dataclass
class _PendingAction:
    step: int
    name: str
    task: asyncio.Task[ActionOutcome]
    settled: bool = False
    outcome: ActionOutcome | None = None


# A station refused this often (a retry included) has shown how it connects: no need to wait longer.
_REFUSALS_TO_FAIL = 2


@dataclass
class Engine(V2gSteps):
    case: TestCase
    session: Session
    adapter: Adapter
    variables: dict[str, Any] = field(default_factory=dict)
    on_step: Callable[[StepResult], None] | None = None   # live progress (CLI)
    steps: list[StepResult] = field(default_factory=list)
    identity: dict[str, str] = field(default_factory=dict)
    _actions: list[_PendingAction] = field(default_factory=list)
    _index: int = 0
    _step: Step | None = None
    _tx16_counter: int = 0
    _held: deque[SessionEvent] = field(default_factory=deque)   # OCPP events that arrived during a V2G step

    # ---- public ----------------------------------------------------------------

    async def run(self) -> CaseResult:
        result = CaseResult(self.case.id, Verdict.PASS, start=time.time())
        # header `vars:` first, as if captured; a PIXIT of the same name (a real DUT's firmware URL,
        # signing certificate, …) replaces the simulator-oriented default the case carries
        pixit = self.variables.get("pixit") or {}
        case_vars = {k: pixit.get(k, v) for k, v in self.case.vars.items()}
        self.variables = {**case_vars, **self.variables}
        # refusals before this case (a run-long endpoint) are other cases' evidence
        server = self.session.endpoint.server if isinstance(self.session, CsmsSession) else None
        self._refusal_mark = len(server.refusals) if server else 0
        self._attempt_mark = server.tls_attempts if server else 0
        try:
            await asyncio.wait_for(self._run_steps(), self.case.timeout)
            await self._settle_actions()
        except Outcome as out:
            self._fill(result, out)
        except asyncio.TimeoutError:
            pending = [a for a in self._actions if not a.task.done()]
            offline = not self.session.ever_connected
            cls = Inconclusive if pending or offline else HarnessError
            why = (f"out-of-band action '{pending[0].name}' never completed" if pending
                   else "the DUT never connected; nothing was tested" if offline
                   else "raise the case `timeout:` or shorten its steps")
            self._fill(result, cls(f"case exceeded its {self.case.timeout:g} s budget during step {self._index}; {why}",
                                   step=self._index, step_name=self._step.describe() if self._step else ""))
        except Exception as exc:  # anything unplanned is the harness's fault, never the DUT's
            self._fill(result, HarnessError(f"harness exception: {type(exc).__name__}: {exc}", step=self._index,
                                            step_name=self._step.describe() if self._step else ""))
        finally:
            await self._cancel_actions()
            self._annotate_actions()
            if self.evcc is not None:     # the EV unplugs whatever the verdict
                try:
                    await asyncio.wait_for(self.evcc.close(), 5)
                except Exception:
                    pass
                self.evcc = None
            await self._cleanup()
        result.steps = self.steps
        result.captures = {k: v for k, v in self.variables.items() if k not in ("pixit", "dut", "connection")}
        result.dut_identity = dict(self.identity)
        result.stop = time.time()
        return result

    async def _cleanup(self) -> None:
        """Restore the DUT for the next case (e.g. unplug). Recorded, never part of the verdict."""
        for step in self.case.cleanup:
            started = time.time()
            try:
                params = self._sub(step.spec.get("params") or {}, step)
                say = str(self._sub(step.spec.get("say", ""), step)) or f"Clean-up: perform '{step.target}'"
                outcome = await asyncio.wait_for(self.adapter.perform(str(step.target), params, say, step.timeout),
                                                 step.timeout + 1)
                note = f"clean-up {outcome.status}" + (f": {outcome.detail}" if outcome.detail else "")
            except Exception as exc:   # clean-up must never hide or change the verdict
                note = f"clean-up failed: {type(exc).__name__}: {exc}"
            self.steps.append(StepResult(len(self.steps) + 1, f"clean-up: {step.describe()}", "cleanup",
                                         Verdict.PASS, started, time.time(), note))

    def _fill(self, result: CaseResult, out: Outcome) -> None:
        result.verdict = out.verdict
        result.message = out.message
        result.failed_step = out.step
        result.failed_step_name = out.step_name
        result.expected = out.expected
        result.received = out.received
        result.requirement = out.requirement
        if self.steps and out.step is not None and self.steps[-1].index == out.step:
            return
        if out.step is not None:
            now = time.time()
            self._record(StepResult(out.step, out.step_name, self._step.kind if self._step else "", out.verdict,
                                    now, now, out.message))

    def _record(self, sr: StepResult) -> None:
        self.steps.append(sr)
        if self.on_step:
            self.on_step(sr)

    # ---- step loop -------------------------------------------------------------

    async def _run_steps(self) -> None:
        for i, step in enumerate(self.case.steps, start=1):
            self._index, self._step = i, step
            await self._check_actions()
            started = time.time()
            handler: Callable[[Step], Awaitable[str]] = getattr(self, f"_step_{step.kind}")
            try:
                note = await handler(step)
            except Outcome as out:
                if isinstance(out, DutFailure) and step.spec.get("precondition"):
                    # The DUT didn't reach the state this case needs (e.g. a read-only setting):
                    # nothing about the tested requirement is proven either way.
                    out = Inconclusive(f"precondition not met: {out.message}", expected=out.expected,
                                       received=out.received, requirement=out.requirement)
                out.step = i
                out.step_name = self._name(step)
                out.requirement = out.requirement or step.spec.get("requirement")
                self._record(StepResult(i, self._name(step), step.kind, out.verdict, started, time.time(), out.message,
                                        {"expected": out.expected, "received": out.received}))
                raise out from None
            except MatcherError as exc:
                raise HarnessError(f"test case error in step {i} ({step.source}:{step.line}): {exc}") from None
            self._record(StepResult(i, self._name(step), step.kind, Verdict.PASS, started, time.time(), note or ""))

    def _name(self, step: Step) -> str:
        """The step's description with variables resolved (as written if they can't be)."""
        text = step.describe()
        if "$" not in text:
            return text
        try:
            return str(substitute(text, self._vars(step)))
        except MatcherError:
            return text

    def _vars(self, step: Step) -> dict[str, Any]:
        if self.session.connection_info:
            self.variables["connection"] = self.session.connection_info
        extra = step.spec.get("_vars")
        return {**self.variables, **extra} if extra else self.variables

    def _sub(self, value: Any, step: Step) -> Any:
        try:
            return substitute(value, self._vars(step))
        except MatcherError as exc:
            raise HarnessError(f"test case error ({step.source}:{step.line}): {exc}") from None

    def _shown(self, spec: Any, step: Step) -> Any:
        """A matcher with its variables resolved, for FAIL messages; as written if it can't be."""
        try:
            return substitute(spec, self._vars(step))
        except MatcherError:
            return spec

    # ---- event handling shared by all waiting steps ---------------------------

    async def _next(self, deadline: float, step: Step, allow_reconnect: bool = False,
                    wake_on_connect: bool = False) -> SessionEvent | None:
        """Next event that needs the step's attention; None when the deadline passes."""
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            watch = self._refusals_decide()
            ev = await self._event_or_action(min(remaining, 0.5) if watch else remaining)
            if ev is None:
                if watch and self._refused_attempts() >= _REFUSALS_TO_FAIL:
                    raise self._never_connected("the station did not get a connection")
                continue   # an action finished (and succeeded) or time is up: re-check the deadline
            if wake_on_connect and isinstance(ev, Connected):
                return ev      # a station may connect and wait silently for the CSMS to speak
            screened = await self._screen(ev, step, allow_reconnect)
            if screened is not None:
                return screened

    async def _next_raw(self, timeout: float) -> SessionEvent:
        """The next session event, held ones (from a V2G step) first; TimeoutError when none comes."""
        if self._held:
            return self._held.popleft()
        return await self.session.next_event(timeout)

    async def _event_or_action(self, timeout: float) -> SessionEvent | None:
        """The next DUT event, or None when the time is up or a background action finished.

        A finished action is settled at once: if it was skipped or failed, the case is
        INCONCLUSIVE now rather than after the waiting step's full timeout.
        """
        if self._held:
            return self._held.popleft()
        unsettled = [a for a in self._actions if not a.settled]
        if not unsettled:
            try:
                return await self.session.next_event(timeout)
            except asyncio.TimeoutError:
                return None
        getter = asyncio.ensure_future(self.session.events.get())
        done, _ = await asyncio.wait({getter, *(a.task for a in unsettled)}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        for a in unsettled:
            if a.task.done():
                await self._settle(a)
        return None

    async def _screen(self, ev: SessionEvent, step: Step, allow_reconnect: bool) -> IncomingCall | None:
        """Apply the rules that hold in every step; return a CALL that the step must look at.

        Garbage, stray responses and schema-invalid CALLs are FAILs wherever they happen;
        a closed connection is a FAIL unless the step expects the DUT to reconnect.
        """
        if isinstance(ev, Garbage):
            raise DutFailure(f"DUT sent a frame that is not valid OCPP-J ({ev.reason})",
                             expected="an OCPP-J frame [2|3|4, …]", received=ev.raw,
                             requirement="OCPP-J 4.1 message structure")
        if isinstance(ev, StrayResponse):
            raise DutFailure(f"DUT sent a response with message id {ev.frame.unique_id!r} that matches no CALL",
                             expected="a response id equal to an outstanding CALL's id",
                             received=ev.frame.to_list(), requirement="OCPP-J 4.1.3 MessageId correlation")
        if isinstance(ev, Closed):
            if allow_reconnect:
                return None
            raise DutFailure(f"DUT closed the connection (code={ev.code}, {ev.reason}) during '{step.describe()}'",
                             expected="connection kept open", received=f"close code {ev.code}")
        if isinstance(ev, Connected):
            return None
        if ev.violation is not None:
            await self._auto_reply(ev, step)
            raise DutFailure(f"DUT sent a {ev.call.action} that violates the OCPP {self.session.version} schema: "
                             f"{ev.violation}", expected=f"{ev.call.action} payload valid against the official schema",
                             received=ev.call.payload, requirement=f"OCPP {self.session.version} JSON schema")
        return ev

    def _capture_identity(self, ev: IncomingCall) -> None:
        if ev.call.action != "BootNotification":
            return
        p = ev.call.payload
        if self.session.version == "1.6":
            src = {"vendor": p.get("chargePointVendor"), "model": p.get("chargePointModel"),
                   "serial": p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber"),
                   "firmware": p.get("firmwareVersion")}
        else:
            cs = p.get("chargingStation", {})
            src = {"vendor": cs.get("vendorName"), "model": cs.get("model"), "serial": cs.get("serialNumber"),
                   "firmware": cs.get("firmwareVersion")}
        self.identity.update({k: str(v) for k, v in src.items() if v})

    async def _auto_reply(self, ev: IncomingCall, step: Step) -> None:
        """Answer a CALL no step waits for, as a real peer would."""
        conn = self.session.connection
        if conn is None:
            return
        self._capture_identity(ev)
        call = ev.call
        if ev.unknown_action:
            await self._safe(conn.reply_error(call, "NotImplemented", f"unknown action {call.action}"))
            return
        if ev.violation is not None:
            code = "FormationViolation" if self.session.version == "1.6" else "FormatViolation"
            await self._safe(conn.reply_error(call, code, str(ev.violation)))
            return
        override = self.case.defaults.get(call.action)
        if override is not None:
            payload = self._sub(override, step)
        else:
            payload = default_reply(self.session.role, self.session.version, call.action, call.payload,
                                    {**self.variables.get("pixit", {}), "_next_tx_id": self._next_tx16()})
        if payload is None:
            await self._safe(conn.reply_error(call, "NotImplemented", f"harness has no default reply for {call.action}"))
            return
        await self._safe(conn.reply(call, payload))

    def _next_tx16(self) -> int:
        self._tx16_counter += 1
        return 1000 + self._tx16_counter

    @staticmethod
    async def _safe(aw: Awaitable[None]) -> None:
        try:
            await aw
        except ConnectionLost:
            pass   # the close event that follows tells the story

    def _deadline(self, seconds: float) -> float:
        return asyncio.get_running_loop().time() + seconds

    async def _need_connection(self, step: Step, deadline: float) -> None:
        """Wait until the DUT is connected (harness as CSMS); INCONCLUSIVE if it never is."""
        while self.session.connection is None:
            ev = await self._next(deadline, step, allow_reconnect=True, wake_on_connect=True)
            if ev is None:
                if not self.session.ever_connected:
                    raise self._never_connected(f"the DUT never connected within {step.timeout:g} s")
                raise DutFailure(f"the DUT did not reconnect within {step.timeout:g} s")
            if isinstance(ev, IncomingCall):
                await self._auto_reply(ev, step)

    async def _timeout_verdict(self, step: Step, what: str, expected: Any = None) -> Outcome:
        pending = [a for a in self._actions if not a.task.done()]
        if pending:
            return Inconclusive(f"{what}, and out-of-band action '{pending[0].name}' (step {pending[0].step}) "
                                "was not confirmed; nothing proven", expected=expected)
        if not self.session.ever_connected:
            return self._never_connected(what, expected)
        return DutFailure(what, expected=expected, received=self._recent_received())

    def _refusals_decide(self) -> bool:
        """In a security-profile case the harness's refusals of a never-connected station are the verdict."""
        return ((self.case.security_profile is not None or self.case.connection_test)
                and isinstance(self.session, CsmsSession) and not self.session.ever_connected)

    def _refused_attempts(self) -> int:
        assert isinstance(self.session, CsmsSession)
        return len(self.session.endpoint.server.refusals) - self._refusal_mark

    def _never_connected(self, what: str, expected: Any = None) -> Outcome:
        """No connection from the station: INCONCLUSIVE — unless this is a security-profile case
        and the harness refused the station's attempts (wrong or missing credentials, no client
        certificate, an old TLS version): how the station connects is then what is under test."""
        refusals = []
        if isinstance(self.session, CsmsSession):
            refusals = [r.reason if r.status == 0 else f"HTTP {r.status}: {r.reason}"
                        for r in self.session.endpoint.server.refusals[self._refusal_mark:]]
        if refusals and (self.case.security_profile is not None or self.case.connection_test):
            return DutFailure(f"{what}: every attempt of the station was refused by the harness",
                              expected=f"a connection at security profile {self.case.security_profile}",
                              received=refusals[:3])
        tail = f"; the harness refused its attempts: {'; '.join(refusals[:2])}" if refusals else ""
        return Inconclusive(f"{what}: the DUT never connected; nothing was tested{tail}", expected=expected)

    def _recent_received(self) -> Any:
        rx = [e for e in self.session.trace.entries if e.direction == "rx"][-3:]
        return [f"{e.kind} {e.action} {e.raw[:200]}" for e in rx] or "nothing"

    # ---- step kinds ------------------------------------------------------------

    async def _step_expect(self, step: Step) -> str:
        action = step.target
        deadline = self._deadline(step.timeout)
        started = asyncio.get_running_loop().time()
        allow_reconnect = bool(step.spec.get("allow_reconnect"))
        skipped: list[str] = []
        while True:
            ev = await self._next(deadline, step, allow_reconnect)
            if ev is None:
                others = f" (meanwhile received: {', '.join(skipped)})" if skipped else ""
                raise await self._timeout_verdict(step, f"no {action} from the DUT within {step.timeout:g} s{others}",
                                                  expected={"action": action, "match": step.spec.get("match")})
            assert isinstance(ev, IncomingCall)
            if ev.call.action != action:
                skipped.append(ev.call.action)
                await self._auto_reply(ev, step)
                continue
            if step.spec.get("until_match") and "match" in step.spec and \
                    match(step.spec["match"], ev.call.payload, self._vars(step)):
                skipped.append(f"{action} (not matching)")   # wait for the one that matches
                await self._auto_reply(ev, step)
                continue
            self._capture_identity(ev)
            return await self._handle_expected_call(ev, step, asyncio.get_running_loop().time() - started)

    async def _handle_expected_call(self, ev: IncomingCall, step: Step, elapsed: float) -> str:
        call, conn = ev.call, self.session.connection
        variables = self._vars(step)
        mismatches = match(step.spec["match"], call.payload, variables) if "match" in step.spec else []
        not_before = step.spec.get("not_before")
        # Answer first so the DUT isn't left hanging, then judge.
        if conn is not None and not step.spec.get("no_reply"):
            if "reply_error" in step.spec:
                err = self._sub(step.spec["reply_error"], step)
                await self._safe(conn.reply_error(call, err["code"], err.get("description", ""), err.get("details")))
            elif "reply" in step.spec:
                try:
                    await self._safe(conn.reply(call, self._sub(step.spec["reply"], step)))
                except LocalSchemaError as exc:
                    raise HarnessError(f"the case's reply is invalid: {exc}") from None
            else:
                await self._auto_reply(ev, step)
        if not_before is not None and elapsed < float(not_before):
            raise DutFailure(f"{call.action} arrived after {elapsed:.2f} s, earlier than the allowed {float(not_before):g} s",
                             expected=f"{call.action} not before {float(not_before):g} s", received=call.payload)
        if mismatches:
            raise DutFailure(f"{call.action} does not match: " + "; ".join(map(str, mismatches[:5])),
                             expected=self._shown(step.spec["match"], step), received=call.payload)
        self._capture(step, call.payload)
        return f"received {call.action} after {elapsed:.2f} s"

    def _capture(self, step: Step, payload: Any) -> None:
        for name, path in (step.spec.get("capture") or {}).items():
            try:
                self.variables[name] = get_path(payload, path)
            except KeyError:
                raise DutFailure(f"cannot capture {name}: the payload has no {path}", expected=f"a value at {path}",
                                 received=payload) from None

    async def _step_send(self, step: Step) -> str:
        action = step.target
        deadline = self._deadline(step.timeout)
        if self.session.connection is None and self.session.role == "csms":
            await self._need_connection(step, deadline)
        conn = self.session.connection
        if conn is None:
            raise Inconclusive("the harness has no connection to the DUT; connect first")
        try:
            if "raw" in step.spec:
                uid = new_message_id()
                text = str(step.spec["raw"]).replace("$uid", uid)
                text = self._sub(text, step) if "${" in text else text
                fut = conn.expect_response_to(uid, action) if f'"{uid}"' in text else None
                await conn.send_raw(text)
            else:
                payload = self._sub(step.spec.get("payload", {}), step)
                fut = await conn.send_call(action, payload, validate=step.spec.get("validate", True))
        except LocalSchemaError as exc:
            raise HarnessError(str(exc)) from None
        except ConnectionLost as exc:
            raise DutFailure(f"could not send {action}: {exc}") from None
        response = await self._await_response(fut, step, deadline) if fut is not None else None
        if step.spec.get("expect_no_response"):
            if response is not None:
                raise DutFailure(f"DUT answered {action} although no answer was allowed", received=response.frame.to_list())
            return "no response, as required"
        if response is None:
            if fut is None:   # a raw frame without a correlatable id: wait for nothing
                return "raw frame sent"
            raise await self._timeout_verdict(step, f"no response to {action} within {step.timeout:g} s",
                                              expected="CALLRESULT or CALLERROR")
        return self._judge_response(step, response)

    async def _await_response(self, fut: asyncio.Future[Response], step: Step, deadline: float) -> Response | None:
        """Wait for our CALL's answer while still serving what the DUT sends meanwhile."""
        loop = asyncio.get_running_loop()
        while not fut.done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                fut.cancel()
                return None
            getter = loop.create_task(self.session.events.get())
            done, _ = await asyncio.wait({fut, getter}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                call = await self._screen(getter.result(), step, allow_reconnect=False)
                if call is not None:
                    await self._auto_reply(call, step)
            else:
                getter.cancel()
        try:
            return fut.result()
        except ConnectionLost as exc:
            raise DutFailure(f"DUT closed the connection before answering {step.target}: {exc}") from None
        except asyncio.CancelledError:
            return None

    def _judge_response(self, step: Step, response: Response) -> str:
        action = step.target
        frame = response.frame
        variables = self._vars(step)
        if "expect_error" in step.spec:
            if not isinstance(frame, CallError):
                raise DutFailure(f"expected a CALLERROR to {action}, got a CALLRESULT",
                                 expected={"CALLERROR": step.spec["expect_error"]}, received=frame.to_list())
            spec = step.spec["expect_error"]
            mism = match({"code": spec["code"]} if "code" in spec else {}, {"code": frame.error_code}, variables)
            if mism:
                raise DutFailure(f"wrong CALLERROR code to {action}: " + "; ".join(map(str, mism)),
                                 expected=spec, received=frame.to_list())
            return f"CALLERROR {frame.error_code} after {response.elapsed:.2f} s"
        if isinstance(frame, CallError):
            raise DutFailure(f"DUT answered {action} with CALLERROR {frame.error_code} ({frame.error_description})",
                             expected={"CALLRESULT": step.spec.get("expect_result")}, received=frame.to_list())
        if response.violation is not None:
            raise DutFailure(f"{action} response violates the OCPP {self.session.version} schema: {response.violation}",
                             expected=f"{action}Response valid against the official schema", received=frame.payload,
                             requirement=f"OCPP {self.session.version} JSON schema")
        if "expect_result" in step.spec:
            mism = match(step.spec["expect_result"], frame.payload, variables)
            if mism:
                raise DutFailure(f"{action} response does not match: " + "; ".join(map(str, mism[:5])),
                                 expected=self._shown(step.spec["expect_result"], step), received=frame.payload)
        self._check_composite(step, frame.payload, time.time() - response.elapsed)
        self._capture(step, frame.payload)
        return f"CALLRESULT after {response.elapsed:.2f} s"

    def _check_composite(self, step: Step, payload: Any, sent_at: float) -> None:
        """`expect_composite:` on a GetCompositeSchedule step: the answer must be the oracle's
        composite of the listed profiles from the moment the request left (harness.smart)."""
        spec = step.spec.get("expect_composite")
        if spec is None:
            return
        from ..smart.oracle import composite_schedule
        from ..smart.profiles import ProfileError
        from ..smart.schedule import Tolerance, compare

        spec, request = self._sub(spec, step), self._sub(step.spec.get("payload", {}), step)
        v16 = self.session.version == "1.6"
        tol = spec.get("tolerance", {})
        try:
            tolerance = Tolerance(**tol) if isinstance(tol, dict) else Tolerance(limit_abs=float(tol))
            expected = composite_schedule(
                spec.get("profiles") or [], version="1.6" if v16 else "2.0.1",
                evse_id=int(spec.get("evse", request.get("connectorId" if v16 else "evseId", 0))),
                start=datetime.fromtimestamp(sent_at).astimezone(), unit=spec.get("unit", request.get("chargingRateUnit")),
                duration_s=int(spec.get("duration", request.get("duration", 0))),
                transaction_id=spec.get("transaction"), transaction_start=spec.get("transaction_start"),
                max_limit=spec.get("max_limit"), max_limit_unit=spec.get("max_limit_unit"),
                voltage_v=float(spec.get("voltage", 230.0)), phases=int(spec.get("phases", 3)))
        except (ProfileError, TypeError, ValueError) as exc:
            raise HarnessError(f"expect_composite cannot compute the expected schedule: {exc}") from None
        problems = compare(expected, payload, tolerance)
        if problems:
            shown = [{"startPeriod": p.start_offset_s, "limit": "any (nothing limits)" if p.limit is None else p.limit,
                      **({"numberPhases": p.number_phases} if p.number_phases else {})} for p in expected.periods]
            raise DutFailure("composite schedule differs from the oracle's: " + "; ".join(problems[:6]),
                             expected={"scheduleStart": expected.start.isoformat().replace("+00:00", "Z"),
                                       "duration": expected.duration_s, "chargingRateUnit": expected.unit,
                                       "chargingSchedulePeriod": shown},
                             received=payload, requirement=step.spec.get("requirement")
                             or ("OCPP 1.6 §3.13, §5.7" if v16 else "OCPP 2.0.1 K08"))

    async def _step_set_time(self, step: Step) -> str:
        """`set_time: {valid_to: 300}`: variables holding the UTC time now + so many seconds."""
        out = {}
        for name, seconds in self._sub(step.target, step).items():
            try:
                at = time.time() + float(seconds)
            except (TypeError, ValueError):
                raise HarnessError(f"set_time needs seconds for {name}, got {seconds!r}") from None
            out[name] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        self.variables.update(out)
        return ", ".join(f"{k}={v}" for k, v in out.items())

    async def _step_depot(self, step: Step) -> str:
        """`depot: {scenario, duration?, speed?}`: a depot day over OCPP against the DUT CSMS (harness/depot/step.py)."""
        from ..depot.step import run_depot_step

        return await run_depot_step(self, step)

    async def _step_expect_none(self, step: Step) -> str:
        target = step.target
        forbidden = {target} if isinstance(target, str) else set(target)
        duration = float(step.spec.get("for", step.spec.get("timeout", 5)))
        deadline = self._deadline(duration)
        seen: list[str] = []
        while True:
            ev = await self._next(deadline, step, allow_reconnect=bool(step.spec.get("allow_reconnect")))
            if ev is None:
                return f"nothing forbidden in {duration:g} s" + (f" (answered: {', '.join(seen)})" if seen else "")
            assert isinstance(ev, IncomingCall)
            if "*" in forbidden or ev.call.action in forbidden:
                await self._auto_reply(ev, step)
                raise DutFailure(f"DUT sent {ev.call.action} although it must not during this {duration:g} s window",
                                 expected=f"no {', '.join(sorted(forbidden))}", received=ev.call.to_list())
            seen.append(ev.call.action)
            await self._auto_reply(ev, step)

    async def _step_set(self, step: Step) -> str:
        """Give variables a value once ($uuid stays the same wherever it is used afterwards)."""
        values = self._sub(step.target, step)
        self.variables.update(values)
        return ", ".join(f"{k}={v!r}" for k, v in values.items())

    async def _step_wait(self, step: Step) -> str:
        seconds = self._sub(step.target, step)
        try:
            deadline = self._deadline(float(seconds))
        except (TypeError, ValueError):
            raise HarnessError(f"wait needs a number of seconds, got {seconds!r}") from None
        while True:
            ev = await self._next(deadline, step, allow_reconnect=bool(step.spec.get("allow_reconnect")))
            if ev is None:
                return ""
            if isinstance(ev, IncomingCall):
                await self._auto_reply(ev, step)

    async def _step_action(self, step: Step) -> str:
        name = str(step.target)
        params = self._sub(step.spec.get("params") or {}, step)
        say = str(self._sub(step.spec.get("say", ""), step)) or f"Perform '{name}' on the DUT ({json.dumps(params)})"
        task = asyncio.get_running_loop().create_task(self.adapter.perform(name, params, say, step.timeout))
        self._actions.append(_PendingAction(self._index, name, task))
        await asyncio.sleep(0)                # let the adapter start before the next step listens
        if step.spec.get("wait", False) or task.done():
            await self._settle(self._actions[-1])
        return f"{name} requested"

    async def _step_operator(self, step: Step) -> str:
        task = asyncio.get_running_loop().create_task(
            self.adapter.perform("operator", {}, self._sub(str(step.target), step), step.timeout))
        pa = _PendingAction(self._index, "operator", task)
        self._actions.append(pa)
        await self._settle(pa)      # a manual check is synchronous: its answer is the verdict
        return task.result().detail or "confirmed"

    async def _settle(self, pa: _PendingAction) -> ActionOutcome:
        pa.settled = True
        try:
            outcome = await asyncio.wait_for(asyncio.shield(pa.task), timeout=None)
        except Outcome:
            raise
        except Exception as exc:
            raise HarnessError(f"adapter failed to perform '{pa.name}': {type(exc).__name__}: {exc}") from None
        pa.outcome = outcome
        if outcome.status == "skipped":
            by = f" (answered by {outcome.answered_by})" if outcome.answered_by else ""
            raise Inconclusive(f"'{pa.name}' was skipped ({outcome.detail or 'no reason given'}); nothing proven{by}")
        if outcome.status == "failed":
            if pa.name == "operator":
                raise DutFailure(f"operator reported the check failed: {outcome.detail}")
            raise Inconclusive(f"out-of-band action '{pa.name}' could not be performed: {outcome.detail}")
        return outcome

    def _annotate_actions(self) -> None:
        """Who answered each out-of-band action and when, on that action's step (→ Allure step)."""
        for pa in self._actions:
            out = pa.outcome
            if out is None and pa.task.done() and not pa.task.cancelled() and pa.task.exception() is None:
                out = pa.task.result()
            sr = next((s for s in self.steps if s.index == pa.step and s.kind in ("action", "operator")), None)
            if out is None or sr is None:
                continue
            when = datetime.fromtimestamp(out.answered_at).astimezone().isoformat(timespec="seconds")
            note = f"{out.status} by {out.answered_by or 'nobody'} at {when}"
            if out.detail and out.detail not in sr.message:
                note += f": {out.detail}"
            sr.message = f"{sr.message}; {note}" if sr.message else note
            sr.details["answer"] = {"status": out.status, "answered_by": out.answered_by, "answered_at": when,
                                    "detail": out.detail, **({"result": out.result} if out.result is not None else {})}

    async def _check_actions(self) -> None:
        for pa in self._actions:
            if pa.task.done() and not pa.settled:
                await self._settle(pa)

    async def _settle_actions(self) -> None:
        # The case is over: any still-running action will only matter if it failed.
        for pa in self._actions:
            if pa.task.done() and not pa.settled:
                await self._settle(pa)

    async def _cancel_actions(self) -> None:
        for pa in self._actions:
            if not pa.task.done():
                pa.task.cancel()
        await asyncio.gather(*(pa.task for pa in self._actions), return_exceptions=True)

    async def _step_connect(self, step: Step) -> str:
        if not isinstance(self.session, StationSession):
            raise HarnessError("`connect` is a step for cases where the harness plays the charging station (role: cs)")
        opts = {**(step.spec.get("connect") or {}), **step.spec}
        versions = tuple(opts.get("versions") or (self.session.version,))
        password = self._sub(opts["password"], step) if "password" in opts else None
        subprotocols = [str(p) for p in opts["subprotocols"]] if "subprotocols" in opts else None
        try:
            await self.session.connect(versions=versions, password=password, timeout=step.timeout,
                                       subprotocols=subprotocols, no_auth=bool(opts.get("no_auth")),
                                       client_certificate=opts.get("client_certificate"),
                                       tls_version=opts.get("tls_version"))
        except UnexpectedSubprotocol as exc:
            raise DutFailure(f"the DUT (a CSMS) accepted the handshake with subprotocol {exc.selected!r}, "
                             "which is not an OCPP version the harness offered",
                             expected="handshake refused (HTTP 400) or an offered OCPP subprotocol",
                             received=f"subprotocol {exc.selected!r}",
                             requirement="OCPP-J 3.1.2 (subprotocol negotiation)") from None
        except HandshakeRefused as exc:
            if opts.get("expect_refused"):
                return f"refused as required: HTTP {exc.status}"
            raise DutFailure(f"the DUT refused the websocket handshake: {exc}", expected="HTTP 101 upgrade",
                             received=f"HTTP {exc.status} {exc.body.strip()}") from None
        except TlsHandshakeFailed as exc:
            if opts.get("expect_refused"):
                return f"refused as required during the TLS handshake: {exc}"
            raise DutFailure(f"the TLS handshake with the DUT failed: {exc}", expected="TLS 1.2+ handshake with "
                             "a server certificate the harness's CA signed", received=str(exc)) from None
        except (OSError, asyncio.TimeoutError) as exc:
            raise Inconclusive(f"cannot reach the DUT at {self.session.endpoint}: {type(exc).__name__}: {exc}") from None
        if opts.get("expect_refused"):
            raise DutFailure("the DUT accepted a connection it must refuse", expected="handshake refused (HTTP 4xx)",
                             received=f"connected with subprotocol ocpp{self.session.version}")
        return f"connected ({self.session.connection.version if self.session.connection else '?'})"

    async def _step_disconnect(self, step: Step) -> str:
        conn = self.session.connection
        if conn is not None:
            self.session.connection = None      # our own close is not the DUT's doing
            await conn.close()
        return "closed by the harness"

    async def _step_expect_tls_refused(self, step: Step) -> str:
        """(harness as CSMS) the station must abort the TLS handshake the harness set up to be
        refused (harness_tls: untrusted certificate / old TLS version) and never get a websocket."""
        if not isinstance(self.session, CsmsSession):
            raise HarnessError("`expect_tls_refused` is a step for cases where the harness plays the CSMS (role: csms)")
        server = self.session.endpoint.server
        seen, attempts = self._refusal_mark, self._attempt_mark     # since the case began (the reboot step)
        deadline = self._deadline(step.timeout)
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                ev = await self._next_raw(min(remaining, 0.2))
            except asyncio.TimeoutError:
                continue
            if isinstance(ev, Connected):
                raise DutFailure("the station completed the TLS handshake and opened the websocket although the "
                                 "harness's server must not be trusted",
                                 expected="TLS handshake aborted by the station", received="websocket connected")
        failures = [r.reason for r in server.refusals[seen:] if r.status == 0]
        tried = server.tls_attempts - attempts
        if not tried:
            raise Inconclusive(f"the station made no TLS connection attempt within {step.timeout:g} s; nothing was tested")
        detail = f"; first failure seen by the harness: {failures[0]}" if failures else ""
        return f"{tried} TLS handshake(s) begun by the station, none completed{detail}"

    async def _step_sign_csr(self, step: Step) -> str:
        """The harness, as the CSMS's CA, signs the station's CSR: `sign_csr: {csr, ca_cert, ca_key,
        as, chain?, days?}` stores the leaf (+ `chain`, the issuer certificates) PEM in variable `as`."""
        from ..pki.csr import CsrError, sign_csr

        spec = self._sub(step.target or {}, step)
        missing = [k for k in ("csr", "ca_cert", "ca_key", "as") if not spec.get(k)]
        if missing:
            raise HarnessError(f"test case error ({step.source}:{step.line}): sign_csr needs {', '.join(missing)}")
        try:
            leaf = sign_csr(str(spec["csr"]), str(spec["ca_cert"]), str(spec["ca_key"]), days=int(spec.get("days", 30)))
        except CsrError as exc:
            raise DutFailure(f"the station's certificate signing request cannot be signed: {exc}",
                             expected="a PEM PKCS#10 request with a valid self-signature", received=str(spec["csr"])[:300],
                             requirement=step.spec.get("requirement")) from None
        self.variables[str(spec["as"])] = leaf + str(spec.get("chain") or "")
        return f"signed the CSR; certificate chain in ${spec['as']}"

    async def _step_expect_disconnect(self, step: Step) -> str:
        deadline = self._deadline(step.timeout)
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise await self._timeout_verdict(step, f"DUT did not close the connection within {step.timeout:g} s")
            try:
                ev = await self._next_raw(remaining)
            except asyncio.TimeoutError:
                continue
            if isinstance(ev, Closed):
                return f"closed (code={ev.code})"
            if isinstance(ev, IncomingCall):
                await self._auto_reply(ev, step)

    async def _step_assert(self, step: Step) -> str:
        for check in step.target:
            value = self._sub(check["value"], step)
            mism = match(check["match"], value, self._vars(step))
            if mism:
                raise DutFailure(check.get("message") or "assertion failed: " + "; ".join(map(str, mism)),
                                 expected=check["match"], received=value)
        return f"{len(step.target)} assertion(s) held"

    async def _step_include(self, step: Step) -> str:   # expanded at load time; kept for completeness
        raise HarnessError("include steps are expanded when the case is loaded")
