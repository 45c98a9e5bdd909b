"""Rows the log says exist but the state lacks: what can be put back, and how.

The log keeps of each envelope its id, sequence number, type, subject and the digest of
its message, not the message itself, so a lost ``outbox`` or ``inbound`` row cannot be
re-created as it was. What the log does allow:

* a lost envelope the peer never acknowledged (the line to the peer waits on its
  sequence number) is replaced by a ``seq.lost`` envelope under the same id and sequence
  number, naming what was lost; the peer releases it in order, shows it, and the line
  moves again. It is logged as a new ``sent`` entry, which replaces the first for that
  sequence number;
* a lost inbound envelope not yet released is replaced the same way by a ``seq.lost``
  row (logged as a new ``received`` entry), so the envelopes after it are released;
* a lost row whose envelope was acknowledged (outbox) or already released (inbound)
  blocks nothing: the repair records the loss in the log, and the row is no longer
  expected.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Connection, select

from hotline.integrity.findings import Change, Finding, Fix, RepairContext
from hotline.integrity.view import Envelope, LogView
from hotline.protocol import canonical
from hotline.protocol.envelope import Header, seal
from hotline.protocol.lanes import CONTROL, Lane
from hotline.protocol.receipt import message_digest
from hotline.store import log as log_store
from hotline.store.inbound import LOST_TYPE
from hotline.store.log import Record
from hotline.store.outbox import lane_field
from hotline.store.schema import inbound, links, outbox


def lost_payload(env: Envelope) -> dict[str, Any]:
    """What a ``seq.lost`` envelope says: which envelope it stands for."""
    return {"lost": {"id": env.id, "type": env.type, "digest": env.digest,
                     "subject": env.subject},
            "reason": "the original was lost from the sender's database; only its digest "
                      "is on record"}


def _recorded(table: str, peer: str, seq: int, env: Envelope, row: str, why: str,
              lane: Lane = CONTROL) -> Fix:
    def apply(_conn: Connection, _ctx: RepairContext) -> None:
        pass  # the repair's log entry records the loss; nothing in the tables changes
    return Fix((Change(table, row, "(row)", "missing", f"recorded as lost: {why}"),), apply,
               {"lost": [lane_field({"table": table, "peer": peer, "seq": seq, "id": env.id},
                                    lane)]})


def _row(peer: str, seq: int, lane: Lane) -> str:
    return f"peer={peer} seq={seq}" + ("" if lane == CONTROL else f" lane={lane}")


def lost_outbound(conn: Connection, view: LogView, peer: str, seq: int,
                  env: Envelope, lane: Lane = CONTROL) -> Finding:
    """A ``sent`` entry without its outbox row, on ``lane`` (a bulk stand-in depends on
    no control envelope: ``after`` 0)."""
    row = _row(peer, seq, lane)
    receipt = view.receipts.get(env.id)
    said = f"the row is missing: the log sent envelope {env.id} ({env.type}) as seq {seq}"
    if receipt is not None:
        return Finding("outbox", "outbox", row, f"{said}; {peer} acknowledged it (receipt "
                       f"in entry {receipt}), so nothing waits on it, but its text is lost "
                       "(the log keeps only its digest)", env.idx,
                       _recorded("outbox", peer, seq, env, row,
                                 f"{peer} had acknowledged it", lane))

    def apply(c: Connection, ctx: RepairContext) -> None:
        assert ctx.keys is not None
        recipient = ctx.peers[peer]
        payload = lost_payload(env)
        header = Header(id=env.id, sender=ctx.me, recipient=peer, kid=ctx.keys.public.key_id,
                        seq=seq, ts=ctx.now_ms, type=LOST_TYPE, lane=lane,
                        after=None if lane == CONTROL else 0)
        c.execute(outbox.insert().values(
            peer=peer, envelope_id=env.id, seq=seq, type=LOST_TYPE, subject=env.subject,
            payload=canonical.encode(payload).decode(),
            envelope=seal(header, payload, ctx.keys, recipient), created_at=ctx.now_ms,
            sealed_at=ctx.now_ms, lane=lane))
        log_store.append(c, [Record("sent", lane_field({
            "peer": peer, "id": env.id, "seq": seq, "type": LOST_TYPE, "subject": env.subject,
            "replaces": env.idx,
            "digest": message_digest(envelope_id=env.id, sender=ctx.me, recipient=peer,
                                     seq=seq, type_=LOST_TYPE, payload=payload, lane=lane)},
            lane), ctx.now_ms, env.subject)])

    fix = Fix((Change("outbox", row, "(row)", None,
                      f"a {LOST_TYPE} envelope {env.id} standing for the lost {env.type}"),),
              apply, {"resent": [{"peer": peer, "seq": seq, "id": env.id}]}, needs_keys=True)
    return Finding("outbox", "outbox", row, f"{said} and {peer} never acknowledged it: "
                   f"{peer} waits on seq {seq} and releases nothing after it; its text is "
                   "lost (the log keeps only its digest)", env.idx, fix)


def lost_inbound(conn: Connection, view: LogView, peer: str, seq: int,
                 env: Envelope, lane: Lane = CONTROL) -> Finding:
    """A ``received`` entry without its inbound row, on ``lane``."""
    row = _row(peer, seq, lane)
    said = f"the row is missing: the log received envelope {env.id} ({env.type}) as seq {seq}"
    column = links.c.recv_next if lane == CONTROL else links.c.bulk_recv_next
    recv_next = conn.execute(select(column).where(links.c.party == peer)).scalar()
    if recv_next is not None and seq < int(recv_next):
        return Finding("inbound", "inbound", row, f"{said}; it had been released, so nothing "
                       "waits on it, but our copy is lost (the log keeps only its digest)",
                       env.idx, _recorded("inbound", peer, seq, env, row,
                                          "it had been released", lane))

    def apply(c: Connection, ctx: RepairContext) -> None:
        payload = lost_payload(env)
        c.execute(inbound.insert().values(
            peer=peer, envelope_id=env.id, seq=seq, type=LOST_TYPE,
            payload=canonical.encode(payload).decode(), envelope=b"", sent_at=ctx.now_ms,
            received_at=ctx.now_ms, lane=lane))
        log_store.append(c, [Record("received", lane_field({
            "peer": peer, "id": env.id, "seq": seq, "type": LOST_TYPE, "subject": env.subject,
            "replaces": env.idx,
            "digest": message_digest(envelope_id=env.id, sender=peer, recipient=ctx.me,
                                     seq=seq, type_=LOST_TYPE, payload=payload, lane=lane)},
            lane), ctx.now_ms, env.subject)])

    fix = Fix((Change("inbound", row, "(row)", None,
                      f"a {LOST_TYPE} row standing for the lost {env.type}, released in "
                      "order with what follows it"),), apply,
              {"resent": [{"peer": peer, "seq": seq, "id": env.id, "inbound": True}]})
    return Finding("inbound", "inbound", row, f"{said}, not yet released: the line from "
                   f"{peer} waits on it ({peer} holds our receipt and will not send it "
                   "again); its text is lost (the log keeps only its digest)", env.idx, fix)


def text_from_envelopes(conn: Connection, conversation: str, message: str,
                        digest: str) -> str | None:
    """The text of ``message`` from a stored envelope payload that hashes to ``digest``
    (our outbox copy if we wrote it, the inbound copy if a peer did), or None."""
    like = f'%"message":"{message}"%'
    for table in (outbox, inbound):
        for (payload,) in conn.execute(select(table.c.payload).where(
                table.c.type == "conv.message", table.c.payload.like(like))):
            try:
                obj = json.loads(payload)
            except ValueError:
                continue
            text = obj.get("text") if isinstance(obj, dict) else None
            if (isinstance(text, str) and obj.get("message") == message
                    and obj.get("conversation") == conversation
                    and hashlib.sha256(text.encode()).hexdigest() == digest):
                return text
    return None
