"""Shared by the simulator feature tests (tests/test_feature_*.py): an unstarted station
simulator, calling its CALL handlers directly, and reading what it would send.

Either from its outbox (`sent`), or by replacing its `enqueue` with a recorder that answers
at once (`with_recording_station`), so feature code that awaits the CSMS's answer runs.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from harness.sim import features
from harness.sim.api import StationSimConfig
from harness.sim.station import StationSimulator

Sent = list[tuple[str, dict[str, Any]]]


def station_sim(fault: str | None = None, version: str = "2.0.1") -> StationSimulator:
    """A station simulator of one OCPP edition, built but never started."""
    return StationSimulator(StationSimConfig(versions=(version,)), fault=fault)


async def call(sim: StationSimulator, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Answer one CALL with the station's handler and run what it does after answering."""
    reply = await sim.front.handlers[action](payload)
    if reply.after is not None:
        await reply.after()
    return reply.payload


def sent(sim: StationSimulator, action: str) -> list[dict[str, Any]]:
    """Payloads of the `action` CALLs waiting in the station's outbox."""
    return [o.payload for o in sim._outbox if o.action == action]


def with_recording_station(body: Callable[[StationSimulator, Sent], Awaitable[None]], *,
                           answer: Callable[[str, dict[str, Any]], Any], version: str = "2.0.1",
                           fault: str | None = None, answer_after: Callable[[str], float | None] = lambda _: None,
                           timeout: float = 10) -> None:
    """Run `body(sim, sent)` against a fresh, unstarted station simulator whose CALLs are recorded
    in `sent` (after the features' outgoing hooks saw them) and answered with `answer(action, payload)`:
    at once, or `answer_after(action)` seconds later on the event loop."""
    async def main() -> None:
        sim = station_sim(fault, version)
        sim.version = version
        record: Sent = []

        def enqueue(action: str, payload: dict[str, Any], *a: Any, **k: Any) -> asyncio.Future[Any]:
            for f in features.with_hook("outgoing"):
                f.outgoing(sim.front, action, payload)
            record.append((action, payload))
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            delay = answer_after(action)
            if delay is None:
                fut.set_result(answer(action, payload))
            else:
                asyncio.get_running_loop().call_later(
                    delay, lambda: fut.done() or fut.set_result(answer(action, payload)))
            return fut
        sim.enqueue = enqueue                                   # type: ignore[method-assign]
        try:
            await body(sim, record)
        finally:
            await sim.stop()
    asyncio.run(asyncio.wait_for(main(), timeout))
