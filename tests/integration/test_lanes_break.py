"""Hostile and broken cases of the two lanes on real node processes (docs/protocol.md
§11.1, §11.2): repairs that must touch one lane's row only, a lost bulk-lane outbox row
put back from the log, the bulk bound counted in bytes."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.calls import place, us_and_ru, wait_for_state
from tests.nodes import NodeProcess, wait_until
from tests.state import edit, findings, hotline

Make = Callable[..., NodeProcess]


def _bulk(node: NodeProcess, peer: str) -> list[tuple[int, str, str]]:
    """What ``node`` released of ``peer``'s bulk lane: (seq, type, payload)."""
    return [(int(r.seq), r.type, r.payload) for r in node.query(
        "SELECT seq, type, payload FROM inbound WHERE peer = :p AND lane = 'bulk' "
        "AND release_no IS NOT NULL ORDER BY release_no", p=peer)]


def _lanes(node: NodeProcess, sent: list[dict[str, object]]) -> list[str]:
    return [node.query("SELECT lane FROM outbox WHERE envelope_id = :i", i=m["id"])[0].lane
            for m in sent]


def test_repair_of_a_bulk_row_touches_no_control_row_and_a_lost_bulk_row_is_put_back(
        make_sqlite_node: Make) -> None:
    """Both lanes number from 1: control seq 1 (a call) and bulk seq 1 (a message) are two
    rows. A repair of the bulk row's edited type must leave the control row alone; a
    bulk row deleted before it was acknowledged is put back as a ``seq.lost`` stand-in on
    the bulk lane, and the messages behind it arrive, once, in order."""
    us, ru = us_and_ru(lambda party: make_sqlite_node(party))
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "two lanes, one seq")
    wait_for_state(us, call_id, "ringing")
    sent = us.send("RU-GS", ["first"])
    assert _lanes(us, sent) == ["bulk"]
    wait_until(lambda: len(_bulk(ru, "US-JS")) == 1, what="the first message at RU")
    ru.stop()
    queued = us.send("RU-GS", ["second", "third", "fourth"])
    assert _lanes(us, queued) == ["bulk"] * 3
    us.stop()
    seq = int(sent[0]["seq"])
    control = us.query("SELECT type FROM outbox WHERE peer = 'RU-GS' AND lane = 'control' "
                       "AND seq = :s", s=seq)
    assert len(control) == 1
    assert control[0].type != "message"
    assert edit(us, "UPDATE outbox SET type = 'forged' WHERE peer = 'RU-GS' "
                    "AND lane = 'bulk' AND seq = :s", s=seq) == 1
    lost = int(queued[0]["seq"])
    assert edit(us, "DELETE FROM outbox WHERE peer = 'RU-GS' AND lane = 'bulk' "
                    "AND seq = :s", s=lost) == 1
    rows = sorted(str(f["row"]) for f in findings(us))
    assert rows == sorted([f"peer=RU-GS seq={lost} lane=bulk", f"peer=RU-GS seq={seq} lane=bulk"])

    done = hotline(us, "repair", "--from-log", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert us.query("SELECT type FROM outbox WHERE peer = 'RU-GS' AND lane = 'control' "
                    "AND seq = :s", s=seq)[0].type == control[0].type
    assert findings(us) == []

    ru.start()
    us.start()
    got = wait_until(lambda: (m := _bulk(ru, "US-JS")) and len(m) == 4 and m, 30,
                     what="the bulk lane moving again")
    assert [(n, t) for n, t, _ in got] == [
        (seq, "message"), (lost, "seq.lost"), (lost + 1, "message"), (lost + 2, "message")]
    assert [json.loads(p)["text"] for _, t, p in got if t == "message"] == [
        "first", "third", "fourth"]
    wait_until(lambda: us.peer_status("RU-GS")["lanes"]["bulk"]["queued"] == 0,
               what="US's bulk queue empty")
    # the operator API names the lane: a seq alone names two envelopes of the link
    assert [m["lane"] for m in sent + queued] == ["bulk"] * 4
    shown = [(m["lane"], m["seq"]) for m in ru.inbox() if m["from"] == "US-JS"]
    assert ("control", seq) in shown
    assert ("bulk", seq) in shown
    assert len(shown) == len(set(shown))
    for node in (us, ru):
        node.stop()
        assert findings(node) == []


def test_the_bulk_byte_bound_counts_utf8_bytes_not_characters(make_node: Make) -> None:
    """``bulk_queue_max_bytes`` is bytes: 300 Cyrillic letters are 600 bytes of payload
    (611 with the JSON around them) though 311 characters, so 500 ASCII letters more
    (511 bytes) go past 1024 bytes and are refused whole; the answer and the CLI say the
    queue's fill in bytes; up to the bound exactly, a send still fits."""
    us, ru = make_node("US-JS"), make_node("RU-GS")
    us.configure("delivery", bulk_queue_max_messages=1000, bulk_queue_max_bytes=1024)
    us, ru = us_and_ru(lambda party: {"US-JS": us, "RU-GS": ru}[party])
    assert us.send("RU-GS", ["ok"])  # learns that RU-GS has lanes
    wait_until(lambda: us.peer_status("RU-GS")["lanes"]["bulk"]["queued"] == 0,
               what="the first message delivered")
    ru.stop()  # nothing drains now
    wide = "я" * 300
    first = us.send("RU-GS", [wide])
    assert _lanes(us, first) == ["bulk"]
    before = us.query("SELECT count(*) AS n FROM outbox")[0].n
    refused = us.api("POST", "/api/v1/messages", json={"to": "RU-GS", "texts": ["a" * 500]})
    assert refused.status_code == 429, refused.text
    body = refused.json()
    assert (body["error"], body["queued"], body["queued_bytes"], body["max_bytes"]) == \
        ("bulk-queue-full", 1, 611, 1024)
    assert "611 of 1024 payload bytes" in body["message"]
    assert us.query("SELECT count(*) AS n FROM outbox")[0].n == before
    cli = hotline(us, "send", "RU-GS", "\u0431" * 300)  # 611 bytes more: over
    assert cli.returncode != 0
    said = " ".join((cli.stdout + cli.stderr).split())
    assert "bulk-queue-full" in said, said
    assert "611 of 1024 payload bytes" in said, said
    assert us.query("SELECT count(*) AS n FROM outbox")[0].n == before
    # exactly up to the bound: 1024 - 611 = 413 bytes = 11 of JSON and 402 of text
    assert us.send("RU-GS", ["ж" * 201])
    assert us.api("POST", "/api/v1/messages",
                  json={"to": "RU-GS", "texts": ["x"]}).status_code == 429


def _released_texts(node: NodeProcess, peer: str) -> list[tuple[str, str]]:
    """(lane, text) of ``peer``'s messages ``node`` released, in release order."""
    return [(r.lane, json.loads(r.payload)["text"]) for r in node.query(
        "SELECT lane, payload FROM inbound WHERE peer = :p AND type = 'message' "
        "AND release_no IS NOT NULL ORDER BY release_no", p=peer)]


def test_a_peer_downgrading_with_bulk_queued_then_upgrading_loses_reorders_nothing(
        make_sqlite_node: Make) -> None:
    """RU-GS goes back to protocol 1 while two messages wait on US's bulk lane: a call
    still rings; a message sent meanwhile queues behind the two (on the bulk lane, not
    ahead of them on control); when RU speaks 2 again all arrive once, in the order
    they were sent."""
    us, ru = us_and_ru(lambda party: make_sqlite_node(party))
    us.send("RU-GS", ["m0"])
    wait_until(lambda: len(_released_texts(ru, "US-JS")) == 1, what="m0 at RU")
    ru.stop()
    us.send("RU-GS", ["m1", "m2"])
    ru.configure("delivery", protocol=1)
    ru.start()
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "while the peer is downgraded")
    wait_for_state(us, call_id, "ringing")
    wait_until(lambda: us.peer_status("RU-GS")["protocol"] == 1, what="US to learn of it")
    later = us.send("RU-GS", ["m3"])
    assert _lanes(us, later) == ["bulk"]  # behind m1 and m2, where it was sent
    assert [t for _, t in _released_texts(ru, "US-JS")] == ["m0"]
    ru.stop()
    ru.configure("delivery", protocol=2)
    ru.start()
    us.send("RU-GS", ["m4"])
    wait_until(lambda: len(_released_texts(ru, "US-JS")) >= 5, 60, what="all at RU")
    wait_until(lambda: us.peer_status("RU-GS")["queued"] == 0, what="US's queue empty")
    assert [t for _, t in _released_texts(ru, "US-JS")] == ["m0", "m1", "m2", "m3", "m4"]


