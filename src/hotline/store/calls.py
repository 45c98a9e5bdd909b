"""Calls and their signed events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from hotline.store import log as log_store
from hotline.store.schema import call_events, calls


@dataclass(frozen=True)
class CallRow:
    id: str
    direction: str
    peer: str
    caller_role: str
    callee_role: str
    reason: str | None
    state: str
    step: int | None
    chain: str | None
    next_ring: int
    placed_at: int
    started_at: int | None
    deliver_by: int | None
    expires_at: int | None
    parent_id: str | None
    envelope_id: str | None
    statements: int
    updated_at: int


def _row(r: Any) -> CallRow:
    return CallRow(**{c.name: getattr(r, c.name) for c in calls.columns})


def insert(conn: Connection, **values: Any) -> None:
    conn.execute(calls.insert().values(**values))


def get(conn: Connection, call_id: str) -> CallRow | None:
    row = conn.execute(select(calls).where(calls.c.id == call_id)).first()
    return None if row is None else _row(row)


def change(conn: Connection, call_id: str, **values: Any) -> None:
    conn.execute(update(calls).where(calls.c.id == call_id).values(**values))


def recent(conn: Connection, limit: int, active_only: bool = False) -> list[CallRow]:
    query = select(calls).order_by(calls.c.placed_at.desc(), calls.c.id).limit(limit)
    if active_only:
        query = query.where(calls.c.state.in_(("placed", "delivered", "ringing",
                                                "undeliverable")))
    return [_row(r) for r in conn.execute(query)]


#: A call in one of these states has not ended (on either side of the line).
OPEN_STATES = ("placed", "delivered", "ringing", "undeliverable")


def open_with(conn: Connection, peer: str) -> list[CallRow]:
    """The calls with ``peer``, both directions, that have not ended, oldest first."""
    rows = conn.execute(select(calls).where(calls.c.peer == peer,
                                            calls.c.state.in_(OPEN_STATES))
                        .order_by(calls.c.placed_at, calls.c.id))
    return [_row(r) for r in rows]


_KNOWN_EVENT = select(call_events.c.id).where(
    call_events.c.call_id == bindparam("call_id"), call_events.c.signer == bindparam("signer"),
    call_events.c.n == bindparam("n"))


def add_event(conn: Connection, *, call_id: str, signer: str, n: int, state: str,
              statement: str, verified: bool, at: int, fresh: bool = False) -> bool:
    """Store one statement; False if the signer's statement ``n`` is already stored.
    ``fresh``: the caller just numbered it (our own), so it cannot be stored yet."""
    if not fresh and conn.execute(_KNOWN_EVENT, {"call_id": call_id, "signer": signer,
                                                 "n": n}).first() is not None:
        return False
    conn.execute(call_events.insert().values(call_id=call_id, signer=signer, n=n, state=state,
                                             statement=statement, verified=int(verified),
                                             at=at))
    log_store.append_one(conn, "call-state", {"call": call_id, "signer": signer, "n": n,
                                              "state": state, "statement": statement},
                         at, call_id)
    return True


def statement(conn: Connection, call_id: str, signer: str, n: int) -> str | None:
    """The statement ``signer`` numbered ``n`` for the call, as stored, or None."""
    row = conn.execute(select(call_events.c.statement).where(
        call_events.c.call_id == call_id, call_events.c.signer == signer,
        call_events.c.n == n)).first()
    return None if row is None else str(row.statement)


@dataclass(frozen=True)
class EventRow:
    call_id: str
    signer: str
    statement: str
    verified: bool


def events(conn: Connection, call_ids: list[str]) -> dict[str, list[EventRow]]:
    """Statements per call, in the order they were stored."""
    out: dict[str, list[EventRow]] = {cid: [] for cid in call_ids}
    if not call_ids:
        return out
    rows = conn.execute(select(call_events).where(call_events.c.call_id.in_(call_ids))
                        .order_by(call_events.c.id))
    for r in rows:
        out[r.call_id].append(EventRow(r.call_id, r.signer, r.statement, bool(r.verified)))
    return out
