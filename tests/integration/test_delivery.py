"""Exactly-once, in-order delivery between real node processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from hotline.protocol.receipt import message_digest, verify_receipt
from tests.nodes import NodeProcess, link, wait_until

MakeNode = Callable[[str], NodeProcess]


def _pair(make_node: MakeNode) -> tuple[NodeProcess, NodeProcess]:
    a, b = make_node("AA-ONE"), make_node("BB-TWO")
    link(a, b)
    return a.start(), b.start()


def _texts(prefix: str, n: int) -> list[str]:
    return [f"{prefix} {i:05d}" for i in range(n)]


def _assert_exactly_once_in_order(inbox: list[dict[str, Any]], sender: str,
                                  expected: list[str]) -> None:
    got = [m for m in inbox if m["from"] == sender]
    assert [m["text"] for m in got] == expected
    assert [m["seq"] for m in got] == list(range(1, len(expected) + 1))
    assert len({m["id"] for m in got}) == len(expected)


def _received_count(node: NodeProcess, sender: str) -> int:
    return sum(1 for m in node.inbox() if m["from"] == sender)


def _assert_receipts_verified(sender: NodeProcess, receiver: NodeProcess, count: int) -> None:
    """Every outbox row of ``sender`` holds a receipt that verifies with the receiver's key."""
    rows = sender.query("SELECT envelope_id, seq, type, payload, receipt, delivered_at, lane "
                        "FROM outbox WHERE peer = :peer ORDER BY seq", peer=receiver.party)
    assert len(rows) == count
    keys = receiver.public_keys()
    for row in rows:
        assert row.delivered_at is not None
        assert row.receipt is not None
        verify_receipt(bytes(row.receipt), signer=keys, signer_party=receiver.party,
                       envelope_id=row.envelope_id, sender=sender.party, seq=row.seq,
                       digest=message_digest(envelope_id=row.envelope_id, sender=sender.party,
                                             recipient=receiver.party, seq=row.seq,
                                             type_=row.type, payload=json.loads(row.payload),
                                             lane=row.lane))


def test_thousand_messages_each_way_exactly_once_in_order(make_node: MakeNode) -> None:
    a, b = _pair(make_node)
    a_texts, b_texts = _texts("from A", 1000), _texts("from B", 1000)
    for start in range(0, 1000, 100):
        a.send(b.party, a_texts[start:start + 100])
        b.send(a.party, b_texts[start:start + 100])
    wait_until(lambda: _received_count(b, a.party) >= 1000, 60, what="1000 messages at B")
    wait_until(lambda: _received_count(a, b.party) >= 1000, 60, what="1000 messages at A")
    _assert_exactly_once_in_order(b.inbox(), a.party, a_texts)
    _assert_exactly_once_in_order(a.inbox(), b.party, b_texts)
    wait_until(lambda: a.peer_status(b.party)["delivered"] == 1000, 30, what="A's receipts")
    wait_until(lambda: b.peer_status(a.party)["delivered"] == 1000, 30, what="B's receipts")
    _assert_receipts_verified(a, b, 1000)
    _assert_receipts_verified(b, a, 1000)
    status = a.peer_status(b.party)
    assert status["queued"] == 0
    assert status["last_error"] is None


def test_receiver_killed_mid_stream_loses_and_duplicates_nothing(make_node: MakeNode) -> None:
    a, b = _pair(make_node)
    texts = _texts("stream", 1500)
    for start in range(0, 300, 50):
        a.send(b.party, texts[start:start + 50])
    wait_until(lambda: _received_count(b, a.party) >= 100, 30, what="B to be receiving")
    for start in range(300, 1000, 50):   # keep the stream going while B dies
        a.send(b.party, texts[start:start + 50])
    b.kill9()
    for start in range(1000, 1500, 50):  # and while B is down
        a.send(b.party, texts[start:start + 50])
    b.start()
    wait_until(lambda: _received_count(b, a.party) >= 1500, 60, what="all 1500 at B")
    _assert_exactly_once_in_order(b.inbox(), a.party, texts)
    wait_until(lambda: a.peer_status(b.party)["delivered"] == 1500, 30, what="receipts")
    _assert_receipts_verified(a, b, 1500)


def test_sender_killed_right_after_accepting_loses_nothing(make_node: MakeNode) -> None:
    a, b = _pair(make_node)
    texts = _texts("accepted", 500)
    a.send(b.party, texts)   # 201 means durable in A's outbox
    a.kill9()
    # Whatever went out before the kill must not be duplicated; the rest must follow.
    a.start()
    wait_until(lambda: _received_count(b, a.party) >= 500, 60, what="all 500 at B")
    _assert_exactly_once_in_order(b.inbox(), a.party, texts)
    wait_until(lambda: a.peer_status(b.party)["delivered"] == 500, 30, what="receipts")


