"""Fleet load beyond one machine: Locust users, each one simulated charging station.

    locust -f harness/stress/locustfile.py --headless -u 2000 -r 100 -t 120s \\
           --host ws://csms.example:9000/ocpp --ocpp 2.0.1 --mix heartbeat=10-30,meter=10-60 \\
           [--master | --worker --master-host HOST]

(`charger-harness stress fleet --locust-workers K` starts a master and K workers on loopback.)
Locust does the distribution — master/workers, spawn rate, stats aggregation — and this file
is only the station: it connects (`WS connect` in the stats), boots, reports its connectors'
status, then ticks through the message mix; every CALL's CSMS response time goes to Locust
through `events.request.fire` under the action's name, and every frame both ways is checked
against the official schema (a CSMS answer that breaks it is a *failure* in Locust's stats,
"schema violation"). Frame counts, CSMS-initiated CALLs and connection outcomes travel from
each worker to the master with Locust's own `report_to_master` / `worker_report` hooks.

Why websocket-client: Locust runs every user as a greenlet on gevent, and monkey-patches the
socket module before this file is imported. `websocket-client` is a blocking, pure-Python
client built on that socket module, so each blocking `recv`/`send` just yields to the gevent
hub — one reader greenlet and one task greenlet per station, ~1,000 stations per worker
process, no threads. The alternative, an asyncio loop (with the harness's `websockets`
stack) per user in a real OS thread, fights gevent's patched threading and selectors, costs a
thread per station and hides time from Locust's scheduler; the asyncio stack stays the
single-process engine (`harness/stress/fleet.py`).

The mix: each user sends one message per tick; ticks are exponentially spaced with mean
1/Σ(rates) and the kind is drawn in proportion to its rate — the same mean rates as the
single-process fleet (which spaces each kind uniformly), as Poisson arrivals.

Never import this module into a process that is not Locust: importing locust monkey-patches
the whole process for gevent.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gevent
import websocket                      # websocket-client (blocking; cooperative under gevent's patch)
from gevent.event import AsyncResult
from locust import User, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from harness.ocpp import schemas
from harness.ocpp.framing import Call, CallError, CallResult, FramingError, decode, encode, new_message_id
from harness.roles.defaults import default_reply
from harness.stress.mix import ACTION_OF_KIND, DEFAULT_MIX, EVSES, Mix, StationModel

ENV_PASSWORD = "CHARGER_HARNESS_STRESS_PASSWORD"
TRIGGERABLE = {"Heartbeat": "heartbeat", "StatusNotification": "status", "MeterValues": "meter"}
MAX_WAIT_S = 3600.0


class SchemaViolationError(Exception):
    """The CSMS's answer breaks the official schema."""


class OcppCallError(Exception):
    """The CSMS answered a CALL with a CALLERROR."""


class CallTimeout(Exception):
    """No answer within the call timeout."""


# ---- options (forwarded by the master to its workers) -----------------------------------------

@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--ocpp", default=os.environ.get("CHARGER_HARNESS_STRESS_OCPP", "2.0.1"),
                        choices=list(schemas.SUPPORTED_VERSIONS), help="OCPP version the stations speak")
    parser.add_argument("--mix", default=os.environ.get("CHARGER_HARNESS_STRESS_MIX", DEFAULT_MIX),
                        help="message mix, e.g. heartbeat=10-30,status=10-60,meter=10-60 (seconds)")
    parser.add_argument("--id-prefix", default=os.environ.get("CHARGER_HARNESS_STRESS_ID_PREFIX", "CS-"),
                        help="station ids: <prefix>W<worker>-<n>")
    parser.add_argument("--call-timeout", type=float, default=30.0, help="seconds to wait for a CSMS answer")
    parser.add_argument("--fleet-report", default="", help="master/local: write the fleet report (JSON) here")


# ---- per-process counters, sent to the master with Locust's report hooks -----------------------

def _fresh() -> dict[str, Any]:
    return {"attempted": 0, "connected": 0, "refused": {}, "failed": {}, "dropped": 0, "booted": 0,
            "frames_tx": 0, "frames_rx": 0, "bytes_tx": 0, "bytes_rx": 0, "csms_calls": {},
            "violations": {}, "violation_examples": [], "protocol": {}}


_counts: dict[str, Any] = _fresh()
_totals: dict[str, Any] = _fresh()       # master (or a local run): everything the workers reported
_started = [0.0]
_workers: set[str] = set()
_ids = itertools.count(1)


def _bump(d: dict[str, Any], key: str, n: int = 1) -> None:
    d[key] = d.get(key, 0) + n


