"""``hotline demo``: the four parties of the Przewodów scenario on this machine.

Each party is a separate ``hotline serve`` process with its own SQLite database, linked
as in the scenario (US-RU, US-UA, US-PL, PL-UA; no RU-PL link), with the scenario's
roles, operators, rosters, escalation chains and link policies applied. The demo then
replays the scenario: PL opens the "Przewodów impact" incident with US and UA and sends
its incident notification on it, the US call to ``cgs@RU-GS`` (linked to the incident)
escalates to the duty officer, the US-UA-PL conference, then the parties' assessments on
the incident's timeline (:mod:`hotline.cli.demo_incident`), narrated as it happens from
what the nodes report (:mod:`hotline.cli.demo_story`). Every step adds its expected
outcomes, met or not, to one list (:mod:`hotline.cli.demo_outcome`); ``--exit`` (alias
``--check``) prints them as a summary table after ``log verify`` on every node. The nodes
are run like services (:mod:`hotline.cli.demo_nodes`): checked ports, no orphans. Each
node's ``directory.toml`` is the party's real-time example (``examples/directories/``)
with the durations of its settings, chains and link policies divided by ``--speed``
(:func:`hotline.scenario.scale_directory`); duty schedules are never scaled. The demo
stores a generated passphrase beside the nodes: it is for demonstration only. Every
scenario operator gets a console account (one generated demo password, a TOTP secret
each); the logins are printed and kept in ``console-logins.json`` beside the nodes
(mode 0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from hotline.admin import accept_link, apply_directory, init_node, make_link_offer, read_offer
from hotline.cli import demo_incident, demo_nodes, demo_story
from hotline.cli.client import OperatorClient
from hotline.cli.common import EXIT_USAGE
from hotline.cli.demo_nodes import LINKS, PARTIES, Procs
from hotline.cli.demo_outcome import Outcome, all_met, summary, verify_logs
from hotline.cli.tables import Col, show
from hotline.errors import HotlineError
from hotline.nodedir.config import CONFIG_NAME, load_config
from hotline.scenario import directory_toml, duty_role, on_duty_operators

CHECK_TIMEOUT = 30.0
#: the longest a scenario call's escalation runs in real time before the desk that answers
#: it rings: RU-GS's chain for cgs, 2 min + 2 min to the duty officer (and 1 min more);
#: tests/unit/test_demo_parts.py holds it to examples/directories/RU-GS.toml
SCENARIO_CHAIN_SECONDS = 300.0


def call_wait(speed: float) -> float:
    """Seconds to wait for a scenario call to end at ``speed``: its escalation steps last
    their directory durations divided by ``speed``, so the wait is that plus the usual
    margin (at 0.5 the chain takes ten minutes; the wait ends as soon as the call does)."""
    return CHECK_TIMEOUT + SCENARIO_CHAIN_SECONDS / speed

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
    show(console, [Col("party", keep=True), Col("operator", keep=True), Col("roles"),
                   Col("lang", drop=1), Col("TOTP secret", keep=True)],
         [[login["party"], login["operator"], login["roles"], login["language"],
           login["totp_secret"]] for login in logins])


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


def _check_links(base: Path, outcomes: list[Outcome]) -> None:
    """A test message on every link in both directions, and RU-GS to PL-GS refused (no
    link): two rows of the outcome table."""
    clients = _clients(base)
    party = {p.key: p.party for p in PARTIES}
    missed = []
    with console.status("exchanging test messages…") as status:
        for a, b in LINKS:
            for src, dst in ((a, b), (b, a)):
                status.update(f"a test message from {party[src]} to {party[dst]}…")
                text = f"link check {party[src]} -> {party[dst]} {secrets.token_hex(4)}"
                clients[src].request("POST", "/api/v1/messages", json={"to": party[dst],
                                                                       "text": text})
                arrived = _wait_for(clients[dst], party[src], text)
                if not arrived:
                    missed.append(f"{party[src]} to {party[dst]}")
                console.print(f"  {party[src]:>6} -> {party[dst]:<6} "
                              f"{'[green]delivered[/]' if arrived else '[red]NOT delivered[/]'}")
    outcomes.append(Outcome("every link, both ways", not missed,
                            f"{2 * len(LINKS)} test messages delivered" if not missed
                            else "NOT delivered: " + ", ".join(missed)))
    try:
        clients["ru"].request("POST", "/api/v1/messages", json={"to": "PL-GS", "text": "x"})
        console.print("  RU-GS -> PL-GS  [red]accepted although there is no link[/]")
        outcomes.append(Outcome("RU-GS to PL-GS refused", False,
                                "accepted although there is no link"))
    except HotlineError as exc:
        console.print(f"   RU-GS -> PL-GS  refused as expected: {exc.error_id}")
        outcomes.append(Outcome("RU-GS to PL-GS refused", exc.error_id == "no-link",
                                f"refused: error[{exc.error_id}]"))


def _command() -> str:
    """How the user can run ``hotline`` from another terminal (the venv may not be on PATH)."""
    if shutil.which("hotline"):
        return "hotline"
    return str(Path(sys.argv[0]).resolve()) if sys.argv and sys.argv[0] else "hotline"


def _print_nodes(base: Path, passphrase: str) -> None:
    show(console, [Col("party"), Col("console / API", keep=True),
                   Col("node directory", keep=True)],
         [[f"{p.party} ({p.name})", f"http://{load_config(base / p.key).listen}/login",
           str(base / p.key)] for p in PARTIES])
    console.print("Links: US-RU, US-UA, US-PL, PL-UA (no RU-PL link).")
    console.print(f"Demo passphrase (demo only): {passphrase}  — in {base / 'demo-passphrase'}")
    console.print("Try, in another terminal:")
    cmd = _command()
    console.print(f"  {cmd} send  --dir {base / 'us'} RU-GS 'NMCC calling the Chief of the "
                  "General Staff'")
    console.print(f"  {cmd} inbox --dir {base / 'ru'}")
    console.print(f"  {cmd} status --dir {base / 'us'}")
    console.print(f"  {cmd} calls  --dir {base / 'us'} --follow")
    console.print(f"  {cmd} schedule who  ccp-do --dir {base / 'ru'}")
    console.print(f"  {cmd} schedule show nmcc-do --dir {base / 'us'}")
    console.print(f"  {cmd} call   --dir {base / 'us'} cgs@RU-GS --as nmcc-do --reason 'test'")
    console.print(f"  operator API docs: http://{load_config(base / 'us').listen}/api/v1/docs "
                  f"(token in {base / 'us' / 'operator.token'})")


def _on_watch(base: Path, key: str, role: str) -> str | None:
    """The officer on watch in ``role`` at node ``key`` now: what ``hotline schedule who``
    answers (the same function, on the same database)."""
    from hotline.calls.duty_offline import now_ms, who

    _zone, shift = who(base / key, role, now_ms())
    return shift.holders[0] if shift.holders else None


def _present(base: Path, clients: dict[str, OperatorClient]) -> None:
    """The on-duty operators are at their desks (the demo's stand-in for a console): the
    roster's, and whoever is on watch at each duty desk now."""
    for p in PARTIES:
        watch = _on_watch(base, p.key, duty_role(p.party))
        for operator in [*on_duty_operators(p.party), *([watch] if watch else [])]:
            clients[p.key].request("POST", "/api/v1/presence", json={"operator": operator})


def _follow_call(client: OperatorClient, call_id: str, until: set[str], shown: set[str],
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 timeout: float = CHECK_TIMEOUT, waiting: str = "the call"
                 ) -> dict[str, Any] | None:
    """Print each new step of a call as the caller sees it, until a state in ``until``
    (a spinner says what is awaited meanwhile)."""
    deadline = time.monotonic() + timeout
    began = time.monotonic()
    with console.status(f"waiting for {waiting}…") as status:
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
            status.update(f"waiting for {waiting}: {call['state']} "
                          f"({time.monotonic() - began:.0f} s)…")
            time.sleep(0.1)
    return None


def _call_outcomes(done: dict[str, Any] | None) -> list[Outcome]:
    """The scenario call's rows: escalated to the duty officer, answered there, every
    step signed by RU-GS and verified (from the caller's history)."""
    if done is None:
        return [Outcome("scenario call to cgs@RU-GS", False, "did not end in time")]
    history = [e for e in done["history"] if e["signed_by"] == "RU-GS"]
    rung = list(dict.fromkeys(e["role"] for e in history if e["state"] == "ringing"))
    answered = next((e for e in history if e["state"] == "answered"), None)
    by = f" by {answered['operator']} ({answered['role']})" if answered else ""
    unverified = [e["state"] for e in history if not e["verified"]]
    return [
        Outcome("scenario call to cgs@RU-GS", done["state"] == "answered",
                f"{done['state']}{by}"),
        Outcome("escalation cgs, cgs-1d, ccp-do", rung == ["cgs", "cgs-1d", "ccp-do"],
                "rang " + (", ".join(rung) or "nobody")),
        Outcome("RU-GS's steps signed, verified",
                bool(history) and not unverified and any(e["state"] == "delivered"
                                                         for e in history),
                f"{len(history)} steps, all verified" if not unverified
                else "NOT verified: " + ", ".join(unverified)),
    ]


def _replay(base: Path, outcomes: list[Outcome], speed: float = 60.0) -> None:
    """The scenario's timeline from the incident and its notification to the conference,
    then the incident's assessments and its shared timeline, narrated as it happens. Each
    expected outcome is added to ``outcomes``, met or not."""
    c = _clients(base)
    _present(base, c)
    dirs = demo_story.directories(base, [(p.key, p.party) for p in PARTIES])
    demo_story.print_parties(console, dirs, {p.party: p.name for p in PARTIES})
    console.print("[bold]+5 min[/]  ops-do@PL-GS opens the incident and sends its incident "
                  "notification on it to US-JS and UA-GS:")
    incident_id = demo_incident.open_incident(c, console)
    notice = demo_incident.notify(c, incident_id, console)
    demo_incident.as_read(c, incident_id, notice, console)
    _wait_for_desk(c["us"], "ccp-do@RU-GS")
    console.print("[bold]+20 min[/] nmcc-do@US-JS calls cgs@RU-GS on behalf of the Chairman:")
    call = c["us"].request("POST", "/api/v1/calls", json={
        "to": "cgs@RU-GS", "as": "nmcc-do", "reason": "Missile impact at Przewodow, Poland"})
    demo_incident.link_call(c, incident_id, call["id"])
    console.print("    the call is linked to the incident.")
    story = demo_story.CallStory(console, dirs, "RU-GS")
    answered: list[str] = []

    def answer_when_duty_officer_rings(event: dict[str, Any]) -> None:
        story(event)
        # once: at a high --speed the desk may ring again before the answer shows
        if event["state"] == "ringing" and event["role"] == "ccp-do" \
                and event["signed_by"] == "RU-GS" and not answered:
            officer = _on_watch(base, "ru", "ccp-do")  # as `hotline schedule who` names
            console.print(f"    ccp-do@RU-GS answers as {officer}, the officer on watch")
            answered.append(officer or "")
            c["ru"].request("POST", f"/api/v1/calls/{call['id']}/answer",
                            json={"as": "ccp-do", "operator": officer})

    done = _follow_call(c["us"], call["id"], {"answered", "declined", "unanswered"}, set(),
                        answer_when_duty_officer_rings, timeout=call_wait(speed),
                        waiting="RU-GS's next step")
    outcomes.extend(_call_outcomes(done))
    if done is None or done["state"] != "answered":
        console.print("[red]the call did not end answered[/]")
        return
    c["us"].request("POST", f"/api/v1/conversations/{call['id']}/messages",
                    json={"text": "Did Russian forces fire at Polish territory?",
                          "as": "nmcc-do"})
    c["ru"].request("POST", f"/api/v1/conversations/{call['id']}/messages",
                    json={"text": "Message received; passing it to the Chief of the General "
                                  "Staff.", "as": "ccp-do"})
    # said only once each side shows the other's message (posting is not delivering)
    if _each_way(c, call["id"], {"us": "RU-GS", "ru": "US-JS"}):
        console.print("    conversation open; one message each way.")
        outcomes.append(Outcome("conversation, one message each way", True,
                                "each shown on the other side"))
    else:
        console.print("[red]    a conversation message did not reach the other side[/]")
        outcomes.append(Outcome("conversation, one message each way", False,
                                "not shown on the other side in time"))
    console.print("[bold]+30 min[/] the Chairman calls cinc@UA-GS and cgs@PL-GS:")
    calls = {}
    for key, to in (("ua", "cinc@UA-GS"), ("pl", "cgs@PL-GS")):
        placed = c["us"].request("POST", "/api/v1/calls", json={"to": to, "as": "cjcs"})
        calls[key] = placed["id"]
        role = to.split("@")[0]
        _wait_ringing(c[key], placed["id"])
        c[key].request("POST", f"/api/v1/calls/{placed['id']}/answer", json={"as": role})
        ended = _follow_call(c["us"], placed["id"], {"answered"}, set(),
                             timeout=call_wait(speed), waiting=to)
        outcomes.append(Outcome(f"call to {to}", ended is not None,
                                "answered at the first step" if ended is not None
                                else "NOT answered in time"))
    conference = calls["ua"]
    c["us"].request("POST", f"/api/v1/conversations/{conference}/members",
                    json={"party": "PL-GS"})
    console.print("    conference US-UA-PL open on the UA call's conversation.")
    _same, rows = demo_incident.run(
        c, console, incident_id, notice, call_linked=True,
        officer=lambda: _on_watch(base, "ru", "ccp-do"))
    outcomes.extend(rows)


def _each_way(c: dict[str, OperatorClient], conv_id: str, sender_seen_by: dict[str, str]
              ) -> bool:
    """Whether each node (key) shows a message of the party it should see, in time."""
    deadline = time.monotonic() + CHECK_TIMEOUT
    while time.monotonic() < deadline:
        if all(any(m["party"] == party for m in c[key].request(
                "GET", f"/api/v1/conversations/{conv_id}")["messages"])
               for key, party in sender_seen_by.items()):
            return True
        time.sleep(0.1)
    return False


def _wait_for_desk(client: OperatorClient, address: str) -> None:
    deadline = time.monotonic() + CHECK_TIMEOUT
    with console.status(f"waiting for US-JS to see {address} staffed…"):
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


def _explore(base: Path, procs: Procs, logins: list[dict[str, str]]) -> int:
    """Keep the nodes running for a person to explore (the on-duty operators present),
    the console logins printed last; until Ctrl-C, SIGTERM or SIGHUP (exit 0) or a node
    stopping by itself (exit 1)."""
    _print_nodes(base, passphrase=_passphrase(base))
    _print_logins(logins, base)
    console.print("[bold]Ctrl-C[/] stops all four nodes. The on-duty operators stay "
                  "present while the demo runs.")
    clients = _clients(base)
    while all(proc.poll() is None for proc in procs.values()):
        _present(base, clients)
        time.sleep(1.0)
    dead = [p.party for p in PARTIES if procs[p.key].poll() is not None]
    console.print(f"[red]node(s) {', '.join(dead)} stopped unexpectedly[/]; stopping.")
    return 1


def run_demo(base: Path | None, port: int, check: bool, speed: float = 60.0) -> int:
    """The demo; its exit code. ``check`` (``--exit``/``--check``): replay, check the
    links, stop the nodes, ``log verify`` each, print the summary table, remove the
    directory if the demo made it, and return 0 only if every expected outcome was met.
    Without it the nodes keep running until a signal. Refuses (exit 2) before anything
    starts if a port is taken or a node runs on the directory."""
    if not 0 < speed <= 10_000:
        raise HotlineError("bad-option", "--speed must be above 0 and at most 10000",
                           status=EXIT_USAGE)
    given = base is not None
    if base is not None:
        base = base.resolve()
    demo_nodes.preflight(base, port)
    base = base or Path(tempfile.mkdtemp(prefix="hotline-demo-")).resolve()
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    procs: Procs = {}
    outcomes: list[Outcome] = []
    code = 1
    try:
        with demo_nodes.stop_signals():
            try:
                passphrase = _passphrase(base)
                console.print(f"[bold]Hotline demo[/] in {escape(str(base))}: setting up four "
                              "nodes…")
                _set_up(base, port, passphrase, speed)
                logins = _console_logins(base)
                procs = demo_nodes.start(base, passphrase)
                with console.status("starting the nodes…") as status:
                    demo_nodes.wait_healthy(base, procs, status.update)
                if check:  # the directory stays if given: its logins serve a later run
                    _print_nodes(base, passphrase)
                    _print_logins(logins, base)
                console.print(f"Replaying the Przewodów scenario at {speed:g}x:")
                _replay(base, outcomes, speed)
                if not check:
                    code = _explore(base, procs, logins)
                    return code
                console.print("Checking every link in both directions:")
                _check_links(base, outcomes)
            except KeyboardInterrupt:
                code = 130 if check else 0
                return code
            except demo_nodes.Stopped as stopped:
                code = 128 + stopped.signum if check else 0
                return code
            finally:
                demo_nodes.stop(procs, console)
            console.print("Checking the log of every node (hotline log verify):")
            outcomes.extend(verify_logs([(p.party, base / p.key) for p in PARTIES]))
            console.print("[bold]Summary[/]")
            summary(console, outcomes)
            code = 0 if all_met(outcomes) else 1
            return code
    finally:
        if check and not given:
            _remove_or_keep(base, failed=code == 1)


def _remove_or_keep(base: Path, failed: bool) -> None:
    """``--exit`` removes the directory it made itself; after a failure it keeps it for
    the nodes' logs, and says where."""
    if failed:
        with contextlib.suppress(OSError):
            console.print(f"The demo's directory is kept for inspection (node.log of each "
                          f"node): {base}")
        return
    shutil.rmtree(base, ignore_errors=True)
