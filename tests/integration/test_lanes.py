"""Lanes and back-pressure between real node processes (docs/protocol.md §11.1, §11.2):
a call is never stuck behind bulk messages, each lane is exactly once and in order
through kill -9 and a partition, a full bulk queue refuses sends whole (429) while calls
and conversation messages still go, and a node speaking the protocol from before lanes
still exchanges calls and messages with one that has them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.calls import get_call, place, us_and_ru, wait_for_event, wait_for_state
from tests.faultproxy import FaultProxy
from tests.nodes import NodeProcess, free_port, wait_until
from tests.state import hotline

Make = Callable[..., NodeProcess]
#: the receiver's per-peer budgets, opened so that the line's own speed is what is tested
OPEN_BUDGETS = {"envelopes_per_second": 1e6, "envelopes_burst": 1_000_000,
                "bytes_per_second": 1e9, "bytes_burst": 1024 * 1024 * 1024,
                "control_envelopes_per_second": 1e6, "control_envelopes_burst": 1_000_000}


def _open(*nodes: NodeProcess) -> None:
    for node in nodes:
        node.configure("admission", default=OPEN_BUDGETS, address_envelopes_per_second=1e6,
                       address_envelopes_burst=10_000_000, address_bytes_per_second=1e9,
                       address_bytes_burst=4096 * 1024 * 1024)


def _messages(node: NodeProcess, sender: str) -> list[dict[str, Any]]:
    """What people at ``sender`` sent with ``hotline send`` (not notices)."""
    return [m for m in node.inbox() if m["from"] == sender and m["type"] == "message"]


def _bulk_rows(node: NodeProcess, peer: str) -> list[Any]:
    return node.query("SELECT lane, seq, payload FROM outbox WHERE peer = :p AND "
                      "type = 'message' ORDER BY lane, seq", p=peer)


def _check_lane_sequences(node: NodeProcess, peer: str) -> None:
    """What ``node`` received from ``peer``: each lane's numbers 1..n, once each, all
    released; and the released order keeps each lane's order."""
    rows = node.query("SELECT lane, seq, release_no FROM inbound WHERE peer = :p "
                      "ORDER BY release_no", p=peer)
    assert all(r.release_no is not None for r in rows)
    for lane in ("control", "bulk"):
        seqs = [int(r.seq) for r in rows if r.lane == lane]
        assert seqs == list(range(1, len(seqs) + 1)), f"{lane}: {seqs[:20]}"


def test_a_call_rings_within_a_second_behind_30000_queued_bulk_messages(
        make_sqlite_node: Make) -> None:
    """The issue's measurement as a functional bound: 30,000 messages queued to RU-GS
    (three batches of 10,000 through the operator API), then a call: the caller sees it
    ringing within 1 s (monotonic clock), and the messages all arrive once, in order."""
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    _open(us, ru)
    us, ru = us_and_ru(lambda party: {"US-JS": us, "RU-GS": ru}[party])
    texts = [f"feed {i:05d}" for i in range(30_000)]
    for start in range(0, 30_000, 10_000):
        us.send("RU-GS", texts[start:start + 10_000])
    assert us.peer_status("RU-GS")["lanes"]["bulk"]["queued"] > 0  # still draining
    started = time.monotonic()
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "behind the feed")
    wait_for_event(us, call_id, "ringing", timeout=10.0)
    took = time.monotonic() - started
    assert took <= 1.0, f"the caller saw it ringing after {took:.2f} s: " \
        f"{get_call(us, call_id)}"
    wait_until(lambda: len(_messages(ru, "US-JS")) >= 30_000, 180, what="the feed at RU")
    got = _messages(ru, "US-JS")
    assert [m["text"] for m in got] == texts
    _check_lane_sequences(ru, "US-JS")
    rows = _bulk_rows(us, "RU-GS")
    assert {r.lane for r in rows} == {"bulk"}


