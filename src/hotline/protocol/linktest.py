"""Link tests: a signed probe and the peer's signed answer, outside the envelope sequence.

A node tests each endpoint of each link by posting a *probe* to
``POST /federation/v1/linktest`` at that endpoint; the peer's node answers at once with
an *answer* signed by its party key. The pair proves that this endpoint reaches the
peer's node (not a proxy or an impostor), and the round trip measured around it is the
line's delay. A probe is not an envelope: it carries nothing for anyone to act on, has
no sequence number (a probe per endpoint would otherwise reorder the line) and is
stored nowhere; the answer is bound to its probe by the probe's digest.

Wire form, canonical JSON (sorted keys)::

    probe:  {"at": ms, "endpoint": "https://ru.example:7443", "from": "US-JS",
             "kid": "<16 hex>", "nonce": b64url(16 bytes), "sig": ..., "to": "RU-GS",
             "v": 1}
    answer: {"at": ms, "from": "RU-GS", "kid": "<16 hex>", "probe": b64url(sha256 of
             the probe's canonical bytes), "sig": ..., "to": "US-JS", "v": 1}

Each signs under its own domain (``hotline/linktest/v1``, ``hotline/linktest-answer/v1``)
so neither can be passed off as the other or as any other signed object. Every field is
checked strictly before the signature; a failure raises ``bad-linktest``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from hotline.errors import HotlineError
from hotline.protocol import canonical
from hotline.protocol.canonical import MAX_SAFE_INTEGER
from hotline.protocol.envelope import KID_RE, PARTY_RE
from hotline.protocol.keys import PartyKeys, PublicKeys, b64d, b64e
from hotline.protocol.signing import SIG_FIELD, sign_object, verify_object

PROBE_DOMAIN = "hotline/linktest/v1"
ANSWER_DOMAIN = "hotline/linktest-answer/v1"
PROBE_FIELDS = frozenset({"v", "from", "to", "endpoint", "nonce", "at", "kid", SIG_FIELD})
ANSWER_FIELDS = frozenset({"v", "from", "to", "probe", "at", "kid", SIG_FIELD})
BAD_LINKTEST = "bad-linktest"
NONCE_SIZE = 16
MAX_ENDPOINT_CHARS = 512
#: a probe body is far smaller; the endpoint refuses more before parsing
MAX_PROBE_BYTES = 4096


@dataclass(frozen=True)
class Probe:
    """A verified probe from ``sender`` to ``recipient`` sent at ``at`` (sender's clock)."""

    sender: str
    recipient: str
    endpoint: str
    at: int
    kid: str
    digest: bytes


@dataclass(frozen=True)
class Answer:
    """A verified answer: the peer's node signed it at ``at`` (the peer's clock)."""

    sender: str
    at: int
    kid: str


def _fail(message: str) -> HotlineError:
    return HotlineError(BAD_LINKTEST, f"link test: {message}")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fields(obj: object, fields: frozenset[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _fail(f"expected a JSON object, got {type(obj).__name__}")
    if set(obj) != fields:
        missing = sorted(fields - set(obj))
        extra = sorted(_show(k) for k in set(obj) - fields)
        raise _fail(f"wrong fields (missing {missing}, unexpected {_show(extra)})")
    if type(obj["v"]) is not int or obj["v"] != 1:
        raise _fail(f"unsupported version {_show(obj['v'])}, expected 1")
    for name in ("from", "to"):
        if not isinstance(obj[name], str) or not PARTY_RE.fullmatch(obj[name]):
            raise _fail(f"field {name!r} is not a party id: {_show(obj[name])}")
    if not isinstance(obj["kid"], str) or not KID_RE.fullmatch(obj["kid"]):
        raise _fail(f"field 'kid' is not 16 lowercase hex digits: {_show(obj['kid'])}")
    at = obj["at"]
    if type(at) is not int or not 0 <= at <= MAX_SAFE_INTEGER:
        raise _fail(f"field 'at' must be an integer from 0 to 2^53 - 1, got {_show(at)}")
    if not isinstance(obj[SIG_FIELD], str):
        raise _fail("field 'sig' is not a string")
    try:
        b64d(obj[SIG_FIELD], expect_len=64, what="signature")
    except HotlineError as exc:
        raise _fail(f"field 'sig': {exc.message}") from None
    return obj


def digest(obj: dict[str, Any]) -> bytes:
    """SHA-256 of a signed probe's canonical bytes: what its answer names."""
    return hashlib.sha256(canonical.encode(obj)).digest()


def make_probe(sender: str, recipient: str, endpoint: str, at_ms: int,
               keys: PartyKeys, nonce: bytes | None = None) -> dict[str, Any]:
    """A signed probe of ``recipient``'s ``endpoint``; a fresh random nonce by default."""
    obj = {"v": 1, "from": sender, "to": recipient, "endpoint": endpoint,
           "nonce": b64e(nonce if nonce is not None else os.urandom(NONCE_SIZE)),
           "at": at_ms, "kid": keys.public.key_id}
    return sign_object(PROBE_DOMAIN, obj, keys)


def parse_probe(obj: object) -> dict[str, Any]:
    """Check a probe's shape (no signature yet): the checked object, or ``bad-linktest``."""
    checked = _fields(obj, PROBE_FIELDS)
    endpoint = checked["endpoint"]
    if not isinstance(endpoint, str) or not 0 < len(endpoint) <= MAX_ENDPOINT_CHARS:
        raise _fail(f"field 'endpoint' must be a URL of at most {MAX_ENDPOINT_CHARS} "
                    "characters")
    if not isinstance(checked["nonce"], str):
        raise _fail("field 'nonce' is not a string")
    try:
        b64d(checked["nonce"], expect_len=NONCE_SIZE, what="nonce")
    except HotlineError as exc:
        raise _fail(f"field 'nonce': {exc.message}") from None
    return checked


def verify_probe(obj: object, public: PublicKeys, *, sender: str, recipient: str) -> Probe:
    """Check a probe claimed to come from ``sender`` (holding ``public``) to
    ``recipient``; raises ``bad-linktest`` on any malformed field, another recipient, a
    key id that is not ``public``'s, or a signature that does not verify."""
    checked = parse_probe(obj)
    if checked["from"] != sender or checked["to"] != recipient:
        raise _fail(f"it is from {checked['from']} to {checked['to']}, expected "
                    f"{sender} to {recipient}")
    if checked["kid"] != public.key_id:
        raise _fail(f"signed with key {checked['kid']}, but {sender}'s key is "
                    f"{public.key_id}")
    if not verify_object(PROBE_DOMAIN, checked, public):
        raise _fail(f"signature does not verify with {sender}'s key: the probe was "
                    "altered or forged")
    return Probe(sender, recipient, checked["endpoint"], checked["at"], checked["kid"],
                 digest(checked))


def make_answer(probe: Probe, at_ms: int, keys: PartyKeys) -> dict[str, Any]:
    """The recipient's signed answer to a verified ``probe``."""
    obj = {"v": 1, "from": probe.recipient, "to": probe.sender, "probe": b64e(probe.digest),
           "at": at_ms, "kid": keys.public.key_id}
    return sign_object(ANSWER_DOMAIN, obj, keys)


def verify_answer(obj: object, public: PublicKeys, probe: dict[str, Any]) -> Answer:
    """Check that ``obj`` is the answer to ``probe`` (as sent) signed by its recipient
    holding ``public``; raises ``bad-linktest`` otherwise."""
    checked = _fields(obj, ANSWER_FIELDS)
    if checked["from"] != probe["to"] or checked["to"] != probe["from"]:
        raise _fail(f"the answer is from {checked['from']} to {checked['to']}, expected "
                    f"{probe['to']} to {probe['from']}")
    if checked["probe"] != b64e(digest(probe)):
        raise _fail("the answer names another probe")
    if checked["kid"] != public.key_id:
        raise _fail(f"answer signed with key {checked['kid']}, but {probe['to']}'s key is "
                    f"{public.key_id}")
    if not verify_object(ANSWER_DOMAIN, checked, public):
        raise _fail(f"answer signature does not verify with {probe['to']}'s key")
    return Answer(checked["from"], checked["at"], checked["kid"])
