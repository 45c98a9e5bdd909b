"""Links: the peers this node has accepted, their keys, endpoints and sequence counters."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import BigInteger, Connection, bindparam, select, update

from hotline.errors import LinkError
from hotline.protocol.generation import first_seq
from hotline.protocol.keys import PublicKeys
from hotline.protocol.lanes import CONTROL, Lane
from hotline.protocol.offer import LinkOffer
from hotline.store.schema import links


@dataclass(frozen=True)
class Link:
    party: str
    name: str
    keys: PublicKeys
    endpoints: tuple[str, ...]
    accepted_at: int
    #: the link's generation (0 unless it was removed and accepted again)
    generation: int = 0
    #: when it was removed (ms); None for a link in force
    removed_at: int | None = None
    #: the federation protocol the peer last said it speaks (1: one lane, 2: lanes;
    #: 0: not known yet)
    protocol: int = 0


def _row_to_link(row: object) -> Link:
    return Link(party=row.party, name=row.name,  # type: ignore[attr-defined]
                keys=PublicKeys.from_b64(row.sign_key, row.enc_key),  # type: ignore[attr-defined]
                endpoints=tuple(json.loads(row.endpoints)),  # type: ignore[attr-defined]
                accepted_at=row.accepted_at,  # type: ignore[attr-defined]
                generation=int(row.generation),  # type: ignore[attr-defined]
                removed_at=row.removed_at,  # type: ignore[attr-defined]
                protocol=int(row.peer_protocol))  # type: ignore[attr-defined]


def all_links(conn: Connection) -> list[Link]:
    """The links in force (a removed link is not trusted: see :func:`removed_links`)."""
    rows = conn.execute(select(links).where(links.c.removed_at.is_(None))
                        .order_by(links.c.party))
    return [_row_to_link(r) for r in rows]


def known_keys(conn: Connection) -> dict[str, PublicKeys]:
    """Every linked party's keys, removed links' too: what the log's history was signed
    with (``log verify``, evidence)."""
    rows = conn.execute(select(links.c.party, links.c.sign_key, links.c.enc_key))
    return {r.party: PublicKeys.from_b64(r.sign_key, r.enc_key) for r in rows}


def removed_links(conn: Connection) -> list[Link]:
    """Links removed and not accepted again: kept for the history their keys signed."""
    rows = conn.execute(select(links).where(links.c.removed_at.isnot(None))
                        .order_by(links.c.party))
    return [_row_to_link(r) for r in rows]


def in_force(conn: Connection, party: str) -> bool:
    """Whether a link with ``party`` is in force (accepted and not removed)."""
    return conn.execute(select(links.c.party).where(
        links.c.party == party, links.c.removed_at.is_(None))).first() is not None


def mark_removed(conn: Connection, party: str, now_ms: int) -> int:
    """End the link with ``party``: it is no longer trusted, and if accepted again it
    resumes in the next generation, whose sequence numbers start afresh on both sides
    (:mod:`hotline.protocol.generation`). Returns that generation."""
    row = conn.execute(select(links.c.generation).where(links.c.party == party,
                                                        links.c.removed_at.is_(None))).first()
    if row is None:
        raise LinkError("no-link", f"there is no link with {party}", status=404)
    generation = int(row.generation) + 1
    first = first_seq(generation)
    conn.execute(update(links).where(links.c.party == party).values(
        removed_at=now_ms, generation=generation, send_seq=first - 1, recv_next=first,
        bulk_send_seq=first - 1, bulk_recv_next=first))
    return generation


def accept_offer(conn: Connection, offer: LinkOffer, me: str, now_ms: int,
                 statements: object = None) -> bool:
    """Store a verified offer. Returns True if new, False if it updated endpoints/name.

    Re-accepting an offer with the same keys updates the name and endpoints; an offer
    with different keys for a linked party is refused (key change is a deliberate act).
    A removed link is accepted again, in the generation its removal set: with the same
    keys, or with the key the party's signed key ``statements`` (rotations and
    revocations it made while the link was removed, from its ``hotline export keys``)
    lead to from the link's key; ``link-key-mismatch`` without them.
    """
    from hotline.protocol.keys import b64e

    if offer.party == me:
        raise LinkError("self-link", f"this offer is from {me}, this node's own party",
                        hint="accept the peer's offer, not your own")
    sign, enc = b64e(offer.keys.sign_bytes), b64e(offer.keys.enc_bytes)
    existing = conn.execute(select(links).where(links.c.party == offer.party)).first()
    values = {"name": offer.name, "endpoints": json.dumps(list(offer.endpoints)),
              "offer": offer.raw.decode()}
    if existing is None:
        conn.execute(links.insert().values(
            party=offer.party, sign_key=sign, enc_key=enc, kid=offer.keys.key_id,
            accepted_at=now_ms, **values))
        _log_link(conn, offer, sign, enc, now_ms, 0)
        return True
    if existing.removed_at is not None:
        if existing.sign_key != sign or existing.enc_key != enc:
            # the log's checkpoints and statements under the old keys must stay checkable,
            # so the new key is taken only through the party's signed statements
            _catch_up(conn, offer, statements, now_ms)
        conn.execute(update(links).where(links.c.party == offer.party).values(
            accepted_at=now_ms, removed_at=None, peer_protocol=0, **values))
        _log_link(conn, offer, sign, enc, now_ms, int(existing.generation))
        return True
    if existing.sign_key != sign or existing.enc_key != enc:
        raise LinkError("link-key-mismatch",
                        f"{offer.party} is already linked with different keys",
                        hint="a key change must be confirmed by a new safety-number check")
    conn.execute(update(links).where(links.c.party == offer.party).values(**values))
    _log_link(conn, offer, sign, enc, now_ms, int(existing.generation))
    return False


def _catch_up(conn: Connection, offer: LinkOffer, statements: object, now_ms: int) -> None:
    from hotline.federation.keys import catch_up
    from hotline.protocol.keyhistory import KeyStatementError
    from hotline.store import keys as key_store

    hint = (f"ask {offer.party} for its `hotline export keys` file and accept with "
            "--keys FILE: its signed key history must lead from the removed link's key to "
            "the offered one")
    if statements is None:
        raise LinkError("link-key-mismatch", f"{offer.party}'s removed link had another key, "
                        "and no signed key history leads to the offered one", hint=hint)
    try:
        history = catch_up(conn, offer.party, statements, now_ms)
    except KeyStatementError as exc:
        raise LinkError("link-key-mismatch", f"keys: {exc.error_id}: {exc.message}",
                        hint=hint) from None
    current = history.current
    if current is None or current.kid != offer.keys.key_id:
        raise LinkError("link-key-mismatch", f"keys: {offer.party}'s signed key history "
                        f"leads to key {current.kid if current else 'none'}, not to the "
                        f"offered {offer.keys.key_id}", hint=hint)
    key_store.set_link_keys(conn, offer.party, offer.keys)


def _log_link(conn: Connection, offer: LinkOffer, sign: str, enc: str, now_ms: int,
              generation: int) -> None:
    from hotline.store import log as log_store

    body: dict[str, object] = {
        "party": offer.party, "name": offer.name, "sign_key": sign, "enc_key": enc,
        "kid": offer.keys.key_id, "endpoints": list(offer.endpoints)}
    if generation:  # a link never removed logs what it always did
        body["generation"] = generation
    log_store.append_one(conn, "link", body, now_ms)


# Hot statements are built once; SQLAlchemy then reuses their compiled form. Per lane:
# the control lane's counters are the columns every link had before lanes (0016).
_SEND_COL = {"control": links.c.send_seq, "bulk": links.c.bulk_send_seq}
_RECV_COL = {"control": links.c.recv_next, "bulk": links.c.bulk_recv_next}
_RESERVE = {lane: (update(links).where(links.c.party == bindparam("peer"),
                                       links.c.removed_at.is_(None))
                   .values({col: col + bindparam("n", type_=BigInteger)})
                   .returning(col)) for lane, col in _SEND_COL.items()}
_RECV_NEXT = {lane: select(col).where(links.c.party == bindparam("peer"))
              for lane, col in _RECV_COL.items()}
_SET_RECV_NEXT = {lane: (update(links).where(links.c.party == bindparam("peer"))
                         .values({col: bindparam("value")}))
                  for lane, col in _RECV_COL.items()}


def reserve_seqs(conn: Connection, peer: str, count: int, lane: Lane = CONTROL) -> int:
    """Reserve ``count`` consecutive send sequence numbers of ``lane``; returns the first.

    Raises ``no-link`` (404) if the link is not in force: the caller's view of the links
    may predate a removal committed a moment ago, and nothing may wait for a removed
    link (it would sit in the outbox outside the removal's report)."""
    last = conn.execute(_RESERVE[lane], {"peer": peer, "n": count}).scalar_one_or_none()
    if last is None:
        raise LinkError("no-link", f"there is no link with {peer}", status=404)
    return int(last) - count + 1


def send_seq(conn: Connection, peer: str, lane: Lane = CONTROL) -> int:
    """The last sequence number of ``lane`` reserved for ``peer``."""
    return int(conn.execute(select(_SEND_COL[lane]).where(links.c.party == peer))
               .scalar_one())


def recv_next(conn: Connection, peer: str, lane: Lane = CONTROL) -> int:
    """The next sequence number of ``lane`` to release from ``peer``."""
    return int(conn.execute(_RECV_NEXT[lane], {"peer": peer}).scalar_one())


def set_recv_next(conn: Connection, peer: str, value: int, lane: Lane = CONTROL) -> None:
    conn.execute(_SET_RECV_NEXT[lane], {"peer": peer, "value": value})


def set_protocol(conn: Connection, peer: str, version: int) -> bool:
    """Note the protocol ``peer`` said it speaks; True if that changed what we knew."""
    done = conn.execute(update(links).where(links.c.party == peer,
                                            links.c.peer_protocol != version)
                        .values(peer_protocol=version))
    return bool(done.rowcount)
