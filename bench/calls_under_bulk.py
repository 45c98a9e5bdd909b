#!/usr/bin/env python
"""Calls during bulk: call -> ``ringing`` seen by the caller while bulk traffic flows.

Two fresh nodes as in ``bench/calls.py`` (BENCH-A calls ``desk@BENCH-B``; B's directory
has one role ``desk`` with a three-step chain), each a ``hotline serve`` process with its
own SQLite database. A places one call a second through its operator API
(``POST /api/v1/calls``) in three phases of ``--duration`` seconds each, run one after
another in the same process:

* ``idle``: calls only, the baseline;
* ``bulk_<R>`` (``--bulk-rate``, default 1 000): meanwhile A's operator API is sent
  ``--bulk-size`` messages per ``POST /api/v1/messages`` at a fixed R messages/s (open
  loop: each request its own task at its scheduled time, up to ``--connections`` in
  flight);
* ``bulk_max``: meanwhile ``--bulk-concurrency`` senders post batches back to back
  (closed loop).

**Call to ringing** runs from just before A's call POST to the moment the first
``ringing`` state of that call is parsed off *A's* ``/api/v1/calls-events`` stream: the
call signal went A -> B behind the bulk traffic, and B's signed ``ringing`` came back
B -> A. **Bulk throughput** is the bench messages parsed off B's ``/api/v1/events``
stream per second during the phase's sending window; after it the phase waits until
every accepted message has arrived (nothing may be lost) and every call has rung, so
each phase starts on an empty line.

Only the public operator API is used, so the benchmark runs unchanged when the node
gives calls their own lane or pushes back on bulk: a ``429`` answer is counted
(``refused``) and, in the closed loop, waited out for its ``Retry-After``.

Target (issue 17): at 1 000 bulk messages/s, the call-to-ringing p99 within 1.5 x the
idle p99 of the same run. Prints one JSON object on stdout; progress on stderr.

    .venv/bin/python bench/calls_under_bulk.py --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from calls import CALLEE, set_up
from delivery import (
    Collector,
    Node,
    RawPoster,
    machine,
    node_failed,
    percentile,
    proc_cpu_seconds,
    proc_status_mb,
    source_digest,
    start_node,
    stop_nodes,
    system_busy_seconds,
    wait_healthy,
)

TARGET_RATIO = 1.5
STEP_MS = 500


def progress(message: str) -> None:
    print(f"[calls-under-bulk] {message}", file=sys.stderr, flush=True)


def summary(values_ms: list[float]) -> dict[str, float | int | None]:
    ordered = sorted(values_ms)
    out: dict[str, float | int | None] = {"n": len(ordered)}
    for key, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        value = percentile(ordered, q)
        out[key] = None if value is None else round(value, 1)
    out["max"] = round(ordered[-1], 1) if ordered else None
    return out


def loadavg() -> float:
    """The 1-minute load average: how busy the shared machine was (figures are noisy)."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class CallerStream:
    """A's call event stream: when each call's first ``ringing`` arrived (perf ns)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.ringing: dict[str, int] = {}
        self.ready = asyncio.Event()
        self.errors: list[str] = []

    async def run(self) -> None:
        headers = {"authorization": f"Bearer {self.node.token}"}
        timeout = httpx.Timeout(10.0, read=None)
        after = 0
        async with httpx.AsyncClient(timeout=timeout) as client:
            while not node_failed(self.node):
                try:
                    async with client.stream(
                            "GET", self.node.url + "/api/v1/calls-events",
                            params={"after": str(after)}, headers=headers) as response:
                        response.raise_for_status()
                        self.ready.set()
                        async for line in response.aiter_lines():
                            if line.startswith("id:"):
                                after = max(after, int(line[3:].strip()))
                            if not line.startswith("data:"):
                                continue
                            now = time.perf_counter_ns()
                            body = json.loads(line[5:])
                            event, call = body.get("event") or {}, body.get("call") or {}
                            call_id = call.get("id")
                            if event.get("state") == "ringing" and call_id not in self.ringing:
                                self.ringing[call_id] = now
                except (httpx.HTTPError, ValueError) as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.05)


@dataclass
class BulkLog:
    name: str
    accepted: list[str] = field(default_factory=list)
    offered: int = 0
    refused: int = 0  # answered 429: back-pressure, not an error
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    counter: int = 0

    def next_ids(self, count: int) -> list[str]:
        ids = [f"{self.name}-{self.counter + i}" for i in range(count)]
        self.counter += count
        return ids


async def post_batch(poster: RawPoster, log: BulkLog, count: int) -> float:
    """POST ``count`` bench messages to B in one request; returns the seconds to wait
    before the next request (``Retry-After`` of a 429, else 0)."""
    ids = log.next_ids(count)
    now = time.perf_counter_ns()
    body = json.dumps({"to": CALLEE, "texts": [f"bench {i} {now}" for i in ids]}).encode()
    log.offered += count
    try:
        status, content = await poster.post("/api/v1/messages", body)
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
        log.errors += count
        if len(log.error_samples) < 5:
            log.error_samples.append(f"{type(exc).__name__}: {exc}")
        return 0.0
    if status == 201:
        log.accepted.extend(ids)
        return 0.0
    if status == 429:
        log.refused += count
        return 1.0  # RawPoster does not keep headers; a second is the API's usual hint
    log.errors += count
    if len(log.error_samples) < 5:
        log.error_samples.append(f"HTTP {status}: {content[:200].decode(errors='replace')}")
    return 0.0


async def bulk_fixed(node: Node, log: BulkLog, rate: float, size: int, connections: int,
                     stop: asyncio.Event) -> None:
    """``rate`` messages/s in requests of ``size``, each request its own task at its
    scheduled time; a request waits for a free connection only if all are busy."""
    free: asyncio.Queue[RawPoster] = asyncio.Queue()
    posters = [RawPoster("127.0.0.1", node.port, node.token) for _ in range(connections)]
    for poster in posters:
        free.put_nowait(poster)
    tasks: set[asyncio.Task[None]] = set()

    async def send() -> None:
        poster = await free.get()
        try:
            await post_batch(poster, log, size)
        finally:
            free.put_nowait(poster)

    interval = size / rate
    start = time.perf_counter()
    n = 0
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, start + n * interval - time.perf_counter())):
                    await stop.wait()
            if stop.is_set():
                break
            task = asyncio.create_task(send())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        for poster in posters:
            await poster.close()


async def bulk_max(node: Node, log: BulkLog, size: int, workers: int,
                   stop: asyncio.Event) -> None:
    """``workers`` senders posting batches back to back; a 429 is waited out."""

    async def worker() -> None:
        poster = RawPoster("127.0.0.1", node.port, node.token)
        try:
            while not stop.is_set():
                wait = await post_batch(poster, log, size)
                if wait:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await stop.wait()
        finally:
            await poster.close()

    await asyncio.gather(*(worker() for _ in range(workers)))


@dataclass
class Run:
    args: argparse.Namespace
    a: Node
    b: Node
    caller: CallerStream
    collector: Collector
    calls: httpx.AsyncClient

    async def place_call(self, placed: dict[str, int], post_ms: list[float]) -> None:
        t0 = time.perf_counter_ns()
        response = await self.calls.post("/api/v1/calls",
                                          json={"to": f"desk@{CALLEE}", "as": "desk"})
        response.raise_for_status()
        post_ms.append((time.perf_counter_ns() - t0) / 1e6)
        placed[response.json()["id"]] = t0

    async def phase(self, name: str, bulk: str | None) -> dict[str, Any]:
        args = self.args
        log = BulkLog(name)
        stop = asyncio.Event()
        progress(f"phase {name}: {args.duration:g} s, one call a second"
                 + (f", bulk {bulk}" if bulk else ""))
        cpu0 = {k: proc_cpu_seconds(n.pid) for k, n in (("A", self.a), ("B", self.b))}
        busy0 = system_busy_seconds()
        start = time.perf_counter_ns()
        sender: asyncio.Task[None] | None = None
        if bulk == "fixed":
            sender = asyncio.create_task(bulk_fixed(self.a, log, args.bulk_rate,
                                                    args.bulk_size, args.connections, stop))
        elif bulk == "max":
            sender = asyncio.create_task(bulk_max(self.a, log, args.bulk_size,
                                                  args.bulk_concurrency, stop))
        if sender is not None:
            await asyncio.sleep(args.lead_in)  # calls meet a line already busy
        placed: dict[str, int] = {}
        post_ms: list[float] = []
        calls_start = time.perf_counter()
        for n in range(max(1, round(args.duration))):
            await asyncio.sleep(max(0.0, calls_start + n - time.perf_counter()))
            await self.place_call(placed, post_ms)
        await asyncio.sleep(max(0.0, calls_start + args.duration - time.perf_counter()))
        stop.set()
        if sender is not None:
            await sender
        window_end = time.perf_counter_ns()
        window_s = (window_end - start) / 1e9
        cpu1 = {k: proc_cpu_seconds(n.pid) for k, n in (("A", self.a), ("B", self.b))}
        busy1 = system_busy_seconds()
        seen = self.collector.first_seen_ns
        in_window = sum(1 for i in log.accepted if seen.get(i, window_end + 1) <= window_end)
        # nothing may be lost and every call must ring: wait, while there is progress
        deadline = time.monotonic() + args.drain_max
        while time.monotonic() < deadline and not (
                all(c in self.caller.ringing for c in placed)
                and all(i in seen for i in log.accepted)):
            if node_failed(self.a) or node_failed(self.b):
                raise RuntimeError("a node exited during the phase")
            await asyncio.sleep(0.05)
        drained_s = (time.perf_counter_ns() - window_end) / 1e9
        ringing = [(self.caller.ringing[c] - t0) / 1e6 for c, t0 in placed.items()
                   if c in self.caller.ringing]
        delivered = sum(1 for i in log.accepted if i in seen)
        result: dict[str, Any] = {
            "bulk": bulk or "none",
            "window_s": round(window_s, 2),
            "calls": len(placed),
            "calls_not_ringing": len(placed) - len(ringing),
            "call_to_ringing_ms": summary(ringing),
            "call_post_ms": summary(post_ms),
            "loadavg_1m": loadavg(),
            "cpu_seconds": {"A": round(cpu1["A"] - cpu0["A"], 2),
                            "B": round(cpu1["B"] - cpu0["B"], 2),
                            "machine_busy": round(busy1 - busy0, 2)},
        }
        if bulk:
            result["bulk_messages"] = {
                "offered": log.offered, "accepted": len(log.accepted),
                "refused_429": log.refused, "errors": log.errors,
                "accepted_per_s": round(len(log.accepted) / window_s, 1),
                "delivered_in_window_per_s": round(in_window / window_s, 1),
                "delivered": delivered, "lost": len(log.accepted) - delivered,
                "drain_after_window_s": round(drained_s, 2),
            }
            if log.error_samples:
                result["bulk_messages"]["error_samples"] = log.error_samples
        r = result["call_to_ringing_ms"]
        progress(f"phase {name}: ringing p50 {r['p50']} ms, p99 {r['p99']} ms"
                 + (f"; bulk accepted {len(log.accepted)}, delivered in window "
                    f"{result['bulk_messages']['delivered_in_window_per_s']}/s, "
                    f"drained {drained_s:.1f} s after" if bulk else ""))
        return result


async def main_async(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    host = machine()
    digest = source_digest()
    passphrase = secrets.token_urlsafe(12)
    a, b = set_up(base, passphrase, STEP_MS)
    nodes = [a, b]
    try:
        for node in nodes:
            start_node(node, passphrase)
        await asyncio.gather(*(wait_healthy(n) for n in nodes))
        progress(f"nodes up: A pid {a.pid}, B pid {b.pid}")
        caller, collector = CallerStream(a), Collector(b)
        tasks = [asyncio.create_task(caller.run()), asyncio.create_task(collector.run())]
        try:
            async with asyncio.timeout(10):
                await caller.ready.wait()
                await collector.ready.wait()
            headers = {"authorization": f"Bearer {a.token}"}
            async with httpx.AsyncClient(base_url=a.url, headers=headers,
                                         timeout=60) as client:
                run = Run(args, a, b, caller, collector, client)
                await run.place_call({}, [])  # warm-up: first call, first connections
                phases: dict[str, Any] = {"idle": await run.phase("idle", None)}
                rate_name = f"bulk_{args.bulk_rate:g}"
                phases[rate_name] = await run.phase(rate_name, "fixed")
                if not args.skip_max:
                    phases["bulk_max"] = await run.phase("bulk_max", "max")
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        peak = {n.key: round(proc_status_mb(n.pid, "VmHWM"), 1) for n in nodes}
    finally:
        stop_nodes(nodes)
    idle_p99 = phases["idle"]["call_to_ringing_ms"]["p99"]
    busy_p99 = phases[f"bulk_{args.bulk_rate:g}"]["call_to_ringing_ms"]["p99"]
    ratio = round(busy_p99 / idle_p99, 2) if idle_p99 and busy_p99 else None
    lost = sum(p.get("bulk_messages", {}).get("lost", 0) for p in phases.values())
    not_ringing = sum(p["calls_not_ringing"] for p in phases.values())
    return {
        "benchmark": "calls_under_bulk", "machine": host,
        "config": {"duration_s": args.duration, "bulk_rate": args.bulk_rate,
                   "bulk_size": args.bulk_size, "bulk_concurrency": args.bulk_concurrency,
                   "connections": args.connections, "lead_in_s": args.lead_in,
                   "step_ms": STEP_MS, "hotline_source_sha256": digest},
        "phases": phases,
        "nodes_peak_rss_mb": peak,
        "ringing_p99_ratio_at_bulk_rate": ratio,
        "met": {"p99_within_1_5x_idle": None if ratio is None else ratio <= TARGET_RATIO,
                "nothing_lost": lost == 0, "every_call_rang": not_ringing == 0},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=20.0,
                   help="seconds of calls per phase, one call a second (default 20)")
    p.add_argument("--bulk-rate", type=float, default=1000.0,
                   help="bulk messages/s of the fixed-rate phase (default 1000)")
    p.add_argument("--bulk-size", type=int, default=100,
                   help="messages per bulk request (default 100)")
    p.add_argument("--bulk-concurrency", type=int, default=4,
                   help="senders in bulk_max (default 4)")
    p.add_argument("--connections", type=int, default=16,
                   help="most bulk requests in flight at the fixed rate (default 16)")
    p.add_argument("--lead-in", type=float, default=2.0,
                   help="seconds of bulk before the first call of a bulk phase (default 2)")
    p.add_argument("--drain-max", type=float, default=300.0,
                   help="after a phase, wait at most this long for its messages and calls")
    p.add_argument("--skip-max", action="store_true", help="leave out bulk_max")
    p.add_argument("--keep", action="store_true", help="keep the node directories")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hotline-bench-cub-"))
    try:
        report = asyncio.run(main_async(args, base))
    finally:
        if args.keep:
            progress(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(report, indent=2))
    met = report["met"]
    return 0 if met["nothing_lost"] and met["every_call_rang"] else 1


if __name__ == "__main__":
    sys.exit(main())
