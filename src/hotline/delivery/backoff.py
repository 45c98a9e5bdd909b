"""The one retry policy for the line: exponential, with jitter (half to all of the step), capped.

Jitter keeps many senders from retrying in lock-step after a shared outage; the cap keeps
a long outage from turning into hour-long silences once the peer is back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float
    maximum: float
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        """Record a failure and return how long to wait before the next attempt."""
        ceiling = min(self.maximum, self.initial * self.multiplier ** self.failures)
        self.failures += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
