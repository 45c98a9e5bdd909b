"""Witnessing a peer's log: check its checkpoint, remember it, cosign it.

A peer sends its signed checkpoint (size, root) with a consistency proof from the
largest size this node has cosigned for it. This node cosigns only a tree that can exist
(``hotline.protocol.tree``: size 0 only with the empty tree's root, sizes and proofs in
bounds) and that extends everything it cosigned before: never a smaller tree, never a
different root for a size it has seen. What is cosigned is stored before the answer
leaves, so a crash can never make this node forget what it vouched for; nothing is
stored for a refused checkpoint except evidence, so a refusal cannot block the origin's
honest checkpoints later.

Every refusal, whatever its cause, leaves exactly one line on ``hotline.security``.
Evidence is kept (``hotline.store.evidence``, once per distinct pair, repeats counted)
and an alarm raised only when a known party's valid signature shows it misbehaving:

=========================  =============================  ==============================
refusal (error id)         evidence kind, against          what the pair holds
=========================  =============================  ==============================
equivocation               log-equivocation, origin       both checkpoints of one size
checkpoint-shrinks         log-shrinking, origin          a smaller tree signed later
invalid-tree-head          log-invalid-head, origin       the impossible checkpoint
bad-checkpoint /           checkpoint-impersonation,      a checkpoint of another
unknown-sender             the party that signed it       party's log, validly signed
=========================  =============================  ==============================

A malformed request, an unknown or forged signer, an older checkpoint replayed
(``stale-checkpoint``) and a proof from the wrong base (``stale-base``) are refused with
the log line only: anyone can send those, so they must not fill the evidence store or
ring anyone. A proof that does not verify (``inconsistent-checkpoint``: the proof is
unsigned, so it shows nothing about the origin) keeps no evidence but raises one
coalesced ``log-unproven`` alarm, cleared by the origin's next cosigned checkpoint.
The alarm's cause is (kind, party), and only a pair seen for the first time can raise
it: re-sending one pair counts a repeat and rings nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from hotline.clock import Clock
from hotline.effects import Effects
from hotline.errors import HotlineError
from hotline.health.alarms import Alarm, Alarms
from hotline.log.merkle import verify_consistency
from hotline.peers import PeerDirectory
from hotline.protocol import canonical
from hotline.protocol.checkpoint import (
    BAD_CHECKPOINT,
    INVALID_TREE_HEAD,
    Checkpoint,
    make_cosignature,
    signed_by,
    verify_checkpoint,
)
from hotline.protocol.keys import PartyKeys, b64d
from hotline.protocol.tree import HASH_SIZE, max_consistency_proof
from hotline.store import evidence as evidence_store
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.schema import log_checkpoints

security_log = logging.getLogger("hotline.security")


@dataclass(frozen=True)
class Request:
    checkpoint: Checkpoint
    from_size: int
    proof: list[bytes]


@dataclass(frozen=True)
class Outcome:
    cosignature: dict[str, Any] | None = None
    error: HotlineError | None = None
    effects: Effects | None = None  # an alarm raised: for the node to carry out
    latest_size: int | None = None  # with "stale-base": the size to prove from

    @property
    def status(self) -> int:
        return 200 if self.error is None else self.error.status

    def as_dict(self) -> dict[str, Any]:
        if self.error is None:
            return {"cosignature": self.cosignature}
        out: dict[str, Any] = dict(self.error.to_dict())
        if self.latest_size is not None:
            out["latest_size"] = self.latest_size
        return out


@dataclass(frozen=True)
class Accusation:
    """A refusal that a known party's own signature makes evidence against it."""

    party: str
    kind: str       # evidence and alarm kind, e.g. "log-equivocation"
    detail: str     # one sentence naming what the party signed
    statement: bytes
    other: bytes | None
    error: HotlineError
    size: int


class _Accused(Exception):
    def __init__(self, accusation: Accusation) -> None:
        super().__init__(accusation.detail)
        self.accusation = accusation


def _refusal(error_id: str, message: str) -> HotlineError:
    return HotlineError(error_id, message, status=409)


def _signed_at(stored_checkpoint: str) -> int | None:
    at = json.loads(stored_checkpoint).get("at")
    return at if type(at) is int else None


