"""Inbound envelopes: stored once per (sender, id), released to the application in order."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, select, update

from hotline.protocol.lanes import BULK, CONTROL, Lane, lane_of
from hotline.store import links as link_store
from hotline.store.schema import inbound

#: The type of a row (or envelope) standing for one a database lost: see
#: ``integrity/lost.py`` and docs/protocol.md §8.
LOST_TYPE = "seq.lost"


@dataclass(frozen=True)
class Stored:
    envelope_id: str
    seq: int
    type: str
    payload: str
    envelope: bytes
    received_at: int
    lane: str = CONTROL


_STORED = (inbound.c.envelope_id, inbound.c.seq, inbound.c.type, inbound.c.payload,
           inbound.c.envelope, inbound.c.received_at, inbound.c.lane)


def _stored(row: object) -> Stored:
    return Stored(row.envelope_id, int(row.seq), row.type,  # type: ignore[attr-defined]
                  row.payload, bytes(row.envelope), int(row.received_at),  # type: ignore[attr-defined]
                  row.lane)  # type: ignore[attr-defined]


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
    lane: str = CONTROL


def by_ids(conn: Connection, peer: str, ids: list[str]) -> dict[str, Stored]:
    """Stored envelopes of ``peer`` among ``ids``, in one query."""
    rows = conn.execute(select(*_STORED).where(inbound.c.peer == peer,
                                               inbound.c.envelope_id.in_(ids)))
    return {r.envelope_id: _stored(r) for r in rows}


def by_seqs(conn: Connection, peer: str, seqs: list[int],
            lane: Lane = CONTROL) -> dict[int, Stored]:
    """Stored envelopes of ``peer`` among sequence numbers ``seqs`` of ``lane``."""
    rows = conn.execute(select(*_STORED).where(inbound.c.peer == peer,
                                               inbound.c.lane == lane,
                                               inbound.c.seq.in_(seqs)))
    return {int(r.seq): _stored(r) for r in rows}


def fill_placeholder(conn: Connection, peer: str, seq: int, type_: str, payload: str,
                     envelope: bytes, sent_at: int, lane: Lane = CONTROL) -> None:
    """The envelope a ``seq.lost`` row stood for arrived after all: it takes the row."""
    conn.execute(update(inbound).where(inbound.c.peer == peer, inbound.c.seq == seq,
                                       inbound.c.lane == lane,
                                       inbound.c.type == LOST_TYPE,
                                       inbound.c.release_no.is_(None))
                 .values(type=type_, payload=payload, envelope=envelope, sent_at=sent_at))


def add_many(conn: Connection, rows: list[dict[str, object]]) -> None:
    if rows:
        conn.execute(inbound.insert(), rows)


def release(conn: Connection, peer: str, now_ms: int) -> list[Released]:
    """Release every stored envelope from ``peer`` that is next in its lane's sequence:
    the control lane first, then the bulk lane, where an envelope also waits until the
    control lane is released past its ``after`` (docs/protocol.md, "Lanes").

    Envelopes that arrived ahead of a gap stay stored but unreleased until the gap
    fills, so the application always sees each lane's messages in sequence order.
    """
    control = _next_run(conn, peer, CONTROL, None)
    bulk = _next_run(conn, peer, BULK, link_store.recv_next(conn, peer) + len(control))
    ids = control + bulk
    if not ids:
        return []
    last_no = conn.execute(select(func.max(inbound.c.release_no))).scalar() or 0
    conn.execute(
        update(inbound).where(inbound.c.id == bindparam("row_id"))
        .values(release_no=bindparam("no"), released_at=now_ms),
        [{"row_id": row_id, "no": last_no + offset} for offset, row_id in enumerate(ids, 1)])
    runs: tuple[tuple[Lane, list[int]], ...] = ((CONTROL, control), (BULK, bulk))
    for lane, run in runs:
        if run:
            link_store.set_recv_next(conn, peer, link_store.recv_next(conn, peer, lane)
                                     + len(run), lane)
    rows = conn.execute(select(inbound).where(inbound.c.id.in_(ids))
                        .order_by(inbound.c.release_no))
    return [_released(r) for r in rows]


def _next_run(conn: Connection, peer: str, lane: Lane, control_next: int | None) -> list[int]:
    """Row ids of the unbroken run of ``lane`` that is next to release; with
    ``control_next`` (the bulk lane), it stops at the first envelope whose ``after``
    the control lane has not yet released."""
    next_seq = link_store.recv_next(conn, peer, lane)
    waiting = conn.execute(
        select(inbound.c.id, inbound.c.seq, inbound.c.after_seq)
        .where(inbound.c.peer == peer, inbound.c.lane == lane, inbound.c.seq >= next_seq,
               inbound.c.release_no.is_(None))
        .order_by(inbound.c.seq))
    ids: list[int] = []
    for row in waiting:
        if row.seq != next_seq:
            break
        if control_next is not None and row.after_seq is not None \
                and row.after_seq >= control_next:
            break  # depends on control traffic not yet released
        ids.append(row.id)
        next_seq += 1
    return ids


def _released(r: object) -> Released:
    return Released(release_no=int(r.release_no), peer=r.peer,  # type: ignore[attr-defined]
                    envelope_id=r.envelope_id, seq=int(r.seq),  # type: ignore[attr-defined]
                    type=r.type, payload=r.payload,  # type: ignore[attr-defined]
                    sent_at=int(r.sent_at), received_at=int(r.received_at),  # type: ignore[attr-defined]
                    lane=r.lane)  # type: ignore[attr-defined]


def gaps(conn: Connection, peer: str | None = None) -> dict[tuple[str, Lane], int]:
    """Per (peer, lane) (or for ``peer``): the sequence number the node waits on — the
    next to release — when envelopes after it are stored but held back (a gap). A bulk
    envelope held only for the control traffic it depends on is not a gap of its own
    but one of the control lane: the node waits on the control seq its ``after`` needs
    (else a bulk envelope naming an ``after`` that never comes would stall the bulk lane
    with no gap reported and no alarm)."""
    query = (select(inbound.c.peer, inbound.c.lane, func.min(inbound.c.seq).label("first"))
             .where(inbound.c.release_no.is_(None)).group_by(inbound.c.peer, inbound.c.lane))
    if peer is not None:
        query = query.where(inbound.c.peer == peer)
    held = {(r.peer, lane_of(r.lane)): int(r.first) for r in conn.execute(query)}
    out: dict[tuple[str, Lane], int] = {}
    for (party, lane), first in held.items():
        waiting = link_store.recv_next(conn, party, lane)
        if first > waiting:
            out[(party, lane)] = waiting
        elif lane == BULK and (party, CONTROL) not in out:
            control_next = link_store.recv_next(conn, party, CONTROL)
            after = conn.execute(select(inbound.c.after_seq).where(
                inbound.c.peer == party, inbound.c.lane == BULK,
                inbound.c.seq == first)).scalar()
            if after is not None and after >= control_next:
                out[(party, CONTROL)] = control_next
    return out


def released_after(conn: Connection, after: int, limit: int,
                   types: Collection[str] | None = None) -> list[Released]:
    """Up to ``limit`` released envelopes after release number ``after``, in release
    order; only those of ``types`` if given."""
    query = select(inbound).where(inbound.c.release_no > after)
    if types is not None:
        query = query.where(inbound.c.type.in_(list(types)))
    rows = conn.execute(query.order_by(inbound.c.release_no).limit(limit))
    return [_released(r) for r in rows]


def count(conn: Connection) -> dict[str, tuple[int, int | None]]:
    """Per peer: envelopes received and the time of the last one."""
    rows = conn.execute(select(inbound.c.peer, func.count().label("n"),
                               func.max(inbound.c.received_at).label("last"))
                        .group_by(inbound.c.peer))
    return {r.peer: (int(r.n), r.last) for r in rows}
