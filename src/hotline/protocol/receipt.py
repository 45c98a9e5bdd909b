"""Delivery receipts: the recipient's signed word that an envelope is stored.

A receipt is signed only after the commit that stores the envelope has returned, so a
receipt in the sender's hands proves the message is durable on the other side. It names
the envelope by id, sequence and SHA-256 of its exact bytes.
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


def envelope_digest(raw: bytes) -> str:
    return b64e(hashlib.sha256(raw).digest())


@dataclass(frozen=True)
class Receipt:
    envelope_id: str
    signer: str
    sender: str
    seq: int
    digest: str
    at: int
    raw: bytes


def make_receipt(*, envelope_id: str, signer: str, sender: str, seq: int, raw_envelope: bytes,
                 at_ms: int, keys: PartyKeys) -> bytes:
    obj = {"v": 1, "type": "receipt", "id": envelope_id, "from": signer, "to": sender,
           "kid": keys.public.key_id, "seq": seq, "digest": envelope_digest(raw_envelope),
           "at": at_ms}
    return canonical.encode(sign_object(DOMAIN, obj, keys))


def verify_receipt(data: bytes, *, signer: PublicKeys, signer_party: str, envelope_id: str,
                   sender: str, seq: int, raw_envelope: bytes) -> Receipt:
    """Check a receipt against the envelope it should acknowledge."""
    obj: Any = canonical.decode(data)
    if not isinstance(obj, dict) or set(obj) != FIELDS or obj.get("type") != "receipt":
        raise rejected(MALFORMED, "receipt has the wrong shape")
    expected = {"v": 1, "id": envelope_id, "from": signer_party, "to": sender, "seq": seq,
                "kid": signer.key_id, "digest": envelope_digest(raw_envelope)}
    for name, value in expected.items():
        if obj[name] != value:
            raise rejected(MALFORMED, f"receipt field {name!r} is {obj[name]!r}, "
                                      f"expected {value!r}")
    if not isinstance(obj["at"], int):
        raise rejected(MALFORMED, "receipt time is not an integer")
    if not verify_object(DOMAIN, obj, signer):
        raise rejected(BAD_SIGNATURE,
                       f"receipt signature does not verify with {signer_party}'s key")
    return Receipt(envelope_id=envelope_id, signer=signer_party, sender=sender, seq=seq,
                   digest=obj["digest"], at=obj["at"], raw=data)
