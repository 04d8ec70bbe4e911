"""Wrapping a core handler of the station simulator from a feature module.

A feature that adds behaviour to a CALL the core already answers (TriggerMessage with a new
requestedMessage, SetVariables of a new variable) must not lose what the core — or another
feature wrapping the same CALL — does for everything else. `delegate` calls "the handler
that would answer without this feature": the nearest feature before it (name order) that
handles the action, else the core front end's own method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..api import Reply
from . import all_features

if TYPE_CHECKING:
    from ..station import FrontEnd

# The core front ends' methods, by edition and action (station201.py / station16.py).
_CORE = {
    "2.0.1": {"SetVariables": "_set_variables", "GetVariables": "_get_variables", "TriggerMessage": "_trigger"},
    "1.6": {"GetConfiguration": "_get_configuration", "ChangeConfiguration": "_change_configuration",
            "TriggerMessage": "_trigger"},
}


async def delegate(front: "FrontEnd", action: str, payload: dict[str, Any], me: str) -> Reply:
    """Answer `action` as it would be answered without feature `me`."""
    version = front.version
    before = None
    for f in all_features():
        if f.name == me:
            break
        handler = f.station_handlers.get(version, {}).get(action)
        if handler is not None:
            before = handler
    if before is not None:
        return await before(front, payload)
    core = _CORE.get(version, {}).get(action)
    if core is None:
        raise KeyError(f"no core handler for {action} in {version}")
    return await getattr(front, core)(payload)
