"""DUT profiles (`fixtures/duts/*.yaml`): who the device under test is and how to reach it.

A profile carries the endpoint, identity, OCPP versions, security profile, credentials,
PICS (features the DUT claims) and PIXIT (parameters such as EVSE ids and id tokens), and
names the adapter that performs out-of-band actions. Credentials are secrets: they are
kept apart (`secrets()`) so the report layer can redact them everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KINDS = ("charging_station", "csms", "ev")
ADAPTERS = ("sim", "manual", "command", "docker")
SECRET_KEYS = ("password", "auth_key", "authorization_key", "basic_auth_password", "private_key", "token_secret")


class ProfileError(ValueError):
    """A DUT profile is missing something or has a wrong value (message names file and key)."""


@dataclass
class DutProfile:
    name: str
    kind: str                                   # charging_station | csms
    adapter: str = "sim"
    ocpp_versions: tuple[str, ...] = ("2.0.1",)
    security_profile: int = 1
    station_id: str = "CH-SIM-001"              # station id the harness uses/expects
    endpoint: str = ""                          # CSMS DUT: its base URL; station DUT: where the harness listens
    credentials: dict[str, str] = field(default_factory=dict)
    identity: dict[str, str] = field(default_factory=dict)
    pics: dict[str, bool] = field(default_factory=dict)
    pixit: dict[str, Any] = field(default_factory=dict)
    adapter_options: dict[str, Any] = field(default_factory=dict)
    tls: dict[str, Path] = field(default_factory=dict)   # ca, cert, key[, crl]: PEM paths (key *contents* never read here)
    path: Path | None = None

    @property
    def password(self) -> str | None:
        return self.credentials.get("password")

    def supports(self, feature: str) -> bool:
        return bool(self.pics.get(feature, False))

    def secrets(self) -> list[str]:
        """Every secret value in this profile, for redaction."""
        found: list[str] = []

        def walk(node: Any, key: str = "") -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(v, str(k))
            elif isinstance(node, list):
                for v in node:
                    walk(v, key)
            elif isinstance(node, str) and node and (key in SECRET_KEYS or key.endswith("password")):
                found.append(node)

        walk(self.credentials, "password")
        walk(self.adapter_options)
        walk(self.pixit)
        return sorted(set(found), key=len, reverse=True)

    def public_view(self) -> dict[str, Any]:
        """The profile as it may appear in reports: no credentials."""
        return {
            "name": self.name, "kind": self.kind, "adapter": self.adapter,
            "ocpp_versions": list(self.ocpp_versions), "security_profile": self.security_profile,
            "station_id": self.station_id, "endpoint": self.endpoint, "identity": dict(self.identity),
            "pics": dict(self.pics), "pixit": {k: v for k, v in self.pixit.items() if k not in SECRET_KEYS},
        }


def load_profile(path: str | Path) -> DutProfile:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path}: DUT profile not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ProfileError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return profile_from_dict(data, path)


def profile_from_dict(data: Any, path: Path | None = None) -> DutProfile:
    where = str(path) if path else "<profile>"
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: a DUT profile is a mapping with at least 'name' and 'kind'")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ProfileError(f"{where}: kind must be one of {', '.join(KINDS)} (got {kind!r})")
    adapter = data.get("adapter", "sim")
    if adapter not in ADAPTERS:
        raise ProfileError(f"{where}: adapter must be one of {', '.join(ADAPTERS)} (got {adapter!r})")
    versions = tuple(str(v) for v in data.get("ocpp_versions", ["2.0.1"]))
    for v in versions:
        if v not in ("1.6", "2.0.1"):
            raise ProfileError(f"{where}: ocpp_versions: unsupported version {v!r} (use \"1.6\" or \"2.0.1\"; quote it)")
    sp = int(data.get("security_profile", 1))
    if sp not in (0, 1, 2, 3):
        raise ProfileError(f"{where}: security_profile must be 0–3")
    profile = DutProfile(
        name=str(data.get("name", path.stem if path else "dut")), kind=kind, adapter=adapter,
        ocpp_versions=versions, security_profile=sp,
        station_id=str(data.get("station_id", "CH-SIM-001")), endpoint=str(data.get("endpoint", "")),
        credentials=dict(data.get("credentials") or {}), identity=dict(data.get("identity") or {}),
        pics={str(k): bool(v) for k, v in (data.get("pics") or {}).items()},
        pixit=dict(data.get("pixit") or {}), adapter_options=dict(data.get(adapter) or data.get("options") or {}),
        tls=_tls_paths(data.get("tls"), path, where, sp),
        path=path,
    )
    _check_adapter(profile, where)
    return profile


TLS_KEYS = ("ca", "cert", "key", "crl")


def _tls_paths(section: Any, path: Path | None, where: str, sp: int) -> dict[str, Path]:
    """`tls:` — the harness's own certificate/key (server cert when it plays the CSMS, client cert
    for profile 3 when it plays the station), the CA bundle and an optional CRL; relative to the profile."""
    if section is None:
        if sp >= 2:
            raise ProfileError(f"{where}: security_profile {sp} needs a tls: section (ca, cert, key) — "
                               "make a test PKI with `charger-harness pki init`")
        return {}
    if not isinstance(section, dict):
        raise ProfileError(f"{where}: tls must map {', '.join(TLS_KEYS)} to PEM file paths")
    unknown = sorted(set(map(str, section)) - set(TLS_KEYS))
    if unknown:
        raise ProfileError(f"{where}: tls: unknown key(s) {', '.join(unknown)} (known: {', '.join(TLS_KEYS)})")
    base = path.parent if path else Path.cwd()
    out = {str(k): (base / str(v)) if not Path(str(v)).is_absolute() else Path(str(v)) for k, v in section.items() if v}
    missing = [f"tls.{k} ({p})" for k, p in out.items() if not p.is_file()]
    if missing:
        raise ProfileError(f"{where}: file not found: {', '.join(missing)}")
    return out


def _check_adapter(profile: DutProfile, where: str) -> None:
    """The adapter section must be usable before the run starts (not fail case by case)."""
    from .hooks import check_hooks

    opts = profile.adapter_options
    if profile.adapter == "docker" and not opts.get("image"):
        raise ProfileError(f"{where}: adapter docker needs docker.image (the DUT's container image)")
    if profile.adapter == "docker" and not profile.endpoint:
        raise ProfileError(f"{where}: adapter docker needs 'endpoint' (station DUT: where the harness listens for "
                           "the container, e.g. ws://0.0.0.0:9000/ocpp; CSMS DUT: the container's OCPP URL)")
    if profile.adapter in ("command", "docker"):
        actions = opts.get("actions") or {}
        if not isinstance(actions, dict):
            raise ProfileError(f"{where}: {profile.adapter}.actions must map action names to hooks")
        problems = check_hooks(profile)
        if problems:
            raise ProfileError(f"{where}: " + "; ".join(problems))
