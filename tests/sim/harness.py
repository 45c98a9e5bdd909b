"""A simulation harness for time and faults: real nodes on a virtual clock.

What runs is the real thing: :class:`hotline.node.Node` with every background task
(senders, deadline timers, notifier, checkpointer, clock watch, desk reports, link
poller) under its supervisor, on real SQLite files made by the code ``hotline init``
uses, with the Przewodów scenario's directories. What is simulated:

* **time** — the event loop is a :class:`~tests.sim.virtual_time.VirtualTimeLoop`:
  whenever the loop is idle and no database work is in flight it jumps to its next timer,
  so three days of outage pass in seconds, while database work still happens for real
  (see that module for why this and not ``looptime`` or trio's ``MockClock``);
* **each machine's clocks** — :class:`SimClock`: monotonic = the loop's virtual time;
  wall = a virtual epoch + virtual time + this machine's offset, which :meth:`World.step`
  steps and :meth:`World.slew` slews (the node wraps it in ``SteadyWall`` itself, as it
  wraps the system clock);
* **the network** — :mod:`tests.sim.net`: batches and checkpoints go in memory through the
  same framing and answers as HTTP, links can be cut, nodes stopped and restarted on
  their database;
* **the outside world** — webhook receivers behind ``httpx.MockTransport`` that accept,
  fail (HTTP 503) or hang.

:class:`World` offers the operator's and the fault-injector's actions and records what
the nodes do, with the virtual time of each observation: messages released to each
inbox, every call's delivery, rings and end on the callee's node (from the node's own
event journal), webhook attempts, when each node was down and when each line was usable.
:mod:`tests.sim.invariants` judges those records.

Randomness: the world makes no random choice itself. The scenarios of
``test_harness.py`` are fixed, Hypothesis draws (and replays) the stateful runs and their
``seed``, and ``bench/soak.py`` draws its schedule from ``--seed``. Each node's senders
draw their backoff jitter from a generator seeded with ``seed``, the party and how often
it was started, so a replay retries at the same virtual instants too. (Envelope ids and
the supervisor's restart jitter still come from the OS.) Why this design rather than
``looptime``: see :mod:`tests.sim.virtual_time`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from hotline.admin import accept_link, apply_directory, init_node, make_link_offer, read_offer
from hotline.calls.service import timing_of
from hotline.clock import SystemClock
from hotline.errors import HotlineError
from hotline.escalation.engine import Timing
from hotline.events import Subscription
from hotline.inbox import InboxMessage
from hotline.node import Node, Polls
from hotline.nodedir.config import DB_NAME, KEYSTORE_NAME, NodeConfig, load_config
from hotline.nodedir.keystore import unlock
from hotline.protocol.keys import PartyKeys
from hotline.scenario import directory_toml
from hotline.status import AlarmStatus, PeerStatus, TaskStatus
from hotline.store import inbound, journal
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.journal import Entry
from tests.sim.net import Network, Webhooks, endpoint_of
from tests.sim.virtual_time import START_S, VirtualTimeLoop

T = TypeVar("T")

PASSPHRASE = "simulation-passphrase"
PARTIES = ("US-JS", "RU-GS")
#: The two webhook channels every chain step of the called roles rings, besides the console.
HOOKS = ("ops", "duty")
HOOK_SECRET = "a-simulated-webhook-secret-0123456789"
#: A line counts as usable only while the two nodes' clocks are this much inside the
#: peers' skew window (300 s); between that and the window the outcome is not judged.
SKEW_MARGIN_MS = 5_000
#: The states that end a call on the callee's node.
ENDS = frozenset({"answered", "declined", "cancelled", "unanswered", "expired", "refused"})
#: How often the world looks at the clocks of a line while one slews (everything else
#: that changes whether a line is usable is an action of the world, looked at at once).
MONITOR_S = 1.0
#: The idle polls of a simulated node (``hotline.node.Polls``): nothing but its own
#: process writes to its database, so every change wakes the task concerned; long polls
#: make an idle virtual day cheap and leave a missing wake-up nowhere to hide. The clock
#: watch looks every second (a node looks every 0.25 s; the delay only matters for how
#: long :meth:`World.step` waits for the node to see the step).
SIM_POLLS = Polls(timers_s=300.0, notifier_s=300.0, links_s=300.0, desks_s=300.0,
                  checkpoints_s=300.0, clock_s=5.0, duty_s=60.0)


class SimClock:
    """One machine's clocks on the loop's virtual (true) time.

    A **step** moves the wall clock only, as ``date -s`` or an NTP step does. A **slew**
    makes the machine's clock run at rate ``1 + r``: on Linux NTP slews
    ``CLOCK_MONOTONIC`` together with the wall clock, so both readings of this clock move
    by the slew, and the machine's wall time drifts away from its peer's (that is what
    the skew window is about) while the node itself sees no jump. The node's asyncio
    waits stay on the loop's time, an error of ``r`` times the wait (30 ms for a minute
    at NTP's limit of 500 ppm)."""

    def __init__(self, loop: VirtualTimeLoop, epoch_ms: int) -> None:
        self._loop = loop
        self._epoch_ms = epoch_ms
        self._stepped_ms = 0.0
        self._slewed_ms = 0.0  # by slews that have ended
        self._slew: tuple[float, float, float] | None = None  # (from, until, ms per s)

    def monotonic(self) -> float:
        return self._loop.time() + self.slewed_ms() / 1000

    def now_ms(self) -> int:
        return self._epoch_ms + int((self._loop.time() - START_S) * 1000 + self.offset_ms())

    def offset_ms(self) -> float:
        """How far this machine's wall clock is from true (virtual) time."""
        return self._stepped_ms + self.slewed_ms()

    def slewed_ms(self) -> float:
        if self._slew is None:
            return self._slewed_ms
        start, until, rate = self._slew
        return self._slewed_ms + (min(self._loop.time(), until) - start) * rate

    def step(self, delta_ms: float) -> None:
        self._stepped_ms += delta_ms

    def slew(self, ppm: float, over_s: float) -> None:
        """Run this machine's clocks ``ppm`` millionths fast (negative: slow) for
        ``over_s`` seconds of true time."""
        self._slewed_ms = self.slewed_ms()
        now = self._loop.time()
        self._slew = (now, now + over_s, ppm / 1000)

    @property
    def slewing(self) -> bool:
        return self._slew is not None and self._loop.time() < self._slew[1]


