"""One node's metrics as Prometheus text: the event series and the scrape-time gauges
in one registry of the node's own."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hotline.metrics.collector import StateCollector
from hotline.metrics.recorder import Recorder


class Metrics:
    """The node's ``/metrics`` body: :meth:`scrape` -> (bytes, content type)."""

    def __init__(self, recorder: Recorder, collector: StateCollector) -> None:
        self.recorder = recorder
        self.collector = collector
        recorder.registry.register(collector)

    async def scrape(self) -> tuple[bytes, str]:
        """Read the store and the lines now, then render every series (Prometheus text
        exposition format 0.0.4)."""
        await self.collector.refresh()
        return generate_latest(self.recorder.registry), CONTENT_TYPE_LATEST
