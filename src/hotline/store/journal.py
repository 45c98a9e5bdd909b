"""The event journal: what the operator event stream shows, cursor-ordered and replayable."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from hotline.store.schema import journal


@dataclass(frozen=True)
class Entry:
    id: int
    kind: str
    subject: str
    body: dict[str, Any]
    at: int

    def as_dict(self) -> dict[str, Any]:
        return {"cursor": self.id, "kind": self.kind, **self.body}


def append(conn: Connection, kind: str, subject: str, body: dict[str, Any], at: int) -> Entry:
    result = conn.execute(journal.insert().values(kind=kind, subject=subject,
                                                  body=json.dumps(body, sort_keys=True), at=at))
    key = result.inserted_primary_key
    assert key is not None
    return Entry(int(key[0]), kind, subject, body, at)


def after(conn: Connection, cursor: int, limit: int) -> list[Entry]:
    rows = conn.execute(select(journal).where(journal.c.id > cursor)
                        .order_by(journal.c.id).limit(limit))
    return [Entry(r.id, r.kind, r.subject, json.loads(r.body), int(r.at)) for r in rows]
