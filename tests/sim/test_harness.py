"""Deterministic scenarios on the virtual clock: days of outage, wall-clock steps while a
chain rings, a restart mid-chain, a webhook that hangs for hours — each judged by every
invariant of :mod:`tests.sim.invariants`, plus the figures the scenario is about."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from hotline.delivery.transport import BatchAnswer
from hotline.log.checkpointer import RETRY_MAX_SECONDS
from tests.sim import harness, invariants
from tests.sim.harness import World, simulate
from tests.sim.net import Network, SimTransport
from tests.sim.virtual_time import VirtualTimeLoop

DAY = 86_400.0
HOUR = 3_600.0
#: The scenario chain of cgs@RU-GS: cgs, cgs-1d after 2 min, ccp-do after 2 more, then
#: ccp-do again every minute.
CHAIN_OFFSETS = [0.0, 120.0, 240.0, 300.0, 360.0, 420.0]


async def no_violations(world: World, lateness: list[float] | None = None) -> None:
    found = await invariants.all_of(world, lateness)
    assert not found, "\n".join(str(v) for v in found)


async def until_delivered(world: World, call_id: str, limit: float = 60.0) -> float:
    """Run until the callee has the call; its delivery time."""
    for _ in range(int(limit * 10)):
        seen = world.calls.get(call_id)
        if seen is not None and seen.delivered_at is not None:
            return seen.delivered_at
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id} was not delivered within {limit} s")


# -- the loop itself -----------------------------------------------------------------


def test_idle_days_pass_at_once_but_thread_work_takes_no_virtual_time() -> None:
    loop = VirtualTimeLoop()

    async def scenario() -> tuple[float, float, bool]:
        start = loop.time()
        await asyncio.sleep(3 * DAY)
        slept = loop.time() - start
        gate = threading.Event()

        def slow() -> None:  # real work on a thread, finished by another thread
            gate.wait(5)

        threading.Timer(0.05, gate.set).start()
        before = loop.time()
        timed_out = False
        try:
            async with asyncio.timeout(0.001):  # must not fire while the thread works
                await asyncio.to_thread(slow)
        except TimeoutError:
            timed_out = True
        return slept, loop.time() - before, timed_out

    real = time.perf_counter()
    try:
        slept, during_thread, timed_out = loop.run_until_complete(scenario())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
    assert slept == 3 * DAY
    assert during_thread == 0.0
    assert not timed_out
    assert time.perf_counter() - real < 2.0


# -- outages -------------------------------------------------------------------------


# three virtual days of retries take minutes of real time on a loaded 2-CPU machine
@pytest.mark.timeout(900)
def test_three_days_of_outage_then_everything_within_30_s_of_the_return(
        sim_root: Path) -> None:
    async def scenario(world: World) -> tuple[list[float], float]:
        await world.advance(10)
        world.cut()
        await world.send("US-JS", 3)
        await world.send("RU-GS", 2)
        call = await world.place("US-JS", "during the outage")
        for _ in range(3):
            await world.advance(DAY)
            await no_violations(world)
            await world.send("US-JS", 1)
        world.heal()
        back = world.now
        await world.advance(60)
        await no_violations(world)
        seen = world.calls[call]
        assert seen.first_at is not None
        return [s.released[0] - back for s in world.sent.values()], seen.first_at - back

    after_return, call_after = simulate(sim_root, scenario)
    assert len(after_return) == 8
    assert max(after_return) <= 30.0
    assert call_after <= 30.0


def test_a_dead_peer_is_asked_at_the_pace_of_the_backoff_not_of_its_floor(
        sim_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call and messages queued during an outage are tried again early once (that is
    what a new offer is for), then at the capped backoff's pace: in an hour of a cut
    link, at most one batch per half cap (the jitter's shortest step), not one per
    second. A flag left over from a failed attempt once cut every later backoff short:
    36,024 attempts in such an hour. The checkpointer too backs off a peer it cannot
    reach (it once asked every second: 3,600 tries and log lines an hour)."""
    attempts: list[float] = []
    checkpoints: list[str] = []
    post_batch = SimTransport.post_batch
    poster = Network.poster

    def counting_poster(self: Network, source: str) -> Callable[[str, bytes],
                                                                Awaitable[bytes]]:
        post = poster(self, source)

        async def counted(url: str, body: bytes) -> bytes:
            checkpoints.append(source)
            return await post(url, body)
        return counted

    async def counted(self: SimTransport, endpoint: str, envelopes: list[bytes],
                      lane: str = "control") -> BatchAnswer:
        attempts.append(asyncio.get_running_loop().time())
        return await post_batch(self, endpoint, envelopes, lane)

    monkeypatch.setattr(SimTransport, "post_batch", counted)
    monkeypatch.setattr(Network, "poster", counting_poster)

    async def scenario(world: World) -> tuple[int, int, float]:
        await world.advance(10)
        world.cut()
        await world.place("US-JS", "during the outage")
        await world.send("US-JS", 3)
        await world.advance(120)  # the backoffs reach their caps
        before, checkpoints_before = len(attempts), len(checkpoints)
        await world.advance(HOUR)
        return (len(attempts) - before, len(checkpoints) - checkpoints_before,
                world.nodes["US-JS"].config.delivery.backoff_max_seconds)

    # the checkpointer looks every second, as on a real node (not every 300 s)
    made, asked, cap = simulate(sim_root, scenario,
                                polls=replace(harness.SIM_POLLS, checkpoints_s=1.0))
    # both nodes' senders (each has something queued: the callee's desk reports or not)
    assert made <= 2 * (HOUR / (cap / 2) + 2), made
    assert 0 < asked <= 2 * (HOUR / (RETRY_MAX_SECONDS / 2) + 2), asked