def _merge(into: dict[str, Any], data: dict[str, Any]) -> None:
    for k, v in data.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                _bump(into[k], kk, vv)
        elif isinstance(v, list):
            into[k].extend(v[: max(0, 20 - len(into[k]))])
        else:
            into[k] += v


@events.report_to_master.add_listener
def _report(client_id: str, data: dict[str, Any]) -> None:
    global _counts
    data["ocpp_fleet"] = _counts
    _counts = _fresh()


@events.worker_report.add_listener
def _worker_report(client_id: str, data: dict[str, Any]) -> None:
    _workers.add(client_id)
    if "ocpp_fleet" in data:
        _merge(_totals, data["ocpp_fleet"])


@events.test_start.add_listener
def _test_start(environment: Any, **_: Any) -> None:
    _started[0] = time.monotonic()


@events.quitting.add_listener
def _quitting(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    path = getattr(opts, "fleet_report", "") if opts is not None else ""
    if not path or isinstance(environment.runner, WorkerRunner):
        return
    if not isinstance(environment.runner, MasterRunner):
        _merge(_totals, _counts)          # a local (single-process) run: nothing went through the hooks
    report = fleet_report(environment, _totals, time.monotonic() - _started[0] if _started[0] else 0.0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=1))


def fleet_report(environment: Any, totals: dict[str, Any], wall: float) -> dict[str, Any]:
    """Locust's aggregated stats in the shape of the single-process fleet report."""
    stats, opts = environment.stats, environment.parsed_options
    latency: dict[str, Any] = {}
    errors: dict[str, int] = {}
    timeouts: dict[str, int] = {}
    for (name, method), e in sorted(stats.entries.items()):
        if method != "OCPP" or e.num_requests == 0:
            continue
        top = round(e.max_response_time, 3)
        # Locust buckets response times (1 ms below 100 ms, 10 ms below 1 s): cap at the exact max.
        latency[name] = {"count": e.num_requests, "mean": round(e.avg_response_time, 3),
                         "p50": min(e.get_response_time_percentile(0.5), top),
                         "p90": min(e.get_response_time_percentile(0.9), top),
                         "p99": min(e.get_response_time_percentile(0.99), top), "max": top,
                         "failures": e.num_failures}
    for err in stats.errors.values():
        text = str(err.error)
        if err.method == "OCPP" and "CallTimeout" in text:
            _bump(timeouts, err.name, err.occurrences)
        elif err.method == "OCPP" and "OcppCallError" in text:
            code = text.split("CALLERROR ", 1)[-1].split(" ", 1)[0].strip("')\"")
            _bump(errors, f"{err.name}: {code}", err.occurrences)
    connect = stats.entries.get(("WS connect", "WS"))
    connect_ms = {} if connect is None or connect.num_requests == 0 else {
        "count": connect.num_requests, "p50": connect.get_response_time_percentile(0.5),
        "p99": connect.get_response_time_percentile(0.99), "max": round(connect.max_response_time, 3)}
    workers = len(_workers)
    viol = totals["violations"]
    return {
        "kind": "stress-fleet", "engine": "locust", "workers": workers,
        "config": {"csms_url": environment.host, "stations": getattr(opts, "num_users", None),
                   "ocpp": getattr(opts, "ocpp", None), "mix": getattr(opts, "mix", None),
                   "ramp_per_s": getattr(opts, "spawn_rate", None), "run_time": getattr(opts, "run_time", None)},
        "connections": {"attempted": totals["attempted"], "connected": totals["connected"],
                        "booted": totals["booted"], "refused": sum(totals["refused"].values()),
                        "refused_by": totals["refused"], "failed": sum(totals["failed"].values()),
                        "failed_by": totals["failed"], "dropped": totals["dropped"], "connect_ms": connect_ms},
        "messages": {"frames_tx": totals["frames_tx"], "frames_rx": totals["frames_rx"],
                     "bytes_tx": totals["bytes_tx"], "bytes_rx": totals["bytes_rx"],
                     "tx_per_s": round(totals["frames_tx"] / wall, 1) if wall else 0.0,
                     "rx_per_s": round(totals["frames_rx"] / wall, 1) if wall else 0.0,
                     "calls_sent": {n: e["count"] for n, e in latency.items()},
                     "csms_calls": totals["csms_calls"]},
        "latency_ms": latency,
        "violations": {"total": sum(viol.values()), "by_action": viol, "examples": totals["violation_examples"]},
        "errors": {"call_errors": errors, "timeouts": timeouts, "protocol": totals["protocol"],
                   "total": sum(errors.values()) + sum(timeouts.values()) + sum(totals["protocol"].values()),
                   "examples": [f"{e.name}: {e.error} ×{e.occurrences}" for e in list(stats.errors.values())[:20]]},
        "generator": {"wall_s": round(wall, 3)},
    }


