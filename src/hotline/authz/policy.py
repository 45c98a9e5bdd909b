"""The authorization policy: a pure function of (actor, object, action).

Every edge asks it — the console, the operator API and the federation handlers — so the
rules live here and nowhere else:

* An **operator** sees and acts on a call or conversation only through one of their
  roles that placed the call, was rung on it (the role called, or an escalation step's),
  answered or declined it, or was alerted by its fallback — and only roles the directory
  gives them *now* (the actor is built from the current directory on every request, so a
  session or token whose operator lost a role loses what the role gave at once). A role
  named for an action (``as``) must be one of those.
* The **administrator** (the node directory's token file, the local CLI) may act on
  any object, as any operator; the services still check that a named operator holds the
  role named.
* A **peer party** acts on a conversation only as a member party, on messages that exist
  in it (a receipt for a message it does not hold, or from a non-member, is refused);
  on a call only as the call's other party, in the direction its side plays.

Refusals never tell an object exists to someone who may not see it: an actor who may not
*read* an object gets ``404`` for every action on it, exactly as if it did not exist; an
actor who may read it but not do this action gets ``403`` (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: What an actor does to an object.
Action = Literal["read", "answer", "decline", "cancel", "say", "add-member", "receipt",
                 "state", "open"]
#: Actions an operator (or the administrator) takes through the console or the API.
OPERATOR_ACTIONS: frozenset[str] = frozenset({"read", "answer", "decline", "cancel", "say",
                                              "add-member", "receipt"})
#: Actions a peer party takes through the federation API (envelopes): ``say`` is a
#: ``conv.message``, ``add-member`` a ``conv.invite``, ``receipt`` a ``conv.receipt``,
#: ``cancel`` a ``call.cancel``, ``state`` a ``call.state``, ``open`` a message or invite
#: for a conversation this node does not hold yet.
PEER_ACTIONS: frozenset[str] = frozenset({"say", "add-member", "receipt", "cancel", "state",
                                          "open"})


@dataclass(frozen=True)
class Admin:
    """The node's local administrator: the token file in the node directory."""

    @property
    def label(self) -> str:
        return "admin"


@dataclass(frozen=True)
class OperatorActor:
    """An operator, with the roles the directory gives them at the time of the request.

    ``via``: how they came (``console``, or ``token:ID`` for an operator API token),
    for the log."""

    operator: str
    roles: frozenset[str]
    via: str = "console"

    @property
    def label(self) -> str:
        return f"operator {self.operator} ({self.via})"


@dataclass(frozen=True)
class PeerActor:
    """A linked party, as the verified sender of an envelope."""

    party: str

    @property
    def label(self) -> str:
        return f"peer {self.party}"


Actor = Admin | OperatorActor | PeerActor


@dataclass(frozen=True)
class CallFacts:
    """What the policy needs to know about a call, as this node holds it.

    ``rung``: our roles rung on an incoming call (the role called and each escalation
    step's); ``responded``: our roles that answered or declined it; ``alerted``: our roles
    the fallback alerted about an outgoing call that failed."""

    id: str
    direction: Literal["in", "out"]
    peer: str
    caller_role: str
    callee_role: str
    rung: frozenset[str] = frozenset()
    responded: frozenset[str] = frozenset()
    alerted: frozenset[str] = frozenset()

    @property
    def roles(self) -> frozenset[str]:
        """Our roles through which the call may be seen."""
        if self.direction == "out":
            return frozenset({self.caller_role}) | self.alerted
        return frozenset({self.callee_role}) | self.rung | self.responded

    @property
    def answerable_as(self) -> frozenset[str]:
        """Roles that may answer or decline (incoming only): the ones rung on it."""
        return frozenset({self.callee_role}) | self.rung if self.direction == "in" \
            else frozenset()


@dataclass(frozen=True)
class ConversationFacts:
    """A conversation: its member parties, and our roles through which it may be seen
    (those of the call that opened it; for one this node joined by invitation, without
    a call of its own, the roles our link policies give towards its member parties)."""

    id: str
    members: frozenset[str]
    roles: frozenset[str]


@dataclass(frozen=True)
class MessageFacts:
    """A message of a conversation and the party that wrote it."""

    id: str
    author: str
    conversation: ConversationFacts


Object = CallFacts | ConversationFacts | MessageFacts


@dataclass(frozen=True)
class Decision:
    """``status``: 200 when allowed, else 403 or 404; ``reason`` says why (for the log,
    never more than the actor may know in the answer)."""

    allowed: bool
    status: int
    reason: str = field(default="")


