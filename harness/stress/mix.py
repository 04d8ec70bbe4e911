"""The message mix of a simulated fleet, and the payloads each station sends.

A mix says how often each station sends each kind of message, as an interval in seconds
drawn uniformly from a range on every send (so 2,000 stations do not fire in lock step):

    heartbeat=10-30,status=10-60,meter=10-60      (the default)
    heartbeat=boot                                (the interval the CSMS gave at boot)
    meter=5                                       (exactly every 5 s)
    status=0                                      (never)

Payloads are those of a DC e-truck charger (EVSE 1: CCS2 up to 400 kW; 2: MCS up to 3.75 MW):
StatusNotification walks a connector through a plausible cycle (2.0.1 Available ↔ Occupied;
1.6 Available → Preparing → Charging → Finishing → Available), MeterValues carries energy,
power, current, voltage and the EV's SoC. Every payload is valid against the official schema
(the connection validates it again before sending: a bug here is the harness's, not the CSMS's).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

KINDS = ("heartbeat", "status", "meter")
ACTION_OF_KIND = {"heartbeat": "Heartbeat", "status": "StatusNotification", "meter": "MeterValues"}
DEFAULT_MIX = "heartbeat=10-30,status=10-60,meter=10-60"
MAX_INTERVAL_S = 24 * 3600.0


class MixError(ValueError):
    """A --mix string that cannot be understood (the message says which part and why)."""


@dataclass(frozen=True)
class Interval:
    """Seconds between two messages of one kind at one station; lo == hi == 0 means never."""
    lo: float
    hi: float
    from_boot: bool = False          # use the heartbeat interval the CSMS returned at boot

    @property
    def enabled(self) -> bool:
        return self.from_boot or self.hi > 0

    def draw(self, rng: random.Random, boot_interval: float | None = None) -> float:
        if self.from_boot:
            return float(boot_interval) if boot_interval and boot_interval > 0 else 60.0
        return self.lo if self.lo == self.hi else rng.uniform(self.lo, self.hi)

    @property
    def mean(self) -> float:
        return (self.lo + self.hi) / 2

    def __str__(self) -> str:
        if self.from_boot:
            return "boot"
        if not self.enabled:
            return "0"
        return f"{self.lo:g}" if self.lo == self.hi else f"{self.lo:g}-{self.hi:g}"


@dataclass(frozen=True)
class Mix:
    heartbeat: Interval = Interval(10, 30)
    status: Interval = Interval(10, 60)
    meter: Interval = Interval(10, 60)

    @classmethod
    def parse(cls, text: str | None) -> "Mix":
        """Parse `heartbeat=10-30,status=60,meter=10-60`; kinds not named keep their default."""
        values: dict[str, Interval] = {}
        for part in (text or "").split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, val = part.partition("=")
            key, val = key.strip().lower(), val.strip().lower()
            if not sep or key not in KINDS:
                raise MixError(f"mix part {part!r}: expected KIND=SECONDS with KIND one of {', '.join(KINDS)}")
            values[key] = _interval(key, val)
        return cls(**values)

    def intervals(self) -> dict[str, Interval]:
        return {k: getattr(self, k) for k in KINDS}

    def rate_per_station(self, boot_interval: float = 60.0) -> dict[str, float]:
        """Mean messages per second per station for each kind (0 for a disabled kind)."""
        out = {}
        for k, iv in self.intervals().items():
            mean = boot_interval if iv.from_boot else iv.mean
            out[k] = 1.0 / mean if iv.enabled and mean > 0 else 0.0
        return out

    def __str__(self) -> str:
        return ",".join(f"{k}={iv}" for k, iv in self.intervals().items())


def _interval(key: str, val: str) -> Interval:
    if val == "boot":
        if key != "heartbeat":
            raise MixError(f"mix part {key}=boot: only heartbeat can follow the boot interval")
        return Interval(0, 0, from_boot=True)
    lo_s, dash, hi_s = val.partition("-")
    try:
        lo = float(lo_s)
        hi = float(hi_s) if dash else lo
    except ValueError:
        raise MixError(f"mix part {key}={val}: expected seconds (e.g. 30), a range (10-30), 0 (never)"
                       + (" or boot" if key == "heartbeat" else "")) from None
    if lo < 0 or hi < lo:
        raise MixError(f"mix part {key}={val}: need 0 ≤ low ≤ high")
    if hi > MAX_INTERVAL_S:
        raise MixError(f"mix part {key}={val}: more than {MAX_INTERVAL_S:g} s between messages")
    if hi > 0 and lo < 0.05:
        raise MixError(f"mix part {key}={val}: intervals below 0.05 s are a flood, not a station")
    return Interval(lo, hi)


# ---- payloads ---------------------------------------------------------------------------------

def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class EvseSpec:
    evse_id: int
    max_power_w: float
    voltage_v: float
    connector_type: str


# A depot charger: one CCS2 EVSE and one MCS EVSE, one connector each.
EVSES = (EvseSpec(1, 400_000.0, 800.0, "cCCS2"), EvseSpec(2, 3_750_000.0, 1250.0, "cMCS"))

STATUS_CYCLE = {
    "2.0.1": ("Available", "Occupied"),
    "1.6": ("Available", "Preparing", "Charging", "Finishing"),
}
CHARGING_STATES = {"Occupied", "Charging"}


@dataclass
class StationModel:
    """What one simulated station reports: connector statuses and a growing energy register."""
    station_id: str
    version: str
    rng: random.Random
    status_index: dict[int, int] = field(default_factory=dict)    # evse → position in STATUS_CYCLE
    energy_wh: dict[int, float] = field(default_factory=dict)
    soc: dict[int, float] = field(default_factory=dict)
    last_meter_t: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for e in EVSES:
            self.status_index[e.evse_id] = 0
            self.energy_wh[e.evse_id] = round(self.rng.uniform(1e5, 5e7), 1)
            self.soc[e.evse_id] = round(self.rng.uniform(10, 40), 1)

    # -- messages ------------------------------------------------------------------------

    def boot(self, serial: int) -> dict[str, Any]:
        if self.version == "1.6":
            return {"chargePointVendor": "ChargerHarness", "chargePointModel": "FleetSim-DC",
                    "chargePointSerialNumber": f"FLEET-{serial:06d}", "firmwareVersion": "1.0.0"}
        return {"reason": "PowerUp", "chargingStation": {
            "vendorName": "ChargerHarness", "model": "FleetSim-DC", "serialNumber": f"FLEET-{serial:06d}",
            "firmwareVersion": "1.0.0"}}

    def status_of(self, evse_id: int) -> str:
        cycle = STATUS_CYCLE[self.version]
        return cycle[self.status_index[evse_id] % len(cycle)]

    def status(self, evse_id: int) -> dict[str, Any]:
        """StatusNotification for the connector's current status."""
        status = self.status_of(evse_id)
        if self.version == "1.6":
            return {"connectorId": evse_id, "errorCode": "NoError", "status": status, "timestamp": utc_now()}
        return {"timestamp": utc_now(), "connectorStatus": status, "evseId": evse_id, "connectorId": 1}

    def next_status(self) -> dict[str, Any]:
        """Advance one connector (chosen at random) to its next status and report it."""
        evse_id = self.rng.choice(EVSES).evse_id
        self.status_index[evse_id] += 1
        if self.status_of(evse_id) == "Available":
            self.soc[evse_id] = round(self.rng.uniform(10, 40), 1)     # the next truck arrives
        return self.status(evse_id)

    def meter(self, now: float) -> dict[str, Any]:
        """MeterValues of one EVSE (a charging one if any): DC truck measurands."""
        charging = [e for e in EVSES if self.status_of(e.evse_id) in CHARGING_STATES]
        spec = self.rng.choice(charging or EVSES)
        e = spec.evse_id
        power = self.rng.uniform(0.35, 0.95) * spec.max_power_w if charging else 0.0
        dt = min(now - self.last_meter_t.get(e, now), 3600.0)
        self.last_meter_t[e] = now
        self.energy_wh[e] = round(self.energy_wh[e] + power * dt / 3600.0, 1)
        if power:
            self.soc[e] = min(100.0, round(self.soc[e] + self.rng.uniform(0.1, 1.5), 1))
        current = power / spec.voltage_v
        readings = (
            ("Energy.Active.Import.Register", self.energy_wh[e], "Wh", None),
            ("Power.Active.Import", round(power, 1), "W", None),
            ("Current.Import", round(current, 1), "A", None),
            ("Voltage", spec.voltage_v, "V", None),
            ("SoC", self.soc[e], "Percent", "EV"),
        )
        ts = utc_now()
        if self.version == "1.6":
            sampled = []
            for measurand, value, unit, location in readings:
                sv = {"value": f"{value:.1f}", "context": "Sample.Periodic",
                      "measurand": measurand, "unit": unit}
                if location:
                    sv["location"] = location
                sampled.append(sv)
            return {"connectorId": e, "meterValue": [{"timestamp": ts, "sampledValue": sampled}]}
        sampled = []
        for measurand, value, unit, location in readings:
            sv = {"value": value, "context": "Sample.Periodic", "measurand": measurand,
                  "unitOfMeasure": {"unit": unit}}
            if location:
                sv["location"] = location
            sampled.append(sv)
        return {"evseId": e, "meterValue": [{"timestamp": ts, "sampledValue": sampled}]}

    def heartbeat(self) -> dict[str, Any]:
        return {}
