"""Link removal between real nodes: queued messages and a ringing call ended in a known
state on both sides, the peer told (or precisely not told), the removed party refused,
and the link accepted again with fresh sequence numbers (docs/protocol.md, "Removing a
link")."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hotline.admin import accept_link, make_link_offer, read_offer
from hotline.errors import LinkError
from hotline.protocol.envelope import Header, new_envelope_id, seal
from hotline.protocol.generation import first_seq, generation_of
from tests.calls import apply_scenario, place, wait_for_desks, wait_for_state
from tests.faultproxy import FaultProxy
from tests.nodes import PASSPHRASE, NodeProcess, free_port, link, wait_until
from tests.peers import ENVELOPES

REMOVED_REASON = "link removed"


def _log(node: NodeProcess, kind: str) -> list[dict[str, Any]]:
    rows = node.query("SELECT entry FROM log_entries WHERE kind = :k ORDER BY idx", k=kind)
    return [json.loads(r.entry)["body"] for r in rows]


def _remove(node: NodeProcess, party: str, wait_s: float = 10.0) -> dict[str, Any]:
    r = node.api("POST", f"/api/v1/links/{party}/remove", json={"wait_seconds": wait_s})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _post(to: NodeProcess, sender: NodeProcess, seq: int) -> dict[str, Any]:
    """``sender`` posts ``to`` one message envelope numbered ``seq``; its result."""
    head = Header(id=new_envelope_id(), sender=sender.party, recipient=to.party,
                  kid=sender.public_keys().key_id, seq=seq,
                  ts=time.time_ns() // 1_000_000, type="message")
    raw = seal(head, {"text": f"seq {seq}"}, sender.private_keys(), to.public_keys())
    r = httpx.post(to.url + ENVELOPES, content=raw, timeout=30,
                   headers={"content-type": "application/x-ndjson"})
    result: dict[str, Any] = r.json()["results"][0]
    return result


def _cancelled_for_link(node: NodeProcess, call_id: str, reason: str) -> dict[str, Any]:
    call = wait_for_state(node, call_id, "cancelled")
    mine = [e for e in call["history"] if e["signed_by"] == node.party
            and e["state"] == "cancelled"]
    assert mine, call
    assert mine[-1]["reason"] == reason, call
    assert mine[-1]["verified"], call
    return call


def _flows_both_ways(us: NodeProcess, ru: NodeProcess, tag: str) -> None:
    sent = us.send("RU-GS", [f"{tag} to RU"])
    back = ru.send("US-JS", [f"{tag} to US"])
    for node, peer, accepted in ((us, "RU-GS", sent), (ru, "US-JS", back)):
        assert generation_of(accepted[0]["seq"]) == 1
        # the new generation starts afresh at its first number (a desk report may be first)
        first = node.query("SELECT MIN(seq) AS s FROM outbox WHERE peer = :p AND seq > :g",
                           p=peer, g=first_seq(1) - 1)[0].s
        assert first == first_seq(1)
    wait_until(lambda: any(m["text"] == f"{tag} to RU" for m in ru.inbox()), 30,
               what="the message to RU after re-linking")
    wait_until(lambda: any(m["text"] == f"{tag} to US" for m in us.inbox()), 30,
               what="the message to US after re-linking")
    wait_until(lambda: us.peer_status("RU-GS")["delivered"] >= 1
               and us.peer_status("RU-GS")["queued"] == 0, 30, what="US's receipt")


def _relink(us: NodeProcess, ru: NodeProcess) -> None:
    link(us, ru)  # offline, as the operators would; the running nodes notice it
    for node, peer in ((us, "RU-GS"), (ru, "US-JS")):
        wait_until(lambda n=node, p=peer: n.peer_status(p)["state"] != "removed", 30,
                   what=f"{node.party} to take the new link")


def test_removal_ends_queued_messages_and_a_ringing_call_on_both_sides(
        make_node: Callable[..., NodeProcess]) -> None:
    ru_port = free_port()
    proxy = FaultProxy(ru_port)  # US reaches RU only through it
    try:
        us = make_node("US-JS")
        ru = make_node("RU-GS", endpoints=[proxy.url], port=ru_port)
        # after a failed push, US waits long before the next: the queue stays queued
        us.configure("delivery", backoff_initial_seconds=60, backoff_max_seconds=600)
        link(us, ru)
        apply_scenario(us)
        apply_scenario(ru)
        us.start()
        ru.start()
        wait_for_desks(us, "RU-GS")
        talk = place(us, "cgs@RU-GS", "nmcc-do", "a conversation")
        wait_for_state(ru, talk, "ringing")
        r = ru.api("POST", f"/api/v1/calls/{talk}/answer",
                   json={"as": "cgs", "operator": "cgs-1"})
        assert r.status_code == 200, r.text
        wait_for_state(us, talk, "answered")
        call_id = place(us, "cgs@RU-GS", "nmcc-do", "need to talk")
        wait_for_state(us, call_id, "ringing")
        wait_for_state(ru, call_id, "ringing")

        proxy.partition()
        queued = us.send("RU-GS", ["one", "two", "three"])
        said = us.api("POST", f"/api/v1/conversations/{talk}/messages",
                      json={"text": "still there?", "as": "nmcc-do", "operator": "nmcc-1"})
        assert said.status_code == 201, said.text
        wait_until(lambda: us.peer_status("RU-GS")["last_error"], 30,
                   what="US's failed push to RU")
        proxy.heal()

        preview = us.api("GET", "/api/v1/links/RU-GS/removal").json()
        assert [q["id"] for q in preview["queued"]][:3] == [m["id"] for m in queued]
        assert [q["type"] for q in preview["queued"]][3:] == ["conv.message"]
        assert preview["conversations"] == [talk]
        assert [(c["id"], c["direction"]) for c in preview["calls"]] == [(call_id, "out")]
        assert preview["policy_left"] is True

        removed = _remove(us, "RU-GS")
        assert removed["peer_told"] is True, removed
        assert removed["ended_calls"] == [call_id]
        assert removed["generation"] == 1

        # US: the call ended with our signed statement, the queue marked undeliverable
        _cancelled_for_link(us, call_id, REMOVED_REASON)
        peer = us.peer_status("RU-GS")
        assert (peer["state"], peer["queued"], peer["undeliverable"]) == ("removed", 0, 4)
        failures = us.query("SELECT failure FROM outbox WHERE envelope_id IN "
                            "(:a, :b, :c)", a=queued[0]["id"], b=queued[1]["id"],
                            c=queued[2]["id"])
        assert [f.failure for f in failures] == ["undeliverable: link removed"] * 3
        assert {e["id"] for e in _log(us, "undeliverable")} == \
            {q["id"] for q in preview["queued"]}
        # the sender's view of the conversation message says it will never arrive
        conv = us.api("GET", f"/api/v1/conversations/{talk}").json()
        mine = next(m for m in conv["messages"] if m["id"] == said.json()["id"])
        assert [(r["party"], r["receipt"], r["reason"]) for r in mine["receipts"]] == \
            [("RU-GS", "undeliverable", "undeliverable: link removed")]
        entry = _log(us, "link-removed")[-1]
        assert (entry["party"], entry["by"], entry["calls"]) == ("RU-GS", "US-JS", [call_id])
        # the peer's signed receipt of the notice is in US's log: it was told
        assert any(r["id"] == removed["notice"] for r in _log(us, "receipt"))
        assert not [t for t in us.status()["tasks"] if t["name"] == "sender-RU-GS"]
        assert not [d for d in us.api("GET", "/api/v1/desks").json()["desks"]
                    if d["party"] == "RU-GS"]

        # RU: told, the same known states, logged and alarmed
        _cancelled_for_link(ru, call_id, "link removed by US-JS")
        wait_until(lambda: ru.peer_status("US-JS")["state"] == "removed", 30,
                   what="RU to show the link removed")
        theirs = _log(ru, "link-removed")[-1]
        assert (theirs["party"], theirs["by"], theirs["notice"]) == \
            ("US-JS", "US-JS", removed["notice"])
        alarms = [a for a in ru.status()["alarms"] if a["kind"] == "link-removed"]
        assert alarms
        assert alarms[0]["subject"] == "US-JS"
        assert not any(m["text"] in ("one", "two", "three") for m in ru.inbox())

        # removed: refused like an unknown party, one security-log line per refusal
        assert us.api("POST", "/api/v1/messages",
                      json={"to": "RU-GS", "text": "x"}).status_code == 404
        before = len(us.log_lines("unknown-sender"))
        assert _post(us, ru, first_seq(0) + 99)["error"] == "unknown-sender"
        wait_until(lambda: len(us.log_lines("unknown-sender")) == before + 1, 10,
                   what="one security-log line")

        # the removed link's history still verifies: restart (the log is checked before
        # serving) and `log verify`
        us.stop()
        us.start()
        verified = subprocess.run(
            [sys.executable, "-m", "hotline", "log", "verify", "--dir", str(us.dir),
             "--json"], capture_output=True, text=True, timeout=120, check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        # accepted again: fresh sequence numbers in generation 1, both ways
        _relink(us, ru)
        _flows_both_ways(us, ru, "again")
        assert _log(us, "link")[-1]["generation"] == 1
        # an envelope of the ended generation is refused by name, never confused
        assert _post(us, ru, 7)["error"] == "link-generation"
        # once RU cosigns US's log again, the ended call exports as evidence that verifies
        bundle = us.dir / "call.json"
        wait_until(lambda: subprocess.run(
            [sys.executable, "-m", "hotline", "export", "evidence", "--dir", str(us.dir),
             "--call", call_id, "--out", str(bundle)], capture_output=True,
            timeout=120, check=False).returncode == 0, 60, interval=0.5,
            what="the call's evidence bundle")
        checked = subprocess.run(
            [sys.executable, "-m", "hotline", "verify-bundle", str(bundle), "--json"],
            capture_output=True, text=True, timeout=120, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr

    finally:
        proxy.close()


def test_removal_while_the_peer_is_down_is_reported_not_told(
        make_node: Callable[..., NodeProcess]) -> None:
    us, ru = make_node("US-JS"), make_node("RU-GS")
    link(us, ru)
    us.start()
    ru.start()
    us.send("RU-GS", ["before"])
    wait_until(lambda: any(m["text"] == "before" for m in ru.inbox()), 30, what="delivery")
    ru.stop()
    us.send("RU-GS", ["while down"])

    removed = _remove(us, "RU-GS", wait_s=2)
    assert removed["peer_told"] is False
    assert removed["not_told"], removed
    assert len(removed["queued"]) == 1
    notice = us.query("SELECT failure, delivered_at FROM outbox WHERE envelope_id = :e",
                      e=removed["notice"])[0]
    assert notice.delivered_at is None
    assert notice.failure.startswith("undeliverable: the link-removed notice was not taken")
    assert removed["notice"] in {e["id"] for e in _log(us, "undeliverable")}

    # RU returns knowing nothing: what it sends is refused by US, and RU's line shows it
    ru.start()
    assert ru.peer_status("US-JS")["state"] != "removed"
    ru.send("US-JS", ["are you there"])
    wait_until(lambda: "unknown-sender" in (ru.peer_status("US-JS")["last_error"] or ""),
               30, what="RU to see US refuse it")
    # RU's operator removes its side too: both are in generation 1, and re-linking works
    theirs = _remove(ru, "US-JS", wait_s=2)
    assert theirs["peer_told"] is False
    assert "unknown-sender" in theirs["not_told"]
    assert theirs["generation"] == 1
    # an offer with other keys for the removed party is refused; nothing changes
    stranger = NodeProcess(us.dir.parent / "impostor", "RU-GS", None)
    with pytest.raises(LinkError, match="no signed key history leads to the offered one"):
        accept_link(us.dir, read_offer(make_link_offer(stranger.dir, PASSPHRASE)[0]))
    assert us.peer_status("RU-GS")["state"] == "removed"
    # both restart with the removed link in their history, then link again
    us.stop()
    ru.stop()
    us.start()
    ru.start()
    _relink(us, ru)
    _flows_both_ways(us, ru, "back")


def test_removing_an_unknown_party_changes_nothing(
        make_sqlite_node: Callable[..., NodeProcess]) -> None:
    us = make_sqlite_node("US-JS").start()
    size = us.query("SELECT COUNT(*) AS n FROM log_entries")[0].n
    for path in ("/api/v1/links/XX-YY/removal", "/api/v1/links/XX-YY/remove"):
        method = "GET" if path.endswith("removal") else "POST"
        r = us.api(method, path, json={} if method == "POST" else None)
        assert r.status_code == 404, r.text
        assert r.json()["error"] == "no-link"
    assert us.query("SELECT COUNT(*) AS n FROM log_entries")[0].n == size
