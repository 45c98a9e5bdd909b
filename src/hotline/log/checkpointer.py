"""Asking each peer to cosign this node's log.

Every second the task looks at each linked peer: if the log has grown since the last
checkpoint that peer cosigned, and ``checkpoint_seconds`` have passed or
``checkpoint_entries`` entries were added, it signs a checkpoint of the current tree,
proves it extends the one the peer cosigned last, and posts both to the peer. The
cosignature that comes back is verified and stored. A refusal is an alarm: the peer says
this node's log no longer extends what it vouched for (or that this node equivocated),
and the node's own verification names the first entry that broke.

An exchange that fails (the peer unreachable, a refusal, a cosignature that does not
verify) is tried again on a capped exponential backoff per peer, not every second: a
peer down for days is asked about once a minute, and a witness that refuses is not made
to log a refusal every second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
from sqlalchemy import Connection, select

from hotline.clock import Clock
from hotline.delivery.backoff import Backoff
from hotline.delivery.transport import ANSWER_BASE_BYTES, TOTAL_TIMEOUTS, read_capped
from hotline.errors import HotlineError
from hotline.events import BackgroundTask
from hotline.health.alarms import Alarm, Alarms
from hotline.log.merkle import (
    consistency_proof,
    consistency_proof_from,
    verify_consistency,
)
from hotline.log.verify import verify_database
from hotline.peers import PeerDirectory
from hotline.protocol import canonical
from hotline.protocol.checkpoint import make_checkpoint, verify_checkpoint, verify_cosignature
from hotline.protocol.keys import KeyRing, PartyKeys, b64e
from hotline.store import log as log_store
from hotline.store import outbox
from hotline.store.database import Database
from hotline.store.links import Link
from hotline.store.schema import log_checkpoints
from hotline.waits import cancel_and_wait

log = logging.getLogger("hotline.log")
security_log = logging.getLogger("hotline.security")
CHECKPOINT_PATH = "/federation/v1/checkpoints"
TICK_SECONDS = 1.0
#: the longest wait between tries of a failing exchange with one peer (seconds)
RETRY_MAX_SECONDS = 60.0
#: A witness's verdicts that this node's log does not extend what it cosigned.
REFUSALS = frozenset({"equivocation", "checkpoint-shrinks", "inconsistent-checkpoint",
                      "invalid-tree-head"})

#: POSTs a JSON body to a URL and returns the answer's body; raises ``httpx.HTTPError``
#: when no answer came. HTTP by default; the simulation harness passes one in memory.
Poster = Callable[[str, bytes], Awaitable[bytes]]


async def post_checkpoint(client: httpx.AsyncClient, url: str, body: bytes) -> bytes:
    """POST a checkpoint request; the answer's body. A cosignature or a refusal is a few
    hundred bytes: an answer past :data:`ANSWER_BASE_BYTES` raises ``ValueError``
    (:class:`AnswerTooLarge`) instead of being buffered; ``httpx.HTTPError`` if none."""
    async with client.stream("POST", url, content=body,
                             headers={"content-type": "application/json"}) as response:
        return await read_capped(response, ANSWER_BASE_BYTES)


@dataclass(frozen=True)
class Cosigned:
    size: int
    root: bytes
    at: int


def last_cosigned(conn: Connection, me: str, witness: str) -> Cosigned | None:
    row = conn.execute(select(log_checkpoints.c.size, log_checkpoints.c.root,
                              log_checkpoints.c.at)
                       .where(log_checkpoints.c.origin == me,
                              log_checkpoints.c.witness == witness)
                       .order_by(log_checkpoints.c.size.desc()).limit(1)).first()
    return None if row is None else Cosigned(int(row.size), bytes(row.root), int(row.at))


class Checkpointer(BackgroundTask):
    task_name = "checkpointer"

    def __init__(self, *, me: str, keys: PartyKeys, peers: PeerDirectory, db: Database,
                 clock: Clock, every_seconds: float, every_entries: int, timeout: float,
                 alarms: Alarms, post: Poster | None = None,
                 tick_s: float = TICK_SECONDS, rng: random.Random | None = None) -> None:
        super().__init__()
        self._me = me
        self._keys = keys
        self._peers = peers
        self._db = db
        self._clock = clock
        self._every_ms = int(every_seconds * 1000)
        self._every_entries = every_entries
        self._client = httpx.AsyncClient(timeout=timeout)
        self._total = timeout * TOTAL_TIMEOUTS
        self._post_body = post or self._http_post
        self._tick_s = tick_s
        self._alarms = alarms
        #: per peer: the error id of the refusal last seen and the alarm's message for it
        self.alarms: dict[str, tuple[str, str]] = {}
        # When each peer last cosigned, on the monotonic clock: the interval between
        # checkpoints is a duration (a wall-clock step neither rushes nor stalls it).
        self._cosigned_mono: dict[str, float] = {}
        # per peer: the failing exchange's backoff, and when (monotonic) to try again
        self._backoffs: dict[str, Backoff] = {}
        self._retry_at: dict[str, float] = {}
        self._rng = rng or random.Random()  # the backoffs' jitter (seeded in simulations)

    async def stop(self) -> None:
        await super().stop()
        await self._client.aclose()

    async def _run(self) -> None:
        # One loop per peer: a peer that hangs until its request times out holds back
        # only its own checkpoints. An unexpected error in any loop ends this run (the
        # supervisor logs, alarms and restarts it), and with it every loop.
        loops: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                for link in self._peers.all():
                    if link.party not in loops:
                        loops[link.party] = asyncio.create_task(
                            self._peer_loop(link.party), name=f"checkpoints-{link.party}")
                for task in loops.values():
                    if task.done():
                        task.result()  # raises what ended it
                await asyncio.sleep(self._tick_s)
        finally:
            await cancel_and_wait(list(loops.values()), what="checkpoint loop")

    async def _peer_loop(self, party: str) -> None:
        while True:
            link = self._peers.get(party)
            if link is not None:
                await self._tick(link)
            await asyncio.sleep(self._tick_s)

    async def _tick(self, link: Link) -> None:
        if self._clock.monotonic() < self._retry_at.get(link.party, -float("inf")):
            return  # a failed exchange waits out its backoff
        try:
            await self.maybe_checkpoint(link)
        except (HotlineError, httpx.HTTPError) as exc:
            # one peer's trouble is that peer's; anything unexpected goes up to the
            # supervisor (logged, alarmed, restarted)
            delay = self._hold_off(link.party)
            log.warning("checkpoint with %s failed: %s (next try in %.0f s)", link.party,
                        exc, delay)

    def _hold_off(self, party: str) -> float:
        """Record a failed exchange with ``party``; the seconds until the next try."""
        backoff = self._backoffs.setdefault(
            party, Backoff(self._tick_s, max(self._tick_s, RETRY_MAX_SECONDS),
                           rng=self._rng))
        delay = backoff.next_delay()
        self._retry_at[party] = self._clock.monotonic() + delay
        return delay

    def _went_through(self, party: str) -> None:
        self._backoffs.pop(party, None)
        self._retry_at.pop(party, None)

    async def maybe_checkpoint(self, link: Link, force: bool = False) -> bool:
        """Exchange a checkpoint with ``link`` if one is due; True if one was cosigned."""
        def read(conn: Connection) -> tuple[log_store.State, Cosigned | None, bool]:
            return (log_store.read_state(conn), last_cosigned(conn, self._me, link.party),
                    outbox.key_change_waiting(conn, link.party))
        state, last, key_change = await self._db.read(read)
        if last is not None and state.size <= last.size:
            return False
        if key_change:
            # our new key is announced on the line but not yet taken: a checkpoint it
            # signs would be refused; wait for the peer's receipt of the announcement
            return False
        grown = state.size - (last.size if last else 0)
        since = self._clock.monotonic() - self._cosigned_mono.get(link.party, -float("inf"))
        if not force and last is not None and grown < self._every_entries \
                and since * 1000 < self._every_ms:
            return False
        return await self._exchange(link, state.size, state.frontier.root(), last)

    async def _exchange(self, link: Link, size: int, root: bytes,
                        last: Cosigned | None) -> bool:
        checkpoint = make_checkpoint(self._me, size, root, self._clock.now_ms(), self._keys)
        base = last.size if last else 0
        for _attempt in range(2):
            answer = await self._post(link, checkpoint, base, size, root)
            if "cosignature" in answer:
                try:
                    await self._store(link, checkpoint, answer["cosignature"])
                except HotlineError as exc:
                    # not what we asked it to vouch for: kept nowhere, tried again later
                    security_log.warning("refused cosignature from %s: %s: %s", link.party,
                                         exc.error_id, exc.message)
                    self._hold_off(link.party)
                    return False
                self._cosigned_mono[link.party] = self._clock.monotonic()
                self._went_through(link.party)
                self.alarms.pop(link.party, None)
                return True
            if answer.get("error") == "stale-base" and isinstance(answer.get("latest_size"),
                                                                  int):
                base = answer["latest_size"]  # it cosigned more than we stored: a crash
                continue
            self._hold_off(link.party)
            await self._refused(link, answer)
            return False
        self._hold_off(link.party)
        return False

    async def _post(self, link: Link, checkpoint: dict[str, Any], base: int,
                    size: int, root: bytes) -> dict[str, Any]:
        proof: list[bytes] = []
        if 0 < base < size:
            proof = await self._db.read(lambda conn: self._proof(conn, base, size, root))
        body = {"checkpoint": checkpoint, "from_size": base, "proof": [b64e(h) for h in proof]}
        last_error: Exception | None = None
        for endpoint in link.endpoints:
            try:
                # bounded as a whole: a peer answering a byte at a time must not hold
                # its line's checkpoints for ever
                async with asyncio.timeout(self._total):
                    raw = await self._post_body(endpoint + CHECKPOINT_PATH,
                                                canonical.encode(body))
                answer = json.loads(raw)
                if not isinstance(answer, dict):
                    raise ValueError("the answer is not a JSON object")
                return answer
            except (httpx.HTTPError, ValueError, TimeoutError) as exc:
                last_error = exc
        raise HotlineError("peer-unreachable", f"{link.party}: {last_error}")

    async def _http_post(self, url: str, body: bytes) -> bytes:
        return await post_checkpoint(self._client, url, body)

    def _proof(self, conn: Connection, base: int, size: int, root: bytes) -> list[bytes]:
        """From the stored subtree roots, checked against the tree's root before it is
        sent; if they disagree (the node table was damaged) the leaves are rehashed."""
        tree = log_store.StoredTree(conn)
        try:
            proof = consistency_proof_from(tree.subtree, base, size)
            if tree.subtree(0, size) == root and verify_consistency(
                    base, size, tree.subtree(0, base), root, proof):
                return proof
        except LookupError:
            pass
        log.error("stored log nodes disagree with the entries; proving from the leaves")
        return consistency_proof(log_store.leaves(conn, size), base, size)

    async def _store(self, link: Link, checkpoint: dict[str, Any],
                     cosignature: object) -> None:
        """Verify ``cosignature`` against our own checkpoint (the tree rules included)
        and keep it; ``bad-cosignature``/``invalid-tree-head`` and nothing stored if it
        is not exactly what we asked ``link`` to vouch for."""
        own = self._keys.pair(str(checkpoint.get("kid"))) \
            if isinstance(self._keys, KeyRing) else None
        cp = verify_checkpoint(checkpoint, (own or self._keys).public, self._me)
        kid = cosignature.get("kid") if isinstance(cosignature, dict) else None
        witness = (self._peers.keys_by_id(link.party) or {}).get(kid) \
            if isinstance(kid, str) else None
        verify_cosignature(cosignature, witness or link.keys, cp, expect_witness=link.party)
        at = cosignature.get("at") if isinstance(cosignature, dict) else None
        refusal = None if type(at) is not int else \
            self._peers.refusal(link.party, str(kid), at)
        if refusal is not None:
            raise HotlineError(refusal.error_id, f"cosignature: {refusal.message}",
                               status=refusal.status)
        now = self._clock.now_ms()

        def store(conn: Connection) -> None:
            conn.execute(log_checkpoints.insert().values(
                origin=self._me, witness=link.party, size=cp.size, root=cp.root,
                checkpoint=canonical.encode(checkpoint).decode(),
                cosignature=canonical.encode(cosignature).decode(), at=now))
        await self._db.write(store)

    async def _refused(self, link: Link, answer: dict[str, Any]) -> None:
        detail = f"{link.party} refused our checkpoint: {answer.get('error')}: " \
                 f"{answer.get('message')}"
        if answer.get("error") not in REFUSALS:  # not a verdict on our log: retry later
            log.warning("%s", detail)
            return
        alarm = Alarm("checkpoint-refused", link.party, detail,
                      {"peer": link.party, "error": answer.get("error")})
        verdict = self.alarms.get(link.party)
        error_id = str(answer.get("error"))
        if verdict is not None and verdict[0] == error_id:
            # The same verdict again (its message names the new size each time the log
            # grew, so it is the error id that is compared): the whole log was verified
            # for it already, and the line and alarm are not repeated. It is raised again
            # only if an operator cleared it meanwhile (the cause stands).
            if not any(a.cause == alarm.key for a in await self._alarms.standing()):
                await self._alarms.raise_(replace(alarm, message=verdict[1]))
            return
        report = await self._db.read(lambda conn: verify_database(
            conn, self._me, {**self._peers.known_keys(), self._me: self._keys.public}))
        if report.problems:
            message = f"{detail}; our own log breaks at entry {report.problems[0].index}: " \
                      f"{report.problems[0].message}"
        else:
            message = f"{detail}; our own log verifies against every cosigned checkpoint"
        self.alarms[link.party] = (error_id, message)
        security_log.error("ALARM %s", message)
        await self._alarms.raise_(replace(alarm, message=message))

