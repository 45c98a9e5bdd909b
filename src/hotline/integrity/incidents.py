"""Incidents (``incidents``) and their entries (``incident_entries``) checked against
their ``incident`` and ``incident-entry`` log entries.

An entry row keeps the author's signed statement; the log keeps its SHA-256. A statement
that does not hash to it was edited (named, not repairable: a member's copy of the signed
entry is the original). The row's other columns (``incident_id``, ``author``, ``n``,
``at``, ``type``: what the timeline is read and ordered by, and which incident's
timeline and history the entry goes to) must be what that statement says, and ``via``
what was logged: a column that differs is named and set back. An incident row's
``opener``, ``state``, ``members`` and ``invited`` (who the node sends the incident's
entries to, and whom it takes them from) must be what its membership entries logged,
the last of them for the members: a row that differs is named and set back; a row the
log does not know was added outside the node (named, not repaired).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, select, update

from hotline.errors import HotlineError
from hotline.integrity.findings import Change, Finding, Fix, RepairContext
from hotline.integrity.view import MAX_LISTED, LogView
from hotline.protocol.incident import parse_entry
from hotline.store.schema import incident_entries as entry_table
from hotline.store.schema import incidents as incident_table

#: the entry columns read from its signed statement (column -> statement field)
FROM_STATEMENT = {"incident_id": "incident", "author": "author", "n": "n", "at": "at",
                  "type": "type"}


#: rows read at a time (keyset pagination: a large table costs little memory)
BATCH = 5_000


def _rows(conn: Connection, table: Any) -> Iterator[Any]:
    last: str | None = None
    while True:
        query = select(table).order_by(table.c.id).limit(BATCH)
        if last is not None:
            query = query.where(table.c.id > last)
        rows = conn.execute(query).all()
        yield from rows
        if len(rows) < BATCH:
            return
        last = rows[-1].id


def _set(table: Any, key: str, row: str, changes: dict[str, tuple[Any, Any]]) -> Fix:
    def apply(conn: Connection, _ctx: RepairContext) -> None:
        conn.execute(update(table).where(table.c.id == key)
                     .values({c: after for c, (_before, after) in changes.items()}))
    return Fix(tuple(Change(table.name, row, c, b, a) for c, (b, a) in changes.items()),
               apply, {})


def _entry_changes(r: Any, via: str | None) -> dict[str, tuple[Any, Any]]:
    try:
        signed = parse_entry(r.statement)
    except HotlineError:
        return {}  # the digest check names it
    changes = {c: (getattr(r, c), signed[f]) for c, f in FROM_STATEMENT.items()
               if getattr(r, c) != signed[f]}
    if r.via != via:
        changes["via"] = (r.via, via)
    return changes


def incident_entries(conn: Connection, view: LogView) -> Iterator[Finding]:
    """Each stored incident entry hashes to the digest logged when it was stored, and
    its columns are what its statement says; a row the log does not know, or a logged
    entry whose row is gone, is named."""
    seen: set[str] = set()
    for r in _rows(conn, entry_table):
        seen.add(r.id)
        logged = view.incident_entries.get(r.id)
        row = f"id={r.id}"
        if logged is None:
            yield Finding("incidents", "incident_entries", row, "the log holds no entry for "
                          "this incident entry: the row was added outside the node")
            continue
        _incident, digest, idx = logged
        if hashlib.sha256(r.statement.encode()).hexdigest() != digest:
            yield Finding("incidents", "incident_entries", row, "statement does not hash to "
                          f"the digest logged for it ({digest[:16]}…): it was edited (a "
                          "member's copy of the signed entry is the original)", idx)
            continue
        changes = _entry_changes(r, view.incident_vias.get(r.id))
        if changes:
            said = ", ".join(f"{c} is {b!r} but the statement says {a!r}"
                             for c, (b, a) in changes.items())
            yield Finding("incidents", "incident_entries", row, said, idx,
                          _set(entry_table, r.id, row, changes))
    for entry_id in sorted(set(view.incident_entries) - seen)[:MAX_LISTED]:
        incident, _digest, idx = view.incident_entries[entry_id]
        yield Finding("incidents", "incident_entries", f"id={entry_id}",
                      f"the row is missing (incident {incident}); the log keeps only the "
                      "statement's digest (a member's copy of the signed entry is the "
                      "original)", idx)


def incident_rows(conn: Connection, view: LogView) -> Iterator[Finding]:
    """Each incident row's opener, state, members and invited parties are what its
    membership entries logged."""
    for r in _rows(conn, incident_table):
        row = f"id={r.id}"
        logged = view.incidents.get(r.id)
        if logged is None:
            yield Finding("incidents", "incidents", row, "the log holds no membership entry "
                          "for this incident: the row was added outside the node")
            continue
        want = {"opener": logged.opener, "state": logged.state,
                "members": json.dumps(logged.members), "invited": json.dumps(logged.invited)}
        changes = {c: (getattr(r, c), v) for c, v in want.items() if getattr(r, c) != v}
        if changes:
            said = ", ".join(f"{c} is {b!r} but the log says {a!r}"
                             for c, (b, a) in changes.items())
            yield Finding("incidents", "incidents", row, said, logged.idx,
                          _set(incident_table, r.id, row, changes))
