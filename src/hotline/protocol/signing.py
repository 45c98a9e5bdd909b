"""Signatures over canonical JSON objects, separated by domain.

Each signed object kind (envelope, receipt, link offer) signs under its own domain tag so
a signature made for one kind can never be passed off as another.
"""

from __future__ import annotations

from typing import Any

from hotline.protocol import canonical
from hotline.protocol.keys import PartyKeys, PublicKeys, b64d, b64e

SIG_FIELD = "sig"


def signing_input(domain: str, obj: dict[str, Any]) -> bytes:
    """The bytes a signature covers: domain tag, NUL, canonical object without ``sig``."""
    body = {k: v for k, v in obj.items() if k != SIG_FIELD}
    return domain.encode("ascii") + b"\x00" + canonical.encode(body)


def sign_object(domain: str, obj: dict[str, Any], keys: PartyKeys) -> dict[str, Any]:
    """Return ``obj`` with a ``sig`` field over everything else in it."""
    signed = dict(obj)
    signed[SIG_FIELD] = b64e(keys.signature(signing_input(domain, obj)))
    return signed


def verify_object(domain: str, obj: dict[str, Any], public: PublicKeys) -> bool:
    """True if ``obj['sig']`` is ``public``'s signature over the rest of ``obj``."""
    sig = obj.get(SIG_FIELD)
    if not isinstance(sig, str):
        return False
    return public.verify(b64d(sig, expect_len=64, what="signature"), signing_input(domain, obj))
