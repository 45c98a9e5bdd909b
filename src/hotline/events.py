"""In-process fan-out of committed events to live subscribers (the SSE stream).

Only events whose transaction has committed are published. A subscriber that falls too
far behind is dropped rather than allowed to grow memory without bound; it reconnects
and catches up from the database by cursor, so nothing is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

T = TypeVar("T")
QUEUE_LIMIT = 10_000


class Overflowed(Exception):
    """The subscriber fell behind; it must resume from its last cursor."""


class Subscription(Generic[T]):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[T] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False

    async def get(self) -> T:
        if self.overflowed and self.queue.empty():
            raise Overflowed()
        return await self.queue.get()


class Broadcaster(Generic[T]):
    def __init__(self) -> None:
        self._subs: set[Subscription[T]] = set()

    def publish(self, item: T) -> None:
        for sub in list(self._subs):
            try:
                sub.queue.put_nowait(item)
            except asyncio.QueueFull:
                sub.overflowed = True
                self._subs.discard(sub)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription[T]]:
        sub: Subscription[T] = Subscription()
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)
