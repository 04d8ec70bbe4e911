"""Firmware management: OCPP 2.0.1 L01/L02, OCPP 1.6 Firmware Management profile and the 1.6
security whitepaper's SignedUpdateFirmware, in both reference simulators.

Station simulator
- UpdateFirmware (2.0.1; signed = L01 when signingCertificate+signature are given, else L02),
  UpdateFirmware (1.6) and SignedUpdateFirmware (1.6 security extension) start one update
  job; a new request while one runs cancels it (AcceptedCanceled, L01.FR.24).
- The job downloads `location` over real HTTP (`_file_repository`: the test network's host
  `files.harness.invalid` is a loopback server in this process), `retries` attempts
  `retryInterval` s apart (DownloadFailed after the last), verifies the RSA-PSS/SHA-256
  signature with the signing certificate (InvalidSignature + SecurityEventNotification
  InvalidFirmwareSignature), waits for ongoing transactions to end (InstallScheduled, idle
  connectors Unavailable meanwhile), installs (the image header must name this station's
  model, else InstallationFailed), reboots (2.0.1 InstallRebooting, BootNotification reason
  FirmwareUpdate) and reports Installed after the new boot is accepted, with the new
  firmwareVersion. 2.0.1 and signed 1.6 notifications carry the request's requestId.
- The signing certificate must be the manufacturer's (the test certificate of
  `_firmware_images`, which this simulator trusts as its ManufacturerRootCertificate);
  anything else is answered InvalidCertificate with a SecurityEventNotification
  InvalidFirmwareSigningCertificate.
- TriggerMessage FirmwareStatusNotification (2.0.1 and 1.6) and ExtendedTriggerMessage
  FirmwareStatusNotification (1.6, answered with SignedFirmwareStatusNotification) report
  the update in progress, or Idle.
- L03/L04 (Publish/UnpublishFirmware, Local Controller): see `firmware_publish`.

CSMS simulator: operator actions `update_firmware` (2.0.1 and 1.6) and
`signed_update_firmware` (1.6) build the CALL; firmware status notifications are recorded
on the station model (`firmware_statuses`) and acknowledged.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

from ..api import Fault, Reply, Setting
from . import Feature, feature_state
from ._common import add_retry_fields, operator_request_id
from . import _file_repository as repo
from ._chain import delegate
from . import _firmware_images as images

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState
    from ..evse import Evse, Transaction
    from ..station import FrontEnd

V201, V16 = "2.0.1", "1.6"
DEFAULT_LOCATION = f"http://{repo.REPO_HOST}/firmware/refsim-2.0.0.bin"
MAX_SCHEDULE_WAIT_S = 300.0      # a retrieve/install time further ahead is capped (a simulator, not a fleet)
DEFAULT_RETRY_INTERVAL_S = 1.0
TERMINAL = frozenset({"Installed", "DownloadFailed", "InstallationFailed", "InvalidSignature",
                      "InstallVerificationFailed"})
STATUSES_16 = frozenset({"Downloaded", "DownloadFailed", "Downloading", "Idle", "InstallationFailed",
                         "Installing", "Installed"})


# ---- signature and certificate checks --------------------------------------------------------

def certificate_problem(cert_pem: str) -> str | None:
    """Why `cert_pem` is not a firmware-signing certificate this station trusts (None = fine)."""
    from cryptography import x509
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        trusted = x509.load_pem_x509_certificate(images.SIGNING_CERT_PEM.encode())
    except ValueError as exc:
        return f"not a PEM certificate: {exc}"
    try:
        cert.verify_directly_issued_by(trusted)
    except (ValueError, TypeError) as exc:
        return f"not issued by the manufacturer root: {exc}"
    except Exception as exc:                       # InvalidSignature has no message
        return f"not issued by the manufacturer root ({type(exc).__name__})"
    now = datetime.now(timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return "outside its validity period"
    return None


def signature_valid(cert_pem: str, signature_b64: str, data: bytes) -> bool:
    """RSA-PSS (any salt length) or ECDSA, SHA-256, over the whole image, with the certificate's key."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    try:
        key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
        sig = base64.b64decode(signature_b64, validate=True)
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, data, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)   # no offset: read as UTC


