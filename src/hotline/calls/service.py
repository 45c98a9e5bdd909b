"""Calls to roles: the call state machine on both nodes.

The caller's node places a call (``call.place``) and decides only two things itself:
*undeliverable* (no endpoint of the callee accepted the call by the link's deadline) and
*cancelled*. Everything else — delivered, ringing step k, answered, declined, unanswered,
expired, refused — is decided by the callee's node, signed by the callee party as a
statement (:mod:`hotline.protocol.statement`) and sent back as ``call.state``, so the
caller sees each step live and can prove later what the other side said.

Every change happens inside one writer transaction together with its statement, its
outbox envelopes, its journal entry, its notification rows and its next deadline; the
transaction returns :class:`~hotline.effects.Effects` for the node to act on after the
commit. Deadlines are rows (``store/timers.py``) fired by ``escalation/timers.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection

from hotline.authz import facts
from hotline.authz.guard import peer_require
from hotline.calls import duty, queries
from hotline.calls.directory import ROLE_RE, Chain, Directory, Step
from hotline.calls.registry import Registry
from hotline.clock import Clock
from hotline.delivery.outbound import Outbound, no_link
from hotline.effects import Effects
from hotline.errors import HotlineError, LinkError, PeerRefused
from hotline.escalation.engine import Timing, plan
from hotline.protocol.envelope import PARTY_RE, new_envelope_id
from hotline.protocol.keys import KeyRing, PublicKeys
from hotline.protocol.statement import BadStatement, CallState, sign_call_state, verify_call_state
from hotline.store import calls as call_store
from hotline.store import directory as directory_store
from hotline.store import evidence as evidence_store
from hotline.store import journal, notifications, timers
from hotline.store import queries as query_store
from hotline.store.alarms import AlarmRow
from hotline.store.calls import CallRow
from hotline.store.database import Database
from hotline.store.outbox import is_delivered

log = logging.getLogger("hotline.calls")
security_log = logging.getLogger("hotline.security")

ACTIVE = frozenset({"placed", "delivered", "ringing", "undeliverable"})
#: States after which the callee's node does nothing more with a call.
FINAL = frozenset({"answered", "declined", "unanswered", "cancelled", "expired", "refused"})
MAX_REASON = 1000
MAX_FALLBACK_DEPTH = 5
CALL_ID_RE = re.compile(r"^[0-9a-f]{32}\Z")
MAX_BUDGET_MS = 7 * 24 * 3600 * 1000


def parse_address(text: str) -> tuple[str, str]:
    """``role@PARTY`` -> (role, party), with a clear error for anything else."""
    role, sep, party = text.partition("@")
    if not sep or not ROLE_RE.match(role) or not PARTY_RE.match(party):
        raise HotlineError("bad-address", f"{text!r} is not a role address",
                           hint="write ROLE@PARTY, e.g. cgs@RU-GS")
    return role, party


def check_reason(reason: str | None, *, required: bool = False) -> str | None:
    if reason is not None:
        reason = reason.strip()
        if "\x00" in reason or len(reason) > MAX_REASON:
            raise HotlineError("bad-reason", f"a reason is at most {MAX_REASON} characters "
                                             "of text")
        reason = reason or None
    if required and not reason:
        raise HotlineError("reason-required", "a decline needs a reason the caller will read")
    return reason


def chain_to_json(chain: Chain) -> str:
    return json.dumps({"role": chain.role, "repeat_every_ms": chain.repeat_every_ms,
                       "steps": [{"ring": list(s.ring), "operators": list(s.operators),
                                  "channels": list(s.channels), "wait_ms": s.wait_ms}
                                 for s in chain.steps]}, sort_keys=True)


def chain_from_json(text: str) -> Chain:
    data = json.loads(text)
    steps = tuple(Step(tuple(s["ring"]), tuple(s["operators"]), tuple(s["channels"]),
                       int(s["wait_ms"])) for s in data["steps"])
    return Chain(data["role"], steps, data["repeat_every_ms"])


def timing_of(chain: Chain) -> Timing:
    return Timing.of([s.wait_ms for s in chain.steps], chain.repeat_every_ms)


@dataclass(frozen=True)
class PlaceRequest:
    """A validated ``call.place`` payload."""

    call: str
    caller_role: str
    callee_role: str
    reason: str | None
    placed_at: int
    #: the caller's remaining delivery budget when it sealed this, on its own clock;
    #: None: the link does not expire late calls (docs/protocol.md, "Call lateness")
    budget_ms: int | None
    parent: str | None
    #: a query's (question, deadline_ms); None for a plain call (docs/queries.md)
    query: tuple[str, int] | None = None

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> PlaceRequest:
        expected = {"call", "caller_role", "callee_role", "reason", "placed_at", "budget_ms",
                    "parent"}
        query = None
        if "query" in payload:
            query = queries.parse_place(payload["query"])
            payload = {k: v for k, v in payload.items() if k != "query"}
        if set(payload) != expected:
            raise ValueError("call.place has the wrong fields")
        p = payload
        ok = (isinstance(p["call"], str) and CALL_ID_RE.match(p["call"])
              and all(isinstance(p[k], str) and ROLE_RE.match(p[k])
                      for k in ("caller_role", "callee_role"))
              and (p["reason"] is None or (isinstance(p["reason"], str)
                                           and len(p["reason"]) <= MAX_REASON))
              and type(p["placed_at"]) is int
              and (p["budget_ms"] is None
                   or (type(p["budget_ms"]) is int and 0 <= p["budget_ms"] <= MAX_BUDGET_MS))
              and (p["parent"] is None or (isinstance(p["parent"], str)
                                           and CALL_ID_RE.match(p["parent"]))))
        if not ok:
            raise ValueError("call.place has a malformed field")
        return cls(p["call"], p["caller_role"], p["callee_role"], p["reason"], p["placed_at"],
                   p["budget_ms"], p["parent"], query)


class VerifiedStatements:
    """Call-state statements already verified, by their exact text and the key checked.

    A call's history is re-verified every time it is shown (the console re-renders it on
    every change, for every open page); a statement is immutable, so the outcome for the
    same text, signer and key never changes. Keyed by the full public key, so another key
    is checked afresh; bounded, oldest first out; read from the database reader threads,
    hence the lock."""

    def __init__(self, size: int = 8192) -> None:
        self._size = size
        self._outcomes: OrderedDict[tuple[str, str, bytes, str], CallState | None] = \
            OrderedDict()
        self._lock = threading.Lock()

    def get(self, raw: str, signer: str, public: PublicKeys, call: str) -> CallState | None:
        """The verified statement, or None if it does not verify."""
        key = (raw, signer, public.sign_bytes, call)
        with self._lock:
            if key in self._outcomes:
                self._outcomes.move_to_end(key)
                return self._outcomes[key]
        try:
            outcome: CallState | None = verify_call_state(raw, signer=signer, public=public,
                                                          call=call)
        except BadStatement:
            outcome = None
        with self._lock:
            self._outcomes[key] = outcome
            while len(self._outcomes) > self._size:
                self._outcomes.popitem(last=False)
        return outcome


class CallService:
    def __init__(self, *, me: str, outbound: Outbound, registry: Registry, db: Database,
                 clock: Clock) -> None:
        self.me = me
        self._out = outbound
        self._keys = outbound.keys
        self._peers = outbound.peers
        self._verified = VerifiedStatements()
        self._registry = registry
        self._db = db
        self._clock = clock

    @property
    def directory(self) -> Directory:
        return self._registry.current

    # -- operator actions ----------------------------------------------------------------
    async def place(self, to: str, as_role: str, reason: str | None = None,
                    operator: str | None = None, query: tuple[str, int] | None = None
                    ) -> tuple[CallRow, Effects]:
        """Place a call; ``operator``, when a person is known (the console), is named in
        the signed ``placed`` statement and so in the log. ``query``: (question,
        deadline_ms) makes it a query (docs/queries.md); errors ``bad-question``,
        ``bad-deadline`` before anything is sent."""
        callee_role, peer = parse_address(to)
        reason = check_reason(reason)
        if query is not None:
            query = (queries.check_question(query[0]), queries.check_deadline(query[1]))
        await self._registry.reload()
        if self._peers.get(peer) is None:
            await self._peers.maybe_reload()
        try:
            self._check_may_call(as_role, peer, callee_role)
        except HotlineError as exc:
            if exc.error_id == "call-forbidden":
                await self._no_such_desk(peer, callee_role)
            raise

        def work(conn: Connection) -> tuple[CallRow, Effects]:
            effects = Effects()
            call = self._place(conn, as_role, callee_role, peer, reason, None,
                               self._clock.now_ms(), effects, operator, query)
            return call, effects
        return await self._db.write(work)

    async def _no_such_desk(self, peer: str, callee_role: str) -> None:
        """Raise ``no-desk`` if ``peer`` reported its desks and ``callee_role`` is not
        among them (a mistyped role is not a policy to change), naming those it offers."""
        desks = await self._db.read(directory_store.desks)
        offered = sorted(d.role for d in desks if d.party == peer)
        if offered and callee_role not in offered:
            raise HotlineError("no-desk", f"{peer} offers no desk {callee_role}; nothing was "
                               "sent", hint=f"{peer} offers: {', '.join(offered)} "
                                            "(`hotline desks`)", status=404) from None

    def _check_may_call(self, as_role: str, peer: str, callee_role: str) -> None:
        if peer == self.me:
            raise HotlineError("bad-address", "a call goes to another party, not to our own")
        if as_role not in self.directory.roles:
            raise HotlineError("no-role", f"there is no role {as_role!r} in this node's "
                                          "directory", hint="see `hotline roles apply`",
                               status=404)
        if self._peers.get(peer) is None:
            raise no_link(peer)
        if not self.directory.may_call(as_role, peer, callee_role):
            raise HotlineError("call-forbidden",
                               f"the link policy does not let {as_role} call "
                               f"{callee_role}@{peer}; nothing was sent",
                               hint=f"add it under [links.{peer}] may_call and run "
                                    "`hotline roles apply`", status=403)

    def _place(self, conn: Connection, as_role: str, callee_role: str, peer: str,
               reason: str | None, parent: str | None, now: int, effects: Effects,
               operator: str | None = None, query: tuple[str, int] | None = None
               ) -> CallRow:
        policy = self.directory.policy_for(peer)
        assert policy is not None
        call_id = new_envelope_id()
        deliver_by = now + policy.deliver_within_ms
        # Lateness is decided on our clock only: the envelope carries what is left of the
        # budget when sealed, and is re-sealed with 0 once deliver_by has passed.
        expires = policy.late == "expire"
        expires_at = deliver_by if expires else None
        payload: dict[str, Any] = {
            "call": call_id, "caller_role": as_role, "callee_role": callee_role,
            "reason": reason, "placed_at": now,
            "budget_ms": policy.deliver_within_ms if expires else None, "parent": parent}
        if query is not None:
            payload["query"] = {"question": query[0], "deadline_ms": query[1]}
        pending = self._out.enqueue(conn, peer, "call.place", [payload], now, call_id,
                                    deadline_at=expires_at)
        effects.send(peer, pending)
        call_store.insert(conn, id=call_id, direction="out", peer=peer, caller_role=as_role,
                          callee_role=callee_role, reason=reason, state="placed",
                          placed_at=now, deliver_by=deliver_by, expires_at=expires_at,
                          parent_id=parent, envelope_id=pending[0].envelope_id,
                          statements=0, updated_at=now)
        timers.schedule(conn, key=f"{call_id}:deliver", kind="deliver", call_id=call_id,
                        due_at=deliver_by)
        if query is not None:
            self._start_query(conn, call_id, query, now)
        effects.timers = True
        call = call_store.get(conn, call_id)
        assert call is not None
        return self._state(conn, call, "placed", now, effects, role=as_role, reason=reason,
                           operator=operator)

    async def answer(self, call_id: str, as_role: str, operator: str | None,
                     reply: tuple[str, str | None] | None = None) -> tuple[CallRow, Effects]:
        """Answer a call, or a query with ``reply`` = (answer, details). Errors
        ``query-needs-answer`` / ``not-a-query`` when ``reply`` does not fit the call,
        ``call-ended`` after a query's deadline (it is then unanswered, signed)."""
        if reply is not None:
            reply = queries.check_answer(*reply)
        return await self._respond(call_id, as_role, operator, "answered", None, reply)

    async def decline(self, call_id: str, as_role: str, reason: str | None,
                      operator: str | None) -> tuple[CallRow, Effects]:
        return await self._respond(call_id, as_role, operator, "declined",
                                   check_reason(reason, required=True))

    async def _respond(self, call_id: str, as_role: str, operator: str | None, state: str,
                       reason: str | None, reply: tuple[str, str | None] | None = None
                       ) -> tuple[CallRow, Effects]:
        await self._registry.reload()

        def work(conn: Connection) -> tuple[CallRow, Effects]:
            now = self._clock.now_ms()
            call = self._incoming(conn, call_id)
            if call.state == "unanswered" and query_store.get(conn, call.id) is not None:
                raise HotlineError("query-deadline-passed", f"query {call_id} passed its "
                                   "deadline and is recorded unanswered (signed); a late "
                                   "answer is refused", status=409)
            if call.state in FINAL:
                raise HotlineError("call-ended", f"call {call_id} is already {call.state}",
                                   status=409)
            is_query = query_store.get(conn, call.id) is not None
            if is_query and state == "answered" and reply is None:
                raise HotlineError("query-needs-answer", f"call {call_id} is a query: answer "
                                   "it with yes, no, unknown or will-not-answer",
                                   hint="hotline query answer ID --answer unknown ...")
            if reply is not None and not is_query:
                raise HotlineError("not-a-query", f"call {call_id} is not a query",
                                   status=409)
            who = self._responder(conn, call, as_role, operator, now)
            effects = Effects()
            timers.void_for_call(conn, call.id, now)
            if operator is not None:
                directory_store.seen(conn, operator, now)
            answer, details = reply if reply is not None else (None, None)
            call = self._state(conn, call, state, now, effects, role=as_role, operator=who,
                               reason=reason, step=call.step, answer=answer,
                               details=details)
            if state == "answered" and not is_query:
                self._open_conversation(conn, call, now, effects)
            return call, effects
        return await self._db.write(work)

    def _incoming(self, conn: Connection, call_id: str) -> CallRow:
        call = call_store.get(conn, call_id)
        if call is None or call.direction != "in":
            raise HotlineError("no-call", f"there is no incoming call {call_id}", status=404)
        return call

    def _responder(self, conn: Connection, call: CallRow, as_role: str,
                   operator: str | None, now: int) -> str | None:
        """Who answers: the role must have been rung on this call (or be the one called),
        and a named operator must hold it."""
        d = self.directory
        assert call.chain is not None
        chain = chain_from_json(call.chain)
        rung = {call.callee_role}
        for step in chain.steps[: (call.step or 0) + 1]:
            rung.update(step.ring)
        if as_role not in rung:
            raise HotlineError("not-rung", f"{as_role} has not been rung for this call; "
                                           f"it can be answered as {', '.join(sorted(rung))}",
                               status=403)
        if operator is None:
            holders = duty.on_duty(conn, d, as_role, now)
            return holders[0] if len(holders) == 1 else None
        op = d.operators.get(operator)
        if op is None or as_role not in op.roles:
            raise HotlineError("role-not-held", f"operator {operator!r} does not hold the role "
                                                f"{as_role}", status=403)
        return operator

    async def cancel(self, call_id: str, operator: str | None = None
                     ) -> tuple[CallRow, Effects]:
        def work(conn: Connection) -> tuple[CallRow, Effects]:
            now = self._clock.now_ms()
            call = call_store.get(conn, call_id)
            if call is None or call.direction != "out":
                raise HotlineError("no-call", f"there is no outgoing call {call_id}",
                                   status=404)
            if call.state not in ACTIVE:
                raise HotlineError("call-ended", f"call {call_id} is already {call.state}",
                                   status=409)
            effects = Effects()
            timers.void_for_call(conn, call.id, now)
            if self._peers.get(call.peer) is not None:
                effects.send(call.peer, self._out.enqueue(conn, call.peer, "call.cancel",
                                                          [{"call": call.id}], now, call.id))
            return self._state(conn, call, "cancelled", now, effects, role=call.caller_role,
                               operator=operator), effects
        return await self._db.write(work)

    def end_for_link(self, conn: Connection, peer: str, reason: str, now: int,
                     effects: Effects) -> list[str]:
        """End every open call with ``peer`` (both directions) because the link is being
        removed: each gets our signed ``cancelled`` statement with ``reason``, kept here
        and not sent (the link's own notice tells the peer). Returns the call ids."""
        ended = []
        for call in call_store.open_with(conn, peer):
            if call.state in FINAL or (call.direction == "out" and call.state not in ACTIVE):
                continue
            timers.void_for_call(conn, call.id, now)
            self._state(conn, call, "cancelled", now, effects, step=call.step,
                        role=call.caller_role if call.direction == "out" else None,
                        reason=reason, send=False)
            ended.append(call.id)
        return ended

    # -- statements ----------------------------------------------------------------------
    def _addresses(self, call: CallRow) -> tuple[str, str]:
        if call.direction == "out":
            return f"{call.caller_role}@{self.me}", f"{call.callee_role}@{call.peer}"
        return f"{call.caller_role}@{call.peer}", f"{call.callee_role}@{self.me}"

    def _state(self, conn: Connection, call: CallRow, state: str, now: int, effects: Effects,
               *, step: int | None = None, role: str | None = None,
               operator: str | None = None, who: tuple[str, ...] = (),
               reason: str | None = None, set_state: bool = True, send: bool = True,
               answer: str | None = None, details: str | None = None,
               **changes: Any) -> CallRow:
        """Sign our statement ``state`` about ``call``, store it, stream it, and (callee
        side, unless not ``send``) send it to the caller — all in the caller's
        transaction."""
        caller, callee = self._addresses(call)
        stmt = sign_call_state(call=call.id, signer=self.me, n=call.statements + 1,
                               state=state, at=now, caller=caller, callee=callee,
                               keys=self._keys, step=step, role=role, operator=operator,
                               who=who, reason=reason, answer=answer, details=details)
        call_store.add_event(conn, call_id=call.id, signer=self.me, n=stmt.n, state=state,
                             statement=stmt.raw, verified=True, at=now, fresh=True)
        values: dict[str, Any] = {"statements": stmt.n, "updated_at": now, **changes}
        if set_state:
            values["state"] = state
        if step is not None:
            values["step"] = step
        call_store.change(conn, call.id, **values)
        if send and call.direction == "in" and self._peers.get(call.peer) is not None:
            effects.send(call.peer, self._out.enqueue(conn, call.peer, "call.state",
                                                      [{"statement": stmt.raw}], now, call.id))
        updated = replace(call, **values)  # the row as just written, without reading it
        self._journal(conn, updated, stmt, True, effects)
        return updated

    def _journal(self, conn: Connection, call: CallRow, stmt: CallState, verified: bool,
                 effects: Effects) -> None:
        caller, callee = self._addresses(call)
        body = {"call": {"id": call.id, "direction": call.direction, "peer": call.peer,
                         "caller": caller, "callee": callee, "state": call.state,
                         "step": call.step, "reason": call.reason, "parent": call.parent_id},
                "event": {**stmt.as_dict(), "verified": verified}}
        effects.journal.append(journal.append(conn, "call", call.id, body, stmt.at))

    # -- the callee's side ---------------------------------------------------------------
    def on_place(self, conn: Connection, peer: str, req: PlaceRequest, now: int,
                 effects: Effects) -> None:
        if call_store.get(conn, req.call) is not None:
            raise PeerRefused(f"call.place reuses the call id {req.call}")
        d = self.directory
        call_store.insert(conn, id=req.call, direction="in", peer=peer,
                          caller_role=req.caller_role, callee_role=req.callee_role,
                          reason=req.reason, state="placed", placed_at=req.placed_at,
                          expires_at=None, parent_id=req.parent, statements=0,
                          updated_at=now)
        call = call_store.get(conn, req.call)
        assert call is not None
        if req.query is not None:
            query_store.insert(conn, call_id=req.call, question=req.query[0],
                               deadline_ms=req.query[1])
        if req.callee_role not in d.roles or not d.accepts(peer, req.caller_role,
                                                           req.callee_role):
            self._state(conn, call, "refused", now, effects, role=req.callee_role,
                        reason=f"{req.caller_role}@{peer} may not call {req.callee_role} "
                               f"under {self.me}'s link policy")
            return
        if req.budget_ms is not None and req.budget_ms <= 0:
            self._state(conn, call, "expired", now, effects, role=req.callee_role,
                        reason="the call arrived after its delivery deadline; the link "
                               "policy expires late calls")
            return
        chain = d.chain_for(req.callee_role)
        call = self._state(conn, call, "delivered", now, effects, role=req.callee_role,
                           chain=chain_to_json(chain), started_at=now, next_ring=0)
        if req.query is not None:  # the callee's deadline counts from delivery
            timers.schedule(conn, key=query_store.deadline_key(call.id), kind="query",
                            call_id=call.id, due_at=now + req.query[1])
            effects.timers = True
        self._escalate(conn, call, now, effects)

    def _escalate(self, conn: Connection, call: CallRow, now: int, effects: Effects) -> None:
        """Do every ring that is due, then schedule the next deadline (or end the call)."""
        assert call.chain is not None
        assert call.started_at is not None
        chain = chain_from_json(call.chain)
        timing = timing_of(chain)
        due = plan(timing, call.started_at, call.next_ring, now)
        for ring in due.rings:
            index = timing.step_of(ring)
            step = chain.steps[index]
            who = self._who(conn, step, now)
            call = self._state(conn, call, "ringing", now, effects, step=index,
                               role=",".join(step.ring) or None, who=who,
                               next_ring=ring + 1)
            self._notify(conn, call, step, index, ring, who, now, effects)
        if due.unanswered:
            # a query's last step can still answer until the query's deadline
            if query_store.get(conn, call.id) is None:
                self._state(conn, call, "unanswered", now, effects, step=call.step,
                            reason="nobody answered by the end of the escalation chain")
            return
        if due.next_due_ms is not None:
            timers.schedule(conn, key=f"{call.id}:ring:{due.next_ring}", kind="escalate",
                            call_id=call.id, due_at=due.next_due_ms)
            effects.timers = True

    def _who(self, conn: Connection, step: Step, now: int) -> tuple[str, ...]:
        """Who a step rings at ``now``: each role's holders as the final schedule names
        them at that instant (:func:`hotline.calls.duty.on_duty`), then named operators."""
        d = self.directory
        names: list[str] = []
        for role in step.ring:
            names.extend(duty.on_duty(conn, d, role, now))
        names.extend(step.operators)
        return tuple(dict.fromkeys(names))

    def _notify(self, conn: Connection, call: CallRow, step: Step, index: int, ring: int,
                who: tuple[str, ...], now: int, effects: Effects) -> None:
        from hotline.notify.retry import keep_until_ms, turns_ms

        caller, callee = self._addresses(call)
        alert = {"kind": "ringing", "party": self.me, "call_id": call.id, "caller": caller,
                 "callee": callee, "step": index, "roles": list(step.ring),
                 "operators": list(who), "reason": call.reason, "at_ms": now,
                 "key": f"{call.id}:ring:{ring}"}
        # retried until the next ring has had its turn too, and for an hour at least
        assert call.chain is not None
        keep = keep_until_ms(now, turns_ms(timing_of(chain_from_json(call.chain)), ring))
        if notifications.add_for_channels(conn, alert, step.channels, now,
                                          keep_until_ms=keep):
            effects.notifications = True

    def on_cancel(self, conn: Connection, peer: str, call_id: str, now: int,
                  effects: Effects) -> None:
        peer_require(peer, "call", call_id, "cancel", facts.load_call(conn, self.me, call_id))
        call = call_store.get(conn, call_id)
        assert call is not None
        if call.state in FINAL:
            return
        timers.void_for_call(conn, call.id, now)
        self._state(conn, call, "cancelled", now, effects, step=call.step,
                    reason="cancelled by the caller")

    # -- the caller's side ---------------------------------------------------------------
    def _repeated_statement(self, conn: Connection, peer: str, call_id: str, n: int,
                            raw: str, now: int, effects: Effects) -> None:
        """A statement numbered ``n`` by ``peer`` is stored already: the same one again is a
        harmless repeat; another one, validly signed, is the peer saying two things about
        one step of the call, refused (one security-log line) and kept as evidence."""
        stored = call_store.statement(conn, call_id, peer, n)
        if stored is None or stored == raw:
            return
        row = evidence_store.record(conn, peer=peer, kind="call-equivocation",
                                    detail=f"two statements n={n} for call {call_id}",
                                    statement=raw.encode(), other=stored.encode(), now_ms=now)
        effects.security.append(
            f"refused call.state from peer {peer}: statement {n} of call {call_id} is "
            f"already stored with other content (evidence kept, seen {row.count} time(s))")
    def on_state(self, conn: Connection, peer: str, raw: str, now: int,
                 effects: Effects) -> None:
        link = self._peers.get(peer)
        if link is None:
            raise PeerRefused("no link with the sender")
        public = self._key_named(peer, raw) or link.keys
        try:
            stmt = verify_call_state(raw, signer=peer, public=public)
        except BadStatement as exc:
            raise PeerRefused(exc.message) from None
        refusal = self._peers.refusal(peer, public.key_id, stmt.at)
        if refusal is not None:
            raise PeerRefused(f"{refusal.error_id}: {refusal.message}")
        call = call_store.get(conn, stmt.call)
        peer_require(peer, "call", stmt.call, "state",
                     None if call is None else facts.load_call(conn, self.me, stmt.call))
        assert call is not None
        if not call_store.add_event(conn, call_id=call.id, signer=peer, n=stmt.n,
                                    state=stmt.state, statement=raw, verified=True, at=stmt.at):
            self._repeated_statement(conn, peer, call.id, stmt.n, raw, now, effects)
            return
        changes: dict[str, Any] = {"updated_at": now}
        asked = query_store.get(conn, call.id)
        step = queries.asker_step(call.state, asked is not None and asked.late, stmt.state,
                                  stmt.answer)
        if asked is not None and step.late and not asked.late:
            # we recorded it unanswered at our deadline (the callee's counts from delivery,
            # so it may answer in the gap): kept, shown as late, the fallback already ran
            query_store.mark_late(conn, call.id)
        if step.state != call.state:
            changes["state"] = step.state
        if stmt.step is not None:
            changes["step"] = stmt.step
        call_store.change(conn, call.id, **changes)
        updated = call_store.get(conn, call.id)
        assert updated is not None
        if stmt.state in FINAL:
            timers.void_for_call(conn, call.id, now)
        self._journal(conn, updated, stmt, True, effects)
        if stmt.state == "answered" and asked is None:
            self._open_conversation(conn, updated, now, effects)
        # a plain call falls back on every such end, as it always did; a query once
        if step.fall_back or (asked is None and stmt.state in ("unanswered", "declined")):
            self._fall_back(conn, updated, stmt.state, now, effects)

    def on_timer(self, conn: Connection, kind: str, call_id: str, now: int,
                 effects: Effects) -> bool:
        """A deadline of ``call_id`` is due; False if it no longer applies."""
        call = call_store.get(conn, call_id)
        if call is None:
            return False
        if kind == "escalate":
            if call.direction != "in" or call.state in FINAL:
                return False
            self._escalate(conn, call, now, effects)
            return True
        if kind == "query":
            return self._query_deadline(conn, call, now, effects)
        if kind == "deliver":
            if call.direction != "out" or call.state != "placed":
                return False
            if call.envelope_id is not None and is_delivered(conn, call.envelope_id):
                return False
            call = self._state(conn, call, "undeliverable", now, effects,
                               role=call.callee_role,
                               reason=f"no endpoint of {call.peer} accepted the call within "
                                      "the link's deadline; delivery keeps trying")
            self._alert_caller(conn, call, "undeliverable", now, effects)
            self._fall_back(conn, call, "undeliverable", now, effects)
            return True
        return False

    def _start_query(self, conn: Connection, call_id: str, query: tuple[str, int],
                     now: int) -> None:
        """The asker's side of a new query: its row and its deadline from placing."""
        query_store.insert(conn, call_id=call_id, question=query[0], deadline_ms=query[1])
        timers.schedule(conn, key=query_store.deadline_key(call_id), kind="query",
                        call_id=call_id, due_at=now + query[1])

    def _query_deadline(self, conn: Connection, call: CallRow, now: int,
                        effects: Effects) -> bool:
        """A query's deadline: if nobody answered, it ends ``unanswered``, signed by this
        node (the callee sends its statement to the asker; the asker records its own,
        alerts its people and runs the link's fallback)."""
        if call.state in FINAL or query_store.get(conn, call.id) is None:
            return False
        # the other deadlines (rings, delivery) end here; this one is the runner's to claim
        timers.void_for_call(conn, call.id, now, firing=query_store.deadline_key(call.id))
        reason = "nobody answered the query by its deadline"
        if call.direction == "in":
            self._state(conn, call, "unanswered", now, effects, step=call.step,
                        reason=reason)
            return True
        call = self._state(conn, call, "unanswered", now, effects, role=call.caller_role,
                           reason=reason)
        self._alert_caller(conn, call, "unanswered", now, effects)
        self._fall_back(conn, call, "unanswered", now, effects)
        return True

    def _alert_caller(self, conn: Connection, call: CallRow, outcome: str, now: int,
                      effects: Effects, roles: tuple[str, ...] | None = None) -> None:
        """Ring our own people about a call that failed: the first step of the chain of
        each role (the caller's role unless the fallback names others)."""
        from hotline.notify.retry import keep_until_ms, turns_ms

        caller, callee = self._addresses(call)
        for role in roles or (call.caller_role,):
            if role not in self.directory.roles:
                continue
            chain = self.directory.chain_for(role)
            step = chain.steps[0]
            who = self._who(conn, step, now)
            alert = {"kind": outcome, "party": self.me, "call_id": call.id, "caller": caller,
                     "callee": callee, "step": None, "roles": list(step.ring),
                     "operators": list(who), "reason": call.reason, "at_ms": now,
                     "key": f"{call.id}:{outcome}:{role}"}
            keep = keep_until_ms(now, turns_ms(timing_of(chain), 0))
            if notifications.add_for_channels(conn, alert, step.channels, now,
                                              keep_until_ms=keep):
                effects.notifications = True

    def ring_alarm(self, conn: Connection, alarm: AlarmRow, now: int, effects: Effects) -> None:
        """Ring the directory's ``[settings] alarm_role`` about a node alarm: the first
        step of that role's chain, through the step's channels (the console shows every
        alarm to every operator anyway)."""
        role = self.directory.alarm_role
        if role is None or role not in self.directory.roles:
            return
        step = self.directory.chain_for(role).steps[0]
        digest = hashlib.sha256(f"{alarm.cause}:{alarm.first_at}".encode()).hexdigest()[:32]
        alert = {"kind": "alarm", "party": self.me, "call_id": "", "caller": f"node@{self.me}",
                 "callee": f"{role}@{self.me}", "step": None, "roles": list(step.ring),
                 "operators": list(self._who(conn, step, now)),
                 "reason": f"{alarm.kind}: {alarm.message}"[:MAX_REASON], "at_ms": now,
                 "key": f"alarm:{digest}"}
        if notifications.add_for_channels(conn, alert, step.channels, now):
            effects.notifications = True

    def _fall_back(self, conn: Connection, call: CallRow, outcome: str, now: int,
                   effects: Effects) -> None:
        """The link's fallback plan for a call that ended badly, each action a signed,
        logged statement in the call's history."""
        policy = self.directory.policy_for(call.peer)
        if policy is None:
            return
        for rule in policy.fallback:
            if outcome not in rule.on:
                continue
            if rule.call:
                call = self._fall_back_call(conn, call, rule.call, now, effects)
            if rule.alert:
                self._alert_caller(conn, call, outcome, now, effects, roles=rule.alert)
                call = self._state(conn, call, "fallback", now, effects, set_state=False,
                                   role=",".join(rule.alert),
                                   reason=f"{facts.ALERTED}{', '.join(rule.alert)}")
            for ally in rule.notify:
                call = self._fall_back_notify(conn, call, ally, outcome, now, effects)

    def _fall_back_call(self, conn: Connection, call: CallRow, targets: tuple[str, ...],
                        now: int, effects: Effects) -> CallRow:
        tried = self._lineage(conn, call)
        staffed = {(d.role, d.party) for d in directory_store.desks(conn) if d.staffed}
        options = [parse_address(t) for t in targets]
        options = [o for o in options if o not in tried]
        options.sort(key=lambda o: o not in staffed)  # staffed desks first, order kept
        for role, party in options:
            if len(tried) > MAX_FALLBACK_DEPTH:
                break
            try:
                self._check_may_call(call.caller_role, party, role)
            except HotlineError as exc:
                call = self._state(conn, call, "fallback", now, effects, set_state=False,
                                   role=role, reason=f"cannot try {role}@{party}: "
                                                     f"{exc.message}")
                continue
            new = self._place(conn, call.caller_role, role, party, call.reason, call.id, now,
                              effects)
            return self._state(conn, call, "fallback", now, effects, set_state=False,
                               role=role, reason=f"calling {role}@{party} instead "
                                                 f"(call {new.id})")
        return call

    def _lineage(self, conn: Connection, call: CallRow) -> set[tuple[str, str]]:
        """Every (role, party) already tried along this call's fallback line."""
        tried: set[tuple[str, str]] = set()
        current: CallRow | None = call
        while current is not None and len(tried) <= MAX_FALLBACK_DEPTH + 1:
            tried.add((current.callee_role, current.peer))
            current = call_store.get(conn, current.parent_id) if current.parent_id else None
        return tried

    def _fall_back_notify(self, conn: Connection, call: CallRow, ally: str, outcome: str,
                          now: int, effects: Effects) -> CallRow:
        caller, callee = self._addresses(call)
        text = (f"[{self.me}] Our call {caller} -> {callee} ended {outcome}"
                + (f" (reason given: {call.reason})" if call.reason else "") + ".")
        try:
            if self._peers.get(ally) is None:
                raise LinkError("no-link", f"no link with {ally}")
            # the database decides: a removal committed a moment ago may not have
            # reached the cache yet
            pending = self._out.enqueue(conn, ally, "message", [{"text": text}], now)
        except LinkError:
            return self._state(conn, call, "fallback", now, effects, set_state=False,
                               reason=f"cannot inform {ally}: no link")
        effects.send(ally, pending)
        return self._state(conn, call, "fallback", now, effects, set_state=False,
                           reason=f"informed {ally}")

    # -- conversations -------------------------------------------------------------------
    def _open_conversation(self, conn: Connection, call: CallRow, now: int,
                           effects: Effects) -> None:
        from hotline.calls import conversations

        caller, callee = self._addresses(call)
        conversations.open_for_call(conn, call.id, f"{caller} / {callee}",
                                    sorted({self.me, call.peer}), now, effects)

    async def set_incident(self, call_id: str, incident_id: str) -> None:
        """Note on our query the incident it was linked to (shown with it)."""
        await self._db.write(lambda conn: query_store.set_incident(conn, call_id,
                                                                   incident_id))

    # -- reading -------------------------------------------------------------------------
    async def recent(self, limit: int = 100, active_only: bool = False,
                     queries_only: bool = False) -> list[dict[str, Any]]:
        """Calls (queries too, with ``kind`` "query"), newest first; ``queries_only``:
        only queries."""
        def read(conn: Connection) -> list[dict[str, Any]]:
            if queries_only:
                ids = query_store.all_ids(conn)
                found = (call_store.get(conn, i) for i in ids)
                rows = sorted((r for r in found if r is not None),
                              key=lambda r: (-r.placed_at, r.id))[:limit]
            else:
                rows = call_store.recent(conn, limit, active_only)
            history = call_store.events(conn, [r.id for r in rows])
            asked = query_store.many(conn, [r.id for r in rows])
            return [self.describe(r, history[r.id], asked.get(r.id))
                    for r in rows]
        return await self._db.read(read)

    async def get(self, call_id: str) -> dict[str, Any]:
        def read(conn: Connection) -> dict[str, Any]:
            row = call_store.get(conn, call_id)
            if row is None:
                raise HotlineError("no-call", f"there is no call {call_id}", status=404)
            info = query_store.get(conn, call_id)
            return self.describe(row, call_store.events(conn, [row.id])[row.id], info)
        return await self._db.read(read)

    def describe(self, call: CallRow, events: list[call_store.EventRow],
                 query: query_store.QueryRow | None = None) -> dict[str, Any]:
        caller, callee = self._addresses(call)
        # In the order this node stored them, not by their signed times: those come from
        # two parties' clocks, and ordering by them would put a statement of a callee
        # whose clock is behind before our own "placed". Each signer's statements arrive
        # in its order (one in-order line per peer), so this is the causal order here.
        history = []
        for event in events:
            entry = self._history_entry(event)
            if entry is not None:
                history.append(entry)
        out: dict[str, Any] = {"id": call.id, "kind": "call" if query is None else "query",
               "direction": call.direction, "peer": call.peer,
               "caller": caller, "callee": callee, "state": call.state, "step": call.step,
               "reason": call.reason, "parent": call.parent_id, "placed_at": call.placed_at,
               "history": history}
        if query is not None:
            out["query"] = queries.describe(query, call.direction, call.peer, call.state,
                                            history)
        return out

    def _key_named(self, signer: str, raw: str) -> PublicKeys | None:
        """The key of ``signer``'s history (or this node's ring) that a signed statement
        names by its ``kid``, if known: statements made before a key rotation stay
        verifiable after it."""
        try:
            kid = json.loads(raw).get("kid")
        except (ValueError, AttributeError):
            return None
        if not isinstance(kid, str):
            return None
        if signer == self.me:
            pair = self._keys.pair(kid) if isinstance(self._keys, KeyRing) else None
            return None if pair is None else pair.public
        return (self._peers.keys_by_id(signer) or {}).get(kid)

    def _history_entry(self, event: call_store.EventRow) -> dict[str, Any] | None:
        """A stored statement, re-verified now against the key it names (any key of the
        signer's history; the current key if it names none known)."""
        if event.signer == self.me:
            public = self._key_named(self.me, event.statement) or self._keys.public
        else:  # a removed link's statements stay readable, under the keys it had
            link = self._peers.get(event.signer) or self._peers.former(event.signer)
            if link is None:
                return None
            public = self._key_named(event.signer, event.statement) or link.keys
        stmt = self._verified.get(event.statement, event.signer, public, event.call_id)
        verified = stmt is not None
        if stmt is None:
            data = json.loads(event.statement)
            return {"state": data.get("state"), "role": data.get("role"),
                    "operator": data.get("operator"), "at": data.get("at"),
                    "signed_by": event.signer, "verified": False}
        return {**stmt.as_dict(), "verified": verified and event.verified}
