"""Waiting and stopping that never swallow a cancellation nor hang a stop.

Python 3.11's ``asyncio.wait_for`` returns the inner result when a cancellation arrives
in the same loop turn as that result (CPython gh-86296, fixed in 3.12 by building it on
``asyncio.timeout``). A background loop that waits on its wake-up event that way can
lose the cancellation meant to stop it and then wait forever, and whoever awaits the
stop hangs with it (a link removal did, under load). Every timed wait of the node goes
through :func:`wait_event` or :func:`within`, which use ``asyncio.timeout`` (its
cancellation accounting is right on 3.11), and every stop through
:func:`cancel_and_wait`, which is bounded: a task that still runs after ``grace_s`` is
named in an error and left behind, so a stuck task shows instead of a stuck node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

log = logging.getLogger("hotline.waits")

T = TypeVar("T")

#: How long a stop waits for a cancelled task to end before it gives up on it (seconds).
STOP_GRACE_S = 5.0
#: A cancelled task still running is cancelled again this often meanwhile (seconds):
#: one that swallowed a cancellation gets another.
RECANCEL_EVERY_S = 0.25


async def wait_event(event: asyncio.Event, timeout_s: float | None) -> bool:
    """Wait until ``event`` is set, at most ``timeout_s`` seconds (``None``: no bound).

    Returns True if it was set, False if the time ran out. A cancellation always
    propagates, even one that arrives as the event is set."""
    if event.is_set():
        return True
    if timeout_s is None:
        await event.wait()
        return True
    try:
        async with asyncio.timeout(max(0.0, timeout_s)):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def within(awaitable: Awaitable[T], timeout_s: float) -> T:
    """``await awaitable`` for at most ``timeout_s`` seconds.

    Raises :class:`TimeoutError` when the time runs out (the awaitable is cancelled);
    a cancellation of the caller always propagates."""
    async with asyncio.timeout(max(0.0, timeout_s)):
        return await awaitable


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]],
                          *, what: str = "task",
                          grace_s: float = STOP_GRACE_S) -> list[asyncio.Future[Any]]:
    """Cancel ``tasks`` and wait until they end, at most ``grace_s`` seconds.

    Returns the tasks still running after the grace (empty when all ended); each is named
    in an error on ``hotline.waits``, with ``what`` they were. Their results and
    exceptions are consumed (a stop is not the place to raise them)."""
    tasks = list(tasks)
    pending: set[asyncio.Future[Any]] = {t for t in tasks if not t.done()}
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # consumed: "never retrieved" noise hides real errors
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        done, pending = await asyncio.wait(pending, timeout=min(RECANCEL_EVERY_S, left))
        for task in done:
            if not task.cancelled():
                task.exception()
    for task in pending:
        name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
        log.error("%s %s did not end within %g s of being cancelled; it is left behind",
                  what, name, grace_s)
    return list(pending)
