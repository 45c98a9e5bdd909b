"""The notifier on real parts: notification rows in SQLite and PostgreSQL, webhooks POSTed
to a real HTTP server in the test's event loop, e-mail to a real SMTP server (aiosmtpd)
or to a socket that never answers. Nothing of the notifier is mocked.

What is checked: a channel that hangs does not delay another (measured against the same
ring alone), an alert outlasts a 3-minute outage, a row gives up only at its
``retry_until`` and then calls the give-up hook once, and a new notifier on the same
database delivers what a stopped one left. Retries run in virtual time: the clock that
stamps the rows is the test's, and the test moves it and wakes the notifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Connection, select

from hotline.calls.directory import (
    ChannelSpec,
    Directory,
    EmailChannelSpec,
    Role,
    WebhookChannelSpec,
)
from hotline.calls.registry import Registry
from hotline.calls.registry import apply as apply_directory
from hotline.clock import SystemClock
from hotline.notify.runner import Notifier
from hotline.store import notifications
from hotline.store.database import Database
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.migrate import upgrade
from hotline.store.notifications import Notification
from hotline.store.schema import notifications as table
from tests.nodes import create_pg_database, drop_pg_database

T0 = 1_764_115_200_000
SECRET = "0123456789abcdef-webhook-secret"
SENDER = "hotline@us-js.example"
DEADLINE_S = 10.0  # no wait in these tests is meant to come anywhere near this

#: The healthy channel must not be later than alone by more than this (the brief's bound).
ISOLATION_S = 0.100


class ManualClock:
    """Wall-clock time that moves only when the test moves it."""

    def __init__(self, now_ms: int) -> None:
        self.ms = now_ms

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000


# --- the store ------------------------------------------------------------------------

@dataclass
class Store:
    url: str
    db: Database
    fatal: list[BaseException] = field(default_factory=list)

    def open(self) -> Database:
        """Another database object on the same URL, as a restarted node would have."""
        engine = create_engine(self.url)
        db = Database(engine, self.fatal.append)
        db.start()
        return db

    async def row(self, key: str) -> dict[str, Any]:
        def read(conn: Connection) -> dict[str, Any]:
            return dict(conn.execute(select(table).where(table.c.key == key)).one()._mapping)
        return await self.db.read(read)


@pytest.fixture
async def store(db_kind: str, tmp_path: Path) -> AsyncIterator[Store]:
    url = sqlite_url(tmp_path / "notify.db") if db_kind == "sqlite" else create_pg_database()
    try:
        engine = create_engine(url)
        upgrade(engine)
        fatal: list[BaseException] = []
        db = Database(engine, fatal.append)
        db.start()
        found = Store(url, db, fatal)
        try:
            yield found
        finally:
            await found.db.stop()
        assert not fatal, fatal
    finally:
        if db_kind == "postgresql":
            drop_pg_database(url)


async def use_channels(store: Store, *channels: ChannelSpec) -> None:
    directory = Directory(staffed_within_ms=300_000, roles={"duty": Role("duty", {"en": "Duty"})},
                          operators={}, roster=(), chains={},
                          channels={c.id: c for c in channels}, links={})
    await store.db.write(lambda conn: apply_directory(conn, directory, T0))


async def ring(store: Store, key: str, channels: list[str], now_ms: int,
               keep_until_ms: int | None = None) -> None:
    """What the ringing transaction writes: one row per channel for the alert ``key``."""
    alert = {"kind": "ringing", "party": "US-JS", "call_id": key, "caller": "nmcc-do@US-JS",
             "callee": "cgs@RU-GS", "step": 0, "roles": ["duty"], "operators": [],
             "reason": None, "at_ms": now_ms, "key": key}
    await store.db.write(lambda conn: notifications.add_for_channels(
        conn, alert, channels, now_ms, keep_until_ms=keep_until_ms))


async def until(what: str, check: Callable[[], Any], within_s: float = DEADLINE_S) -> Any:
    """Poll ``check`` (a function, or a coroutine function) until it returns something
    truthy; fail after ``within_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(0.002)


