"""``hotline demo``: the four parties of the Przewodów scenario on this machine.

Each party is a separate ``hotline serve`` process with its own SQLite database, linked
as in the scenario (US-RU, US-UA, US-PL, PL-UA; no RU-PL link), with the scenario's
roles, operators, rosters, escalation chains and link policies applied. The demo then
replays the scenario: PL's incident notification, the US call to ``cgs@RU-GS`` that
escalates to the duty officer, and the US-UA-PL conference. Every scenario duration is
divided by ``--speed``. The demo stores a generated passphrase beside the nodes: it is
for demonstration only. Every scenario operator gets a console account (one generated
demo password, a TOTP secret each); the logins are printed and kept in
``console-logins.json`` beside the nodes (mode 0600).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hotline.admin import accept_link, apply_directory, init_node, make_link_offer, read_offer
from hotline.cli.client import OperatorClient
from hotline.errors import HotlineError
from hotline.nodedir.config import CONFIG_NAME, load_config
from hotline.scenario import directory_toml, on_duty_operators


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


def _private_file(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _console_logins(base: Path) -> list[dict[str, str]]:
    """A console account for every operator of every party, made once per demo
    directory; what an operator needs to log in is kept in ``console-logins.json``."""
    from hotline.accounts.offline import add_operator, list_accounts
    from hotline.calls.directory import parse_directory

    path = base / "console-logins.json"
    if path.exists():
        return list(json.loads(path.read_text(encoding="utf-8")))
    password = "demo-" + secrets.token_urlsafe(12)
    logins = []
    for p in PARTIES:
        node_dir = base / p.key
        made = {a["operator"] for a in list_accounts(node_dir)}
        text = (node_dir / "directory.toml").read_text(encoding="utf-8")
        directory = parse_directory(text, "directory.toml")
        listen = load_config(node_dir).listen
        for op in sorted(directory.operators.values(), key=lambda o: o.id):
            if op.id in made:
                continue
            enrolment = add_operator(node_dir, op.id, password)
            logins.append({"party": p.party, "url": f"http://{listen}/login",
                           "operator": op.id, "roles": ", ".join(op.roles),
                           "language": op.language, "password": password,
                           "totp_secret": enrolment.secret, "totp_uri": enrolment.uri})
    _private_file(path, json.dumps(logins, indent=2, ensure_ascii=False) + "\n")
    return logins


def _print_logins(logins: list[dict[str, str]], base: Path) -> None:
    if not logins:
        return
    console.print("[bold]Operator console[/] (demo only): open a party's console address "
                  "above, log in as one of its operators with the password "
                  f"[bold]{escape(logins[0]['password'])}[/] and the code from an "
                  "authenticator app holding that operator's TOTP secret (time-based, "
                  "6 digits, 30 s; the otpauth URIs are in "
                  f"{base / 'console-logins.json'}).")
    table = Table("party", "operator", "roles", "lang")
    table.add_column("TOTP secret", no_wrap=True)
    for login in logins:
        table.add_row(login["party"], login["operator"], login["roles"], login["language"],
                      login["totp_secret"])
    console.print(table)


def _set_up(base: Path, port: int, passphrase: str, speed: float) -> None:
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
    for p in PARTIES:
        path = base / p.key / "directory.toml"
        path.write_text(directory_toml(p.party, speed), encoding="utf-8")
        apply_directory(base / p.key, path)


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
    table = Table("party", "console / API")
    table.add_column("node directory", overflow="fold")
    for p in PARTIES:
        config = load_config(base / p.key)
        table.add_row(f"{p.party} ({p.name})", f"http://{config.listen}/login",
                      str(base / p.key))
    console.print(table)
    console.print("Links: US-RU, US-UA, US-PL, PL-UA (no RU-PL link).")
    console.print(f"Demo passphrase (demo only): {passphrase}  — in {base / 'demo-passphrase'}")
    console.print("Try, in another terminal:")
    cmd = _command()
    console.print(f"  {cmd} send  --dir {base / 'us'} RU-GS 'NMCC calling the Chief of the "
                  "General Staff'")
    console.print(f"  {cmd} inbox --dir {base / 'ru'}")
    console.print(f"  {cmd} status --dir {base / 'us'}")
    console.print(f"  {cmd} calls  --dir {base / 'us'} --follow")
    console.print(f"  {cmd} call   --dir {base / 'us'} cgs@RU-GS --as nmcc-do --reason 'test'")
    console.print(f"  operator API docs: http://{load_config(base / 'us').listen}/api/v1/docs "
                  f"(token in {base / 'us' / 'operator.token'})")


def _present(clients: dict[str, OperatorClient]) -> None:
    """The on-duty operators are at their desks (the demo's stand-in for a console)."""
    for p in PARTIES:
        for operator in on_duty_operators(p.party):
            clients[p.key].request("POST", "/api/v1/presence", json={"operator": operator})


def _follow_call(client: OperatorClient, call_id: str, until: set[str], shown: set[str],
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 timeout: float = CHECK_TIMEOUT) -> dict[str, Any] | None:
    """Print each new step of a call as the caller sees it, until a state in ``until``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        call: dict[str, Any] = client.request("GET", f"/api/v1/calls/{call_id}")
        for event in call["history"]:
            key = f"{event['signed_by']}:{event['at']}:{event['state']}:{event['role']}"
            if key in shown:
                continue
            shown.add(key)
            mark = "[green]verified[/]" if event["verified"] else "[red]NOT verified[/]"
            extra = f" by {event['operator']}" if event.get("operator") else ""
            reason = f" — {escape(event['reason'])}" if event.get("reason") else ""
            console.print(f"    {event['state']:<13} {event.get('role') or '':<8}{extra} "
                          f"signed by {event['signed_by']} ({mark}){reason}")
            if on_event is not None:
                on_event(event)
        if call["state"] in until:
            return call
        time.sleep(0.1)
    return None


def _replay(base: Path) -> bool:
    """The scenario's timeline from the notification to the conference."""
    c = _clients(base)
    _present(c)
    for dst in ("US-JS", "UA-GS"):
        c["pl"].request("POST", "/api/v1/messages", json={"to": dst, "text": NOTIFICATION})
    console.print("[bold]+5 min[/]  ops-do@PL-GS sent its incident notification to US-JS and "
                  "UA-GS.")
    _wait_for_desk(c["us"], "ccp-do@RU-GS")
    console.print("[bold]+20 min[/] nmcc-do@US-JS calls cgs@RU-GS on behalf of the Chairman:")
    call = c["us"].request("POST", "/api/v1/calls", json={
        "to": "cgs@RU-GS", "as": "nmcc-do", "reason": "Missile impact at Przewodow, Poland"})

    def answer_when_duty_officer_rings(event: dict[str, Any]) -> None:
        if event["state"] == "ringing" and event["role"] == "ccp-do":
            c["ru"].request("POST", f"/api/v1/calls/{call['id']}/answer",
                            json={"as": "ccp-do", "operator": "ccp-1"})

    done = _follow_call(c["us"], call["id"], {"answered", "declined", "unanswered"}, set(),
                        answer_when_duty_officer_rings)
    if done is None or done["state"] != "answered":
        console.print("[red]the call did not end answered[/]")
        return False
    c["us"].request("POST", f"/api/v1/conversations/{call['id']}/messages",
                    json={"text": "Did Russian forces fire at Polish territory?",
                          "as": "nmcc-do"})
    c["ru"].request("POST", f"/api/v1/conversations/{call['id']}/messages",
                    json={"text": "Message received; passing it to the Chief of the General "
                                  "Staff.", "as": "ccp-do"})
    console.print("    conversation open; one message each way.")
    console.print("[bold]+30 min[/] the Chairman calls cinc@UA-GS and cgs@PL-GS:")
    ok = True
    calls = {}
    for key, to in (("ua", "cinc@UA-GS"), ("pl", "cgs@PL-GS")):
        placed = c["us"].request("POST", "/api/v1/calls", json={"to": to, "as": "cjcs"})
        calls[key] = placed["id"]
        role = to.split("@")[0]
        _wait_ringing(c[key], placed["id"])
        c[key].request("POST", f"/api/v1/calls/{placed['id']}/answer", json={"as": role})
        ended = _follow_call(c["us"], placed["id"], {"answered"}, set())
        ok &= ended is not None
    conference = calls["ua"]
    c["us"].request("POST", f"/api/v1/conversations/{conference}/members",
                    json={"party": "PL-GS"})
    console.print("    conference US-UA-PL open on the UA call's conversation.")
    return ok


def _wait_for_desk(client: OperatorClient, address: str) -> None:
    deadline = time.monotonic() + CHECK_TIMEOUT
    while time.monotonic() < deadline:
        desks = client.request("GET", "/api/v1/desks")["desks"]
        if any(d["address"] == address for d in desks):
            return
        time.sleep(0.1)


def _wait_ringing(client: OperatorClient, call_id: str) -> None:
    deadline = time.monotonic() + CHECK_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if client.request("GET", f"/api/v1/calls/{call_id}")["state"] == "ringing":
                return
        except HotlineError:
            pass
        time.sleep(0.05)


def run_demo(base: Path | None, port: int, check: bool, speed: float = 60.0) -> int:
    base = (base or Path(tempfile.mkdtemp(prefix="hotline-demo-"))).resolve()
    base.mkdir(parents=True, exist_ok=True)
    passphrase = _passphrase(base)
    console.print(f"[bold]Hotline demo[/] in {base}: setting up four nodes…")
    if not 0 < speed <= 10_000:
        raise HotlineError("bad-option", "--speed must be above 0 and at most 10000")
    _set_up(base, port, passphrase, speed)
    logins = _console_logins(base)
    procs = _start(base, passphrase)
    try:
        _wait_healthy(base, procs)
        _print_nodes(base, passphrase)
        _print_logins(logins, base)
        console.print(f"Replaying the Przewodów scenario at {speed:g}x:")
        replayed = _replay(base)
        if check:
            console.print("Checking every link in both directions:")
            return 0 if _check_links(base) and replayed else 1
        console.print("[bold]Ctrl-C[/] stops all four nodes. The on-duty operators stay "
                      "present while the demo runs.")
        clients = _clients(base)
        while all(proc.poll() is None for proc in procs.values()):
            _present(clients)
            time.sleep(1.0)
        dead = [p.party for p in PARTIES if procs[p.key].poll() is not None]
        console.print(f"[red]node(s) {', '.join(dead)} stopped unexpectedly[/]; stopping.")
        return 1
    except KeyboardInterrupt:
        console.print("Stopping the nodes…")
        return 0
    finally:
        _stop(procs)
