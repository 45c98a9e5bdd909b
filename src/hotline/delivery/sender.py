"""One sender per peer: pushes the outbox to the peer's endpoints until every envelope
has a verified receipt.

The outbox holds one queue per lane (:mod:`hotline.protocol.lanes`); a request carries
envelopes of one lane only, and the control lane is always served first: before each
request the sender looks at the control lane, so a control envelope waits at most for
the one request already on the line (a bulk batch, bounded by ``batch_size`` and the
batch byte budget). The per-lane state (acknowledged prefix, fresh buffer) is kept in
:class:`LaneState`, so more than one request in flight per peer stays possible.

It never gives up and never goes quiet: every failed attempt is recorded in
:class:`PeerHealth` (last error, since when the peer is unreachable, next attempt), which
``hotline status`` shows. Endpoints are tried in order, primary first — or, when the link
prober knows better (``order``, from ``hotline.links.prober``), the healthiest first, so
a dead primary fails over to an answering alternate; the backoff is shared by all of a
peer's endpoints so a dead primary is not hammered between retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from sqlalchemy import Connection

from hotline.clock import Clock
from hotline.delivery.backoff import Backoff
from hotline.delivery.transport import BatchAnswer, Transport, TransportError
from hotline.errors import HotlineError
from hotline.health.supervisor import Running, Supervisor
from hotline.logfmt.context import bound
from hotline.peers import PeerDirectory
from hotline.protocol.keys import PublicKeys
from hotline.protocol.lanes import BULK, CONTROL, LANES, PROTOCOL, Lane
from hotline.protocol.receipt import message_digest, verify_receipt
from hotline.store import outbox
from hotline.store.database import Database
from hotline.store.links import Link
from hotline.store.outbox import Pending
from hotline.waits import STOP_GRACE_S, cancel_and_wait, wait_event

log = logging.getLogger("hotline.delivery")
security_log = logging.getLogger("hotline.security")


@dataclass
class PeerHealth:
    """What the operator needs to know about one peer's line, kept live."""

    in_flight: int = 0
    last_error: str | None = None
    last_error_at: int | None = None
    unreachable_since: int | None = None
    #: the same instant on the monotonic clock: how long (``unreachable_for_seconds``)
    unreachable_since_mono: float | None = None
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
    #: the gap report: the sequence number the peer said it waits on from us (None: it
    #: waits on nothing), since when (monotonic clock), and whether our outbox holds no
    #: undelivered envelope of that number to send (a lost row: the line cannot recover)
    peer_waiting_for: int | None = None
    peer_waiting_since_mono: float | None = None
    peer_waiting_unsendable: bool = False
    #: the same gap report for the bulk lane: (seq, since (monotonic), unsendable)
    peer_waiting_bulk: tuple[int, float, bool] | None = None


@dataclass
class LaneState:
    """One lane of a peer's line, as the sender sees it."""

    lane: Lane
    #: receipts up to this seq are verified (the next batch starts after it)
    acked_upto: int = 0
    #: envelopes just committed by this process, handed over in memory (see ``offer``)
    fresh: deque[Pending] = field(default_factory=deque)
    #: the receipts of a batch could not be stored and ``acked_upto`` went back before
    #: it: the batch on the line meanwhile must not move it forward again
    rewound: bool = False


Reseal = Callable[[Link, Pending], Pending]
FRESH_LIMIT = 10_000
EARLY_RETRY_FLOOR_S = 1.0
#: the longest pause a peer's Retry-After can impose; past it the sender asks again (a
#: peer that keeps refusing for ``line_down_alarm_seconds`` raises ``line-down``)
MAX_PAUSE_S = 300.0


