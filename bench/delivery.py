#!/usr/bin/env python
"""End-to-end delivery benchmark: operator POST on node A -> event stream on node B.

Creates two fresh nodes (BENCH-A, BENCH-B) in a temporary directory, each with its own
SQLite database, links them both ways and runs each as a separate ``hotline serve``
process on a free localhost port. It then subscribes to B's ``/api/v1/events`` stream
and sends messages from A through A's operator API:

* ``rate_<R>``: open loop at a fixed rate R msgs/s (default 100 and 500), one POST per
  message, each send its own task so a slow answer does not stall the schedule;
* ``flood_single``: closed loop, ``--concurrency`` workers, one message per POST;
* ``flood_bulk``: closed loop, ``--bulk-concurrency`` workers, ``--bulk-size`` messages
  per POST (``"texts"``).

Each message text is ``bench <id> <perf_counter_ns at send>``; latency is the time from
the send to the moment the event is parsed off B's stream (both ends live in this
process, so one monotonic clock serves both). The send time is when the POST is issued;
in the open-loop phases it is the *scheduled* time, so a send that had to wait for a
free connection (because A answers slower than the schedule) is not flattered.

Every accepted message must be seen exactly once on B, with B's ``seq`` strictly
increasing; the benchmark exits 1 if anything is lost, duplicated or out of order, 2 if
it could not run. CPU (per phase and in total), idle and peak RSS of both node
processes come from /proc. CPU used meanwhile by other processes is reported as
``other_processes``: it should be near zero, or the figures are skewed.

Prints one JSON object on stdout; progress goes to stderr. See docs/performance.md.
Calls placed while bulk flows (issue 17's "calls during bulk" phase, on the same kind of
node pair) are ``bench/calls_under_bulk.py``, which reuses this module's parts.

    .venv/bin/python bench/delivery.py --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import httpx

import hotline
from hotline.admin import accept_link, init_node, make_link_offer, read_offer
from hotline.nodedir.config import TOKEN_NAME
from hotline.nodedir.token import read_token

if importlib.util.find_spec("sniffio") is None:
    # httpcore tries ``import sniffio`` on every lock/event it sets up; without sniffio
    # installed each failed import searches sys.path (~0.1 ms), per request. A None entry
    # makes the same ImportError immediate. Client-side only: the nodes are unaffected.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

TARGETS: dict[str, float] = {
    "p50_ms_at_500": 5,
    "p99_ms_at_500": 20,
    "throughput_min": 2000,
    "idle_rss_mb_max": 80,
}
PARTY_A = "BENCH-A"
PARTY_B = "BENCH-B"
IDLE_REUSE_S = 3.0  # reuse a keep-alive connection only if idle less than this
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
T0 = time.perf_counter_ns()


def progress(message: str) -> None:
    elapsed = (time.perf_counter_ns() - T0) / 1e9
    print(f"[{elapsed:7.2f}s] {message}", file=sys.stderr, flush=True)


# -- /proc ----------------------------------------------------------------------------

def _stat_cpu_seconds(stat_path: Path) -> float:
    """user + system CPU seconds from a stat file (fields 14 and 15)."""
    stat = stat_path.read_text()
    rest = stat[stat.rindex(")") + 2:].split()  # rest[0] is field 3 (state)
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of the whole process ``pid`` (all its threads)."""
    return _stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def main_thread_cpu_seconds(pid: int) -> float:
    """CPU seconds of the main thread alone: the event loop. The rest of a node's CPU is
    its helper threads (aiosqlite's one thread per connection, which run SQLite, and
    the thread pool that runs sync FastAPI dependencies)."""
    return _stat_cpu_seconds(Path(f"/proc/{pid}/task/{pid}/stat"))


