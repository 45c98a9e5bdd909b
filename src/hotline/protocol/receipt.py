"""Delivery receipts: the recipient's signed word that an envelope is stored.

A receipt is signed only after the commit that stores the envelope has returned, so a
receipt in the sender's hands proves the message is durable on the other side.

It names the message by id and sequence, and by a digest of the *message* (sender,
recipient, id, sequence, type and plaintext payload) rather than of one transmission's
bytes: a sender re-seals an envelope that waited long in its outbox (fresh timestamp,
fresh encryption, same message), and every transmission of one message must earn the
same receipt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from hotline.errors import BAD_SIGNATURE, MALFORMED, rejected
from hotline.protocol import canonical
from hotline.protocol.keys import PartyKeys, PublicKeys, b64e
from hotline.protocol.signing import sign_object, verify_object

DOMAIN = "hotline/receipt/v1"
FIELDS = frozenset({"v", "type", "id", "from", "to", "kid", "seq", "digest", "at", "sig"})


MESSAGE_DOMAIN = b"hotline/message/v1\x00"

#: Payload fields that belong to one transmission, not to the message, like the header's
#: ``ts``: a sender re-seals them with a fresh value, so the digest leaves them out.
#: ``call.place``'s ``budget_ms`` is the caller's remaining delivery budget at sealing.
TRANSMISSION_FIELDS: dict[str, frozenset[str]] = {"call.place": frozenset({"budget_ms"})}


def envelope_digest(raw: bytes) -> str:
    """SHA-256 of exact envelope bytes (for logs and evidence, not receipts)."""
    return b64e(hashlib.sha256(raw).digest())


def message_digest(*, envelope_id: str, sender: str, recipient: str, seq: int, type_: str,
                   payload: dict[str, Any], lane: str = "control") -> str:
    """SHA-256 over the canonical message: what a receipt acknowledges (the payload
    without its :data:`TRANSMISSION_FIELDS`). A bulk-lane message binds its lane too
    (a control one does not: its digest is what it was before lanes)."""
    skip = TRANSMISSION_FIELDS.get(type_)
    if skip:
        payload = {k: v for k, v in payload.items() if k not in skip}
    message: dict[str, Any] = {"id": envelope_id, "from": sender, "to": recipient,
                               "seq": seq, "type": type_, "payload": payload}
    if lane != "control":
        message["lane"] = lane
    body = canonical.encode(message)
    return b64e(hashlib.sha256(MESSAGE_DOMAIN + body).digest())


@dataclass(frozen=True)
class Receipt:
    envelope_id: str
    signer: str
    sender: str
    seq: int
    digest: str
    at: int
    raw: bytes


def make_receipt(*, envelope_id: str, signer: str, sender: str, seq: int, digest: str,
                 at_ms: int, keys: PartyKeys) -> bytes:
    obj = {"v": 1, "type": "receipt", "id": envelope_id, "from": signer, "to": sender,
           "kid": keys.public.key_id, "seq": seq, "digest": digest, "at": at_ms}
    return canonical.encode(sign_object(DOMAIN, obj, keys))


def verify_receipt(data: bytes, *, signer: PublicKeys, signer_party: str, envelope_id: str,
                   sender: str, seq: int, digest: str) -> Receipt:
    """Check a receipt against the envelope it should acknowledge."""
    obj: Any = canonical.decode(data)
    if not isinstance(obj, dict) or set(obj) != FIELDS or obj.get("type") != "receipt":
        raise rejected(MALFORMED, "receipt has the wrong shape")
    expected = {"v": 1, "id": envelope_id, "from": signer_party, "to": sender, "seq": seq,
                "kid": signer.key_id, "digest": digest}
    for name, value in expected.items():
        if obj[name] != value or type(obj[name]) is not type(value):
            raise rejected(MALFORMED, f"receipt field {name!r} is {obj[name]!r}, "
                                      f"expected {value!r}")
    if type(obj["at"]) is not int:
        raise rejected(MALFORMED, "receipt time is not an integer")
    if not verify_object(DOMAIN, obj, signer):
        raise rejected(BAD_SIGNATURE,
                       f"receipt signature does not verify with {signer_party}'s key")
    return Receipt(envelope_id=envelope_id, signer=signer_party, sender=sender, seq=seq,
                   digest=obj["digest"], at=obj["at"], raw=data)
