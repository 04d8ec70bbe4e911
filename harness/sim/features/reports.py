"""Custom reports: OCPP 2.0.1 use case B08 (GetReport) in both reference simulators.

Station simulator: GetReport selects device-model variables by componentVariable (a
component alone = all its variables; with a variable = that one) and by componentCriteria
(a component qualifies when its variable of the criterion's name — Active, Available,
Enabled, Problem — reads "true"). Both filters together must hold. Nothing selected →
EmptyResultSet and no report; otherwise Accepted and one NotifyReport with the request's
requestId, each item as GetBaseReport reports it. The device model has no EVSE-level
variables, so a component addressed with an EVSE is never found.

CSMS simulator: operator action `get_report {component_variables?, criteria?, request_id?}`
(a fresh requestId per request unless one is given).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..api import Fault, Reply, Setting
from . import Feature

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState
    from ..station import FrontEnd

V201 = "2.0.1"
NAME = "reports"
VarKey = tuple[str, str, "str | None"]


def _matches_cv(key: VarKey, component_variables: list[dict[str, Any]]) -> bool:
    comp, var, instance = key
    for cv in component_variables:
        c, v = cv["component"], cv.get("variable")
        if "evse" in c or c["name"] != comp or c.get("instance") is not None:
            continue
        if v is None or (v["name"] == var and v.get("instance") == instance):
            return True
    return False


def _qualifying_components(front: FrontEnd, criteria: list[str]) -> set[str]:
    variables: dict[VarKey, Setting] = front.variables          # type: ignore[attr-defined]
    return {comp for (comp, var, instance), s in variables.items()
            if instance is None and var in criteria and front.sim.read_setting(s).lower() == "true"}


def select(front: FrontEnd, component_variables: list[dict[str, Any]] | None,
           criteria: list[str] | None) -> list[VarKey]:
    """Device-model keys the GetReport filters select (B08.FR.*), in device-model order."""
    variables: dict[VarKey, Setting] = front.variables          # type: ignore[attr-defined]
    keys = list(variables)
    if front.sim.has("get_report_ignores_criteria"):
        return keys                                              # the bug: every request gets the full inventory
    if component_variables:
        keys = [k for k in keys if _matches_cv(k, component_variables)]
    if criteria:
        allowed = _qualifying_components(front, criteria)
        keys = [k for k in keys if k[0] in allowed]
    return keys


async def _get_report(front: FrontEnd, p: dict[str, Any]) -> Reply:
    keys = select(front, p.get("componentVariable"), p.get("componentCriteria"))
    if not keys:
        return Reply({"status": "EmptyResultSet"})
    variables: dict[VarKey, Setting] = front.variables          # type: ignore[attr-defined]
    items = [front._report_item(k, variables[k]) for k in keys]  # type: ignore[attr-defined]

    async def report() -> None:
        from ..station import now_iso                            # late: station imports the features package
        front.sim.enqueue("NotifyReport", {"requestId": p["requestId"], "generatedAt": now_iso(), "seqNo": 0,
                                           "tbc": False, "reportData": items})
    return Reply({"status": "Accepted"}, report)


# ---- CSMS side -----------------------------------------------------------------------------------

def _named(x: Any) -> dict[str, Any]:
    return {"name": x} if isinstance(x, str) else dict(x)


def _op_get_report(sim: CsmsSimulator, st: StationState, params: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    if sim.faulty("get_report_wrong_request_id", V201):
        request_id = 1                                           # the bug: every report request is number 1
    elif params.get("request_id") is not None:
        request_id = int(params["request_id"])
    else:
        request_id = sim.next_remote_start_id()
    payload: dict[str, Any] = {"requestId": request_id}
    if params.get("component_variables"):
        payload["componentVariable"] = [
            {"component": _named(cv["component"]), **({"variable": _named(cv["variable"])} if cv.get("variable") else {})}
            for cv in params["component_variables"]]
    if params.get("criteria"):
        payload["componentCriteria"] = [str(c) for c in params["criteria"]]
    return "GetReport", payload, True


FEATURE = Feature(
    name=NAME,
    station_handlers={V201: {"GetReport": _get_report}},
    csms_operator={V201: {"get_report": _op_get_report}},
    csms_provokes={"GetReport": frozenset({"NotifyReport"})},
    station_faults=[
        Fault("get_report_ignores_criteria", "cs", (V201,),
              "GetReport ignores componentVariable and componentCriteria: every request is answered Accepted "
              "and followed by the full inventory."),
    ],
    csms_faults=[
        Fault("get_report_wrong_request_id", "csms", (V201,),
              "Every GetReport carries requestId 1, so the CSMS cannot tell the NotifyReports of two requests apart."),
    ],
)
