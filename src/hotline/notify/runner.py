"""Delivering notification rows through their channels, each channel on its own.

The rows are the truth: written in the ringing transaction (``store/notifications.py``)
and marked delivered or failed here, so whatever a stop or a crash interrupts is simply
due again on the next start. What lives in memory only schedules them:

* The notifier's own loop, woken by :meth:`Notifier.wake` after a commit that added rows
  and at least every ``max_wait_s``, reloads the directory, asks which channels have
  pending rows and pokes their lanes. It never waits for a delivery.
* One lane per channel id (a channel has one endpoint: its webhook URL or its mail
  server) reads that channel's due rows and runs at most ``per_channel`` attempts at
  once, each bounded by the channel's timeout, over the lane's own HTTP client or thread
  pool. A channel that hangs or fails fills only its own lane; no other waits for it.

A failed attempt is retried on the one schedule of ``notify/retry.py`` until the row's
``retry_until``. A permanent refusal, or a failure at ``retry_until``, marks the row
failed, logs it and calls ``on_gave_up``: visible, never silently dropped.

Waiting is on the event loop's monotonic clock, at most ``max_wait_s`` at a time so a
wall-clock step is noticed; the times stored in rows are wall-clock ms from the clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Final

import httpx
from sqlalchemy import Connection

from hotline.calls.directory import EmailChannelSpec, WebhookChannelSpec
from hotline.calls.registry import Registry
from hotline.clock import Clock
from hotline.errors import ConfigError
from hotline.events import BackgroundTask
from hotline.health.supervisor import Running, Supervisor
from hotline.notify.channels import Alert, Channel, ChannelError, one_line
from hotline.notify.email import EmailChannel
from hotline.notify.retry import next_attempt_ms
from hotline.notify.webhook import WebhookChannel
from hotline.store import notifications
from hotline.store.database import Database
from hotline.store.notifications import Notification
from hotline.waits import cancel_and_wait, wait_event

log = logging.getLogger("hotline.notify")

#: failed attempts in a row on a channel after which it is reported failing while its rows
#: are still retried (3 s on the schedule for one row; more where attempts hang)
ALARM_AFTER_FAILURES = 3

#: Called once when a row is marked failed for good (after that commit), with the row
#: (its ``attempts`` counting the last one) and the last error. It runs in the row's
#: lane, so it should be short; an exception from it is logged.
GaveUp = Callable[[Notification, str], Awaitable[None]]

#: How long past a channel's own timeout the lane waits before it abandons an attempt
#: itself: a backstop for a channel whose timeout did not fire.
TIMEOUT_GRACE_S: Final = 1.0


class Notifier(BackgroundTask):
    task_name = "notifier"

    def __init__(self, *, db: Database, clock: Clock, registry: Registry,
                 max_wait_s: float = 1.0, per_channel: int = 4,
                 webhook_timeout_s: float = 5.0, email_timeout_s: float = 10.0,
                 on_gave_up: GaveUp | None = None,
                 on_failing: GaveUp | None = None,
                 on_channel_ok: Callable[[str], Awaitable[None]] | None = None,
                 client: httpx.AsyncClient | None = None,
                 on_outcome: Callable[[str, str], None] | None = None) -> None:
        """``on_gave_up`` is called once for a row that failed for good; ``on_failing``
        once for a channel whose attempts have failed ``ALARM_AFTER_FAILURES`` times in a
        row while its rows are still retried; ``on_channel_ok`` when such a channel delivers
        again. ``client``: one HTTP client
        for every webhook lane, owned by the caller (the simulation harness's in-memory
        webhooks); by default each lane has its own. ``on_outcome``: (channel,
        "delivered" | "retrying" | "failed") after each attempt is recorded."""
        super().__init__()
        self._on_outcome = on_outcome
        if per_channel < 1:
            raise ValueError("per_channel must be at least 1")
        self._db = db
        self._clock = clock
        self._registry = registry
        self._max_wait = max_wait_s
        self._per_channel = per_channel
        self._webhook_timeout = webhook_timeout_s
        self._email_timeout = email_timeout_s
        self._on_gave_up = on_gave_up
        self._on_channel_ok = on_channel_ok
        self._on_failing = on_failing
        self._failed_channels: set[str] = set()
        self._ok_channels: set[str] = set()
        self._channel_failures: dict[str, int] = {}
        #: alarm hooks that failed (the database could not store the alarm), in order:
        #: owed, and called again at every round until they succeed (:meth:`_hook`)
        self._owed: deque[tuple[str, Callable[[], Awaitable[None]]]] = deque()
        self._client = client
        self._wake = asyncio.Event()
        self._lanes: dict[str, _Lane] = {}

    def wake(self) -> None:
        """New rows were committed: look for them now rather than at the next tick."""
        self._wake.set()
        for lane in self._lanes.values():
            lane.poke()

    async def stop(self) -> None:
        await super().stop()
        lanes = list(self._lanes.values())
        self._lanes.clear()
        await asyncio.gather(*(lane.stop() for lane in lanes))

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            # An error here ends this run: the supervisor logs it, raises an alarm and
            # restarts the notifier (the rows are the truth; nothing is lost).
            await self._registry.reload()
            channels = await self._db.read(notifications.pending_channels)
            for channel in channels:
                self._lane(channel).poke()
            await self._pay_owed()
            await wait_event(self._wake, self._max_wait)

    async def _hook(self, what: str, call: Callable[[], Awaitable[None]]) -> None:
        """Call an alarm hook. One that fails (the alarm could not be stored) is logged
        and owed: called again at the notifier's next round, in order, until it succeeds.
        Before, it was only logged, and a row that gave up, or a channel that kept
        failing, stayed without its alarm."""
        if self._owed:  # keep the order: a channel's "failing" before its "ok"
            self._owed.append((what, call))
            return
        try:
            await call()
        except Exception:
            log.exception("%s failed; it is tried again at the notifier's next round", what)
            self._owed.append((what, call))

    async def _pay_owed(self) -> None:
        while self._owed:
            what, call = self._owed[0]
            try:
                await call()
            except Exception:
                log.exception("%s failed again; it is tried again at the next round", what)
                return
            self._owed.popleft()
            log.info("%s: done at last", what)

    def _lane(self, channel: str) -> _Lane:
        lane = self._lanes.get(channel)
        if lane is None:
            lane = _Lane(channel, self._attempt, db=self._db, clock=self._clock,
                         limit=self._per_channel, max_wait_s=self._max_wait,
                         client=self._client)
            self._lanes[channel] = lane
            lane.start(self._running.supervisor)
        return lane

    # -- one attempt -------------------------------------------------------------------
    async def _attempt(self, lane: _Lane, row: Notification) -> None:
        """Try ``row`` once through ``lane``'s channel and store the outcome."""
        error: ChannelError | None = None
        timeout_s = 0.0
        try:
            alert = _alert_of(row)
            channel, timeout_s = self._channel(lane, row, alert)
            async with asyncio.timeout(timeout_s + TIMEOUT_GRACE_S):
                await channel.deliver(alert)
        except ChannelError as exc:
            error = exc
        except TimeoutError:
            error = ChannelError(f"{row.channel}: no answer within {timeout_s:g} s",
                                 permanent=False)
        except Exception as exc:  # a bug in a channel: recorded and retried, not lost
            log.exception("notification %s via %s: unexpected failure", row.key, row.channel)
            error = ChannelError(f"{row.channel}: {type(exc).__name__}: "
                                 f"{one_line(str(exc))}", permanent=False)
        await self._record(row, error)

    def _channel(self, lane: _Lane, row: Notification,
                 alert: Alert) -> tuple[Channel, float]:
        directory = self._registry.current
        spec = directory.channels.get(row.channel)
        try:
            if isinstance(spec, WebhookChannelSpec):
                return WebhookChannel(spec.id, spec.url, spec.secret.encode(),
                                      timeout_s=self._webhook_timeout,
                                      client=lane.http_client(),
                                      clock=self._clock), self._webhook_timeout
            if isinstance(spec, EmailChannelSpec):
                extra = tuple(op.email for name in alert.operators
                              if (op := directory.operators.get(name)) is not None
                              and op.email)
                recipients = tuple(dict.fromkeys(spec.to + extra))
                return EmailChannel(spec.id, spec.host, spec.port, spec.sender, recipients,
                                    timeout_s=self._email_timeout, starttls=spec.starttls,
                                    executor=lane.threads()), self._email_timeout
        except ConfigError as exc:
            raise ChannelError(f"{row.channel}: {exc.message}", permanent=True) from None
        raise ChannelError(f"channel {row.channel!r} is no longer in the directory",
                           permanent=True)

    def _outcome(self, channel: str, outcome: str) -> None:
        if self._on_outcome is not None:
            self._on_outcome(channel, outcome)

    async def _record(self, row: Notification, error: ChannelError | None) -> None:
        if error is None:
            await self._db.write(lambda conn: notifications.delivered(
                conn, row.id, self._clock.now_ms()))
            self._outcome(row.channel, "delivered")
            self._channel_failures.pop(row.channel, None)
            # the first delivery of a channel since start too: an alarm raised before a
            # restart is cleared by it
            if (row.channel in self._failed_channels or row.channel not in self._ok_channels) \
                    and self._on_channel_ok is not None:
                self._failed_channels.discard(row.channel)
                self._ok_channels.add(row.channel)
                on_ok, channel = self._on_channel_ok, row.channel
                await self._hook(f"the channel-ok hook for {channel}",
                                 lambda: on_ok(channel))
            return
        failures = row.attempts + 1
        text = str(error)

        def decide(conn: Connection) -> tuple[bool, int, int | None]:
            # Decided in the writer, against the row's retry_until as stored now and the
            # clock as it is now: a wall-clock step during the attempt has moved both.
            now = self._clock.now_ms()
            until = notifications.retry_until_of(conn, row.id)
            retry_at = None if error.permanent or until is None else \
                next_attempt_ms(failures, now, until)
            return notifications.failed(conn, row.id, now, text, retry_at=retry_at), now, \
                retry_at
        marked, now, retry_at = await self._db.write(decide)
        if retry_at is not None or marked:
            self._outcome(row.channel, "retrying" if retry_at is not None else "failed")
        if retry_at is not None:
            log.warning("notification %s via %s failed (attempt %d), next try in %.3g s: %s",
                        row.key, row.channel, failures, (retry_at - now) / 1000, text)
            # attempts on the channel failed in a row (any rows; a row's own count also
            # survives a restart)
            run = max(self._channel_failures.get(row.channel, 0) + 1, failures)
            self._channel_failures[row.channel] = run
            if run >= ALARM_AFTER_FAILURES and row.channel not in self._failed_channels \
                    and self._on_failing is not None:
                # still retrying, but the people it is for are not being reached: say so
                # now, not an hour from now when the row gives up
                self._failed_channels.add(row.channel)
                self._ok_channels.discard(row.channel)
                on_failing, failing = self._on_failing, replace(row, attempts=failures)
                await self._hook(f"the failing hook for notification {row.key}",
                                 lambda: on_failing(failing, text))
            return
        if not marked:
            return
        log.error("notification %s via %s failed for good after %d attempt(s): %s",
                  row.key, row.channel, failures, text)
        self._failed_channels.add(row.channel)
        self._ok_channels.discard(row.channel)
        if self._on_gave_up is not None:
            on_gave_up, gone = self._on_gave_up, replace(row, attempts=failures)
            await self._hook(f"the give-up hook for notification {row.key}",
                             lambda: on_gave_up(gone, text))


