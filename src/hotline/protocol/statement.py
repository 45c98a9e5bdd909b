"""Signed statements: a party's word on the state of a call or of a message.

An envelope proves who sent it while it travels; a statement is kept. Each call state
the callee's node reaches ("delivered", "ringing cgs-1d", "answered by ccp-do",
"declined: reason") and each read / acknowledged receipt is signed on its own, so the
other party can store it, show it as verified, and later hand it to a third party as
evidence that needs nothing but the signer's public key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hotline.errors import HotlineError
from hotline.protocol import canonical
from hotline.protocol.keys import PartyKeys, PublicKeys
from hotline.protocol.signing import sign_object, verify_object

CALL_DOMAIN = "hotline/call-state/v1"
RECEIPT_DOMAIN = "hotline/message-receipt/v1"

CALL_STATES = frozenset({"placed", "delivered", "ringing", "answered", "declined",
                         "unanswered", "undeliverable", "cancelled", "expired", "refused",
                         "fallback"})
RECEIPT_KINDS = frozenset({"delivered", "read", "acknowledged"})
#: the structured answers to a query (docs/queries.md); carried, signed, by an
#: ``answered`` call-state statement in its optional ``answer`` field
QUERY_ANSWERS = ("yes", "no", "unknown", "will-not-answer")
MAX_DETAILS = 2000

_CALL_FIELDS = {"v": int, "kind": str, "call": str, "signer": str, "kid": str, "n": int,
                "state": str, "step": (int, type(None)), "role": (str, type(None)),
                "operator": (str, type(None)), "who": list, "reason": (str, type(None)),
                "at": int, "caller": str, "callee": str, "sig": str}
#: a query's answer statement: the same fields and ``answer``: {answer, details}
_CALL_ANSWER_FIELDS = {**_CALL_FIELDS, "answer": dict}
_RECEIPT_FIELDS = {"v": int, "kind": str, "message": str, "conversation": str, "author": str,
                   "signer": str, "kid": str, "receipt": str, "operator": (str, type(None)),
                   "role": (str, type(None)), "at": int, "sig": str}

#: a statement's number and a chain's step are kept in 32-bit INTEGER columns
#: (call_events.n, calls.step): a larger value from a peer is malformed, not a crash
_COUNTERS = ("n", "step")
_INT32_MAX = 2**31 - 1


class BadStatement(HotlineError):
    """A statement that is malformed or whose signature does not verify."""

    def __init__(self, message: str) -> None:
        super().__init__("bad-statement", message, status=400)


@dataclass(frozen=True)
class CallState:
    """One signed step in a call's life, as the signer saw it."""

    call: str
    signer: str
    n: int
    state: str
    step: int | None
    role: str | None
    operator: str | None
    who: tuple[str, ...]
    reason: str | None
    at: int
    caller: str
    callee: str
    raw: str  # the exact signed canonical JSON
    #: a query's structured answer (one of QUERY_ANSWERS) and its details, signed with
    #: the rest; None on every other statement (the field is then absent from the JSON)
    answer: str | None = None
    details: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"state": self.state, "step": self.step, "role": self.role,
               "operator": self.operator, "who": list(self.who), "reason": self.reason,
               "at": self.at, "signed_by": self.signer}
        if self.answer is not None:
            out["answer"] = self.answer
            out["details"] = self.details
        return out


def sign_call_state(*, call: str, signer: str, n: int, state: str, at: int, caller: str,
                    callee: str, keys: PartyKeys, step: int | None = None,
                    role: str | None = None, operator: str | None = None,
                    who: tuple[str, ...] = (), reason: str | None = None,
                    answer: str | None = None, details: str | None = None) -> CallState:
    """Sign one call state. ``answer`` (with optional ``details``) only on the
    ``answered`` statement of a query; ValueError for anything else."""
    if state not in CALL_STATES:
        raise ValueError(f"unknown call state {state!r}")
    obj: dict[str, Any] = {
        "v": 1, "kind": "call-state", "call": call, "signer": signer,
        "kid": keys.public.key_id, "n": n, "state": state, "step": step, "role": role,
        "operator": operator, "who": list(who), "reason": reason, "at": at,
        "caller": caller, "callee": callee}
    if answer is not None:
        if state != "answered" or answer not in QUERY_ANSWERS:
            raise ValueError(f"answer {answer!r} on a {state!r} statement")
        obj["answer"] = {"answer": answer, "details": details}
    elif details is not None:
        raise ValueError("details without an answer")
    raw = canonical.encode(sign_object(CALL_DOMAIN, obj, keys)).decode()
    return CallState(call, signer, n, state, step, role, operator, tuple(who), reason, at,
                     caller, callee, raw, answer, details)


