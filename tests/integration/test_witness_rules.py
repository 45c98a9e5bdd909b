"""The witness on a real SQLite database, in process: every refusal cause leaves exactly
one line on the security logger, evidence only against a known party's own signature,
re-sent evidence is one row counted, and no refused checkpoint ever blocks the origin's
honest ones (issue 11, items 4 and 5)."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, select

from hotline.effects import Effects
from hotline.health.alarms import Alarms
from hotline.log.merkle import consistency_proof, leaf_hash, root_from_leaf_hashes
from hotline.log.witness import Outcome, Witness
from hotline.peers import PeerDirectory
from hotline.protocol import canonical
from hotline.protocol.checkpoint import CHECKPOINT_DOMAIN, make_checkpoint
from hotline.protocol.keys import PartyKeys, b64e
from hotline.protocol.offer import make_offer, parse_offer
from hotline.protocol.signing import sign_object
from hotline.protocol.tree import EMPTY_ROOT, MAX_TREE_SIZE
from hotline.store import links as link_store
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.migrate import upgrade
from hotline.store.schema import alarms, evidence, log_checkpoints

ME = "RU-GS"
ME_KEYS = PartyKeys.generate()
ORIGIN = "US-JS"
OTHER = "UA-GS"
KEYS = {ORIGIN: PartyKeys.generate(), OTHER: PartyKeys.generate()}
STRANGER = PartyKeys.generate()
START_MS = 1_700_000_000_000
SECURITY = "hotline.security"
LEAVES = [leaf_hash(b"entry %d" % i) for i in range(64)]
SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


class FakeClock:
    """Wall time advancing one millisecond a reading, so first and last times differ."""

    def __init__(self) -> None:
        self.now = START_MS

    def now_ms(self) -> int:
        self.now += 1
        return self.now

    def monotonic(self) -> float:
        return self.now / 1000


def root(size: int) -> bytes:
    return root_from_leaf_hashes(LEAVES[:size])


def signed(size: int, head: bytes, *, at: int, keys: PartyKeys | None = None,
           origin: str = ORIGIN) -> dict[str, Any]:
    """A checkpoint signed as given, whatever the tree rules say (make_checkpoint would
    refuse an impossible one)."""
    k = keys or KEYS[ORIGIN]
    obj = {"v": 1, "origin": origin, "size": size, "root": b64e(head), "at": at,
           "kid": k.public.key_id}
    return sign_object(CHECKPOINT_DOMAIN, obj, k)


def request(cp: dict[str, Any], from_size: int = 0, proof: list[bytes] | None = None
            ) -> bytes:
    return canonical.encode({"checkpoint": cp, "from_size": from_size,
                             "proof": [b64e(h) for h in proof or []]})


def honest(size: int, base: int, at: int) -> bytes:
    cp = make_checkpoint(ORIGIN, size, root(size), at, KEYS[ORIGIN])
    return request(cp, base, consistency_proof(LEAVES, base, size) if base else [])


@dataclass
class Bench:
    """A witness (RU-GS) linked to US-JS and UA-GS, on a fresh SQLite file."""

    clock: FakeClock
    db: Database
    witness: Witness
    effects: list[Effects]
    fatal: list[BaseException]
    tmp: tempfile.TemporaryDirectory[str]

    @classmethod
    def make(cls) -> Bench:
        tmp = tempfile.TemporaryDirectory(prefix="hotline-witness-")
        engine = create_engine(sqlite_url(Path(tmp.name) / "node.db"))
        upgrade(engine)
        fatal: list[BaseException] = []
        clock = FakeClock()
        db = Database(engine, fatal.append, hooks=[log_store.HOOKS])
        effects: list[Effects] = []
        peers = PeerDirectory(db, clock)
        witness = Witness(me=ME, keys=ME_KEYS, peers=peers, db=db, clock=clock,
                          alarms=Alarms(db=db, clock=clock, apply=effects.append))
        return cls(clock, db, witness, effects, fatal, tmp)

    async def __aenter__(self) -> Bench:
        self.db.start()
        for party, keys in KEYS.items():
            offer = parse_offer(make_offer(party=party, name=party, keys=keys,
                                           endpoints=["http://127.0.0.1:7100"],
                                           at_ms=START_MS))

            def accept(conn: Connection, offer: Any = offer) -> bool:
                return link_store.accept_offer(conn, offer, ME, START_MS)
            await self.db.write(accept)
        await self.witness._peers.reload()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await self.db.stop()
        finally:
            self.tmp.cleanup()
        assert not self.fatal, self.fatal

    async def send(self, raw: bytes) -> Outcome:
        return await self.witness.cosign(raw, "192.0.2.7")

    async def query(self, work: Callable[[Connection], Any]) -> Any:
        return await self.db.read(work)

    async def evidence(self) -> list[Any]:
        return await self.db.read(lambda c: list(c.execute(select(evidence).order_by(
            evidence.c.id))))

    async def cosigned(self) -> list[int]:
        return await self.db.read(lambda c: [int(r.size) for r in c.execute(
            select(log_checkpoints.c.size).where(log_checkpoints.c.origin == ORIGIN)
            .order_by(log_checkpoints.c.size))])


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ------------------------------------------------------------- one line per refusal --

#: cause -> (request built from the bench's first cosigned size 8, error id, evidence
#: kind kept or None). Every cause that anyone could send keeps nothing.
LATER = START_MS + 10_000_000


def _two_fields() -> bytes:
    return canonical.encode({"checkpoint": {}, "from_size": 0})


CAUSES: dict[str, tuple[Callable[[], bytes], str, str | None]] = {
    "not JSON": (lambda: b"{nope", "bad-checkpoint", None),
    "wrong request fields": (_two_fields, "bad-checkpoint", None),
    "unknown origin, unknown signer": (
        lambda: request(signed(9, root(9), at=LATER, keys=STRANGER, origin="ZZ-NONE")),
        "unknown-sender", None),
    "forged: origin's key id, another key": (
        lambda: request({**signed(9, root(9), at=LATER, keys=STRANGER),
                         "kid": KEYS[ORIGIN].public.key_id}, 8), "bad-checkpoint", None),
    "malformed checkpoint field": (
        lambda: request({**signed(9, root(9), at=LATER), "size": "nine"}, 8),
        "bad-checkpoint", None),
    "from_size beyond the size": (
        lambda: request(signed(9, root(9), at=LATER), 10), "bad-checkpoint", None),
    "proof longer than log2(size) + 1": (
        lambda: request(signed(9, root(9), at=LATER), 8, [LEAVES[0]] * 6),
        "bad-checkpoint", None),
    "proof hash not 32 bytes": (
        lambda: canonical.encode({"checkpoint": signed(9, root(9), at=LATER),
                                  "from_size": 8, "proof": ["AAAA"]}),
        "bad-checkpoint", None),
    "old smaller checkpoint replayed": (
        lambda: request(signed(4, root(4), at=START_MS - 5)), "stale-checkpoint", None),
    "proof from the wrong base": (lambda: honest(12, 4, LATER), "stale-base", None),
    "signed with another linked party's key": (
        lambda: request(signed(9, root(9), at=LATER, keys=KEYS[OTHER]), 8),
        "bad-checkpoint", "checkpoint-impersonation"),
    "another party's key, unknown origin": (
        lambda: request(signed(9, root(9), at=LATER, keys=KEYS[OTHER], origin="ZZ-NONE")),
        "unknown-sender", "checkpoint-impersonation"),
    "size 0 with a non-empty root": (
        lambda: request(signed(0, root(3), at=LATER)), "invalid-tree-head",
        "log-invalid-head"),
    "size beyond the maximum": (
        lambda: request(signed(MAX_TREE_SIZE + 1, root(3), at=LATER), 8),
        "invalid-tree-head", "log-invalid-head"),
    "same size, another root": (
        lambda: request(signed(8, root(9), at=LATER), 8), "equivocation", "log-equivocation"),
    "smaller tree signed later": (
        lambda: request(signed(5, root(5), at=LATER)), "checkpoint-shrinks", "log-shrinking"),
    "proof that does not join the trees": (
        lambda: request(signed(12, root(12), at=LATER), 8, [LEAVES[1], LEAVES[2]]),
        "inconsistent-checkpoint", None),  # an unsigned proof shows nothing
}


@pytest.mark.parametrize("cause", list(CAUSES))
def test_each_refusal_cause_leaves_one_security_line_and_evidence_only_if_signed(
        cause: str, caplog: pytest.LogCaptureFixture) -> None:
    build, error_id, kind = CAUSES[cause]

    async def scenario() -> None:
        async with Bench.make() as bench:
            assert (await bench.send(honest(8, 0, START_MS))).error is None
            caplog.clear()
            with caplog.at_level(logging.INFO, logger=SECURITY):
                outcome = await bench.send(build())
            lines = [r for r in caplog.records if r.name == SECURITY]
            assert outcome.error is not None
            assert outcome.error.error_id == error_id, outcome
            assert 400 <= outcome.status < 500
            assert len(lines) == 1, [r.getMessage() for r in lines]
            assert error_id in lines[0].getMessage()
            kept = await bench.evidence()
            assert [r.kind for r in kept] == ([kind] if kind else [])
            if kind == "checkpoint-impersonation":
                assert kept[0].peer == OTHER  # the party whose signature it is
            assert await bench.cosigned() == [8]  # nothing stored by a refusal
            # ... and the origin's honest log is still cosigned afterwards
            assert (await bench.send(honest(16, 8, LATER + 1))).error is None
            assert await bench.cosigned() == [8, 16]
    run(scenario())


def test_an_exact_replay_of_a_cosigned_checkpoint_gets_the_same_cosignature() -> None:
    async def scenario() -> None:
        async with Bench.make() as bench:
            first = await bench.send(honest(8, 0, START_MS))
            await bench.send(honest(16, 8, START_MS + 1))
            again = await bench.send(honest(8, 0, START_MS))
            assert again.error is None
            assert again.cosignature == first.cosignature
            assert await bench.evidence() == []
    run(scenario())


# --------------------------------------------------------- no amplification (item 4) --

ACCUSATIONS: dict[str, tuple[Callable[[], bytes], str]] = {
    "equivocation": (lambda: request(signed(8, root(9), at=LATER), 8), "log-equivocation"),
    "impossible empty tree": (lambda: request(signed(0, root(3), at=LATER)),
                              "log-invalid-head"),
    "another party's key": (lambda: request(signed(9, root(9), at=LATER, keys=KEYS[OTHER]),
                                            8), "checkpoint-impersonation"),
}


@SETTINGS
@given(cause=st.sampled_from(sorted(ACCUSATIONS)), times=st.integers(1, 12))
def test_resending_one_pair_n_times_keeps_one_row_counted_n_and_one_alarm(
        cause: str, times: int) -> None:
    build, kind = ACCUSATIONS[cause]

    async def scenario() -> None:
        async with Bench.make() as bench:
            await bench.send(honest(8, 0, START_MS))
            handler = _Collect()
            logging.getLogger(SECURITY).addHandler(handler)
            try:
                stamps = []
                for _ in range(times):
                    stamps.append(bench.clock.now + 1)  # the witness reads the clock next
                    outcome = await bench.send(build())
                    assert outcome.error is not None
            finally:
                logging.getLogger(SECURITY).removeHandler(handler)
            rows = await bench.evidence()
            assert len(rows) == 1
            row = rows[0]
            assert (row.kind, int(row.count)) == (kind, times)
            assert int(row.at) == stamps[0]
            assert int(row.last_at) == stamps[-1]
            assert len(handler.lines) == times  # one line per refusal ...
            assert sum("ALARM" in line for line in handler.lines) == 1  # ... one alarm
            raised = await bench.query(lambda c: c.execute(
                select(alarms.c.cause, alarms.c.count)).all())
            party = OTHER if kind == "checkpoint-impersonation" else ORIGIN
            assert [(r.cause, int(r.count)) for r in raised] == [(f"{kind}:{party}", 1)]
            assert sum(len(e.journal) for e in bench.effects) == 0  # applied by the edge
    run(scenario())


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


# ---------------------------------------------------- no poisoned state (item 5) -----

BAD = st.one_of(
    st.builds(lambda r: ("empty", r), st.binary(min_size=32, max_size=32)
              .filter(lambda b: b != EMPTY_ROOT)),
    st.builds(lambda n, r: ("equivocate", n, r), st.integers(1, 63),
              st.binary(min_size=32, max_size=32)),
    st.builds(lambda n: ("shrink", n), st.integers(0, 63)),  # bad unless an exact replay
    st.builds(lambda n, r: ("inconsistent", n, r), st.integers(1, 63),
              st.binary(min_size=32, max_size=32)),
    st.builds(lambda n: ("impersonate", n), st.integers(1, 63)),
)


def _bad(step: tuple[Any, ...], last: int, at: int) -> bytes:
    what = step[0]
    if what == "empty":
        return request(signed(0, step[1], at=at))
    if what == "equivocate":
        return request(signed(step[1], step[2], at=at), last)
    if what == "shrink":
        return request(signed(step[1], root(step[1]), at=at))
    if what == "inconsistent":
        return request(signed(step[1], step[2], at=at), last, [step[2]])
    return request(signed(step[1], root(step[1]), at=at, keys=KEYS[OTHER]), last)


@SETTINGS
@given(plan=st.lists(st.tuples(st.integers(0, 4), BAD), min_size=1, max_size=8))
def test_no_sequence_of_bad_checkpoints_stops_honest_ones_being_cosigned(
        plan: list[tuple[int, tuple[Any, ...]]]) -> None:
    """After the first cosigned checkpoint (the witness trusts its first sight of a log),
    any mix of bad ones (signed by the origin or by another party) between the honest
    checkpoints of a growing log is refused, and every honest one is still cosigned: a
    refusal stores nothing that a later check would trust."""
    async def scenario() -> None:
        async with Bench.make() as bench:
            assert (await bench.send(honest(1, 0, bench.clock.now + 1))).error is None
            size, vouched = 1, {1}
            for grow, step in plan:
                bad = await bench.send(_bad(step, size, bench.clock.now + 1))
                if step[0] == "shrink" and step[1] in vouched:
                    # a tree cosigned before, again: the same answer, not a new statement
                    assert bad.error is None, step
                else:
                    assert bad.error is not None, step
                assert max(await bench.cosigned()) == size
                if grow:
                    new = min(size + grow, len(LEAVES))
                    outcome = await bench.send(honest(new, size, bench.clock.now + 1))
                    assert outcome.error is None, (step, outcome.as_dict())
                    size = new
                    vouched.add(size)
            assert max(await bench.cosigned()) == size
    run(scenario())
