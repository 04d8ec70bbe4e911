"""The in-memory form of one YAML test case (see docs/testcase-format.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STEP_KINDS = (
    "expect", "send", "expect_none", "action", "operator", "wait", "connect", "disconnect",
    "expect_disconnect", "expect_tls_refused", "assert", "include", "set", "set_time", "depot",
    "v2g_connect", "v2g_session", "v2g", "v2g_close", "sign_csr", "v2g_listen", "v2g_expect", "v2g_expect_end",
)


@dataclass
class Step:
    kind: str                      # one of STEP_KINDS
    spec: dict[str, Any]           # the step's mapping as written (after include expansion)
    line: int = 0                  # 1-based position in `source`, for messages
    source: str = ""               # file the step came from (a fragment for included steps)

    @property
    def target(self) -> Any:
        """The value of the step's kind key: the action name for expect/send, seconds for wait, …"""
        return self.spec.get(self.kind)

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeout", 10))

    def describe(self) -> str:
        if "name" in self.spec:
            return str(self.spec["name"])
        target = self.target
        if isinstance(target, (str, int, float)) and target != "":
            return f"{self.kind} {target}"
        if isinstance(target, list):
            return f"{self.kind} {', '.join(map(str, target))}"
        return self.kind


@dataclass
class TestCase:
    id: str
    title: str
    ocpp: str                      # "1.6" | "2.0.1"
    role: str                      # the harness's role: "csms" | "cs"
    profile: str
    steps: list[Step]
    path: Path
    block: str = ""
    feature: str = ""
    use_cases: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    severity: str = "normal"
    pics: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    timeout: float = 60.0
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    cleanup: list[Step] = field(default_factory=list)   # out-of-band actions run whatever the verdict
    vars: dict[str, Any] = field(default_factory=dict)  # case-level variables, as if captured
    mandatory: bool = True         # counts towards the profile verdict
    security_profile: int | None = None     # the case needs the DUT at this OCPP security profile (TLS cases)
    harness_tls: dict[str, str] = field(default_factory=dict)   # role csms: {certificate, version} the harness serves
    connection_test: bool = False  # how the station connects is under test: the harness's refusals FAIL it
    protocol: str = ""             # ISO 15118 edition the harness EV speaks ("iso15118-2", "iso15118-20", "din70121")

    __test__ = False               # not a pytest class, despite the name

    @property
    def dut_kind(self) -> str:
        """What the DUT is when the harness plays `role`."""
        return {"csms": "charging_station", "cs": "csms", "secc": "ev"}[self.role]

    @property
    def edition(self) -> str:
        """The standard the case tests, for reports: "OCPP 2.0.1", "ISO 15118-2", …"""
        if self.ocpp:
            return f"OCPP {self.ocpp}"
        return {"iso15118-2": "ISO 15118-2", "iso15118-20": "ISO 15118-20", "iso15118-20-ac": "ISO 15118-20",
                "din70121": "DIN SPEC 70121"}.get(
            self.protocol, self.protocol or "ISO 15118")
