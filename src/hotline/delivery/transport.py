"""HTTP transport for envelope batches. The envelopes carry their own security; this
module only moves bytes and reports what came back, or why nothing did."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

BATCH_PATH = "/federation/v1/envelopes"
NDJSON = "application/x-ndjson"


class TransportError(Exception):
    """No usable answer from an endpoint (connection refused, timeout, garbage)."""


@dataclass(frozen=True)
class BatchAnswer:
    """``results``: one per envelope, except for a whole request refused 429 (empty).
    ``retry_after_s``: the peer's ``Retry-After`` in seconds, if it sent a valid one."""

    status: int
    results: list[Any]
    retry_after_s: float | None = None


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as delay-seconds (RFC 9110 §10.2.3), or None if absent or not
    that form (an HTTP date is not used between nodes)."""
    if value is None or not value.strip().isascii() or not value.strip().isdigit():
        return None
    return float(int(value.strip()))


def encode_batch(envelopes: list[bytes]) -> bytes:
    """One canonical envelope per line; canonical JSON never contains a raw newline."""
    return b"\n".join(envelopes)


#: The whole exchange (connect, upload, answer) is bounded by this many request timeouts:
#: httpx applies its timeout to each read and write, so an endpoint that answers a byte
#: at a time would otherwise hold the line for ever without a failure to show or alarm.
TOTAL_TIMEOUTS = 3


def parse_answer(endpoint: str, status: int, content: bytes, count: int,
                 retry_after: str | None = None) -> BatchAnswer:
    """The receiver's answer to a batch of ``count`` envelopes, or why it is unusable.
    A 429 is usable without results: the whole request was refused for now."""
    wait = parse_retry_after(retry_after)
    if status == 429:
        try:
            results = json.loads(content).get("results")
        except (ValueError, AttributeError):
            results = None
        if not isinstance(results, list) or len(results) != count:
            results = []
        return BatchAnswer(status, results, wait)
    try:
        body = json.loads(content)
        results = body["results"]
        if not isinstance(results, list) or len(results) != count:
            raise ValueError("result count does not match the batch")
    except (ValueError, KeyError, TypeError) as exc:
        raise TransportError(f"{endpoint}: HTTP {status} without a usable "
                             f"answer ({exc})") from None
    return BatchAnswer(status, results, wait)


class Transport(Protocol):
    """Moves a batch to one endpoint of a peer: HTTP in a node, in memory in the
    simulation harness (``tests/sim``)."""

    async def post_batch(self, endpoint: str, envelopes: list[bytes]) -> BatchAnswer: ...
    async def close(self) -> None: ...


class HttpTransport:
    def __init__(self, timeout: float) -> None:
        self._client = httpx.AsyncClient(timeout=timeout, headers={"content-type": NDJSON})
        self._total = timeout * TOTAL_TIMEOUTS

    async def post_batch(self, endpoint: str, envelopes: list[bytes]) -> BatchAnswer:
        try:
            async with asyncio.timeout(self._total):
                response = await self._client.post(endpoint + BATCH_PATH,
                                                    content=encode_batch(envelopes))
        except httpx.HTTPError as exc:
            raise TransportError(f"{endpoint}: {type(exc).__name__}: {exc}".rstrip(": ")) from None
        except TimeoutError:
            raise TransportError(f"{endpoint}: no complete answer within "
                                 f"{self._total:g} s") from None
        return parse_answer(endpoint, response.status_code, response.content, len(envelopes),
                            response.headers.get("retry-after"))

    async def close(self) -> None:
        await self._client.aclose()
