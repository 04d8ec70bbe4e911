"""Display messages: OCPP 2.0.1 functional block O (O01–O06) in both reference simulators.

Station simulator: keeps the messages the CSMS configured (SetDisplayMessage), keyed by
their id, so a second SetDisplayMessage with a known id replaces the message (O06). The
screen supports the formats and priorities its DisplayMessageCtrlr announces
(ASCII/UTF8; InFront/NormalCycle — no AlwaysFront) and the states Idle/Charging/
Unavailable (it is dark when Faulted). A message bound to a transaction needs that
transaction to be ongoing (O02) and is dropped when it ends. GetDisplayMessages filters by
id, priority and state and answers Unknown when nothing matches (O04); the matches follow
in one NotifyDisplayMessages with the request's requestId (O03). ClearDisplayMessage
answers Accepted or Unknown (O05). The out-of-band action `display {evse=1}` returns what
the screen shows right now (configured messages in force, then tariff / cost texts).

CSMS simulator: operator actions `set_display_message`, `get_display_messages` and
`clear_display_message` build the CALLs; NotifyDisplayMessages is acknowledged with {}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..api import Fault, Reply, Setting
from . import Feature, feature_state
from ._common import operator_request_id

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState
    from ..evse import Evse, Transaction
    from ..station import FrontEnd, StationSimulator

V201 = "2.0.1"
NAME = "display"
CTRLR = "DisplayMessageCtrlr"
SUPPORTED_FORMATS = ("ASCII", "UTF8")
SUPPORTED_PRIORITIES = ("InFront", "NormalCycle")
SUPPORTED_STATES = ("Charging", "Idle", "Unavailable")
MAX_MESSAGES = 8
_PRIORITY_ORDER = {"AlwaysFront": 0, "InFront": 1, "NormalCycle": 2}


@dataclass
class DisplayState:
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)   # id → MessageInfoType as stored
    last_request_id: int = 0                                              # for the stale-requestId fault


def state(front: FrontEnd) -> DisplayState:
    return feature_state(front, NAME, DisplayState)


def _ongoing_tx_ids(sim: StationSimulator) -> set[str]:
    return {e.tx.tx_id for e in sim.evses.values() if e.tx is not None and not e.tx.ended}


def check_message(front: FrontEnd, info: dict[str, Any]) -> str:
    """The SetDisplayMessage status for `info` (O01.FR.*, O02.FR.*), before it is stored."""
    st = state(front)
    if info["message"]["format"] not in SUPPORTED_FORMATS and not front.sim.has("display_unsupported_format_accepted"):
        return "NotSupportedMessageFormat"
    if info["priority"] not in SUPPORTED_PRIORITIES and not front.sim.has("display_message_priority_ignored"):
        return "NotSupportedPriority"
    if info.get("state") is not None and info["state"] not in SUPPORTED_STATES \
            and not front.sim.has("display_unsupported_state_accepted"):
        return "NotSupportedState"
    if info.get("transactionId") is not None and info["transactionId"] not in _ongoing_tx_ids(front.sim) \
            and not front.sim.has("display_message_ignores_transaction"):
        return "UnknownTransaction"
    if info["id"] not in st.messages and len(st.messages) >= MAX_MESSAGES:
        return "Rejected"                       # the screen's message memory is full
    return "Accepted"


async def _set_display_message(front: FrontEnd, p: dict[str, Any]) -> Reply:
    info = dict(p["message"])
    status = check_message(front, info)
    if status == "Accepted":
        if front.sim.has("display_message_priority_ignored"):
            info["priority"] = "NormalCycle"   # the bug: every message joins the normal cycle
        state(front).messages[int(info["id"])] = info     # same id: replaced (O06)
    return Reply({"status": status})


def select(messages: dict[int, dict[str, Any]], ids: list[int] | None, priority: str | None,
           msg_state: str | None) -> list[dict[str, Any]]:
    """Messages matching every given filter (O04.FR.01–03), in id order."""
    out = []
    for mid in sorted(messages):
        m = messages[mid]
        if ids and mid not in ids:
            continue
        if priority is not None and m.get("priority") != priority:
            continue
        if msg_state is not None and m.get("state") != msg_state:
            continue
        out.append(m)
    return out


async def _get_display_messages(front: FrontEnd, p: dict[str, Any]) -> Reply:
    st = state(front)
    found = select(st.messages, p.get("id"), p.get("priority"), p.get("state"))
    request_id = int(p["requestId"])
    reported_id = st.last_request_id if front.sim.has("get_display_messages_wrong_request_id") else request_id
    st.last_request_id = request_id
    if not found:
        return Reply({"status": "Unknown"})    # O04.FR.04: nothing matches, no NotifyDisplayMessages

    async def report() -> None:
        front.sim.enqueue("NotifyDisplayMessages", {"requestId": reported_id, "tbc": False,
                                                    "messageInfo": [dict(m) for m in found]})
    return Reply({"status": "Accepted"}, report)


async def _clear_display_message(front: FrontEnd, p: dict[str, Any]) -> Reply:
    messages = state(front).messages
    if messages.pop(int(p["id"]), None) is not None:
        return Reply({"status": "Accepted"})
    return Reply({"status": "Accepted" if front.sim.has("display_clear_unknown_accepted") else "Unknown"})


def _tx_ended(front: FrontEnd, evse: Evse, tx: Transaction) -> None:
    """O02: a message for a transaction lives as long as that transaction."""
    if front.sim.has("display_message_ignores_transaction"):
        return                                  # the bug: the message outlives its transaction
    messages = state(front).messages
    for mid in [mid for mid, m in messages.items() if m.get("transactionId") == tx.tx_id]:
        del messages[mid]


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def screen_state(evse: Evse) -> str:
    if evse.inoperative:
        return "Unavailable"
    return "Charging" if evse.tx is not None else "Idle"


def shown(front: FrontEnd, evse: Evse) -> list[dict[str, Any]]:
    """Configured messages in force on `evse`'s screen now, front-most first."""
    now = datetime.now(timezone.utc)
    here = screen_state(evse)
    tx_id = evse.tx.tx_id if evse.tx is not None else None
    out = []
    for m in state(front).messages.values():
        start, end = _parse_time(m.get("startDateTime")), _parse_time(m.get("endDateTime"))
        if (start and now < start) or (end and now >= end):
            continue
        if m.get("state") is not None and m["state"] != here:
            continue
        if m.get("transactionId") is not None and m["transactionId"] != tx_id:
            continue
        out.append(m)
    out.sort(key=lambda m: (_PRIORITY_ORDER.get(m["priority"], 9), m["id"]))
    return out


