#!/usr/bin/env python
"""Console benchmark: how fast the operator console's pages and fragments answer, how
long from a call being placed until the callee's console shows the alarm, and what open
consoles cost the node in memory.

Two fresh nodes as in ``bench/calls.py`` (BENCH-A calls ``desk@BENCH-B``); the operator
``duty`` of each gets a console account and logs in over HTTP exactly as a browser does
(log-in form, CSRF token, TOTP code, session cookie).

* ``pages``: ``--requests`` sequential GETs of each page or fragment with a logged-in
  session: the call board with ``--calls`` calls on it, its calls fragment, the alarm
  fragment on B while a call rings, a conversation with ``--messages`` messages.
* ``alarm``: ``--streams`` open console pages on B, each holding the event stream and
  fetching the alarm fragment on every ``call`` event, as the browser does; for each of
  ``--alarm-calls`` calls, from just before the POST on A until the first page has the
  event (``event_ms``), until the first page's alarm names the call (``first_page_ms``,
  what an operator waits for) and until every page's does (``every_page_ms``).
* ``memory``: B's resident set before the streams open and with them open.

Prints one JSON object on stdout; progress on stderr.

    .venv/bin/python bench/console.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from calls import CALLEE, set_up, summary, wait_for
from delivery import (
    Node,
    machine,
    proc_status_mb,
    source_digest,
    start_node,
    stop_nodes,
    wait_healthy,
)
from hotline.accounts.offline import add_operator
from hotline.accounts.totp import STEP, code_at

PASSWORD = "bench password 1234"  # a throwaway account


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


async def log_in(node: Node, secret: str) -> tuple[dict[str, str], str]:
    """Log in as ``duty``; returns the cookie header and the session's CSRF token."""
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as client:
        page = await client.get("/login")
        login_token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert login_token is not None
        # a client's jar keeps Secure cookies for https only; a browser also for loopback
        cookie = {"Cookie": f"__Host-hotline-login={login_token.group(1)}"}
        code = code_at(secret, time.time())
        response = await client.post("/login", headers=cookie, data={
            "csrf": login_token.group(1), "operator": "duty", "password": PASSWORD,
            "code": code})
        if response.status_code != 303:
            raise RuntimeError(f"log-in failed: {response.status_code}")
        session = re.search(r"__Host-hotline-session=([^;]+)",
                            response.headers["set-cookie"])
        assert session is not None
        headers = {"Cookie": f"__Host-hotline-session={session.group(1)}"}
        board = await client.get("/board", headers=headers)
        csrf = re.search(r'name="csrf" value="([^"]+)"', board.text)
        assert csrf is not None
        return headers, csrf.group(1)


async def time_gets(node: Node, headers: dict[str, str], path: str, count: int
                    ) -> dict[str, Any]:
    times: list[float] = []
    size = 0
    async with httpx.AsyncClient(base_url=node.url, headers=headers, timeout=30) as client:
        for _ in range(count):
            t0 = time.perf_counter_ns()
            response = await client.get(path)
            times.append((time.perf_counter_ns() - t0) / 1e6)
            response.raise_for_status()
            size = len(response.content)
    return {**summary(times), "bytes": size}


