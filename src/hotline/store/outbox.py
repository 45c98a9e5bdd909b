"""The outbox: envelopes committed with the event they carry, until a receipt arrives."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hotline.store.schema import outbox


@dataclass(frozen=True)
class Pending:
    envelope_id: str
    seq: int
    type: str
    payload: str
    envelope: bytes
    sealed_at: int


@dataclass(frozen=True)
class OutboxCounts:
    queued: int
    delivered: int
    last_receipt_at: int | None


async def add(conn: AsyncConnection, rows: list[dict[str, object]]) -> None:
    await conn.execute(outbox.insert(), rows)


async def pending(conn: AsyncConnection, peer: str, limit: int, max_bytes: int) -> list[Pending]:
    """The oldest undelivered envelopes for ``peer``, in sequence order, within a byte budget."""
    rows = await conn.execute(
        select(outbox.c.envelope_id, outbox.c.seq, outbox.c.type, outbox.c.payload,
               outbox.c.envelope, outbox.c.sealed_at)
        .where(outbox.c.peer == peer, outbox.c.delivered_at.is_(None))
        .order_by(outbox.c.seq).limit(limit))
    out: list[Pending] = []
    size = 0
    for row in rows:
        size += len(row.envelope) + 1
        if out and size > max_bytes:
            break
        out.append(Pending(row.envelope_id, int(row.seq), row.type, row.payload,
                           bytes(row.envelope), int(row.sealed_at)))
    return out


async def resealed(conn: AsyncConnection, envelope_id: str, envelope: bytes,
                   sealed_at: int) -> None:
    """Replace a waiting envelope with a fresh sealing of the same message."""
    await conn.execute(update(outbox).where(outbox.c.envelope_id == envelope_id,
                                            outbox.c.delivered_at.is_(None))
                       .values(envelope=envelope, sealed_at=sealed_at))


async def mark_delivered(conn: AsyncConnection, delivered: list[tuple[str, bytes, int]]) -> None:
    """Store verified receipts: ``(envelope_id, receipt bytes, our time of delivery)``."""
    if not delivered:
        return
    await conn.execute(
        update(outbox).where(outbox.c.envelope_id == bindparam("eid"),
                             outbox.c.delivered_at.is_(None))
        .values(delivered_at=bindparam("at"), receipt=bindparam("rcpt")),
        [{"eid": eid, "rcpt": receipt, "at": at} for eid, receipt, at in delivered])


async def counts(conn: AsyncConnection) -> dict[str, OutboxCounts]:
    rows = await conn.execute(
        select(outbox.c.peer, func.count().label("total"),
               func.count(outbox.c.delivered_at).label("delivered"),
               func.max(outbox.c.delivered_at).label("last"))
        .group_by(outbox.c.peer))
    return {r.peer: OutboxCounts(queued=int(r.total - r.delivered), delivered=int(r.delivered),
                                 last_receipt_at=r.last) for r in rows}
