"""One streaming pass over the log that gathers what the state checkers compare with.

Reading a million entries is the cost of the start-up check, so the log is read once,
in batches through the driver's cursor (as :func:`hotline.store.log.scan_raw` does), and
only the entries a checker needs are parsed. What the pass keeps per entry is small: for
``sent`` and ``received`` entries the envelope's id, type, subject and digest by (peer,
seq); for ``call-state`` entries the state the call's statements lead to; for
``conversation-message`` entries the digest of the text. The indexed columns of every
entry (``kind``, ``subject``, ``at``) are compared with its text on the way.

Entries of kind ``repair`` (written by ``hotline repair --from-log``) are read too: an
outbox or inbound row they record as lost is no longer expected, and a ``sent`` entry
logged after another for the same (peer, seq) replaces it (a lost envelope re-sent as
``seq.lost``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select, update

from hotline.integrity.findings import Change, Finding, Fix, RepairContext
from hotline.protocol import canonical
from hotline.store.schema import log_entries

#: The body field an entry's ``subject`` column is copied from, per kind. ``sent``,
#: ``received`` and ``receipt`` entries carry their subject in the body since the state
#: check came; older ones cannot have their subject checked (counted as unchecked).
SUBJECT_FIELD = {"call-state": "call", "conversation-message": "conversation",
                 "message-receipt": "conversation", "alarm": "subject",
                 "alarm-cleared": "subject", "login": "operator", "logout": "operator",
                 "account": "operator", "api-token": "operator", "sent": "subject",
                 "received": "subject", "receipt": "subject", "undeliverable": "subject",
                 "link-removed": "party", "duty-override": "role", "hand-over": "role",
                 "notice": "notice", "notice-receipt": "notice",
                 "incident": "incident", "incident-entry": "incident"}
#: The columns of a notice its ``notice`` entry logs (the ``notices`` checker).
NOTICE_LOGGED = ("party", "template", "version", "lang", "recipients", "fields", "role",
                 "operator", "sent_at")
#: Kinds the checkers read the body of.
PARSED = frozenset({"sent", "received", "receipt", "call-state", "conversation-message",
                    "incident-entry",
                    "directory", "repair", "link-removed", "link", "key-rotation",
                    "key-revocation"})
#: Kinds that make or change a party's keys, replayed by ``integrity/keys.py``.
KEY_KINDS = frozenset({"link", "key-rotation", "key-revocation"})
#: Call states after which the peer's statements no longer change ours (the node's rule
#: in ``calls/service.py``: a final state stays, except "cancelled").
FINAL = frozenset({"answered", "declined", "unanswered", "cancelled", "expired", "refused"})
#: At most this many findings of one kind are listed; the rest are counted in one more.
MAX_LISTED = 200
BATCH = 20_000


@dataclass(frozen=True)
class Envelope:
    """A ``sent`` or ``received`` entry: the log's word on one (peer, seq)."""

    idx: int
    id: str
    type: str
    subject: str | None
    digest: str


#: What the log pass keeps per (peer, seq): the entry's index, a hash of what a row must
#: agree with (envelope id, type and — outbox — subject), and whether the entry named a
#: subject. The entry itself is read again only for a row that disagrees.
Kept = tuple[int, int, bool]

def notice_digest(values: dict[str, Any]) -> str:
    """SHA-256 of a notice's logged columns as canonical JSON (recipients and fields as
    values, not as the text the columns hold them in)."""
    return hashlib.sha256(canonical.encode({k: values.get(k) for k in NOTICE_LOGGED})
                          ).hexdigest()


def line_key(peer: str, lane: object) -> str:
    """The key of one (peer, lane) sequence in :class:`LogView`'s ``sent``/``received``:
    the party for the control lane (what it was before lanes), ``PARTY#lane`` for
    another (``#`` is never in a party id)."""
    return peer if lane in (None, "control") else f"{peer}#{lane}"


def split_line(key: str) -> tuple[str, str]:
    """``(peer, lane)`` of a :func:`line_key`."""
    peer, _, lane = key.partition("#")
    return peer, lane or "control"


