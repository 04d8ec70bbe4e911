"""The reference EV simulator: a DUT stand-in for ISO 15118 cases where the harness plays the
charger's SECC (role `secc`). It is the harness's own EVCC running its session autopilot, with
a catalogue of named faults — the ways real EV communication controllers get the standard
wrong — so every EVCC case proves it can FAIL.

Like the EVCC autopilot, the clean simulator ends the charge loop when the SECC signals a stop
(EVSENotification StopCharging / Terminate, EVSEStatusCode shutdown or malfunction);
`ev_stop_ignored` is an EV that only stops after its own loop count.

Per-session choices come from the `plug_in` params, else from `EvSimConfig`:
    preset   EvModel preset (car | truck | mcs_truck)
    auth     "eim" | "pnc" | "auto" (auto: Plug & Charge in -2 when the SECC offers Contract,
             i.e. over TLS with a PKI; EIM otherwise — -20 stays EIM until a case can choose)
    dynamic  -20: dynamic instead of scheduled control mode
    loops    charge-loop cycles
    energy_mode   -2 RequestedEnergyTransferMode (v2g_listen sends it for an AC charger)
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from .api import Fault, UnknownFault, UnknownSimAction

_EDITIONS = ("din", "iso2", "iso20_dc", "iso20_ac")


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
    _ev("ev_exceeds_own_max_voltage",
        "Asks for a charge-loop target voltage 30 V above the maximum voltage it declares in the same request "
        "(-20 dynamic mode: states a maximum voltage 30 V above the one of its charge parameter discovery)."),
    _ev("ev_precharge_wrong_target",
        "Pre-charges the DC link to its own maximum voltage instead of its present battery voltage."),
    _ev("ev_precharge_not_settled",
        "Sends PowerDelivery Start after the first PreChargeRes, whatever the EVSE's present voltage."),
    _ev("ev_ignores_lowered_limit",
        "Keeps the EVSE maximum limits of the first answer that carried them; a limit the charger lowers "
        "later in the charge loop is ignored."),
    _ev("ev_picks_unoffered_payment",
        "Selects Contract payment in PaymentServiceSelection even when the SECC offered only ExternalPayment.",
        ("iso2",)),
    _ev("ev_picks_unoffered_service",
        "Selects the MCS energy transfer service (ServiceID 8) in ServiceSelection although the SECC offered "
        "only DC (ServiceID 2).", ("iso20_dc",)),
    _ev("ev_wrong_schedule_tuple",
        "Sends PowerDeliveryReq with SAScheduleTupleID 2 (hard-coded) instead of the tuple the SECC offered in "
        "ChargeParameterDiscoveryRes.", ("iso2",)),
    _ev("ev_no_repeat_on_ongoing",
        "Treats EVSEProcessing=Ongoing as Finished: moves on to the next request instead of repeating "
        "Authorization / ChargeParameterDiscovery / CableCheck."),
    _ev("ev_skips_welding_detection",
        "Goes from PowerDelivery Stop straight to SessionStop without welding detection."),
    _ev("ev_stop_ignored",
        "Goes on with the charge loop when the SECC signals EVSENotification StopCharging / Terminate or an "
        "EVSEStatusCode shutdown."),
    _ev("ev_evccid_malformed",
        "Sends an all-zero EVCCID (its PLC modem's MAC address was never read).", ("din", "iso2")),
    _ev("ev_stale_gen_challenge",
        "Plug & Charge: signs an AuthorizationReq with a stale (all-zero) GenChallenge instead of the one from "
        "PaymentDetailsRes.", ("iso2",)),
    _ev("ev_slow_requests",
        "Waits longer than V2G_SECC_Sequence_Timeout (60 s) before its first charge-loop request (its BMS "
        "stalls after PowerDelivery), so the SECC ends the session."),
    _ev("ev_emaid_mismatch",
        "Plug & Charge: PaymentDetailsReq names another eMAID than its contract certificate's.", ("iso2",)),
])

# EVSE signals that end the charge loop (-2/DIN DC_EVSEStatus, -20 EVSEStatus).
EXCESS_VOLTAGE_V = 30.0
SLOW_REQUEST_S = 62.0          # just over V2G_SECC_Sequence_Timeout (60 s, -2 / -20 / DIN)
CHARGE_LOOP_REQUESTS = ("CurrentDemandReq", "DC_ChargeLoopReq")
ISO20_MCS_SERVICE = 8


def get_ev_fault(name: str) -> Fault:
    try:
        return EV_FAULTS[name]
    except KeyError:
        raise UnknownFault(f"no ev fault named {name!r}; valid: {', '.join(sorted(EV_FAULTS))}") from None


def _faulty_evcc_class() -> type:
    """An Evcc whose autopilot carries one fault (built lazily: the EVCC imports the EXI codec)."""
    from ..iso15118 import messages as m
    from ..iso15118.evcc import Evcc

    class FaultyEvcc(Evcc):
        fault: str | None = None
        auto_pnc: bool = False            # -2: switch to PnC when the SECC offers Contract
        slow_done: bool = False

        # -- request bodies ----------------------------------------------------------------
        def build(self, name: str) -> dict:
            body = super().build(name)
            fault, ev, iso20 = self.fault, self.ev, self.info.is_iso20
            if fault == "ev_exceeds_own_max_voltage" and name in ("CurrentDemandReq", "DC_ChargeLoopReq"):
                too_high = ev.max_voltage + EXCESS_VOLTAGE_V
                if iso20 and "Scheduled_DC_CLReqControlMode" in body:
                    body["Scheduled_DC_CLReqControlMode"]["EVTargetVoltage"] = m.rational(too_high)
                elif iso20 and "Dynamic_DC_CLReqControlMode" in body:   # above the maximum it declared
                    body["Dynamic_DC_CLReqControlMode"]["EVMaximumVoltage"] = m.rational(too_high)
                elif not iso20:
                    body["EVTargetVoltage"] = m.pv(too_high, "V")
            elif fault == "ev_precharge_wrong_target" and name in ("PreChargeReq", "DC_PreChargeReq"):
                body["EVTargetVoltage"] = m.rational(ev.max_voltage) if iso20 else m.pv(ev.max_voltage, "V")
            elif fault == "ev_picks_unoffered_payment" and name == "PaymentServiceSelectionReq":
                body["SelectedPaymentOption"] = "Contract"
            elif fault == "ev_picks_unoffered_service" and name == "ServiceSelectionReq":
                mcs = ISO20_MCS_SERVICE
                if mcs not in self.state.energy_services:
                    body["SelectedEnergyTransferService"]["ServiceID"] = mcs
            elif fault == "ev_wrong_schedule_tuple" and name == "PowerDeliveryReq" and not iso20:
                body["SAScheduleTupleID"] = 2 if self.state.sa_schedule_tuple_id != 2 else 3
            elif fault == "ev_evccid_malformed" and name == "SessionSetupReq" and not iso20:
                body["EVCCID"] = bytes(6)
            elif fault == "ev_stale_gen_challenge" and name == "AuthorizationReq" and "GenChallenge" in body:
                body["GenChallenge"] = bytes(16)
            elif fault == "ev_emaid_mismatch" and name == "PaymentDetailsReq":
                body["eMAID"] = "DEHARC" + "9" * 8      # a contract this EV no longer holds
            return body

        # -- what the EV learns from the SECC ------------------------------------------------
        def _evse_max_current(self) -> float | None:             # type: ignore[override]
            if self.fault == "ev_ignores_evse_current_limit":
                return None                                       # the bug: only its own limit counts
            return super()._evse_max_current()

        def _absorb_evse_values(self, body: dict) -> None:
            if self.fault != "ev_ignores_lowered_limit":
                return super()._absorb_evse_values(body)
            first = {k: v for k, v in self.state.evse.items() if "Maximum" in k}
            super()._absorb_evse_values(body)
            self.state.evse.update(first)                         # the bug: the first limits stick

        def _absorb_ServiceDiscoveryRes(self, body: dict) -> None:
            super()._absorb_ServiceDiscoveryRes(body)
            if (self.auto_pnc and self.protocol == "iso2" and "Contract" in self.state.payment_options
                    and self._contract_key is not None):
                self.auth = "pnc"                                 # a contract on board: use it when offered

        # -- the sequence ----------------------------------------------------------------------
        def _precharged(self, exchange: Any) -> bool:
            if self.fault == "ev_precharge_not_settled":
                return True
            if self.fault == "ev_precharge_wrong_target":     # it waits for its (wrong) target
                present = m.number(exchange.response.get("EVSEPresentVoltage"))
                return present is not None and abs(present - self.ev.max_voltage) <= 20.0
            return super()._precharged(exchange)

        async def _until_finished(self, name: str, *args: Any, **kw: Any) -> Any:      # type: ignore[override]
            if self.fault == "ev_skips_precharge" and name in ("PreChargeReq", "DC_PreChargeReq"):
                return None
            if self.fault == "ev_no_repeat_on_ongoing":
                return await self._step(name)                     # the bug: Ongoing taken for Finished
            return await super()._until_finished(name, *args, **kw)

        async def _step(self, name: str, *args: Any, **kw: Any) -> Any:               # type: ignore[override]
            if self.fault == "ev_skips_precharge" and name == "DC_PreChargeReq":
                return None
            return await super()._step(name, *args, **kw)

        def _stop_signalled(self, exchange: Any) -> bool:                    # type: ignore[override]
            if self.fault == "ev_stop_ignored":
                return False                          # the bug: only its own loop count ends the charge loop
            return super()._stop_signalled(exchange)

        async def request(self, name: str, overrides: dict | None = None, timeout: float | None = None,
                          **kw: Any) -> Any:                                           # type: ignore[override]
            if (self.fault == "ev_wrong_session_id" and name not in ("supportedAppProtocolReq", "SessionSetupReq")
                    and self.state.session_id):
                stale = bytes(b ^ 0xFF for b in self.state.session_id)   # the bug: a previous session's id
                overrides = {**(overrides or {}), "@session_id": stale}
            if self.fault == "ev_slow_requests" and name in CHARGE_LOOP_REQUESTS and not self.slow_done:
                self.slow_done = True
                await asyncio.sleep(SLOW_REQUEST_S)                      # the bug: a stalled BMS
            return await super().request(name, overrides, timeout, **kw)

    return FaultyEvcc


@dataclass
class EvSimConfig:
    protocol: str = "iso2"             # din | iso2 | iso20_dc
    preset: str = "truck"              # EvModel preset: car | truck | mcs_truck
    auth: str = "auto"                 # eim | pnc | auto (PnC in -2 when the SECC offers Contract)
    loops: int = 3                     # charge-loop cycles of the autopilot
    dynamic: bool = False              # -20 dynamic control mode


class EvSimulator:
    """Connects to an SECC and runs one session; `perform("plug_in", {host, port, tls, pki, …})`."""

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
            auth = str(params.get("auth", self.cfg.auth))
            if auth not in ("eim", "pnc", "auto"):
                raise ValueError(f"plug_in auth must be eim, pnc or auto, not {auth!r}")
            self._task = asyncio.ensure_future(self._session(dict(params)))
            return {"plugged": True, "protocol": params.get("protocol", self.cfg.protocol)}
        if action == "unplug":
            await self.stop()
            return {"plugged": False}
        if action == "state":
            return {"plugged": self._task is not None and not self._task.done(), "error": self.error,
                    "exchanges": [x.summary() for x in (self.evcc.exchanges if self.evcc else [])]}
        raise UnknownSimAction(f"EV simulator has no action {action!r}; valid: {', '.join(self.ACTIONS)}")

    def make_evcc(self, params: dict[str, Any]) -> Any:
        """The EV's EVCC for one plug-in (with this simulator's fault)."""
        from ..iso15118.ev_model import EvModel

        protocol = str(params.get("protocol", self.cfg.protocol))
        ev = getattr(EvModel, str(params.get("preset", self.cfg.preset)))()
        auth = str(params.get("auth", self.cfg.auth))
        pki = params.get("pki")
        evcc = _faulty_evcc_class()(protocol, ev=ev, pki=pki, tls=bool(params.get("tls")),
                                    auth="pnc" if auth == "pnc" else "eim", trace=self.trace)
        evcc.fault = self.fault
        evcc.auto_pnc = auth == "auto" and pki is not None
        return evcc

    def plan(self, params: dict[str, Any]) -> dict[str, Any]:
        """The autopilot plan of one session: the fault's omissions and the session's choices."""
        plan: dict[str, Any] = {"loops": int(params.get("loops", self.cfg.loops)),
                                "dynamic": bool(params.get("dynamic", self.cfg.dynamic))}
        if params.get("energy_mode"):                          # e.g. an AC charger asks for AC_three_phase_core
            plan["energy_mode"] = str(params["energy_mode"])
        if self.fault == "ev_no_session_stop":
            plan["session_stop"] = False
        if self.fault == "ev_skips_welding_detection":
            plan["welding_detection"] = False
        return plan

    async def _session(self, params: dict[str, Any]) -> None:
        self.evcc = evcc = self.make_evcc(params)
        try:
            await evcc.connect(params["host"], int(params["port"]), timeout=10)
            await evcc.run(self.plan(params))
        except Exception as exc:          # the SECC under the harness's script refused: it is in the trace
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(evcc.close(), 5)
