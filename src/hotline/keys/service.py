"""This node's own key lifecycle: rotate to a new pair, revoke a compromised one.

A rotation or revocation is one transaction: the statement (``protocol/keyhistory.py``)
is logged, this party's own key history updated, and the statement queued to every
linked peer as a control envelope (``key.rotate``/``key.revoke``) on the exactly-once
line, sealed under the key the peer knows. The node signs with the new pair from that
commit on. The new private pair is written to the keystore *before* the commit, so
nothing is ever signed by a key the node could lose in a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from hotline.clock import Clock
from hotline.delivery.outbound import Outbound
from hotline.effects import Effects
from hotline.errors import HotlineError
from hotline.nodedir.keystore import add_pair
from hotline.peers import PeerDirectory
from hotline.protocol import canonical
from hotline.protocol.keyhistory import (
    KeyHistory,
    KeyStatementError,
    make_certificate,
    make_revocation,
    make_rotation,
    parse_certificate,
    parse_revocation,
    parse_rotation,
)
from hotline.protocol.keys import KeyRing, PartyKeys, safety_number
from hotline.store import keys as key_store
from hotline.store import log as log_store
from hotline.store.database import Database

ROTATE_TYPE = "key.rotate"
REVOKE_TYPE = "key.revoke"
KEY_TYPES = frozenset({ROTATE_TYPE, REVOKE_TYPE})


@dataclass(frozen=True)
class KeyChange:
    """What a rotation or revocation did: the key now in force, its safety number (for
    the operators to compare out of band), the peers told, the new key's offline
    revocation certificate (to be stored apart), and the statement sent."""

    kid: str
    safety_number: str
    peers: list[str]
    revocation_cert: dict[str, Any]
    statement: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"kid": self.kid, "safety_number": self.safety_number, "peers": self.peers,
                "revocation_cert": self.revocation_cert, "statement": self.statement}


def own_history(conn: Connection, me: str, fallback: PartyKeys) -> KeyHistory:
    history = key_store.load(conn, me, fallback=fallback.public)
    assert history is not None
    return history


class KeyService:
    def __init__(self, *, me: str, ring: KeyRing, keystore: Path, kek: bytes | None,
                 outbound: Outbound, peers: PeerDirectory, db: Database, clock: Clock,
                 apply: Callable[[Effects], None]) -> None:
        self._me = me
        self._ring = ring
        self._keystore = keystore
        self._kek = kek
        self._outbound = outbound
        self._peers = peers
        self._db = db
        self._clock = clock
        self._apply = apply
        self._lock = asyncio.Lock()

    async def _fresh_pair(self) -> PartyKeys:
        """A new pair whose id this party never had, safely in the keystore."""
        if self._kek is None:
            raise HotlineError("keystore-locked", "this node cannot write its keystore",
                               hint="restart it with `hotline serve`")
        history = await self._db.read(lambda c: own_history(c, self._me, self._ring.current))
        new = PartyKeys.generate()
        if history.find(new.public.key_id) is not None:  # 2^-64: refuse rather than reuse
            raise HotlineError("key-id-reused", "the new key's id was used before; try again")
        kek = self._kek
        await asyncio.to_thread(add_pair, self._keystore, kek, new)
        return new

    def _announce(self, conn: Connection, type_: str, statement: dict[str, Any],
                  signer: PartyKeys, now: int) -> tuple[list[str], Effects]:
        effects = Effects()
        told = []
        body = {"statement": canonical.encode(statement).decode()}
        for link in self._peers.all():
            pending = self._outbound.enqueue(conn, link.party, type_, [body], now, keys=signer)
            effects.send(link.party, pending)
            told.append(link.party)
        return told, effects

    def _change(self, new: PartyKeys, told: list[str], statement: dict[str, Any]
                ) -> KeyChange:
        pub = new.public
        return KeyChange(pub.key_id, safety_number(self._me, pub.sign_bytes, pub.enc_bytes),
                         told, make_certificate(self._me, new, self._clock.now_ms()),
                         statement)

    async def rotate(self) -> KeyChange:
        """Rotate to a new pair and tell every peer (see the module)."""
        async with self._lock:
            old = self._ring.current
            new = await self._fresh_pair()
            ring = self._ring

            def work(conn: Connection) -> tuple[dict[str, Any], list[str], Effects]:
                now = self._clock.now_ms()
                history = own_history(conn, self._me, old)
                current = history.current
                if current is None or current.kid != old.public.key_id:
                    raise HotlineError("key-conflict", "the key changed meanwhile; try again")
                statement = make_rotation(self._me, old, new, now)
                key_store.save(conn, history.rotate(parse_rotation(statement), now), statement)
                log_store.append_one(conn, "key-rotation", {
                    "party": self._me, "statement": statement}, now)
                told, effects = self._announce(conn, ROTATE_TYPE, statement, old, now)
                ring.switch(new)  # from this commit on, everything is signed by ``new``
                return statement, told, effects

            statement, told, effects = await self._db.write(work)
        self._apply(effects)
        return self._change(new, told, statement)

    async def revoke(self, cert_obj: object, from_ms: int | None) -> KeyChange:
        """Revoke the key ``cert_obj`` (an offline revocation certificate) names. If that
        takes the current key too (it is the key, or a rotation from the key signed at or
        after ``from_ms`` led to it), a new pair replaces it; every peer is told."""
        try:
            cert = parse_certificate(cert_obj)
        except KeyStatementError as exc:
            raise HotlineError("bad-revocation-cert", f"cert: {exc.message}") from None
        if cert.party != self._me:
            raise HotlineError("bad-revocation-cert",
                               f"cert: the certificate is {cert.party}'s, not {self._me}'s")
        if from_ms is not None and from_ms < 0:
            raise HotlineError("bad-option", "from: must be a time in ms since the epoch")
        known = await self._db.read(lambda c: own_history(c, self._me, self._ring.current))
        record = known.find(cert.kid)
        if record is None:
            raise HotlineError("unknown-key", f"cert: {self._me} never had a key {cert.kid}",
                               status=404)
        if record.revoked_at is not None:
            raise HotlineError("key-revoked", f"cert: key {cert.kid} is revoked already",
                               status=409)
        start = self._clock.now_ms() if from_ms is None else from_ms
        async with self._lock:
            old = self._ring.current
            known = await self._db.read(lambda c: own_history(c, self._me, old))
            # a new pair replaces the current key if the revocation takes it too: the key
            # revoked, or its successor by a rotation signed at or after ``start``
            replaced = old.public.key_id in known.doomed(cert.kid, start)
            named = await self._fresh_pair() if replaced else old
            signer = old  # the envelope goes out under the key the peers know now
            ring = self._ring

            def work(conn: Connection) -> tuple[dict[str, Any], list[str], Effects]:
                now = self._clock.now_ms()
                history = own_history(conn, self._me, old)
                statement = make_revocation(self._me, cert.raw, named, start, now)
                try:
                    after = history.revoke(parse_revocation(statement), now)
                except KeyStatementError as exc:
                    raise HotlineError("bad-revocation-cert", f"cert: {exc.message}") from None
                key_store.save(conn, after, statement, revocation=statement)
                log_store.append_one(conn, "key-revocation", {
                    "party": self._me, "statement": statement}, now)
                told, effects = self._announce(conn, REVOKE_TYPE, statement, signer, now)
                ring.switch(named)
                return statement, told, effects

            statement, told, effects = await self._db.write(work)
        self._apply(effects)
        return self._change(named, told, statement)

    def current_kid(self) -> str:
        return self._ring.current.public.key_id

    def certificate(self) -> dict[str, Any]:
        """A revocation certificate for the current key (to be kept offline)."""
        return make_certificate(self._me, self._ring.current, self._clock.now_ms())
