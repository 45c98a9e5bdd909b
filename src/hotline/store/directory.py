"""Directory versions (roles, rosters, chains, policies), presence and peers' desks.

Every directory version is written by :func:`write`, from the node's writer thread (the
operator API) and from other processes beside it (``hotline roles apply``) alike. It
takes the directory's write lock first, then reads the newest version *under* that lock,
so the new version's number and anything derived from the newest body (a roster entry
added to it) cannot be based on a version another writer has since replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, false, func, select, text, update
from sqlalchemy.exc import IntegrityError

from hotline.errors import HotlineError
from hotline.store import log as log_store
from hotline.store.schema import api_tokens, directory_versions, peer_desks, presence

security_log = logging.getLogger("hotline.security")


@dataclass(frozen=True)
class Version:
    version: int
    digest: str
    body: dict[str, Any]
    applied_at: int


def digest_of(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def latest(conn: Connection) -> Version | None:
    row = conn.execute(select(directory_versions)
                       .order_by(directory_versions.c.version.desc()).limit(1)).first()
    if row is None:
        return None
    return Version(row.version, row.digest, json.loads(row.body), int(row.applied_at))


def latest_number(conn: Connection) -> int:
    return int(conn.execute(select(func.max(directory_versions.c.version))).scalar() or 0)


class DirectoryConflict(HotlineError):
    """A directory write refused because the directory moved under it (HTTP 409).

    Either the writer named the version it was based on (``base``) and the newest is
    another one, or a concurrent writer held the directory too long: both are safe to
    retry (after looking at version ``current``). Nothing was written.
    """

    status = 409

    def __init__(self, message: str, current: int | None, hint: str) -> None:
        super().__init__("directory-conflict", message, hint)
        #: The newest version when the write was refused (None: not known).
        self.current = current

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = super().to_dict()
        if self.current is not None:
            out["current_version"] = self.current
        return out


def refused(exc: DirectoryConflict, source: str) -> None:
    """The one security-log line of a refused directory write; ``source`` names the
    writer (``api``, ``roster``, ``cli``)."""
    security_log.warning("directory write from %s refused: %s", source, exc.message)
    exc.logged = True


@dataclass(frozen=True)
class Written:
    """What :func:`write` did: the newest version after it, and whether it is new."""

    version: int
    changed: bool
    body: dict[str, Any]


#: Builds the body to store from the newest stored version (None: there is none yet).
#: Runs under the directory's write lock; an exception from it writes nothing.
Change = Callable[[Version | None], dict[str, Any]]


def lock(conn: Connection) -> None:
    """Take the directory's write lock, held until ``conn``'s transaction ends.

    PostgreSQL: ``LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE``, a table lock that
    conflicts with itself and with plain inserts but not with readers, so directory
    writers queue while calls keep reading the directory. The default READ COMMITTED
    isolation gives each later statement a fresh snapshot, so the read that follows sees
    what the previous holder committed.

    SQLite: a statement that writes nothing but takes the database's write lock (only
    one connection holds it; others wait out ``busy_timeout``). It must be the
    transaction's first statement or follow another write: the driver opens the
    transaction just before it, so no read snapshot older than the lock exists (a
    snapshot taken before would make the lock fail at once with "database is locked").

    An advisory lock (``pg_advisory_xact_lock``) would do on PostgreSQL, but not on
    SQLite; a version-number retry loop alone would not stop a roster change from being
    built on a version that another writer replaced while it was being built.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE directory_versions IN SHARE ROW EXCLUSIVE MODE"))
    else:
        conn.execute(update(directory_versions).where(false())
                     .values(version=directory_versions.c.version))


