"""Property tests of the receiving state machine (verify -> persist -> release -> receipt).

In-process, but on a real SQLite file migrated with Alembic and written through the real
group-committing writer thread of :class:`Database`: every Hypothesis example gets a fresh
database in its own temporary directory and its own event loop (``asyncio.run``), and
tears both down again.

The properties (docs/protocol.md §4.3, §7, §8, §11):

1. Any delivery schedule (every envelope at least once, any order, duplicates, re-sealed
   copies, batches of 1..8, some batches concurrent) releases exactly seq 1..n once each,
   in order, with the right payloads; every envelope earns a receipt, always the same bytes
   for one message, and exactly one delivery per message is "not a duplicate".
2. ``on_released`` sees strictly increasing release numbers, each sender's messages in seq
   order, each once, and the union is everything that was sent.
3. A different message signed for a used seq is refused ``sequence-reused``, kept as
   evidence, and changes nothing that is released.
4. The reorder window: ``seq >= recv_next + window`` is refused ``sequence-too-far-ahead``
   and nothing of it is stored; once the gap fills the same bytes are accepted.
5. After a link removal, only the link's new generation is taken (``link-generation``).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, event, func, select

from hotline.errors import LINK_GENERATION, REPLAYED_ID, SEQUENCE_REUSED, SEQUENCE_TOO_FAR_AHEAD
from hotline.federation.receiver import Outcome, Receiver
from hotline.peers import PeerDirectory
from hotline.protocol.envelope import Header, new_envelope_id, seal
from hotline.protocol.generation import GENERATION_BITS, first_seq
from hotline.protocol.keys import PartyKeys
from hotline.protocol.offer import make_offer, parse_offer
from hotline.protocol.receipt import message_digest, verify_receipt
from hotline.store import inbound as inbound_store
from hotline.store import links as link_store
from hotline.store.database import Database
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.inbound import Released
from hotline.store.migrate import upgrade
from hotline.store.schema import evidence, inbound

ME = "RU-GS"
ME_KEYS = PartyKeys.generate()
PARTIES = ("US-JS", "FR-LB")
PARTY_KEYS = {party: PartyKeys.generate() for party in PARTIES}
START_MS = 1_700_000_000_000
SKEW_MS = 300_000
MAX_BYTES = 1024 * 1024
BIG_WINDOW = 1024

# How long a test waits for the writer thread before it fails (never hangs).
DEADLINE = 10.0

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


class FakeClock:
    """Every reading of the wall clock advances it by one millisecond, so two batches never
    share a ``received_at``: a receipt that were not tied to the stored row would change."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms
        self._mono = 1000.0

    def now_ms(self) -> int:
        self._now += 1
        return self._now

    def monotonic(self) -> float:
        self._mono += 0.25
        return self._mono


@dataclass
class Sender:
    """One remote party whose keys the test holds: it seals its own envelopes."""

    party: str
    keys: PartyKeys
    clock: FakeClock
    ids: dict[int, str] = field(default_factory=dict)
    copies: dict[tuple[int, int], bytes] = field(default_factory=dict)

    def text(self, seq: int) -> str:
        return f"{self.party} says message number {seq}"

    def envelope_id(self, seq: int) -> str:
        return self.ids.setdefault(seq, new_envelope_id())

    def seal(self, seq: int, *, text: str | None = None, envelope_id: str | None = None,
             ts: int | None = None) -> bytes:
        header = Header(id=envelope_id or self.envelope_id(seq), sender=self.party,
                        recipient=ME, kid=self.keys.public.key_id, seq=seq,
                        ts=self.clock.now_ms() if ts is None else ts, type="message")
        payload = {"text": self.text(seq) if text is None else text}
        return seal(header, payload, self.keys, ME_KEYS.public)

    def copy(self, seq: int, kind: int) -> bytes:
        """Copy ``kind`` of message ``seq``: 0 is the original sealing; 1, 2, ... are
        re-sealings (same id, seq, type and payload; later ts, fresh encryption). Each copy
        is sealed once, so delivering a copy twice sends identical bytes."""
        key = (seq, kind)
        if key not in self.copies:
            self.copies[key] = self.seal(seq)
        return self.copies[key]

    def check_receipt(self, seq: int, receipt: bytes) -> None:
        digest = message_digest(envelope_id=self.envelope_id(seq), sender=self.party,
                                recipient=ME, seq=seq, type_="message",
                                payload={"text": self.text(seq)})
        verify_receipt(receipt, signer=ME_KEYS.public, signer_party=ME,
                       envelope_id=self.envelope_id(seq), sender=self.party, seq=seq,
                       digest=digest)


