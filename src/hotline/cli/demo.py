"""``hotline demo``: the four parties of the Przewodów scenario on this machine.

Each party is a separate ``hotline serve`` process with its own SQLite database, linked
as in the scenario (US-RU, US-UA, US-PL, PL-UA; no RU-PL link). The demo stores a
generated passphrase beside the nodes: it is for demonstration only.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from hotline.admin import accept_link, init_node, make_link_offer, read_offer
from hotline.cli.client import OperatorClient
from hotline.errors import HotlineError
from hotline.nodedir.config import CONFIG_NAME, load_config


@dataclass(frozen=True)
class DemoParty:
    key: str
    party: str
    name: str


PARTIES = (
    DemoParty("us", "US-JS", "US Joint Staff"),
    DemoParty("ru", "RU-GS", "RU General Staff"),
    DemoParty("ua", "UA-GS", "UA General Staff"),
    DemoParty("pl", "PL-GS", "PL General Staff"),
)
LINKS = (("us", "ru"), ("us", "ua"), ("us", "pl"), ("pl", "ua"))
NOTIFICATION = ("INCIDENT NOTIFICATION from ops-do@PL-GS: explosion at Przewodów, Lubelskie "
                "(approx. 50.47 N 23.93 E), 15 Nov 15:40 CET, 2 killed, origin unknown.")
START_TIMEOUT = 30.0
CHECK_TIMEOUT = 30.0

console = Console(soft_wrap=True)


def _passphrase(base: Path) -> str:
    path = base / "demo-passphrase"
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def _set_up(base: Path, port: int, passphrase: str) -> None:
    for index, p in enumerate(PARTIES):
        node_dir = base / p.key
        if (node_dir / CONFIG_NAME).exists():
            continue
        init_node(node_dir, party=p.party, name=p.name,
                        listen=f"127.0.0.1:{port + index}", endpoints=[], db=None,
                        passphrase=passphrase)
    offers = {p.key: read_offer(make_link_offer(base / p.key, passphrase)[0]) for p in PARTIES}
    for a, b in LINKS:
        accept_link(base / a, offers[b])
        accept_link(base / b, offers[a])


def _start(base: Path, passphrase: str) -> dict[str, subprocess.Popen[bytes]]:
    env = {**os.environ, "HOTLINE_PASSPHRASE": passphrase}
    procs = {}
    for p in PARTIES:
        log = (base / p.key / "node.log").open("ab")
        procs[p.key] = subprocess.Popen(
            [sys.executable, "-m", "hotline", "serve", "--dir", str(base / p.key),
             "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    return procs


def _wait_healthy(base: Path, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for p in PARTIES:
        config = load_config(base / p.key)
        url = f"http://127.0.0.1:{config.port}/healthz"
        while True:
            if procs[p.key].poll() is not None:
                raise HotlineError("demo-failed", f"node {p.party} exited at start; see "
                                                  f"{base / p.key / 'node.log'}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise HotlineError("demo-failed", f"node {p.party} did not start in "
                                                  f"{START_TIMEOUT:.0f} s")
            time.sleep(0.1)


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _clients(base: Path) -> dict[str, OperatorClient]:
    return {p.key: OperatorClient(base / p.key, load_config(base / p.key)) for p in PARTIES}


def _wait_for(client: OperatorClient, sender: str, text: str) -> bool:
    deadline = time.monotonic() + CHECK_TIMEOUT
    while time.monotonic() < deadline:
        body = client.request("GET", "/api/v1/inbox", params={"limit": 1000})
        if any(m["from"] == sender and m["text"] == text for m in body["messages"]):
            return True
        time.sleep(0.1)
    return False


def _check_links(base: Path) -> bool:
    clients = _clients(base)
    party = {p.key: p.party for p in PARTIES}
    ok = True
    for a, b in LINKS:
        for src, dst in ((a, b), (b, a)):
            text = f"link check {party[src]} -> {party[dst]} {secrets.token_hex(4)}"
            clients[src].request("POST", "/api/v1/messages", json={"to": party[dst],
                                                                   "text": text})
            arrived = _wait_for(clients[dst], party[src], text)
            ok &= arrived
            console.print(f"  {party[src]:>6} -> {party[dst]:<6} "
                          f"{'[green]delivered[/]' if arrived else '[red]NOT delivered[/]'}")
    try:
        clients["ru"].request("POST", "/api/v1/messages", json={"to": "PL-GS", "text": "x"})
        console.print("  RU-GS -> PL-GS  [red]accepted although there is no link[/]")
        ok = False
    except HotlineError as exc:
        console.print(f"   RU-GS -> PL-GS  refused as expected: {exc.error_id}")
        ok &= exc.error_id == "no-link"
    return ok


def _command() -> str:
    """How the user can run ``hotline`` from another terminal (the venv may not be on PATH)."""
    if shutil.which("hotline"):
        return "hotline"
    return str(Path(sys.argv[0]).resolve()) if sys.argv and sys.argv[0] else "hotline"


def _print_nodes(base: Path, passphrase: str) -> None:
    table = Table("party", "listens on")
    table.add_column("node directory", overflow="fold")
    for p in PARTIES:
        config = load_config(base / p.key)
        table.add_row(f"{p.party} ({p.name})", f"http://{config.listen}", str(base / p.key))
    console.print(table)
    console.print("Links: US-RU, US-UA, US-PL, PL-UA (no RU-PL link).")
    console.print(f"Demo passphrase (demo only): {passphrase}  — in {base / 'demo-passphrase'}")
    console.print("Try, in another terminal:")
    cmd = _command()
    console.print(f"  {cmd} send  --dir {base / 'us'} RU-GS 'NMCC calling the Chief of the "
                  "General Staff'")
    console.print(f"  {cmd} inbox --dir {base / 'ru'}")
    console.print(f"  {cmd} status --dir {base / 'us'}")
    console.print(f"  operator API docs: http://{load_config(base / 'us').listen}/api/v1/docs "
                  f"(token in {base / 'us' / 'operator.token'})")


def run_demo(base: Path | None, port: int, check: bool) -> int:
    base = (base or Path(tempfile.mkdtemp(prefix="hotline-demo-"))).resolve()
    base.mkdir(parents=True, exist_ok=True)
    passphrase = _passphrase(base)
    console.print(f"[bold]Hotline demo[/] in {base}: setting up four nodes…")
    _set_up(base, port, passphrase)
    procs = _start(base, passphrase)
    try:
        _wait_healthy(base, procs)
        _print_nodes(base, passphrase)
        if check:
            console.print("Checking every link in both directions:")
            return 0 if _check_links(base) else 1
        clients = _clients(base)
        for dst in ("US-JS", "UA-GS"):
            clients["pl"].request("POST", "/api/v1/messages", json={"to": dst,
                                                                    "text": NOTIFICATION})
        console.print("PL-GS sent its incident notification to US-JS and UA-GS. "
                      "[bold]Ctrl-C[/] stops all four nodes.")
        while all(proc.poll() is None for proc in procs.values()):
            time.sleep(0.5)
        dead = [p.party for p in PARTIES if procs[p.key].poll() is not None]
        console.print(f"[red]node(s) {', '.join(dead)} stopped unexpectedly[/]; stopping.")
        return 1
    except KeyboardInterrupt:
        console.print("Stopping the nodes…")
        return 0
    finally:
        _stop(procs)
