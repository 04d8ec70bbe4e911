"""Block A (Security) of both simulators, OCPP 2.0.1 and the OCPP 1.6 security extension.

Station simulator:
- A01 BasicAuthPassword (2.0.1 SecurityCtrlr.BasicAuthPassword / 1.6 AuthorizationKey): write-only
  (GetVariables answers Rejected, GetConfiguration shows no value), 16–40 characters, used from the
  next connection on (it replaces the configured password of the simulator).
- A05 security-profile upgrade: SetNetworkProfile keeps connection profiles per slot; a profile or
  a NetworkConfigurationPriority that would lower the security profile below the one in use is
  Rejected (A05.FR.02/03, B09); 1.6 ChangeConfiguration SecurityProfile: no downgrade either.
  New slots are only stored: the simulator keeps its current connection (no reboot into them).
- A04 SecurityEventNotification: `send_security_event` for the other security features, and the
  out-of-band action `tamper` (someone opens the enclosure → TamperDetectionActivated, critical).

CSMS simulator: operator action `set_basic_auth_password` (2.0.1) / `set_authorization_key` (1.6):
sends the station a new random password and accepts only that one from then on (A01.FR.02);
`set_network_profile` {slot, security_profile, url?} (2.0.1, A05 step 1: SetNetworkProfile).
"""

from __future__ import annotations

import secrets
import string
from typing import TYPE_CHECKING, Any, Callable

from ..api import Fault, Reply
from . import Feature, feature_state
from ._chain import delegate

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState
    from ..station import FrontEnd, StationSimulator

NAME = "security"
PASSWORD_MIN, PASSWORD_MAX = 16, 40            # BasicAuthPassword / AuthorizationKey length limits
_PASSWORD_VAR = ("SecurityCtrlr", "BasicAuthPassword")
_PRIORITY_VAR = ("OCPPCommCtrlr", "NetworkConfigurationPriority")


# ---- station state ------------------------------------------------------------------------

class _StationSecurity:
    def __init__(self, current_profile: int):
        # configurationSlot → connectionData; slot 0 stands for the connection the simulator was built with.
        self.slots: dict[int, dict[str, Any]] = {0: {"securityProfile": current_profile}}
        self.priority: list[int] = [0]


def _state(front: "FrontEnd") -> _StationSecurity:
    return feature_state(front, NAME, lambda: _StationSecurity(int(front.sim.cfg.security_profile)))


def send_security_event(front: "FrontEnd", event_type: str, tech_info: str | None = None) -> None:
    """A04 / 1.6 §SecurityEventNotification: queue one event (same fields in both editions)."""
    from ..station import now_iso      # late: the station module imports the features package

    payload: dict[str, Any] = {"type": event_type, "timestamp": now_iso()}
    if tech_info:
        payload["techInfo"] = tech_info[:255]
    front.sim.enqueue("SecurityEventNotification", payload)


def _password_problem(value: str) -> str | None:
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        return f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters, got {len(value)}"
    if any(ch not in string.printable or ch in string.whitespace for ch in value):
        return "password may hold printable non-blank characters only"
    return None


def _apply_password(front: "FrontEnd", value: str) -> str:
    """"Accepted" or "Rejected"; the new password is used from the next connection on."""
    if _password_problem(value) and not front.sim.has("weak_password_accepted"):
        return "Rejected"
    front.sim.cfg.password = value
    return "Accepted"


def _current_profile(front: "FrontEnd") -> int:
    return int(front.sim.cfg.security_profile)


# ---- 2.0.1 station handlers -----------------------------------------------------------------

def _key(item: dict[str, Any]) -> tuple[str, str]:
    return item["component"]["name"], item["variable"]["name"]


