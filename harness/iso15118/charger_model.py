"""The power electronics behind an emulated SECC: EVSE limits, isolation check, precharge, ramps.

The model is stepped by the V2G messages themselves (one step per CableCheckReq, PreChargeReq,
CurrentDemandReq / DC_ChargeLoopReq, WeldingDetectionReq), not by wall-clock time, so that a
session is deterministic however fast or slow the EV under test answers. Each step moves the
present voltage / current towards the EV's target by at most `voltage_step` / `current_step`,
clamped to the EVSE limits (voltage, current, power = min(rated power, external power limit)).

Presets:
    ChargerModel.ccs2_dc(150)   CCS2 DC charger, 150–400 kW, 150–1000 V, up to 500 A
    ChargerModel.mcs()          Megawatt Charging System: up to 1250 V / 3000 A / 3.75 MW
    ChargerModel.ac(22)         AC wallbox (ISO 15118-2 AC): 22 kW, 32 A × 3 phases at 230 V

An AC charger (`is_ac=True`, made by `ChargerModel.ac`) has no power electronics to ramp: it
switches the mains through and tells the EV how much current per phase it may draw (EVSEMaxCurrent); the EV's on-board charger
decides what it takes. `ac_step` books the energy of one ChargingStatus cycle.
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
    is_ac: bool = False                  # an AC charger (ISO 15118-2 AC energy transfer modes)
    phases: int = 3                      # AC: phases wired to the connector (1 or 3)
    nominal_voltage: float = 230.0       # AC: EVSENominalVoltage, phase-to-neutral V
    rcd: bool = False                    # AC: the residual current device has tripped (AC_EVSEStatus RCD)
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
        if self.phases not in (1, 3):
            raise ChargerModelError(f"phases is 1 or 3, not {self.phases}")

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

    @classmethod
    def ac(cls, power_kw: float = 22.0, max_current: float | None = None, phases: int = 3,
           **overrides: object) -> "ChargerModel":
        """An AC charger (IEC 61851-1 mode 3): up to 43.5 kW (63 A × 3 phases at 230 V).
        max_current defaults to what power_kw allows per phase (22 kW, 3 phases: 32 A)."""
        if phases not in (1, 3):
            raise ChargerModelError(f"an AC charger has 1 or 3 phases, not {phases}")
        if not 0 < power_kw <= 43.5:
            raise ChargerModelError(f"an AC charger here is up to 43.5 kW, not {power_kw}")
        nominal = float(overrides.pop("nominal_voltage", 230.0))    # type: ignore[arg-type]
        current = float(max_current) if max_current is not None else \
            min(63.0, float(int(power_kw * 1000 / (nominal * phases) + 0.5)))
        if not 0 < current <= 63:
            raise ChargerModelError(f"AC max_current is 1..63 A per phase, not {current}")
        values: dict = {"is_ac": True, "phases": phases, "nominal_voltage": nominal, "max_current": current,
                        "min_current": 6.0 if current >= 6 else 0.0,
                        # "22 kW" is 32 A × 3 × 230 V = 22.08 kW: the current rating is the exact one
                        "max_power": current * nominal * phases if max_current is None
                        else min(power_kw * 1000, current * nominal * phases),
                        "max_voltage": 400.0 if phases == 3 else 230.0, "min_voltage": 0.0,
                        "connector": "Type2"}
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


    # -- AC ---------------------------------------------------------------------------------
    @property
    def ac_max_current(self) -> float:
        """EVSEMaxCurrent per phase in force: the rating, or less when the CSMS limits the power."""
        if self.power_limit is None:     # the rating in kW is rounded; the current rating is exact
            return self.max_current
        return round(min(self.max_current, self.available_power / (self.nominal_voltage * self.phases)), 1)

    def ac_step(self, ev_max_current: float | None, phases: int | None = None, seconds: float = 0.0) -> float:
        """One ChargingStatus cycle: the EV draws what both allow; returns the current per phase."""
        current = self.ac_max_current if ev_max_current is None else min(self.ac_max_current, ev_max_current)
        self.present_current = max(0.0, current)
        self.present_voltage = self.nominal_voltage
        used = min(self.phases, phases or self.phases)
        self.energy_wh += self.present_current * self.nominal_voltage * used * seconds / 3600
        return self.present_current


def _towards(value: float, target: float, step: float) -> float:
    if abs(target - value) <= step:
        return target
    return value + step if target > value else value - step
