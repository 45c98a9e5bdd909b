"""Appending to the tamper-evident log, inside the transaction of the event it records.

Each entry is canonical JSON ``{"v": 1, "i": index, "at": ms, "kind": ..., "body": {...},
"prev": hex leaf hash of entry i-1}``; its leaf hash (RFC 6962: ``SHA-256(0x00 ||
entry)``) is a leaf of the node's Merkle tree. Carrying the index and the previous leaf
inside the hashed bytes means that an edit, deletion, insertion or reordering of rows
done behind the node's back is caught at the first entry it touches, not only as a
different root. The tree's compact state (one hash per set bit of the size) is kept in
``log_state``, so appending costs O(log n) and the current root is always at hand.

Appends from one transaction are written together (one state read, one insert of all
rows, one state update); the node's single writer serialises transactions, and the
state row is read ``FOR UPDATE`` where the engine supports it, for offline commands that
write beside a running node.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, or_, select, update

from hotline.log.merkle import CompactRange, leaf_hash, node_hash
from hotline.protocol import canonical
from hotline.store.database import RetryTransaction, TransactionHooks
from hotline.store.schema import log_entries, log_nodes, log_state


@dataclass(frozen=True)
class Record:
    """Something to append: what happened, about what, when."""

    kind: str
    body: dict[str, Any]
    at: int
    subject: str | None = None


@dataclass(frozen=True)
class State:
    size: int
    frontier: CompactRange
    last_leaf: str


def entry_bytes(index: int, record: Record, prev: str) -> bytes:
    return canonical.encode_trusted({"v": 1, "i": index, "at": record.at,
                                     "kind": record.kind, "body": record.body, "prev": prev})


_STATE = select(log_state.c.size, log_state.c.frontier, log_state.c.last_leaf).where(
    log_state.c.id == 1)
_STATE_FOR_UPDATE = _STATE.with_for_update()
_INSERT = log_entries.insert()
_INSERT_NODES = log_nodes.insert()
_SET_STATE = update(log_state).where(log_state.c.id == 1).values(
    size=bindparam("size"), frontier=bindparam("frontier"), last_leaf=bindparam("last_leaf"))
_SET_STATE_IF = update(log_state).where(
    log_state.c.id == 1, log_state.c.size == bindparam("old_size"),
    log_state.c.last_leaf == bindparam("old_leaf")).values(
    size=bindparam("size"), frontier=bindparam("frontier"), last_leaf=bindparam("last_leaf"))

#: The tree state this process last wrote, per engine: (size, last leaf, frontier). It is
#: only a guess — another process may have appended, or the transaction that wrote it may
#: have rolled back — so it is used only if the state row still matches it.
_cached: dict[int, tuple[int, str, CompactRange]] = {}


def read_state(conn: Connection, *, for_update: bool = False) -> State:
    row = conn.execute(_STATE_FOR_UPDATE if for_update else _STATE).one()
    hashes = [bytes.fromhex(h) for h in json.loads(row.frontier)]
    return State(int(row.size), CompactRange.from_state(int(row.size), hashes), row.last_leaf)


def _build(records: Sequence[Record], first: int, prev: str, tree: CompactRange,
           nodes: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Entry rows for ``records``; the subtree roots they complete go to ``nodes``."""
    rows: list[dict[str, Any]] = []
    index = first
    for record in records:
        data = entry_bytes(index, record, prev)
        leaf = leaf_hash(data)
        for level, node in enumerate(tree.append_nodes(leaf), 1):
            nodes.append({"level": level, "idx": (tree.size >> level) - 1, "hash": node})
        rows.append({"idx": index, "kind": record.kind, "subject": record.subject,
                     "at": record.at, "entry": data.decode(), "leaf": leaf})
        prev = leaf.hex()
        index += 1
    return rows, prev


