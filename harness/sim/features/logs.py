"""Log retrieval: OCPP 2.0.1 N01 (GetLog), OCPP 1.6 GetDiagnostics (Firmware Management
profile) and GetLog of the 1.6 security whitepaper, in both reference simulators.

Station simulator: the log is uploaded over real HTTP (PUT, `_file_repository`) to
`remoteLocation` (2.0.1/1.6 GetLog) or `location` (GetDiagnostics); a location that ends in
'/' is a directory and gets the announced file name appended. Status flow: Uploading →
Uploaded, or UploadFailure (GetLog) / UploadFailed (GetDiagnostics) after `retries`
attempts `retryInterval` s apart. GetLog notifications carry the requestId; a new GetLog
while one runs cancels it (AcceptedCanceled). TriggerMessage DiagnosticsStatusNotification
(1.6), TriggerMessage LogStatusNotification (2.0.1) and ExtendedTriggerMessage
LogStatusNotification (1.6) report Uploading while an upload runs, else Idle.
The DiagnosticsLog holds the station's firmware history; the SecurityLog its security events.

CSMS simulator: operator actions `get_log` (2.0.1 and 1.6) and `get_diagnostics` (1.6); the
log status notifications are recorded on the station model and acknowledged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..api import Fault, Reply
from . import Feature, feature_state
from . import _file_repository as repo
from ._common import add_retry_fields, operator_request_id
from .firmware import state as firmware_state, trigger_handler

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState
    from ..station import FrontEnd

V201, V16 = "2.0.1", "1.6"
NAME = "logs"
DEFAULT_LOG_LOCATION = f"http://{repo.REPO_HOST}/logs/"
DEFAULT_DIAGNOSTICS_LOCATION = f"http://{repo.REPO_HOST}/diagnostics/"


@dataclass
class Upload:
    kind: str                     # "getlog201" | "getlog16" | "diagnostics16"
    request_id: int | None
    url: str
    content: bytes
    attempts: int
    retry_interval_s: float
    task: asyncio.Task[Any] | None = None


@dataclass
class LogState:
    uploading: Upload | None = None
    uploads: list[str] = field(default_factory=list)     # URLs uploaded to, for tests
    security_events: list[dict[str, Any]] = field(default_factory=list)   # the SecurityLog


def state(front: FrontEnd) -> LogState:
    return feature_state(front, "logs", LogState)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def log_content(front: FrontEnd, log_type: str) -> bytes:
    """The station's log of that type as text lines."""
    sim = front.sim
    lines = [f"# {sim.cfg.station_id} {sim.cfg.model} firmware {sim.cfg.firmware} {log_type} generated {_now()}"]
    if log_type == "SecurityLog":
        lines += [f"{e.get('timestamp')} {e.get('type')} {e.get('techInfo', '')}" for e in state(front).security_events]
    else:
        lines += [f"{t} boot count {sim.boot_count}" for t in [_now()]]
        lines += [f"{t} firmware status {s}" for t, s in firmware_state(front).history]
    return ("\n".join(lines) + "\n").encode()


def _notify(front: FrontEnd, up: Upload, status: str) -> None:
    if up.kind == "diagnostics16":
        front.sim.enqueue("DiagnosticsStatusNotification", {"status": status})
        return
    payload: dict[str, Any] = {"status": status}
    if up.request_id is not None:
        payload["requestId"] = up.request_id
    front.sim.enqueue("LogStatusNotification", payload)


