"""Firing deadlines that are rows.

A deadline is a row (due time in wall-clock ms, idempotency key, fired or not). This task
waits — on the event loop's monotonic clock, never longer than ``max_wait_s`` so a wall
clock that jumps is noticed — until the earliest unfired row is due, then, in one
transaction, marks each due row fired and applies what it causes. A crash before the
commit leaves the row unfired (it fires after restart); a crash after leaves it fired
(it never fires again). On start every overdue row fires at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import Connection

from hotline.clock import Clock
from hotline.effects import Effects
from hotline.events import BackgroundTask
from hotline.store import timers
from hotline.store.database import Database
from hotline.waits import wait_event

log = logging.getLogger("hotline.timers")

#: (connection, kind, call id, now, effects) -> whether the deadline still applied
Fire = Callable[[Connection, str, str, int, Effects], bool]


class TimerRunner(BackgroundTask):
    task_name = "timers"

    def __init__(self, *, db: Database, clock: Clock, fire: Fire,
                 apply: Callable[[Effects], None], max_wait_s: float = 1.0,
                 on_fired: Callable[[str, float], None] | None = None) -> None:
        """``on_fired``: (kind, seconds late) for each deadline that fired (not those
        void because their call had ended), after the commit; lateness is the node
        clock's time at firing minus the due time, a difference of the steady wall
        clock that moves with the monotonic one (docs/time.md)."""
        super().__init__()
        self._on_fired = on_fired
        self._db = db
        self._clock = clock
        self._fire = fire
        self._apply = apply
        self._max_wait = max_wait_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A deadline was added or moved: look again now."""
        self._wake.set()

    async def _run(self) -> None:
        # An unexpected error ends this run; the supervisor logs it, raises an alarm and
        # restarts the task (the rows are the truth, so nothing is lost).
        while True:
            await self._step()

    async def _step(self) -> None:
        self._wake.clear()
        due_at = await self._db.read(timers.next_due)
        now = self._clock.now_ms()
        if due_at is not None and due_at <= now:
            effects, fired = await self._db.write(self._fire_due)
            self._apply(effects)
            if self._on_fired is not None:
                for kind, late_ms in fired:
                    self._on_fired(kind, late_ms / 1000)
            return
        delay = self._max_wait if due_at is None else min(self._max_wait, (due_at - now) / 1000)
        await wait_event(self._wake, delay)

    def _fire_due(self, conn: Connection) -> tuple[Effects, list[tuple[str, int]]]:
        """Fire every due row; the effects, and (kind, ms late) of each that fired."""
        now = self._clock.now_ms()
        effects = Effects()
        fired: list[tuple[str, int]] = []
        for timer in timers.due(conn, now):
            mine = Effects()
            applied = self._fire(conn, timer.kind, timer.call_id, now, mine)
            if timers.claim(conn, timer.id, now, "fired" if applied else "void"):
                effects.merge(mine)
                if applied:
                    fired.append((timer.kind, now - timer.due_at))
        return effects, fired
