"""The composition root: builds every part of a node explicitly and runs it.

Nothing else constructs services or looks them up globally; each part receives exactly
the collaborators it uses, so the dependency graph is readable here in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import random
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Connection
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from hotline.accounts.service import AccountService
from hotline.api.app import build_app
from hotline.api.calls import CallServices
from hotline.api.connections import ConnectionGuard
from hotline.api.incidents import IncidentServices
from hotline.api.metrics import metrics_endpoint
from hotline.api.operator import OperatorServices
from hotline.authz.guard import Guard, sees_subject
from hotline.authz.policy import Actor, Admin
from hotline.authz.tokens import TokenBook
from hotline.calls.conversations import ConversationService
from hotline.calls.desks import DeskService
from hotline.calls.dispatch import Dispatcher
from hotline.calls.duty import DutyService
from hotline.calls.feed import Feed
from hotline.calls.handover import CHECK_INTERVAL_S as DUTY_CHECK_S
from hotline.calls.handover import DutyWatch
from hotline.calls.registry import DirectoryAdmin, Registry
from hotline.calls.service import CallService
from hotline.clock import Clock, SteadyWall, SystemClock
from hotline.console.audit import AuditServices, LogPage, LogQuery
from hotline.console.web import ConsoleServices
from hotline.delivery.backoff import Backoff
from hotline.delivery.messenger import BulkBound, Messenger
from hotline.delivery.outbound import Outbound
from hotline.delivery.sender import PeerHealth, PeerSender
from hotline.delivery.transport import HttpTransport, Transport, TransportError
from hotline.effects import Effects
from hotline.errors import HotlineError
from hotline.escalation.timers import TimerRunner
from hotline.events import Broadcaster
from hotline.federation.admission import Admission
from hotline.federation.keys import KeyStatements
from hotline.federation.linktest import LinkTestAnswerer
from hotline.federation.receiver import Receiver
from hotline.forms.service import NoticeService
from hotline.health.alarms import Alarm, Alarms
from hotline.health.clockwatch import CHECK_INTERVAL_S, ClockWatch
from hotline.health.supervisor import Supervisor, TaskState
from hotline.inbox import Inbox
from hotline.incidents.service import IncidentService
from hotline.integrity.findings import StateReport
from hotline.integrity.run import check_all
from hotline.keys.service import KeyService, own_history
from hotline.links.prober import LinkProber, Post
from hotline.links.removal import DEFAULT_WAIT_S as RETIRE_WAIT_S
from hotline.links.removal import LinkRemoval
from hotline.log.checkpointer import TICK_SECONDS, Checkpointer, Poster
from hotline.log.verify import Report, verify_database
from hotline.log.witness import Witness
from hotline.logfmt.events import log_journal
from hotline.metrics.collector import StateCollector, StatusReadings
from hotline.metrics.exposition import Metrics
from hotline.metrics.recorder import Recorder
from hotline.nodedir.config import (
    KEYSTORE_NAME,
    TOKEN_NAME,
    NodeConfig,
    load_config,
    unlinked_sections,
)
from hotline.nodedir.keystore import unlock_all
from hotline.nodedir.token import TokenChecker
from hotline.notify.runner import Notifier
from hotline.peers import PeerDirectory
from hotline.protocol.keys import KeyRing, PartyKeys
from hotline.protocol.lanes import CONTROL, LANES, Lane
from hotline.serving import Server
from hotline.status import (
    AlarmStatus,
    PeerStatus,
    TaskStatus,
    alarm_status,
    line_status,
    task_status,
)
from hotline.store import incidents as incident_store
from hotline.store import links as link_store
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.engine import create_engine
from hotline.store.journal import Entry
from hotline.store.links import Link
from hotline.store.migrate import upgrade
from hotline.store.notifications import Notification
from hotline.store.outbox import Pending
from hotline.waits import within

log = logging.getLogger("hotline.node")
security_log = logging.getLogger("hotline.security")

EXIT_STORAGE_FATAL = 70
LINK_POLL_SECONDS = 2.0
DESK_REPORT_SECONDS = 1.0
LINE_WATCH_SECONDS = 5.0
SKEW_ALARM_SHARE = 0.5   # a peer's clock offset past half the skew window is an alarm
SKEW_CLEAR_SHARE = 0.4   # and under 40 % clears it (no flapping at the boundary)
SEND_BATCH_BYTES = 4 * 1024 * 1024
#: how long an operator's first bulk send to a peer waits to learn the peer's protocol
PROTOCOL_ASK_S = 2.0
RECEIVE_BATCH_LIMIT = 8 * 1024 * 1024


def _return_free_memory() -> None:
    """Hand memory freed after start-up (imports, the 64 MiB Argon2id unlock) back to the
    OS, so an idle node's resident size reflects what it really holds."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass(frozen=True)