def _through_key_change(batch: list[Pending]) -> list[Pending]:
    """``batch`` up to and including its first key statement: the peer applies it when
    it releases it, and only the next request's envelopes are checked under the new key
    (a batch is verified whole before anything of it is stored)."""
    for index, pending in enumerate(batch):
        if pending.type in outbox.KEY_CHANGE_TYPES:
            return batch[:index + 1]
    return batch


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
                 batch_bytes: int, reseal: Reseal, reseal_after_ms: int,
                 keys: PeerDirectory | None = None,
                 order: Callable[[list[str]], list[str]] | None = None,
                 on_delivered: Callable[[str, float], None] | None = None,
                 on_protocol: Callable[[str, int], Awaitable[None]] | None = None) -> None:
        """``keys``: the peers' key histories, to check a receipt signed by a key other
        than the link's current one (rotated out, within its grace). ``order``: the
        link's endpoints in the order to try them (default: as the link lists them).
        ``on_delivered``: (peer, seconds) for each envelope offered to this sender
        (enqueued by this process) once its receipt is verified, seconds on the monotonic
        clock since it was offered (the delivery latency metric; envelopes from before a
        restart have no such start and are not measured). ``on_protocol``: told (party,
        version) when the peer's answer names another protocol version than the link
        records (it stores it; the caller then updates ``link``)."""
        self._keys = keys
        self._order = order
        self._on_delivered = on_delivered
        #: envelope id -> monotonic time it was offered, for ``on_delivered``
        self._offered_at: dict[str, float] = {}
        self._on_protocol = on_protocol
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
        # Per lane: receipts up to ``acked_upto`` are verified; storing them runs while
        # the next batch is already on its way, so the sender does not wait for its own
        # bookkeeping. ``fresh``: envelopes just committed by this process, handed over
        # in memory so the steady state needs no outbox read per batch. The outbox stays
        # the truth: whenever this buffer does not continue exactly where the receipts
        # end (start-up, overflow, a failure), the sender catches up from the database.
        self.lanes: dict[Lane, LaneState] = {lane: LaneState(lane) for lane in LANES}
        self._marking: set[asyncio.Task[None]] = set()
        #: set when the peer asked us to slow down: how long to pause, in seconds
        self._pause_s: float | None = None
        #: monotonic time until which the bulk lane waits out the peer's Retry-After
        #: (a 429 on a bulk request pauses bulk only: control goes on meanwhile)
        self._bulk_resume_at: float | None = None
        #: the bulk lane's own backoff while the peer says protocol 1 and refuses it
        self._bulk_backoff = replace(backoff, failures=0)
        #: clear while a batch is on the line (posted, its answer not yet read)
        self._idle = asyncio.Event()
        self._idle.set()
        #: set by :meth:`finish`: no new batch goes out
        self._finishing = False

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
        # the receipts being stored finish (they are proof of delivery), within bounds
        _, running = await asyncio.wait(self._marking, timeout=STOP_GRACE_S) \
            if self._marking else (set(), set())
        await cancel_and_wait(running, what="receipt storing of the sender")

    async def finish(self, within_s: float) -> bool:
        """Stop once the batch on the line (if any) has its answer and its receipts are
        stored, waiting at most ``within_s`` seconds; no new batch goes out meanwhile.
        A receipt is proof of delivery: ending a line (removing its link) must not call
        undeliverable what the peer took. Returns False if the wait ran out with a batch
        still on the line (its fate is unknown: the peer may have taken it)."""
        self._finishing = True
        settled = True
        if not await wait_event(self._idle, within_s):
            settled = False
        await self.stop()
        return settled

    def wake(self) -> None:
        self._wake.set()

    def offer(self, fresh: list[Pending]) -> None:
        """Envelopes committed to the outbox just now, in sequence order per lane."""
        if self._on_delivered is not None:
            if len(self._offered_at) > FRESH_LIMIT * 10:
                self._offered_at.clear()  # bounded: an outage's backlog goes unmeasured
            now = self._clock.monotonic()
            self._offered_at.update((p.envelope_id, now) for p in fresh)
        for lane in LANES:
            state = self.lanes[lane]
            mine = [p for p in fresh if p.lane == lane]
            if not mine:
                continue
            if len(state.fresh) + len(mine) <= FRESH_LIMIT:
                state.fresh.extend(mine)
            else:
                state.fresh.clear()  # the database has them all; catch up from there
        self._wake.set()

    def _from_memory(self, state: LaneState) -> list[Pending] | None:
        """The next batch of a lane from its buffer, or None if the buffer cannot be
        trusted to continue right after the lane's last verified receipt."""
        acked, fresh = state.acked_upto, state.fresh
        while fresh and fresh[0].seq <= acked:
            fresh.popleft()
        if not fresh or fresh[0].seq != acked + 1:
            return None
        batch: list[Pending] = []
        size = 0
        for item in fresh:
            size += len(item.envelope) + 1
            if item.seq != acked + 1 + len(batch) or len(batch) >= self._batch_size \
                    or (batch and size > self._batch_bytes):
                break  # only an unbroken run of sequence numbers goes out from memory
            batch.append(item)
        return batch

    async def _run(self) -> None:
        self._wake.set()  # a restarted run catches up from the outbox first
        while True:
            left = self._bulk_pause_left()
            if left is None:
                await self._wake.wait()
            else:  # the bulk lane's pause ending is a reason to look again
                await wait_event(self._wake, left)
            while not self._finishing:
                # Cleared before each read of the queue, not once per wake-up: what is
                # offered after this read sets it again (and is tried early, see
                # _wait_out), while a flag left over from before a failed attempt
                # would end every later backoff at once and hammer a dead peer.
                self._wake.clear()
                try:
                    batch = await self._next_batch()
                    if not batch:
                        break
                    # the lines logged about this batch name its first envelope (the
                    # one the line waits on)
                    with bound(envelope_id=batch[0].envelope_id):
                        ok = await self._push(batch)
                except Exception as exc:
                    # Shown in status, then up to the supervisor: logged with its stack,
                    # alarmed, and this task restarted after a backoff.
                    self._failed(f"internal error: {type(exc).__name__}: {exc}", reachable=True)
                    raise
                if ok and batch[0].lane == BULK:
                    self._bulk_backoff.reset()
                elif not ok:
                    await self._after_failure(batch)

    async def _after_failure(self, batch: list[Pending]) -> None:
        """What follows a batch that did not get through: who waits, and how long."""
        if self._pause_s is not None and batch[0].lane == BULK:
            # back-pressure on bulk: only the bulk lane waits the Retry-After
            self._bulk_resume_at = self._clock.monotonic() + self._pause_s
            self._pause_s = None
        elif self._pause_s is not None:
            # back-pressure: the peer's Retry-After, in full, and no failure counted
            delay, self._pause_s = self._pause_s, None
            self.health.next_attempt_at = self._clock.now_ms() + int(delay * 1000)
            await asyncio.sleep(delay)
            self.health.next_attempt_at = None
        elif batch[0].lane == BULK and self.link.protocol < PROTOCOL:
            # refused by a peer that now says it speaks protocol 1 (a downgrade, §11.1):
            # only the bulk lane waits, on a backoff of its own; control goes on at once
            # (its success would reset the line's backoff, and every call signal would
            # then be followed by another refused bulk batch); an answer saying 2 again
            # ends the wait (:meth:`_note_protocol`)
            self._bulk_resume_at = self._clock.monotonic() + self._bulk_backoff.next_delay()
        else:
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
        if not await wait_event(self._wake, delay):
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

    def _bulk_pause_left(self) -> float | None:
        """Seconds the bulk lane still waits out a Retry-After, or None if it does not."""
        if self._bulk_resume_at is None:
            return None
        left = self._bulk_resume_at - self._clock.monotonic()
        if left <= 0:
            self._bulk_resume_at = None
            return None
        return left

    async def _next_batch(self) -> list[Pending]:
        """The next request's envelopes: the control lane's if any wait, else the bulk
        lane's (one lane per request; see the module's docstring)."""
        for lane in LANES:
            if lane == BULK and self._bulk_pause_left() is not None:
                continue  # waiting out the peer's Retry-After for bulk
            batch = _through_key_change(await self._next_envelopes(self.lanes[lane]))
            if batch:
                return batch
        return []

    async def _next_envelopes(self, state: LaneState) -> list[Pending]:
        """The next envelopes to send, re-sealing those :meth:`needs_reseal` names.

        A call signal with a delivery deadline is decided inside a writer transaction,
        against the deadline as stored now and the clock of that transaction: the copy
        in memory (or read a moment ago) may predate a wall-clock step that moved the
        stored deadline, and a budget computed from it would be wrong by the step."""
        after, lane = state.acked_upto, state.lane
        state.rewound = False  # from here on, receipts move it forward again
        batch = self._from_memory(state)
        if batch is None:
            batch = await self._db.read(lambda conn: outbox.pending(
                conn, self.link.party, self._batch_size, self._batch_bytes, after, lane))
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

        state.fresh = deque(renewed(p) for p in state.fresh)
        return [renewed(p) for p in batch]

    async def _push(self, batch: list[Pending]) -> bool:
        """Send one batch; True if every envelope in it now has a verified receipt."""
        if self._finishing:
            return True  # ending: nothing new goes on the line
        self.health.in_flight = len(batch)
        self._idle.clear()
        try:
            answer = None
            endpoints = list(self.link.endpoints)
            for endpoint in self._order(endpoints) if self._order else endpoints:
                try:
                    sent_at, sent_mono = self._clock.now_ms(), self._clock.monotonic()
                    answer = await self._transport.post_batch(
                        endpoint, [p.envelope for p in batch], batch[0].lane)
                    rtt_ms = (self._clock.monotonic() - sent_mono) * 1000
                    self.health.endpoint = endpoint
                    break
                except TransportError as exc:
                    self._failed(f"unreachable: {exc}")
            if answer is None:
                return False
            self.health.unreachable_since = self.health.unreachable_since_mono = None
            if answer.status == 429 and not answer.results:
                return self._throttled(answer.retry_after_s, progressed=False)
            await self._note_protocol(answer.protocol)
            await self._note_gap(answer.waiting_for.get(self.me))
            await self._note_bulk_gap(answer.waiting_for_bulk.get(self.me))
            delivered, error = self._check_results(batch, answer.results)
            if delivered:
                fresh = [peer_at for *_, peer_at in delivered if peer_at is not None]
                if fresh:
                    self._measure_offset(fresh[-1], sent_at, rtt_ms)
                state = self.lanes[batch[0].lane]
                if not state.rewound:
                    state.acked_upto = max(state.acked_upto, batch[len(delivered) - 1].seq)
                self._measure_latency(delivered)
                self._store_receipts(state, batch[0].seq, delivered)
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
            self._idle.set()

    async def _note_protocol(self, version: int | None) -> None:
        """The peer's answer says which protocol it speaks: store a change (lanes are
        used towards it from the next envelope committed on)."""
        if version is None or version == self.link.protocol:
            return
        log.info("%s speaks federation protocol %d (was %d)", self.link.party, version,
                 self.link.protocol)
        self.link = replace(self.link, protocol=version)
        if version >= PROTOCOL and self._bulk_backoff.failures:
            # back from a downgrade: the bulk lane need not wait any longer
            self._bulk_resume_at = None
            self._bulk_backoff.reset()
        if self._on_protocol is not None:
            await self._on_protocol(self.link.party, version)

    async def _note_bulk_gap(self, seq: int | None) -> None:
        """The gap report of the bulk lane (see :meth:`_note_gap`)."""
        h = self.health
        if seq is None:
            h.peer_waiting_bulk = None
            return
        since = h.peer_waiting_bulk[1] if h.peer_waiting_bulk is not None \
            and h.peer_waiting_bulk[0] == seq else self._clock.monotonic()
        if h.peer_waiting_bulk is None or h.peer_waiting_bulk[0] != seq:
            log.warning("%s waits on our bulk seq %d", self.link.party, seq)
        party = self.link.party
        held = await self._db.read(
            lambda conn: outbox.holds_undelivered(conn, party, seq, BULK))
        h.peer_waiting_bulk = (seq, since, not held)

    async def _note_gap(self, seq: int | None) -> None:
        """Keep what the peer's gap report says (see :class:`PeerHealth`)."""
        h = self.health
        if seq is None:
            h.peer_waiting_for = h.peer_waiting_since_mono = None
            h.peer_waiting_unsendable = False
            return
        if seq != h.peer_waiting_for:
            h.peer_waiting_for, h.peer_waiting_since_mono = seq, self._clock.monotonic()
            log.warning("%s waits on our seq %d", self.link.party, seq)
        party = self.link.party
        h.peer_waiting_unsendable = not await self._db.read(
            lambda conn: outbox.holds_undelivered(conn, party, seq, CONTROL))

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

    def _measure_latency(self, delivered: list[tuple[str, bytes, int, int | None]]) -> None:
        if self._on_delivered is None:
            return
        now = self._clock.monotonic()
        for envelope_id, *_ in delivered:
            offered = self._offered_at.pop(envelope_id, None)
            if offered is not None:
                self._on_delivered(self.link.party, now - offered)

    def _store_receipts(self, state: LaneState, first_seq: int,
                        delivered: list[tuple[str, bytes, int, int | None]]) -> None:
        """Store the receipts while the next batch goes out. A write that fails (the
        database locked past its busy timeout) is logged and the lane goes back before
        the batch: the outbox, which still holds those envelopes as undelivered, is read
        again and they are sent again; the peer answers with their receipts (as
        duplicates), stored then. Before, the failure went unlogged and the envelopes
        stayed queued in the outbox until the node restarted."""
        rows = [(envelope_id, raw, at) for envelope_id, raw, at, _peer_at in delivered]
        task = asyncio.create_task(
            self._db.write(lambda conn: outbox.mark_delivered(conn, rows),
                           bulk=len(rows) if state.lane == BULK else 0))
        self._marking.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._marking.discard(task)
            if task.cancelled() or task.exception() is None:
                return
            error = task.exception()
            log.error("delivery to %s: the receipts of seq %d-%d (%s lane) could not be "
                      "stored: %s: %s; they are sent again", self.link.party, first_seq,
                      first_seq + len(rows) - 1, state.lane, type(error).__name__, error)
            state.acked_upto = min(state.acked_upto, first_seq - 1)
            state.fresh.clear()  # caught up from the outbox
            state.rewound = True
            self._wake.set()
        task.add_done_callback(done)

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
                                    type_=pending.type, payload=json.loads(pending.payload),
                                    lane=pending.lane)
            signer, refusal = self._receipt_signer(receipt)
            if refusal is not None:
                security_log.warning("refused a receipt from %s for seq %d: %s: %s",
                                     self.link.party, pending.seq, refusal.error_id,
                                     refusal.message)
                return delivered, f"bad receipt from {self.link.party}: {refusal}"
            try:
                checked = verify_receipt(receipt.encode(), signer=signer,
                                         signer_party=self.link.party,
                                         envelope_id=pending.envelope_id, sender=self.me,
                                         seq=pending.seq, digest=digest)
            except HotlineError as exc:
                # a refusal of the peer's input: one security-log line, as every refusal
                security_log.warning("refused a receipt from %s for %s seq %d: %s",
                                     self.link.party, pending.lane, pending.seq, exc)
                return delivered, f"bad receipt from {self.link.party}: {exc}"
            # A duplicate's receipt is the original, signed when the peer first stored
            # the envelope: its time says nothing about the peer's clock now.
            duplicate = isinstance(result, dict) and result.get("duplicate") is True
            delivered.append((pending.envelope_id, checked.raw, now,
                              None if duplicate else checked.at))
        return delivered, None

    def _receipt_signer(self, receipt: str) -> tuple[PublicKeys, HotlineError | None]:
        """The peer's key a receipt names, and why it may not sign it (key history),
        or the link's current key when the receipt names no other known one."""
        current = self.link.keys
        if self._keys is None:
            return current, None
        try:
            obj = json.loads(receipt)
            kid, at = obj.get("kid"), obj.get("at")
        except (ValueError, AttributeError):
            return current, None
        if not isinstance(kid, str) or type(at) is not int:
            return current, None
        known = self._keys.keys_by_id(self.link.party) or {}
        signer = known.get(kid)
        if signer is None:
            return current, None
        return signer, self._keys.refusal(self.link.party, kid, at)

    def _failed(self, message: str, *, reachable: bool = False) -> None:
        now = self._clock.now_ms()
        if self.health.last_error != message:
            log.warning("delivery to %s: %s", self.link.party, message)
        self.health.last_error, self.health.last_error_at = message, now
        if not reachable and self.health.unreachable_since is None:
            self.health.unreachable_since = now
            self.health.unreachable_since_mono = self._clock.monotonic()
        if self.health.failing_since_mono is None:
            self.health.failing_since_mono = self._clock.monotonic()