class Harness:
    """A receiving node's database, peer directory and receiver on a fresh SQLite file."""

    def __init__(self, parties: tuple[str, ...], window: int) -> None:
        self.parties = parties
        self.window = window
        self.clock = FakeClock(START_MS)
        self.senders = {p: Sender(p, PARTY_KEYS[p], self.clock) for p in parties}
        self.callbacks: list[list[Released]] = []
        self.fatal: list[BaseException] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="hotline-props-")
        self.engine = create_engine(sqlite_url(Path(self._tmp.name) / "node.db"))
        self.commits: list[int] = []
        event.listen(self.engine, "commit", lambda _conn: self.commits.append(1))
        self.db = Database(self.engine, self.fatal.append)
        self.peers = PeerDirectory(self.db, self.clock)
        self.receiver = Receiver(me=ME, keys=ME_KEYS, peers=self.peers, db=self.db,
                                 clock=self.clock, skew_ms=SKEW_MS, max_envelope_bytes=MAX_BYTES,
                                 reorder_window=window, on_released=self._released)

    def _released(self, released: list[Released]) -> None:
        self.callbacks.append(list(released))

    async def __aenter__(self) -> Harness:
        try:
            upgrade(self.engine)
            self.db.start()
            for party in self.parties:
                raw = make_offer(party=party, name=f"{party} hotline", keys=PARTY_KEYS[party],
                                 endpoints=["http://127.0.0.1:7100"], at_ms=START_MS)
                offer = parse_offer(raw)

                def accept(conn: Connection, offer: Any = offer) -> bool:
                    return link_store.accept_offer(conn, offer, ME, START_MS)

                assert await self.db.write(accept) is True
            await self.peers.reload()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()
        assert not self.fatal, self.fatal

    async def close(self) -> None:
        try:
            await self.db.stop()  # also disposes the engine
        finally:
            self._tmp.cleanup()

    async def accept(self, raws: list[bytes]) -> list[Outcome]:
        outcomes = await self.receiver.accept(raws, "127.0.0.1")
        assert len(outcomes) == len(raws)
        return outcomes

    async def accept_together(self, batches: list[list[bytes]]) -> list[list[Outcome]]:
        """Accept several batches concurrently, their writes in ONE transaction.

        The writer thread is held by a blocking work until every batch's write is queued,
        so it takes them as one group commit, as concurrent requests can be."""
        if len(batches) == 1:
            return [await self.accept(batches[0])]
        entered, release = threading.Event(), threading.Event()

        def hold(conn: Connection) -> None:
            entered.set()
            if not release.wait(DEADLINE):
                raise TimeoutError("the writer was never released")

        holder = asyncio.create_task(self.db.write(hold))
        try:
            assert await asyncio.to_thread(entered.wait, DEADLINE), "the writer is stuck"
            commits_before = len(self.commits)

            async def release_writer() -> None:
                # gather starts its tasks in order, and each accept() queues its write
                # before it first waits, so every batch is queued once this runs.
                release.set()

            accepting = asyncio.gather(*(self.accept(b) for b in batches))
            results, _ = await asyncio.gather(accepting, release_writer())
        finally:
            release.set()
        await holder
        # The holder's commit and at most one more: the batches shared a transaction.
        assert len(self.commits) - commits_before <= 2, "the batches were not grouped"
        return results

    async def released(self) -> list[Released]:
        return await self.db.read(lambda conn: inbound_store.released_after(conn, 0, 1000))

    async def inbound_rows(self) -> list[Any]:
        return await self.db.read(
            lambda conn: list(conn.execute(select(inbound).order_by(inbound.c.id)).all()))

    async def evidence_rows(self) -> list[Any]:
        return await self.db.read(
            lambda conn: list(conn.execute(select(evidence).order_by(evidence.c.id)).all()))

    async def recv_next(self, party: str) -> int:
        return await self.db.read(lambda conn: link_store.recv_next(conn, party))

    async def gaps(self) -> dict[Any, int]:
        return await self.db.read(inbound_store.gaps)

    async def count_inbound(self) -> int:
        return await self.db.read(
            lambda conn: int(conn.execute(select(func.count()).select_from(inbound))
                             .scalar_one()))


