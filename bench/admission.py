#!/usr/bin/env python
"""Admission benchmark: another peer's delivery latency while one linked peer floods.

Three parties: BENCH-V (the node under load), BENCH-P (an honest peer, a real node whose
sender delivers to V) and BENCH-F (the flooder: a node directory linked with V whose
keys this benchmark holds; it is never started). All nodes run with the default
``[admission]`` settings.

1. ``unloaded``: P's operator sends ``--rate`` messages/s (one per POST) to V for
   ``--duration`` s. Latency is from the POST on P to the moment the message is parsed
   off V's ``/api/v1/events`` stream (one process, one monotonic clock).
2. ``flood``: the same, while a separate process (its own core) replays envelopes that
   F pre-sealed for V (``--flood-envelopes``, consecutive seqs, in batches of
   ``--flood-batch``) as fast as it can over ``--flood-connections`` keep-alive
   connections from 127.0.0.2, ignoring every 429 (an attacker does not back off).

Target: P's p99 during the flood within 2x its unloaded p99. Prints one JSON object on
stdout (``--out`` also writes it to a file); progress on stderr.

    .venv/bin/python bench/admission.py --duration 20 --out bench/results-admission.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from delivery import (
    Node,
    free_ports,
    machine,
    percentile,
    proc_cpu_seconds,
    source_digest,
    start_node,
    stop_nodes,
    wait_healthy,
)
from hotline.admin import accept_link, init_node, make_link_offer, read_offer
from hotline.nodedir.config import KEYSTORE_NAME
from hotline.nodedir.keystore import read_public, unlock
from hotline.protocol.envelope import Header, new_envelope_id, seal

VICTIM, PEER, FLOODER = "BENCH-V", "BENCH-P", "BENCH-F"
FLOOD_ADDRESS = "127.0.0.2"


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def set_up(base: Path, passphrase: str) -> tuple[Node, Node, Node]:
    ports = free_ports(3)
    v, p, f = (Node(k, party, base / k.lower(), port) for k, party, port in
               zip("VPF", (VICTIM, PEER, FLOODER), ports, strict=True))
    for node in (v, p, f):
        node.token = init_node(node.dir, party=node.party, name=node.party,
                               listen=f"127.0.0.1:{node.port}", endpoints=[], db=None,
                               passphrase=passphrase).token
    for other in (p, f):
        accept_link(v.dir, read_offer(make_link_offer(other.dir, passphrase)[0]))
        accept_link(other.dir, read_offer(make_link_offer(v.dir, passphrase)[0]))
    return v, p, f


def limit_flooder(v: Node, rate: float) -> None:
    """Give F's verified bulk lane on V ``rate`` envelopes/s (burst the same, at least
    one) instead of the defaults: to tell what the flood costs V through the envelopes
    its budget admits (verified and stored) from what its refusals cost."""
    import tomllib

    import tomli_w

    path = v.dir / "config.toml"
    data = tomllib.loads(path.read_text())
    peers = data.setdefault("admission", {}).setdefault("peers", {})
    peers[FLOODER] = {"envelopes_per_second": rate, "envelopes_burst": max(1, int(rate))}
    path.write_text(tomli_w.dumps(data))


def preseal(f: Node, v: Node, passphrase: str, count: int) -> list[bytes]:
    keys = unlock(f.dir / KEYSTORE_NAME, passphrase)
    to = read_public(v.dir / KEYSTORE_NAME)
    now = time.time_ns() // 1_000_000
    return [seal(Header(id=new_envelope_id(), sender=FLOODER, recipient=VICTIM,
                        kid=keys.public.key_id, seq=n, ts=now, type="message"),
                 {"text": f"flood {n}"}, keys, to) for n in range(1, count + 1)]


# -- the flooder (its own process) -----------------------------------------------------

async def _flood_lane(port: int, requests: list[bytes], sizes: list[int], stop_at: float,
                      stats: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                   local_addr=(FLOOD_ADDRESS, 0))
    n = 0
    while time.monotonic() < stop_at:
        index = n % len(requests)
        request = requests[index]
        n += 1
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            stats["reconnects"] += 1
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                           local_addr=(FLOOD_ADDRESS, 0))
            continue
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
        stats[f"status_{status}"] = stats.get(f"status_{status}", 0) + 1
        stats["requests"] += 1
        stats["envelopes"] += sizes[index]
    writer.close()


def _flood(port: int, requests: list[bytes], per_request: list[int], seconds: float,
           out: Any) -> None:
    stats = {"requests": 0, "envelopes": 0, "reconnects": 0}
    if out["cpu"] is not None:  # pinned, so it cannot take the victim's core
        os.sched_setaffinity(0, {out["cpu"]})

    async def main() -> None:
        stop_at = time.monotonic() + seconds
        lanes = [_flood_lane(port, requests, per_request, stop_at, stats)
                 for _ in range(out["lanes"])]
        await asyncio.gather(*lanes)

    started = time.process_time()
    wall = time.monotonic()
    asyncio.run(main())
    out["stats"] = {**stats, "cpu_s": time.process_time() - started,
                    "wall_s": time.monotonic() - wall}


def flood_requests(port: int, envelopes: list[bytes], batch: int) -> tuple[list[bytes], list[int]]:
    requests, sizes = [], []
    for start in range(0, len(envelopes), batch):
        body = b"\n".join(envelopes[start:start + batch])
        head = (f"POST /federation/v1/envelopes HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
                f"content-type: application/x-ndjson\r\ncontent-length: {len(body)}\r\n\r\n")
        requests.append(head.encode() + body)
        sizes.append(len(envelopes[start:start + batch]))
    return requests, sizes


# -- the measured traffic --------------------------------------------------------------

class Stream:
    """V's message stream: when each bench message from P arrived."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.seen: dict[str, int] = {}
        self.ready = asyncio.Event()
        self.arrived = asyncio.Event()

    async def run(self) -> None:
        headers = {"authorization": f"Bearer {self.node.token}"}
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client, \
                client.stream("GET", self.node.url + "/api/v1/events",
                              headers=headers) as response:
            self.ready.set()
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    body = json.loads(line[5:])
                    text = body.get("text", "")
                    if body.get("from") == PEER and text.startswith("adm ") \
                            and text not in self.seen:
                        self.seen[text] = time.perf_counter_ns()
                        self.arrived.set()