def proc_status_mb(pid: int, key: str) -> float:
    """A memory line of /proc/PID/status (``VmRSS``, ``VmHWM``, ``RssAnon``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(f"{key} not in /proc/{pid}/status")


def system_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy (not idle, not waiting for I/O), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def self_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


# -- nodes ----------------------------------------------------------------------------

@dataclass
class Node:
    key: str
    party: str
    dir: Path
    port: int
    token: str = ""
    proc: subprocess.Popen[bytes] | None = None
    idle_rss_mb: float | None = None
    idle_rss_anon_mb: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def free_ports(count: int) -> list[int]:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


async def set_up_nodes(base: Path, passphrase: str) -> tuple[Node, Node]:
    port_a, port_b = free_ports(2)
    a = Node("A", PARTY_A, base / "a", port_a)
    b = Node("B", PARTY_B, base / "b", port_b)
    for node in (a, b):
        created = init_node(node.dir, party=node.party, name=node.party,
                                  listen=f"127.0.0.1:{node.port}", endpoints=[], db=None,
                                  passphrase=passphrase)
        node.token = created.token
    offer_a = read_offer(make_link_offer(a.dir, passphrase)[0])
    offer_b = read_offer(make_link_offer(b.dir, passphrase)[0])
    accept_link(a.dir, offer_b)
    accept_link(b.dir, offer_a)
    for node in (a, b):
        node.token = read_token(node.dir / TOKEN_NAME)
    return a, b


def start_node(node: Node, passphrase: str) -> None:
    env = {**os.environ, "HOTLINE_PASSPHRASE": passphrase}
    with (node.dir / "node.log").open("ab") as log:
        node.proc = subprocess.Popen(
            [sys.executable, "-m", "hotline", "serve", "--dir", str(node.dir),
             "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)


def stop_nodes(nodes: list[Node]) -> None:
    for node in nodes:
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGTERM)
    for node in nodes:
        if node.proc is None:
            continue
        try:
            node.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            progress(f"node {node.party} did not stop in {STOP_TIMEOUT:.0f} s; killing it")
            node.proc.kill()
            node.proc.wait()


def node_failed(node: Node) -> bool:
    return node.proc is not None and node.proc.poll() is not None


async def wait_healthy(node: Node) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            if node_failed(node):
                raise RuntimeError(f"node {node.party} exited at start; see "
                                   f"{node.dir / 'node.log'}")
            with contextlib.suppress(httpx.TransportError):
                response = await client.get(node.url + "/healthz")
                if response.status_code == 200:
                    party = response.json().get("party")
                    if party != node.party:  # another process took the port first
                        raise RuntimeError(f"port {node.port} answers as {party!r}, not "
                                           f"{node.party}")
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {node.party} did not start in {START_TIMEOUT:.0f} s")
            await asyncio.sleep(0.05)


# -- the event stream on B ------------------------------------------------------------

@dataclass
class Collector:
    """Reads B's SSE stream and records, per bench message id, when it arrived."""

    node: Node
    first_seen_ns: dict[str, int] = field(default_factory=dict)
    latency_ns: dict[str, int] = field(default_factory=dict)
    times_seen: dict[str, int] = field(default_factory=dict)
    delivered_by_phase: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0
    last_cursor: int = 0
    seq_violations: int = 0
    seq_gaps: int = 0
    cursor_violations: int = 0
    foreign: int = 0
    events: int = 0
    reconnects: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    errors: list[str] = field(default_factory=list)

    async def run(self) -> None:
        headers = {"authorization": f"Bearer {self.node.token}", "accept": "text/event-stream"}
        timeout = httpx.Timeout(10.0, read=None)
        async with httpx.AsyncClient(base_url=self.node.url, headers=headers,
                                     timeout=timeout) as client:
            while True:
                try:
                    await self._stream(client)
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                if node_failed(self.node):
                    return
                self.reconnects += 1
                progress(f"event stream ended; reconnecting after cursor {self.last_cursor}")
                await asyncio.sleep(0.05)

    async def _stream(self, client: httpx.AsyncClient) -> None:
        params = {"after": str(self.last_cursor)}
        async with client.stream("GET", "/api/v1/events", params=params) as response:
            response.raise_for_status()
            event = ""
            data: list[str] = []
            event_id = ""
            async for line in response.aiter_lines():
                if not line:
                    if data:
                        self._dispatch(event or "message", "\n".join(data), event_id)
                    event, data, event_id = "", [], ""
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    self.ready.set()  # a comment: ": connected" or a ping
                elif name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
                elif name == "id":
                    event_id = value

    def _dispatch(self, event: str, data: str, event_id: str) -> None:
        now = time.perf_counter_ns()
        if event != "message":
            return
        self.events += 1
        body = json.loads(data)
        cursor = int(body["cursor"])
        if event_id and int(event_id) != cursor:
            self.cursor_violations += 1
        if cursor <= self.last_cursor:
            self.cursor_violations += 1
        self.last_cursor = max(self.last_cursor, cursor)
        if body.get("from") == PARTY_A:
            seq = int(body["seq"])
            if seq <= self.last_seq:
                self.seq_violations += 1
            elif seq != self.last_seq + 1:
                self.seq_gaps += 1
            self.last_seq = max(self.last_seq, seq)
        parts = str(body.get("text") or "").split(" ")
        if body.get("from") != PARTY_A or len(parts) != 3 or parts[0] != "bench":
            self.foreign += 1
            return
        msg_id, sent_ns = parts[1], int(parts[2])
        count = self.times_seen.get(msg_id, 0) + 1
        self.times_seen[msg_id] = count
        if count == 1:
            self.first_seen_ns[msg_id] = now
            self.latency_ns[msg_id] = now - sent_ns
            phase = msg_id.rsplit("-", 1)[0]
            self.delivered_by_phase[phase] = self.delivered_by_phase.get(phase, 0) + 1


