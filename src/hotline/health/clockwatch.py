"""The clock watch: notices wall-clock steps and keeps duration deadlines true.

Every ``interval_s`` (monotonic) it compares the real wall clock with the node's
:class:`~hotline.clock.SteadyWall`. A difference within ``tolerance_ms`` (100 ms) plus
what a slew can do since the last check (NTP adjusts the rate by at most 0.5 ms/s) is
absorbed at once by re-anchoring. A larger one is a *step*: in one writer transaction
every live duration deadline is moved by the step (``store/clocksteps.py``), the step is
written to the log, an alarm ``clock-step`` is raised, and the node's clock is
re-anchored to the real wall clock — so a deadline that was 60 s away is still 60 s
away, whichever way the clock jumped.

A step while the node is stopped cannot be told from time passing; after a restart the
overdue deadlines fire at once (the escalation engine coalesces repeats), see
``docs/time.md``.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Connection

from hotline.clock import SteadyWall
from hotline.effects import Effects
from hotline.health.alarms import Alarm, Alarms
from hotline.store import clocksteps
from hotline.store import log as log_store
from hotline.store.database import Database

log = logging.getLogger("hotline.clock")

CHECK_INTERVAL_S = 0.25
STEP_TOLERANCE_MS = 100
MAX_SLEW_RATE = 0.0005  # 500 ppm: the most NTP (adjtime) slews a clock


def is_step(delta_ms: int, elapsed_s: float, tolerance_ms: int = STEP_TOLERANCE_MS) -> bool:
    """Whether the wall clock moving ``delta_ms`` away from the monotonic clock over
    ``elapsed_s`` is a step. A slew changes the rate by at most :data:`MAX_SLEW_RATE`:
    only that much (plus a small floor for reading two clocks) is a slew, so a clock that
    runs fast, or keeps stepping by just under a threshold, is still seen stepping."""
    return abs(delta_ms) > tolerance_ms + MAX_SLEW_RATE * max(0.0, elapsed_s) * 1000


class ClockWatch:
    task_name = "clock-watch"

    def __init__(self, *, clock: SteadyWall, db: Database, alarms: Alarms,
                 interval_s: float = CHECK_INTERVAL_S,
                 tolerance_ms: int = STEP_TOLERANCE_MS) -> None:
        self._clock = clock
        self._db = db
        self._alarms = alarms
        self._interval = interval_s
        self._tolerance = tolerance_ms
        self.steps: list[int] = []  # every step applied, in ms, for status and tests

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval)

    async def check(self) -> int:
        """Absorb a slew or apply a step; the step applied in ms (0 for none)."""
        source = self._clock.source
        wall, mono = source.now_ms(), source.monotonic()
        wall_then, mono_then = self._clock.anchor
        delta = wall - (wall_then + int((mono - mono_then) * 1000))
        if not is_step(delta, mono - mono_then, self._tolerance):
            self._clock.rebase((wall, mono))
            return 0
        await self._apply_step(delta, (wall, mono))
        return delta

    async def _apply_step(self, delta: int, anchor: tuple[int, float]) -> None:
        def work(conn: Connection) -> Effects:
            moved = clocksteps.shift(conn, delta)
            # From here on, in this transaction and every later one, "now" is the real
            # wall clock again, and the deadlines have moved with it. Idempotent if the
            # writer re-runs this piece after a failed batch.
            self._clock.rebase(anchor, step_ms=delta)
            now = self._clock.now_ms()
            detail = {"step_ms": delta, "moved": {k: v for k, v in moved.items() if v}}
            log_store.append_one(conn, "clock-step", detail, now)
            effects = Effects(timers=True, notifications=True)
            self._alarms.raise_in(conn, Alarm(
                "clock-step", None,
                f"the wall clock stepped {'forward' if delta > 0 else 'back'} by "
                f"{abs(delta) / 1000:.1f} s; waiting deadlines were moved with it",
                detail), now, effects)
            return effects
        effects = await self._db.write(work)
        self.steps.append(delta)
        log.warning("wall clock stepped by %+d ms; duration deadlines moved with it", delta)
        self._alarms.apply(effects)
