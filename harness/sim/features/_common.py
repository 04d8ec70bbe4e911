"""Small helpers several feature modules share (operator request ids, retry fields, fault rows).

Kept apart from `harness.sim.features.__init__` because feature discovery requires every
non-underscore module here to define FEATURE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..api import Fault

if TYPE_CHECKING:
    from ..csms import CsmsSimulator


def operator_request_id(sim: "CsmsSimulator", params: dict[str, Any]) -> int:
    """The operator's `request_id`, else a fresh id from the CSMS's counter."""
    return int(params["request_id"]) if params.get("request_id") is not None else sim.next_remote_start_id()


def add_retry_fields(params: dict[str, Any], payload: dict[str, Any]) -> None:
    """Copy the operator's `retries` / `retry_interval` into a CALL payload (retries, retryInterval)."""
    if params.get("retries") is not None:
        payload["retries"] = int(params["retries"])
    if params.get("retry_interval") is not None:
        payload["retryInterval"] = int(params["retry_interval"])


def station_fault(name: str, versions: tuple[str, ...], text: str) -> Fault:
    """A fault of the station simulator ("cs")."""
    return Fault(name, "cs", versions, text)


def csms_fault(name: str, versions: tuple[str, ...], text: str) -> Fault:
    """A fault of the CSMS simulator ("csms")."""
    return Fault(name, "csms", versions, text)
