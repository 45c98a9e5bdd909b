"""Link removal under hostile and careless use, on real nodes: what a removal could end
silently (docs/protocol.md §6.1)."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from hotline.protocol.envelope import Header, new_envelope_id, seal
from hotline.protocol.generation import REMOVED_TYPE, first_seq
from tests.calls import apply_scenario, place, us_and_ru, wait_for_state
from tests.e2e.test_cli import hotline
from tests.faultproxy import FaultProxy
from tests.nodes import NodeProcess, free_port, link, wait_until
from tests.peers import ENVELOPES, console_session

PASSWORD = "correct horse battery staple"

Make = Callable[..., NodeProcess]


def _remove(node: NodeProcess, party: str, wait_s: float = 10.0) -> dict[str, Any]:
    r = node.api("POST", f"/api/v1/links/{party}/remove", json={"wait_seconds": wait_s})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_a_conversation_message_after_removal_shows_undeliverable(
        make_sqlite_node: Make) -> None:
    us, ru = us_and_ru(make_sqlite_node)
    talk = place(us, "cgs@RU-GS", "nmcc-do", "a conversation")
    wait_for_state(ru, talk, "ringing")
    r = ru.api("POST", f"/api/v1/calls/{talk}/answer", json={"as": "cgs", "operator": "cgs-1"})
    assert r.status_code == 200, r.text
    wait_for_state(us, talk, "answered")
    assert _remove(us, "RU-GS")["peer_told"] is True
    said = us.api("POST", f"/api/v1/conversations/{talk}/messages",
                  json={"text": "after removal", "as": "nmcc-do", "operator": "nmcc-1"})
    assert said.status_code == 201, said.text
    assert said.json()["undeliverable"] == ["RU-GS"]  # said at once, not left waiting
    conv = us.api("GET", f"/api/v1/conversations/{talk}").json()
    mine = next(m for m in conv["messages"] if m["text"] == "after removal")
    assert [(x["party"], x["receipt"], x["reason"]) for x in mine["receipts"]] == \
        [("RU-GS", "undeliverable", "undeliverable: the link with RU-GS was removed")]
    entries = [json.loads(r.entry)["body"] for r in us.query(
        "SELECT entry FROM log_entries WHERE kind = 'undeliverable' AND subject = :s",
        s=talk)]
    assert [(e["peer"], e["message"]) for e in entries] == [("RU-GS", mine["id"])]
    # the command line says so too, not just "Sent"
    said_cli = hotline("conversation", "say", talk, "and again", "--as", "nmcc-do",
                       "--dir", str(us.dir), env={"COLUMNS": "250"})
    assert "Not to RU-GS: the link was removed (undeliverable)." in said_cli.stdout
    # nothing waits for the removed party, and the log still verifies
    assert us.peer_status("RU-GS")["queued"] == 0
    verified = subprocess.run(
        [sys.executable, "-m", "hotline", "log", "verify", "--dir", str(us.dir)],
        capture_output=True, text=True, timeout=120, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_nothing_is_left_waiting_for_a_link_removed_while_messages_are_sent(
        make_sqlite_node: Make) -> None:
    """RU's operator keeps sending to US while US removes the link: each message is either
    refused (no link), delivered, or given up by the removal; none is left waiting for a
    removed link, outside the removal's report."""
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    us.start()
    ru.start()
    stop = threading.Event()
    answers: list[int] = []

    def keep_sending() -> None:
        with httpx.Client(base_url=ru.url, timeout=30,
                          headers={"authorization": f"Bearer {ru.token}"}) as client:
            while not stop.is_set():
                r = client.post("/api/v1/messages", json={"to": "US-JS", "text": "busy"})
                answers.append(r.status_code)

    senders = [threading.Thread(target=keep_sending) for _ in range(3)]
    for t in senders:
        t.start()
    try:
        wait_until(lambda: len(answers) > 20, 30, what="RU to be sending")
        _remove(us, "RU-GS")
        wait_until(lambda: ru.peer_status("US-JS")["state"] == "removed", 30,
                   what="RU to take the notice")
        wait_until(lambda: answers.count(404) > 5, 30, what="RU to refuse sends")
    finally:
        stop.set()
        for t in senders:
            t.join()
    assert set(answers) <= {201, 404}, set(answers)
    waiting = ru.query("SELECT seq FROM outbox WHERE peer = 'US-JS' "
                       "AND delivered_at IS NULL AND failed_at IS NULL")
    assert waiting == [], waiting
    assert ru.peer_status("US-JS")["queued"] == 0


