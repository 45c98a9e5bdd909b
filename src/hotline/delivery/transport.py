"""HTTP transport for envelope batches. The envelopes carry their own security; this
module only moves bytes and reports what came back, or why nothing did."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx

BATCH_PATH = "/federation/v1/envelopes"
NDJSON = "application/x-ndjson"


class TransportError(Exception):
    """No usable answer from an endpoint (connection refused, timeout, garbage)."""


@dataclass(frozen=True)
class BatchAnswer:
    status: int
    results: list[Any]


def encode_batch(envelopes: list[bytes]) -> bytes:
    """One canonical envelope per line; canonical JSON never contains a raw newline."""
    return b"\n".join(envelopes)


#: The whole exchange (connect, upload, answer) is bounded by this many request timeouts:
#: httpx applies its timeout to each read and write, so an endpoint that answers a byte
#: at a time would otherwise hold the line for ever without a failure to show or alarm.
TOTAL_TIMEOUTS = 3


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
        try:
            body = json.loads(response.content)
            results = body["results"]
            if not isinstance(results, list) or len(results) != len(envelopes):
                raise ValueError("result count does not match the batch")
        except (ValueError, KeyError, TypeError) as exc:
            raise TransportError(f"{endpoint}: HTTP {response.status_code} without a usable "
                                 f"answer ({exc})") from None
        return BatchAnswer(response.status_code, results)

    async def close(self) -> None:
        await self._client.aclose()