def append(conn: Connection, records: Sequence[Record]) -> list[int]:
    """Append ``records`` in order; returns their indices.

    Inside the node's writer (see :data:`HOOKS`) the rows of a whole transaction are
    collected and written once, just before it commits. Elsewhere (offline commands) they
    are written at once: fast path, the state this process wrote last is assumed current
    and the state row is updated only if it still says so (a conditional UPDATE, which
    also takes the row's lock); otherwise the row is read, locked, and built upon.
    """
    if not records:
        return []
    if _PENDING in conn.info:
        pending = conn.info[_PENDING]
        if pending is None:
            pending = conn.info[_PENDING] = _start_pending(conn)
        first = pending.first + len(pending.rows)
        rows, pending.prev = _build(records, first, pending.prev, pending.tree,
                                    pending.nodes)
        pending.rows.extend(rows)
        return list(range(first, first + len(rows)))
    key = id(conn.engine)
    cached = _cached.get(key)
    nodes: list[dict[str, Any]] = []
    if cached is not None:
        first, old_leaf, tree = cached[0], cached[1], cached[2].copy()
        rows, prev = _build(records, first, old_leaf, tree, nodes)
        changed = conn.execute(_SET_STATE_IF, {
            "size": first + len(rows), "last_leaf": prev, "old_size": first,
            "old_leaf": old_leaf, "frontier": json.dumps([h.hex() for h in tree.to_state()])})
        if changed.rowcount != 1:
            cached = None
    if cached is None:
        nodes = []
        state = read_state(conn, for_update=True)
        first, tree = state.size, state.frontier
        rows, prev = _build(records, first, state.last_leaf, tree, nodes)
        conn.execute(_SET_STATE, {"size": first + len(rows), "last_leaf": prev,
                                  "frontier": json.dumps([h.hex() for h in tree.to_state()])})
    conn.execute(_INSERT, rows)
    if nodes:
        conn.execute(_INSERT_NODES, nodes)
    _cached[key] = (first + len(rows), prev, tree.copy())
    return list(range(first, first + len(rows)))


# -- one write per transaction, for the node's writer ----------------------------------

_PENDING = "hotline.log.pending"


class StaleLogState(RetryTransaction):
    """Another process appended since this one last did: redo the transaction."""


@dataclass
class _Pending:
    first: int
    old_leaf: str
    prev: str
    tree: CompactRange
    checked: bool  # the state was read from the row (not guessed from the cache)
    rows: list[dict[str, Any]]
    nodes: list[dict[str, Any]]


def _start_pending(conn: Connection) -> _Pending:
    cached = _cached.get(id(conn.engine))
    if cached is not None:
        return _Pending(cached[0], cached[1], cached[1], cached[2].copy(), False, [], [])
    state = read_state(conn, for_update=True)
    return _Pending(state.size, state.last_leaf, state.last_leaf, state.frontier, True, [],
                    [])


@contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """A SAVEPOINT that also takes back log entries appended inside it (in the writer
    they are held in memory until the commit, beyond the database's reach)."""
    pending: _Pending | None = conn.info.get(_PENDING)
    saved = None if pending is None else (len(pending.rows), pending.prev,
                                          pending.tree.copy(), len(pending.nodes))
    try:
        with conn.begin_nested():
            yield
    except BaseException:
        now: _Pending | None = conn.info.get(_PENDING)
        if now is not None:
            if saved is None or now is not pending:
                conn.info[_PENDING] = None  # nothing was pending before: start over
            else:
                del now.rows[saved[0]:]
                del now.nodes[saved[3]:]
                now.prev, now.tree = saved[1], saved[2]
        raise


def _begin(conn: Connection) -> None:
    conn.info[_PENDING] = None


def _flush(conn: Connection) -> None:
    pending: _Pending | None = conn.info.pop(_PENDING, None)
    if pending is None or not pending.rows:
        return
    size = pending.first + len(pending.rows)
    values = {"size": size, "last_leaf": pending.prev,
              "frontier": json.dumps([h.hex() for h in pending.tree.to_state()])}
    if pending.checked:
        conn.execute(_SET_STATE, values)
    else:
        changed = conn.execute(_SET_STATE_IF, {**values, "old_size": pending.first,
                                               "old_leaf": pending.old_leaf})
        if changed.rowcount != 1:
            _cached.pop(id(conn.engine), None)
            raise StaleLogState("the log grew in another process; retrying")
    conn.execute(_INSERT, pending.rows)
    if pending.nodes:
        conn.execute(_INSERT_NODES, pending.nodes)
    _cached[id(conn.engine)] = (size, pending.prev, pending.tree.copy())


