"""Formatted notifications (``notices``) and their signed receipts (``notice_receipts``)
checked against their ``notice`` and ``notice-receipt`` log entries.

A ``notice`` entry logs every column a reader is shown (party, template, version,
language, recipients, the checked fields, the sender's role and operator, its signed
time); the node never changes a notice. A row that differs is named and set back from
the entry. A ``notice-receipt`` entry logs the exact signed statement; a receipt row's
statement must be that one, and its columns (operator, role, reason, at) what the
statement says. The node's own *refused* receipts are logged but not stored (the notice
they refuse is kept nowhere). A row the log does not know was added outside the node
(named, not repaired); a missing row is named (a notice is put back from its entry).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, select

from hotline.integrity.findings import Change, Finding, Fix, RepairContext
from hotline.integrity.view import MAX_LISTED, NOTICE_LOGGED, LogView, notice_digest
from hotline.protocol import canonical
from hotline.store.schema import log_entries, notice_receipts, notices

LOGGED = NOTICE_LOGGED
#: the receipt columns read from its statement
FROM_STATEMENT = ("operator", "role", "reason", "at")


def receipt_digest(statement: str) -> str:
    return hashlib.sha256(statement.encode()).hexdigest()


def _row_values(r: Any) -> dict[str, Any]:
    return {"party": r.party, "template": r.template, "version": int(r.version),
            "lang": r.lang, "recipients": json.loads(r.recipients),
            "fields": json.loads(r.fields), "role": r.role, "operator": r.operator,
            "sent_at": int(r.sent_at)}


def _entry(conn: Connection, idx: int) -> tuple[dict[str, Any], int]:
    text = conn.execute(select(log_entries.c.entry).where(log_entries.c.idx == idx)).scalar()
    obj = json.loads(str(text))
    return obj.get("body", {}), int(obj.get("at", 0))


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """Logged values as the columns hold them."""
    return {**values, "recipients": json.dumps(values["recipients"]),
            "fields": canonical.encode(values["fields"]).decode()}


def _restore(notice_id: str, row: str, before: dict[str, Any] | None,
             logged: dict[str, Any], at: int, me: str) -> Fix:
    after = _columns({k: logged.get(k) for k in LOGGED})
    if before is None:
        def insert(conn: Connection, _ctx: RepairContext) -> None:
            conn.execute(notices.insert().values(
                id=notice_id, received_at=None if after["party"] == me else at, **after))
        return Fix(tuple(Change("notices", row, c, None, v) for c, v in after.items()),
                   insert, {"table": "notices", "row": row, "restored": True})
    changes = {c: (before[c], v) for c, v in after.items() if before[c] != v}

    def apply(conn: Connection, _ctx: RepairContext) -> None:
        conn.execute(notices.update().where(notices.c.id == notice_id)
                     .values({c: a for c, (_b, a) in changes.items()}))
    return Fix(tuple(Change("notices", row, c, b, a) for c, (b, a) in changes.items()),
               apply)


def notice_rows(conn: Connection, view: LogView) -> Iterator[Finding]:
    """Each notice row is what its ``notice`` entry logged; each logged notice has a row."""
    seen: set[str] = set()
    listed = 0
    for r in conn.execute(select(notices).order_by(notices.c.id)):
        seen.add(r.id)
        if r.id in view.notices_unchecked and r.id not in view.notices:
            continue  # logged before its entry held every column
        row = f"id={r.id}"
        logged = view.notices.get(r.id)
        if listed >= MAX_LISTED:
            return
        if logged is None:
            listed += 1
            yield Finding("notices", "notices", row, "the log holds no notice entry for "
                          "this row: it was added outside the node (not repairable from "
                          "the log)")
            continue
        idx, digest = logged
        try:
            same = notice_digest(_row_values(r)) == digest
        except (ValueError, TypeError):  # a column no longer JSON, or not canonical
            same = False
        if same:
            continue
        listed += 1
        body, at = _entry(conn, idx)
        before = {c: getattr(r, c) for c in LOGGED}
        before["version"] = int(r.version)
        before["sent_at"] = int(r.sent_at)
        fix = _restore(r.id, row, before, body, at, view.me)
        said = "; ".join(f"{c.column} is {c.before!r} but the log says {c.after!r}"
                         for c in fix.changes)
        yield Finding("notices", "notices", row, said or "differs from its entry", idx,
                      fix if fix.changes else None)
    for notice_id in sorted(set(view.notices) - seen):
        if listed >= MAX_LISTED:
            return
        listed += 1
        idx, _digest = view.notices[notice_id]
        body, at = _entry(conn, idx)
        row = f"id={notice_id}"
        yield Finding("notices", "notices", row, "the row is missing; the log holds all of "
                      "it", idx, _restore(notice_id, row, None, body, at, view.me))


def receipt_rows(conn: Connection, view: LogView) -> Iterator[Finding]:
    """Each stored receipt is the statement its ``notice-receipt`` entry logged, and its
    columns are what that statement says; each logged receipt (but our own *refused*
    ones) has a row."""
    seen: set[tuple[str, str, str]] = set()
    listed = 0
    for r in conn.execute(select(notice_receipts).order_by(
            notice_receipts.c.notice_id, notice_receipts.c.party, notice_receipts.c.kind)):
        if listed >= MAX_LISTED:
            return
        key = (r.notice_id, r.party, r.kind)
        seen.add(key)
        row = f"notice_id={r.notice_id} party={r.party} kind={r.kind}"
        logged = view.notice_receipts.get(key)
        if logged is None:
            listed += 1
            yield Finding("notices", "notice_receipts", row, "the log holds no "
                          "notice-receipt entry for this row: it was added outside the node "
                          "(not repairable from the log)")
            continue
        idx, digest = logged
        statement = r.statement
        changes: dict[str, tuple[Any, Any]] = {}
        if receipt_digest(statement) != digest:
            body, _at = _entry(conn, idx)
            changes["statement"] = (statement, body.get("statement"))
            statement = str(body.get("statement"))
        said = json.loads(statement)
        for column in FROM_STATEMENT:
            if getattr(r, column) != said.get(column):
                changes[column] = (getattr(r, column), said.get(column))
        if changes:
            listed += 1
            text = "; ".join(f"{c} differs from the signed statement the log holds"
                             if c == "statement" else
                             f"{c} is {b!r} but the signed statement says {a!r}"
                             for c, (b, a) in changes.items())
            where = {"notice_id": r.notice_id, "party": r.party, "kind": r.kind}

            def apply(conn: Connection, _ctx: RepairContext,
                      where: dict[str, str] = where,
                      changes: dict[str, tuple[Any, Any]] = changes) -> None:
                conn.execute(notice_receipts.update().where(
                    *[notice_receipts.c[k] == v for k, v in where.items()])
                    .values({c: a for c, (_b, a) in changes.items()}))
            yield Finding("notices", "notice_receipts", row, text, idx, Fix(
                tuple(Change("notice_receipts", row, c, b, a)
                      for c, (b, a) in changes.items()), apply))
    for key in sorted(set(view.notice_receipts) - seen):
        if listed >= MAX_LISTED:
            return
        if key[1] == view.me and key[2] == "refused":
            continue  # our refusal of a notice kept nowhere: logged, never stored
        listed += 1
        idx = view.notice_receipts[key][0]
        body, _at = _entry(conn, idx)
        row = f"notice_id={key[0]} party={key[1]} kind={key[2]}"
        yield Finding("notices", "notice_receipts", row, "the row is missing; the log "
                      "holds its signed statement", idx, _insert_receipt(key, row, body))


def _insert_receipt(key: tuple[str, str, str], row: str, body: dict[str, Any]) -> Fix:
    statement = str(body.get("statement"))
    said = json.loads(statement)
    values = {"notice_id": key[0], "party": key[1], "kind": key[2],
              **{c: said.get(c) for c in FROM_STATEMENT}, "statement": statement,
              "verified": 1}

    def apply(conn: Connection, _ctx: RepairContext) -> None:
        conn.execute(notice_receipts.insert().values(**values))
    return Fix(tuple(Change("notice_receipts", row, c, None, v) for c, v in values.items()),
               apply, {"table": "notice_receipts", "row": row, "restored": True})
