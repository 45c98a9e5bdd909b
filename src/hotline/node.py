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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from hotline.accounts.service import AccountService
from hotline.api.app import build_app
from hotline.api.calls import CallServices
from hotline.api.connections import ConnectionGuard
from hotline.api.operator import OperatorServices
from hotline.authz.guard import Guard
from hotline.authz.tokens import TokenBook
from hotline.calls.conversations import ConversationService
from hotline.calls.desks import DeskService
from hotline.calls.dispatch import Dispatcher
from hotline.calls.feed import Feed
from hotline.calls.registry import DirectoryAdmin, Registry
from hotline.calls.service import CallService
from hotline.clock import Clock, SteadyWall, SystemClock
from hotline.console.web import AuditServices, ConsoleServices
from hotline.delivery.backoff import Backoff
from hotline.delivery.messenger import Messenger
from hotline.delivery.outbound import Outbound
from hotline.delivery.sender import PeerHealth, PeerSender
from hotline.delivery.transport import HttpTransport, Transport
from hotline.effects import Effects
from hotline.errors import HotlineError
from hotline.escalation.timers import TimerRunner
from hotline.events import Broadcaster
from hotline.federation.admission import Admission
from hotline.federation.receiver import Receiver
from hotline.health.alarms import Alarm, Alarms
from hotline.health.clockwatch import CHECK_INTERVAL_S, ClockWatch
from hotline.health.supervisor import Supervisor, TaskState
from hotline.inbox import Inbox
from hotline.log.checkpointer import TICK_SECONDS, Checkpointer, Poster
from hotline.log.verify import Report, verify_database
from hotline.log.witness import Witness
from hotline.nodedir.config import KEYSTORE_NAME, TOKEN_NAME, NodeConfig, load_config
from hotline.nodedir.keystore import unlock
from hotline.nodedir.token import TokenChecker
from hotline.notify.runner import Notifier
from hotline.peers import PeerDirectory
from hotline.protocol.keys import PartyKeys
from hotline.status import (
    AlarmStatus,
    PeerStatus,
    TaskStatus,
    alarm_status,
    line_status,
    task_status,
)
from hotline.store import links as link_store
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.engine import create_engine
from hotline.store.journal import Entry
from hotline.store.links import Link
from hotline.store.migrate import upgrade
from hotline.store.notifications import Notification
from hotline.store.outbox import Pending

log = logging.getLogger("hotline.node")
security_log = logging.getLogger("hotline.security")