def test_key_rotation_with_thousands_of_bulk_queued_loses_and_doubles_nothing(
        make_sqlite_node: Make) -> None:
    """3,000 messages wait on the bulk lane (RU down) when US rotates its key: the
    rotation goes first on the control lane, the bulk envelopes sealed under the old key
    are taken within its grace, and every message arrives once, in order."""
    from tests.integration.test_key_rotation import rotate

    us, ru = us_and_ru(lambda party: make_sqlite_node(party))
    us.send("RU-GS", ["m0"])  # US learns that RU-GS has lanes
    wait_until(lambda: len(_released_texts(ru, "US-JS")) == 1, what="m0 at RU")
    ru.stop()
    texts = [f"feed {i:04d}" for i in range(3000)]
    for start in range(0, 3000, 1000):
        assert _lanes(us, us.send("RU-GS", texts[start:start + 1000])[:1]) == ["bulk"]
    old_kid = us.status()["key_id"]
    rotated = rotate(us)
    assert rotated["kid"] != old_kid
    ru.start()
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "after the rotation")
    wait_for_state(us, call_id, "ringing")
    wait_until(lambda: len(_released_texts(ru, "US-JS")) >= 3001, 120, what="the feed")
    wait_until(lambda: us.peer_status("RU-GS")["queued"] == 0, what="US's queue empty")
    assert [t for _, t in _released_texts(ru, "US-JS")] == ["m0", *texts]
    assert ru.query("SELECT count(*) AS n FROM inbound WHERE peer = 'US-JS' "
                    "AND type = 'message'")[0].n == 3001


