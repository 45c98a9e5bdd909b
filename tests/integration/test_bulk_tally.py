"""The bulk bound, checked from a tally (``hotline.delivery.tally``) instead of a count
of the whole queue on every send: exact where it refuses, counted at most once a
second otherwise.

Real SQLite and the real messenger; the clock is virtual so the recount interval is
exact; receipts are stood in for by marking rows delivered in the store, as the sender
does when they arrive.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, update

from hotline.delivery import tally as tally_module
from hotline.delivery.messenger import BulkBound, Messenger, QueueFull
from hotline.peers import PeerDirectory
from hotline.protocol.keys import PartyKeys
from hotline.protocol.lanes import BULK
from hotline.protocol.offer import make_offer, parse_offer
from hotline.store import links as link_store
from hotline.store import outbox as outbox_store
from hotline.store.database import Database
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.migrate import upgrade
from hotline.store.schema import outbox
from tests.integration.test_peer_cache import ME, START_MS, VirtualClock

PEER = "RU-GS"


def test_the_bound_holds_exactly_and_the_queue_is_counted_once_a_second(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counts: list[str] = []
    real = outbox_store.lane_loads

    def counting(conn: Connection, peer: str | None = None, lane: Any = None) -> Any:
        counts.append(str(peer))
        return real(conn, peer, lane)
    monkeypatch.setattr(outbox_store, "lane_loads", counting)
    asyncio.run(_run(tmp_path, counts))


async def _run(tmp_path: Path, counts: list[str]) -> None:
    engine = create_engine(sqlite_url(tmp_path / "node.db"))
    upgrade(engine)
    fatal: list[BaseException] = []
    db = Database(engine, fatal.append)
    clock = VirtualClock()
    peers = PeerDirectory(db, clock)
    messenger = Messenger(me=ME, keys=PartyKeys.generate(), peers=peers, db=db,
                          clock=clock, on_enqueued=lambda _p, _rows: None,
                          bound=BulkBound(max_messages=10, max_bytes=10_000))
    db.start()
    try:
        offer = parse_offer(make_offer(party=PEER, name=PEER, keys=PartyKeys.generate(),
                                       endpoints=["http://127.0.0.1:7100"], at_ms=START_MS))
        await db.write(lambda conn: link_store.accept_offer(conn, offer, ME, START_MS))
        await db.write(lambda conn: link_store.set_protocol(conn, PEER, 2))
        await peers.reload()

        # ten fit, an eleventh does not, and nothing of it is stored
        accepted = await messenger.send_texts(PEER, [f"m{i}" for i in range(6)])
        accepted += await messenger.send_texts(PEER, [f"n{i}" for i in range(4)])
        assert [a.lane for a in accepted] == [BULK] * 10
        with pytest.raises(QueueFull) as refused:
            await messenger.send_texts(PEER, ["one too many"])
        assert (refused.value.queued, refused.value.max_messages) == (10, 10)
        stored = await db.read(lambda conn: outbox_store.lane_loads(conn, PEER, BULK))
        assert stored[PEER][BULK].queued == 10

        # the queue drains (receipts): the next send is taken at once, not refused from
        # the figure the tally still holds
        await db.write(lambda conn: conn.execute(
            update(outbox).values(delivered_at=START_MS)))
        taken = await messenger.send_texts(PEER, ["after the drain"])
        assert len(taken) == 1

        # a burst of sends within a second counts the queue once, not once a send, and
        # still stops at the bound
        clock.t += tally_module.RECOUNT_SECONDS
        before = len(counts)
        for i in range(9):
            await messenger.send_texts(PEER, [f"burst {i}"])
            clock.t += 0.05
        assert len(counts) - before == 1, counts[before:]
        with pytest.raises(QueueFull):
            await messenger.send_texts(PEER, ["past the bound"])
    finally:
        await db.stop()
    assert fatal == []
