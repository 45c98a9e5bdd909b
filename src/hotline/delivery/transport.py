"""HTTP transport for envelope batches. The envelopes carry their own security; this
module only moves bytes and reports what came back, or why nothing did."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from hotline.protocol.lanes import PROTOCOL

BATCH_PATH = "/federation/v1/envelopes"
PROTOCOL_PATH = "/federation/v1/protocol"
NDJSON = "application/x-ndjson"


class TransportError(Exception):
    """No usable answer from an endpoint (connection refused, timeout, garbage)."""


#: What a peer's answer may hold per envelope of the batch (a result with a signed
#: receipt is under 1 KiB), plus :data:`ANSWER_BASE_BYTES` for the rest of the body.
ANSWER_BYTES_PER_ENVELOPE = 4096
ANSWER_BASE_BYTES = 64 * 1024


class AnswerTooLarge(ValueError):
    """An answer's body went past the bound its request allows."""


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The body of a streamed ``response``, read only up to ``limit`` bytes: whoever
    answers at a peer's endpoint (an impostor or a broken proxy too) cannot make the
    node buffer more than that. Raises :class:`AnswerTooLarge` past it."""
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk
        if len(content) > limit:
            raise AnswerTooLarge(f"the answer exceeds {limit} bytes")
    return bytes(content)


@dataclass(frozen=True)
class BatchAnswer:
    """``results``: one per envelope, except for a whole request refused 429 (empty).
    ``retry_after_s``: the peer's ``Retry-After`` in seconds, if it sent a valid one."""

    status: int
    results: list[Any]
    retry_after_s: float | None = None
    #: the gap report: per sender, the sequence number the receiver waits on (control)
    waiting_for: dict[str, int] = field(default_factory=dict)
    #: the same for the bulk lane
    waiting_for_bulk: dict[str, int] = field(default_factory=dict)
    #: the protocol the peer said it speaks (1 if its answer names none: before lanes);
    #: None for an answer without results (a whole request refused)
    protocol: int | None = None


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
    protocol = body.get("protocol") if isinstance(body, dict) else None
    if not isinstance(protocol, int) or isinstance(protocol, bool) or protocol < 1:
        protocol = 1
    # a peer newer than us speaks ours with us; and an absurd number (2**70) must not
    # reach the store's integer column, where it would fail every batch's bookkeeping
    protocol = min(protocol, PROTOCOL)
    return BatchAnswer(status, results, wait, _gaps(body, "waiting_for"),
                       _gaps(body, "waiting_for_bulk"), protocol)


def _gaps(body: object, name: str) -> dict[str, int]:
    waiting = body.get(name) if isinstance(body, dict) else None
    return {k: v for k, v in waiting.items() if isinstance(k, str) and isinstance(v, int)
            and not isinstance(v, bool) and v > 0} if isinstance(waiting, dict) else {}


class Transport(Protocol):
    """Moves a batch to one endpoint of a peer: HTTP in a node, in memory in the
    simulation harness (``tests/sim``)."""

    async def post_batch(self, endpoint: str, envelopes: list[bytes],
                         lane: str = "control") -> BatchAnswer: ...
    async def get_protocol(self, endpoint: str) -> int: ...
    async def close(self) -> None: ...


def parse_protocol(status: int, content: bytes) -> int:
    """The protocol a peer's ``GET /federation/v1/protocol`` answer names: 404 (a node
    from before lanes has no such route) or 405 is protocol 1."""
    if status in (404, 405):
        return 1
    try:
        version = json.loads(content)["protocol"] if status == 200 else None
    except (ValueError, KeyError, TypeError):
        version = None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TransportError(f"HTTP {status} without a usable protocol version")
    return min(version, PROTOCOL)  # as in parse_answer: at most the version we speak


class HttpTransport:
    def __init__(self, timeout: float) -> None:
        self._client = httpx.AsyncClient(timeout=timeout, headers={"content-type": NDJSON})
        self._total = timeout * TOTAL_TIMEOUTS

    async def post_batch(self, endpoint: str, envelopes: list[bytes],
                         lane: str = "control") -> BatchAnswer:
        """POST one lane's batch; a bulk batch names its lane in the query, so the peer
        charges it to its own admission budget (a node of protocol 1 ignores it)."""
        path = BATCH_PATH + "?lane=bulk" if lane == "bulk" else BATCH_PATH
        limit = ANSWER_BASE_BYTES + ANSWER_BYTES_PER_ENVELOPE * len(envelopes)
        try:
            async with asyncio.timeout(self._total), self._client.stream(
                    "POST", endpoint + path, content=encode_batch(envelopes)) as response:
                content = await read_capped(response, limit)
        except (httpx.HTTPError, AnswerTooLarge) as exc:
            raise TransportError(f"{endpoint}: {type(exc).__name__}: {exc}".rstrip(": ")) from None
        except TimeoutError:
            raise TransportError(f"{endpoint}: no complete answer within "
                                 f"{self._total:g} s") from None
        return parse_answer(endpoint, response.status_code, content, len(envelopes),
                            response.headers.get("retry-after"))

    async def get_protocol(self, endpoint: str) -> int:
        """The federation protocol the node at ``endpoint`` speaks; raises
        TransportError if it does not say."""
        try:
            async with asyncio.timeout(self._total), self._client.stream(
                    "GET", endpoint + PROTOCOL_PATH) as response:
                content = await read_capped(response, ANSWER_BASE_BYTES)
        except (httpx.HTTPError, TimeoutError, AnswerTooLarge) as exc:
            raise TransportError(f"{endpoint}: {type(exc).__name__}: {exc}".rstrip(": ")) \
                from None
        return parse_protocol(response.status_code, content)

    async def close(self) -> None:
        await self._client.aclose()
