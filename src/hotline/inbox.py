"""The inbox: messages released in order, listed by cursor or streamed live.

The cursor is the node-wide release number, so a client that reconnects with its last
cursor gets exactly what it missed, from the database, and then live events.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hotline.events import Broadcaster, catch_up_then_follow
from hotline.store import inbound
from hotline.store.database import Database
from hotline.store.inbound import Released

CATCH_UP_PAGE = 500

#: what people wrote (``hotline send``; a formatted notification another party's
#: operator sent, ``hotline notify``), and the stand-in a repair leaves for a lost
#: envelope; the rest (desk reports, ``call.*``, ``conv.*``, receipts, key notices) is
#: the nodes' own traffic, shown elsewhere (calls, conversations, status)
PEOPLE_TYPES = ("message", "notice", "seq.lost")


def _text(type_: str, payload: dict[str, Any]) -> Any:
    """What a person reads of a message: its text; for a formatted notification, which
    one it is and the command that shows it in the reader's language."""
    if type_ == "notice" and isinstance(payload.get("notice"), str):
        return (f"notification {payload.get('template')}: "
                f"hotline notification show {payload['notice']}")
    return payload.get("text")


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class InboxMessage:
    cursor: int
    envelope_id: str
    sender: str
    seq: int
    type: str
    payload: dict[str, Any]
    sent_at: int
    received_at: int
    #: the lane ``seq`` numbers (each lane numbers from 1: a seq alone is ambiguous)
    lane: str = "control"

    @classmethod
    def from_released(cls, r: Released) -> InboxMessage:
        return cls(cursor=r.release_no, envelope_id=r.envelope_id, sender=r.peer, seq=r.seq,
                   type=r.type, payload=json.loads(r.payload), sent_at=r.sent_at,
                   received_at=r.received_at, lane=r.lane)

    def as_dict(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "id": self.envelope_id, "from": self.sender,
                "seq": self.seq, "lane": self.lane, "type": self.type,
                "text": _text(self.type, self.payload), "payload": self.payload,
                "sent_at": iso(self.sent_at), "received_at": iso(self.received_at)}


class Inbox:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._live: Broadcaster[InboxMessage] = Broadcaster()

    def publish(self, released: list[Released]) -> None:
        for r in released:
            self._live.publish(InboxMessage.from_released(r))

    async def list(self, after: int, limit: int,
                   types: Collection[str] | None = None) -> list[InboxMessage]:
        """Up to ``limit`` messages released after cursor ``after`` (only ``types``, if
        given)."""
        rows = await self._db.read(
            lambda conn: inbound.released_after(conn, after, limit, types))
        return [InboxMessage.from_released(r) for r in rows]

    async def follow(self, after: int) -> AsyncIterator[InboxMessage]:
        """Everything after ``after`` from the database, then live, with no gap or repeat."""
        async for message in catch_up_then_follow(self._live, self.list,
                                                  lambda m: m.cursor, after, CATCH_UP_PAGE):
            yield message
