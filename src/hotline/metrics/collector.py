"""The gauges read at scrape time: a custom collector over the latest snapshot of the
store, the line status and the supervisor's tasks.

``collect`` is synchronous (``prometheus_client`` calls it while rendering), and the
store is read on the database threads: so a scrape first awaits :meth:`StateCollector.
refresh`, which takes the snapshot and the status, and ``collect`` renders what it took.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hotline.clock import Clock, elapsed_ms
from hotline.health.supervisor import TaskState
from hotline.metrics.snapshot import Snapshot, read
from hotline.status import PeerStatus
from hotline.store.database import Database

#: every state ``hotline status`` gives a line (hotline.status._state, and "removed")
LINK_STATES = ("idle", "sending", "failing", "unreachable", "removed")
#: every link health state (issue 14's link health: thresholds on loss and delay)
LINK_HEALTH = ("up", "degraded", "down")


class LinkReadings(Protocol):
    """What the link-health measurements give per line, read from its status."""

    def rtt_seconds(self, status: PeerStatus) -> float | None:
        """The line's round-trip time in seconds, None while not measured."""

    def health(self, status: PeerStatus) -> str | None:
        """The line's health (one of :data:`LINK_HEALTH`), None while not measured."""


class NoReadings:
    """No link-health measurements: the RTT and health series have no samples."""

    def rtt_seconds(self, status: PeerStatus) -> float | None:
        return None

    def health(self, status: PeerStatus) -> str | None:
        return None


class StatusReadings:
    """The link-health readings of :class:`PeerStatus`: ``rtt_ms`` (milliseconds, None
    while unmeasured) and ``health`` (up / degraded / down; None for a removed link)."""

    def rtt_seconds(self, status: PeerStatus) -> float | None:
        return None if status.rtt_ms is None else status.rtt_ms / 1000

    def health(self, status: PeerStatus) -> str | None:
        return status.health if status.health in LINK_HEALTH else None


@dataclass(frozen=True)
class _Taken:
    snapshot: Snapshot
    peers: Sequence[PeerStatus]


class StateCollector(Collector):
    """Gauges of calls, envelopes, queues and lines, and the tasks' restart counters."""

    def __init__(self, *, db: Database, clock: Clock,
                 status: Callable[[], Awaitable[Sequence[PeerStatus]]],
                 tasks: Callable[[], list[TaskState]],
                 readings: LinkReadings | None = None) -> None:
        self._db = db
        self._clock = clock
        self._status = status
        self._tasks = tasks
        self._readings: LinkReadings = readings or NoReadings()
        self._taken = _Taken(Snapshot(), [])

    async def refresh(self) -> None:
        """Read the store and the line status now, for the next :meth:`collect`."""
        now = self._clock.now_ms()
        snapshot = await self._db.read(lambda conn: read(conn, now))
        self._taken = _Taken(snapshot, await self._status())

    def describe(self) -> Iterable[Metric]:
        return self._families(_Taken(Snapshot(), []), [])

    def collect(self) -> Iterable[Metric]:
        return self._families(self._taken, self._tasks())

    def _families(self, taken: _Taken, tasks: list[TaskState]) -> list[Metric]:
        snap = taken.snapshot
        calls = GaugeMetricFamily("hotline_calls", "Calls this node holds, by direction "
                                  "(out: placed here; in: to this party) and state",
                                  labels=["direction", "state"])
        for (direction, state), n in sorted(snap.calls.items()):
            calls.add_metric([direction, state], n)
        messages = GaugeMetricFamily(
            "hotline_messages", "Envelopes on each line (messages, call signals, notices), "
            "by direction and state (out: queued, delivered, undeliverable; in: released, "
            "held)", labels=["peer", "direction", "state"])
        for (party, direction, state), n in sorted(snap.messages.items()):
            messages.add_metric([party, direction, state], n)
        depth = GaugeMetricFamily("hotline_queue_depth", "Envelopes to each peer waiting "
                                  "for their receipt", labels=["peer"])
        oldest = GaugeMetricFamily("hotline_queue_oldest_age_seconds", "Seconds since the "
                                   "oldest envelope waiting for each peer was enqueued "
                                   "(0 when none waits)", labels=["peer"])
        link_state = GaugeMetricFamily("hotline_link_state", "Each line's state as `hotline "
                                  "status` gives it: 1 for the current one, 0 for the others",
                                  labels=["peer", "state"])
        health = GaugeMetricFamily("hotline_link_health", "Each line's health from its "
                                   "test messages: 1 for the current one, 0 for the others",
                                   labels=["peer", "health"])
        rtt = GaugeMetricFamily("hotline_link_rtt_seconds", "Each line's last measured "
                                "round-trip time, in seconds", labels=["peer"])
        for peer in taken.peers:
            queue = snap.queues.get(peer.party)
            depth.add_metric([peer.party], 0 if queue is None else queue.depth)
            # a duration: the wall-clock steps since the envelope was enqueued taken out
            age = 0.0 if queue is None else \
                max((elapsed_ms(self._clock, at) / 1000 for at in queue.oldest_at),
                    default=0.0)
            oldest.add_metric([peer.party], age)
            for name in LINK_STATES:  # a state set: every state, 1 for the current
                link_state.add_metric([peer.party, name],
                                      1.0 if peer.state == name else 0.0)
            now_health = self._readings.health(peer)
            if now_health is not None:
                for name in LINK_HEALTH:
                    health.add_metric([peer.party, name], 1.0 if now_health == name else 0.0)
            seconds = self._readings.rtt_seconds(peer)
            if seconds is not None:
                rtt.add_metric([peer.party], seconds)
        restarts = CounterMetricFamily("hotline_task_restarts", "Restarts of each "
                                       "supervised background task since the process "
                                       "started", labels=["task"])
        for task in sorted(tasks, key=lambda t: t.name):
            restarts.add_metric([task.name], task.restarts)
        return [calls, messages, depth, oldest, link_state, health, rtt, restarts]
