"""The policy, asked by the operator edges (console and API) and the federation handlers.

:class:`Guard` builds an operator's actor from the directory as it is *now*, reads the
facts of the object a request names, asks :func:`~hotline.authz.policy.decide`, and turns
a refusal into the edge's error — after exactly one line on the ``hotline.security``
logger naming actor, object and action (:func:`refused`). An object the actor may not
see answers exactly as one that does not exist (same status, id and text).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

from sqlalchemy import Connection

from hotline.authz import facts
from hotline.authz.policy import (
    Action,
    Actor,
    Admin,
    Decision,
    Object,
    OperatorActor,
    PeerActor,
    decide,
)
from hotline.bounds import is_id
from hotline.calls.registry import Registry
from hotline.errors import HotlineError, PeerRefused
from hotline.store.database import Database

security_log = logging.getLogger("hotline.security")

Kind = Literal["call", "conversation", "message"]

#: what a missing object answers, per kind (an invisible one answers the same)
_MISSING = {"call": ("no-call", "there is no call {}"),
            "conversation": ("no-conversation", "there is no conversation {}"),
            "message": ("no-message", "there is no message {}")}


#: released envelope types that concern one call or one conversation (the nodes' own
#: traffic about it): the inbox shows them only to whoever may read that object
CALL_TRAFFIC = frozenset({"call.place", "call.state", "call.cancel"})
CONVERSATION_TRAFFIC = frozenset({"conv.message", "conv.invite", "conv.receipt"})


class Traffic(Protocol):
    """A released envelope as the inbox holds it."""

    @property
    def type(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=Traffic)


def traffic_object(type_: str, payload: Mapping[str, Any]
                   ) -> tuple[Kind, str | None] | None:
    """The call or conversation a released envelope concerns, with its id (None when the
    payload names none: a malformed one, refused on arrival); None for the party's own
    traffic (what people sent, notices, incidents, desk reports, key and link notices),
    which every operator of the party reads."""
    if type_ in CALL_TRAFFIC:
        kind: Kind = "call"
        key = "call"
    elif type_ in CONVERSATION_TRAFFIC:
        kind, key = "conversation", "conversation"
    else:
        return None
    named: Any = payload
    statement = payload.get("statement")
    if isinstance(statement, str):  # call states and message receipts name it inside
        try:
            named = json.loads(statement)
        except ValueError:
            return kind, None
    value = named.get(key) if isinstance(named, dict) else None
    return kind, value if isinstance(value, str) and 0 < len(value) <= 64 else None


def refusal_reason(kind: str, obj_id: str, action: str, decision: Decision) -> str:
    """What was refused, and why: ``say conversation <id> (404: not a member)``."""
    return f"{action} {kind} {obj_id[:64]} ({decision.status}: {decision.reason})"


def refusal_line(actor: Actor, kind: str, obj_id: str, action: str,
                 decision: Decision) -> str:
    """What the security log says of a refusal."""
    return f"refused {actor.label}: {refusal_reason(kind, obj_id, action, decision)}"


def refused(actor: Actor, kind: str, obj_id: str, action: str, decision: Decision) -> None:
    """The one security-log line of a refusal."""
    security_log.warning("%s", refusal_line(actor, kind, obj_id, action, decision))


def error_for(kind: Kind, obj_id: str, decision: Decision) -> HotlineError:
    if decision.status == 404:
        error_id, text = _MISSING[kind]
        return HotlineError(error_id, text.format(obj_id), status=404)
    return HotlineError("forbidden", f"not allowed: {decision.reason}", status=403)


def load(conn: Connection, me: str, directory: Any, kind: Kind, obj_id: str
         ) -> Object | None:
    if kind == "call":
        return facts.load_call(conn, me, obj_id)
    if kind == "conversation":
        return facts.load_conversation(conn, me, directory, obj_id)
    return facts.load_message(conn, me, directory, obj_id)


def sees_subject(conn: Connection, me: str, directory: Any, actor: Actor,
                 subject: str | None) -> bool:
    """Whether what the log says about ``subject`` may be shown to ``actor`` (the audit
    page): always, unless it is a call or conversation the actor may not read."""
    if isinstance(actor, Admin) or subject is None or not is_id(subject):
        return True
    for kind in ("call", "conversation"):
        obj = load(conn, me, directory, kind, subject)
        if obj is not None:
            return decide(actor, obj, "read").allowed
    return True


class Guard:
    """Authorization for the console and the operator API of one node."""

    def __init__(self, *, me: str, db: Database, registry: Registry) -> None:
        self.me = me
        self._db = db
        self._registry = registry

    async def operator(self, operator: str, via: str) -> OperatorActor | None:
        """The operator with the roles the current directory gives them; None if the
        directory no longer names them."""
        await self._registry.reload()
        op = self._registry.current.operators.get(operator)
        if op is None:
            return None
        return OperatorActor(operator=op.id, roles=frozenset(op.roles), via=via)

    def acting_operator(self, actor: Actor, named: str | None, what: str) -> str | None:
        """The operator a request acts for: an operator acts only as themself (naming
        another is refused, 403); the administrator acts for whoever it names."""
        if isinstance(actor, OperatorActor):
            if named is not None and named != actor.operator:
                decision = Decision(False, 403, f"names operator {named}, not itself")
                refused(actor, "operator", named, what, decision)
                raise HotlineError("operator-mismatch", f"this token acts only for "
                                                        f"{actor.operator}",
                                   status=403).already_logged()
            return actor.operator
        return named

    def require_role(self, actor: Actor, as_role: str, what: str) -> None:
        """An operator acts only in a role the directory gives them now (403)."""
        if isinstance(actor, OperatorActor) and as_role not in actor.roles:
            decision = Decision(False, 403, "the operator does not hold the role")
            refused(actor, "role", as_role, what, decision)
            raise HotlineError("role-not-held", f"{actor.operator} does not hold the role "
                                                f"{as_role}", status=403).already_logged()

    def require_admin(self, actor: Actor, what: str, kind: str = "directory",
                      obj_id: str | None = None) -> None:
        """Only the node's administrator changes the directory and the roster, and
        removes links (403)."""
        if not isinstance(actor, Admin):
            refused(actor, kind, obj_id or self.me, what,
                    Decision(False, 403, "only the administrator"))
            things = "change the directory or the roster" if kind == "directory" \
                else f"{what}"
            raise HotlineError("admin-only", f"only the node's administrator token may "
                                             f"{things}",
                               hint="run it on the node with its own token",
                               status=403).already_logged()

    async def require(self, actor: Actor, kind: Kind, obj_id: str, action: Action, *,
                      as_role: str | None = None, operator: str | None = None
                      ) -> str | None:
        """Allow ``action`` on the object or raise (404/403) after one security line.
        Returns the operator the action is done for (see :meth:`acting_operator`)."""
        acting = self.acting_operator(actor, operator, f"{action} {kind}")
        if as_role is not None:
            self.require_role(actor, as_role, f"{action} {kind} {obj_id[:64]}")
        if isinstance(actor, OperatorActor):
            await self._registry.reload()
        directory = self._registry.current
        obj = await self._db.read(lambda conn: load(conn, self.me, directory, kind, obj_id))
        decision = decide(actor, obj, action, as_role)
        if not decision.allowed:
            refused(actor, kind, obj_id, action, decision)
            raise error_for(kind, obj_id, decision).already_logged()
        return acting

    async def may_read(self, actor: Actor, kind: str, obj_id: str) -> bool:
        """Whether the actor may see the object (no log: for filtering a stream)."""
        if isinstance(actor, Admin):
            return True
        if kind not in ("call", "conversation", "message"):
            return False
        directory = self._registry.current
        obj = await self._db.read(
            lambda conn: load(conn, self.me, directory, kind, obj_id))  # type: ignore[arg-type]
        return decide(actor, obj, "read").allowed

    async def visible_traffic(self, actor: Actor, items: Sequence[T]) -> list[T]:
        """The released envelopes of a list (the inbox, its stream) the actor may see:
        the party's own traffic, and that of the calls and conversations it may read
        (one read for the whole list; no log: this filters, it refuses nothing)."""
        if isinstance(actor, Admin):
            return list(items)
        concern = [traffic_object(item.type, item.payload) for item in items]
        if all(c is None for c in concern):
            return list(items)
        directory = self._registry.current

        def read(conn: Connection) -> list[T]:
            seen: dict[tuple[Kind, str], bool] = {}
            out: list[T] = []
            for item, about in zip(items, concern, strict=True):
                if about is not None:
                    kind, obj_id = about
                    if obj_id is None:
                        continue
                    if (kind, obj_id) not in seen:
                        obj = load(conn, self.me, directory, kind, obj_id)
                        seen[(kind, obj_id)] = decide(actor, obj, "read").allowed
                    if not seen[(kind, obj_id)]:
                        continue
                out.append(item)
            return out
        return await self._db.read(read)

    def visible_calls(self, actor: Actor, calls: Sequence[Mapping[str, Any]]
                      ) -> list[Mapping[str, Any]]:
        """The calls of a list the actor may see (as :meth:`CallService.describe` gives)."""
        if isinstance(actor, Admin):
            return list(calls)
        return [c for c in calls
                if decide(actor, facts.described_call_facts(self.me, c), "read").allowed]

    async def visible_conversations(self, actor: Actor,
                                    conversations: Sequence[Mapping[str, Any]]
                                    ) -> list[Mapping[str, Any]]:
        if isinstance(actor, Admin):
            return list(conversations)
        directory = self._registry.current

        def read(conn: Connection) -> list[Mapping[str, Any]]:
            return [c for c in conversations
                    if decide(actor, facts.conversation_facts(conn, self.me, directory,
                                                              str(c["id"]), c["members"]),
                              "read").allowed]
        return await self._db.read(read)


def peer_require(party: str, kind: str, obj_id: str, action: Action,
                 obj: Object | None) -> None:
    """For the federation handlers (inside the receiver's transaction): the verified
    sender ``party`` may do ``action`` to ``obj``, or :class:`PeerRefused` is raised (the
    dispatcher undoes the envelope's effect and writes the one security-log line once
    the transaction has committed: a work function may run twice, a log line must not)."""
    actor = PeerActor(party)
    decision = decide(actor, obj, action)
    if not decision.allowed:
        raise PeerRefused(refusal_reason(kind, obj_id, action, decision))
