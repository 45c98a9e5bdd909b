"""Envelopes: the only thing that crosses a link.

Wire form: one canonical JSON object (see :mod:`hotline.protocol.canonical`)::

    {"ct": b64url(HPKE enc || ciphertext), "from": "US-JS", "id": "<32 hex>",
     "kid": "<16 hex>", "seq": 1, "sig": b64url(Ed25519), "to": "RU-GS",
     "ts": <ms since epoch>, "type": "message", "v": 1}

A bulk-lane envelope (protocol 2, :mod:`hotline.protocol.lanes`) has two more signed
fields: ``"lane": "bulk"`` and ``"after": <the last control seq its sender had committed
to the link>``. An envelope without them is a control-lane envelope, as every envelope
was before lanes: old envelopes and logs verify unchanged.

Every routing-relevant field is covered by the sender's signature; the payload is
encrypted to the recipient with HPKE (RFC 9180: DHKEM-X25519, HKDF-SHA256,
ChaCha20-Poly1305), a fresh ephemeral key per envelope, and the header bound in as the
HPKE ``info`` so a ciphertext cannot be moved under another header. An envelope stands on
its own: a relay or an exported file can carry it without being trusted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke

from hotline.errors import (
    BAD_SIGNATURE,
    MALFORMED,
    OVERSIZE,
    TIMESTAMP_OUT_OF_WINDOW,
    UNDECRYPTABLE,
    UNKNOWN_KEY,
    UNKNOWN_SENDER,
    UNSUPPORTED_VERSION,
    WRONG_RECIPIENT,
    rejected,
)
from hotline.protocol import canonical
from hotline.protocol.generation import generation_of
from hotline.protocol.keys import KeyRing, PartyKeys, PublicKeys, b64d, b64e
from hotline.protocol.lanes import BULK, CONTROL, Lane
from hotline.protocol.signing import sign_object, signing_input, verify_object

VERSION = 1
DOMAIN = "hotline/envelope/v1"
DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_SKEW_MS = 5 * 60 * 1000

# "\Z", not "$": "$" also matches before a final newline, so a .match() with it
# let "X\n" through (longer than the column on PostgreSQL, stored as is on SQLite).
PARTY_RE = re.compile(r"^[A-Z0-9](?:[A-Z0-9-]{0,30}[A-Z0-9])?\Z")
TYPE_RE = re.compile(r"^[a-z][a-z0-9.-]{0,63}\Z")
ID_RE = re.compile(r"^[0-9a-f]{32}\Z")
KID_RE = re.compile(r"^[0-9a-f]{16}\Z")
FIELDS = frozenset({"v", "id", "from", "to", "kid", "seq", "ts", "type", "ct", "sig"})
#: the fields only a bulk-lane envelope has (and must have both of)
LANE_FIELDS = frozenset({"lane", "after"})

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


@dataclass(frozen=True)
class Header:
    """The signed routing fields of an envelope."""

    id: str
    sender: str
    recipient: str
    kid: str
    seq: int
    ts: int
    type: str
    v: int = VERSION
    #: the lane ``seq`` numbers (``control`` unless the envelope says ``bulk``)
    lane: Lane = CONTROL
    #: bulk only: the last control seq committed before it (released after that one)
    after: int | None = None

    def as_dict(self) -> dict[str, Any]:
        head = {"v": self.v, "id": self.id, "from": self.sender, "to": self.recipient,
                "kid": self.kid, "seq": self.seq, "ts": self.ts, "type": self.type}
        if self.lane != CONTROL:
            head["lane"], head["after"] = self.lane, self.after or 0
        return head


@dataclass(frozen=True)
class Envelope:
    """A verified, decrypted envelope and the exact bytes it arrived as."""

    header: Header
    payload: dict[str, Any]
    raw: bytes


def new_envelope_id() -> str:
    return os.urandom(16).hex()


def _hpke_info(header: dict[str, Any]) -> bytes:
    return DOMAIN.encode("ascii") + b"\x00" + canonical.encode(header)


def seal(header: Header, payload: dict[str, Any], sender: PartyKeys,
         recipient: PublicKeys) -> bytes:
    """Encrypt ``payload`` to ``recipient``, sign everything, return the wire bytes."""
    head = header.as_dict()
    ct = _SUITE.encrypt(canonical.encode(payload), recipient.enc, info=_hpke_info(head))
    return canonical.encode(sign_object(DOMAIN, {**head, "ct": b64e(ct)}, sender))


def _str_field(obj: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise rejected(MALFORMED, f"field {name!r} is missing or malformed")
    return value


def _int_field(obj: dict[str, Any], name: str, minimum: int) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise rejected(MALFORMED, f"field {name!r} must be an integer >= {minimum}")
    return value


def parse_header(obj: Any, lanes: bool = True) -> Header:
    """Check the shape of a decoded envelope and return its header. ``lanes=False``: as
    a node of protocol 1 does, refuse the bulk lane's fields as unexpected."""
    if not isinstance(obj, dict):
        raise rejected(MALFORMED, "envelope is not a JSON object")
    if "v" not in obj:
        raise rejected(MALFORMED, "envelope has no version field 'v'")
    version = obj["v"]
    if version != VERSION or type(version) is not int:
        raise rejected(UNSUPPORTED_VERSION, f"envelope version {version!r} is not supported "
                                            f"(this node speaks {VERSION})")
    expected = FIELDS | LANE_FIELDS if lanes and "lane" in obj else FIELDS
    if set(obj) != expected:
        missing, extra = sorted(expected - set(obj)), sorted(set(obj) - expected)
        raise rejected(MALFORMED, f"envelope fields wrong: missing {missing}, unexpected {extra}")
    if not isinstance(obj["ct"], str) or not isinstance(obj["sig"], str):
        raise rejected(MALFORMED, "fields 'ct' and 'sig' must be strings")
    lane: Lane = CONTROL
    after = None
    if "lane" in obj:
        if obj["lane"] != BULK:  # a control envelope says nothing: one encoding each
            raise rejected(MALFORMED, f"field 'lane' must be {BULK!r} if present")
        lane, after = BULK, _int_field(obj, "after", 0)
    seq = _int_field(obj, "seq", 1)
    if after and generation_of(after) > generation_of(seq):
        # a control number of a later link generation never comes in this one: the
        # envelope could never be released and would hold its lane for good
        raise rejected(MALFORMED, f"field 'after' ({after}) names a control seq of link "
                                  f"generation {generation_of(after)}, later than the "
                                  f"generation {generation_of(seq)} of seq {seq}")
    return Header(id=_str_field(obj, "id", ID_RE), sender=_str_field(obj, "from", PARTY_RE),
                  recipient=_str_field(obj, "to", PARTY_RE), kid=_str_field(obj, "kid", KID_RE),
                  seq=seq, ts=_int_field(obj, "ts", 0),
                  type=_str_field(obj, "type", TYPE_RE), lane=lane, after=after)


