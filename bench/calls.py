#!/usr/bin/env python
"""Calls benchmark: ``call`` on the caller -> ringing on the callee's event stream, and
how late escalation deadlines fire, without and across a crash of the callee's node.

Two fresh nodes (BENCH-A calls, BENCH-B is called), each a ``hotline serve`` process
with its own SQLite database. B's directory has one role ``desk`` with a finite chain of
three short steps (``--step-ms`` each), so every call fires three deadlines on B (ring 2,
ring 3, unanswered).

* ``ringing``: ``--calls`` calls placed one at a time at ``--rate`` calls/s; the latency
  of each is from just before its POST on A to the moment its first ``ringing`` event is
  parsed off B's ``/api/v1/calls-events`` stream (one process, one monotonic clock).
* ``lateness``: for every deadline B fired, ``fired_at - due_at`` from B's ``timers``
  table (wall-clock ms, B's own clock at both ends).
* ``crash``: ``--crash-calls`` calls with steps of ``--crash-step-ms``; once all are
  ringing, B is killed with SIGKILL, kept down ``--down-s`` seconds, and restarted. For
  the deadlines that fell due while B was down: how long after the new process was
  started they fired (against ``restart_ms``, start to health check answering), and
  ``fired_at - due_at``; the deadlines due after the restart are reported apart.

Prints one JSON object on stdout; progress on stderr.

    .venv/bin/python bench/calls.py --calls 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from delivery import Node, free_ports, percentile, start_node, stop_nodes, wait_healthy
from hotline.admin import accept_link, apply_directory, init_node, make_link_offer, read_offer
from hotline.store.engine import create_engine

CALLER, CALLEE = "BENCH-A", "BENCH-B"


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def directory(party: str, peer: str, step_ms: int) -> str:
    lines = ['[roles.desk]', 'title = { en = "Desk" }', '',
             '[operators.duty]', 'name = "Duty"', 'roles = ["desk"]', '',
             '[[roster]]', 'operator = "duty"', 'role = "desk"', 'status = "on-duty"', '',
             '[chains.desk]']
    for _ in range(3):
        lines += ['[[chains.desk.steps]]', 'ring = ["desk"]', f'wait = "{step_ms}ms"']
    lines += ['', f'[links.{peer}]', 'may_call = { desk = ["desk"] }',
              'accept = { desk = ["desk"] }', 'deliver_within = "30s"']
    return "\n".join(lines) + "\n"


def set_up(base: Path, passphrase: str, step_ms: int) -> tuple[Node, Node]:
    port_a, port_b = free_ports(2)
    a, b = Node("A", CALLER, base / "a", port_a), Node("B", CALLEE, base / "b", port_b)
    for node in (a, b):
        created = init_node(node.dir, party=node.party, name=node.party,
                            listen=f"127.0.0.1:{node.port}", endpoints=[], db=None,
                            passphrase=passphrase)
        node.token = created.token
    offer_a = read_offer(make_link_offer(a.dir, passphrase)[0])
    offer_b = read_offer(make_link_offer(b.dir, passphrase)[0])
    accept_link(a.dir, offer_b)
    accept_link(b.dir, offer_a)
    apply_steps(a, CALLEE, step_ms)
    apply_steps(b, CALLER, step_ms)
    return a, b


def apply_steps(node: Node, peer: str, step_ms: int) -> None:
    path = node.dir / "directory.toml"
    path.write_text(directory(node.party, peer, step_ms))
    apply_directory(node.dir, path)


class Stream:
    """B's call event stream: the time each call's first ringing event arrived."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.ringing: dict[str, int] = {}
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        headers = {"authorization": f"Bearer {self.node.token}"}
        timeout = httpx.Timeout(10.0, read=None)
        async with httpx.AsyncClient(timeout=timeout) as client, client.stream(
                "GET", self.node.url + "/api/v1/calls-events", headers=headers) as response:
            self.ready.set()
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                body = json.loads(line[5:])
                event, call = body.get("event", {}), body.get("call", {})
                if event.get("state") == "ringing" and call.get("id") not in self.ringing:
                    self.ringing[call["id"]] = time.perf_counter_ns()


