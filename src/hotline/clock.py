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
from typing import Protocol


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

    def rebase(self, anchor: tuple[int, float]) -> None:
        with self._lock:
            self._anchor = anchor
