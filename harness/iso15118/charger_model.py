"""The power electronics behind an emulated SECC: EVSE limits, isolation check, precharge, ramps.

The model is stepped by the V2G messages themselves (one step per CableCheckReq, PreChargeReq,
CurrentDemandReq / DC_ChargeLoopReq, WeldingDetectionReq), not by wall-clock time, so that a
session is deterministic however fast or slow the EV under test answers. Each step moves the
present voltage / current towards the EV's target by at most `voltage_step` / `current_step`,
clamped to the EVSE limits (voltage, current, power = min(rated power, external power limit)).

Presets:
    ChargerModel.ccs2_dc(150)   CCS2 DC charger, 150–400 kW, 150–1000 V, up to 500 A
    ChargerModel.mcs()          Megawatt Charging System: up to 1250 V / 3000 A / 3.75 MW
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ChargerModelError(ValueError):
    """A limit or setting outside what the model (or the physics) allows."""


@dataclass
class ChargerModel:
    max_voltage: float = 1000.0          # V
    min_voltage: float = 150.0           # V
    max_current: float = 500.0           # A
    min_current: float = 0.0             # A
    max_power: float = 150_000.0         # W
    voltage_step: float = 250.0          # V per stepped message
    current_step: float = 200.0          # A per stepped message
    cable_check_steps: int = 1           # CableCheckRes "Ongoing" answers before "Finished"
    isolation: str = "Valid"             # Invalid / Valid / Warning / Fault / No_IMD (ISO 15118-2 isolationLevelType)
    precharge_tolerance: float = 20.0    # V: precharge is done when |present - target| <= this
    current_regulation_tolerance: float = 5.0   # A
    peak_current_ripple: float = 2.0     # A
    energy_to_be_delivered: float | None = None  # Wh, optional in -2 ChargeParameterDiscoveryRes
    connector: str = "CCS2"              # "CCS2" or "MCS" (informational, -20 ServiceDetail)
    power_limit: float | None = None     # W: external limit (OCPP smart charging); None = rated power
    present_voltage: float = 0.0
    present_current: float = 0.0
    energy_wh: float = 0.0
    _cable_checks: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        for name in ("max_voltage", "max_current", "max_power", "voltage_step", "current_step"):
            if getattr(self, name) <= 0:
                raise ChargerModelError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.min_voltage < self.max_voltage:
            raise ChargerModelError(f"min_voltage {self.min_voltage} must be below max_voltage {self.max_voltage}")
        if not 0 <= self.min_current <= self.max_current:
            raise ChargerModelError(f"min_current {self.min_current} must be within 0..max_current")

    # -- presets ----------------------------------------------------------------------------
    @classmethod
    def ccs2_dc(cls, power_kw: float = 150.0, **overrides: object) -> "ChargerModel":
        """A CCS2 DC charger of 150–400 kW (1000 V; 500 A, or 400 A at 150 kW)."""
        if not 150 <= power_kw <= 400:
            raise ChargerModelError(f"a CCS2 DC charger here is 150–400 kW, not {power_kw}")
        current = 400.0 if power_kw <= 150 else 500.0
        values: dict = {"max_power": power_kw * 1000, "max_current": current, "connector": "CCS2"}
        values.update(overrides)
        return cls(**values)

    @classmethod
    def mcs(cls, power_kw: float = 3750.0, **overrides: object) -> "ChargerModel":
        """A Megawatt Charging System dispenser: up to 1250 V, 3000 A, 3.75 MW."""
        if not 0 < power_kw <= 3750:
            raise ChargerModelError(f"MCS is specified up to 3.75 MW, not {power_kw} kW")
        values: dict = {"max_power": power_kw * 1000, "max_voltage": 1250.0, "max_current": 3000.0,
                        "min_voltage": 200.0, "voltage_step": 400.0, "current_step": 1000.0,
                        "connector": "MCS"}
        values.update(overrides)
        return cls(**values)

    # -- limits -----------------------------------------------------------------------------
    @property
    def available_power(self) -> float:
        """The power limit in force: rated power, or less when the CSMS limits it."""
        if self.power_limit is None:
            return self.max_power
        return max(0.0, min(self.max_power, self.power_limit))

    def set_power_limit(self, watts: float | None) -> None:
        if watts is not None and watts < 0:
            raise ChargerModelError(f"power limit must not be negative, got {watts}")
        self.power_limit = watts

    # -- phases -----------------------------------------------------------------------------
    def reset(self) -> None:
        self.present_voltage = self.present_current = 0.0
        self._cable_checks = 0

    def cable_check(self) -> tuple[bool, str]:
        """One CableCheckReq: (finished, isolation status). The output is off during the check."""
        self.present_current = 0.0
        self._cable_checks += 1
        return self._cable_checks > self.cable_check_steps, self.isolation

    @property
    def isolation_ok(self) -> bool:
        return self.isolation in ("Valid", "Warning")

    def precharge(self, target_voltage: float) -> float:
        """One PreChargeReq: ramp the output voltage towards the EV's battery voltage (current ≤ 2 A)."""
        target = min(max(target_voltage, 0.0), self.max_voltage)
        self.present_voltage = _towards(self.present_voltage, target, self.voltage_step)
        self.present_current = 0.0
        return self.present_voltage

    def precharge_done(self, target_voltage: float) -> bool:
        return abs(self.present_voltage - target_voltage) <= self.precharge_tolerance

    def current_demand(self, target_voltage: float, target_current: float,
                       ev_max_power: float | None = None, seconds: float = 0.0) -> dict[str, object]:
        """One CurrentDemandReq / DC_ChargeLoopReq: ramp towards the targets within the limits.

        Returns present voltage/current and which EVSE limits were hit (the *LimitAchieved flags)."""
        voltage_limited = target_voltage > self.max_voltage
        voltage = min(max(target_voltage, 0.0), self.max_voltage)
        self.present_voltage = _towards(self.present_voltage, voltage, self.voltage_step)
        power = self.available_power if ev_max_power is None else min(self.available_power, ev_max_power)
        current_cap = self.max_current
        power_cap = power / self.present_voltage if self.present_voltage > 1 else current_cap
        current = min(max(target_current, 0.0), current_cap, power_cap)
        self.present_current = _towards(self.present_current, current, self.current_step)
        self.energy_wh += self.present_voltage * self.present_current * seconds / 3600
        return {"voltage": self.present_voltage, "current": self.present_current,
                "voltage_limit": voltage_limited,
                "current_limit": target_current > current_cap,
                "power_limit": target_current > power_cap and power_cap < current_cap}

    def stop_output(self) -> None:
        self.present_current = 0.0

    def welding_detection(self) -> float:
        """One WeldingDetectionReq: the output is off and the DC link discharges."""
        self.present_current = 0.0
        self.present_voltage = _towards(self.present_voltage, 0.0, self.voltage_step)
        return self.present_voltage


def _towards(value: float, target: float, step: float) -> float:
    if abs(target - value) <= step:
        return target
    return value + step if target > value else value - step
