"""The lock between a commit window's close and the record cache's eviction.

A window closes under it (its records written, then its offsets committed), and the eviction
that follows a commit holds it while it runs beside the batches, so no window closes between
an eviction's chunks. A window waiting for it comes first: the eviction asks
``window_waiting`` between its chunks and lets go.

>>> import asyncio
>>> async def demo():
...     lock, seen = WindowLock(), []
...     async def eviction():
...         async with lock.held():
...             while not lock.window_waiting():
...                 await asyncio.sleep(0)  # a chunk, then the loop served
...             seen.append("the eviction stops")
...     async def window():
...         await asyncio.sleep(0)
...         async with lock.window():
...             seen.append("the window closes")
...     await asyncio.gather(eviction(), window())
...     return seen, lock.window_waiting()
>>> asyncio.run(demo())
(['the eviction stops', 'the window closes'], False)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class WindowLock:
    """An ``asyncio.Lock`` that counts the windows waiting for it."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._windows = 0

    def window_waiting(self) -> bool:
        return self._windows > 0

    @contextlib.asynccontextmanager
    async def window(self) -> AsyncIterator[None]:
        """The lock, for a window to close (counted while it waits)."""
        self._windows += 1
        try:
            await self._lock.acquire()
        finally:
            self._windows -= 1
        try:
            yield
        finally:
            self._lock.release()

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """The lock, for work that lets go when ``window_waiting``."""
        async with self._lock:
            yield
