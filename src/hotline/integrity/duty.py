"""Duty overrides (who holds a role when, ``schedule_overrides``) checked against their
``duty-override`` log entries: the final schedule, and so who is rung, is computed from
these rows (``calls/duty.py``), and each is logged with every column when it is added
(rows are never changed or deleted by the node). A row that differs is named and set back
from the entry; a missing row is put back; a row the log does not know was added outside
the node (named, not repaired)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, select

from hotline.integrity.findings import Change, Finding, Fix, RepairContext
from hotline.integrity.view import MAX_LISTED, LogView
from hotline.store.schema import schedule_overrides

#: column -> the body field of its ``duty-override`` entry
LOGGED = {"role": "role", "operator": "operator", "from_ms": "from_ms",
          "until_ms": "until_ms", "unavailable": "unavailable", "created_by": "by"}


def _logged(body: dict[str, Any], column: str) -> Any:
    value = body.get(LOGGED[column])
    return int(bool(value)) if column == "unavailable" else value


def _insert(override: int, body: dict[str, Any], at: int) -> Fix:
    values = {c: _logged(body, c) for c in LOGGED}

    def apply(conn: Connection, _ctx: RepairContext) -> None:
        conn.execute(schedule_overrides.insert().values(id=override, created_at=at, **values))
    row = f"id={override}"
    return Fix(tuple(Change("schedule_overrides", row, c, None, v) for c, v in values.items()),
               apply, {"table": "schedule_overrides", "row": row, "restored": True})


def duty_overrides(conn: Connection, view: LogView) -> Iterator[Finding]:
    from hotline.integrity.checks import _set

    seen: set[int] = set()
    listed = 0
    for r in conn.execute(select(schedule_overrides).order_by(schedule_overrides.c.id)):
        if listed >= MAX_LISTED:
            return
        seen.add(int(r.id))
        row = f"id={r.id}"
        logged = view.overrides.get(int(r.id))
        if logged is None:
            listed += 1
            yield Finding("duty", "schedule_overrides", row, "the log holds no duty-override "
                          "entry for this row: it was added outside the node (not repairable "
                          "from the log)")
            continue
        body, idx, _at = logged
        changes = {c: (getattr(r, c), _logged(body, c)) for c in LOGGED
                   if getattr(r, c) != _logged(body, c)}
        if changes:
            listed += 1
            said = "; ".join(f"{c} is {b!r} but the log says {a!r}"
                             for c, (b, a) in changes.items())
            yield Finding("duty", "schedule_overrides", row, said, idx,
                          _set(schedule_overrides, {"id": int(r.id)}, row, changes))
    for override in sorted(set(view.overrides) - seen):
        if listed >= MAX_LISTED:
            return
        listed += 1
        body, idx, at = view.overrides[override]
        yield Finding("duty", "schedule_overrides", f"id={override}", "the row is missing; "
                      "the log holds all of it", idx, _insert(override, body, at))
