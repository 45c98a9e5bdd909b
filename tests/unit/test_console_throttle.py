"""Failed log-ins per address: refused past the limit within the window, free again as
failures age out, reset by a success, and memory bounded however many addresses try."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hotline.console.throttle import LoginThrottle, ThrottlePolicy


class FakeClock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:  # the throttle's window is a duration
        return self.ms / 1000


POLICY = ThrottlePolicy(failures=3, window_ms=60_000, addresses=5)


def test_the_limit_the_window_and_a_success() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock, POLICY)
    for _ in range(3):
        assert throttle.retry_after_ms("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
        clock.ms += 1000
    assert throttle.retry_after_ms("10.0.0.1") == 60_000 - 3000
    assert throttle.retry_after_ms("10.0.0.2") == 0  # other addresses are not affected
    clock.ms += 57_000  # the first failure has aged out
    assert throttle.retry_after_ms("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    assert throttle.retry_after_ms("10.0.0.1") > 0
    throttle.succeeded("10.0.0.1")
    assert throttle.retry_after_ms("10.0.0.1") == 0


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 30_000)), max_size=200))
def test_let_through_exactly_when_under_the_limit(events: list[tuple[int, int]]) -> None:
    """Against a model that keeps every failure: an address is let through exactly when
    it had fewer failures than the limit within the window before now."""
    clock = FakeClock()
    policy = ThrottlePolicy(failures=3, window_ms=60_000, addresses=100)
    throttle = LoginThrottle(clock, policy)
    history: dict[str, list[int]] = {}
    for who, gap in events:
        clock.ms += gap
        address = f"10.0.0.{who}"
        recent = [t for t in history.get(address, []) if t > clock.ms - policy.window_ms]
        allowed = throttle.retry_after_ms(address) == 0
        assert allowed == (len(recent) < policy.failures)
        if allowed:
            throttle.failed(address)
            history.setdefault(address, []).append(clock.ms)


def test_memory_is_bounded_oldest_forgotten_first() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock, POLICY)
    for i in range(50):
        for _ in range(3):
            throttle.failed(f"10.0.1.{i}")
    assert throttle.retry_after_ms("10.0.1.49") > 0  # the newest are remembered
    assert throttle.retry_after_ms("10.0.1.0") == 0  # the oldest were forgotten
    assert sum(throttle.retry_after_ms(f"10.0.1.{i}") > 0 for i in range(50)) == 5