async def measure(p: Node, stream: Stream, phase: str, rate: float, seconds: float
                  ) -> dict[str, Any]:
    sent: dict[str, int] = {}
    headers = {"authorization": f"Bearer {p.token}"}
    async with httpx.AsyncClient(base_url=p.url, headers=headers, timeout=30) as client:
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            text = f"adm {phase} {n}"
            t0 = time.perf_counter_ns()
            response = await client.post("/api/v1/messages", json={"to": VICTIM,
                                                                    "texts": [text]})
            response.raise_for_status()
            sent[text] = t0
    deadline = time.monotonic() + 60
    while not all(t in stream.seen for t in sent):
        stream.arrived.clear()
        try:
            await asyncio.wait_for(stream.arrived.wait(), deadline - time.monotonic())
        except TimeoutError:
            break
    latencies = sorted((stream.seen[t] - t0) / 1e6 for t, t0 in sent.items()
                       if t in stream.seen)
    return {"sent": len(sent), "delivered": len(latencies),
            "lost": len(sent) - len(latencies),
            "latency_ms": {q: percentile(latencies, v) for q, v in
                           (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}}


def loadavg() -> float:
    """The machine's 1-minute load average: other work competing for the cores."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def stored_from(v: Node, party: str) -> int:
    from sqlalchemy import text

    from hotline.store.engine import create_engine

    engine = create_engine(f"sqlite:///{v.dir / 'hotline.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM inbound WHERE peer = :p"),
                                    {"p": party}).scalar_one())
    finally:
        engine.dispose()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="hotline-bench-admission-"))
    passphrase = secrets.token_urlsafe(12)
    v, p, f = set_up(base, passphrase)
    if args.flooder_rate is not None:
        limit_flooder(v, args.flooder_rate)
    progress(f"pre-sealing {args.flood_envelopes} envelopes of {FLOODER}")
    envelopes = preseal(f, v, passphrase, args.flood_envelopes)
    requests, sizes = flood_requests(v.port, envelopes, args.flood_batch)
    nodes = [v, p]
    try:
        for node in nodes:
            start_node(node, passphrase)
        for node in nodes:
            await wait_healthy(node)
        stream = Stream(v)
        reader = asyncio.create_task(stream.run())
        await asyncio.wait_for(stream.ready.wait(), 10)
        progress("warm-up")
        await measure(p, stream, "warmup", args.rate, 2)
        progress(f"unloaded: {args.rate} msgs/s for {args.duration} s")
        cpu_u0 = proc_cpu_seconds(v.pid)
        unloaded = await measure(p, stream, "unloaded", args.rate, args.duration)
        unloaded["victim_cpu_s"] = round(proc_cpu_seconds(v.pid) - cpu_u0, 2)
        unloaded["loadavg_1m"] = loadavg()
        progress("flood")
        manager = multiprocessing.Manager()
        out = manager.dict({"lanes": args.flood_connections, "cpu": args.flood_cpu})
        cpu_v0 = proc_cpu_seconds(v.pid)
        flooder = multiprocessing.Process(target=_flood, args=(
            v.port, requests, sizes, args.duration + 2, out))
        flooder.start()
        await asyncio.sleep(1.0)  # let the flood reach its pace before measuring
        loaded = await measure(p, stream, "flood", args.rate, args.duration)
        await asyncio.to_thread(flooder.join)
        cpu_v = proc_cpu_seconds(v.pid) - cpu_v0
        loaded["loadavg_1m"] = loadavg()
        stats = dict(out["stats"])
        reader.cancel()
        stats["envelopes_per_second"] = round(stats["envelopes"] / stats["wall_s"])
        stats["requests_per_second"] = round(stats["requests"] / stats["wall_s"])
        stats["stored_from_flooder"] = stored_from(v, FLOODER)
        stats["victim_cpu_s"] = round(cpu_v, 2)
        u99, l99 = unloaded["latency_ms"]["p99"], loaded["latency_ms"]["p99"]
        met = u99 is not None and l99 is not None and l99 <= 2 * u99 and not loaded["lost"]
        return {"machine": machine(), "config": {
                    "rate": args.rate, "duration_s": args.duration,
                    "flood_envelopes": args.flood_envelopes, "flood_batch": args.flood_batch,
                    "flood_connections": args.flood_connections,
                    "flood_cpu": args.flood_cpu,
                    "hotline_source_sha256": source_digest(),
                    "admission": "defaults" if args.flooder_rate is None else
                    f"defaults, but {FLOODER}'s bulk lane {args.flooder_rate:g}/s"},
                "phases": {"unloaded": unloaded, "flood": loaded}, "flood": stats,
                "target": "flood p99 <= 2 x unloaded p99, nothing lost", "met": met}
    finally:
        stop_nodes(nodes)
        if not args.keep:
            import shutil
            shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--flood-envelopes", type=int, default=20_000)
    parser.add_argument("--flood-batch", type=int, default=256)
    parser.add_argument("--flood-connections", type=int, default=4)
    parser.add_argument("--flood-cpu", type=int, default=None,
                        help="pin the flooder process to this CPU (default: not pinned)")
    parser.add_argument("--flooder-rate", type=float, default=None,
                        help="F's bulk budget on V in envelopes/s (default: the defaults)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    sys.exit(0 if result["met"] else 1)


if __name__ == "__main__":
    main()
