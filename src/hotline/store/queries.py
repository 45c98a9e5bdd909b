"""Queries: the question and deadline of a call of kind "query" (docs/queries.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from hotline.store.schema import queries, timers


@dataclass(frozen=True)
class QueryRow:
    call_id: str
    question: str
    deadline_ms: int
    incident: str | None
    late: bool


def _row(r: Any) -> QueryRow:
    return QueryRow(r.call_id, r.question, int(r.deadline_ms), r.incident, bool(r.late))


def insert(conn: Connection, *, call_id: str, question: str, deadline_ms: int,
           incident: str | None = None) -> None:
    conn.execute(queries.insert().values(call_id=call_id, question=question,
                                         deadline_ms=deadline_ms, incident=incident))


def get(conn: Connection, call_id: str) -> QueryRow | None:
    row = conn.execute(select(queries).where(queries.c.call_id == call_id)).first()
    return None if row is None else _row(row)


def many(conn: Connection, call_ids: list[str]) -> dict[str, QueryRow]:
    if not call_ids:
        return {}
    rows = conn.execute(select(queries).where(queries.c.call_id.in_(call_ids)))
    return {r.call_id: _row(r) for r in rows}


def all_ids(conn: Connection) -> list[str]:
    return [str(r.call_id) for r in conn.execute(select(queries.c.call_id))]


def mark_late(conn: Connection, call_id: str) -> None:
    conn.execute(update(queries).where(queries.c.call_id == call_id).values(late=1))


def set_incident(conn: Connection, call_id: str, incident: str) -> None:
    conn.execute(update(queries).where(queries.c.call_id == call_id)
                 .values(incident=incident))


def due_at(conn: Connection, call_id: str) -> int | None:
    """This node's deadline of the query (wall-clock ms; the timer row's, so a clock
    step that re-anchors timers moves it too)."""
    value = conn.execute(select(timers.c.due_at).where(
        timers.c.key == deadline_key(call_id))).scalar()
    return None if value is None else int(value)


def deadline_key(call_id: str) -> str:
    return f"{call_id}:query"
