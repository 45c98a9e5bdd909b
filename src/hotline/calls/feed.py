"""The live event feed of calls and conversations: the journal from a cursor, then live."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hotline.events import Broadcaster, catch_up_then_follow
from hotline.store import journal
from hotline.store.database import Database
from hotline.store.journal import Entry

CATCH_UP_PAGE = 500


class Feed:
    def __init__(self, db: Database, live: Broadcaster[Entry]) -> None:
        self._db = db
        self._live = live

    async def after(self, cursor: int, limit: int) -> list[Entry]:
        return await self._db.read(lambda conn: journal.after(conn, cursor, limit))

    async def follow(self, after: int) -> AsyncIterator[Entry]:
        """Every entry after ``after`` from the database, then live, no gap, no repeat."""
        async for entry in catch_up_then_follow(self._live, self.after, lambda e: e.id, after,
                                                CATCH_UP_PAGE):
            yield entry
