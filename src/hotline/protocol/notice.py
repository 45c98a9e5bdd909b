"""Signed receipts of formatted notifications ("notices").

Like a conversation message's receipt (:mod:`hotline.protocol.statement`), under its own
signing domain so that neither can stand for the other: *delivered* (the receiving node,
once stored), *read* and *acknowledged* (a person acting in a role), or *refused* (the
receiving node: its copy of the template does not take the notification; ``reason``
says why, naming the template or the field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hotline.bounds import MAX_TIME_MS
from hotline.errors import HotlineError
from hotline.protocol import canonical
from hotline.protocol.envelope import PARTY_RE
from hotline.protocol.keys import PartyKeys, PublicKeys
from hotline.protocol.signing import sign_object, verify_object
from hotline.protocol.statement import BadStatement, _shape

NOTICE_RECEIPT_DOMAIN = "hotline/notice-receipt/v1"
NOTICE_RECEIPTS = frozenset({"delivered", "read", "acknowledged", "refused"})
_OPT = (str, type(None))
#: what the receiver's ``notice_receipts`` columns hold of a signer's claims (a role and
#: an operator are 32 characters at most, as the directory's names are)
_ID = re.compile(r"[0-9a-f]{32}")
_ROLE = re.compile(r"[a-z][a-z0-9-]{0,31}")
_OPERATOR = re.compile(r"[a-z][a-z0-9._-]{0,31}")
MAX_REASON = 2000
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_FIELDS = {"v": int, "kind": str, "notice": str, "author": str, "signer": str, "kid": str,
           "receipt": str, "operator": _OPT, "role": _OPT, "reason": _OPT, "at": int,
           "sig": str}


@dataclass(frozen=True)
class NoticeReceipt:
    notice: str
    author: str
    signer: str
    receipt: str
    operator: str | None
    role: str | None
    reason: str | None
    at: int  # the signer's wall clock, ms
    raw: str  # the exact signed canonical JSON


def sign_notice_receipt(*, notice: str, author: str, signer: str, receipt: str, at: int,
                        keys: PartyKeys, operator: str | None = None,
                        role: str | None = None, reason: str | None = None) -> NoticeReceipt:
    if receipt not in NOTICE_RECEIPTS:
        raise ValueError(f"unknown notice receipt {receipt!r}")
    obj = {"v": 1, "kind": "notice-receipt", "notice": notice, "author": author,
           "signer": signer, "kid": keys.public.key_id, "receipt": receipt,
           "operator": operator, "role": role, "reason": reason, "at": at}
    raw = canonical.encode(sign_object(NOTICE_RECEIPT_DOMAIN, obj, keys)).decode()
    return NoticeReceipt(notice, author, signer, receipt, operator, role, reason, at, raw)


def _claims_problem(obj: dict[str, Any]) -> str | None:
    """Why the receipt's claims cannot be kept as they are, or None."""
    if not _ID.fullmatch(str(obj["notice"])):
        return "notice is not a notice id"
    if not PARTY_RE.match(str(obj["author"])):
        return "author is not a party id"
    for key, pattern in (("role", _ROLE), ("operator", _OPERATOR)):
        if obj[key] is not None and not pattern.fullmatch(str(obj[key])):
            return f"{key} is not a {key} name"
    if obj["reason"] is not None and len(str(obj["reason"])) > MAX_REASON:
        return f"reason is longer than {MAX_REASON} characters"
    if obj["reason"] is not None and _UNSAFE.search(str(obj["reason"])):
        # a reason is shown on terminals and pages as one line of text
        return "reason holds control or bidi characters"
    if not 0 <= obj["at"] <= MAX_TIME_MS:
        return "at is not a time between 1970 and 9999"
    return None


def verify_notice_receipt(raw: str, *, signer: str, public: PublicKeys) -> NoticeReceipt:
    """The receipt in ``raw`` if ``signer`` signed it with ``public``; else
    :class:`~hotline.protocol.statement.BadStatement`."""
    try:
        obj = _shape(canonical.decode(raw.encode()), _FIELDS, "notice-receipt")
    except HotlineError as exc:
        raise BadStatement(f"notice-receipt statement: {exc.message}") from None
    if obj["signer"] != signer or obj["kid"] != public.key_id:
        raise BadStatement(f"notice receipt claims {obj['signer']}, expected {signer}")
    if obj["receipt"] not in NOTICE_RECEIPTS:
        raise BadStatement("notice receipt of an unknown kind")
    problem = _claims_problem(obj)
    if problem is not None:
        raise BadStatement(f"notice receipt: {problem}")
    if not verify_object(NOTICE_RECEIPT_DOMAIN, obj, public):
        raise BadStatement(f"notice receipt signature does not verify with {signer}'s key")
    return NoticeReceipt(obj["notice"], obj["author"], signer, obj["receipt"],
                         obj["operator"], obj["role"], obj["reason"], obj["at"], raw)
