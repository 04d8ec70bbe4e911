"""The reference EV simulator: a DUT stand-in for ISO 15118 cases where the harness plays the
charger's SECC (role `secc`). It is the harness's own EVCC running its session autopilot, with
a catalogue of named faults — the ways real EV communication controllers get the standard
wrong — so every EVCC case proves it can FAIL.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from .api import Fault, UnknownFault, UnknownSimAction

_EDITIONS = ("din", "iso2", "iso20_dc")


def _ev(name: str, description: str, editions: tuple[str, ...] = _EDITIONS) -> tuple[str, Fault]:
    return name, Fault(name, "ev", editions, description)     # `versions` holds the ISO 15118 editions


EV_FAULTS: dict[str, Fault] = dict([
    _ev("ev_ignores_evse_current_limit",
        "Requests its own maximum current in the charge loop, ignoring the EVSE maximum current from charge "
        "parameter discovery (and every later EVSE limit)."),
    _ev("ev_skips_precharge",
        "Goes from cable check straight to PowerDelivery without pre-charging the DC link (contactors close "
        "on a voltage difference)."),
    _ev("ev_wrong_session_id",
        "Keeps sending the SessionID of an old session after SessionSetup instead of the one the SECC assigned."),
    _ev("ev_no_session_stop",
        "Drops the TCP connection after welding detection without SessionStopReq (the SECC cannot tell an end "
        "from a fault)."),
])


def get_ev_fault(name: str) -> Fault:
    try:
        return EV_FAULTS[name]
    except KeyError:
        raise UnknownFault(f"no ev fault named {name!r}; valid: {', '.join(sorted(EV_FAULTS))}") from None


def _faulty_evcc_class() -> type:
    """An Evcc whose autopilot carries one fault (built lazily: the EVCC imports the EXI codec)."""
    from ..iso15118.evcc import Evcc

    class FaultyEvcc(Evcc):
        fault: str | None = None

        def _evse_max_current(self) -> float | None:             # type: ignore[override]
            if self.fault == "ev_ignores_evse_current_limit":
                return None                                       # the bug: only its own limit counts
            return super()._evse_max_current()

        async def _until_finished(self, name: str, *args: Any, **kw: Any) -> Any:      # type: ignore[override]
            if self.fault == "ev_skips_precharge" and name in ("PreChargeReq", "DC_PreChargeReq"):
                return None
            return await super()._until_finished(name, *args, **kw)

        async def _step(self, name: str, *args: Any, **kw: Any) -> Any:               # type: ignore[override]
            if self.fault == "ev_skips_precharge" and name == "DC_PreChargeReq":
                return None
            return await super()._step(name, *args, **kw)

        async def request(self, name: str, overrides: dict | None = None, timeout: float | None = None,
                          **kw: Any) -> Any:                                           # type: ignore[override]
            if (self.fault == "ev_wrong_session_id" and name not in ("supportedAppProtocolReq", "SessionSetupReq")
                    and self.state.session_id):
                stale = bytes(b ^ 0xFF for b in self.state.session_id)   # the bug: a previous session's id
                overrides = {**(overrides or {}), "@session_id": stale}
            return await super().request(name, overrides, timeout, **kw)

    return FaultyEvcc


@dataclass
class EvSimConfig:
    protocol: str = "iso2"             # din | iso2 | iso20_dc
    preset: str = "truck"              # EvModel preset: car | truck | mcs_truck
    auth: str = "eim"
    loops: int = 3                     # charge-loop cycles of the autopilot


class EvSimulator:
    """Connects to an SECC and runs one session; `perform("plug_in", {host, port, tls, pki})`."""

    ACTIONS = ("plug_in", "unplug", "state")

    def __init__(self, cfg: EvSimConfig | None = None, fault: str | None = None, trace: Any = None):
        if fault is not None:
            get_ev_fault(fault)
        self.cfg, self.fault, self.trace = cfg or EvSimConfig(), fault, trace
        self.evcc: Any = None
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        return None                    # the EV waits for a plug-in

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, 5)
        if self.evcc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.evcc.close(), 5)

    async def perform(self, action: str, params: dict[str, Any]) -> Any:
        if action == "plug_in":
            if self._task is not None and not self._task.done():
                raise ValueError("the EV is already plugged in")
            self._task = asyncio.ensure_future(self._session(dict(params)))
            return {"plugged": True, "protocol": params.get("protocol", self.cfg.protocol)}
        if action == "unplug":
            await self.stop()
            return {"plugged": False}
        if action == "state":
            return {"plugged": self._task is not None and not self._task.done(), "error": self.error,
                    "exchanges": [x.summary() for x in (self.evcc.exchanges if self.evcc else [])]}
        raise UnknownSimAction(f"EV simulator has no action {action!r}; valid: {', '.join(self.ACTIONS)}")

    async def _session(self, params: dict[str, Any]) -> None:
        from ..iso15118.ev_model import EvModel

        protocol = str(params.get("protocol", self.cfg.protocol))
        cls = _faulty_evcc_class()
        ev = getattr(EvModel, str(params.get("preset", self.cfg.preset)))()
        self.evcc = evcc = cls(protocol, ev=ev, pki=params.get("pki"), tls=bool(params.get("tls")),
                               auth=str(params.get("auth", self.cfg.auth)))
        evcc.fault = self.fault
        plan: dict[str, Any] = {"loops": int(params.get("loops", self.cfg.loops))}
        if self.fault == "ev_no_session_stop":
            plan["session_stop"] = False
        try:
            await evcc.connect(params["host"], int(params["port"]), timeout=10)
            await evcc.run(plan)
        except Exception as exc:          # the SECC under the harness's script refused: it is in the trace
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(evcc.close(), 5)