def test_a_batch_in_flight_when_the_link_is_removed_keeps_its_receipts(
        make_sqlite_node: Make) -> None:
    """RU took a batch and its receipts are on the way when US's operator removes the
    link: the removal waits for them, so US does not call undeliverable what RU shows
    its operators."""
    ru_port = free_port()
    proxy = FaultProxy(ru_port)
    try:
        us = make_sqlite_node("US-JS")
        ru = make_sqlite_node("RU-GS", endpoints=[proxy.url], port=ru_port)
        link(us, ru)
        us.start()
        ru.start()
        us.send("RU-GS", ["before"])
        wait_until(lambda: us.peer_status("RU-GS")["delivered"] >= 1, 30, what="delivery")
        proxy.partition()  # the next batch goes on a new connection, whose answer is held
        proxy.heal()
        proxy.hold_replies()
        sent = us.send("RU-GS", ["in flight"])
        wait_until(lambda: any(m["text"] == "in flight" for m in ru.inbox()), 30,
                   what="RU to take the batch")
        outcome: list[dict[str, Any]] = []
        remover = threading.Thread(target=lambda: outcome.append(_remove(us, "RU-GS")))
        remover.start()
        wait_until(lambda: us.log_lines("removing the link with RU-GS"), 30,
                   what="the removal to start")
        proxy.release()
        remover.join(60)
        assert outcome, "the removal did not answer"
        removed = outcome[0]
        assert removed["peer_told"] is True, removed
        assert sent[0]["id"] not in [q["id"] for q in removed["queued"]], removed
        row = us.query("SELECT delivered_at, failed_at FROM outbox WHERE envelope_id = :e",
                       e=sent[0]["id"])[0]
        assert (row.delivered_at is not None, row.failed_at) == (True, None), row
        assert sent[0]["id"] not in {b["id"] for b in _log_bodies(us, "undeliverable")}
        assert us.peer_status("RU-GS")["undeliverable"] == 0
    finally:
        proxy.close()


def _log_bodies(node: NodeProcess, kind: str) -> list[dict[str, Any]]:
    rows = node.query("SELECT entry FROM log_entries WHERE kind = :k ORDER BY idx", k=kind)
    return [json.loads(r.entry)["body"] for r in rows]


def test_desks_are_reported_again_when_a_removed_link_is_accepted_again(
        make_sqlite_node: Make) -> None:
    """A removal drops the party's desks on both sides; accepting the link again (the
    nodes keep running) must bring them back, or calls to the party's roles see no desk."""
    us, ru = us_and_ru(make_sqlite_node)
    wait_until(lambda: _desks(ru, "US-JS"), 30, what="US's desks on RU")
    assert _remove(us, "RU-GS")["peer_told"] is True
    wait_until(lambda: ru.peer_status("US-JS")["state"] == "removed", 30,
               what="RU to take the notice")
    assert _desks(us, "RU-GS") == []
    assert _desks(ru, "US-JS") == []
    link(us, ru)
    wait_until(lambda: _desks(us, "RU-GS"), 30, what="RU's desks on US after re-linking")
    wait_until(lambda: _desks(ru, "US-JS"), 30, what="US's desks on RU after re-linking")


def _desks(node: NodeProcess, party: str) -> list[dict[str, Any]]:
    desks: list[dict[str, Any]] = node.api("GET", "/api/v1/desks").json()["desks"]
    return [d for d in desks if d["party"] == party]


