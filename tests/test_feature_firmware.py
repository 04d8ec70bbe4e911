"""Firmware management and log retrieval feature modules (harness.sim.features.firmware / logs).

The library cases (TC_L_*, TC_N_25/26/35/36, TC_044_*, TC_045_*, TC_079–081) are the
integration tests; these check the pieces: the test signing material, the certificate and
signature checks, the loopback file server, the update job's failure paths, the CSMS
builders with and without their faults, and TriggerMessage chaining.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.ocpp import schemas
from harness.sim import features
from harness.sim.api import Reply
from harness.sim.features import _file_repository as repo
from harness.sim.features import _firmware_images as images
from harness.sim.features import firmware, logs

from _aio import run


# ---- signing material and checks ------------------------------------------------------------

def test_stored_signatures_verify_their_images_and_nothing_else() -> None:
    cert = images.SIGNING_CERT_PEM
    assert firmware.signature_valid(cert, images.GOOD_SIGNATURE, images.GOOD_IMAGE)
    assert firmware.signature_valid(cert, images.OTHER_MODEL_SIGNATURE, images.OTHER_MODEL_IMAGE)
    assert not firmware.signature_valid(cert, images.GOOD_SIGNATURE, images.TAMPERED_IMAGE)
    assert not firmware.signature_valid(cert, images.GOOD_SIGNATURE, images.OTHER_MODEL_IMAGE)
    assert not firmware.signature_valid(cert, "not base64!", images.GOOD_IMAGE)
    assert not firmware.signature_valid("garbage", images.GOOD_SIGNATURE, images.GOOD_IMAGE)


def test_sign_produces_a_signature_the_station_accepts() -> None:
    data = b"any firmware"
    assert firmware.signature_valid(images.SIGNING_CERT_PEM, images.sign(data), data)


def test_images_are_deterministic_and_carry_their_header() -> None:
    assert images.image("M", "9.9") == images.image("M", "9.9")
    assert images.parse_header(images.GOOD_IMAGE) == (images.STATION_MODEL, images.NEW_VERSION)
    assert images.parse_header(images.OTHER_MODEL_IMAGE)[0] != images.STATION_MODEL
    assert images.parse_header(b"\x7fELF...") is None


def test_only_the_manufacturer_certificate_is_trusted() -> None:
    assert firmware.certificate_problem(images.SIGNING_CERT_PEM) is None
    assert "not a PEM" in (firmware.certificate_problem("nonsense") or "")
    other = _self_signed("Someone Else")
    assert "manufacturer root" in (firmware.certificate_problem(other) or "")


def _self_signed(org: str) -> str:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
            .not_valid_after(dt.datetime(2049, 1, 1, tzinfo=dt.timezone.utc)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# ---- the loopback file server -----------------------------------------------------------------

BASE = f"http://{repo.REPO_HOST}"


def test_download_and_upload_over_loopback_http() -> None:
    async def go() -> None:
        assert await repo.download(f"{BASE}/firmware/refsim-2.0.0.bin", timeout=3) == images.GOOD_IMAGE
        with pytest.raises(repo.TransferError, match="404"):
            await repo.download(f"{BASE}/firmware/none.bin", timeout=3)
        await repo.upload(f"{BASE}/logs/unit.log", b"hello", timeout=3)
        with pytest.raises(repo.TransferError, match="403"):
            await repo.upload(f"{BASE}/denied/unit.log", b"hello", timeout=3)
        with pytest.raises(repo.TransferError, match="unsupported transfer protocol"):
            await repo.download("ftp://example.invalid/x.bin", timeout=3)
    run(go())
    assert repo.uploads["/logs/unit.log"] == b"hello"
    assert repo.resolve(f"{BASE}/x").startswith("http://127.0.0.1:")
    assert repo.resolve("http://example.org/x") == "http://example.org/x"


def test_loopback_transfers_ignore_an_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")          # nothing listens there
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert run(repo.download(f"{BASE}/firmware/refsim-2.0.0.bin", timeout=3)) == images.GOOD_IMAGE


def test_join_appends_the_file_name_to_a_directory_only() -> None:
    assert repo.join("http://h/logs/", "a.log") == "http://h/logs/a.log"
    assert repo.join("http://h/upload", "a.log") == "http://h/upload"


# ---- the update job with a stand-in station ---------------------------------------------------

@dataclass
class _Cfg:
    station_id: str = "CS-UNIT"
    model: str = images.STATION_MODEL
    firmware: str = "1.0.0"


class _Trace:
    def event(self, *args: Any) -> None:
        pass


@dataclass
class _Sim:
    fault: str | None = None
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    evses: dict[int, Any] = field(default_factory=dict)
    cfg: _Cfg = field(default_factory=_Cfg)
    trace: _Trace = field(default_factory=_Trace)
    call_timeout_s: float = 1.0
    reset_reason: str | None = None

    def has(self, fault: str) -> bool:
        return self.fault == fault

    def enqueue(self, action: str, payload: dict[str, Any], persistent: bool = False) -> asyncio.Future[Any]:
        self.sent.append((action, payload))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result({})
        return fut

    send_triggered = enqueue

    async def reset(self, why: str, reason: str) -> None:
        self.reset_reason = reason


class _Front:
    version = "2.0.1"

    def __init__(self, sim: _Sim):
        self.sim = sim


def _job(location: str, **kw: Any) -> firmware.UpdateJob:
    base = dict(kind="update201", request_id=7, location=location, retrieve_at=None, install_at=None,
                attempts=1, retry_interval_s=0.0, certificate=images.SIGNING_CERT_PEM, signature=images.GOOD_SIGNATURE)
    return firmware.UpdateJob(**{**base, **kw})


def _statuses(sim: _Sim) -> list[str]:
    return [p["status"] for a, p in sim.sent if a.endswith("FirmwareStatusNotification")]


def test_successful_update_reboots_with_reason_firmware_update() -> None:
    sim = _Sim()
    front = _Front(sim)

    async def go() -> None:
        await firmware.run_job(front, _job(f"{BASE}/firmware/refsim-2.0.0.bin"))   # type: ignore[arg-type]
        assert _statuses(sim) == ["Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting"]
        assert sim.reset_reason == "FirmwareUpdate" and sim.cfg.firmware == images.NEW_VERSION
        firmware._on_boot_accepted(front)                                          # type: ignore[arg-type]
    run(go())
    assert _statuses(sim)[-1] == "Installed"
    assert all(p.get("requestId") == 7 for a, p in sim.sent if a == "FirmwareStatusNotification")


def test_download_is_retried_then_reported_failed() -> None:
    sim = _Sim()
    run(firmware.run_job(_Front(sim), _job(f"{BASE}/firmware/gone.bin", attempts=3)))   # type: ignore[arg-type]
    assert _statuses(sim) == ["Downloading"] * 3 + ["DownloadFailed"]


def test_fault_download_failed_not_reported() -> None:
    sim = _Sim(fault="download_failed_not_reported")
    run(firmware.run_job(_Front(sim), _job(f"{BASE}/firmware/gone.bin")))     # type: ignore[arg-type]
    assert _statuses(sim) == ["Downloading"]


def test_tampered_image_is_refused_unless_the_check_is_skipped() -> None:
    clean, broken = _Sim(), _Sim(fault="firmware_skips_signature_check")
    for sim in (clean, broken):
        run(firmware.run_job(_Front(sim), _job(f"{BASE}/firmware/refsim-2.0.0-tampered.bin")))  # type: ignore[arg-type]
    assert _statuses(clean)[-1] == "InvalidSignature"
    assert ("SecurityEventNotification", "InvalidFirmwareSignature") in [(a, p.get("type")) for a, p in clean.sent]
    assert "SignatureVerified" in _statuses(broken)


def test_1_6_plain_update_reports_only_1_6_statuses() -> None:
    sim = _Sim()
    run(firmware.run_job(_Front(sim), _job(f"{BASE}/firmware/refsim-2.0.0.bin", kind="update16",   # type: ignore[arg-type]
                                           request_id=None, certificate=None, signature=None)))
    assert _statuses(sim) == ["Downloading", "Downloaded", "Installing"]
    assert all("requestId" not in p for _, p in sim.sent)


# ---- CSMS builders and their faults -----------------------------------------------------------

@dataclass
class _Csms:
    fault: str | None = None

    def faulty(self, name: str, version: str | None = None) -> bool:
        return self.fault == name

    def next_remote_start_id(self) -> int:
        return 42


@dataclass
class _St:
    station_id: str = "CS-UNIT"
    version: str = "2.0.1"


def _valid(version: str, action: str, payload: dict[str, Any]) -> bool:
    return schemas.validate(version, action, "request", payload) is None


def test_update_firmware_builders_are_schema_valid_and_signed() -> None:
    at = "2031-01-01T10:00:00Z"
    action, payload, ok = firmware._op_update_firmware_201(_Csms(), _St(), {"retrieve_date": at})   # type: ignore[arg-type]
    assert ok and _valid("2.0.1", action, payload)
    assert payload["firmware"]["retrieveDateTime"] == at and payload["firmware"]["signature"] == images.GOOD_SIGNATURE
    action, payload, ok = firmware._op_signed_update_firmware_16(_Csms(), _St(), {})   # type: ignore[arg-type]
    assert ok and _valid("1.6", action, payload)
    action, payload, ok = firmware._op_update_firmware_16(_Csms(), _St(), {"retries": 2})   # type: ignore[arg-type]
    assert ok and _valid("1.6", action, payload) and payload["retries"] == 2


def test_csms_firmware_faults_change_the_request() -> None:
    at = "2031-01-01T10:00:00Z"
    _, p, _ = firmware._op_update_firmware_201(_Csms("update_firmware_missing_signature"), _St(), {})  # type: ignore[arg-type]
    assert "signature" not in p["firmware"]
    _, p, valid = firmware._op_signed_update_firmware_16(_Csms("update_firmware_missing_signature"), _St(), {})  # type: ignore[arg-type]
    assert "signature" not in p["firmware"] and not valid
    _, p, _ = firmware._op_update_firmware_201(_Csms("firmware_retrieve_date_in_past"), _St(),  # type: ignore[arg-type]
                                                {"retrieve_date": at})
    assert p["firmware"]["retrieveDateTime"] == "2031-01-01T09:00:00Z"


def test_csms_status_answer_fault_only_hits_newer_states() -> None:
    broken = _Csms("firmware_status_unknown_state_error")
    assert firmware._record_status(broken, _St(), {"status": "Downloading"}) == {}   # type: ignore[arg-type]
    with pytest.raises(KeyError):
        firmware._record_status(broken, _St(), {"status": "SignatureVerified"})      # type: ignore[arg-type]


def test_log_builders_and_their_faults() -> None:
    build = logs._op_get_log("2.0.1")
    action, p, _ = build(_Csms(), _St(), {"log_type": "SecurityLog"})               # type: ignore[arg-type]
    assert _valid("2.0.1", action, p) and p["logType"] == "SecurityLog"
    _, p, _ = build(_Csms("get_log_wrong_type"), _St(), {"log_type": "SecurityLog"})  # type: ignore[arg-type]
    assert p["logType"] == "DiagnosticsLog"
    action, p, _ = logs._op_get_diagnostics(_Csms(), _St(), {"retries": 2, "retry_interval": 5})  # type: ignore[arg-type]
    assert _valid("1.6", action, p) and p["retries"] == 2
    _, p, _ = logs._op_get_diagnostics(_Csms("diagnostics_retries_dropped"), _St(), {"retries": 2})  # type: ignore[arg-type]
    assert "retries" not in p


# ---- registration and TriggerMessage chaining ---------------------------------------------------

def test_features_are_registered() -> None:
    assert "FirmwareManagement" in features.profiles16()
    assert {"UpdateFirmware", "GetLog"} <= set(features.station_handlers("2.0.1"))
    assert {"UpdateFirmware", "SignedUpdateFirmware", "GetDiagnostics", "GetLog"} <= set(features.station_handlers("1.6"))
    assert {"update_firmware", "get_log"} <= set(features.csms_operator("2.0.1"))
    assert {"update_firmware", "signed_update_firmware", "get_diagnostics", "get_log"} <= set(features.csms_operator("1.6"))
    names = set(features.station_faults()) | set(features.csms_faults())
    assert {"firmware_no_reboot_after_install", "log_upload_never_reports_uploaded", "get_log_wrong_type"} <= names


def test_trigger_for_another_message_reaches_the_core() -> None:
    class Front(_Front):
        async def _trigger(self, p: dict[str, Any]) -> Reply:
            return Reply({"status": "FromCore:" + p["requestedMessage"]})

    handler = firmware.trigger_handler("2.0.1", "TriggerMessage", {}, "zzz-not-a-feature")
    reply = run(handler(Front(_Sim()), {"requestedMessage": "Heartbeat"}))
    assert reply.payload == {"status": "FromCore:Heartbeat"}


def test_idle_trigger_has_no_request_id() -> None:
    sim = _Sim()

    async def go() -> None:
        firmware._trigger_fw_201(_Front(sim))                                      # type: ignore[arg-type]
    run(go())
    assert sim.sent == [("FirmwareStatusNotification", {"status": "Idle"})]


# ---- Local Controller publishing (L03/L04) --------------------------------------------------------

def test_publish_checks_md5_and_serves_the_file_until_unpublished() -> None:
    from harness.sim.features import firmware_publish as pub

    sim = _Sim()
    front = _Front(sim)

    async def go() -> None:
        ok = pub.Publication(pub.DEFAULT_CHECKSUM, 1)
        pub.state(front).items[ok.checksum] = ok                             # type: ignore[arg-type]
        await pub.run_publish(front, ok, f"{BASE}/firmware/refsim-2.0.0.bin", 1, 0)   # type: ignore[arg-type]
        url = sim.sent[-1][1]["location"][0]
        assert await repo.download(url, timeout=3) == images.GOOD_IMAGE
        assert (await pub._unpublish_firmware(front, {"checksum": ok.checksum})).payload == {"status": "Unpublished"}  # type: ignore[arg-type]
        assert (await pub._unpublish_firmware(front, {"checksum": ok.checksum})).payload == {"status": "NoFirmware"}   # type: ignore[arg-type]
        with pytest.raises(repo.TransferError):
            await repo.download(url, timeout=3)
        bad = pub.Publication("0" * 32, 2)
        await pub.run_publish(front, bad, f"{BASE}/firmware/refsim-2.0.0.bin", 1, 0)  # type: ignore[arg-type]
    run(go())
    statuses = [p["status"] for a, p in sim.sent if a == "PublishFirmwareStatusNotification"]
    assert statuses == ["Downloading", "Downloaded", "ChecksumVerified", "Published",
                        "Downloading", "Downloaded", "InvalidChecksum"]


def test_publish_builders() -> None:
    from harness.sim.features import firmware_publish as pub

    action, p, _ = pub._op_publish(_Csms(), _St(), {})                           # type: ignore[arg-type]
    assert _valid("2.0.1", action, p) and p["checksum"] == pub.DEFAULT_CHECKSUM
    _, p, _ = pub._op_unpublish(_Csms("publish_firmware_wrong_checksum"), _St(), {})   # type: ignore[arg-type]
    assert p["checksum"] != pub.DEFAULT_CHECKSUM and len(p["checksum"]) == 32
