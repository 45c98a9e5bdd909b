"""Key history: a party's signing keys over time, and which one a receiver accepts when.

Pure: statements are built and checked here, and a :class:`KeyHistory` is a value that
each accepted statement replaces by a new one. The store keeps it (``store/keys.py``);
the receiver, the sender's receipt check, the witness and the evidence verifier ask it.

Statements (canonical JSON, each kind under its own signing domain)::

    rotation     {"v": 1, "type": "key-rotation", "party": P, "old": kid, "new": kid,
                  "sign": b64url, "enc": b64url, "at": ms, "sig_old": b64url,
                  "sig_new": b64url}
    certificate  {"v": 1, "type": "key-revocation", "party": P, "kid": kid,
                  "made_at": ms, "sig": b64url}                 (signed by the key it revokes)
    revocation   {"v": 1, "type": "key-revoke", "party": P, "cert": {certificate},
                  "from": ms, "new": kid, "sign": b64url, "enc": b64url, "at": ms,
                  "sig": b64url}                                (signed by the key "new")

A rotation is signed by the old key *and* the new one over the same bytes (everything
but the two signatures): the old key vouches for the successor, the new key proves it is
held. A revocation carries the offline certificate (made while the key was trusted, kept
apart) and names the key that is current afterwards, signed by that key.

The acceptance rule (:meth:`KeyHistory.check`) for an item (envelope, receipt, checkpoint,
cosignature) signed by key ``kid`` with signed time ``ts``, at receiver time ``now``:

* the party's current key: accepted;
* a key retired by a rotation: accepted while ``now < retired_at + grace``, where
  ``retired_at`` is the *receiver's* clock when it accepted the rotation (the peer's
  clock is never compared with ours here), and only if ``ts <= rotated_at``, the
  rotation statement's own signed time: both times come from the same party's clock, and
  an honest node signs nothing with the old key after it signed the rotation, so a later
  time is back-dated use (``key-backdated``); past the grace ``key-retired``;
* a revoked key: refused at once, whatever its time says (``key-revoked``);
* a key never announced: ``unknown-key``.

A revocation's ``from`` (the party's clock) says since when the key is distrusted: a
successor the revoked key introduced by a rotation signed at or after ``from`` is
revoked with it (the thief's own rotation is undone). Key ids are never reused: a
statement introducing a key id the party ever had is refused (``key-id-reused``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hotline.errors import HotlineError
from hotline.protocol import canonical
from hotline.protocol.keys import PartyKeys, PublicKeys, b64d, b64e
from hotline.protocol.signing import signing_input

ROTATION_DOMAIN = "hotline/key-rotation/v1"
CERT_DOMAIN = "hotline/key-revocation-cert/v1"
REVOKE_DOMAIN = "hotline/key-revoke/v1"
ROTATION_FIELDS = frozenset({"v", "type", "party", "old", "new", "sign", "enc", "at",
                             "sig_old", "sig_new"})
CERT_FIELDS = frozenset({"v", "type", "party", "kid", "made_at", "sig"})
REVOKE_FIELDS = frozenset({"v", "type", "party", "cert", "from", "new", "sign", "enc", "at",
                           "sig"})
#: The grace period a receiver gives a rotated-out key unless configured otherwise.
DEFAULT_GRACE_MS = 24 * 3600 * 1000

# Stable error ids (docs/protocol.md lists them).
KEY_RETIRED = "key-retired"
KEY_BACKDATED = "key-backdated"
KEY_REVOKED = "key-revoked"
KEY_ID_REUSED = "key-id-reused"
UNKNOWN_KEY = "unknown-key"
BAD_KEY_STATEMENT = "bad-key-statement"


class KeyStatementError(HotlineError):
    """A rotation or revocation statement that does not verify or does not apply."""


def _bad(message: str, error_id: str = BAD_KEY_STATEMENT) -> KeyStatementError:
    return KeyStatementError(error_id, message, status=400)


def _body(obj: dict[str, Any], *sigs: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in sigs}


def _sig(keys: PartyKeys, domain: str, body: dict[str, Any]) -> str:
    return b64e(keys.signature(signing_input(domain, body)))


def _verifies(public: PublicKeys, domain: str, body: dict[str, Any], sig: object) -> bool:
    if not isinstance(sig, str):
        return False
    try:
        raw = b64d(sig, expect_len=64, what="signature")
    except HotlineError:
        return False
    return public.verify(raw, signing_input(domain, body))


def _int(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if type(value) is not int or value < 0:
        raise _bad(f"field {name!r} must be a non-negative integer")
    return value


def _str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value or len(value) > 64:
        raise _bad(f"field {name!r} must be a short string")
    return value


def _shape(obj: object, fields: frozenset[str], type_: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or set(obj) != fields:
        raise _bad(f"a {type_} statement must have exactly the fields {sorted(fields)}")
    if obj["type"] != type_ or obj["v"] != 1 or type(obj["v"]) is not int:
        raise _bad(f"not a version 1 {type_} statement")
    return obj


def _new_keys(obj: dict[str, Any]) -> PublicKeys:
    try:
        keys = PublicKeys.from_b64(obj["sign"], obj["enc"])
    except Exception:
        raise _bad("fields 'sign' and 'enc' must be 32-byte keys in base64url") from None
    if keys.key_id != obj["new"]:
        raise _bad(f"field 'new' ({obj['new']!r}) is not the id of the key in 'sign' "
                   f"({keys.key_id})")
    return keys


# -- statements -------------------------------------------------------------------------
def make_rotation(party: str, old: PartyKeys, new: PartyKeys, at_ms: int) -> dict[str, Any]:
    """The rotation statement from ``old`` to ``new``, signed by both."""
    pub = new.public
    body = {"v": 1, "type": "key-rotation", "party": party, "old": old.public.key_id,
            "new": pub.key_id, "sign": b64e(pub.sign_bytes), "enc": b64e(pub.enc_bytes),
            "at": at_ms}
    return {**body, "sig_old": _sig(old, ROTATION_DOMAIN, body),
            "sig_new": _sig(new, ROTATION_DOMAIN, body)}


def make_certificate(party: str, keys: PartyKeys, made_at_ms: int) -> dict[str, Any]:
    """An offline revocation certificate: ``keys``' own statement that it is revoked.
    Made while the key is trusted and kept apart; valid whenever it is presented."""
    body = {"v": 1, "type": "key-revocation", "party": party, "kid": keys.public.key_id,
            "made_at": made_at_ms}
    return {**body, "sig": _sig(keys, CERT_DOMAIN, body)}


def make_revocation(party: str, cert: dict[str, Any], current: PartyKeys, from_ms: int,
                    at_ms: int) -> dict[str, Any]:
    """The announcement of ``cert``'s revocation, naming ``current`` (the key in force
    afterwards, new or already announced), signed by ``current``."""
    pub = current.public
    body = {"v": 1, "type": "key-revoke", "party": party, "cert": cert, "from": from_ms,
            "new": pub.key_id, "sign": b64e(pub.sign_bytes), "enc": b64e(pub.enc_bytes),
            "at": at_ms}
    return {**body, "sig": _sig(current, REVOKE_DOMAIN, body)}


@dataclass(frozen=True)
class Rotation:
    party: str
    old: str
    new: str
    keys: PublicKeys
    at: int
    raw: dict[str, Any]


@dataclass(frozen=True)
class Certificate:
    party: str
    kid: str
    made_at: int
    raw: dict[str, Any]


@dataclass(frozen=True)
class Revocation:
    party: str
    cert: Certificate
    from_ms: int
    new: str
    keys: PublicKeys
    at: int
    raw: dict[str, Any]


def parse_rotation(obj: object) -> Rotation:
    """Shape-check a rotation and verify its new key's signature (the old key's is checked
    against the history, which knows that key)."""
    o = _shape(obj, ROTATION_FIELDS, "key-rotation")
    party, old, new, at = _str(o, "party"), _str(o, "old"), _str(o, "new"), _int(o, "at")
    keys = _new_keys(o)
    if not _verifies(keys, ROTATION_DOMAIN, _body(o, "sig_old", "sig_new"), o["sig_new"]):
        raise _bad("the rotation's signature by the new key does not verify")
    return Rotation(party, old, new, keys, at, o)


def parse_certificate(obj: object) -> Certificate:
    """Shape-check a certificate (its signature needs the revoked key: see ``verify``)."""
    o = _shape(obj, CERT_FIELDS, "key-revocation")
    return Certificate(_str(o, "party"), _str(o, "kid"), _int(o, "made_at"), o)


def certificate_signed_by(cert: Certificate, public: PublicKeys) -> bool:
    return public.key_id == cert.kid and _verifies(public, CERT_DOMAIN, _body(cert.raw, "sig"),
                                                   cert.raw["sig"])


def parse_revocation(obj: object) -> Revocation:
    """Shape-check a revocation and verify the signature of the key it names as current."""
    o = _shape(obj, REVOKE_FIELDS, "key-revoke")
    cert = parse_certificate(o["cert"])
    party, new = _str(o, "party"), _str(o, "new")
    if cert.party != party:
        raise _bad(f"the certificate is {cert.party}'s, the revocation {party}'s")
    keys = _new_keys(o)
    if not _verifies(keys, REVOKE_DOMAIN, _body(o, "sig"), o["sig"]):
        raise _bad("the revocation's signature by its current key does not verify")
    return Revocation(party, cert, _int(o, "from"), new, keys, _int(o, "at"), o)


def statement_bytes(obj: dict[str, Any]) -> bytes:
    return canonical.encode(obj)


# -- the history ------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyRecord:
    """One key of a party, as a receiver knows it. Times named ``*_at`` without
    "signed" are the receiver's clock (ms); ``rotated_at`` is the party's signed time."""

    kid: str
    keys: PublicKeys
    accepted_at: int
    #: receiver time the rotation retiring it was accepted (grace runs from here)
    retired_at: int | None = None
    #: the retiring rotation's signed time: the old key signs nothing later
    rotated_at: int | None = None
    #: receiver time a revocation of it was accepted
    revoked_at: int | None = None
    #: the signed time of the rotation that introduced it (None: the link's first key
    #: or one named by a revocation)
    introduced_at: int | None = None
    #: the key that introduced it by rotation
    introduced_by: str | None = None


@dataclass(frozen=True)
class KeyHistory:
    """A party's keys in the order they were announced; the last unrevoked one is current."""

    party: str
    records: tuple[KeyRecord, ...]

    @classmethod
    def first(cls, party: str, keys: PublicKeys, accepted_at: int) -> KeyHistory:
        return cls(party, (KeyRecord(keys.key_id, keys, accepted_at),))

    def find(self, kid: str) -> KeyRecord | None:
        return next((r for r in self.records if r.kid == kid), None)

    @property
    def current(self) -> KeyRecord | None:
        """The key in force: the newest that is neither retired nor revoked."""
        live = [r for r in self.records if r.retired_at is None and r.revoked_at is None]
        return live[-1] if live else None

    def check(self, kid: str, ts: int, now: int, grace_ms: int) -> str | None:
        """None if an item signed by ``kid`` at signed time ``ts`` is acceptable at
        receiver time ``now``; else the error id (see the module's rule)."""
        record = self.find(kid)
        if record is None:
            return UNKNOWN_KEY
        if record.revoked_at is not None:
            return KEY_REVOKED
        if record.retired_at is not None:
            assert record.rotated_at is not None
            if ts > record.rotated_at:
                return KEY_BACKDATED
            if now >= record.retired_at + grace_ms:
                return KEY_RETIRED
        return None

    def usable(self, now: int, grace_ms: int) -> dict[str, PublicKeys]:
        """The keys some item could still be accepted under at ``now`` (by id)."""
        return {r.kid: r.keys for r in self.records if r.revoked_at is None
                and (r.retired_at is None or now < r.retired_at + grace_ms)}

    def _replace(self, kid: str, **changes: Any) -> tuple[KeyRecord, ...]:
        return tuple(replace(r, **changes) if r.kid == kid else r for r in self.records)

    def rotate(self, rotation: Rotation, now: int) -> KeyHistory:
        """The history after ``rotation`` (parsed by :func:`parse_rotation`), or
        :class:`KeyStatementError` naming why it does not apply."""
        if rotation.party != self.party:
            raise _bad(f"the rotation is {rotation.party}'s, not {self.party}'s")
        old = self.find(rotation.old)
        if old is None:
            raise _bad(f"the rotation's old key {rotation.old} is not a key of {self.party}",
                       UNKNOWN_KEY)
        if old.revoked_at is not None:
            raise _bad(f"the rotation is signed by {self.party}'s revoked key {old.kid}",
                       KEY_REVOKED)
        current = self.current
        if current is None or current.kid != old.kid:
            raise _bad(f"the rotation's old key {old.kid} is not {self.party}'s current key",
                       KEY_RETIRED)
        if not _verifies(old.keys, ROTATION_DOMAIN, _body(rotation.raw, "sig_old", "sig_new"),
                         rotation.raw["sig_old"]):
            raise _bad("the rotation's signature by the old key does not verify")
        if self.find(rotation.new) is not None:
            raise _bad(f"key id {rotation.new} was used by {self.party} before", KEY_ID_REUSED)
        records = self._replace(old.kid, retired_at=now, rotated_at=rotation.at)
        fresh = KeyRecord(rotation.new, rotation.keys, now, introduced_at=rotation.at,
                          introduced_by=old.kid)
        return KeyHistory(self.party, (*records, fresh))

    def doomed(self, kid: str, from_ms: int) -> set[str]:
        """The keys a revocation of ``kid`` from ``from_ms`` revokes: ``kid`` and every
        successor it introduced by a rotation signed at or after ``from_ms``."""
        doomed = {kid}
        for r in self.records:  # in announcement order, so a chain is followed to its end
            if r.introduced_by in doomed and r.introduced_at is not None \
                    and r.introduced_at >= from_ms:
                doomed.add(r.kid)
        return doomed

    def revoke(self, revocation: Revocation, now: int) -> KeyHistory:
        """The history after ``revocation``: its key and every successor that key
        introduced at or after ``from`` revoked at ``now``; its named key current."""
        if revocation.party != self.party:
            raise _bad(f"the revocation is {revocation.party}'s, not {self.party}'s")
        target = self.find(revocation.cert.kid)
        if target is None:
            raise _bad(f"the revoked key {revocation.cert.kid} is not a key of {self.party}",
                       UNKNOWN_KEY)
        if not certificate_signed_by(revocation.cert, target.keys):
            raise _bad("the revocation certificate is not signed by the key it revokes")
        doomed = self.doomed(target.kid, revocation.from_ms)
        named = self.find(revocation.new)
        if revocation.new in doomed or (named is not None and named.revoked_at is not None):
            raise _bad(f"the revocation names revoked key {revocation.new} as current",
                       KEY_REVOKED)
        if named is not None and named.retired_at is not None:
            raise _bad(f"the revocation names retired key {revocation.new} as current",
                       KEY_ID_REUSED)
        records = tuple(replace(r, revoked_at=now if r.revoked_at is None else r.revoked_at)
                        if r.kid in doomed else r for r in self.records)
        if named is None:
            # the named key replaces whatever was current: no other key stays in force
            records = tuple(replace(r, retired_at=now, rotated_at=revocation.at)
                            if r.retired_at is None and r.revoked_at is None else r
                            for r in records)
            records = (*records, KeyRecord(revocation.new, revocation.keys, now))
        result = KeyHistory(self.party, records)
        current = result.current
        if current is None or current.kid != revocation.new:
            raise _bad(f"the revocation names {revocation.new}, but {self.party}'s current key "
                       f"would be {current.kid if current else 'none'}")
        return result
