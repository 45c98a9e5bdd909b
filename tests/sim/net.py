"""The simulated network: envelope batches and checkpoints between nodes in memory, and
webhook receivers at the outside world's edge.

A batch goes through the same framing and the same answer the HTTP endpoint gives
(``encode_batch``/``split_batch``, ``Receiver.accept``, ``batch_answer``, JSON, and
``parse_answer`` on the way back), so only the sockets are missing. A peer that is down,
or a link that is cut, refuses the connection at once (``TransportError``); a link that
is cut while a batch is being answered loses the answer, as a dropped connection would
(the sender retries and gets the receipt again as a duplicate).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from hotline.api.federation import batch_answer, cosign_answer, split_batch
from hotline.delivery.transport import BatchAnswer, TransportError, encode_batch, parse_answer

if TYPE_CHECKING:
    from tests.sim.harness import SimNode

log = logging.getLogger("hotline.sim")


def endpoint_of(party: str) -> str:
    return f"https://{party.lower()}.sim.invalid"


@dataclass
class Network:
    """Who is reachable from whom. ``nodes`` maps a party to its simulated node."""

    nodes: dict[str, SimNode] = field(default_factory=dict)
    #: unordered pairs of parties whose link is cut
    cut: set[frozenset[str]] = field(default_factory=set)
    #: requests that reached a node and failed inside it (an HTTP 500 on a real node)
    server_errors: list[tuple[float, str, str]] = field(default_factory=list)

    def route(self, source: str, endpoint: str) -> SimNode:
        """The node behind ``endpoint`` as seen from ``source``; TransportError if no
        connection can be made."""
        target = next((n for n in self.nodes.values() if n.endpoint == endpoint), None)
        if target is None:
            raise TransportError(f"{endpoint}: ConnectError: no such host")
        if frozenset((source, target.party)) in self.cut:
            raise TransportError(f"{endpoint}: ConnectError: network unreachable (link cut)")
        if not target.serving:
            raise TransportError(f"{endpoint}: ConnectError: connection refused (node down)")
        return target

    def transport(self, source: str) -> SimTransport:
        return SimTransport(self, source)

    def poster(self, source: str) -> Callable[[str, bytes], Awaitable[bytes]]:
        async def post(url: str, body: bytes) -> bytes:
            endpoint = url.rsplit("/federation/", 1)[0]
            try:
                target = self.route(source, endpoint)
            except TransportError as exc:
                raise httpx.ConnectError(str(exc)) from None
            _status, answer = await asyncio.shield(cosign_answer(target.up.witness, body))
            self._answer_path(source, endpoint)
            return json.dumps(answer).encode()
        return post

    def _answer_path(self, source: str, endpoint: str) -> None:
        try:
            self.route(source, endpoint)
        except TransportError as exc:
            raise httpx.ReadError(f"answer lost: {exc}") from None


class SimTransport:
    """``HttpTransport``'s interface over :class:`Network`."""

    def __init__(self, network: Network, source: str) -> None:
        self._net = network
        self._source = source

    async def post_batch(self, endpoint: str, envelopes: list[bytes],
                         lane: str = "control") -> BatchAnswer:
        target = self._net.route(self._source, endpoint)
        raws = split_batch(encode_batch(envelopes))
        # The peer's side runs on its own, as a server would: a sender stopped mid-request
        # does not cancel the peer's handling of it.
        handling = asyncio.ensure_future(
            target.up.receiver.accept_batch(raws, f"sim:{self._source}"))
        try:
            outcomes, waiting = await asyncio.shield(handling)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # what a real node answers with HTTP 500
            now = asyncio.get_running_loop().time()
            self._net.server_errors.append((now, target.party, f"{type(exc).__name__}: {exc}"))
            log.warning("%s failed to take a batch from %s: %r", target.party, self._source,
                        exc)
            raise TransportError(f"{endpoint}: HTTP 500 without a usable answer") from None
        status, body = batch_answer(outcomes, waiting, target.up.receiver.protocol)
        try:
            self._net.route(self._source, endpoint)
        except TransportError as exc:
            raise TransportError(f"{endpoint}: ReadError: answer lost ({exc})") from None
        return parse_answer(endpoint, status, json.dumps(body).encode(), len(envelopes))

    async def get_protocol(self, endpoint: str) -> int:
        """What ``GET /federation/v1/protocol`` answers (404 from protocol 1: 1)."""
        target = self._net.route(self._source, endpoint)
        return target.up.receiver.protocol

    async def close(self) -> None:
        return None


@dataclass
class Attempt:
    at: float
    key: str
    mode: str
    ended: float | None = None  # a hanging one ends when the sender gives up on it


@dataclass
class Hook:
    """One webhook receiver: ``ok``, ``fail`` (HTTP 503) or ``hang`` (never answers)."""

    url: str
    mode: str = "ok"
    #: (virtual time, alert key) of every alert it accepted
    accepted: list[tuple[float, str]] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)


class Webhooks:
    """The webhook receivers, behind one ``httpx.MockTransport``."""

    def __init__(self, timeout_s: float) -> None:
        self.hooks: dict[str, Hook] = {}
        self._timeout_s = timeout_s

    def failing_since(self, party: str, name: str, nth: int = 1,
                      after: float = float("-inf")) -> float | None:
        """When the ``nth`` of the attempts (started after ``after``) that ``party``'s
        node has made on its hook ``name`` since its last success failed, as the node saw
        it (an error, or a hang its time-out ended — not one cut short by the node
        stopping); None if there have not been ``nth`` such failures in a row."""
        hook = self.hooks[f"{party.lower()}/{name}"]
        failures: list[float] = []
        for attempt in reversed(hook.attempts):
            if attempt.ended is None:
                continue  # under way
            if attempt.mode == "ok" or attempt.at < after:
                break
            if attempt.mode == "fail" or attempt.ended - attempt.at >= self._timeout_s - 1e-6:
                failures.append(attempt.ended)
        failures.reverse()
        return failures[nth - 1] if len(failures) >= nth else None

    def add(self, name: str) -> Hook:
        hook = Hook(f"https://hooks.sim.invalid/{name}")
        self.hooks[name] = hook
        return hook

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self._handle))

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        hook = next((h for h in self.hooks.values() if h.url == str(request.url)), None)
        if hook is None:
            return httpx.Response(404)
        loop = asyncio.get_running_loop()
        attempt = Attempt(loop.time(), json.loads(request.content)["key"], hook.mode)
        hook.attempts.append(attempt)
        try:
            if attempt.mode == "hang":
                await asyncio.Event().wait()  # until the channel's own time-out gives up
            if attempt.mode == "fail":
                return httpx.Response(503, text="down for maintenance")
            hook.accepted.append((attempt.at, attempt.key))
            return httpx.Response(200)
        finally:
            attempt.ended = loop.time()
