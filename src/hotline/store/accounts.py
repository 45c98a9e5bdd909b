"""Operator accounts and console sessions: small synchronous queries on a connection.

Both the running node (inside its writer's transactions) and the offline ``hotline
operator`` commands (inside their own) use these, so the rules about what is stored live
in one place: a session is found by the SHA-256 of its token, never by the token, so a
copy of the database does not let anyone in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, or_, select, update

from hotline.store.schema import console_sessions, operator_accounts


@dataclass(frozen=True)
class Account:
    operator: str
    password_hash: str
    totp_secret: str
    totp_last_step: int | None
    failures: int
    locked_until: int | None
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class SessionRow:
    token_hash: str
    operator: str
    csrf: str
    lang: str
    created_at: int
    last_seen: int
    expires_at: int
    pending_totp: str | None


def _opt(value: Any) -> int | None:
    return None if value is None else int(value)


def _account(row: Any) -> Account:
    return Account(row.operator, row.password_hash, row.totp_secret, _opt(row.totp_last_step),
                   int(row.failures), _opt(row.locked_until), int(row.created_at),
                   int(row.updated_at))


# -- accounts --------------------------------------------------------------------------

def get_account(conn: Connection, operator: str) -> Account | None:
    row = conn.execute(select(operator_accounts)
                       .where(operator_accounts.c.operator == operator)).first()
    return None if row is None else _account(row)


def all_accounts(conn: Connection) -> list[Account]:
    rows = conn.execute(select(operator_accounts).order_by(operator_accounts.c.operator))
    return [_account(r) for r in rows]


def insert_account(conn: Connection, operator: str, password_hash: str, totp_secret: str,
                   now_ms: int) -> None:
    conn.execute(operator_accounts.insert().values(
        operator=operator, password_hash=password_hash, totp_secret=totp_secret,
        totp_last_step=None, failures=0, locked_until=None, created_at=now_ms,
        updated_at=now_ms))


_ACCOUNT_FIELDS = frozenset({"password_hash", "totp_secret", "totp_last_step", "failures",
                             "locked_until"})


def update_account(conn: Connection, operator: str, now_ms: int,
                   **changes: str | int | None) -> bool:
    """Change the named fields of ``operator``'s account; False if there is none."""
    unknown = set(changes) - _ACCOUNT_FIELDS
    if unknown:
        raise ValueError(f"not an account field: {sorted(unknown)}")
    done = conn.execute(update(operator_accounts)
                        .where(operator_accounts.c.operator == operator)
                        .values(updated_at=now_ms, **changes))
    return done.rowcount == 1


# -- sessions --------------------------------------------------------------------------

def _session(row: Any) -> SessionRow:
    return SessionRow(row.token_hash, row.operator, row.csrf, row.lang, int(row.created_at),
                      int(row.last_seen), int(row.expires_at), row.pending_totp)


def create_session(conn: Connection, session: SessionRow) -> None:
    conn.execute(console_sessions.insert().values(
        token_hash=session.token_hash, operator=session.operator, csrf=session.csrf,
        lang=session.lang, created_at=session.created_at, last_seen=session.last_seen,
        expires_at=session.expires_at, pending_totp=session.pending_totp))


def get_session(conn: Connection, token_hash: str) -> SessionRow | None:
    row = conn.execute(select(console_sessions)
                       .where(console_sessions.c.token_hash == token_hash)).first()
    return None if row is None else _session(row)


def touch_session(conn: Connection, token_hash: str, now_ms: int) -> None:
    conn.execute(update(console_sessions).where(console_sessions.c.token_hash == token_hash)
                 .values(last_seen=now_ms))


def update_session(conn: Connection, token_hash: str, *, lang: str | None = None,
                   pending_totp: str | None = None, clear_pending: bool = False) -> bool:
    """Set the session's language and/or pending TOTP secret (``clear_pending`` removes
    it); False if the session is gone."""
    values: dict[str, str | None] = {}
    if lang is not None:
        values["lang"] = lang
    if pending_totp is not None:
        values["pending_totp"] = pending_totp
    elif clear_pending:
        values["pending_totp"] = None
    if not values:
        return get_session(conn, token_hash) is not None
    done = conn.execute(update(console_sessions)
                        .where(console_sessions.c.token_hash == token_hash).values(**values))
    return done.rowcount == 1


def delete_session(conn: Connection, token_hash: str) -> bool:
    done = conn.execute(delete(console_sessions)
                        .where(console_sessions.c.token_hash == token_hash))
    return done.rowcount == 1


def delete_sessions_of(conn: Connection, operator: str, *, keep: str | None = None) -> int:
    """End every session of ``operator`` (but the one whose hash is ``keep``)."""
    query = delete(console_sessions).where(console_sessions.c.operator == operator)
    if keep is not None:
        query = query.where(console_sessions.c.token_hash != keep)
    return int(conn.execute(query).rowcount)


def delete_stale_sessions(conn: Connection, now_ms: int, idle_since_ms: int) -> int:
    """Remove sessions past their end or unused since before ``idle_since_ms``. They can
    never be used again; removing them keeps the table as small as the set of people
    actually logged in."""
    return int(conn.execute(delete(console_sessions).where(or_(
        console_sessions.c.expires_at <= now_ms,
        console_sessions.c.last_seen < idle_since_ms))).rowcount)
