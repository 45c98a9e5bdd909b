"""Duty overrides and the holders last logged per role (see ``calls/duty.py``).

Overrides live here, not in directory versions: applying a directory file keeps them.
``from_ms``/``until_ms`` are calendar instants (milliseconds since the Unix epoch, UTC;
``until_ms`` exclusive): a wall-clock step does not move them (``store/clocksteps.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from hotline.store.schema import duty_holders, schedule_overrides


@dataclass(frozen=True)
class OverrideRow:
    """One override: ``operator`` holds ``role`` from ``from_ms`` until ``until_ms``, or,
    with ``unavailable``, does not hold it then whatever the layers say."""

    id: int
    role: str
    operator: str
    from_ms: int
    until_ms: int
    unavailable: bool
    created_by: str
    created_at: int

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "operator": self.operator,
                "from_ms": self.from_ms, "until_ms": self.until_ms,
                "unavailable": self.unavailable, "created_by": self.created_by,
                "created_at": self.created_at}


def _row(r: Any) -> OverrideRow:
    return OverrideRow(int(r.id), r.role, r.operator, int(r.from_ms), int(r.until_ms),
                       bool(r.unavailable), r.created_by, int(r.created_at))


def add_override(conn: Connection, *, role: str, operator: str, from_ms: int, until_ms: int,
                 unavailable: bool, created_by: str, now_ms: int) -> OverrideRow:
    result = conn.execute(insert(schedule_overrides).values(
        role=role, operator=operator, from_ms=from_ms, until_ms=until_ms,
        unavailable=1 if unavailable else 0, created_by=created_by, created_at=now_ms))
    key = result.inserted_primary_key
    assert key is not None
    return OverrideRow(int(key[0]), role, operator, from_ms, until_ms, unavailable,
                       created_by, now_ms)


def overrides(conn: Connection, role: str | None = None, *, until_after: int | None = None,
              from_before: int | None = None) -> list[OverrideRow]:
    """Overrides of ``role`` (all roles: None) that overlap ``[until_after, from_before)``,
    in the order they were made."""
    query = select(schedule_overrides).order_by(schedule_overrides.c.id)
    if role is not None:
        query = query.where(schedule_overrides.c.role == role)
    if until_after is not None:
        query = query.where(schedule_overrides.c.until_ms > until_after)
    if from_before is not None:
        query = query.where(schedule_overrides.c.from_ms < from_before)
    return [_row(r) for r in conn.execute(query)]


def holders(conn: Connection) -> dict[str, tuple[tuple[str, ...], int]]:
    """The holders last logged per role, and since when (the hand-over's time)."""
    return {r.role: (tuple(json.loads(r.holders)), int(r.since_at))
            for r in conn.execute(select(duty_holders))}


def set_holders(conn: Connection, role: str, names: tuple[str, ...], at_ms: int) -> None:
    body = json.dumps(list(names))
    done = conn.execute(update(duty_holders).where(duty_holders.c.role == role)
                        .values(holders=body, since_at=at_ms))
    if done.rowcount == 0:
        conn.execute(insert(duty_holders).values(role=role, holders=body, since_at=at_ms))


def forget_holders(conn: Connection, role: str) -> None:
    conn.execute(delete(duty_holders).where(duty_holders.c.role == role))
