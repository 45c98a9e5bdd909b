"""One sender per peer: pushes the outbox to the peer's endpoints until every envelope
has a verified receipt.

It never gives up and never goes quiet: every failed attempt is recorded in
:class:`PeerHealth` (last error, since when the peer is unreachable, next attempt), which
``hotline status`` shows. Endpoints are tried in order, primary first; the backoff is
shared by all of a peer's endpoints so a dead primary is not hammered between retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from sqlalchemy import Connection

from hotline.clock import Clock
from hotline.delivery.backoff import Backoff
from hotline.delivery.transport import BatchAnswer, Transport, TransportError
from hotline.errors import HotlineError
from hotline.health.supervisor import Running, Supervisor
from hotline.protocol.receipt import message_digest, verify_receipt
from hotline.store import outbox
from hotline.store.database import Database
from hotline.store.links import Link
from hotline.store.outbox import Pending

log = logging.getLogger("hotline.delivery")


@dataclass
class PeerHealth:
    """What the operator needs to know about one peer's line, kept live."""

    in_flight: int = 0
    last_error: str | None = None
    last_error_at: int | None = None
    unreachable_since: int | None = None
    #: since when every attempt has failed (unreachable, refused or a bad answer), on the
    #: monotonic clock; None while the line works
    failing_since_mono: float | None = None
    last_success_at: int | None = None
    next_attempt_at: int | None = None
    #: consecutive failed attempts since the last fully acknowledged batch
    failed_attempts: int = 0
    endpoint: str | None = None
    #: The peer's clock minus ours, in ms, from the last batch's round trip: the peer's
    #: signed receipt time against the midpoint of our request (error ± rtt/2).
    clock_offset_ms: int | None = None
    clock_offset_error_ms: int | None = None
    #: attempts the peer answered with 429 (slow down) since this process started
    throttled: int = 0


Reseal = Callable[[Link, Pending], Pending]
FRESH_LIMIT = 10_000
EARLY_RETRY_FLOOR_S = 1.0
#: the longest pause a peer's Retry-After can impose; past it the sender asks again (a
#: peer that keeps refusing for ``line_down_alarm_seconds`` raises ``line-down``)
MAX_PAUSE_S = 300.0


def _rate_limited(answer: BatchAnswer, index: int) -> float | Literal[False] | None:
    """If the result at ``index`` (the first not delivered) is ``rate-limited``: the wait
    it asks for in seconds (its ``retry_after``, else the answer's ``Retry-After``, else
    None); False if it is another error."""
    result = answer.results[index] if index < len(answer.results) else None
    if not isinstance(result, dict) or result.get("error") != "rate-limited":
        return False
    wait = result.get("retry_after")
    if isinstance(wait, int) and not isinstance(wait, bool) and 0 <= wait <= 86_400:
        return float(wait)
    return answer.retry_after_s