def receipt_of(outcome: Outcome) -> bytes:
    assert outcome.error is None, f"unexpected rejection {outcome.error}"
    assert outcome.receipt is not None
    return outcome.receipt


def expect_receipt(outcome: Outcome, *, duplicate: bool) -> bytes:
    receipt = receipt_of(outcome)
    assert outcome.duplicate is duplicate
    return receipt


def expect_error(outcome: Outcome, error_id: str) -> None:
    assert outcome.receipt is None
    assert outcome.error is not None, f"expected {error_id}, got a receipt"
    assert outcome.error.error_id == error_id, outcome.error


def assert_released_exactly(released: list[Released], sender: Sender, n: int) -> None:
    """The peer's released messages are seq 1..n, once each, in order, with their text."""
    mine = [r for r in released if r.peer == sender.party]
    assert [r.seq for r in mine] == list(range(1, n + 1))
    assert [r.envelope_id for r in mine] == [sender.envelope_id(s) for s in range(1, n + 1)]
    assert [json.loads(r.payload) for r in mine] == [{"text": sender.text(s)}
                                                     for s in range(1, n + 1)]
    assert all(r.type == "message" for r in mine)


# -- schedules ---------------------------------------------------------------------------

# One delivery: (sender index, seq, copy kind); copy kind 0 is the original sealing.
Delivery = tuple[int, int, int]
# Waves run one after another; the batches of one wave are accepted concurrently and
# their writes are committed together in one transaction (Harness.accept_together).
Schedule = list[list[list[Delivery]]]


@st.composite
def schedules(draw: st.DrawFn, senders: int, max_n: int = 30
              ) -> tuple[list[int], Schedule]:
    counts = [draw(st.integers(1, max_n), label=f"n{i}") for i in range(senders)]
    copy_kind = st.integers(0, 3)
    mandatory = [(i, seq, draw(copy_kind)) for i, n in enumerate(counts)
                 for seq in range(1, n + 1)]
    extra = draw(st.lists(
        st.integers(0, senders - 1).flatmap(
            lambda i: st.tuples(st.just(i), st.integers(1, counts[i]), copy_kind)),
        max_size=sum(counts) * 2))
    order = draw(st.permutations(mandatory + extra))
    waves: Schedule = []
    position = 0
    while position < len(order):
        size = draw(st.integers(1, 8))
        batch = order[position:position + size]
        position += size
        concurrent: bool = draw(st.booleans())
        if waves and concurrent:
            waves[-1].append(batch)  # accepted concurrently with the previous batch
        else:
            waves.append([batch])
    return counts, waves


async def run_schedule(h: Harness, waves: Schedule
                       ) -> dict[tuple[str, int], list[tuple[bytes, bool]]]:
    """Deliver ``waves``; return every (receipt, duplicate) per (party, seq)."""
    senders = [h.senders[p] for p in h.parties]
    answers: dict[tuple[str, int], list[tuple[bytes, bool]]] = defaultdict(list)
    for wave in waves:
        raws = [[senders[i].copy(seq, kind) for i, seq, kind in batch] for batch in wave]
        results = await h.accept_together(raws)
        for batch, outcomes in zip(wave, results, strict=True):
            for (i, seq, _), outcome in zip(batch, outcomes, strict=True):
                answers[(senders[i].party, seq)].append((receipt_of(outcome),
                                                         outcome.duplicate))
    return answers


