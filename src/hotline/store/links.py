"""Links: the peers this node has accepted, their keys, endpoints and sequence counters."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import BigInteger, Connection, bindparam, select, update

from hotline.errors import LinkError
from hotline.protocol.keys import PublicKeys
from hotline.protocol.offer import LinkOffer
from hotline.store.schema import links


@dataclass(frozen=True)
class Link:
    party: str
    name: str
    keys: PublicKeys
    endpoints: tuple[str, ...]
    accepted_at: int


def _row_to_link(row: object) -> Link:
    return Link(party=row.party, name=row.name,  # type: ignore[attr-defined]
                keys=PublicKeys.from_b64(row.sign_key, row.enc_key),  # type: ignore[attr-defined]
                endpoints=tuple(json.loads(row.endpoints)),  # type: ignore[attr-defined]
                accepted_at=row.accepted_at)  # type: ignore[attr-defined]


def all_links(conn: Connection) -> list[Link]:
    rows = conn.execute(select(links).order_by(links.c.party))
    return [_row_to_link(r) for r in rows]


def accept_offer(conn: Connection, offer: LinkOffer, me: str, now_ms: int) -> bool:
    """Store a verified offer. Returns True if new, False if it updated endpoints/name.

    Re-accepting an offer with the same keys updates the name and endpoints; an offer
    with different keys for a linked party is refused (key change is a deliberate act).
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
        _log_link(conn, offer, sign, enc, now_ms)
        return True
    if existing.sign_key != sign or existing.enc_key != enc:
        raise LinkError("link-key-mismatch",
                        f"{offer.party} is already linked with different keys",
                        hint="a key change must be confirmed by a new safety-number check")
    conn.execute(update(links).where(links.c.party == offer.party).values(**values))
    _log_link(conn, offer, sign, enc, now_ms)
    return False


def _log_link(conn: Connection, offer: LinkOffer, sign: str, enc: str, now_ms: int) -> None:
    from hotline.store import log as log_store

    log_store.append_one(conn, "link", {"party": offer.party, "name": offer.name,
                                        "sign_key": sign, "enc_key": enc,
                                        "kid": offer.keys.key_id,
                                        "endpoints": list(offer.endpoints)}, now_ms)


# Hot statements are built once; SQLAlchemy then reuses their compiled form.
_RESERVE = (update(links).where(links.c.party == bindparam("peer"))
            .values(send_seq=links.c.send_seq + bindparam("n", type_=BigInteger))
            .returning(links.c.send_seq))
_RECV_NEXT = select(links.c.recv_next).where(links.c.party == bindparam("peer"))
_SET_RECV_NEXT = (update(links).where(links.c.party == bindparam("peer"))
                  .values(recv_next=bindparam("value")))


def reserve_seqs(conn: Connection, peer: str, count: int) -> int:
    """Reserve ``count`` consecutive send sequence numbers; returns the first."""
    last = conn.execute(_RESERVE, {"peer": peer, "n": count}).scalar_one()
    return int(last) - count + 1


def recv_next(conn: Connection, peer: str) -> int:
    return int(conn.execute(_RECV_NEXT, {"peer": peer}).scalar_one())


def set_recv_next(conn: Connection, peer: str, value: int) -> None:
    conn.execute(_SET_RECV_NEXT, {"peer": peer, "value": value})
