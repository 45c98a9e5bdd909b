"""The outbox: envelopes committed with the event they carry, until a receipt arrives."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Connection,
    LargeBinary,
    and_,
    bindparam,
    cast,
    func,
    select,
    update,
)

from hotline.protocol import canonical
from hotline.protocol.lanes import CONTROL, Lane
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
    #: the lane ``seq`` numbers (:mod:`hotline.protocol.lanes`)
    lane: Lane = CONTROL
    #: bulk only: the last control seq committed before it (signed in the envelope)
    after: int | None = None


@dataclass(frozen=True)
class OutboxCounts:
    queued: int
    delivered: int
    last_receipt_at: int | None
    #: never to be delivered (the link was removed while they waited)
    undeliverable: int = 0


def add(conn: Connection, rows: list[dict[str, object]]) -> None:
    conn.execute(outbox.insert(), rows)


# Hot statements are built once; SQLAlchemy then reuses their compiled form.
_PENDING = (select(outbox.c.envelope_id, outbox.c.seq, outbox.c.type, outbox.c.payload,
                   outbox.c.envelope, outbox.c.sealed_at, outbox.c.deadline_at)
            .where(outbox.c.peer == bindparam("peer"), outbox.c.lane == bindparam("lane"),
                   outbox.c.delivered_at.is_(None),
                   outbox.c.failed_at.is_(None), outbox.c.seq > bindparam("after"))
            .order_by(outbox.c.seq).limit(bindparam("limit")))
# A receipt is proof of delivery: it wins over an earlier "undeliverable" (a batch in
# flight when the link was removed); the log keeps both entries.
_DELIVERED = (update(outbox).where(outbox.c.envelope_id == bindparam("eid"),
                                   outbox.c.delivered_at.is_(None))
              .values(delivered_at=bindparam("at"), receipt=bindparam("rcpt"),
                      failed_at=None, failure=None))


def pending(conn: Connection, peer: str, limit: int, max_bytes: int,
            after_seq: int = 0, lane: Lane = CONTROL) -> list[Pending]:
    """The oldest undelivered envelopes of ``lane`` for ``peer`` after ``after_seq``, in
    sequence order, within a byte budget."""
    rows = conn.execute(_PENDING, {"peer": peer, "limit": limit, "after": after_seq,
                                   "lane": lane})
    out: list[Pending] = []
    size = 0
    for row in rows:
        size += len(row.envelope) + 1
        if out and size > max_bytes:
            break
        out.append(Pending(row.envelope_id, int(row.seq), row.type, row.payload,
                           bytes(row.envelope), int(row.sealed_at),
                           None if row.deadline_at is None else int(row.deadline_at),
                           lane, _after(lane, bytes(row.envelope))))
    return out


def _after(lane: Lane, envelope: bytes) -> int | None:
    """A bulk envelope's signed ``after`` (kept in the envelope, not in a column)."""
    if lane == CONTROL:
        return None
    value = canonical.decode(envelope).get("after")
    return value if isinstance(value, int) else 0


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
        select(outbox.c.envelope_id, outbox.c.peer, outbox.c.seq, outbox.c.subject,
               outbox.c.lane)
        .where(outbox.c.envelope_id.in_([eid for eid, _, _ in delivered]),
               outbox.c.delivered_at.is_(None)))}
    fresh = [d for d in delivered if d[0] in waiting]
    if not fresh:
        return
    conn.execute(_DELIVERED,
                 [{"eid": eid, "rcpt": receipt, "at": at} for eid, receipt, at in fresh])
    log_store.append(conn, [
        Record("receipt", lane_field({"peer": waiting[eid].peer, "id": eid,
                                      "seq": int(waiting[eid].seq),
                                      "subject": waiting[eid].subject,
                                      "receipt": receipt.decode()}, waiting[eid].lane),
               at, waiting[eid].subject)
        for eid, receipt, at in fresh])


def counts(conn: Connection) -> dict[str, OutboxCounts]:
    rows = conn.execute(
        select(outbox.c.peer, func.count().label("total"),
               func.count(outbox.c.delivered_at).label("delivered"),
               func.count(outbox.c.failed_at).label("failed"),
               func.max(outbox.c.delivered_at).label("last"))
        .group_by(outbox.c.peer))
    return {r.peer: OutboxCounts(queued=int(r.total - r.delivered - r.failed),
                                 delivered=int(r.delivered), last_receipt_at=r.last,
                                 undeliverable=int(r.failed)) for r in rows}


@dataclass(frozen=True)
class LaneLoad:
    """One lane's queue to one peer: envelopes waiting, their payload bytes (UTF-8, as
    the bulk bound counts them), and when the oldest of them was committed (ms since
    epoch; None if none waits).

    The oldest is the one first in the lane's order (the lowest ``seq``), not the one
    with the earliest ``created_at``: after a step of the wall clock back, an envelope
    committed later can carry an earlier time. Its age is
    :func:`hotline.clock.elapsed_ms` of ``oldest_at``."""

    queued: int
    payload_bytes: int
    oldest_at: int | None


def utf8_bytes(conn: Connection, column: ColumnElement[str]) -> ColumnElement[int]:
    """The length of a text column in UTF-8 bytes: SQL ``length()`` of text counts
    characters on both engines, which a byte bound must not."""
    if conn.dialect.name == "sqlite":
        return func.length(cast(column, LargeBinary))  # a blob's length is its bytes
    return func.octet_length(column)


