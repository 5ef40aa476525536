"""A readers-writer lock for asyncio, with Go's ``sync.RWMutex`` preference: once a writer waits, new readers
wait behind it, so a stream of readers cannot starve it.

CRI-O guards each sandbox with one (``Sandbox.StopMutex``): CreateContainer holds it for reading for the whole
creation, stopPodSandbox for writing. asyncio's own locks have no shared mode.

State changes happen synchronously (one event loop, no await between a test and its update), so a waiter that
is cancelled leaves the counts right; waking is a broadcast and each waiter checks again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class RWLock:
    def __init__(self) -> None:
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def readers(self) -> int:
        return self._readers

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def _wait(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        await fut

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[None]:
        """Shared: many readers at once, none while a writer holds or waits for the lock."""
        while self._writer or self._writers_waiting:
            await self._wait()
        self._readers += 1
        try:
            yield
        finally:
            self._readers -= 1
            self._wake()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        """Exclusive: waits for the readers in the block to leave it."""
        self._writers_waiting += 1
        try:
            while self._writer or self._readers:
                await self._wait()
        finally:
            self._writers_waiting -= 1
            self._wake()  # readers held back by this writer look again (it holds the lock now, or gave up)
        self._writer = True
        try:
            yield
        finally:
            self._writer = False
            self._wake()
