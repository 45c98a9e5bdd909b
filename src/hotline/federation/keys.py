"""A peer's key statements, applied when their envelope is released (inside the
receiver's transaction, so the history changes exactly when the line reaches them).

``key.rotate`` carries a rotation, ``key.revoke`` a revocation (``protocol/keyhistory.py``).
Either is checked against the peer's key history, which is then saved, the link made to
seal to and check the new current key, the statement logged (kind ``key-rotation`` or
``key-revocation``, with the new safety number) and an alarm raised so that operators
compare that safety number out of band, as at linking. A revocation is also kept as
evidence (``store/evidence.py``, kind ``key-revocation``). A statement that does not
verify or does not apply is refused (:class:`~hotline.errors.PeerRefused`: one
security-log line, nothing kept).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from hotline.effects import Effects
from hotline.errors import PeerRefused
from hotline.health.alarms import Alarm, Alarms
from hotline.protocol import canonical
from hotline.protocol.keyhistory import (
    KeyHistory,
    KeyStatementError,
    parse_revocation,
    parse_rotation,
)
from hotline.protocol.keys import PublicKeys, safety_number
from hotline.store import evidence as evidence_store
from hotline.store import keys as key_store
from hotline.store import log as log_store


def _statement(payload: dict[str, Any]) -> tuple[str, object]:
    raw = payload.get("statement")
    if not isinstance(raw, str) or set(payload) != {"statement"}:
        raise PeerRefused("a key statement envelope carries exactly one 'statement' string")
    try:
        return raw, canonical.decode(raw.encode())
    except Exception as exc:
        raise PeerRefused(f"the key statement is not canonical JSON: {exc}") from None


def _history(conn: Connection, peer: str) -> KeyHistory:
    history = key_store.load(conn, peer)
    if history is None:
        raise PeerRefused(f"no link with {peer}")
    return history


class KeyStatements:
    def __init__(self, alarms: Alarms | None) -> None:
        self._alarms = alarms

    def on_rotation(self, conn: Connection, peer: str, payload: dict[str, Any], now: int,
                    effects: Effects) -> None:
        _raw, obj = _statement(payload)
        try:
            rotation = parse_rotation(obj)
            if rotation.party != peer:
                raise PeerRefused(f"the rotation is {rotation.party}'s, sent by {peer}")
            after = _history(conn, peer).rotate(rotation, now)
        except KeyStatementError as exc:
            raise PeerRefused(f"key rotation refused: {exc.error_id}: {exc.message}") from None
        key_store.save(conn, after, rotation.raw)
        self._adopt(conn, peer, rotation.keys, "key-rotation", rotation.raw, now, effects,
                    f"{peer} rotated its key {rotation.old} to {rotation.new}")

    def on_revocation(self, conn: Connection, peer: str, payload: dict[str, Any], now: int,
                      effects: Effects) -> None:
        raw, obj = _statement(payload)
        try:
            revocation = parse_revocation(obj)
            if revocation.party != peer:
                raise PeerRefused(f"the revocation is {revocation.party}'s, sent by {peer}")
            before = _history(conn, peer)
            after = before.revoke(revocation, now)
        except KeyStatementError as exc:
            raise PeerRefused(f"key revocation refused: {exc.error_id}: {exc.message}") from None
        key_store.save(conn, after, revocation.raw, revocation=revocation.raw)
        revoked = sorted(r.kid for r in after.records
                         if r.revoked_at is not None and (before.find(r.kid) is None
                                                          or before.find(r.kid).revoked_at  # type: ignore[union-attr]
                                                          is None))
        evidence_store.record(conn, peer=peer, kind="key-revocation", now_ms=now,
                              statement=raw.encode(), other=None,
                              detail=f"{peer} revoked key(s) {', '.join(revoked)} from "
                                     f"{revocation.from_ms}; current key {revocation.new}")
        self._adopt(conn, peer, revocation.keys, "key-revocation", revocation.raw, now, effects,
                    f"{peer} revoked its key(s) {', '.join(revoked)}; they are refused from "
                    f"now on", kind="key-revoked")

    def _adopt(self, conn: Connection, peer: str, keys: PublicKeys, log_kind: str,
               statement: dict[str, Any], now: int, effects: Effects, what: str,
               kind: str = "key-rotated") -> None:
        number = safety_number(peer, keys.sign_bytes, keys.enc_bytes)
        key_store.set_link_keys(conn, peer, keys)
        log_store.append_one(conn, log_kind, {"party": peer, "statement": statement,
                                              "safety_number": number}, now)
        effects.links = True
        if self._alarms is not None:
            self._alarms.raise_in(conn, Alarm(
                kind, peer, f"{what}; compare the new safety number {number} with "
                            f"{peer} out of band",
                {"kid": keys.key_id, "safety_number": number},
                cause=f"{kind}:{peer}:{keys.key_id}"), now, effects)


def catch_up(conn: Connection, party: str, statements: object, now: int) -> KeyHistory:
    """Apply ``party``'s signed key statements this node missed while its link was removed
    (from the party's ``hotline export keys``), oldest first; those it has are skipped.
    Each applied one is saved and logged as if it had come on the line; returns the
    history after them. :class:`KeyStatementError` if one does not verify or apply."""
    history = key_store.load(conn, party)
    if history is None:
        raise KeyStatementError("unknown-party", f"no link with {party}", status=404)
    if not isinstance(statements, list):
        raise KeyStatementError("bad-key-statement", "statements must be a list", status=400)
    for statement in statements:
        kind = statement.get("type") if isinstance(statement, dict) else None
        if kind == "key-rotation":
            rotation = parse_rotation(statement)
            if history.find(rotation.new) is not None:
                continue
            history = history.rotate(rotation, now)
            key_store.save(conn, history, rotation.raw)
            keys = rotation.keys
        elif kind == "key-revoke":
            revocation = parse_revocation(statement)
            target = history.find(revocation.cert.kid)
            if target is not None and target.revoked_at is not None:
                continue
            history = history.revoke(revocation, now)
            key_store.save(conn, history, revocation.raw, revocation=revocation.raw)
            evidence_store.record(conn, peer=party, kind="key-revocation", now_ms=now,
                                  statement=canonical.encode(revocation.raw), other=None,
                                  detail=f"{party} revoked key {revocation.cert.kid}, "
                                         "learnt at re-linking")
            keys = revocation.keys
        else:
            raise KeyStatementError("bad-key-statement",
                                    f"type {kind!r} is not a key statement", status=400)
        if history.party != party:
            raise KeyStatementError("bad-key-statement", "not the party's statement",
                                    status=400)
        log_store.append_one(conn, "key-rotation" if kind == "key-rotation" else
                             "key-revocation", {
                                 "party": party, "statement": statement,
                                 "safety_number": safety_number(party, keys.sign_bytes,
                                                                keys.enc_bytes)}, now)
    return history
