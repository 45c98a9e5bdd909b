"""A hostile peer's crafted envelopes against the two lanes, at the receiver (the harness
of ``test_receiver_properties.py``: real SQLite file, real writer): an envelope re-sent on
the other lane under the same id, one aimed at a repair's ``seq.lost`` row of the other
lane, and one whose ``after`` can never come, is refused by name, stores nothing and logs
nothing as received (docs/protocol.md §11.1; THREATS T2, T3, T5, T20)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import func, select

from hotline.errors import MALFORMED, REPLAYED_ID
from hotline.protocol.envelope import Header, seal
from hotline.protocol.generation import first_seq
from hotline.protocol.lanes import BULK, CONTROL, Lane
from hotline.store.inbound import LOST_TYPE
from hotline.store.schema import inbound, log_entries
from tests.integration.test_receiver_properties import (
    BIG_WINDOW,
    ME,
    ME_KEYS,
    Harness,
    expect_error,
    receipt_of,
)

PEER = "US-JS"
ID = f"{0xabc:032x}"


def _sealed(h: Harness, lane: Lane, seq: int, text: str, envelope_id: str = ID) -> bytes:
    sender = h.senders[PEER]
    header = Header(id=envelope_id, sender=PEER, recipient=ME, kid=sender.keys.public.key_id,
                    seq=seq, ts=h.clock.now_ms(), type="message", lane=lane,
                    after=0 if lane == BULK else None)
    return seal(header, {"text": text}, sender.keys, ME_KEYS.public)


async def _received_entries(h: Harness) -> int:
    return await h.db.read(lambda conn: int(conn.execute(
        select(func.count()).select_from(log_entries)
        .where(log_entries.c.kind == "received")).scalar_one()))


def test_an_envelope_replayed_on_the_other_lane_under_its_id_is_refused() -> None:
    """Control seq 1 then the same id as bulk seq 1 (and the other way round, and both
    in one batch): the second is ``replayed-id``; one row, one ``received`` entry."""
    async def scenario() -> None:
        for first, second in ((CONTROL, BULK), (BULK, CONTROL)):
            async with Harness((PEER,), BIG_WINDOW) as h:
                receipt_of((await h.accept([_sealed(h, first, 1, "the original")]))[0])
                expect_error((await h.accept([_sealed(h, second, 1, "the replay")]))[0],
                             REPLAYED_ID)
                rows = await h.inbound_rows()
                assert [(r.lane, r.seq) for r in rows] == [(first, 1)]
                assert await _received_entries(h) == 1
        async with Harness((PEER,), BIG_WINDOW) as h:
            outcomes = await h.accept([_sealed(h, CONTROL, 1, "a"), _sealed(h, BULK, 1, "b")])
            assert sum(o.error is None for o in outcomes) == 1
            assert [o.error.error_id for o in outcomes if o.error is not None] == [REPLAYED_ID]
            assert len(await h.inbound_rows()) == 1
            assert await _received_entries(h) == 1
    asyncio.run(scenario())


def test_an_envelope_aimed_at_a_seq_lost_row_of_the_other_lane_is_refused() -> None:
    """A repair stood a ``seq.lost`` row for control seq 2 (id ``ID``; the original was
    lost from this database; control seq 1 has not come yet, so the row is held). The
    same id and seq sealed on the *bulk* lane is not that envelope: it must be refused,
    not answered with a receipt for a row that was never written (nor logged as
    received: the log would then name an envelope the state does not hold). The real
    one, on the control lane, still takes the row."""
    async def scenario() -> None:
        async with Harness((PEER,), BIG_WINDOW) as h:
            await h.db.write(lambda conn: conn.execute(inbound.insert().values(
                peer=PEER, envelope_id=ID, seq=2, type=LOST_TYPE, payload="{}",
                envelope=b"", sent_at=h.clock.now_ms(), received_at=h.clock.now_ms(),
                lane=CONTROL)))
            entries = await _received_entries(h)
            expect_error((await h.accept([_sealed(h, BULK, 2, "not the lost one")]))[0],
                         REPLAYED_ID)
            rows = await h.inbound_rows()
            assert [(r.lane, r.seq, r.type) for r in rows] == [(CONTROL, 2, LOST_TYPE)]
            assert await _received_entries(h) == entries
            receipt_of((await h.accept([_sealed(h, CONTROL, 2, "the lost one")]))[0])
            receipt_of((await h.accept([_sealed(h, CONTROL, 1, "before it", f"{1:032x}")]))[0])
            assert [(r.lane, r.seq, r.type, r.payload) for r in await h.released()] == [
                (CONTROL, 1, "message", '{"text":"before it"}'),
                (CONTROL, 2, "message", '{"text":"the lost one"}')]
            assert await _received_entries(h) == entries + 2
    asyncio.run(scenario())


def test_a_bulk_envelope_after_a_control_seq_of_a_later_generation_is_refused(
        caplog: pytest.LogCaptureFixture) -> None:
    """``after`` naming a control number of a later link generation than the envelope's
    own can never be released (control envelopes of that generation are refused until
    the link is removed, which ends this one): it would hold the bulk lane for good.
    It is refused by name, nothing stored, one security-log line. The last number of
    the envelope's own generation is still a legitimate ``after`` (held, not refused)."""
    async def scenario() -> None:
        async with Harness((PEER,), BIG_WINDOW) as h:
            sender = h.senders[PEER]

            def bulk(after: int, envelope_id: str) -> bytes:
                header = Header(id=envelope_id, sender=PEER, recipient=ME,
                                kid=sender.keys.public.key_id, seq=1, ts=h.clock.now_ms(),
                                type="message", lane=BULK, after=after)
                return seal(header, {"text": "t"}, sender.keys, ME_KEYS.public)

            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="hotline.security"):
                outcome = (await h.accept([bulk(first_seq(1), f"{1:032x}")]))[0]
            expect_error(outcome, MALFORMED)
            assert outcome.error is not None
            assert "generation" in outcome.error.message
            assert len([r for r in caplog.records if r.name == "hotline.security"]) == 1
            assert await h.count_inbound() == 0
            receipt_of((await h.accept([bulk(first_seq(1) - 1, f"{2:032x}")]))[0])
            assert await h.count_inbound() == 1
            assert await h.released() == []
    asyncio.run(scenario())
