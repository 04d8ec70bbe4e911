"""What the reference simulators promise to the rest of the harness.

Both simulators are DUT stand-ins: the DUT adapter `sim` creates one per test case,
drives its out-of-band actions (`perform`) and stops it. A simulator built with a
fault name behaves like a real device that gets exactly one thing wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal, Protocol


class UnknownSimAction(ValueError):
    """The simulator has no out-of-band action of that name."""


class UnknownFault(ValueError):
    """No fault of that name in the simulator's catalogue."""


@dataclass(frozen=True)
class Fault:
    name: str                               # kebab-free snake_case, e.g. "tx_seqno_skips"
    target: Literal["cs", "csms", "ev"]     # which simulator it breaks
    versions: tuple[str, ...]               # OCPP versions where it has an effect
    description: str                        # the one behaviour it breaks, as a vendor bug report would say it


@dataclass
class EvseConfig:
    evse_id: int = 1
    connector_ids: tuple[int, ...] = (1,)
    max_power_kw: float = 400.0             # DC rating: CCS2 150–400 kW, MCS up to 3,750 kW
    max_current_a: float = 500.0
    voltage_v: float = 800.0
    connector_type: str = "cCCS2"            # or "cMCS"... (2.0.1 connectorType is free string)


@dataclass
class EvConfig:
    capacity_kwh: float = 540.0             # e-truck pack
    soc_percent: float = 20.0
    target_soc_percent: float = 80.0
    max_power_kw: float = 350.0
    departure_s: float = 8 * 3600.0         # seconds from plug-in


@dataclass
class StationSimConfig:
    station_id: str = "CH-SIM-001"
    csms_url: str = "ws://127.0.0.1:9000/ocpp"   # base URL; the station id is appended
    versions: tuple[str, ...] = ("2.0.1",)        # offered subprotocols, preference order
    security_profile: int = 1
    password: str | None = None
    vendor: str = "ChargerHarness"
    model: str = "RefSim-DC400"
    serial: str = "SIM-0001"
    firmware: str = "1.0.0"
    evses: list[EvseConfig] = field(default_factory=lambda: [EvseConfig(1), EvseConfig(2, max_power_kw=3750.0, max_current_a=3000.0, voltage_v=1250.0, connector_type="cMCS")])
    heartbeat_interval_s: int = 300           # until the CSMS sets one
    meter_interval_s: float = 2.0             # TxUpdated / MeterValueSampleInterval
    reconnect_backoff_s: float = 0.5
    known_tokens: dict[str, str] = field(default_factory=dict)   # local auth cache, unused by default
    tls_ca: str | None = None                 # profiles 2–3: CA bundle that signs the CSMS certificate
    tls_cert: str | None = None               # profile 3: the station's client certificate and key (PEM)
    tls_key: str | None = None
    v2g_pki: str | None = None                # ISO 15118: folder of `charger-harness pki v2g` the SECC trusts / uses

    def tls_files(self) -> dict[str, str]:
        return {k: v for k, v in (("ca", self.tls_ca), ("cert", self.tls_cert), ("key", self.tls_key)) if v}


@dataclass
class CsmsSimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    path_prefix: str = "/ocpp"
    versions: tuple[str, ...] = ("2.0.1", "1.6")
    security_profile: int = 1
    passwords: dict[str, str] = field(default_factory=dict)   # station id → password; empty = accept any
    heartbeat_interval_s: int = 60
    valid_tokens: tuple[str, ...] = ("TRUCK-0001", "TRUCK-0002")
    blocked_tokens: tuple[str, ...] = ("BLOCKED-01",)
    registration: dict[str, str] = field(default_factory=dict)  # station id → Accepted/Pending/Rejected
    tls_cert: str | None = None               # profiles 2–3: the CSMS server certificate and key (PEM)
    tls_key: str | None = None
    tls_ca: str | None = None                 # profile 3: CA bundle for station client certificates
    tls_crl: str | None = None                # profile 3: revoked station certificates

    def tls_files(self) -> dict[str, str]:
        return {k: v for k, v in (("cert", self.tls_cert), ("key", self.tls_key), ("ca", self.tls_ca),
                                  ("crl", self.tls_crl)) if v}


class Simulator(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def perform(self, action: str, params: dict[str, Any]) -> Any: ...


@dataclass
class Reply:
    """A handler's answer to a CSMS CALL, and what to do once the answer is on the wire."""
    payload: dict[str, Any]
    after: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True, eq=False)     # identity, not value: two keys with the same default keep their own values
class Setting:
    """A configuration value both device models expose (2.0.1 variable / 1.6 key)."""
    attr: str | None                          # StationSimulator attribute; None = constant
    kind: Literal["int", "bool", "str", "list"] = "str"
    readonly: bool = False
    const: str = ""
    choices: tuple[str, ...] = ()             # allowed members of a list
    minimum: int = 0


