"""The in-memory view of accepted links, read by both directions of the line.

The table is small and read on every envelope, so it is cached; the cache is reloaded
when this process changes a link and, rate-limited, when an envelope names a party the
cache does not know (another process, such as ``hotline link accept``, may have added it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hotline.clock import Clock
from hotline.protocol.keys import PublicKeys
from hotline.store import links as link_store
from hotline.store.database import Database
from hotline.store.links import Link

RELOAD_MIN_INTERVAL = 1.0


class PeerDirectory:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._links: dict[str, Link] = {}
        self._last_reload = float("-inf")
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[list[Link]], None]] = []

    def on_change(self, listener: Callable[[list[Link]], None]) -> None:
        self._listeners.append(listener)

    async def reload(self) -> None:
        async with self._lock:
            found = await self._db.read(link_store.all_links)
            fresh = {link.party: link for link in found}
            self._last_reload = self._clock.monotonic()
            changed = fresh != self._links
            self._links = fresh
        if changed:
            for listener in self._listeners:
                listener(list(fresh.values()))

    async def maybe_reload(self) -> None:
        """Reload if the last reload is older than the minimum interval."""
        if self._clock.monotonic() - self._last_reload >= RELOAD_MIN_INTERVAL:
            await self.reload()

    def get(self, party: str) -> Link | None:
        return self._links.get(party)

    def all(self) -> list[Link]:
        return list(self._links.values())

    def keys_by_id(self, party: str) -> dict[str, PublicKeys] | None:
        link = self._links.get(party)
        return None if link is None else {link.keys.key_id: link.keys}
