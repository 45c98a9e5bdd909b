"""An asyncio event loop on virtual time that still waits for real work on threads.

:class:`VirtualTimeLoop` is a plain :class:`asyncio.SelectorEventLoop` with two changes:

* ``time()`` returns a virtual clock (seconds, a float), so every ``asyncio.sleep``,
  ``wait_for``, ``asyncio.timeout`` and ``call_later`` of the node runs on it;
* its selector first polls the real one without waiting. If something is ready (the
  self-pipe a database thread writes to when it hands back a result, or a socket), that
  is returned at once. If nothing is ready and **no work is in flight on a thread**, the
  loop has nothing to do until its next timer: instead of sleeping ``timeout`` seconds it
  moves the virtual clock forward by ``timeout``. If work *is* in flight, it waits for
  real (at most :data:`REAL_WAIT_S` at a time) and the virtual clock stands still.

"In flight" is what :meth:`VirtualTimeLoop.watch` was given to ask (each node's
``Database.in_flight``: reads and writes handed to the store's threads and not answered
yet) plus everything this loop itself sent to an executor (``run_in_executor``,
``asyncio.to_thread``). So database work takes no virtual time at all — as if the store
were infinitely fast — but virtual time never runs *ahead* of it: a timeout cannot fire
while the transaction it guards is still running on its thread, and a deadline cannot
be decided before the commit that precedes it has come back.

Why not ``looptime``? It does the same fast-forwarding, but it decides that the loop is
idle from the loop alone: a coroutine awaiting a future that a database *thread* will
resolve looks idle, so looptime jumps to the next timer (a 1 s poll, a 10 s request
timeout) while the commit is still running, and the run depends on how fast the threads
happen to be. Trio's ``MockClock(autojump_threshold=0)`` has the same blind spot and
would need the node ported to trio. A subclass of the stdlib loop is small (this file),
uses no private asyncio API beyond the documented selector seam, and the node runs on it
unchanged (uvloop is chosen only in ``serve``).
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any, TypeVar, TypeVarTuple

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: The longest one real wait for a thread lasts before the loop looks again. A thread
#: that finishes wakes the loop at once through the self-pipe, so this only bounds how
#: long a lost wake-up could stall the loop.
REAL_WAIT_S = 0.05

#: Virtual start: far from zero, so nothing mistakes it for "never".
START_S = 1_000_000.0


class _VirtualSelector(selectors.BaseSelector):
    """The real selector, except that an idle wait advances the loop's virtual clock."""

    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self.loop: VirtualTimeLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        loop = self.loop
        assert loop is not None
        if loop.busy():
            loop.real_waits += 1
            wait = REAL_WAIT_S if timeout is None else min(timeout, REAL_WAIT_S)
            return self._real.select(wait)
        if timeout is None:  # no timer at all: only another thread can wake the loop
            return self._real.select(None)
        loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = START_S) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = start
        self._clock_resolution = 1e-6
        self._sources: list[Callable[[], int]] = []
        self._executor_jobs = 0
        #: how many times the loop waited for real on a thread (for the benchmark)
        self.real_waits = 0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        later = self._now + seconds
        # far from zero a tiny step can round to nothing: time must still move
        self._now = later if later > self._now else math.nextafter(self._now, math.inf)

    def watch(self, in_flight: Callable[[], int]) -> None:
        """Count ``in_flight()`` as work on threads (e.g. ``lambda: db.in_flight``)."""
        self._sources.append(in_flight)

    def unwatch(self, in_flight: Callable[[], int]) -> None:
        self._sources.remove(in_flight)

    def busy(self) -> bool:
        return self._executor_jobs > 0 or any(source() > 0 for source in self._sources)

    def run_in_executor(self, executor: Executor | None, func: Callable[[*Ts], T],
                        *args: *Ts) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self._executor_jobs += 1
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, _future: asyncio.Future[Any]) -> None:
        self._executor_jobs -= 1