# -- sending --------------------------------------------------------------------------

@dataclass
class PhaseLog:
    name: str
    accepted: list[str] = field(default_factory=list)
    send_errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    post_ns: list[int] = field(default_factory=list)
    lag_ns: list[int] = field(default_factory=list)
    queue_ns: list[int] = field(default_factory=list)
    first_send_ns: int = 0
    last_send_ns: int = 0
    last_answer_ns: int = 0
    counter: int = 0

    def next_ids(self, count: int) -> list[str]:
        ids = [f"{self.name}-{self.counter + i}" for i in range(count)]
        self.counter += count
        return ids


class Poster(Protocol):
    async def post(self, path: str, body: bytes) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class RawPoster:
    """A minimal HTTP/1.1 client on one keep-alive connection, for JSON POSTs only.

    httpx costs ~1.5 ms of CPU per request on a small machine; with the load generator
    sharing two cores with both nodes, that would measure the client as much as the
    nodes. This one costs a few tens of microseconds. A request is never retried: if the
    connection fails mid-request, the outcome is unknown and is counted as a send error
    (a message that arrived anyway then shows up as "unexpected").
    """

    def __init__(self, host: str, port: int, token: str, timeout: float = 60.0) -> None:
        self._host, self._port, self._timeout = host, port, timeout
        self._headers = (f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                         "Content-Type: application/json\r\n").encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used = 0.0

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._exchange(path, body)
        except BaseException:
            await self.close()  # the connection's state is unknown now
            raise

    async def _exchange(self, path: str, body: bytes) -> tuple[int, bytes]:
        # uvicorn closes a keep-alive connection idle for 5 s: never send on one that is
        # closed (EOF seen) or about to be, so a request is never lost to that race
        if self._reader is not None and (self._reader.at_eof()
                                         or time.monotonic() - self._used > IDLE_REUSE_S):
            await self.close()
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        self._used = time.monotonic()
        reader, writer = self._reader, self._writer
        writer.write(b"POST " + path.encode() + b" HTTP/1.1\r\n" + self._headers
                     + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the node closed the connection")
        status = int(status_line.split()[1])
        length: int | None = None
        chunked = close = False
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value
            elif name == "connection":
                close = value == "close"
        if chunked:
            content = bytearray()
            while size := int((await reader.readline()).split(b";")[0], 16):
                content += await reader.readexactly(size)
                await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            data = bytes(content)
        elif length is not None:
            data = await reader.readexactly(length)
        else:
            data, close = await reader.read(), True
        self._used = time.monotonic()
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class HttpxPoster:
    """The same through httpx (``--http-client httpx``), for comparison."""

    def __init__(self, node: Node) -> None:
        headers = {"authorization": f"Bearer {node.token}",
                   "content-type": "application/json"}
        # one connection per client keeps httpcore's per-request pool bookkeeping O(1)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._client = httpx.AsyncClient(base_url=node.url, headers=headers, limits=limits,
                                         timeout=httpx.Timeout(60.0))

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        response = await self._client.post(path, content=body)
        return response.status_code, response.content

    async def close(self) -> None:
        await self._client.aclose()