EXIT_STORAGE_FATAL = 70
LINK_POLL_SECONDS = 2.0
DESK_REPORT_SECONDS = 1.0
LINE_WATCH_SECONDS = 5.0
SKEW_ALARM_SHARE = 0.5   # a peer's clock offset past half the skew window is an alarm
SKEW_CLEAR_SHARE = 0.4   # and under 40 % clears it (no flapping at the boundary)
SEND_BATCH_BYTES = 4 * 1024 * 1024
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
                 polls: Polls | None = None, rng: random.Random | None = None) -> None:
        """``transport``, ``checkpoint_post`` and ``notify_client`` replace the node's
        network edges (HTTP to peers, HTTP to webhooks); the simulation harness
        (``tests/sim``) passes in-memory ones, and a seeded ``rng`` for the senders'
        backoff jitter so that a run replays. By default the node makes its own."""
        self._rng = rng
        self.polls = polls = polls or Polls()
        self.dir = node_dir
        self.config = config
        self.keys = keys
        # The node's one time base: wall time that moves with the monotonic clock and
        # steps only together with the persisted deadlines (see clock.py, docs/time.md).
        self.clock = SteadyWall(clock or SystemClock())
        delivery = config.delivery
        self.db = Database(create_engine(config.db), _storage_fatal, hooks=[log_store.HOOKS])
        self.peers = PeerDirectory(self.db, self.clock)
        self.transport = transport or HttpTransport(delivery.request_timeout_seconds)
        self.inbox = Inbox(self.db)
        self.senders: dict[str, PeerSender] = {}
        self.messenger = Messenger(me=config.party, keys=keys, peers=self.peers,
                                   db=self.db, clock=self.clock,
                                   on_enqueued=self._wake_sender)
        self.registry = Registry(self.db)
        self.journal: Broadcaster[Entry] = Broadcaster()
        outbound = Outbound(me=config.party, keys=keys, peers=self.peers)
        self.calls = CallService(me=config.party, outbound=outbound, registry=self.registry,
                                 db=self.db, clock=self.clock)
        self.conversations = ConversationService(me=config.party, outbound=outbound,
                                                 registry=self.registry, db=self.db,
                                                 clock=self.clock)
        self.desks = DeskService(outbound=outbound, registry=self.registry, db=self.db,
                                 clock=self.clock)
        self.alarms = Alarms(db=self.db, clock=self.clock, apply=self.apply,
                             ring=self.calls.ring_alarm)
        self.timers = TimerRunner(db=self.db, clock=self.clock, fire=self.calls.on_timer,
                                  apply=self.apply, max_wait_s=polls.timers_s)
        self.notifier = Notifier(db=self.db, clock=self.clock, registry=self.registry,
                                 client=notify_client, max_wait_s=polls.notifier_s,
                                 on_gave_up=self._notification_failed,
                                 on_failing=self._notification_failing,
                                 on_channel_ok=self._channel_ok)
        self.witness = Witness(me=config.party, keys=keys, peers=self.peers, db=self.db,
                               clock=self.clock, alarms=self.alarms)
        self.checkpointer = Checkpointer(
            me=config.party, keys=keys, peers=self.peers, db=self.db, clock=self.clock,
            every_seconds=config.log.checkpoint_seconds,
            every_entries=config.log.checkpoint_entries,
            timeout=delivery.request_timeout_seconds, alarms=self.alarms,
            post=checkpoint_post, tick_s=polls.checkpoints_s)
        self.admission = Admission(config.admission, self.clock)
        self.receiver = Receiver(me=config.party, keys=keys, peers=self.peers,
                                 db=self.db, clock=self.clock,
                                 skew_ms=delivery.skew_seconds * 1000,
                                 max_envelope_bytes=delivery.max_envelope_bytes,
                                 reorder_window=delivery.reorder_window,
                                 on_released=self.inbox.publish,
                                 dispatch=Dispatcher(calls=self.calls,
                                                     conversations=self.conversations,
                                                     desks=self.desks),
                                 on_effects=self.apply, admission=self.admission)
        self.accounts = AccountService(me=config.party, db=self.db, clock=self.clock,
                                       registry=self.registry)
        self.supervisor = Supervisor(clock=self.clock, on_failure=self._task_failed,
                                     on_recovered=self._task_recovered)
        self.clock_watch = ClockWatch(clock=self.clock, db=self.db, alarms=self.alarms,
                                      interval_s=polls.clock_s)
        self.peers.on_change(self._sync_senders)
        self._started = False

    def apply(self, effects: Effects) -> None:
        """Carry out what a committed transaction asked for."""
        for line in effects.security:
            security_log.warning("%s", line)
        for party, pending in effects.outgoing:
            self._wake_sender(party, pending)
        for entry in effects.journal:
            self.journal.publish(entry)
        if effects.timers:
            self.timers.wake()
        if effects.notifications:
            self.notifier.wake()

    # -- senders -----------------------------------------------------------------------
    def _wake_sender(self, party: str, fresh: list[Pending]) -> None:
        sender = self.senders.get(party)
        if sender is not None:
            sender.offer(fresh)

    def _sync_senders(self, links: list[Link]) -> None:
        d = self.config.delivery
        for link in links:
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
                                reseal=self.messenger.reseal,
                                reseal_after_ms=int(d.reseal_after_seconds * 1000))
            self.senders[link.party] = sender
            if self._started:
                sender.start(self.supervisor)

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
                        if a.kind in ("clock-skew", "line-down")}
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
            await asyncio.sleep(LINE_WATCH_SECONDS)

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
        return await line_status(self.db, self.peers, health, self.clock)

    def health(self) -> dict[str, PeerHealth]:
        return {party: s.health for party, s in self.senders.items()}

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        upgrade(self.db.engine)
        self.db.start()
        await self.peers.reload()
        self._started = True
        for sender in self.senders.values():
            sender.start(self.supervisor)
        await self.registry.reload()
        self.supervisor.spawn(ClockWatch.task_name, self.clock_watch.run)
        self.supervisor.spawn("link-poller", self._poll_links)
        self.supervisor.spawn("desk-reporter", self._report_desks)
        self.supervisor.spawn("line-watch", self._watch_lines)
        self.timers.start(self.supervisor)
        self.notifier.start(self.supervisor)
        self.checkpointer.start(self.supervisor)
        log.info("node %s started with %d link(s)", self.config.party, len(self.senders))
        _return_free_memory()

    async def stop(self) -> None:
        for name in (ClockWatch.task_name, "link-poller", "desk-reporter", "line-watch"):
            await self.supervisor.cancel(name)
        await self.timers.stop()
        await self.notifier.stop()
        await self.checkpointer.stop()
        for sender in self.senders.values():
            await sender.stop()
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
                                                  self.db, self.clock), guard=guard)
        services = OperatorServices(
            party=self.config.party, name=self.config.name, key_id=self.keys.public.key_id,
            listen=self.config.listen, messenger=self.messenger, inbox=self.inbox,
            status=self.status, tokens=TokenChecker(self.dir / TOKEN_NAME), calls=calls,
            health=self.node_health, alarms=self.alarms,
            book=TokenBook(self.db, self.clock), guard=guard)
        console = ConsoleServices(
            party=self.config.party, name=self.config.name, accounts=self.accounts,
            calls=calls, registry=self.registry, journal=self.journal, status=self.status,
            audit=AuditServices(recent=self.recent_log, verify=self.verify_log_now),
            health=self.node_health, clock=self.clock)
        return build_app(operator=services, receiver=self.receiver,
                         batch_limit=RECEIVE_BATCH_LIMIT, lifespan=lifespan,
                         witness=self.witness, console=console,
                         admission=self.admission)

    async def recent_log(self, limit: int) -> list[dict[str, Any]]:
        """The newest log entries with a one-line summary of each body (audit page)."""
        rows = await self.db.read(lambda conn: log_store.latest(conn, limit))
        out = []
        for row in rows:
            body = json.loads(row.entry).get("body", {})
            summary = json.dumps(body, ensure_ascii=False, sort_keys=True)
            out.append({"idx": row.idx, "at": row.at, "kind": row.kind,
                        "subject": row.subject,
                        "summary": summary if len(summary) <= 240 else summary[:239] + "…"})
        return out

    async def verify_log_now(self) -> Report:
        """Verify the whole log from a snapshot while the node runs (audit page)."""
        def run() -> Report:
            with self.db.engine.connect() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN")  # one snapshot for the whole scan
                keys = {link.party: link.keys for link in link_store.all_links(conn)}
                keys[self.config.party] = self.keys.public
                return verify_database(conn, self.config.party, keys)
        return await asyncio.to_thread(run)

    def verify_log(self) -> Report:
        """Check the log before serving (the database threads are not running yet)."""
        upgrade(self.db.engine)
        with self.db.engine.connect() as conn:
            keys = {link.party: link.keys for link in link_store.all_links(conn)}
            keys[self.config.party] = self.keys.public
            return verify_database(conn, self.config.party, keys)