def test_a_restart_mid_chain_rings_what_fell_due_at_once_and_repeats_once(
        sim_root: Path) -> None:
    async def scenario(world: World) -> list[tuple[float, int]]:
        call = await world.place("US-JS", "restart mid-chain")
        delivered = await until_delivered(world, call)
        await world.advance(60)
        await world.stop("RU-GS")
        await world.advance(10 * 60)  # rings 1..5 (steps 1, 2 and three repeats) fall due
        await world.start_node("RU-GS")
        back = world.now
        await world.advance(200)
        await no_violations(world)
        return [(at - delivered, step) for at, step in world.calls[call].rings
                if at <= back + 1] + [(back - delivered, -1)]

    rings = simulate(sim_root, scenario)
    *rang, (back, _) = rings
    assert [step for _, step in rang] == [0, 1, 2, 2]  # the repeats coalesced into one
    assert all(at == pytest.approx(back, abs=1.0) for at, _ in rang[1:])


# -- clock steps ---------------------------------------------------------------------


@pytest.mark.parametrize("first", [+3_600_000, -3_600_000])
def test_steps_of_an_hour_mid_wait_neither_skip_nor_double_nor_delay_a_ring(
        sim_root: Path, first: int) -> None:
    async def scenario(world: World) -> list[tuple[float, int]]:
        call = await world.place("US-JS", "clock steps")
        delivered = await until_delivered(world, call)
        await world.advance(30)
        await world.step("RU-GS", first)       # callee, mid-wait for ring 1
        await world.advance(60)
        await world.step("US-JS", -first)      # caller, too
        await world.advance(120)
        await world.step("RU-GS", -first)      # and back, mid-wait for ring 3
        await world.advance(delivered + 430 - world.now)
        lateness: list[float] = []
        await no_violations(world, lateness)
        assert len(lateness) == len(world.calls[call].rings)
        assert max(abs(x) for x in lateness) <= invariants.RING_TOLERANCE_S
        _peers, _tasks, alarms = await world.status("RU-GS")
        assert "clock-step:" in {a.cause for a in alarms}
        return [(at - delivered, step) for at, step in world.calls[call].rings]

    rings = simulate(sim_root, scenario)
    assert [step for _, step in rings] == [0, 1, 2, 2, 2, 2]
    for (at, _), due in zip(rings, CHAIN_OFFSETS, strict=True):
        assert at == pytest.approx(due, abs=invariants.RING_TOLERANCE_S)


def test_a_peer_an_hour_ahead_is_refused_visibly_and_caught_up_once_it_steps_back(
        sim_root: Path) -> None:
    async def scenario(world: World) -> float:
        await world.step("RU-GS", 3_600_000)
        sent = await world.send("US-JS", 2)
        await world.advance(120)
        assert not any(s.released for s in sent)  # outside the skew window: refused
        peers, _tasks, _alarms = await world.status("US-JS")
        assert peers[0].state == "failing"
        assert "timestamp-out-of-window" in (peers[0].last_error or "")
        await no_violations(world)
        await world.step("RU-GS", -3_600_000)
        back = world.now
        await world.advance(60)
        await no_violations(world)
        return max(s.released[0] for s in sent) - back

    assert simulate(sim_root, scenario) <= 30.0


# -- notification channels -----------------------------------------------------------


def test_a_webhook_hanging_for_hours_delays_neither_the_other_channel_nor_the_chain(
        sim_root: Path) -> None:
    async def scenario(world: World) -> list[float]:
        world.hook("RU-GS", "ops", "hang")
        call = await world.place("US-JS", "hanging webhook")
        delivered = await until_delivered(world, call)
        await world.advance(3 * HOUR)
        lateness: list[float] = []
        await no_violations(world, lateness)
        assert max(abs(x) for x in lateness) <= invariants.RING_TOLERANCE_S
        rings = world.calls[call].rings
        duty = dict((key, at) for at, key in world.webhooks.hooks["ru-gs/duty"].accepted)
        ops = world.webhooks.hooks["ru-gs/ops"]
        assert not ops.accepted  # retried, never answered
        assert len(ops.attempts) > len(rings)
        assert delivered == rings[0][0]
        return [duty[f"{call}:ring:{ring}"] - at for ring, (at, _step) in enumerate(rings)]

    delays = simulate(sim_root, scenario)
    assert len(delays) == 3 * 60 - 1  # a ring a minute after the first five minutes
    assert max(delays) < 1.0


def test_a_failing_webhook_is_alarmed_and_the_alarm_clears_when_it_delivers_again(
        sim_root: Path) -> None:
    async def causes(world: World) -> set[str]:
        _peers, _tasks, alarms = await world.status("RU-GS")
        return {a.cause for a in alarms}

    async def scenario(world: World) -> None:
        world.hook("RU-GS", "ops", "fail")
        call = await world.place("US-JS", "failing webhook")
        await until_delivered(world, call)
        await world.advance(10)
        assert "notification-failed:hook-ops" in await causes(world)
        assert "notification-failed:hook-duty" not in await causes(world)
        await world.stop("RU-GS")          # the alarm outlives a restart...
        await world.start_node("RU-GS")
        assert "notification-failed:hook-ops" in await causes(world)
        world.hook("RU-GS", "ops", "ok")   # ...and clears at the channel's next delivery
        await world.advance(HOUR)
        assert "notification-failed:hook-ops" not in await causes(world)
        await no_violations(world)

    simulate(sim_root, scenario)
