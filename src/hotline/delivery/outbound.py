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

    def enqueue(self, conn: Connection, peer: str, type_: str,
                payloads: list[dict[str, Any]], now_ms: int,
                subject: str | None = None, deadline_at: int | None = None) -> list[Pending]:
        """Seal ``payloads`` to ``peer`` under consecutive sequence numbers and add them to
        the outbox; the caller hands the returned rows to the peer's sender after commit.
        ``deadline_at`` (a ``call.place``): when the payload's ``budget_ms`` is spent."""
        link = self.peers.get(peer)
        if link is None:
            raise no_link(peer)
        first = link_store.reserve_seqs(conn, peer, len(payloads))
        rows: list[dict[str, object]] = []
        fresh: list[Pending] = []
        records: list[Record] = []
        for offset, payload in enumerate(payloads):
            header = Header(id=new_envelope_id(), sender=self.me, recipient=peer,
                            kid=self.keys.public.key_id, seq=first + offset, ts=now_ms,
                            type=type_)
            body = canonical.encode(payload).decode()
            envelope = seal(header, payload, self.keys, link.keys)
            rows.append({"peer": peer, "envelope_id": header.id, "seq": header.seq,
                         "type": type_, "subject": subject, "payload": body,
                         "envelope": envelope, "created_at": now_ms, "sealed_at": now_ms,
                         "deadline_at": deadline_at})
            fresh.append(Pending(header.id, header.seq, type_, body, envelope, now_ms,
                                 deadline_at))
            records.append(Record("sent", {
                "peer": peer, "id": header.id, "seq": header.seq, "type": type_,
                "digest": message_digest(envelope_id=header.id, sender=self.me,
                                         recipient=peer, seq=header.seq, type_=type_,
                                         payload=payload)}, now_ms, subject))
        outbox.add(conn, rows)
        log_store.append(conn, records)
        return fresh
