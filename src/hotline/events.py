"""In-process fan-out of committed events to live subscribers (the SSE stream).

Only events whose transaction has committed are published. A subscriber that falls too
far behind is dropped rather than allowed to grow memory without bound; it reconnects
and catches up from the database by cursor, so nothing is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from hotline.health.supervisor import Running, Supervisor

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


async def catch_up_then_follow(live: Broadcaster[T],
                               fetch_after: Callable[[int, int], Awaitable[list[T]]],
                               cursor_of: Callable[[T], int], after: int,
                               page: int = 500) -> AsyncIterator[T]:
    """Everything after cursor ``after`` from the database, then live, with no gap and no
    repeat: the subscription starts before the catch-up, and live items already seen
    (their cursor is not beyond the last one yielded) are skipped."""
    async with live.subscribe() as sub:
        cursor = after
        while True:
            items = await fetch_after(cursor, page)
            for item in items:
                cursor = cursor_of(item)
                yield item
            if len(items) < page:
                break
        while True:
            item = await sub.get()
            if cursor_of(item) > cursor:
                cursor = cursor_of(item)
                yield item


class BackgroundTask:
    """One long-running task of the node, started and stopped with it: under the node's
    supervisor (restarted and alarmed if it fails), or alone (tests, tools)."""

    task_name = "task"

    def __init__(self) -> None:
        self._running = Running(self.task_name, self._run)

    def start(self, supervisor: Supervisor | None = None) -> None:
        self._running.start(supervisor)

    async def stop(self) -> None:
        await self._running.stop()

    async def _run(self) -> None:
        raise NotImplementedError