class Lanes:
    """``count`` connections towards A, each carrying one request at a time; the queue of
    free lanes is where an open-loop send waits when all of them are busy."""

    def __init__(self, node: Node, count: int, kind: str) -> None:
        self.posters: list[Poster] = [
            RawPoster("127.0.0.1", node.port, node.token) if kind == "raw"
            else HttpxPoster(node) for _ in range(count)]
        self.free: asyncio.Queue[Poster] = asyncio.Queue()
        for poster in self.posters:
            self.free.put_nowait(poster)

    async def close(self) -> None:
        for poster in self.posters:
            await poster.close()


SEND_ERRORS = (httpx.HTTPError, OSError, asyncio.IncompleteReadError, TimeoutError,
               RuntimeError, ValueError, KeyError, IndexError)


async def post_texts(poster: Poster, log: PhaseLog, count: int,
                     scheduled_ns: int | None = None) -> None:
    """POST ``count`` messages in one request. The send time embedded in the texts is
    ``scheduled_ns`` when given (open loop: time spent waiting for a free connection
    counts against the node), else the moment the request is issued."""
    ids = log.next_ids(count)
    issued = time.perf_counter_ns()
    sent = issued if scheduled_ns is None else scheduled_ns
    if scheduled_ns is not None:
        log.queue_ns.append(max(0, issued - scheduled_ns))
    texts = [f"bench {i} {sent}" for i in ids]
    body = json.dumps({"to": PARTY_B, "text": texts[0]} if count == 1
                      else {"to": PARTY_B, "texts": texts}).encode()
    if not log.first_send_ns:
        log.first_send_ns = issued
    log.last_send_ns = max(log.last_send_ns, issued)
    try:
        status, content = await poster.post("/api/v1/messages", body)
        done = time.perf_counter_ns()
        if status != 201:
            raise RuntimeError(f"HTTP {status}: {content[:200].decode(errors='replace')}")
        if len(json.loads(content)["messages"]) != count:
            raise RuntimeError("answer does not list every message")
    except SEND_ERRORS as exc:
        log.send_errors += count
        if len(log.error_samples) < 5:
            log.error_samples.append(f"{type(exc).__name__}: {exc}")
        return
    log.post_ns.append(done - issued)
    log.last_answer_ns = max(log.last_answer_ns, done)
    log.accepted.extend(ids)


