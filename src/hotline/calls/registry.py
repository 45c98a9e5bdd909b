"""The node's current directory (roles, rosters, chains, policies), kept in memory.

The directory changes rarely and is read on every call, ring and desk report, so the
newest stored version is cached and reloaded when the version number moves (``hotline
roles apply`` writes from another process; the operator API writes from this one).
"""

from __future__ import annotations

from sqlalchemy import Connection

from hotline.calls.directory import DEFAULT_STAFFED_WITHIN_MS, Directory
from hotline.store import directory as directory_store
from hotline.store.database import Database

EMPTY = Directory(staffed_within_ms=DEFAULT_STAFFED_WITHIN_MS, roles={}, operators={},
                  roster=(), chains={}, channels={}, links={})


def load(conn: Connection) -> tuple[int, Directory]:
    stored = directory_store.latest(conn)
    if stored is None:
        return 0, EMPTY
    return stored.version, Directory.from_dict(stored.body)


def apply(conn: Connection, directory: Directory, now_ms: int) -> tuple[int, bool]:
    """Store ``directory`` as the newest version; applying the same one again is a no-op."""
    return directory_store.save(conn, directory.to_dict(), now_ms)


class Registry:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.version = 0
        self.current = EMPTY

    async def reload(self) -> bool:
        """Pick up a newer stored version; True if it changed."""
        number = await self._db.read(directory_store.latest_number)
        if number == self.version:
            return False
        self.version, self.current = await self._db.read(load)
        return True

    def adopt(self, version: int, directory: Directory) -> None:
        if version > self.version:
            self.version, self.current = version, directory