def split_envelope(text: str) -> tuple[str, str, int, str | None, str, str] | None:
    """``(envelope id, peer, seq, subject, type, kind)`` of a ``sent``/``received``
    entry's canonical text (keys sorted, no escapes in its strings), read without a JSON
    parser — the start-up check reads a million of them; None if the text is not of that
    shape (the caller then parses it)."""
    if "\\" in text:
        return None  # an escape: the quotes below may not be where they seem
    p = text.split('"', 32)
    if len(p) < 31 or p[9] != "id" or p[13] != "peer" or p[17] != "seq" \
            or p[19] != "subject":
        return None
    if p[20] == ":null,":
        subject, rest = None, 21
    elif p[20] == ":":
        subject, rest = p[21], 23
    else:
        return None
    if p[rest] != "type" or p[rest + 3] != "}," or p[rest + 6] != "kind":
        return None
    seq = p[18][1:-1]
    if not seq.isdigit():
        return None
    return p[11], p[15], int(seq), subject, p[rest + 2], p[rest + 8]


def row_hash(envelope_id: str, type_: str, subject: str | None, with_subject: bool) -> int:
    return hash((envelope_id, type_, subject) if with_subject else (envelope_id, type_))


def load_envelope(conn: Connection, idx: int) -> Envelope:
    """The full word of entry ``idx`` (a ``sent`` or ``received`` entry)."""
    text = conn.execute(select(log_entries.c.entry).where(log_entries.c.idx == idx)).scalar()
    body = json.loads(str(text)).get("body", {})
    return Envelope(idx, str(body.get("id")), str(body.get("type")), body.get("subject"),
                    str(body.get("digest")))


@dataclass
class CallReplay:
    """What a call's logged statements say: the state they lead to and our last ``n``."""

    first_idx: int
    last_idx: int
    state: str = "placed"
    ours: int = 0
    peer: str | None = None


@dataclass
class IncidentLogged:
    """An incident's row as its ``incident`` (membership) entries have it: ``opener``
    from the first (``held`` / ``invited``), ``state`` replayed from the events, the
    ``members`` and ``invited`` of the last; ``idx`` that last entry."""

    opener: str
    state: str
    members: list[str]
    invited: list[str]
    idx: int


#: ``incident`` events that set this node's state in the incident (others keep it)
INCIDENT_STATE = {"held": "member", "invited": "invited", "accept": "accepted",
                  "member": "member"}


@dataclass
class LogView:
    me: str
    entries: int = 0
    sent: dict[str, dict[int, Kept]] = field(default_factory=dict)
    received: dict[str, dict[int, Kept]] = field(default_factory=dict)
    receipts: dict[str, int] = field(default_factory=dict)   # envelope id → entry
    lost: set[tuple[str, str, int]] = field(default_factory=set)  # (table, peer, seq)
    calls: dict[str, CallReplay] = field(default_factory=dict)
    texts: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # id → (conv, sha, idx)
    directory: dict[int, tuple[str, int]] = field(default_factory=dict)  # version → (sha, idx)
    #: incident entry id → (incident, SHA-256 of the signed statement, idx)
    incident_entries: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    #: incident entry id → ``via`` as logged (None: from its author, or ours)
    incident_vias: dict[str, str | None] = field(default_factory=dict)
    #: incident id → what its ``incident`` entries say of it, the last of them winning
    incidents: dict[str, IncidentLogged] = field(default_factory=dict)
    columns: list[Finding] = field(default_factory=list)
    columns_more: int = 0
    unchecked_subjects: int = 0
    #: per peer, the link generation its last ``link-removed`` entry moved to (0 if none)
    generations: dict[str, int] = field(default_factory=dict)
    #: entries that make or change a party's keys, in log order: (idx, at, kind, body)
    key_events: list[tuple[int, int, str, dict[str, Any]]] = field(default_factory=list)
    #: ``notice`` entries by notice id: (idx, :func:`notice_digest` of the body)
    notices: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: notices whose entry predates logging every column (not checked)
    notices_unchecked: set[str] = field(default_factory=set)
    #: ``notice-receipt`` entries by (notice, signer, receipt): (idx, SHA-256 of the
    #: statement)
    notice_receipts: dict[tuple[str, str, str], tuple[int, str]] = field(
        default_factory=dict)
    #: ``duty-override`` entries by override id: (body, idx, at)
    overrides: dict[int, tuple[dict[str, Any], int, int]] = field(default_factory=dict)

    def add_column_finding(self, finding: Finding) -> None:
        if len(self.columns) < MAX_LISTED:
            self.columns.append(finding)
        else:
            self.columns_more += 1


