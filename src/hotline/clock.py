"""Time, injected. Persisted times are wall-clock milliseconds; waiting uses the monotonic
clock so a wall-clock jump never stretches or skips a wait."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...
    def monotonic(self) -> float: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()
