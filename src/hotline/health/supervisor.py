"""Supervised background work: no task of the node dies silently.

Every long-running task of a node (a sender per peer, the deadline timers, the notifier,
the checkpointer, desk reports, the link poller, the clock watch) runs under one
:class:`Supervisor`. A task is a coroutine function that is meant to run until cancelled.
When it raises (or returns, which for such a task is a failure too), the supervisor

1. logs the error with its stack on ``hotline.supervisor``,
2. reports it (the node raises an alarm ``task-failed`` for it, coalesced per task),
3. restarts it after a capped exponential backoff (0.1 s doubling to 30 s, jittered; the
   same :class:`~hotline.delivery.backoff.Backoff` as the line), and
4. once the restarted task has run for ``healthy_after_s`` without failing, reports it
   recovered (the alarm is cleared) and resets the backoff.

Each task's state (``running``, ``restarting``, ``stopped``, or ``stuck``: cancelled but
still running after :data:`hotline.waits.STOP_GRACE_S`, logged and alarmed), restarts,
last error and since when is kept for ``/healthz``, ``hotline status`` and the console.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hotline.clock import Clock
from hotline.delivery.backoff import Backoff
from hotline.waits import cancel_and_wait

log = logging.getLogger("hotline.supervisor")

RESTART_INITIAL_S = 0.1
RESTART_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0
#: the states of a task that should run but does not: failed and waiting to be restarted,
#: or cancelled and still running (``/healthz``'s ``tasks_down``, the console's banner)
DOWN_STATES = ("restarting", "stuck")

#: (task name, the error) -> None; must not raise
OnFailure = Callable[[str, BaseException], Awaitable[None]]
OnRecovered = Callable[[str], Awaitable[None]]


@dataclass
class TaskState:
    name: str
    state: str = "starting"       # running | restarting | stopped | stuck
    since: int = 0                # wall-clock ms of the last change, for people
    restarts: int = 0
    last_error: str | None = None
    last_error_at: int | None = None

    @property
    def up(self) -> bool:
        return self.state == "running"

    @property
    def down(self) -> bool:
        return self.state in DOWN_STATES

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "since": self.since,
                "restarts": self.restarts, "last_error": self.last_error,
                "last_error_at": self.last_error_at}


class Supervisor:
    def __init__(self, *, clock: Clock, on_failure: OnFailure | None = None,
                 on_recovered: OnRecovered | None = None,
                 restart_initial_s: float = RESTART_INITIAL_S,
                 restart_max_s: float = RESTART_MAX_S,
                 healthy_after_s: float = HEALTHY_AFTER_S) -> None:
        self._clock = clock
        self.on_failure = on_failure
        self.on_recovered = on_recovered
        self._initial = restart_initial_s
        self._max = restart_max_s
        self._healthy_after = healthy_after_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.states: dict[str, TaskState] = {}

    def spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run()`` as task ``name`` and keep it running until :meth:`cancel`."""
        if name in self._tasks and not self._tasks[name].done():
            raise RuntimeError(f"task {name} is already running")
        self.states[name] = TaskState(name, since=self._clock.now_ms())
        self._tasks[name] = asyncio.create_task(self._keep(name, run), name=f"supervise-{name}")

    async def cancel(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        stuck = [] if task is None else await cancel_and_wait([task], what="supervised task")
        if name in self.states:
            self._set(self.states[name], "stuck" if stuck else "stopped")
        if stuck:  # a bug, never a state to live with quietly: alarmed as a failure
            await self._report_failure(name, RuntimeError(
                f"task {name} did not end when cancelled; it was left behind"))

    def forget(self, name: str) -> None:
        """Drop a cancelled task from the states shown (its work is gone for good, as
        a removed link's sender: not stopped, not failing, just no more)."""
        if name not in self._tasks:
            self.states.pop(name, None)

    async def cancel_all(self) -> None:
        for name in list(self._tasks):
            await self.cancel(name)

    def down(self) -> list[TaskState]:
        """Tasks that should run but do not right now (failing, or stuck in a stop)."""
        return [s for s in self.states.values() if s.down]

    def _set(self, state: TaskState, value: str) -> None:
        state.state = value
        state.since = self._clock.now_ms()

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        state = self.states[name]
        backoff = Backoff(self._initial, self._max)
        failing = False
        while True:
            self._set(state, "running")
            inner = asyncio.ensure_future(run())
            try:
                if failing:
                    done, _ = await asyncio.wait({inner}, timeout=self._healthy_after)
                    if not done:
                        failing = False
                        backoff.reset()
                        await self._report_recovered(name)
                await inner
                error: BaseException = RuntimeError(f"task {name} returned; it should run "
                                                    "until stopped")
            except asyncio.CancelledError:
                await cancel_and_wait([inner], what="supervised task body")
                raise
            except Exception as exc:
                error = exc
            if self._tasks.get(name) is not asyncio.current_task():
                # cancelled (or replaced) while ``run()`` swallowed the cancellation: the
                # cancellation went to ``inner`` and this loop was never told. The task
                # has ended at last; it was stopped, never to be restarted.
                self._set(state, "stopped")
                return
            log.error("task %s failed; restarting it", name, exc_info=error)
            failing = True
            state.restarts += 1
            state.last_error = f"{type(error).__name__}: {error}"[:500]
            state.last_error_at = self._clock.now_ms()
            self._set(state, "restarting")
            await self._report_failure(name, error)
            await asyncio.sleep(backoff.next_delay())

    async def _report_failure(self, name: str, error: BaseException) -> None:
        if self.on_failure is None:
            return
        try:
            await self.on_failure(name, error)
        except Exception:  # the report failing must not stop the restart; it is logged
            log.exception("reporting the failure of task %s failed", name)

    async def _report_recovered(self, name: str) -> None:
        if self.on_recovered is None:
            return
        try:
            await self.on_recovered(name)
        except Exception:
            log.exception("reporting the recovery of task %s failed", name)


class Running:
    """One long-running coroutine of a component, started under the node's supervisor
    when there is one (restarted and alarmed if it fails), or as a bare task (tests,
    tools); :meth:`stop` ends it either way."""

    def __init__(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None
        self._supervisor: Supervisor | None = None

    @property
    def supervisor(self) -> Supervisor | None:
        return self._supervisor

    def start(self, supervisor: Supervisor | None) -> None:
        self._supervisor = supervisor
        if supervisor is not None:
            supervisor.spawn(self.name, self._run)
        else:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._supervisor is not None:
            await self._supervisor.cancel(self.name)
        if self._task is not None:
            await cancel_and_wait([self._task], what="task")