async def _answer_own_variables(front: "FrontEnd", action: str, p: dict[str, Any], data_key: str,
                                result_key: str, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> Reply:
    """Answer the items of a Set/GetVariables that name this block's variables with `answer`;
    pass all others on in one CALL to the handler before this feature, keeping the request's order."""
    items = p[data_key]
    mine = [i for i in items if _key(i) in (_PASSWORD_VAR, _PRIORITY_VAR)]
    others = [i for i in items if i not in mine]
    done: list[dict[str, Any]] = []
    if others:
        done = list((await delegate(front, action, {**p, data_key: others}, NAME)).payload[result_key])
    results = []
    for item in items:
        results.append(answer(item) if item in mine else done.pop(0))
    return Reply({result_key: results})


async def _set_variables(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    def answer(item: dict[str, Any]) -> dict[str, Any]:
        attr = item.get("attributeType", "Actual")
        if attr != "Actual":
            status = "NotSupportedAttributeType"
        elif _key(item) == _PASSWORD_VAR:
            status = _apply_password(front, item["attributeValue"])
        else:
            status = _set_priority(front, item["attributeValue"])
        return {"attributeType": attr, "attributeStatus": status,
                "component": item["component"], "variable": item["variable"]}
    return await _answer_own_variables(front, "SetVariables", p, "setVariableData", "setVariableResult", answer)


def _set_priority(front: "FrontEnd", text: str) -> str:
    """A05.FR.02/03: every slot must exist and not fall below the security profile in use."""
    st = _state(front)
    try:
        slots = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        return "Rejected"
    if not slots or any(s not in st.slots for s in slots):
        return "Rejected"
    lowest = min(int(st.slots[s].get("securityProfile", 0)) for s in slots)
    if lowest < _current_profile(front) and not front.sim.has("security_profile_downgrade_accepted"):
        return "Rejected"
    st.priority = slots
    return "Accepted"


async def _get_variables(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    def answer(item: dict[str, Any]) -> dict[str, Any]:
        attr = item.get("attributeType", "Actual")
        r: dict[str, Any] = {"attributeType": attr, "component": item["component"], "variable": item["variable"]}
        if attr != "Actual":
            r["attributeStatus"] = "NotSupportedAttributeType"
        elif _key(item) == _PRIORITY_VAR:
            r.update(attributeStatus="Accepted", attributeValue=",".join(map(str, _state(front).priority)))
        elif front.sim.has("password_readable"):
            r.update(attributeStatus="Accepted", attributeValue=front.sim.cfg.password or "")
        else:
            r["attributeStatus"] = "Rejected"      # WriteOnly: never read back (A00.FR.2xx)
        return r
    return await _answer_own_variables(front, "GetVariables", p, "getVariableData", "getVariableResult", answer)


async def _set_network_profile(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    """B09 / A05: store a connection profile in its slot; never one below the profile in use."""
    data, slot = p["connectionData"], int(p["configurationSlot"])
    if int(data["securityProfile"]) < _current_profile(front) and not front.sim.has("security_profile_downgrade_accepted"):
        return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "SecurityProfile",
                                                           "additionalInfo": "lower than the security profile in use"}})
    if slot == 0:
        return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "InUse",
                                                           "additionalInfo": "slot 0 holds the connection in use"}})
    _state(front).slots[slot] = dict(data)

    async def report() -> None:
        send_security_event(front, "ReconfigurationOfSecurityParameters", f"network profile slot {slot} set")
    return Reply({"status": "Accepted"}, report)


# ---- 1.6 station handlers -------------------------------------------------------------------

_KEYS16 = ("SecurityProfile", "AuthorizationKey")


