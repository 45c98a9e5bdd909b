"""Directory versions (roles, rosters, chains, policies), presence and peers' desks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from hotline.store import log as log_store
from hotline.store.schema import directory_versions, peer_desks, presence


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


def save(conn: Connection, body: dict[str, Any], now_ms: int) -> tuple[int, bool]:
    """Store ``body`` as a new version unless it equals the newest: (version, changed)."""
    digest = digest_of(body)
    current = latest(conn)
    if current is not None and current.digest == digest:
        return current.version, False
    version = (current.version if current else 0) + 1
    conn.execute(directory_versions.insert().values(
        version=version, digest=digest, body=json.dumps(body, sort_keys=True),
        applied_at=now_ms))
    log_store.append_one(conn, "directory", {"version": version, "digest": digest}, now_ms)
    return version, True


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
