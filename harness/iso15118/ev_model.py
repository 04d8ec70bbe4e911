"""The simulated vehicle behind the harness's EVCC: battery, limits, targets, and how the
state of charge moves while the charger delivers current.

Presets: `EvModel.car()` (CCS passenger car, 400 V class; AC on-board charger 32 A × 3 phases,
as every preset by default: ac_max_current / ac_min_current / ac_phases / ac_max_voltage), `EvModel.truck()` (CCS truck,
800 V class, 500 A) and `EvModel.mcs_truck()` (Megawatt Charging System levels: up to
1250 V / 3000 A / 3.75 MW). All electrical values are SI units (V, A, W, Wh, s).
The battery voltage is a simple open-circuit-voltage line between `min_voltage` (SoC 0)
and ~95 % of `max_voltage` (SoC 100): good enough for PreCharge targets and plausible
CurrentDemand requests, not a cell model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


class EvModelError(ValueError):
    """Inconsistent vehicle parameters."""


@dataclass
class EvModel:
    capacity_wh: float = 80_000.0          # usable battery energy
    soc: float = 30.0                      # present state of charge, %
    target_soc: float = 80.0
    bulk_soc: float = 80.0
    full_soc: float = 100.0
    min_soc: float = 20.0                  # -20 dynamic mode MinimumSOC
    max_voltage: float = 500.0             # EVMaximumVoltage(Limit)
    min_voltage: float = 200.0
    max_current: float = 200.0
    min_current: float = 1.0
    max_power: float = 100_000.0
    min_power: float = 0.0
    departure_s: int = 7200                # seconds from now until the driver wants to leave
    evcc_id: bytes = bytes.fromhex("020000000e01")   # the EVCC's MAC (-2 / DIN EVCCID)
    evcc_id_20: str = "WMIHARNESS000000001"          # -20 EVCCID (a string, e.g. the VIN)
    precharge_current: float = 2.0         # A requested during PreCharge
    ready: bool = True
    error_code: str = "NO_ERROR"
    energy_delivered_wh: float = 0.0
    present_voltage_override: float | None = None    # tests: pin the measured battery voltage
    # AC (ISO 15118-2 AC_EVChargeParameter): the on-board charger's limits, per phase
    ac_max_current: float = 32.0           # EVMaxCurrent, A per phase
    ac_min_current: float = 6.0            # EVMinCurrent (IEC 61851-1: 6 A is the lowest PWM current)
    ac_phases: int = 3                     # phases the on-board charger uses
    ac_max_voltage: float = 400.0          # EVMaxVoltage (line-to-line for three phases)
    _last_step: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    # -- presets ----------------------------------------------------------------------------
    @classmethod
    def car(cls, **kw) -> "EvModel":
        return cls(**{**dict(capacity_wh=60_000, max_voltage=450, min_voltage=250, max_current=200,
                             max_power=80_000), **kw})

    @classmethod
    def truck(cls, **kw) -> "EvModel":
        return cls(**{**dict(capacity_wh=540_000, max_voltage=920, min_voltage=550, max_current=500,
                             max_power=350_000), **kw})

    @classmethod
    def mcs_truck(cls, **kw) -> "EvModel":
        return cls(**{**dict(capacity_wh=1_000_000, max_voltage=1250, min_voltage=800, max_current=3000,
                             min_current=10, max_power=3_750_000, min_power=10_000), **kw})

    def validate(self) -> None:
        if not 0 <= self.soc <= 100 or not 0 <= self.target_soc <= 100:
            raise EvModelError("soc and target_soc are percentages (0..100)")
        if self.capacity_wh <= 0:
            raise EvModelError("capacity_wh must be positive")
        if not 0 < self.min_voltage < self.max_voltage:
            raise EvModelError("need 0 < min_voltage < max_voltage")
        if self.max_voltage > 1500 or self.max_current > 3000 or self.max_power > 3_750_000:
            raise EvModelError("beyond MCS levels (1500 V DC system, 3000 A, 3.75 MW)")
        if self.max_current <= 0 or self.max_power <= 0:
            raise EvModelError("max_current and max_power must be positive")
        if len(self.evcc_id) > 8:
            raise EvModelError("the -2/DIN EVCCID is at most 8 bytes")
        if self.ac_phases not in (1, 3):
            raise EvModelError(f"ac_phases is 1 or 3, not {self.ac_phases}")
        if not 0 <= self.ac_min_current <= self.ac_max_current:
            raise EvModelError("need 0 <= ac_min_current <= ac_max_current")

    # -- derived values ---------------------------------------------------------------------
    @property
    def battery_voltage(self) -> float:
        """Open-circuit voltage at the present SoC."""
        if self.present_voltage_override is not None:
            return self.present_voltage_override
        top = 0.95 * self.max_voltage
        return round(self.min_voltage + (top - self.min_voltage) * self.soc / 100.0, 1)

    @property
    def energy_request_wh(self) -> float:
        """Energy until target_soc (never negative)."""
        return max(0.0, (self.target_soc - self.soc) / 100.0 * self.capacity_wh)

    @property
    def energy_to_full_wh(self) -> float:
        return max(0.0, (self.full_soc - self.soc) / 100.0 * self.capacity_wh)

    @property
    def energy_min_wh(self) -> float:
        return max(0.0, (self.min_soc - self.soc) / 100.0 * self.capacity_wh)

    @property
    def charging_complete(self) -> bool:
        return self.soc >= self.target_soc

    @property
    def bulk_complete(self) -> bool:
        return self.soc >= self.bulk_soc

    def target_voltage(self) -> float:
        """What the EV asks for during charging: a bit above the battery, below its maximum."""
        return min(self.max_voltage, round(self.battery_voltage + 10.0, 1))

    def target_current(self, evse_max_current: float | None = None, evse_max_power: float | None = None) -> float:
        """The current the EV asks for, within its own and the charger's limits."""
        current = self.max_current
        voltage = max(self.target_voltage(), 1.0)
        current = min(current, self.max_power / voltage)
        if evse_max_current is not None:
            current = min(current, evse_max_current)
        if evse_max_power is not None:
            current = min(current, evse_max_power / voltage)
        if self.charging_complete:
            return 0.0
        return round(max(0.0, current), 1)

    def ac_current(self, evse_max_current: float | None = None) -> float:
        """The AC current per phase the on-board charger draws: its own and the EVSE's limit
        (the EVSE's also arrives as the PWM duty cycle; in -2 ChargingStatusRes as EVSEMaxCurrent)."""
        if self.charging_complete:
            return 0.0
        current = self.ac_max_current if evse_max_current is None else min(self.ac_max_current, evse_max_current)
        return max(0.0, current)

    def ac_power(self, current_a: float, phase_voltage: float = 230.0, phases: int | None = None) -> float:
        """W drawn at `current_a` per phase (phase-to-neutral voltage × phases)."""
        return current_a * phase_voltage * (phases or self.ac_phases)

    def remaining_time_s(self, power_w: float | None = None, soc: float | None = None) -> int:
        power = power_w or self.max_power
        wh = max(0.0, ((soc if soc is not None else self.target_soc) - self.soc) / 100.0 * self.capacity_wh)
        return int(wh / power * 3600) if power > 0 else 0

    # -- simulation -------------------------------------------------------------------------
    def step(self, current_a: float, voltage_v: float, dt_s: float | None = None) -> None:
        """Integrate what the charger delivered since the last step (or over dt_s)."""
        now = time.monotonic()
        if dt_s is None:
            dt_s = now - self._last_step if self._last_step else 0.0
        self._last_step = now
        dt_s = max(0.0, min(dt_s, 60.0))
        wh = max(0.0, current_a) * max(0.0, voltage_v) * dt_s / 3600.0
        self.energy_delivered_wh += wh
        self.soc = min(100.0, self.soc + wh / self.capacity_wh * 100.0)
