"""Hypothesis drives two simulated nodes through outages, clock faults, restarts, failing
webhooks and operator actions, and checks every invariant after every step.

Rules: an operator sends messages, places a call, answers or cancels one; the link is
cut or healed; a node stops or starts on its database; a wall clock steps by a second
to an hour either way (inside and beyond the 300 s skew window) or the machine's clock
slews (up to 5,000 ppm, ten times NTP's limit, so that it leaves the skew window within
hours); a webhook starts to answer, to fail or to hang; time passes, from a second to
three days. Operators answer a call that has rung for half an hour (so a call does not
ring for days and pile up statements nobody will read).

Invariants (:mod:`tests.sim.invariants`), after every rule: each accepted message
released once, in order, within 30 s of the line being usable; each escalation ring
once, in order, within 1 s of its monotonic due time (restarts aside); no supervised
task stays down, and one that is down is alarmed; a broken line and a failing webhook
show in ``status``. At the end every fault is healed, and every message must arrive.

Replaying a failure: Hypothesis prints the steps and, with ``print_blob``, a
``@reproduce_failure(...)`` line — put it on :class:`SimMachine` — and keeps the
example in ``.hypothesis/`` so the next run tries it first. ``HOTLINE_SIM_SEED=<n>``
runs the machine with ``@seed(n)``; ``HOTLINE_SIM_EXAMPLES`` runs more examples.

By default the examples are derandomized: the suite (and CI) runs the same fixed set
every time, so a red run is a change in the code, not a new draw. To explore new
interleavings, set ``HOTLINE_SIM_SEED`` (any number) and ``HOTLINE_SIM_EXAMPLES``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.sim import invariants
from tests.sim.conftest import SHM
from tests.sim.harness import HOOKS, PARTIES, World
from tests.sim.virtual_time import START_S, VirtualTimeLoop

T = TypeVar("T")
HOUR = 3_600.0
DAY = 86_400.0
#: Virtual time one example may use: long outages cost real seconds (~5 s a day).
BUDGET_S = 3.5 * DAY
ANSWER_AFTER_S = 1_800.0
MAX_OPEN_CALLS = 2

parties = st.sampled_from(PARTIES)
durations = st.sampled_from([1.0, 5.0, 20.0, 45.0, 120.0, 600.0, 1_800.0, 3 * HOUR, DAY,
                             3 * DAY])
step_ms = st.one_of(
    st.sampled_from([1_000, 30_000, 290_000, 310_000, 3_600_000]),
    st.integers(1_000, 3_600_000),
).flatmap(lambda ms: st.sampled_from([ms, -ms]))
slew_ppm = st.sampled_from([-5_000, -500, -50, 50, 500, 5_000])


class SimMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="hotline-sim-",
                                          dir=SHM if SHM.is_dir() else None))
        self.loop = VirtualTimeLoop()
        self.world = World(self.root, self.loop)

    @initialize(jitter=st.integers(0, 2**32 - 1))
    def start(self, jitter: int) -> None:
        """Both nodes up; ``jitter`` seeds their senders' backoff (so a replay is exact)."""
        self.world.seed = jitter
        self.run(self.world.start())

    def run(self, step: Awaitable[T]) -> T:
        return self.loop.run_until_complete(step)

    @property
    def left(self) -> float:
        return BUDGET_S - (self.world.now - START_S)

    def pass_time(self, seconds: float) -> None:
        self.run(self.world.run_for(min(seconds, max(0.0, self.left)),
                                    answer_after=ANSWER_AFTER_S))

    # -- operators -------------------------------------------------------------------
    @rule(party=parties, count=st.integers(1, 3))
    def send(self, party: str, count: int) -> None:
        if self.world.nodes[party].serving:
            self.run(self.world.send(party, count))

    @rule(party=parties)
    def place_call(self, party: str) -> None:
        # checked here, not as a precondition: which rules Hypothesis may draw must not
        # depend on what the nodes did
        if self.world.nodes[party].serving and len(self.world.open_calls()) < MAX_OPEN_CALLS:
            self.run(self.world.place(party))

    # Which call is drawn as a number: what is ringing depends on the run, and Hypothesis
    # must draw the same kinds of values whatever the nodes did.
    @rule(which=st.integers(0, MAX_OPEN_CALLS * 2))
    def answer(self, which: int) -> None:
        ringing = sorted(self.world.ringing(), key=lambda c: (c.delivered_at, c.callee))
        if ringing:
            call = ringing[which % len(ringing)]
            self.run(self.world.answer(call.callee, call.call_id))

    @rule(which=st.integers(0, MAX_OPEN_CALLS * 2))
    def cancel(self, which: int) -> None:
        mine = sorted((at, caller, call) for call, (caller, at) in self.world.placed.items()
                      if self.world.nodes[caller].serving)
        if mine:
            _at, caller, call = mine[which % len(mine)]
            self.run(self.world.cancel(caller, call))

    # -- faults ----------------------------------------------------------------------
    @precondition(lambda self: not self.world.network.cut)
    @rule()
    def cut_link(self) -> None:
        self.world.cut()

    @precondition(lambda self: bool(self.world.network.cut))
    @rule()
    def heal_link(self) -> None:
        self.world.heal()

    @rule(party=parties)
    def stop_or_start(self, party: str) -> None:
        if self.world.nodes[party].serving:
            self.run(self.world.stop(party))
        else:
            self.run(self.world.start_node(party))

    @rule(party=parties, delta=step_ms)
    def step_clock(self, party: str, delta: int) -> None:
        if self.world.nodes[party].serving:  # a step while stopped: see docs/time.md
            self.run(self.world.step(party, delta))

    @rule(party=parties, ppm=slew_ppm, seconds=durations)
    def slew_clock(self, party: str, ppm: int, seconds: float) -> None:
        self.world.slew(party, ppm, max(seconds, 60.0))

    @rule(party=parties, hook=st.sampled_from(HOOKS), mode=st.sampled_from(["ok", "fail",
                                                                           "hang"]))
    def webhook(self, party: str, hook: str, mode: str) -> None:
        self.world.hook(party, hook, mode)

    @rule(seconds=durations)
    def advance(self, seconds: float) -> None:
        self.pass_time(seconds)

    # -- after every step --------------------------------------------------------------
    @invariant()
    def promises_hold(self) -> None:
        found = self.run(invariants.all_of(self.world))
        assert not found, "\n".join(str(v) for v in found) + "\n" + self.world.dump()

    def teardown(self) -> None:
        try:
            world = self.world
            if os.environ.get("HOTLINE_SIM_VERBOSE"):
                print(f"example: {(world.now - START_S) / 3600:.1f} h virtual, "
                      f"{len(world.trace)} actions, {len(world.sent)} messages, "
                      f"{len(world.calls)} calls, "
                      f"{sum(len(c.rings) for c in world.calls.values())} rings")
            self.run(self._heal_everything())
            found = self.run(invariants.all_of(world))
            lost = [s for s in world.sent.values() if len(s.released) != 1]
            assert not found, "\n".join(str(v) for v in found) + "\n" + world.dump()
            assert not lost, f"not delivered exactly once: {lost}\n" + world.dump()
        finally:
            self.run(self.world.close())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()
            shutil.rmtree(self.root, ignore_errors=True)

    async def _heal_everything(self) -> None:
        await self.world.heal_everything(120.0)


if os.environ.get("HOTLINE_SIM_SEED"):
    SimMachine = seed(int(os.environ["HOTLINE_SIM_SEED"]))(SimMachine)  # type: ignore[misc]

SETTINGS = settings(
    max_examples=int(os.environ.get("HOTLINE_SIM_EXAMPLES", "12")),
    stateful_step_count=25,
    deadline=None,
    derandomize=not os.environ.get("HOTLINE_SIM_SEED"),
    database=None if not os.environ.get("HOTLINE_SIM_SEED") else settings.default.database,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# A passing run takes about a minute; a failing one may then shrink for up to five
# minutes more before it prints the steps that fail, which the default time-out would cut.
@pytest.mark.timeout(900)
def test_two_nodes_keep_every_promise_through_faults_and_days() -> None:
    run_state_machine_as_test(SimMachine, settings=SETTINGS)
