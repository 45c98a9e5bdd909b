"""Key history rows: every key a party announced, one row per (party, key id).

A party with no rows yet (a link accepted before key history existed, or this node's own
party before its first rotation) has the one key its ``links`` row (or keystore) holds;
:func:`load` returns that as a one-key history, and :func:`save` writes it out with the
first change. The unique (party, kid) constraint is the last guard that a key id is never
reused.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from hotline.protocol import canonical
from hotline.protocol.keyhistory import KeyHistory, KeyRecord
from hotline.protocol.keys import PublicKeys, b64e
from hotline.store.schema import key_history, links


def _record(row: object) -> KeyRecord:
    r = row
    return KeyRecord(
        kid=r.kid, keys=PublicKeys.from_b64(r.sign_key, r.enc_key),  # type: ignore[attr-defined]
        accepted_at=int(r.accepted_at), retired_at=r.retired_at,  # type: ignore[attr-defined]
        rotated_at=r.rotated_at, revoked_at=r.revoked_at,  # type: ignore[attr-defined]
        introduced_at=r.introduced_at, introduced_by=r.introduced_by)  # type: ignore[attr-defined]


def load(conn: Connection, party: str, fallback: PublicKeys | None = None
         ) -> KeyHistory | None:
    """``party``'s history, in announcement order. Without rows: the key of its link (or
    ``fallback``, this node's own key) as the only one; None if there is neither."""
    rows = conn.execute(select(key_history).where(key_history.c.party == party)
                        .order_by(key_history.c.id)).all()
    if rows:
        return KeyHistory(party, tuple(_record(r) for r in rows))
    link = conn.execute(select(links.c.sign_key, links.c.enc_key, links.c.accepted_at)
                        .where(links.c.party == party)).first()
    if link is not None:
        return KeyHistory.first(party, PublicKeys.from_b64(link.sign_key, link.enc_key),
                                int(link.accepted_at))
    if fallback is not None:
        return KeyHistory.first(party, fallback, 0)
    return None


def load_all(conn: Connection) -> dict[str, KeyHistory]:
    """Every linked party's history."""
    parties = [r.party for r in conn.execute(select(links.c.party))]
    out: dict[str, KeyHistory] = {}
    for party in parties:
        history = load(conn, party)
        if history is not None:
            out[party] = history
    return out


def all_known(conn: Connection) -> dict[str, dict[str, PublicKeys]]:
    """Every key of every party's history (this node's own included), by party and id."""
    out: dict[str, dict[str, PublicKeys]] = {}
    for r in conn.execute(select(key_history.c.party, key_history.c.kid,
                                 key_history.c.sign_key, key_history.c.enc_key)):
        out.setdefault(r.party, {})[r.kid] = PublicKeys.from_b64(r.sign_key, r.enc_key)
    return out


def statements(conn: Connection, party: str) -> list[dict[str, object]]:
    """The signed statements of ``party``'s history, oldest first (for evidence)."""
    rows = conn.execute(select(key_history.c.statement, key_history.c.revocation)
                        .where(key_history.c.party == party).order_by(key_history.c.id))
    out: list[dict[str, object]] = []
    for r in rows:
        for text in (r.statement, r.revocation):
            if text is not None:
                obj = canonical.decode(text.encode())
                if isinstance(obj, dict) and obj not in out:
                    out.append(obj)
    return out


def save(conn: Connection, history: KeyHistory, statement: dict[str, object] | None = None,
         revocation: dict[str, object] | None = None) -> None:
    """Write ``history``: new keys inserted (the newest with ``statement``, the one that
    introduced it), changed ones updated (``revocation`` on those it revoked)."""
    known = {r.kid: r for r in (_record(row) for row in conn.execute(
        select(key_history).where(key_history.c.party == history.party)))}
    text = None if statement is None else canonical.encode(statement).decode()
    revoked_text = None if revocation is None else canonical.encode(revocation).decode()
    for record in history.records:
        old = known.get(record.kid)
        if old is None:
            conn.execute(key_history.insert().values(
                party=history.party, kid=record.kid, sign_key=b64e(record.keys.sign_bytes),
                enc_key=b64e(record.keys.enc_bytes), accepted_at=record.accepted_at,
                introduced_at=record.introduced_at, introduced_by=record.introduced_by,
                statement=text if record is history.records[-1] else None,
                retired_at=record.retired_at, rotated_at=record.rotated_at,
                revoked_at=record.revoked_at,
                revocation=revoked_text if record.revoked_at is not None else None))
        elif old != record:
            values: dict[str, object] = {"retired_at": record.retired_at,
                                         "rotated_at": record.rotated_at,
                                         "revoked_at": record.revoked_at}
            if record.revoked_at is not None and old.revoked_at is None:
                values["revocation"] = revoked_text
            conn.execute(update(key_history).where(key_history.c.party == history.party,
                                                   key_history.c.kid == record.kid)
                         .values(**values))


def export_history(conn: Connection, party: str) -> dict[str, object] | None:
    """``party``'s key history as evidence carries it (``log/keychain.py``): its first
    key and its signed statements; None before its first rotation or revocation."""
    first = conn.execute(select(key_history.c.sign_key, key_history.c.kid)
                         .where(key_history.c.party == party)
                         .order_by(key_history.c.id).limit(1)).first()
    if first is None:
        return None
    return {"first": {"sign": first.sign_key, "kid": first.kid},
            "statements": statements(conn, party)}


def set_link_keys(conn: Connection, party: str, keys: PublicKeys) -> None:
    """Make ``keys`` the ones the link to ``party`` seals to and checks first."""
    conn.execute(update(links).where(links.c.party == party).values(
        sign_key=b64e(keys.sign_bytes), enc_key=b64e(keys.enc_bytes), kid=keys.key_id))
