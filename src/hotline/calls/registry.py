"""The node's current directory (roles, rosters, chains, policies), kept in memory.

The directory changes rarely and is read on every call, ring and desk report, so the
newest stored version is cached and reloaded when the version number moves (``hotline
roles apply`` writes from another process; the operator API writes from this one). Every
write goes through :func:`hotline.store.directory.write`, which serialises the writers.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection

from hotline.calls.directory import (
    DEFAULT_STAFFED_WITHIN_MS,
    Directory,
    DirectoryError,
    parse_directory,
)
from hotline.calls.directory.links import LinkFacts, check_links
from hotline.calls.directory.locate import Locator
from hotline.clock import Clock
from hotline.errors import HotlineError
from hotline.store import directory as directory_store
from hotline.store import links as link_store
from hotline.store.database import Database

log = logging.getLogger("hotline.directory")

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


def link_facts(conn: Connection) -> LinkFacts:
    """The node's links in force, its removed links, and the roles each peer's latest
    desk report offers us: what :func:`validate_for_node` checks a directory against."""
    linked = frozenset(link.party for link in link_store.all_links(conn))
    removed = frozenset(link.party for link in link_store.removed_links(conn)) - linked
    offered: dict[str, set[str]] = {}
    for desk in directory_store.desks(conn):
        offered.setdefault(desk.party, set()).add(desk.role)
    return LinkFacts(linked, removed, {party: frozenset(roles)
                                       for party, roles in offered.items()})


def validate_for_node(directory: Directory, me: str, facts: LinkFacts, *, filename: str,
                      text: str | None = None, force: bool = False) -> list[str]:
    """The checks that need to know whose directory it is and what its links are
    (:func:`hotline.calls.directory.links.check_links`), for every path a directory
    enters by; ``text`` (the file) gives the problems their lines.

    Raises :class:`DirectoryError` (``bad-directory``) naming every error, unless
    ``force``; returns the warnings (with ``force``, the errors too), rendered
    ``file:line: field: message``. A policy for this node's own party is refused even
    forced: it can never be right.
    """
    locate = Locator(text).line_of if text is not None else (lambda _path: None)
    errors, warnings = check_links(directory, me, facts, locate)
    own = [p for p in errors if p.field == f"links.{me}"]
    if own or (errors and not force):
        raise DirectoryError(filename, own or errors)
    return [p.render(filename) for p in (*errors, *warnings)]


class Registry:
    """``me``: this node's party; with it, each newly loaded version is checked against
    the node's links (:func:`validate_for_node`) and what is wrong is logged: a stored
    directory is used as it is (refusing it would leave the node with none), but a link
    accepted or removed since it was applied shows up in the node's log."""

    def __init__(self, db: Database, me: str | None = None) -> None:
        self._db = db
        self._me = me
        self.version = 0
        self.current = EMPTY
        #: the current version's link problems, rendered (empty if all is well)
        self.warnings: list[str] = []

    async def reload(self) -> bool:
        """Pick up a newer stored version; True if it changed."""
        number = await self._db.read(directory_store.latest_number)
        if number == self.version:
            return False
        self.version, self.current = await self._db.read(load)
        if self._me is not None and self.version:
            facts = await self._db.read(link_facts)
            try:
                self.warnings = validate_for_node(
                    self.current, self._me, facts,
                    filename=f"directory version {self.version}", force=True)
            except DirectoryError as exc:
                self.warnings = [p.render(exc.filename) for p in exc.problems]
            for warning in self.warnings:
                log.warning("%s", warning)
        return True

    def check_role(self, as_role: str, operator: str | None) -> None:
        """Refuse acting as ``as_role`` unless the current directory has that role
        (``no-role``, 404) and ``operator``, if named, holds it (``role-not-held``, 403)."""
        d = self.current
        if as_role not in d.roles:
            raise HotlineError("no-role", f"there is no role {as_role!r} in this node's "
                                          "directory", status=404)
        if operator is not None:
            op = d.operators.get(operator)
            if op is None or as_role not in op.roles:
                raise HotlineError("role-not-held", f"operator {operator!r} does not hold "
                                                    f"the role {as_role}", status=403)

    def adopt(self, version: int, directory: Directory) -> None:
        if version > self.version:
            self.version, self.current = version, directory


class DirectoryAdmin:
    """Changing the directory through the operator API: a whole file, checked as strictly
    as ``roles apply`` and stored as a new version. (Duty overrides are not directory
    versions: see :mod:`hotline.calls.duty`.)"""

    def __init__(self, me: str, registry: Registry, db: Database, clock: Clock) -> None:
        self._me = me
        self._registry = registry
        self._db = db
        self._clock = clock

    async def apply_text(self, text: str, filename: str = "directory.toml", *,
                         base: int | None = None, force: bool = False
                         ) -> tuple[int, bool, list[str]]:
        """Check ``text`` and store it as the newest version.

        ``base``, if given, is the version the text was edited from: if the newest is
        another one, raises :class:`~hotline.store.directory.DirectoryConflict` (409),
        with one security-log line, and stores nothing. The link checks
        (:func:`validate_for_node`) refuse it unless ``force``; returns ``(version,
        changed, warnings)``.
        """
        now = self._clock.now_ms()
        directory = parse_directory(text, filename, now)
        facts = await self._db.read(link_facts)
        warnings = validate_for_node(directory, self._me, facts, filename=filename,
                                     text=text, force=force)
        try:
            version, changed = await self._db.write(
                lambda conn: apply(conn, directory, now, base=base))
        except directory_store.DirectoryConflict as exc:
            directory_store.refused(exc, "api")
            raise
        self._registry.adopt(version, directory)
        return version, changed, warnings

    async def version(self) -> int:
        """The newest stored version's number (0: none yet)."""
        await self._registry.reload()
        return self._registry.version
