"""Key histories inside evidence: which key of a party an offline verifier may use for a
signature, across rotations and revocations. Pure: no node, no database.

A history travels as ``{"first": {"sign": b64url, "kid": hex}, "statements": [...]}``:
the party's first signing key and its signed rotation and revocation statements, oldest
first (``protocol/keyhistory.py``). Replayed, it yields every key the party had; each
rotation is signed by the key before it and the one after, so whoever trusts any key of
the chain (its newest, compared out of band, or one a bundle embeds) can follow it to
the others. A bundle carries the histories of the parties whose signatures it relies on
(``key_history``); a verifier's keys file may carry them too (``history``), which is how a
bundle exported before a rotation is checked against a party's key after it.

The rule offline (the receiver's grace period has no meaning here): a signature by a key
is accepted if the key is in the history, was never revoked, and, if it was rotated out,
its signed time is not after the time of the rotation that retired it (an honest node
signs nothing with a key after rotating away from it: a later time is back-dated use).
"""

from __future__ import annotations

import json
from typing import Any

from hotline.errors import HotlineError
from hotline.protocol.keyhistory import KeyHistory, parse_revocation, parse_rotation
from hotline.protocol.keys import PublicKeys, b64d, b64e, key_id

HISTORY_FIELDS = frozenset({"first", "statements"})


def history_object(first: PublicKeys, statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"first": {"sign": b64e(first.sign_bytes), "kid": first.key_id},
            "statements": list(statements)}


def parse_history(party: str, obj: object, what: str) -> KeyHistory:
    """Replay a history object into a :class:`KeyHistory` (each step's time is its own
    signed time); ValueError naming ``what`` and the bad statement."""
    from hotline.log.evidence import signing_keys

    if not isinstance(obj, dict) or set(obj) != HISTORY_FIELDS:
        raise ValueError(f"{what} must be an object with exactly 'first' and 'statements'")
    first, statements = obj["first"], obj["statements"]
    if not isinstance(first, dict) or set(first) != {"sign", "kid"} \
            or not isinstance(first["sign"], str):
        raise ValueError(f"{what}.first must be an object with 'sign' and 'kid'")
    try:
        raw = b64d(first["sign"], expect_len=32, what="sign key")
        public = signing_keys(raw)
    except (HotlineError, ValueError) as exc:
        raise ValueError(f"{what}.first: not a valid public key ({exc})") from None
    if first["kid"] != key_id(raw):
        raise ValueError(f"{what}.first.kid is not the id of its sign key ({key_id(raw)})")
    if not isinstance(statements, list):
        raise ValueError(f"{what}.statements must be a list")
    history = KeyHistory.first(party, public, 0)
    for n, statement in enumerate(statements):
        kind = statement.get("type") if isinstance(statement, dict) else None
        try:
            if kind == "key-rotation":
                rotation = parse_rotation(statement)
                history = history.rotate(rotation, rotation.at)
            elif kind == "key-revoke":
                revocation = parse_revocation(statement)
                history = history.revoke(revocation, revocation.at)
            else:
                raise ValueError(f"type {kind!r} is not a key statement")
        except (HotlineError, ValueError) as exc:
            text = exc.message if isinstance(exc, HotlineError) else str(exc)
            raise ValueError(f"{what}.statements[{n}]: {text}") from None
    return history


def signed_fields(signed: object) -> tuple[str | None, int | None]:
    """The ``kid`` and signed time (``at``, or an envelope's ``ts``) of a signed object
    or its JSON text; Nones where absent."""
    obj = signed
    if isinstance(signed, str):
        try:
            obj = json.loads(signed)
        except ValueError:
            return None, None
    if not isinstance(obj, dict):
        return None, None
    kid, at = obj.get("kid"), obj.get("at", obj.get("ts"))
    return (kid if isinstance(kid, str) else None,
            at if type(at) is int else None)


def judge(history: KeyHistory, kid: str, at: int | None) -> tuple[PublicKeys | None, str | None]:
    """The key ``kid`` of ``history`` and, if a signature by it at signed time ``at``
    proves nothing, why."""
    record = history.find(kid)
    if record is None:
        return None, f"{history.party} never announced a key {kid}"
    if record.revoked_at is not None:
        return record.keys, f"{history.party}'s key {kid} is revoked: what it signed proves " \
                            "nothing, whatever time it claims"
    if record.rotated_at is not None and at is not None and at > record.rotated_at:
        return record.keys, f"{history.party}'s key {kid} signed at {at}, after its rotation " \
                            f"at {record.rotated_at} (back-dated use)"
    return record.keys, None


def parse_histories(obj: object, what: str) -> dict[str, KeyHistory]:
    """A bundle's ``key_history`` map (party -> history object); ValueError if bad."""
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be an object of party -> key history")
    return {str(party): parse_history(str(party), value, f"{what}.{party}")
            for party, value in obj.items()}


def trusted_histories(embedded: dict[str, PublicKeys], given: dict[str, PublicKeys] | None,
                      in_bundle: dict[str, KeyHistory], in_keys_file: dict[str, KeyHistory]
                      ) -> tuple[dict[str, KeyHistory], list[str], list[str]]:
    """The histories a verifier may follow, and problems and notes about them.

    A history is followed only from a key already trusted: the trusted key of the keys
    file (its history from the keys file, else the bundle's), or, without a keys file,
    the key the bundle embeds. Either must be a key of the history, and so must the key
    the bundle embeds: the rotations between them, each signed by both its keys, vouch
    for the step. Returns (party -> history, problems, notes)."""
    histories: dict[str, KeyHistory] = {}
    problems: list[str] = []
    notes: list[str] = []
    for party in sorted(set(in_bundle) | set(in_keys_file)):
        history = in_keys_file.get(party) or in_bundle[party]
        anchor = embedded.get(party) if given is None else given.get(party)
        if anchor is None:
            continue
        if history.find(anchor.key_id) is None:
            source = "the bundle's" if given is None else "the trusted"
            problems.append(f"key_history.{party}: {source} key {anchor.key_id} is not in "
                            f"{party}'s key history")
            continue
        mine = embedded.get(party)
        if mine is not None and history.find(mine.key_id) is None:
            problems.append(f"key_history.{party}: the bundle's key {mine.key_id} is not in "
                            f"{party}'s key history")
            continue
        histories[party] = history
        if mine is not None and mine.key_id != anchor.key_id:
            notes.append(f"{party}'s key {mine.key_id} is tied to the trusted key "
                         f"{anchor.key_id} by {party}'s signed key history")
    return histories, problems, notes


def keys_file_histories(obj: object) -> dict[str, KeyHistory]:
    """The ``history`` of each party of a verifier's keys file that has one (the file's
    shape is checked by ``evidence.parse_keys``); ValueError if one is bad."""
    if not isinstance(obj, dict):
        return {}
    return {str(party): parse_history(str(party), entry["history"], f"keys file.{party}.history")
            for party, entry in obj.items() if isinstance(entry, dict) and "history" in entry}
