"""Incident entries: one signed statement per entry on an incident's timeline.

An entry is signed by its author party, on its own, so that it can travel from the
author to a member through the incident's opener (a relay) and still be verified end to
end by every reader with nothing but the author's public signing key. Entries are never
changed: a correction is a new entry whose ``corrects`` names the old one.

Shape (canonical JSON, domain :data:`ENTRY_DOMAIN`)::

    {"v": 1, "kind": "incident-entry", "incident": ID32, "id": ID32, "author": PARTY,
     "kid": KID16, "n": int (the author's 1, 2, ... in this incident), "at": ms (signed
     time), "type": one of ENTRY_TYPES, "text": str|null, "confidence": low|moderate|high|
     null, "source": PARTY|null, "refs": [ID32, ...], "corrects": ID32|null,
     "link": ID32|null, "link_kind": call|conversation|query|null, "party": PARTY|null,
     "party_key": b64 Ed25519 public key|null, "title": str|null, "sig": b64}

Per type: ``opened`` carries ``title`` (n = 1, author = the opener); ``joined`` carries
``party`` and ``party_key`` (author = the opener: its word on who joined and with which
key, which a member with no link to that party verifies its entries with); ``fact``,
``claim``, ``assessment`` and ``notification`` carry ``text``; ``link`` carries ``link``
and ``link_kind``. Errors: :class:`BadEntry` (error id ``bad-incident-entry``) naming the
field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hotline.errors import HotlineError
from hotline.protocol import canonical
from hotline.protocol.envelope import ID_RE, KID_RE, PARTY_RE
from hotline.protocol.keys import PartyKeys, b64d, key_id
from hotline.protocol.signing import sign_object, signing_input

ENTRY_DOMAIN = "hotline/incident-entry/v1"
#: what an operator may add; ``opened`` and ``joined`` are written by the opener's node
OPERATOR_TYPES = ("fact", "claim", "assessment", "notification")
ENTRY_TYPES = frozenset({"opened", "joined", "link", *OPERATOR_TYPES})
CONFIDENCE = ("low", "moderate", "high")
LINK_KINDS = ("call", "conversation", "query")
MAX_TEXT = 4000
MAX_TITLE = 200
MAX_REFS = 16
_INT32_MAX = 2**31 - 1

_OPT_STR = (str, type(None))
_FIELDS: dict[str, Any] = {
    "v": int, "kind": str, "incident": str, "id": str, "author": str, "kid": str, "n": int,
    "at": int, "type": str, "text": _OPT_STR, "confidence": _OPT_STR, "source": _OPT_STR,
    "refs": list, "corrects": _OPT_STR, "link": _OPT_STR, "link_kind": _OPT_STR,
    "party": _OPT_STR, "party_key": _OPT_STR, "title": _OPT_STR, "sig": str}


class BadEntry(HotlineError):
    """An incident entry that is malformed, or whose signature does not verify."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__("bad-incident-entry", message, status=400)
        self.field = field


@dataclass(frozen=True)
class Entry:
    """One verified entry, as signed."""

    incident: str
    id: str
    author: str
    kid: str
    n: int
    at: int
    type: str
    text: str | None
    confidence: str | None
    source: str | None
    refs: tuple[str, ...]
    corrects: str | None
    link: str | None
    link_kind: str | None
    party: str | None
    party_key: str | None
    title: str | None
    raw: str  # the exact signed canonical JSON

    def order_key(self) -> tuple[int, str, int]:
        """The timeline's order: signed time, then author, then the author's number."""
        return (self.at, self.author, self.n)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "incident": self.incident, "author": self.author,
                "n": self.n, "at": self.at, "type": self.type, "text": self.text,
                "confidence": self.confidence, "source": self.source,
                "refs": list(self.refs), "corrects": self.corrects, "link": self.link,
                "link_kind": self.link_kind, "party": self.party, "title": self.title}


