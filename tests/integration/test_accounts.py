"""Console log-in on a real database (SQLite and PostgreSQL), driven by a fake clock:
passwords, TOTP without replay, lock-out with back-off, sessions, changes, and the log
entry every attempt leaves behind."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from hotline.accounts import passwords, totp
from hotline.accounts.lockout import LockoutPolicy
from hotline.accounts.service import FAILED_MESSAGE, AccountService, LoginRefused, Session
from hotline.calls.directory import parse_directory
from hotline.calls.registry import Registry, apply
from hotline.errors import HotlineError
from hotline.log.verify import verify_database
from hotline.scenario import directory_toml
from hotline.store import accounts as account_store
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.migrate import upgrade
from tests.nodes import create_pg_database, drop_pg_database

ME = "US-JS"
START_MS = 1_668_524_760_000  # on a TOTP step boundary
PASSWORD = "correct horse battery staple"
OPERATOR = "nmcc-1"      # in the scenario's US-JS directory
OTHER = "cjcs-1"         # in the directory too
IDLE_S, MAX_S = 600, 3600


class FakeClock:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    def monotonic(self) -> float:
        return self.now / 1000

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@dataclass
class Node:
    db: Database
    clock: FakeClock
    service: AccountService
    secrets: dict[str, str]

    def code(self, operator: str = OPERATOR, offset_steps: int = 0) -> str:
        return totp.code_at(self.secrets.get(operator, self.secrets[OPERATOR]),
                            self.clock.now / 1000 + offset_steps * totp.STEP)

    async def login(self, operator: str = OPERATOR, password: str = PASSWORD,
                    code: str | None = None) -> Session:
        return await self.service.login(operator, password,
                                        self.code(operator) if code is None else code,
                                        lang="en", remote="192.0.2.7")

    async def refused(self, operator: str = OPERATOR, password: str = PASSWORD,
                      code: str | None = None) -> LoginRefused:
        with pytest.raises(LoginRefused) as caught:
            await self.login(operator, password, code)
        return caught.value

    async def account(self, operator: str = OPERATOR) -> account_store.Account:
        account = await self.db.read(lambda conn: account_store.get_account(conn, operator))
        assert account is not None
        return account

    async def logins(self, subject: str) -> list[str]:
        """The outcomes of the ``login`` log entries about ``subject``, in order."""
        entries = await self.db.read(lambda conn: log_store.by_subject(conn, subject))
        return [json.loads(e.entry)["body"]["outcome"] for e in entries if e.kind == "login"]

    async def entries(self, subject: str) -> list[dict[str, object]]:
        entries = await self.db.read(lambda conn: log_store.by_subject(conn, subject))
        return [{"kind": e.kind, **json.loads(e.entry)["body"]} for e in entries]

    async def log_verifies(self) -> None:
        report = await self.db.read(lambda conn: verify_database(conn, ME, {}))
        assert report.ok, report.problems


@pytest.fixture
def db_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    if db_kind == "sqlite":
        yield sqlite_url(tmp_path / "node.db")
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
async def node(db_url: str) -> AsyncIterator[Node]:
    engine = create_engine(db_url)
    upgrade(engine)
    clock = FakeClock(START_MS)
    directory = parse_directory(directory_toml(ME), "directory.toml")
    secrets = {OPERATOR: totp.new_secret(), OTHER: totp.new_secret()}
    encoded = passwords.hash_password(PASSWORD)
    with engine.begin() as conn:
        apply(conn, directory, START_MS)
        for operator, secret in secrets.items():
            account_store.insert_account(conn, operator, encoded, secret, START_MS)
    fatal: list[BaseException] = []
    db = Database(engine, fatal.append, hooks=[log_store.HOOKS])
    db.start()
    service = AccountService(me=ME, db=db, clock=clock, registry=Registry(db),
                             policy=LockoutPolicy(free_attempts=5, base_seconds=30,
                                                  max_seconds=3600),
                             idle_seconds=IDLE_S, max_seconds=MAX_S)
    try:
        yield Node(db, clock, service, secrets)
    finally:
        await db.stop()
    assert fatal == []


async def test_a_login_opens_a_session_known_only_by_the_hash_of_its_token(
        node: Node) -> None:
    session = await node.login()
    assert session.token is not None
    assert len(session.token) >= 43
    assert session.operator == OPERATOR
    assert session.lang == "en"
    assert session.expires_at == START_MS + MAX_S * 1000
    assert session.pending_totp is None
    found = await node.service.session(session.token)
    assert found is not None
    assert (found.operator, found.csrf, found.token) == (OPERATOR, session.csrf, None)

    def rows(conn: Connection) -> list[tuple[str, str]]:
        return [tuple(r) for r in conn.execute(text(
            "SELECT token_hash, csrf FROM console_sessions"))]
    stored = await node.db.read(rows)
    assert stored == [(hashlib.sha256(session.token.encode()).hexdigest(), session.csrf)]
    assert await node.service.session(session.token + "x") is None
    assert await node.service.session("") is None
    assert await node.logins(OPERATOR) == ["ok"]
    entry = (await node.entries(OPERATOR))[0]
    assert entry == {"kind": "login", "operator": OPERATOR, "outcome": "ok",
                     "remote": "192.0.2.7"}


async def test_wrong_password_wrong_code_and_unknown_operators_are_refused_alike(
        node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    burn, verify = passwords.burn_time, passwords.verify_password

    def burn_spy(password: str) -> None:
        threads.append(f"burn:{threading.current_thread() is threading.main_thread()}")
        burn(password)

    def verify_spy(password: str, encoded: str) -> bool:
        threads.append(f"verify:{threading.current_thread() is threading.main_thread()}")
        return verify(password, encoded)

    monkeypatch.setattr(passwords, "burn_time", burn_spy)
    monkeypatch.setattr(passwords, "verify_password", verify_spy)
    bad_code = f"{(int(node.code()) + 1) % 1_000_000:06d}"
    refusals = [
        await node.refused(password="wrong password, long enough"),
        await node.refused(code=bad_code),
        await node.refused(code="junk"),
        await node.refused(operator="nobody-here"),       # not in the directory
        await node.refused(operator="vcjcs-1"),           # in the directory, no account
        await node.refused(operator="Robert'); DROP TABLE operator_accounts;--\x00" * 5),
    ]
    assert {(r.error_id, r.message, r.status) for r in refusals} == \
        {("login-failed", FAILED_MESSAGE, 401)}
    # every password was checked off the event loop; unknown operators cost a hash too
    assert threads == ["verify:False"] * 3 + ["burn:False", "verify:False"] * 3
    assert await node.logins(OPERATOR) == ["failed"] * 3
    assert await node.logins("nobody-here") == ["failed"]
    assert await node.logins("vcjcs-1") == ["failed"]
    assert (await node.account()).failures == 3
    # what an unknown visitor typed is logged cleaned and cut to 64 characters
    def unknown(conn: Connection) -> list[str]:
        return [e.subject or "" for e in log_store.scan(conn)
                if e.subject and e.subject.startswith("Robert")]
    (subject,) = await node.db.read(unknown)
    assert len(subject) == 64
    assert "\x00" not in subject
    await node.log_verifies()


async def test_failures_lock_the_account_with_a_growing_lock_that_expires(
        node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    verify = passwords.verify_password

    def verify_spy(password: str, encoded: str) -> bool:
        checked.append(password)
        return verify(password, encoded)

    monkeypatch.setattr(passwords, "verify_password", verify_spy)
    for _ in range(4):
        assert (await node.refused(password="not the password!")).error_id == "login-failed"
    assert (await node.account()).locked_until is None  # four are free
    fifth = await node.refused(password="not the password!")
    assert fifth.error_id == "login-failed"  # the attempt itself fails like the others
    assert (await node.account()).locked_until == START_MS + 30_000
    # locked: even the right password and code are refused, without counting, and
    # without the password being checked at all
    checked.clear()
    locked = await node.refused()
    assert checked == []
    assert (locked.error_id, locked.status, locked.retry_after_seconds) == \
        ("locked-out", 429, 30)
    assert "try again in 30 seconds" in locked.message
    node.clock.advance(20)
    assert (await node.refused(password="wrong")).retry_after_seconds == 10
    assert (await node.account()).failures == 5
    # the lock expires with the clock; the next failure locks twice as long
    node.clock.advance(10)
    assert (await node.refused(password="still not the password")).error_id == "login-failed"
    assert (await node.account()).locked_until == node.clock.now + 60_000
    assert (await node.refused()).retry_after_seconds == 60
    node.clock.advance(59)
    assert (await node.refused()).error_id == "locked-out"
    node.clock.advance(1)
    session = await node.login()
    assert session.operator == OPERATOR
    account = await node.account()
    assert (account.failures, account.locked_until) == (0, None)
    assert await node.logins(OPERATOR) == ["failed"] * 5 + ["locked-out"] * 2 + \
        ["failed", "locked-out", "locked-out", "ok"]
    # another operator was never affected
    assert (await node.login(OTHER)).operator == OTHER
    await node.log_verifies()


async def test_a_code_works_once_and_an_older_one_never(node: Node) -> None:
    first = await node.login()
    assert first.token is not None
    assert (await node.refused()).error_id == "login-failed"  # the same code, replayed
    assert (await node.refused(code=node.code(offset_steps=-1))).error_id == "login-failed"
    node.clock.advance(totp.STEP)
    second = await node.login()  # the next step's code
    assert second.token != first.token
    assert (await node.account()).totp_last_step == totp.step_at(node.clock.now / 1000)
    assert await node.logins(OPERATOR) == ["ok", "failed", "failed", "ok"]


async def test_sessions_end_when_idle_too_long_or_at_their_maximum_age(node: Node) -> None:
    session = await node.login()
    assert session.token is not None

    def last_seen(conn: Connection) -> int:
        return int(conn.execute(text("SELECT last_seen FROM console_sessions")).scalar_one())

    node.clock.advance(30)
    assert await node.service.session(session.token) is not None
    assert await node.db.read(last_seen) == START_MS  # not written on every request
    node.clock.advance(IDLE_S - 31)
    assert await node.service.session(session.token) is not None
    assert await node.db.read(last_seen) == node.clock.now  # refreshed: a minute passed
    # kept alive by use, it still ends at its maximum age
    while node.clock.now + (IDLE_S - 1) * 1000 < START_MS + MAX_S * 1000:
        node.clock.advance(IDLE_S - 1)
        assert await node.service.session(session.token) is not None
    node.clock.now = START_MS + MAX_S * 1000
    assert await node.service.session(session.token) is None
    # idle: one more second than allowed since it was last seen
    node.clock.advance(totp.STEP)
    other = await node.login()
    assert other.token is not None
    node.clock.advance(IDLE_S)
    assert await node.service.session(other.token) is None
    with pytest.raises(HotlineError) as caught:
        await node.service.set_language(other.token, "ru")
    assert caught.value.error_id == "no-session"


async def test_logout_ends_the_session_and_is_logged(node: Node) -> None:
    session = await node.login()
    assert session.token is not None
    await node.service.set_language(session.token, "uk")
    assert (await node.service.session(session.token) or session).lang == "uk"
    await node.service.logout(session.token)
    assert await node.service.session(session.token) is None
    await node.service.logout(session.token)  # again: nothing happens
    kinds = [e["kind"] for e in await node.entries(OPERATOR)]
    assert kinds == ["login", "logout"]
    await node.log_verifies()


async def test_changing_the_password_ends_the_other_sessions(node: Node) -> None:
    mine = await node.login()
    node.clock.advance(totp.STEP)
    elsewhere = await node.login()
    assert mine.token is not None
    assert elsewhere.token is not None
    new = "a completely different passphrase"
    with pytest.raises(HotlineError) as weak:
        await node.service.change_password(mine.token, PASSWORD, "short")
    assert weak.value.error_id == "weak-password"
    with pytest.raises(HotlineError) as wrong:
        await node.service.change_password(mine.token, "not my password", new)
    assert wrong.value.error_id == "wrong-password"
    assert (await node.account()).failures == 1  # counts towards the lock-out
    assert await node.service.session(elsewhere.token) is not None
    await node.service.change_password(mine.token, PASSWORD, new)
    assert await node.service.session(mine.token) is not None
    assert await node.service.session(elsewhere.token) is None
    assert (await node.account()).failures == 0
    node.clock.advance(totp.STEP)
    assert (await node.refused(password=PASSWORD)).error_id == "login-failed"
    assert (await node.login(password=new)).operator == OPERATOR
    changes = [(e.get("change"), e.get("outcome")) for e in await node.entries(OPERATOR)
               if e["kind"] == "account"]
    assert changes == [("password", "refused"), ("password", None)]
    await node.log_verifies()


async def test_a_new_totp_secret_takes_effect_only_once_confirmed(node: Node) -> None:
    session = await node.login()
    assert session.token is not None
    old_secret = node.secrets[OPERATOR]
    pending = await node.service.begin_totp(session.token)
    assert pending != old_secret
    assert (await node.service.session(session.token) or session).pending_totp == pending
    wrong = totp.code_at(old_secret, node.clock.now / 1000)
    with pytest.raises(HotlineError) as caught:
        await node.service.confirm_totp(session.token, wrong)
    assert (caught.value.error_id, caught.value.status) == ("bad-code", 400)
    assert (await node.account()).totp_secret == old_secret  # nothing changed
    node.clock.advance(totp.STEP)
    assert (await node.login()).operator == OPERATOR  # the old secret still works
    await node.service.confirm_totp(session.token,
                                    totp.code_at(pending, node.clock.now / 1000))
    assert (await node.account()).totp_secret == pending
    assert (await node.service.session(session.token) or session).pending_totp is None
    node.secrets[OPERATOR] = pending
    assert (await node.refused()).error_id == "login-failed"  # the confirming code is spent
    node.clock.advance(totp.STEP)
    with pytest.raises(LoginRefused):
        await node.login(code=totp.code_at(old_secret, node.clock.now / 1000))
    assert (await node.login()).operator == OPERATOR
    with pytest.raises(HotlineError) as again:
        await node.service.confirm_totp(session.token, node.code())
    assert again.value.error_id == "bad-code"  # nothing pending any more
    kinds = [(e["kind"], e.get("change")) for e in await node.entries(OPERATOR)]
    assert ("account", "totp") in kinds
    await node.log_verifies()


async def test_an_operator_who_leaves_the_directory_is_logged_out(node: Node) -> None:
    session = await node.login()
    assert session.token is not None
    smaller = directory_toml(ME).replace(f'"{OPERATOR}"', '"x-1"')  # operator, watches
    directory = parse_directory(smaller, "directory.toml")
    await node.db.write(lambda conn: apply(conn, directory, node.clock.now))
    assert await node.service.session(session.token) is None
    node.clock.advance(totp.STEP)
    assert (await node.refused()).error_id == "login-failed"
    assert await node.logins(OPERATOR) == ["ok", "failed"]
