"""Optional OCPP functional blocks of the reference simulators, one module per block.

The core simulators (`station*.py`, `csms*.py`) know boot, authorization, transactions,
metering, remote control and smart charging. Each further block — reservation, local
authorization list, firmware, display messages, tariff, monitoring, certificates … — is a
module in this package that declares one `FEATURE = Feature(...)`: the CALLs it answers on
either simulator, the operator actions it adds, its device-model variables / 1.6 keys, the
hooks where it changes core behaviour, and its named faults. Modules are discovered, so a
block is added without touching the core, and the fault catalogues list its faults.

A feature module must not import `station`, `csms` or their front ends at import time (they
import this package): use `..api` types and TYPE_CHECKING imports.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..api import Fault, Reply, Setting

if TYPE_CHECKING:
    from ..csms import CsmsSimulator, StationState
    from ..evse import Evse, Transaction
    from ..station import FrontEnd, StationSimulator

VarKey = tuple[str, str, "str | None"]                                   # (component, variable, instance)
StationHandler = Callable[["FrontEnd", dict[str, Any]], Awaitable[Reply]]
StationAction = Callable[["StationSimulator", dict[str, Any]], Awaitable[Any]]
CsmsAnswer = Callable[["CsmsSimulator", "StationState", dict[str, Any]], dict[str, Any]]
CsmsBuilder = Callable[["CsmsSimulator", "StationState", dict[str, Any]], tuple[str, dict[str, Any], bool]]


@dataclass
class Feature:
    """One functional block. Dicts keyed by OCPP version ("1.6" / "2.0.1") hold per-edition parts."""
    name: str
    order: int = 50                        # hooks run in (order, name) order: e.g. a reservation gate before a local list
    # -- station simulator ------------------------------------------------------------------
    station_handlers: dict[str, dict[str, StationHandler]] = field(default_factory=dict)   # CSMS→station CALLs
    station_variables: dict[VarKey, Setting] = field(default_factory=dict)                  # 2.0.1 device model
    station_config: dict[str, Setting] = field(default_factory=dict)                        # 1.6 configuration keys
    profile16: str | None = None            # 1.6 feature profile name added to SupportedFeatureProfiles
    station_actions: dict[str, StationAction] = field(default_factory=dict)                 # out-of-band, `perform`
    # Hooks into the core flow (all optional; called with the front end first):
    #   token_gate(front, evse, id_token, token_type) -> Awaitable[str | None]
    #       before the station asks the CSMS about a presented token: None = ask as usual,
    #       "Accepted" = authorized locally (no Authorize sent), anything else = refused locally.
    #   connector_status(front, evse, connector, status) -> str   may replace the computed status
    #   outgoing(front, action, payload) -> None                   may amend a station CALL before it is queued
    #   answered(front, action, payload, response) -> None         sees the CSMS's answer to a station CALL
    #   boot_accepted(front) -> None                               after each accepted BootNotification
    #   tx_started(front, evse, tx) / tx_ended(front, evse, tx) -> None
    token_gate: Callable[["FrontEnd", "Evse", str, str], Awaitable[str | None]] | None = None
    connector_status: Callable[["FrontEnd", "Evse", int, str], str] | None = None
    outgoing: Callable[["FrontEnd", str, dict[str, Any]], None] | None = None
    answered: Callable[["FrontEnd", str, dict[str, Any], "dict[str, Any] | None"], None] | None = None
    boot_accepted: Callable[["FrontEnd"], None] | None = None
    tx_started: Callable[["FrontEnd", "Evse", "Transaction"], None] | None = None
    tx_ended: Callable[["FrontEnd", "Evse", "Transaction"], None] | None = None
    # -- CSMS simulator -----------------------------------------------------------------------
    csms_answers: dict[str, dict[str, CsmsAnswer]] = field(default_factory=dict)     # station→CSMS CALLs
    csms_operator: dict[str, dict[str, CsmsBuilder]] = field(default_factory=dict)   # operator action → CALL
    csms_provokes: dict[str, frozenset[str]] = field(default_factory=dict)           # CALL → station CALLs it provokes
    # -- faults -------------------------------------------------------------------------------
    station_faults: list[Fault] = field(default_factory=list)
    csms_faults: list[Fault] = field(default_factory=list)


@lru_cache(maxsize=1)
def all_features() -> tuple[Feature, ...]:
    """Every feature module of this package, in name order."""
    found: list[Feature] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        feature = getattr(module, "FEATURE", None)
        if not isinstance(feature, Feature):
            raise TypeError(f"{module.__name__} must define FEATURE = Feature(...)")
        found.append(feature)
    return tuple(sorted(found, key=lambda f: (f.order, f.name)))


@lru_cache(maxsize=None)
def with_hook(hook: str) -> tuple[Feature, ...]:
    """The features that define `hook` (e.g. "token_gate"), for the core to call in order.
    Cached: the station calls this for every CALL it queues (fleet runs send thousands a second)."""
    return tuple(f for f in all_features() if getattr(f, hook) is not None)


def station_handlers(version: str) -> dict[str, StationHandler]:
    out: dict[str, StationHandler] = {}
    for f in all_features():
        out.update(f.station_handlers.get(version, {}))
    return out


def station_variables() -> dict[VarKey, Setting]:
    out: dict[VarKey, Setting] = {}
    for f in all_features():
        out.update(f.station_variables)
    return out


def station_config() -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    for f in all_features():
        out.update(f.station_config)
    return out


def profiles16() -> list[str]:
    return [f.profile16 for f in all_features() if f.profile16]


def station_actions() -> dict[str, StationAction]:
    out: dict[str, StationAction] = {}
    for f in all_features():
        out.update(f.station_actions)
    return out


def csms_answers(version: str) -> dict[str, CsmsAnswer]:
    out: dict[str, CsmsAnswer] = {}
    for f in all_features():
        out.update(f.csms_answers.get(version, {}))
    return out


def csms_operator(version: str) -> dict[str, CsmsBuilder]:
    out: dict[str, CsmsBuilder] = {}
    for f in all_features():
        out.update(f.csms_operator.get(version, {}))
    return out


def csms_provokes(action: str) -> frozenset[str]:
    out: set[str] = set()
    for f in all_features():
        out |= f.csms_provokes.get(action, frozenset())
    return frozenset(out)


def station_faults() -> dict[str, Fault]:
    return {fault.name: fault for f in all_features() for fault in f.station_faults}


def csms_faults() -> dict[str, Fault]:
    return {fault.name: fault for f in all_features() for fault in f.csms_faults}


def feature_state(front: Any, name: str, factory: Callable[[], Any]) -> Any:
    """Per-simulator state of a feature, kept on the simulator so it survives reboots like
    persistent memory would (a front end is rebuilt on each boot)."""
    store: dict[str, Any] = front.sim.__dict__.setdefault("_feature_state", {})
    if name not in store:
        store[name] = factory()
    return store[name]
