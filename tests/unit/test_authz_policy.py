"""The authorization policy (hotline.authz.policy): its rules for all inputs, and the
facts it reads from a call's statements."""

from __future__ import annotations

from typing import Any, get_args

from hypothesis import given
from hypothesis import strategies as st

from hotline.authz.facts import ALERTED, call_facts
from hotline.authz.policy import (
    Action,
    Admin,
    CallFacts,
    ConversationFacts,
    MessageFacts,
    Object,
    OperatorActor,
    PeerActor,
    decide,
    roles_of,
)

ROLES = ["cgs", "cgs-1d", "ccp-do", "dcd", "nmcc-do"]
PARTIES = ["US-JS", "RU-GS", "UA-GS", "PL-GS"]
ACTIONS: list[Action] = list(get_args(Action))
OPERATOR_ACTIONS: list[Action] = ["read", "answer", "decline", "cancel", "say",
                                  "add-member", "receipt"]

roles = st.frozensets(st.sampled_from(ROLES))
calls = st.builds(CallFacts, id=st.just("c" * 32), direction=st.sampled_from(["in", "out"]),
                  peer=st.sampled_from(PARTIES), caller_role=st.sampled_from(ROLES),
                  callee_role=st.sampled_from(ROLES), rung=roles, responded=roles,
                  alerted=roles)
conversations = st.builds(ConversationFacts, id=st.just("d" * 32),
                          members=st.frozensets(st.sampled_from(PARTIES), min_size=1),
                          roles=roles)
messages = st.builds(MessageFacts, id=st.just("e" * 32), author=st.sampled_from(PARTIES),
                     conversation=conversations)
objects: st.SearchStrategy[Object] = st.one_of(calls, conversations, messages)
operators = st.builds(OperatorActor, operator=st.just("op-1"), roles=roles)
as_roles = st.none() | st.sampled_from(ROLES)


@given(operators, objects, st.sampled_from(OPERATOR_ACTIONS), as_roles)
def test_an_operator_with_no_role_in_the_object_gets_404_as_if_it_did_not_exist(
        actor: OperatorActor, obj: Object, action: Action, as_role: str | None) -> None:
    """No existence leak: whenever the operator's roles have no part in the object, the
    answer is exactly the answer for no object at all (only the log's reason differs;
    the edge builds the same error from the status alone)."""
    if actor.roles & roles_of(obj):
        return
    seen, absent = decide(actor, obj, action, as_role), decide(actor, None, action, as_role)
    assert (seen.allowed, seen.status) == (absent.allowed, absent.status)
    assert not seen.allowed


@given(operators, st.one_of(st.none(), objects), st.sampled_from(OPERATOR_ACTIONS),
       st.sampled_from(ROLES))
def test_a_role_not_held_is_refused_403_whatever_the_object(
        actor: OperatorActor, obj: Object | None, action: Action, as_role: str) -> None:
    if as_role in actor.roles:
        return
    decision = decide(actor, obj, action, as_role)
    assert (decision.allowed, decision.status) == (False, 403)


@given(operators, objects, st.sampled_from(OPERATOR_ACTIONS), as_roles)
def test_allowed_only_through_a_role_held_now_and_involved(
        actor: OperatorActor, obj: Object, action: Action, as_role: str | None) -> None:
    decision = decide(actor, obj, action, as_role)
    if decision.allowed:
        assert actor.roles & roles_of(obj)
        assert as_role is None or as_role in actor.roles & roles_of(obj)
    else:
        assert decision.status in (403, 404)


@given(operators, objects, st.sampled_from(OPERATOR_ACTIONS), as_roles, roles)
def test_losing_roles_never_grants_more(actor: OperatorActor, obj: Object, action: Action,
                                        as_role: str | None, lost: frozenset[str]) -> None:
    """A session whose operator lost roles is allowed at most what it was before."""
    fewer = OperatorActor(actor.operator, actor.roles - lost)
    if decide(fewer, obj, action, as_role).allowed:
        assert decide(actor, obj, action, as_role).allowed


