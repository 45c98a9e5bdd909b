"""Checkpoints and cosignatures: signed roots of a party's tamper-evident log.

A checkpoint is the log owner's signed statement "my log ``origin`` has ``size``
entries and Merkle root ``root``" (``hotline.log.merkle``). Holding one, a peer can ask
for inclusion and consistency proofs and check them against it; the owner cannot later
show a different history without having signed two checkpoints that no consistency
proof joins, which is evidence of the rewrite in the owner's own signature.

A cosignature is a *witness* party's signed statement that it has seen the same
(origin, size, root). It binds exactly those three values, not the owner's time or
signature, because the tree state is what the witness vouches for. A log owner who shows
one history to some peers and another to others (a split view) is caught as soon as a
witness cosigns both, or a peer compares its checkpoint with the cosigned one.

Wire form, canonical JSON (sorted keys)::

    {"at": ms, "kid": "<16 hex>", "origin": "US-JS", "root": b64url(32 bytes),
     "sig": b64url(Ed25519), "size": 42, "v": 1}
    {"at": ms, "kid": "<16 hex>", "origin": "US-JS", "root": ..., "sig": ..., "size": 42,
     "v": 1, "witness": "RU-GS"}

Each kind signs under its own domain, so a checkpoint signature can never be presented
as a cosignature or as any other signed object, and the reverse. Every field is checked
strictly (exact key set, exact types, ranges) before the signature, so a malformed
object is refused with a message that says which field is wrong.

The tree rules (``hotline.protocol.tree``: a size within ``MAX_TREE_SIZE``; size 0 only
with the empty tree's root) are checked *after* the signature, and refused with their
own error id (``invalid-tree-head``): a checkpoint refused with it was really signed by
its origin, so it shows that party stating a tree that cannot exist, which a witness
keeps as evidence. Any other refusal proves nothing about the named party.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hotline.errors import HotlineError
from hotline.protocol import canonical
from hotline.protocol.canonical import MAX_SAFE_INTEGER
from hotline.protocol.envelope import KID_RE, PARTY_RE
from hotline.protocol.keys import PartyKeys, PublicKeys, b64d, b64e
from hotline.protocol.signing import SIG_FIELD, sign_object, verify_object
from hotline.protocol.tree import tree_head_problem

CHECKPOINT_DOMAIN = "hotline/checkpoint/v1"
COSIGNATURE_DOMAIN = "hotline/cosignature/v1"
CHECKPOINT_FIELDS = frozenset({"v", "origin", "size", "root", "at", "kid", SIG_FIELD})
COSIGNATURE_FIELDS = CHECKPOINT_FIELDS | {"witness"}
BAD_CHECKPOINT = "bad-checkpoint"
BAD_COSIGNATURE = "bad-cosignature"
#: A validly signed checkpoint (or cosignature) of a tree head no tree can have.
INVALID_TREE_HEAD = "invalid-tree-head"
ROOT_SIZE = 32


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the log ``origin`` had ``size`` entries with ``root``."""

    origin: str
    size: int
    root: bytes
    at: int
    kid: str
    sig: str

    def to_dict(self) -> dict[str, Any]:
        """The signed wire object, as ``make_checkpoint`` returned it."""
        return {"v": 1, "origin": self.origin, "size": self.size, "root": b64e(self.root),
                "at": self.at, "kid": self.kid, SIG_FIELD: self.sig}

    @property
    def raw(self) -> bytes:
        """The canonical bytes of the signed object: what is stored and sent."""
        return canonical.encode(self.to_dict())


