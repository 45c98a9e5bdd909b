"""Prometheus metrics of one node (docs/operations.md, "Metrics", lists every series).

* :mod:`~hotline.metrics.recorder` — counters and histograms incremented where the
  events happen; the domain receives plain callables (``Recorder.delivered`` ...), so it
  imports neither this package nor ``prometheus_client``.
* :mod:`~hotline.metrics.snapshot` — what is read from the store at scrape time.
* :mod:`~hotline.metrics.collector` — a custom collector that turns the latest snapshot,
  the line status and the supervisor's tasks into gauges.

Every node has its own :class:`~prometheus_client.CollectorRegistry` (never the
process-wide default), so several nodes in one process (tests, the simulation) do not
collide. ``/metrics`` itself (who may read it) is the web layer's: ``hotline.api.metrics``.
"""
