"""Delivering notification rows through their channels, with retries.

Rows are written by the transaction that rings (``store/notifications.py``); this task
sends each through the channel the directory defines, marks it delivered, or schedules a
retry with capped exponential backoff. A permanent refusal (or too many attempts) marks
it failed and logs it: visible, never silently dropped.

A failed attempt also raises the alarm ``notification-failed`` for its channel (one
standing alarm per channel, repeats coalesced), so a webhook that is down or hangs shows
in ``status`` and the console; the channel's next delivery clears it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from hotline.calls.directory import EmailChannelSpec, WebhookChannelSpec
from hotline.calls.registry import Registry
from hotline.clock import Clock
from hotline.events import BackgroundTask
from hotline.health.alarms import Alarm, Alarms
from hotline.notify.channels import Alert, Channel, ChannelError
from hotline.notify.email import EmailChannel
from hotline.notify.webhook import WebhookChannel
from hotline.store import notifications
from hotline.store.database import Database
from hotline.store.notifications import Notification

log = logging.getLogger("hotline.notify")
MAX_ATTEMPTS = 8
FIRST_RETRY_MS = 1000
MAX_RETRY_MS = 5 * 60_000
DUE_PAGE = 50


def retry_delay_ms(attempts: int) -> int:
    return int(min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** max(0, attempts - 1)))


class Notifier(BackgroundTask):
    task_name = "notifier"

    def __init__(self, *, db: Database, clock: Clock, registry: Registry,
                 max_wait_s: float = 1.0, client: httpx.AsyncClient | None = None,
                 alarms: Alarms | None = None) -> None:
        super().__init__()
        self._db = db
        self._clock = clock
        self._registry = registry
        self._max_wait = max_wait_s
        self._wake = asyncio.Event()
        # A client passed in (the simulation harness's, in memory) belongs to the caller.
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()
        self._alarms = alarms
        self._failing: set[str] | None = None  # channels with a standing alarm
        self._sending: set[int] = set()  # rows with an attempt under way

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        await super().stop()
        if self._owns_client:
            await self._client.aclose()

    async def _run(self) -> None:
        # Each attempt runs as a task of its own, so a channel that hangs until its
        # time-out holds up nothing but itself: rows that fall due meanwhile (the next
        # ring, another channel) start at once. Cancelling this task cancels them all.
        async with asyncio.TaskGroup() as attempts:
            while True:
                try:
                    await self._step(attempts)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("sending notifications failed")
                    await asyncio.sleep(self._max_wait)

    async def _step(self, attempts: asyncio.TaskGroup) -> None:
        self._wake.clear()
        now = self._clock.now_ms()
        busy = set(self._sending)
        rows = await self._db.read(lambda conn: notifications.due(
            conn, now, limit=DUE_PAGE + len(busy)))
        rows = [row for row in rows if row.id not in busy]
        if rows:
            await self._registry.reload()
            for row in rows:
                self._sending.add(row.id)
                attempts.create_task(self._attempt(row))
            return
        next_at = await self._db.read(lambda conn: notifications.next_at_except(conn, busy))
        delay = self._max_wait if next_at is None else \
            max(0.0, min(self._max_wait, (next_at - now) / 1000))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _attempt(self, row: Notification) -> None:
        try:
            await self._deliver(row)
        except Exception:  # not the channel's failure: look at this row again later
            log.exception("sending notification %s failed", row.key)
            await asyncio.sleep(self._max_wait)
        finally:  # its outcome is stored (or it was cancelled): look at the rows again
            self._sending.discard(row.id)
            self._wake.set()

    def _channel(self, row: Notification, alert: Alert) -> Channel:
        directory = self._registry.current
        spec = directory.channels.get(row.channel)
        if isinstance(spec, WebhookChannelSpec):
            return WebhookChannel(spec.id, spec.url, spec.secret.encode(), client=self._client)
        if isinstance(spec, EmailChannelSpec):
            extra = tuple(op.email for name in alert.operators
                          if (op := directory.operators.get(name)) is not None and op.email)
            recipients = tuple(dict.fromkeys(spec.to + extra))
            return EmailChannel(spec.id, spec.host, spec.port, spec.sender, recipients,
                                starttls=spec.starttls)
        raise ChannelError(f"channel {row.channel!r} is no longer in the directory",
                           permanent=True)

    async def _deliver(self, row: Notification) -> None:
        a = row.alert
        try:
            alert = Alert(kind=a["kind"], party=a["party"], call_id=a["call_id"],
                          caller=a["caller"], callee=a["callee"], step=a["step"],
                          roles=tuple(a["roles"]), operators=tuple(a["operators"]),
                          reason=a["reason"], at_ms=a["at_ms"], key=a["key"])
            await self._channel(row, alert).deliver(alert)
        except ChannelError as exc:
            now = self._clock.now_ms()
            attempts = row.attempts + 1
            give_up = exc.permanent or attempts >= MAX_ATTEMPTS
            retry_at = None if give_up else now + retry_delay_ms(attempts)
            (log.error if give_up else log.warning)(
                "notification %s via %s failed (attempt %d%s): %s", row.key, row.channel,
                attempts, ", giving up" if give_up else "", exc)
            error = str(exc)
            await self._db.write(lambda conn: notifications.failed(
                conn, row.id, now, error, retry_at=retry_at))
            await self._channel_failed(row, error, give_up)
            return
        now = self._clock.now_ms()
        await self._db.write(lambda conn: notifications.delivered(conn, row.id, now))
        await self._channel_works(row.channel)

    async def _failing_channels(self, alarms: Alarms) -> set[str]:
        if self._failing is None:  # first use: what stood before a restart still stands
            self._failing = {a.subject for a in await alarms.standing()
                             if a.kind == "notification-failed" and a.subject is not None}
        return self._failing

    async def _channel_failed(self, row: Notification, error: str, gave_up: bool) -> None:
        if self._alarms is None:
            return
        (await self._failing_channels(self._alarms)).add(row.channel)
        await self._alarms.raise_(Alarm(
            "notification-failed", row.channel,
            f"notifications through {row.channel} are failing"
            f"{' (gave up on one)' if gave_up else ''}: {error}"[:1000],
            {"channel": row.channel, "key": row.key, "error": error[:500]}))

    async def _channel_works(self, channel: str) -> None:
        if self._alarms is None:
            return
        failing = await self._failing_channels(self._alarms)
        if channel in failing:
            failing.discard(channel)
            await self._alarms.clear(f"notification-failed:{channel}")
