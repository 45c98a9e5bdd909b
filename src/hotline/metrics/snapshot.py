"""What the store says at scrape time: calls and envelopes by state, and each peer's
queue (depth and the age of its oldest envelope). One read transaction per scrape; the
counts are ``GROUP BY`` over indexed columns, so a scrape costs little even with a long
history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, case, func, select

from hotline.store.schema import calls, inbound, outbox


@dataclass(frozen=True)
class Queue:
    """Envelopes to one peer neither delivered nor given up: how many, and the enqueue
    time (wall-clock ms, the outbox's ``created_at``) of the oldest, None if empty."""

    depth: int
    oldest_at: int | None


@dataclass(frozen=True)
class Snapshot:
    #: (direction "out"|"in", state) -> number of calls
    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (peer, direction "out"|"in", state) -> number of envelopes; out: queued, delivered,
    #: undeliverable; in: released, held (stored, waiting behind a missing sequence number)
    messages: dict[tuple[str, str, str], int] = field(default_factory=dict)
    queues: dict[str, Queue] = field(default_factory=dict)
    #: the wall-clock ms the snapshot was taken at (ages are measured against it)
    at: int = 0


def read(conn: Connection, now_ms: int) -> Snapshot:
    """The snapshot as of ``now_ms`` (the node clock's wall time, ms)."""
    call_counts = {(r.direction, r.state): int(r.n) for r in conn.execute(
        select(calls.c.direction, calls.c.state, func.count().label("n"))
        .group_by(calls.c.direction, calls.c.state))}
    waiting = (outbox.c.delivered_at.is_(None)) & (outbox.c.failed_at.is_(None))
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
    queues = {r.peer: Queue(int(r.n), None if r.oldest is None else int(r.oldest))
              for r in conn.execute(select(outbox.c.peer, func.count().label("n"),
                                           func.min(outbox.c.created_at).label("oldest"))
                                    .where(waiting).group_by(outbox.c.peer))}
    return Snapshot(calls=call_counts, messages=messages, queues=queues, at=now_ms)
