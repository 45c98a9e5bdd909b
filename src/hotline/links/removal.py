"""Removing a link, on either side of it, so that nothing it carried ends silently.

``remove`` (this node's operator): in one transaction every open call with the party is
ended with our signed ``cancelled`` statement (reason "link removed"), every envelope
still waiting for it is marked ``undeliverable: link removed`` (one log entry each), a
``link.removed`` notice is sealed to the peer under the link's keys, and the link is
marked removed and moved to its next generation (:mod:`hotline.protocol.generation`);
a ``link-removed`` log entry names all of it. After the commit the notice is sent
straight to the peer's endpoints with a bounded wait: the peer's signed receipt is
stored (a ``receipt`` log entry: the peer was told), or the notice is marked
undeliverable with the reason (it is not retried: the link's keys are no longer used).

``on_notice`` (the peer's notice arrived, inside the receiver's transaction): the same
ends on this side, with reason "link removed by PEER", the same log entries, and a
``link-removed`` alarm for the operators.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from hotline.calls.directory import Directory
from hotline.calls.service import CallService
from hotline.clock import Clock
from hotline.delivery.outbound import Outbound
from hotline.delivery.transport import Transport, TransportError
from hotline.effects import Effects
from hotline.errors import HotlineError, LinkError
from hotline.health.alarms import Alarm, Alarms
from hotline.peers import PeerDirectory
from hotline.protocol.envelope import Envelope
from hotline.protocol.generation import REMOVED_TYPE, first_seq, generation_of
from hotline.protocol.receipt import message_digest, verify_receipt
from hotline.store import alarms as alarm_store
from hotline.store import calls as call_store
from hotline.store import directory as directory_store
from hotline.store import links as link_store
from hotline.store import log as log_store
from hotline.store import outbox
from hotline.store.database import Database
from hotline.store.links import Link
from hotline.store.schema import conversations, inbound

log = logging.getLogger("hotline.links")

#: How long ``remove`` waits for the peer to take the notice, by default (seconds).
DEFAULT_WAIT_S = 10.0
MAX_WAIT_S = 120.0
#: Alarms about the line that end with it.
#: alarms about the live line, by cause ``KIND:PARTY``; and ``endpoint-down:PARTY:URL``
#: per endpoint (:mod:`hotline.links.prober`): all cleared when the link is removed
LINE_ALARMS = ("line-down", "clock-skew", "link-degraded", "link-down")
ENDPOINT_ALARM = "endpoint-down"


def no_such_link(party: str) -> LinkError:
    return LinkError("no-link", f"there is no link with {party}; nothing was changed",
                     hint="`hotline link list` shows the links in force", status=404)


@dataclass(frozen=True)
class Affected:
    """What a removal ends: envelopes waiting (id, seq, type, subject), open calls
    (id, direction, state), conversations the party is a member of, and whether the
    directory still holds a link policy for it."""

    party: str
    generation: int
    queued: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    conversations: list[str]
    policy: bool

    def as_dict(self) -> dict[str, Any]:
        return {"party": self.party, "generation": self.generation, "queued": self.queued,
                "calls": self.calls, "conversations": self.conversations,
                "policy_left": self.policy}


@dataclass
class Removed:
    """The outcome of a removal, as the CLI and the API report it."""

    affected: Affected
    generation: int
    notice: str
    told: bool = False
    not_told: str | None = None
    ended_calls: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.affected.as_dict(), "generation": self.generation,
                "notice": self.notice, "peer_told": self.told, "not_told": self.not_told,
                "ended_calls": self.ended_calls}


def _affected(conn: Connection, link: Link, policy: bool) -> Affected:
    queued = [{"id": w.envelope_id, "seq": w.seq, "type": w.type, "subject": w.subject}
              for w in outbox.waiting(conn, link.party)]
    calls = [{"id": c.id, "direction": c.direction, "state": c.state}
             for c in call_store.open_with(conn, link.party)]
    convs = [r.id for r in conn.execute(select(conversations.c.id, conversations.c.members))
             if link.party in json.loads(r.members)]
    return Affected(link.party, link.generation, queued, calls, sorted(convs), policy)


def _held(conn: Connection, env: Envelope) -> int:
    """Envelopes of the notice's generation from its sender, stored but never released
    (waiting behind a gap that will now never fill), the notice itself aside."""
    first = first_seq(generation_of(env.header.seq))
    return int(conn.execute(select(func.count()).select_from(inbound).where(
        inbound.c.peer == env.header.sender, inbound.c.release_no.is_(None),
        inbound.c.seq >= first, inbound.c.envelope_id != env.header.id)).scalar_one())


class LinkRemoval:
    def __init__(self, *, outbound: Outbound, peers: PeerDirectory, db: Database,
                 clock: Clock, calls: CallService, alarms: Alarms, transport: Transport,
                 directory: Callable[[], Directory],
                 pause: Callable[[str, float], Awaitable[bool]],
                 settle: Callable[[str], Awaitable[None]]) -> None:
        """``pause(party, within_s)`` stops the party's sender once the batch it has on
        the line has its answer (its receipts stored: what the peer took is delivered,
        not given up), waiting at most ``within_s``; False if the wait ran out.
        ``settle(party)`` brings the node's view of the links up to date after
        (the sender retired if the link was removed, started again if not)."""
        self._out = outbound
        self._me = outbound.me
        self._keys = outbound.keys
        self._peers = peers
        self._db = db
        self._clock = clock
        self._calls = calls
        self._alarms = alarms
        self._transport = transport
        self._directory = directory
        self._pause = pause
        self._settle = settle

    async def _link(self, party: str) -> Link:
        await self._peers.reload()
        link = self._peers.get(party)
        if link is None:
            raise no_such_link(party)
        return link

    async def preview(self, party: str) -> Affected:
        """What removing the link with ``party`` would end; changes nothing."""
        link = await self._link(party)
        policy = self._directory().policy_for(party) is not None
        return await self._db.read(lambda conn: _affected(conn, link, policy))

    async def remove(self, party: str, wait_s: float = DEFAULT_WAIT_S) -> Removed:
        """Remove the link with ``party`` (see the module's docstring)."""
        if not 0 < wait_s <= MAX_WAIT_S:
            raise HotlineError("bad-option", f"wait: {wait_s} s is outside 0..{MAX_WAIT_S:g}")
        link = await self._link(party)
        policy = self._directory().policy_for(party) is not None
        log.info("removing the link with %s: its sender finishes the batch on the line",
                 party)
        if not await self._pause(party, wait_s):
            log.warning("removing the link with %s: a batch was still on the line after "
                        "%g s; it is given up with the rest, though %s may have taken it",
                        party, wait_s, party)
        try:
            removed, notice, effects = await self._db.write(
                lambda conn: self._end_here(conn, link, policy))
        finally:
            await self._settle(party)
        self._alarms.apply(effects)
        notice.wait_s = wait_s
        error = await self._send_notice(link, notice)
        removed.told = error is None
        removed.not_told = error
        now = self._clock.now_ms()
        if notice.receipt is not None:
            receipt = notice.receipt
            await self._db.write(lambda conn: outbox.mark_delivered(
                conn, [(notice.pending.envelope_id, receipt, now)]))
        else:
            await self._db.write(lambda conn: outbox.give_up_one(
                conn, link.party, notice.pending.envelope_id,
                f"undeliverable: the link-removed notice was not taken: {error}", now))
        return removed

    def _end_here(self, conn: Connection, link: Link, policy: bool
                  ) -> tuple[Removed, _Notice, Effects]:
        now = self._clock.now_ms()
        effects = Effects()
        affected = _affected(conn, link, policy)
        reason = "link removed"
        ended = self._calls.end_for_link(conn, link.party, reason, now, effects)
        outbox.give_up(conn, link.party, f"undeliverable: {reason}", now)
        payload = {"generation": link.generation, "reason": f"link removed by {self._me}",
                   "undeliverable": len(affected.queued), "calls": ended}
        pending = self._out.enqueue(conn, link.party, REMOVED_TYPE, [payload], now)[0]
        generation = link_store.mark_removed(conn, link.party, now)
        self._log(conn, link.party, self._me, generation, pending.envelope_id, affected,
                  ended, now)
        self._clear_line_alarms(conn, link.party, now, effects)
        removed = Removed(affected, generation, pending.envelope_id, ended_calls=ended)
        return removed, _Notice(pending), effects

    def _log(self, conn: Connection, party: str, by: str, generation: int, notice: str,
             affected: Affected, ended: list[str], now: int, held: int | None = None) -> None:
        body: dict[str, Any] = {
            "party": party, "by": by, "generation": generation, "notice": notice,
            "undeliverable": [q["id"] for q in affected.queued], "calls": ended,
            "conversations": affected.conversations}
        if held is not None:
            body["held"] = held
        log_store.append_one(conn, "link-removed", body, now, subject=party)

    def _clear_line_alarms(self, conn: Connection, party: str, now: int,
                           effects: Effects) -> None:
        """What described the live line goes with it: its alarms and the desks the
        party reported (no call can reach them now)."""
        directory_store.replace_desks(conn, party, [])
        causes = [f"{kind}:{party}" for kind in LINE_ALARMS]
        causes += [row.cause for row in alarm_store.standing(conn)
                   if row.cause.startswith(f"{ENDPOINT_ALARM}:{party}:")]
        for cause in causes:
            self._alarms.clear_in(conn, cause, now, effects, by="link removed")

    async def _send_notice(self, link: Link, notice: _Notice) -> str | None:
        """Deliver the notice to one of the peer's endpoints within the wait; None if
        its receipt verified, else what went wrong (every endpoint's last error)."""
        pending = notice.pending
        digest = message_digest(envelope_id=pending.envelope_id, sender=self._me,
                                recipient=link.party, seq=pending.seq, type_=pending.type,
                                payload=json.loads(pending.payload))
        errors: list[str] = []
        try:
            async with asyncio.timeout(notice.wait_s):
                for endpoint in link.endpoints:
                    try:
                        answer = await self._transport.post_batch(endpoint,
                                                                  [pending.envelope])
                    except TransportError as exc:
                        errors.append(str(exc))
                        continue
                    result = answer.results[0] if answer.results else {}
                    raw = result.get("receipt") if isinstance(result, dict) else None
                    if not isinstance(raw, str):
                        errors.append(f"{endpoint}: {link.party} answered "
                                      f"{result.get('error', answer.status)}: "
                                      f"{result.get('message', '')}" if isinstance(
                                          result, dict) else f"{endpoint}: no receipt")
                        continue
                    try:
                        verify_receipt(raw.encode(), signer=link.keys,
                                       signer_party=link.party,
                                       envelope_id=pending.envelope_id, sender=self._me,
                                       seq=pending.seq, digest=digest)
                    except HotlineError as exc:
                        errors.append(f"{endpoint}: bad receipt: {exc.message}")
                        continue
                    notice.receipt = raw.encode()
                    return None
        except TimeoutError:
            errors.append(f"no receipt within {notice.wait_s:g} s")
        return "; ".join(errors) or "the link has no endpoint"

    async def settle_after_restart(self) -> None:
        """Give up what still waits for a removed link: only a notice whose sending a
        crash or stop interrupted can (it is not sent again, as after a failed wait)."""
        def work(conn: Connection) -> int:
            now = self._clock.now_ms()
            return sum(len(outbox.give_up(
                conn, link.party, "undeliverable: the node stopped before the "
                "link-removed notice was sent", now)) for link in link_store.removed_links(conn))
        await self._db.write(work)

    # -- the peer removed the link ------------------------------------------------------
    def on_notice(self, conn: Connection, env: Envelope, now: int) -> Effects:
        """The peer's ``link.removed`` notice, stored just now in the receiver's
        transaction: end the link here too (see the module's docstring)."""
        peer = env.header.sender
        effects = Effects()
        link = self._peers.get(peer)
        if link is None or not link_store.in_force(conn, peer):
            return effects  # removed meanwhile by our own operator: nothing more to end
        affected = _affected(conn, link, self._directory().policy_for(peer) is not None)
        reason = f"link removed by {peer}"
        ended = self._calls.end_for_link(conn, peer, reason, now, effects)
        outbox.give_up(conn, peer, f"undeliverable: {reason}", now)
        held = _held(conn, env)
        generation = link_store.mark_removed(conn, peer, now)
        self._log(conn, peer, peer, generation, env.header.id, affected, ended, now,
                  held=held)
        self._clear_line_alarms(conn, peer, now, effects)
        queued = len(affected.queued)
        self._alarms.raise_in(conn, Alarm(
            "link-removed", peer,
            f"{peer} removed its link with us: {queued} message(s) to it will not be "
            f"delivered, {len(ended)} open call(s) ended; it is refused from now on until "
            "a new offer is accepted on both sides",
            {"undeliverable": queued, "calls": ended, "held": held,
             "conversations": affected.conversations, "generation": generation},
            cause=f"link-removed:{peer}"), now, effects)
        effects.links = True
        return effects


@dataclass
class _Notice:
    pending: outbox.Pending
    receipt: bytes | None = None
    wait_s: float = DEFAULT_WAIT_S
