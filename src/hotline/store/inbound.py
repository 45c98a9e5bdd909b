"""Inbound envelopes: stored once per (sender, id), released to the application in order."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, select, update

from hotline.store import links as link_store
from hotline.store.schema import inbound


@dataclass(frozen=True)
class Stored:
    envelope_id: str
    seq: int
    type: str
    payload: str
    envelope: bytes
    received_at: int


_STORED = (inbound.c.envelope_id, inbound.c.seq, inbound.c.type, inbound.c.payload,
           inbound.c.envelope, inbound.c.received_at)


def _stored(row: object) -> Stored:
    return Stored(row.envelope_id, int(row.seq), row.type,  # type: ignore[attr-defined]
                  row.payload, bytes(row.envelope), int(row.received_at))  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Released:
    release_no: int
    peer: str
    envelope_id: str
    seq: int
    type: str
    payload: str
    sent_at: int
    received_at: int


def by_ids(conn: Connection, peer: str, ids: list[str]) -> dict[str, Stored]:
    """Stored envelopes of ``peer`` among ``ids``, in one query."""
    rows = conn.execute(select(*_STORED).where(inbound.c.peer == peer,
                                               inbound.c.envelope_id.in_(ids)))
    return {r.envelope_id: _stored(r) for r in rows}


def by_seqs(conn: Connection, peer: str, seqs: list[int]) -> dict[int, Stored]:
    """Stored envelopes of ``peer`` among sequence numbers ``seqs``, in one query."""
    rows = conn.execute(select(*_STORED).where(inbound.c.peer == peer,
                                               inbound.c.seq.in_(seqs)))
    return {int(r.seq): _stored(r) for r in rows}


def add_many(conn: Connection, rows: list[dict[str, object]]) -> None:
    if rows:
        conn.execute(inbound.insert(), rows)


def release(conn: Connection, peer: str, now_ms: int) -> list[Released]:
    """Release every stored envelope from ``peer`` that is next in sequence.

    Envelopes that arrived ahead of a gap stay stored but unreleased until the gap
    fills, so the application always sees a link's messages in sequence order.
    """
    next_seq = link_store.recv_next(conn, peer)
    waiting = conn.execute(
        select(inbound.c.id, inbound.c.seq).where(inbound.c.peer == peer,
                                                  inbound.c.seq >= next_seq,
                                                  inbound.c.release_no.is_(None))
        .order_by(inbound.c.seq))
    ids: list[int] = []
    for row in waiting:
        if row.seq != next_seq:
            break
        ids.append(row.id)
        next_seq += 1
    if not ids:
        return []
    last_no = conn.execute(select(func.max(inbound.c.release_no))).scalar() or 0
    conn.execute(
        update(inbound).where(inbound.c.id == bindparam("row_id"))
        .values(release_no=bindparam("no"), released_at=now_ms),
        [{"row_id": row_id, "no": last_no + offset} for offset, row_id in enumerate(ids, 1)])
    link_store.set_recv_next(conn, peer, next_seq)
    rows = conn.execute(select(inbound).where(inbound.c.id.in_(ids))
                        .order_by(inbound.c.release_no))
    return [_released(r) for r in rows]


def _released(r: object) -> Released:
    return Released(release_no=int(r.release_no), peer=r.peer,  # type: ignore[attr-defined]
                    envelope_id=r.envelope_id, seq=int(r.seq),  # type: ignore[attr-defined]
                    type=r.type, payload=r.payload,  # type: ignore[attr-defined]
                    sent_at=int(r.sent_at), received_at=int(r.received_at))  # type: ignore[attr-defined]


def released_after(conn: Connection, after: int, limit: int) -> list[Released]:
    rows = conn.execute(select(inbound).where(inbound.c.release_no > after)
                        .order_by(inbound.c.release_no).limit(limit))
    return [_released(r) for r in rows]


def count(conn: Connection) -> dict[str, tuple[int, int | None]]:
    """Per peer: envelopes received and the time of the last one."""
    rows = conn.execute(select(inbound.c.peer, func.count().label("n"),
                               func.max(inbound.c.received_at).label("last"))
                        .group_by(inbound.c.peer))
    return {r.peer: (int(r.n), r.last) for r in rows}
