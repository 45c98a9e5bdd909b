"""The supervisor: a failing task is logged, reported, restarted with backoff and shown
while it is down; a task that runs again long enough is reported recovered."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hotline.clock import SystemClock
from hotline.health.supervisor import Supervisor


async def _until(predicate, limit: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + limit
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_a_failing_task_is_reported_restarted_and_then_recovered(
        caplog: pytest.LogCaptureFixture) -> None:
    failures: list[tuple[str, str]] = []
    recovered: list[str] = []
    runs = 0
    released = asyncio.Event()

    async def on_failure(name: str, error: BaseException) -> None:
        failures.append((name, str(error)))

    async def on_recovered(name: str) -> None:
        recovered.append(name)

    async def work() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise ValueError(f"boom {runs}")
        await released.wait()
        await asyncio.Event().wait()

    sup = Supervisor(clock=SystemClock(), on_failure=on_failure, on_recovered=on_recovered,
                     restart_initial_s=0.01, restart_max_s=0.02, healthy_after_s=0.2)
    with caplog.at_level(logging.ERROR, logger="hotline.supervisor"):
        sup.spawn("worker", work)
        await _until(lambda: runs == 3)
    assert failures == [("worker", "boom 1"), ("worker", "boom 2")]
    state = sup.states["worker"]
    assert state.restarts == 2
    assert state.last_error == "ValueError: boom 2"
    assert "task worker failed" in caplog.text
    assert "Traceback" in caplog.text
    assert recovered == []
    await _until(lambda: recovered == ["worker"])
    assert state.state == "running"
    await sup.cancel("worker")
    assert state.state == "stopped"


async def test_a_task_that_returns_counts_as_failed_and_shows_down() -> None:
    seen: list[str] = []
    gate = asyncio.Event()

    async def on_failure(name: str, error: BaseException) -> None:
        seen.append(str(error))
        await gate.wait()  # hold the restart so the down state can be observed

    async def work() -> None:
        return None

    sup = Supervisor(clock=SystemClock(), on_failure=on_failure, restart_initial_s=0.01)
    sup.spawn("quitter", work)
    await _until(lambda: bool(seen))
    assert "returned" in seen[0]
    assert [t.name for t in sup.down()] == ["quitter"]
    gate.set()
    await sup.cancel_all()
    assert sup.down() == []


async def test_a_failing_report_does_not_stop_the_restarts() -> None:
    runs = 0

    async def on_failure(name: str, error: BaseException) -> None:
        raise RuntimeError("the database is gone too")

    async def work() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("again")

    sup = Supervisor(clock=SystemClock(), on_failure=on_failure, restart_initial_s=0.001,
                     restart_max_s=0.002)
    sup.spawn("flaky", work)
    await _until(lambda: runs >= 5)
    await sup.cancel_all()


async def test_a_task_stuck_in_its_stop_shows_down_and_is_not_restarted_when_it_ends(
        ) -> None:
    """A task that swallows its cancellation is ``stuck`` (alarmed as a failure): it is
    down, for ``/healthz``'s ``tasks_down`` and the console's banner as for the
    supervisor (they listed only ``restarting`` tasks before). When it ends at last it is
    ``stopped``; before, its supervising loop took the end for a failure and restarted
    the task it had been told to stop."""
    from hotline.console.views import banner
    from hotline.status import task_status, tasks_down

    failures: list[str] = []
    release = asyncio.Event()

    async def on_failure(name: str, error: BaseException) -> None:
        failures.append(str(error))

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # a bug: the cancellation is swallowed

    sup = Supervisor(clock=SystemClock(), on_failure=on_failure)
    sup.spawn("stubborn", stubborn)
    sup.spawn("fine", lambda: asyncio.Event().wait())
    await _until(lambda: sup.states["stubborn"].state == "running")
    await sup.cancel("stubborn")
    assert sup.states["stubborn"].state == "stuck"
    assert len(failures) == 1
    assert "did not end when cancelled" in failures[0]
    shown = task_status(list(sup.states.values()))
    assert [t.name for t in tasks_down(shown)] == ["stubborn"]
    assert [t.name for t in banner(shown, []).down] == ["stubborn"]
    # when it ends at last, it was stopped: the supervisor's loop, to which the
    # cancellation never came (the task swallowed it), must not restart it
    release.set()
    await _until(lambda: sup.states["stubborn"].state == "stopped")
    assert sup.states["stubborn"].restarts == 0
    await sup.cancel_all()
    assert tasks_down(task_status(list(sup.states.values()))) == []