def stream(conn: Connection, sql: str, name: str) -> Iterator[tuple[Any, ...]]:
    """The rows of a fixed query through the driver's cursor, ``BATCH`` at a time (a
    server-side cursor ``name`` on PostgreSQL): a million rows cost little memory and
    none of the ORM's per-row work."""
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        conn.execute(select(1))  # make sure the transaction (the snapshot) has begun
        cursor = raw.cursor(name=name)  # type: ignore[union-attr]
    else:
        cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        while True:
            rows = cursor.fetchmany(BATCH)
            if not rows:
                return
            yield from rows
    finally:
        cursor.close()


def scan_log(conn: Connection) -> Iterator[tuple[int, str, str | None, int, str, bytes]]:
    for idx, kind, subject, at, entry, leaf in stream(
            conn, "SELECT idx, kind, subject, at, entry, leaf FROM log_entries ORDER BY idx",
            "hotline_state_scan"):
        yield int(idx), kind, subject, int(at), entry, bytes(leaf)


def _rows(conn: Connection) -> Iterator[tuple[int, str, str | None, int, str]]:
    for idx, kind, subject, at, entry in stream(
            conn, "SELECT idx, kind, subject, at, entry FROM log_entries ORDER BY idx",
            "hotline_state_scan"):
        yield int(idx), kind, subject, int(at), entry


def _column_fix(idx: int, column: str, before: Any, after: Any) -> Fix:
    def apply(conn: Connection, _ctx: RepairContext) -> None:
        conn.execute(update(log_entries).where(log_entries.c.idx == idx)
                     .values({column: after}))
    return Fix((Change("log_entries", f"idx={idx}", column, before, after),), apply)


def _column(view: LogView, idx: int, column: str, before: Any, after: Any) -> None:
    view.add_column_finding(Finding(
        "log-columns", "log_entries", f"idx={idx}",
        f"column {column} is {before!r} but the entry says {after!r}", idx,
        _column_fix(idx, column, before, after)))


def read_log(conn: Connection, me: str) -> LogView:
    """The one pass (see the module's docstring), on its own."""
    view = LogView(me)
    for idx, kind, subject, at, text in _rows(conn):
        take(view, int(idx), kind, subject, int(at), text)
    return view


def tee(view: LogView, rows: Iterable[tuple[int, str, str | None, int, str, bytes]]
        ) -> Iterator[tuple[int, str, str, bytes]]:
    """The rows the log's verification reads, gathered into ``view`` on the way: one read
    of the log serves both checks."""
    for idx, kind, subject, at, text, leaf in rows:
        take(view, idx, kind, subject, at, text)
        yield idx, kind, text, leaf


def take(view: LogView, idx: int, kind: str, subject: str | None, at: int,
         text: str) -> None:
    """One entry of the pass."""
    view.entries += 1
    if kind == "sent" or kind == "received":
        parts = split_envelope(text)
        if parts is not None and text.startswith(f'{{"at":{at},'):
            eid, peer, seq, logged_subject, type_, logged_kind = parts
            if logged_kind != kind:
                _column(view, idx, "kind", kind, logged_kind)
            if subject != logged_subject:
                _column(view, idx, "subject", subject, logged_subject)
            by_peer = view.sent if logged_kind == "sent" else view.received
            seqs = by_peer.get(peer)
            if seqs is None:
                seqs = by_peer[peer] = {}
            seqs[seq] = (idx, row_hash(eid, type_, logged_subject, logged_kind == "sent"),
                         True)
            return
    elif kind not in PARSED and subject is None and kind not in SUBJECT_FIELD \
            and text.startswith(f'{{"at":{at},"body":') \
            and f',"kind":"{kind}","prev":"' in text:
        return  # the columns agree, and no checker reads it
    obj = json.loads(text)
    if obj.get("at") != at:
        _column(view, idx, "at", at, obj.get("at"))
    if obj.get("kind") != kind:
        _column(view, idx, "kind", kind, obj.get("kind"))
        kind = str(obj.get("kind"))
    body = obj.get("body")
    if not isinstance(body, dict):
        return
    _check_subject(view, idx, kind, SUBJECT_FIELD.get(kind), subject, body)
    if kind in KEY_KINDS and type(obj.get("at")) is int:
        view.key_events.append((idx, int(obj["at"]), kind, body))
    elif kind == "duty-override" and type(body.get("id")) is int \
            and type(obj.get("at")) is int:
        view.overrides[int(body["id"])] = (body, idx, int(obj["at"]))
    _gather(view, idx, kind, body)


