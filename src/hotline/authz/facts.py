"""What the policy needs to know about a call, conversation or message, read from the
store inside the caller's transaction (the federation handlers run in the receiver's;
the operator edges in a read of their own).

A call's roles come from our own signed statements about it, as stored: the ``ringing``
statements name each escalation step's roles, ``answered``/``declined`` the role that
responded, and a ``fallback`` statement whose reason starts with :data:`ALERTED` the
roles the fallback alerted. Statements signed by the peer name the peer's roles and are
never counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from hotline.authz.policy import CallFacts, ConversationFacts, MessageFacts

__all__ = ["ALERTED", "CallFacts", "ConversationFacts", "MessageFacts", "call_facts",
           "conversation_facts", "described_call_facts", "link_roles", "load_call",
           "load_conversation", "load_message"]
from hotline.calls.directory import Directory
from hotline.store import calls as call_store
from hotline.store.schema import conversation_messages, conversations

#: the start of the reason of the ``fallback`` statement that alerts our roles
#: (calls/service.py writes it; the roles are the statement's ``role``, comma-separated)
ALERTED = "alerted our "


def _split(role: object) -> set[str]:
    return {r for r in str(role).split(",") if r} if isinstance(role, str) else set()


def call_facts(*, me: str, call_id: str, direction: str, peer: str, caller_role: str,
               callee_role: str, history: Iterable[Mapping[str, Any]]) -> CallFacts:
    """Facts of a call from its statements (each a mapping with ``signed_by``, ``state``,
    ``role`` and ``reason``); only our own count."""
    rung: set[str] = set()
    responded: set[str] = set()
    alerted: set[str] = set()
    for entry in history:
        if entry.get("signed_by") != me:
            continue
        state, role = entry.get("state"), entry.get("role")
        if state == "ringing":
            rung |= _split(role)
        elif state in ("answered", "declined"):
            responded |= _split(role)
        elif state == "fallback" and str(entry.get("reason") or "").startswith(ALERTED):
            alerted |= _split(role)
    return CallFacts(id=call_id, direction="out" if direction == "out" else "in", peer=peer,
                     caller_role=caller_role, callee_role=callee_role,
                     rung=frozenset(rung) if direction == "in" else frozenset(),
                     responded=frozenset(responded) if direction == "in" else frozenset(),
                     alerted=frozenset(alerted) if direction == "out" else frozenset())


def described_call_facts(me: str, call: Mapping[str, Any]) -> CallFacts:
    """Facts of a call as :meth:`CallService.describe` shows it (for filtering lists)."""
    return call_facts(me=me, call_id=str(call["id"]), direction=str(call["direction"]),
                      peer=str(call["peer"]),
                      caller_role=str(call["caller"]).split("@")[0],
                      callee_role=str(call["callee"]).split("@")[0],
                      history=[e for e in call.get("history", ()) if e.get("verified")])


def load_call(conn: Connection, me: str, call_id: str) -> CallFacts | None:
    row = call_store.get(conn, call_id)
    if row is None:
        return None
    history = []
    for event in call_store.events(conn, [row.id])[row.id]:
        if event.signer != me or not event.verified:
            continue
        data = json.loads(event.statement)
        history.append({"signed_by": me, "state": data.get("state"),
                        "role": data.get("role"), "reason": data.get("reason")})
    return call_facts(me=me, call_id=row.id, direction=row.direction, peer=row.peer,
                      caller_role=row.caller_role, callee_role=row.callee_role,
                      history=history)


def link_roles(directory: Directory, parties: Iterable[str]) -> frozenset[str]:
    """Our roles that our link policies give towards ``parties``: those that may call
    them and those that accept their calls (the desks that keep those lines)."""
    roles: set[str] = set()
    for party in parties:
        policy = directory.policy_for(party)
        if policy is None:
            continue
        roles.update(r for r, targets in policy.may_call.items() if targets)
        for ours in policy.accept.values():
            roles.update(ours)
    return frozenset(roles)


def conversation_facts(conn: Connection, me: str, directory: Directory, conv_id: str,
                       members: Iterable[str]) -> ConversationFacts:
    member_set = frozenset(members)
    call = load_call(conn, me, conv_id)
    roles = call.roles if call is not None else link_roles(directory, member_set - {me})
    return ConversationFacts(id=conv_id, members=member_set, roles=roles)


def load_conversation(conn: Connection, me: str, directory: Directory, conv_id: str
                      ) -> ConversationFacts | None:
    row = conn.execute(select(conversations.c.members)
                       .where(conversations.c.id == conv_id)).first()
    if row is None:
        return None
    return conversation_facts(conn, me, directory, conv_id, json.loads(row.members))


def load_message(conn: Connection, me: str, directory: Directory, message_id: str,
                 conv_id: str | None = None) -> MessageFacts | None:
    """The message, if it exists (and, when ``conv_id`` is given, in that conversation)."""
    row = conn.execute(select(conversation_messages.c.party,
                              conversation_messages.c.conversation_id)
                       .where(conversation_messages.c.id == message_id)).first()
    if row is None or (conv_id is not None and row.conversation_id != conv_id):
        return None
    conv = load_conversation(conn, me, directory, row.conversation_id)
    if conv is None:
        return None
    return MessageFacts(id=message_id, author=row.party, conversation=conv)
