"""Verdicts (DESIGN.md) and the result of running one test case.

The five verdicts are never blurred: a FAIL is the DUT's fault, an ERROR is ours, an
INCONCLUSIVE proves nothing either way. Engine code raises one of the `Outcome`
exceptions; everything else that escapes is an ERROR by definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Verdict(str, Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    NOT_APPLICABLE = "NOT APPLICABLE"
    ERROR = "ERROR"

    @property
    def allure_status(self) -> str:
        return {
            Verdict.PASS: "passed", Verdict.FAIL: "failed", Verdict.INCONCLUSIVE: "unknown",
            Verdict.NOT_APPLICABLE: "skipped", Verdict.ERROR: "broken",
        }[self]


class Outcome(Exception):
    """Ends a case early with a verdict."""

    verdict: Verdict = Verdict.ERROR

    def __init__(self, message: str, *, step: int | None = None, step_name: str = "",
                 expected: Any = None, received: Any = None, requirement: str | None = None):
        super().__init__(message)
        self.message = message
        self.step = step
        self.step_name = step_name
        self.expected = expected
        self.received = received
        self.requirement = requirement


class DutFailure(Outcome):
    verdict = Verdict.FAIL


class Inconclusive(Outcome):
    verdict = Verdict.INCONCLUSIVE


class NotApplicable(Outcome):
    verdict = Verdict.NOT_APPLICABLE


class HarnessError(Outcome):
    verdict = Verdict.ERROR


@dataclass
class StepResult:
    index: int                 # 1-based position in the expanded step list
    name: str                  # human description, e.g. "expect BootNotification"
    kind: str                  # expect / send / action / …
    verdict: Verdict
    start: float               # wall-clock epoch seconds (Allure wants ms epoch)
    stop: float
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaseResult:
    case_id: str
    verdict: Verdict
    message: str = ""                          # one-line reason for anything but PASS
    failed_step: int | None = None
    failed_step_name: str = ""
    expected: Any = None
    received: Any = None
    requirement: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    captures: dict[str, Any] = field(default_factory=dict)
    dut_identity: dict[str, str] = field(default_factory=dict)   # vendor/model/serial/firmware seen
    start: float = 0.0
    stop: float = 0.0

    def summary(self) -> str:
        """The text a tester reads first: verdict, step, requirement, expected vs received."""
        if self.verdict == Verdict.PASS:
            return "PASS"
        lines = [f"{self.verdict.value}: {self.message}"]
        if self.failed_step is not None:
            lines.append(f"  at step {self.failed_step}: {self.failed_step_name}")
        if self.requirement:
            lines.append(f"  requirement: {self.requirement}")
        if self.expected is not None:
            lines.append(f"  expected: {_short(self.expected)}")
        if self.received is not None:
            lines.append(f"  received: {_short(self.received)}")
        return "\n".join(lines)


def _short(value: Any, limit: int = 600) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"
