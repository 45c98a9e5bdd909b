"""One sender per peer: pushes the outbox to the peer's endpoints until every envelope
has a verified receipt.

It never gives up and never goes quiet: every failed attempt is recorded in
:class:`PeerHealth` (last error, since when the peer is unreachable, next attempt), which
``hotline status`` shows. Endpoints are tried in order, primary first; the backoff is
shared by all of a peer's endpoints so a dead primary is not hammered between retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from hotline.clock import Clock
from hotline.delivery.backoff import Backoff
from hotline.delivery.transport import HttpTransport, TransportError
from hotline.errors import HotlineError
from hotline.protocol.receipt import verify_receipt
from hotline.store import outbox
from hotline.store.links import Link
from hotline.store.outbox import Pending
from hotline.store.writer import Writer

log = logging.getLogger("hotline.delivery")


@dataclass
class PeerHealth:
    """What the operator needs to know about one peer's line, kept live."""

    in_flight: int = 0
    last_error: str | None = None
    last_error_at: int | None = None
    unreachable_since: int | None = None
    last_success_at: int | None = None
    next_attempt_at: int | None = None
    endpoint: str | None = None


class PeerSender:
    def __init__(self, *, me: str, link: Link, engine: AsyncEngine, writer: Writer,
                 transport: HttpTransport, clock: Clock, backoff: Backoff, batch_size: int,
                 batch_bytes: int, on_delivered: Callable[[str, int], None] | None = None) -> None:
        self.me = me
        self.link = link
        self.health = PeerHealth()
        self._engine = engine
        self._writer = writer
        self._transport = transport
        self._clock = clock
        self._backoff = backoff
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_delivered = on_delivered

    def start(self) -> None:
        self._wake.set()  # catch up with whatever the outbox holds from before a restart
        self._task = asyncio.create_task(self._run(), name=f"sender-{self.link.party}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                async with self._engine.connect() as conn:
                    batch = await outbox.pending(conn, self.link.party, self._batch_size,
                                                 self._batch_bytes)
                if not batch:
                    break
                if not await self._push(batch):
                    delay = self._backoff.next_delay()
                    self.health.next_attempt_at = self._clock.now_ms() + int(delay * 1000)
                    await asyncio.sleep(delay)
                    self.health.next_attempt_at = None

    async def _push(self, batch: list[Pending]) -> bool:
        """Send one batch; True if every envelope in it now has a verified receipt."""
        self.health.in_flight = len(batch)
        try:
            answer = None
            for endpoint in self.link.endpoints:
                try:
                    answer = await self._transport.post_batch(endpoint, [p.envelope for p in batch])
                    self.health.endpoint = endpoint
                    break
                except TransportError as exc:
                    self._failed(f"unreachable: {exc}")
            if answer is None:
                return False
            self.health.unreachable_since = None
            delivered, error = self._check_results(batch, answer.results)
            if delivered:
                await self._writer.write(lambda conn: outbox.mark_delivered(conn, delivered))
                self.health.last_success_at = self._clock.now_ms()
                self.health.unreachable_since = None
                if self._on_delivered is not None:
                    self._on_delivered(self.link.party, len(delivered))
            if error is not None:
                self._failed(error, reachable=True)
                return False
            self._backoff.reset()
            self.health.last_error = None
            return True
        finally:
            self.health.in_flight = 0

    def _check_results(self, batch: list[Pending], results: list[dict[str, object]]
                       ) -> tuple[list[tuple[str, bytes, int]], str | None]:
        delivered: list[tuple[str, bytes, int]] = []
        for pending, result in zip(batch, results, strict=True):
            receipt = result.get("receipt")
            if not isinstance(receipt, str):
                err = result.get("error", "no receipt")
                message = result.get("message", "")
                return delivered, f"{self.link.party} rejected seq {pending.seq}: {err}: {message}"
            try:
                checked = verify_receipt(receipt.encode(), signer=self.link.keys,
                                         signer_party=self.link.party,
                                         envelope_id=pending.envelope_id, sender=self.me,
                                         seq=pending.seq, raw_envelope=pending.envelope)
            except HotlineError as exc:
                log.warning("bad receipt from %s for seq %d: %s", self.link.party, pending.seq,
                            exc)
                return delivered, f"bad receipt from {self.link.party}: {exc}"
            delivered.append((pending.envelope_id, checked.raw, checked.at))
        return delivered, None

    def _failed(self, message: str, *, reachable: bool = False) -> None:
        now = self._clock.now_ms()
        if self.health.last_error != message:
            log.warning("delivery to %s: %s", self.link.party, message)
        self.health.last_error, self.health.last_error_at = message, now
        if not reachable and self.health.unreachable_since is None:
            self.health.unreachable_since = now
