"""Party keys: Ed25519 to sign, X25519 to receive encrypted payloads.

Public keys travel as unpadded base64url of their raw 32 bytes. A key id names a
signing key (so a party can rotate keys and a receiver can tell which one signed), and a
safety number lets two people confirm by voice that they hold the same keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from functools import cached_property

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hotline.errors import MALFORMED, rejected


def b64e(data: bytes) -> str:
    """Unpadded base64url, the one binary-to-text form used on the wire."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str, *, expect_len: int | None = None, what: str = "value") -> bytes:
    """Decode unpadded base64url strictly: the result must re-encode to ``text``."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise rejected(MALFORMED, f"{what} is not base64url") from None
    if b64e(data) != text:
        raise rejected(MALFORMED, f"{what} is not canonical base64url")
    if expect_len is not None and len(data) != expect_len:
        raise rejected(MALFORMED, f"{what} must be {expect_len} bytes, got {len(data)}")
    return data


def _raw(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(sign_public: bytes) -> str:
    """The id of a signing key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(b"hotline/key-id/v1\x00" + sign_public).hexdigest()[:16]


def safety_number(party: str, sign_public: bytes, enc_public: bytes) -> str:
    """Twelve groups of five digits, derived from a party's id and public keys.

    Read aloud over an independent channel (a phone call, a meeting) it confirms that an
    offer came from the party it names and was not swapped in transit.
    """
    digest = hashlib.sha512(b"hotline/safety-number/v1\x00" + party.encode() + b"\x00"
                            + sign_public + enc_public).digest()
    groups = []
    for i in range(12):
        chunk = int.from_bytes(digest[i * 5:(i + 1) * 5], "big")
        groups.append(f"{chunk % 100000:05d}")
    return " ".join(groups)


@dataclass(frozen=True)
class PublicKeys:
    """What a peer knows about a party: its signing and encryption public keys."""

    sign: Ed25519PublicKey
    enc: X25519PublicKey

    # Derived values are cached: they are read on every envelope and receipt.
    @cached_property
    def sign_bytes(self) -> bytes:
        return _raw(self.sign)

    @cached_property
    def enc_bytes(self) -> bytes:
        return _raw(self.enc)

    @cached_property
    def key_id(self) -> str:
        return key_id(self.sign_bytes)

    @classmethod
    def from_b64(cls, sign: str, enc: str) -> PublicKeys:
        return cls(Ed25519PublicKey.from_public_bytes(b64d(sign, expect_len=32, what="sign key")),
                   X25519PublicKey.from_public_bytes(b64d(enc, expect_len=32, what="enc key")))

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self.sign.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class PartyKeys:
    """A party's private keys. Only the node's keystore ever holds these."""

    sign: Ed25519PrivateKey
    enc: X25519PrivateKey

    @classmethod
    def generate(cls) -> PartyKeys:
        return cls(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    @classmethod
    def from_raw(cls, sign: bytes, enc: bytes) -> PartyKeys:
        return cls(Ed25519PrivateKey.from_private_bytes(sign),
                   X25519PrivateKey.from_private_bytes(enc))

    def raw(self) -> tuple[bytes, bytes]:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        return (self.sign.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
                self.enc.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @cached_property
    def public(self) -> PublicKeys:
        return PublicKeys(self.sign.public_key(), self.enc.public_key())

    def signature(self, message: bytes) -> bytes:
        return self.sign.sign(message)


class KeyRing(PartyKeys):
    """This node's keys: the current pair, switched at a rotation, and the pairs it
    rotated out of (kept to open envelopes a peer sealed to an old encryption key).

    It stands wherever a :class:`PartyKeys` is expected, always meaning the *current*
    pair, so every part that signs reads the key in force at the moment it signs."""

    def __init__(self, pairs: list[PartyKeys]) -> None:
        if not pairs:
            raise ValueError("a key ring needs at least one pair")
        object.__setattr__(self, "_pairs", list(pairs))

    @property
    def current(self) -> PartyKeys:
        pairs: list[PartyKeys] = object.__getattribute__(self, "_pairs")
        return pairs[-1]

    @property
    def older(self) -> tuple[PartyKeys, ...]:
        """The pairs before the current one, newest first."""
        pairs: list[PartyKeys] = object.__getattribute__(self, "_pairs")
        return tuple(reversed(pairs[:-1]))

    def pair(self, kid: str) -> PartyKeys | None:
        """The pair whose signing key has id ``kid``, if this ring holds it."""
        pairs: list[PartyKeys] = object.__getattribute__(self, "_pairs")
        return next((p for p in pairs if p.public.key_id == kid), None)

    def switch(self, keys: PartyKeys) -> None:
        """Make ``keys`` current (idempotent: switching to the current pair is nothing)."""
        pairs: list[PartyKeys] = object.__getattribute__(self, "_pairs")
        if pairs[-1].public.key_id == keys.public.key_id:
            return
        kept = [p for p in pairs if p.public.key_id != keys.public.key_id]
        object.__setattr__(self, "_pairs", [*kept, keys])

    @property
    def sign(self) -> Ed25519PrivateKey:
        return self.current.sign

    @property
    def enc(self) -> X25519PrivateKey:
        return self.current.enc

    @property
    def public(self) -> PublicKeys:
        return self.current.public

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)
