"""A DC electric vehicle as the charger sees it: battery, SoC, target, power acceptance.

Good enough for meter values that look real (energy rises, SoC rises, power tapers near
full) and for depot load tests; not a battery model. Time is whatever the caller
integrates over: the EVSE passes simulated hours, so tests can run the clock fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TAPER_START_SOC = 80.0      # CC/CV knee: above this the pack takes less and less power
TAPER_FLOOR = 0.1           # fraction of max power still accepted just below 100 %


@dataclass
class EvModel:
    capacity_kwh: float = 540.0
    soc_percent: float = 20.0
    target_soc_percent: float = 80.0
    max_power_kw: float = 350.0
    departure_s: float = 8 * 3600.0
    nominal_voltage_v: float = 800.0        # 800 V class e-truck pack

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "EvModel":
        params = dict(params or {})
        known = {k: float(params.pop(k)) for k in list(params) if k in cls.__dataclass_fields__}
        if params:
            raise ValueError(f"unknown EV parameter(s) {sorted(params)}; known: {sorted(cls.__dataclass_fields__)}")
        ev = cls(**known)
        if ev.capacity_kwh <= 0 or not 0 <= ev.soc_percent <= 100 or not 0 <= ev.target_soc_percent <= 100:
            raise ValueError("EV needs capacity_kwh > 0 and soc_percent/target_soc_percent within 0..100")
        return ev

    @property
    def full(self) -> bool:
        return self.soc_percent >= self.target_soc_percent - 1e-9

    def voltage_v(self) -> float:
        # Pack voltage rises with SoC (roughly 90 %..105 % of nominal over the range).
        return self.nominal_voltage_v * (0.9 + 0.15 * self.soc_percent / 100.0)

    def accepted_power_w(self) -> float:
        """What the EV asks for right now, before any EVSE or grid limit."""
        if self.full:
            return 0.0
        p = self.max_power_kw * 1000.0
        if self.soc_percent > TAPER_START_SOC:
            span = 100.0 - TAPER_START_SOC
            frac = 1.0 - (1.0 - TAPER_FLOOR) * (self.soc_percent - TAPER_START_SOC) / span
            p *= max(TAPER_FLOOR, frac)
        return p

    def charge(self, power_w: float, hours: float) -> float:
        """Take `power_w` for `hours`; returns the energy actually stored in Wh (stops at target)."""
        if power_w <= 0 or hours <= 0:
            return 0.0
        room_wh = max(0.0, (self.target_soc_percent - self.soc_percent) / 100.0 * self.capacity_kwh * 1000.0)
        wh = min(power_w * hours, room_wh)
        self.soc_percent += wh / (self.capacity_kwh * 1000.0) * 100.0
        return wh

    def snapshot(self) -> dict[str, float]:
        return {"capacity_kwh": self.capacity_kwh, "soc_percent": round(self.soc_percent, 2),
                "target_soc_percent": self.target_soc_percent, "max_power_kw": self.max_power_kw,
                "departure_s": self.departure_s}