def settled(store: Store, key: str, clock: ManualClock) -> Callable[[], Awaitable[Any]]:
    """The row once the notifier is done with it for now: delivered, failed, or due
    later than the clock says."""
    async def check() -> dict[str, Any] | None:
        row = await store.row(key)
        done = row["delivered_at"] is not None or row["failed_at"] is not None \
            or row["next_at"] > clock.now_ms()
        return row if done else None
    return check


@contextlib.asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[Notifier]:
    notifier.start()
    try:
        yield notifier
    finally:
        await notifier.stop()


# --- a webhook receiver in the test's own event loop -----------------------------------

@dataclass(frozen=True)
class Hit:
    path: str
    key: str
    at: float  # the event loop's monotonic clock
    virtual_ms: int | None  # the test's wall clock, when it has one


class Hooks:
    """A real HTTP/1.1 server on a free loopback port. Each path answers as ``modes``
    says at the moment the request arrives: ``ok`` (204), ``down`` (503), ``refuse``
    (400) or ``hang`` (never answers while the test runs). Every request is recorded
    before it is answered."""

    STATUS: ClassVar[dict[str, bytes]] = {"ok": b"204 No Content",
                                          "down": b"503 Service Unavailable",
                                          "refuse": b"400 Bad Request"}

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.modes: dict[str, str] = {}
        self.hits: list[Hit] = []
        self.url = ""
        self._clock = clock
        self._arrived = asyncio.Event()
        self._release = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        self._release.set()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def channel(self, cid: str, path: str, mode: str) -> WebhookChannelSpec:
        self.modes[path] = mode
        return WebhookChannelSpec(cid, self.url + path, SECRET)

    def of(self, path: str, key: str | None = None) -> list[Hit]:
        return [h for h in self.hits if h.path == path and (key is None or h.key == key)]

    async def arrival(self, path: str, key: str, within_s: float = DEADLINE_S) -> Hit:
        """The first request for ``key`` on ``path``, waiting for it if need be."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while not (hits := self.of(path, key)):
            self._arrived.clear()
            if loop.time() > deadline:
                raise AssertionError(f"no request for {key} on {path} within {within_s} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
        return hits[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:  # keep-alive: one connection may carry several requests
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                path = head[0].split(" ")[1]
                headers = {name.strip().lower(): value.strip()
                           for name, _, value in (line.partition(":") for line in head[1:])}
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.hits.append(Hit(path, headers.get("x-hotline-delivery", ""),
                                     asyncio.get_running_loop().time(),
                                     None if self._clock is None else self._clock.now_ms()))
                self._arrived.set()
                mode = self.modes.get(path, "ok")
                if mode == "hang":
                    await self._release.wait()
                    return
                writer.write(b"HTTP/1.1 " + self.STATUS[mode] + b"\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    server = Hooks()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


# --- e-mail: a server that answers and one that never does ------------------------------

@dataclass
class Mailbox:
    arrivals: dict[str, float] = field(default_factory=dict)  # alert key -> loop time
    loop: asyncio.AbstractEventLoop | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        assert self.loop is not None
        key = next(line.split(b":", 1)[1].strip().decode()
                   for line in envelope.content.splitlines()
                   if line.lower().startswith(b"x-hotline-delivery:"))
        self.loop.call_soon_threadsafe(self._note, key, self.loop)
        return "250 2.0.0 queued"

    def _note(self, key: str, loop: asyncio.AbstractEventLoop) -> None:
        # stamped on the test's loop, the clock the webhook arrivals use (a few µs late)
        self.arrivals.setdefault(key, loop.time())
        self.arrived.set()

    async def arrival(self, key: str, within_s: float = DEADLINE_S) -> float:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while key not in self.arrivals:
            self.arrived.clear()
            if loop.time() > deadline:
                raise AssertionError(f"no mail for {key} within {within_s} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), deadline - loop.time())
        return self.arrivals[key]


class LoopbackController(Controller):
    """aiosmtpd on a loopback socket bound in advance (a port free for sure)."""

    def __init__(self, handler: Mailbox) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self._sock.getsockname()[1],
                         server_hostname="mx.test")

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()  # the test gives it its loop
    controller = LoopbackController(box)
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


class Silent:
    """A mail server that accepts connections and never says a word (no greeting)."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()  # the waiting client threads see the end and finish
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def silent() -> AsyncIterator[Silent]:
    server = Silent()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


