"""The health of a link and of each of its endpoints, judged from link tests. Pure.

Each endpoint keeps its last ``window`` test outcomes (answered with its round trip in
ms, or lost: refused, timed out, unverifiable). :func:`judge` turns them into a state:

* ``unknown`` — no test has finished yet;
* ``down`` — the last ``down_after`` tests were all lost, or at least ``down_loss`` of
  the window was lost;
* ``degraded`` — not down, and the last test was lost, or at least ``degraded_loss`` of
  the window was lost, or the median round trip of the answered tests in the window is
  at least ``degraded_rtt_ms``;

A share is of ``window`` tests even before there were that many (the missing ones count
as answered): so an answered test never turns an endpoint down, as filling the window
would if shares counted only once it is full. The tests lost before an endpoint's first
answer since this node started are forgotten at that answer (:meth:`EndpointHealth.
record`): they were a start, not the line.
* ``up`` — otherwise.

So a line that goes dark turns degraded at the first lost test and down at the
``down_after``-th; a line that comes back stays down while ``down_loss`` of its
window is lost, is degraded while ``degraded_loss`` is, then up: an intermittent line
does not flap between states at every test.

A link's state is its best endpoint's (up, then degraded, then unknown, then down): the
line works as well as the best way to reach the peer. Its *current endpoint* — where the
sender goes first — is the first endpoint, in the link's order, in that best state; the
sender then tries the others, best first (:meth:`LinkHealth.order`).

Round trips over the last hour are kept in memory per link (one sample per test round:
the best answered round trip, or a gap), for ``status`` and the console's sparkline.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

UP, DEGRADED, DOWN, UNKNOWN = "up", "degraded", "down", "unknown"
STATES = (UP, DEGRADED, DOWN, UNKNOWN)
RANK = {UP: 3, DEGRADED: 2, UNKNOWN: 1, DOWN: 0}
HISTORY_MS = 3_600_000
HISTORY_MAX = 3600


@dataclass(frozen=True)
class Thresholds:
    """When an endpoint is degraded or down (see the module's docstring)."""

    window: int = 10
    degraded_loss: float = 0.2
    down_loss: float = 0.5
    down_after: int = 3
    degraded_rtt_ms: float = 1000.0


@dataclass(frozen=True)
class Outcome:
    """One finished test: ``rtt_ms`` is None when it was lost."""

    rtt_ms: float | None

    @property
    def ok(self) -> bool:
        return self.rtt_ms is not None


def judge(outcomes: Sequence[Outcome], t: Thresholds) -> str:
    """The state of an endpoint whose tests, oldest first, ended as ``outcomes`` (only
    the last ``t.window`` count)."""
    recent = list(outcomes)[-t.window:]
    if not recent:
        return UNKNOWN
    streak = 0
    for outcome in reversed(recent):
        if outcome.ok:
            break
        streak += 1
    # the share of the whole window, a window not yet full counting its missing tests as
    # answered: judged as a full one would be, so that the test that fills it, answered,
    # cannot turn an endpoint from up to down (as "the window is full" rules would)
    lost = sum(1 for o in recent if not o.ok) / t.window
    if streak >= t.down_after or lost >= t.down_loss:
        return DOWN
    rtts = [o.rtt_ms for o in recent if o.rtt_ms is not None]
    if streak > 0 or lost >= t.degraded_loss \
            or (rtts and statistics.median(rtts) >= t.degraded_rtt_ms):
        return DEGRADED
    return UP


@dataclass
class EndpointHealth:
    """One endpoint of a link; times in wall-clock ms (for people), rtt in ms."""

    endpoint: str
    thresholds: Thresholds
    outcomes: deque[Outcome] = field(default_factory=deque)
    state: str = UNKNOWN
    since: int | None = None
    last_good_at: int | None = None
    rtt_ms: float | None = None
    last_error: str | None = None
    #: the state whose alarms the prober last applied (logged, raised or cleared): it
    #: differs from ``state`` until they are, so a change whose alarm could not be
    #: stored (the prober failed and was restarted) is applied at the next round
    alarmed: str = UNKNOWN

    def record(self, outcome: Outcome, now_ms: int, error: str | None = None) -> str | None:
        """Add one finished test; the previous state if the state changed, else None."""
        if outcome.ok and self.last_good_at is None:
            # the first answer since this node started: the losses before it were the
            # peer (or this node) starting, not the line; a peer that started a moment
            # late is up at its first answer (its dead streak still took it down)
            self.outcomes.clear()
        self.outcomes.append(outcome)
        while len(self.outcomes) > self.thresholds.window:
            self.outcomes.popleft()
        if outcome.ok:
            self.last_good_at, self.rtt_ms, self.last_error = now_ms, outcome.rtt_ms, None
        else:
            self.last_error = error
        new = judge(self.outcomes, self.thresholds)
        if new == self.state:
            return None
        old, self.state, self.since = self.state, new, now_ms
        return old


@dataclass(frozen=True)
class Sample:
    """One test round of a link: wall-clock ms, monotonic s, best rtt (None: all lost)."""

    at: int
    mono: float
    rtt_ms: float | None


@dataclass
class LinkHealth:
    """A link's endpoints' health in the link's order, and its round-trip history."""

    party: str
    endpoints: dict[str, EndpointHealth]
    history: deque[Sample] = field(default_factory=deque)
    clock_offset_ms: int | None = None
    clock_offset_error_ms: int | None = None
    #: whether any endpoint has answered since this node started testing the link
    answered: bool = False
    #: the link state whose alarms the prober last applied (as :attr:`EndpointHealth.
    #: alarmed`)
    alarmed: str = UNKNOWN

    @classmethod
    def new(cls, party: str, endpoints: Sequence[str], t: Thresholds) -> LinkHealth:
        return cls(party, {e: EndpointHealth(e, t) for e in endpoints})

    def follow(self, endpoints: Sequence[str], t: Thresholds) -> None:
        """The link's endpoints changed (a new offer): keep what is known of those that
        stay, in the new order."""
        self.endpoints = {e: self.endpoints.get(e) or EndpointHealth(e, t) for e in endpoints}

    @property
    def state(self) -> str:
        if not self.endpoints:
            return UNKNOWN
        return max((e.state for e in self.endpoints.values()), key=RANK.__getitem__)

    def order(self) -> list[str]:
        """The endpoints best first; among equals, in the link's order (stable sort)."""
        return sorted(self.endpoints, key=lambda e: -RANK[self.endpoints[e].state])

    @property
    def current(self) -> str | None:
        order = self.order()
        return order[0] if order else None

    @property
    def last_good_at(self) -> int | None:
        times = [e.last_good_at for e in self.endpoints.values() if e.last_good_at is not None]
        return max(times) if times else None

    @property
    def rtt_ms(self) -> float | None:
        """The last answered round trip of the current endpoint."""
        current = self.current
        return None if current is None else self.endpoints[current].rtt_ms

    def add_sample(self, sample: Sample) -> None:
        self.history.append(sample)
        while (self.history and (sample.mono - self.history[0].mono) * 1000 > HISTORY_MS) \
                or len(self.history) > HISTORY_MAX:
            self.history.popleft()

    def rtt_history(self, now_mono: float) -> list[Sample]:
        """The samples of the last hour, oldest first."""
        return [s for s in self.history if (now_mono - s.mono) * 1000 <= HISTORY_MS]
