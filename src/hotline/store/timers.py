"""Deadlines as rows: due time, idempotency key, and whether (and how) they fired."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select, update

from hotline.store.schema import timers


@dataclass(frozen=True)
class Timer:
    id: int
    key: str
    kind: str
    call_id: str
    due_at: int


def schedule(conn: Connection, *, key: str, kind: str, call_id: str, due_at: int) -> bool:
    """Add a deadline unless one with ``key`` exists (a re-run schedules nothing twice)."""
    if conn.execute(select(timers.c.id).where(timers.c.key == key)).first() is not None:
        return False
    conn.execute(timers.insert().values(key=key, kind=kind, call_id=call_id, due_at=due_at))
    return True


def next_due(conn: Connection) -> int | None:
    value = conn.execute(select(func.min(timers.c.due_at))
                         .where(timers.c.fired_at.is_(None))).scalar()
    return None if value is None else int(value)


def due(conn: Connection, now_ms: int, limit: int = 100) -> list[Timer]:
    rows = conn.execute(select(timers.c.id, timers.c.key, timers.c.kind, timers.c.call_id,
                               timers.c.due_at)
                        .where(timers.c.fired_at.is_(None), timers.c.due_at <= now_ms)
                        .order_by(timers.c.due_at, timers.c.id).limit(limit))
    return [Timer(r.id, r.key, r.kind, r.call_id, int(r.due_at)) for r in rows]


def claim(conn: Connection, timer_id: int, now_ms: int, outcome: str) -> bool:
    """Mark a timer fired; False if it already was (it must then do nothing)."""
    result = conn.execute(update(timers).where(timers.c.id == timer_id,
                                               timers.c.fired_at.is_(None))
                          .values(fired_at=now_ms, outcome=outcome))
    return result.rowcount == 1


def void_for_call(conn: Connection, call_id: str, now_ms: int,
                  firing: str | None = None) -> None:
    """The call ended: its pending deadlines will never act. ``firing``: the key of the
    deadline being fired now, left for the runner to claim (so its effects apply)."""
    query = update(timers).where(timers.c.call_id == call_id, timers.c.fired_at.is_(None))
    if firing is not None:
        query = query.where(timers.c.key != firing)
    conn.execute(query.values(fired_at=now_ms, outcome="void"))


def lateness(conn: Connection) -> list[tuple[str, int]]:
    """(kind, fired_at - due_at) of every timer that fired: for the benchmark and metrics."""
    rows = conn.execute(select(timers.c.kind, (timers.c.fired_at - timers.c.due_at).label("late"))
                        .where(timers.c.outcome == "fired"))
    return [(r.kind, int(r.late)) for r in rows]
