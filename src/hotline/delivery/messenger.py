"""Accepting messages from operators: event and envelope committed together.

A message is accepted only when its envelope is durable in the outbox; from then on the
peer's sender owns it. Sequence numbers are reserved in the same transaction, so a crash
can never leave a gap or a reused number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import Connection

from hotline.clock import Clock
from hotline.delivery.outbound import Outbound, no_link
from hotline.delivery.tally import BulkTally
from hotline.errors import HotlineError
from hotline.peers import PeerDirectory
from hotline.protocol import canonical
from hotline.protocol.envelope import Header, seal
from hotline.protocol.keys import KeyRing, PartyKeys
from hotline.protocol.lanes import BULK, CONTROL, PROTOCOL, Lane
from hotline.store import outbox, requests
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
    #: the lane ``seq`` numbers (an answer stored before lanes reads as control)
    lane: str = "control"


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


#: the line rate the Retry-After of a full bulk queue assumes (measured: docs/performance.md)
LINE_RATE_PER_S = 1_800


@dataclass(frozen=True)
class BulkBound:
    """Per peer, the most the bulk lane's queue may hold (``[delivery]``)."""

    max_messages: int = 100_000
    #: payload bytes (UTF-8), not characters
    max_bytes: int = 64 * 1024 * 1024


