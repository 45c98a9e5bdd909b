"""``hotline operator`` as an administrator uses it: real commands on a node directory
with the scenario's directory applied, checked against what the database holds and
against a real log-in with a code computed from the secret the command printed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from hotline.accounts import totp
from hotline.accounts.service import AccountService, LoginRefused, Session
from hotline.calls.registry import Registry
from hotline.clock import SystemClock
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.engine import create_engine
from tests.calls import apply_scenario
from tests.e2e.test_cli import as_json, hotline
from tests.nodes import NodeProcess

Make = Callable[..., NodeProcess]
PASSWORD = "a long enough console passphrase"
OPERATOR = "nmcc-1"  # in the scenario's US-JS directory


@pytest.fixture
def node(make_sqlite_node: Make) -> NodeProcess:
    node = make_sqlite_node("US-JS")
    apply_scenario(node)
    return node


def add(node: NodeProcess, operator: str = OPERATOR, password: str = PASSWORD,
        check: bool = True) -> dict[str, str]:
    result = hotline("operator", "add", operator, "--dir", str(node.dir), "--password-stdin",
                     "--json", stdin=password + "\n", check=check)
    if not check:
        assert result.returncode == 1, result.stdout + result.stderr
        return {"stderr": result.stderr}
    body: dict[str, str] = as_json(result)
    return body


def account_row(node: NodeProcess, operator: str = OPERATOR) -> tuple[object, ...] | None:
    rows = node.query("SELECT password_hash, totp_secret, failures, locked_until "
                      "FROM operator_accounts WHERE operator = :op", op=operator)
    return tuple(rows[0]) if rows else None


@asynccontextmanager
async def service(node: NodeProcess) -> AsyncIterator[AccountService]:
    """The running node's account service, on the node's own database."""
    db = Database(create_engine(node.config.db), lambda exc: None, hooks=[log_store.HOOKS])
    db.start()
    try:
        yield AccountService(me=node.party, db=db, clock=SystemClock(), registry=Registry(db))
    finally:
        await db.stop()


async def log_in(accounts: AccountService, secret: str, password: str = PASSWORD,
                 step: int = 0) -> Session:
    """Log in with the code of the current time step shifted by ``step`` (each code works
    once: a test that logs in twice uses the next step's code, inside the ±1 window)."""
    code = totp.code_at(secret, time.time() + step * totp.STEP)
    return await accounts.login(OPERATOR, password, code, lang="en", remote=None)


async def test_an_added_operator_logs_in_with_a_code_from_the_printed_secret(
        node: NodeProcess) -> None:
    enrolment = add(node)
    assert set(enrolment) == {"operator", "secret", "uri"}
    assert enrolment["operator"] == OPERATOR
    assert enrolment["uri"].startswith("otpauth://totp/Hotline%20US-JS:nmcc-1?")
    assert f"secret={enrolment['secret']}" in enrolment["uri"]
    row = account_row(node)
    assert row is not None
    password_hash, secret, failures, locked_until = row
    assert str(password_hash).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in str(password_hash)
    assert (secret, failures, locked_until) == (enrolment["secret"], 0, None)
    async with service(node) as accounts:
        session = await log_in(accounts, enrolment["secret"])
        assert session.operator == OPERATOR
        assert session.token
        with pytest.raises(LoginRefused):
            await log_in(accounts, enrolment["secret"], password=PASSWORD + "!", step=1)
    # the addition and both attempts are in the log, and the log verifies
    kinds = [kind for (kind,) in node.query(
        "SELECT kind FROM log_entries WHERE subject = :op ORDER BY idx", op=OPERATOR)]
    assert kinds == ["account", "login", "login"]
    verified = hotline("log", "verify", "--dir", str(node.dir), "--json")
    assert as_json(verified)["ok"] is True


def test_the_human_output_shows_the_secret_the_uri_and_a_qr_code(node: NodeProcess) -> None:
    result = hotline("operator", "add", OPERATOR, "--dir", str(node.dir), "--password-stdin",
                     stdin=PASSWORD + "\n")
    secret = account_row(node)
    assert secret is not None
    assert str(secret[1]) in result.stdout
    assert "otpauth://totp/" in result.stdout
    assert "█" in result.stdout
    assert "▄" in result.stdout


def test_only_operators_of_the_directory_get_accounts_and_only_once(
        node: NodeProcess) -> None:
    stderr = add(node, operator="nobody-1", check=False)["stderr"]
    assert "error[no-operator]" in stderr
    assert "hint: add it to the directory file and run `hotline roles apply`" in stderr
    assert account_row(node, "nobody-1") is None
    add(node)
    again = add(node, password="another long passphrase", check=False)["stderr"]
    assert "error[account-exists]" in again


@pytest.mark.parametrize("password", ["short", ""])
def test_a_weak_password_creates_nothing(node: NodeProcess, password: str) -> None:
    stderr = add(node, password=password, check=False)["stderr"]
    assert "error[weak-password]" in stderr
    assert account_row(node) is None
    assert node.query("SELECT COUNT(*) FROM log_entries WHERE kind = 'account'")[0][0] == 0


def test_list_names_the_operators_with_their_roles(node: NodeProcess) -> None:
    add(node)
    add(node, operator="cjcs-1")
    listed = as_json(hotline("operator", "list", "--dir", str(node.dir), "--json"))
    rows = {r["operator"]: r for r in listed["accounts"]}
    assert set(rows) == {"cjcs-1", OPERATOR}
    assert rows[OPERATOR]["roles"] == ["nmcc-do"]
    assert rows[OPERATOR]["name"] == "NMCC duty officer"
    assert (rows[OPERATOR]["failures"], rows[OPERATOR]["locked_until"]) == (0, None)
    assert "password_hash" not in rows[OPERATOR]
    assert "totp_secret" not in rows[OPERATOR]
    table = hotline("operator", "list", "--dir", str(node.dir),
                    env={"COLUMNS": "160"}).stdout
    assert "NMCC duty officer" in table
    assert "cjcs-1" in table


async def test_a_new_totp_secret_replaces_the_old_one(node: NodeProcess) -> None:
    old = add(node)["secret"]
    rotated = as_json(hotline("operator", "totp", OPERATOR, "--dir", str(node.dir), "--json"))
    assert rotated["secret"] != old
    row = account_row(node)
    assert row is not None
    assert row[1] == rotated["secret"]
    async with service(node) as accounts:
        with pytest.raises(LoginRefused):
            await log_in(accounts, old)
        assert (await log_in(accounts, rotated["secret"], step=1)).operator == OPERATOR
    missing = hotline("operator", "totp", "cjcs-1", "--dir", str(node.dir), check=False)
    assert missing.returncode == 1
    assert "error[no-account]" in missing.stderr


async def test_unlock_lifts_a_lock_out(node: NodeProcess) -> None:
    secret = add(node)["secret"]
    async with service(node) as accounts:
        for _ in range(5):
            with pytest.raises(LoginRefused):
                await log_in(accounts, secret, password="not the right passphrase")
        with pytest.raises(LoginRefused) as locked:
            await log_in(accounts, secret)
        assert locked.value.error_id == "locked-out"
    row = account_row(node)
    assert row is not None
    assert row[2] == 5
    assert row[3] is not None
    result = hotline("operator", "unlock", OPERATOR, "--dir", str(node.dir))
    assert "5 failed attempt(s) forgotten" in result.stdout
    row = account_row(node)
    assert row is not None
    assert (row[2], row[3]) == (0, None)
    async with service(node) as accounts:
        assert (await log_in(accounts, secret)).operator == OPERATOR


async def test_passwd_replaces_the_password_and_ends_sessions(node: NodeProcess) -> None:
    secret = add(node)["secret"]
    async with service(node) as accounts:
        session = await log_in(accounts, secret)
        assert session.token is not None
        new = "the replacement passphrase"
        weak = hotline("operator", "passwd", OPERATOR, "--dir", str(node.dir),
                       "--password-stdin", stdin="tiny\n", check=False)
        assert "error[weak-password]" in weak.stderr
        assert await accounts.session(session.token) is not None
        result = hotline("operator", "passwd", OPERATOR, "--dir", str(node.dir),
                         "--password-stdin", stdin=new + "\n")
        assert "1 console session(s) ended" in result.stdout
        assert await accounts.session(session.token) is None
        with pytest.raises(LoginRefused):
            await log_in(accounts, secret, step=1)
        assert (await log_in(accounts, secret, password=new, step=1)).operator == OPERATOR