def _discard(conn: Connection) -> None:
    conn.info.pop(_PENDING, None)
    _cached.pop(id(conn.engine), None)  # it may describe rows that were rolled back


#: Hooks for :class:`hotline.store.database.Database`: a transaction's entries are
#: written in one statement (and the tree state in one more) just before it commits.
HOOKS = TransactionHooks(begin=_begin, before_commit=_flush, after_rollback=_discard)


def append_one(conn: Connection, kind: str, body: dict[str, Any], at: int,
               subject: str | None = None) -> int:
    return append(conn, [Record(kind, body, at, subject)])[0]


@dataclass(frozen=True)
class StoredEntry:
    idx: int
    kind: str
    subject: str | None
    at: int
    entry: str
    leaf: bytes


def scan(conn: Connection, batch: int = 20_000) -> Iterator[StoredEntry]:
    """Every stored row in index order, as stored (verification trusts nothing in it)."""
    last = -1
    while True:
        rows = conn.execute(select(log_entries).where(log_entries.c.idx > last)
                            .order_by(log_entries.c.idx).limit(batch)).all()
        for r in rows:
            yield StoredEntry(int(r.idx), r.kind, r.subject, int(r.at), r.entry, bytes(r.leaf))
        if len(rows) < batch:
            return
        last = int(rows[-1].idx)


def scan_raw(conn: Connection, batch: int = 50_000) -> Iterator[tuple[int, str, str, bytes]]:
    """``(idx, kind, entry, leaf)`` of every row in index order, through the driver's
    cursor: verifying a million entries is dominated by per-row overhead otherwise."""
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":  # a server-side cursor: stream, do not load all
        conn.execute(select(1))  # make sure the transaction has begun
        cursor = raw.cursor(name="hotline_log_scan")  # type: ignore[union-attr]
    else:
        cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute("SELECT idx, kind, entry, leaf FROM log_entries ORDER BY idx")
        while True:
            rows = cursor.fetchmany(batch)
            if not rows:
                return
            for idx, kind, entry, leaf in rows:
                yield int(idx), kind, entry, bytes(leaf)
    finally:
        cursor.close()


def leaves(conn: Connection, size: int) -> list[bytes]:
    """The stored leaf hashes of entries 0..size-1 (for proofs)."""
    rows = conn.execute(select(log_entries.c.leaf).where(log_entries.c.idx < size)
                        .order_by(log_entries.c.idx))
    return [bytes(r.leaf) for r in rows]


def by_subject(conn: Connection, subject: str) -> list[StoredEntry]:
    rows = conn.execute(select(log_entries).where(log_entries.c.subject == subject)
                        .order_by(log_entries.c.idx))
    return [StoredEntry(int(r.idx), r.kind, r.subject, int(r.at), r.entry, bytes(r.leaf))
            for r in rows]


def latest(conn: Connection, limit: int) -> list[StoredEntry]:
    """The last ``limit`` entries, newest first (the console's audit page)."""
    rows = conn.execute(select(log_entries).order_by(log_entries.c.idx.desc()).limit(limit))
    return [StoredEntry(int(r.idx), r.kind, r.subject, int(r.at), r.entry, bytes(r.leaf))
            for r in rows]