class Polls:
    """How often idle background tasks look for what nothing woke them for: rows written
    by another process (a second node on the same PostgreSQL, the offline CLI), presence
    that expires, the wall clock. Whatever this process changes wakes its task at once;
    these bound only how late the rest is seen. The simulation harness (``tests/sim``)
    lengthens them, since nothing writes beside its nodes: an idle virtual day then costs
    little, and a missing wake-up shows as lateness instead of hiding behind a poll."""

    timers_s: float = 1.0
    notifier_s: float = 1.0
    links_s: float = LINK_POLL_SECONDS
    desks_s: float = DESK_REPORT_SECONDS
    checkpoints_s: float = TICK_SECONDS
    clock_s: float = CHECK_INTERVAL_S
    duty_s: float = DUTY_CHECK_S


def _storage_fatal(exc: BaseException) -> None:
    """A failed commit leaves the database state unknown: stop now, recover on restart."""
    log.critical("storage failure, stopping the node: %s", exc)
    logging.shutdown()
    os._exit(EXIT_STORAGE_FATAL)


class Node:
    def __init__(self, node_dir: Path, config: NodeConfig, keys: PartyKeys,
                 clock: Clock | None = None, *, transport: Transport | None = None,
                 checkpoint_post: Poster | None = None,
                 notify_client: httpx.AsyncClient | None = None,
                 polls: Polls | None = None, rng: random.Random | None = None,
                 kek: bytes | None = None, linktest_post: Post | None = None) -> None:
        """``transport``, ``checkpoint_post`` and ``notify_client`` replace the node's
        network edges (HTTP to peers, HTTP to webhooks); the simulation harness
        (``tests/sim``) passes in-memory ones, and a seeded ``rng`` for the senders'
        backoff jitter so that a run replays. By default the node makes its own.
        ``keys``: a :class:`KeyRing` of every pair in the keystore (or one pair); ``kek``:
        the keystore's key-encryption key, without which ``key rotate`` is refused.
        ``linktest_post`` carries link tests (default: HTTP); a node given its own
        ``transport`` but no ``linktest_post`` runs no link tests (the simulation
        harness's network carries batches only)."""
        self._rng = rng
        self.polls = polls = polls or Polls()
        self.dir = node_dir
        self.config = config
        # One ring shared by every part that signs: a rotation switches it for all.
        self.keys = ring = keys if isinstance(keys, KeyRing) else KeyRing([keys])
        keys = ring
        # The node's one time base: wall time that moves with the monotonic clock and
        # steps only together with the persisted deadlines (see clock.py, docs/time.md).
        self.clock = SteadyWall(clock or SystemClock())
        delivery = config.delivery
        self.db = Database(create_engine(config.db), _storage_fatal, hooks=[log_store.HOOKS])
        self.peers = PeerDirectory(self.db, self.clock,
                                   grace_ms=int(delivery.key_grace_seconds * 1000))
        self.transport = transport or HttpTransport(delivery.request_timeout_seconds)
        self.inbox = Inbox(self.db)
        #: the event series of /metrics (this node's own registry)
        self.recorder = Recorder()
        self.senders: dict[str, PeerSender] = {}
        self.messenger = Messenger(me=config.party, keys=keys, peers=self.peers,
                                   db=self.db, clock=self.clock,
                                   on_enqueued=self._wake_sender,
                                   bound=BulkBound(config.delivery.bulk_queue_max_messages,
                                                   config.delivery.bulk_queue_max_bytes),
                                   protocol=config.delivery.protocol,
                                   learn=self._learn_protocol)
        self.registry = Registry(self.db, config.party)
        self.journal: Broadcaster[Entry] = Broadcaster()
        outbound = Outbound(me=config.party, keys=keys, peers=self.peers)
        self.calls = CallService(me=config.party, outbound=outbound, registry=self.registry,
                                 db=self.db, clock=self.clock)
        self.conversations = ConversationService(me=config.party, outbound=outbound,
                                                 registry=self.registry, db=self.db,
                                                 clock=self.clock)
        self.notices = NoticeService(me=config.party, outbound=outbound,
                                     registry=self.registry, db=self.db, clock=self.clock)
        self.incidents = IncidentService(me=config.party, outbound=outbound, db=self.db,
                                         clock=self.clock, holds=incident_store.holds)
        self.desks = DeskService(outbound=outbound, registry=self.registry, db=self.db,
                                 clock=self.clock)
        self.alarms = Alarms(db=self.db, clock=self.clock, apply=self.apply,
                             ring=self.calls.ring_alarm)
        self.removal = LinkRemoval(outbound=outbound, peers=self.peers, db=self.db,
                                   clock=self.clock, calls=self.calls, alarms=self.alarms,
                                   transport=self.transport,
                                   directory=lambda: self.registry.current,
                                   pause=self._pause_sender, settle=self._resume_sender)
        self._retiring: set[asyncio.Task[None]] = set()
        self._paused: set[str] = set()  # parties whose link is being removed
        self.timers = TimerRunner(db=self.db, clock=self.clock, fire=self.calls.on_timer,
                                  apply=self.apply, max_wait_s=polls.timers_s,
                                  on_fired=self.recorder.deadline_fired)
        self.notifier = Notifier(db=self.db, clock=self.clock, registry=self.registry,
                                 client=notify_client, max_wait_s=polls.notifier_s,
                                 on_gave_up=self._notification_failed,
                                 on_failing=self._notification_failing,
                                 on_channel_ok=self._channel_ok,
                                 on_outcome=self.recorder.notification)
        self.witness = Witness(me=config.party, keys=keys, peers=self.peers, db=self.db,
                               clock=self.clock, alarms=self.alarms)
        self.checkpointer = Checkpointer(
            me=config.party, keys=keys, peers=self.peers, db=self.db, clock=self.clock,
            every_seconds=config.log.checkpoint_seconds,
            every_entries=config.log.checkpoint_entries,
            timeout=delivery.request_timeout_seconds, alarms=self.alarms,
            post=checkpoint_post, tick_s=polls.checkpoints_s, rng=rng or random.Random())
        self.key_service = KeyService(me=config.party, ring=ring,
                                      keystore=node_dir / KEYSTORE_NAME, kek=kek,
                                      outbound=outbound, peers=self.peers, db=self.db,
                                      clock=self.clock, apply=self.apply)
        self.admission = Admission(config.admission, self.clock)
        self.admission.on_refused = self.recorder.rejected
        self.receiver = Receiver(me=config.party, keys=keys, peers=self.peers,
                                 db=self.db, clock=self.clock,
                                 skew_ms=delivery.skew_seconds * 1000,
                                 max_envelope_bytes=delivery.max_envelope_bytes,
                                 reorder_window=delivery.reorder_window,
                                 on_released=self.inbox.publish,
                                 dispatch=Dispatcher(calls=self.calls,
                                                     conversations=self.conversations,
                                                     desks=self.desks,
                                                     keys=KeyStatements(self.alarms),
                                                     handlers={
                                                         **self.notices.handlers(),
                                                         **self.incidents.handlers()}),
                                 on_effects=self.apply, admission=self.admission,
                                 on_removed=self.removal.on_notice,
                                 on_rejected=self.recorder.rejected,
                                 protocol=delivery.protocol)
        self.accounts = AccountService(me=config.party, db=self.db, clock=self.clock,
                                       registry=self.registry)
        self.supervisor = Supervisor(clock=self.clock, on_failure=self._task_failed,
                                     on_recovered=self._task_recovered)
        self.clock_watch = ClockWatch(clock=self.clock, db=self.db, alarms=self.alarms,
                                      interval_s=polls.clock_s)
        # who is on duty: the one answer for the API and console (escalation and desks
        # ask the same function, hotline.calls.duty.on_duty, inside their transactions)
        self.duty = DutyService(registry=self.registry, db=self.db, clock=self.clock)
        self.duty_watch = DutyWatch(registry=self.registry, db=self.db, clock=self.clock,
                                    alarms=self.alarms, interval_s=polls.duty_s)
        # link tests: this node's probes of its peers, and its answers to theirs
        self.prober = LinkProber(me=config.party, keys=keys, peers=self.peers,
                                 clock=self.clock, alarms=self.alarms, config=config.health,
                                 post=linktest_post)
        self._link_tests = transport is None or linktest_post is not None
        self.linktest = LinkTestAnswerer(me=config.party, keys=keys, peers=self.peers,
                                         clock=self.clock, skew_ms=delivery.skew_seconds * 1000)
        self.metrics = Metrics(self.recorder, StateCollector(
            db=self.db, clock=self.clock, status=self.status, tasks=self.tasks,
            readings=StatusReadings()))
        self.peers.on_change(self._sync_senders)
        self._started = False
        #: per peer: the seq we wait on and since when (monotonic), for the gap alarm
        self._gaps: dict[tuple[str, Lane], tuple[int, float]] = {}

    def apply(self, effects: Effects) -> None:
        """Carry out what a committed transaction asked for."""
        for line in effects.security:
            security_log.warning("%s", line)
        for party, pending in effects.outgoing:
            self._wake_sender(party, pending)
        for entry in effects.journal:
            self.journal.publish(entry)
        log_journal(effects.journal)
        if effects.timers:
            self.timers.wake()
        if effects.notifications:
            self.notifier.wake()
        if effects.links:
            self._later(self._settle_links())

    # -- senders -----------------------------------------------------------------------
    def _wake_sender(self, party: str, fresh: list[Pending]) -> None:
        sender = self.senders.get(party)
        if sender is not None:
            sender.offer(fresh)

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the caller (settling the senders after a link change,
        retiring a removed link's sender, clearing ``link-removed``). An error in it is
        logged with its stack and alarmed (``task-failed``); before, it was kept only
        for the stop, which dropped it."""
        name = str(getattr(work, "__qualname__", "background work"))
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._retiring.add(task)
        task.add_done_callback(self._later_done)

    def _later_done(self, task: asyncio.Task[None]) -> None:
        self._retiring.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        assert error is not None
        name = task.get_name()
        log.error("background work %s failed", name, exc_info=error)
        report = asyncio.get_running_loop().create_task(self._report_later(name, error))
        self._retiring.add(report)
        report.add_done_callback(self._retiring.discard)

    async def _report_later(self, name: str, error: BaseException) -> None:
        what = f"{type(error).__name__}: {error}"
        try:
            await self.alarms.raise_(Alarm(
                "task-failed", name, f"background work {name} failed: {what}"[:1000],
                {"task": name, "error": what[:500]}))
        except Exception:  # the alarm could not be stored: the log line above stands
            log.exception("alarming the failure of %s failed", name)

    async def _pause_sender(self, party: str, within_s: float) -> bool:
        """Stop ``party``'s sender once its batch on the line has its answer (at most
        ``within_s`` seconds; False if it ran out), and forget its task (a removed link's
        line is not failing, it is gone); :meth:`_resume_sender` starts it again if the
        link stays."""
        self._paused.add(party)
        sender = self.senders.pop(party, None)
        if sender is None:
            return True
        settled = await sender.finish(within_s)
        self.supervisor.forget(sender.task_name)
        return settled

    async def _resume_sender(self, party: str) -> None:
        self._paused.discard(party)
        await self._settle_links()

    async def _retire(self, sender: PeerSender) -> None:
        """Retire the sender of a link no longer in force (the peer removed it): the
        batch it has on the line keeps its receipts (what the peer took is delivered,
        not given up), waiting at most the removal's default wait."""
        if not await sender.finish(RETIRE_WAIT_S):
            log.warning("the line to %s ended with a batch still on it after %g s; it "
                        "stays undeliverable, though %s may have taken it",
                        sender.link.party, RETIRE_WAIT_S, sender.link.party)
        self.supervisor.forget(sender.task_name)

    async def _learn_protocol(self, party: str) -> None:
        """Ask ``party`` which protocol it speaks (``GET /federation/v1/protocol``, its
        endpoints in order, within ``PROTOCOL_ASK_S``), and keep the answer. No answer:
        nothing is kept, the caller uses the control lane, and the peer's next batch
        answer says it."""
        link = self.peers.get(party)
        if link is None:
            return
        for endpoint in link.endpoints:
            try:
                version = await within(self.transport.get_protocol(endpoint), PROTOCOL_ASK_S)
            except (TransportError, TimeoutError) as exc:
                log.info("%s did not say which protocol it speaks: %s", party, exc)
                continue
            await self._peer_protocol(party, version)
            return

    async def _peer_protocol(self, party: str, version: int) -> None:
        """A peer's answer named the protocol it speaks: kept on its link, so the next
        bulk message to it goes on the lane it has (docs/protocol.md, "Lanes")."""
        await self.db.write(lambda conn: link_store.set_protocol(conn, party, version))
        await self.peers.reload()

    async def _settle_links(self) -> None:
        """Bring the senders in line with the links in force now."""
        await self.peers.reload()
        self._sync_senders(self.peers.all())

    def _sync_senders(self, links: list[Link]) -> None:
        d = self.config.delivery
        live = {link.party for link in links}
        for party in [p for p in self.senders if p not in live]:  # removed links
            self._later(self._retire(self.senders.pop(party)))
        for link in links:
            if link.party in self._paused:
                continue
            sender = self.senders.get(link.party)
            if sender is not None:
                sender.link = link
                sender.wake()
                continue
            sender = PeerSender(me=self.config.party, link=link, db=self.db,
                                transport=self.transport, clock=self.clock,
                                backoff=Backoff(d.backoff_initial_seconds, d.backoff_max_seconds,
                                                rng=self._rng or random.Random()),
                                batch_size=d.batch_size, batch_bytes=SEND_BATCH_BYTES,
                                reseal=self.messenger.reseal, keys=self.peers,
                                reseal_after_ms=int(d.reseal_after_seconds * 1000),
                                order=self.prober.order(link.party),
                                on_delivered=self.recorder.delivered,
                                on_protocol=self._peer_protocol)
            self.senders[link.party] = sender
            if self._started:
                sender.start(self.supervisor)
            if link.generation > 0:  # removed once, in force again: its alarm is over
                self._later(self._link_back(link.party))

    async def _link_back(self, party: str) -> None:
        """A removed link accepted again: the ``link-removed`` alarm (the party "is
        refused until a new offer is accepted") no longer holds; cleared, so that a
        later removal is raised and rung afresh, not counted as a repeat."""
        await self.alarms.clear(f"link-removed:{party}", by="the link was accepted again")

    async def _poll_links(self) -> None:
        while True:
            await asyncio.sleep(self.polls.links_s)
            await self.peers.reload()

    # -- supervision -------------------------------------------------------------------
    async def _task_failed(self, name: str, error: BaseException) -> None:
        await self.alarms.raise_(Alarm(
            "task-failed", name, f"background task {name} failed and is being restarted: "
                                 f"{type(error).__name__}: {error}"[:1000],
            {"task": name, "error": f"{type(error).__name__}: {error}"[:500]}))

    async def _notification_failing(self, row: Notification, error: str) -> None:
        await self._notification_failed(row, error, final=False)

    async def _notification_failed(self, row: Notification, error: str,
                                   final: bool = True) -> None:
        """A notification could not be delivered by its retry deadline (or was refused
        for good), or keeps failing while it is retried: the people it is for are not
        being reached through that channel. One alarm per channel (coalesced)."""
        alert = row.alert
        still = "" if final else "; still retrying"
        await self.alarms.raise_(Alarm(
            "notification-failed", row.channel,
            f"an alert ({alert.get('kind')} for {alert.get('callee')}) could not be "
            f"delivered through channel {row.channel} after {row.attempts} attempt(s)"
            f"{still}: {error}"[:1000],
            {"channel": row.channel, "key": row.key, "attempts": row.attempts,
             "error": error[:500], "call": alert.get("call_id")}))

    async def _channel_ok(self, channel: str) -> None:
        await self.alarms.clear(f"notification-failed:{channel}")

    async def _task_recovered(self, name: str) -> None:
        await self.alarms.clear(f"task-failed:{name}")

    async def node_health(self) -> tuple[list[TaskStatus], list[AlarmStatus]]:
        return task_status(self.tasks()), alarm_status(await self.alarms.standing())

    async def _watch_lines(self) -> None:
        """Alarms about each line that the sender's status alone would only show: a peer
        whose every delivery attempt has failed for ``line_down_alarm_seconds`` (down,
        or refusing what we send), and a peer whose clock nears the skew limit (its
        envelopes and ours would soon be refused). Each is cleared when it is over."""
        d = self.config.delivery
        skew_ms = d.skew_seconds * 1000
        while True:
            # read afresh each round: an operator may have cleared one whose cause stands
            standing = {a.cause for a in await self.alarms.standing()
                        if a.kind in ("clock-skew", "line-down", "sequence-gap")}
            await self._watch_gaps(standing)
            for party, sender in list(self.senders.items()):
                h = sender.health
                failing = h.failing_since_mono
                down = failing is not None and \
                    self.clock.monotonic() - failing >= d.line_down_alarm_seconds
                await self._alarm_while(standing, f"line-down:{party}", down, Alarm(
                    "line-down", party,
                    f"nothing has reached {party} for "
                    f"{0 if failing is None else self.clock.monotonic() - failing:.0f} s: "
                    f"{h.last_error}"[:1000],
                    {"last_error": h.last_error, "unreachable_since": h.unreachable_since},
                    cause=f"line-down:{party}"), clear=failing is None)
                offset = h.clock_offset_ms
                if offset is None:
                    continue
                await self._alarm_while(standing, f"clock-skew:{party}",
                                        abs(offset) >= SKEW_ALARM_SHARE * skew_ms, Alarm(
                    "clock-skew", party,
                    f"{party}'s clock is {abs(offset) / 1000:.1f} s "
                    f"{'ahead of' if offset > 0 else 'behind'} ours; envelopes are "
                    f"refused beyond {skew_ms // 1000} s",
                    {"offset_ms": offset, "skew_ms": skew_ms}, cause=f"clock-skew:{party}"),
                    clear=abs(offset) < SKEW_CLEAR_SHARE * skew_ms)
            await asyncio.sleep(min(LINE_WATCH_SECONDS, max(0.1, d.gap_alarm_seconds / 4)))

    async def _watch_gaps(self, standing: set[str]) -> None:
        """The gap alarm, on both sides of a line: we have waited ``gap_alarm_seconds``
        (monotonic) on a missing sequence number from a peer, or a peer's gap report says
        it waits on one of ours that we cannot send (our outbox lost it) or that stays
        missing that long. Cleared when the gap closes."""
        limit = self.config.delivery.gap_alarm_seconds
        now = self.clock.monotonic()
        gaps = dict(self.receiver.gaps)
        for key in list(self._gaps):
            if key not in gaps:
                del self._gaps[key]
        parties = {party for party, _ in gaps} | set(self.senders)
        for party, lane in sorted((p, lane) for p in parties for lane in LANES):
            # the control lane keeps the alarm's cause it had before lanes
            tag = party if lane == CONTROL else f"{party}:{lane}"
            word = "" if lane == CONTROL else f"{lane} "
            seq = gaps.get((party, lane))
            if seq is not None and self._gaps.get((party, lane), (0, 0.0))[0] != seq:
                self._gaps[(party, lane)] = (seq, now)
            waited = now - self._gaps[(party, lane)][1] if seq is not None else 0.0
            await self._alarm_while(standing, f"sequence-gap:{tag}", waited >= limit, Alarm(
                "sequence-gap", party,
                f"waiting {waited:.0f} s on {word}seq {seq} from {party}: the envelopes "
                "after it are stored but held back until it arrives",
                {"peer": party, "lane": lane, "waiting_for": seq, "side": "receiver"},
                cause=f"sequence-gap:{tag}"), clear=seq is None)
            sender = self.senders.get(party)
            h = sender.health if sender is not None else None
            if lane == CONTROL:
                theirs = None if h is None else h.peer_waiting_for
                since = None if h is None else h.peer_waiting_since_mono
                lost = h is not None and h.peer_waiting_unsendable
            else:
                bulk = None if h is None else h.peer_waiting_bulk
                theirs, since, lost = bulk if bulk is not None else (None, None, False)
            stuck = theirs is not None and since is not None and (lost or now - since >= limit)
            why = ("our outbox holds no such envelope to send (lost: see `hotline log verify`, "
                   "`hotline repair --from-log`)" if lost else "it stays missing")
            await self._alarm_while(standing, f"peer-gap:{tag}", stuck, Alarm(
                "sequence-gap", party,
                f"{party} waits on our {word}seq {theirs} and holds back what follows: {why}",
                {"peer": party, "lane": lane, "waiting_for": theirs, "side": "sender",
                 "lost": lost}, cause=f"peer-gap:{tag}"), clear=theirs is None)

    async def _alarm_while(self, standing: set[str], cause: str, bad: bool, alarm: Alarm,
                           *, clear: bool) -> None:
        """Raise ``alarm`` once when ``bad`` (repeats are not re-counted every tick) and
        clear it when ``clear``."""
        if bad and cause not in standing:
            await self.alarms.raise_(alarm)
            standing.add(cause)
        elif clear and cause in standing:
            await self.alarms.clear(cause)
            standing.discard(cause)

    def tasks(self) -> list[TaskState]:
        """Every supervised task with its state, for /healthz, status and the console."""
        return sorted(self.supervisor.states.values(), key=lambda t: t.name)

    async def directory(self) -> dict[str, Any]:
        """The current directory as the API shows it: webhook secrets withheld."""
        await self.registry.reload()
        body = self.registry.current.to_dict()
        for channel in body.get("channels", {}).values():
            if "secret" in channel:
                channel["secret"] = "(withheld)"  # noqa: S105 - a placeholder, not a secret
        return {"version": self.registry.version, "directory": body}

    async def _report_desks(self) -> None:
        """Keep peers told which of our desks they may call are staffed."""
        while True:
            self.apply(await self.desks.publish())
            await asyncio.sleep(self.polls.desks_s)

    async def status(self) -> list[PeerStatus]:
        health = {party: s.health for party, s in self.senders.items()}
        return await line_status(self.db, self.peers, health, self.clock, self.prober.links)

    def health(self) -> dict[str, PeerHealth]:
        return {party: s.health for party, s in self.senders.items()}

    # -- lifecycle ---------------------------------------------------------------------
    def _use_current_key(self) -> None:
        """Sign with the pair this party's key history names as current (the keystore
        may hold one pair more: written before a rotation that did not commit)."""
        with self.db.engine.connect() as conn:
            current = own_history(conn, self.config.party, self.keys.current).current
        pair = None if current is None else self.keys.pair(current.kid)
        if pair is None:
            raise HotlineError("key-missing", f"the keystore does not hold this party's "
                                              f"current key {current and current.kid}",
                               hint="restore the keystore written by the last rotation")
        self.keys.switch(pair)

    async def start(self) -> None:
        upgrade(self.db.engine)
        self._use_current_key()
        self.db.start()
        await self.peers.reload()
        await self.removal.settle_after_restart()
        held = await self.receiver.release_held(sorted(link.party for link in self.peers.all()))
        if held:
            log.info("released %d envelope(s) held behind a repaired gap", held)
        self._started = True
        for sender in self.senders.values():
            sender.start(self.supervisor)
        await self.registry.reload()
        self.supervisor.spawn(ClockWatch.task_name, self.clock_watch.run)
        self.supervisor.spawn("link-poller", self._poll_links)
        self.supervisor.spawn("desk-reporter", self._report_desks)
        self.supervisor.spawn("line-watch", self._watch_lines)
        self.supervisor.spawn(DutyWatch.task_name, self.duty_watch.run)
        if self._link_tests:
            self.supervisor.spawn(LinkProber.task_name, self.prober.run)
        self.timers.start(self.supervisor)
        self.notifier.start(self.supervisor)
        self.checkpointer.start(self.supervisor)
        log.info("node %s started with %d link(s)", self.config.party, len(self.senders))
        for section in unlinked_sections(self.config, set(self.senders)):
            log.warning("config.toml: %s names a party this node has no link with; it is "
                        "ignored (a typo, or a removed link?)", section)
        _return_free_memory()

    async def stop(self) -> None:
        for name in (ClockWatch.task_name, "link-poller", "desk-reporter", "line-watch",
                     DutyWatch.task_name, LinkProber.task_name):
            await self.supervisor.cancel(name)
        await self.prober.close()
        await self.timers.stop()
        await self.notifier.stop()
        await self.checkpointer.stop()
        for sender in self.senders.values():
            await sender.stop()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await self.supervisor.cancel_all()
        await self.transport.close()
        await self.db.stop()

    def app(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        guard = Guard(me=self.config.party, db=self.db, registry=self.registry)
        calls = CallServices(calls=self.calls, conversations=self.conversations,
                             desks=self.desks, feed=Feed(self.db, self.journal),
                             apply=self.apply, directory=self.directory,
                             admin=DirectoryAdmin(self.config.party, self.registry,
                                                  self.db, self.clock), guard=guard,
                             duty=self.duty)
        services = OperatorServices(
            party=self.config.party, name=self.config.name, key_id=self.keys.public.key_id,
            listen=self.config.listen, messenger=self.messenger, inbox=self.inbox,
            status=self.status, tokens=TokenChecker(self.dir / TOKEN_NAME), calls=calls,
            health=self.node_health, alarms=self.alarms,
            book=TokenBook(self.db, self.clock), guard=guard, removal=self.removal,
            keys=self.key_service, notices=self.notices,
            incidents=IncidentServices(incidents=self.incidents, apply=self.apply,
                                      guard=guard))
        console = ConsoleServices(
            party=self.config.party, name=self.config.name, accounts=self.accounts,
            calls=calls, registry=self.registry, journal=self.journal, status=self.status,
            audit=AuditServices(search=self.search_log, verify=self.verify_log_now),
            health=self.node_health, clock=self.clock, notices=self.notices,
            incidents=self.incidents)
        return build_app(operator=services, receiver=self.receiver,
                         batch_limit=RECEIVE_BATCH_LIMIT, lifespan=lifespan,
                         witness=self.witness, console=console,
                         admission=self.admission, linktest=self.linktest,
                         metrics=metrics_endpoint(self.metrics.scrape, self._metrics_tokens()))

    def _metrics_tokens(self) -> list[TokenChecker]:
        """Who may read /metrics from anywhere: the operator token, and the metrics
        token when ``[metrics] token_file`` names one (relative to the node directory)."""
        tokens = [TokenChecker(self.dir / TOKEN_NAME)]
        if self.config.metrics.token_file:
            metrics = TokenChecker(self.dir / self.config.metrics.token_file)
            if not metrics.usable():  # said now, not first at a scrape refused 401
                log.warning("[metrics] token_file %s opens nothing (missing, or as said "
                            "above): /metrics opens only from this host until it is fixed",
                            self.dir / self.config.metrics.token_file)
            tokens.append(metrics)
        return tokens

    async def search_log(self, query: LogQuery, actor: Actor | None = None) -> LogPage:
        """Log entries newest first for the audit page, filtered as ``query`` says and,
        for an operator (``actor``), without those about a call or conversation it may
        not read; each with its body (the console words it), the log's size and kinds."""
        reader: Actor = actor if actor is not None else Admin()

        def read(conn: Connection) -> LogPage:
            directory = self.registry.current
            seen: dict[str | None, bool] = {}

            def shown(subject: str | None) -> bool:
                if subject not in seen:
                    seen[subject] = sees_subject(conn, self.config.party, directory,
                                                 reader, subject)
                return seen[subject]
            rows, boundary = log_store.search_shown(
                conn, shown, kind=query.kind, subject=query.subject,
                operator=query.operator, since_ms=query.since_ms, until_ms=query.until_ms,
                before=query.before, limit=query.limit)
            entries = [{"idx": r.idx, "at": r.at, "kind": r.kind, "subject": r.subject,
                        "body": json.loads(r.entry).get("body", {})} for r in rows]
            return LogPage(entries=entries, more=boundary is not None,
                           size=log_store.size(conn), kinds=log_store.kinds(conn),
                           boundary=boundary)
        return await self.db.read(read)

    async def verify_log_now(self) -> Report:
        """Verify the whole log from a snapshot while the node runs (audit page)."""
        def run() -> Report:
            with self.db.engine.connect() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN")  # one snapshot for the whole scan
                keys = link_store.known_keys(conn)
                keys[self.config.party] = self.keys.public
                return verify_database(conn, self.config.party, keys)
        return await asyncio.to_thread(run)

    def check_at_start(self) -> tuple[Report, StateReport]:
        """The log verified and the state checked against it, before serving, in one
        read of the log and one snapshot (the database threads are not running yet)."""
        upgrade(self.db.engine)
        self._use_current_key()
        with self.db.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")
            keys = link_store.known_keys(conn)  # removed links' too: they signed history
            keys[self.config.party] = self.keys.public
            checked = check_all(conn, self.config.party, keys)
            conn.rollback()
            return checked

    def verify_log(self) -> Report:
        """Check the log before serving (the database threads are not running yet)."""
        upgrade(self.db.engine)
        self._use_current_key()
        with self.db.engine.connect() as conn:
            keys = link_store.known_keys(conn)
            keys[self.config.party] = self.keys.public
            return verify_database(conn, self.config.party, keys)


def _refuse_disagreeing_state(state: StateReport, accept: bool) -> None:
    """The start-up state check: a disagreement stops the node as a broken log does."""
    if state.ok:
        return
    for finding in state.findings[:50]:
        log.error("state disagrees with the log: %s", finding)
    first = state.findings[0]
    if not accept:
        raise HotlineError("state-disagrees",
                           f"the node's state disagrees with its log ({len(state.findings)} "
                           f"finding(s)); first: {first}",
                           hint="see `hotline log verify --dir DIR`; `hotline repair "
                                "--from-log --dir DIR` restores what the log can; to serve "
                                "anyway, start with --accept-broken-log")
    log.critical("serving with state that disagrees with the log: %s", first)


def open_node(node_dir: Path, passphrase: str) -> Node:
    config = load_config(node_dir)
    pairs, kek = unlock_all(node_dir / KEYSTORE_NAME, passphrase)
    return Node(node_dir, config, KeyRing(pairs), kek=kek)


def server_config(node: Node, log_level: str = "info",
                  log_format: str = "text") -> uvicorn.Config:
    """uvicorn's settings for ``node``: the application and the parser it would pick,
    both wrapped in the connection guard (caps per address and in total, idle, header
    and body timeouts: ``api/connections.py`` says why uvicorn's own are not enough);
    uvicorn's keep-alive timeout and h11's header limit set to the same values."""
    a = node.config.admission
    guard = ConnectionGuard(a, node.clock, node.admission.log, node.admission)
    # with JSON logs uvicorn's own lines go through the root logger's format (no
    # log_config of its own); the text format keeps uvicorn's
    logs: dict[str, Any] = {"log_config": None} if log_format == "json" else {}
    return uvicorn.Config(
        guard.app(node.app()), host=node.config.host, port=node.config.port,
        # no access log: a line per request (each batch from a peer) would bury what matters
        log_level=log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=5,
        **logs,
        http=guard.protocol(AutoHTTPProtocol), timeout_keep_alive=int(a.idle_timeout_seconds),
        h11_max_incomplete_event_size=a.max_header_bytes)


def serve(node_dir: Path, passphrase: str, log_level: str = "info",
          accept_broken_log: bool = False, log_format: str = "text") -> None:
    """Run the node until SIGINT, SIGTERM or SIGHUP (each a graceful shutdown, then a
    normal return: :mod:`hotline.serving`); all state is in the database, so a restart
    resumes where this one stopped. A log that does not verify stops it here, unless
    ``accept_broken_log`` says to serve anyway (the breach stays on record)."""
    node = open_node(node_dir, passphrase)
    report, state = node.check_at_start()
    if not report.ok:
        where = report.problems[0]
        if not accept_broken_log:
            raise HotlineError("log-broken", f"the log does not verify: {where.message}",
                               hint="see `hotline log verify --dir DIR`; to serve anyway, "
                                    "start with --accept-broken-log")
        log.critical("serving with a log that does not verify: %s", where.message)
    else:
        _refuse_disagreeing_state(state, accept_broken_log)
    server = Server(server_config(node, log_level, log_format))
    server.run()
    if not server.started:
        raise SystemExit(1)