def open_node(node_dir: Path, passphrase: str) -> Node:
    config = load_config(node_dir)
    keys = unlock(node_dir / KEYSTORE_NAME, passphrase)
    return Node(node_dir, config, keys)


def server_config(node: Node, log_level: str = "info") -> uvicorn.Config:
    """uvicorn's settings for ``node``: the application and the parser it would pick,
    both wrapped in the connection guard (caps per address and in total, idle, header
    and body timeouts: ``api/connections.py`` says why uvicorn's own are not enough);
    uvicorn's keep-alive timeout and h11's header limit set to the same values."""
    a = node.config.admission
    guard = ConnectionGuard(a, node.clock, node.admission.log, node.admission)
    return uvicorn.Config(
        guard.app(node.app()), host=node.config.host, port=node.config.port,
        log_level=log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=5,
        http=guard.protocol(AutoHTTPProtocol), timeout_keep_alive=int(a.idle_timeout_seconds),
        h11_max_incomplete_event_size=a.max_header_bytes)


def serve(node_dir: Path, passphrase: str, log_level: str = "info",
          accept_broken_log: bool = False) -> None:
    """Run the node until SIGINT/SIGTERM; all state is in the database, so a restart
    resumes where this one stopped. A log that does not verify stops it here, unless
    ``accept_broken_log`` says to serve anyway (the breach stays on record)."""
    node = open_node(node_dir, passphrase)
    report = node.verify_log()
    if not report.ok:
        where = report.problems[0]
        if not accept_broken_log:
            raise HotlineError("log-broken", f"the log does not verify: {where.message}",
                               hint="see `hotline log verify --dir DIR`; to serve anyway, "
                                    "start with --accept-broken-log")
        log.critical("serving with a log that does not verify: %s", where.message)
    server = uvicorn.Server(server_config(node, log_level))
    server.run()
    if not server.started:
        raise SystemExit(1)
