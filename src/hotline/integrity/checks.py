"""The checkers: each compares one part of the state the node acts on with the log and
yields a :class:`Finding` per disagreement. ``CHECKERS`` is the list the start-up check,
``hotline log verify`` and ``hotline repair --from-log`` run; a new one (per-lane
sequences, key history, …) is a function of the same shape appended to it.

Tables are read in batches (the outbox and inbound tables in storage order, through the
driver: a row is matched with its entry by (peer, seq)), so memory stays bounded by what
the log pass keeps (:mod:`hotline.integrity.view`). ``outbox_rows`` and ``inbound_rows``
consume what the pass kept of ``sent``/``received`` entries, so they run after
``sequences``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection, Table, select, tuple_, update

from hotline.integrity.duty import duty_overrides
from hotline.integrity.findings import Change, Finding, Fix, RepairContext
from hotline.integrity.incidents import incident_entries, incident_rows
from hotline.integrity.keys import key_histories
from hotline.integrity.lost import lost_inbound, lost_outbound
from hotline.integrity.notices import notice_rows, receipt_rows
from hotline.integrity.view import (
    MAX_LISTED,
    Kept,
    LogView,
    line_key,
    load_envelope,
    row_hash,
    split_line,
    stream,
)
from hotline.protocol.generation import first_seq, generation_of
from hotline.protocol.lanes import lane_of
from hotline.store.schema import calls, conversation_messages, inbound, links, outbox
from hotline.store.schema import directory_versions as directory_table

Checker = Callable[[Connection, LogView], Iterator[Finding]]
BATCH = 5_000


def _batches(conn: Connection, table: Table, key: tuple[str, ...],
             columns: tuple[str, ...]) -> Iterator[Any]:
    """Rows of ``table`` in ``key`` order, ``BATCH`` at a time (keyset pagination)."""
    cols = [table.c[c] for c in (*key, *columns)]
    order = [table.c[k] for k in key]
    last: tuple[Any, ...] | None = None
    while True:
        query = select(*cols).order_by(*order).limit(BATCH)
        if last is not None:
            query = query.where(tuple_(*order) > tuple_(*last))
        rows = conn.execute(query).all()
        yield from rows
        if len(rows) < BATCH:
            return
        last = tuple(getattr(rows[-1], k) for k in key)


def _set(table: Table, where: dict[str, Any], row: str, changes: dict[str, tuple[Any, Any]],
         record: dict[str, Any] | None = None) -> Fix:
    def apply(conn: Connection, _ctx: RepairContext) -> None:
        conn.execute(update(table).where(*[table.c[k] == v for k, v in where.items()])
                     .values({c: after for c, (_before, after) in changes.items()}))
    return Fix(tuple(Change(table.name, row, c, b, a) for c, (b, a) in changes.items()),
               apply, record or {})


def log_columns(conn: Connection, view: LogView) -> Iterator[Finding]:
    """The indexed columns of ``log_entries`` (what exports and queries select by)
    against the entry text: gathered in the log pass."""
    yield from view.columns
    if view.columns_more:
        yield Finding("log-columns", "log_entries", "(more)",
                      f"{view.columns_more} more entries whose columns disagree with their "
                      "text (run `hotline repair --from-log` and check again)")


_ROWS_OUT = "SELECT peer, seq, envelope_id, type, subject, lane FROM outbox"
_ROWS_IN = "SELECT peer, seq, envelope_id, type, NULL, lane FROM inbound"


def _envelopes(conn: Connection, view: LogView, *, table: Table,
               logged: dict[str, dict[int, Kept]], kind: str) -> Iterator[Finding]:
    """Rows of ``outbox``/``inbound`` against the ``sent``/``received`` entries: one row
    per entry, same envelope id, type (and, for the outbox, subject). Consumes
    ``logged``: what is left at the end has no row."""
    check = table.name
    sent = table is outbox
    for peer, seq, envelope_id, type_, subject, lane in stream(
            conn, _ROWS_OUT if sent else _ROWS_IN, f"hotline_{check}"):
        seq = int(seq)
        row = f"peer={peer} seq={seq}" + ("" if lane == "control" else f" lane={lane}")
        kept = logged.get(line_key(peer, lane), {}).pop(seq, None)
        if kept is None:
            yield Finding(check, check, row, f"envelope {envelope_id} has no {kind!r} entry "
                          "in the log: the row was added outside the node (not repairable "
                          "from the log; remove it by hand after investigation)")
            continue
        idx, expected, named = kept
        if row_hash(envelope_id, type_, subject, sent and named) == expected:
            continue
        env = load_envelope(conn, idx)
        if envelope_id != env.id:
            yield Finding(check, check, row, f"holds envelope {envelope_id}, but the log "
                          f"says seq {seq} was envelope {env.id} (not repairable from the log: "
                          "its bytes differ)", idx)
            continue
        changes: dict[str, tuple[Any, Any]] = {}
        if type_ != env.type:
            changes["type"] = (type_, env.type)
        if sent and named and subject != env.subject:
            changes["subject"] = (subject, env.subject)
        if not changes:
            continue  # the same fields, written differently (an escaped subject)
        what = ", ".join(f"{c} is {b!r} but the log says {a!r}"
                         for c, (b, a) in changes.items())
        yield Finding(check, check, row, what, idx,
                      _set(table, {"peer": peer, "lane": lane, "seq": seq}, row, changes))
    for key in sorted(logged):
        for seq in sorted(logged[key]):
            peer, lane = split_line(key)
            if (check, key, seq) in view.lost:
                continue
            env = load_envelope(conn, logged[key][seq][0])
            if sent:
                yield lost_outbound(conn, view, peer, seq, env, lane_of(lane))
            else:
                yield lost_inbound(conn, view, peer, seq, env, lane_of(lane))


def outbox_rows(conn: Connection, view: LogView) -> Iterator[Finding]:
    yield from _envelopes(conn, view, table=outbox, logged=view.sent, kind="sent")


def inbound_rows(conn: Connection, view: LogView) -> Iterator[Finding]:
    yield from _envelopes(conn, view, table=inbound, logged=view.received, kind="received")


def _first_missing(seqs: dict[int, Kept], first: int = 1) -> int:
    n = first
    while n in seqs:
        n += 1
    return n


def _of_generation(seqs: dict[int, Kept], generation: int) -> dict[int, Kept]:
    """The seqs of one link generation (a re-linked pair numbers afresh from
    :func:`~hotline.protocol.generation.first_seq`; earlier generations' stay logged)."""
    if generation == 0 and all(generation_of(seq) == 0 for seq in seqs):
        return seqs
    return {seq: kept for seq, kept in seqs.items() if generation_of(seq) == generation}


def sequences(conn: Connection, view: LogView) -> Iterator[Finding]:
    """Per link, in the link generation its last ``link-removed`` entry moved it to (0
    if none): the log's ``sent`` seqs run from the generation's first number to n without a
    hole, ``links.send_seq`` is n (the last number used), and ``links.recv_next`` is the
    first seq the log has not received (what the node releases next)."""
    for r in conn.execute(select(links.c.party, links.c.send_seq, links.c.recv_next,
                                 links.c.generation, links.c.bulk_send_seq,
                                 links.c.bulk_recv_next).order_by(links.c.party)):
        row = f"party={r.party}"
        generation = view.generations.get(r.party, 0)
        if int(r.generation) != generation:
            yield Finding("sequences", "links", row,
                          f"generation is {r.generation} but the log's last removal of the "
                          f"link with {r.party} moved it to {generation}", None,
                          _set(links, {"party": r.party}, row,
                               {"generation": (int(r.generation), generation)}))
        yield from _lane_sequences(view, r.party, "control", generation, int(r.send_seq),
                                   int(r.recv_next))
        yield from _lane_sequences(view, r.party, "bulk", generation, int(r.bulk_send_seq),
                                   int(r.bulk_recv_next))


def _lane_sequences(view: LogView, party: str, lane: str, generation: int, send_seq: int,
                    recv_next: int) -> Iterator[Finding]:
    """:func:`sequences` for one lane of one link (the control lane's counters are the
    columns every link had before lanes; the bulk lane's are ``bulk_*``)."""
    send_col, recv_col = ("send_seq", "recv_next") if lane == "control" else \
        ("bulk_send_seq", "bulk_recv_next")
    key = line_key(party, lane)
    on = "" if lane == "control" else f" on the {lane} lane"
    row = f"party={party}"
    first = first_seq(generation)
    sent = _of_generation(view.sent.get(key, {}), generation)
    last = max(sent, default=first - 1)
    hole = _first_missing(sent, first)
    if hole <= last:
        yield Finding("sequences", "log_entries", f"peer={party} seq={hole}",
                      f"the log's 'sent' entries to {party}{on} skip seq {hole} (they run "
                      f"to {last}): not repairable from the log")
    if send_seq != last:
        yield Finding("sequences", "links", row,
                      f"{send_col} is {send_seq} but the last seq the log sent to "
                      f"{party}{on} is {last}", sent[last][0] if last in sent else None,
                      _set(links, {"party": party}, row, {send_col: (send_seq, last)}))
    received = _of_generation(view.received.get(key, {}), generation)
    nxt = _first_missing(received, first)
    if recv_next != nxt:
        yield Finding("sequences", "links", row,
                      f"{recv_col} is {recv_next} but the log received every seq from "
                      f"{party}{on} up to {nxt - 1} and not {nxt}", None,
                      _set(links, {"party": party}, row, {recv_col: (recv_next, nxt)}))


def call_states(conn: Connection, view: LogView) -> Iterator[Finding]:
    """Each call's ``state`` (and our statement count) is what its logged signed
    statements lead to, replayed as the node applies them."""
    seen: set[str] = set()
    listed = 0
    for r in _batches(conn, calls, ("id",), ("state", "statements")):
        seen.add(r.id)
        replay = view.calls.get(r.id)
        row = f"id={r.id}"
        if replay is None:
            yield Finding("calls", "calls", row, "the log holds no signed statement about "
                          "this call: the row was added outside the node (not repairable "
                          "from the log)")
            continue
        changes: dict[str, tuple[Any, Any]] = {}
        if r.state != replay.state:
            changes["state"] = (r.state, replay.state)
        if int(r.statements) != replay.ours:
            changes["statements"] = (int(r.statements), replay.ours)
        if changes and listed < MAX_LISTED:
            listed += 1
            what = ", ".join(f"{c} is {b!r} but its last signed statement says {a!r}"
                             if c == "state" else f"{c} is {b!r} but the log holds our "
                             f"statement {a} last" for c, (b, a) in changes.items())
            yield Finding("calls", "calls", row, what, replay.last_idx,
                          _set(calls, {"id": r.id}, row, changes))
    for call_id in sorted(set(view.calls) - seen)[:MAX_LISTED]:
        yield Finding("calls", "calls", f"id={call_id}", "the row is missing: the log holds "
                      "its signed statements, but not the call's roles and deadlines (not "
                      "repairable from the log)", view.calls[call_id].first_idx)


def message_texts(conn: Connection, view: LogView) -> Iterator[Finding]:
    """Each stored message text hashes to the digest logged when it was written or
    received; an edited text is restored from our copy of the envelope that carried it
    (the outbox's or the inbound payload) when that copy hashes right."""
    from hotline.integrity.lost import text_from_envelopes

    seen: set[str] = set()
    for r in _batches(conn, conversation_messages, ("id",), ("conversation_id", "text")):
        seen.add(r.id)
        logged = view.texts.get(r.id)
        row = f"id={r.id}"
        if logged is None:
            yield Finding("messages", "conversation_messages", row, "the log holds no entry "
                          "for this message: the row was added outside the node (not "
                          "repairable from the log)")
            continue
        conv, digest, idx = logged
        if hashlib.sha256(r.text.encode()).hexdigest() == digest:
            continue
        original = text_from_envelopes(conn, conv, r.id, digest)
        message = f"text does not hash to the digest logged for it ({digest[:16]}…)"
        if original is None:
            yield Finding("messages", "conversation_messages", row, message + "; no copy "
                          "of the message that hashes right is kept (not repairable)", idx)
            continue
        yield Finding("messages", "conversation_messages", row, message, idx,
                      _set(conversation_messages, {"id": r.id}, row,
                           {"text": (r.text, original)}))
    for msg_id in sorted(set(view.texts) - seen)[:MAX_LISTED]:
        conv, _digest, idx = view.texts[msg_id]
        yield Finding("messages", "conversation_messages", f"id={msg_id}",
                      f"the row is missing (conversation {conv}); the log keeps only the "
                      "text's digest (not repairable from the log)", idx)


def directory_versions(conn: Connection, view: LogView) -> Iterator[Finding]:
    """Each stored directory version (what the node routes calls and rings people by)
    is the one logged: its body hashes to the logged digest, as its ``digest`` says."""
    seen: set[int] = set()
    for r in _batches(conn, directory_table, ("version",), ("digest", "body")):
        version = int(r.version)
        seen.add(version)
        row = f"version={version}"
        logged = view.directory.get(version)
        if logged is None:
            yield Finding("directory", "directory_versions", row, "the log holds no entry "
                          "for this version: the row was added outside the node (not "
                          "repairable from the log)")
            continue
        digest, idx = logged
        if hashlib.sha256(r.body.encode()).hexdigest() != digest:
            yield Finding("directory", "directory_versions", row, "body does not hash to "
                          f"the digest logged for it ({digest[:16]}…): it was edited (not "
                          "repairable from the log, which keeps only the digest; apply the "
                          "directory file again with `hotline roles apply`)", idx)
        elif r.digest != digest:
            yield Finding("directory", "directory_versions", row, f"digest is {r.digest!r} "
                          f"but the log says {digest!r}", idx,
                          _set(directory_table, {"version": version}, row,
                               {"digest": (r.digest, digest)}))
    for version in sorted(set(view.directory) - seen)[:MAX_LISTED]:
        yield Finding("directory", "directory_versions", f"version={version}", "the row is "
                      "missing; the log keeps only its digest (not repairable from the log)",
                      view.directory[version][1])


CHECKERS: list[tuple[str, Checker]] = [
    ("log-columns", log_columns),
    ("sequences", sequences),
    ("outbox", outbox_rows),
    ("inbound", inbound_rows),
    ("calls", call_states),
    ("messages", message_texts),
    ("incidents", incident_entries),
    ("incident-rows", incident_rows),
    ("directory", directory_versions),
    ("keys", key_histories),
    ("duty", duty_overrides),
    ("notices", notice_rows),
    ("notice-receipts", receipt_rows),
]