def open_envelope(data: bytes, *, me: str, my_keys: PartyKeys,
                  sender_keys: Callable[[str], dict[str, PublicKeys] | None],
                  now_ms: int, skew_ms: int = DEFAULT_SKEW_MS,
                  max_bytes: int = DEFAULT_MAX_BYTES, lanes: bool = True) -> Envelope:
    """Verify and decrypt one envelope, or raise a rejection with a stable id.

    ``sender_keys(party)`` returns the party's signing keys by key id, or ``None`` for a
    party we have no link with. The stateful checks (replay, sequence window) belong to
    the receiver, which holds the store.
    """
    if len(data) > max_bytes:
        raise rejected(OVERSIZE, f"envelope of {len(data)} bytes exceeds the limit of "
                                 f"{max_bytes} bytes")
    obj = canonical.decode(data)
    header = parse_header(obj, lanes)
    if header.recipient != me:
        raise rejected(WRONG_RECIPIENT, f"envelope is addressed to {header.recipient}, "
                                        f"this node is {me}")
    keys = sender_keys(header.sender)
    if keys is None:
        raise rejected(UNKNOWN_SENDER, f"no accepted link with party {header.sender}")
    public = keys.get(header.kid)
    if public is None:
        raise rejected(UNKNOWN_KEY, f"party {header.sender} has no key with id {header.kid}")
    if not verify_object(DOMAIN, obj, public):
        raise rejected(BAD_SIGNATURE, f"signature does not verify with {header.sender}'s key "
                                      f"{header.kid}")
    if abs(header.ts - now_ms) > skew_ms:
        raise rejected(TIMESTAMP_OUT_OF_WINDOW,
                       f"envelope time is {(header.ts - now_ms) / 1000:+.1f} s from ours; "
                       f"the window is +-{skew_ms / 1000:.0f} s")
    ct = b64d(obj["ct"], what="ciphertext")
    # A peer may have sealed to an encryption key this node has since rotated out of.
    older = my_keys.older if isinstance(my_keys, KeyRing) else ()
    plain = None
    for private in (my_keys.enc, *(k.enc for k in older)):
        try:
            plain = _SUITE.decrypt(ct, private, info=_hpke_info(header.as_dict()))
            break
        except (InvalidTag, ValueError):
            continue
    if plain is None:
        raise rejected(UNDECRYPTABLE, "payload does not decrypt with this node's key")
    payload = canonical.decode(plain)
    if not isinstance(payload, dict):
        raise rejected(MALFORMED, "payload is not a JSON object")
    return Envelope(header=header, payload=payload, raw=data)


def signed_bytes(data: bytes) -> bytes:
    """The exact bytes an envelope's signature covers (used by evidence tools)."""
    return signing_input(DOMAIN, canonical.decode(data))
