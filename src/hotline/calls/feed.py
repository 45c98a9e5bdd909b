"""The live event feed of calls and conversations: the journal from a cursor, then live."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hotline.events import Broadcaster
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
        async with self._live.subscribe() as sub:
            cursor = after
            while True:
                page = await self.after(cursor, CATCH_UP_PAGE)
                for entry in page:
                    cursor = entry.id
                    yield entry
                if len(page) < CATCH_UP_PAGE:
                    break
            while True:
                entry = await sub.get()
                if entry.id > cursor:
                    cursor = entry.id
                    yield entry
