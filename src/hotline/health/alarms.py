"""One alarm facility for the whole node.

An alarm says that something the operators must know has gone wrong: a background task
died, the wall clock stepped, a peer's clock nears the skew limit, a notification could
not be delivered, a peer presented a bad checkpoint. Raising one, in one transaction:

* a row in ``alarms`` keyed by its *cause*: while it stands, the same cause raised again
  only counts (coalesced), so a flapping fault or a hostile peer cannot flood anything;
* an entry of kind ``alarm`` in the tamper-evident log;
* an entry of kind ``alarm`` in the journal, which is the ``calls-events`` stream and what
  the console's banner follows;
* when the directory names ``[settings] alarm_role``, a ring of that role: the first step
  of its escalation chain, through that step's channels (see :class:`Ring`).

Clearing an alarm (its cause is gone) is journalled too; raising it again after that is a
new alarm. Every raise and clear is also logged on ``hotline.alarm``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from hotline.clock import Clock
from hotline.effects import Effects
from hotline.store import alarms as alarm_store
from hotline.store import journal
from hotline.store import log as log_store
from hotline.store.alarms import AlarmRow
from hotline.store.database import Database

log = logging.getLogger("hotline.alarm")

JOURNAL_SUBJECT_MAX = 32


@dataclass(frozen=True)
class Alarm:
    """``kind``: a stable id (``task-failed``, ``clock-step``, ``clock-skew``,
    ``notification-failed``, ``log-equivocation``, …); ``subject``: the peer, task or
    channel concerned; ``cause``: what coalesces (default ``kind:subject``)."""

    kind: str
    subject: str | None
    message: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    cause: str | None = None

    @property
    def key(self) -> str:
        return self.cause or f"{self.kind}:{self.subject or ''}"


#: Rings the node's alarm role about an alarm just raised, inside the same transaction.
Ring = Callable[[Connection, AlarmRow, int, Effects], None]


class Alarms:
    def __init__(self, *, db: Database, clock: Clock, apply: Callable[[Effects], None],
                 ring: Ring | None = None) -> None:
        self._db = db
        self._clock = clock
        self.apply = apply
        self.ring = ring

    # -- inside a writer transaction -------------------------------------------------
    def raise_in(self, conn: Connection, alarm: Alarm, now: int, effects: Effects) -> bool:
        """Raise ``alarm`` in the caller's transaction; False if it only counted a repeat
        of one that stands."""
        row = alarm_store.record(conn, cause=alarm.key, kind=alarm.kind,
                                 subject=alarm.subject, message=alarm.message,
                                 detail=dict(alarm.detail), now_ms=now)
        if row.count > 1:
            return False
        body = {"cause": row.cause, "kind": row.kind, "subject": row.subject,
                "message": row.message, "detail": row.detail}
        log_store.append_one(conn, "alarm", body, now, subject=row.subject)
        effects.journal.append(journal.append(
            conn, "alarm", (row.subject or row.kind)[:JOURNAL_SUBJECT_MAX],
            {"alarm": {**body, "state": "raised", "first_at": row.first_at}}, now))
        if self.ring is not None:
            self.ring(conn, row, now, effects)
        return True

    def clear_in(self, conn: Connection, cause: str, now: int, effects: Effects,
                 by: str | None = None) -> bool:
        """Clear the standing alarm of ``cause``: its cause is gone, or an operator
        (``by``) has dealt with it. False if none stands."""
        row = alarm_store.clear(conn, cause, now)
        if row is None:
            return False
        body = {"cause": row.cause, "kind": row.kind, "subject": row.subject,
                "message": row.message, "detail": row.detail, "cleared_by": by}
        log_store.append_one(conn, "alarm-cleared", body, now, subject=row.subject)
        effects.journal.append(journal.append(
            conn, "alarm", (row.subject or row.kind)[:JOURNAL_SUBJECT_MAX],
            {"alarm": {**body, "state": "cleared", "first_at": row.first_at,
                       "count": row.count}}, now))
        return True

    # -- from a task -------------------------------------------------------------------
    async def raise_(self, alarm: Alarm) -> bool:
        """Raise ``alarm`` in a transaction of its own. The alarm is logged first, so that
        even a database that fails still leaves it on record."""
        log.error("ALARM %s: %s", alarm.kind, alarm.message)

        def work(conn: Connection) -> tuple[bool, Effects]:
            effects = Effects()
            return self.raise_in(conn, alarm, self._clock.now_ms(), effects), effects
        raised, effects = await self._db.write(work)
        self.apply(effects)
        return raised

    async def clear(self, cause: str, by: str | None = None) -> bool:
        def work(conn: Connection) -> tuple[bool, Effects]:
            effects = Effects()
            return self.clear_in(conn, cause, self._clock.now_ms(), effects, by), effects
        cleared, effects = await self._db.write(work)
        if cleared:
            log.warning("alarm cleared%s: %s", f" by {by}" if by else "", cause)
        self.apply(effects)
        return cleared

    async def standing(self) -> list[AlarmRow]:
        return await self._db.read(alarm_store.standing)
