"""The log-in throttle per client address, across wall-clock steps (virtual time)."""

from __future__ import annotations

import pytest

from hotline.clock import SteadyWall
from hotline.console.throttle import LoginThrottle, ThrottlePolicy
from tests.unit.test_elapsed import HOUR, ManualClock


@pytest.mark.parametrize("step_ms", [-HOUR, HOUR, 24 * HOUR])
def test_a_wall_clock_step_neither_extends_nor_ends_the_window(step_ms: int) -> None:
    """An address with 3 failures in the 60 s window waits out the window from its oldest
    failure, as the monotonic clock counts it: a step back of an hour (before: shut out
    for the hour, an office's shared address with it), forward of an hour or a day
    (before: free at once) changes nothing."""
    machine = ManualClock()
    clock = SteadyWall(machine)
    throttle = LoginThrottle(clock, ThrottlePolicy(failures=3, window_ms=60_000))
    for _ in range(3):
        throttle.failed("192.0.2.7")
        machine.run(1)
    assert throttle.retry_after_ms("192.0.2.7") == 57_000
    machine.wall += step_ms  # the clock watch applies the step
    clock.rebase((machine.now_ms(), machine.monotonic()), step_ms=step_ms)
    machine.run(10)
    assert throttle.retry_after_ms("192.0.2.7") == 47_000
    assert throttle.retry_after_ms("198.51.100.1") == 0
    machine.run(47)
    assert throttle.retry_after_ms("192.0.2.7") == 0