# --- (a) a hanging channel does not delay a healthy one ---------------------------------

@pytest.mark.parametrize(("hanging", "healthy"), [("webhook", "webhook"),
                                                  ("email", "webhook"),
                                                  ("webhook", "email")])
async def test_a_hanging_channel_does_not_delay_a_healthy_one_on_the_same_step(
        store: Store, hooks: Hooks, mailbox: tuple[Mailbox, int], silent: Silent,
        hanging: str, healthy: str) -> None:
    box, smtp_port = mailbox
    box.loop = asyncio.get_running_loop()
    specs: dict[tuple[str, str], ChannelSpec] = {
        ("hang", "webhook"): hooks.channel("hang", "/hang", "hang"),
        ("hang", "email"): EmailChannelSpec("hang", "127.0.0.1", silent.port, SENDER,
                                            ("duty@us-js.example",), False),
        ("good", "webhook"): hooks.channel("good", "/good", "ok"),
        ("good", "email"): EmailChannelSpec("good", "127.0.0.1", smtp_port, SENDER,
                                            ("duty@us-js.example",), False),
    }
    await use_channels(store, specs["hang", hanging], specs["good", healthy])

    async def delivered_after(key: str, channels: list[str]) -> float:
        """Seconds from the committed ring to the healthy channel's receiver having it."""
        await ring(store, key, channels, T0)
        started = asyncio.get_running_loop().time()
        notifier.wake()
        if healthy == "webhook":
            return (await hooks.arrival("/good", key)).at - started
        return await box.arrival(key) - started

    def stuck() -> int:
        """Attempts the hanging receiver holds."""
        return len(hooks.of("/hang")) if hanging == "webhook" else silent.connections

    notifier = Notifier(db=store.db, clock=SystemClock(), registry=Registry(store.db),
                        email_timeout_s=30.0, webhook_timeout_s=30.0)
    async with running(notifier):
        alone = [await delivered_after(f"alone-{n}", ["good"]) for n in range(5)]
        # A backlog on the hanging channel, longer than a batch of the old notifier (50):
        # its lane fills with attempts that never end, and the rest of it waits there.
        for n in range(60):
            await ring(store, f"stuck-{n}", ["hang"], T0)
        notifier.wake()
        await until("the hanging lane to be full", lambda: stuck() >= 4)
        # the same step rings both channels, while the hanging one is stuck
        together = [await delivered_after(f"both-{n}", ["hang", "good"]) for n in range(5)]
        assert stuck() == 4  # the hanging lane's limit: all still stuck, none let go
        rows = await store.db.read(notifications.all_rows)
        assert all(r["delivered_at"] is None for r in rows if r["channel"] == "hang")

    # The typical delivery beside the hanging channel is within 100 ms of the typical one
    # alone; and none waited anywhere near an attempt on the hanging channel (its
    # timeout is seconds), which is what sharing a queue with it would cost. Single
    # samples vary with the machine's load, so the bound on each is that gross one.
    delay = statistics.median(together) - statistics.median(alone)
    assert delay < ISOLATION_S, (alone, together)
    assert max(together) < 1.0, (alone, together)


# --- (b) an alert outlasts a 3-minute outage ---------------------------------------------