async def _get_configuration(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    asked = p.get("key")
    others = [k for k in asked if k not in _KEYS16] if asked else None
    out = dict((await delegate(front, "GetConfiguration", {"key": others} if asked else {}, NAME)).payload)
    if asked and not others:
        out = {"configurationKey": []}
    mine = [k for k in (asked or _KEYS16) if k in _KEYS16]
    extra = []
    for k in mine:
        if k == "SecurityProfile":
            extra.append({"key": k, "readonly": False, "value": str(_current_profile(front))})
        elif front.sim.has("password_readable"):
            extra.append({"key": k, "readonly": False, "value": front.sim.cfg.password or ""})
        else:
            extra.append({"key": k, "readonly": False})   # write-only: listed, never revealed
    out["configurationKey"] = [*out.get("configurationKey", []), *extra]
    return Reply(out)


async def _change_configuration(front: "FrontEnd", p: dict[str, Any]) -> Reply:
    key, value = p["key"], p["value"]
    if key == "AuthorizationKey":
        return Reply({"status": _apply_password(front, value)})
    if key == "SecurityProfile":
        try:
            wanted = int(value)
        except ValueError:
            return Reply({"status": "Rejected"})
        if wanted not in (0, 1, 2, 3):
            return Reply({"status": "Rejected"})
        if wanted < _current_profile(front) and not front.sim.has("security_profile_downgrade_accepted"):
            return Reply({"status": "Rejected"})   # 1.6 security whitepaper: no downgrade
        return Reply({"status": "Accepted"})       # takes effect on the next connection (not simulated)
    return await delegate(front, "ChangeConfiguration", p, NAME)


# ---- out-of-band ------------------------------------------------------------------------------

async def _tamper(sim: "StationSimulator", params: dict[str, Any]) -> dict[str, Any]:
    """Someone opens the enclosure: a critical security event (A04.FR.01/02)."""
    if not sim.has("tamper_not_reported"):
        send_security_event(sim.front, "TamperDetectionActivated", str(params.get("where", "enclosure opened")))
    return {"tamper": True}


# ---- CSMS simulator ---------------------------------------------------------------------------

def new_password() -> str:
    alphabet = string.ascii_letters + string.digits + "-_.!"
    return "".join(secrets.choice(alphabet) for _ in range(24))


def _remember_password(sim: "CsmsSimulator", st: "StationState", password: str) -> None:
    # The password check of the server reads this dict, so the new password counts from now on.
    if sim.faulty("password_update_not_stored"):
        return
    sim.cfg.passwords[st.station_id] = password


def _set_basic_auth_password(sim: "CsmsSimulator", st: "StationState", params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    password = str(params.get("password") or new_password())
    _remember_password(sim, st, password)
    return "SetVariables", {"setVariableData": [{"component": {"name": "SecurityCtrlr"},
                                                 "variable": {"name": "BasicAuthPassword"},
                                                 "attributeValue": password}]}, True


def _set_authorization_key(sim: "CsmsSimulator", st: "StationState", params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    password = str(params.get("password") or new_password())
    _remember_password(sim, st, password)
    return "ChangeConfiguration", {"key": "AuthorizationKey", "value": password}, True


def _set_network_profile_call(sim: "CsmsSimulator", st: "StationState", params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    """A05 step 1 / B09: a connection profile for `slot` at `security_profile` (default: one above
    the CSMS's own profile), pointing at this CSMS (`url`, default its own URL)."""
    wanted = int(params.get("security_profile", int(sim.cfg.security_profile) + 1))
    if sim.faulty("network_profile_wrong_security_profile"):
        wanted = int(sim.cfg.security_profile)     # the bug: copies the profile in use, no upgrade
    url = str(params.get("url") or sim.url)
    if wanted >= 2:
        url = url.replace("ws://", "wss://", 1)
    return "SetNetworkProfile", {"configurationSlot": int(params.get("slot", 1)), "connectionData": {
        "ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": url,
        "messageTimeout": int(params.get("message_timeout", 30)), "securityProfile": wanted,
        "ocppInterface": str(params.get("interface", "Wired0"))}}, True


_BOTH = ("1.6", "2.0.1")

FEATURE = Feature(
    name=NAME,
    station_handlers={
        "2.0.1": {"SetVariables": _set_variables, "GetVariables": _get_variables,
                  "SetNetworkProfile": _set_network_profile},
        "1.6": {"GetConfiguration": _get_configuration, "ChangeConfiguration": _change_configuration},
    },
    station_actions={"tamper": _tamper},
    csms_operator={"2.0.1": {"set_basic_auth_password": _set_basic_auth_password,
                             "set_network_profile": _set_network_profile_call},
                   "1.6": {"set_authorization_key": _set_authorization_key}},
    station_faults=[
        Fault("weak_password_accepted", "cs", _BOTH,
              "Accepts a BasicAuthPassword / AuthorizationKey shorter than 16 characters."),
        Fault("password_readable", "cs", _BOTH,
              "Reveals the write-only BasicAuthPassword / AuthorizationKey in GetVariables / GetConfiguration."),
        Fault("security_profile_downgrade_accepted", "cs", _BOTH,
              "Accepts a network profile, NetworkConfigurationPriority or SecurityProfile below the security profile in use."),
        Fault("tamper_not_reported", "cs", _BOTH,
              "Sends no SecurityEventNotification when its enclosure is opened (TamperDetectionActivated)."),
    ],
    csms_faults=[
        Fault("password_update_not_stored", "csms", _BOTH,
              "Sends the station a new BasicAuthPassword / AuthorizationKey but keeps checking the old one."),
        Fault("network_profile_wrong_security_profile", "csms", ("2.0.1",),
              "Asked to upgrade a station's security profile, sends a SetNetworkProfile with the profile in use."),
    ],
)