class PeerSender:
    def __init__(self, *, me: str, link: Link, db: Database,
                 transport: Transport, clock: Clock, backoff: Backoff, batch_size: int,
                 batch_bytes: int, reseal: Reseal, reseal_after_ms: int) -> None:
        self.me = me
        self.link = link
        self.health = PeerHealth()
        self._db = db
        self._transport = transport
        self._clock = clock
        self._backoff = backoff
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._reseal = reseal
        self._reseal_after_ms = reseal_after_ms
        self._wake = asyncio.Event()
        self._running: Running | None = None
        # Receipts up to this seq are verified; storing them runs while the next batch is
        # already on its way, so the sender does not wait for its own bookkeeping.
        self._acked_upto = 0
        self._marking: set[asyncio.Task[None]] = set()
        # Envelopes just committed by this process, handed over in memory so the steady
        # state needs no outbox read per batch. The outbox stays the truth: whenever this
        # buffer does not continue exactly where the receipts end (start-up, overflow,
        # a failure), the sender catches up from the database.
        self._fresh: deque[Pending] = deque()
        #: set when the peer asked us to slow down: how long to pause, in seconds
        self._pause_s: float | None = None

    @property
    def task_name(self) -> str:
        return f"sender-{self.link.party}"

    def start(self, supervisor: Supervisor | None = None) -> None:
        self._wake.set()  # catch up with whatever the outbox holds from before a restart
        self._running = Running(self.task_name, self._run)
        self._running.start(supervisor)

    async def stop(self) -> None:
        if self._running is not None:
            await self._running.stop()
        await asyncio.gather(*self._marking, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    def offer(self, fresh: list[Pending]) -> None:
        """Envelopes committed to the outbox just now, in sequence order."""
        if len(self._fresh) + len(fresh) <= FRESH_LIMIT:
            self._fresh.extend(fresh)
        else:
            self._fresh.clear()  # the database has them all; catch up from there
        self._wake.set()

    def _from_memory(self) -> list[Pending] | None:
        """The next batch from the buffer, or None if the buffer cannot be trusted to
        continue right after the last verified receipt."""
        while self._fresh and self._fresh[0].seq <= self._acked_upto:
            self._fresh.popleft()
        if not self._fresh or self._fresh[0].seq != self._acked_upto + 1:
            return None
        batch: list[Pending] = []
        size = 0
        for item in self._fresh:
            size += len(item.envelope) + 1
            if item.seq != self._acked_upto + 1 + len(batch) or len(batch) >= self._batch_size \
                    or (batch and size > self._batch_bytes):
                break  # only an unbroken run of sequence numbers goes out from memory
            batch.append(item)
        return batch

    async def _run(self) -> None:
        self._wake.set()  # a restarted run catches up from the outbox first
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                try:
                    batch = await self._next_batch()
                    if not batch:
                        break
                    ok = await self._push(batch)
                except Exception as exc:
                    # Shown in status, then up to the supervisor: logged with its stack,
                    # alarmed, and this task restarted after a backoff.
                    self._failed(f"internal error: {type(exc).__name__}: {exc}", reachable=True)
                    raise
                if not ok and self._pause_s is not None:
                    # back-pressure: the peer's Retry-After, in full, and no failure counted
                    delay, self._pause_s = self._pause_s, None
                    self.health.next_attempt_at = self._clock.now_ms() + int(delay * 1000)
                    await asyncio.sleep(delay)
                    self.health.next_attempt_at = None
                elif not ok:
                    delay = self._backoff.next_delay()
                    self.health.failed_attempts = self._backoff.failures
                    self.health.next_attempt_at = self._clock.now_ms() + int(delay * 1000)
                    await self._wait_out(delay)
                    self.health.next_attempt_at = None

    async def _wait_out(self, delay: float) -> None:
        """Wait ``delay`` before the next attempt, unless new envelopes are offered
        meanwhile: a call placed during an outage is tried again at once, not after up
        to a whole capped backoff — but never sooner than the backoff's first step (at
        most 1 s) after the last attempt, so a busy queue cannot flood a dead peer."""
        started = self._clock.monotonic()
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except TimeoutError:
            return
        floor = min(self._backoff.initial, EARLY_RETRY_FLOOR_S)
        rest = floor - (self._clock.monotonic() - started)
        if rest > 0:
            await asyncio.sleep(rest)

    def needs_reseal(self, p: Pending, now: int) -> bool:
        """Whether ``p`` must be sealed afresh before it goes out: its seal time is outside
        the window in either direction (it waited out an outage, or it was sealed while
        our clock was ahead), or it is a call signal whose delivery budget ran out and
        that does not say so yet (the callee must see it spent).

        ``p.deadline_at`` must be the outbox's current value (it moves with a wall-clock
        step); whether the budget already says "spent" is read from the payload, not by
        comparing the seal time (history, never moved) with the deadline (moved)."""
        if abs(now - p.sealed_at) > self._reseal_after_ms:
            return True
        return p.deadline_at is not None and now >= p.deadline_at \
            and json.loads(p.payload).get("budget_ms") != 0

    async def _next_batch(self) -> list[Pending]:
        """The next envelopes to send, re-sealing those :meth:`needs_reseal` names.

        A call signal with a delivery deadline is decided inside a writer transaction,
        against the deadline as stored now and the clock of that transaction: the copy
        in memory (or read a moment ago) may predate a wall-clock step that moved the
        stored deadline, and a budget computed from it would be wrong by the step."""
        after = self._acked_upto
        batch = self._from_memory()
        if batch is None:
            batch = await self._db.read(lambda conn: outbox.pending(
                conn, self.link.party, self._batch_size, self._batch_bytes, after))
        now = self._clock.now_ms()
        maybe = [p for p in batch if p.deadline_at is not None or self.needs_reseal(p, now)]
        if not maybe:
            return batch

        def store(conn: Connection) -> tuple[dict[str, Pending], int]:
            now = self._clock.now_ms()  # the writer's: same time base as the rows read here
            current = outbox.deadlines(conn, [p.envelope_id for p in maybe
                                              if p.deadline_at is not None])
            renewed: dict[str, Pending] = {}
            sealed = 0
            for p in maybe:
                if p.envelope_id in current:
                    p = replace(p, deadline_at=current[p.envelope_id])
                if self.needs_reseal(p, now):
                    p = self._reseal(self.link, p)
                    outbox.resealed(conn, p.envelope_id, p.envelope, p.sealed_at, p.payload)
                    sealed += 1
                renewed[p.envelope_id] = p
            return renewed, sealed

        fresh, sealed = await self._db.write(store)
        if sealed:
            log.info("re-sealed %d waiting envelope(s) for %s", sealed, self.link.party)

        def renewed(p: Pending) -> Pending:
            return fresh.get(p.envelope_id, p)

        self._fresh = deque(renewed(p) for p in self._fresh)
        return [renewed(p) for p in batch]

    async def _push(self, batch: list[Pending]) -> bool:
        """Send one batch; True if every envelope in it now has a verified receipt."""
        self.health.in_flight = len(batch)
        try:
            answer = None
            for endpoint in self.link.endpoints:
                try:
                    sent_at, sent_mono = self._clock.now_ms(), self._clock.monotonic()
                    answer = await self._transport.post_batch(endpoint, [p.envelope for p in batch])
                    rtt_ms = (self._clock.monotonic() - sent_mono) * 1000
                    self.health.endpoint = endpoint
                    break
                except TransportError as exc:
                    self._failed(f"unreachable: {exc}")
            if answer is None:
                return False
            self.health.unreachable_since = None
            if answer.status == 429 and not answer.results:
                return self._throttled(answer.retry_after_s, progressed=False)
            delivered, error = self._check_results(batch, answer.results)
            if delivered:
                fresh = [peer_at for *_, peer_at in delivered if peer_at is not None]
                if fresh:
                    self._measure_offset(fresh[-1], sent_at, rtt_ms)
                self._acked_upto = max(self._acked_upto, batch[len(delivered) - 1].seq)
                self._store_receipts(delivered)
                self.health.last_success_at = self._clock.now_ms()
            if error is not None:
                wait = _rate_limited(answer, len(delivered))
                if wait is not False:
                    return self._throttled(wait, progressed=bool(delivered))
                self._failed(error, reachable=True)
                return False
            self._backoff.reset()
            self.health.failed_attempts = 0
            self.health.last_error = None
            self.health.failing_since_mono = None
            return True
        finally:
            self.health.in_flight = 0

    def _throttled(self, wait_s: float | None, *, progressed: bool) -> bool:
        """The peer answered 429 (or ``rate-limited`` for the rest of the batch): slow
        down, do not fail. The next attempt waits the peer's ``Retry-After`` (at least
        the backoff's first step, at most ``MAX_PAUSE_S``; the backoff's next step if it
        named none), the backoff does not grow, and the line counts as failing (towards
        ``line-down``) only while nothing at all gets through."""
        if wait_s is None:
            wait_s = self._backoff.ceiling()
        self._pause_s = min(MAX_PAUSE_S, max(wait_s, self._backoff.initial))
        message = f"{self.link.party} asks us to slow down: retry after {self._pause_s:g} s"
        if self.health.last_error != message:
            log.info("delivery to %s: %s", self.link.party, message)
        self.health.last_error, self.health.last_error_at = message, self._clock.now_ms()
        self.health.throttled += 1
        if progressed:
            self.health.failing_since_mono = None
        elif self.health.failing_since_mono is None:
            self.health.failing_since_mono = self._clock.monotonic()
        return False

    def _measure_offset(self, peer_at: int, sent_at: int, rtt_ms: float) -> None:
        """The peer signed its receipt somewhere inside our round trip: its clock minus
        ours is best estimated against the midpoint, within half the round trip."""
        self.health.clock_offset_ms = int(peer_at - (sent_at + rtt_ms / 2))
        self.health.clock_offset_error_ms = int(rtt_ms / 2) + 1

    def _store_receipts(self, delivered: list[tuple[str, bytes, int, int | None]]) -> None:
        rows = [(envelope_id, raw, at) for envelope_id, raw, at, _peer_at in delivered]
        task = asyncio.create_task(
            self._db.write(lambda conn: outbox.mark_delivered(conn, rows)))
        self._marking.add(task)
        task.add_done_callback(self._marking.discard)

    def _check_results(self, batch: list[Pending], results: list[object]
                       ) -> tuple[list[tuple[str, bytes, int, int | None]], str | None]:
        """(envelope id, receipt, our time, the peer's signed time or None for a
        duplicate) for the verified receipts in order, and the first error."""
        delivered: list[tuple[str, bytes, int, int | None]] = []
        now = self._clock.now_ms()
        for pending, result in zip(batch, results, strict=True):
            receipt = result.get("receipt") if isinstance(result, dict) else None
            if not isinstance(receipt, str):
                err = result.get("error", "no receipt") if isinstance(result, dict) else result
                message = result.get("message", "") if isinstance(result, dict) else ""
                return delivered, f"{self.link.party} rejected seq {pending.seq}: {err}: {message}"
            digest = message_digest(envelope_id=pending.envelope_id, sender=self.me,
                                    recipient=self.link.party, seq=pending.seq,
                                    type_=pending.type, payload=json.loads(pending.payload))
            try:
                checked = verify_receipt(receipt.encode(), signer=self.link.keys,
                                         signer_party=self.link.party,
                                         envelope_id=pending.envelope_id, sender=self.me,
                                         seq=pending.seq, digest=digest)
            except HotlineError as exc:
                log.warning("bad receipt from %s for seq %d: %s", self.link.party, pending.seq,
                            exc)
                return delivered, f"bad receipt from {self.link.party}: {exc}"
            # A duplicate's receipt is the original, signed when the peer first stored
            # the envelope: its time says nothing about the peer's clock now.
            duplicate = isinstance(result, dict) and result.get("duplicate") is True
            delivered.append((pending.envelope_id, checked.raw, now,
                              None if duplicate else checked.at))
        return delivered, None

    def _failed(self, message: str, *, reachable: bool = False) -> None:
        now = self._clock.now_ms()
        if self.health.last_error != message:
            log.warning("delivery to %s: %s", self.link.party, message)
        self.health.last_error, self.health.last_error_at = message, now
        if not reachable and self.health.unreachable_since is None:
            self.health.unreachable_since = now
        if self.health.failing_since_mono is None:
            self.health.failing_since_mono = self._clock.monotonic()
