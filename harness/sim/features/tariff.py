"""Tariff and cost: OCPP 2.0.1 functional block I (I01–I06) in both reference simulators.

Station simulator: what the driver is told about price and cost is kept per EVSE.
- I01/I06: a personalMessage in the idTokenInfo of an Authorize or TransactionEvent answer is
  the driver's tariff; a later one (TransactionEvent answer during the transaction) replaces it.
- I02: the running cost comes from CostUpdated (transactionId → EVSE) or from totalCost in a
  TransactionEvent answer; I03: totalCost in the answer to the Ended event is the final cost.
- I04/I05: with no tariff (or no final cost) from the CSMS, the screen shows
  TariffCostCtrlr.TariffFallbackMessage / TotalCostFallbackMessage instead.
The texts on screen are returned by the station action `display` (display.py).
TariffCostCtrlr: Enabled/Available for the Tariff and Cost instances, Currency, and the two
fallback messages (writable). SetVariables is wrapped only to model the
`fallback_tariff_not_shown` bug.

CSMS simulator: operator action `cost_updated {total_cost, transaction_id?}` sends CostUpdated
for the given (default: the latest ongoing) transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api import Fault, Reply, Setting
from . import Feature, feature_state
from ._chain import delegate

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState
    from ..evse import Evse
    from ..station import FrontEnd

V201 = "2.0.1"
NAME = "tariff"
CTRLR = "TariffCostCtrlr"
CURRENCY = "EUR"
FALLBACK_TARIFF_VAR = (CTRLR, "TariffFallbackMessage", None)
FALLBACK_COST_VAR = (CTRLR, "TotalCostFallbackMessage", None)
_FALLBACK_TARIFF = Setting(None, "str", const="Standard tariff: 0.45 EUR/kWh")
_FALLBACK_COST = Setting(None, "str", const="Your total cost will be shown on your invoice")


@dataclass
class EvseCost:
    tariff: str | None = None          # personalMessage content from the CSMS
    running_cost: float | None = None
    final_cost: float | None = None
    tx_id: str | None = None
    ended: bool = False


@dataclass
class TariffState:
    evses: dict[int, EvseCost] = field(default_factory=dict)
    by_token: dict[str, str] = field(default_factory=dict)   # idToken → personal message from Authorize


def state(front: FrontEnd) -> TariffState:
    return feature_state(front, NAME, TariffState)


def _cost(front: FrontEnd, evse_id: int) -> EvseCost:
    return state(front).evses.setdefault(evse_id, EvseCost())


def _personal_message(response: dict[str, Any] | None) -> str | None:
    info = (response or {}).get("idTokenInfo") or {}
    msg = info.get("personalMessage") or {}
    return msg.get("content")


def _answered(front: FrontEnd, action: str, payload: dict[str, Any], response: dict[str, Any] | None) -> None:
    """Reads tariff and cost from the CSMS's answers (I01, I02, I03, I06)."""
    if front.version != V201 or response is None:
        return
    st = state(front)
    if action == "Authorize":
        token = (payload.get("idToken") or {}).get("idToken")
        message = _personal_message(response)
        if message and front.sim.has("personal_message_breaks_authorize"):
            # The bug: the firmware cannot parse an idTokenInfo with a personalMessage and takes the
            # answer as a refusal. This hook runs before the core reads the answer, so it rewrites it.
            response["idTokenInfo"]["status"] = "Invalid"
            return
        if token and message:
            st.by_token[token] = message
        return
    if action != "TransactionEvent":
        return
    evse_id = (payload.get("evse") or {}).get("id")
    tx_id = (payload.get("transactionInfo") or {}).get("transactionId")
    if evse_id is None:                         # later events may leave evse out: find it by transaction
        evse_id = next((i for i, c in st.evses.items() if c.tx_id == tx_id), None)
    if evse_id is None:
        return
    cost = _cost(front, int(evse_id))
    if payload.get("eventType") == "Started":
        token = (payload.get("idToken") or {}).get("idToken")
        st.evses[int(evse_id)] = cost = EvseCost(tariff=st.by_token.get(token or ""), tx_id=tx_id)
    message = _personal_message(response)
    if message:
        cost.tariff = message                   # I06: a newer tariff replaces the old one
    if response.get("totalCost") is not None:
        if payload.get("eventType") == "Ended":
            cost.final_cost = float(response["totalCost"])
        else:
            cost.running_cost = float(response["totalCost"])
    if payload.get("eventType") == "Ended":
        cost.ended = True


