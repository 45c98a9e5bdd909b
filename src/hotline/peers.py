"""The in-memory view of accepted links, read by both directions of the line.

The table is small and read on every envelope, so it is cached (the links in force; removed
links apart, for reading the history they signed and for ``status``); the cache is reloaded
when this process changes a link and, rate-limited, when an envelope names a party the
cache does not know (another process, such as ``hotline link accept``, may have added it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from hotline.clock import Clock
from hotline.errors import EnvelopeRejected, PeerRefused, rejected
from hotline.protocol.keyhistory import DEFAULT_GRACE_MS, KeyHistory
from hotline.protocol.keys import PublicKeys
from hotline.protocol.statement import BadStatement
from hotline.store import keys as key_store
from hotline.store import links as link_store
from hotline.store.database import Database
from hotline.store.links import Link

RELOAD_MIN_INTERVAL = 1.0


class PeerDirectory:
    def __init__(self, db: Database, clock: Clock, grace_ms: int = DEFAULT_GRACE_MS) -> None:
        self._db = db
        self._clock = clock
        self.grace_ms = grace_ms
        self._links: dict[str, Link] = {}
        self._former: dict[str, Link] = {}
        self._histories: dict[str, KeyHistory] = {}
        self._last_reload = float("-inf")
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[list[Link]], None]] = []

    def on_change(self, listener: Callable[[list[Link]], None]) -> None:
        self._listeners.append(listener)

    async def reload(self) -> None:
        async with self._lock:
            # the cache is as fresh as the moment its read began, not ended: a link
            # accepted while the read was queued is not in it, and ``maybe_reload`` must
            # not take the cache for newer than that
            began = self._clock.monotonic()
            found, removed, histories = await self._db.read(
                lambda conn: (link_store.all_links(conn), link_store.removed_links(conn),
                              key_store.load_all(conn)))
            fresh = {link.party: link for link in found}
            self._former = {link.party: link for link in removed}
            self._last_reload = began
            changed = fresh != self._links
            self._links = fresh
            self._histories = histories
        if changed:
            for listener in self._listeners:
                listener(list(fresh.values()))

    async def maybe_reload(self) -> None:
        """Reload if the last reload is older than the minimum interval."""
        if self._clock.monotonic() - self._last_reload >= RELOAD_MIN_INTERVAL:
            await self.reload()

    def get(self, party: str) -> Link | None:
        return self._links.get(party)

    def former(self, party: str) -> Link | None:
        """A removed link (not trusted for anything new; its keys verify its history)."""
        return self._former.get(party)

    def removed(self) -> list[Link]:
        return list(self._former.values())

    def known_keys(self) -> dict[str, PublicKeys]:
        """Every linked party's keys, removed links' too: what the log's history (its
        receipts, statements and cosigned checkpoints) was signed with."""
        return {link.party: link.keys for link in [*self._former.values(),
                                                    *self._links.values()]}

    def all(self) -> list[Link]:
        return list(self._links.values())

    def keys_by_id(self, party: str) -> dict[str, PublicKeys] | None:
        """Every key ``party`` ever announced, by id (whether one may still be used is
        :meth:`refusal`'s question, asked after its signature verified)."""
        link = self._links.get(party)
        if link is None:
            return None
        history = self._histories.get(party)
        known = {} if history is None else {r.kid: r.keys for r in history.records}
        return {**known, link.keys.key_id: link.keys}

    def history(self, party: str) -> KeyHistory | None:
        return self._histories.get(party)

    def refusal(self, party: str, kid: str, ts: int) -> EnvelopeRejected | None:
        """Why an item ``party`` signed with ``kid`` at signed time ``ts`` is refused now
        (``key-retired``, ``key-backdated``, ``key-revoked``), or None: the key-history
        rule of docs/protocol.md, on this node's clock."""
        history = self._histories.get(party)
        if history is None:
            return None
        found = history.find(kid)
        if found is not None and found.retired_at is None and found.revoked_at is None:
            return None  # a key in force: no need of the clock
        reason = history.check(kid, ts, self._clock.now_ms(), self.grace_ms)
        if reason is None:
            return None
        record = history.find(kid)
        why = {"key-retired": "was rotated out and its grace period is over",
               "key-backdated": "was rotated out before the time this item claims",
               "key-revoked": "is revoked",
               "unknown-key": "was never announced"}.get(reason, reason)
        detail = "" if record is None or record.rotated_at is None else \
            f" (rotation signed at {record.rotated_at}, item at {ts})"
        return rejected(reason, f"{party}'s key {kid} {why}{detail}")


S = TypeVar("S")


def receipt_statement(peers: PeerDirectory, peer: str, payload: dict[str, Any],
                      envelope_type: str, verify: Callable[..., S]) -> S:
    """The signed statement a receipt envelope of ``envelope_type`` from ``peer`` carries
    (``payload["statement"]``, a string), verified by ``verify(raw, signer=peer,
    public=keys)`` against the peer's keys. Raises :class:`PeerRefused` if there is no
    link with ``peer``, no statement, or one that does not verify."""
    link = peers.get(peer)
    if link is None:
        raise PeerRefused("no link with the sender")
    raw = payload.get("statement")
    if not isinstance(raw, str):
        raise PeerRefused(f"{envelope_type} carries no statement")
    try:
        return verify(raw, signer=peer, public=link.keys)
    except BadStatement as exc:
        raise PeerRefused(exc.message) from None
