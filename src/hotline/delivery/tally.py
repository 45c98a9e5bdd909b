"""How full a peer's bulk queue is, known without counting it on every send.

The bulk bound (issue 17: 429 past it, nothing stored) is checked in the writer's
transaction of every send. Counting the queue there (``COUNT`` and the UTF-8 length of
every waiting payload) costs time in proportion to the queue, on the one thread every
durable write of the node waits for, calls' included: with a few thousand messages queued
it was more than half of that thread's time (docs/performance.md §5).

So the count is taken from the store at most once a :data:`RECOUNT_SECONDS` per peer (on
the monotonic clock) and what this node enqueues meanwhile is added to it. The sum is
never below the truth by more than what was enqueued by other writers since the last
count (a state repair, an offline tool): deliveries only shrink the real queue. A send
the sum refuses is counted again exactly before it is refused, so a drained queue never
answers 429 from an old figure.

The tally lives on the writer thread: :meth:`BulkTally.load` and :meth:`BulkTally.added`
are called only from inside a write transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

from hotline.protocol.lanes import Lane
from hotline.store import outbox

#: how long a count of a queue is trusted, in seconds of the monotonic clock
RECOUNT_SECONDS = 1.0


@dataclass
class _Count:
    messages: int
    payload_bytes: int
    taken_at: float  # monotonic seconds


class BulkTally:
    """Per (peer, lane): messages and payload bytes waiting, as last counted plus what
    was enqueued here since."""

    def __init__(self, monotonic: Callable[[], float],
                 recount_seconds: float = RECOUNT_SECONDS) -> None:
        self._monotonic = monotonic
        self._recount = recount_seconds
        self._counts: dict[tuple[str, Lane], _Count] = {}

    def load(self, conn: Connection, peer: str, lane: Lane, *,
             exact: bool = False) -> tuple[int, int]:
        """``(messages, payload bytes)`` waiting to ``peer`` on ``lane``: counted in the
        store if ``exact``, if never counted, or if the last count is older than the
        recount interval; else the last count plus what was added since."""
        now = self._monotonic()
        found = self._counts.get((peer, lane))
        if exact or found is None or now - found.taken_at >= self._recount:
            load = outbox.lane_loads(conn, peer, lane).get(peer, {}).get(lane)
            found = _Count(load.queued, load.payload_bytes, now) if load else _Count(0, 0, now)
            self._counts[(peer, lane)] = found
        return found.messages, found.payload_bytes

    def added(self, peer: str, lane: Lane, messages: int, payload_bytes: int) -> None:
        """This node enqueued ``messages`` of ``payload_bytes`` to ``peer`` on ``lane``
        (in the transaction that asked :meth:`load`). If that transaction does not
        commit, the tally is high until the next count: a send may then be counted
        exactly once more, never let past the bound."""
        found = self._counts.get((peer, lane))
        if found is not None:
            found.messages += messages
            found.payload_bytes += payload_bytes