async def open_loop(lanes: Lanes, log: PhaseLog, rate: float, duration: float) -> None:
    """One POST per message at fixed intervals, each in its own task, so a slow answer
    does not delay the schedule (up to one request in flight per lane)."""
    total = max(1, round(rate * duration))
    interval = 1e9 / rate
    start = time.perf_counter_ns()
    tasks: set[asyncio.Task[None]] = set()

    async def send(target: int) -> None:
        poster = await lanes.free.get()
        try:
            await post_texts(poster, log, 1, target)
        finally:
            lanes.free.put_nowait(poster)

    for n in range(total):
        target = start + int(n * interval)
        delay = (target - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        log.lag_ns.append(max(0, time.perf_counter_ns() - target))
        task = asyncio.create_task(send(target))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


async def closed_loop(lanes: Lanes, log: PhaseLog, workers: int, per_request: int,
                      duration: float) -> None:
    """``workers`` senders, each on its own connection, each sending its next request
    as soon as the previous one is answered."""
    deadline = time.perf_counter_ns() + int(duration * 1e9)

    async def worker(poster: Poster) -> None:
        while time.perf_counter_ns() < deadline:
            await post_texts(poster, log, per_request)

    await asyncio.gather(*(worker(p) for p in lanes.posters[:workers]))


# -- statistics -----------------------------------------------------------------------

def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per process over a phase; ``other_processes`` is what the rest of the
    machine used meanwhile (it should be near 0: anything else running skews the figures)."""
    delta = {k: after[k] - before[k] for k in after}
    busy = delta.pop("system_busy")
    delta["other_processes"] = max(0.0, busy - delta["A"] - delta["B"] - delta["client"])
    return {k: round(v, 2) for k, v in delta.items()}


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 100))  # nearest-rank
    return sorted_values[int(rank) - 1]


def summary_ms(values_ns: list[int], keys: tuple[str, ...] = ("p50", "p90", "p99", "max")
               ) -> dict[str, float | None]:
    values = sorted(v / 1e6 for v in values_ns)
    out: dict[str, float | None] = {}
    for key in keys:
        if key == "max":
            value = values[-1] if values else None
        elif key == "mean":
            value = sum(values) / len(values) if values else None
        else:
            value = percentile(values, float(key[1:]))
        out[key] = None if value is None else round(value, 3)
    return out


def rate(count: int, start_ns: int, end_ns: int) -> float | None:
    if count == 0 or end_ns <= start_ns:
        return None
    return round(count / ((end_ns - start_ns) / 1e9), 1)


# -- the run --------------------------------------------------------------------------

@dataclass
class Bench:
    args: argparse.Namespace
    a: Node
    b: Node
    collector: Collector
    logs: dict[str, PhaseLog] = field(default_factory=dict)

    def cpu_snapshot(self) -> dict[str, float]:
        return {"A": proc_cpu_seconds(self.a.pid), "B": proc_cpu_seconds(self.b.pid),
                "client": self_cpu_seconds(),
                "A_main_thread": main_thread_cpu_seconds(self.a.pid),
                "B_main_thread": main_thread_cpu_seconds(self.b.pid),
                "system_busy": system_busy_seconds()}

    async def drain(self, log: PhaseLog) -> bool:
        """Wait until every accepted message of the phase has arrived on B, for as long
        as deliveries keep coming: give up only after ``--stall-timeout`` seconds with
        no progress (or ``--drain-max`` in all)."""
        want = len(log.accepted)
        started = last_progress = time.monotonic()
        seen = -1
        while (now_seen := self.collector.delivered_by_phase.get(log.name, 0)) < want:
            now = time.monotonic()
            if now_seen != seen:
                seen, last_progress = now_seen, now
            if (now - last_progress > self.args.stall_timeout
                    or now - started > self.args.drain_max
                    or node_failed(self.a) or node_failed(self.b)):
                return False
            await asyncio.sleep(0.01)
        return True

    async def phase(self, name: str, lanes: Lanes, *, target_rate: float | None,
                    workers: int, per_request: int, duration: float) -> dict[str, Any]:
        log = PhaseLog(name)
        self.logs[name] = log
        mode = ("open-loop" if target_rate is not None
                else f"closed-loop, {workers} concurrent, {per_request} per request")
        progress(f"phase {name}: {mode}, {duration:g} s")
        cpu_before = self.cpu_snapshot()
        start = time.perf_counter_ns()
        if target_rate is not None:
            await open_loop(lanes, log, target_rate, duration)
        else:
            await closed_loop(lanes, log, workers, per_request, duration)
        drained = await self.drain(log)
        cpu_after = self.cpu_snapshot()
        wall = (time.perf_counter_ns() - start) / 1e9
        seen = self.collector.first_seen_ns
        arrivals = [seen[i] for i in log.accepted if i in seen]
        latencies = [self.collector.latency_ns[i] for i in log.accepted if i in seen]
        last_arrival = max(arrivals, default=0)
        lost = len(log.accepted) - len(arrivals)
        duplicated = sum(self.collector.times_seen.get(i, 0) - 1 for i in log.accepted
                         if i in seen)
        result: dict[str, Any] = {
            "mode": mode,
            "target_rate": target_rate,
            "duration_s": duration,
            "wall_seconds": round(wall, 2),
            "sent": len(log.accepted),
            "send_errors": log.send_errors,
            "delivered": len(arrivals),
            "lost": lost,
            "duplicated": duplicated,
            "achieved_send_rate": rate(len(log.accepted), start, log.last_send_ns)
            if target_rate is not None else rate(len(log.accepted), start, log.last_answer_ns),
            "delivered_throughput": rate(len(arrivals), start, last_arrival),
            "latency_ms": summary_ms(latencies, ("p50", "p90", "p99", "max", "mean")),
            "post_response_ms": summary_ms(log.post_ns, ("p50", "p99", "max")),
            "drain_after_last_send_ms": round((last_arrival - log.last_send_ns) / 1e6, 1)
            if arrivals else None,
            "cpu_seconds": cpu_delta(cpu_before, cpu_after),
            "cpu_ms_per_message": {k: round((cpu_after[k] - cpu_before[k]) * 1000
                                            / len(arrivals), 3) if arrivals else None
                                   for k in ("A", "B", "client")},
        }
        if target_rate is not None:
            result["schedule_lag_ms"] = summary_ms(log.lag_ns, ("p50", "p99", "max"))
            result["client_queue_ms"] = summary_ms(log.queue_ns, ("p50", "p99", "max"))
        if log.error_samples:
            result["error_samples"] = log.error_samples
        if not drained:
            progress(f"phase {name}: {lost} message(s) not delivered (no progress for "
                     f"{self.args.stall_timeout:g} s, or {self.args.drain_max:g} s in all)")
        lat = result["latency_ms"]
        progress(f"phase {name}: sent {len(log.accepted)}, delivered {len(arrivals)}, "
                 f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
                 f"throughput {result['delivered_throughput']} msgs/s")
        return result

    async def run(self) -> dict[str, Any]:
        args = self.args
        phases: dict[str, Any] = {}
        lanes = Lanes(self.a, max(args.max_connections, args.concurrency,
                                  args.bulk_concurrency, 4), args.http_client)
        try:
            # warm up: connections, caches, the first sender batch (verified, not reported)
            warm = await self.phase("warmup", lanes, target_rate=None, workers=4,
                                    per_request=1, duration=1.0)
            progress(f"warm-up done (p50 {warm['latency_ms']['p50']} ms)")
            for r in args.rates:
                name = f"rate_{r:g}"
                if name in args.phases or "rate" in args.phases:
                    phases[name] = await self.phase(name, lanes, target_rate=r, workers=0,
                                                    per_request=1, duration=args.duration)
            if "flood_single" in args.phases:
                phases["flood_single"] = await self.phase(
                    "flood_single", lanes, target_rate=None, workers=args.concurrency,
                    per_request=1, duration=args.flood_duration)
            if "flood_bulk" in args.phases:
                phases["flood_bulk"] = await self.phase(
                    "flood_bulk", lanes, target_rate=None, workers=args.bulk_concurrency,
                    per_request=args.bulk_size, duration=args.flood_duration)
        finally:
            await lanes.close()
        return phases

    def verification(self) -> dict[str, Any]:
        accepted = [i for log in self.logs.values() for i in log.accepted]
        times = self.collector.times_seen
        accepted_set = set(accepted)
        return {
            "sent": len(accepted),
            "send_errors": sum(log.send_errors for log in self.logs.values()),
            "seen": len(times),
            "lost": sum(1 for i in accepted if i not in times),
            "duplicated": sum(n - 1 for n in times.values()),
            "unexpected": sum(1 for i in times if i not in accepted_set),
            "seq_violations": self.collector.seq_violations,
            "seq_gaps": self.collector.seq_gaps,
            "cursor_violations": self.collector.cursor_violations,
            "foreign_events": self.collector.foreign,
            "stream_reconnects": self.collector.reconnects,
            "stream_errors": self.collector.errors[:5],
        }


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ""
    with contextlib.suppress(OSError):
        load = Path("/proc/loadavg").read_text().split()[0]
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "loadavg_1m_at_start": float(load) if load else None,
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "client_loop": "uvloop" if _has_uvloop() else "asyncio"}


def source_digest() -> str:
    """SHA-256 (first 16 hex) over the hotline package's sources: which code was measured."""
    root = Path(hotline.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


async def bench_main(args: argparse.Namespace, base: Path, nodes: list[Node]
                     ) -> dict[str, Any]:
    host = machine()
    busy0 = system_busy_seconds()  # before anything runs: is the machine quiet?
    await asyncio.sleep(1.0)
    host["busy_cores_before_start"] = round(system_busy_seconds() - busy0, 2)
    if host["busy_cores_before_start"] > 0.2:
        progress(f"warning: {host['busy_cores_before_start']} cores busy before the start; "
                 "other processes compete for the CPUs and will distort the figures")
    src_digest = source_digest()
    passphrase = secrets.token_urlsafe(18)
    progress(f"creating nodes in {base}")
    a, b = await set_up_nodes(base, passphrase)
    nodes += [a, b]
    for node in (a, b):
        start_node(node, passphrase)
    await asyncio.gather(wait_healthy(a), wait_healthy(b))
    progress(f"nodes up: A pid {a.pid} at {a.url}, B pid {b.pid} at {b.url}")
    await asyncio.sleep(args.idle_seconds)
    for node in (a, b):
        node.idle_rss_mb = proc_status_mb(node.pid, "VmRSS")
        node.idle_rss_anon_mb = proc_status_mb(node.pid, "RssAnon")
    progress(f"idle RSS: A {a.idle_rss_mb:.1f} MB, B {b.idle_rss_mb:.1f} MB")

    collector = Collector(b)
    stream = asyncio.create_task(collector.run(), name="sse")
    try:
        await asyncio.wait_for(collector.ready.wait(), timeout=10)
        bench = Bench(args, a, b, collector)
        phases = await bench.run()
        await asyncio.sleep(1.0)  # a late duplicate would arrive now, not be missed
        verification = bench.verification()
        node_figures = {
            node.key: {"idle_rss_mb": round(node.idle_rss_mb or 0.0, 1),
                       "idle_rss_anon_mb": round(node.idle_rss_anon_mb or 0.0, 1),
                       "peak_rss_mb": round(proc_status_mb(node.pid, "VmHWM"), 1),
                       "cpu_seconds": round(proc_cpu_seconds(node.pid), 2),
                       "pid": node.pid}
            for node in (a, b)}
    finally:
        stream.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stream

    def lat(phase: str, key: str) -> float | None:
        value = phases.get(phase, {}).get("latency_ms", {}).get(key)
        return float(value) if value is not None else None

    p50, p99 = lat("rate_500", "p50"), lat("rate_500", "p99")
    floods = {k: phases[k] for k in ("flood_single", "flood_bulk") if k in phases}
    clean = (verification["lost"] == 0 and verification["duplicated"] == 0
             and verification["seq_violations"] == 0 and verification["seq_gaps"] == 0
             and verification["send_errors"] == 0
             and verification["unexpected"] == 0 and verification["cursor_violations"] == 0)
    best_throughput = max((p["delivered_throughput"] or 0.0 for p in floods.values()),
                          default=0.0)
    met: dict[str, bool | None] = {
        "p50_ms_at_500": None if p50 is None else p50 <= TARGETS["p50_ms_at_500"],
        "p99_ms_at_500": None if p99 is None else p99 <= TARGETS["p99_ms_at_500"],
        "rate_500_sustained": None if "rate_500" not in phases else
        (phases["rate_500"]["delivered_throughput"] or 0) >= 0.95 * 500,
        **{f"throughput_{k}": (p["delivered_throughput"] or 0) >= TARGETS["throughput_min"]
           for k, p in floods.items()},
        "throughput_min": None if not floods else
        best_throughput >= TARGETS["throughput_min"] and clean,
        "idle_rss_mb_max": all(n["idle_rss_mb"] <= TARGETS["idle_rss_mb_max"]
                               for n in node_figures.values()),
        "nothing_lost_or_duplicated": clean,
    }
    config = {
        "duration_s": args.duration, "flood_duration_s": args.flood_duration,
        "rates": args.rates, "concurrency": args.concurrency, "bulk_size": args.bulk_size,
        "bulk_concurrency": args.bulk_concurrency, "max_connections": args.max_connections,
        "http_client": args.http_client,
        "idle_seconds": args.idle_seconds, "db": "sqlite (one file per node)",
        "log_level": "warning", "phases": sorted(args.phases),
        "hotline_version": hotline.__version__, "hotline_source_sha256": src_digest,
    }
    if source_digest() != src_digest:
        progress("warning: the hotline sources changed while the benchmark ran; the nodes "
                 "run the code as it was when they started")
        config["hotline_source_changed_during_run"] = True
    host["other_processes_cpu_seconds_during_phases"] = round(
        sum(ph["cpu_seconds"]["other_processes"] for ph in phases.values()), 2)
    host["phase_seconds"] = round(sum(ph["wall_seconds"] for ph in phases.values()), 1)
    client_cpu = self_cpu_seconds()
    return {"machine": host, "config": config, "phases": phases, "nodes": node_figures,
            "client": {"cpu_seconds": round(client_cpu, 2),
                       "peak_rss_mb": round(proc_status_mb(os.getpid(), "VmHWM"), 1)},
            "verification": verification, "targets": TARGETS, "met": met}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds per fixed-rate phase (default 10)")
    p.add_argument("--flood-duration", type=float, default=None,
                   help="seconds per flood phase (default: --duration)")
    p.add_argument("--rates", type=float, nargs="+", default=[100.0, 500.0],
                   help="fixed rates in msgs/s (default 100 500)")
    p.add_argument("--concurrency", type=int, default=32,
                   help="concurrent single-message senders in flood_single (default 32)")
    p.add_argument("--bulk-size", type=int, default=100,
                   help="messages per request in flood_bulk (default 100)")
    p.add_argument("--bulk-concurrency", type=int, default=4,
                   help="concurrent bulk senders in flood_bulk (default 4)")
    p.add_argument("--max-connections", type=int, default=64,
                   help="connections towards node A, i.e. the most requests in flight in "
                        "the open-loop phases (default 64)")
    p.add_argument("--http-client", choices=["raw", "httpx"], default="raw",
                   help="client for the POSTs to A: a minimal HTTP/1.1 client (default; "
                        "cheap on CPU) or httpx")
    p.add_argument("--idle-seconds", type=float, default=2.0,
                   help="idle time after start-up before the idle RSS is read (default 2)")
    p.add_argument("--stall-timeout", type=float, default=30.0,
                   help="after a phase's last send, give up waiting for its messages after "
                        "this many seconds without a delivery (default 30)")
    p.add_argument("--drain-max", type=float, default=900.0,
                   help="after a phase's last send, wait at most this long in all "
                        "(default 900)")
    p.add_argument("--phases", nargs="+", default=["rate", "flood_single", "flood_bulk"],
                   help="phases to run: rate (all rates), rate_<R>, flood_single, flood_bulk")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory (node dirs, databases, logs)")
    args = p.parse_args(argv)
    if args.flood_duration is None:
        args.flood_duration = args.duration
    args.phases = set(args.phases)
    return args


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def temp_base(keep: bool) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    try:
        yield base
    finally:
        if keep:
            progress(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    nodes: list[Node] = []
    runner = asyncio.run
    if _has_uvloop():
        import uvloop

        runner = uvloop.run
    with temp_base(args.keep) as base:
        try:
            report = runner(bench_main(args, base, nodes))
        except (Exception, KeyboardInterrupt) as exc:
            progress(f"benchmark failed: {type(exc).__name__}: {exc}")
            log_tails(nodes)
            return 2
        finally:
            progress("stopping nodes")
            stop_nodes(nodes)
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        v = report["verification"]
        if report["met"]["nothing_lost_or_duplicated"]:
            return 0
        progress(f"FAILED verification: lost {v['lost']}, duplicated {v['duplicated']}, "
                 f"seq violations {v['seq_violations']}, seq gaps {v['seq_gaps']}, "
                 f"cursor violations {v['cursor_violations']}, send errors "
                 f"{v['send_errors']}, unexpected {v['unexpected']}")
        log_tails(nodes)
        return 1


def log_tails(nodes: list[Node]) -> None:
    for node in nodes:
        log = node.dir / "node.log"
        if log.exists() and log.stat().st_size:
            progress(f"{node.party} log tail:\n{log.read_text()[-3000:]}")


if __name__ == "__main__":
    sys.exit(main())
