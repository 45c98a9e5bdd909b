"""The sender's pure parts: the retry policy and the in-memory hand-over of envelopes."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.delivery.backoff import Backoff
from hotline.delivery.sender import PeerSender
from hotline.protocol.lanes import BULK, CONTROL, LANES, Lane
from hotline.store.outbox import Pending


@settings(max_examples=200)
@given(initial=st.floats(0.01, 5), maximum=st.floats(0.01, 600), failures=st.integers(0, 60),
       seed=st.integers(0, 2**32))
def test_backoff_stays_within_half_to_full_capped_step(initial: float, maximum: float,
                                                       failures: int, seed: int) -> None:
    backoff = Backoff(initial, maximum, rng=random.Random(seed))
    for n in range(failures + 1):
        ceiling = min(maximum, initial * 2.0 ** n)
        delay = backoff.next_delay()
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= initial


@settings(max_examples=50, deadline=None)
@given(initial=st.floats(1e-6, 60), maximum=st.floats(1e-6, 3600),
       multiplier=st.floats(1, 10), failures=st.integers(0, 10**7),
       seed=st.integers(0, 2**32))
def test_backoff_never_overflows_however_long_the_outage(initial: float, maximum: float,
                                                         multiplier: float, failures: int,
                                                         seed: int) -> None:
    """Up to 10**7 consecutive failures (about a day at the smallest settings): every
    delay stays finite, positive and under the cap; the sender task cannot die of it."""
    backoff = Backoff(initial, maximum, multiplier, rng=random.Random(seed),
                      failures=failures)
    for _ in range(3):
        delay = backoff.next_delay()
        assert 0 < delay <= max(initial, maximum)
    assert backoff.failures == failures + 3


def test_backoff_reaches_the_cap_and_stays_there_for_ten_million_failures() -> None:
    backoff = Backoff(0.001, 0.002, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(2_000)]  # past the old 2**1024 overflow
    backoff.failures = 10**7
    delays.append(backoff.next_delay())
    assert all(0.001 <= d <= 0.002 for d in delays[1:])


def _pending(seq: int, lane: Lane = CONTROL) -> Pending:
    return Pending(f"{seq:032x}{lane[:1]}"[-32:], seq, "message", '{"text":"x"}', b"x" * 10,
                   0, lane=lane)


def _sender(batch_size: int = 10) -> PeerSender:
    fake: Any = None  # the buffer logic touches none of the collaborators
    return PeerSender(me="AA-ONE", link=fake, db=fake, transport=fake, clock=fake,
                      backoff=Backoff(0.1, 1.0), batch_size=batch_size, batch_bytes=1 << 20,
                      reseal=fake, reseal_after_ms=60_000)


@settings(max_examples=300)
@given(order=st.permutations(list(range(1, 16))), acked=st.integers(0, 15),
       batch_size=st.integers(1, 20), other=st.permutations(list(range(1, 6))),
       lane=st.sampled_from(LANES))
def test_memory_batches_are_unbroken_runs_right_after_the_last_receipt(
        order: list[int], acked: int, batch_size: int, other: list[int], lane: Lane) -> None:
    """Per lane: the other lane's envelopes (same numbers, own sequence) never mix in."""
    sender = _sender(batch_size)
    state = sender.lanes[lane]
    state.acked_upto = acked
    others = BULK if lane == CONTROL else CONTROL
    mixed = [_pending(seq, lane) for seq in order] + [_pending(seq, others) for seq in other]
    sender.offer(sorted(mixed, key=lambda p: (p.seq * 7 + len(p.lane)) % 11))
    batch = sender._from_memory(state)
    if batch is None:
        return  # the sender then reads the outbox, which is always right
    assert [p.seq for p in batch] == list(range(acked + 1, acked + 1 + len(batch)))
    assert {p.lane for p in batch} == {lane}
    assert 1 <= len(batch) <= batch_size


def test_buffer_overflow_falls_back_to_the_outbox() -> None:
    sender = _sender()
    sender.offer([_pending(seq) for seq in range(1, 10_001)])
    assert sender._from_memory(sender.lanes[CONTROL]) is not None
    sender.offer([_pending(10_001)])
    assert sender._from_memory(sender.lanes[CONTROL]) is None


class _Clock:
    def now_ms(self) -> int:
        return 0


class _EmptyOutbox:
    """The outbox holds nothing beyond what was offered (the buffer has it all)."""

    async def read(self, fn: Any) -> list[Pending]:
        return []


@settings(max_examples=100, deadline=None)
@given(bulk=st.integers(0, 600), control=st.lists(st.integers(0, 600), max_size=5),
       batch_size=st.integers(1, 300))