async def test_a_ring_alert_outlasts_a_three_minute_webhook_outage(store: Store) -> None:
    clock = ManualClock(T0)
    hooks = Hooks(clock)
    await hooks.start()
    try:
        await use_channels(store, hooks.channel("ops", "/ops", "down"))
        await ring(store, "call-1:ring:0", ["ops"], T0)
        key = "call-1:ring:0:ops"
        async with running(Notifier(db=store.db, clock=clock,
                                    registry=Registry(store.db))) as notifier:
            for second in range(0, 301):  # virtual seconds; the outage ends at 180 s
                clock.ms = T0 + second * 1000
                if second == 180:
                    hooks.modes["/ops"] = "ok"
                notifier.wake()
                row = await until(f"the row at {second} s", settled(store, key, clock))
                if row["delivered_at"] is not None:
                    break
    finally:
        await hooks.close()

    tried_at_s = [((h.virtual_ms or 0) - T0) // 1000 for h in hooks.of("/ops")]
    assert tried_at_s == [0, 1, 3, 7, 15, 31, 63, 123, 183]
    assert row["delivered_at"] == T0 + 183_000
    assert row["attempts"] == 9
    assert row["failed_at"] is None
    assert row["retry_until"] == T0 + 3_600_000
    assert "HTTP 503" in row["last_error"]


# --- (c) giving up: only at retry_until, and the hook once -------------------------------

async def test_a_row_gives_up_only_at_retry_until_and_raises_the_alarm_once(
        store: Store) -> None:
    clock = ManualClock(T0)
    hooks = Hooks(clock)
    await hooks.start()
    gave_up: list[tuple[Notification, str]] = []

    async def alarm(row: Notification, error: str) -> None:
        gave_up.append((row, error))

    try:
        await use_channels(store, hooks.channel("ops", "/ops", "down"))
        await ring(store, "call-2:ring:0", ["ops"], T0)  # retried for the default hour
        key = "call-2:ring:0:ops"
        notifier = Notifier(db=store.db, clock=clock, registry=Registry(store.db),
                            on_gave_up=alarm)
        async with running(notifier):
            row = await store.row(key)
            while row["failed_at"] is None:
                assert not gave_up
                clock.ms = row["next_at"]  # straight to the next retry, in virtual time
                notifier.wake()
                row = await until(f"the attempt at {clock.ms - T0} ms", settled(store, key, clock))
            # An hour on, the lane delivers a new ring; the failed row is not tried again
            # (it is in no due query any more) and the hook is not called again.
            clock.ms += 3_600_000
            hooks.modes["/ops"] = "ok"
            await ring(store, "call-2:later", ["ops"], clock.ms)
            notifier.wake()
            await hooks.arrival("/ops", "call-2:later")
            await until("the later ring", settled(store, "call-2:later:ops", clock))
    finally:
        await hooks.close()

    tried_at_s = [((h.virtual_ms or 0) - T0) // 1000 for h in hooks.of("/ops", "call-2:ring:0")]
    assert tried_at_s == [0, 1, 3, 7, 15, 31, 63, *range(123, 3600, 60), 3600]
    assert row["retry_until"] == T0 + 3_600_000
    assert row["failed_at"] == T0 + 3_600_000  # not one attempt before retry_until
    assert row["attempts"] == len(tried_at_s) == 66
    assert row["delivered_at"] is None
    [(given, error)] = gave_up
    assert (given.id, given.key, given.channel) == (row["id"], key, "ops")
    assert given.attempts == 66
    assert given.retry_until == T0 + 3_600_000
    assert "HTTP 503" in error
    assert error == row["last_error"]


async def test_a_permanent_refusal_gives_up_at_once_and_raises_the_alarm_once(
        store: Store) -> None:
    clock = ManualClock(T0)
    hooks = Hooks(clock)
    await hooks.start()
    gave_up: list[tuple[Notification, str]] = []

    async def alarm(row: Notification, error: str) -> None:
        gave_up.append((row, error))

    try:
        await use_channels(store, hooks.channel("ops", "/ops", "refuse"))
        await ring(store, "call-3:ring:0", ["ops", "gone"], T0)  # "gone": not in the directory
        notifier = Notifier(db=store.db, clock=clock, registry=Registry(store.db),
                            on_gave_up=alarm)
        async with running(notifier):
            for key in ("call-3:ring:0:ops", "call-3:ring:0:gone"):
                row = await until(key, settled(store, key, clock))
                assert row["failed_at"] == T0
                assert row["attempts"] == 1
    finally:
        await hooks.close()
    assert sorted((row.key, error.split(":")[0]) for row, error in gave_up) == [
        ("call-3:ring:0:gone", "channel 'gone' is no longer in the directory (permanent)"),
        ("call-3:ring:0:ops", "ops")]
    assert "HTTP 400" in dict((r.key, e) for r, e in gave_up)["call-3:ring:0:ops"]


async def test_a_give_up_whose_alarm_could_not_be_stored_is_alarmed_at_the_next_round(
        store: Store) -> None:
    """The node's give-up hook stores an alarm; with the database locked it raises. The
    row has given up for good, so nothing else would alarm it: the notifier owes the
    hook and calls it again at its next round (before: logged once, and the row stayed
    failed without an alarm)."""
    clock = ManualClock(T0)
    hooks = Hooks(clock)
    await hooks.start()
    gave_up: list[str] = []
    tries = 0

    async def alarm(row: Notification, error: str) -> None:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise OSError("database is locked")
        gave_up.append(row.key)

    try:
        await use_channels(store, hooks.channel("ops", "/ops", "refuse"))
        await ring(store, "call-4:ring:0", ["ops"], T0)
        notifier = Notifier(db=store.db, clock=clock, registry=Registry(store.db),
                            on_gave_up=alarm, max_wait_s=0.05)
        async with running(notifier):
            await until("the give-up alarm", lambda: gave_up)
    finally:
        await hooks.close()
    assert gave_up == ["call-4:ring:0:ops"]
    assert tries == 2


# --- (d) a new notifier delivers what a stopped one left --------------------------------

async def test_a_restarted_notifier_delivers_what_the_stopped_one_left(
        store: Store) -> None:
    clock = ManualClock(T0)
    hooks = Hooks(clock)
    await hooks.start()
    try:
        await use_channels(store, hooks.channel("slow", "/slow", "hang"),
                           hooks.channel("down", "/down", "down"))
        await ring(store, "call-4:ring:0", ["slow", "down"], T0)
        first = Notifier(db=store.db, clock=clock, registry=Registry(store.db))
        async with running(first):
            first.wake()
            await hooks.arrival("/slow", "call-4:ring:0")  # in flight when we stop
            await until("the failed attempt",
                        settled(store, "call-4:ring:0:down", ManualClock(T0)))
        await store.db.stop()  # the node is gone; its rows stay

        hooks.modes.update({"/slow": "ok", "/down": "ok"})
        clock.ms = T0 + 1_000  # the failed row's retry is due
        store.db = store.open()
        second = Notifier(db=store.db, clock=clock, registry=Registry(store.db))
        async with running(second):
            for key in ("call-4:ring:0:slow", "call-4:ring:0:down"):
                row = await until(key, settled(store, key, clock))
                assert row["delivered_at"] == T0 + 1_000, key
    finally:
        await hooks.close()
    slow, down = await store.row("call-4:ring:0:slow"), await store.row("call-4:ring:0:down")
    assert slow["attempts"] == 1  # the interrupted attempt left no trace but the request
    assert down["attempts"] == 2
    assert len(hooks.of("/slow")) == 2  # the same alert key, twice
    assert len(hooks.of("/down")) == 2


async def test_a_clock_step_during_an_attempt_does_not_end_the_retries(store: Store) -> None:
    """The wall clock steps +2 h while an attempt hangs; the clock watch moves the row's
    retry_until with it (store/clocksteps.py). Whether to give up is decided against the
    row as stored after the attempt, not as read before it: the row is retried, not
    failed an hour before its (moved) deadline."""
    from hotline.store import clocksteps

    clock = ManualClock(T0)
    hooks = Hooks(clock)
    await hooks.start()
    gave_up: list[Notification] = []

    async def alarm(row: Notification, error: str) -> None:
        gave_up.append(row)

    try:
        await use_channels(store, hooks.channel("ops", "/ops", "hang"))
        await ring(store, "call-3:ring:0", ["ops"], T0)
        key = "call-3:ring:0:ops"
        notifier = Notifier(db=store.db, clock=clock, registry=Registry(store.db),
                            on_gave_up=alarm, webhook_timeout_s=0.3)
        async with running(notifier):
            await hooks.arrival("/ops", "call-3:ring:0")  # the attempt hangs now
            step = 2 * 3_600_000
            clock.ms += step
            await store.db.write(lambda conn: clocksteps.shift(conn, step))

            async def attempted() -> dict[str, Any] | None:
                found = await store.row(key)
                return found if found["attempts"] >= 1 else None
            row = await until("the hanging attempt to time out", attempted)
    finally:
        await hooks.close()
    assert gave_up == []
    assert row["failed_at"] is None
    assert row["retry_until"] == T0 + 3_600_000 + step
    assert T0 + step < row["next_at"] <= T0 + step + 60_000
