"""The built-in DUTs: the reference simulators, used when no --dut is given."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .profile import DutProfile, profile_from_dict

if TYPE_CHECKING:
    from ..pki import PkiPaths

# Shared PIXIT: the tokens and ids the simulators know, so the same cases run on both.
_PIXIT = {
    "valid_id_token": "TRUCK-0001",
    "valid_id_token_2": "TRUCK-0002",
    "invalid_id_token": "UNKNOWN-9999",
    "blocked_id_token": "BLOCKED-01",
    "id_token_type": "ISO14443",
    "evse_id": 1,
    "connector_id": 1,
    "connector_type": "cCCS2",     # EVSE 1's connector (2.0.1 connectorType; MCS has no enum value in 2.0.1)
    "mcs_evse_id": 2,
    "heartbeat_interval": 2,
    "meter_interval": 1,
}

STATION = {
    "name": "Reference charging-station simulator",
    "kind": "charging_station",
    "adapter": "sim",
    "ocpp_versions": ["2.0.1", "1.6"],
    "security_profile": 1,
    "station_id": "CH-SIM-001",
    "credentials": {"password": "sim-Station-Pa55word-0001"},
    "identity": {"vendor": "ChargerHarness", "model": "RefSim-DC400"},
    "pics": {"dc_charging": True, "mcs": True, "remote_start": True, "trigger_message": True, "reset": True, "smart_charging": True,
             "reservation": True, "local_auth_list": True, "firmware": True, "display_messages": True, "tariff_cost": True,
             "monitoring": True, "certificates": True, "iso15118": True},
    "pixit": _PIXIT,
    "sim": {"meter_interval_s": 1.0, "reconnect_backoff_s": 0.2},
}

CSMS = {
    "name": "Reference CSMS simulator",
    "kind": "csms",
    "adapter": "sim",
    "ocpp_versions": ["2.0.1", "1.6"],
    "security_profile": 1,
    "station_id": "CH-HARNESS-001",
    "credentials": {"password": "sim-Csms-Pa55word-0001"},
    "identity": {"vendor": "ChargerHarness", "model": "RefSim-CSMS"},
    "pics": {"remote_start": True, "trigger_message": True, "reset": True},
    "pixit": _PIXIT,
    "sim": {"heartbeat_interval_s": 60},
}


EV = {
    "name": "Reference EV simulator (ISO 15118 EVCC)",
    "kind": "ev",
    "adapter": "sim",
    "ocpp_versions": ["2.0.1", "1.6"],
    "station_id": "EV-SIM-001",
    "identity": {"vendor": "ChargerHarness", "model": "RefSim-Truck-EVCC"},
    "pics": {"iso15118_2": True, "iso15118_20": True, "din70121": True, "dc_charging": True},
    "pixit": {"ev_preset": "truck"},
    "sim": {},
}


def builtin_profiles() -> list[DutProfile]:
    return [profile_from_dict(STATION), profile_from_dict(CSMS), profile_from_dict(EV)]


# ---- the security-profile cases (TLS) against the built-in simulators ------------------------

_pkis: dict[str, "PkiPaths"] = {}


def _process_pki(station_id: str) -> "PkiPaths":
    """One test PKI per station identity and process, made on first use in a temp folder."""
    import atexit
    import shutil
    import tempfile

    from ..pki import make_test_pki

    if station_id not in _pkis:
        folder = Path(tempfile.mkdtemp(prefix="charger-harness-pki-"))
        atexit.register(shutil.rmtree, folder, True)
        _pkis[station_id] = make_test_pki(folder / "pki", station_id)
    return _pkis[station_id]


def is_builtin(profile: DutProfile) -> bool:
    """The embedded simulators (not a standalone one behind a control URL, not a real DUT)."""
    return profile.adapter == "sim" and not profile.endpoint and "control_url" not in profile.adapter_options


def at_security_profile(profile: DutProfile, security_profile: int) -> DutProfile:
    """The built-in DUT switched to `security_profile`: both sides get the process's test PKI
    (the harness its server/client certificate, the simulator the other side's)."""
    if profile.security_profile == security_profile:
        return profile
    pki = _process_pki(profile.station_id)
    sim_side = ({"tls_ca": pki.ca_cert, "tls_cert": pki.station_cert, "tls_key": pki.station_key}
                if profile.kind == "charging_station" else
                {"tls_ca": pki.ca_cert, "tls_cert": pki.csms_cert, "tls_key": pki.csms_key, "tls_crl": pki.crl})
    harness_side = ({"ca": pki.ca_cert, "cert": pki.csms_cert, "key": pki.csms_key, "crl": pki.crl}
                    if profile.kind == "charging_station" else
                    {"ca": pki.ca_cert, "cert": pki.station_cert, "key": pki.station_key})
    options = {**profile.adapter_options, **{k: str(v) for k, v in sim_side.items()}}
    return replace(profile, security_profile=security_profile, tls=harness_side, adapter_options=options)


_v2g_pkis: dict[str, Any] = {}


def process_v2g_pki(flavour: str = "iso2") -> Any:
    """The ISO 15118 PKI (V2G/MO/OEM chains, eMAID) the built-in station's SECC trusts and the
    harness EV presents; one per flavour and process, made on first use in a temp folder."""
    import atexit
    import shutil
    import tempfile

    from ..pki.v2g import make_v2g_pki

    if flavour not in _v2g_pkis:
        folder = Path(tempfile.mkdtemp(prefix="charger-harness-v2g-"))
        atexit.register(shutil.rmtree, folder, True)
        _v2g_pkis[flavour] = make_v2g_pki(folder / flavour, flavour)
    return _v2g_pkis[flavour]


def with_v2g(profile: DutProfile) -> DutProfile:
    """The built-in station with an SECC that trusts the process's V2G PKI (`v2g_pki` option)."""
    if profile.kind != "charging_station" or "v2g_pki" in profile.adapter_options:
        return profile
    return replace(profile, adapter_options={**profile.adapter_options, "v2g_pki": str(process_v2g_pki().dir)})