def test_full_bulk_queue_refuses_sends_whole_but_never_calls_or_conversations(
        make_node: Make) -> None:
    """Past the bound: 429 with Retry-After and an error id, nothing stored; a call and
    a conversation message are still accepted and delivered; once the queue drains the
    same send is accepted."""
    us, ru = make_node("US-JS"), make_node("RU-GS")
    us.configure("delivery", bulk_queue_max_messages=40, bulk_queue_max_bytes=1_000_000)
    us, ru = us_and_ru(lambda party: {"US-JS": us, "RU-GS": ru}[party])
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "open a conversation")
    wait_for_state(ru, call_id, "ringing")
    assert ru.api("POST", f"/api/v1/calls/{call_id}/answer",
                  json={"as": "cgs", "operator": "cgs-1"}).status_code == 200
    wait_for_state(us, call_id, "answered")
    ru.stop()  # nothing drains now
    us.send("RU-GS", [f"fill {i}" for i in range(30)])
    before = us.query("SELECT count(*) AS n FROM outbox")[0].n
    refused = us.api("POST", "/api/v1/messages",
                     json={"to": "RU-GS", "texts": [f"over {i}" for i in range(11)]})
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    body = refused.json()
    assert body["error"] == "bulk-queue-full"
    assert (body["queued"], body["max_messages"]) == (30, 40)
    assert "30 of 40 messages" in body["message"]
    assert us.query("SELECT count(*) AS n FROM outbox")[0].n == before  # nothing stored
    assert us.log_lines("bulk-queue-full")  # the refusal's security-log line
    us.send("RU-GS", [f"fits {i}" for i in range(10)])  # exactly up to the bound
    # the CLI says how full the queue is, and stores nothing either
    full = us.query("SELECT count(*) AS n FROM outbox")[0].n
    cli = hotline(us, "send", "RU-GS", "one too many")
    assert cli.returncode != 0
    assert "bulk-queue-full" in cli.stdout + cli.stderr
    assert "40 of 40 messages (100%)" in " ".join((cli.stdout + cli.stderr).split())
    assert us.query("SELECT count(*) AS n FROM outbox")[0].n == full
    # control traffic is never refused for bulk's sake
    second = place(us, "cgs@RU-GS", "nmcc-do", "while the feed is full")
    said = us.api("POST", f"/api/v1/conversations/{call_id}/messages",
                  json={"text": "still heard", "as": "nmcc-do", "operator": "nmcc-1"})
    assert said.status_code == 201, said.text
    status = us.peer_status("RU-GS")
    assert status["lanes"]["bulk"]["queued"] == 40
    assert status["lanes"]["bulk"]["oldest_age_s"] >= 0
    assert status["lanes"]["control"]["queued"] >= 2
    ru.start()
    wait_for_state(ru, second, "ringing", "delivered", "answered", "declined", "missed",
                   "ended", "unanswered")
    wait_until(lambda: us.peer_status("RU-GS")["lanes"]["bulk"]["queued"] == 0, 60,
               what="the bulk queue to drain")
    again = us.api("POST", "/api/v1/messages",
                   json={"to": "RU-GS", "texts": [f"over {i}" for i in range(11)]})
    assert again.status_code == 201, again.text
    wait_until(lambda: len(_messages(ru, "US-JS")) >= 51, 60, what="every message at RU")
    texts = [m["text"] for m in _messages(ru, "US-JS")]
    assert texts == [f"fill {i}" for i in range(30)] + [f"fits {i}" for i in range(10)] \
        + [f"over {i}" for i in range(11)]
    wait_until(lambda: ru.query("SELECT id FROM conversation_messages WHERE text = "
                                "'still heard'"), 30, what="the conversation message")
    _check_lane_sequences(ru, "US-JS")


def test_each_lane_exactly_once_in_order_through_kill9_and_a_partition(
        make_node: Make) -> None:
    """Both lanes busy (bulk messages; calls and conversation messages on the control
    lane) while the line is partitioned (fault proxy), the receiver is killed -9, and
    the sender is killed -9."""
    ru_port = free_port()
    proxy = FaultProxy(ru_port)
    try:
        us = make_node("US-JS")
        ru = make_node("RU-GS", endpoints=[proxy.url], port=ru_port)
        _open(us, ru)
        us, ru = us_and_ru(lambda party: {"US-JS": us, "RU-GS": ru}[party])
        first = place(us, "cgs@RU-GS", "nmcc-do", "the conversation")
        wait_for_state(ru, first, "ringing")
        assert ru.api("POST", f"/api/v1/calls/{first}/answer",
                      json={"as": "cgs", "operator": "cgs-1"}).status_code == 200
        wait_for_state(us, first, "answered")
        texts = [f"bulk {i:04d}" for i in range(1200)]
        said: list[str] = []
        calls: list[str] = []
        for round_, start in enumerate(range(0, 1200, 100)):
            us.send("RU-GS", texts[start:start + 100])
            calls.append(place(us, "cgs@RU-GS", "nmcc-do", f"round {round_}"))
            text = f"said {round_}"
            r = us.api("POST", f"/api/v1/conversations/{first}/messages",
                       json={"text": text, "as": "nmcc-do", "operator": "nmcc-1"})
            assert r.status_code == 201, r.text
            said.append(text)
            if round_ == 2:
                proxy.partition()
            elif round_ == 4:
                proxy.heal()
                ru.kill9()
            elif round_ == 6:
                ru.start()
            elif round_ == 8:
                us.kill9()
                us.start()
        wait_until(lambda: len(_messages(ru, "US-JS")) >= 1200, 180, what="bulk at RU")
        for call_id in calls:
            wait_until(lambda c=call_id: ru.api("GET", f"/api/v1/calls/{c}").status_code
                       == 200, 60, what=f"call {call_id} at RU")
        assert [m["text"] for m in _messages(ru, "US-JS")] == texts
        wait_until(lambda: len(ru.query("SELECT id FROM conversation_messages WHERE "
                                        "conversation_id = :c", c=first)) >= len(said), 60,
                   what="the conversation at RU")
        got = [r.text for r in ru.query("SELECT text FROM conversation_messages WHERE "
                                        "conversation_id = :c ORDER BY sent_at, id", c=first)]
        assert sorted(got) == sorted(said)  # each once (conversation ids are unique)
        _check_lane_sequences(ru, "US-JS")
        wait_until(lambda: us.peer_status("RU-GS")["queued"] == 0, 60, what="receipts")
        rows = us.query("SELECT lane, count(*) AS n FROM outbox WHERE peer = 'RU-GS' "
                        "AND delivered_at IS NOT NULL AND type = 'message' GROUP BY lane")
        assert {r.lane: r.n for r in rows} == {"bulk": 1200}
    finally:
        proxy.close()


