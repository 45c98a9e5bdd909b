"""Schemathesis against both OpenAPI documents of a real node, over a real socket.

Every operation of the operator API (with the operator token) and of the federation API
(unauthenticated: what anyone on the network can send) gets generated requests, valid
and invalid by its document; every answer must be no 5xx, a status the document lists
for that operation, and a body of the documented shape. Deterministic (derandomized,
fixed example counts) and time-boxed: a red run is a change in the node or its
documents, not a new draw. ``HOTLINE_SCHEMATHESIS_EXAMPLES`` raises the count to explore.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from tests.calls import apply_scenario, place
from tests.nodes import NodeProcess, link, nodes_on, wait_until

EXAMPLES = int(os.environ.get("HOTLINE_SCHEMATHESIS_EXAMPLES", "10"))
#: a live event stream never ends: schemathesis reads it for this long, then stops
STREAM_SECONDS = 0.3
#: the whole run's budget; a run over it fails rather than slowing CI unnoticed
BUDGET_SECONDS = 120.0
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]

# The federation batch is text, one envelope a line: send what is generated as it is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


@pytest.fixture(params=["sqlite", "postgresql"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NodeProcess]:
    """A running node with a linked, running peer, on each engine (they refuse different
    things: SQLite integers past 64 bits, PostgreSQL NUL in text, 32-bit INTEGER columns,
    VARCHAR lengths). Its inbox holds a message and its journal a call, so both event
    streams have events to check against their documented shape."""
    with nodes_on(str(request.param), tmp_path) as make:
        us, ru = make("US-JS"), make("RU-GS")
        link(us, ru)
        apply_scenario(us)
        apply_scenario(ru)
        us.start()
        ru.start()
        ru.send("US-JS", ["for the event stream"])
        wait_until(us.inbox, what="the peer's message in the inbox")
        place(us, "cgs@RU-GS", "nmcc-do", "for the event stream")
        yield us


def _check(operation: Any, mode: GenerationMode, base_url: str,
           headers: dict[str, str]) -> int:
    """Run ``operation``'s generated requests of ``mode``; how many were sent. Raises
    the first failed check."""
    streams = "text/event-stream" in str(operation.definition.raw.get("responses", {}))
    sent = 0

    @settings(max_examples=EXAMPLES if not streams else 3, derandomize=True,
              database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        nonlocal sent
        sent += 1
        response = case.call(base_url=base_url, headers=headers,
                             timeout=STREAM_SECONDS if streams else 10.0)
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no parameter, no body)
        assert mode is GenerationMode.NEGATIVE, operation.label
    return sent


def _fuzz(schema: Any, base_url: str, headers: dict[str, str]) -> tuple[list[str], int]:
    """Run every operation of ``schema``, valid and invalid requests; the failures
    found (the first per operation and mode) and how many requests were sent."""
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                calls += _check(operation, mode, base_url, headers)
            except (Exception, BaseExceptionGroup) as exc:  # report, go on with the others
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    return failures, calls


def test_no_server_error_and_no_undocumented_status(node: NodeProcess) -> None:
    started = time.monotonic()
    operator = schemathesis.openapi.from_url(node.url + "/api/v1/openapi.json")
    federation = schemathesis.openapi.from_url(node.url + "/federation/v1/openapi.json")
    assert len(list(operator.get_all_operations())) >= 20
    assert {r.ok().path for r in federation.get_all_operations()} == {
        "/federation/v1/envelopes", "/federation/v1/checkpoints", "/federation/v1/linktest",
        "/federation/v1/protocol"}

    failures, calls = _fuzz(operator, node.url,
                            {"authorization": f"Bearer {node.token}"})
    more, fed_calls = _fuzz(federation, node.url, {})
    failures += more
    elapsed = time.monotonic() - started
    assert not failures, "\n".join(failures)
    assert calls > 200, calls
    assert fed_calls > 20, fed_calls
    assert elapsed < BUDGET_SECONDS, f"the run took {elapsed:.0f} s"
    # the node stayed up and logged no unhandled error
    assert node.api("GET", "/api/v1/status").status_code == 200
    assert not node.log_lines("Traceback")
