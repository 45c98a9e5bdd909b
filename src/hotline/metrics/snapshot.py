"""What the store says at scrape time: calls and envelopes by state, and each peer's
queue (depth and the age of its oldest envelope). One read transaction per scrape; the
counts are ``GROUP BY`` over indexed columns, so a scrape costs little even with a long
history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, case, func, select

from hotline.store import outbox as outbox_store
from hotline.store.schema import calls, inbound, outbox


@dataclass(frozen=True)
class Queue:
    """Envelopes to one peer neither delivered nor given up: how many, and the enqueue
    time (wall-clock ms, the outbox's ``created_at``) of the oldest of each lane that
    holds any (the first in the lane's order: :class:`hotline.store.outbox.LaneLoad`)."""

    depth: int
    oldest_at: tuple[int, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    #: (direction "out"|"in", state) -> number of calls
    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (peer, direction "out"|"in", state) -> number of envelopes; out: queued, delivered,
    #: undeliverable; in: released, held (stored, waiting behind a missing sequence number)
    messages: dict[tuple[str, str, str], int] = field(default_factory=dict)
    queues: dict[str, Queue] = field(default_factory=dict)
    #: the wall-clock ms the snapshot was taken at
    at: int = 0


def read(conn: Connection, now_ms: int) -> Snapshot:
    """The snapshot as of ``now_ms`` (the node clock's wall time, ms)."""
    call_counts = {(r.direction, r.state): int(r.n) for r in conn.execute(
        select(calls.c.direction, calls.c.state, func.count().label("n"))
        .group_by(calls.c.direction, calls.c.state))}
    out_state = case((outbox.c.delivered_at.is_not(None), "delivered"),
                     (outbox.c.failed_at.is_not(None), "undeliverable"), else_="queued")
    messages: dict[tuple[str, str, str], int] = {}
    for r in conn.execute(select(outbox.c.peer, out_state.label("state"),
                                 func.count().label("n")).group_by(outbox.c.peer, out_state)):
        messages[(r.peer, "out", r.state)] = int(r.n)
    in_state = case((inbound.c.release_no.is_not(None), "released"), else_="held")
    for r in conn.execute(select(inbound.c.peer, in_state.label("state"),
                                 func.count().label("n")).group_by(inbound.c.peer, in_state)):
        messages[(r.peer, "in", r.state)] = int(r.n)
    queues: dict[str, Queue] = {}
    for party, lanes in outbox_store.lane_loads(conn).items():
        queues[party] = Queue(sum(load.queued for load in lanes.values()),
                              tuple(sorted(load.oldest_at for load in lanes.values()
                                           if load.oldest_at is not None)))
    return Snapshot(calls=call_counts, messages=messages, queues=queues, at=now_ms)
