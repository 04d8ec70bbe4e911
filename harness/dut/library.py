"""What the test library asks of a DUT: PICS features, PIXIT parameters, out-of-band actions.

`charger-harness dut init` offers exactly these, so a new profile covers the library it
will be run against. A quick scan (YAML headers for `pics:`, text for `pixit.<name>` and
`action:` steps, `_common/` fragments included), not a full load: it must be fast and must
not fail on a case that has a mistake in it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

_PIXIT_REF = re.compile(r"pixit\.([A-Za-z_][A-Za-z0-9_]*)")
_INCLUDE = re.compile(r"include:\s*['\"]?([A-Za-z0-9_.-]+)")
_ACTION = re.compile(r"^\s*-?\s*action:\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)", re.M)

# Reasonable PIXIT defaults (the reference simulators use the same ones); what each means.
PIXIT_HELP = {
    "valid_id_token": "an id token the DUT accepts (e.g. an RFID card UID)",
    "valid_id_token_2": "a second accepted id token",
    "invalid_id_token": "an id token the DUT (or its CSMS) rejects",
    "blocked_id_token": "an id token that is blocked",
    "id_token_type": "id token type for 2.0.1 (ISO14443, ISO15693, eMAID, Central, …)",
    "evse_id": "the EVSE used for charging cases",
    "connector_id": "the connector used for charging cases",
    "mcs_evse_id": "the MCS EVSE (when the DUT has one)",
    "heartbeat_interval": "heartbeat interval (s) the harness configures",
    "meter_interval": "meter-values sample interval (s) the harness configures",
}


@dataclass
class LibraryNeeds:
    pics: Counter[str] = field(default_factory=Counter)       # feature → number of cases needing it
    pixit: Counter[str] = field(default_factory=Counter)      # parameter → number of references
    actions: Counter[str] = field(default_factory=Counter)    # out-of-band action → number of steps
    cases: int = 0


def scan_library(root: Path, kind: str | None = None) -> LibraryNeeds:
    """What the cases for a DUT of `kind` (charging_station | csms; None: all) need."""
    needs = LibraryNeeds()
    root = Path(root)
    if not root.is_dir():
        return needs
    fragments = {f.stem: _read(f) for f in sorted(root.rglob("_common/*.y*ml"))}
    for f in sorted(root.rglob("TC_*.y*ml")):
        if "_common" in f.parts:
            continue
        text = _read(f)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        if not isinstance(data, dict):
            continue
        dut_kind = "charging_station" if data.get("role") == "csms" else "csms"
        if kind and dut_kind != kind:
            continue
        needs.cases += 1
        if isinstance(data.get("pics"), list):
            needs.pics.update(str(p) for p in data["pics"])
        for part in [text, *_included(text, fragments, set())]:
            needs.pixit.update(_PIXIT_REF.findall(part))
            needs.actions.update(a for a in _ACTION.findall(part) if a != "operator")
    return needs


def _read(f: Path) -> str:
    try:
        return f.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _included(text: str, fragments: dict[str, str], seen: set[str]) -> list[str]:
    out = []
    for name in _INCLUDE.findall(text):
        if name in fragments and name not in seen:
            seen.add(name)
            out += [fragments[name], *_included(fragments[name], fragments, seen)]
    return out


def pixit_defaults() -> dict[str, object]:
    from .builtin import STATION

    return dict(STATION["pixit"])
