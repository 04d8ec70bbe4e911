"""Tiny asyncio helpers for the harness's own tests (no pytest-asyncio here).

`run(coro)` runs a coroutine in a fresh event loop with an outer bound, so a test that
hangs fails with a TimeoutError instead of stalling the suite.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Coroutine, TypeVar

T = TypeVar("T")

OUTER_BOUND = 20.0   # seconds: generous; the tests' own timeouts are far shorter


def run(coro: Coroutine[Any, Any, T], timeout: float = OUTER_BOUND) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def within(aw: Awaitable[T], timeout: float = 5.0) -> T:
    """Await with a bound (every wait in these tests is bounded)."""
    return await asyncio.wait_for(aw, timeout)
