"""Conversations: what an answered call opens, between two or more parties.

Each message goes from its author's node straight to every other member it has a link
with, as its own envelope (exactly once, in order per link). Receipts are signed
statements: *delivered* by the receiving node as soon as the message is stored, *read*
and *acknowledged* by a person acting in a role. A conference is a conversation with
more members; adding one tells every member the new list.

What a peer sends about a conversation is first put to the authorization policy
(:mod:`hotline.authz`): only a member party acts on a conversation, and a receipt only
for a message that exists in it; anything refused is logged once and stored nowhere.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Connection, select, update

from hotline.authz import facts
from hotline.authz.guard import peer_require, refusal_reason
from hotline.authz.policy import Decision
from hotline.bounds import is_id
from hotline.calls.registry import Registry
from hotline.clock import Clock
from hotline.delivery.messenger import check_text
from hotline.delivery.outbound import Outbound, no_link
from hotline.effects import Effects
from hotline.errors import HotlineError, PeerRefused
from hotline.peers import receipt_statement
from hotline.protocol.envelope import PARTY_RE, new_envelope_id
from hotline.protocol.statement import (
    sign_message_receipt,
    verify_message_receipt,
)
from hotline.store import journal
from hotline.store import log as log_store
from hotline.store.database import Database
from hotline.store.schema import (
    conversation_messages,
    conversations,
    links,
    log_entries,
    message_receipts,
    outbox,
)

#: the longest role or operator name a column holds (``String(32)``)
NAME_MAX = 32


def _is_short(value: object, *, optional: bool = False) -> bool:
    """A role's or operator's name from a peer: text of 1 to :data:`NAME_MAX` characters
    without control characters (or None where ``optional``)."""
    if value is None:
        return optional
    return (isinstance(value, str) and 0 < len(value) <= NAME_MAX
            and not any(ord(c) < 32 or ord(c) == 127 for c in value))
MAX_MEMBERS = 16
MAX_TOPIC = 200


def _conversation(conn: Connection, conv_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(conversations).where(conversations.c.id == conv_id)).first()
    if row is None:
        return None
    return {"id": row.id, "topic": row.topic, "created_at": int(row.created_at),
            "members": json.loads(row.members)}


def open_for_call(conn: Connection, conv_id: str, topic: str, members: list[str], now: int,
                  effects: Effects) -> None:
    if _conversation(conn, conv_id) is not None:
        return
    conn.execute(conversations.insert().values(id=conv_id, topic=topic[:MAX_TOPIC],
                                               created_at=now,
                                               members=json.dumps(sorted(members))))
    effects.journal.append(journal.append(
        conn, "conversation", conv_id,
        {"conversation": {"id": conv_id, "topic": topic, "members": sorted(members)},
         "event": {"type": "opened"}}, now))


def _log_message(conn: Connection, conv_id: str, message: str, party: str, role: str,
                 operator: str | None, text: str, now: int) -> None:
    log_store.append_one(conn, "conversation-message", {
        "conversation": conv_id, "message": message, "party": party, "role": role,
        "operator": operator, "text_sha256": hashlib.sha256(text.encode()).hexdigest()},
        now, conv_id)


def _log_receipt(conn: Connection, conv_id: str, message: str, signer: str, kind: str,
                 statement: str, now: int) -> None:
    log_store.append_one(conn, "message-receipt", {
        "conversation": conv_id, "message": message, "signer": signer, "receipt": kind,
        "statement": statement}, now, conv_id)


def _undeliverable(conn: Connection, conv_id: str) -> list[tuple[str, str, str, int]]:
    """(message id, party, why, when) of our messages in ``conv_id`` that will never reach
    a party: given up while they waited (its link was removed), or written after its
    link was removed (never sealed: the log's ``undeliverable`` entry is the record).
    No signed receipt, our own record."""
    rows = conn.execute(select(outbox.c.peer, outbox.c.payload, outbox.c.failure,
                               outbox.c.failed_at).where(
        outbox.c.subject == conv_id, outbox.c.type == "conv.message",
        outbox.c.failed_at.isnot(None)))
    found = [(str(json.loads(r.payload).get("message")), r.peer, r.failure,
              int(r.failed_at)) for r in rows]
    for entry in conn.execute(select(log_entries.c.entry, log_entries.c.at).where(
            log_entries.c.subject == conv_id, log_entries.c.kind == "undeliverable")):
        body = json.loads(entry.entry)["body"]
        if "message" in body:
            found.append((str(body["message"]), str(body["peer"]), str(body["reason"]),
                          int(entry.at)))
    return found


def _removed_members(conn: Connection, members: list[str]) -> list[str]:
    """The members whose link with us is removed (read in the writer's transaction, not
    from a cache that a removal committed a moment ago may not have reached yet)."""
    rows = conn.execute(select(links.c.party).where(links.c.party.in_(members),
                                                    links.c.removed_at.isnot(None)))
    return sorted(r.party for r in rows)


def _set_members(conn: Connection, conv_id: str, members: list[str]) -> None:
    conn.execute(update(conversations).where(conversations.c.id == conv_id)
                 .values(members=json.dumps(sorted(set(members)))))


class ConversationService:
    def __init__(self, *, me: str, outbound: Outbound, registry: Registry, db: Database,
                 clock: Clock) -> None:
        self.me = me
        self._out = outbound
        self._registry = registry
        self._db = db
        self._clock = clock

    def _require(self, conn: Connection, conv_id: str) -> dict[str, Any]:
        conv = _conversation(conn, conv_id)
        if conv is None:
            raise HotlineError("no-conversation", f"there is no conversation {conv_id}",
                               status=404)
        return conv

    def _check_role(self, as_role: str, operator: str | None) -> None:
        self._registry.check_role(as_role, operator)

    # -- operator actions ----------------------------------------------------------------
    async def say(self, conv_id: str, text: str, as_role: str, operator: str | None
                  ) -> tuple[dict[str, Any], Effects]:
        text = check_text(text)
        await self._registry.reload()
        self._check_role(as_role, operator)

        def work(conn: Connection) -> tuple[dict[str, Any], Effects]:
            now = self._clock.now_ms()
            conv = self._require(conn, conv_id)
            effects = Effects()
            msg_id = new_envelope_id()
            conn.execute(conversation_messages.insert().values(
                id=msg_id, conversation_id=conv_id, party=self.me, role=as_role,
                operator=operator, text=text, sent_at=now, received_at=None))
            _log_message(conn, conv_id, msg_id, self.me, as_role, operator, text, now)
            payload = {"conversation": conv_id, "message": msg_id, "role": as_role,
                       "operator": operator, "text": text, "sent_at": now,
                       "topic": conv["topic"], "members": conv["members"]}
            removed = _removed_members(conn, conv["members"])
            for member in conv["members"]:
                if member in removed:  # never sent: said so, in the log and the answer
                    log_store.append_one(conn, "undeliverable", {
                        "peer": member, "conversation": conv_id, "message": msg_id,
                        "type": "conv.message", "subject": conv_id,
                        "reason": f"undeliverable: the link with {member} was removed"},
                        now, conv_id)
                elif member != self.me and self._out.has_link(member):
                    effects.send(member, self._out.enqueue(conn, member, "conv.message",
                                                           [payload], now, conv_id))
            message = {"id": msg_id, "conversation": conv_id, "party": self.me,
                       "role": as_role, "operator": operator, "text": text, "sent_at": now,
                       "undeliverable": removed}
            effects.journal.append(journal.append(conn, "conversation", conv_id,
                                                  {"conversation": conv,
                                                   "event": {"type": "message", **message}},
                                                  now))
            return message, effects
        return await self._db.write(work)

    async def add_member(self, conv_id: str, party: str) -> tuple[dict[str, Any], Effects]:
        if not PARTY_RE.match(party):
            raise HotlineError("bad-party", f"{party!r} is not a party id")
        if not self._out.has_link(party):
            raise no_link(party)

        def work(conn: Connection) -> tuple[dict[str, Any], Effects]:
            now = self._clock.now_ms()
            conv = self._require(conn, conv_id)
            members = sorted(set(conv["members"]) | {party})
            if len(members) > MAX_MEMBERS:
                raise HotlineError("too-many-members", f"a conversation has at most "
                                                       f"{MAX_MEMBERS} parties")
            _set_members(conn, conv_id, members)
            conv["members"] = members
            effects = Effects()
            invite = {"conversation": conv_id, "topic": conv["topic"], "members": members}
            for member in members:
                if member != self.me and self._out.has_link(member):
                    effects.send(member, self._out.enqueue(conn, member, "conv.invite",
                                                           [invite], now, conv_id))
            effects.journal.append(journal.append(
                conn, "conversation", conv_id,
                {"conversation": conv, "event": {"type": "members", "added": party}}, now))
            return conv, effects
        return await self._db.write(work)

    async def receipt(self, message_id: str, kind: str, as_role: str, operator: str | None
                      ) -> tuple[dict[str, Any], Effects]:
        if kind not in ("read", "acknowledged"):
            raise HotlineError("bad-receipt", "a person's receipt is 'read' or 'acknowledged'")
        await self._registry.reload()
        self._check_role(as_role, operator)

        def work(conn: Connection) -> tuple[dict[str, Any], Effects]:
            now = self._clock.now_ms()
            row = conn.execute(select(conversation_messages)
                               .where(conversation_messages.c.id == message_id)).first()
            if row is None or row.party == self.me:
                raise HotlineError("no-message", f"there is no received message {message_id}",
                                   status=404)
            effects = Effects()
            self._give_receipt(conn, row.conversation_id, message_id, row.party, kind, now,
                               effects, operator=operator, role=as_role)
            return {"message": message_id, "receipt": kind}, effects
        return await self._db.write(work)

    def _give_receipt(self, conn: Connection, conv_id: str, message_id: str, author: str,
                      kind: str, now: int, effects: Effects, *, operator: str | None = None,
                      role: str | None = None) -> None:
        known = conn.execute(select(message_receipts.c.at).where(
            message_receipts.c.message_id == message_id, message_receipts.c.party == self.me,
            message_receipts.c.kind == kind)).first()
        if known is not None:
            return
        stmt = sign_message_receipt(message=message_id, conversation=conv_id, author=author,
                                    signer=self.me, receipt=kind, at=now,
                                    keys=self._out.keys, operator=operator, role=role)
        conn.execute(message_receipts.insert().values(
            message_id=message_id, party=self.me, kind=kind, operator=operator, role=role,
            at=now, statement=stmt.raw, verified=1))
        _log_receipt(conn, conv_id, message_id, self.me, kind, stmt.raw, now)
        if self._out.has_link(author):
            effects.send(author, self._out.enqueue(conn, author, "conv.receipt",
                                                   [{"statement": stmt.raw}], now, conv_id))

    # -- from peers (inside the receiver's transaction) ------------------------------------
    def _facts(self, conn: Connection, conv: dict[str, Any]) -> facts.ConversationFacts:
        return facts.conversation_facts(conn, self.me, self._registry.current, conv["id"],
                                        conv["members"])

    def _require_open(self, conn: Connection, peer: str, conv_id: str) -> None:
        """A conversation this node does not hold yet may be opened by a peer, unless its
        id is a call of ours with another party."""
        peer_require(peer, "conversation", conv_id, "open",
                     facts.load_call(conn, self.me, conv_id))

    def on_message(self, conn: Connection, peer: str, payload: dict[str, Any], now: int,
                   effects: Effects) -> None:
        p = payload
        fields = {"conversation", "message", "role", "operator", "text", "sent_at", "topic",
                  "members"}
        if (set(p) != fields or not all(isinstance(p[k], str) for k in ("text", "topic"))
                or not is_id(p["conversation"]) or not is_id(p["message"])
                or not _is_short(p["role"]) or not _is_short(p["operator"], optional=True)
                or not isinstance(p["members"], list) or self.me not in p["members"]
                or peer not in p["members"] or type(p["sent_at"]) is not int):
            raise PeerRefused("conv.message is malformed")
        members = [m for m in p["members"] if isinstance(m, str) and PARTY_RE.match(m)]
        conv = _conversation(conn, p["conversation"])
        if conv is None:
            self._require_open(conn, peer, p["conversation"])
        else:
            peer_require(peer, "conversation", p["conversation"], "say",
                         self._facts(conn, conv))
        taken = conn.execute(select(conversation_messages.c.conversation_id,
                                    conversation_messages.c.party)
                             .where(conversation_messages.c.id == p["message"])).first()
        if taken is not None:
            # the same message again is a harmless repeat; an id that is another
            # message's (another conversation's, another author's) is refused, and
            # before a conversation is opened for it
            if (taken.conversation_id, taken.party) != (p["conversation"], peer):
                raise PeerRefused(refusal_reason(
                    "message", p["message"], "say",
                    Decision(False, 409, "the message id is another message's")))
            return
        if conv is None:
            open_for_call(conn, p["conversation"], p["topic"], members, now, effects)
            conv = self._require(conn, p["conversation"])
        operator = p["operator"] if isinstance(p["operator"], str) else None
        conn.execute(conversation_messages.insert().values(
            id=p["message"], conversation_id=p["conversation"], party=peer, role=p["role"],
            operator=operator, text=p["text"], sent_at=p["sent_at"], received_at=now))
        _log_message(conn, p["conversation"], p["message"], peer, p["role"], operator,
                     p["text"], now)
        message = {"id": p["message"], "conversation": p["conversation"], "party": peer,
                   "role": p["role"], "operator": p["operator"], "text": p["text"],
                   "sent_at": p["sent_at"], "received_at": now}
        effects.journal.append(journal.append(conn, "conversation", p["conversation"],
                                              {"conversation": conv,
                                               "event": {"type": "message", **message}}, now))
        self._give_receipt(conn, p["conversation"], p["message"], peer, "delivered", now,
                           effects)

    def on_invite(self, conn: Connection, peer: str, payload: dict[str, Any], now: int,
                  effects: Effects) -> None:
        members = payload.get("members")
        conv_id = payload.get("conversation")
        topic = payload.get("topic")
        if (not is_id(conv_id) or not isinstance(topic, str)
                or not isinstance(members, list) or self.me not in members
                or peer not in members):
            raise PeerRefused("conv.invite is malformed")
        assert isinstance(conv_id, str)
        clean = [m for m in members if isinstance(m, str) and PARTY_RE.match(m)]
        conv = _conversation(conn, conv_id)
        if conv is None:
            self._require_open(conn, peer, conv_id)
            open_for_call(conn, conv_id, topic, clean, now, effects)
            return
        peer_require(peer, "conversation", conv_id, "add-member", self._facts(conn, conv))
        merged = sorted(set(conv["members"]) | set(clean))
        _set_members(conn, conv_id, merged)
        effects.journal.append(journal.append(
            conn, "conversation", conv_id,
            {"conversation": {**conv, "members": merged}, "event": {"type": "members"}}, now))

    def on_receipt(self, conn: Connection, peer: str, payload: dict[str, Any], now: int,
                   effects: Effects) -> None:
        stmt = receipt_statement(self._out.peers, peer, payload, "conv.receipt",
                                 verify_message_receipt)
        raw = str(payload["statement"])  # verified: the string as signed
        message = facts.load_message(conn, self.me, self._registry.current, stmt.message,
                                     stmt.conversation)
        if message is not None and message.author != stmt.author:
            message = None  # the statement is about another party's message
        peer_require(peer, "message", stmt.message, "receipt", message)
        known = conn.execute(select(message_receipts.c.at).where(
            message_receipts.c.message_id == stmt.message, message_receipts.c.party == peer,
            message_receipts.c.kind == stmt.receipt)).first()
        if known is not None:
            return
        conn.execute(message_receipts.insert().values(
            message_id=stmt.message, party=peer, kind=stmt.receipt, operator=stmt.operator,
            role=stmt.role, at=stmt.at, statement=raw, verified=1))
        _log_receipt(conn, stmt.conversation, stmt.message, peer, stmt.receipt, raw, now)
        effects.journal.append(journal.append(
            conn, "conversation", stmt.conversation,
            {"conversation": {"id": stmt.conversation},
             "event": {"type": "receipt", "message": stmt.message, "receipt": stmt.receipt,
                       "party": peer, "operator": stmt.operator, "role": stmt.role,
                       "at": stmt.at, "verified": True}}, now))

    # -- reading -------------------------------------------------------------------------
    async def get(self, conv_id: str) -> dict[str, Any]:
        def read(conn: Connection) -> dict[str, Any]:
            conv = self._require(conn, conv_id)
            rows = conn.execute(select(conversation_messages)
                                .where(conversation_messages.c.conversation_id == conv_id)
                                .order_by(conversation_messages.c.sent_at,
                                          conversation_messages.c.id)).all()
            ids = [r.id for r in rows]
            receipts: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
            if ids:
                for r in conn.execute(select(message_receipts)
                                      .where(message_receipts.c.message_id.in_(ids))
                                      .order_by(message_receipts.c.at)):
                    receipts[r.message_id].append({"party": r.party, "receipt": r.kind,
                                                   "operator": r.operator, "role": r.role,
                                                   "at": int(r.at),
                                                   "verified": bool(r.verified)})
            for message_id, party, failure, at in _undeliverable(conn, conv_id):
                if message_id in receipts:  # our message that will never reach ``party``
                    receipts[message_id].append({"party": party, "receipt": "undeliverable",
                                                 "operator": None, "role": None, "at": at,
                                                 "verified": None, "reason": failure})
            conv["messages"] = [{"id": r.id, "party": r.party, "role": r.role,
                                 "operator": r.operator, "text": r.text,
                                 "sent_at": int(r.sent_at), "received_at": r.received_at,
                                 "receipts": receipts[r.id]} for r in rows]
            return conv
        return await self._db.read(read)

    async def recent(self) -> list[dict[str, Any]]:
        def read(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(select(conversations)
                                .order_by(conversations.c.created_at.desc())).all()
            return [{"id": r.id, "topic": r.topic, "created_at": int(r.created_at),
                     "members": json.loads(r.members)} for r in rows]
        return await self._db.read(read)
