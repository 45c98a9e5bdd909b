"""Alarms, one row per cause: raised, repeated (coalesced into a count) and cleared."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from hotline.store.schema import alarms


@dataclass(frozen=True)
class AlarmRow:
    cause: str
    kind: str
    subject: str | None
    message: str
    detail: dict[str, Any]
    first_at: int
    last_at: int
    count: int
    cleared_at: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"cause": self.cause, "kind": self.kind, "subject": self.subject,
                "message": self.message, "detail": self.detail, "first_at": self.first_at,
                "last_at": self.last_at, "count": self.count, "cleared_at": self.cleared_at}


def _row(r: Any) -> AlarmRow:
    return AlarmRow(r.cause, r.kind, r.subject, r.message, json.loads(r.detail),
                    int(r.first_at), int(r.last_at), int(r.count),
                    None if r.cleared_at is None else int(r.cleared_at))


def record(conn: Connection, *, cause: str, kind: str, subject: str | None, message: str,
           detail: dict[str, Any], now_ms: int) -> AlarmRow:
    """Raise the alarm of ``cause``, or count a repeat of the one that stands.

    Returns the row as written; ``count == 1`` means it was raised just now (new, or
    raised again after it had been cleared)."""
    values = {"kind": kind, "subject": subject, "message": message,
              "detail": json.dumps(detail, sort_keys=True), "last_at": now_ms}
    row = conn.execute(select(alarms).where(alarms.c.cause == cause)).first()
    if row is None:
        conn.execute(alarms.insert().values(cause=cause, first_at=now_ms, count=1, **values))
    elif row.cleared_at is None:
        conn.execute(update(alarms).where(alarms.c.cause == cause)
                     .values(count=alarms.c.count + 1, **values))
    else:
        conn.execute(update(alarms).where(alarms.c.cause == cause)
                     .values(first_at=now_ms, count=1, cleared_at=None, **values))
    written = conn.execute(select(alarms).where(alarms.c.cause == cause)).first()
    assert written is not None
    return _row(written)


def clear(conn: Connection, cause: str, now_ms: int) -> AlarmRow | None:
    """Clear the standing alarm of ``cause``; None if none stands."""
    result = conn.execute(update(alarms).where(alarms.c.cause == cause,
                                               alarms.c.cleared_at.is_(None))
                          .values(cleared_at=now_ms))
    if result.rowcount != 1:
        return None
    row = conn.execute(select(alarms).where(alarms.c.cause == cause)).first()
    return None if row is None else _row(row)


def standing(conn: Connection) -> list[AlarmRow]:
    """Every alarm not cleared, oldest first."""
    rows = conn.execute(select(alarms).where(alarms.c.cleared_at.is_(None))
                        .order_by(alarms.c.first_at, alarms.c.cause))
    return [_row(r) for r in rows]


def recent(conn: Connection, limit: int = 100) -> list[AlarmRow]:
    rows = conn.execute(select(alarms).order_by(alarms.c.last_at.desc()).limit(limit))
    return [_row(r) for r in rows]
