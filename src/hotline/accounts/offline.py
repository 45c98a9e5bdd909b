"""The administrator's side of operator accounts (``hotline operator ...``).

These open the node's database themselves, like ``hotline roles apply``, so they work
whether or not the node runs: a locked-out operator can be unlocked, or a lost phone
replaced, while the node keeps serving (it reads accounts from the database on every
log-in, so it sees the change at once). Passwords are hashed before the transaction
opens, so a slow hash never holds a write lock that the running node is waiting for.
Every change is logged, marked as done from the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from hotline.accounts import passwords, totp
from hotline.calls import registry
from hotline.clock import SystemClock
from hotline.errors import HotlineError
from hotline.nodedir.config import NodeConfig, load_config
from hotline.store import accounts as store
from hotline.store import log as log_store
from hotline.store.engine import create_engine
from hotline.store.migrate import upgrade


@dataclass(frozen=True)
class Enrolment:
    """What the operator's authenticator app needs; shown once, when it is made."""

    operator: str
    secret: str
    uri: str


@contextmanager
def _open(node_dir: Path) -> Iterator[tuple[NodeConfig, Engine]]:
    config = load_config(node_dir)
    engine = create_engine(config.db)
    try:
        upgrade(engine)
        yield config, engine
    finally:
        engine.dispose()


def _now() -> int:
    return SystemClock().now_ms()


def _log(conn: Connection, operator: str, change: str, now: int) -> None:
    log_store.append_one(conn, "account", {"operator": operator, "change": change,
                                           "via": "cli"}, now, subject=operator)


def _check_addable(conn: Connection, operator: str) -> None:
    _, directory = registry.load(conn)
    if operator not in directory.operators:
        raise HotlineError("no-operator",
                           f"there is no operator {operator!r} in this node's directory",
                           hint="add it to the directory file and run `hotline roles apply`")
    if store.get_account(conn, operator) is not None:
        raise HotlineError("account-exists", f"{operator} already has an account",
                           hint="use `hotline operator passwd` or `hotline operator totp`")


def _account(conn: Connection, operator: str) -> store.Account:
    account = store.get_account(conn, operator)
    if account is None:
        raise HotlineError("no-account", f"{operator} has no console account",
                           hint="create it with `hotline operator add`")
    return account


def ensure_addable(node_dir: Path, operator: str) -> None:
    """Fail now (before anyone types a password twice) if ``add_operator`` would."""
    with _open(node_dir) as (_, engine), engine.connect() as conn:
        _check_addable(conn, operator)


def add_operator(node_dir: Path, operator: str, password: str) -> Enrolment:
    """Create the console account of a directory operator, with a new TOTP secret."""
    passwords.check_policy(password)
    with _open(node_dir) as (config, engine):
        with engine.connect() as conn:
            _check_addable(conn, operator)
        encoded = passwords.hash_password(password)
        secret = totp.new_secret()
        with engine.begin() as conn:
            _check_addable(conn, operator)  # again: the world may have moved meanwhile
            now = _now()
            store.insert_account(conn, operator, encoded, secret, now)
            _log(conn, operator, "added", now)
        return Enrolment(operator, secret, totp.provisioning_uri(secret, operator,
                                                                 config.party))


def set_password(node_dir: Path, operator: str, password: str) -> int:
    """Give ``operator`` a new password and end its console sessions (whoever knew the
    old one is logged out); returns how many sessions ended."""
    passwords.check_policy(password)
    with _open(node_dir) as (_, engine):
        with engine.connect() as conn:
            _account(conn, operator)
        encoded = passwords.hash_password(password)
        with engine.begin() as conn:
            _account(conn, operator)
            now = _now()
            store.update_account(conn, operator, now, password_hash=encoded)
            ended = store.delete_sessions_of(conn, operator)
            _log(conn, operator, "password", now)
            return ended


def reset_totp(node_dir: Path, operator: str) -> Enrolment:
    """A new TOTP secret for ``operator`` (a lost or replaced phone): the old secret
    stops working at once, and so do the operator's sessions, which it may have opened."""
    secret = totp.new_secret()
    with _open(node_dir) as (config, engine), engine.begin() as conn:
        _account(conn, operator)
        now = _now()
        store.update_account(conn, operator, now, totp_secret=secret, totp_last_step=None)
        store.delete_sessions_of(conn, operator)
        _log(conn, operator, "totp", now)
    return Enrolment(operator, secret, totp.provisioning_uri(secret, operator, config.party))


def unlock(node_dir: Path, operator: str) -> int:
    """Lift a lock-out and forget the failed attempts; returns how many there were."""
    with _open(node_dir) as (_, engine), engine.begin() as conn:
        account = _account(conn, operator)
        now = _now()
        store.update_account(conn, operator, now, failures=0, locked_until=None)
        _log(conn, operator, "unlocked", now)
        return account.failures


def list_accounts(node_dir: Path) -> list[dict[str, Any]]:
    """Every account with the operator's name and roles from the current directory (None
    and no roles if the operator has left it: such an account cannot log in)."""
    with _open(node_dir) as (_, engine), engine.connect() as conn:
        _, directory = registry.load(conn)
        accounts = store.all_accounts(conn)
    rows: list[dict[str, Any]] = []
    for account in accounts:
        person = directory.operators.get(account.operator)
        rows.append({"operator": account.operator,
                     "name": None if person is None else person.name,
                     "roles": [] if person is None else list(person.roles),
                     "in_directory": person is not None,
                     "locked_until": account.locked_until, "failures": account.failures,
                     "created_at": account.created_at})
    return rows
