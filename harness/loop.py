"""One event loop per process, running in a background thread for the whole pytest session.

Test cases are submitted to it one by one. Keeping a single loop (rather than
`asyncio.run` per case) lets a real DUT's websocket outlive a case: a charger connected to
the harness stays connected between cases, as it would to a real back end.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


class HarnessHung(Exception):
    """A coroutine overran its outer guard: a harness bug (the engine bounds every wait)."""


class BackgroundLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="charger-harness-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], guard: float) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(guard)
        except FutureTimeout:
            fut.cancel()
            raise HarnessHung(f"no result within the outer guard of {guard:g} s") from None

    def close(self) -> None:
        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop).result(10)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


_loop: BackgroundLoop | None = None
_lock = threading.Lock()


def background_loop() -> BackgroundLoop:
    global _loop
    with _lock:
        if _loop is None:
            _loop = BackgroundLoop()
        return _loop


def is_running() -> bool:
    return _loop is not None


def shutdown() -> None:
    global _loop
    with _lock:
        if _loop is not None:
            _loop.close()
            _loop = None