def _text(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit or any(
            ord(c) < 32 and c not in "\n\t" for c in value):
        raise BadEntry(f"{name} must be 1 to {limit} characters of text", name)
    return value


def check_fields(obj: dict[str, Any]) -> None:
    """The per-type rules over an entry's fields (signed or about to be): raises
    :class:`BadEntry` naming the first field that is wrong."""
    t = obj.get("type")
    if t not in ENTRY_TYPES:
        raise BadEntry(f"type must be one of {', '.join(sorted(ENTRY_TYPES))}", "type")
    for name in ("incident", "id"):
        if not isinstance(obj.get(name), str) or not ID_RE.match(obj[name]):
            raise BadEntry(f"{name} must be 32 hex digits", name)
    if not isinstance(obj.get("author"), str) or not PARTY_RE.match(obj["author"]):
        raise BadEntry("author must be a party id", "author")
    if obj.get("source") is not None and not PARTY_RE.match(str(obj["source"])):
        raise BadEntry("source must be a party id", "source")
    if obj.get("confidence") is not None and obj["confidence"] not in CONFIDENCE:
        raise BadEntry(f"confidence must be one of {', '.join(CONFIDENCE)}", "confidence")
    refs = obj.get("refs")
    if not isinstance(refs, list) or len(refs) > MAX_REFS or not all(
            isinstance(r, str) and ID_RE.match(r) for r in refs):
        raise BadEntry(f"refs must be at most {MAX_REFS} entry ids", "refs")
    corrects = obj.get("corrects")
    if corrects is not None and (not ID_RE.match(str(corrects)) or corrects not in refs):
        raise BadEntry("corrects must be an entry id that refs also names", "corrects")
    wanted = {"opened": {"title"}, "joined": {"party", "party_key"},
              "link": {"link", "link_kind"}}.get(t, {"text"})
    extra = [k for k in ("title", "party", "party_key", "link", "link_kind")
             if k not in wanted and obj.get(k) is not None]
    if extra:
        raise BadEntry(f"a {t} entry has no {extra[0]}", extra[0])
    if t == "opened":
        _text(obj.get("title"), "title", MAX_TITLE)
    elif t == "joined":
        if not isinstance(obj.get("party"), str) or not PARTY_RE.match(obj["party"]):
            raise BadEntry("party must be a party id", "party")
        try:
            b64d(str(obj.get("party_key")), expect_len=32, what="party_key")
        except HotlineError:
            raise BadEntry("party_key must be a 32-byte public key", "party_key") from None
    elif t == "link":
        if obj.get("link_kind") not in LINK_KINDS:
            raise BadEntry("link_kind must be call, conversation or query", "link_kind")
        if not isinstance(obj.get("link"), str) or not ID_RE.match(obj["link"]):
            raise BadEntry("link must be a call, conversation or query id", "link")
    if t in OPERATOR_TYPES or obj.get("text") is not None:
        _text(obj.get("text"), "text", MAX_TEXT)


def sign_entry(*, keys: PartyKeys, **fields: Any) -> Entry:
    """Sign a new entry. ``fields``: every field of the shape but v, kind, kid and sig
    (missing optional ones are null, ``refs`` empty). Raises :class:`BadEntry`."""
    obj: dict[str, Any] = {name: None for name in _FIELDS if name not in ("refs", "sig")}
    obj.update({"refs": []})
    obj.update(fields)
    obj.update({"v": 1, "kind": "incident-entry", "kid": keys.public.key_id})
    if set(obj) != set(_FIELDS) - {"sig"}:
        raise BadEntry(f"unknown fields {sorted(set(obj) - set(_FIELDS))}")
    check_fields(obj)
    raw = canonical.encode(sign_object(ENTRY_DOMAIN, obj, keys)).decode()
    return _entry(canonical.decode(raw.encode()), raw)


def parse_entry(raw: object) -> dict[str, Any]:
    """The fields of a signed entry, shape checked but NOT verified (the caller picks the
    key by ``author`` and ``kid``, then calls :func:`verify_entry`)."""
    if not isinstance(raw, str) or len(raw) > 3 * MAX_TEXT:
        raise BadEntry("an entry is a signed statement string")
    try:
        obj = canonical.decode(raw.encode())
    except HotlineError as exc:
        raise BadEntry(f"the entry is not canonical JSON: {exc.message}") from None
    if not isinstance(obj, dict) or set(obj) != set(_FIELDS):
        raise BadEntry("the entry has the wrong fields")
    for name, types in _FIELDS.items():
        if isinstance(obj[name], bool) or not isinstance(obj[name], types):
            raise BadEntry(f"entry field {name!r} has the wrong type", name)
    if obj["v"] != 1 or obj["kind"] != "incident-entry":
        raise BadEntry("not a version 1 incident entry")
    if not KID_RE.match(obj["kid"]) or not 0 < obj["n"] <= _INT32_MAX or obj["at"] < 0:
        raise BadEntry("entry kid, n or at is out of range")
    check_fields(obj)
    return obj


def verify_entry(raw: str, sign_key: bytes) -> Entry:
    """Parse ``raw`` and verify it with the author's raw Ed25519 public key (32 bytes),
    whose id must be the entry's ``kid``. Raises :class:`BadEntry`."""
    obj = parse_entry(raw)
    if key_id(sign_key) != obj["kid"]:
        raise BadEntry(f"the entry is signed with key {obj['kid']}, not the one known "
                       f"for {obj['author']}")
    try:
        Ed25519PublicKey.from_public_bytes(sign_key).verify(
            b64d(obj["sig"], expect_len=64, what="signature"),
            signing_input(ENTRY_DOMAIN, obj))
    except (InvalidSignature, HotlineError, ValueError):
        raise BadEntry(f"the entry's signature does not verify with {obj['author']}'s "
                       "key") from None
    return _entry(obj, raw)


def _entry(obj: dict[str, Any], raw: str) -> Entry:
    return Entry(obj["incident"], obj["id"], obj["author"], obj["kid"], obj["n"], obj["at"],
                 obj["type"], obj["text"], obj["confidence"], obj["source"],
                 tuple(obj["refs"]), obj["corrects"], obj["link"], obj["link_kind"],
                 obj["party"], obj["party_key"], obj["title"], raw)