def _show(value: object) -> str:
    """A value for an error message, cut short: a hostile peer chooses its length."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Fail:
    """Builds the one error a verifier raises, so every check reports the same id."""

    def __init__(self, error_id: str, what: str) -> None:
        self.error_id = error_id
        self.what = what

    def __call__(self, message: str) -> HotlineError:
        return HotlineError(self.error_id, f"{self.what}: {message}")


def _int(obj: dict[str, Any], name: str, *, minimum: int, fail: _Fail) -> int:
    value = obj[name]
    # type() rather than isinstance(): True is an int in Python, but not on this wire.
    if type(value) is not int or not minimum <= value <= MAX_SAFE_INTEGER:
        raise fail(f"field {name!r} must be an integer from {minimum} to 2^53 - 1, "
                   f"got {_show(value)}")
    return value


def _party(obj: dict[str, Any], name: str, *, fail: _Fail) -> str:
    value = obj[name]
    if not isinstance(value, str) or not PARTY_RE.fullmatch(value):
        raise fail(f"field {name!r} is not a party id: {_show(value)}")
    return value


def _root(obj: dict[str, Any], *, fail: _Fail) -> bytes:
    value = obj["root"]
    if not isinstance(value, str):
        raise fail(f"field 'root' must be a base64url string, got {type(value).__name__}")
    try:
        return b64d(value, expect_len=ROOT_SIZE, what="root")
    except HotlineError as exc:
        raise fail(f"field 'root': {exc.message}") from None


def _common_fields(obj: object, fields: frozenset[str], fail: _Fail) -> dict[str, Any]:
    """Check shape, version, kid and sig form: what both kinds share."""
    if not isinstance(obj, dict):
        raise fail(f"expected a JSON object, got {type(obj).__name__}")
    if set(obj) != fields:
        missing = sorted(fields - set(obj))
        extra = sorted(_show(k) for k in set(obj) - fields)
        raise fail(f"wrong fields (missing {missing}, unexpected {_show(extra)})")
    if type(obj["v"]) is not int or obj["v"] != 1:
        raise fail(f"unsupported version {_show(obj['v'])}, expected 1")
    kid, sig = obj["kid"], obj[SIG_FIELD]
    if not isinstance(kid, str) or not KID_RE.fullmatch(kid):
        raise fail(f"field 'kid' is not 16 lowercase hex digits: {_show(kid)}")
    if not isinstance(sig, str):
        raise fail("field 'sig' is not a string")
    try:
        b64d(sig, expect_len=64, what="signature")
    except HotlineError as exc:
        raise fail(f"field 'sig': {exc.message}") from None
    return obj


def _sign(domain: str, obj: dict[str, Any], keys: PartyKeys, fail: _Fail) -> dict[str, Any]:
    """Sign ``obj``; a value with no canonical encoding is reported as this kind's error."""
    try:
        return sign_object(domain, obj, keys)
    except HotlineError as exc:
        raise fail(exc.message) from None


def make_checkpoint(origin: str, size: int, root: bytes, at_ms: int,
                    keys: PartyKeys) -> dict[str, Any]:
    """Sign the state (``size``, ``root``) of ``origin``'s log with the owner's keys.

    The result is checked exactly as a receiver would check it, so a bad argument (a
    root that is not 32 bytes, a negative size) raises ``bad-checkpoint`` here rather
    than producing an object every peer would refuse.
    """
    if not isinstance(root, bytes) or len(root) != ROOT_SIZE:
        raise HotlineError(BAD_CHECKPOINT, f"checkpoint: root must be {ROOT_SIZE} bytes")
    obj = {"v": 1, "origin": origin, "size": size, "root": b64e(root), "at": at_ms,
           "kid": keys.public.key_id}
    signed = _sign(CHECKPOINT_DOMAIN, obj, keys, _Fail(BAD_CHECKPOINT, "checkpoint"))
    verify_checkpoint(signed, keys.public, origin)
    return signed


def verify_checkpoint(obj: object, public: PublicKeys, expect_origin: str) -> Checkpoint:
    """Check a checkpoint claimed to come from ``expect_origin`` holding ``public``.

    Raises ``bad-checkpoint`` on any malformed field, another origin, a key id that is
    not ``public``'s, or a signature that does not verify.
    """
    fail = _Fail(BAD_CHECKPOINT, "checkpoint")
    checked = _common_fields(obj, CHECKPOINT_FIELDS, fail)
    origin = _party(checked, "origin", fail=fail)
    if origin != expect_origin:
        raise fail(f"it is for log {origin!r}, expected {_show(expect_origin)}")
    size = _int(checked, "size", minimum=0, fail=fail)
    at = _int(checked, "at", minimum=-MAX_SAFE_INTEGER, fail=fail)
    root = _root(checked, fail=fail)
    if checked["kid"] != public.key_id:
        raise fail(f"signed with key {checked['kid']}, but {expect_origin}'s key is "
                   f"{public.key_id}")
    if not verify_object(CHECKPOINT_DOMAIN, checked, public):
        raise fail(f"signature does not verify with {expect_origin}'s key: "
                   f"the checkpoint was altered or forged")
    _tree_rules(size, root, f"checkpoint of {origin} at size {size}")
    return Checkpoint(origin=origin, size=size, root=root, at=at, kid=checked["kid"],
                      sig=checked[SIG_FIELD])


