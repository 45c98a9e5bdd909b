"""The one retry policy for the line: exponential, with jitter (half to all of the step), capped.

Jitter keeps many senders from retrying in lock-step after a shared outage; the cap keeps
a long outage from turning into hour-long silences once the peer is back.

The exponent stops growing once the step has reached the cap, so the arithmetic stays
finite however long an outage lasts (a float power overflows past about 2**1024, which
at a 2 ms cap is a few seconds of failures; the policy must hold for days of them).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays in seconds: the n-th consecutive failure (from 0) waits a uniform draw in
    ``[c/2, c]`` with ``c = min(maximum, initial * multiplier**n)``.

    Raises ``ValueError`` for a non-positive or non-finite ``initial``/``maximum`` or a
    ``multiplier`` below 1."""

    initial: float
    maximum: float
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def __post_init__(self) -> None:
        for name, value in (("initial", self.initial), ("maximum", self.maximum)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"backoff {name} must be a positive number of seconds")
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ValueError("backoff multiplier must be at least 1")

    @property
    def _cap_exponent(self) -> int:
        """The first exponent at which the step reaches the cap."""
        if self.multiplier == 1 or self.initial >= self.maximum:
            return 0
        return math.ceil(math.log(self.maximum / self.initial, self.multiplier))

    def ceiling(self) -> float:
        """The largest delay the next failure can get."""
        exponent = min(self.failures, self._cap_exponent)
        return min(self.maximum, self.initial * self.multiplier ** exponent)

    def next_delay(self) -> float:
        """Record a failure and return how long to wait before the next attempt."""
        ceiling = self.ceiling()
        self.failures += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
