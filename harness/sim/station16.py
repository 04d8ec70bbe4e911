"""OCPP 1.6J front end of the station simulator: Core, Remote Trigger and Smart Charging profiles.

1.6 numbers connectors across the station (0 = the station itself); here every EVSE's
connectors are numbered in order, so with the default config EVSE 1 is connectorId 1 and
EVSE 2 (MCS) is connectorId 2. `perform(..., {"evse": n})` therefore addresses connectorId n.

Status flow: Available → Preparing (plug or token) → Charging (StartTransaction accepted)
→ SuspendedEV (EV full) → Finishing (stopped, cable still in) → Available (unplugged);
unplugging during a transaction goes to Available directly after StopTransaction.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from .evse import Authorization, Evse, Transaction
from .smart_charging import MAX_PERIODS, MAX_PROFILES, MAX_STACK_LEVEL
from . import features
from .station import MEASURANDS, FrontEnd, Handler, Reply, Setting, now_iso

_ENERGY = "Energy.Active.Import.Register"
_STATUS_OF_STATE = {"Charging": "Charging", "SuspendedEV": "SuspendedEV", "SuspendedEVSE": "SuspendedEVSE"}
_STOP_REASON = {"reset_hard": "HardReset", "reset_soft": "SoftReset", "power_loss": "PowerLoss"}


def _text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class Station16(FrontEnd):
    version = "1.6"

    def __init__(self, sim: Any):
        super().__init__(sim)
        self.connectors: dict[int, tuple[Evse, int]] = {}     # 1.6 connectorId → (EVSE, its connector)
        for evse in sim.evses.values():
            for c in evse.cfg.connector_ids:
                self.connectors[len(self.connectors) + 1] = (evse, c)
        self.cid = {(e.id, c): cid for cid, (e, c) in self.connectors.items()}
        ro = {"readonly": True}
        # OCPP 1.6 §9.1: keys without behaviour here are still read-write where the spec says so.
        self.config: dict[str, Setting] = {
            "HeartbeatInterval": Setting("hb_interval", "int"),
            "MeterValueSampleInterval": Setting("meter_interval", "int"),
            "MeterValuesSampledData": Setting("measurands", "list", choices=MEASURANDS),
            "ConnectionTimeOut": Setting("ev_connection_timeout", "int"),
            "AuthorizeRemoteTxRequests": Setting("authorize_remote_start", "bool"),
            "StopTransactionOnInvalidId": Setting("stop_tx_on_invalid", "bool"),
            "NumberOfConnectors": Setting(None, const=str(len(self.connectors)), **ro),
            "SupportedFeatureProfiles": Setting(None, const=",".join(
                ["Core", "RemoteTrigger", "SmartCharging", *features.profiles16()]), **ro),
            "GetConfigurationMaxKeys": Setting(None, const="50", **ro),
            "ClockAlignedDataInterval": Setting(None, "int", const="0"),
            "MeterValuesAlignedData": Setting(None, "str", const=""),
            "StopTxnSampledData": Setting(None, "str", const=_ENERGY),
            "StopTxnAlignedData": Setting(None, "str", const=""),
            "LocalAuthorizeOffline": Setting(None, "bool", const="false"),
            "LocalPreAuthorize": Setting(None, "bool", const="false"),
            "ConnectorPhaseRotation": Setting(None, "str", const="NotApplicable"),
            "ResetRetries": Setting(None, "int", const="1"),
            "StopTransactionOnEVSideDisconnect": Setting(None, "bool", const="true"),
            "UnlockConnectorOnEVSideDisconnect": Setting(None, "bool", const="true"),
            "TransactionMessageAttempts": Setting(None, "int", const="3"),
            "TransactionMessageRetryInterval": Setting(None, "int", const="10"),
            "ChargeProfileMaxStackLevel": Setting(None, const=str(MAX_STACK_LEVEL), **ro),
            "ChargingScheduleAllowedChargingRateUnit": Setting(None, const="Current,Power", **ro),
            "ChargingScheduleMaxPeriods": Setting(None, const=str(MAX_PERIODS), **ro),
            "MaxChargingProfilesInstalled": Setting(None, const=str(MAX_PROFILES), **ro),
        }
        self._handlers: dict[str, Handler] = {
            "GetConfiguration": self._get_configuration, "ChangeConfiguration": self._change_configuration,
            "Reset": self._reset, "TriggerMessage": self._trigger,
            "RemoteStartTransaction": self._remote_start, "RemoteStopTransaction": self._remote_stop,
            "ChangeAvailability": self._change_availability, "UnlockConnector": self._unlock,
            "ClearCache": self._clear_cache, "DataTransfer": self._data_transfer,
            "SetChargingProfile": self._set_charging_profile, "ClearChargingProfile": self._clear_charging_profile,
            "GetCompositeSchedule": self._get_composite_schedule,
        }
        self.config.update(features.station_config())
        self._handlers.update({action: partial(handler, self)
                               for action, handler in features.station_handlers(self.version).items()})

    @property
    def handlers(self) -> dict[str, Handler]:
        if self.sim.has("data_transfer_not_implemented"):   # the bug: DataTransfer (Core) is not handled
            return {a: h for a, h in self._handlers.items() if a != "DataTransfer"}
        return self._handlers

    def profile_evse(self, target: int) -> Evse | None:
        entry = self.connectors.get(target) if isinstance(target, int) else None
        return entry[0] if entry else None

    def profile_target(self, evse: Evse) -> int:
        connector = (evse.tx.connector_id if evse.tx is not None else evse.plugged_connector) or evse.cfg.connector_ids[0]
        return self.cid[(evse.id, connector)]

    # ---- messages we send ------------------------------------------------------------

    def boot_payload(self, reason: str) -> dict[str, Any]:
        c = self.sim.cfg   # 1.6 has no boot reason; its field limits are tighter than 2.0.1's
        return {"chargePointVendor": c.vendor[:20], "chargePointModel": c.model[:20],
                "chargePointSerialNumber": c.serial[:25], "firmwareVersion": c.firmware[:50]}

    def _status(self, evse: Evse, connector: int) -> str:
        if evse.inoperative:
            return "Unavailable"
        tx = evse.tx
        if tx is not None and not tx.ended and tx.connector_id == connector:
            return _STATUS_OF_STATE.get(tx.charging_state, "Charging")
        if evse.plugged:
            if evse.plugged_connector != connector:
                return "Unavailable"
            return "Finishing" if evse.finishing else "Preparing"
        return "Preparing" if evse.auth is not None else self.feature_status(evse, connector, "Available")

    def _status_payload(self, cid: int) -> dict[str, Any]:
        if cid == 0:
            status = "Unavailable" if all(e.inoperative for e in self.sim.evses.values()) else "Available"
        else:
            status = self._status(*self.connectors[cid])
        if status == "Available" and self.sim.has("invalid_status_enum"):
            status = "Free"
        return {"connectorId": cid, "errorCode": "NoError", "status": status, "timestamp": now_iso()}

    def _send_status_cids(self, cids: list[int], direct: bool = False, triggered: bool = False) -> None:
        validate = not self.sim.has("invalid_status_enum")
        for cid in cids:
            p = self._status_payload(cid)
            if direct:
                self.sim.spawn(self.sim.direct_call("StatusNotification", p, validate=validate), "status", session=True)
            elif triggered:
                self.sim.send_triggered("StatusNotification", p)
            else:
                self.sim.enqueue("StatusNotification", p, validate=validate)

    def send_status(self, evse: Evse) -> None:
        self._send_status_cids([self.cid[(evse.id, c)] for c in evse.cfg.connector_ids])

    def send_all_status(self, direct: bool = False) -> None:
        self._send_status_cids([0, *self.connectors], direct=direct)

    def meter_value(self, evse: Evse, context: str, measurands: list[str] | tuple[str, ...]) -> dict[str, Any]:
        sampled = []
        for measurand, value, unit, location in self.sim.readings(evse, measurands, context):
            sv = {"value": _text(value), "context": context, "format": "Raw", "measurand": measurand, "unit": unit}
            if location:
                sv["location"] = location
            sampled.append(sv)
        return {"timestamp": now_iso(), "sampledValue": sampled}

    def _wire_tx_id(self, tx: Transaction) -> int:
        assert tx.cs16_id is not None
        return tx.cs16_id + 1 if self.sim.has("tx_id_changes") else tx.cs16_id   # the bug: off by one

    # ---- transaction flow ------------------------------------------------------------

    def on_plug(self, evse: Evse) -> None:
        evse.finishing = False
        auth = evse.auth
        if auth is not None and self.sim.now() - auth.at > self.sim.ev_connection_timeout:
            evse.auth = auth = None
        self.send_status(evse)
        if auth is not None and evse.tx is None:
            self.start_tx(evse)

    def on_unplug(self, evse: Evse) -> None:
        tx = evse.tx
        evse.plugged_connector = None              # gone before the stop: no Finishing in between
        if tx is not None and not tx.ended:
            if self.sim.has("no_stop_transaction_on_unplug"):
                tx.ended = True                    # the bug: the transaction is silently forgotten
                tx.cancel_tasks()
                evse.tx = None
                self.sim.smart.on_tx_ended(evse)
            else:
                self.stop_tx(evse, "EVDisconnected", report_status=False)
        evse.ev, evse.auth, evse.finishing = None, None, False
        evse.advance(self.sim.now(), self.sim.time_scale)
        self.send_status(evse)

    async def on_token(self, evse: Evse, id_token: str, token_type: str) -> None:
        tx = evse.tx
        if tx is not None:
            if tx.id_token == id_token and not self.sim.has("local_stop_ignored_16"):   # same tag: the driver stops
                self.stop_tx(evse, "Local")
            return
        if evse.inoperative:
            return
        local = await self.feature_token_gate(evse, id_token[:20], token_type)
        if local is not None:
            if local == "Accepted":
                self.authorize(evse, Authorization(id_token[:20], token_type, self.sim.now()))
            return
        resp = await self.sim.enqueue("Authorize", {"idTag": id_token[:20]})
        status = ((resp or {}).get("idTagInfo") or {}).get("status")
        if status != "Accepted" and not self.sim.has("authorize_invalid_still_starts"):
            return
        self.authorize(evse, Authorization(id_token[:20], token_type, self.sim.now()))

    def authorize(self, evse: Evse, auth: Authorization) -> None:
        if evse.tx is not None:
            return
        evse.auth = auth
        if evse.plugged:
            self.start_tx(evse)
            return
        self.send_status(evse)                     # Preparing: waiting for the cable
        self.sim.spawn(self._auth_timeout(evse, auth), f"conn-timeout-{evse.id}")

    async def _auth_timeout(self, evse: Evse, auth: Authorization) -> None:
        await asyncio.sleep(self.sim.ev_connection_timeout)
        if evse.auth is auth and not evse.plugged:
            evse.auth = None
            self.send_status(evse)

    def start_tx(self, evse: Evse) -> None:
        auth = evse.auth
        assert auth is not None and evse.plugged_connector is not None
        evse.auth = None
        tx = Transaction(tx_id="", evse_id=evse.id, connector_id=evse.plugged_connector, id_token=auth.id_token,
                         token_type=auth.token_type, meter_start_wh=evse.energy_wh, started_at=self.sim.now())
        evse.tx, evse.finishing = tx, False
        self.sim.smart.on_tx_started(self.cid[(evse.id, tx.connector_id)], auth.charging_profile)   # §5.11
        evse.advance(self.sim.now(), self.sim.time_scale)
        fut = self.sim.enqueue("StartTransaction", {
            "connectorId": self.cid[(evse.id, tx.connector_id)], "idTag": auth.id_token,
            "meterStart": int(round(tx.meter_start_wh)), "timestamp": now_iso()}, persistent=True)
        self.sim.spawn(self._started(evse, tx, fut), f"start-tx-{evse.id}")
        self.feature_tx("tx_started", evse, tx)

    async def _started(self, evse: Evse, tx: Transaction, fut: asyncio.Future[dict[str, Any] | None]) -> None:
        resp = await fut
        if resp is None:                           # refused with a CALLERROR or unanswered: no transaction
            tx.ended = True
            if evse.tx is tx:
                evse.tx = None
                self.sim.smart.on_tx_ended(evse)
                self.send_status(evse)
            return
        tx.cs16_id = int(resp["transactionId"])
        tx.tx_id = str(tx.cs16_id)
        if tx.ended:                               # stopped while StartTransaction was in flight
            self._send_stop(tx)
            return
        if (resp.get("idTagInfo") or {}).get("status") != "Accepted":
            if self.sim.stop_tx_on_invalid:
                self.stop_tx(evse, "DeAuthorized")
                return
            tx.charging_state = "SuspendedEVSE"   # keep the transaction, deliver no energy
        self.send_status(evse)
        tx.tasks.append(self.sim.spawn(self._meter_loop(evse, tx), f"meter-{evse.id}"))
        if self.sim.has("drops_connection_in_tx"):
            self.sim.spawn(self.sim.drop_connection_later(1.0), "drop")

    async def _meter_loop(self, evse: Evse, tx: Transaction) -> None:
        cid = self.cid[(evse.id, tx.connector_id)]
        while not tx.ended:
            interval = self.sim.meter_interval
            if await self.sim.wait_or_change(interval if interval > 0 else None) or tx.ended:
                continue                           # MeterValueSampleInterval changed (or 0 = off)
            mv = self.meter_value(evse, "Sample.Periodic", self.sim.measurands)
            self.sim.enqueue("MeterValues", {"connectorId": cid, "transactionId": self._wire_tx_id(tx),
                                             "meterValue": [mv]}, persistent=True)
            if evse.ev is not None and evse.ev.full and tx.charging_state == "Charging":
                tx.charging_state = "SuspendedEV"
                self.send_status(evse)

    def stop_tx(self, evse: Evse, reason: str, report_status: bool = True) -> asyncio.Future[dict[str, Any] | None] | None:
        tx = evse.tx
        assert tx is not None
        tx.ended = True
        tx.cancel_tasks()
        tx.stop_reason = reason
        tx.meter_stop_wh = self.sim.readings(evse, [_ENERGY], "Transaction.End")[0][1]
        evse.tx = None
        self.sim.smart.on_tx_ended(evse)           # §3.13.1: a TxProfile lives as long as its transaction
        self.feature_tx("tx_ended", evse, tx)
        evse.finishing = evse.plugged
        evse.advance(self.sim.now(), self.sim.time_scale)
        fut = self._send_stop(tx) if tx.cs16_id is not None else None   # else _started sends it
        if evse.inoperative_scheduled:
            # the bug: the Scheduled change is forgotten when the transaction ends
            evse.inoperative = not self.sim.has("scheduled_availability_forgotten")
            evse.inoperative_scheduled = None
        if report_status:
            self.send_status(evse)
        self.sim.transaction_ended()
        return fut

    def _send_stop(self, tx: Transaction) -> asyncio.Future[dict[str, Any] | None]:
        payload: dict[str, Any] = {"transactionId": self._wire_tx_id(tx), "meterStop": int(round(tx.meter_stop_wh or 0)),
                                   "timestamp": now_iso(), "reason": tx.stop_reason or "Local"}
        if tx.id_token:
            payload["idTag"] = tx.id_token
        return self.sim.enqueue("StopTransaction", payload, persistent=True)

    def on_ev_stop(self, evse: Evse) -> None:
        self.stop_tx(evse, "Other")

    def end_all(self, why: str) -> list[asyncio.Future[dict[str, Any] | None]]:
        futures = []
        for e in self.sim.evses.values():
            if e.tx is not None:
                fut = self.stop_tx(e, _STOP_REASON.get(why, "Other"))
                if fut is not None:
                    futures.append(fut)
        return futures

    # ---- CSMS-initiated --------------------------------------------------------------

    async def _get_configuration(self, p: dict[str, Any]) -> Reply:
        keys = p.get("key") or list(self.config)
        known = [{"key": k, "readonly": self.config[k].readonly,
                  "value": self.sim.read_setting(self.config[k])} for k in keys if k in self.config]
        out: dict[str, Any] = {"configurationKey": known}
        unknown = [k for k in keys if k not in self.config]
        if unknown:
            out["unknownKey"] = unknown
        return Reply(out)

    async def _change_configuration(self, p: dict[str, Any]) -> Reply:
        setting = self.config.get(p["key"])
        if setting is None:
            return Reply({"status": "Accepted" if self.sim.has("unknown_config_key_accepted") else "NotSupported"})
        return Reply({"status": self.sim.write_setting(setting, p["value"])})

    async def _reset(self, p: dict[str, Any]) -> Reply:
        if self.sim.has("reset_no_reboot"):
            return Reply({"status": "Accepted"})
        why = "reset_hard" if p["type"] == "Hard" else "reset_soft"
        return Reply({"status": "Accepted"}, lambda: self.sim.reset(why, "PowerUp"))

    def _evses_for(self, cid: int | None) -> list[Evse]:
        if not cid:
            return list(self.sim.evses.values())
        return [self.connectors[cid][0]]

    async def _trigger(self, p: dict[str, Any]) -> Reply:
        what, cid = p["requestedMessage"], p.get("connectorId")
        if cid is not None and cid != 0 and cid not in self.connectors:
            return Reply({"status": "Rejected"})

        async def send() -> None:
            if what == "BootNotification":
                if not self.sim.trigger_boot():    # 1.6 (unlike 2.0.1) allows it once Accepted
                    self.sim.send_triggered("BootNotification", self.boot_payload("Triggered"))
            elif what == "Heartbeat":
                self.sim.send_triggered("Heartbeat", {})
            elif what == "StatusNotification":
                self._send_status_cids([cid] if cid is not None else [0, *self.connectors], triggered=True)
            elif what == "MeterValues":
                for e in self._evses_for(cid):
                    for c in e.cfg.connector_ids:
                        payload: dict[str, Any] = {"connectorId": self.cid[(e.id, c)], "meterValue": [
                            self.meter_value(e, "Trigger", self.sim.measurands)]}
                        if e.tx is not None and e.tx.cs16_id is not None and e.tx.connector_id == c:
                            payload["transactionId"] = self._wire_tx_id(e.tx)
                        self.sim.send_triggered("MeterValues", payload)
            elif what == "DiagnosticsStatusNotification":
                self.sim.send_triggered(what, {"status": "Idle"})
            elif what == "FirmwareStatusNotification":
                self.sim.send_triggered(what, {"status": "Idle"})

        return Reply({"status": "Accepted"}, None if self.sim.has("trigger_ignored") else send)

    async def _remote_start(self, p: dict[str, Any]) -> Reply:
        cid = p.get("connectorId")
        if cid is not None:
            evse = self.connectors[cid][0] if cid in self.connectors else None
        else:
            free = sorted((e for e in self.sim.evses.values() if e.tx is None and not e.inoperative),
                          key=lambda e: not e.plugged)
            evse = free[0] if free else None
        if evse is None or evse.tx is not None or evse.inoperative or self.sim.registration != "Accepted":
            return Reply({"status": "Rejected"})
        profile = p.get("chargingProfile")
        if profile is not None:                    # §5.11: only a TxProfile (OCTT TC_060_CS)
            verdict, _ = self.sim.smart.check(self.cid[(evse.id, evse.cfg.connector_ids[0])], profile,
                                              from_remote_start=True)
            if verdict[0] != "Accepted":
                return Reply({"status": "Rejected"})
        auth = Authorization(p["idTag"], "Central", self.sim.now(), charging_profile=profile)

        async def start() -> None:
            if self.sim.authorize_remote_start:   # AuthorizeRemoteTxRequests
                resp = await self.sim.enqueue("Authorize", {"idTag": auth.id_token})
                if ((resp or {}).get("idTagInfo") or {}).get("status") != "Accepted":
                    return
                auth.at = self.sim.now()
            self.authorize(evse, auth)

        return Reply({"status": "Accepted"}, None if self.sim.has("remote_start_ignored") else start)

    async def _remote_stop(self, p: dict[str, Any]) -> Reply:
        for evse in self.sim.evses.values():
            if evse.tx is not None and evse.tx.cs16_id == p["transactionId"]:
                async def stop(evse: Evse = evse) -> None:
                    if evse.tx is not None:
                        self.stop_tx(evse, "Remote")
                return Reply({"status": "Accepted"}, None if self.sim.has("remote_stop_ignored") else stop)
        return Reply({"status": "Rejected"})

    async def _change_availability(self, p: dict[str, Any]) -> Reply:
        cid = p["connectorId"]
        if cid != 0 and cid not in self.connectors:
            return Reply({"status": "Rejected"})
        inoperative = p["type"] == "Inoperative"
        status, changed = "Accepted", []
        for e in self._evses_for(cid):
            if e.tx is not None and inoperative:
                e.inoperative_scheduled, status = True, "Scheduled"
            elif e.inoperative != inoperative:
                e.inoperative, e.inoperative_scheduled = inoperative, None
                changed.append(e)

        if self.sim.has("change_availability_ignored_16"):   # the bug: Accepted, nothing changes
            for e in changed:
                e.inoperative = not inoperative
            changed = []

        async def report() -> None:
            for e in changed:
                self.send_status(e)
            if cid == 0:                           # the Charge Point itself (connector 0) changed too
                self._send_status_cids([0])
        return Reply({"status": status}, report if changed else None)

    async def _unlock(self, p: dict[str, Any]) -> Reply:
        if p["connectorId"] not in self.connectors:
            return Reply({"status": "Unlocked" if self.sim.has("unlock_unknown_connector_unlocked") else "NotSupported"})
        evse = self.connectors[p["connectorId"]][0]
        if evse.tx is None or self.sim.has("unlock_keeps_transaction"):   # the bug: unlocks, keeps charging
            return Reply({"status": "Unlocked"})

        async def stop() -> None:
            if evse.tx is not None:
                self.stop_tx(evse, "UnlockCommand")
        return Reply({"status": "Unlocked"}, stop)

    # ---- smart charging (§5.5, §5.7, §5.16) ---------------------------------------------

    async def _set_charging_profile(self, p: dict[str, Any]) -> Reply:
        status, _, _ = self.sim.smart.set_profile(p["connectorId"], p["csChargingProfiles"])
        return Reply({"status": status})

    async def _clear_charging_profile(self, p: dict[str, Any]) -> Reply:
        hit = self.sim.smart.clear(p.get("id"), p.get("connectorId"), p.get("chargingProfilePurpose"), p.get("stackLevel"))
        return Reply({"status": "Accepted" if hit else "Unknown"})

    async def _get_composite_schedule(self, p: dict[str, Any]) -> Reply:
        cs = self.sim.smart.composite(p["connectorId"], p["duration"], p.get("chargingRateUnit"))
        if cs is None:
            return Reply({"status": "Rejected"})
        return Reply(cs.to_response("1.6"))

    async def _clear_cache(self, p: dict[str, Any]) -> Reply:
        return Reply({"status": "Rejected" if self.sim.has("clear_cache_rejected_16") else "Accepted"})

    async def _data_transfer(self, p: dict[str, Any]) -> Reply:
        return Reply({"status": "UnknownVendorId"})
