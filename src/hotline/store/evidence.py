"""Evidence of a peer's misbehaviour: one row per distinct conflicting pair.

Every place that keeps evidence (an equivocating envelope, a checkpoint that equivocates,
shrinks, fails its proof or states an impossible tree, a checkpoint signed for another
party's log) records it here, and only here. A pair is the statement that shows the
misbehaviour and the one it conflicts with (``other``, which may be absent); it is
identified by ``pair_digest``, so the same two statements sent again, in either order,
only count a repeat and move ``last_at``. A peer re-sending one proof of its own
misbehaviour therefore cannot grow the table; new rows need new, distinct statements
that the peer itself signed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from hotline.store.schema import evidence

#: Longest ``detail`` kept: the text is ours, but it quotes sizes and ids a peer chose.
DETAIL_MAX = 1000


def pair_digest(statement: bytes, other: bytes | None) -> str:
    """Hex SHA-256 naming the unordered pair {``statement``, ``other``}.

    Each part is length-prefixed (8 bytes, big-endian) so no two different pairs share
    an encoding; the parts are sorted so (A, B) and (B, A) are the same pair. A missing
    ``other`` counts as an empty part.
    """
    h = hashlib.sha256()
    for part in sorted((statement, other or b"")):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


@dataclass(frozen=True)
class EvidenceRow:
    """One kept pair. ``count`` is how many times it was presented (1: just now, first);
    ``first_at``/``last_at`` are ms on the node's wall clock."""

    id: int
    peer: str
    kind: str
    detail: str
    statement: bytes
    other: bytes | None
    pair: str
    count: int
    first_at: int
    last_at: int

    @property
    def new(self) -> bool:
        """Whether this was the first time the pair was presented."""
        return self.count == 1

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "peer": self.peer, "kind": self.kind, "detail": self.detail,
                "pair": self.pair, "count": self.count, "first_at": self.first_at,
                "last_at": self.last_at}


def _row(r: Any) -> EvidenceRow:
    other = None if r.other_envelope is None else bytes(r.other_envelope)
    return EvidenceRow(int(r.id), str(r.peer), str(r.kind), str(r.detail), bytes(r.envelope),
                       other, str(r.pair), int(r.count), int(r.at), int(r.last_at))


def record(conn: Connection, *, peer: str, kind: str, detail: str, statement: bytes,
           other: bytes | None, now_ms: int) -> EvidenceRow:
    """Keep the pair (``statement``, ``other``) as evidence of ``kind`` against ``peer``,
    or count one more presentation of a pair already kept. Returns the row as written
    (``.new`` if it was the first time).

    One statement (an insert that turns into an update on the unique (peer, kind, pair)
    key), so two writers sharing a PostgreSQL database cannot both insert the pair.
    """
    values = {"peer": peer, "kind": kind, "detail": detail[:DETAIL_MAX],
              "envelope": statement, "other_envelope": other,
              "pair": pair_digest(statement, other), "count": 1, "at": now_ms,
              "last_at": now_ms}
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(evidence).values(**values)
    upsert = insert.on_conflict_do_update(
        index_elements=[evidence.c.peer, evidence.c.kind, evidence.c.pair],
        set_={"count": evidence.c.count + 1, "last_at": insert.excluded.last_at})
    conn.execute(upsert)
    written = conn.execute(select(evidence).where(
        evidence.c.peer == peer, evidence.c.kind == kind,
        evidence.c.pair == values["pair"])).one()
    return _row(written)


def listing(conn: Connection, limit: int = 100, peer: str | None = None
            ) -> list[EvidenceRow]:
    """Kept pairs, most recently presented first (at most ``limit``)."""
    query = select(evidence).order_by(evidence.c.last_at.desc(), evidence.c.id.desc())
    if peer is not None:
        query = query.where(evidence.c.peer == peer)
    return [_row(r) for r in conn.execute(query.limit(limit))]
