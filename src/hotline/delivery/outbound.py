"""Putting envelopes into the outbox from inside a transaction.

Every domain event that must reach a peer (a message, a call, a call state, a desk
report) is sealed and written to the outbox in the *same* transaction as the state
change it carries, so the two commit or vanish together. This is the one place that
reserves sequence numbers and seals; callers only say what to send to whom.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from hotline.errors import LinkError
from hotline.peers import PeerDirectory
from hotline.protocol import canonical
from hotline.protocol.envelope import Header, new_envelope_id, seal
from hotline.protocol.keys import PartyKeys
from hotline.protocol.lanes import CONTROL, PROTOCOL, Lane
from hotline.protocol.receipt import message_digest
from hotline.store import links as link_store
from hotline.store import log as log_store
from hotline.store import outbox
from hotline.store.log import Record
from hotline.store.outbox import Pending


def no_link(peer: str) -> LinkError:
    return LinkError("no-link", f"there is no link with {peer}; nothing was sent",
                     hint="exchange offers with `hotline link offer` / "
                          "`hotline link accept`, or check the party id", status=404)


class Outbound:
    def __init__(self, *, me: str, keys: PartyKeys, peers: PeerDirectory) -> None:
        self.me = me
        self.keys = keys
        self.peers = peers

    def has_link(self, peer: str) -> bool:
        return self.peers.get(peer) is not None

    def lane_for(self, peer: str, bulk: bool, own_protocol: int = PROTOCOL) -> Lane:
        """The lane for traffic to ``peer``: bulk traffic goes on the bulk lane when both
        this node and the peer speak protocol 2; everything else, and everything to a
        peer of protocol 1, on the control lane (the one sequence such a peer knows)."""
        link = self.peers.get(peer)
        if bulk and link is not None and min(link.protocol, own_protocol) >= PROTOCOL:
            return "bulk"
        return CONTROL

    def enqueue(self, conn: Connection, peer: str, type_: str,
                payloads: list[dict[str, Any]], now_ms: int,
                subject: str | None = None, deadline_at: int | None = None,
                keys: PartyKeys | None = None, lane: Lane = CONTROL) -> list[Pending]:
        """Seal ``payloads`` to ``peer`` under consecutive sequence numbers and add them to
        the outbox; the caller hands the returned rows to the peer's sender after commit.
        ``deadline_at`` (a ``call.place``): when the payload's ``budget_ms`` is spent.
        ``keys``: sign with these rather than the current pair (a key rotation's
        announcement goes out under the key the peer knows). ``lane``: the bulk lane
        only for operators' messages to a peer that speaks protocol 2 (the caller
        decides: :meth:`lane_for`); a bulk envelope carries ``after``, the last control
        seq committed to the peer, so the peer releases it after all of those."""
        signer = keys or self.keys
        link = self.peers.get(peer)
        if link is None:
            raise no_link(peer)
        first = link_store.reserve_seqs(conn, peer, len(payloads), lane)
        after = link_store.send_seq(conn, peer) if lane != CONTROL else None
        rows: list[dict[str, object]] = []
        fresh: list[Pending] = []
        records: list[Record] = []
        for offset, payload in enumerate(payloads):
            header = Header(id=new_envelope_id(), sender=self.me, recipient=peer,
                            kid=signer.public.key_id, seq=first + offset, ts=now_ms,
                            type=type_, lane=lane, after=after)
            body = canonical.encode(payload).decode()
            envelope = seal(header, payload, signer, link.keys)
            rows.append({"peer": peer, "envelope_id": header.id, "seq": header.seq,
                         "type": type_, "subject": subject, "payload": body,
                         "envelope": envelope, "created_at": now_ms, "sealed_at": now_ms,
                         "deadline_at": deadline_at, "lane": lane})
            fresh.append(Pending(header.id, header.seq, type_, body, envelope, now_ms,
                                 deadline_at, lane, after))
            records.append(Record("sent", outbox.lane_field({
                "peer": peer, "id": header.id, "seq": header.seq, "type": type_,
                "subject": subject, "digest": message_digest(envelope_id=header.id, sender=self.me,
                                         recipient=peer, seq=header.seq, type_=type_,
                                         payload=payload, lane=lane)}, lane), now_ms, subject))
        outbox.add(conn, rows)
        log_store.append(conn, records)
        return fresh