async def _display_action(sim: StationSimulator, params: dict[str, Any]) -> dict[str, Any]:
    """What the EVSE's screen shows: configured messages, then the tariff / cost texts."""
    from .tariff import screen_texts        # late: sibling feature, keeps import order free

    evse = sim.evse(params.get("evse", 1))
    front = sim.front
    messages = [m["message"]["content"] for m in shown(front, evse)]
    return {"evse": evse.id, "state": screen_state(evse), "messages": messages, **screen_texts(front, evse)}


# ---- CSMS side -----------------------------------------------------------------------------------

def _op_set_display_message(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    if params.get("id") is None or params.get("content") is None:
        raise ValueError("set_display_message needs id and content")
    priority = str(params.get("priority", "NormalCycle"))
    if sim.faulty("set_display_message_wrong_priority", V201):
        priority = "NormalCycle"                # the bug: the operator's priority is dropped
    content: dict[str, Any] = {"format": str(params.get("format", "UTF8")), "content": str(params["content"])}
    if params.get("language"):
        content["language"] = str(params["language"])
    info: dict[str, Any] = {"id": int(params["id"]), "priority": priority, "message": content}
    for key, name in (("state", "state"), ("start", "startDateTime"), ("end", "endDateTime"),
                      ("transaction_id", "transactionId")):
        if params.get(key) is not None:
            info[name] = str(params[key])
    return "SetDisplayMessage", {"message": info}, True


def _op_get_display_messages(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    payload: dict[str, Any] = {"requestId": operator_request_id(sim, params)}
    if params.get("ids"):
        payload["id"] = [int(i) for i in params["ids"]]
    if not sim.faulty("get_display_messages_drops_filter", V201):   # the bug: always asks for everything
        for key in ("priority", "state"):
            if params.get(key) is not None:
                payload[key] = str(params[key])
    return "GetDisplayMessages", payload, True


def _op_clear_display_message(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    if params.get("id") is None:
        raise ValueError("clear_display_message needs id")
    mid = int(params["id"])
    if sim.faulty("clear_display_message_wrong_id", V201):
        mid += 1                                # the bug: an off-by-one between UI row and message id
    return "ClearDisplayMessage", {"id": mid}, True


_RO = {"readonly": True}

FEATURE = Feature(
    name=NAME,
    station_handlers={V201: {"SetDisplayMessage": _set_display_message,
                             "GetDisplayMessages": _get_display_messages,
                             "ClearDisplayMessage": _clear_display_message}},
    station_variables={
        (CTRLR, "Enabled", None): Setting(None, const="true", **_RO),
        (CTRLR, "Available", None): Setting(None, const="true", **_RO),
        (CTRLR, "DisplayMessages", None): Setting(None, "int", const=str(MAX_MESSAGES), **_RO),
        (CTRLR, "SupportedFormats", None): Setting(None, "list", const=",".join(SUPPORTED_FORMATS),
                                                   choices=SUPPORTED_FORMATS, **_RO),
        (CTRLR, "SupportedPriorities", None): Setting(None, "list", const=",".join(SUPPORTED_PRIORITIES),
                                                      choices=SUPPORTED_PRIORITIES, **_RO),
    },
    station_actions={"display": _display_action},
    tx_ended=_tx_ended,
    csms_operator={V201: {"set_display_message": _op_set_display_message,
                          "get_display_messages": _op_get_display_messages,
                          "clear_display_message": _op_clear_display_message}},
    csms_provokes={"GetDisplayMessages": frozenset({"NotifyDisplayMessages"})},
    station_faults=[
        Fault("display_message_priority_ignored", "cs", (V201,),
              "The message priority is ignored: SetDisplayMessage is Accepted whatever the priority (even one the "
              "screen does not support) and the message is stored, shown and reported as NormalCycle."),
        Fault("display_message_ignores_transaction", "cs", (V201,),
              "SetDisplayMessage ignores transactionId: a message for an unknown transaction is Accepted, and a "
              "message for a transaction stays configured (and shown) after that transaction ended."),
        Fault("display_unsupported_format_accepted", "cs", (V201,),
              "SetDisplayMessage in a format the screen does not support (e.g. HTML) is Accepted; the driver sees "
              "the raw markup."),
        Fault("display_unsupported_state_accepted", "cs", (V201,),
              "SetDisplayMessage for a state the screen cannot show (it is dark when Faulted) is Accepted; the "
              "message is never seen."),
        Fault("display_clear_unknown_accepted", "cs", (V201,),
              "ClearDisplayMessage for an id the station does not hold is answered Accepted instead of Unknown."),
        Fault("get_display_messages_wrong_request_id", "cs", (V201,),
              "NotifyDisplayMessages carries the requestId of the previous GetDisplayMessages (0 at first), "
              "not the one it answers."),
    ],
    csms_faults=[
        Fault("set_display_message_wrong_priority", "csms", (V201,),
              "SetDisplayMessage always carries priority NormalCycle, whatever priority the operator chose."),
        Fault("get_display_messages_drops_filter", "csms", (V201,),
              "GetDisplayMessages leaves out the operator's priority / state filter and asks for every message."),
        Fault("clear_display_message_wrong_id", "csms", (V201,),
              "ClearDisplayMessage names the id after the one the operator chose (UI row vs message id)."),
    ],
)
