"""The incidents repository: one row per incident this node holds, one row per entry.

An entry row keeps the author's signed statement as it came; nothing here updates an
entry (a correction is another entry). Every entry stored is also appended to the
node's log (kind ``incident-entry``, subject the incident id) in the same transaction,
and so is every change of membership this node makes (kind ``incident``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, update

from hotline.protocol.incident import Entry, parse_entry
from hotline.store import log as log_store
from hotline.store.schema import (
    calls,
    conversations,
    incident_entries,
    incidents,
    notices,
    queries,
)


@dataclass(frozen=True)
class Incident:
    """An incident as this node holds it: ``state`` is ``member`` or ``invited``."""

    id: str
    title: str
    opener: str
    state: str
    members: frozenset[str]
    invited: frozenset[str]
    created_at: int
    joined_at: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "opener": self.opener,
                "state": self.state, "members": sorted(self.members),
                "invited": sorted(self.invited), "created_at": self.created_at,
                "joined_at": self.joined_at}


def _incident(row: Any) -> Incident:
    return Incident(row.id, row.title, row.opener, row.state,
                    frozenset(json.loads(row.members)), frozenset(json.loads(row.invited)),
                    int(row.created_at), None if row.joined_at is None else int(row.joined_at))


def get(conn: Connection, incident_id: str) -> Incident | None:
    row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    return None if row is None else _incident(row)


def all_held(conn: Connection) -> list[Incident]:
    """Every incident this node holds (a member of, or invited to), newest first."""
    rows = conn.execute(select(incidents).order_by(incidents.c.created_at.desc(),
                                                   incidents.c.id))
    return [_incident(r) for r in rows]


def add(conn: Connection, *, incident_id: str, title: str, opener: str, state: str,
        members: frozenset[str], invited: frozenset[str], now: int) -> None:
    conn.execute(incidents.insert().values(
        id=incident_id, title=title, opener=opener, state=state,
        members=json.dumps(sorted(members)), invited=json.dumps(sorted(invited)),
        created_at=now, joined_at=now if state == "member" else None))
    log_membership(conn, incident_id, "held" if state == "member" else "invited",
                   opener, members, invited, now)


def set_membership(conn: Connection, incident_id: str, members: frozenset[str],
                   invited: frozenset[str], now: int, event: str, party: str, *,
                   state: str | None = None) -> None:
    values: dict[str, Any] = {"members": json.dumps(sorted(members)),
                              "invited": json.dumps(sorted(invited))}
    if state is not None:
        values.update(state=state, joined_at=now)
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**values))
    log_membership(conn, incident_id, event, party, members, invited, now)


def log_membership(conn: Connection, incident_id: str, event: str, party: str,
                   members: frozenset[str], invited: frozenset[str], now: int) -> None:
    log_store.append_one(conn, "incident", {
        "incident": incident_id, "event": event, "party": party,
        "members": sorted(members), "invited": sorted(invited)},
        now, incident_id)


def next_n(conn: Connection, incident_id: str, author: str) -> int:
    found = conn.execute(select(func.max(incident_entries.c.n)).where(
        incident_entries.c.incident_id == incident_id,
        incident_entries.c.author == author)).scalar()
    return 1 if found is None else int(found) + 1


def has_entry(conn: Connection, entry_id: str) -> tuple[str, str, int] | None:
    """(incident, author, n) of a stored entry."""
    row = conn.execute(select(incident_entries.c.incident_id, incident_entries.c.author,
                              incident_entries.c.n)
                       .where(incident_entries.c.id == entry_id)).first()
    return None if row is None else (row.incident_id, row.author, int(row.n))


def taken_n(conn: Connection, incident_id: str, author: str, n: int) -> str | None:
    """The id of the author's entry number ``n`` in the incident, if one is stored."""
    row = conn.execute(select(incident_entries.c.id).where(
        incident_entries.c.incident_id == incident_id, incident_entries.c.author == author,
        incident_entries.c.n == n)).first()
    return None if row is None else str(row.id)


def add_entry(conn: Connection, entry: Entry, received_at: int, via: str | None) -> None:
    conn.execute(incident_entries.insert().values(
        id=entry.id, incident_id=entry.incident, author=entry.author, n=entry.n,
        at=entry.at, type=entry.type, statement=entry.raw, received_at=received_at,
        via=via))
    log_store.append_one(conn, "incident-entry", {
        "incident": entry.incident, "entry": entry.id, "author": entry.author,
        "n": entry.n, "type": entry.type, "via": via,
        "statement_sha256": hashlib.sha256(entry.raw.encode()).hexdigest()},
        received_at, entry.incident)


@dataclass(frozen=True)
class StoredEntry:
    """An entry row: the signed statement's fields, and when and how it came here."""

    fields: dict[str, Any]
    statement: str
    received_at: int
    via: str | None


def entries(conn: Connection, incident_id: str) -> list[StoredEntry]:
    """Every entry of the incident in timeline order (signed time, author, number)."""
    rows = conn.execute(select(incident_entries)
                        .where(incident_entries.c.incident_id == incident_id)
                        .order_by(incident_entries.c.at, incident_entries.c.author,
                                  incident_entries.c.n))
    return [StoredEntry(parse_entry(r.statement), r.statement, int(r.received_at), r.via)
            for r in rows]


def statements(conn: Connection, incident_id: str) -> list[str]:
    """The signed statements of the incident, in timeline order (for a history)."""
    return [e.statement for e in entries(conn, incident_id)]


def holds(conn: Connection, kind: str, object_id: str) -> bool:
    """Whether this node holds the call, conversation, query or notification
    ``object_id`` (``kind``: ``call`` | ``conversation`` | ``query`` | ``notice``)."""
    if kind == "query":
        return conn.execute(select(queries.c.call_id).where(
            queries.c.call_id == object_id)).first() is not None
    table = {"call": calls, "conversation": conversations, "notice": notices}[kind]
    return conn.execute(select(table.c.id).where(table.c.id == object_id)).first() \
        is not None
