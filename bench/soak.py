#!/usr/bin/env python
"""Soak on the virtual clock: a week of two nodes under random faults, in minutes.

The harness of ``tests/sim`` (real nodes, real SQLite, a virtual-time event loop that
waits for database threads, an in-memory network and webhooks) runs US-JS and RU-GS for
``--days`` simulated days. From ``--seed`` it draws a schedule:

* operators send messages both ways (``--messages-per-hour`` each way) and place calls
  (one every ``--call-every-h`` hours on average, either way), answered 1 to 20 minutes
  after they start ringing (later if the callee's node is down then);
* the link is cut about twice a day for 10 s to 6 h, and once for two days;
* each node is stopped about twice a day for 1 s to 2 h (a restart on its database);
* each node's wall clock steps about once a day by 1 s to 1 h either way and is stepped
  back 10 min to 6 h later; now and then a machine's clock slews at 500 ppm for a day;
* each webhook fails or hangs for a few hours about once in three days.

Every simulated hour, and at the end after every fault is healed, the invariants of
``tests/sim/invariants.py`` are checked; the run fails if any is broken. Printed: one
JSON object on stdout (messages delivered, calls, rings, escalation lateness p50/p99/max
measured on the callee's monotonic clock against the delivery time plus the chain's
offsets, rings excused by a restart, faults injected, wall time); progress on stderr.

    .venv/bin/python bench/soak.py --days 7 --seed 1
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.sim import invariants  # noqa: E402
from tests.sim.harness import HOOKS, PARTIES, World, template  # noqa: E402
from tests.sim.virtual_time import START_S, VirtualTimeLoop  # noqa: E402

HOUR = 3_600.0
DAY = 86_400.0
Action = Callable[[], Awaitable[None]]


def progress(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Soak:
    def __init__(self, world: World, rng: random.Random, args: argparse.Namespace) -> None:
        self.world = world
        self.rng = rng
        self.args = args
        self.queue: list[tuple[float, int, str, Action]] = []
        self.counter = 0
        self.faults: dict[str, int] = {}
        self.violations: list[str] = []
        self.answer_at: dict[str, float] = {}
        self.cuts = 0
        self.stops = dict.fromkeys(PARTIES, 0)

    def at(self, when: float, what: str, action: Action) -> None:
        self.counter += 1
        heapq.heappush(self.queue, (when, self.counter, what, action))

    def schedule(self, days: float) -> None:
        rng, end = self.rng, days * DAY
        for sender in PARTIES:
            t = 0.0
            while (t := t + rng.expovariate(self.args.messages_per_hour / HOUR)) < end:
                self.at(t, "send", lambda s=sender: self._send(s))
        t = 0.0
        while (t := t + rng.expovariate(1 / (self.args.call_every_h * HOUR))) < end:
            caller = rng.choice(PARTIES)
            self.at(t, "call", lambda p=caller: self._call(p))
        t = 0.0
        while (t := t + rng.expovariate(2 / DAY)) < end:
            self._outage(t, log_uniform(rng, 10, 6 * HOUR))
        self._outage(rng.uniform(1, days - 2.5) * DAY if days > 3 else 0.2 * end, 2 * DAY)
        for party in PARTIES:
            t = 0.0
            while (t := t + rng.expovariate(2 / DAY)) < end:
                self._restart(t, party, log_uniform(rng, 1, 2 * HOUR))
            t = 0.0
            while (t := t + rng.expovariate(1 / DAY)) < end:
                delta = int(log_uniform(rng, 1_000, 3_600_000)) * rng.choice((1, -1))
                back = t + log_uniform(rng, 600, 6 * HOUR)
                self.at(t, "step", lambda p=party, d=delta: self._step(p, d))
                self.at(back, "step back", lambda p=party, d=-delta: self._step(p, d))
            t = 0.0
            while (t := t + rng.expovariate(1 / (3 * DAY))) < end:
                ppm = rng.choice((500, -500))
                self.at(t, "slew", lambda p=party, r=ppm: self._slew(p, r, DAY))
            for hook in HOOKS:
                t = 0.0
                while (t := t + rng.expovariate(1 / (3 * DAY))) < end:
                    mode, hours = rng.choice(("fail", "hang")), rng.uniform(1, 6)
                    self.at(t, mode, lambda p=party, h=hook, m=mode: self._hook(p, h, m))
                    self.at(t + hours * HOUR, "hook ok",
                            lambda p=party, h=hook: self._hook(p, h, "ok"))
        self.at(end, "end", self._noop)

    def _outage(self, start: float, length: float) -> None:
        self.at(start, "cut", self._cut)
        self.at(start + length, "heal", self._heal)

    def _restart(self, start: float, party: str, down: float) -> None:
        self.at(start, "stop", lambda: self._stop(party))
        self.at(start + down, "start", lambda: self._start(party))

    # -- actions (each tolerant of the state the others left) ------------------------
    async def _noop(self) -> None:
        return None

    async def _send(self, sender: str) -> None:
        if self.world.nodes[sender].serving:
            await self.world.send(sender, self.rng.randint(1, 3))

    async def _call(self, caller: str) -> None:
        if self.world.nodes[caller].serving and len(self.world.open_calls()) < 4:
            await self.world.place(caller, "soak")
            self.faults["calls placed"] = self.faults.get("calls placed", 0) + 1

    async def _cut(self) -> None:  # overlapping outages: the link heals after the last
        self._count("link cuts")
        self.cuts += 1
        if self.cuts == 1:
            self.world.cut()

    async def _heal(self) -> None:
        self.cuts -= 1
        if self.cuts == 0:
            self.world.heal()

    async def _stop(self, party: str) -> None:
        self._count("node restarts")
        self.stops[party] += 1
        if self.stops[party] == 1:
            await self.world.stop(party)

    async def _start(self, party: str) -> None:
        self.stops[party] -= 1
        if self.stops[party] == 0:
            await self.world.start_node(party)

    async def _step(self, party: str, delta: int) -> None:
        if self.world.nodes[party].serving:
            self._count("clock steps")
            await self.world.step(party, delta)
        else:  # a step of a stopped machine could not be told from time passing
            self.at(self.world.now - START_S + 60, "step later",
                    lambda: self._step(party, delta))

    async def _slew(self, party: str, ppm: int, seconds: float) -> None:
        self._count("clock slews")
        self.world.slew(party, ppm, seconds)

    async def _hook(self, party: str, hook: str, mode: str) -> None:
        if mode != "ok":
            self._count(f"webhook {mode}s")
        self.world.hook(party, hook, mode)

    def _count(self, what: str) -> None:
        self.faults[what] = self.faults.get(what, 0) + 1

    async def _answer_due(self) -> None:
        world = self.world
        for seen in world.ringing():
            assert seen.delivered_at is not None
            when = self.answer_at.setdefault(seen.call_id,
                                             seen.delivered_at + self.rng.uniform(60, 1200))
            if world.nodes[seen.callee].clock.monotonic() >= when:
                await world.answer(seen.callee, seen.call_id)

    async def check(self, lateness: list[float] | None = None) -> None:
        found = await invariants.all_of(self.world, lateness)
        for violation in found:
            if str(violation) not in self.violations:
                self.violations.append(str(violation))
                progress(f"VIOLATION {violation}")

    # -- the run -----------------------------------------------------------------------
    async def run(self, days: float) -> None:
        world = self.world
        next_check = HOUR
        while self.queue:
            when, _n, _what, action = heapq.heappop(self.queue)
            while (left := when - (world.now - START_S)) > 1e-6:  # float time: not 0
                step = min(60.0, left)
                await world.advance(step)
                await self._answer_due()
                if world.now - START_S >= next_check:
                    await self.check()
                    if round(next_check / HOUR) % 24 == 0:
                        progress(f"day {next_check / DAY:.0f} of {days:g}: "
                                 f"{sum(1 for s in world.sent.values() if s.released)} "
                                 f"messages delivered, {len(world.calls)} calls, "
                                 f"{len(self.violations)} violations")
                    next_check += HOUR
            await action()
        await self.heal_everything()

    async def heal_everything(self) -> None:
        await self.world.heal_everything(600.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--messages-per-hour", type=float, default=3.0)
    parser.add_argument("--call-every-h", type=float, default=3.0)
    args = parser.parse_args()

    real_start = time.perf_counter()
    template()
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="hotline-soak-",
                                     dir=shm if shm.is_dir() else None) as tmp:
        loop = VirtualTimeLoop()
        world = World(Path(tmp), loop, seed=args.seed)
        soak = Soak(world, random.Random(args.seed), args)
        soak.schedule(args.days)
        lateness: list[float] = []
        try:
            loop.run_until_complete(world.start())
            loop.run_until_complete(soak.run(args.days))
            loop.run_until_complete(soak.check(lateness))
            lost = [s.text for s in world.sent.values() if len(s.released) != 1]
        finally:
            loop.run_until_complete(world.close())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
    wall = time.perf_counter() - real_start
    rings = sum(len(c.rings) for c in world.calls.values())
    result: dict[str, Any] = {
        "seed": args.seed,
        "simulated_days": args.days,
        "wall_s": round(wall, 1),
        "speed_up": round(args.days * DAY / wall),
        "messages_sent": len(world.sent),
        "messages_delivered": sum(1 for s in world.sent.values() if len(s.released) == 1),
        "messages_lost_or_doubled": len(lost),
        "calls": len(world.calls),
        "calls_answered": sum(1 for c in world.calls.values() if c.end_state == "answered"),
        "rings": rings,
        "rings_on_schedule": len(lateness),
        "rings_excused_by_a_restart": rings - len(lateness),
        "lateness_ms": {"p50": round(percentile(lateness, 0.50) * 1000, 1),
                        "p99": round(percentile(lateness, 0.99) * 1000, 1),
                        "max": round(max(lateness, default=float("nan")) * 1000, 1),
                        "min": round(min(lateness, default=float("nan")) * 1000, 1)},
        "faults": soak.faults,
        "server_errors": len(world.network.server_errors),
        "violations": soak.violations,
        "real_waits_for_the_database": loop.real_waits,
    }
    print(json.dumps(result, indent=1))
    return 1 if soak.violations or lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
