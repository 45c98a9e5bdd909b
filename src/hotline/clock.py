"""Time, injected.

Two clocks, each for its own job (``docs/time.md``):

* the **monotonic** clock measures durations: every wait, timeout, backoff and interval
  the node acts on in memory;
* **wall-clock** milliseconds are for what people read and what the protocol signs, and
  for persisted deadlines (they must survive a restart, which the monotonic clock does
  not).

The node reads wall time through :class:`SteadyWall`: wall time that advances with the
monotonic clock and moves only when the clock watch (``health/clockwatch.py``) applies a
detected step, in the same writer transaction that moves every persisted duration
deadline by that step. So a deadline decision never sees the wall clock jump ahead of
the deadlines it compares with.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol

#: the steps a :class:`SteadyWall` remembers for :meth:`SteadyWall.since_ms` (each one
#: is a logged, alarmed event: a node sees few)
STEPS_KEPT = 1000


class Clock(Protocol):
    def now_ms(self) -> int: ...
    def monotonic(self) -> float: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class SteadyWall:
    """Wall-clock milliseconds that advance at the rate of ``source``'s monotonic clock
    from an anchor (a wall reading and the monotonic reading taken with it).

    ``offset_ms()`` is how far the real wall clock has moved away since the anchor: a
    slew of a few ms, or a step. :meth:`rebase` moves the anchor; it is called only by the
    clock watch (slews: at once; steps: inside the transaction that shifts deadlines).
    Thread-safe: the writer thread rebases while the event loop reads."""

    def __init__(self, source: Clock) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._anchor = (source.now_ms(), source.monotonic())
        #: the steps applied while this clock ran: (this clock's time right after the
        #: step, the step in ms), oldest first
        self._steps: deque[tuple[int, int]] = deque(maxlen=STEPS_KEPT)

    @property
    def anchor(self) -> tuple[int, float]:
        return self._anchor

    def now_ms(self) -> int:
        wall, mono = self._anchor
        return wall + int((self.source.monotonic() - mono) * 1000)

    def monotonic(self) -> float:
        return self.source.monotonic()

    def offset_ms(self) -> int:
        """Real wall time minus this clock's time."""
        return self.source.now_ms() - self.now_ms()

    def rebase(self, anchor: tuple[int, float], *, step_ms: int = 0) -> None:
        """Move the anchor; ``step_ms``: the wall-clock step this applies (0 for a slew),
        remembered for :meth:`since_ms`. Applying the same step twice (a writer that
        re-runs the transaction applying it) remembers it once."""
        with self._lock:
            if step_ms and self._anchor != anchor:
                self._steps.append((anchor[0], step_ms))
            self._anchor = anchor

    def since_ms(self, at_ms: int) -> int:
        """Milliseconds elapsed since ``at_ms``, a time this node recorded from this clock
        (a row's ``created_at``), not counting the wall-clock steps applied since: so a
        step of +1 h does not add an hour to it, nor one of -1 h take an hour off.

        A time recorded before a step is told from one recorded after it by being earlier
        than the step's new time; after a step *back* of ``d``, a time recorded less than
        ``d`` before the step reads as recorded after it (it is understated by the step,
        as a plain difference would be). Never negative."""
        elapsed = self.now_ms() - at_ms
        for step_at, step_ms in list(self._steps):
            if at_ms < step_at:
                elapsed -= step_ms
        return max(0, elapsed)


def elapsed_ms(clock: Clock, at_ms: int) -> int:
    """Milliseconds elapsed since the recorded wall-clock time ``at_ms``, on ``clock``:
    steps applied since are taken out where the clock knows them (:class:`SteadyWall`).
    Never negative."""
    if isinstance(clock, SteadyWall):
        return clock.since_ms(at_ms)
    return max(0, clock.now_ms() - at_ms)
