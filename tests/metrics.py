"""Reading a node's ``/metrics`` in tests: the Prometheus text parsed by
``prometheus_client``'s own parser into {(series name, labels): value}."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[Samples, set[str]]:
    """Every sample by (name, sorted labels), and every family's exposed name (a
    counter's with ``_total``, as the exposition and the docs name it)."""
    samples: Samples = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name + "_total" if family.type == "counter" else family.name)
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == w for k, w in labels.items()))


def scrape(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url + "/metrics", timeout=30.0, **kwargs)
