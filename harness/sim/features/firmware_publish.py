"""Firmware publishing on a Local Controller: OCPP 2.0.1 L03 (PublishFirmware) and L04
(UnpublishFirmware), in both reference simulators.

Station simulator, in the role of a Local Controller (a site controller in front of its
stations; the reference station plays it too, so the library's L03/L04 cases have a
DUT stand-in): PublishFirmware downloads `location` over real HTTP (`retries` attempts,
`retryInterval` s apart), checks the MD5 `checksum` over the whole file, and publishes it
on the test network's file server at
`http://files.harness.invalid/published/<station id>/<checksum>.bin`. Statuses, each with
the requestId: Downloading, Downloaded, ChecksumVerified, Published (with the location
list), or DownloadFailed / InvalidChecksum. UnpublishFirmware answers Unpublished (and
removes the file), NoFirmware, or DownloadOngoing while that file is being fetched.
TriggerMessage PublishFirmwareStatusNotification reports the publication in progress or Idle.

CSMS simulator: operator actions `publish_firmware` and `unpublish_firmware`.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api import Fault, Reply
from . import Feature, feature_state
from . import _file_repository as repo
from . import _firmware_images as images
from ._common import add_retry_fields, operator_request_id
from .firmware import DEFAULT_LOCATION, trigger_handler

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState
    from ..station import FrontEnd

V201 = "2.0.1"
NAME = "firmware_publish"
DEFAULT_CHECKSUM = hashlib.md5(images.GOOD_IMAGE).hexdigest()     # noqa: S324 (OCPP names MD5)


@dataclass
class Publication:
    checksum: str
    request_id: int
    status: str = "Idle"
    path: str | None = None                  # on the file server, once Published
    task: asyncio.Task[Any] | None = None


@dataclass
class PublishState:
    items: dict[str, Publication] = field(default_factory=dict)    # checksum (lower case) → publication
    latest: Publication | None = None


def state(front: FrontEnd) -> PublishState:
    return feature_state(front, NAME, PublishState)


def _notify(front: FrontEnd, pub: Publication, status: str, location: list[str] | None = None) -> None:
    pub.status = status
    payload: dict[str, Any] = {"status": status, "requestId": pub.request_id}
    if location and not front.sim.has("publish_status_missing_location"):
        payload["location"] = location
    front.sim.enqueue("PublishFirmwareStatusNotification", payload)


async def run_publish(front: FrontEnd, pub: Publication, location: str, attempts: int, interval_s: float) -> None:
    sim, st = front.sim, state(front)
    data: bytes | None = None
    for attempt in range(attempts):
        _notify(front, pub, "Downloading")
        try:
            data = await repo.download(location)
            break
        except repo.TransferError as exc:
            sim.trace.event(sim.cfg.station_id, f"publish download attempt {attempt + 1} failed: {exc}", "SIM")
            if attempt + 1 < attempts:
                await asyncio.sleep(interval_s)
    if data is None:
        _notify(front, pub, "DownloadFailed")
        st.items.pop(pub.checksum, None)
        return
    _notify(front, pub, "Downloaded")
    if hashlib.md5(data).hexdigest() != pub.checksum and not sim.has("publish_skips_checksum"):   # noqa: S324
        _notify(front, pub, "InvalidChecksum")
        st.items.pop(pub.checksum, None)
        return
    _notify(front, pub, "ChecksumVerified")
    pub.path = f"/published/{sim.cfg.station_id}/{pub.checksum}.bin"
    repo.FILES[pub.path] = data
    _notify(front, pub, "Published", [f"http://{repo.REPO_HOST}{pub.path}"])


async def _publish_firmware(front: FrontEnd, p: dict[str, Any]) -> Reply:
    st = state(front)
    pub = Publication(str(p["checksum"]).lower(), int(p["requestId"]))
    old = st.items.get(pub.checksum)
    if old is not None and old.task is not None and not old.task.done():
        return Reply({"status": "Rejected"})                 # that very file is being fetched already
    st.items[pub.checksum] = st.latest = pub

    async def go() -> None:
        pub.task = front.sim.spawn(run_publish(front, pub, str(p["location"]), max(1, int(p.get("retries", 1))),
                                               float(p.get("retryInterval", 1))), "publish-firmware")
    return Reply({"status": "Accepted"}, go)


async def _unpublish_firmware(front: FrontEnd, p: dict[str, Any]) -> Reply:
    st = state(front)
    pub = st.items.get(str(p["checksum"]).lower())
    if pub is None:
        return Reply({"status": "NoFirmware"})
    if pub.task is not None and not pub.task.done():
        return Reply({"status": "DownloadOngoing"})
    if front.sim.has("unpublish_keeps_firmware"):
        return Reply({"status": "Unpublished"})              # the bug: says so, keeps serving the file
    del st.items[pub.checksum]
    if pub.path is not None:
        repo.FILES.pop(pub.path, None)
    return Reply({"status": "Unpublished"})


def _trigger_publish_status(front: FrontEnd) -> None:
    pub = state(front).latest
    busy = pub is not None and pub.task is not None and not pub.task.done()
    payload: dict[str, Any] = {"status": pub.status if busy and pub else "Idle"}
    if busy and pub is not None:
        payload["requestId"] = pub.request_id
    front.sim.send_triggered("PublishFirmwareStatusNotification", payload)


# ---- CSMS side -----------------------------------------------------------------------------------

def _checksum(sim: CsmsSimulator, params: dict[str, Any]) -> str:
    checksum = str(params.get("checksum", DEFAULT_CHECKSUM))
    if sim.faulty("publish_firmware_wrong_checksum", V201):
        # the bug: a SHA-256 of the checksum field's text, cut to the field's 32 characters
        checksum = hashlib.sha256(checksum.encode()).hexdigest()[:32]
    return checksum


def _op_publish(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    payload: dict[str, Any] = {"location": str(params.get("location", DEFAULT_LOCATION)),
                               "checksum": _checksum(sim, params),
                               "requestId": operator_request_id(sim, params)}
    add_retry_fields(params, payload)
    return "PublishFirmware", payload, True


def _op_unpublish(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    return "UnpublishFirmware", {"checksum": _checksum(sim, params)}, True


def _record(sim: CsmsSimulator, st: StationState, p: dict[str, Any]) -> dict[str, Any]:
    st.__dict__.setdefault("_publish_statuses", []).append(dict(p))
    return {}


FEATURE = Feature(
    name=NAME,
    station_handlers={V201: {
        "PublishFirmware": _publish_firmware, "UnpublishFirmware": _unpublish_firmware,
        "TriggerMessage": trigger_handler(V201, "TriggerMessage",
                                          {"PublishFirmwareStatusNotification": _trigger_publish_status}, NAME),
    }},
    csms_answers={V201: {"PublishFirmwareStatusNotification": _record}},
    csms_operator={V201: {"publish_firmware": _op_publish, "unpublish_firmware": _op_unpublish}},
    csms_provokes={"PublishFirmware": frozenset({"PublishFirmwareStatusNotification"})},
    station_faults=[
        Fault("publish_skips_checksum", "cs", (V201,),
              "Local Controller: publishes a downloaded firmware file without checking its MD5 checksum "
              "(a corrupt file is Published instead of InvalidChecksum)."),
        Fault("publish_status_missing_location", "cs", (V201,),
              "Local Controller: PublishFirmwareStatusNotification Published lists no location where the "
              "stations can fetch the file."),
        Fault("unpublish_keeps_firmware", "cs", (V201,),
              "Local Controller: answers UnpublishFirmware Unpublished but keeps the file published "
              "(a second UnpublishFirmware is again Unpublished instead of NoFirmware)."),
    ],
    csms_faults=[
        Fault("publish_firmware_wrong_checksum", "csms", (V201,),
              "PublishFirmware / UnpublishFirmware carry a wrong checksum (a truncated SHA-256 instead of the "
              "file's MD5)."),
    ],
)
