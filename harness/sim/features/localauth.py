"""Local Authorization List and Authorization Cache of the station simulator (2.0.1 blocks C/D, 1.6 Local Auth List Management).

What the station keeps (survives reboots, like flash memory would):
- the Local Authorization List the CSMS sends (SendLocalList Full / Differential) and its
  version number (GetLocalListVersion);
- the Authorization Cache, filled from the CSMS's answers that carry an idTokenInfo /
  idTagInfo (Authorize, TransactionEvent, Start/StopTransaction), cleared by ClearCache.

How they are used when a driver presents a token (the core's `token_gate` hook):
- online with LocalPreAuthorize: a token the list (first) or the cache holds as Accepted
  starts at once, no Authorize (C12.FR.02 / C14.FR.02, 1.6 §3.5); anything else asks the
  CSMS, unless DisablePostAuthorize (AuthCacheCtrlr / LocalAuthListCtrlr) says to trust the
  local non-Accepted verdict;
- offline with LocalAuthorizeOffline: the list, then the cache decide; an unknown token is
  accepted only with OfflineTxForUnknownIdEnabled / AllowOfflineTxForUnknownId (C13, C15);
- otherwise the core asks the CSMS as usual.

Out-of-band actions `go_offline {seconds?}` / `go_online {}` cut the station off its CSMS
(the websocket closes and stays closed) and bring it back, for the offline cases.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..api import Fault, Reply, Setting
from . import Feature, feature_state

if TYPE_CHECKING:
    from ..evse import Evse
    from ..station import FrontEnd, StationSimulator

# Settings without behaviour in the core: plain stored values. Setting is a frozen dataclass
# and the store is keyed by it, so two bools with the same default would share one value;
# a distinct (otherwise unused for bools) `minimum` keeps each setting its own slot.
LIST_ENABLED = Setting(None, "bool", const="true", minimum=9101)
PRE_AUTHORIZE = Setting(None, "bool", const="false", minimum=9102)
AUTHORIZE_OFFLINE = Setting(None, "bool", const="false", minimum=9103)
OFFLINE_UNKNOWN = Setting(None, "bool", const="false", minimum=9104)
CACHE_ENABLED = Setting(None, "bool", const="true", minimum=9105)
CACHE_LIFETIME = Setting(None, "int", const="86400", minimum=1)
CACHE_NO_POST_AUTHORIZE = Setting(None, "bool", const="false", minimum=9107)   # AuthCacheCtrlr.DisablePostAuthorize
LIST_NO_POST_AUTHORIZE = Setting(None, "bool", const="false", minimum=9108)    # LocalAuthListCtrlr.DisablePostAuthorize
LIST_ENTRIES = Setting(None, "int", readonly=True, const="0", minimum=9106)   # updated as the list changes
ITEMS_PER_MESSAGE = 20                 # SendLocalList entries per message (2.0.1 ItemsPerMessage / 1.6 SendLocalListMaxLength)
BYTES_PER_MESSAGE = 16000
LIST_CAPACITY = 500                    # 1.6 LocalAuthListMaxLength

_RO = {"readonly": True}


@dataclass
class Entry:
    """One identifier in the local list or the cache."""
    status: str
    expiry: str | None = None          # ISO time after which an Accepted entry counts as Expired
    group: str | None = None
    stored_at: float = 0.0             # event-loop time (cache lifetime)


@dataclass
class LocalAuthState:
    version: int = 0
    entries: dict[str, Entry] = field(default_factory=dict)
    cache: dict[str, Entry] = field(default_factory=dict)


def state(front: Any) -> LocalAuthState:
    return feature_state(front, "localauth", LocalAuthState)


def _on(sim: "StationSimulator", s: Setting) -> bool:
    return sim.read_setting(s) == "true"


def _expired(expiry: str | None) -> bool:
    if not expiry:
        return False
    try:
        when = datetime.fromisoformat(expiry.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when < datetime.now(timezone.utc)


def effective_status(entry: Entry) -> str:
    """An Accepted entry past its expiry date is Expired (C10.FR.xx / 1.6 §3.5.1)."""
    return "Expired" if entry.status == "Accepted" and _expired(entry.expiry) else entry.status


def _sync_entries(sim: "StationSimulator", st: LocalAuthState) -> None:
    sim.stored[LIST_ENTRIES] = str(len(st.entries))


# ---- applying a SendLocalList (version-neutral core) ------------------------------------

@dataclass
class ListItem:
    token: str
    info: dict[str, Any] | None        # idTokenInfo / idTagInfo; None = remove (Differential)


def apply_list(sim: "StationSimulator", st: LocalAuthState, version: int, update: str,
               items: list[ListItem]) -> str:
    """Apply one SendLocalList; returns Accepted / Failed / VersionMismatch (D01, 1.6 §5.15)."""
    tokens = [i.token for i in items]
    if version <= 0 or len(set(tokens)) != len(tokens):          # D01.FR.18, D01.FR.06
        return "Failed"
    if len(items) > ITEMS_PER_MESSAGE:
        return "Failed"
    if update == "Full":
        if any(i.info is None for i in items) and not sim.has("incomplete_full_list_accepted"):
            return "Failed"                                       # a full list names every status
        new = {i.token: _entry(i.info) for i in items if i.info is not None}
        if len(new) > LIST_CAPACITY:
            return "Failed"
        if sim.has("full_update_merges"):
            new = {**st.entries, **new}                           # the bug: old entries survive a Full update
        st.entries = new
    else:
        if version <= st.version and not sim.has("version_mismatch_not_reported"):
            return "VersionMismatch"                              # D01.FR.19
        if sim.has("differential_update_replaces_list"):
            st.entries = {}                                       # the bug: a delta taken for the whole list
        for i in items:
            if i.info is None:
                st.entries.pop(i.token, None)                     # D01.FR.17
            else:
                st.entries[i.token] = _entry(i.info)              # D01.FR.16
    if not sim.has("version_not_stored"):
        st.version = version
    for token in st.entries:                                      # list entries never live in the cache
        st.cache.pop(token, None)
    _sync_entries(sim, st)
    return "Accepted"


def _entry(info: dict[str, Any]) -> Entry:
    group = info.get("groupIdToken") or info.get("parentIdTag")
    if isinstance(group, dict):
        group = group.get("idToken")
    return Entry(str(info.get("status", "Invalid")), info.get("cacheExpiryDateTime") or info.get("expiryDate"),
                 group)


# ---- 2.0.1 handlers ----------------------------------------------------------------------

async def _send_local_list_201(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    sim = front.sim
    if not _on(sim, LIST_ENABLED):
        return Reply({"status": "Failed", "statusInfo": {"reasonCode": "Disabled"}})
    if len(json.dumps(p)) > BYTES_PER_MESSAGE:
        return Reply({"status": "Failed", "statusInfo": {"reasonCode": "TooLarge"}})
    items = [ListItem(str(a["idToken"]["idToken"]), a.get("idTokenInfo")) for a in p.get("localAuthorizationList") or []]
    status = apply_list(sim, state(front), int(p["versionNumber"]), p["updateType"], items)
    return Reply({"status": status})


async def _get_local_list_version_201(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    st = state(front)
    disabled = not _on(front.sim, LIST_ENABLED) and not front.sim.has("list_version_reported_when_disabled")
    return Reply({"versionNumber": 0 if disabled else st.version})   # D02.FR.03: 0 when disabled


async def _clear_cache(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    sim = front.sim
    core_fault = "clear_cache_rejected" if front.version == "2.0.1" else "clear_cache_rejected_16"
    if sim.has(core_fault):
        return Reply({"status": "Rejected"})
    if not _on(sim, CACHE_ENABLED) and not sim.has("clear_cache_accepted_when_disabled"):
        return Reply({"status": "Rejected"})                      # C11.FR.04
    if not sim.has("auth_cache_not_cleared"):
        state(front).cache.clear()                                # C11.FR.02
    return Reply({"status": "Accepted"})


# ---- 1.6 handlers ------------------------------------------------------------------------

async def _send_local_list_16(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    sim = front.sim
    if not _on(sim, LIST_ENABLED):
        return Reply({"status": "NotSupported"})
    items = [ListItem(str(a["idTag"]), a.get("idTagInfo")) for a in p.get("localAuthorizationList") or []]
    return Reply({"status": apply_list(sim, state(front), int(p["listVersion"]), p["updateType"], items)})


async def _get_local_list_version_16(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    if not _on(front.sim, LIST_ENABLED):
        return Reply({"listVersion": -1})                         # 1.6 §5.8: -1 = no local list
    st = state(front)
    empty = not st.entries and not front.sim.has("empty_list_reports_version")
    return Reply({"listVersion": 0 if empty else st.version})       # 0 = the list is empty


# ---- the token gate and the cache --------------------------------------------------------

def _online(sim: "StationSimulator") -> bool:
    return sim.conn is not None and sim.accepted.is_set()


def _cached(sim: "StationSimulator", st: LocalAuthState, token: str) -> Entry | None:
    if not _on(sim, CACHE_ENABLED):
        return None
    entry = st.cache.get(token)
    if entry is None:
        return None
    lifetime = int(sim.read_setting(CACHE_LIFETIME) or 0)
    if lifetime > 0 and sim.now() - entry.stored_at > lifetime:
        st.cache.pop(token, None)                                 # C10: entries age out after LifeTime
        return None
    return entry


async def token_gate(front: "FrontEnd", evse: "Evse", id_token: str, token_type: str) -> str | None:
    sim = front.sim
    st = state(front)
    listed = st.entries.get(id_token) if _on(sim, LIST_ENABLED) else None
    cached = _cached(sim, st, id_token)
    if _online(sim):
        if not _on(sim, PRE_AUTHORIZE) or sim.has("pre_authorize_ignored"):
            if cached is not None and sim.has("cache_used_without_pre_authorize"):
                return effective_status(cached)                   # the bug: C10.FR.11 says ask the CSMS
            return None
        local = listed or cached
        if local is not None and effective_status(local) == "Accepted":
            return "Accepted"                                     # C12.FR.02 / C14.FR.02: no AuthorizeRequest
        if listed is not None and _on(sim, LIST_NO_POST_AUTHORIZE):
            return effective_status(listed)                       # C14.FR.03 switched off: trust the list
        if listed is None and cached is not None:
            trust = _on(sim, CACHE_NO_POST_AUTHORIZE) and not sim.has("disable_post_authorize_ignored")
            if trust or sim.has("cached_verdict_trusted_online"):
                return effective_status(cached)                   # DisablePostAuthorize: refuse locally (TC_C_57)
        return None                                   # unknown or not Accepted: ask the CSMS (C12.FR.05, C14.FR.03)
    if not _on(sim, AUTHORIZE_OFFLINE):
        return None
    if sim.has("local_list_ignored_offline"):
        listed = None
    local = listed or cached
    if local is not None:
        verdict = effective_status(local)
        if verdict != "Accepted" and sim.has("blocked_entry_still_starts"):
            return "Accepted"                                     # the bug: only presence is checked
        return verdict                                            # C13.FR.02 (Accepted) / C13.FR.04 (not)
    if _on(sim, OFFLINE_UNKNOWN) != sim.has("offline_unknown_id_ignored_setting"):
        return "Accepted"                                         # C15.FR.02
    return "Invalid"


def answered(front: "FrontEnd", action: str, payload: dict[str, Any], response: dict[str, Any] | None) -> None:
    """C10.FR.01/04, 1.6 §3.5.2: every CSMS verdict on an id token updates the cache."""
    if not response:
        return
    sim = front.sim
    if not _on(sim, CACHE_ENABLED) or sim.has("auth_cache_not_filled"):
        return
    if front.version == "2.0.1":
        info = response.get("idTokenInfo")
        token = (payload.get("idToken") or {}).get("idToken") if action in ("Authorize", "TransactionEvent") else None
    else:
        info = response.get("idTagInfo")
        token = payload.get("idTag") if action in ("Authorize", "StartTransaction", "StopTransaction") else None
    if not token or not isinstance(info, dict) or "status" not in info:
        return
    st = state(front)
    if token in st.entries:
        return                                                    # list entries are not cached (1.6 §3.5.3)
    entry = _entry(info)
    entry.stored_at = sim.now()
    st.cache[str(token)] = entry


def boot_accepted(front: "FrontEnd") -> None:
    """The list and the cache live in persistent memory; only the faulty station forgets them."""
    if front.sim.has("local_list_lost_on_reboot"):
        st = state(front)
        st.entries, st.version = {}, 0
        _sync_entries(front.sim, st)


# ---- out-of-band: lose and regain the CSMS ----------------------------------------------

async def go_offline(sim: "StationSimulator", params: dict[str, Any]) -> dict[str, Any]:
    """Close the websocket and do not reconnect (for `seconds`, or until go_online)."""
    task = sim._run_task
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=3.0)
    sim._run_task = None
    sim.trace.event(sim.cfg.station_id, "station lost its connection to the CSMS (go_offline)", "CLOSE")
    seconds = params.get("seconds")
    if seconds is not None:
        async def later() -> None:
            await asyncio.sleep(float(seconds))
            await sim.start()
        sim.spawn(later(), "localauth-back-online")
    return {"offline": True, "seconds": seconds}


async def go_online(sim: "StationSimulator", params: dict[str, Any]) -> dict[str, Any]:
    await sim.start()                                             # a fresh connection loop
    return {"offline": False}


# ---- faults ------------------------------------------------------------------------------

_BOTH = ("1.6", "2.0.1")


def _fault(name: str, description: str, versions: tuple[str, ...] = _BOTH) -> Fault:
    return Fault(name, "cs", versions, description)


FEATURE = Feature(
    name="localauth",
    station_handlers={
        "2.0.1": {"SendLocalList": _send_local_list_201, "GetLocalListVersion": _get_local_list_version_201,
                  "ClearCache": _clear_cache},
        "1.6": {"SendLocalList": _send_local_list_16, "GetLocalListVersion": _get_local_list_version_16,
                "ClearCache": _clear_cache},
    },
    station_variables={
        ("LocalAuthListCtrlr", "Enabled", None): LIST_ENABLED,
        ("LocalAuthListCtrlr", "Available", None): Setting(None, const="true", **_RO),
        ("LocalAuthListCtrlr", "Entries", None): LIST_ENTRIES,
        ("LocalAuthListCtrlr", "ItemsPerMessage", None): Setting(None, const=str(ITEMS_PER_MESSAGE), **_RO),
        ("LocalAuthListCtrlr", "BytesPerMessage", None): Setting(None, const=str(BYTES_PER_MESSAGE), **_RO),
        ("LocalAuthListCtrlr", "DisablePostAuthorize", None): LIST_NO_POST_AUTHORIZE,
        ("AuthCtrlr", "LocalPreAuthorize", None): PRE_AUTHORIZE,
        ("AuthCtrlr", "LocalAuthorizeOffline", None): AUTHORIZE_OFFLINE,
        ("AuthCtrlr", "OfflineTxForUnknownIdEnabled", None): OFFLINE_UNKNOWN,
        ("AuthCacheCtrlr", "Enabled", None): CACHE_ENABLED,
        ("AuthCacheCtrlr", "Available", None): Setting(None, const="true", **_RO),
        ("AuthCacheCtrlr", "LifeTime", None): CACHE_LIFETIME,
        ("AuthCacheCtrlr", "DisablePostAuthorize", None): CACHE_NO_POST_AUTHORIZE,
    },
    station_config={
        "LocalAuthListEnabled": LIST_ENABLED,
        "LocalAuthListMaxLength": Setting(None, const=str(LIST_CAPACITY), **_RO),
        "SendLocalListMaxLength": Setting(None, const=str(ITEMS_PER_MESSAGE), **_RO),
        "LocalPreAuthorize": PRE_AUTHORIZE,
        "LocalAuthorizeOffline": AUTHORIZE_OFFLINE,
        "AllowOfflineTxForUnknownId": OFFLINE_UNKNOWN,
        "AuthorizationCacheEnabled": CACHE_ENABLED,
    },
    profile16="LocalAuthListManagement",
    station_actions={"go_offline": go_offline, "go_online": go_online},
    token_gate=token_gate,
    answered=answered,
    boot_accepted=boot_accepted,
    station_faults=[
        _fault("differential_update_replaces_list",
               "A Differential SendLocalList replaces the whole Local Authorization List instead of updating it."),
        _fault("version_not_stored",
               "Accepts a SendLocalList but keeps reporting the previous list version in GetLocalListVersion."),
        _fault("version_mismatch_not_reported",
               "Applies a Differential SendLocalList whose version is not higher than the list's (no VersionMismatch)."),
        _fault("blocked_entry_still_starts",
               "Offline, starts a transaction for a token the Local Authorization List holds as Blocked/Expired."),
        _fault("local_list_ignored_offline",
               "Offline with LocalAuthorizeOffline, does not look at the Local Authorization List (refuses listed tokens)."),
        _fault("pre_authorize_ignored",
               "With LocalPreAuthorize, still sends Authorize for a token its local list or cache holds as Accepted."),
        _fault("auth_cache_not_filled",
               "Never stores the CSMS's verdicts in the Authorization Cache."),
        _fault("cache_used_without_pre_authorize",
               "Starts from the Authorization Cache without an Authorize although LocalPreAuthorize is false."),
        _fault("cached_verdict_trusted_online",
               "Online, refuses a token locally because the cache holds it as Blocked/Invalid/Expired, without asking the CSMS."),
        _fault("disable_post_authorize_ignored",
               "Sends Authorize for a cached non-Accepted token although AuthCacheCtrlr.DisablePostAuthorize is true.",
               ("2.0.1",)),
        _fault("auth_cache_not_cleared",
               "Answers ClearCache Accepted but keeps the Authorization Cache."),
        _fault("clear_cache_accepted_when_disabled",
               "Answers ClearCache Accepted while the Authorization Cache is disabled (C11.FR.04 wants Rejected)."),
        _fault("incomplete_full_list_accepted",
               "Accepts a Full SendLocalList whose entries lack idTokenInfo/idTagInfo (silently drops them)."),
        _fault("local_list_lost_on_reboot",
               "Keeps the Local Authorization List in RAM only: after a reboot the list is empty and its version 0."),
        _fault("full_update_merges",
               "A Full SendLocalList is merged into the old list: entries it no longer names stay authorized."),
        _fault("list_version_reported_when_disabled",
               "With LocalAuthListCtrlr.Enabled false, GetLocalListVersion still reports the old list's version.",
               ("2.0.1",)),
        _fault("empty_list_reports_version",
               "Reports the version of an empty local list in GetLocalListVersion instead of 0.", ("1.6",)),
        _fault("offline_unknown_id_ignored_setting",
               "Offline, decides unknown tokens against OfflineTxForUnknownIdEnabled/AllowOfflineTxForUnknownId inverted."),
    ],
)