def search(conn: Connection, *, kind: str | None = None, subject: str | None = None,
           operator: str | None = None, since_ms: int | None = None,
           until_ms: int | None = None, before: int | None = None,
           limit: int = 50) -> list[StoredEntry]:
    """Entries newest first that match every filter given (the console's audit page):
    ``kind`` exactly, ``subject`` (a call or conversation id) exactly, ``operator`` named
    anywhere in the entry as ``"operator":"ID"``, ``at`` within [``since_ms``,
    ``until_ms``] (ms since the epoch), and ``idx`` below ``before`` (the page
    boundary). At most ``limit`` entries."""
    query = select(log_entries).order_by(log_entries.c.idx.desc()).limit(limit)
    if kind:
        query = query.where(log_entries.c.kind == kind)
    if subject:
        query = query.where(log_entries.c.subject == subject)
    if operator:
        # named in the body, or inside a signed statement the body carries as a string
        query = query.where(or_(
            log_entries.c.entry.contains(f'"operator":"{operator}"', autoescape=True),
            log_entries.c.entry.contains(f'\\"operator\\":\\"{operator}\\"',
                                         autoescape=True)))
    if since_ms is not None:
        query = query.where(log_entries.c.at >= since_ms)
    if until_ms is not None:
        query = query.where(log_entries.c.at <= until_ms)
    if before is not None:
        query = query.where(log_entries.c.idx < before)
    return [StoredEntry(int(r.idx), r.kind, r.subject, int(r.at), r.entry, bytes(r.leaf))
            for r in conn.execute(query)]


#: how many entries one search for a reader may look at, at most (each page of the audit
#: page stays cheap however little of a large log the reader may see)
SCAN_AT_MOST = 5000


def search_shown(conn: Connection, shown: Callable[[str | None], bool], *,
                 kind: str | None = None, subject: str | None = None,
                 operator: str | None = None, since_ms: int | None = None,
                 until_ms: int | None = None, before: int | None = None, limit: int = 50
                 ) -> tuple[list[StoredEntry], int | None]:
    """As :func:`search`, only entries whose subject ``shown`` allows: up to ``limit`` of
    them, and the ``idx`` the next page starts below (None: nothing older matches).
    Looks at :data:`SCAN_AT_MOST` entries at most; past that, the boundary is the last
    one looked at."""
    out: list[StoredEntry] = []
    scanned = 0
    batch = max(limit + 1, 200)
    while scanned < SCAN_AT_MOST:
        rows = search(conn, kind=kind, subject=subject, operator=operator,
                      since_ms=since_ms, until_ms=until_ms, before=before, limit=batch)
        for row in rows:
            scanned += 1
            if shown(row.subject):
                if len(out) == limit:
                    return out, out[-1].idx
                out.append(row)
            before = row.idx
        if len(rows) < batch:
            return out, None
    return out, before


def size(conn: Connection) -> int:
    """How many entries the log holds now."""
    row = conn.execute(select(log_state.c.size).where(log_state.c.id == 1)).first()
    return int(row.size) if row is not None else 0


def kinds(conn: Connection) -> list[str]:
    """Every kind of entry the log holds, sorted (the audit page's filter)."""
    return sorted(str(k) for (k,) in conn.execute(select(log_entries.c.kind).distinct()))


def between(conn: Connection, start_ms: int, end_ms: int) -> list[StoredEntry]:
    rows = conn.execute(select(log_entries).where(log_entries.c.at >= start_ms,
                                                  log_entries.c.at <= end_ms)
                        .order_by(log_entries.c.idx))
    return [StoredEntry(int(r.idx), r.kind, r.subject, int(r.at), r.entry, bytes(r.leaf))
            for r in rows]


class StoredTree:
    """Subtree roots of the stored log, for proofs: a perfect, aligned subtree is one
    lookup (``log_nodes``, or the leaf itself); any other range splits as the tree does.
    A proof thus costs O(log² n) lookups instead of rehashing every leaf."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def node(self, level: int, index: int) -> bytes:
        if level == 0:
            leaf = self._conn.execute(select(log_entries.c.leaf)
                                      .where(log_entries.c.idx == index)).scalar()
        else:
            leaf = self._conn.execute(select(log_nodes.c.hash).where(
                log_nodes.c.level == level, log_nodes.c.idx == index)).scalar()
        if leaf is None:
            raise LookupError(f"the log has no node {index} at level {level}")
        return bytes(leaf)

    def subtree(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            return self.node(n.bit_length() - 1, lo // n)
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self.subtree(lo, lo + k), self.subtree(lo + k, hi))