async def run_upload(front: FrontEnd, up: Upload) -> None:
    sim, st = front.sim, state(front)
    _notify(front, up, "Uploading")
    try:
        for attempt in range(up.attempts):
            try:
                await repo.upload(up.url, up.content)
            except repo.TransferError as exc:
                if sim.has("log_upload_ignores_http_error") and exc.args and str(exc.args[0]).startswith("HTTP "):
                    _notify(front, up, "Uploaded")      # the bug: any HTTP answer counts as delivered
                    return
                sim.trace.event(sim.cfg.station_id, f"log upload attempt {attempt + 1} failed: {exc}", "SIM")
                if attempt + 1 < up.attempts:
                    await asyncio.sleep(up.retry_interval_s)
                continue
            st.uploads.append(up.url)
            if not sim.has("log_upload_never_reports_uploaded"):
                _notify(front, up, "Uploaded")
            return
        _notify(front, up, "UploadFailed" if up.kind == "diagnostics16" else "UploadFailure")
    finally:
        if st.uploading is up:
            st.uploading = None


def _start(front: FrontEnd, up: Upload, answer: dict[str, Any]) -> Reply:
    st = state(front)
    old = st.uploading
    if old is not None and old.task is not None and not old.task.done() and \
            not front.sim.has("get_log_second_request_not_cancelled"):
        old.task.cancel()
        if "status" in answer:
            answer = {**answer, "status": "AcceptedCanceled"}      # N01: the running upload is cancelled
    st.uploading = up

    async def go() -> None:
        up.task = front.sim.spawn(run_upload(front, up), "log-upload")
    return Reply(answer, go)


def _file_name(front: FrontEnd, what: str, request_id: int | None) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    suffix = f"-{request_id}" if request_id is not None else ""
    return f"{front.sim.cfg.station_id}-{what}{suffix}-{stamp}.log"


async def _get_log(front: FrontEnd, p: dict[str, Any], kind: str) -> Reply:
    name = _file_name(front, p["logType"], p["requestId"])
    up = Upload(kind, p["requestId"], repo.join(p["log"]["remoteLocation"], name), log_content(front, p["logType"]),
                max(1, int(p.get("retries", 1))), float(p.get("retryInterval", 1)))
    return _start(front, up, {"status": "Accepted", "filename": name})


async def _get_log_201(front: FrontEnd, p: dict[str, Any]) -> Reply:
    return await _get_log(front, p, "getlog201")


async def _get_log_16(front: FrontEnd, p: dict[str, Any]) -> Reply:
    return await _get_log(front, p, "getlog16")


async def _get_diagnostics_16(front: FrontEnd, p: dict[str, Any]) -> Reply:
    name = _file_name(front, "diagnostics", None)
    url = repo.join(p["location"], name)
    up = Upload("diagnostics16", None, url, log_content(front, "DiagnosticsLog"),
                max(1, int(p.get("retries", 1))), float(p.get("retryInterval", 1)))
    # The bug: the answer names the whole upload URL instead of the file's name.
    answer_name = url[:255] if front.sim.has("diagnostics_wrong_filename") else name
    return _start(front, up, {"fileName": answer_name})


def _uploading(front: FrontEnd, kinds: tuple[str, ...]) -> Upload | None:
    up = state(front).uploading
    return up if up is not None and up.kind in kinds else None


def _trigger_log_status(kinds: tuple[str, ...]):
    def send(front: FrontEnd) -> None:
        up = _uploading(front, kinds)
        payload: dict[str, Any] = {"status": "Uploading" if up else "Idle"}
        if up is not None and up.request_id is not None:
            payload["requestId"] = up.request_id
        front.sim.send_triggered("LogStatusNotification", payload)
    return send


def _trigger_diagnostics_status(front: FrontEnd) -> None:
    up = _uploading(front, ("diagnostics16",))
    front.sim.send_triggered("DiagnosticsStatusNotification", {"status": "Uploading" if up else "Idle"})


def _outgoing(front: FrontEnd, action: str, payload: dict[str, Any]) -> None:
    """Every SecurityEventNotification the station sends, whichever block raised it, is logged."""
    if action == "SecurityEventNotification":
        events = state(front).security_events
        events.append(dict(payload))
        del events[:-1000]                                  # bounded, like a real ring log


# ---- CSMS side -----------------------------------------------------------------------------------

def csms_record(st: StationState) -> list[dict[str, Any]]:
    return st.__dict__.setdefault("_log_statuses", [])