class Witness:
    def __init__(self, *, me: str, keys: PartyKeys, peers: PeerDirectory, db: Database,
                 clock: Clock, alarms: Alarms) -> None:
        self.alarms = alarms
        self._me = me
        self._keys = keys
        self._peers = peers
        self._db = db
        self._clock = clock

    # -- parsing: no state read, nothing written ----------------------------------------
    def parse(self, body: object) -> Request:
        """Check a request's shape, the checkpoint's signature and the tree rules.

        Raises ``HotlineError`` (bad-checkpoint 400, unknown-sender 403) for what proves
        nothing about anyone, and ``_Accused`` when a known party's valid signature is on
        the bad statement (an impossible tree, or a checkpoint of another party's log).
        """
        if not isinstance(body, dict) or set(body) != {"checkpoint", "from_size", "proof"}:
            raise HotlineError(BAD_CHECKPOINT, "expected checkpoint, from_size and proof")
        cp = body["checkpoint"]
        origin = cp.get("origin") if isinstance(cp, dict) else None
        link = self._peers.get(origin) if isinstance(origin, str) else None
        if link is None:
            error = HotlineError("unknown-sender", f"{_short(origin)} is not a linked party",
                                 status=403)
            self._impersonation(cp, error)
            raise error
        # the key the checkpoint names, from the origin's key history (a rotated-out key
        # within its grace), else the current one
        kid = cp.get("kid") if isinstance(cp, dict) else None
        named = (self._peers.keys_by_id(link.party) or {}).get(kid) \
            if isinstance(kid, str) else None
        try:
            checkpoint = verify_checkpoint(cp, named or link.keys, link.party)
        except HotlineError as exc:
            if exc.error_id == INVALID_TREE_HEAD:
                raise _Accused(Accusation(
                    link.party, "log-invalid-head",
                    f"{link.party} signed a checkpoint of a tree that cannot exist: "
                    f"{exc.message}", canonical.encode(cp), None, exc,
                    int(cp["size"]))) from None
            self._impersonation(cp, exc)
            raise
        refusal = self._peers.refusal(link.party, checkpoint.kid, checkpoint.at)
        if refusal is not None:
            raise HotlineError(refusal.error_id, f"checkpoint: {refusal.message}",
                               status=refusal.status)
        from_size, proof = body["from_size"], body["proof"]
        if type(from_size) is not int or not 0 <= from_size <= checkpoint.size:
            raise HotlineError(BAD_CHECKPOINT, "from_size must be an integer from 0 to "
                                               "the checkpoint's size")
        bound = max_consistency_proof(checkpoint.size)
        if not isinstance(proof, list) or len(proof) > bound \
                or not all(isinstance(h, str) for h in proof):
            raise HotlineError(BAD_CHECKPOINT, f"proof must be a list of at most {bound} "
                                               f"base64url hashes for a tree of "
                                               f"{checkpoint.size}")
        try:
            hashes = [b64d(h, expect_len=HASH_SIZE, what="proof hash") for h in proof]
        except HotlineError as exc:
            raise HotlineError(BAD_CHECKPOINT, f"proof: {exc.message}") from None
        return Request(checkpoint, from_size, hashes)

    def _impersonation(self, cp: object, error: HotlineError) -> None:
        """If a linked party other than the named origin validly signed ``cp`` (a
        checkpoint of a log that is not its own), raise ``_Accused`` against it."""
        if not isinstance(cp, dict):
            return
        for link in self._peers.all():
            if link.party != cp.get("origin") and link.keys.key_id == cp.get("kid") \
                    and signed_by(cp, link.keys):
                size = cp.get("size")
                raise _Accused(Accusation(
                    link.party, "checkpoint-impersonation",
                    f"{link.party} signed a checkpoint of {_short(cp.get('origin'))}'s log",
                    canonical.encode(cp), None, error, size if type(size) is int else 0))

    # -- deciding ---------------------------------------------------------------------
    async def cosign(self, raw: bytes, source: str = "unknown") -> Outcome:
        """Judge one request body (canonical JSON bytes) from ``source`` (an address):
        a cosignature, or a refusal logged once (with evidence and maybe an alarm)."""
        try:
            try:
                body = canonical.decode(raw)
            except HotlineError as exc:
                raise HotlineError(BAD_CHECKPOINT, f"request body: {exc.message}") from None
            request = self.parse(body)
        except _Accused as accused:
            accusation = accused.accusation
            return await self._db.write(lambda conn: self._accuse(
                conn, accusation, source, self._clock.now_ms()))
        except HotlineError as exc:
            self.log_refused(exc, source)
            return Outcome(error=exc)
        return await self._db.write(lambda conn: self._decide(conn, request, source))

    def log_refused(self, error: HotlineError, source: str, *, note: str = "") -> None:
        """The one security-log line of a refusal that keeps no evidence."""
        security_log.warning("refused checkpoint from %s: %s: %s%s", source, error.error_id,
                             error.message, note)

    def _decide(self, conn: Connection, req: Request, source: str) -> Outcome:
        cp, now = req.checkpoint, self._clock.now_ms()
        rows = conn.execute(select(log_checkpoints)
                            .where(log_checkpoints.c.origin == cp.origin,
                                   log_checkpoints.c.witness == self._me)
                            .order_by(log_checkpoints.c.size.desc())).all()
        same = [r for r in rows if int(r.size) == cp.size]
        for r in same:
            if bytes(r.root) == cp.root:  # vouched for already: the same answer again
                return Outcome(cosignature=json.loads(r.cosignature))
        if same:
            return self._accuse(conn, Accusation(
                cp.origin, "log-equivocation",
                f"{cp.origin} signed two different roots for size {cp.size}", cp.raw,
                str(same[0].checkpoint).encode(), _refusal("equivocation", ""), cp.size),
                source, now)
        latest = rows[0] if rows else None
        if latest is not None and cp.size < int(latest.size):
            latest_at = _signed_at(str(latest.checkpoint))
            if latest_at is None or cp.at <= latest_at:
                # signed no later than the larger tree: an old statement replayed (by
                # anyone who saw it), which says nothing about the origin's log now
                error = _refusal("stale-checkpoint", f"{cp.origin}'s tree of {cp.size} was "
                                 f"signed before the tree of {int(latest.size)} already "
                                 "cosigned")
                self.log_refused(error, source)
                return Outcome(error=error)
            return self._accuse(conn, Accusation(
                cp.origin, "log-shrinking",
                f"{cp.origin} presented {cp.size} entries after {int(latest.size)} were "
                "cosigned", cp.raw, str(latest.checkpoint).encode(),
                _refusal("checkpoint-shrinks", ""), cp.size), source, now)
        if latest is not None:
            if req.from_size != int(latest.size):
                error = _refusal("stale-base", f"prove consistency from size "
                                               f"{int(latest.size)}, the largest cosigned")
                self.log_refused(error, source)
                return Outcome(error=error, latest_size=int(latest.size))
            if not verify_consistency(int(latest.size), cp.size, bytes(latest.root), cp.root,
                                      req.proof):
                # The proof is not signed: anyone holding one of the origin's honest
                # checkpoints (every witness of it receives one) can send it with junk
                # hashes. A failed proof shows only that this request proves nothing, not
                # that the origin rewrote its log, so no evidence is kept against it. But
                # a witness that can no longer cosign an origin's log must not be silent:
                # one coalesced alarm stands until a checkpoint of that origin is
                # cosigned again (a relayed junk proof clears at the origin's next
                # checkpoint; a rewritten history never does).
                error = _refusal("inconsistent-checkpoint", f"the proof does not show "
                                 f"{cp.origin}'s tree of {cp.size} extending the cosigned "
                                 f"tree of {int(latest.size)}")
                effects = Effects()
                raised = self.alarms.raise_in(conn, Alarm(
                    "log-unproven", cp.origin,
                    f"a checkpoint of {cp.origin} came with a consistency proof that does "
                    f"not verify; none of its checkpoints is cosigned until one does",
                    {"peer": cp.origin, "size": cp.size}), now, effects)
                if raised:
                    security_log.error("ALARM log-unproven: refused checkpoint from %s: "
                                       "%s: %s", source, error.error_id, error.message)
                else:
                    self.log_refused(error, source)
                return Outcome(error=error, effects=effects)
        cosignature = make_cosignature(cp, self._me, now, self._keys)
        conn.execute(log_checkpoints.insert().values(
            origin=cp.origin, witness=self._me, size=cp.size, root=cp.root,
            checkpoint=cp.raw.decode(), cosignature=canonical.encode(cosignature).decode(),
            at=now))
        log_store.append_one(conn, "cosigned", {"origin": cp.origin, "size": cp.size,
                                                "root": cp.root.hex()}, now)
        effects = Effects()
        self.alarms.clear_in(conn, f"log-unproven:{cp.origin}", now, effects)
        return Outcome(cosignature=cosignature, effects=effects)

    def _accuse(self, conn: Connection, acc: Accusation, source: str, now: int) -> Outcome:
        """Keep the evidence (a repeat only counts), raise the (kind, party) alarm the
        first time this pair is seen, and log the refusal once. The evidence commits
        even though the request is refused."""
        row = evidence_store.record(conn, peer=acc.party, kind=acc.kind, detail=acc.detail,
                                    statement=acc.statement, other=acc.other, now_ms=now)
        effects = Effects()
        raised = row.new and self.alarms.raise_in(
            conn, Alarm(acc.kind, acc.party, acc.detail,
                        {"peer": acc.party, "size": acc.size, "evidence": row.id}),
            now, effects)
        message = acc.error.message or acc.detail
        line = (f"refused checkpoint from {source}: {acc.error.error_id}: {message}; "
                f"evidence {acc.kind} #{row.id} against {acc.party}, presented "
                f"{row.count} time{'s' if row.count != 1 else ''}")
        if raised:
            security_log.error("ALARM %s: %s", acc.kind, line)
        else:
            security_log.warning("%s", line)
        error = HotlineError(acc.error.error_id, f"{message}; refused, kept as evidence",
                             status=acc.error.status)
        return Outcome(error=error, effects=effects)


def _short(value: object) -> str:
    """A peer-chosen value for a message, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
