"""Notifications to send through channels (webhook, e-mail): rows, retried until done.

A row is written in the same transaction as the ring that causes it, keyed by the
alert's idempotency key and the channel, so a re-run never rings anyone twice and a
crash never loses a ring; the notifier task delivers and retries them.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from hotline.store.schema import notifications

CONSOLE = "console"  # the operator event stream: served from the journal, not a row here


@dataclass(frozen=True)
class Notification:
    id: int
    key: str
    channel: str
    alert: dict[str, Any]
    attempts: int


def add_for_channels(conn: Connection, alert: dict[str, Any], channels: Iterable[str],
                     now_ms: int) -> bool:
    """One row per non-console channel; True if any row was added."""
    added = False
    for channel in channels:
        if channel == CONSOLE:
            continue
        key = f"{alert['key']}:{channel}"
        if conn.execute(select(notifications.c.id)
                        .where(notifications.c.key == key)).first() is not None:
            continue
        conn.execute(notifications.insert().values(key=key, channel=channel,
                                                   alert=json.dumps(alert, sort_keys=True),
                                                   created_at=now_ms, attempts=0,
                                                   next_at=now_ms))
        added = True
    return added


def due(conn: Connection, now_ms: int, limit: int = 50) -> list[Notification]:
    rows = conn.execute(select(notifications)
                        .where(notifications.c.delivered_at.is_(None),
                               notifications.c.failed_at.is_(None),
                               notifications.c.next_at <= now_ms)
                        .order_by(notifications.c.next_at, notifications.c.id).limit(limit))
    return [Notification(r.id, r.key, r.channel, json.loads(r.alert), int(r.attempts))
            for r in rows]


def next_at(conn: Connection) -> int | None:
    row = conn.execute(select(notifications.c.next_at)
                       .where(notifications.c.delivered_at.is_(None),
                              notifications.c.failed_at.is_(None))
                       .order_by(notifications.c.next_at).limit(1)).first()
    return None if row is None else int(row.next_at)


def next_at_except(conn: Connection, busy: Collection[int]) -> int | None:
    """:func:`next_at` of the rows not in ``busy`` (those with an attempt under way)."""
    query = select(notifications.c.next_at).where(notifications.c.delivered_at.is_(None),
                                                  notifications.c.failed_at.is_(None))
    if busy:
        query = query.where(notifications.c.id.not_in(busy))
    row = conn.execute(query.order_by(notifications.c.next_at).limit(1)).first()
    return None if row is None else int(row.next_at)


def delivered(conn: Connection, row_id: int, now_ms: int) -> None:
    conn.execute(update(notifications).where(notifications.c.id == row_id)
                 .values(delivered_at=now_ms, attempts=notifications.c.attempts + 1))


def failed(conn: Connection, row_id: int, now_ms: int, error: str, *, retry_at: int | None
           ) -> None:
    values: dict[str, Any] = {"attempts": notifications.c.attempts + 1,
                              "last_error": error[:500]}
    if retry_at is None:
        values["failed_at"] = now_ms
    else:
        values["next_at"] = retry_at
    conn.execute(update(notifications).where(notifications.c.id == row_id).values(**values))


def all_rows(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(notifications)
                                                   .order_by(notifications.c.id))]