def test_receiver_down_messages_queue_with_last_error_then_arrive(make_node: MakeNode) -> None:
    a, b = _pair(make_node)
    b.stop()
    texts = _texts("queued", 20)
    a.send(b.party, texts)
    status = wait_until(lambda: (s := a.peer_status(b.party))["last_error"] and s, 30,
                        what="A to report B unreachable")
    assert status["queued"] == 20
    assert status["delivered"] == 0
    assert status["state"] == "unreachable"
    assert "unreachable" in status["last_error"]
    assert status["unreachable_since"] is not None
    assert status["unreachable_for_seconds"] >= 0
    b.start()
    wait_until(lambda: _received_count(b, a.party) >= 20, 60, what="queued messages at B")
    _assert_exactly_once_in_order(b.inbox(), a.party, texts)
    status = wait_until(lambda: (s := a.peer_status(b.party))["queued"] == 0 and s, 30,
                        what="A's queue to drain")
    assert status["delivered"] == 20
    assert status["last_error"] is None
    assert status["unreachable_since"] is None


def test_message_to_party_without_link_is_refused_at_once(make_node: MakeNode) -> None:
    a = make_node("AA-ONE").start()
    response = a.api("POST", "/api/v1/messages", json={"to": "ZZ-NONE", "text": "hello"})
    assert response.status_code == 404
    assert response.json()["error"] == "no-link"
    assert "ZZ-NONE" in response.json()["message"]
    assert a.query("SELECT COUNT(*) AS n FROM outbox")[0].n == 0


def test_nothing_flows_until_both_sides_accept(make_node: MakeNode) -> None:

    from hotline.admin import accept_link, make_link_offer, read_offer
    from tests.nodes import PASSPHRASE

    a, b = make_node("AA-ONE"), make_node("BB-TWO")
    accept_link(a.dir, read_offer(make_link_offer(b.dir, PASSPHRASE)[0]))
    a.start(), b.start()
    a.send(b.party, ["too early"])
    status = wait_until(lambda: (s := a.peer_status(b.party))["last_error"] and s, 30,
                        what="B to refuse an unlinked sender")
    assert "unknown-sender" in status["last_error"]
    assert b.inbox() == []
    accept_link(b.dir, read_offer(make_link_offer(a.dir, PASSPHRASE)[0]))
    wait_until(lambda: _received_count(b, a.party) == 1, 60, what="delivery after accept")


def test_messages_that_waited_longer_than_the_peers_skew_window_still_arrive(
        make_node: MakeNode) -> None:
    """B accepts only envelopes signed within 2 s; A re-seals envelopes older than 0.5 s.
    Messages queued while B is down for longer than 2 s must still arrive, exactly once."""
    from hotline.nodedir.config import load_config, write_config

    a, b = make_node("AA-ONE"), make_node("BB-TWO")
    link(a, b)
    config_a, config_b = load_config(a.dir), load_config(b.dir)
    config_a.delivery.reseal_after_seconds = 0.5
    config_b.delivery.skew_seconds = 2
    config_b.delivery.reseal_after_seconds = 1  # a node's re-seal stays inside its window
    write_config(a.dir, config_a)
    write_config(b.dir, config_b)
    a.start()
    texts = _texts("waited", 10)
    a.send(b.party, texts)
    wait_until(lambda: a.peer_status(b.party)["unreachable_since"], 30, what="B unreachable")
    time.sleep(3)  # the outage itself: longer than B's 2 s window, on purpose
    b.start()
    wait_until(lambda: _received_count(b, a.party) >= 10, 60, what="re-sealed messages at B")
    _assert_exactly_once_in_order(b.inbox(), a.party, texts)
    assert a.log_lines("re-sealed")
    wait_until(lambda: a.peer_status(b.party)["delivered"] == 10, 30, what="receipts")
    _assert_receipts_verified(a, b, 10)


def test_receipts_that_could_not_be_stored_are_fetched_again(make_sqlite_node: MakeNode
                                                             ) -> None:
    """US's database is locked (past its 10 s busy timeout) by another process when RU
    comes back and takes the queued message: its receipt cannot be stored. Once the lock
    is gone the message must count as delivered, its receipt stored (sent again, RU
    answers the duplicate with its receipt); before, it stayed queued until a restart,
    without a log line."""
    import sqlite3

    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    us.configure("delivery", backoff_max_seconds=0.5)
    ru.start()
    us.start()
    us.send("RU-GS", ["first"])  # US learns RU's protocol (a write it will not need again)
    wait_until(lambda: us.peer_status("RU-GS")["delivered"] == 1, 30, what="the first")
    ru.stop()
    us.send("RU-GS", ["delivered while the store is locked"])
    path = us.config.db.removeprefix("sqlite:///")
    locker = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        ru.start()
        wait_until(lambda: _received_count(ru, "US-JS") == 2, 30, what="the message at RU")
        # every write queued before it waits out the busy timeout too, twice (in its
        # batch, then alone)
        wait_until(lambda: us.log_lines("could not be stored"), 120, interval=0.5,
                   what="US to fail storing the receipt")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    status = wait_until(lambda: (s := us.peer_status("RU-GS"))["queued"] == 0 and s, 30,
                        what="the message delivered at US")
    assert status["delivered"] == 2
    assert _received_count(ru, "US-JS") == 2  # once: the duplicate is not released again
    rows = us.query("SELECT receipt FROM outbox WHERE peer = 'RU-GS'")
    assert [row.receipt is not None for row in rows] == [True, True]
