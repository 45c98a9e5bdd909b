"""The outbox: envelopes committed with the event they carry, until a receipt arrives."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, select, update

from hotline.store import log as log_store
from hotline.store.log import Record
from hotline.store.schema import outbox


@dataclass(frozen=True)
class Pending:
    envelope_id: str
    seq: int
    type: str
    payload: str
    envelope: bytes
    sealed_at: int
    #: a call signal's lateness deadline (our clock, ms): re-sealed with its budget spent
    deadline_at: int | None = None


@dataclass(frozen=True)
class OutboxCounts:
    queued: int
    delivered: int
    last_receipt_at: int | None


def add(conn: Connection, rows: list[dict[str, object]]) -> None:
    conn.execute(outbox.insert(), rows)


# Hot statements are built once; SQLAlchemy then reuses their compiled form.
_PENDING = (select(outbox.c.envelope_id, outbox.c.seq, outbox.c.type, outbox.c.payload,
                   outbox.c.envelope, outbox.c.sealed_at, outbox.c.deadline_at)
            .where(outbox.c.peer == bindparam("peer"), outbox.c.delivered_at.is_(None),
                   outbox.c.seq > bindparam("after"))
            .order_by(outbox.c.seq).limit(bindparam("limit")))
_DELIVERED = (update(outbox).where(outbox.c.envelope_id == bindparam("eid"),
                                   outbox.c.delivered_at.is_(None))
              .values(delivered_at=bindparam("at"), receipt=bindparam("rcpt")))


def pending(conn: Connection, peer: str, limit: int, max_bytes: int,
            after_seq: int = 0) -> list[Pending]:
    """The oldest undelivered envelopes for ``peer`` after ``after_seq``, in sequence
    order, within a byte budget."""
    rows = conn.execute(_PENDING, {"peer": peer, "limit": limit, "after": after_seq})
    out: list[Pending] = []
    size = 0
    for row in rows:
        size += len(row.envelope) + 1
        if out and size > max_bytes:
            break
        out.append(Pending(row.envelope_id, int(row.seq), row.type, row.payload,
                           bytes(row.envelope), int(row.sealed_at),
                           None if row.deadline_at is None else int(row.deadline_at)))
    return out


def deadlines(conn: Connection, envelope_ids: list[str]) -> dict[str, int]:
    """The current ``deadline_at`` of each of ``envelope_ids`` still waiting (a wall-clock
    step moves it, so a copy kept in memory may be stale)."""
    if not envelope_ids:
        return {}
    rows = conn.execute(select(outbox.c.envelope_id, outbox.c.deadline_at)
                        .where(outbox.c.envelope_id.in_(envelope_ids),
                               outbox.c.delivered_at.is_(None),
                               outbox.c.deadline_at.isnot(None)))
    return {r.envelope_id: int(r.deadline_at) for r in rows}


def resealed(conn: Connection, envelope_id: str, envelope: bytes, sealed_at: int,
             payload: str) -> None:
    """Replace a waiting envelope with a fresh sealing of the same message (its
    transmission fields, if any, renewed in ``payload``)."""
    conn.execute(update(outbox).where(outbox.c.envelope_id == envelope_id,
                                      outbox.c.delivered_at.is_(None))
                 .values(envelope=envelope, sealed_at=sealed_at, payload=payload))


def mark_delivered(conn: Connection, delivered: list[tuple[str, bytes, int]]) -> None:
    """Store verified receipts: ``(envelope_id, receipt bytes, our time of delivery)``,
    and log each receipt the first time it is stored."""
    if not delivered:
        return
    waiting = {r.envelope_id: r for r in conn.execute(
        select(outbox.c.envelope_id, outbox.c.peer, outbox.c.seq, outbox.c.subject)
        .where(outbox.c.envelope_id.in_([eid for eid, _, _ in delivered]),
               outbox.c.delivered_at.is_(None)))}
    fresh = [d for d in delivered if d[0] in waiting]
    if not fresh:
        return
    conn.execute(_DELIVERED,
                 [{"eid": eid, "rcpt": receipt, "at": at} for eid, receipt, at in fresh])
    log_store.append(conn, [
        Record("receipt", {"peer": waiting[eid].peer, "id": eid, "seq": int(waiting[eid].seq),
                           "receipt": receipt.decode()}, at, waiting[eid].subject)
        for eid, receipt, at in fresh])


def counts(conn: Connection) -> dict[str, OutboxCounts]:
    rows = conn.execute(
        select(outbox.c.peer, func.count().label("total"),
               func.count(outbox.c.delivered_at).label("delivered"),
               func.max(outbox.c.delivered_at).label("last"))
        .group_by(outbox.c.peer))
    return {r.peer: OutboxCounts(queued=int(r.total - r.delivered), delivered=int(r.delivered),
                                 last_receipt_at=r.last) for r in rows}


def is_delivered(conn: Connection, envelope_id: str) -> bool:
    """Whether the peer's receipt for this envelope has been stored."""
    row = conn.execute(select(outbox.c.delivered_at)
                       .where(outbox.c.envelope_id == envelope_id)).first()
    return row is not None and row.delivered_at is not None