# -- the node directories, made once per process -------------------------------------


@dataclass(frozen=True)
class Template:
    root: Path
    keys: dict[str, PartyKeys]
    made_at_ms: int


_TEMPLATE: Template | None = None
_TEMPLATE_DIR: tempfile.TemporaryDirectory[str] | None = None


def _directory(party: str) -> str:
    """The scenario's directory (real-time durations) with two webhook channels on every
    step of the chains, besides the console."""
    text = directory_toml(party, 1.0, peers=[p for p in PARTIES if p != party])
    channels = ", ".join(['"console"', *(f'"hook-{h}"' for h in HOOKS)])
    text = re.sub(r'(\[\[chains\.[\w-]+\.steps\]\]\nring = \[[^\]]*\]\n)',
                  rf'\1channels = [{channels}]\n', text)
    for hook in HOOKS:
        text += (f'\n[channels.hook-{hook}]\nkind = "webhook"\n'
                 f'url = "{hook_url(party, hook)}"\nsecret = "{HOOK_SECRET}"\n')
    return text


def hook_url(party: str, hook: str) -> str:
    return f"https://hooks.sim.invalid/{party.lower()}/{hook}"


def template() -> Template:
    """US-JS and RU-GS initialised, linked and given their directories, once per process
    (key derivation costs real time); each world copies it."""
    global _TEMPLATE, _TEMPLATE_DIR
    if _TEMPLATE is None:
        _TEMPLATE_DIR = tempfile.TemporaryDirectory(prefix="hotline-sim-template-")
        root = Path(_TEMPLATE_DIR.name)
        made_at = SystemClock().now_ms()
        for party in PARTIES:
            init_node(root / party, party=party, name=f"{party} (simulated)",
                      listen="127.0.0.1:7100", endpoints=[endpoint_of(party)], db=None,
                      passphrase=PASSPHRASE)
        offers = {p: read_offer(make_link_offer(root / p, PASSPHRASE)[0]) for p in PARTIES}
        for party in PARTIES:
            for other in PARTIES:
                if other != party:
                    accept_link(root / party, offers[other])
            path = root / party / "directory.toml"
            path.write_text(_directory(party), encoding="utf-8")
            apply_directory(root / party, path)
        keys = {p: unlock(root / p / KEYSTORE_NAME, PASSPHRASE) for p in PARTIES}
        _TEMPLATE = Template(root, keys, made_at)
    return _TEMPLATE