def _answer_of(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    """The (answer, details) a call-state object carries, checked; (None, None) if none."""
    if "answer" not in obj:
        return None, None
    value = obj["answer"]
    if (not isinstance(value, dict) or set(value) != {"answer", "details"}
            or value["answer"] not in QUERY_ANSWERS or obj["state"] != "answered"
            or not (value["details"] is None or (isinstance(value["details"], str)
                                                 and len(value["details"]) <= MAX_DETAILS))):
        raise BadStatement("call-state statement has a malformed answer")
    return value["answer"], value["details"]


def _shape(obj: Any, fields: dict[str, Any], kind: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or set(obj) != set(fields):
        raise BadStatement(f"{kind} statement has the wrong fields")
    for name, types in fields.items():
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise BadStatement(f"{kind} statement field {name!r} has the wrong type")
    if obj["v"] != 1 or obj["kind"] != kind:
        raise BadStatement(f"not a version 1 {kind} statement")
    for name in _COUNTERS:
        if isinstance(obj.get(name), int) and not 0 <= obj[name] <= _INT32_MAX:
            raise BadStatement(f"{kind} statement field {name!r} is outside 0..{_INT32_MAX}")
    return obj


def verify_call_state(raw: str, *, signer: str, public: PublicKeys,
                      call: str | None = None) -> CallState:
    """Parse and verify a call-state statement signed by ``signer`` with ``public``."""
    try:
        decoded = canonical.decode(raw.encode())
        fields = (_CALL_ANSWER_FIELDS if isinstance(decoded, dict) and "answer" in decoded
                  else _CALL_FIELDS)
        obj = _shape(decoded, fields, "call-state")
    except HotlineError as exc:
        raise BadStatement(f"call-state statement: {exc.message}") from None
    if obj["signer"] != signer or obj["kid"] != public.key_id:
        raise BadStatement(f"call-state statement claims {obj['signer']}, expected {signer}")
    if call is not None and obj["call"] != call:
        raise BadStatement("call-state statement is about another call")
    if obj["state"] not in CALL_STATES or not all(isinstance(w, str) for w in obj["who"]):
        raise BadStatement("call-state statement has an unknown state")
    answer, details = _answer_of(obj)
    if not verify_object(CALL_DOMAIN, obj, public):
        raise BadStatement(f"call-state signature does not verify with {signer}'s key")
    return CallState(obj["call"], signer, obj["n"], obj["state"], obj["step"], obj["role"],
                     obj["operator"], tuple(obj["who"]), obj["reason"], obj["at"],
                     obj["caller"], obj["callee"], raw, answer, details)


@dataclass(frozen=True)
class MessageReceipt:
    message: str
    conversation: str
    author: str
    signer: str
    receipt: str
    operator: str | None
    role: str | None
    at: int
    raw: str


def sign_message_receipt(*, message: str, conversation: str, author: str, signer: str,
                         receipt: str, at: int, keys: PartyKeys, operator: str | None = None,
                         role: str | None = None) -> MessageReceipt:
    if receipt not in RECEIPT_KINDS:
        raise ValueError(f"unknown receipt kind {receipt!r}")
    obj = {"v": 1, "kind": "message-receipt", "message": message, "conversation": conversation,
           "author": author, "signer": signer, "kid": keys.public.key_id, "receipt": receipt,
           "operator": operator, "role": role, "at": at}
    raw = canonical.encode(sign_object(RECEIPT_DOMAIN, obj, keys)).decode()
    return MessageReceipt(message, conversation, author, signer, receipt, operator, role, at,
                          raw)


def verify_message_receipt(raw: str, *, signer: str, public: PublicKeys) -> MessageReceipt:
    try:
        obj = _shape(canonical.decode(raw.encode()), _RECEIPT_FIELDS, "message-receipt")
    except HotlineError as exc:
        raise BadStatement(f"message-receipt statement: {exc.message}") from None
    if obj["signer"] != signer or obj["kid"] != public.key_id:
        raise BadStatement(f"message receipt claims {obj['signer']}, expected {signer}")
    if obj["receipt"] not in RECEIPT_KINDS:
        raise BadStatement("message receipt of an unknown kind")
    if not verify_object(RECEIPT_DOMAIN, obj, public):
        raise BadStatement(f"message receipt signature does not verify with {signer}'s key")
    return MessageReceipt(obj["message"], obj["conversation"], obj["author"], signer,
                          obj["receipt"], obj["operator"], obj["role"], obj["at"], raw)