def write(conn: Connection, change: Change, now_ms: int, *, base: int | None = None
          ) -> Written:
    """The one way to store a directory version, in ``conn``'s transaction.

    Takes the write lock, reads the newest version, and, if ``base`` is given, refuses
    unless the newest is version ``base`` (0: no directory yet). Then stores
    ``change(newest)`` as version newest + 1, unless it equals the newest (applying the
    same directory again changes nothing).

    Raises :class:`DirectoryConflict` on a stale ``base``, and whatever ``change`` raises
    (a :class:`~hotline.errors.HotlineError` for a directory that does not check). It
    logs nothing: the node's writer may run a transaction's work twice (a failed batch is
    re-run piece by piece), so the caller logs the refusal once, with :func:`refused`.
    """
    lock(conn)
    current = latest(conn)
    number = current.version if current is not None else 0
    if base is not None and base != number:
        raise DirectoryConflict(
            f"this change was based on directory version {base}, but the directory is now "
            f"at version {number}", number,
            hint=f"look at version {number} (`hotline roles show`), redo the change on it, "
                 f"and apply it again based on version {number}")
    body = change(current)
    digest = digest_of(body)
    if current is not None and current.digest == digest:
        return Written(number, False, current.body)
    version = number + 1
    try:
        conn.execute(directory_versions.insert().values(
            version=version, digest=digest, body=json.dumps(body, sort_keys=True),
            applied_at=now_ms))
    except IntegrityError:
        # Only a writer that bypassed the lock (an older hotline) can get here first.
        raise DirectoryConflict(f"directory version {version} was written by another "
                                "writer at the same time", version,
                                hint="apply it again") from None
    log_store.append_one(conn, "directory", {"version": version, "digest": digest}, now_ms)
    _revoke_tokens_of_removed_operators(conn, body, now_ms)
    return Written(version, True, body)


def _revoke_tokens_of_removed_operators(conn: Connection, body: dict[str, Any],
                                        now_ms: int) -> None:
    """An operator the new version no longer has loses their API tokens for good: a
    token names an operator id, and an id given later to someone else must not carry
    the old holder's tokens (each revocation is a log entry, like one by hand)."""
    operators = body.get("operators")
    keep = set(operators) if isinstance(operators, dict) else set()
    orphaned = conn.execute(select(api_tokens.c.id, api_tokens.c.operator).where(
        api_tokens.c.revoked_at.is_(None))).all()
    for token_id, operator in orphaned:
        if operator in keep:
            continue
        conn.execute(update(api_tokens).where(api_tokens.c.id == token_id)
                     .values(revoked_at=now_ms))
        log_store.append_one(conn, "api-token", {"token": token_id, "operator": operator,
                                                 "change": "revoked",
                                                 "via": "operator removed from directory"},
                             now_ms, subject=operator)


def seen(conn: Connection, operator: str, now_ms: int) -> None:
    done = conn.execute(update(presence).where(presence.c.operator == operator)
                        .values(last_seen=now_ms))
    if done.rowcount == 0:
        conn.execute(presence.insert().values(operator=operator, last_seen=now_ms))


def last_seen(conn: Connection) -> dict[str, int]:
    return {r.operator: int(r.last_seen) for r in conn.execute(select(presence))}


@dataclass(frozen=True)
class Desk:
    party: str
    role: str
    titles: dict[str, str]
    staffed: bool
    callers: list[str]
    updated_at: int

    def as_dict(self) -> dict[str, Any]:
        return {"party": self.party, "role": self.role, "address": f"{self.role}@{self.party}",
                "titles": self.titles, "staffed": self.staffed, "callers": self.callers,
                "updated_at": self.updated_at}


def replace_desks(conn: Connection, party: str, desks: list[Desk]) -> None:
    conn.execute(delete(peer_desks).where(peer_desks.c.party == party))
    if desks:
        conn.execute(peer_desks.insert(), [
            {"party": d.party, "role": d.role, "titles": json.dumps(d.titles, sort_keys=True),
             "staffed": int(d.staffed), "callers": json.dumps(d.callers),
             "updated_at": d.updated_at} for d in desks])


def desks(conn: Connection) -> list[Desk]:
    rows = conn.execute(select(peer_desks).order_by(peer_desks.c.party, peer_desks.c.role))
    return [Desk(r.party, r.role, json.loads(r.titles), bool(r.staffed), json.loads(r.callers),
                 int(r.updated_at)) for r in rows]