def _utc(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---- station side ------------------------------------------------------------------------------

@dataclass
class UpdateJob:
    kind: str                          # "update201" | "update16" | "signed16"
    request_id: int | None
    location: str
    retrieve_at: datetime | None
    install_at: datetime | None
    attempts: int
    retry_interval_s: float
    certificate: str | None = None
    signature: str | None = None
    task: asyncio.Task[Any] | None = None


@dataclass
class FirmwareState:
    status: str = "Idle"
    job: UpdateJob | None = None
    awaiting_reboot: UpdateJob | None = None       # Installed is reported after the new boot
    blocking: bool = False                          # idle connectors Unavailable until installation
    tx_changed: asyncio.Event = field(default_factory=asyncio.Event)
    history: list[tuple[str, str]] = field(default_factory=list)   # (time, status) for the diagnostics log


def state(front: FrontEnd) -> FirmwareState:
    return feature_state(front, "firmware", FirmwareState)


def _busy(front: FrontEnd) -> bool:
    return any(e.tx is not None for e in front.sim.evses.values())


def _notify(front: FrontEnd, job: UpdateJob, status: str) -> asyncio.Future[Any] | None:
    """Record and send one status of `job` (statuses 1.6 does not know are only recorded)."""
    st, sim = state(front), front.sim
    st.status = status
    st.history.append((_utc(datetime.now(timezone.utc)), status))
    del st.history[:-200]                                # a bounded log, like the real one
    if job.kind == "update16":
        if status not in STATUSES_16:
            return None
        return sim.enqueue("FirmwareStatusNotification", {"status": status})
    payload: dict[str, Any] = {"status": status}
    if job.request_id is not None and not sim.has("firmware_status_missing_request_id"):
        payload["requestId"] = job.request_id
    action = "SignedFirmwareStatusNotification" if job.kind == "signed16" else "FirmwareStatusNotification"
    return sim.enqueue(action, payload)


def security_event(front: FrontEnd, kind: str, info: str) -> None:
    """SecurityEventNotification (2.0.1 A04 / 1.6 security whitepaper); `logs` keeps it for the SecurityLog."""
    front.sim.enqueue("SecurityEventNotification", {"type": kind, "timestamp": _utc(datetime.now(timezone.utc)),
                                                    "techInfo": info[:255]})


# Device model / configuration this block adds.
ALLOW_NEW_SESSIONS = Setting(None, "bool", const="false")      # L01: may idle EVSEs start sessions meanwhile?
VARIABLES = {
    ("OCPPCommCtrlr", "FileTransferProtocols", None): Setting(None, "list", readonly=True, const="HTTP,HTTPS"),
    ("ChargingStation", "AllowNewSessionsPendingFirmwareUpdate", None): ALLOW_NEW_SESSIONS,
}
CONFIG_16 = {"SupportedFileTransferProtocols": Setting(None, readonly=True, const="HTTP,HTTPS")}


def _set_blocking(front: FrontEnd, on: bool) -> None:
    st = state(front)
    if on and front.version == V201 and front.sim.read_setting(ALLOW_NEW_SESSIONS) == "true":
        return                                           # new sessions stay possible until installation
    if st.blocking == on:
        return
    st.blocking = on
    for evse in front.sim.evses.values():
        if evse.tx is None and not evse.plugged and not evse.inoperative:
            front.send_status(evse)                      # type: ignore[attr-defined]


async def _sleep_until(when: datetime | None) -> bool:
    """Sleep until `when` (capped); True if there was anything to wait for."""
    if when is None:
        return False
    wait = (when - datetime.now(timezone.utc)).total_seconds()
    if wait <= 0.5:
        return False
    await asyncio.sleep(min(wait, MAX_SCHEDULE_WAIT_S))
    return True


async def _settle(front: FrontEnd, fut: asyncio.Future[Any] | None) -> None:
    """Wait until a status is on the wire (answered or given up) before acting on it."""
    if fut is not None:
        await asyncio.wait([fut], timeout=front.sim.call_timeout_s + 1.0)


async def run_job(front: FrontEnd, job: UpdateJob) -> None:
    """Download, verify, install and reboot; every step reported (L01.FR.01)."""
    sim, st = front.sim, state(front)
    if job.retrieve_at is not None and (job.retrieve_at - datetime.now(timezone.utc)).total_seconds() > 0.5:
        _notify(front, job, "DownloadScheduled")
        await _sleep_until(job.retrieve_at)
    data: bytes | None = None
    for attempt in range(job.attempts):
        _notify(front, job, "Downloading")
        try:
            data = await repo.download(job.location)
            break
        except repo.TransferError as exc:
            sim.trace.event(sim.cfg.station_id, f"firmware download attempt {attempt + 1} failed: {exc}", "SIM")
            if attempt + 1 < job.attempts:
                await asyncio.sleep(job.retry_interval_s)
    if data is None:
        if sim.has("download_failed_not_reported"):
            st.status = "Idle"                           # the bug: gives up silently
        else:
            _finish(front, job, "DownloadFailed")
        return
    _notify(front, job, "Downloaded")
    if job.signature is not None and job.certificate is not None:
        if not signature_valid(job.certificate, job.signature, data) and not sim.has("firmware_skips_signature_check"):
            _finish(front, job, "InvalidSignature")
            security_event(front, "InvalidFirmwareSignature", f"signature of {job.location} does not verify")
            return
        _notify(front, job, "SignatureVerified")
    if job.install_at is not None and (job.install_at - datetime.now(timezone.utc)).total_seconds() > 0.5:
        _notify(front, job, "InstallScheduled")
        await _sleep_until(job.install_at)
    if _busy(front) and not sim.has("firmware_installs_during_transaction"):
        _notify(front, job, "InstallScheduled")          # wait for the transactions to end (L01.FR.06/07)
        _set_blocking(front, True)
        while _busy(front):
            st.tx_changed.clear()
            await st.tx_changed.wait()
    await _settle(front, _notify(front, job, "Installing"))
    header = images.parse_header(data)
    if (header is None or header[0] != sim.cfg.model) and not sim.has("firmware_install_error_ignored"):
        why = "not a firmware image" if header is None else f"image is for model {header[0]}"
        sim.trace.event(sim.cfg.station_id, f"firmware installation failed: {why}", "SIM")
        _finish(front, job, "InstallationFailed")
        _set_blocking(front, False)
        return
    if sim.has("firmware_no_reboot_after_install"):
        _finish(front, job, "Installed")                 # the bug: claims success, old firmware keeps running
        _set_blocking(front, False)
        return
    await _settle(front, _notify(front, job, "InstallRebooting"))
    if header is not None and header[0] == sim.cfg.model:
        sim.cfg.firmware = header[1]                    # (under firmware_install_error_ignored: the old one)
    st.awaiting_reboot, st.job = job, None
    st.blocking = False
    await sim.reset("reset_hard", "FirmwareUpdate")     # ends a transaction only under the fault above


def _finish(front: FrontEnd, job: UpdateJob, status: str) -> None:
    _notify(front, job, status)
    st = state(front)
    if st.job is job:
        st.job = None
    st.status = "Idle"                                   # nothing in progress any more


def _on_boot_accepted(front: FrontEnd) -> None:
    st = state(front)
    job, st.awaiting_reboot = st.awaiting_reboot, None
    if job is not None:
        _finish(front, job, "Installed")
        if job.kind != "update16" and job.signature is not None:
            security_event(front, "FirmwareUpdated", f"firmware {front.sim.cfg.firmware} installed")


def _on_tx_ended(front: FrontEnd, evse: Evse, tx: Transaction) -> None:
    state(front).tx_changed.set()


def _connector_status(front: FrontEnd, evse: Evse, connector: int, status: str) -> str:
    return "Unavailable" if state(front).blocking and status == "Available" else status


def _start(front: FrontEnd, job: UpdateJob, accepted: str) -> Reply:
    """Cancel a running job (AcceptedCanceled) and start `job` once the answer is out."""
    st = state(front)
    old = st.job
    status = accepted
    if old is not None and old.task is not None and not old.task.done():
        old.task.cancel()
        _set_blocking(front, False)
        status = "AcceptedCanceled" if accepted == "Accepted" else accepted
    st.job = job

    async def go() -> None:
        job.task = front.sim.spawn(run_job(front, job), "firmware-update")
    return Reply({"status": status} if job.kind != "update16" else {}, go)


def _certificate_refusal(front: FrontEnd, cert: str | None) -> Reply | None:
    if cert is None or front.sim.has("firmware_accepts_untrusted_certificate"):
        return None
    problem = certificate_problem(cert)
    if problem is None:
        return None
    security_event(front, "InvalidFirmwareSigningCertificate", problem)
    return Reply({"status": "InvalidCertificate"})


async def _update_firmware_201(front: FrontEnd, p: dict[str, Any]) -> Reply:
    fw = p["firmware"]
    refusal = _certificate_refusal(front, fw.get("signingCertificate"))
    if refusal is not None:
        return refusal
    job = UpdateJob("update201", p["requestId"], fw["location"], _parse_time(fw.get("retrieveDateTime")),
                    _parse_time(fw.get("installDateTime")), max(1, int(p.get("retries", 1))),
                    float(p.get("retryInterval", DEFAULT_RETRY_INTERVAL_S)),
                    fw.get("signingCertificate"), fw.get("signature"))
    return _start(front, job, "Accepted")


async def _update_firmware_16(front: FrontEnd, p: dict[str, Any]) -> Reply:
    job = UpdateJob("update16", None, p["location"], _parse_time(p.get("retrieveDate")), None,
                    max(1, int(p.get("retries", 1))), float(p.get("retryInterval", DEFAULT_RETRY_INTERVAL_S)))
    return _start(front, job, "Accepted")


async def _signed_update_firmware_16(front: FrontEnd, p: dict[str, Any]) -> Reply:
    fw = p["firmware"]
    refusal = _certificate_refusal(front, fw["signingCertificate"])
    if refusal is not None:
        return refusal
    job = UpdateJob("signed16", p["requestId"], fw["location"], _parse_time(fw.get("retrieveDateTime")),
                    _parse_time(fw.get("installDateTime")), max(1, int(p.get("retries", 1))),
                    float(p.get("retryInterval", DEFAULT_RETRY_INTERVAL_S)), fw["signingCertificate"], fw["signature"])
    return _start(front, job, "Accepted")


# ---- TriggerMessage: the core has no firmware status, so this feature answers those requests ----

TriggerSender = Callable[["FrontEnd"], None]


_CLASSIC_TRIGGERS = ("BootNotification", "Heartbeat", "MeterValues", "StatusNotification")


async def _delegate(front: FrontEnd, action: str, p: dict[str, Any], me: str) -> Reply:
    """Answer as if feature `me` did not exist (`_chain.delegate`); the 1.6 core has no
    ExtendedTriggerMessage, so its classic messages go to the core TriggerMessage there."""
    try:
        return await delegate(front, action, p, me)
    except KeyError:
        if action != "ExtendedTriggerMessage":
            raise
    if p["requestedMessage"] in _CLASSIC_TRIGGERS:
        return await delegate(front, "TriggerMessage", p, me)
    return Reply({"status": "NotImplemented"})


def trigger_handler(version: str, action: str, mine: dict[str, TriggerSender],
                    feature_name: str) -> Callable[[FrontEnd, dict[str, Any]], Any]:
    """A TriggerMessage/ExtendedTriggerMessage handler that answers `mine` and passes every other
    requested message on to the feature before it (name order) or the core, so that several
    blocks add messages to TriggerMessage without knowing of each other."""

    async def handle(front: FrontEnd, p: dict[str, Any]) -> Reply:
        send = mine.get(p["requestedMessage"])
        if send is None:
            return await _delegate(front, action, p, feature_name)
        if version == V16 and p.get("connectorId") not in (None, 0) and \
                p["connectorId"] not in front.connectors:  # type: ignore[attr-defined]
            return Reply({"status": "Rejected"})

        async def go() -> None:
            send(front)
        return Reply({"status": "Accepted"}, None if front.sim.has("trigger_ignored") else go)
    return handle


def _status_now(front: FrontEnd, kinds: tuple[str, ...]) -> tuple[str, int | None]:
    st = state(front)
    job = st.job if st.job is not None and st.job.kind in kinds else None
    if job is None or st.status == "Idle":
        return "Idle", None
    return st.status, job.request_id


def _trigger_fw_201(front: FrontEnd) -> None:
    status, rid = _status_now(front, ("update201",))
    payload: dict[str, Any] = {"status": status}
    if rid is not None and not front.sim.has("firmware_status_missing_request_id"):
        payload["requestId"] = rid
    front.sim.send_triggered("FirmwareStatusNotification", payload)


def _trigger_fw_16(front: FrontEnd) -> None:
    status, _ = _status_now(front, ("update16",))
    front.sim.send_triggered("FirmwareStatusNotification", {"status": status if status in STATUSES_16 else "Idle"})


def _trigger_signed_fw_16(front: FrontEnd) -> None:
    status, rid = _status_now(front, ("signed16",))
    payload: dict[str, Any] = {"status": status}
    if rid is not None:
        payload["requestId"] = rid
    front.sim.send_triggered("SignedFirmwareStatusNotification", payload)


# ---- CSMS side -----------------------------------------------------------------------------------

def csms_record(st: StationState) -> dict[str, list[dict[str, Any]]]:
    """What this CSMS learnt about the station's firmware (kept on its station model)."""
    return st.__dict__.setdefault("_firmware", {"statuses": [], "requests": []})


def _record_status(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    if p.get("status") not in STATUSES_16 and sim.faulty("firmware_status_unknown_state_error", st.version):
        # the bug: a status table built from OCPP 1.6 — the newer states crash the handler
        raise KeyError(f"unknown firmware status {p.get('status')!r}")
    csms_record(st)["statuses"].append(dict(p))
    return {}


def _retrieve_time(sim: CsmsSimulator, version: str, params: dict[str, Any]) -> str:
    when = _parse_time(params.get("retrieve_date")) or datetime.now(timezone.utc)
    if sim.faulty("firmware_retrieve_date_in_past", version):
        when -= timedelta(hours=1)                       # the bug: local-time offset applied the wrong way
    return _utc(when)


def _op_update_firmware_201(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    fw: dict[str, Any] = {"location": str(params.get("location", DEFAULT_LOCATION)),
                          "retrieveDateTime": _retrieve_time(sim, V201, params)}
    if params.get("install_date"):
        fw["installDateTime"] = str(params["install_date"])
    if params.get("signed", True):                       # L01: the CSMS includes certificate and signature
        fw["signingCertificate"] = str(params.get("signing_certificate", images.SIGNING_CERT_PEM))
        fw["signature"] = str(params.get("signature", images.GOOD_SIGNATURE))
        if sim.faulty("update_firmware_missing_signature", V201):
            del fw["signature"]                          # the bug: the signature field is never mapped
    payload: dict[str, Any] = {"requestId": operator_request_id(sim, params), "firmware": fw}
    add_retry_fields(params, payload)
    csms_record(st)["requests"].append(payload)
    return "UpdateFirmware", payload, True


def _op_update_firmware_16(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    payload: dict[str, Any] = {"location": str(params.get("location", DEFAULT_LOCATION)),
                               "retrieveDate": _retrieve_time(sim, V16, params)}
    add_retry_fields(params, payload)
    csms_record(st)["requests"].append(payload)
    return "UpdateFirmware", payload, True


def _op_signed_update_firmware_16(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    fw: dict[str, Any] = {"location": str(params.get("location", DEFAULT_LOCATION)),
                          "retrieveDateTime": _retrieve_time(sim, V16, params),
                          "signingCertificate": str(params.get("signing_certificate", images.SIGNING_CERT_PEM)),
                          "signature": str(params.get("signature", images.GOOD_SIGNATURE))}
    if params.get("install_date"):
        fw["installDateTime"] = str(params["install_date"])
    valid = True
    if sim.faulty("update_firmware_missing_signature", V16):
        del fw["signature"]                              # required by the schema: sent anyway, unchecked
        valid = False
    payload: dict[str, Any] = {"requestId": operator_request_id(sim, params), "firmware": fw}
    add_retry_fields(params, payload)
    csms_record(st)["requests"].append(payload)
    return "SignedUpdateFirmware", payload, valid


# ---- the feature ---------------------------------------------------------------------------------

NAME = "firmware"

FEATURE = Feature(
    name=NAME,
    station_handlers={
        V201: {"UpdateFirmware": _update_firmware_201,
               "TriggerMessage": trigger_handler(V201, "TriggerMessage",
                                                 {"FirmwareStatusNotification": _trigger_fw_201}, NAME)},
        V16: {"UpdateFirmware": _update_firmware_16, "SignedUpdateFirmware": _signed_update_firmware_16,
              "TriggerMessage": trigger_handler(V16, "TriggerMessage",
                                                {"FirmwareStatusNotification": _trigger_fw_16}, NAME),
              "ExtendedTriggerMessage": trigger_handler(V16, "ExtendedTriggerMessage",
                                                        {"FirmwareStatusNotification": _trigger_signed_fw_16}, NAME)},
    },
    station_variables=VARIABLES,
    station_config=CONFIG_16,
    profile16="FirmwareManagement",
    boot_accepted=_on_boot_accepted,
    tx_ended=_on_tx_ended,
    connector_status=_connector_status,
    csms_answers={V201: {"FirmwareStatusNotification": _record_status},
                  V16: {"FirmwareStatusNotification": _record_status,
                        "SignedFirmwareStatusNotification": _record_status}},
    csms_operator={V201: {"update_firmware": _op_update_firmware_201},
                   V16: {"update_firmware": _op_update_firmware_16,
                         "signed_update_firmware": _op_signed_update_firmware_16}},
    csms_provokes={"UpdateFirmware": frozenset({"FirmwareStatusNotification", "SecurityEventNotification"}),
                   "SignedUpdateFirmware": frozenset({"SignedFirmwareStatusNotification", "SecurityEventNotification"})},
    station_faults=[
        Fault("firmware_no_reboot_after_install", "cs", (V201, V16),
              "Reports the firmware Installed right after installing, without rebooting into it (no "
              "InstallRebooting, no BootNotification FirmwareUpdate): the old firmware keeps running."),
        Fault("firmware_skips_signature_check", "cs", (V201, V16),
              "Never checks the firmware signature: a tampered image is reported SignatureVerified and installed."),
        Fault("firmware_accepts_untrusted_certificate", "cs", (V201, V16),
              "Accepts a firmware signing certificate that was not issued by its manufacturer root "
              "(no InvalidCertificate, no InvalidFirmwareSigningCertificate security event)."),
        Fault("firmware_status_missing_request_id", "cs", (V201, V16),
              "FirmwareStatusNotification (2.0.1) / SignedFirmwareStatusNotification (1.6) omit the requestId "
              "of the update they report."),
        Fault("firmware_installs_during_transaction", "cs", (V201, V16),
              "Installs (and reboots into) new firmware while a transaction is ongoing instead of waiting "
              "for it to end."),
        Fault("firmware_install_error_ignored", "cs", (V201, V16),
              "Ignores the installer's error: an image that cannot be installed (built for another model) is "
              "followed by a reboot and Installed, still on the old firmware."),
        Fault("download_failed_not_reported", "cs", (V201, V16),
              "When every download attempt fails, gives up silently: no DownloadFailed status is sent."),
    ],
    csms_faults=[
        Fault("update_firmware_missing_signature", "csms", (V201, V16),
              "A secure firmware update (2.0.1 UpdateFirmware with signingCertificate / 1.6 "
              "SignedUpdateFirmware) is sent without the firmware signature."),
        Fault("firmware_status_unknown_state_error", "csms", (V201, V16),
              "FirmwareStatusNotification / SignedFirmwareStatusNotification with a status OCPP 1.6 core does not "
              "know (SignatureVerified, InvalidSignature, InstallRebooting, DownloadScheduled, …) is answered "
              "with CALLERROR InternalError."),
        Fault("firmware_retrieve_date_in_past", "csms", (V201, V16),
              "UpdateFirmware carries a retrieve date one hour earlier than the operator scheduled "
              "(time-zone offset applied the wrong way)."),
    ],
)