# -- what the world records ----------------------------------------------------------


@dataclass
class Sent:
    """A message an operator handed to a node, and when it was released at the peer."""

    envelope_id: str
    sender: str
    receiver: str
    seq: int
    text: str
    at: float
    released: list[float] = field(default_factory=list)
    #: the lane ``seq`` numbers (docs/protocol.md §11.1)
    lane: str = "control"
    #: the receiver's release number (inbox cursor) of each release
    cursors: list[int] = field(default_factory=list)


@dataclass
class CallSeen:
    """An incoming call on its callee's node; times on the callee's monotonic clock
    (the clock its deadlines are judged by), except ``first_at``: true time."""

    call_id: str
    callee: str
    role: str
    timing: Timing
    delivered_at: float | None = None
    rings: list[tuple[float, int]] = field(default_factory=list)  # (time, step)
    ended_at: float | None = None
    end_state: str | None = None
    #: when the callee's node first said anything about it (delivered, refused, ...)
    first_at: float | None = None


@dataclass
class Violation:
    at: float
    what: str

    def __str__(self) -> str:
        return f"[t={self.at - START_S:.3f}s] {self.what}"


class SimNode:
    """One party's machine: its directory, clocks and (while up) its running node."""

    def __init__(self, world: World, party: str, directory: Path, config: NodeConfig,
                 keys: PartyKeys, clock: SimClock) -> None:
        self.world = world
        self.party = party
        self.dir = directory
        self.config = config
        self.keys = keys
        self.clock = clock
        self.endpoint = endpoint_of(party)
        self.node: Node | None = None
        self.serving = False
        #: [stopped at, up again at (None while down)], on this machine's monotonic clock
        self.downs: list[list[float | None]] = []
        self._observers: list[asyncio.Task[None]] = []
        self._journal: Subscription[Entry] | None = None
        self._journal_cm: contextlib.AbstractAsyncContextManager[Subscription[Entry]] | None \
            = None
        self._cursor = 0
        self._client: httpx.AsyncClient | None = None
        self._in_flight: Callable[[], int] | None = None
        self._journal_id = 0
        self.up_since = 0.0
        self.starts = 0

    @property
    def up(self) -> Node:
        assert self.serving, f"{self.party} is down"
        assert self.node is not None
        return self.node

    async def start(self) -> None:
        world = self.world
        self._client = world.webhooks.client()
        node = Node(self.dir, self.config, self.keys, clock=self.clock,
                    transport=world.network.transport(self.party),
                    checkpoint_post=world.network.poster(self.party),
                    notify_client=self._client, polls=world.polls,
                    rng=random.Random(f"{world.seed}/{self.party}/{self.starts}"))
        self.starts += 1
        db = node.db
        self._in_flight = lambda: db.in_flight
        world.loop.watch(self._in_flight)
        self._journal_cm = node.journal.subscribe()
        self._journal = await self._journal_cm.__aenter__()
        self.node = node
        self._observers = [asyncio.create_task(self._follow_journal(self._journal))]
        await node.start()
        self._observers.append(asyncio.create_task(self._follow_inbox(node)))
        self.serving = True
        self.up_since = world.loop.time()
        if self.downs:
            self.downs[-1][1] = self.clock.monotonic()
        world.refresh_lines()

    async def stop(self) -> None:
        assert self.node is not None
        self.serving = False
        self.world.refresh_lines()
        self.downs.append([self.clock.monotonic(), None])
        await self.node.stop()
        if self._journal is not None:
            while not self._journal.queue.empty():
                self._on_entry(self._journal.queue.get_nowait())
        for task in self._observers:
            task.cancel()
        await asyncio.gather(*self._observers, return_exceptions=True)
        self._catch_up()
        if self._journal_cm is not None:
            await self._journal_cm.__aexit__(None, None, None)
        assert self._client is not None
        await self._client.aclose()
        assert self._in_flight is not None
        self.world.loop.unwatch(self._in_flight)
        self.node = None

    async def _follow_journal(self, sub: Subscription[Entry]) -> None:
        while True:
            self._on_entry(await sub.get())

    def _on_entry(self, entry: Entry) -> None:
        if entry.id > self._journal_id:
            self._journal_id = entry.id
            self.world.on_entry(self.party, entry)

    async def _follow_inbox(self, node: Node) -> None:
        async for message in node.inbox.follow(self._cursor):
            self._on_message(message)

    def _on_message(self, message: InboxMessage) -> None:
        if message.cursor > self._cursor:
            self._cursor = message.cursor
            self.world.on_released(self.party, message)

    def _catch_up(self) -> None:
        """What the stopped node committed but did not publish (a task cancelled between
        its commit and carrying out the effects): recorded at the time of the stop, which
        took no virtual time."""
        engine = create_engine(self.config.db)
        try:
            with engine.connect() as conn:
                entries = journal.after(conn, self._journal_id, 100_000)
                released = inbound.released_after(conn, self._cursor, 100_000)
        finally:
            engine.dispose()
        for entry in entries:
            self._on_entry(entry)
        for row in released:
            self._on_message(InboxMessage.from_released(row))