async def _cost_updated(front: FrontEnd, p: dict[str, Any]) -> Reply:
    if front.sim.has("cost_updated_ignored"):
        raise NotImplementedError("CostUpdated is not implemented")   # answered CALLERROR by the core
    for evse_id, cost in state(front).evses.items():
        if cost.tx_id == p["transactionId"] and not cost.ended:
            cost.running_cost = float(p["totalCost"])
    return Reply({})                            # an unknown transaction is ignored; the answer has no status


def screen_texts(front: FrontEnd, evse: Evse) -> dict[str, Any]:
    """The tariff and cost texts `evse`'s screen shows now (I01–I05)."""
    cost = state(front).evses.get(evse.id)
    sim = front.sim
    out: dict[str, Any] = {}
    if evse.tx is not None or (cost is not None and not cost.ended and cost.tx_id is not None):
        out["tariff"] = (cost.tariff if cost and cost.tariff else sim.read_setting(_FALLBACK_TARIFF))
        if cost is not None and cost.running_cost is not None:
            out["running_cost"] = f"{cost.running_cost:.2f} {CURRENCY}"
    elif cost is not None and cost.ended:
        out["total_cost"] = (f"{cost.final_cost:.2f} {CURRENCY}" if cost.final_cost is not None
                             else sim.read_setting(_FALLBACK_COST))
    else:
        out["tariff"] = sim.read_setting(_FALLBACK_TARIFF)
    return out


async def _set_variables(front: FrontEnd, p: dict[str, Any]) -> Reply:
    before = {s: front.sim.read_setting(s) for s in (_FALLBACK_TARIFF, _FALLBACK_COST)}
    reply = await delegate(front, "SetVariables", p, NAME)
    if front.sim.has("fallback_tariff_not_shown"):
        front.sim.stored.update(before)       # the bug: new fallback texts are never kept
    return reply


# ---- CSMS side -----------------------------------------------------------------------------------

def _op_cost_updated(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    if params.get("total_cost") is None:
        raise ValueError("cost_updated needs total_cost")
    tx_id = params.get("transaction_id")
    ongoing = st.ongoing()
    if tx_id is None:
        if not ongoing:
            raise ValueError(f"station {st.station_id} has no ongoing transaction the CSMS knows; pass transaction_id")
        tx_id = ongoing[-1].transaction_id
    if sim.faulty("cost_updated_wrong_transaction", V201):
        known = list(st.transactions)           # the bug: the cost goes to the station's first transaction
        tx_id = known[0] if known and known[0] != tx_id else f"{str(tx_id)[:30]}-OLD"
    return "CostUpdated", {"totalCost": float(params["total_cost"]), "transactionId": str(tx_id)}, True


_RO = {"readonly": True}

FEATURE = Feature(
    name=NAME,
    station_handlers={V201: {"CostUpdated": _cost_updated, "SetVariables": _set_variables}},
    station_variables={
        (CTRLR, "Enabled", "Tariff"): Setting(None, const="true", **_RO),
        (CTRLR, "Enabled", "Cost"): Setting(None, const="true", **_RO),
        (CTRLR, "Available", "Tariff"): Setting(None, const="true", **_RO),
        (CTRLR, "Available", "Cost"): Setting(None, const="true", **_RO),
        (CTRLR, "Currency", None): Setting(None, const=CURRENCY, **_RO),
        FALLBACK_TARIFF_VAR: _FALLBACK_TARIFF,
        FALLBACK_COST_VAR: _FALLBACK_COST,
    },
    answered=_answered,
    csms_operator={V201: {"cost_updated": _op_cost_updated}},
    station_faults=[
        Fault("cost_updated_ignored", "cs", (V201,),
              "CostUpdated is answered with a CALLERROR (the firmware never implemented it); the screen keeps "
              "showing the last cost it had."),
        Fault("fallback_tariff_not_shown", "cs", (V201,),
              "SetVariables of TariffCostCtrlr.TariffFallbackMessage / TotalCostFallbackMessage is Accepted but "
              "the new text is never kept: GetVariables and the screen still show the factory texts."),
        Fault("personal_message_breaks_authorize", "cs", (V201,),
              "An AuthorizeResponse whose idTokenInfo carries a personalMessage (the driver's tariff) is taken "
              "as a refusal: the driver cannot charge."),
    ],
    csms_faults=[
        Fault("cost_updated_wrong_transaction", "csms", (V201,),
              "CostUpdated names the station's first transaction instead of the one the cost is for."),
    ],
)