def _downgrade_to_0015(node: NodeProcess) -> None:
    """Take a stopped node's database back to migration 0015 (before lanes), the way
    alembic does it: the database a node of the previous version left."""
    from alembic import command

    from hotline.store.engine import create_engine
    from hotline.store.migrate import _config

    engine = create_engine(node.config.db)
    try:
        with engine.begin() as conn:
            command.downgrade(_config(conn), "0015")
    finally:
        engine.dispose()
    assert node.query("SELECT version_num FROM alembic_version")[0].version_num == "0015"


def test_a_0015_database_upgrades_in_place_with_queued_traffic_both_ways(
        make_node: Make) -> None:
    """Both nodes at 0015 with delivered traffic and traffic still queued in both
    directions: after the upgrade (0016, at start) every message arrives exactly once in
    order on what became the control lane, and new sends go on the bulk lane."""
    us, ru = make_node("US-JS"), make_node("RU-GS")
    for node in (us, ru):
        node.configure("delivery", protocol=1)  # what a node before lanes writes
    us, ru = us_and_ru(lambda party: {"US-JS": us, "RU-GS": ru}[party])
    us.send("RU-GS", [f"us {i}" for i in range(50)])
    ru.send("US-JS", [f"ru {i}" for i in range(50)])
    wait_until(lambda: len(_messages(ru, "US-JS")) >= 50, 60, what="US's first 50 at RU")
    wait_until(lambda: len(_messages(us, "RU-GS")) >= 50, 60, what="RU's first 50 at US")
    ru.stop()
    us.send("RU-GS", [f"us {i}" for i in range(50, 80)])  # queued at US
    us.stop()
    ru.start()
    ru.send("US-JS", [f"ru {i}" for i in range(50, 80)])  # queued at RU
    ru.stop()
    assert us.query("SELECT count(*) AS n FROM outbox WHERE delivered_at IS NULL")[0].n >= 30
    assert ru.query("SELECT count(*) AS n FROM outbox WHERE delivered_at IS NULL")[0].n >= 30
    for node in (us, ru):
        _downgrade_to_0015(node)
        node.configure("delivery", protocol=2)
    us.start()
    ru.start()
    assert us.query("SELECT version_num FROM alembic_version")[0].version_num == "0016"
    wait_until(lambda: len(_messages(ru, "US-JS")) >= 80, 60, what="US's 80 at RU")
    wait_until(lambda: len(_messages(us, "RU-GS")) >= 80, 60, what="RU's 80 at US")
    us.send("RU-GS", ["after the upgrade"])
    ru.send("US-JS", ["after the upgrade"])
    wait_until(lambda: len(_messages(ru, "US-JS")) >= 81, 60, what="the new one at RU")
    wait_until(lambda: len(_messages(us, "RU-GS")) >= 81, 60, what="the new one at US")
    for node, peer, prefix in ((ru, "US-JS", "us"), (us, "RU-GS", "ru")):
        got = [m["text"] for m in _messages(node, peer)]
        assert got == [f"{prefix} {i}" for i in range(80)] + ["after the upgrade"], \
            [m for m in _messages(node, peer) if m["text"] is None]
        _check_lane_sequences(node, peer)
        lanes = node.query("SELECT lane, count(*) AS n FROM inbound WHERE peer = :p AND "
                           "type = 'message' GROUP BY lane", p=peer)
        assert {r.lane: r.n for r in lanes} == {"control": 80, "bulk": 1}
    for node in (us, ru):
        assert node.query("SELECT count(*) AS n FROM links WHERE peer_protocol = 2")[0].n == 1