def summary(values: list[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)
    return {"n": len(ordered), "p50": percentile(ordered, 50), "p90": percentile(ordered, 90),
            "p99": percentile(ordered, 99), "max": ordered[-1] if ordered else None}


POST_MS: list[float] = []


async def place_calls(a: Node, count: int, rate: float) -> dict[str, int]:
    sent: dict[str, int] = {}
    headers = {"authorization": f"Bearer {a.token}"}
    async with httpx.AsyncClient(base_url=a.url, headers=headers, timeout=30) as client:
        start = time.perf_counter()
        for n in range(count):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            t0 = time.perf_counter_ns()
            response = await client.post("/api/v1/calls", json={"to": f"desk@{CALLEE}",
                                                                 "as": "desk"})
            response.raise_for_status()
            POST_MS.append((time.perf_counter_ns() - t0) / 1e6)
            sent[response.json()["id"]] = t0
    return sent


async def wait_for(predicate: Any, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def timers(node: Node) -> list[tuple[str, int, int]]:
    engine = create_engine(f"sqlite:///{node.dir / 'hotline.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT key, due_at, fired_at FROM timers "
                                     "WHERE outcome = 'fired' AND kind = 'escalate'"))
            return [(r[0], int(r[1]), int(r[2])) for r in rows]
    finally:
        engine.dispose()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="hotline-bench-calls-"))
    passphrase = secrets.token_urlsafe(12)
    a, b = set_up(base, passphrase, args.step_ms)
    try:
        for node in (a, b):
            start_node(node, passphrase)
        for node in (a, b):
            await wait_healthy(node)
        stream = Stream(b)
        stream.task = asyncio.create_task(stream.run())
        await asyncio.wait_for(stream.ready.wait(), 10)

        progress(f"ringing: {args.calls} calls at {args.rate}/s")
        sent = await place_calls(a, args.calls, args.rate)
        await wait_for(lambda: all(c in stream.ringing for c in sent), 60, "every ringing")
        latency = [(stream.ringing[c] - t0) / 1e6 for c, t0 in sent.items()]
        post_ms = list(POST_MS)
        await asyncio.sleep(3 * args.step_ms / 1000 + 1.0)  # let every chain run out
        fired = timers(b)
        lateness = [fired_at - due for _, due, fired_at in fired]

        progress(f"crash: {args.crash_calls} calls, steps of {args.crash_step_ms} ms, "
                 f"B down {args.down_s} s")
        stream.task.cancel()
        apply_steps(a, CALLEE, args.crash_step_ms)
        apply_steps(b, CALLER, args.crash_step_ms)
        await asyncio.sleep(1.5)  # both nodes pick the new directory up
        before = {key for key, _, _ in timers(b)}
        crash_sent = await place_calls(a, args.crash_calls, args.crash_rate)
        engine = create_engine(f"sqlite:///{b.dir / 'hotline.db'}")
        try:
            def all_ringing() -> bool:
                with engine.connect() as conn:
                    n = conn.execute(text("SELECT COUNT(*) FROM calls "
                                          "WHERE state = 'ringing'")).scalar()
                return n == len(crash_sent)
            await wait_for(all_ringing, 60, "crash calls ringing")
        finally:
            engine.dispose()
        assert b.proc is not None
        killed_at = time.time() * 1000
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        await asyncio.sleep(args.down_s)
        spawned_at = time.time() * 1000
        start_node(b, passphrase)
        await wait_healthy(b)
        ready_at = time.time() * 1000
        await asyncio.sleep(3 * args.crash_step_ms / 1000 + 1.0)
        after = [t for t in timers(b) if t[0] not in before]
        # due before the new process started, fired by it: what the crash delayed
        overdue = [t for t in after if t[1] < spawned_at <= t[2]]
        on_time = [t for t in after if t not in overdue]
        return {
            "benchmark": "calls", "calls": args.calls, "rate": args.rate,
            "step_ms": args.step_ms,
            "call_to_ringing_ms": summary(latency),
            "post_call_response_ms": summary(post_ms),
            "step_lateness_ms": summary([float(x) for x in lateness]),
            "crash": {
                "calls": args.crash_calls, "step_ms": args.crash_step_ms,
                "down_ms": round(spawned_at - killed_at, 1),
                "restart_ms": round(ready_at - spawned_at, 1),
                "deadlines_overdue_at_restart": len(overdue),
                "fired_after_restart_began_ms": summary([f - spawned_at for _, _, f in overdue]),
                "lateness_ms": summary([float(f - d) for _, d, f in overdue]),
                "lateness_other_ms": summary([float(f - d) for _, d, f in on_time]),
                "each_fired_once": len({t[0] for t in after}) == len(after),
            },
        }
    finally:
        stop_nodes([a, b])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second")
    parser.add_argument("--step-ms", type=int, default=500)
    parser.add_argument("--crash-calls", type=int, default=50)
    parser.add_argument("--crash-step-ms", type=int, default=2000)
    parser.add_argument("--down-s", type=float, default=3.0)
    parser.add_argument("--crash-rate", type=float, default=50.0,
                        help="calls per second in the crash phase (all must be ringing "
                             "together)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
