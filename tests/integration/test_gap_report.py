"""The receiver's gap report, and a ``seq.lost`` row taken over by the envelope it stood
for; in-process on a real SQLite file through the real writer (the harness of
``test_receiver_properties.py``)."""

from __future__ import annotations

import asyncio

from sqlalchemy import Connection, delete

from hotline.integrity.findings import RepairContext
from hotline.integrity.run import check_state, repair
from hotline.store.inbound import LOST_TYPE
from hotline.store.schema import inbound
from tests.integration.test_receiver_properties import BIG_WINDOW, ME, START_MS, Harness

PEER = "US-JS"


def test_the_answer_names_the_seq_the_receiver_waits_on() -> None:
    async def run() -> None:
        async with Harness((PEER,), BIG_WINDOW) as h:
            sender = h.senders[PEER]
            _, waiting = await h.receiver.accept_batch([sender.copy(2, 0), sender.copy(3, 0)],
                                                       "127.0.0.1")
            assert waiting == {(PEER, "control"): 1}
            _, waiting = await h.receiver.accept_batch([sender.copy(1, 0)], "127.0.0.1")
            assert waiting == {}
            assert [r.seq for r in await h.released()] == [1, 2, 3]
    asyncio.run(run())


def test_a_lost_held_envelope_sent_again_takes_its_placeholder() -> None:
    """Seq 2 is held behind a gap, then lost from the database; the repair stands a
    ``seq.lost`` row in for it; the original arrives again (its receipt had been lost):
    it takes the row, and 1..3 are released with their own texts."""
    async def run() -> None:
        async with Harness((PEER,), BIG_WINDOW) as h:
            sender = h.senders[PEER]
            await h.accept([sender.copy(2, 0), sender.copy(3, 0)])

            def lose_and_repair(conn: Connection) -> list[str]:
                conn.execute(delete(inbound).where(inbound.c.seq == 2))
                found = check_state(conn, ME).findings
                done = repair(conn, found, RepairContext(ME, None, {}, START_MS + 10))
                return [str(f) for f in found] + [str(f) for f in done.left]
            said = await h.db.write(lose_and_repair)
            assert len(said) == 1
            assert said[0].startswith(f"inbound peer={PEER} seq=2:")
            rows = await h.inbound_rows()
            assert [(r.seq, r.type) for r in rows] == [(3, "message"), (2, LOST_TYPE)]

            outcomes = await h.accept([sender.copy(2, 0)])
            assert outcomes[0].error is None
            sender.check_receipt(2, outcomes[0].receipt or b"")
            await h.accept([sender.copy(1, 0)])
            released = await h.released()
            assert [(r.seq, r.type, r.payload) for r in released] == [
                (n, "message", f'{{"text":"{sender.text(n)}"}}') for n in (1, 2, 3)]
            findings = await h.db.read(lambda conn: check_state(conn, ME).findings)
            assert findings == []
    asyncio.run(run())
