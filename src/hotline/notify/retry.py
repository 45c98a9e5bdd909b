"""The one retry schedule of notification rows (docs/calls.md §5 states it; a test keeps
the two in step).

* After a row's *n*-th failed attempt it is tried again :func:`retry_delay_ms` later:
  ``FIRST_RETRY_MS`` doubling with each further failure, capped at ``MAX_RETRY_MS``
  (1, 2, 4, 8, 16, 32, 60, 60, ... s). No jitter: each channel has its own lane with its
  own limit on attempts at once (``notify/runner.py``), so a burst of retries cannot
  crowd a receiver, and the schedule stays exact to test and to explain.
* A row is retried until its ``retry_until`` (wall-clock ms), fixed when the row is
  written: :func:`keep_until_ms`, at least ``KEEP_TRYING_MS`` after the alert and at
  least until the escalation step after the one that rang has had its turn. The last
  retry is at ``retry_until`` itself; a transient failure then (or a permanent one at
  any time) marks the row failed.

Everything here is integer arithmetic on wall-clock milliseconds; the exponent is capped,
so no number of attempts overflows or slows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from hotline.escalation.engine import Timing
from hotline.store.notifications import KEEP_TRYING_MS

__all__ = ["FIRST_RETRY_MS", "KEEP_TRYING_MS", "MAX_RETRY_MS", "keep_until_ms",
           "next_attempt_ms", "retry_delay_ms", "turns_ms"]

FIRST_RETRY_MS: Final = 1_000
MAX_RETRY_MS: Final = 60_000

#: Doublings after which the wait is past the cap (2**6 s = 64 s > 60 s): the exponent
#: never grows beyond it, however many attempts a row has had.
_MAX_DOUBLINGS: Final = (MAX_RETRY_MS // FIRST_RETRY_MS).bit_length()


def retry_delay_ms(failures: int) -> int:
    """How long after its ``failures``-th failed attempt (1, 2, ...) a row is tried again."""
    doublings = min(max(failures, 1) - 1, _MAX_DOUBLINGS)
    return min(MAX_RETRY_MS, FIRST_RETRY_MS << doublings)


def next_attempt_ms(failures: int, now_ms: int, retry_until_ms: int) -> int | None:
    """When to try again a row whose ``failures``-th attempt failed (transiently) at
    ``now_ms``: the schedule's wait later, but never after ``retry_until_ms`` (the last
    retry is at that instant). ``None`` once ``now_ms`` has reached ``retry_until_ms``:
    the row has failed for good."""
    if now_ms >= retry_until_ms:
        return None
    return min(now_ms + retry_delay_ms(failures), retry_until_ms)


def keep_until_ms(created_ms: int, turns: Iterable[int] = ()) -> int:
    """The ``retry_until`` of an alert created at ``created_ms``: ``KEEP_TRYING_MS`` later,
    or later still if the ``turns`` (see :func:`turns_ms`) last longer."""
    return created_ms + max(KEEP_TRYING_MS, sum(turns))


def turns_ms(timing: Timing, ring: int) -> tuple[int, ...]:
    """How long ring number ``ring`` of a chain has before the next ring, and how long
    that next ring has (when the chain has one): a step's own wait, or the repeat
    interval for the repeats of a repeating last step."""
    def turn(r: int) -> int:
        if r < timing.steps:
            return timing.waits_ms[r]
        assert timing.repeat_every_ms is not None  # only a repeating chain rings past its steps
        return timing.repeat_every_ms

    return (turn(ring), turn(ring + 1)) if timing.has_ring(ring + 1) else (turn(ring),)