def check_receipts(h: Harness, counts: list[int],
                   answers: dict[tuple[str, int], list[tuple[bytes, bool]]]) -> None:
    for party, n in zip(h.parties, counts, strict=True):
        sender = h.senders[party]
        for seq in range(1, n + 1):
            got = answers[(party, seq)]
            assert got, f"{party} seq {seq} was never answered"
            receipts = {receipt for receipt, _ in got}
            assert len(receipts) == 1, f"{party} seq {seq}: {len(receipts)} different receipts"
            sender.check_receipt(seq, receipts.pop())
            fresh = [dup for _, dup in got].count(False)
            assert fresh == 1, f"{party} seq {seq} stored {fresh} times (duplicate flags)"


# -- property 1 --------------------------------------------------------------------------

@SETTINGS
@given(schedules(senders=1))
def test_any_schedule_releases_each_message_once_in_order(
        plan: tuple[list[int], Schedule]) -> None:
    counts, waves = plan

    async def scenario() -> None:
        async with Harness(PARTIES[:1], window=BIG_WINDOW) as h:
            sender = h.senders[PARTIES[0]]
            answers = await run_schedule(h, waves)
            check_receipts(h, counts, answers)
            released = await h.released()
            assert_released_exactly(released, sender, counts[0])
            assert [r.release_no for r in released] == list(range(1, counts[0] + 1))
            assert await h.recv_next(sender.party) == counts[0] + 1
            assert await h.count_inbound() == counts[0]
            assert await h.evidence_rows() == []
            # Delivering every copy once more changes nothing and answers the same receipts.
            again = [[(0, seq, kind) for (seq, kind) in sorted(sender.copies)]]
            more = await run_schedule(h, [again])
            for key, got in more.items():
                assert got == [(answers[key][0][0], True)] * len(got)
            assert await h.released() == released

    asyncio.run(scenario())


# -- property 2 --------------------------------------------------------------------------

@SETTINGS
@given(schedules(senders=2, max_n=20))
def test_on_released_sees_each_message_once_in_release_and_seq_order(
        plan: tuple[list[int], Schedule]) -> None:
    counts, waves = plan

    async def scenario() -> None:
        async with Harness(PARTIES, window=BIG_WINDOW) as h:
            answers = await run_schedule(h, waves)
            check_receipts(h, counts, answers)
            assert all(h.callbacks), "on_released was called with an empty list"
            published = [r for call in h.callbacks for r in call]
            numbers = [r.release_no for r in published]
            assert numbers == sorted(set(numbers)), "release numbers not strictly increasing"
            seen = Counter((r.peer, r.envelope_id) for r in published)
            assert max(seen.values()) == 1, "an envelope was published twice"
            for party, n in zip(PARTIES, counts, strict=True):
                assert_released_exactly(published, h.senders[party], n)
            # What was published live is exactly what a client reading by cursor sees.
            assert published == await h.released()

    asyncio.run(scenario())


# -- property 3 --------------------------------------------------------------------------

@st.composite
def equivocations(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 12))
    delivered = draw(st.permutations(range(1, n + 1)).flatmap(
        lambda p: st.integers(1, len(p)).map(lambda k: list(p[:k]))))
    target = draw(st.sampled_from(sorted(delivered)))
    others = draw(st.lists(st.sampled_from(delivered), max_size=4))
    return {"n": n, "delivered": delivered, "target": target,
            "batch_size": draw(st.integers(1, 8)),
            "position": draw(st.integers(0, len(others))), "others": others,
            "repeats": draw(st.integers(1, 3)), "same_ts": draw(st.booleans())}