def _check_subject(view: LogView, idx: int, kind: str, field_name: str | None,
                   subject: str | None, body: dict[str, Any]) -> None:
    if field_name is None:
        if subject is not None and subject not in [v for v in body.values()
                                                   if isinstance(v, str)]:
            _column(view, idx, "subject", subject, None)
        return
    if field_name not in body:
        view.unchecked_subjects += 1  # written before this entry logged its subject
        return
    logged = body[field_name]
    if subject != logged:
        _column(view, idx, "subject", subject, logged)


def _gather(view: LogView, idx: int, kind: str, body: dict[str, Any]) -> None:
    if kind in ("sent", "received"):
        peer, seq = body.get("peer"), body.get("seq")
        if isinstance(peer, str) and isinstance(seq, int):
            named = "subject" in body
            kept = (idx, row_hash(str(body.get("id")), str(body.get("type")),
                                  body.get("subject"), named and kind == "sent"), named)
            (view.sent if kind == "sent" else view.received).setdefault(
                line_key(peer, body.get("lane")), {})[seq] = kept
    elif kind == "receipt":
        view.receipts[str(body.get("id"))] = idx
    elif kind == "call-state":
        _replay(view, idx, body)
    elif kind == "conversation-message":
        view.texts[str(body.get("message"))] = (str(body.get("conversation")),
                                                str(body.get("text_sha256")), idx)
    elif kind == "incident-entry":
        view.incident_entries[str(body.get("entry"))] = (
            str(body.get("incident")), str(body.get("statement_sha256")), idx)
        via = body.get("via")
        view.incident_vias[str(body.get("entry"))] = via if isinstance(via, str) else None
    elif kind == "incident":
        incident, event = str(body.get("incident")), str(body.get("event"))
        members, invited = body.get("members"), body.get("invited")
        if not isinstance(members, list) or not isinstance(invited, list):
            return
        known = view.incidents.get(incident)
        if known is None:
            known = view.incidents[incident] = IncidentLogged(
                str(body.get("party")), "member", [], [], idx)
        known.state = INCIDENT_STATE.get(event, known.state)
        known.members, known.invited = sorted(map(str, members)), sorted(map(str, invited))
        known.idx = idx
    elif kind == "notice":
        if set(NOTICE_LOGGED) <= set(body):
            view.notices[str(body.get("notice"))] = (idx, notice_digest(body))
        else:  # logged before the entry held every column: its row cannot be checked
            view.notices_unchecked.add(str(body.get("notice")))
    elif kind == "notice-receipt":
        key = (str(body.get("notice")), str(body.get("signer")), str(body.get("receipt")))
        view.notice_receipts[key] = (idx, hashlib.sha256(
            str(body.get("statement")).encode()).hexdigest())
    elif kind == "directory":
        version = body.get("version")
        if isinstance(version, int):
            view.directory[version] = (str(body.get("digest")), idx)
    elif kind == "link-removed":
        party, generation = body.get("party"), body.get("generation")
        if isinstance(party, str) and isinstance(generation, int):
            view.generations[party] = generation
    elif kind == "repair":
        for lost in body.get("lost", []):
            if isinstance(lost, dict):
                view.lost.add((str(lost.get("table")),
                               line_key(str(lost.get("peer")), lost.get("lane")),
                               int(lost.get("seq", 0))))


def _replay(view: LogView, idx: int, body: dict[str, Any]) -> None:
    """Apply one statement as the node does when it stores it (``calls/service.py``):
    ours set the state (a "fallback" statement does not), the peer's set it unless it is
    final (a cancelled call still takes the callee's last word)."""
    call_id, signer, state, n = body.get("call"), body.get("signer"), body.get("state"), \
        body.get("n")
    if not isinstance(call_id, str) or not isinstance(state, str):
        return
    replay = view.calls.get(call_id)
    if replay is None:
        replay = view.calls[call_id] = CallReplay(idx, idx)
    replay.last_idx = idx
    if signer == view.me:
        if isinstance(n, int):
            replay.ours = max(replay.ours, n)
        if state != "fallback":
            replay.state = state
    else:
        replay.peer = signer if isinstance(signer, str) else None
        if replay.state not in FINAL or replay.state == "cancelled":
            replay.state = state
