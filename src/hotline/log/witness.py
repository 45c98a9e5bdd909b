"""Witnessing a peer's log: check its checkpoint, remember it, cosign it.

A peer sends its signed checkpoint (size, root) with a consistency proof from the
largest size this node has cosigned for it. This node cosigns only a tree that extends
everything it cosigned before: never a smaller tree, never a different root for a size
it has seen. Two checkpoints signed for one size are equivocation; a smaller tree is a
rollback; a failed proof is a rewritten history. Each is refused, kept as evidence (both
checkpoints) and raised as an alarm — and the evidence commits even though the request
is refused. What is cosigned is stored before the answer leaves, so a crash can never
make this node forget what it vouched for.
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
from hotline.protocol.checkpoint import Checkpoint, make_cosignature, verify_checkpoint
from hotline.protocol.keys import PartyKeys, b64d
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.schema import evidence, log_checkpoints

security_log = logging.getLogger("hotline.security")
MAX_PROOF = 64


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

    def as_dict(self) -> dict[str, Any]:
        if self.error is None:
            return {"cosignature": self.cosignature}
        out: dict[str, Any] = dict(self.error.to_dict())
        if self.latest_size is not None:
            out["latest_size"] = self.latest_size
        return out


def _refusal(error_id: str, message: str) -> HotlineError:
    return HotlineError(error_id, message, status=409)


class Witness:
    def __init__(self, *, me: str, keys: PartyKeys, peers: PeerDirectory, db: Database,
                 clock: Clock, alarms: Alarms) -> None:
        self.alarms = alarms
        self._me = me
        self._keys = keys
        self._peers = peers
        self._db = db
        self._clock = clock

    def parse(self, body: object) -> Request:
        if not isinstance(body, dict) or set(body) != {"checkpoint", "from_size", "proof"}:
            raise HotlineError("bad-checkpoint", "expected checkpoint, from_size and proof")
        cp = body["checkpoint"]
        origin = cp.get("origin") if isinstance(cp, dict) else None
        link = self._peers.get(origin) if isinstance(origin, str) else None
        if link is None:
            raise HotlineError("unknown-sender", f"{origin!r} is not a linked party",
                               status=403)
        checkpoint = verify_checkpoint(cp, link.keys, link.party)
        from_size, proof = body["from_size"], body["proof"]
        if type(from_size) is not int or not 0 <= from_size <= checkpoint.size:
            raise HotlineError("bad-checkpoint", "from_size must be an integer from 0 to "
                                                 "the checkpoint's size")
        if not isinstance(proof, list) or len(proof) > MAX_PROOF \
                or not all(isinstance(h, str) for h in proof):
            raise HotlineError("bad-checkpoint", "proof must be a list of base64url hashes")
        return Request(checkpoint, from_size,
                       [b64d(h, expect_len=32, what="proof hash") for h in proof])

    async def cosign(self, body: object) -> Outcome:
        request = self.parse(body)
        return await self._db.write(lambda conn: self._decide(conn, request))

    def _decide(self, conn: Connection, req: Request) -> Outcome:
        cp, now = req.checkpoint, self._clock.now_ms()
        rows = conn.execute(select(log_checkpoints)
                            .where(log_checkpoints.c.origin == cp.origin,
                                   log_checkpoints.c.witness == self._me)
                            .order_by(log_checkpoints.c.size.desc())).all()
        same = [r for r in rows if int(r.size) == cp.size]
        if any(bytes(r.root) != cp.root for r in same):
            return self._alarm(conn, cp, same[0].checkpoint, "log-equivocation",
                               f"{cp.origin} signed two different roots for size {cp.size}",
                               "equivocation", now)
        latest = rows[0] if rows else None
        if latest is not None and cp.size < int(latest.size):
            return self._alarm(conn, cp, latest.checkpoint, "log-shrinking",
                               f"{cp.origin} presented {cp.size} entries after "
                               f"{int(latest.size)} were cosigned", "checkpoint-shrinks", now)
        if same:
            return Outcome(cosignature=json.loads(same[0].cosignature))
        if latest is not None:
            if req.from_size != int(latest.size):
                return Outcome(error=_refusal(
                    "stale-base", f"prove consistency from size {int(latest.size)}, the "
                                  "largest cosigned"), latest_size=int(latest.size))
            if not verify_consistency(int(latest.size), cp.size, bytes(latest.root), cp.root,
                                      req.proof):
                return self._alarm(conn, cp, latest.checkpoint, "log-inconsistent",
                                   f"{cp.origin}'s tree of {cp.size} does not extend the "
                                   f"cosigned tree of {int(latest.size)}",
                                   "inconsistent-checkpoint", now)
        cosignature = make_cosignature(cp, self._me, now, self._keys)
        conn.execute(log_checkpoints.insert().values(
            origin=cp.origin, witness=self._me, size=cp.size, root=cp.root,
            checkpoint=canonical.encode(cp.to_dict()).decode(),
            cosignature=canonical.encode(cosignature).decode(), at=now))
        log_store.append_one(conn, "cosigned", {"origin": cp.origin, "size": cp.size,
                                                "root": cp.root.hex()}, now)
        return Outcome(cosignature=cosignature)

    def _alarm(self, conn: Connection, cp: Checkpoint, other: str, kind: str, detail: str,
               error_id: str, now: int) -> Outcome:
        raw = canonical.encode(cp.to_dict())
        conn.execute(evidence.insert().values(peer=cp.origin, kind=kind, detail=detail,
                                              envelope=raw, other_envelope=other.encode(),
                                              at=now))
        effects = Effects()
        self.alarms.raise_in(conn, Alarm(kind, cp.origin, detail,
                                         {"peer": cp.origin, "size": cp.size}), now, effects)
        security_log.error("ALARM %s: %s; both checkpoints kept as evidence", kind, detail)
        return Outcome(error=_refusal(error_id, f"{detail}; refused, kept as evidence"),
                       effects=effects)