class World:
    """Two simulated nodes, their network and webhooks, and what they were seen doing."""

    def __init__(self, root: Path, loop: VirtualTimeLoop, polls: Polls = SIM_POLLS,
                 seed: int = 0) -> None:
        self.root = root
        self.polls = polls
        self.seed = seed
        self.loop = loop
        self.network = Network()
        self.webhooks = Webhooks(timeout_s=5.0)  # WebhookChannel's time-out per attempt
        for party in PARTIES:
            for hook in HOOKS:
                self.webhooks.add(f"{party.lower()}/{hook}")
        self.nodes: dict[str, SimNode] = {}
        self.sent: dict[str, Sent] = {}
        self.calls: dict[str, CallSeen] = {}
        #: calls placed by an operator here: call id -> (caller party, when)
        self.placed: dict[str, tuple[str, float]] = {}
        #: (party, task) -> ((party, task, restarts) when first seen down, since when)
        self.down_since: dict[tuple[str, str], tuple[tuple[str, str, int], float]] = {}
        #: when a task was first seen spawned and not yet stepped, per node life
        self.starting_since: dict[tuple[str, str, float], float] = {}
        self.unexpected: list[Violation] = []
        self.trace: list[str] = []
        #: per line (unordered pair of parties): [usable from, until (None: still)]
        self.lines: dict[frozenset[str], list[list[float | None]]] = {}
        #: per line: [broken from, until (None: still)]
        self.broken: dict[frozenset[str], list[list[float | None]]] = {}
        self._texts = 0
        #: when each machine's wall clock was last stepped (true time)
        self.stepped: dict[str, float] = {}
        self._monitor: asyncio.Task[None] | None = None
        base = template()
        self.epoch_ms = base.made_at_ms + 60_000
        for party in PARTIES:
            directory = root / party
            shutil.copytree(base.root / party, directory)
            (directory / "directory.toml").unlink(missing_ok=True)
            config = load_config(directory).model_copy(
                update={"db": sqlite_url(directory / DB_NAME)})
            node = SimNode(self, party, directory, config, base.keys[party],
                           SimClock(loop, self.epoch_ms))
            self.nodes[party] = node
            self.network.nodes[party] = node
        self.lines[frozenset(PARTIES)] = []
        self.broken[frozenset(PARTIES)] = [[loop.time(), None]]

    # -- running ---------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.loop.time()

    def note(self, what: str) -> None:
        self.trace.append(f"t={self.now - START_S:11.3f}s {what}")

    async def start(self) -> None:
        for node in self.nodes.values():
            await node.start()
        self.note("started")

    async def close(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        for node in self.nodes.values():
            if node.node is not None:
                await node.stop()

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass."""
        await asyncio.sleep(seconds)

    async def run_for(self, seconds: float, *, answer_after: float, every: float = 300.0
                      ) -> None:
        """Let ``seconds`` pass while operators answer, every ``every`` seconds, each call
        that has rung for ``answer_after`` seconds on a node that is up (a call that rings
        for days would only queue statements for the caller)."""
        end = self.now + seconds
        while end - self.now > 1e-6:  # virtual time is a float: stop short of rounding
            await asyncio.sleep(min(every, end - self.now))
            for seen in self.ringing():
                clock = self.nodes[seen.callee].clock
                assert seen.delivered_at is not None
                if clock.monotonic() - seen.delivered_at >= answer_after:
                    await self.answer(seen.callee, seen.call_id)

    def open_calls(self) -> set[str]:
        """Calls placed here or seen at a callee that have not ended at the callee."""
        ended = {c.call_id for c in self.calls.values() if c.ended_at is not None}
        return (set(self.placed) | set(self.calls)) - ended

    def ringing(self) -> list[CallSeen]:
        """Calls delivered, not ended, on a callee that is up."""
        return [c for c in self.calls.values() if c.delivered_at is not None
                and c.ended_at is None and self.nodes[c.callee].serving]

    async def _watch_lines(self) -> None:
        while any(n.clock.slewing for n in self.nodes.values()):
            self.refresh_lines()
            await asyncio.sleep(MONITOR_S)
        self.refresh_lines()

    def refresh_lines(self) -> None:
        """Note whether each line is usable (both nodes up, the link whole, their clocks
        well inside the skew window) and whether it is broken (a node down, the link
        cut, or the clocks well outside the window); near the edge of the window it is
        neither."""
        for pair in self.lines:
            a, b = (self.nodes[p] for p in sorted(pair))
            connected = a.serving and b.serving and pair not in self.network.cut
            apart = abs(a.up.clock.now_ms() - b.up.clock.now_ms()) if connected else 0
            window = a.config.delivery.skew_seconds * 1000
            self._span(self.lines[pair], connected and apart <= window - SKEW_MARGIN_MS)
            self._span(self.broken[pair], not connected or apart > window + SKEW_MARGIN_MS)

    def _span(self, spans: list[list[float | None]], now_true: bool) -> None:
        open_ = bool(spans) and spans[-1][1] is None
        if now_true and not open_:
            spans.append([self.now, None])
        elif not now_true and open_:
            spans[-1][1] = self.now

    # -- the operators -----------------------------------------------------------------
    async def send(self, sender: str, count: int = 1) -> list[Sent]:
        node = self.nodes[sender].up
        receiver = self.peer_of(sender)
        texts = []
        for _ in range(count):
            self._texts += 1
            texts.append(f"sim message {self._texts} from {sender}")
        accepted = await node.messenger.send_texts(receiver, texts)
        out = []
        for a, text in zip(accepted, texts, strict=True):
            sent = Sent(a.envelope_id, sender, receiver, a.seq, text, self.now, lane=a.lane)
            self.sent[a.envelope_id] = sent
            out.append(sent)
        self.note(f"{sender} sends {count} message(s), seq {accepted[0].seq}..")
        return out

    async def place(self, caller: str, reason: str = "simulated call") -> str:
        node = self.nodes[caller].up
        to, as_role = ("cgs@RU-GS", "nmcc-do") if caller == "US-JS" else ("cjcs@US-JS", "cgs")
        call, effects = await node.calls.place(to, as_role, reason)
        node.apply(effects)
        self.placed[call.id] = (caller, self.now)
        self.note(f"{caller} places call {call.id[:8]} to {to}")
        return call.id

    async def answer(self, callee: str, call_id: str) -> bool:
        node = self.nodes[callee].up
        seen = self.calls[call_id]
        try:
            _call, effects = await node.calls.answer(call_id, seen.role, None)
        except HotlineError as exc:
            if exc.error_id != "call-ended":
                raise
            self.note(f"{callee} answers call {call_id[:8]}: already ended")
            return False
        node.apply(effects)
        self.note(f"{callee} answers call {call_id[:8]}")
        return True

    async def cancel(self, caller: str, call_id: str) -> bool:
        node = self.nodes[caller].up
        try:
            _call, effects = await node.calls.cancel(call_id)
        except HotlineError as exc:
            if exc.error_id != "call-ended":
                raise
            return False
        node.apply(effects)
        self.note(f"{caller} cancels call {call_id[:8]}")
        return True

    def peer_of(self, party: str) -> str:
        return next(p for p in PARTIES if p != party)

    # -- the faults --------------------------------------------------------------------
    def cut(self) -> None:
        self.network.cut.add(frozenset(PARTIES))
        self.refresh_lines()
        self.note("link cut")

    def heal(self) -> None:
        self.network.cut.discard(frozenset(PARTIES))
        self.refresh_lines()
        self.note("link healed")

    async def heal_everything(self, settle_s: float) -> None:
        """End every fault: the link whole, every webhook answering, every node up, every
        clock back on true time and no longer slewing; then let ``settle_s`` pass (calls
        answered at once) so that whatever waited can arrive."""
        self.heal()
        for party in PARTIES:
            for hook in HOOKS:
                self.hook(party, hook, "ok")
            if not self.nodes[party].serving:
                await self.start_node(party)
        for party in PARTIES:
            clock = self.nodes[party].clock
            clock.slew(0, 1.0)
            if abs(clock.offset_ms()) >= 1_000:
                await self.step(party, -int(clock.offset_ms()))
        self.refresh_lines()
        await self.run_for(settle_s, answer_after=0.0, every=30.0)

    async def stop(self, party: str) -> None:
        await self.nodes[party].stop()
        self.note(f"{party} stopped")

    async def start_node(self, party: str) -> None:
        await self.nodes[party].start()
        self.note(f"{party} started again")

    async def step(self, party: str, delta_ms: int) -> None:
        """Step ``party``'s wall clock, and give its clock watch the second it needs to
        see the step before anything else happens (a step the node never saw while
        running cannot be told from time passing: see docs/time.md)."""
        self.nodes[party].clock.step(delta_ms)
        self.stepped[party] = self.now
        self.note(f"{party} wall clock stepped {delta_ms:+d} ms")
        await asyncio.sleep(self.polls.clock_s + 0.5)
        self.refresh_lines()

    def slew(self, party: str, ppm: float, over_s: float) -> None:
        self.nodes[party].clock.slew(ppm, over_s)
        self.note(f"{party} clock runs {ppm:+.0f} ppm for {over_s:.0f} s "
                  f"({ppm * over_s / 1000:+.0f} ms)")
        if self._monitor is None or self._monitor.done():
            self._monitor = self.loop.create_task(self._watch_lines())

    def hook(self, party: str, name: str, mode: str) -> None:
        self.webhooks.hooks[f"{party.lower()}/{name}"].mode = mode
        self.note(f"webhook {party}/{name} now {mode}")

    # -- observations ------------------------------------------------------------------
    def on_released(self, party: str, message: InboxMessage) -> None:
        if message.type != "message":
            return
        sent = self.sent.get(message.envelope_id)
        if sent is None or sent.receiver != party:
            self.unexpected.append(Violation(self.now, f"{party} released a message nobody "
                                                        f"sent: {message.envelope_id}"))
            return
        sent.released.append(self.now)
        sent.cursors.append(message.cursor)

    def on_entry(self, party: str, entry: Entry) -> None:
        if entry.kind != "call":
            return
        call = entry.body["call"]
        event = entry.body["event"]
        if call["direction"] != "in" or event["signed_by"] != party:
            return
        seen = self.calls.get(call["id"])
        if seen is None:
            node = self.nodes[party].node
            assert node is not None
            role = call["callee"].split("@")[0]
            seen = CallSeen(call["id"], party, role,
                            timing_of(node.registry.current.chain_for(role)))
            self.calls[call["id"]] = seen
        state = event["state"]
        mono = self.nodes[party].clock.monotonic()
        if seen.first_at is None:
            seen.first_at = self.now
        if state == "delivered":
            seen.delivered_at = mono
        elif state == "ringing":
            seen.rings.append((mono, int(event["step"])))
        elif state in ENDS and seen.ended_at is None:
            seen.ended_at, seen.end_state = mono, state

    # -- reading the nodes -------------------------------------------------------------
    async def status(self, party: str
                     ) -> tuple[list[PeerStatus], list[TaskStatus], list[AlarmStatus]]:
        node = self.nodes[party].up
        tasks, alarms = await node.node_health()
        return await node.status(), tasks, alarms

    def dump(self) -> str:
        """What happened, for a failure report."""
        return "\n".join([f"seed {self.seed}; the world's last actions (true time since "
                          "start):", *self.trace[-60:]])


def simulate(root: Path, scenario: Callable[[World], Awaitable[T]],
             polls: Polls = SIM_POLLS) -> T:
    """Run ``scenario`` in a fresh world of two started nodes on a virtual-time loop,
    and stop everything after. A failure carries the world's last actions."""
    loop = VirtualTimeLoop()
    world = World(root, loop, polls)
    try:
        loop.run_until_complete(world.start())
        try:
            return loop.run_until_complete(scenario(world))
        except BaseException as exc:
            exc.add_note(world.dump())
            raise
        finally:
            loop.run_until_complete(world.close())
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
