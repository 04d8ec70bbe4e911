"""Local Authorization List management on the CSMS simulator (2.0.1 D01/D02/C11, 1.6 Local Auth List Management).

Operator actions (all take `station_id`; see CsmsSimulator.perform for timeout/connect_timeout):
  send_local_list         update_type Full|Differential (default Full), version? (default: one
                          above the last version this CSMS sent the station), entries? [{id_token
                          (str or 2.0.1 IdTokenType), id_token_type?, status?, expiry?}]; an entry
                          without status is a removal (Differential). Without entries a Full list
                          holds the CSMS's own tokens (valid → Accepted, blocked → Blocked).
  get_local_list_version  asks the station for its list version
  clear_cache             (2.0.1) ClearCacheRequest; 1.6 has it in the core

The CSMS remembers, per station, the last list version it sent, so a Differential update
always carries a higher version than the list it builds on (D01.FR.18/19).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..api import Fault
from . import Feature

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState

Outgoing = tuple[str, dict[str, Any], bool]


def _memory(st: "StationState") -> dict[str, Any]:
    """What this CSMS keeps about a station's local list (kept with the station's model)."""
    return st.__dict__.setdefault("_localauth", {"version": 0})


def _next_version(sim: "CsmsSimulator", st: "StationState", params: dict[str, Any], version: str) -> int:
    mem = _memory(st)
    if sim.faulty("send_local_list_wrong_version", version):
        return int(mem["version"])                 # the bug: the version is never increased
    chosen = int(params["version"]) if params.get("version") is not None else int(mem["version"]) + 1
    mem["version"] = max(int(mem["version"]), chosen)
    return chosen


def _update_type(sim: "CsmsSimulator", params: dict[str, Any], version: str) -> str:
    kind = str(params.get("update_type", "Full"))
    if kind not in ("Full", "Differential"):
        raise ValueError(f"update_type must be Full or Differential, got {kind!r}")
    return "Full" if sim.faulty("differential_sent_as_full", version) else kind


def _entries(sim: "CsmsSimulator", params: dict[str, Any]) -> list[dict[str, Any]]:
    entries = params.get("entries")
    if entries is None:
        return ([{"id_token": t, "status": "Accepted"} for t in sim.cfg.valid_tokens]
                + [{"id_token": t, "status": "Blocked"} for t in sim.cfg.blocked_tokens])
    if not isinstance(entries, list):
        raise ValueError("entries must be a list of {id_token, status?}")
    return entries


def _id_token_201(entry: dict[str, Any]) -> dict[str, Any]:
    token = entry["id_token"]
    if isinstance(token, dict):
        return dict(token)
    return {"idToken": str(token), "type": entry.get("id_token_type", "ISO14443")}


def _id_tag_16(entry: dict[str, Any]) -> str:
    token = entry["id_token"]
    return str(token["idToken"] if isinstance(token, dict) else token)[:20]


@dataclass(frozen=True)
class _ListFields:
    """How one edition spells a SendLocalList: the token, its info, the expiry and the list version."""
    token: str
    info: str
    expiry: str
    list_version: str
    token_value: Callable[[dict[str, Any]], Any]


_FIELDS = {"2.0.1": _ListFields("idToken", "idTokenInfo", "cacheExpiryDateTime", "versionNumber", _id_token_201),
           "1.6": _ListFields("idTag", "idTagInfo", "expiryDate", "listVersion", _id_tag_16)}


def _send_local_list(version: str) -> Callable[["CsmsSimulator", "StationState", dict[str, Any]], Outgoing]:
    fields = _FIELDS[version]

    def build(sim: "CsmsSimulator", st: "StationState", params: dict[str, Any]) -> Outgoing:
        kind = _update_type(sim, params, version)
        data = []
        for e in _entries(sim, params):
            item: dict[str, Any] = {fields.token: fields.token_value(e)}
            if e.get("status") is not None and not sim.faulty("local_list_missing_status", version):
                info: dict[str, Any] = {"status": e["status"]}
                if e.get("expiry"):
                    info[fields.expiry] = e["expiry"]
                item[fields.info] = info
            data.append(item)
        payload: dict[str, Any] = {fields.list_version: _next_version(sim, st, params, version), "updateType": kind}
        if data:
            payload["localAuthorizationList"] = data
        return "SendLocalList", payload, True
    return build


_send_local_list_201 = _send_local_list("2.0.1")
_send_local_list_16 = _send_local_list("1.6")


def _get_local_list_version(sim: "CsmsSimulator", st: "StationState", params: dict[str, Any]) -> Outgoing:
    return "GetLocalListVersion", {}, True


def _clear_cache_201(sim: "CsmsSimulator", st: "StationState", params: dict[str, Any]) -> Outgoing:
    return "ClearCache", {}, True


_BOTH = ("2.0.1", "1.6")

FEATURE = Feature(
    name="localauth_csms",
    csms_operator={
        "2.0.1": {"send_local_list": _send_local_list_201, "get_local_list_version": _get_local_list_version,
                  "clear_cache": _clear_cache_201},
        "1.6": {"send_local_list": _send_local_list_16, "get_local_list_version": _get_local_list_version},
    },
    csms_faults=[
        Fault("send_local_list_wrong_version", "csms", _BOTH,
              "SendLocalList always carries the version of the previous list (0 at first) instead of a higher one."),
        Fault("differential_sent_as_full", "csms", _BOTH,
              "A Differential local-list update is sent with updateType Full, wiping the station's other entries."),
        Fault("local_list_missing_status", "csms", _BOTH,
              "SendLocalList entries are sent without idTokenInfo/idTagInfo (which means: remove them)."),
    ],
)
