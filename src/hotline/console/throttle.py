"""Failed log-ins per client address: the account lock-out protects each account, this
protects the node from one address guessing many operator names (each attempt costs an
Argon2id hash and a log entry).

The window is a duration kept in memory: measured on the monotonic clock, so a step of
the wall clock neither frees an address early nor (a step back of an hour) shuts a whole
office's address out of the console for the hour."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from hotline.clock import Clock


@dataclass(frozen=True)
class ThrottlePolicy:
    failures: int = 20
    window_ms: int = 60_000
    #: addresses remembered at most (the oldest is forgotten first)
    addresses: int = 10_000


class LoginThrottle:
    def __init__(self, clock: Clock, policy: ThrottlePolicy = ThrottlePolicy()) -> None:
        self._clock = clock
        self._policy = policy
        #: per address: the monotonic times (ms) of its failures in the window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after_ms(self, address: str) -> int:
        """0 if ``address`` may try now, else how long until its oldest failure in the
        window expires."""
        times = self._recent(address)
        if len(times) < self._policy.failures:
            return 0
        return max(1, int(times[0] + self._policy.window_ms - self._now()))

    def failed(self, address: str) -> None:
        times = self._recent(address)
        times.append(self._now())
        self._failures[address] = times
        self._failures.move_to_end(address)
        while len(self._failures) > self._policy.addresses:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _now(self) -> float:
        return self._clock.monotonic() * 1000

    def _recent(self, address: str) -> deque[float]:
        times = self._failures.get(address, deque())
        horizon = self._now() - self._policy.window_ms
        while times and times[0] <= horizon:
            times.popleft()
        return times
