"""Local Authorization List / Authorization Cache feature (harness.sim.features.localauth*): unit tests.

The station simulator is built but never started: handlers and hooks are called directly,
"online" is faked by setting the simulator's connection/acceptance state.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.sim import features
from harness.sim.features import localauth, localauth_csms
from harness.sim.station import StationSimulator

from _aio import run
from _features import station_sim as _sim

TOKEN, OTHER = "TRUCK-0001", "TRUCK-0002"


def _online(sim: StationSimulator, online: bool) -> None:
    sim.conn = object() if online else None          # type: ignore[assignment]
    if online:
        sim.accepted.set()
    else:
        sim.accepted.clear()


def _set(sim: StationSimulator, setting: Any, value: str) -> None:
    assert sim.write_setting(setting, value) == "Accepted"


def _entry(token: str, status: str | None = "Accepted") -> dict[str, Any]:
    item: dict[str, Any] = {"idToken": {"idToken": token, "type": "ISO14443"}}
    if status is not None:
        item["idTokenInfo"] = {"status": status}
    return item


async def _send(sim: StationSimulator, version: int, update: str, *items: dict[str, Any]) -> str:
    payload: dict[str, Any] = {"versionNumber": version, "updateType": update}
    if items:
        payload["localAuthorizationList"] = list(items)
    reply = await sim.front.handlers["SendLocalList"](payload)
    return str(reply.payload["status"])


async def _version(sim: StationSimulator) -> int:
    return int((await sim.front.handlers["GetLocalListVersion"]({})).payload["versionNumber"])


def test_feature_is_discovered_with_its_faults() -> None:
    names = {f.name for f in features.all_features()}
    assert {"localauth", "localauth_csms"} <= names
    assert "differential_update_replaces_list" in features.station_faults()
    assert "differential_sent_as_full" in features.csms_faults()
    assert "LocalAuthListManagement" in features.profiles16()


def test_settings_have_their_own_storage_slots() -> None:
    sim = _sim()
    _set(sim, localauth.PRE_AUTHORIZE, "true")
    assert sim.read_setting(localauth.PRE_AUTHORIZE) == "true"
    assert sim.read_setting(localauth.AUTHORIZE_OFFLINE) == "false"      # not the same slot
    assert sim.read_setting(localauth.OFFLINE_UNKNOWN) == "false"


def test_full_then_differential_updates_and_versions() -> None:
    async def scenario() -> None:
        sim = _sim()
        assert await _version(sim) == 0
        assert await _send(sim, 1, "Full", _entry(TOKEN)) == "Accepted"
        assert await _send(sim, 2, "Differential", _entry(OTHER, "Blocked")) == "Accepted"
        st = localauth.state(sim.front)
        assert st.version == 2 and set(st.entries) == {TOKEN, OTHER}
        assert st.entries[OTHER].status == "Blocked"
        assert sim.read_setting(localauth.LIST_ENTRIES) == "2"
        assert await _send(sim, 2, "Differential", _entry(TOKEN, None)) == "VersionMismatch"
        assert TOKEN in st.entries
        assert await _send(sim, 3, "Differential", _entry(TOKEN, None)) == "Accepted"   # removal
        assert set(st.entries) == {OTHER} and await _version(sim) == 3
    run(scenario())


@pytest.mark.parametrize("payload_items, version, update", [
    ([_entry(TOKEN, None)], 1, "Full"),                  # full list without a status
    ([_entry(TOKEN), _entry(TOKEN)], 1, "Full"),         # duplicate token (D01.FR.06)
    ([_entry(TOKEN)], 0, "Full"),                        # version 0 (D01.FR.18)
    ([_entry(f"T{i}") for i in range(localauth.ITEMS_PER_MESSAGE + 1)], 1, "Full"),
])
def test_invalid_lists_fail(payload_items: list[dict[str, Any]], version: int, update: str) -> None:
    async def scenario() -> None:
        sim = _sim()
        assert await _send(sim, version, update, *payload_items) == "Failed"
        assert await _version(sim) == 0
    run(scenario())


def test_disabled_list_reports_zero() -> None:
    async def scenario() -> None:
        sim = _sim()
        await _send(sim, 4, "Full", _entry(TOKEN))
        _set(sim, localauth.LIST_ENABLED, "false")
        assert await _version(sim) == 0                              # D02.FR.03
        assert await _send(sim, 5, "Full", _entry(TOKEN)) == "Failed"
    run(scenario())


@pytest.mark.parametrize("fault, expect", [
    ("differential_update_replaces_list", {OTHER}),
    ("version_mismatch_not_reported", {TOKEN, OTHER}),
])
def test_list_faults(fault: str, expect: set[str]) -> None:
    async def scenario() -> None:
        sim = _sim(fault)
        await _send(sim, 5, "Full", _entry(TOKEN))
        status = await _send(sim, 5 if fault == "version_mismatch_not_reported" else 6, "Differential", _entry(OTHER))
        assert status == "Accepted"
        assert set(localauth.state(sim.front).entries) == expect
    run(scenario())


def test_version_not_stored_fault() -> None:
    async def scenario() -> None:
        sim = _sim("version_not_stored")
        await _send(sim, 7, "Full", _entry(TOKEN))
        assert await _version(sim) == 0
    run(scenario())


def _gate(sim: StationSimulator, token: str) -> str | None:
    async def ask() -> str | None:
        return await localauth.token_gate(sim.front, sim.evses[1], token, "ISO14443")
    return run(ask())


def _listed(online: bool) -> StationSimulator:
    """A station whose local list holds TOKEN (Accepted) and OTHER (Blocked), online or not."""
    sim = _sim()
    run(_send(sim, 1, "Full", _entry(TOKEN), _entry(OTHER, "Blocked")))
    _online(sim, online)
    return sim


def test_gate_online_asks_csms_unless_pre_authorize() -> None:
    sim = _listed(online=True)
    assert _gate(sim, TOKEN) is None                                  # LocalPreAuthorize false
    _set(sim, localauth.PRE_AUTHORIZE, "true")
    assert _gate(sim, TOKEN) == "Accepted"                           # C14: no Authorize
    assert _gate(sim, OTHER) is None                                  # not Accepted: ask the CSMS
    assert _gate(sim, "UNKNOWN") is None


def test_gate_offline_decisions() -> None:
    sim = _listed(online=False)
    assert _gate(sim, TOKEN) is None                                  # LocalAuthorizeOffline false
    _set(sim, localauth.AUTHORIZE_OFFLINE, "true")
    assert _gate(sim, TOKEN) == "Accepted"
    assert _gate(sim, OTHER) == "Blocked"
    assert _gate(sim, "UNKNOWN") == "Invalid"
    _set(sim, localauth.OFFLINE_UNKNOWN, "true")
    assert _gate(sim, "UNKNOWN") == "Accepted"                       # C15


@pytest.mark.parametrize("fault, token, verdict", [
    ("blocked_entry_still_starts", OTHER, "Accepted"),
    ("local_list_ignored_offline", TOKEN, "Invalid"),
    ("offline_unknown_id_ignored_setting", "UNKNOWN", "Accepted"),
])
def test_gate_faults(fault: str, token: str, verdict: str) -> None:
    sim = _sim(fault)
    run(_send(sim, 1, "Full", _entry(TOKEN), _entry(OTHER, "Blocked")))
    _online(sim, False)
    _set(sim, localauth.AUTHORIZE_OFFLINE, "true")
    assert _gate(sim, token) == verdict


def test_expired_list_entry_is_not_accepted() -> None:
    sim = _sim()
    expired = {"idToken": {"idToken": TOKEN, "type": "ISO14443"},
               "idTokenInfo": {"status": "Accepted", "cacheExpiryDateTime": "2020-01-01T00:00:00Z"}}
    run(_send(sim, 1, "Full", expired))
    _online(sim, False)
    _set(sim, localauth.AUTHORIZE_OFFLINE, "true")
    assert _gate(sim, TOKEN) == "Expired"


def test_cache_filled_from_answers_and_cleared() -> None:
    async def scenario() -> None:
        sim = _sim()
        localauth.answered(sim.front, "Authorize", {"idToken": {"idToken": TOKEN, "type": "ISO14443"}},
                           {"idTokenInfo": {"status": "Accepted"}})
        localauth.answered(sim.front, "TransactionEvent", {"idToken": {"idToken": OTHER, "type": "ISO14443"}},
                           {"idTokenInfo": {"status": "Blocked"}})
        st = localauth.state(sim.front)
        assert st.cache[TOKEN].status == "Accepted" and st.cache[OTHER].status == "Blocked"
        _online(sim, True)
        _set(sim, localauth.PRE_AUTHORIZE, "true")
        assert await localauth.token_gate(sim.front, sim.evses[1], TOKEN, "ISO14443") == "Accepted"
        assert (await sim.front.handlers["ClearCache"]({})).payload == {"status": "Accepted"}
        assert st.cache == {}
        _set(sim, localauth.CACHE_ENABLED, "false")
        assert (await sim.front.handlers["ClearCache"]({})).payload == {"status": "Rejected"}   # C11.FR.04
    run(scenario())


def test_cache_lifetime_and_list_precedence() -> None:
    async def scenario() -> None:
        sim = _sim()
        _set(sim, localauth.CACHE_LIFETIME, "1")
        localauth.answered(sim.front, "Authorize", {"idToken": {"idToken": TOKEN, "type": "ISO14443"}},
                           {"idTokenInfo": {"status": "Accepted"}})
        st = localauth.state(sim.front)
        st.cache[TOKEN].stored_at -= 5                                   # aged past LifeTime
        assert localauth._cached(sim, st, TOKEN) is None
        await _send(sim, 1, "Full", _entry(OTHER))
        localauth.answered(sim.front, "Authorize", {"idToken": {"idToken": OTHER, "type": "ISO14443"}},
                           {"idTokenInfo": {"status": "Accepted"}})
        assert OTHER not in st.cache                                    # list entries are not cached
    run(scenario())


def test_cache_faults() -> None:
    async def scenario() -> None:
        sim = _sim("auth_cache_not_filled")
        localauth.answered(sim.front, "Authorize", {"idToken": {"idToken": TOKEN, "type": "ISO14443"}},
                           {"idTokenInfo": {"status": "Accepted"}})
        assert localauth.state(sim.front).cache == {}
        sim = _sim("auth_cache_not_cleared")
        localauth.answered(sim.front, "Authorize", {"idToken": {"idToken": TOKEN, "type": "ISO14443"}},
                           {"idTokenInfo": {"status": "Accepted"}})
        assert (await sim.front.handlers["ClearCache"]({})).payload == {"status": "Accepted"}
        assert TOKEN in localauth.state(sim.front).cache
    run(scenario())


def test_ocpp16_list_version_rules() -> None:
    async def scenario() -> None:
        sim = _sim(version="1.6")
        h = sim.front.handlers
        assert (await h["SendLocalList"]({"listVersion": 1, "updateType": "Full"})).payload == {"status": "Accepted"}
        assert (await h["GetLocalListVersion"]({})).payload == {"listVersion": 0}      # empty list → 0
        await h["SendLocalList"]({"listVersion": 3, "updateType": "Full",
                                  "localAuthorizationList": [{"idTag": TOKEN, "idTagInfo": {"status": "Accepted"}}]})
        assert (await h["GetLocalListVersion"]({})).payload == {"listVersion": 3}
        _set(sim, localauth.LIST_ENABLED, "false")
        assert (await h["GetLocalListVersion"]({})).payload == {"listVersion": -1}
        assert (await h["SendLocalList"]({"listVersion": 4, "updateType": "Full"})).payload == {"status": "NotSupported"}
        localauth.answered(sim.front, "StartTransaction", {"idTag": OTHER}, {"idTagInfo": {"status": "Accepted"},
                                                                            "transactionId": 1})
        assert localauth.state(sim.front).cache[OTHER].status == "Accepted"
    run(scenario())


class _FakeCsms:
    def __init__(self, fault: str | None = None):
        self.fault = fault

        class Cfg:
            valid_tokens = (TOKEN,)
            blocked_tokens = ("BLOCKED-01",)
        self.cfg = Cfg()

    def faulty(self, name: str, version: str | None = None) -> bool:
        return self.fault == name


class _FakeStation:
    pass


def test_csms_builders_track_versions_and_faults() -> None:
    sim, st = _FakeCsms(), _FakeStation()
    action, payload, _ = localauth_csms._send_local_list_201(sim, st, {})            # type: ignore[arg-type]
    assert action == "SendLocalList" and payload["updateType"] == "Full" and payload["versionNumber"] == 1
    assert [e["idTokenInfo"]["status"] for e in payload["localAuthorizationList"]] == ["Accepted", "Blocked"]
    _, payload, _ = localauth_csms._send_local_list_201(
        sim, st, {"update_type": "Differential", "entries": [{"id_token": OTHER}]})     # type: ignore[arg-type]
    assert payload["versionNumber"] == 2 and "idTokenInfo" not in payload["localAuthorizationList"][0]
    _, payload, _ = localauth_csms._send_local_list_16(sim, st, {"update_type": "Differential",  # type: ignore[arg-type]
                                                                 "entries": [{"id_token": OTHER, "status": "Accepted"}]})
    assert payload == {"listVersion": 3, "updateType": "Differential",
                       "localAuthorizationList": [{"idTag": OTHER, "idTagInfo": {"status": "Accepted"}}]}
    with pytest.raises(ValueError):
        localauth_csms._send_local_list_201(sim, st, {"update_type": "Partial"})    # type: ignore[arg-type]
    bad = _FakeCsms("send_local_list_wrong_version")
    assert localauth_csms._send_local_list_201(bad, _FakeStation(), {})[1]["versionNumber"] == 0   # type: ignore[arg-type]
    full = _FakeCsms("differential_sent_as_full")
    assert localauth_csms._send_local_list_16(full, _FakeStation(), {"update_type": "Differential"})[1]["updateType"] == "Full"  # type: ignore[arg-type]
    bare = _FakeCsms("local_list_missing_status")
    assert all("idTokenInfo" not in e for e in localauth_csms._send_local_list_201(bare, _FakeStation(), {})[1]["localAuthorizationList"])  # type: ignore[arg-type]


@pytest.mark.parametrize("fault, pre_authorize, cached_status, verdict", [
    (None, "false", "Accepted", None),                                   # C10.FR.11: ask the CSMS
    ("cache_used_without_pre_authorize", "false", "Accepted", "Accepted"),
    (None, "true", "Blocked", None),                                     # C12.FR.05: ask again
    ("cached_verdict_trusted_online", "true", "Blocked", "Blocked"),
    ("disable_post_authorize", "true", "Invalid", "Invalid"),            # TC_C_57: trust the cache
    ("disable_post_authorize_ignored", "true", "Invalid", None),
])
def test_gate_online_cache_rules(fault: str | None, pre_authorize: str, cached_status: str, verdict: str | None) -> None:
    sim = _sim(None if fault == "disable_post_authorize" else fault)
    if fault and fault.startswith("disable_post_authorize"):
        _set(sim, localauth.CACHE_NO_POST_AUTHORIZE, "true")

    async def fill() -> None:                                            # the cache stamps loop time
        localauth.answered(sim.front, "Authorize", {"idToken": {"idToken": TOKEN, "type": "ISO14443"}},
                           {"idTokenInfo": {"status": cached_status}})
    run(fill())
    _online(sim, True)
    _set(sim, localauth.PRE_AUTHORIZE, pre_authorize)
    assert _gate(sim, TOKEN) == verdict


def test_list_disable_post_authorize() -> None:
    sim = _sim()
    run(_send(sim, 1, "Full", _entry(OTHER, "Blocked")))
    _online(sim, True)
    _set(sim, localauth.PRE_AUTHORIZE, "true")
    assert _gate(sim, OTHER) is None                                  # C14.FR.03: ask the CSMS
    _set(sim, localauth.LIST_NO_POST_AUTHORIZE, "true")
    assert _gate(sim, OTHER) == "Blocked"