def test_the_console_shows_a_removed_link_and_what_it_gave_up(make_sqlite_node: Make
                                                               ) -> None:
    """The console's link health agrees with `status`: the removed link is named so, in
    words the catalogues translate, with the count of messages given up for it."""
    from hotline.accounts.offline import add_operator

    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    apply_scenario(us)
    secret = add_operator(us.dir, "nmcc-1", PASSWORD).secret
    us.start()  # RU stays down: the messages wait
    us.send("RU-GS", ["one", "two"])
    removed = _remove(us, "RU-GS", wait_s=1)
    assert removed["peer_told"] is False
    given_up = len(removed["queued"]) + 1  # the notice too (a desk report may wait)
    assert given_up >= 3
    assert us.peer_status("RU-GS")["undeliverable"] == given_up
    client = console_session(us, "nmcc-1", secret, PASSWORD)
    try:
        english = client.get("/links/table?lang=en").text
    finally:
        client.close()
    row = english[english.index('data-party="RU-GS"'):]
    row = row[:row.index("</tr>")]
    assert 'data-state="removed"' in row
    assert "Link removed" in row
    assert f'<td class="undeliverable">{given_up}</td>' in row
    assert "Undeliverable" in english


def test_old_and_forged_link_removed_notices_are_refused_once_each(
        make_sqlite_node: Make) -> None:
    """A hostile peer replays US's notice (before and after re-linking), forges one with
    another party's keys, and addresses one to another party: each is refused with one
    security-log line, and RU's link stays as it is."""
    us, ru, pl = (make_sqlite_node("US-JS"), make_sqlite_node("RU-GS"),
                  make_sqlite_node("PL-GS"))
    link(us, ru)
    us.start()
    ru.start()
    notice_id = _remove(us, "RU-GS")["notice"]
    wait_until(lambda: ru.peer_status("US-JS")["state"] == "removed", 30, what="notice")
    raw = us.query("SELECT envelope FROM outbox WHERE envelope_id = :e", e=notice_id)[0]
    notice = bytes(raw.envelope) if not isinstance(raw.envelope, str) else \
        raw.envelope.encode()

    def refused_once(body: bytes, error: str) -> None:
        before = len(ru.log_lines("hotline.security"))
        r = httpx.post(ru.url + ENVELOPES, content=body, timeout=30,
                       headers={"content-type": "application/x-ndjson"})
        body = r.json()
        result = body["results"][0] if "results" in body else body
        assert result.get("error") == error, result
        wait_until(lambda: len(ru.log_lines("hotline.security")) > before, 10,
                   what="the refusal's security-log line")
        assert len(ru.log_lines("hotline.security")) == before + 1

    refused_once(notice, "unknown-sender")  # the link is removed here
    link(us, ru)
    wait_until(lambda: ru.peer_status("US-JS")["state"] != "removed", 30, what="re-link")
    removals = len(_log_bodies(ru, "link-removed"))
    refused_once(notice, "link-generation")  # an ended generation's notice
    head = Header(id=new_envelope_id(), sender="US-JS", recipient="RU-GS",
                  kid=pl.public_keys().key_id, seq=first_seq(1) + 5,
                  ts=time.time_ns() // 1_000_000, type=REMOVED_TYPE)
    forged = seal(head, {"generation": 1, "reason": "forged", "undeliverable": 0,
                         "calls": []}, pl.private_keys(), ru.public_keys())
    refused_once(forged, "unknown-key")
    elsewhere = Header(id=new_envelope_id(), sender="US-JS", recipient="PL-GS",
                       kid=us.public_keys().key_id, seq=first_seq(1) + 1,
                       ts=time.time_ns() // 1_000_000, type=REMOVED_TYPE)
    misdirected = seal(elsewhere, {"generation": 1, "reason": "x", "undeliverable": 0,
                                   "calls": []}, us.private_keys(), pl.public_keys())
    refused_once(misdirected, "wrong-recipient")
    assert len(_log_bodies(ru, "link-removed")) == removals
    assert ru.peer_status("US-JS")["state"] != "removed"
    us.send("RU-GS", ["still linked"])
    wait_until(lambda: any(m["text"] == "still linked" for m in ru.inbox()), 30,
               what="the line to work after the refusals")


def test_a_second_removal_after_re_linking_is_alarmed_afresh(make_sqlite_node: Make
                                                             ) -> None:
    """The link-removed alarm says the party is refused until the link is accepted
    again: accepting it clears the alarm, so that a later removal raises (logs, rings)
    a new one instead of counting a repeat of a stale one."""
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    us.start()
    ru.start()
    cause = "link-removed:US-JS"
    for generation in (1, 2):
        assert _remove(us, "RU-GS")["peer_told"] is True
        wait_until(lambda: [a for a in ru.status()["alarms"] if a["cause"] == cause], 30,
                   what="RU's link-removed alarm")
        [alarm] = [a for a in ru.status()["alarms"] if a["cause"] == cause]
        assert alarm["count"] == 1, alarm
        raised = [b for b in _log_bodies(ru, "alarm") if b["cause"] == cause]
        assert len(raised) == generation
        assert raised[-1]["detail"]["generation"] == generation
        link(us, ru)
        wait_until(lambda: not [a for a in ru.status()["alarms"] if a["cause"] == cause],
                   30, what="the alarm to clear once the link is accepted again")
        cleared = [b for b in _log_bodies(ru, "alarm-cleared") if b["cause"] == cause]
        assert len(cleared) == generation
        assert cleared[-1]["cleared_by"] == "the link was accepted again"
        wait_until(lambda: ru.peer_status("US-JS")["state"] != "removed", 30,
                   what="RU to take the new link")
        wait_until(lambda: us.peer_status("RU-GS")["state"] != "removed", 30,
                   what="US to take the new link")


def test_a_batch_in_flight_to_the_remover_keeps_its_receipts_on_the_told_side(
        make_sqlite_node: Make) -> None:
    """RU's batch reached US (US's operator sees it) and its receipts are on the way when
    US's notice reaches RU: RU does not call undeliverable what US took."""
    us_port = free_port()
    proxy = FaultProxy(us_port)  # RU reaches US through it; US reaches RU directly
    try:
        us = make_sqlite_node("US-JS", endpoints=[proxy.url], port=us_port)
        ru = make_sqlite_node("RU-GS")
        link(us, ru)
        us.start()
        ru.start()
        ru.send("US-JS", ["before"])
        wait_until(lambda: ru.peer_status("US-JS")["delivered"] >= 1, 30, what="delivery")
        proxy.partition()
        proxy.heal()
        proxy.hold_replies()
        sent = ru.send("US-JS", ["in flight"])
        wait_until(lambda: any(m["text"] == "in flight" for m in us.inbox()), 30,
                   what="US to take the batch")
        assert _remove(us, "RU-GS")["peer_told"] is True
        wait_until(lambda: ru.peer_status("US-JS")["state"] == "removed", 30,
                   what="RU to take the notice")
        proxy.release()
        wait_until(lambda: ru.query(
            "SELECT delivered_at FROM outbox WHERE envelope_id = :e",
            e=sent[0]["id"])[0].delivered_at is not None, 30,
            what="RU to store US's receipt")
        row = ru.query("SELECT failed_at FROM outbox WHERE envelope_id = :e",
                       e=sent[0]["id"])[0]
        assert row.failed_at is None
        assert ru.peer_status("US-JS")["undeliverable"] == 0
    finally:
        proxy.close()


def test_calls_in_every_state_end_known_on_both_sides_across_restarts(
        make_sqlite_node: Make) -> None:
    """US removes the link while RU is down, with a call from RU ringing at US, a call to
    RU ringing there and an answered one: US ends the open ones at once and keeps them
    so across a crash; RU, back, ends its side when its operator removes it too; the
    re-linked pair calls again."""
    us, ru = us_and_ru(make_sqlite_node)
    wait_until(lambda: _desks(ru, "US-JS"), 30, what="US's desks on RU")
    incoming = place(ru, "nmcc-do@US-JS", "ccp-do", "from RU")
    talk = place(us, "cgs@RU-GS", "nmcc-do", "a conversation")
    outgoing = place(us, "cgs@RU-GS", "nmcc-do", "to RU")
    for node, call in ((us, incoming), (ru, talk), (ru, outgoing)):
        wait_for_state(node, call, "ringing")
    r = ru.api("POST", f"/api/v1/calls/{talk}/answer", json={"as": "cgs", "operator": "cgs-1"})
    assert r.status_code == 200, r.text
    wait_for_state(us, talk, "answered")
    wait_for_state(us, outgoing, "ringing")
    ru.kill9()

    removed = _remove(us, "RU-GS", wait_s=1)
    assert removed["peer_told"] is False
    assert sorted(removed["ended_calls"]) == sorted([incoming, outgoing])
    us.kill9()
    us.start()
    for call in (incoming, outgoing):
        assert _state_and_reason(us, call) == ("cancelled", "link removed")
    assert _state_and_reason(us, talk)[0] == "answered"
    active = us.api("GET", "/api/v1/calls", params={"active": "true"}).json()
    assert [c["id"] for c in active["calls"] if c["peer"] == "RU-GS"] == []

    ru.start()  # it was not told: its side stands until its operator removes it
    assert wait_for_state(ru, incoming, "ringing", "delivered")["state"] != "cancelled"
    theirs = _remove(ru, "US-JS", wait_s=2)
    assert theirs["peer_told"] is False
    assert sorted(theirs["ended_calls"]) == sorted([incoming, outgoing])
    for call in (incoming, outgoing):
        assert _state_and_reason(ru, call) == ("cancelled", "link removed")
    for node in (us, ru):
        verified = subprocess.run(
            [sys.executable, "-m", "hotline", "log", "verify", "--dir", str(node.dir)],
            capture_output=True, text=True, timeout=120, check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr

    link(us, ru)
    wait_until(lambda: _desks(us, "RU-GS"), 30, what="RU's desks after re-linking")
    again = place(us, "cgs@RU-GS", "nmcc-do", "again")
    wait_for_state(ru, again, "ringing")
    wait_for_state(us, again, "ringing")


def _state_and_reason(node: NodeProcess, call_id: str) -> tuple[str, str | None]:
    call = node.api("GET", f"/api/v1/calls/{call_id}").json()
    mine = [e for e in call["history"] if e["signed_by"] == node.party]
    return call["state"], mine[-1]["reason"]


class _RefusingWitness(http.server.BaseHTTPRequestHandler):
    """A linked peer's endpoint that refuses every checkpoint with a verdict on the
    origin's log (as a hostile or broken witness may) and every envelope."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        verdict = "/checkpoints" in self.path
        body = json.dumps({"error": "inconsistent-checkpoint" if verdict else "busy",
                           "message": "refused by the test's witness"}).encode()
        self.send_response(409 if verdict else 503)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def test_a_refused_checkpoint_after_a_removal_checks_the_log_with_the_removed_keys(
        make_sqlite_node: Make) -> None:
    """US's log was cosigned by RU, whose link US then removed; PL refuses US's next
    checkpoint. US checks its own log before alarming: RU's cosignatures are checked with
    RU's kept keys, so the alarm does not falsely say US's own log is broken."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingWitness)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
        pl = make_sqlite_node("PL-GS", endpoints=[f"http://127.0.0.1:{server.server_port}"])
        link(us, ru)
        for node in (us, ru):
            node.configure("log", checkpoint_seconds=0.3, checkpoint_entries=1000)
        us.start()
        ru.start()
        us.send("RU-GS", ["to be cosigned"])
        wait_until(lambda: us.query("SELECT 1 FROM log_checkpoints WHERE witness = "
                                    "'RU-GS'"), 30, what="RU to cosign US's log")
        assert _remove(us, "RU-GS")["peer_told"] is True
        link(us, pl)  # PL's node is the refusing endpoint
        wait_until(lambda: us.query("SELECT message FROM alarms WHERE cause = "
                                    "'checkpoint-refused:PL-GS'"), 60,
                   what="PL's refusal alarmed")
        message = us.query("SELECT message FROM alarms WHERE cause = "
                           "'checkpoint-refused:PL-GS'")[0].message
        assert "our own log verifies against every cosigned checkpoint" in message, message
    finally:
        server.shutdown()
        server.server_close()