@SETTINGS
@given(equivocations())
def test_second_message_for_a_used_seq_is_refused_and_kept_as_evidence(
        case: dict[str, Any]) -> None:
    n, delivered, target = case["n"], case["delivered"], case["target"]

    async def scenario() -> None:
        async with Harness(PARTIES[:1], window=BIG_WINDOW) as h:
            sender = h.senders[PARTIES[0]]
            first: dict[int, bytes] = {}
            size = case["batch_size"]
            for start in range(0, len(delivered), size):
                chunk = delivered[start:start + size]
                outcomes = await h.accept([sender.copy(seq, 0) for seq in chunk])
                for seq, outcome in zip(chunk, outcomes, strict=True):
                    first[seq] = receipt_of(outcome)
            released_before = await h.released()
            rows_before = await h.inbound_rows()
            calls_before = len(h.callbacks)

            original = sender.copy(target, 0)
            ts = json.loads(original)["ts"] if case["same_ts"] else None
            liar = sender.seal(target, text="a different message for the same seq",
                               envelope_id=new_envelope_id(), ts=ts)
            for _ in range(case["repeats"]):
                batch = [sender.copy(seq, 0) for seq in case["others"]]
                batch.insert(case["position"], liar)
                outcomes = await h.accept(batch)
                expect_error(outcomes.pop(case["position"]), SEQUENCE_REUSED)
                for seq, outcome in zip(case["others"], outcomes, strict=True):
                    assert (receipt_of(outcome), outcome.duplicate) == (first[seq], True)

            assert await h.released() == released_before
            assert await h.inbound_rows() == rows_before
            assert len(h.callbacks) == calls_before
            kept = await h.evidence_rows()
            # one row for the pair, however often it was sent (no amplification)
            assert len(kept) == 1
            row = kept[0]
            assert (row.peer, row.kind) == (sender.party, "equivocation")
            assert int(row.count) == case["repeats"]
            assert int(row.at) <= int(row.last_at)
            assert bytes(row.envelope) == liar
            assert bytes(row.other_envelope) == original

            # The same id re-used for another text is a replay: refused, not evidence.
            replay = sender.seal(target, text="yet another text under the original id")
            [outcome] = await h.accept([replay])
            expect_error(outcome, REPLAYED_ID)
            assert len(await h.evidence_rows()) == 1

            # The line goes on: the rest arrives, the original keeps its receipt, the
            # equivocating text is never released.
            rest = [seq for seq in range(1, n + 1) if seq not in first]
            outcomes = await h.accept([sender.copy(seq, 0) for seq in rest] + [original])
            assert all(o.error is None for o in outcomes)
            assert (outcomes[-1].receipt, outcomes[-1].duplicate) == (first[target], True)
            assert_released_exactly(await h.released(), sender, n)
            published = [r.envelope_id for call in h.callbacks for r in call]
            assert sorted(published) == sorted(sender.ids[s] for s in range(1, n + 1))

    asyncio.run(scenario())


# -- property 4 --------------------------------------------------------------------------

@st.composite
def window_runs(draw: st.DrawFn) -> tuple[int, int, list[list[tuple[int, int]]]]:
    window = draw(st.integers(1, 5))
    top = draw(st.integers(1, 12)) + window
    delivery = st.tuples(st.integers(1, top), st.integers(0, 1))
    batches = draw(st.lists(st.lists(delivery, min_size=1, max_size=4), max_size=12))
    return window, top, batches


@SETTINGS
@given(window_runs())
def test_reorder_window_against_a_model(
        run: tuple[int, int, list[list[tuple[int, int]]]]) -> None:
    """A model of the receiver (stored set, recv_next, release at the end of each batch)
    predicts every answer; refused envelopes leave no trace and are accepted later."""
    window, top, batches = run

    async def scenario() -> None:
        async with Harness(PARTIES[:1], window=window) as h:
            sender = h.senders[PARTIES[0]]
            stored: set[int] = set()
            next_seq = 1
            refused: dict[tuple[int, int], bytes] = {}
            for batch in batches:
                outcomes = await h.accept([sender.copy(seq, kind) for seq, kind in batch])
                for (seq, kind), outcome in zip(batch, outcomes, strict=True):
                    if seq in stored:
                        expect_receipt(outcome, duplicate=True)
                    elif seq >= next_seq + window:
                        expect_error(outcome, SEQUENCE_TOO_FAR_AHEAD)
                        refused[(seq, kind)] = sender.copy(seq, kind)
                    else:
                        expect_receipt(outcome, duplicate=False)
                        stored.add(seq)
                while next_seq in stored:  # release happens once per batch, after it
                    next_seq += 1
                assert await h.recv_next(sender.party) == next_seq
                assert {r.seq for r in await h.inbound_rows()} == stored
                assert [r.seq for r in await h.released()] == list(range(1, next_seq))
                assert await h.evidence_rows() == []

            # Fill every gap in order; each refused envelope, the same bytes, now lands.
            for seq in range(1, top + 1):
                raws = [sender.copy(seq, 0)]
                raws += [raw for (s, _), raw in sorted(refused.items()) if s == seq]
                outcomes = await h.accept(raws)
                assert all(o.error is None for o in outcomes), outcomes
                assert [o.duplicate for o in outcomes].count(False) == (seq not in stored)
            assert_released_exactly(await h.released(), sender, top)

    asyncio.run(scenario())