def test_the_control_lane_is_served_first_and_waits_at_most_one_request(
        bulk: int, control: list[int], batch_size: int) -> None:
    """However many bulk envelopes wait, and whenever control envelopes are offered
    between requests, the next request is the control lane's if any waits: a control
    envelope waits for at most the one request already on the line (here: the request
    taken just before it was offered), and no request is larger than ``batch_size``."""
    sender = PeerSender(me="AA-ONE", link=Any, db=_EmptyOutbox(),  # type: ignore[arg-type]
                        transport=None,  # type: ignore[arg-type]
                        clock=_Clock(), backoff=Backoff(0.1, 1.0),  # type: ignore[arg-type]
                        batch_size=batch_size, batch_bytes=1 << 20, reseal=None,  # type: ignore[arg-type]
                        reseal_after_ms=60_000)
    sender.offer([_pending(seq, BULK) for seq in range(1, bulk + 1)])
    next_control = 1
    offers = iter(control)
    at = next(offers, None)

    async def drive() -> None:
        nonlocal next_control, at
        sent = 0
        while True:
            batch = await sender._next_batch()
            if not batch:
                break
            assert len(batch) <= batch_size
            assert len({p.lane for p in batch}) == 1
            if batch[0].lane == BULK:
                # nothing of the control lane was waiting when this request was taken
                assert sender.lanes[CONTROL].acked_upto == next_control - 1
            state = sender.lanes[batch[0].lane]
            state.acked_upto = batch[-1].seq  # its receipts came back
            sent += 1
            if at is not None and sent >= at // max(1, batch_size):
                sender.offer([_pending(next_control, CONTROL)])
                next_control += 1
                at = next(offers, None)

    asyncio.run(drive())
    assert sender.lanes[CONTROL].acked_upto == next_control - 1
    assert sender.lanes[BULK].acked_upto == bulk


def _sealed(sealed_at: int, deadline_at: int | None = None, budget: int = 30_000) -> Pending:
    return Pending("a" * 32, 1, "call.place", f'{{"budget_ms":{budget}}}', b"x", sealed_at,
                   deadline_at)


@settings(max_examples=300)
@given(sealed_at=st.integers(-(10**13), 10**13), now=st.integers(-(10**13), 10**13))
def test_an_envelope_is_resealed_when_its_seal_time_is_outside_the_window_either_way(
        sealed_at: int, now: int) -> None:
    """Sealed too long ago (an outage) or in the future (our clock was ahead, then put
    right): either way the peer would refuse it, so it is sealed afresh."""
    sender = _sender()
    assert sender.needs_reseal(_sealed(sealed_at), now) == (abs(now - sealed_at) > 60_000)


def test_a_call_signal_is_resealed_once_its_budget_is_spent() -> None:
    sender = _sender()
    assert not sender.needs_reseal(_sealed(1_000, deadline_at=31_000), 30_999)
    assert sender.needs_reseal(_sealed(1_000, deadline_at=31_000), 31_000)
    # re-sealed after the deadline: it already says the budget is spent
    assert not sender.needs_reseal(_sealed(31_500, deadline_at=31_000, budget=0), 40_000)


def test_a_spent_budget_is_noticed_whatever_the_seal_time_says() -> None:
    """After a backward step the deadline (moved) can lie before the seal time (history,
    not moved): the budget must still be re-sealed as spent once the deadline passes."""
    sender = _sender()
    sealed = _sealed(100_000, deadline_at=80_000, budget=30_000)  # stepped back 50 s
    assert not sender.needs_reseal(sealed, 79_999)
    assert sender.needs_reseal(sealed, 80_000)


def test_a_duplicates_receipt_is_not_a_clock_reading() -> None:
    """The receipt of a duplicate is the original, signed when the peer first stored the
    envelope (maybe minutes ago, if our first answer was lost): it must not be read as
    the peer's clock now, or a lost answer looks like a skewed clock."""
    from hotline.clock import SystemClock
    from hotline.protocol.keys import PartyKeys
    from hotline.protocol.receipt import make_receipt, message_digest
    from hotline.store.links import Link

    peer_keys = PartyKeys.generate()
    link = Link("BB-TWO", "peer", peer_keys.public, ("http://peer",), 0)
    fake: Any = None
    sender = PeerSender(me="AA-ONE", link=link, db=fake, transport=fake, clock=SystemClock(),
                        backoff=Backoff(0.1, 1.0), batch_size=10, batch_bytes=1 << 20,
                        reseal=fake, reseal_after_ms=60_000)
    batch = [Pending(f"{seq:032x}", seq, "message", '{"text":"x"}', b"x", 0)
             for seq in (1, 2)]

    def receipt(p: Pending, at: int) -> str:
        digest = message_digest(envelope_id=p.envelope_id, sender="AA-ONE",
                                recipient="BB-TWO", seq=p.seq, type_=p.type,
                                payload={"text": "x"})
        return make_receipt(envelope_id=p.envelope_id, signer="BB-TWO", sender="AA-ONE",
                            seq=p.seq, digest=digest, at_ms=at, keys=peer_keys).decode()
    results: list[object] = [{"receipt": receipt(batch[0], 1_000), "duplicate": False},
                             {"receipt": receipt(batch[1], 500), "duplicate": True}]
    delivered, error = sender._check_results(batch, results)
    assert error is None
    assert [d[3] for d in delivered] == [1_000, None]