def _alert_of(row: Notification) -> Alert:
    a = row.alert
    try:
        return Alert(kind=a["kind"], party=a["party"], call_id=a["call_id"],
                     caller=a["caller"], callee=a["callee"], step=a["step"],
                     roles=tuple(a["roles"]), operators=tuple(a["operators"]),
                     reason=a["reason"], at_ms=a["at_ms"], key=a["key"])
    except (KeyError, TypeError, ValueError) as exc:  # a stored row no alert can be made of
        raise ChannelError(f"{row.channel}: the stored alert is unusable: "
                           f"{type(exc).__name__}: {one_line(str(exc))}",
                           permanent=True) from None


Attempt = Callable[["_Lane", Notification], Awaitable[None]]


class _Lane:
    """One channel's queue: its due rows, at most ``limit`` attempts in flight, its own
    HTTP client and thread pool. Only ever waits for its own channel."""

    def __init__(self, channel: str, attempt: Attempt, *, db: Database, clock: Clock,
                 limit: int, max_wait_s: float,
                 client: httpx.AsyncClient | None = None) -> None:
        self.channel = channel
        self._attempt = attempt
        self._db = db
        self._clock = clock
        self._limit = limit
        self._max_wait = max_wait_s
        self._poke = asyncio.Event()
        self._running = Running(f"notify:{channel}", self._run)
        self._failure: BaseException | None = None
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = client
        self._own_client = client is None
        self._threads: ThreadPoolExecutor | None = None

    def start(self, supervisor: Supervisor | None = None) -> None:
        """Under the node's supervisor when there is one: a lane that fails is logged,
        alarmed and restarted like every other task."""
        self._running.start(supervisor)

    def poke(self) -> None:
        self._poke.set()

    def http_client(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=self._limit,
                                  max_keepalive_connections=self._limit)
            self._client = httpx.AsyncClient(limits=limits, follow_redirects=False)
        return self._client

    def threads(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self._limit,
                                               thread_name_prefix=f"notify-{self.channel}")
        return self._threads

    async def stop(self) -> None:
        await self._running.stop()
        await cancel_and_wait(list(self._in_flight.values()), what="notification attempt")
        if self._client is not None and self._own_client:
            await self._client.aclose()
        if self._threads is not None:
            # a thread stuck on a mail server ends at its own deadline; nobody waits for it
            self._threads.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        while True:
            self._poke.clear()
            if self._failure is not None:  # an attempt's outcome could not be stored
                failure, self._failure = self._failure, None
                raise failure
            wait = await self._fill()
            await wait_event(self._poke, wait)

    async def _fill(self) -> float | None:
        """Start an attempt for each due row there is room for; return how long to wait
        before looking again (``None``: until poked, as nothing is pending)."""
        now = self._clock.now_ms()
        busy = set(self._in_flight)
        room = self._limit - len(busy)
        if room <= 0:
            return self._max_wait  # a finished attempt pokes
        rows = await self._db.read(lambda conn: notifications.due(
            conn, now, room, channel=self.channel, exclude=busy))
        for row in rows:
            if row.id not in self._in_flight:
                self._in_flight[row.id] = asyncio.create_task(
                    self._try(row), name=f"notify:{self.channel}:{row.id}")
        if len(rows) == room:
            return self._max_wait
        busy = set(self._in_flight)
        after = await self._db.read(lambda conn: notifications.next_at(
            conn, self.channel, busy))
        if after is None:
            return None
        return min(self._max_wait, max(0.0, (after - now) / 1000))

    async def _try(self, row: Notification) -> None:
        try:
            await self._attempt(self, row)
        except Exception as exc:
            # The outcome could not be stored: the row stays due, and the lane hands the
            # error to the supervisor (logged, alarmed, restarted after a backoff, so a
            # failing store does not turn into a flood of attempts).
            self._failure = exc
        finally:
            self._in_flight.pop(row.id, None)
            self._poke.set()