ALLOW = Decision(True, 200, "allowed")


def _not_found(reason: str) -> Decision:
    return Decision(False, 404, reason)


def _forbidden(reason: str) -> Decision:
    return Decision(False, 403, reason)


def roles_of(obj: Object) -> frozenset[str]:
    """Our roles through which ``obj`` may be seen."""
    if isinstance(obj, MessageFacts):
        return obj.conversation.roles
    return obj.roles


def decide(actor: Actor, obj: Object | None, action: Action, as_role: str | None = None
           ) -> Decision:
    """May ``actor`` do ``action`` to ``obj`` (None: no such object), acting in
    ``as_role`` when the request names one? Pure; total over its inputs."""
    if isinstance(actor, PeerActor):
        return _peer(actor, obj, action)
    if action not in OPERATOR_ACTIONS:
        return _forbidden(f"{action} is not an operator action")
    if isinstance(actor, OperatorActor) and as_role is not None \
            and as_role not in actor.roles:
        # decided before the object is looked at: the answer is the same whether it exists
        return _forbidden(f"the operator does not hold the role {as_role}")
    if obj is None:
        return _not_found("no such object")
    if isinstance(actor, Admin):
        return ALLOW
    return _operator(actor, obj, action, as_role)


def _operator(actor: OperatorActor, obj: Object, action: Action, as_role: str | None
              ) -> Decision:
    through = actor.roles & roles_of(obj)
    if not through:
        return _not_found("none of the operator's roles placed, was rung on, answered "
                          "or was alerted about it")
    if as_role is not None and as_role not in through:
        # a request that names a role acts in it: that role must have a part in the
        # object, whatever the action (reading included)
        return _forbidden(f"the role {as_role} has no part in this {_kind_of(obj)}")
    if action == "read":
        return ALLOW
    if action in ("answer", "decline"):
        if not isinstance(obj, CallFacts) or obj.direction != "in":
            return _forbidden(f"only an incoming call can be {action}ed")
        usable = actor.roles & obj.answerable_as
        if as_role is None or as_role not in usable:
            return _forbidden(f"the role named has not been rung on this call (rung: "
                              f"{', '.join(sorted(obj.answerable_as))})")
        return ALLOW
    if action == "cancel":
        if not isinstance(obj, CallFacts) or obj.direction != "out":
            return _forbidden("only an outgoing call can be cancelled")
        if obj.caller_role not in actor.roles or as_role not in (None, obj.caller_role):
            return _forbidden("only the role that placed the call may cancel it")
        return ALLOW
    if action in ("say", "add-member"):
        if not isinstance(obj, ConversationFacts):
            return _forbidden(f"{action} is done in a conversation")
    elif action == "receipt" and not isinstance(obj, MessageFacts):
        return _forbidden("a receipt is given for a message")
    return ALLOW


def _kind_of(obj: Object) -> str:
    if isinstance(obj, CallFacts):
        return "call"
    return "conversation" if isinstance(obj, ConversationFacts) else "message"


def _peer(actor: PeerActor, obj: Object | None, action: Action) -> Decision:
    party = actor.party
    if action not in PEER_ACTIONS:
        return _forbidden(f"{action} is not a peer action")
    if action == "open":
        # a conversation id this node does not hold yet: refused if it is the id of a
        # call of ours with another party (that call's conversation is not theirs to make)
        if isinstance(obj, CallFacts) and obj.peer != party:
            return _not_found("the id is a call with another party")
        if obj is not None and not isinstance(obj, CallFacts):
            return _forbidden("the conversation exists already")
        return ALLOW
    if obj is None:
        return _not_found("no such object")
    if action in ("cancel", "state"):
        if not isinstance(obj, CallFacts) or obj.peer != party:
            return _not_found("not a call with this party")
        wanted = "in" if action == "cancel" else "out"
        if obj.direction != wanted:
            return _not_found(f"a {action} concerns only a call the peer "
                              f"{'placed' if wanted == 'in' else 'was called on'}")
        return ALLOW
    conversation = obj.conversation if isinstance(obj, MessageFacts) else obj
    if not isinstance(conversation, ConversationFacts):
        return _not_found("not a conversation")
    if party not in conversation.members:
        return _not_found("the party is not a member of the conversation")
    if action == "receipt":
        if not isinstance(obj, MessageFacts):
            return _not_found("a receipt is for a message that exists in the conversation")
        if obj.author == party:
            return _forbidden("a party does not give receipts for its own messages")
        return ALLOW
    if isinstance(obj, MessageFacts):
        return _forbidden(f"{action} is done in a conversation")
    return ALLOW
