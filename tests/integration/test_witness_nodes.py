"""The reproductions of issue 11 (items 4 and 5) on real node processes: re-sent
equivocations are one evidence row counted, with one alarm; an impossible empty tree is
refused and never blocks the origin; a checkpoint signed with another party's key is
logged and kept against that party; a database poisoned before the tree rules were
checked is unblocked by the upgrade."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import text

from hotline.log.merkle import leaf_hash
from hotline.protocol import canonical
from hotline.protocol.checkpoint import CHECKPOINT_DOMAIN, COSIGNATURE_DOMAIN
from hotline.protocol.envelope import Header, new_envelope_id, seal
from hotline.protocol.keys import PartyKeys, b64e
from hotline.protocol.signing import sign_object
from hotline.store.engine import create_engine
from tests.nodes import NodeProcess, link, wait_until

Make = Callable[..., NodeProcess]
CHECKPOINTS = "/federation/v1/checkpoints"
ENVELOPES = "/federation/v1/envelopes"
SECURITY = "hotline.security:"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def checkpoint(keys: PartyKeys, size: int, root: bytes, origin: str = "US-JS"
               ) -> dict[str, Any]:
    """Signed as given, even for a tree that cannot exist."""
    return sign_object(CHECKPOINT_DOMAIN, {"v": 1, "origin": origin, "size": size,
                                           "root": b64e(root), "at": now_ms(),
                                           "kid": keys.public.key_id}, keys)


def post(node: NodeProcess, cp: dict[str, Any], from_size: int = 0) -> httpx.Response:
    body = {"checkpoint": cp, "from_size": from_size, "proof": []}
    return httpx.post(node.url + CHECKPOINTS, content=canonical.encode(body), timeout=10)


def cosigned_sizes(origin: NodeProcess, witness: NodeProcess) -> list[int]:
    return [int(r[0]) for r in origin.query(
        "SELECT size FROM log_checkpoints WHERE origin = :o AND witness = :w ORDER BY size",
        o=origin.party, w=witness.party)]


def evidence_rows(node: NodeProcess) -> list[Any]:
    return node.query("SELECT peer, kind, count, at, last_at FROM evidence ORDER BY id")


def fast_checkpoints(*nodes: NodeProcess) -> None:
    for node in nodes:
        node.configure("log", checkpoint_seconds=0.3, checkpoint_entries=1000)


def test_a_resent_equivocating_envelope_is_one_evidence_row_counted(make_node: Make) -> None:
    us, ru = make_node("US-JS"), make_node("RU-GS")
    link(us, ru)
    ru.start()
    keys, ru_public = us.private_keys(), ru.public_keys()

    def envelope(body: str) -> bytes:
        head = Header(id=new_envelope_id(), sender="US-JS", recipient="RU-GS",
                      kid=keys.public.key_id, seq=1, ts=now_ms(), type="message")
        return seal(head, {"text": body}, keys, ru_public)

    def send(raw: bytes) -> httpx.Response:
        return httpx.post(ru.url + ENVELOPES, content=raw, timeout=30,
                          headers={"content-type": "application/x-ndjson"})

    assert send(envelope("the first")).status_code == 200
    second = envelope("another text for the same seq")
    lines = len(ru.log_lines(SECURITY))
    for _ in range(5):
        answer = send(second)
        assert answer.status_code == 409
        assert answer.json()["results"][0]["error"] == "sequence-reused"
    rows = evidence_rows(ru)
    assert [(r.peer, r.kind, int(r.count)) for r in rows] == [("US-JS", "equivocation", 5)]
    assert int(rows[0].at) <= int(rows[0].last_at)
    wait_until(lambda: len(ru.log_lines(SECURITY)) == lines + 5, 10,
               what="one security-log line per refusal")
    send(envelope("a third text"))  # a distinct pair is a second row
    assert [int(r.count) for r in evidence_rows(ru)] == [5, 1]
    shown = subprocess.run([sys.executable, "-m", "hotline", "log", "evidence", "--dir",
                            str(ru.dir), "--json"], capture_output=True, check=True)
    listed = json.loads(shown.stdout)["evidence"]
    assert [(e["kind"], e["count"]) for e in listed] == [("equivocation", 1),
                                                         ("equivocation", 5)]
    assert listed[1]["first_at"] == int(rows[0].at)
    assert listed[1]["last_at"] == int(rows[0].last_at)
    table = subprocess.run([sys.executable, "-m", "hotline", "log", "evidence", "--dir",
                            str(ru.dir)], capture_output=True, check=True, text=True,
                           env={**os.environ, "COLUMNS": "200"}).stdout
    assert "times" in table
    assert "seq 1 signed twice" in table


def test_a_resent_equivocating_checkpoint_is_one_row_and_one_alarm(make_node: Make) -> None:
    us, ru = make_node("US-JS"), make_node("RU-GS")
    link(us, ru)
    fast_checkpoints(us, ru)
    us.start()
    ru.start()
    wait_until(lambda: cosigned_sizes(us, ru), 30, what="a first cosignature")
    size = cosigned_sizes(us, ru)[-1]
    forged = checkpoint(us.private_keys(), size, leaf_hash(b"another history"))
    for _ in range(5):
        answer = post(ru, forged, size)
        assert answer.status_code == 409
        assert answer.json()["error"] == "equivocation"
    rows = evidence_rows(ru)
    assert [(r.peer, r.kind, int(r.count)) for r in rows] == [("US-JS", "log-equivocation", 5)]
    assert len(ru.log_lines("ALARM log-equivocation")) == 1
    assert len(ru.log_lines("refused checkpoint")) == 5
    alarm = ru.query("SELECT count FROM alarms WHERE cause = 'log-equivocation:US-JS'")
    assert [int(r[0]) for r in alarm] == [1]
    journal = ru.query("SELECT COUNT(*) FROM log_entries WHERE kind = 'alarm'")
    assert int(journal[0][0]) == 1
    us.send("RU-GS", ["more"])
    wait_until(lambda: cosigned_sizes(us, ru)[-1] > size, 30, what="cosigning to go on")


def test_an_impossible_empty_tree_is_refused_and_never_blocks_the_origin(
        make_sqlite_node: Make) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    fast_checkpoints(us, ru)
    ru.start()
    bogus = checkpoint(us.private_keys(), 0, leaf_hash(b"not the empty tree"))
    for _ in range(3):
        answer = post(ru, bogus)
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"] == "invalid-tree-head"
    assert ru.query("SELECT COUNT(*) FROM log_checkpoints")[0][0] == 0
    rows = evidence_rows(ru)
    assert [(r.peer, r.kind, int(r.count)) for r in rows] == [("US-JS", "log-invalid-head", 3)]
    assert len(ru.log_lines("ALARM log-invalid-head")) == 1
    us.start()  # its first honest checkpoint (proved from the empty tree) is cosigned
    wait_until(lambda: cosigned_sizes(us, ru), 30, what="US's honest checkpoint cosigned")
    us.send("RU-GS", ["and more"])
    first = cosigned_sizes(us, ru)[-1]
    wait_until(lambda: cosigned_sizes(us, ru)[-1] > first, 30, what="a second cosignature")
    assert not us.log_lines("refused our checkpoint")


def test_a_checkpoint_signed_with_another_partys_key_is_logged_and_kept(
        make_sqlite_node: Make) -> None:
    us, ru, ua = (make_sqlite_node(p) for p in ("US-JS", "RU-GS", "UA-GS"))
    link(us, ru)
    link(ua, ru)
    ru.start()
    lines = len(ru.log_lines(SECURITY))
    answer = post(ru, checkpoint(ua.private_keys(), 5, leaf_hash(b"x")))
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad-checkpoint"
    wait_until(lambda: len(ru.log_lines(SECURITY)) == lines + 1, 10, what="one line")
    assert "UA-GS" in ru.log_lines(SECURITY)[-1]
    assert [(r.peer, r.kind) for r in evidence_rows(ru)] == [("UA-GS",
                                                               "checkpoint-impersonation")]
    # a key nobody is linked with: logged, and nothing kept (anyone could send it)
    answer = post(ru, checkpoint(PartyKeys.generate(), 5, leaf_hash(b"x")))
    assert answer.status_code == 400
    wait_until(lambda: len(ru.log_lines(SECURITY)) == lines + 2, 10, what="one more line")
    assert len(evidence_rows(ru)) == 1


def test_an_origin_blocked_by_a_poisoned_database_is_unblocked_by_the_upgrade(
        make_node: Make) -> None:
    """A witness that cosigned an impossible empty tree before this release: upgrading
    moves that row into evidence (one security-log line naming the alarm to clear),
    folds duplicate evidence rows, and the origin's checkpoints are cosigned again."""
    from alembic import command

    from hotline.store.migrate import _config

    us, ru = make_node("US-JS"), make_node("RU-GS")
    link(us, ru)
    fast_checkpoints(us, ru)
    bogus = checkpoint(us.private_keys(), 0, leaf_hash(b"poison"))
    cosig = sign_object(COSIGNATURE_DOMAIN, {
        "v": 1, "witness": "RU-GS", "origin": "US-JS", "size": 0, "root": bogus["root"],
        "at": now_ms(), "kid": ru.public_keys().key_id}, ru.private_keys())
    engine = create_engine(ru.config.db)
    try:
        with engine.begin() as conn:
            command.downgrade(_config(conn), "0007")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO log_checkpoints (origin, witness, size, root, checkpoint, "
                "cosignature, at) VALUES ('US-JS', 'RU-GS', 0, :root, :cp, :cosig, 1)"),
                {"root": leaf_hash(b"poison"), "cp": canonical.encode(bogus).decode(),
                 "cosig": json.dumps(cosig)})
            for at in (10, 30, 20):
                conn.execute(text(
                    "INSERT INTO evidence (peer, kind, detail, envelope, other_envelope, at) "
                    "VALUES ('US-JS', 'equivocation', 'seq 1 signed twice', :a, :b, :at)"),
                    {"a": b"envelope one", "b": b"envelope two", "at": at})
    finally:
        engine.dispose()
    ru.start()
    us.start()
    assert ru.log_lines("upgrade 0008: removed the cosigned checkpoint of US-JS")
    wait_until(lambda: cosigned_sizes(us, ru), 30, what="US cosigned again")
    rows = evidence_rows(ru)
    assert [(r.kind, int(r.count), int(r.at), int(r.last_at)) for r in rows[:1]] == [
        ("equivocation", 3, 10, 30)]
    assert [r.kind for r in rows[1:]] == ["log-invalid-head"]