def lane_loads(conn: Connection, peer: str | None = None,
               lane: Lane | None = None) -> dict[str, dict[str, LaneLoad]]:
    """Per peer, per lane: what waits (neither delivered nor given up)."""
    agg = (select(outbox.c.peer, outbox.c.lane, func.count().label("n"),
                  func.coalesce(func.sum(utf8_bytes(conn, outbox.c.payload)), 0)
                  .label("nbytes"),
                  func.min(outbox.c.seq).label("first"))
           .where(outbox.c.delivered_at.is_(None), outbox.c.failed_at.is_(None))
           .group_by(outbox.c.peer, outbox.c.lane))
    if peer is not None:
        agg = agg.where(outbox.c.peer == peer)
    if lane is not None:
        agg = agg.where(outbox.c.lane == lane)
    waiting = agg.subquery()
    query = select(waiting.c.peer, waiting.c.lane, waiting.c.n, waiting.c.nbytes,
                   outbox.c.created_at.label("oldest")).join_from(
        waiting, outbox, and_(outbox.c.peer == waiting.c.peer,
                              outbox.c.lane == waiting.c.lane,
                              outbox.c.seq == waiting.c.first))
    out: dict[str, dict[str, LaneLoad]] = {}
    for r in conn.execute(query):
        out.setdefault(r.peer, {})[r.lane] = LaneLoad(
            int(r.n), int(r.nbytes), None if r.oldest is None else int(r.oldest))
    return out


def lane_field(body: dict[str, object], lane: str) -> dict[str, object]:
    """A log entry's body, with ``lane`` only for a lane other than control (entries
    of the control lane read as every entry did before lanes)."""
    if lane != CONTROL:
        body["lane"] = lane
    return body


@dataclass(frozen=True)
class Waiting:
    """An envelope still waiting for its receipt."""

    envelope_id: str
    seq: int
    type: str
    subject: str | None
    lane: str = CONTROL


def waiting(conn: Connection, peer: str) -> list[Waiting]:
    """Every envelope to ``peer`` neither delivered nor given up, in the order they were
    committed (so each lane's in sequence order)."""
    rows = conn.execute(select(outbox.c.envelope_id, outbox.c.seq, outbox.c.type,
                               outbox.c.subject, outbox.c.lane)
                        .where(outbox.c.peer == peer, outbox.c.delivered_at.is_(None),
                               outbox.c.failed_at.is_(None))
                        .order_by(outbox.c.id))
    return [Waiting(r.envelope_id, int(r.seq), r.type, r.subject, r.lane) for r in rows]


def give_up(conn: Connection, peer: str, failure: str, now_ms: int) -> list[Waiting]:
    """Mark every envelope still waiting for ``peer`` as never to be delivered, with
    ``failure`` saying why; one ``undeliverable`` log entry each. Returns them."""
    ended = waiting(conn, peer)
    if not ended:
        return []
    conn.execute(update(outbox).where(outbox.c.peer == peer, outbox.c.delivered_at.is_(None),
                                      outbox.c.failed_at.is_(None))
                 .values(failed_at=now_ms, failure=failure))
    log_store.append(conn, [
        Record("undeliverable", lane_field({"peer": peer, "id": w.envelope_id, "seq": w.seq,
                                            "type": w.type, "reason": failure,
                                            "subject": w.subject}, w.lane),
               now_ms, w.subject)
        for w in ended])
    return ended


def give_up_one(conn: Connection, peer: str, envelope_id: str, failure: str,
                now_ms: int) -> None:
    """Mark one waiting envelope as never to be delivered (an ``undeliverable`` entry)."""
    for w in waiting(conn, peer):
        if w.envelope_id == envelope_id:
            conn.execute(update(outbox).where(outbox.c.envelope_id == envelope_id)
                         .values(failed_at=now_ms, failure=failure))
            log_store.append_one(conn, "undeliverable", lane_field({
                "peer": peer, "id": envelope_id, "seq": w.seq, "type": w.type,
                "reason": failure, "subject": w.subject}, w.lane), now_ms, w.subject)


def failure_of(conn: Connection, envelope_ids: list[str]) -> dict[str, str]:
    """Why each of ``envelope_ids`` that will never be delivered was given up."""
    if not envelope_ids:
        return {}
    rows = conn.execute(select(outbox.c.envelope_id, outbox.c.failure)
                        .where(outbox.c.envelope_id.in_(envelope_ids),
                               outbox.c.failed_at.isnot(None)))
    return {r.envelope_id: r.failure for r in rows}


def holds_undelivered(conn: Connection, peer: str, seq: int, lane: Lane = CONTROL) -> bool:
    """Whether the envelope of ``seq`` of ``lane`` to ``peer`` waits here to be sent."""
    return conn.execute(select(outbox.c.id).where(
        outbox.c.peer == peer, outbox.c.lane == lane, outbox.c.seq == seq,
        outbox.c.delivered_at.is_(None))
    ).first() is not None


def is_delivered(conn: Connection, envelope_id: str) -> bool:
    """Whether the peer's receipt for this envelope has been stored."""
    row = conn.execute(select(outbox.c.delivered_at)
                       .where(outbox.c.envelope_id == envelope_id)).first()
    return row is not None and row.delivered_at is not None


#: Envelope types announcing a change of this node's keys.
KEY_CHANGE_TYPES = ("key.rotate", "key.revoke")


def key_change_waiting(conn: Connection, peer: str) -> bool:
    """Whether a key rotation or revocation to ``peer`` still waits for its receipt."""
    return conn.execute(select(outbox.c.id).where(
        outbox.c.peer == peer, outbox.c.delivered_at.is_(None),
        outbox.c.type.in_(KEY_CHANGE_TYPES)).limit(1)).first() is not None
