"""Notifications to send through channels (webhook, e-mail): rows, retried until done.

A row is written in the same transaction as the ring that causes it, keyed by the
alert's idempotency key and the channel, so a re-run never rings anyone twice and a
crash never loses a ring; the notifier task delivers and retries them until the row's
``retry_until`` (see ``notify/retry.py`` for the schedule).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, and_, select, update

from hotline.store.schema import notifications

CONSOLE = "console"  # the operator event stream: served from the journal, not a row here

#: The least time a row is retried for, from its creation: the default ``retry_until``
#: and the one assumed for rows written before the column existed (migration 0006).
KEEP_TRYING_MS: Final = 60 * 60_000


@dataclass(frozen=True)
class Notification:
    id: int
    key: str
    channel: str
    alert: dict[str, Any]
    attempts: int
    created_at: int
    retry_until: int  # wall-clock ms; never NULL here (see KEEP_TRYING_MS)


def add_for_channels(conn: Connection, alert: dict[str, Any], channels: Iterable[str],
                     now_ms: int, *, keep_until_ms: int | None = None) -> bool:
    """One row per non-console channel; True if any row was added.

    Each row is retried until ``keep_until_ms`` (wall-clock ms), by default
    :data:`KEEP_TRYING_MS` after ``now_ms``; ``notify.retry.keep_until_ms`` computes it
    for a ring.
    """
    retry_until = now_ms + KEEP_TRYING_MS if keep_until_ms is None else keep_until_ms
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
                                                   next_at=now_ms, retry_until=retry_until))
        added = True
    return added


def _pending() -> ColumnElement[bool]:
    return and_(notifications.c.delivered_at.is_(None), notifications.c.failed_at.is_(None))


def _open(channel: str | None, exclude: Collection[int]) -> ColumnElement[bool]:
    """Pending rows, of ``channel`` if given, other than the ids in ``exclude``."""
    where = _pending()
    if channel is not None:
        where = and_(where, notifications.c.channel == channel)
    if exclude:
        where = and_(where, notifications.c.id.not_in(sorted(exclude)))
    return where


def due(conn: Connection, now_ms: int, limit: int = 50, *, channel: str | None = None,
        exclude: Collection[int] = ()) -> list[Notification]:
    """Pending rows due at ``now_ms`` (of one channel if given, without the ids in
    ``exclude``: those being tried right now), the longest-waiting first."""
    rows = conn.execute(select(notifications)
                        .where(_open(channel, exclude), notifications.c.next_at <= now_ms)
                        .order_by(notifications.c.next_at, notifications.c.id).limit(limit))
    return [Notification(r.id, r.key, r.channel, json.loads(r.alert), int(r.attempts),
                         int(r.created_at),
                         int(r.created_at) + KEEP_TRYING_MS if r.retry_until is None
                         else int(r.retry_until))
            for r in rows]


def next_at(conn: Connection, channel: str | None = None,
            exclude: Collection[int] = ()) -> int | None:
    """When the earliest pending row (as :func:`due` selects them) is due."""
    row = conn.execute(select(notifications.c.next_at)
                       .where(_open(channel, exclude))
                       .order_by(notifications.c.next_at).limit(1)).first()
    return None if row is None else int(row.next_at)


def pending_channels(conn: Connection) -> list[str]:
    """The channels that have rows neither delivered nor failed."""
    return sorted(str(c) for c in conn.execute(select(notifications.c.channel)
                                               .where(_pending()).distinct()).scalars())


def delivered(conn: Connection, row_id: int, now_ms: int) -> bool:
    """Mark a pending row delivered; False if it was no longer pending."""
    result = conn.execute(update(notifications)
                          .where(notifications.c.id == row_id, _pending())
                          .values(delivered_at=now_ms, attempts=notifications.c.attempts + 1))
    return result.rowcount == 1


def failed(conn: Connection, row_id: int, now_ms: int, error: str, *, retry_at: int | None
           ) -> bool:
    """Record a failed attempt of a pending row: try again at ``retry_at``, or (``None``)
    mark it failed for good. False if the row was no longer pending."""
    values: dict[str, Any] = {"attempts": notifications.c.attempts + 1,
                              "last_error": error[:500]}
    if retry_at is None:
        values["failed_at"] = now_ms
    else:
        values["next_at"] = retry_at
    result = conn.execute(update(notifications)
                          .where(notifications.c.id == row_id, _pending()).values(**values))
    return result.rowcount == 1


def retry_until_of(conn: Connection, row_id: int) -> int | None:
    """The row's ``retry_until`` as stored now (None: no such pending row); rows from
    before migration 0006 have none and keep trying ``KEEP_TRYING_MS`` after creation."""
    row = conn.execute(select(notifications.c.retry_until, notifications.c.created_at)
                       .where(notifications.c.id == row_id, _pending())).first()
    if row is None:
        return None
    return int(row.retry_until) if row.retry_until is not None \
        else int(row.created_at) + KEEP_TRYING_MS


def all_rows(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(notifications)
                                                   .order_by(notifications.c.id))]
