"""The contract between the scenario engine and whatever performs out-of-band actions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ActionOutcome:
    status: str                     # done | skipped | failed
    detail: str = ""
    answered_by: str = ""           # operator name, "sim", "command", "http", "docker"
    result: Any = None              # adapter-specific evidence (exit code and streams, HTTP status and body)
    answered_at: float = field(default_factory=time.time)   # epoch seconds the answer was given


class Adapter:
    """Performs out-of-band actions on the DUT: plug in, present a token, reboot, ask a person."""

    name = "adapter"

    async def perform(self, action: str, params: dict[str, Any], say: str, timeout: float) -> ActionOutcome:
        raise NotImplementedError

    async def stop(self) -> None:
        """Release what the adapter started for this case (simulators, per-case resources)."""
