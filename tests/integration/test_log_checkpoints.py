"""Checkpoints cosigned by the peer: exchanged, verified, and refused when a log
equivocates, shrinks or is rewritten; resumed after kill -9."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hotline.log.merkle import leaf_hash
from hotline.log.verify import verify_database
from hotline.protocol import canonical
from hotline.protocol.checkpoint import make_checkpoint
from hotline.protocol.keys import b64e
from hotline.store.engine import create_engine
from tests.nodes import PASSPHRASE, NodeProcess, link, wait_until

Make = Callable[..., NodeProcess]


def pair(make: Make) -> tuple[NodeProcess, NodeProcess]:
    us, ru = make("US-JS"), make("RU-GS")
    link(us, ru)
    for node in (us, ru):
        node.configure("log", checkpoint_seconds=0.3, checkpoint_entries=1000)
        node.start()
    return us, ru


def cosigned(origin: NodeProcess, witness: NodeProcess) -> list[tuple[int, bytes]]:
    rows = origin.query("SELECT size, root FROM log_checkpoints WHERE origin = :o AND "
                        "witness = :w ORDER BY size", o=origin.party, w=witness.party)
    return [(int(r[0]), bytes(r[1])) for r in rows]


def log_size(node: NodeProcess) -> int:
    return int(node.query("SELECT size FROM log_state")[0][0])


def verify(node: NodeProcess, *peers: NodeProcess) -> Any:
    engine = create_engine(node.config.db)
    keys = {p.party: p.public_keys() for p in (node, *peers)}
    try:
        with engine.connect() as conn:
            return verify_database(conn, node.party, keys)
    finally:
        engine.dispose()


def post_checkpoint(witness: NodeProcess, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(witness.url + "/federation/v1/checkpoints",
                      content=canonical.encode(body), timeout=10)


def test_each_node_cosigns_the_others_log_and_both_logs_verify(make_node: Make) -> None:
    us, ru = pair(make_node)
    us.send("RU-GS", [f"message {n}" for n in range(20)])
    wait_until(lambda: len(ru.inbox()) == 20, 30, what="the messages")
    target = log_size(us)
    wait_until(lambda: cosigned(us, ru) and cosigned(us, ru)[-1][0] >= target, 30,
               what="RU to cosign US's log")
    wait_until(lambda: cosigned(ru, us), 30, what="US to cosign RU's log")
    # the witness keeps exactly what it cosigned
    witnessed = ru.query("SELECT size, root FROM log_checkpoints WHERE origin = 'US-JS' "
                         "AND witness = 'RU-GS' ORDER BY size")
    assert [(int(r[0]), bytes(r[1])) for r in witnessed][-1] in cosigned(us, ru)
    for node, peer in ((us, ru), (ru, us)):
        report = verify(node, peer)
        assert report.ok, report.problems
        assert report.checkpoints >= 2
    kinds = {r[0] for r in us.query("SELECT kind FROM log_entries")}
    assert {"keys", "link", "sent", "receipt", "cosigned"} <= kinds
    assert "received" in {r[0] for r in ru.query("SELECT kind FROM log_entries")}


def test_equivocation_a_smaller_tree_and_a_rewritten_history_are_refused_and_kept(
        make_sqlite_node: Make) -> None:
    us, ru = pair(make_sqlite_node)
    us.send("RU-GS", ["something to log"])
    wait_until(lambda: cosigned(us, ru), 30, what="a first cosignature")
    size, root = cosigned(us, ru)[-1]
    keys = us.private_keys()
    forged = make_checkpoint("US-JS", size, leaf_hash(b"another history"), 1, keys)
    answer = post_checkpoint(ru, {"checkpoint": forged, "from_size": size, "proof": []})
    assert answer.status_code == 409
    assert answer.json()["error"] == "equivocation"
    # signed now, after the larger tree: the origin says its log shrank (an old smaller
    # checkpoint replayed is only "stale-checkpoint", see test_witness_rules.py)
    smaller = make_checkpoint("US-JS", size - 1, root, time.time_ns() // 1_000_000, keys)
    answer = post_checkpoint(ru, {"checkpoint": smaller, "from_size": size - 1, "proof": []})
    assert answer.json()["error"] == "checkpoint-shrinks"
    # from the largest size RU cosigned by now (US's own checkpoints go on meanwhile)
    latest = max(int(r[0]) for r in ru.query("SELECT size FROM log_checkpoints WHERE "
                                             "origin = 'US-JS'"))
    bigger = make_checkpoint("US-JS", latest + 5, leaf_hash(b"rewritten"), 1, keys)
    answer = post_checkpoint(ru, {"checkpoint": bigger, "from_size": latest,
                                  "proof": [b64e(leaf_hash(b"x"))]})
    assert answer.json()["error"] == "inconsistent-checkpoint"
    kinds = sorted(r[0] for r in ru.query("SELECT kind FROM evidence"))
    # the unsigned proof that fails shows nothing about US: kept nowhere, but RU cannot
    # cosign US's log for now, and says so (cleared by US's next cosigned checkpoint)
    assert kinds == ["log-equivocation", "log-shrinking"]
    assert len(ru.log_lines("ALARM")) == 3
    # none of the refused checkpoints was stored, and honest ones are still cosigned
    stored = {bytes(r[0]) for r in ru.query("SELECT root FROM log_checkpoints WHERE "
                                            "origin = 'US-JS'")}
    assert not stored & {leaf_hash(b"another history"), leaf_hash(b"rewritten")}
    us.send("RU-GS", ["more"])
    wait_until(lambda: cosigned(us, ru)[-1][0] > size, 30, what="cosigning to go on")
    wait_until(lambda: ru.query("SELECT cleared_at FROM alarms WHERE cause = "
                                "'log-unproven:US-JS'")[0][0] is not None, 10,
               what="the unproven-log alarm cleared by an honest cosignature")
    # a forged request with another party's key is not even considered
    stranger = make_checkpoint("US-JS", size + 1, root, 1, ru.private_keys())
    assert post_checkpoint(ru, {"checkpoint": stranger, "from_size": size,
                                "proof": []}).status_code == 400


def test_a_node_refuses_to_serve_a_tampered_log_and_its_peer_refuses_to_cosign_it(
        make_sqlite_node: Make) -> None:
    us, ru = pair(make_sqlite_node)
    us.send("RU-GS", ["the original"])
    wait_until(lambda: cosigned(us, ru), 30, what="a cosignature")
    us.stop()
    engine = create_engine(us.config.db)
    with engine.begin() as conn:
        from sqlalchemy import text

        row = conn.execute(text("SELECT idx, entry FROM log_entries WHERE kind = 'sent' "
                                "LIMIT 1")).one()
        conn.execute(text("UPDATE log_entries SET entry = :e WHERE idx = :i"),
                     {"e": row[1].replace('"seq":1', '"seq":7'), "i": row[0]})
    engine.dispose()
    refused = subprocess.run([sys.executable, "-m", "hotline", "serve", "--dir", str(us.dir)],
                             env={"HOTLINE_PASSPHRASE": PASSPHRASE, "PATH": ""},
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1
    assert "error[log-broken]" in refused.stderr
    assert f"entry {row[0]}" in refused.stderr
    report = verify(us, ru)
    assert report.problems[0].index == row[0]
    us.start("--accept-broken-log")  # an explicit decision; the breach stays on record
    assert us.log_lines("serving with a log that does not verify")


@pytest.mark.parametrize("kills", [3])
def test_kill_9_during_checkpoint_exchanges_logs_still_verify_and_cosigning_resumes(
        make_sqlite_node: Make, kills: int) -> None:
    us, ru = pair(make_sqlite_node)
    for round_ in range(kills):
        us.send("RU-GS", [f"round {round_} #{n}" for n in range(50)])
        before = len(cosigned(us, ru))
        wait_until(lambda b=before: len(cosigned(us, ru)) > b, 30, what="an exchange")
        us.kill9()  # whatever exchange is in flight dies with it
        ru.kill9()
        us.start()
        ru.start()
    # a witness that stored a cosignature the origin lost: the origin catches up
    us.stop()
    engine = create_engine(us.config.db)
    with engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("DELETE FROM log_checkpoints WHERE origin = 'US-JS' AND size = "
                          "(SELECT MAX(size) FROM log_checkpoints WHERE origin = 'US-JS')"))
    engine.dispose()
    us.start()
    us.send("RU-GS", ["after the crashes"])
    target = log_size(us)
    wait_until(lambda: cosigned(us, ru)[-1][0] >= target, 30, what="cosigning to resume")
    for node, peer in ((us, ru), (ru, us)):
        report = verify(node, peer)
        assert report.ok, report.problems
    assert ru.query("SELECT COUNT(*) FROM evidence")[0][0] == 0  # no false alarm


def _rewrite_history_from(node: NodeProcess, start: int) -> None:
    """What an insider with database access would do: change entry ``start`` and
    recompute every hash after it and the tree state, so the log is self-consistent."""
    import json as _json

    from sqlalchemy import text

    from hotline.log.merkle import CompactRange
    from hotline.store import log as log_store
    from hotline.store.log import Record

    engine = create_engine(node.config.db)
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT idx, kind, subject, at, entry, leaf FROM log_entries "
                                 "WHERE idx >= :s ORDER BY idx"), {"s": start}).all()
        kept = conn.execute(text("SELECT leaf FROM log_entries WHERE idx < :s ORDER BY idx"),
                            {"s": start}).all()
        tree = CompactRange()
        tree.extend(bytes(r[0]) for r in kept)
        conn.execute(text("DELETE FROM log_entries WHERE idx >= :s"), {"s": start})
        conn.execute(text("DELETE FROM log_nodes WHERE (idx + 1) * (1 << level) > :s"),
                     {"s": start})
        conn.execute(text("UPDATE log_state SET size = :n, frontier = :f, last_leaf = :l"),
                     {"n": start, "f": _json.dumps([h.hex() for h in tree.to_state()]),
                      "l": bytes(kept[-1][0]).hex() if kept else ""})
        records = []
        for n, row in enumerate(rows):
            body = _json.loads(row[4])["body"]
            if n == 0:
                body = {**body, "rewritten": True}
            records.append(Record(row[1], body, int(row[3]), row[2]))
        log_store.append(conn, records)
    engine.dispose()


def test_a_consistently_rewritten_history_is_caught_by_the_peers_cosignature(
        make_sqlite_node: Make) -> None:
    us, ru = pair(make_sqlite_node)
    us.send("RU-GS", [f"m{n}" for n in range(10)])
    # over the messages, and so over entry 3, the one rewritten below
    wait_until(lambda: cosigned(us, ru) and cosigned(us, ru)[-1][0] >= max(
        log_size(us) - 5, 4), 30,
               what="a cosignature over the messages")
    cosigned_size = cosigned(us, ru)[-1][0]
    us.stop()
    _rewrite_history_from(us, 3)
    report = verify(us, ru)
    assert not report.ok
    assert report.problems[0].index is not None
    assert report.problems[0].index <= 3
    assert "cosigned" in report.problems[0].message
    us.start("--accept-broken-log")
    us.send("RU-GS", ["after the rewrite"])
    wait_until(lambda: ru.log_lines("inconsistent-checkpoint"), 30,
               what="RU to refuse the rewritten log")
    wait_until(lambda: us.log_lines("refused our checkpoint"), 30, what="US's alarm")
    assert any("our own log breaks at entry" in line for line in
               us.log_lines("refused our checkpoint"))
    assert max(r[0] for r in ru.query("SELECT size FROM log_checkpoints WHERE "
                                      "origin = 'US-JS'")) == cosigned_size
