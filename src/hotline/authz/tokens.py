"""Per-operator API tokens: each bound to one operator of the directory.

A token reads ``ID.SECRET``: ``ID`` (16 hex characters) names the row, ``SECRET`` is 256
random bits (``secrets.token_urlsafe(32)``). Only SHA-256 of the secret is stored. A
plain hash, not a slow password hash, is right here: the secret is random and 256 bits
long, so there is nothing to guess from a stolen hash, and a fast hash keeps the check of
every API request cheap; the stored hash is compared in constant time. (The node
directory's token file, the administrator's, never contains a dot, so the two kinds
cannot be mistaken.)

The CLI (``hotline token issue|list|revoke``) writes the database directly, like
``hotline operator``, so it works whether or not the node runs; a running node reads the
row on each request, so a revoked token is refused at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, select, update

from hotline.calls import registry
from hotline.clock import Clock, SystemClock
from hotline.errors import HotlineError
from hotline.nodedir.config import load_config
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.engine import create_engine
from hotline.store.migrate import upgrade
from hotline.store.schema import api_tokens

TOKEN_RE = re.compile(r"^([0-9a-f]{16})\.([A-Za-z0-9_-]{43})\Z")
#: how often a token's ``last_used_at`` is written at most (ms): a write per request
#: would put every API read through the single writer
TOUCH_EVERY_MS = 60_000


@dataclass(frozen=True)
class ApiToken:
    """A token's row, never its secret."""

    id: str
    operator: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _row(r: object) -> ApiToken:
    return ApiToken(id=r.id, operator=r.operator,  # type: ignore[attr-defined]
                    created_at=int(r.created_at),  # type: ignore[attr-defined]
                    last_used_at=r.last_used_at,  # type: ignore[attr-defined]
                    revoked_at=r.revoked_at)  # type: ignore[attr-defined]


def find(conn: Connection, presented: str) -> ApiToken | None:
    """The valid (not revoked) token ``presented`` is, or None."""
    match = TOKEN_RE.match(presented)
    if match is None:
        return None
    token_id, secret = match.groups()
    row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_sha256.encode(), digest(secret).encode()):
        return None
    return _row(row)


def touch(conn: Connection, token_id: str, now: int) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id)
                 .values(last_used_at=now))


def issue(conn: Connection, operator: str, now: int) -> tuple[ApiToken, str]:
    """A new token for ``operator`` (who must be in the current directory): its row and
    the token text, which is shown once and stored nowhere."""
    _, directory = registry.load(conn)
    if operator not in directory.operators:
        raise HotlineError("no-operator",
                           f"there is no operator {operator!r} in this node's directory",
                           hint="add it to the directory file and run `hotline roles apply`")
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    conn.execute(api_tokens.insert().values(id=token_id, operator=operator,
                                            secret_sha256=digest(secret), created_at=now))
    log_store.append_one(conn, "api-token", {"token": token_id, "operator": operator,
                                             "change": "issued", "via": "cli"}, now,
                         subject=operator)
    return ApiToken(token_id, operator, now, None, None), f"{token_id}.{secret}"


def all_tokens(conn: Connection) -> list[ApiToken]:
    return [_row(r) for r in conn.execute(select(api_tokens)
                                          .order_by(api_tokens.c.created_at, api_tokens.c.id))]


def revoke(conn: Connection, token_id: str, now: int) -> ApiToken:
    row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
    if row is None:
        raise HotlineError("no-token", f"there is no API token {token_id!r}",
                           hint="`hotline token list` shows them")
    token = _row(row)
    if token.revoked_at is not None:
        return token
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id)
                 .values(revoked_at=now))
    log_store.append_one(conn, "api-token", {"token": token_id, "operator": token.operator,
                                             "change": "revoked", "via": "cli"}, now,
                         subject=token.operator)
    return ApiToken(token.id, token.operator, token.created_at, token.last_used_at, now)


# -- from the command line (the node's database, directly) ------------------------------
@contextmanager
def _open(node_dir: Path) -> Iterator[Engine]:
    engine = create_engine(load_config(node_dir).db)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def issue_token(node_dir: Path, operator: str) -> tuple[ApiToken, str]:
    with _open(node_dir) as engine, engine.begin() as conn:
        return issue(conn, operator, SystemClock().now_ms())


def list_tokens(node_dir: Path) -> list[ApiToken]:
    with _open(node_dir) as engine, engine.connect() as conn:
        return all_tokens(conn)


def revoke_token(node_dir: Path, token_id: str) -> ApiToken:
    with _open(node_dir) as engine, engine.begin() as conn:
        return revoke(conn, token_id, SystemClock().now_ms())


class TokenBook:
    """The running node's view of the tokens: looks a presented token up (one indexed
    read) and notes when it was last used (at most every :data:`TOUCH_EVERY_MS`)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._touched: dict[str, int] = {}

    async def resolve(self, presented: str) -> ApiToken | None:
        token = await self._db.read(lambda conn: find(conn, presented))
        if token is None:
            return None
        now = self._clock.now_ms()
        last = self._touched.get(token.id, token.last_used_at or 0)
        if now - last >= TOUCH_EVERY_MS or now < last:
            self._touched[token.id] = now
            await self._db.write(lambda conn: touch(conn, token.id, now))
        return token