def test_removing_a_link_with_both_lanes_queued_shows_no_lanes_and_crashes_nothing(
        make_sqlite_node: Make) -> None:
    """RU down, a call (control) and messages (bulk) queued, the link removed: both
    lanes' envelopes are given up and counted; ``status`` (API and CLI) and the console
    answer, and show no lanes for the removed link."""
    from hotline.accounts.offline import add_operator
    from tests.integration.test_break_link_removal import PASSWORD, _remove
    from tests.peers import console_session

    us, ru = us_and_ru(lambda party: make_sqlite_node(party))
    us.send("RU-GS", ["m0"])
    wait_until(lambda: len(_released_texts(ru, "US-JS")) == 1, what="m0 at RU")
    ru.stop()
    place(us, "cgs@RU-GS", "nmcc-do", "queued on control")
    us.send("RU-GS", [f"queued {i}" for i in range(50)])
    lanes = us.peer_status("RU-GS")["lanes"]
    assert lanes["bulk"]["queued"] == 50
    assert lanes["control"]["queued"] >= 1
    removed = _remove(us, "RU-GS", wait_s=1)
    assert removed["peer_told"] is False
    status = us.peer_status("RU-GS")
    assert status["state"] == "removed"
    assert status["queued"] == 0
    assert status["undeliverable"] >= 51
    assert not status.get("lanes")
    assert us.query("SELECT count(*) AS n FROM outbox WHERE peer = 'RU-GS' "
                    "AND delivered_at IS NULL AND failed_at IS NULL")[0].n == 0
    cli = hotline(us, "status")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "RU-GS lanes" not in cli.stdout
    us.stop()
    secret = add_operator(us.dir, "nmcc-1", PASSWORD).secret
    us.start()
    client = console_session(us, "nmcc-1", secret, PASSWORD)
    try:
        page = client.get("/links/table?lang=en")
    finally:
        client.close()
    assert page.status_code == 200
    row = page.text[page.text.index('data-party="RU-GS"'):]
    row = row[:row.index("</tr>")]
    assert 'data-state="removed"' in row
    assert "bulk" not in row