@given(objects, st.sampled_from(OPERATOR_ACTIONS), as_roles)
def test_the_administrator_may_act_on_any_object_that_exists(
        obj: Object, action: Action, as_role: str | None) -> None:
    assert decide(Admin(), obj, action, as_role).allowed
    assert decide(Admin(), None, action, as_role).status == 404


@given(st.sampled_from(PARTIES), st.one_of(st.none(), objects), st.sampled_from(ACTIONS))
def test_a_peer_acts_on_a_conversation_only_as_a_member_on_messages_that_exist(
        party: str, obj: Object | None, action: Action) -> None:
    decision = decide(PeerActor(party), obj, action)
    if not decision.allowed:
        assert decision.status in (403, 404)
        return
    if action == "open":
        assert not (isinstance(obj, CallFacts) and obj.peer != party)
        return
    assert obj is not None
    if action in ("cancel", "state"):
        assert isinstance(obj, CallFacts)
        assert obj.peer == party
        assert obj.direction == ("in" if action == "cancel" else "out")
        return
    assert action in ("say", "add-member", "receipt")
    conv = obj.conversation if isinstance(obj, MessageFacts) else obj
    assert isinstance(conv, ConversationFacts)
    assert party in conv.members
    if action == "receipt":
        assert isinstance(obj, MessageFacts)
        assert obj.author != party


def test_peers_never_read_and_operators_never_take_peer_actions() -> None:
    conv = ConversationFacts("d" * 32, frozenset({"US-JS", "RU-GS"}), frozenset({"cgs"}))
    assert decide(PeerActor("RU-GS"), conv, "read").status == 403
    assert decide(Admin(), conv, "state").status == 403
    assert decide(OperatorActor("cgs-1", frozenset({"cgs"})), conv, "open").status == 403


def test_the_t17_reproduction() -> None:
    """dcd-1 (role dcd) and a call to cgs that cgs-1 answered."""
    call = CallFacts("c" * 32, "in", "US-JS", "nmcc-do", "cgs", rung=frozenset({"cgs"}),
                     responded=frozenset({"cgs"}))
    conv = ConversationFacts(call.id, frozenset({"US-JS", "RU-GS"}), call.roles)
    dcd = OperatorActor("dcd-1", frozenset({"dcd"}))
    cgs = OperatorActor("cgs-1", frozenset({"cgs"}))
    for action, as_role in (("read", None), ("say", "dcd"), ("add-member", "dcd")):
        assert decide(dcd, conv, action, as_role).status == 404  # type: ignore[arg-type]
        assert decide(cgs, conv, action, None if as_role is None else "cgs").allowed  # type: ignore[arg-type]
    assert decide(cgs, call, "answer", "cgs").allowed
    assert decide(cgs, call, "cancel").status == 403  # incoming: the caller's to cancel
    assert decide(cgs, call, "answer", None).status == 403  # answering names a role


def _entry(state: str, role: str | None, signed_by: str = "US-JS",
           reason: str | None = None) -> dict[str, Any]:
    return {"state": state, "role": role, "signed_by": signed_by, "reason": reason}


def test_call_facts_count_only_our_own_statements() -> None:
    out = call_facts(me="US-JS", call_id="c" * 32, direction="out", peer="RU-GS",
                     caller_role="nmcc-do", callee_role="cgs", history=[
                         _entry("placed", "nmcc-do"),
                         _entry("ringing", "cgs,cgs-1d", signed_by="RU-GS"),
                         _entry("fallback", "dcd", reason="calling dcd@RU-GS instead"),
                         _entry("fallback", "cjcs,vcjcs", reason=f"{ALERTED}cjcs, vcjcs")])
    assert out.roles == {"nmcc-do", "cjcs", "vcjcs"}
    incoming = call_facts(me="RU-GS", call_id="c" * 32, direction="in", peer="US-JS",
                          caller_role="nmcc-do", callee_role="cgs", history=[
                              _entry("ringing", "cgs", signed_by="RU-GS"),
                              _entry("ringing", "cgs-1d", signed_by="RU-GS"),
                              _entry("answered", "cgs-1d", signed_by="RU-GS"),
                              _entry("ringing", "dcd", signed_by="US-JS")])
    assert incoming.roles == {"cgs", "cgs-1d"}
    assert incoming.answerable_as == {"cgs", "cgs-1d"}
