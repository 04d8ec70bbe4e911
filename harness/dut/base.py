"""The contract between the scenario engine and whatever performs out-of-band actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ActionOutcome:
    status: str                     # done | skipped | failed
    detail: str = ""
    answered_by: str = ""           # operator name, "sim", "command"
    result: Any = None


class Adapter:
    """Performs out-of-band actions on the DUT: plug in, present a token, reboot, ask a person."""

    name = "adapter"

    async def perform(self, action: str, params: dict[str, Any], say: str, timeout: float) -> ActionOutcome:
        raise NotImplementedError

    async def stop(self) -> None:
        """Release what the adapter started for this case (simulators, containers)."""
