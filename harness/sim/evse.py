"""One EVSE of the simulated station: what is plugged in, who is authorized, the running
transaction and the energy meter. Version-neutral: the 1.6 and 2.0.1 front ends turn this
state into their own messages.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

from .api import EvseConfig
from .ev import EvModel


@dataclass
class Authorization:
    """A token accepted (locally or by the CSMS) that waits for the EV to complete the start."""
    id_token: str
    token_type: str
    at: float                                # loop time it was granted (EVConnectionTimeOut)
    remote_start_id: int | None = None
    charging_profile: dict[str, Any] | None = None   # TxProfile of a remote start, installed when the tx begins


@dataclass
class Transaction:
    tx_id: str                               # 2.0.1: generated here; 1.6: the CSMS's id as text
    evse_id: int
    connector_id: int
    id_token: str | None
    token_type: str | None
    meter_start_wh: float
    started_at: float                        # loop time
    remote_start_id: int | None = None
    seq_no: int = 0                          # next 2.0.1 seqNo
    cs16_id: int | None = None               # 1.6 transactionId once StartTransaction answered
    charging_state: str = "Charging"         # 2.0.1 ChargingStateEnumType
    ended: bool = False
    stop_reason: str | None = None           # set when it ends (1.6 may end before its id is known)
    meter_stop_wh: float | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def cancel_tasks(self) -> None:
        for t in self.tasks:
            if t is not asyncio.current_task():
                t.cancel()
        self.tasks.clear()


@dataclass
class Sample:
    energy_wh: float
    power_w: float
    current_a: float
    voltage_v: float
    soc_percent: float | None


class Evse:
    def __init__(self, cfg: EvseConfig):
        self.cfg = cfg
        self.ev: EvModel | None = None
        self.plugged_connector: int | None = None
        self.energy_wh = 0.0                 # import register: survives transactions and reboots
        self.power_w = 0.0                   # what flows right now
        self.limit_w: float | None = None    # external limit (DLB, `set_limit`), None = rating
        self.limit_source: Callable[[], float | None] | None = None   # smart charging: the composite limit now
        self.tx: Transaction | None = None
        self.auth: Authorization | None = None
        self.inoperative = False             # ChangeAvailability Inoperative in force
        self.inoperative_scheduled: bool | None = None   # applied when the transaction ends
        self.finishing = False               # 1.6: transaction over, cable still in (Finishing)
        self._last: float | None = None

    @property
    def id(self) -> int:
        return self.cfg.evse_id

    @property
    def plugged(self) -> bool:
        return self.plugged_connector is not None

    @property
    def energizing(self) -> bool:
        return self.tx is not None and not self.tx.ended and self.tx.charging_state == "Charging"

    def advance(self, now: float, time_scale: float) -> None:
        """Integrate energy from the last call until `now` (loop time, scaled to simulated time)."""
        if self._last is not None and self.ev is not None and self.energizing:
            hours = (now - self._last) * time_scale / 3600.0
            self.energy_wh += self.ev.charge(self.power_w, hours)
        self._last = now
        self.power_w = self._deliverable_w() if self.energizing else 0.0

    def _deliverable_w(self) -> float:
        if self.ev is None:
            return 0.0
        volts = min(self.ev.voltage_v(), self.cfg.voltage_v)
        caps = [self.ev.accepted_power_w(), self.cfg.max_power_kw * 1000.0, self.cfg.max_current_a * volts]
        if self.limit_w is not None:
            caps.append(self.limit_w)
        if self.limit_source is not None:
            limit = self.limit_source()
            if limit is not None:
                caps.append(limit)
        return max(0.0, min(caps))

    def sample(self, now: float, time_scale: float) -> Sample:
        self.advance(now, time_scale)
        volts = min(self.ev.voltage_v(), self.cfg.voltage_v) if self.ev else 0.0
        current = self.power_w / volts if volts else 0.0
        return Sample(self.energy_wh, self.power_w, current, volts, self.ev.soc_percent if self.ev else None)

    def status201(self) -> str:
        """2.0.1 ConnectorStatusEnumType of the connector(s) of this EVSE."""
        if self.inoperative:
            return "Unavailable"
        return "Occupied" if self.plugged else "Available"

    def snapshot(self) -> dict[str, Any]:
        tx = self.tx
        return {
            "evse": self.id, "plugged": self.plugged, "connector": self.plugged_connector,
            "status": self.status201(), "energy_wh": round(self.energy_wh, 1), "power_w": round(self.power_w, 1),
            "ev": self.ev.snapshot() if self.ev else None,
            "authorized": self.auth.id_token if self.auth else None,
            "transaction": None if tx is None else {
                "transaction_id": tx.tx_id, "id_token": tx.id_token, "charging_state": tx.charging_state,
                "seq_no": tx.seq_no, "remote_start_id": tx.remote_start_id},
        }
