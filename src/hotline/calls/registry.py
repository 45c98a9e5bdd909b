"""The node's current directory (roles, rosters, chains, policies), kept in memory.

The directory changes rarely and is read on every call, ring and desk report, so the
newest stored version is cached and reloaded when the version number moves (``hotline
roles apply`` writes from another process; the operator API writes from this one). Every
write goes through :func:`hotline.store.directory.write`, which serialises the writers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import Connection

from hotline.calls.directory import (
    DEFAULT_STAFFED_WITHIN_MS,
    Directory,
    RosterEntry,
    parse_directory,
)
from hotline.clock import Clock
from hotline.errors import HotlineError
from hotline.store import directory as directory_store
from hotline.store.database import Database

EMPTY = Directory(staffed_within_ms=DEFAULT_STAFFED_WITHIN_MS, roles={}, operators={},
                  roster=(), chains={}, channels={}, links={})


def load(conn: Connection) -> tuple[int, Directory]:
    stored = directory_store.latest(conn)
    if stored is None:
        return 0, EMPTY
    return stored.version, Directory.from_dict(stored.body)


def apply(conn: Connection, directory: Directory, now_ms: int, *, base: int | None = None
          ) -> tuple[int, bool]:
    """Store ``directory`` as the newest version; applying the same one again is a no-op.

    With ``base``, refused (:class:`~hotline.store.directory.DirectoryConflict`) unless
    the newest stored version is ``base``.
    """
    body = directory.to_dict()
    written = directory_store.write(conn, lambda _current: body, now_ms, base=base)
    return written.version, written.changed


def add_duty(conn: Connection, entry: RosterEntry, now_ms: int) -> tuple[int, bool, Directory]:
    """Add ``entry`` to the roster of the newest stored version, read under the write lock,
    so a version another writer stored meanwhile is built upon, never reverted."""
    def change(current: directory_store.Version | None) -> dict[str, Any]:
        now = EMPTY if current is None else Directory.from_dict(current.body)
        changed = replace(now, roster=(*now.roster, entry))
        return Directory.from_dict(changed.to_dict(), "roster change").to_dict()

    written = directory_store.write(conn, change, now_ms)
    return written.version, written.changed, Directory.from_dict(written.body)


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


def check_for(directory: Directory, me: str) -> Directory:
    """Checks that need to know whose directory it is."""
    if me in directory.links:
        raise HotlineError("bad-directory", f"[links.{me}] names this node's own party; "
                                            "link policies are for peers")
    return directory


class DirectoryAdmin:
    """Changing the directory through the operator API: a whole file, or one duty entry.
    Either way the result is checked as strictly as a file and stored as a new version."""

    def __init__(self, me: str, registry: Registry, db: Database, clock: Clock) -> None:
        self._me = me
        self._registry = registry
        self._db = db
        self._clock = clock

    async def apply_text(self, text: str, filename: str = "directory.toml", *,
                         base: int | None = None) -> tuple[int, bool]:
        """Check ``text`` and store it as the newest version.

        ``base``, if given, is the version the text was edited from: if the newest is
        another one, raises :class:`~hotline.store.directory.DirectoryConflict` (409),
        with one security-log line, and stores nothing.
        """
        directory = check_for(parse_directory(text, filename), self._me)
        now = self._clock.now_ms()
        try:
            version, changed = await self._db.write(
                lambda conn: apply(conn, directory, now, base=base))
        except directory_store.DirectoryConflict as exc:
            directory_store.refused(exc, "api")
            raise
        self._registry.adopt(version, directory)
        return version, changed

    async def set_duty(self, operator: str, role: str, status: str, from_ms: int | None,
                       until_ms: int | None) -> tuple[int, bool]:
        """Add a duty entry to the newest version, whoever wrote it (see :func:`add_duty`)."""
        entry = RosterEntry(operator, role, status, from_ms, until_ms)
        now = self._clock.now_ms()
        version, changed, directory = await self._db.write(
            lambda conn: add_duty(conn, entry, now))
        self._registry.adopt(version, directory)
        return version, changed
