"""The outbox: envelopes committed with the event they carry, until a receipt arrives."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hotline.store.schema import outbox


@dataclass(frozen=True)
class Pending:
    envelope_id: str
    seq: int
    envelope: bytes


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
        select(outbox.c.envelope_id, outbox.c.seq, outbox.c.envelope)
        .where(outbox.c.peer == peer, outbox.c.delivered_at.is_(None))
        .order_by(outbox.c.seq).limit(limit))
    out: list[Pending] = []
    size = 0
    for row in rows:
        size += len(row.envelope) + 1
        if out and size > max_bytes:
            break
        out.append(Pending(row.envelope_id, int(row.seq), bytes(row.envelope)))
    return out


async def mark_delivered(conn: AsyncConnection, delivered: list[tuple[str, bytes, int]]) -> None:
    """Store verified receipts: ``(envelope_id, receipt bytes, receipt time)``."""
    for envelope_id, receipt, at in delivered:
        await conn.execute(update(outbox).where(outbox.c.envelope_id == envelope_id,
                                                outbox.c.delivered_at.is_(None))
                           .values(delivered_at=at, receipt=receipt))


async def counts(conn: AsyncConnection) -> dict[str, OutboxCounts]:
    rows = await conn.execute(
        select(outbox.c.peer, func.count().label("total"),
               func.count(outbox.c.delivered_at).label("delivered"),
               func.max(outbox.c.delivered_at).label("last"))
        .group_by(outbox.c.peer))
    return {r.peer: OutboxCounts(queued=int(r.total - r.delivered), delivered=int(r.delivered),
                                 last_receipt_at=r.last) for r in rows}