class QueueFull(HotlineError):
    """A send the bulk lane's queue to a peer has no room for: nothing of it stored."""

    status = 429

    def __init__(self, peer: str, queued: int, nbytes: int, adding: int, adding_bytes: int,
                 bound: BulkBound) -> None:
        self.retry_after_s = max(1, -(-(queued + adding - bound.max_messages)
                                      // LINE_RATE_PER_S))
        self.queued, self.nbytes = queued, nbytes
        self.max_messages, self.max_bytes = bound.max_messages, bound.max_bytes
        super().__init__(
            "bulk-queue-full",
            f"the bulk queue to {peer} holds {queued} of {bound.max_messages} messages "
            f"({100 * queued // bound.max_messages}%) and {nbytes} of {bound.max_bytes} "
            f"payload bytes ({100 * nbytes // bound.max_bytes}%); these "
            f"{adding} message(s) of {adding_bytes} bytes do not fit. Nothing was sent",
            hint=f"retry after {self.retry_after_s} s, when the queue has drained; calls and "
                 "conversation messages are not held back")

    def to_dict(self) -> dict[str, str]:
        out: dict[str, object] = {**super().to_dict(), "queued": self.queued,
                                  "queued_bytes": self.nbytes,
                                  "max_messages": self.max_messages,
                                  "max_bytes": self.max_bytes,
                                  "retry_after": self.retry_after_s}
        return out  # type: ignore[return-value]


class Messenger:
    def __init__(self, *, me: str, keys: PartyKeys, peers: PeerDirectory, db: Database,
                 clock: Clock, on_enqueued: Callable[[str, list[Pending]], None],
                 bound: BulkBound | None = None, protocol: int = PROTOCOL,
                 learn: Callable[[str], Awaitable[None]] | None = None) -> None:
        """``bound``: the bulk queue's per-peer bound; ``protocol``: what this node
        speaks (1 puts everything on the one control lane); ``learn(peer)``: ask a
        peer whose protocol is not known yet which it speaks (bounded in time; a peer
        that does not answer stays unknown, and gets the control lane meanwhile)."""
        self._learn = learn
        self._bound = bound or BulkBound()
        self._protocol = protocol
        self._me = me
        self._keys = keys
        self._peers = peers
        self._db = db
        self._clock = clock
        self._on_enqueued = on_enqueued
        self._outbound = Outbound(me=me, keys=keys, peers=peers)
        self._tally = BulkTally(clock.monotonic)

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
        return await self.send(peer, "message", payloads, idempotency_key, bulk=True)

    async def send(self, peer: str, type_: str, payloads: list[dict[str, Any]],
                   idempotency_key: str | None = None, bulk: bool = False) -> list[Accepted]:
        """Enqueue ``payloads``; ``bulk``: an operator's messages, on the bulk lane
        (where the peer has it) and within its queue bound (:class:`QueueFull`)."""
        if self._peers.get(peer) is None:
            await self._peers.maybe_reload()
        link = self._peers.get(peer)
        if link is None:
            raise no_link(peer)
        if bulk and link.protocol == 0 and self._protocol >= PROTOCOL \
                and self._learn is not None:
            await self._learn(peer)
        # refuse what has no canonical form before any write; the stored payload is this
        # very encoding, so its length is what the bulk bound counts
        sizes = [len(canonical.encode(payload)) for payload in payloads]
        key = check_idempotency_key(idempotency_key)
        fingerprint = "" if key is None else hashlib.sha256(canonical.encode(
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
            lane = self._lane(conn, peer, bulk)
            if bulk:
                self._check_room(conn, peer, lane, len(payloads), sum(sizes))
            fresh = self._outbound.enqueue(conn, peer, type_, payloads, now, lane=lane)
            if bulk:
                self._tally.added(peer, lane, len(fresh), sum(sizes))
            accepted = [Accepted(p.envelope_id, peer, p.seq, now, p.lane) for p in fresh]
            if key is not None:
                requests.remember(conn, key, fingerprint,
                                  json.dumps([asdict(a) for a in accepted]), now)
            return accepted, fresh

        accepted, fresh = await self._db.write(work, bulk=len(payloads) if bulk else 0)
        if fresh:
            self._on_enqueued(peer, fresh)
        return accepted

    def _lane(self, conn: Connection, peer: str, bulk: bool) -> Lane:
        """The lane for this traffic to ``peer`` (:meth:`Outbound.lane_for`), except that
        an operator's message goes on the bulk lane while messages still wait there,
        even to a peer that now says it speaks protocol 1 (a downgrade): on the control
        lane it would overtake them (control never waits for bulk), so it waits behind
        them, and all go in the order they were sent once the peer speaks 2 again."""
        lane = self._outbound.lane_for(peer, bulk, self._protocol)
        if bulk and lane == CONTROL and self._protocol >= PROTOCOL and \
                outbox.lane_loads(conn, peer, BULK).get(peer, {}).get(BULK) is not None:
            return BULK
        return lane

    def _check_room(self, conn: Connection, peer: str, lane: Lane, adding: int,
                    adding_bytes: int) -> None:
        """Refuse (:class:`QueueFull`) what would take the bulk queue to ``peer`` past
        its bound. Counted on ``lane``: the bulk lane, or the control lane for a peer of
        protocol 1 (its one sequence carries bulk too; still bounded, so that a call is
        not queued behind more than a minute of messages there either). The bulk lane's
        fill comes from :class:`BulkTally`, counted again before a refusal; the control
        lane, which other traffic also fills, is counted each time."""
        exact = lane != BULK

        def fits(load: tuple[int, int]) -> bool:
            return load[0] + adding <= self._bound.max_messages and \
                load[1] + adding_bytes <= self._bound.max_bytes
        load = self._tally.load(conn, peer, lane, exact=exact)
        if not fits(load) and not exact:
            load = self._tally.load(conn, peer, lane, exact=True)
        if not fits(load):
            raise QueueFull(peer, load[0], load[1], adding, adding_bytes, self._bound)

    def queue_load(self, conn: Connection, peer: str) -> tuple[int, int]:
        """The bulk queue to ``peer`` now: (messages, payload bytes)."""
        lane = self._lane(conn, peer, True)
        load = outbox.lane_loads(conn, peer, lane).get(peer, {}).get(lane)
        return (load.queued, load.payload_bytes) if load else (0, 0)

    def reseal(self, link: Link, pending: Pending) -> Pending:
        """A fresh envelope for a waiting message: same id, sequence and content, new
        timestamp and encryption, so it passes the peer's clock-skew window however long
        it waited. The peer treats it as the same message (same receipt, stored once).
        A call signal's ``budget_ms`` is renewed from its deadline on our clock.

        It is signed by the key it was first sealed with, while this node holds it: an
        envelope queued before a key rotation comes before the rotation's announcement on
        the line, where the peer still knows only the old key (docs/protocol.md)."""
        now = self._clock.now_ms()
        keys = self._keys
        if isinstance(keys, KeyRing):
            kid = canonical.decode(pending.envelope).get("kid")
            keys = (keys.pair(kid) if isinstance(kid, str) else None) or keys.current
        payload = json.loads(pending.payload)
        if pending.deadline_at is not None:
            payload["budget_ms"] = max(0, pending.deadline_at - now)
        header = Header(id=pending.envelope_id, sender=self._me, recipient=link.party,
                        kid=keys.public.key_id, seq=pending.seq, ts=now, type=pending.type,
                        lane=pending.lane, after=pending.after)
        return replace(pending, envelope=seal(header, payload, keys, link.keys),
                       sealed_at=now, payload=canonical.encode(payload).decode())
