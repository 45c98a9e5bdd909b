"""Waits never swallow a cancellation, and a stop never hangs on a task that does not
end (hotline/waits.py): a link removal once hung on a sender that lost its cancellation
to ``asyncio.wait_for`` under load."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import re

import pytest

from hotline.clock import SystemClock
from hotline.health.supervisor import Running, Supervisor
from hotline.waits import cancel_and_wait, wait_event, within

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "hotline"


async def _cancel_as_the_event_is_set(waiter: asyncio.Task[object],
                                      event: asyncio.Event) -> None:
    """Set the event and cancel its waiter in the same loop turn: the race that
    ``asyncio.wait_for`` on Python 3.11 loses (the result wins, the cancel is gone)."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    event.set()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_wait_event_lets_a_cancellation_through_when_the_event_is_set_with_it() -> None:
    for _ in range(20):
        event = asyncio.Event()
        waiter = asyncio.create_task(wait_event(event, 10.0))
        await _cancel_as_the_event_is_set(waiter, event)  # type: ignore[arg-type]


async def test_within_lets_a_cancellation_through_when_the_result_comes_with_it() -> None:
    for _ in range(20):
        event = asyncio.Event()
        waiter = asyncio.create_task(within(event.wait(), 10.0))
        await _cancel_as_the_event_is_set(waiter, event)  # type: ignore[arg-type]


async def test_wait_event_tells_set_from_timed_out() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, 0.01) is True
    assert await wait_event(event, None) is True
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), 0.01)


async def _deaf(started: asyncio.Event, release: asyncio.Event) -> None:
    """A task that ignores being cancelled until released (a bug: it must not hang
    whoever stops it)."""
    started.set()
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


async def test_a_stop_of_a_deaf_task_is_bounded_named_and_reported(
        caplog: pytest.LogCaptureFixture) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(_deaf(started, release), name="deaf")
    await started.wait()
    with caplog.at_level(logging.ERROR, logger="hotline.waits"):
        left = await cancel_and_wait([task], what="test task", grace_s=0.3)
    assert left == [task]
    assert "test task deaf did not end within 0.3 s" in caplog.text
    release.set()
    await asyncio.wait([task], timeout=2)
    assert task.done()


async def test_the_supervisor_shows_and_alarms_a_task_stuck_in_its_stop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hotline.waits.STOP_GRACE_S", 0.3)
    monkeypatch.setattr("hotline.health.supervisor.cancel_and_wait",
                        _short(cancel_and_wait, 0.3))
    failures: list[tuple[str, str]] = []

    async def on_failure(name: str, error: BaseException) -> None:
        failures.append((name, str(error)))

    supervisor = Supervisor(clock=SystemClock(), on_failure=on_failure)
    started, release = asyncio.Event(), asyncio.Event()
    supervisor.spawn("deaf", lambda: _deaf(started, release))
    await started.wait()
    await asyncio.wait_for(supervisor.cancel("deaf"), 5)  # bounded, not forever
    assert supervisor.states["deaf"].state == "stuck"
    assert [s.name for s in supervisor.down()] == ["deaf"]
    assert failures == [("deaf", "task deaf did not end when cancelled; it was left behind")]
    release.set()


async def test_a_running_component_stops_within_bounds_even_if_deaf(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hotline.health.supervisor.cancel_and_wait",
                        _short(cancel_and_wait, 0.3))
    started, release = asyncio.Event(), asyncio.Event()
    running = Running("deaf", lambda: _deaf(started, release))
    running.start(None)
    await started.wait()
    await asyncio.wait_for(running.stop(), 5)
    release.set()


def _short(fn, grace: float):  # type: ignore[no-untyped-def]
    async def call(tasks, *, what="task", grace_s=grace):  # type: ignore[no-untyped-def]
        return await fn(tasks, what=what, grace_s=grace)
    return call


def test_no_module_waits_with_asyncio_wait_for() -> None:
    """The node's waits go through hotline.waits (see its docstring for why)."""
    offenders = [f"{path.relative_to(SRC)}:{n}"
                 for path in sorted(SRC.rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"\bwait_for\(", line) and "def " not in line
                 and "_wait_for(" not in line]
    assert offenders == []
