"""The escalation engine: a pure function of (chain timing, progress, now).

A call's chain is frozen when the call starts; from then on, *when* step ``k`` rings is
fixed by the chain alone: ring 0 at the start, ring ``k`` after the waits of the steps
before it, and, for a repeating chain, the last step again every ``repeat_every`` after
its own wait. The executor persists only how many rings have been done (``next_ring``) and
the next due time, and asks :func:`plan` what to do whenever it wakes — on time, late, or
after a crash. Because the answer depends only on the schedule and ``now``:

* every ring whose time has passed and that was not done yet is done once, at once, in
  order — a restart never skips a step or rings one twice;
* repeats of the last step that fell due during an outage are coalesced into one ring
  (re-ringing the same desk ten times in one instant helps nobody);
* a finite chain ends ``unanswered`` once the last step's wait has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """The part of a chain the engine needs: each step's wait and the repeat interval
    of the last step (``None`` for a finite chain)."""

    waits_ms: tuple[int, ...]
    repeat_every_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.waits_ms:
            raise ValueError("a chain needs at least one step")
        if any(w <= 0 for w in self.waits_ms):
            raise ValueError("every step waits a positive time")
        if self.repeat_every_ms is not None and self.repeat_every_ms <= 0:
            raise ValueError("repeat_every must be positive")

    @classmethod
    def of(cls, waits_ms: Sequence[int], repeat_every_ms: int | None) -> Timing:
        return cls(tuple(waits_ms), repeat_every_ms)

    @property
    def steps(self) -> int:
        return len(self.waits_ms)

    def step_of(self, ring: int) -> int:
        """Which step ring number ``ring`` rings (repeats ring the last step)."""
        return min(ring, self.steps - 1)

    def offset(self, ring: int) -> int:
        """Milliseconds after the start at which ring number ``ring`` is due."""
        n = self.steps
        if ring < n:
            return sum(self.waits_ms[:ring])
        assert self.repeat_every_ms is not None, "a finite chain has no repeats"
        return sum(self.waits_ms) + (ring - n) * self.repeat_every_ms

    def has_ring(self, ring: int) -> bool:
        return ring < self.steps or self.repeat_every_ms is not None

    def end_offset(self) -> int | None:
        """When a finite chain gives up (the last step's wait has passed)."""
        return None if self.repeat_every_ms is not None else sum(self.waits_ms)


@dataclass(frozen=True)
class Plan:
    """What to do now: the rings to perform (in order), the progress to persist, and
    when to wake next (``None``: nothing more is scheduled)."""

    rings: tuple[int, ...]
    next_ring: int
    next_due_ms: int | None
    unanswered: bool


def plan(timing: Timing, started_at_ms: int, next_ring: int, now_ms: int) -> Plan:
    """Everything that is due at ``now_ms`` for a chain started at ``started_at_ms`` of
    which the rings before ``next_ring`` have been done."""
    if next_ring < 0:
        raise ValueError("next_ring cannot be negative")
    rings: list[int] = []
    ring = next_ring
    elapsed = now_ms - started_at_ms
    while timing.has_ring(ring) and timing.offset(ring) <= elapsed:
        if ring >= timing.steps:
            ring = _last_repeat_due(timing, elapsed, ring)
            rings.append(ring)
            ring += 1
            break
        rings.append(ring)
        ring += 1
    end = timing.end_offset()
    if end is not None and ring >= timing.steps:
        if end <= elapsed:
            return Plan(tuple(rings), ring, None, unanswered=True)
        return Plan(tuple(rings), ring, started_at_ms + end, unanswered=False)
    return Plan(tuple(rings), ring, started_at_ms + timing.offset(ring), unanswered=False)


def _last_repeat_due(timing: Timing, elapsed: int, first: int) -> int:
    """The latest repeat ring at or after ``first`` that is due by ``elapsed``."""
    assert timing.repeat_every_ms is not None
    since_first = elapsed - timing.offset(first)
    return first + since_first // timing.repeat_every_ms
