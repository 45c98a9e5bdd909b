"""The key histories and link keys a node acts on, checked against its log.

The node trusts a party's signature by what ``key_history`` and the ``links`` row say
(``peers.py``): an edit that clears ``revoked_at`` or ``retired_at`` would make a revoked
or retired key trusted again, and an edit of a link's keys would make the node seal to and
accept another key. The log holds everything these rows come from: the ``link`` entry
with the party's keys, and each ``key-rotation`` / ``key-revocation`` entry with the
signed statement (this party's own and its peers'). The checker replays those statements
with the same rules the node applied (``protocol/keyhistory.py``) and compares, per
(party, kid): the row exists with the logged keys; retired and revoked exactly when the
replay says (the times themselves are this node's clock and move with a clock step,
docs/time.md, so only whether they are set is compared, except ``rotated_at``, the
party's signed time); and each link's keys are its party's current key. A row the log
does not introduce was added outside the node.

This party's own first key has no ``link`` entry (nor has a link accepted before the log
existed): its first ``key_history`` row is taken as the anchor only if its sign key has
the id the first logged statement names (a key id is the hash of the sign key, and the
statement's signature covers it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, select

from hotline.errors import HotlineError
from hotline.integrity.findings import Finding
from hotline.integrity.view import MAX_LISTED, LogView
from hotline.protocol.keyhistory import KeyHistory, KeyRecord, parse_revocation, parse_rotation
from hotline.protocol.keys import PublicKeys, b64e
from hotline.store.schema import key_history, links


def _keys(sign: object, enc: object) -> PublicKeys | None:
    try:
        return PublicKeys.from_b64(str(sign), str(enc))
    except Exception:
        return None


def _anchor(conn: Connection, party: str, statement: dict[str, Any]) -> KeyHistory | None:
    """This party's own first key: its first row, if it is the key the first statement
    names as the one it rotates from (or revokes)."""
    first = conn.execute(select(key_history.c.sign_key, key_history.c.enc_key,
                                key_history.c.accepted_at)
                         .where(key_history.c.party == party)
                         .order_by(key_history.c.id).limit(1)).first()
    if first is None:
        return None
    keys = _keys(first.sign_key, first.enc_key)
    cert = statement.get("cert")
    named = statement.get("old") if statement.get("type") == "key-rotation" else \
        cert.get("kid") if isinstance(cert, dict) else None
    if keys is None or keys.key_id != named:
        return None
    return KeyHistory.first(party, keys, int(first.accepted_at))


def replay(conn: Connection, view: LogView) -> tuple[dict[str, KeyHistory], list[Finding]]:
    """Each party's key history as its logged statements make it, and the entries that
    cannot be replayed (a log that verifies but says what the node could not have done)."""
    histories: dict[str, KeyHistory] = {}
    problems: list[Finding] = []
    for idx, at, kind, body in view.key_events:
        party = body.get("party")
        if not isinstance(party, str):
            continue
        if kind == "link":
            keys = _keys(body.get("sign_key"), body.get("enc_key"))
            if keys is not None and party not in histories:
                histories[party] = KeyHistory.first(party, keys, at)
            continue
        statement = body.get("statement")
        if not isinstance(statement, dict):
            continue
        history = histories.get(party)
        if history is None:  # this party's own first key, or a link older than the log
            history = _anchor(conn, party, statement)
        if history is None:
            problems.append(Finding("keys", "key_history", f"party={party}",
                                    f"the logged {kind} has no key of {party} to apply to",
                                    idx))
            continue
        try:
            if kind == "key-rotation":
                histories[party] = history.rotate(parse_rotation(statement), at)
            else:
                histories[party] = history.revoke(parse_revocation(statement), at)
        except HotlineError as exc:
            problems.append(Finding("keys", "key_history", f"party={party}",
                                    f"the logged {kind} does not apply: {exc.message}", idx))
    return histories, problems


def _row_changes(row: Any, want: KeyRecord) -> dict[str, tuple[Any, Any]]:
    changes: dict[str, tuple[Any, Any]] = {}
    for column, value in (("sign_key", b64e(want.keys.sign_bytes)),
                          ("enc_key", b64e(want.keys.enc_bytes)),
                          ("rotated_at", want.rotated_at),
                          ("introduced_by", want.introduced_by),
                          ("introduced_at", want.introduced_at)):
        if getattr(row, column) != value:
            changes[column] = (getattr(row, column), value)
    for column, value in (("retired_at", want.retired_at), ("revoked_at", want.revoked_at)):
        if (getattr(row, column) is None) != (value is None):
            changes[column] = (getattr(row, column), value)
    return changes


def key_histories(conn: Connection, view: LogView) -> Iterator[Finding]:
    """``key_history`` rows and the ``links`` rows' keys against the replayed histories
    (see the module). Repairs set the columns the replay gives; a row the log does not
    introduce, or one it does that is missing, is not repairable here."""
    from hotline.integrity.checks import _set

    histories, problems = replay(conn, view)
    yield from problems[:MAX_LISTED]
    replayed = {p: h for p, h in histories.items()
                if p == view.me or len(h.records) > 1}  # a first key alone has no rows
    listed = 0
    rows = conn.execute(select(key_history).order_by(key_history.c.id)).all()
    seen: set[tuple[str, str]] = set()
    for r in rows:
        if listed >= MAX_LISTED:
            break
        seen.add((r.party, r.kid))
        where = f"party={r.party} kid={r.kid}"
        history = replayed.get(r.party)
        want = None if history is None else history.find(r.kid)
        if want is None:
            listed += 1
            yield Finding("keys", "key_history", where, "the log introduces no such key: "
                          "the row was added outside the node (not repairable from the log)")
            continue
        changes = _row_changes(r, want)
        if changes:
            listed += 1
            said = "; ".join(f"{c} is {b!r} but the log makes it "
                             f"{'set' if c in ('retired_at', 'revoked_at') and a else a!r}"
                             for c, (b, a) in changes.items())
            yield Finding("keys", "key_history", where, said, None,
                          _set(key_history, {"party": r.party, "kid": r.kid}, where, changes))
    for party, history in sorted(replayed.items()):
        for record in history.records:
            if (party, record.kid) not in seen and listed < MAX_LISTED \
                    and any(p == party for p, _ in seen):
                listed += 1
                yield Finding("keys", "key_history", f"party={party} kid={record.kid}",
                              "the row is missing; the log introduces this key (not "
                              "repairable here)")
    for r in conn.execute(select(links.c.party, links.c.sign_key, links.c.enc_key,
                                 links.c.kid).order_by(links.c.party)):
        history = histories.get(r.party)
        current = None if history is None else history.current
        if current is None:
            continue
        want_keys = {"sign_key": b64e(current.keys.sign_bytes),
                     "enc_key": b64e(current.keys.enc_bytes), "kid": current.kid}
        changes = {c: (getattr(r, c), v) for c, v in want_keys.items() if getattr(r, c) != v}
        if changes:
            where = f"party={r.party}"
            yield Finding("keys", "links", where, f"the link's key is {r.kid!r} but the "
                          f"log makes {current.kid!r} {r.party}'s current key",
                          None, _set(links, {"party": r.party}, where, changes))
