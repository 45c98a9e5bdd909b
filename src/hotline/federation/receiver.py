"""The receiving side of a link: verify -> persist -> release -> receipt.

Every envelope in a batch is verified (signature, recipient, time window, decryption)
before anything is written. The stateful checks (replay, sequence reuse, reorder window)
and the inserts then run in one transaction; receipts are signed only after that commit
has returned, so a receipt always means "durably stored". Receipts are deterministic
(Ed25519 over the stored row), so a retransmitted message gets its original receipt back,
whether it comes as the same bytes or re-sealed by a sender whose envelope grew stale.

A rejected envelope is never half-applied: nothing of it is stored, except that two
different envelopes validly signed for the same sequence number are kept as evidence of
equivocation (``hotline.store.evidence``: once per distinct pair, a re-send counted). A
request with rejected envelopes leaves one line on the ``hotline.security`` logger: the
first rejection in full and the others counted by reason (a batch of 256 replays is one
line, not 256: logging must not be what a flood amplifies).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from hotline.clock import Clock
from hotline.effects import Effects
from hotline.errors import (
    KEY_REVOKED,
    LINK_GENERATION,
    REPLAYED_ID,
    SEQUENCE_REUSED,
    SEQUENCE_TOO_FAR_AHEAD,
    EnvelopeRejected,
    rejected,
)
from hotline.federation.admission import (
    Admission,
    BatchAdmission,
    RateLimited,
    claimed,
)
from hotline.peers import PeerDirectory
from hotline.protocol import canonical
from hotline.protocol.envelope import Envelope, Header, open_envelope
from hotline.protocol.generation import REMOVED_TYPE, generation_of
from hotline.protocol.keys import PartyKeys
from hotline.protocol.lanes import BULK, LANES, PROTOCOL, Lane
from hotline.protocol.receipt import envelope_digest, make_receipt, message_digest
from hotline.protocol.subject import payload_subject
from hotline.store import evidence as evidence_store
from hotline.store import inbound
from hotline.store import links as link_store
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.inbound import Released
from hotline.store.log import Record
from hotline.store.outbox import lane_field

security_log = logging.getLogger("hotline.security")
#: envelopes opened between two yields to the event loop
OPEN_SLICE = 16


def _same_message(peer: str, head: Header, stored: str, payload: dict[str, Any]) -> bool:
    """Whether a re-sealed envelope carries the stored message: equal but for the fields
    of one transmission (``TRANSMISSION_FIELDS``), which a re-seal renews."""
    def digest(p: dict[str, Any]) -> str:
        return message_digest(envelope_id=head.id, sender=peer, recipient=head.recipient,
                              seq=head.seq, type_=head.type, payload=p, lane=head.lane)
    return digest(json.loads(stored)) == digest(payload)


def _placeholder(stored: inbound.Stored, head: Header) -> bool:
    """A ``seq.lost`` row a repair made (no envelope bytes) for this very envelope: same
    id, and the same number *of the same lane* (each lane numbers from 1, so the number
    alone does not name the row)."""
    return (stored.type == inbound.LOST_TYPE and not stored.envelope
            and stored.seq == head.seq and stored.lane == head.lane
            and head.type != inbound.LOST_TYPE)


def _received(peer: str, env: Envelope, now: int) -> Record:
    head = env.header
    subject = _subject(env.payload)
    return Record("received", lane_field({
        "peer": peer, "id": head.id, "seq": head.seq, "type": head.type, "subject": subject,
        "digest": message_digest(envelope_id=head.id, sender=peer, recipient=head.recipient,
                                 seq=head.seq, type_=head.type, payload=env.payload,
                                 lane=head.lane)}, head.lane),
        now, subject)


def _subject(payload: dict[str, Any]) -> str | None:
    """The call, conversation, notice or incident an envelope concerns, for the log's
    index."""
    named = payload_subject(payload)
    return None if named is None else named[1]


def _over_budget(retry_after_s: int) -> RateLimited:
    return RateLimited("over this sender's budget; nothing of it was stored",
                       retry_after_s)


def _other_generation(peer: str, seq: int, next_seq: int) -> EnvelopeRejected:
    """An envelope of another generation of the link (docs/protocol.md, "Removing a
    link"): an earlier one is stale; a later one means the peer removed the link and
    accepted it again, and this side has not removed it yet."""
    theirs, ours = generation_of(seq), generation_of(next_seq)
    why = ("it is of a generation that ended with a link removal" if theirs < ours else
           f"{peer} removed the link and accepted it again; remove it here too "
           "(`hotline link remove`) and accept its new offer")
    return rejected(LINK_GENERATION, f"seq {seq} is of generation {theirs} of the link "
                                     f"with {peer}, which is in generation {ours} here: {why}")


@dataclass(frozen=True)
class Outcome:
    """Per envelope: a receipt (new or duplicate) or a rejection."""

    receipt: bytes | None = None
    duplicate: bool = False
    error: EnvelopeRejected | None = None

    def as_dict(self) -> dict[str, object]:
        if isinstance(self.error, RateLimited):
            return self.error.as_result()
        if self.error is not None:
            return {**self.error.to_dict()}
        assert self.receipt is not None
        return {"receipt": self.receipt.decode(), "duplicate": self.duplicate}


@dataclass(frozen=True)
class _Stored:
    envelope: Envelope
    received_at: int
    duplicate: bool


class Receiver:
    def __init__(self, *, me: str, keys: PartyKeys, peers: PeerDirectory, db: Database,
                 clock: Clock, skew_ms: int, max_envelope_bytes: int, reorder_window: int,
                 on_released: Callable[[list[Released]], None],
                 dispatch: Callable[[Connection, list[Released], int], Effects] | None = None,
                 on_effects: Callable[[Effects], None] | None = None,
                 admission: Admission | None = None,
                 on_removed: Callable[[Connection, Envelope, int], Effects] | None = None,
                 on_rejected: Callable[[str, int], None] | None = None,
                 protocol: int = PROTOCOL) -> None:
        """``on_removed``: takes a peer's ``link.removed`` notice once it is stored (in
        the same transaction, after what came before it on the line was released).
        ``on_rejected``: (error id, count) for what a request had refused — per
        envelope, or the whole request refused before its envelopes were parsed.
        ``protocol``: what this node speaks (1: as before lanes, a bulk-lane envelope is
        malformed)."""
        self._on_rejected = on_rejected
        self.protocol = protocol
        self._me = me
        self._keys = keys
        self._peers = peers
        self._db = db
        self._clock = clock
        self._skew_ms = skew_ms
        self._max_bytes = max_envelope_bytes
        self._window = reorder_window
        self._on_released = on_released
        self._dispatch = dispatch
        self._on_effects = on_effects
        self._admission = admission
        self._on_removed = on_removed
        #: per (peer, lane), the seq this node waits on while envelopes after it are held
        #: back: kept as batches are stored (and at start-up), so the gap alarm reads no
        #: table
        self.gaps: dict[tuple[str, Lane], int] = {}

    async def accept(self, raws: list[bytes], source: str) -> list[Outcome]:
        return (await self.accept_batch(raws, source))[0]

    async def accept_batch(self, raws: list[bytes], source: str
                           ) -> tuple[list[Outcome], dict[tuple[str, Lane], int]]:
        """The outcome of each envelope, and the gap report: for each sender and lane in
        the batch whose envelopes are held back behind a missing one, the sequence number
        this node waits on (docs/protocol.md, "Gap report")."""
        waiting: dict[tuple[str, Lane], int] = {}
        outcomes: list[Outcome | None] = [None] * len(raws)
        opened: list[tuple[int, Envelope]] = []
        #: key refusals that stand unless the envelope is a copy of one stored (``_open``)
        deferred: dict[str, EnvelopeRejected] = {}
        rejections: list[tuple[EnvelopeRejected, bytes]] = []
        batch = self._admission.batch() if self._admission is not None else None
        over: dict[int, Outcome] = {}  # one shared answer per Retry-After value
        for index, raw in enumerate(raws):
            if index and index % OPEN_SLICE == 0:
                # opening is CPU work on the event loop: let a call's request, arriving
                # meanwhile, be read and opened between slices of a large bulk batch
                await asyncio.sleep(0)
            claim = claimed(raw) if batch is not None else None
            if batch is not None and claim is not None and \
                    (wait := batch.precheck(claim[0], claim[1], len(raw), claim[2])) \
                    is not None:
                outcomes[index] = over.get(wait) or over.setdefault(
                    wait, Outcome(error=_over_budget(wait)))
                continue
            try:
                env, refusal = await self._open(raw)
                opened.append((index, env))
                if refusal is not None:
                    deferred[env.header.id] = refusal
            except EnvelopeRejected as exc:
                outcomes[index] = Outcome(error=exc)
                rejections.append((exc, raw))
        limited = ""
        if batch is not None:
            opened, limited = self._admit(batch, opened, outcomes)
        try:
            await self._store(raws, opened, outcomes, rejections, deferred, waiting)
        finally:
            self._log_request(source, len(raws), limited, rejections)
        final = [o if o is not None else Outcome(error=rejected("internal", "not processed"))
                 for o in outcomes]
        if self._on_rejected is not None:
            for error_id, n in Counter(o.error.error_id for o in final
                                       if o.error is not None).items():
                self._on_rejected(error_id, n)
        return final, waiting

    async def _store(self, raws: list[bytes], opened: list[tuple[int, Envelope]],
                     outcomes: list[Outcome | None],
                     rejections: list[tuple[EnvelopeRejected, bytes]],
                     deferred: dict[str, EnvelopeRejected],
                     waiting: dict[tuple[str, Lane], int]) -> None:
        """Persist the admitted envelopes; their outcomes go into ``outcomes``, and
        refusals of the stateful checks into ``rejections`` too; ``waiting`` gets the gap
        of each sender."""
        if opened:
            stored, released, effects, gaps = await self._db.write(
                lambda conn: self._persist(conn, opened, deferred),
                bulk=sum(1 for _, env in opened if env.header.lane == BULK))
            for key, seq in gaps.items():
                if seq is None:
                    self.gaps.pop(key, None)
                else:
                    self.gaps[key] = waiting[key] = seq
            for index, result in stored.items():
                if isinstance(result, EnvelopeRejected):
                    outcomes[index] = Outcome(error=result)
                    rejections.append((result, raws[index]))
                else:
                    outcomes[index] = Outcome(receipt=self._receipt(result),
                                              duplicate=result.duplicate)
            if effects.links:
                # a peer's key changed: the next envelope must be judged by the new history
                await self._peers.reload()
            if released:
                self._on_released(released)
            if effects and self._on_effects is not None:
                self._on_effects(effects)

    async def release_held(self, peers: list[str]) -> int:
        """Release, and apply, what is stored in sequence but not yet released — after a
        repair put a ``seq.lost`` row where a lost one was, the envelopes held behind it
        would otherwise wait for the peer's next batch, which may never come (it holds
        receipts for them all). Run at start-up; returns how many were released."""
        def work(conn: Connection
                 ) -> tuple[list[Released], Effects, dict[tuple[str, Lane], int]]:
            now = self._clock.now_ms()
            released = [r for peer in peers for r in inbound.release(conn, peer, now)]
            effects = Effects()
            if released and self._dispatch is not None:
                effects = self._dispatch(conn, released, now)
            return released, effects, inbound.gaps(conn)
        released, effects, gaps = await self._db.write(work)
        self.gaps = gaps
        if released:
            self._on_released(released)
        if effects and self._on_effects is not None:
            self._on_effects(effects)
        return len(released)

    def _admit(self, batch: BatchAdmission, opened: list[tuple[int, Envelope]],
               outcomes: list[Outcome | None]) -> tuple[list[tuple[int, Envelope]], str]:
        """The verified envelopes that fit their sender's budget, and a summary of what
        this batch had refused for being over a budget ("" if nothing); the refused get
        ``rate-limited`` in ``outcomes``."""
        admitted: list[tuple[int, Envelope]] = []
        for index, env in opened:
            wait = batch.admit(env.header.sender, env.header.type, len(env.raw),
                               env.header.lane)
            if wait is None:
                admitted.append((index, env))
            else:
                outcomes[index] = Outcome(error=_over_budget(wait))
        return admitted, "; ".join(
            f"{r.envelopes} envelope(s), {r.nbytes} bytes of {r.sender} "
            f"({'+'.join(r.lanes)}) refused, retry after {r.retry_after_s} s"
            for r in batch.refusals())

    def _log_request(self, source: str, total: int, limited: str,
                     rejections: list[tuple[EnvelopeRejected, bytes]]) -> None:
        """The request's one security-log line, if anything in it was refused: over a
        budget (``limited``, through the admission's rate-limited log, which says how
        many such lines a flood had suppressed) and/or rejected (``rejections``: the
        first in full, the others counted by reason)."""
        rejected_text = ""
        if rejections:
            exc, raw = rejections[0]
            first = (f"{exc.error_id}: {exc.message} (sha256 {envelope_digest(raw)}, "
                     f"{len(raw)} bytes)")
            if len(rejections) == 1:
                rejected_text = first
            else:
                counts = Counter(e.error_id for e, _ in rejections)
                rejected_text = (f"{len(rejections)} of {total} envelope(s): "
                                 + ", ".join(f"{reason} x{n}" for reason, n in
                                             sorted(counts.items()))
                                 + f"; the first: {first}")
        if limited:
            assert self._admission is not None
            also = f"; also rejected envelope(s): {rejected_text}" if rejected_text else ""
            self._admission.log.warning("rate-limited request from %s: %s%s", source,
                                        limited, also)
        elif rejected_text:
            security_log.warning("rejected envelope from %s: %s", source, rejected_text)

    async def _open(self, raw: bytes) -> tuple[Envelope, EnvelopeRejected | None]:
        def open_now() -> Envelope:
            return open_envelope(raw, me=self._me, my_keys=self._keys,
                                 sender_keys=self._peers.keys_by_id,
                                 now_ms=self._clock.now_ms(), skew_ms=self._skew_ms,
                                 max_bytes=self._max_bytes, lanes=self.protocol >= PROTOCOL)
        try:
            env = open_now()
        except EnvelopeRejected as exc:
            if exc.error_id not in ("unknown-sender", "unknown-key"):
                raise
            await self._peers.maybe_reload()  # a link may have been accepted since
            env = open_now()
        # the key verified the signature; whether it may still sign is the key history's
        # question. A revoked key is refused here; a rotated-out one (past its grace, or
        # back-dated) only once the envelope proves not to be a copy of one already
        # stored: a re-sent copy earns its receipt and stores nothing (exactly once).
        refusal = self._peers.refusal(env.header.sender, env.header.kid, env.header.ts)
        if refusal is not None and refusal.error_id == KEY_REVOKED:
            raise refusal
        return env, refusal

    def _persist(self, conn: Connection, opened: list[tuple[int, Envelope]],
                 deferred: dict[str, EnvelopeRejected] | None = None
                 ) -> tuple[dict[int, _Stored | EnvelopeRejected], list[Released], Effects,
                            dict[tuple[str, Lane], int | None]]:
        """The stateful checks and inserts of one batch: a handful of queries per sender,
        not per envelope, because this runs inside the node's single writer."""
        now = self._clock.now_ms()
        results: dict[int, _Stored | EnvelopeRejected] = {}
        by_lane: dict[tuple[str, Lane], list[tuple[int, Envelope]]] = {}
        for index, env in opened:
            by_lane.setdefault((env.header.sender, env.header.lane), []).append((index, env))
        released: list[Released] = []
        gaps: dict[tuple[str, Lane], int | None] = {}
        for peer, lane in sorted(by_lane):
            items = by_lane[(peer, lane)]
            results.update(self._persist_from(conn, peer, lane, items, now, deferred or {}))
        for peer in sorted({peer for peer, _ in by_lane}):
            released.extend(inbound.release(conn, peer, now))
            held = inbound.gaps(conn, peer)
            for lane in LANES:
                gaps[(peer, lane)] = held.get((peer, lane))
        effects = Effects()
        if released and self._dispatch is not None:
            effects = self._dispatch(conn, released, now)  # what they cause, same commit
        for result in results.values():
            if isinstance(result, _Stored) and not result.duplicate and \
                    result.envelope.header.type == REMOVED_TYPE and \
                    self._on_removed is not None:
                effects.merge(self._on_removed(conn, result.envelope, now))
        return results, released, effects, gaps

    def _persist_from(self, conn: Connection, peer: str, lane: Lane,
                      items: list[tuple[int, Envelope]], now: int,
                      deferred: dict[str, EnvelopeRejected]
                      ) -> dict[int, _Stored | EnvelopeRejected]:
        """One sender's envelopes of one lane: the checks are against that lane's
        sequence (an envelope id is unique across the link's lanes)."""
        known_ids = inbound.by_ids(conn, peer, [env.header.id for _, env in items])
        known_seqs = inbound.by_seqs(conn, peer, [env.header.seq for _, env in items], lane)
        next_seq = link_store.recv_next(conn, peer, lane)
        rows: list[dict[str, object]] = []
        records: list[Record] = []
        results: dict[int, _Stored | EnvelopeRejected] = {}
        for index, env in items:
            head = env.header
            payload = canonical.encode(env.payload).decode()
            same_id = known_ids.get(head.id)
            same_seq = known_seqs.get(head.seq)
            if generation_of(head.seq) != generation_of(next_seq):
                results[index] = _other_generation(peer, head.seq, next_seq)
            elif same_id is not None and _placeholder(same_id, head):
                # what a repair stood a ``seq.lost`` row for arrives after all (its receipt
                # was lost on the way back): it takes the row if not yet released
                if head.seq >= next_seq:
                    inbound.fill_placeholder(conn, peer, head.seq, head.type, payload, env.raw,
                                             head.ts, lane)
                    records.append(_received(peer, env, now))
                results[index] = _Stored(env, now, duplicate=False)
            elif same_id is not None:
                if (same_id.seq, same_id.type) == (head.seq, head.type) and \
                        same_id.lane == lane and (
                        same_id.payload == payload or _same_message(peer, head, same_id.payload,
                                                                    env.payload)):
                    results[index] = _Stored(env, same_id.received_at, duplicate=True)
                else:
                    results[index] = rejected(REPLAYED_ID, f"envelope id {head.id} was already "
                                                           f"used by {peer} for another message")
            elif head.id in deferred:
                results[index] = deferred[head.id]
            elif same_seq is not None:
                evidence_store.record(conn, peer=peer, kind="equivocation", now_ms=now,
                                      statement=env.raw, other=same_seq.envelope,
                                      detail=f"seq {head.seq} signed twice: "
                                             f"{same_seq.envelope_id} and {head.id}")
                results[index] = rejected(SEQUENCE_REUSED, f"{peer} already used seq {head.seq} "
                                                           f"for envelope {same_seq.envelope_id}; "
                                                           "both kept as evidence")
            elif head.seq < next_seq:
                results[index] = rejected(SEQUENCE_REUSED, f"seq {head.seq} is already released "
                                                           f"(next expected {next_seq})")
            elif head.seq >= next_seq + self._window:
                results[index] = rejected(SEQUENCE_TOO_FAR_AHEAD,
                                          f"seq {head.seq} is beyond the reorder window: next "
                                          f"expected is {next_seq}, window {self._window}")
            else:
                rows.append({"peer": peer, "envelope_id": head.id, "seq": head.seq,
                             "type": head.type, "payload": payload, "envelope": env.raw,
                             "sent_at": head.ts, "received_at": now, "lane": lane,
                             "after_seq": head.after})
                records.append(_received(peer, env, now))
                stored = inbound.Stored(head.id, head.seq, head.type, payload, env.raw, now,
                                        lane)
                known_ids[head.id] = known_seqs[head.seq] = stored
                results[index] = _Stored(env, now, duplicate=False)
        inbound.add_many(conn, rows)
        log_store.append(conn, records)
        return results

    def _receipt(self, stored: _Stored) -> bytes:
        head = stored.envelope.header
        digest = message_digest(envelope_id=head.id, sender=head.sender,
                                recipient=head.recipient, seq=head.seq, type_=head.type,
                                payload=stored.envelope.payload, lane=head.lane)
        return make_receipt(envelope_id=head.id, signer=self._me, sender=head.sender,
                            seq=head.seq, digest=digest, at_ms=stored.received_at,
                            keys=self._keys)

    def log_rejected_request(self, exc: EnvelopeRejected, source: str) -> None:
        """A whole request refused before any envelope was parsed (size, framing)."""
        security_log.warning("rejected request from %s: %s: %s", source, exc.error_id,
                             exc.message)
        if self._on_rejected is not None:
            self._on_rejected(exc.error_id, 1)

