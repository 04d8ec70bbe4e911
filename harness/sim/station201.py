"""OCPP 2.0.1 front end of the station simulator: device model, TransactionEvent, handlers.

Transactions follow TxStartPoint = TxStopPoint = PowerPathClosed: a transaction starts when
an EV is plugged in AND a token is authorized (or a RequestStartTransaction arrived), and
ends when the power path opens (unplug, remote stop, token presented again, EV stop,
reset). The Started event's triggerReason is whichever of the two came last: Authorized,
CablePluggedIn or RemoteStart. seqNo starts at 0 per transaction and increases by 1.
"""

from __future__ import annotations

import asyncio
import uuid
from functools import partial
from typing import Any

from .evse import Authorization, Evse, Transaction
from .smart_charging import MAX_PERIODS, MAX_PROFILES, MAX_STACK_LEVEL
from . import features
from .station import MEASURANDS, FrontEnd, Handler, Reply, Setting, now_iso

_ENERGY = "Energy.Active.Import.Register"
VarKey = tuple[str, str, "str | None"]       # (component, variable, variable instance)


class Station201(FrontEnd):
    version = "2.0.1"

    def __init__(self, sim: Any):
        super().__init__(sim)
        cfg = sim.cfg
        ro = {"readonly": True}
        self.variables: dict[VarKey, Setting] = {
            ("OCPPCommCtrlr", "HeartbeatInterval", None): Setting("hb_interval", "int"),
            ("SampledDataCtrlr", "TxUpdatedInterval", None): Setting("meter_interval", "int"),
            ("SampledDataCtrlr", "TxUpdatedMeasurands", None): Setting("measurands", "list", choices=MEASURANDS),
            ("SampledDataCtrlr", "TxStartedMeasurands", None): Setting(None, const=_ENERGY, **ro),
            ("SampledDataCtrlr", "TxEndedMeasurands", None): Setting(None, const=_ENERGY, **ro),
            ("AuthCtrlr", "AuthorizeRemoteStart", None): Setting("authorize_remote_start", "bool"),
            ("AuthCtrlr", "Enabled", None): Setting(None, const="true", **ro),
            ("TxCtrlr", "EVConnectionTimeOut", None): Setting("ev_connection_timeout", "int"),
            ("TxCtrlr", "StopTxOnInvalidId", None): Setting("stop_tx_on_invalid", "bool"),
            ("TxCtrlr", "TxStartPoint", None): Setting(None, const="PowerPathClosed", **ro),
            ("TxCtrlr", "TxStopPoint", None): Setting(None, const="PowerPathClosed", **ro),
            ("SecurityCtrlr", "Identity", None): Setting(None, const=cfg.station_id, **ro),
            ("SecurityCtrlr", "SecurityProfile", None): Setting(
                None, const=str(cfg.security_profile) if cfg.security_profile >= 2 else "1" if cfg.password else "0", **ro),
            ("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"): Setting(None, const="20", **ro),
            ("DeviceDataCtrlr", "ItemsPerMessage", "SetVariables"): Setting(None, const="20", **ro),
            ("DeviceDataCtrlr", "BytesPerMessage", "GetVariables"): Setting(None, const="65000", **ro),
            ("DeviceDataCtrlr", "BytesPerMessage", "SetVariables"): Setting(None, const="65000", **ro),
            ("SmartChargingCtrlr", "Enabled", None): Setting(None, const="true", **ro),
            ("SmartChargingCtrlr", "Available", None): Setting(None, const="true", **ro),
            ("SmartChargingCtrlr", "RateUnit", None): Setting(None, const="A,W", **ro),
            ("SmartChargingCtrlr", "PeriodsPerSchedule", None): Setting(None, const=str(MAX_PERIODS), **ro),
            ("SmartChargingCtrlr", "ProfileStackLevel", None): Setting(None, const=str(MAX_STACK_LEVEL), **ro),
            ("SmartChargingCtrlr", "Entries", "ChargingProfiles"): Setting(None, const=str(MAX_PROFILES), **ro),
        }
        self._components = {c for c, _, _ in self.variables}
        self._handlers: dict[str, Handler] = {
            "GetVariables": self._get_variables, "SetVariables": self._set_variables, "Reset": self._reset,
            "TriggerMessage": self._trigger, "RequestStartTransaction": self._request_start,
            "RequestStopTransaction": self._request_stop, "ChangeAvailability": self._change_availability,
            "UnlockConnector": self._unlock, "GetTransactionStatus": self._tx_status,
            "ClearCache": self._clear_cache, "DataTransfer": self._data_transfer,
            "SetChargingProfile": self._set_charging_profile, "ClearChargingProfile": self._clear_charging_profile,
            "GetChargingProfiles": self._get_charging_profiles, "GetCompositeSchedule": self._get_composite_schedule,
            "GetBaseReport": self._get_base_report,
        }
        self.variables.update(features.station_variables())
        self._components = {c for c, _, _ in self.variables}
        self._handlers.update({action: partial(handler, self)
                               for action, handler in features.station_handlers(self.version).items()})

    @property
    def handlers(self) -> dict[str, Handler]:
        return self._handlers

    # ---- messages we send ------------------------------------------------------------

    def boot_payload(self, reason: str) -> dict[str, Any]:
        c = self.sim.cfg
        return {"reason": reason, "chargingStation": {
            "model": c.model, "vendorName": c.vendor, "serialNumber": c.serial, "firmwareVersion": c.firmware}}

    def _connector_status(self, evse: Evse, connector: int) -> str:
        if evse.inoperative:
            return "Unavailable"
        if evse.plugged:   # the plugged connector is Occupied, its siblings cannot be used meanwhile
            return "Occupied" if evse.plugged_connector == connector else "Unavailable"
        return self.feature_status(evse, connector, "Available")

    def status_payloads(self, evse: Evse) -> list[dict[str, Any]]:
        out = []
        for c in evse.cfg.connector_ids:
            status = self._connector_status(evse, c)
            if status == "Available" and self.sim.has("invalid_status_enum"):
                status = "Free"                    # the bug: a 1.x-era word outside the enum
            out.append({"timestamp": now_iso(), "connectorStatus": status, "evseId": evse.id, "connectorId": c})
        return out

    def send_status(self, evse: Evse, direct: bool = False, triggered: bool = False) -> None:
        validate = not self.sim.has("invalid_status_enum")
        for p in self.status_payloads(evse):
            if direct:
                self.sim.spawn(self.sim.direct_call("StatusNotification", p, validate=validate), "status", session=True)
            elif triggered:
                self.sim.send_triggered("StatusNotification", p)
            else:
                self.sim.enqueue("StatusNotification", p, validate=validate)

    def send_all_status(self, direct: bool = False) -> None:
        for evse in self.sim.evses.values():
            self.send_status(evse, direct=direct)

    def meter_value(self, evse: Evse, context: str, measurands: list[str] | tuple[str, ...]) -> dict[str, Any]:
        sampled = []
        for measurand, value, unit, location in self.sim.readings(evse, measurands, context):
            sv: dict[str, Any] = {"value": value, "context": context, "measurand": measurand,
                                  "unitOfMeasure": {"unit": unit}}
            if location:
                sv["location"] = location
            sampled.append(sv)
        return {"timestamp": now_iso(), "sampledValue": sampled}

    def _tx_event(self, evse: Evse, tx: Transaction, event_type: str, trigger: str, *,
                  meter: dict[str, Any] | None = None, stopped_reason: str | None = None,
                  id_token: tuple[str, str] | None = None) -> asyncio.Future[dict[str, Any] | None]:
        seq = tx.seq_no
        tx.seq_no += 2 if (event_type == "Started" and self.sim.has("tx_seqno_skips")) else 1
        tx_id = tx.tx_id
        if event_type != "Started" and self.sim.has("tx_id_changes"):
            tx_id = tx.tx_id[::-1]                 # the bug: a re-generated id after the start
        info: dict[str, Any] = {"transactionId": tx_id, "chargingState": tx.charging_state}
        if stopped_reason:
            info["stoppedReason"] = stopped_reason
        if event_type == "Started" and tx.remote_start_id is not None:
            info["remoteStartId"] = tx.remote_start_id
        payload: dict[str, Any] = {
            "eventType": event_type, "timestamp": now_iso(), "triggerReason": trigger, "seqNo": seq,
            "transactionInfo": info, "evse": {"id": evse.id, "connectorId": tx.connector_id},
        }
        if id_token:
            payload["idToken"] = {"idToken": id_token[0], "type": id_token[1]}
        if self.sim.conn is None:
            payload["offline"] = True              # happened while the websocket was down (E04)
        if meter:
            payload["meterValue"] = [meter]
        return self.sim.enqueue("TransactionEvent", payload, persistent=True)

    # ---- transaction flow ------------------------------------------------------------

    def _live_auth(self, evse: Evse) -> Authorization | None:
        auth = evse.auth
        if auth and self.sim.now() - auth.at > self.sim.ev_connection_timeout:
            evse.auth = auth = None                # EVConnectionTimeOut: the driver walked away
        return auth

    def on_plug(self, evse: Evse) -> None:
        evse.finishing = False
        self.send_status(evse)
        if self._live_auth(evse) and evse.tx is None:
            self.start_tx(evse, "CablePluggedIn")

    def on_unplug(self, evse: Evse) -> None:
        tx = evse.tx
        if tx is not None and not tx.ended:
            if self.sim.has("no_ended_on_unplug"):
                tx.ended = True                    # the bug: the transaction just vanishes
                tx.cancel_tasks()
                evse.tx = None
                self.sim.smart.on_tx_ended(evse)
            else:
                self.end_tx(evse, "EVCommunicationLost", "EVDisconnected", "Idle")
        evse.ev, evse.plugged_connector, evse.auth = None, None, None
        evse.advance(self.sim.now(), self.sim.time_scale)
        self.send_status(evse)

    async def on_token(self, evse: Evse, id_token: str, token_type: str) -> None:
        tx = evse.tx
        if tx is not None:
            if tx.id_token == id_token and not self.sim.has("local_stop_ignored"):   # same token again: the driver stops (E07)
                self.end_tx(evse, "StopAuthorized", "Local", "EVConnected", id_token=(id_token, token_type))
            return
        if evse.inoperative:
            return
        local = await self.feature_token_gate(evse, id_token, token_type)
        if local is not None:
            if local == "Accepted":
                self.authorize(evse, Authorization(id_token, token_type, self.sim.now()), "Authorized")
            return
        resp = await self.sim.enqueue("Authorize", {"idToken": {"idToken": id_token, "type": token_type}})
        status = (resp or {}).get("idTokenInfo", {}).get("status")
        if status != "Accepted" and not self.sim.has("authorize_invalid_still_starts"):
            return                                 # Invalid/Blocked/Unknown/no answer: nothing starts
        self.authorize(evse, Authorization(id_token, token_type, self.sim.now()), "Authorized")

    def authorize(self, evse: Evse, auth: Authorization, trigger: str) -> None:
        if evse.tx is not None:
            return
        evse.auth = auth
        if evse.plugged:
            self.start_tx(evse, trigger)

    def start_tx(self, evse: Evse, trigger: str) -> None:
        auth = evse.auth
        assert auth is not None and evse.plugged_connector is not None
        evse.auth = None
        tx = Transaction(tx_id=str(uuid.uuid4()), evse_id=evse.id, connector_id=evse.plugged_connector,
                         id_token=auth.id_token, token_type=auth.token_type, meter_start_wh=evse.energy_wh,
                         started_at=self.sim.now(), remote_start_id=auth.remote_start_id)
        evse.tx = tx
        evse.finishing = False
        self.sim.smart.on_tx_started(evse.id, auth.charging_profile)   # K05: the remote start's TxProfile
        meter = self.meter_value(evse, "Transaction.Begin", [_ENERGY])
        started = self._tx_event(evse, tx, "Started", trigger, meter=meter, id_token=(auth.id_token, auth.token_type))
        tx.tasks.append(self.sim.spawn(self._meter_loop(evse, tx), f"meter-evse{evse.id}"))
        tx.tasks.append(self.sim.spawn(self._check_started(evse, tx, started), f"tx-auth-evse{evse.id}"))
        self.feature_tx("tx_started", evse, tx)
        if self.sim.has("drops_connection_in_tx"):
            self.sim.spawn(self.sim.drop_connection_later(1.0), "drop")

    async def _check_started(self, evse: Evse, tx: Transaction, started: asyncio.Future[dict[str, Any] | None]) -> None:
        """E05: the CSMS may refuse the token in the Started response; StopTxOnInvalidId decides."""
        resp = await started
        status = ((resp or {}).get("idTokenInfo") or {}).get("status", "Accepted")
        if status == "Accepted" or tx.ended or evse.tx is not tx:
            return
        if self.sim.stop_tx_on_invalid:
            self.end_tx(evse, "Deauthorized", "DeAuthorized", "EVConnected")
        else:
            tx.charging_state = "SuspendedEVSE"
            self._tx_event(evse, tx, "Updated", "ChargingStateChanged")

    async def _meter_loop(self, evse: Evse, tx: Transaction) -> None:
        while not tx.ended:
            interval = self.sim.meter_interval
            if await self.sim.wait_or_change(interval if interval > 0 else None) or tx.ended:
                continue                           # TxUpdatedInterval changed (or 0 = no updates)
            meter = self.meter_value(evse, "Sample.Periodic", self.sim.measurands)
            if evse.ev is not None and evse.ev.full and tx.charging_state == "Charging":
                tx.charging_state = "SuspendedEV"  # target SoC reached: the EV stops drawing power
                self._tx_event(evse, tx, "Updated", "ChargingStateChanged", meter=meter)
            else:
                self._tx_event(evse, tx, "Updated", "MeterValuePeriodic", meter=meter)

    def end_tx(self, evse: Evse, trigger: str, reason: str, charging_state: str,
               id_token: tuple[str, str] | None = None) -> asyncio.Future[dict[str, Any] | None]:
        tx = evse.tx
        assert tx is not None
        tx.ended = True
        tx.cancel_tasks()
        meter = self.meter_value(evse, "Transaction.End", [_ENERGY])
        tx.charging_state = charging_state
        fut = self._tx_event(evse, tx, "Ended", trigger, meter=meter, stopped_reason=reason, id_token=id_token)
        evse.tx = None
        self.sim.smart.on_tx_ended(evse)           # a TxProfile lives as long as its transaction
        self.feature_tx("tx_ended", evse, tx)
        evse.advance(self.sim.now(), self.sim.time_scale)
        if evse.inoperative_scheduled:
            evse.inoperative, evse.inoperative_scheduled = True, None
            if evse.plugged:                       # unplug reports the status itself
                self.send_status(evse)
        self.sim.transaction_ended()
        return fut

    def on_ev_stop(self, evse: Evse) -> None:
        self.end_tx(evse, "ChargingStateChanged", "StoppedByEV", "EVConnected")

    def end_all(self, why: str) -> list[asyncio.Future[dict[str, Any] | None]]:
        trigger, reason = ("AbnormalCondition", "PowerLoss") if why == "power_loss" else ("ResetCommand", "ImmediateReset")
        return [self.end_tx(e, trigger, reason, "EVConnected" if e.plugged else "Idle")
                for e in self.sim.evses.values() if e.tx is not None]

    # ---- CSMS-initiated --------------------------------------------------------------

    def _lookup(self, item: dict[str, Any]) -> tuple[str, Setting | None]:
        comp, var = item["component"], item["variable"]
        if comp["name"] not in self._components or ("evse" in comp and comp["evse"].get("id") not in self.sim.evses):
            return "UnknownComponent", None
        setting = self.variables.get((comp["name"], var["name"], var.get("instance")))
        return ("Accepted", setting) if setting else ("UnknownVariable", None)

    async def _get_variables(self, p: dict[str, Any]) -> Reply:
        results = []
        for item in p["getVariableData"]:
            attr = item.get("attributeType", "Actual")
            status, setting = self._lookup(item)
            r: dict[str, Any] = {"attributeType": attr, "component": item["component"], "variable": item["variable"]}
            if setting is not None and attr != "Actual":
                status = "NotSupportedAttributeType"
            r["attributeStatus"] = status
            if status == "Accepted" and setting is not None:
                r["attributeValue"] = self.sim.read_setting(setting)
            results.append(r)
        return Reply({"getVariableResult": results})

    async def _set_variables(self, p: dict[str, Any]) -> Reply:
        results = []
        for item in p["setVariableData"]:
            attr = item.get("attributeType", "Actual")
            status, setting = self._lookup(item)
            if setting is None and self.sim.has("unknown_config_key_accepted"):
                status = "Accepted"                # the bug: claims to have stored something it lacks
            elif setting is not None:
                status = "NotSupportedAttributeType" if attr != "Actual" else self.sim.write_setting(setting, item["attributeValue"])
            results.append({"attributeType": attr, "attributeStatus": status,
                            "component": item["component"], "variable": item["variable"]})
        return Reply({"setVariableResult": results})

    _DATA_TYPES = {"int": "integer", "bool": "boolean", "list": "MemberList", "str": "string"}

    def _report_item(self, key: VarKey, s: Setting) -> dict[str, Any]:
        comp, var, instance = key
        variable: dict[str, Any] = {"name": var}
        if instance:
            variable["instance"] = instance
        chars: dict[str, Any] = {"dataType": self._DATA_TYPES[s.kind], "supportsMonitoring": False}
        if s.choices:
            chars["valuesList"] = ",".join(s.choices)
        return {"component": {"name": comp}, "variable": variable,
                "variableAttribute": [{"type": "Actual", "value": self.sim.read_setting(s),
                                       "mutability": "ReadOnly" if s.readonly else "ReadWrite"}],
                "variableCharacteristics": chars}

    async def _get_base_report(self, p: dict[str, Any]) -> Reply:
        """B07: ConfigurationInventory (writable variables) / FullInventory in one NotifyReport; no SummaryInventory."""
        base = p["reportBase"]
        if base not in ("ConfigurationInventory", "FullInventory"):
            return Reply({"status": "NotSupported"})
        items = [self._report_item(k, v) for k, v in self.variables.items()
                 if base == "FullInventory" or not v.readonly]

        async def report() -> None:
            self.sim.enqueue("NotifyReport", {"requestId": p["requestId"], "generatedAt": now_iso(), "seqNo": 0,
                                              "tbc": False, "reportData": items})
        return Reply({"status": "Accepted"}, None if self.sim.has("notify_report_missing") else report)

    async def _reset(self, p: dict[str, Any]) -> Reply:
        if "evseId" in p:
            return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest",
                                                               "additionalInfo": "EVSE reset not supported"}})
        busy = any(e.tx is not None for e in self.sim.evses.values())
        if p["type"] == "OnIdle" and busy:
            if not self.sim.has("reset_no_reboot"):
                self.sim.request_reboot_when_idle("RemoteReset")
            return Reply({"status": "Scheduled"})
        if self.sim.has("reset_no_reboot"):
            return Reply({"status": "Accepted"})
        return Reply({"status": "Accepted"}, lambda: self.sim.reset("reset", "RemoteReset"))

    async def _trigger(self, p: dict[str, Any]) -> Reply:
        what, spec = p["requestedMessage"], p.get("evse")
        if spec is not None:
            evse = self.sim.evses.get(spec["id"])
            if evse is None or spec.get("connectorId", evse.cfg.connector_ids[0]) not in evse.cfg.connector_ids:
                return Reply({"status": "Rejected"})
            targets = [evse]
        else:
            targets = list(self.sim.evses.values())

        async def send() -> None:
            if what == "BootNotification":
                self.sim.trigger_boot()
            elif what == "Heartbeat":
                self.sim.send_triggered("Heartbeat", {})
            elif what == "StatusNotification":
                for e in targets:
                    self.send_status(e, triggered=True)
            elif what == "MeterValues":
                for e in targets:
                    self.sim.send_triggered("MeterValues", {"evseId": e.id, "meterValue": [
                        self.meter_value(e, "Trigger", self.sim.measurands)]})
            elif what == "TransactionEvent":
                for e in targets:
                    if e.tx is not None:
                        self._tx_event(e, e.tx, "Updated", "Trigger",
                                       meter=self.meter_value(e, "Trigger", self.sim.measurands))

        if what not in ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "TransactionEvent"):
            return Reply({"status": "NotImplemented"})
        if what == "BootNotification" and self.sim.registration == "Accepted":
            return Reply({"status": "Rejected"})   # F06.FR.17: no BootNotification once Accepted
        if what == "TransactionEvent" and not any(e.tx is not None for e in targets):
            return Reply({"status": "Rejected"})
        return Reply({"status": "Accepted"}, None if self.sim.has("trigger_ignored") else send)

    def _pick_evse(self, evse_id: int | None) -> Evse | None:
        if evse_id is not None:
            evse = self.sim.evses.get(evse_id)
            return evse if evse is not None and evse.tx is None and not evse.inoperative else None
        free = [e for e in self.sim.evses.values() if e.tx is None and not e.inoperative]
        free.sort(key=lambda e: not e.plugged)     # prefer the EVSE where a truck is waiting
        return free[0] if free else None

    async def _request_start(self, p: dict[str, Any]) -> Reply:
        evse = self._pick_evse(p.get("evseId"))
        if evse is None or self.sim.registration != "Accepted":
            return Reply({"status": "Rejected"})
        token = p["idToken"]
        profile = p.get("chargingProfile")
        if profile is not None:
            verdict, _ = self.sim.smart.check(evse.id, profile, from_remote_start=True)
            if verdict[0] != "Accepted":           # K05.FR.02: only a TxProfile (and no transactionId yet)
                return Reply({"status": "Rejected", "statusInfo": self._info(verdict)})
        auth = Authorization(token["idToken"], token["type"], self.sim.now(), p["remoteStartId"], profile)

        async def start() -> None:
            if self.sim.authorize_remote_start:
                resp = await self.sim.enqueue("Authorize", {"idToken": {"idToken": auth.id_token, "type": auth.token_type}})
                if ((resp or {}).get("idTokenInfo") or {}).get("status") != "Accepted":
                    return
                auth.at = self.sim.now()
            self.authorize(evse, auth, "RemoteStart")

        return Reply({"status": "Accepted"}, None if self.sim.has("remote_start_ignored") else start)

    async def _request_stop(self, p: dict[str, Any]) -> Reply:
        for evse in self.sim.evses.values():
            if evse.tx is not None and evse.tx.tx_id == p["transactionId"]:
                async def stop(evse: Evse = evse) -> None:
                    if evse.tx is not None:
                        self.end_tx(evse, "RemoteStop", "Remote", "EVConnected")
                return Reply({"status": "Accepted"}, None if self.sim.has("remote_stop_ignored") else stop)
        return Reply({"status": "Rejected"})

    async def _change_availability(self, p: dict[str, Any]) -> Reply:
        spec = p.get("evse")
        if spec is not None and spec["id"] not in self.sim.evses and spec["id"] != 0:
            return Reply({"status": "Rejected"})
        targets = [self.sim.evses[spec["id"]]] if spec and spec["id"] else list(self.sim.evses.values())
        inoperative = p["operationalStatus"] == "Inoperative"
        if self.sim.has("change_availability_ignored"):
            return Reply({"status": "Accepted"})   # the bug: acknowledged, nothing changes
        status, changed = "Accepted", []
        for e in targets:
            if e.tx is not None and inoperative:
                e.inoperative_scheduled, status = True, "Scheduled"
            elif e.inoperative != inoperative:
                e.inoperative = inoperative
                e.inoperative_scheduled = None
                changed.append(e)

        async def report() -> None:
            for e in changed:
                self.send_status(e)
        return Reply({"status": status}, report if changed else None)

    async def _unlock(self, p: dict[str, Any]) -> Reply:
        evse = self.sim.evses.get(p["evseId"])
        if self.sim.has("unlock_always_unlocked"):
            return Reply({"status": "Unlocked"})   # the bug: answers without looking at the connector
        if evse is None or p["connectorId"] not in evse.cfg.connector_ids:
            return Reply({"status": "UnknownConnector"})
        return Reply({"status": "OngoingAuthorizedTransaction" if evse.tx is not None else "Unlocked"})

    async def _tx_status(self, p: dict[str, Any]) -> Reply:
        out: dict[str, Any] = {"messagesInQueue": self.sim.messages_in_queue}
        if "transactionId" in p:
            out["ongoingIndicator"] = any(e.tx is not None and e.tx.tx_id == p["transactionId"]
                                          for e in self.sim.evses.values())
        return Reply(out)

    # ---- smart charging (K01, K05, K08, K09, K10) --------------------------------------

    @staticmethod
    def _info(verdict: tuple[str, str, str]) -> dict[str, Any]:
        return {"reasonCode": verdict[1][:20], "additionalInfo": verdict[2][:512]}

    async def _set_charging_profile(self, p: dict[str, Any]) -> Reply:
        verdict = self.sim.smart.set_profile(p["evseId"], p["chargingProfile"])
        if verdict[0] == "Accepted":
            return Reply({"status": "Accepted"})
        return Reply({"status": "Rejected", "statusInfo": self._info(verdict)})

    async def _clear_charging_profile(self, p: dict[str, Any]) -> Reply:
        crit = p.get("chargingProfileCriteria") or {}
        hit = self.sim.smart.clear(p.get("chargingProfileId"), crit.get("evseId"), crit.get("chargingProfilePurpose"),
                                   crit.get("stackLevel"))
        return Reply({"status": "Accepted" if hit else "Unknown"})

    async def _get_charging_profiles(self, p: dict[str, Any]) -> Reply:
        crit = p["chargingProfile"]
        found = self.sim.smart.report(p.get("evseId"), crit.get("chargingProfilePurpose"), crit.get("stackLevel"),
                                      crit.get("chargingProfileId"), crit.get("chargingLimitSource"))
        if not found:
            return Reply({"status": "NoProfiles"})

        async def report() -> None:               # K09.FR.01: one ReportChargingProfiles per EVSE, tbc on all but the last
            items = sorted(found.items())
            for n, (evse_id, profiles) in enumerate(items):
                msg: dict[str, Any] = {"requestId": p["requestId"], "chargingLimitSource": "CSO", "evseId": evse_id,
                                       "chargingProfile": profiles}
                if n + 1 < len(items):
                    msg["tbc"] = True
                self.sim.enqueue("ReportChargingProfiles", msg)
        return Reply({"status": "Accepted"}, report)

    async def _get_composite_schedule(self, p: dict[str, Any]) -> Reply:
        cs = self.sim.smart.composite(p["evseId"], p["duration"], p.get("chargingRateUnit"))
        if cs is None:                             # an unknown EVSE (K08.FR.05, OCTT TC_K_47_CS)
            return Reply({"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}})
        return Reply(cs.to_response("2.0.1"))

    async def _clear_cache(self, p: dict[str, Any]) -> Reply:
        return Reply({"status": "Rejected" if self.sim.has("clear_cache_rejected") else "Accepted"})

    async def _data_transfer(self, p: dict[str, Any]) -> Reply:
        if self.sim.has("data_transfer_accepts_unknown_vendor"):
            return Reply({"status": "Accepted"})      # the bug: any vendorId is "understood"
        return Reply({"status": "UnknownVendorId"})   # P01.FR.06: no vendor extensions here