@SETTINGS
@given(window=st.integers(1, 6), beyond=st.integers(0, 4), data=st.data())
def test_too_far_ahead_is_refused_until_the_gap_fills(window: int, beyond: int,
                                                      data: st.DataObject) -> None:
    ahead = window + 1 + beyond  # recv_next is 1: the first seq outside the window or later

    async def scenario() -> None:
        async with Harness(PARTIES[:1], window=window) as h:
            sender = h.senders[PARTIES[0]]
            far = sender.copy(ahead, 0)
            [outcome] = await h.accept([far])
            expect_error(outcome, SEQUENCE_TOO_FAR_AHEAD)
            assert await h.inbound_rows() == []
            assert await h.evidence_rows() == []
            assert await h.released() == []
            assert h.callbacks == []

            # Fill the gap up to the edge of the window, one window's worth at a time in
            # any order (each envelope is inside the window when it arrives).
            for low in range(1, ahead - window + 1, window):
                chunk = range(low, min(low + window, ahead - window + 1))
                for seq in data.draw(st.permutations(chunk), label=f"fill {low}"):
                    [outcome] = await h.accept([sender.copy(seq, 0)])
                    expect_receipt(outcome, duplicate=False)
            assert await h.recv_next(sender.party) == ahead - window + 1

            [outcome] = await h.accept([far])
            expect_receipt(outcome, duplicate=False)
            rest = list(range(ahead - window + 1, ahead))
            outcomes = await h.accept([sender.copy(seq, 0) for seq in rest])
            assert all(o.error is None for o in outcomes)
            assert_released_exactly(await h.released(), sender, ahead)

    asyncio.run(scenario())


@SETTINGS
@given(removals=st.integers(1, 3), other=st.integers(0, 4),
       offset=st.integers(0, 2**GENERATION_BITS - 1))
def test_after_removal_only_the_new_generation_is_taken(removals: int, other: int,
                                                         offset: int) -> None:
    """5. A link removed and accepted again ``removals`` times takes only sequence numbers
    of its generation: one of any other generation is refused ``link-generation`` and
    stores nothing; the new generation starts at its first number (docs/protocol.md
    §6.1)."""
    assume(other != removals)

    async def scenario() -> None:
        async with Harness(PARTIES[:1], window=BIG_WINDOW) as h:
            sender = h.senders[PARTIES[0]]
            expect_receipt((await h.accept([sender.copy(1, 0)]))[0], duplicate=False)
            offer = parse_offer(make_offer(party=sender.party, name="again",
                                           keys=sender.keys, endpoints=["http://h:1"],
                                           at_ms=START_MS))
            for _ in range(removals):
                await h.db.write(lambda c: link_store.mark_removed(c, sender.party, START_MS))
                assert await h.db.write(
                    lambda c: link_store.accept_offer(c, offer, ME, START_MS)) is True
            await h.peers.reload()
            stored = await h.count_inbound()
            [outcome] = await h.accept([sender.seal(first_seq(other) + offset)])
            expect_error(outcome, LINK_GENERATION)
            assert await h.count_inbound() == stored
            expect_receipt((await h.accept([sender.seal(first_seq(removals))]))[0],
                           duplicate=False)
            assert [r.seq for r in await h.released()] == [1, first_seq(removals)]

    asyncio.run(scenario())
