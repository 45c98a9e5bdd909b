"""Accepting messages from operators: event and envelope committed together.

A message is accepted only when its envelope is durable in the outbox; from then on the
peer's sender owns it. Sequence numbers are reserved in the same transaction, so a crash
can never leave a gap or a reused number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import Connection

from hotline.clock import Clock
from hotline.delivery.outbound import Outbound, no_link
from hotline.errors import HotlineError
from hotline.peers import PeerDirectory
from hotline.protocol import canonical
from hotline.protocol.envelope import Header, seal
from hotline.protocol.keys import PartyKeys
from hotline.store import requests
from hotline.store.database import Database
from hotline.store.links import Link
from hotline.store.outbox import Pending

MAX_TEXT_CHARS = 64 * 1024
MAX_MESSAGES_PER_REQUEST = 10_000
MAX_KEY_CHARS = 100


@dataclass(frozen=True)
class Accepted:
    envelope_id: str
    peer: str
    seq: int
    created_at: int


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_CHARS or not key.isascii() or not key.isprintable():
        raise HotlineError("bad-idempotency-key",
                           f"an idempotency key is 1 to {MAX_KEY_CHARS} printable ASCII "
                           "characters")
    return key


def check_text(text: str) -> str:
    if not text.strip():
        raise HotlineError("empty-message", "message text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise HotlineError("message-too-long",
                           f"message has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    if "\x00" in text:
        raise HotlineError("bad-text", "message text contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise HotlineError("bad-text", "message text is not valid Unicode") from None
    return text


class Messenger:
    def __init__(self, *, me: str, keys: PartyKeys, peers: PeerDirectory, db: Database,
                 clock: Clock, on_enqueued: Callable[[str, list[Pending]], None]) -> None:
        self._me = me
        self._keys = keys
        self._peers = peers
        self._db = db
        self._clock = clock
        self._on_enqueued = on_enqueued
        self._outbound = Outbound(me=me, keys=keys, peers=peers)

    async def send_texts(self, peer: str, texts: list[str],
                         idempotency_key: str | None = None) -> list[Accepted]:
        """Enqueue ``texts`` to ``peer`` as messages, all in one transaction, in order.

        With an ``idempotency_key``, a repeat of the same request answers what the first
        one accepted and sends nothing; the same key for a different request is refused.
        """
        if not texts:
            raise HotlineError("empty-message", "no messages to send")
        if len(texts) > MAX_MESSAGES_PER_REQUEST:
            raise HotlineError("too-many-messages",
                               f"{len(texts)} messages in one request; the limit is "
                               f"{MAX_MESSAGES_PER_REQUEST}")
        payloads = [{"text": check_text(t)} for t in texts]
        return await self.send(peer, "message", payloads, idempotency_key)

    async def send(self, peer: str, type_: str, payloads: list[dict[str, Any]],
                   idempotency_key: str | None = None) -> list[Accepted]:
        if self._peers.get(peer) is None:
            await self._peers.maybe_reload()
        if self._peers.get(peer) is None:
            raise no_link(peer)
        for payload in payloads:
            canonical.encode(payload)  # refuse what has no canonical form before any write
        key = check_idempotency_key(idempotency_key)
        fingerprint = hashlib.sha256(canonical.encode(
            {"to": peer, "type": type_, "payloads": payloads})).hexdigest()

        def work(conn: Connection) -> tuple[list[Accepted], list[Pending]]:
            now = self._clock.now_ms()
            if key is not None:
                earlier = requests.find(conn, key)
                if earlier is not None:
                    if earlier.fingerprint != fingerprint:
                        raise HotlineError("idempotency-key-reused",
                                           f"idempotency key {key!r} was used for a different "
                                           "request; nothing was sent", status=409)
                    return [Accepted(**a) for a in json.loads(earlier.response)], []
            fresh = self._outbound.enqueue(conn, peer, type_, payloads, now)
            accepted = [Accepted(p.envelope_id, peer, p.seq, now) for p in fresh]
            if key is not None:
                requests.remember(conn, key, fingerprint,
                                  json.dumps([asdict(a) for a in accepted]), now)
            return accepted, fresh

        accepted, fresh = await self._db.write(work)
        if fresh:
            self._on_enqueued(peer, fresh)
        return accepted

    def reseal(self, link: Link, pending: Pending) -> Pending:
        """A fresh envelope for a waiting message: same id, sequence and content, new
        timestamp and encryption, so it passes the peer's clock-skew window however long
        it waited. The peer treats it as the same message (same receipt, stored once).
        A call signal's ``budget_ms`` is renewed from its deadline on our clock."""
        now = self._clock.now_ms()
        payload = json.loads(pending.payload)
        if pending.deadline_at is not None:
            payload["budget_ms"] = max(0, pending.deadline_at - now)
        header = Header(id=pending.envelope_id, sender=self._me, recipient=link.party,
                        kid=self._keys.public.key_id, seq=pending.seq, ts=now, type=pending.type)
        return replace(pending, envelope=seal(header, payload, self._keys, link.keys),
                       sealed_at=now, payload=canonical.encode(payload).decode())
