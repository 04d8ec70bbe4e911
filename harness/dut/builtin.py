"""The built-in DUTs: the reference simulators, used when no --dut is given."""

from __future__ import annotations

from .profile import DutProfile, profile_from_dict

# Shared PIXIT: the tokens and ids the simulators know, so the same cases run on both.
_PIXIT = {
    "valid_id_token": "TRUCK-0001",
    "valid_id_token_2": "TRUCK-0002",
    "invalid_id_token": "UNKNOWN-9999",
    "blocked_id_token": "BLOCKED-01",
    "id_token_type": "ISO14443",
    "evse_id": 1,
    "connector_id": 1,
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
    "pics": {"dc_charging": True, "mcs": True, "remote_start": True, "trigger_message": True, "reset": True, "smart_charging": True},
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


def builtin_profiles() -> list[DutProfile]:
    return [profile_from_dict(STATION), profile_from_dict(CSMS)]
