"""Lanes on the receiving side, in-process on a real SQLite file through the real writer
(the harness of ``test_receiver_properties.py``): whatever the delivery schedule
(reordered, split, repeated), each lane is released exactly once in its own order, and
the cross-lane dependency rule holds at every point — a bulk envelope is released only
after every control envelope its sender had committed before it (docs/protocol.md §11.1).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from hotline.errors import MALFORMED
from hotline.protocol.envelope import Header, seal
from hotline.protocol.lanes import BULK, CONTROL, Lane
from hotline.protocol.receipt import message_digest, verify_receipt
from hotline.status import line_status
from hotline.store.inbound import Released
from tests.integration.test_receiver_properties import (
    BIG_WINDOW,
    ME,
    ME_KEYS,
    SETTINGS,
    Harness,
    expect_error,
    receipt_of,
)

PEER = "US-JS"


@dataclass(frozen=True)
class Sent:
    """One envelope as its sender committed it: its lane, number and ``after``."""

    lane: Lane
    seq: int
    after: int | None
    raw: bytes
    envelope_id: str
    text: str


def commit_order(h: Harness, lanes: list[Lane]) -> list[Sent]:
    """Seal a sender's envelopes in commit order: control numbered 1, 2, …; bulk
    numbered on its own, each naming the last control seq committed before it."""
    sender = h.senders[PEER]
    out: list[Sent] = []
    last = {CONTROL: 0, BULK: 0}
    for index, lane in enumerate(lanes):
        last[lane] += 1
        after = last[CONTROL] if lane == BULK else None
        eid = f"{index:032x}"
        text = f"{lane} {last[lane]}"
        header = Header(id=eid, sender=PEER, recipient=ME, kid=sender.keys.public.key_id,
                        seq=last[lane], ts=h.clock.now_ms(), type="message", lane=lane,
                        after=after)
        out.append(Sent(lane, last[lane], after, seal(header, {"text": text}, sender.keys,
                                                       ME_KEYS.public), eid, text))
    return out


@st.composite
def lane_schedules(draw: st.DrawFn) -> tuple[list[Lane], list[list[int]]]:
    """A commit order of both lanes, and the batches delivering it: any order, any
    split, some envelopes delivered more than once."""
    lanes: list[Lane] = draw(st.lists(st.sampled_from([CONTROL, BULK]), min_size=1,
                                      max_size=30))
    extra = draw(st.lists(st.integers(0, len(lanes) - 1), max_size=len(lanes)))
    order = draw(st.permutations(list(range(len(lanes))) + extra))
    batches: list[list[int]] = []
    position = 0
    while position < len(order):
        size = draw(st.integers(1, 6))
        batches.append(order[position:position + size])
        position += size
    return lanes, batches


def check_released(sent: list[Sent], released: list[Released]) -> None:
    """The dependency rule and per-lane order, for what is released so far."""
    position = {(r.lane, r.seq): r.release_no for r in released}
    assert len(position) == len(released), "released twice"
    for lane in (CONTROL, BULK):
        seqs = [r.seq for r in released if r.lane == lane]
        assert seqs == list(range(1, len(seqs) + 1)), f"{lane} out of order: {seqs}"
    for s in sent:
        if s.lane == BULK and (BULK, s.seq) in position:
            for n in range(1, (s.after or 0) + 1):
                assert (CONTROL, n) in position, f"bulk {s.seq} released before control {n}"
                assert position[(CONTROL, n)] < position[(BULK, s.seq)]


@SETTINGS
@given(schedule=lane_schedules())
def test_each_lane_once_in_order_and_bulk_never_before_what_it_depends_on(
        schedule: tuple[list[Lane], list[list[int]]]) -> None:
    lanes, batches = schedule

    async def scenario() -> None:
        async with Harness((PEER,), BIG_WINDOW) as h:
            sent = commit_order(h, lanes)
            for batch in batches:
                outcomes = await h.accept([sent[i].raw for i in batch])
                for i, outcome in zip(batch, outcomes, strict=True):
                    s = sent[i]
                    digest = message_digest(envelope_id=s.envelope_id, sender=PEER,
                                            recipient=ME, seq=s.seq, type_="message",
                                            payload={"text": s.text}, lane=s.lane)
                    verify_receipt(receipt_of(outcome), signer=ME_KEYS.public,
                                   signer_party=ME, envelope_id=s.envelope_id, sender=PEER,
                                   seq=s.seq, digest=digest)
                check_released(sent, [r for group in h.callbacks for r in group])
            released = await h.released()
            check_released(sent, released)
            # every envelope was delivered at least once: all are released, once each
            assert sorted((r.lane, r.seq) for r in released) == \
                sorted((s.lane, s.seq) for s in sent)
            assert {r.payload for r in released} == {f'{{"text":"{s.text}"}}' for s in sent}
            assert await h.recv_next(PEER) == sum(1 for s in sent if s.lane == CONTROL) + 1
            assert await h.gaps() == {}
    asyncio.run(scenario())


def test_a_bulk_envelope_waits_for_the_control_envelope_it_follows() -> None:
    """Bulk 1 was committed after control 1 and 2: delivered first, it is stored (and
    acknowledged) but held, and it is not a gap of the bulk lane but of the control
    lane (the node waits on the control seq it depends on); control 2 still missing
    holds it."""
    async def scenario() -> None:
        async with Harness((PEER,), BIG_WINDOW) as h:
            sent = commit_order(h, [CONTROL, CONTROL, BULK])
            outcomes = await h.accept([sent[2].raw])
            assert outcomes[0].error is None
            assert await h.released() == []
            assert await h.gaps() == {(PEER, CONTROL): 1}
            await h.accept([sent[0].raw])
            assert [(r.lane, r.seq) for r in await h.released()] == [(CONTROL, 1)]
            assert await h.gaps() == {(PEER, CONTROL): 2}
            await h.accept([sent[1].raw])
            assert [(r.lane, r.seq) for r in await h.released()] == [
                (CONTROL, 1), (CONTROL, 2), (BULK, 1)]
    asyncio.run(scenario())


def test_a_bulk_envelope_after_a_control_seq_that_never_comes_is_a_reported_gap(
        ) -> None:
    """A hostile or broken peer seals bulk 1 with ``after`` far ahead of anything it
    sent on control: the bulk lane cannot be released, and that must not be silent —
    the gap report (and so the gap alarm) names the control seq the node waits on."""
    async def scenario() -> None:
        async with Harness((PEER,), BIG_WINDOW) as h:
            sender = h.senders[PEER]
            header = Header(id=f"{7:032x}", sender=PEER, recipient=ME,
                            kid=sender.keys.public.key_id, seq=1, ts=h.clock.now_ms(),
                            type="message", lane=BULK, after=1_000_000_000)
            raw = seal(header, {"text": "from the future"}, sender.keys, ME_KEYS.public)
            outcomes = await h.accept([raw])
            assert outcomes[0].error is None
            assert await h.released() == []
            assert await h.gaps() == {(PEER, CONTROL): 1}
    asyncio.run(scenario())


def test_a_gap_in_the_bulk_lane_is_shown_in_status_on_that_lane() -> None:
    """Bulk 2 arrives without bulk 1: the status names the bulk seq this node waits on,
    on the bulk lane, and no control gap (before, only the control lane's gap was
    shown, so a held-back bulk lane showed nowhere but in the alarm)."""
    async def scenario() -> None:
        async with Harness((PEER,), BIG_WINDOW) as h:
            sent = commit_order(h, [BULK, BULK])
            outcomes = await h.accept([sent[1].raw])
            assert outcomes[0].error is None
            assert await h.released() == []
            peer = next(p for p in await line_status(h.db, h.peers, {}, h.clock)
                        if p.party == PEER)
            assert peer.lanes[BULK].waiting_for_seq == 1
            assert peer.lanes[CONTROL].waiting_for_seq is None
            assert peer.waiting_for_seq is None  # the control lane's, as before lanes
            await h.accept([sent[0].raw])
            peer = next(p for p in await line_status(h.db, h.peers, {}, h.clock)
                        if p.party == PEER)
            assert peer.lanes[BULK].waiting_for_seq is None
    asyncio.run(scenario())


def test_a_node_of_protocol_1_refuses_a_bulk_envelope_by_name() -> None:
    """What a node from before lanes answers (its envelope check knows no ``lane``):
    nothing is stored under a number of another sequence."""
    async def scenario() -> None:
        async with Harness((PEER,), BIG_WINDOW) as h:
            h.receiver.protocol = 1
            sent = commit_order(h, [BULK])
            outcomes = await h.accept([sent[0].raw])
            expect_error(outcomes[0], MALFORMED)
            assert await h.count_inbound() == 0
    asyncio.run(scenario())
