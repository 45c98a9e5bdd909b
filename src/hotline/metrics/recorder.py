"""Counters and histograms of events, each fed by one plain callable that the node
hands to the component where the event happens.

Units: seconds for every duration, on the monotonic clock (see each method).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

#: delivery latency buckets, seconds: a healthy line answers in milliseconds, an outage
#: holds envelopes for minutes to days
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0, 300.0, 1800.0, 3600.0, 86400.0)
#: deadline lateness buckets, seconds: the timer task polls at most every second
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 300.0, 3600.0)
#: notification outcomes, as ``hotline_notifications_total{outcome}`` names them
NOTIFICATION_OUTCOMES = ("delivered", "retrying", "failed")


class Recorder:
    """The event series of one node, in ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # no ``*_created`` series (a timestamp per label set, of no use to our alerts);
        # the library's switch is process-wide, and every node of a process wants it
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry(
            auto_describe=True)
        self._latency = Histogram(
            "hotline_delivery_latency_seconds",
            "Seconds from an envelope's enqueueing (monotonic clock, this process) to its "
            "verified receipt from the peer",
            ["peer"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self._lateness = Histogram(
            "hotline_deadline_lateness_seconds",
            "Seconds a deadline (escalation step, delivery deadline, query deadline) fired "
            "after it was due",
            ["kind"], buckets=LATENESS_BUCKETS, registry=self.registry)
        self._notifications = Counter(
            "hotline_notifications",
            "Notification attempts through the directory's channels, by outcome",
            ["channel", "outcome"], registry=self.registry)
        self._rejected = Counter(
            "hotline_rejected_envelopes",
            "Envelopes (or whole federation requests) refused, by error id",
            ["error"], registry=self.registry)

    def delivered(self, peer: str, seconds: float) -> None:
        """An envelope to ``peer`` has its verified receipt ``seconds`` after it was
        enqueued (monotonic clock)."""
        self._latency.labels(peer).observe(max(0.0, seconds))

    def deadline_fired(self, kind: str, late_s: float) -> None:
        """A deadline of ``kind`` ("escalate", "deliver", "query") fired ``late_s``
        seconds after its due time (negative values count as 0)."""
        self._lateness.labels(kind).observe(max(0.0, late_s))

    def notification(self, channel: str, outcome: str) -> None:
        """One attempt through ``channel`` ended as ``outcome`` (one of
        :data:`NOTIFICATION_OUTCOMES`); ValueError for another."""
        if outcome not in NOTIFICATION_OUTCOMES:
            raise ValueError(f"unknown notification outcome {outcome!r}")
        self._notifications.labels(channel, outcome).inc()

    def rejected(self, error_id: str, count: int = 1) -> None:
        """``count`` envelopes refused with ``error_id`` (``rate-limited`` included)."""
        if count > 0:
            self._rejected.labels(error_id).inc(count)
