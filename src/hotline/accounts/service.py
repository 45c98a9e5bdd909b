"""Console log-in and sessions on the running node.

Why it is shaped this way:

* Argon2id is slow on purpose, so hashing and verifying run in a worker thread: on the
  event loop they would stall every call and message of the node, and inside a writer
  transaction they would stall every other write.
* What an attempt did to the account (failure count, lock, last TOTP step) is decided
  again inside the write transaction from the row as it is then, so two attempts racing
  each other cannot both reuse one code or both escape the count.
* Every attempt, whatever its outcome, is logged in the transaction that records it: the
  tamper-evident log then answers who was at the console, and who tried to be.
* A refused log-in says the same thing whichever part was wrong, and an unknown operator
  costs the same password hash as a known one, so the console does not reveal who has an
  account. (A lock-out does reveal that the account exists; that is the price of telling
  a real operator when to try again.)
* The browser holds a random token; the database holds only its SHA-256, so a copy of
  the database is not a set of live sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from hotline.accounts import passwords, totp
from hotline.accounts.lockout import LockoutPolicy, lock_seconds
from hotline.calls.directory import OPERATOR_RE, Operator
from hotline.calls.registry import Registry
from hotline.clock import Clock
from hotline.errors import HotlineError
from hotline.store import accounts as store
from hotline.store import directory as directory_store
from hotline.store import log as log_store
from hotline.store.database import Database

#: A session's ``last_seen`` is written at most this often: a write per request would put
#: every page view of every operator through the node's single writer.
TOUCH_MS = 60_000
MAX_TOKEN = 128
LOGGED_TEXT = 64
FAILED_MESSAGE = "wrong operator, password or code"
DEFAULT_POLICY = LockoutPolicy()
_LANG_RE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,4})?")


@dataclass(frozen=True)
class Session:
    operator: str
    csrf: str
    lang: str
    created_at: int
    expires_at: int
    pending_totp: str | None
    token: str | None = None  # the raw cookie value, only on the Session login() returns


class LoginRefused(HotlineError):
    """A refused log-in: ``login-failed`` (401) or ``locked-out`` (429, with
    ``retry_after_seconds``)."""

    def __init__(self, error_id: str, message: str, *, status: int,
                 retry_after_seconds: int = 0) -> None:
        super().__init__(error_id, message, status=status)
        self.retry_after_seconds = retry_after_seconds


def _failed() -> LoginRefused:
    return LoginRefused("login-failed", FAILED_MESSAGE, status=401)


def _locked(now_ms: int, until_ms: int) -> LoginRefused:
    seconds = max(1, math.ceil((until_ms - now_ms) / 1000))
    wait = f"{seconds} seconds" if seconds < 120 else f"{math.ceil(seconds / 60)} minutes"
    return LoginRefused("locked-out", f"too many failed attempts; try again in {wait}",
                        status=429, retry_after_seconds=seconds)


def _no_session() -> HotlineError:
    return HotlineError("no-session", "not logged in, or the session has ended",
                        hint="log in again", status=401)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def clean(text: str | None, limit: int = LOGGED_TEXT) -> str | None:
    """``text`` fit for the log: printable characters only, at most ``limit`` of them
    (what an unknown visitor typed is evidence, not something to store at any size)."""
    if text is None:
        return None
    return "".join(ch for ch in text if ch.isprintable())[:limit]


def check_language(lang: str) -> str:
    if len(lang) > 8 or not _LANG_RE.fullmatch(lang):
        raise HotlineError("bad-language", f"{clean(lang, 20)!r} is not a language tag",
                           status=400)
    return lang


def _public(row: store.SessionRow, token: str | None = None) -> Session:
    return Session(row.operator, row.csrf, row.lang, row.created_at, row.expires_at,
                   row.pending_totp, token)


def _locked_at(account: store.Account, now_ms: int) -> bool:
    return account.locked_until is not None and account.locked_until > now_ms


@dataclass(frozen=True)
class _Outcome:
    """What a write transaction decided; raised (or returned) once it has committed."""

    result: str  # "ok" | "failed" | "locked-out" | "gone" | "changed"
    locked_until: int | None = None
    session: Session | None = None


class AccountService:
    def __init__(self, *, me: str, db: Database, clock: Clock, registry: Registry,
                 policy: LockoutPolicy = DEFAULT_POLICY, idle_seconds: int = 12 * 3600,
                 max_seconds: int = 24 * 3600) -> None:
        self._me = me
        self._db = db
        self._clock = clock
        self._registry = registry
        self._policy = policy
        self._idle_ms = idle_seconds * 1000
        self._max_ms = max_seconds * 1000

    def enrolment_uri(self, operator: str, secret: str) -> str:
        """The ``otpauth://`` URI for ``secret`` (e.g. from :meth:`begin_totp`)."""
        return totp.provisioning_uri(secret, operator, self._me)

    # -- logging in and out -----------------------------------------------------------
    async def login(self, operator: str, password: str, code: str, *, lang: str,
                    remote: str | None) -> Session:
        check_language(lang)
        now = self._clock.now_ms()
        name = operator.strip().lower()
        remote = clean(remote)
        account = None
        if OPERATOR_RE.fullmatch(name):
            account, number = await self._db.read(lambda conn: (
                store.get_account(conn, name), directory_store.latest_number(conn)))
            if account is not None and name not in await self._operators(number):
                account = None
        if account is None:
            await asyncio.to_thread(passwords.burn_time, password)
            subject = clean(operator.strip()) or None
            await self._db.write(lambda conn: self._log_login(conn, subject, "failed",
                                                              remote, now))
            raise _failed()
        if _locked_at(account, now):
            await self._db.write(lambda conn: self._log_login(conn, name, "locked-out",
                                                              remote, now))
            raise _locked(now, account.locked_until or now)
        password_ok = await asyncio.to_thread(passwords.verify_password, password,
                                              account.password_hash)
        seen_hash = account.password_hash
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)

        def settle(conn: Connection) -> _Outcome:
            fresh = store.get_account(conn, name)
            if fresh is None:
                self._log_login(conn, name, "failed", remote, now)
                return _Outcome("failed")
            if _locked_at(fresh, now):
                self._log_login(conn, name, "locked-out", remote, now)
                return _Outcome("locked-out", fresh.locked_until)
            step = None
            if password_ok and fresh.password_hash == seen_hash:
                step = totp.matching_step(fresh.totp_secret, code, now / 1000,
                                          fresh.totp_last_step)
            if step is None:
                self._count_failure(conn, fresh, now)
                self._log_login(conn, name, "failed", remote, now)
                return _Outcome("failed")
            store.update_account(conn, name, now, failures=0, locked_until=None,
                                 totp_last_step=step)
            store.delete_stale_sessions(conn, now, now - self._idle_ms)
            row = store.SessionRow(token_hash(token), name, csrf, lang, now, now,
                                   now + self._max_ms, None)
            store.create_session(conn, row)
            self._log_login(conn, name, "ok", remote, now)
            return _Outcome("ok", session=_public(row, token))

        outcome = await self._db.write(settle)
        if outcome.result == "locked-out":
            raise _locked(now, outcome.locked_until or now)
        if outcome.session is None:
            raise _failed()
        return outcome.session

    async def logout(self, token: str) -> None:
        if not token or len(token) > MAX_TOKEN:
            return
        hashed, now = token_hash(token), self._clock.now_ms()

        def end(conn: Connection) -> None:
            row = store.get_session(conn, hashed)
            if row is not None:
                store.delete_session(conn, hashed)
                log_store.append_one(conn, "logout", {"operator": row.operator}, now,
                                     subject=row.operator)

        await self._db.write(end)

    # -- sessions -----------------------------------------------------------------------
    async def session(self, token: str) -> Session | None:
        """The live session of ``token``, or None: unknown, past its end, idle too long,
        or its operator no longer has an account or is no longer in the directory."""
        if not token or len(token) > MAX_TOKEN:
            return None
        hashed = token_hash(token)

        def lookup(conn: Connection) -> tuple[store.SessionRow | None, bool, int]:
            row = store.get_session(conn, hashed)
            has_account = row is not None and \
                store.get_account(conn, row.operator) is not None
            return row, has_account, directory_store.latest_number(conn)

        row, has_account, number = await self._db.read(lookup)
        if row is None:
            return None
        now = self._clock.now_ms()
        if (now >= row.expires_at or now - row.last_seen >= self._idle_ms or not has_account
                or row.operator not in await self._operators(number)):
            await self._db.write(lambda conn: store.delete_session(conn, hashed))
            return None
        if now - row.last_seen >= TOUCH_MS:
            await self._db.write(lambda conn: store.touch_session(conn, hashed, now))
        return _public(row)

    async def set_language(self, token: str, lang: str) -> None:
        check_language(lang)
        await self._require(token)
        hashed = token_hash(token)
        if not await self._db.write(lambda conn: store.update_session(conn, hashed,
                                                                      lang=lang)):
            raise _no_session()

    # -- changes by the operator ----------------------------------------------------------
    async def begin_totp(self, token: str) -> str:
        """Start replacing the authenticator secret: a new one is kept in the session
        until :meth:`confirm_totp` proves the app has it. The old one keeps working."""
        await self._require(token)
        secret, hashed = totp.new_secret(), token_hash(token)
        if not await self._db.write(lambda conn: store.update_session(
                conn, hashed, pending_totp=secret)):
            raise _no_session()
        return secret

    async def confirm_totp(self, token: str, code: str) -> None:
        """Make the pending secret the account's, if ``code`` comes from it; otherwise
        raise ``bad-code`` and change nothing (the old secret stays)."""
        await self._require(token)
        hashed, now = token_hash(token), self._clock.now_ms()

        def confirm(conn: Connection) -> str:
            row = store.get_session(conn, hashed)
            if row is None:
                return "gone"
            if row.pending_totp is None:
                return "none"
            step = totp.matching_step(row.pending_totp, code, now / 1000, None)
            if step is None:
                return "bad"
            if not store.update_account(conn, row.operator, now,
                                        totp_secret=row.pending_totp, totp_last_step=step):
                return "gone"
            store.update_session(conn, hashed, clear_pending=True)
            self._log_change(conn, row.operator, "totp", now)
            return "ok"

        result = await self._db.write(confirm)
        if result == "gone":
            raise _no_session()
        if result == "none":
            raise HotlineError("bad-code", "no new authenticator secret is being set up",
                               hint="start the change again", status=400)
        if result == "bad":
            raise HotlineError("bad-code", "the code does not match the new secret; "
                                           "nothing was changed", status=400)

    async def change_password(self, token: str, current: str, new: str) -> None:
        """Replace the password, given the current one. A wrong current password counts
        towards the lock-out like a failed log-in; on success every other session of the
        operator ends (whoever else was logged in as them is logged out)."""
        session = await self._require(token)
        passwords.check_policy(new)
        operator, hashed, now = session.operator, token_hash(token), self._clock.now_ms()
        account = await self._db.read(lambda conn: store.get_account(conn, operator))
        if account is None:
            raise _no_session()
        if _locked_at(account, now):
            await self._db.write(lambda conn: self._log_change(
                conn, operator, "password", now, outcome="locked-out"))
            raise _locked(now, account.locked_until or now)
        ok = await asyncio.to_thread(passwords.verify_password, current,
                                     account.password_hash)
        new_hash = await asyncio.to_thread(passwords.hash_password, new) if ok else None
        seen_hash = account.password_hash

        def change(conn: Connection) -> _Outcome:
            fresh = store.get_account(conn, operator)
            if fresh is None or store.get_session(conn, hashed) is None:
                return _Outcome("gone")
            if _locked_at(fresh, now):
                self._log_change(conn, operator, "password", now, outcome="locked-out")
                return _Outcome("locked-out", fresh.locked_until)
            if fresh.password_hash != seen_hash:
                return _Outcome("changed")
            if new_hash is None:
                self._count_failure(conn, fresh, now)
                self._log_change(conn, operator, "password", now, outcome="refused")
                return _Outcome("failed")
            store.update_account(conn, operator, now, password_hash=new_hash, failures=0,
                                 locked_until=None)
            store.delete_sessions_of(conn, operator, keep=hashed)
            self._log_change(conn, operator, "password", now)
            return _Outcome("ok")

        outcome = await self._db.write(change)
        if outcome.result == "gone":
            raise _no_session()
        if outcome.result == "locked-out":
            raise _locked(now, outcome.locked_until or now)
        if outcome.result == "changed":
            raise HotlineError("account-changed", "the password was changed meanwhile; "
                                                  "nothing was changed", hint="try again",
                               status=409)
        if outcome.result == "failed":
            raise HotlineError("wrong-password", "the current password is not right; "
                                                 "nothing was changed", status=400)

    # -- helpers --------------------------------------------------------------------------
    async def _require(self, token: str) -> Session:
        session = await self.session(token)
        if session is None:
            raise _no_session()
        return session

    async def _operators(self, number: int) -> Mapping[str, Operator]:
        """The current directory's operators, reloaded if ``number`` says it changed."""
        if number != self._registry.version:
            await self._registry.reload()
        return self._registry.current.operators

    def _count_failure(self, conn: Connection, account: store.Account, now: int) -> None:
        failures = account.failures + 1
        seconds = lock_seconds(failures, self._policy)
        until = now + math.ceil(seconds * 1000) if seconds > 0 else None
        store.update_account(conn, account.operator, now, failures=failures,
                             locked_until=until)

    @staticmethod
    def _log_login(conn: Connection, operator: str | None, outcome: str, remote: str | None,
                   now: int) -> None:
        log_store.append_one(conn, "login", {"operator": operator, "outcome": outcome,
                                             "remote": remote}, now, subject=operator)

    @staticmethod
    def _log_change(conn: Connection, operator: str, change: str, now: int, *,
                    outcome: str | None = None) -> None:
        body: dict[str, Any] = {"operator": operator, "change": change, "via": "console"}
        if outcome is not None:
            body["outcome"] = outcome
        log_store.append_one(conn, "account", body, now, subject=operator)
