"""Every persisted *duration* deadline, in one list, and how a wall-clock step moves them.

Persisted times are wall-clock milliseconds (they must survive a restart, and the
monotonic clock does not). A time that ends a *duration* — an escalation step's wait, a
retry delay, a delivery budget, an idle session — must stay the same number of seconds
away when the wall clock steps, so a detected step of ``delta`` ms moves each of them by
``delta`` (:func:`shift`). A *calendar instant* (``timers.basis = 'calendar'``: a hand-over
at 08:00 local time) stays where it is. Timestamps that record when something happened
(``placed_at``, ``sealed_at``, signed ``at`` fields, the log) are never moved: they are
history, and what the protocol signs.

A new table with a deadline column belongs in :data:`DURATION_DEADLINES`; the test of the
time model checks every ``BigInteger`` column of the schema is classified here or in
:data:`NOT_DEADLINES`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Table, and_, true, update

from hotline.store.schema import (
    calls,
    console_sessions,
    key_history,
    notifications,
    operator_accounts,
    outbox,
    presence,
    timers,
)


@dataclass(frozen=True)
class Deadline:
    table: Table
    column: str
    #: which rows still act on it (finished rows are history and keep their time)
    live: ColumnElement[bool]


_ACTIVE_CALL = calls.c.state.in_(("placed", "delivered", "ringing", "undeliverable"))

DURATION_DEADLINES: tuple[Deadline, ...] = (
    Deadline(timers, "due_at", and_(timers.c.fired_at.is_(None),
                                    timers.c.basis == "duration")),
    Deadline(calls, "started_at", _ACTIVE_CALL),      # escalation offsets count from here
    Deadline(calls, "deliver_by", _ACTIVE_CALL),
    Deadline(outbox, "deadline_at", and_(outbox.c.delivered_at.is_(None),
                                         outbox.c.failed_at.is_(None))),
    Deadline(notifications, "next_at", and_(notifications.c.delivered_at.is_(None),
                                            notifications.c.failed_at.is_(None))),
    Deadline(notifications, "retry_until", and_(notifications.c.delivered_at.is_(None),
                                                notifications.c.failed_at.is_(None))),
    Deadline(presence, "last_seen", true()),          # "staffed" = seen within a duration
    Deadline(console_sessions, "last_seen", true()),  # idle time-out
    Deadline(console_sessions, "expires_at", true()),
    Deadline(operator_accounts, "locked_until", operator_accounts.c.locked_until.isnot(None)),
    # a rotated-out key's grace period counts from here (the receiver's clock)
    Deadline(key_history, "retired_at", key_history.c.revoked_at.is_(None)),
)

#: Calendar instants: a time of day in a schedule's zone, fixed on the calendar. A wall
#: clock step does not move them (08:00 stays 08:00); the final schedule is computed from
#: them against the node's (re-anchored) clock.
CALENDAR_INSTANTS: frozenset[str] = frozenset({
    "schedule_overrides.from_ms", "schedule_overrides.until_ms",
})

#: BigInteger columns that are *not* duration deadlines: records of when something
#: happened, signed times, counters, or calendar instants. Listed so that a new column
#: must be classified.
NOT_DEADLINES: frozenset[str] = CALENDAR_INSTANTS | frozenset({
    "links.accepted_at", "links.send_seq", "links.recv_next", "links.removed_at",
    "links.bulk_send_seq", "links.bulk_recv_next",
    "outbox.seq", "outbox.created_at", "outbox.sealed_at", "outbox.delivered_at",
    "outbox.failed_at",
    "inbound.seq", "inbound.received_at", "inbound.released_at", "inbound.sent_at",
    "inbound.release_no", "inbound.after_seq", "directory_versions.applied_at",
    "operator_requests.created_at", "evidence.at", "evidence.last_at",
    "peer_desks.updated_at", "api_tokens.created_at", "api_tokens.revoked_at",
    "api_tokens.last_used_at",
    "calls.placed_at", "calls.expires_at", "calls.updated_at",
    "call_events.at", "timers.fired_at",
    "notifications.created_at", "notifications.delivered_at", "notifications.failed_at",
    "journal.at", "conversations.created_at", "conversation_messages.sent_at",
    "conversation_messages.received_at",
    "message_receipts.at", "notices.sent_at", "notices.received_at",
    "notice_receipts.at", "log_entries.idx", "log_entries.at", "log_state.size",
    "log_checkpoints.size", "log_checkpoints.at", "log_nodes.idx",
    "operator_accounts.totp_last_step", "operator_accounts.created_at",
    "operator_accounts.updated_at", "console_sessions.created_at",
    "alarms.first_at", "alarms.last_at", "alarms.cleared_at",
    "key_history.accepted_at", "key_history.introduced_at", "key_history.rotated_at",
    "key_history.revoked_at",
    "schedule_overrides.created_at", "duty_holders.since_at",
    "incidents.created_at", "incidents.joined_at", "incident_entries.at",
    "incident_entries.received_at",
    "queries.deadline_ms",  # a duration; the deadline itself is a timer row
})


def shift(conn: Connection, delta_ms: int) -> dict[str, int]:
    """Move every live duration deadline by ``delta_ms``; rows moved per ``table.column``."""
    moved: dict[str, int] = {}
    for d in DURATION_DEADLINES:
        col = d.table.c[d.column]
        result = conn.execute(update(d.table).where(d.live, col.isnot(None))
                              .values({d.column: col + delta_ms}))
        moved[f"{d.table.name}.{d.column}"] = result.rowcount
    return moved