class Streams:
    """``count`` open console pages on a node: each holds the event stream and, on every
    ``call`` event, fetches the alarm fragment as the page's htmx does. Records when the
    first event for a call came, and when each page's alarm first named it."""

    def __init__(self, node: Node, headers: dict[str, str], count: int) -> None:
        self.node, self.headers, self.count = node, headers, count
        self.first: dict[str, int] = {}
        self.shown: dict[str, list[int]] = {}
        self.connected = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def one(self) -> None:
        timeout = httpx.Timeout(10.0, read=None)
        seen: set[str] = set()
        async with httpx.AsyncClient(timeout=timeout, headers=self.headers) as client, \
                client.stream("GET", self.node.url + "/console/events") as response:
            self.connected += 1
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "call":
                    call_id = json.loads(line[5:])
                    self.first.setdefault(call_id, time.perf_counter_ns())
                    if call_id in seen:
                        continue
                    alarm = await client.get(self.node.url + "/alarm")
                    if call_id in alarm.text:
                        seen.add(call_id)
                        self.shown.setdefault(call_id, []).append(time.perf_counter_ns())

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self.one()) for _ in range(self.count)]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="hotline-bench-console-"))
    passphrase = secrets.token_urlsafe(12)
    a, b = set_up(base, passphrase, step_ms=60_000)  # calls keep ringing during the run
    secrets_of = {n.key: add_operator(n.dir, "duty", PASSWORD).secret for n in (a, b)}
    try:
        for node in (a, b):
            start_node(node, passphrase)
        await asyncio.gather(wait_healthy(a), wait_healthy(b))
        # wait for a fresh TOTP step so both log-ins get an unused code
        await asyncio.sleep(STEP - time.time() % STEP + 0.1)
        (a_headers, _), (b_headers, _) = await asyncio.gather(
            log_in(a, secrets_of["A"]), log_in(b, secrets_of["B"]))
        api_a = {"authorization": f"Bearer {a.token}"}
        api_b = {"authorization": f"Bearer {b.token}"}
        async with httpx.AsyncClient(base_url=a.url, headers=api_a, timeout=30) as client:
            progress(f"placing {args.calls} calls for the board")
            ids = []
            for _ in range(args.calls):
                r = await client.post("/api/v1/calls", json={"to": f"desk@{CALLEE}",
                                                             "as": "desk"})
                r.raise_for_status()
                ids.append(r.json()["id"])
        async with httpx.AsyncClient(base_url=b.url, headers=api_b, timeout=30) as client:
            r = await client.post(f"/api/v1/calls/{ids[0]}/answer",
                                  json={"as": "desk", "operator": "duty"})
            r.raise_for_status()
            for n in range(args.messages):
                r = await client.post(f"/api/v1/conversations/{ids[0]}/messages",
                                      json={"text": f"message {n} " + "x" * 80, "as": "desk",
                                            "operator": "duty"})
                r.raise_for_status()
        progress("timing pages")
        pages = {
            "board": await time_gets(a, a_headers, "/board", args.requests),
            "board_calls_fragment": await time_gets(a, a_headers, "/board/calls",
                                                    args.requests),
            "alarm_fragment": await time_gets(b, b_headers, "/alarm", args.requests),
            "conversation": await time_gets(b, b_headers, f"/conversations/{ids[0]}",
                                            args.requests),
        }
        rss_before = proc_status_mb(b.pid, "VmRSS")
        streams = Streams(b, b_headers, args.streams)
        streams.start()
        await wait_for(lambda: streams.connected == args.streams, 30, "the streams")
        rss_streams = proc_status_mb(b.pid, "VmRSS")
        progress(f"{args.streams} streams open; timing {args.alarm_calls} alarms")
        event_ms: list[float] = []
        alarm_ms: list[float] = []
        all_ms: list[float] = []
        async with httpx.AsyncClient(base_url=a.url, headers=api_a, timeout=30) as caller:
            for _ in range(args.alarm_calls):
                t0 = time.perf_counter_ns()
                r = await caller.post("/api/v1/calls", json={"to": f"desk@{CALLEE}",
                                                             "as": "desk"})
                r.raise_for_status()
                call_id = r.json()["id"]
                await wait_for(lambda cid=call_id: len(streams.shown.get(cid, ()))
                               == args.streams, 60, "every page to show the alarm")
                event_ms.append((streams.first[call_id] - t0) / 1e6)
                alarm_ms.append((min(streams.shown[call_id]) - t0) / 1e6)
                all_ms.append((max(streams.shown[call_id]) - t0) / 1e6)
                await asyncio.sleep(0.2)
        await streams.stop()
        return {
            "bench": "console", "machine": machine(), "source": source_digest(),
            "params": vars(args), "pages_ms": pages,
            "alarm": {"pages": args.streams, "event_ms": summary(event_ms),
                      "first_page_ms": summary(alarm_ms),
                      "every_page_ms": summary(all_ms)},
            "memory_mb": {"rss_before_streams": rss_before,
                          "rss_with_streams": rss_streams,
                          "per_stream_kb": round((rss_streams - rss_before) * 1024
                                                 / max(1, args.streams), 1)},
        }
    finally:
        stop_nodes([a, b])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--alarm-calls", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
