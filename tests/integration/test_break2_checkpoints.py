"""Second breaker, evidence and checkpoints (issue 11, items 4 and 5) on real nodes:
what a third party can make a witness keep against an honest origin, and how often an
origin whose checkpoints are refused raises its alarm."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx

from hotline.log.merkle import CompactRange, leaf_hash
from hotline.protocol import canonical
from hotline.protocol.checkpoint import make_checkpoint
from hotline.protocol.keys import b64e
from tests.integration.test_log_checkpoints import _rewrite_history_from, cosigned, pair
from tests.nodes import NodeProcess, wait_until

Make = Callable[..., NodeProcess]
CHECKPOINTS = "/federation/v1/checkpoints"
#: the log entry an insider rewrites (with every hash after it)
REWRITTEN = 3


def log_head(node: NodeProcess) -> tuple[int, bytes]:
    """The node's current tree (size, root), as its own checkpointer would sign it."""
    row = node.query("SELECT size, frontier FROM log_state")[0]
    tree = CompactRange.from_state(int(row[0]), [bytes.fromhex(h) for h in json.loads(row[1])])
    return int(row[0]), tree.root()


def test_an_honest_checkpoint_relayed_with_a_junk_proof_keeps_nothing_against_its_origin(
        make_sqlite_node: Make) -> None:
    """A checkpoint the origin really signed, of a tree that really extends what the
    witness cosigned, relayed by anyone (every witness of the origin receives one) with
    a proof that is junk: the proof is not the origin's statement, so its failure shows
    nothing about the origin. Refused, logged once each, no evidence; one coalesced
    ``log-unproven`` alarm (the witness cannot cosign that origin for now), which clears
    as soon as the origin's own checkpoint is cosigned."""
    us, ru = pair(make_sqlite_node)
    us.send("RU-GS", ["something to log"])
    wait_until(lambda: cosigned(us, ru), 30, what="a first cosignature")
    us.stop()  # its own checkpoints would race the relayed one
    base = max(int(r[0]) for r in ru.query("SELECT size FROM log_checkpoints WHERE "
                                           "origin = 'US-JS'"))
    size, root = log_head(us)
    if size == base:
        us.start()
        us.send("RU-GS", ["grow"])
        us.stop()
        size, root = log_head(us)
    keys = us.private_keys()
    lines = len(ru.log_lines("hotline.security"))
    for n in range(3):  # distinct junk proofs, each of one hash
        honest = make_checkpoint("US-JS", size, root, time.time_ns() // 1_000_000, keys)
        body = {"checkpoint": honest, "from_size": base,
                "proof": [b64e(leaf_hash(b"junk %d" % n))]}
        answer = httpx.post(ru.url + CHECKPOINTS, content=canonical.encode(body), timeout=10)
        assert answer.status_code == 409, answer.text
    wait_until(lambda: len(ru.log_lines("hotline.security")) >= lines + 3, 10,
               what="one line per refusal")
    assert len(ru.log_lines("hotline.security")) == lines + 3
    assert ru.query("SELECT peer, kind FROM evidence") == []
    assert len(ru.log_lines("ALARM")) == 1
    assert [tuple(r) for r in ru.query(
        "SELECT cause, count, cleared_at IS NULL FROM alarms WHERE kind = 'log-unproven'")
            ] == [("log-unproven:US-JS", 3, True)]
    us.start()  # and the origin's own checkpoint, with its real proof, is cosigned
    wait_until(lambda: cosigned(us, ru)[-1][0] >= size, 30, what="US cosigned again")
    assert not us.log_lines("refused our checkpoint")
    wait_until(lambda: ru.query("SELECT cleared_at FROM alarms WHERE cause = "
                                "'log-unproven:US-JS'")[0][0] is not None, 10,
               what="the alarm cleared by the origin's next cosigned checkpoint")


def test_an_origin_refused_again_and_again_raises_one_alarm_not_one_per_attempt(
        make_sqlite_node: Make) -> None:
    """An origin whose log no longer extends what its witness cosigned is refused on
    every tick while its log grows; each refusal names the new size, but the cause is
    the same: one alarm (one ALARM line, one full verification), not one per attempt."""
    us, ru = pair(make_sqlite_node)
    us.send("RU-GS", [f"m{n}" for n in range(10)])
    # The rewritten entry must lie inside a cosigned tree: a first checkpoint taken
    # before the messages were logged (a slow machine) covers only the entries before
    # it, and rewriting after those is an honest extension, cosigned without complaint.
    wait_until(lambda: cosigned(us, ru) and cosigned(us, ru)[-1][0] > REWRITTEN, 30,
               what="a cosignature over the entry to be rewritten")
    us.stop()
    _rewrite_history_from(us, REWRITTEN)
    us.start("--accept-broken-log")
    assert us.log_lines("serving with a log that does not verify")
    for n in range(4):  # the log grows between attempts
        before = len(ru.log_lines("refused checkpoint"))
        us.send("RU-GS", [f"after the rewrite {n}"])
        wait_until(lambda b=before: len(ru.log_lines("refused checkpoint")) > b, 180,
                   what="another refused attempt")
    assert len(us.log_lines("hotline.security: ALARM")) == 1, \
        us.log_lines("hotline.security: ALARM")
    raised = us.query("SELECT count FROM alarms WHERE cause = 'checkpoint-refused:RU-GS'")
    assert len(raised) == 1