def _record(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    csms_record(st).append(dict(p))
    return {}


def _op_get_log(version: str):
    def build(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
        log_type = str(params.get("log_type", "DiagnosticsLog"))
        if sim.faulty("get_log_wrong_type", version):
            log_type = "SecurityLog" if log_type == "DiagnosticsLog" else "DiagnosticsLog"
        log: dict[str, Any] = {"remoteLocation": str(params.get("remote_location", DEFAULT_LOG_LOCATION))}
        if params.get("oldest"):
            log["oldestTimestamp"] = str(params["oldest"])
        if params.get("latest"):
            log["latestTimestamp"] = str(params["latest"])
        payload: dict[str, Any] = {"logType": log_type, "requestId": operator_request_id(sim, params), "log": log}
        add_retry_fields(params, payload)
        return "GetLog", payload, True
    return build


def _op_get_diagnostics(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    payload: dict[str, Any] = {"location": str(params.get("location", DEFAULT_DIAGNOSTICS_LOCATION))}
    if not sim.faulty("diagnostics_retries_dropped", V16):      # the bug: retry settings never mapped
        add_retry_fields(params, payload)
    for key, field_name in (("start_time", "startTime"), ("stop_time", "stopTime")):
        if params.get(key):
            payload[field_name] = str(params[key])
    return "GetDiagnostics", payload, True


FEATURE = Feature(
    name=NAME,
    station_handlers={
        V201: {"GetLog": _get_log_201,
               "TriggerMessage": trigger_handler(V201, "TriggerMessage",
                                                 {"LogStatusNotification": _trigger_log_status(("getlog201",))}, NAME)},
        V16: {"GetLog": _get_log_16, "GetDiagnostics": _get_diagnostics_16,
              "TriggerMessage": trigger_handler(V16, "TriggerMessage",
                                                {"DiagnosticsStatusNotification": _trigger_diagnostics_status}, NAME),
              "ExtendedTriggerMessage": trigger_handler(V16, "ExtendedTriggerMessage",
                                                        {"LogStatusNotification": _trigger_log_status(("getlog16",))},
                                                        NAME)},
    },
    outgoing=_outgoing,
    csms_answers={V201: {"LogStatusNotification": _record},
                  V16: {"LogStatusNotification": _record, "DiagnosticsStatusNotification": _record}},
    csms_operator={V201: {"get_log": _op_get_log(V201)},
                   V16: {"get_log": _op_get_log(V16), "get_diagnostics": _op_get_diagnostics}},
    csms_provokes={"GetLog": frozenset({"LogStatusNotification"}),
                   "GetDiagnostics": frozenset({"DiagnosticsStatusNotification"})},
    station_faults=[
        Fault("log_upload_never_reports_uploaded", "cs", (V201, V16),
              "Uploads the log (GetLog / GetDiagnostics) but never sends the Uploaded status; the last status "
              "the CSMS sees is Uploading."),
        Fault("log_upload_ignores_http_error", "cs", (V201, V16),
              "Treats any HTTP answer to the log upload as success: a refused upload (403) is reported Uploaded "
              "instead of UploadFailure / UploadFailed."),
        Fault("get_log_second_request_not_cancelled", "cs", (V201, V16),
              "A GetLog while an upload is still running is answered Accepted and the first upload goes on; "
              "nothing is cancelled (no AcceptedCanceled)."),
        Fault("diagnostics_wrong_filename", "cs", (V16,),
              "GetDiagnostics.conf names the whole upload URL as fileName instead of the name of the file it uploads."),
    ],
    csms_faults=[
        Fault("diagnostics_retries_dropped", "csms", (V16,),
              "GetDiagnostics is sent without the retries / retryInterval the operator chose."),
        Fault("get_log_wrong_type", "csms", (V201, V16),
              "GetLog asks for the other log type (DiagnosticsLog <-> SecurityLog) than the operator chose."),
    ],
)