def test_a_receipt_naming_the_other_lane_is_refused_with_one_security_line(
        caplog: Any) -> None:
    """A peer answers a bulk envelope with a receipt validly signed for the same id and
    seq on the control lane (its digest binds no lane): it proves nothing about the bulk
    message, so the envelope stays undelivered, and the refusal leaves one line on
    ``hotline.security`` (as every refusal of a peer's input does)."""
    import logging

    from hotline.clock import SystemClock
    from hotline.protocol.keys import PartyKeys
    from hotline.protocol.receipt import make_receipt, message_digest
    from hotline.store.links import Link

    peer_keys = PartyKeys.generate()
    link = Link("BB-TWO", "peer", peer_keys.public, ("http://peer",), 0)
    fake: Any = None
    sender = PeerSender(me="AA-ONE", link=link, db=fake, transport=fake, clock=SystemClock(),
                        backoff=Backoff(0.1, 1.0), batch_size=10, batch_bytes=1 << 20,
                        reseal=fake, reseal_after_ms=60_000)
    bulk = Pending("b" * 32, 1, "message", '{"text":"x"}', b"x", 0, lane=BULK, after=0)
    for lane in (CONTROL, BULK):
        digest = message_digest(envelope_id=bulk.envelope_id, sender="AA-ONE",
                                recipient="BB-TWO", seq=1, type_="message",
                                payload={"text": "x"}, lane=lane)
        receipt = make_receipt(envelope_id=bulk.envelope_id, signer="BB-TWO",
                               sender="AA-ONE", seq=1, digest=digest, at_ms=1_000,
                               keys=peer_keys).decode()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hotline.security"):
            delivered, error = sender._check_results(
                [bulk], [{"receipt": receipt, "duplicate": False}])
        security = [r for r in caplog.records if r.name == "hotline.security"]
        if lane == CONTROL:
            assert delivered == []
            assert error is not None
            assert "bad receipt" in error
            assert len(security) == 1, security
        else:
            assert error is None
            assert [d[0] for d in delivered] == [bulk.envelope_id]
            assert security == []


class _MonotonicClock(_Clock):
    def monotonic(self) -> float:
        return 1_000.0


def test_bulk_refused_by_a_downgraded_peer_pauses_bulk_only_until_it_says_2() -> None:
    """A peer that said protocol 2 now says 1 and refuses a bulk batch (§11.1): the bulk
    lane waits on a backoff of its own, the control lane goes on at once, and bulk is
    not tried again after every control request (it was: each control success reset
    the line's backoff); the peer's next answer saying 2 ends the wait."""
    from hotline.protocol.keys import PartyKeys
    from hotline.store.links import Link

    link = Link("BB-TWO", "peer", PartyKeys.generate().public, ("http://peer",), 0,
                protocol=1)
    fake: Any = None
    sender = PeerSender(me="AA-ONE", link=link, db=_EmptyOutbox(),  # type: ignore[arg-type]
                        transport=fake, clock=_MonotonicClock(),  # type: ignore[arg-type]
                        backoff=Backoff(0.001, 0.002), batch_size=10, batch_bytes=1 << 20,
                        reseal=fake, reseal_after_ms=60_000)

    async def drive() -> None:
        sender.offer([_pending(1, BULK), _pending(2, BULK)])
        refused = await sender._next_batch()
        assert [p.lane for p in refused] == [BULK, BULK]
        await sender._after_failure(refused)  # the peer said 1: malformed-envelope
        sender.offer([_pending(1, CONTROL)])
        control = await sender._next_batch()
        assert [(p.lane, p.seq) for p in control] == [(CONTROL, 1)]
        sender.lanes[CONTROL].acked_upto = 1  # its receipt came back
        assert await sender._next_batch() == []  # bulk waits, not tried again at once
        await sender._note_protocol(2)
        assert [p.seq for p in await sender._next_batch()] == [1, 2]

    asyncio.run(drive())