def test_a_mixed_version_pair_exchanges_calls_and_messages(make_node: Make) -> None:
    """RU-GS speaks protocol 1 (the node's own code, as a node from before lanes): US-JS
    learns it, falls back to one lane, and calls and messages go both ways; then RU-GS
    upgrades in place and US-JS moves its messages to the bulk lane."""
    us, ru = make_node("US-JS"), make_node("RU-GS")
    ru.configure("delivery", protocol=1)
    us, ru = us_and_ru(lambda party: {"US-JS": us, "RU-GS": ru}[party])
    assert ru.api("GET", "/federation/v1/protocol").status_code == 404  # as before lanes
    assert us.api("GET", "/federation/v1/protocol").json() == {"protocol": 2}
    us.send("RU-GS", [f"us {i}" for i in range(20)])
    ru.send("US-JS", [f"ru {i}" for i in range(20)])
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "across versions")
    wait_for_event(us, call_id, "ringing")
    assert ru.api("POST", f"/api/v1/calls/{call_id}/answer",
                  json={"as": "cgs", "operator": "cgs-1"}).status_code == 200
    wait_for_state(us, call_id, "answered")
    said = ru.api("POST", f"/api/v1/conversations/{call_id}/messages",
                  json={"text": "from the old node", "as": "cgs", "operator": "cgs-1"})
    assert said.status_code == 201, said.text
    wait_until(lambda: us.query("SELECT id FROM conversation_messages WHERE text = "
                                "'from the old node'"), 30, what="the message at US")
    wait_until(lambda: len(_messages(ru, "US-JS")) >= 20, 60, what="US's messages at RU")
    wait_until(lambda: len(_messages(us, "RU-GS")) >= 20, 60, what="RU's messages at US")
    assert [m["text"] for m in _messages(ru, "US-JS")] == [f"us {i}" for i in range(20)]
    assert [m["text"] for m in _messages(us, "RU-GS")] == [f"ru {i}" for i in range(20)]
    assert {r.lane for r in _bulk_rows(us, "RU-GS")} == {"control"}  # the fallback
    assert us.peer_status("RU-GS")["protocol"] == 1
    assert not ru.query("SELECT id FROM inbound WHERE lane = 'bulk'")
    # RU-GS upgrades in place
    ru.stop()
    ru.configure("delivery", protocol=2)
    ru.start()
    wait_until(lambda: us.send("RU-GS", ["probe"]) and
               us.peer_status("RU-GS")["protocol"] == 2, 30, what="US to learn protocol 2")
    us.send("RU-GS", [f"later {i}" for i in range(20)])
    wait_until(lambda: len(_messages(ru, "US-JS")) >= 20 + 1 + 20, 60, what="the rest")
    texts = [m["text"] for m in _messages(ru, "US-JS")]
    assert texts[:20] == [f"us {i}" for i in range(20)]
    assert texts[-20:] == [f"later {i}" for i in range(20)]
    assert texts.count("probe") == len(texts) - 40
    assert {r.lane for r in _bulk_rows(us, "RU-GS") if "later" in r.payload} == {"bulk"}
    _check_lane_sequences(ru, "US-JS")


def test_a_call_rings_while_bulk_has_used_up_the_address_budget(
        make_sqlite_node: Make) -> None:
    """The receiver's per-address budget is kept per lane: a feed that empties RU's
    address budget for US's bulk requests (1 envelope/s after a burst of 4096: the
    rest of the feed would wait for an hour) gets 429, while a call placed then still
    rings, because control requests are charged to their own (also bounded) budget."""
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    _open(us, ru)
    ru.configure("admission", address_envelopes_per_second=1.0, address_envelopes_burst=4096)
    us, ru = us_and_ru(lambda party: {"US-JS": us, "RU-GS": ru}[party])
    us.send("RU-GS", [f"feed {i:05d}" for i in range(6000)])
    wait_until(lambda: ru.log_lines("address over its bulk budget"), 60,
               what="RU refusing US's bulk requests on the address budget")
    assert us.peer_status("RU-GS")["lanes"]["bulk"]["queued"] > 0
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "while the feed is refused")
    try:
        wait_for_event(us, call_id, "ringing", timeout=20.0)
    except AssertionError:
        print("RU", "\n".join(ru.log_lines("rate")[-10:]))
        print("US", "\n".join(us.log_lines("RU-GS")[-20:]))
        raise
    assert len(_messages(ru, "US-JS")) < 6000  # the feed is still held back
