"""The node's cache of accepted links (``hotline.peers``): a link another process accepts
is known to the next envelope that names it once a second has passed, even when a reload
that began before the acceptance ended after it.

Real SQLite; the link is written by a second engine, as ``hotline link accept`` does beside
a running node. The clock is virtual so that "a read took 0.9 s" is exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection

from hotline.peers import RELOAD_MIN_INTERVAL, PeerDirectory
from hotline.protocol.keys import PartyKeys
from hotline.protocol.offer import make_offer, parse_offer
from hotline.store import links as link_store
from hotline.store.database import Database
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.migrate import upgrade

T = TypeVar("T")
ME = "US-JS"
START_MS = 1_700_000_000_000


class VirtualClock:
    def __init__(self) -> None:
        self.t = 100.0

    def now_ms(self) -> int:
        return START_MS + int(self.t * 1000)

    def monotonic(self) -> float:
        return self.t


class SlowReads:
    """The store, with each read taking ``seconds`` of virtual time after its snapshot
    (a read queued behind others on a loaded machine) and ``during`` run meanwhile."""

    def __init__(self, db: Database, clock: VirtualClock) -> None:
        self.db, self.clock = db, clock
        self.seconds = 0.0
        self.during: Callable[[], None] | None = None

    async def read(self, work: Callable[[Connection], T]) -> T:
        result = await self.db.read(work)
        if self.during is not None:
            self.during()
            self.during = None
        self.clock.t += self.seconds
        return result


def _accept(path: Path, party: str) -> None:
    """Accept ``party``'s offer through an engine of its own (another process's)."""
    engine = create_engine(sqlite_url(path))
    offer = parse_offer(make_offer(party=party, name=party, keys=PartyKeys.generate(),
                                   endpoints=["http://127.0.0.1:7100"], at_ms=START_MS))
    try:
        with engine.begin() as conn:
            link_store.accept_offer(conn, offer, ME, START_MS)
    finally:
        engine.dispose()


def test_a_link_accepted_while_a_reload_was_reading_is_found_a_second_later(
        tmp_path: Path) -> None:
    asyncio.run(_run(tmp_path))


async def _run(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    engine = create_engine(sqlite_url(path))
    upgrade(engine)
    fatal: list[BaseException] = []
    db = Database(engine, fatal.append)
    clock = VirtualClock()
    store = SlowReads(db, clock)
    peers = PeerDirectory(store, clock)  # type: ignore[arg-type]
    db.start()
    try:
        # a reload reads (no PL-GS yet); PL-GS is accepted while its answer waits 0.9 s
        store.seconds = 0.9
        store.during = lambda: _accept(path, "PL-GS")
        await peers.reload()
        assert peers.get("PL-GS") is None
        store.seconds = 0.0
        # PL-GS's first envelope, more than a second after that read began: the cache
        # must not count itself fresher than its snapshot and skip the reload
        clock.t += RELOAD_MIN_INTERVAL - 0.9 + 0.01
        await peers.maybe_reload()
        assert peers.get("PL-GS") is not None, "a link accepted before this read is unknown"
        # and the limit still holds for a party nobody accepted: no reload within it
        reads: list[Any] = []
        original = store.read

        async def counting(work: Callable[[Connection], T]) -> T:
            reads.append(work)
            return await original(work)
        store.read = counting  # type: ignore[method-assign]
        clock.t += RELOAD_MIN_INTERVAL / 2
        await peers.maybe_reload()
        assert reads == []
        clock.t += RELOAD_MIN_INTERVAL
        await peers.maybe_reload()
        assert len(reads) == 1
    finally:
        await db.stop()
    assert fatal == []