# ---- the station --------------------------------------------------------------------------

class OcppStation(User):
    """One charging station: connect, boot, status, then the message mix until Locust stops it."""

    abstract = False

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        opts = environment.parsed_options
        self.version: str = getattr(opts, "ocpp", "2.0.1") if opts else "2.0.1"
        self.mix = Mix.parse(getattr(opts, "mix", DEFAULT_MIX) if opts else DEFAULT_MIX)
        self.call_timeout = float(getattr(opts, "call_timeout", 30.0) if opts else 30.0)
        prefix = getattr(opts, "id_prefix", "CS-") if opts else "CS-"
        worker = max(0, getattr(environment.runner, "worker_index", 0) or 0)
        self.sid = f"{prefix}W{worker:02d}-{next(_ids):05d}"
        self.rng = random.Random(self.sid)
        self.model = StationModel(self.sid, self.version, self.rng)
        self.ws: websocket.WebSocket | None = None
        self.reader: gevent.Greenlet | None = None
        self.pending: dict[str, tuple[str, AsyncResult]] = {}
        self.boot_interval: float = 60.0
        self.closing = False
        rates = self.mix.rate_per_station(self.boot_interval)
        self.kinds = [k for k, r in rates.items() if r > 0]
        self.weights = [rates[k] for k in self.kinds]
        self.rate = sum(self.weights)

    def wait_time(self) -> float:
        if self.rate <= 0:
            return MAX_WAIT_S
        return min(self.rng.expovariate(self.rate), MAX_WAIT_S)

    # -- lifecycle --------------------------------------------------------------------------

    def on_start(self) -> None:
        self._connect()
        answer = self.call("BootNotification", self.model.boot(self.rng.randrange(1, 999_999)))
        if not answer or answer.get("status") != "Accepted":
            self._close()
            raise StopUser()
        if isinstance(answer.get("interval"), int) and answer["interval"] > 0:
            self.boot_interval = float(answer["interval"])
            rates = self.mix.rate_per_station(self.boot_interval)
            self.weights = [rates[k] for k in self.kinds]
            self.rate = sum(self.weights)
        _bump(_counts, "booted")
        for e in EVSES:
            self.call("StatusNotification", self.model.status(e.evse_id))

    def on_stop(self) -> None:
        self._close()

    @task
    def tick(self) -> None:
        if not self.kinds or self.ws is None:
            return
        self.send_kind(self.rng.choices(self.kinds, self.weights)[0])

    def send_kind(self, kind: str) -> None:
        if kind == "heartbeat":
            self.call("Heartbeat", {})
        elif kind == "status":
            self.call("StatusNotification", self.model.next_status())
        else:
            self.call("MeterValues", self.model.meter(time.monotonic()))

    # -- transport --------------------------------------------------------------------------

    def _connect(self) -> None:
        host = (self.host or self.environment.host or "").rstrip("/")
        url = f"{host}/{quote(self.sid, safe='')}"
        headers = []
        password = os.environ.get(ENV_PASSWORD)
        if password:
            import base64
            headers.append("Authorization: Basic " + base64.b64encode(f"{self.sid}:{password}".encode()).decode())
        _bump(_counts, "attempted")
        t0 = time.perf_counter()
        exc: Exception | None = None
        try:
            ws = websocket.create_connection(url, subprotocols=[schemas.SUBPROTOCOLS[self.version]], header=headers,
                                             timeout=15, enable_multithread=True, skip_utf8_validation=False)
            if ws.getsubprotocol() != schemas.SUBPROTOCOLS[self.version]:
                ws.close()
                _bump(_counts["refused"], "subprotocol")
                raise ConnectionError(f"CSMS accepted with subprotocol {ws.getsubprotocol()!r}")
            ws.settimeout(None)
            self.ws = ws
        except websocket.WebSocketBadStatusException as e:
            _bump(_counts["refused"], f"HTTP {e.status_code}")
            exc = e
        except ConnectionRefusedError as e:
            _bump(_counts["refused"], "TCP ECONNREFUSED")
            exc = e
        except ConnectionError as e:
            exc = e
        except Exception as e:           # timeouts, resets, bad handshakes
            _bump(_counts["failed"], type(e).__name__)
            exc = e
        self.environment.events.request.fire(request_type="WS", name="WS connect",
                                             response_time=(time.perf_counter() - t0) * 1000, response_length=0,
                                             exception=exc, context={"station": self.sid})
        if exc is not None:
            raise StopUser()
        _bump(_counts, "connected")
        self.reader = gevent.spawn(self._read_loop)

    def _close(self) -> None:
        self.closing = True
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.close(timeout=2)
            except Exception:
                pass
        if self.reader is not None:
            self.reader.kill(block=False)
        for _, ar in self.pending.values():
            if not ar.ready():
                ar.set_exception(ConnectionError("connection closed"))
        self.pending.clear()

    def _send(self, text: str) -> None:
        assert self.ws is not None
        self.ws.send(text)
        _counts["frames_tx"] += 1
        _counts["bytes_tx"] += len(text)

    def _read_loop(self) -> None:
        ws = self.ws
        while ws is not None:
            try:
                raw = ws.recv()
            except Exception:
                if not self.closing:
                    _counts["dropped"] += 1
                    self.ws = None
                for _, ar in list(self.pending.values()):
                    if not ar.ready():
                        ar.set_exception(ConnectionError("connection lost"))
                return
            t = time.perf_counter()
            if not raw:              # websocket-client hands back "" for the peer's close frame
                if not self.closing:
                    _counts["dropped"] += 1
                    self.ws = None
                return
            _counts["frames_rx"] += 1
            _counts["bytes_rx"] += len(raw)
            try:
                frame = decode(raw)
            except FramingError:
                _bump(_counts["protocol"], "not an OCPP-J frame")
                continue
            if isinstance(frame, Call):
                self._answer(frame)
                continue
            entry = self.pending.pop(frame.unique_id, None)
            if entry is None:
                _bump(_counts["protocol"], "response to no outstanding CALL")
                continue
            entry[1].set((frame, t))

    def _answer(self, call: Call) -> None:
        _bump(_counts["csms_calls"], call.action)
        if call.action not in schemas.actions(self.version):
            self._send(encode(CallError(call.unique_id, "NotImplemented", f"unknown action {call.action!r}")))
            return
        violation = schemas.validate(self.version, call.action, "request", call.payload)
        if violation is not None:
            self._violation(call.action, "CALL", str(violation))
            from harness.sim.csms import violation_error_code
            self._send(encode(CallError(call.unique_id, violation_error_code(violation.rule, self.version),
                                        str(violation))))
            return
        triggered = None
        if call.action == "TriggerMessage" and call.payload.get("requestedMessage") in TRIGGERABLE:
            payload: dict[str, Any] | None = {"status": "Accepted"}
            triggered = TRIGGERABLE[call.payload["requestedMessage"]]
        else:
            payload = default_reply("cs", self.version, call.action, call.payload, {})
        if payload is None:
            self._send(encode(CallError(call.unique_id, "NotImplemented" if self.version == "1.6" else "NotSupported",
                                        f"{call.action} is not supported by the fleet simulator")))
            return
        self._send(encode(CallResult(call.unique_id, payload)))
        if triggered:
            gevent.spawn(self.send_kind, triggered)

    def _violation(self, action: str, where: str, text: str) -> None:
        _bump(_counts["violations"], action)
        if len(_counts["violation_examples"]) < 20:
            _counts["violation_examples"].append({"action": action, "where": where, "violation": text})

    # -- one CALL, reported to Locust -------------------------------------------------------

    def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if self.ws is None:
            raise StopUser()
        violation = schemas.validate(self.version, action, "request", payload)
        if violation is not None:        # our bug, never the CSMS's: stop loudly
            raise RuntimeError(f"fleet station built an invalid {action}: {violation}")
        uid = new_message_id()
        text = encode(Call(uid, action, payload))
        ar: AsyncResult = AsyncResult()
        self.pending[uid] = (action, ar)
        t0 = time.perf_counter()
        exc: Exception | None = None
        answer: dict[str, Any] | None = None
        length = 0
        try:
            self._send(text)
            frame, t_rx = ar.get(timeout=self.call_timeout)
            elapsed = t_rx - t0
            if isinstance(frame, CallError):
                exc = OcppCallError(f"CALLERROR {frame.error_code} {frame.error_description}")
            else:
                length = len(json.dumps(frame.payload))
                bad = schemas.validate(self.version, action, "response", frame.payload)
                if bad is not None:
                    self._violation(action, "CALLRESULT", str(bad))
                    exc = SchemaViolationError(f"schema violation: {bad}")
                else:
                    answer = frame.payload
        except gevent.Timeout:
            self.pending.pop(uid, None)
            elapsed = time.perf_counter() - t0
            exc = CallTimeout(f"no answer within {self.call_timeout:g} s")
        except Exception as e:           # connection lost while waiting / sending
            self.pending.pop(uid, None)
            elapsed = time.perf_counter() - t0
            exc = e
        self.environment.events.request.fire(request_type="OCPP", name=action, response_time=elapsed * 1000,
                                             response_length=length, exception=exc,
                                             context={"station": self.sid})
        if self.ws is None:
            raise StopUser()
        return answer


ACTIONS = tuple(ACTION_OF_KIND.values())