def make_cosignature(checkpoint: Checkpoint, witness: str, at_ms: int,
                     keys: PartyKeys) -> dict[str, Any]:
    """Sign, as ``witness``, that it has seen ``checkpoint``'s (origin, size, root).

    Pass only a checkpoint that ``verify_checkpoint`` returned (and, for a log seen
    before, one proven consistent with it): the cosignature vouches for the tree state.
    A log owner cannot witness its own log, so ``witness`` must be another party.
    """
    if witness == checkpoint.origin:
        raise HotlineError(BAD_COSIGNATURE,
                           f"cosignature: {witness} cannot witness its own log")
    obj = {"v": 1, "witness": witness, "origin": checkpoint.origin, "size": checkpoint.size,
           "root": b64e(checkpoint.root), "at": at_ms, "kid": keys.public.key_id}
    signed = _sign(COSIGNATURE_DOMAIN, obj, keys, _Fail(BAD_COSIGNATURE, "cosignature"))
    verify_cosignature(signed, keys.public, checkpoint)
    return signed


def verify_cosignature(obj: object, witness_public: PublicKeys, checkpoint: Checkpoint,
                       *, expect_witness: str | None = None) -> None:
    """Check that ``obj`` is a cosignature of ``checkpoint`` by the holder of
    ``witness_public`` (named ``expect_witness``, when given).

    Raises ``bad-cosignature`` on any malformed field, a cosignature of another log,
    size or root, a witness that is the log itself, a key id that is not
    ``witness_public``'s, or a signature that does not verify.
    """
    fail = _Fail(BAD_COSIGNATURE, "cosignature")
    checked = _common_fields(obj, COSIGNATURE_FIELDS, fail)
    witness = _party(checked, "witness", fail=fail)
    origin = _party(checked, "origin", fail=fail)
    if expect_witness is not None and witness != expect_witness:
        raise fail(f"it is by {witness!r}, expected {_show(expect_witness)}")
    if witness == origin:
        raise fail(f"{witness} cannot witness its own log")
    size = _int(checked, "size", minimum=0, fail=fail)
    _int(checked, "at", minimum=-MAX_SAFE_INTEGER, fail=fail)
    root = _root(checked, fail=fail)
    if (origin, size, root) != (checkpoint.origin, checkpoint.size, checkpoint.root):
        raise fail(f"it vouches for {origin} at size {size} with root {b64e(root)}, not for "
                   f"the checkpoint {checkpoint.origin} at size {checkpoint.size} with root "
                   f"{b64e(checkpoint.root)}")
    if checked["kid"] != witness_public.key_id:
        raise fail(f"signed with key {checked['kid']}, but {witness}'s key is "
                   f"{witness_public.key_id}")
    if not verify_object(COSIGNATURE_DOMAIN, checked, witness_public):
        raise fail(f"signature does not verify with {witness}'s key: "
                   f"the cosignature was altered or forged")
    _tree_rules(size, root, f"cosignature by {witness} of {origin} at size {size}")


def _tree_rules(size: int, root: bytes, what: str) -> None:
    """Refuse a signed head no tree can have (``invalid-tree-head``, 409)."""
    problem = tree_head_problem(size, root)
    if problem is not None:
        raise HotlineError(INVALID_TREE_HEAD, f"{what}: {problem}", status=409)


def signed_by(obj: object, public: PublicKeys) -> bool:
    """Whether ``obj`` is a checkpoint, of any origin, that the holder of ``public``
    really signed: how a witness tells a party signing another's log (which it keeps as
    evidence) from a forgery (which anyone could send). Never raises."""
    try:
        checked = _common_fields(obj, CHECKPOINT_FIELDS, _Fail(BAD_CHECKPOINT, "checkpoint"))
        return checked["kid"] == public.key_id and verify_object(CHECKPOINT_DOMAIN, checked,
                                                                 public)
    except (HotlineError, ValueError, TypeError):
        return False
