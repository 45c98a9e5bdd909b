"""Verifying the node's log from what is stored, trusting none of it.

The tree is recomputed from the stored entries; every entry must carry its own index and
the leaf hash of the one before it, hash to the stored leaf, and the stored tree state
and every checkpoint a peer has cosigned must match the recomputed roots. The report
names the first entry where the log breaks:

* an entry whose bytes were changed (its hash differs), or whose successor no longer
  links to it (it was changed and its stored hash recomputed);
* a missing index (a deleted row), an entry carrying another index (inserted or
  reordered rows), a log shorter or longer than its state says (truncated or appended);
* a cosigned checkpoint the entries no longer reproduce: something up to that size was
  rewritten consistently, which only the peer's cosignature can reveal.

Signatures on checkpoints (the origin's) and cosignatures (the witness's) are checked
with the keys the node holds.
"""

from __future__ import annotations

import hashlib
from binascii import hexlify
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from hotline.errors import HotlineError
from hotline.log.merkle import CompactRange
from hotline.protocol import canonical
from hotline.protocol.checkpoint import verify_checkpoint, verify_cosignature
from hotline.protocol.keys import PublicKeys
from hotline.store import log as log_store
from hotline.store.log import StoredEntry
from hotline.store.schema import log_checkpoints


@dataclass(frozen=True)
class Break:
    index: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "message": self.message}


@dataclass
class Report:
    size: int = 0
    root: str = ""
    checkpoints: int = 0
    problems: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "size": self.size, "root": self.root,
                "checkpoints_checked": self.checkpoints,
                "first_bad_entry": self.problems[0].index if self.problems else None,
                "problems": [p.as_dict() for p in self.problems]}


@dataclass(frozen=True)
class CheckpointRow:
    origin: str
    witness: str
    size: int
    root: bytes
    checkpoint: str
    cosignature: str


def _suffix(index: int, kind: str, prev: str) -> bytes:
    return f',"i":{index},"kind":"{kind}","prev":"{prev}","v":1}}'.encode()


def verify_entries(entries: Iterable[tuple[int, str, str, bytes]], state_size: int,
                   state_root: bytes, checkpoints: dict[int, list[CheckpointRow]],
                   report: Report, state_last_leaf: str = "") -> None:
    """Recompute the tree from ``(index, kind, entry, leaf)`` rows in index order; append
    the first break found (checking stops there). Tight on purpose: it runs over every
    entry at each start of the node."""
    tree = CompactRange()
    append = tree.append
    sha256 = hashlib.sha256
    prev = b""
    expected = 0
    good_size = 0  # the largest size a cosigned checkpoint confirmed
    sizes = checkpoints.keys()
    kinds: dict[str, bytes] = {}
    for idx, kind, text, stored_leaf in entries:
        if idx != expected:
            report.problems.append(Break(expected, f"entry {expected} is missing (the next "
                                                   f"stored entry is {idx})"))
            return
        data = text.encode()
        kind_b = kinds.get(kind)
        if kind_b is None:
            kind_b = kinds[kind] = kind.encode()
        if not data.endswith(b',"i":%d,"kind":"%s","prev":"%s","v":1}' % (idx, kind_b, prev)):
            report.problems.append(_misplaced(StoredEntry(idx, kind, None, 0, text,
                                                          bytes(stored_leaf)), data,
                                              prev.decode()))
            return
        leaf = sha256(b"\x00" + data).digest()
        if leaf != stored_leaf:
            report.problems.append(Break(idx, f"entry {idx} was changed: its bytes no "
                                              "longer hash to its recorded leaf"))
            return
        append(leaf)
        prev = hexlify(leaf)
        expected += 1
        if expected in sizes:
            for row in checkpoints[expected]:
                if tree.root() != row.root:
                    report.problems.append(Break(
                        good_size, f"the first {row.size} entries no longer match the "
                                   f"checkpoint {row.witness} cosigned: an entry from "
                                   f"{good_size} to {row.size - 1} was rewritten"))
                    return
            good_size = expected
    _finish(tree, expected, prev.decode(), state_size, state_root, state_last_leaf,
            checkpoints, report)


def _finish(tree: CompactRange, expected: int, prev: str, state_size: int,
            state_root: bytes, state_last_leaf: str,
            checkpoints: dict[int, list[CheckpointRow]], report: Report) -> None:
    report.size = tree.size
    report.root = tree.root().hex()
    if expected < state_size:
        report.problems.append(Break(expected, f"the log ends at entry {expected - 1} but "
                                               f"held {state_size} entries: truncated"))
    elif expected > state_size:
        report.problems.append(Break(state_size, f"entries from {state_size} on were added "
                                                 "without the node"))
    elif prev != state_last_leaf:
        report.problems.append(Break(expected - 1, f"entry {expected - 1} was changed: the "
                                                   "log's state recorded a different hash "
                                                   "for it"))
    elif tree.root() != state_root:
        report.problems.append(Break(None, "the stored tree state does not match the "
                                           "entries"))
    beyond = [s for s in checkpoints if s > tree.size]
    if beyond and not report.problems:
        report.problems.append(Break(tree.size, f"a peer cosigned {max(beyond)} entries but "
                                                f"only {tree.size} are stored: truncated"))


def _misplaced(e: StoredEntry, data: bytes, prev: str) -> Break:
    try:
        obj = canonical.decode(data)
    except HotlineError:
        return Break(e.idx, f"entry {e.idx} is not a valid entry any more")
    if not isinstance(obj, dict) or obj.get("i") != e.idx:
        carried = obj.get("i") if isinstance(obj, dict) else "?"
        return Break(e.idx, f"entry {e.idx} carries index {carried}: entries were "
                            "inserted, removed or reordered here")
    if obj.get("prev") != prev:
        at = e.idx - 1
        return Break(at, f"entry {at} was changed: entry {e.idx} recorded a different hash "
                         "for it")
    return Break(e.idx, f"entry {e.idx} was changed (its kind no longer matches)")


def load_checkpoints(conn: Connection) -> list[CheckpointRow]:
    rows = conn.execute(select(log_checkpoints).order_by(log_checkpoints.c.id))
    return [CheckpointRow(r.origin, r.witness, int(r.size), bytes(r.root), r.checkpoint,
                          r.cosignature) for r in rows]


def _signer(keys: dict[str, PublicKeys], known: dict[str, dict[str, PublicKeys]],
            party: str, signed: str | None) -> PublicKeys | None:
    """The key of ``party`` whose id the signed object ``signed`` names, from the key
    history (a checkpoint made before a rotation), else the one in ``keys``."""
    import json

    try:
        kid = json.loads(signed).get("kid") if signed else None
    except (ValueError, AttributeError):
        kid = None
    return known.get(party, {}).get(kid) if isinstance(kid, str) and \
        kid in known.get(party, {}) else keys.get(party)


def check_signatures(rows: list[CheckpointRow], keys: dict[str, PublicKeys],
                     report: Report,
                     known: dict[str, dict[str, PublicKeys]] | None = None) -> None:
    """Every stored checkpoint and cosignature against its signer's key: the one it
    names among ``known`` (every key of each party's history) or the one in ``keys``."""
    import json

    history = known or {}
    for row in rows:
        origin_key = _signer(keys, history, row.origin, row.checkpoint)
        witness_key = _signer(keys, history, row.witness, row.cosignature)
        if origin_key is None or witness_key is None:
            report.problems.append(Break(None, f"no key to check the checkpoint of "
                                               f"{row.origin} cosigned by {row.witness}"))
            continue
        try:
            cp = verify_checkpoint(json.loads(row.checkpoint), origin_key, row.origin)
            verify_cosignature(json.loads(row.cosignature), witness_key, cp,
                               expect_witness=row.witness)
        except (HotlineError, ValueError) as exc:
            report.problems.append(Break(None, f"checkpoint of {row.origin} at size "
                                               f"{row.size} cosigned by {row.witness}: {exc}"))
            continue
        if (cp.size, cp.root) != (row.size, row.root):
            report.problems.append(Break(None, f"checkpoint row of {row.origin} at size "
                                               f"{row.size} does not match what was signed"))
        report.checkpoints += 1


def verify_database(conn: Connection, me: str, keys: dict[str, PublicKeys],
                    entries: Iterable[tuple[int, str, str, bytes]] | None = None) -> Report:
    """The full check: entries, tree state, and every stored checkpoint. ``entries``:
    the ``(idx, kind, entry, leaf)`` rows to read, if not :func:`log_store.scan_raw`'s
    (the start-up state check reads the log in the same pass)."""
    report = Report()
    rows = load_checkpoints(conn)
    ours: dict[int, list[CheckpointRow]] = {}
    for row in rows:
        if row.origin == me:
            ours.setdefault(row.size, []).append(row)
    state = log_store.read_state(conn)
    scan = log_store.scan_raw(conn) if entries is None else entries
    verify_entries(scan, state.size, state.frontier.root(), ours, report, state.last_leaf)
    from hotline.store import keys as key_store

    check_signatures(rows, keys, report, key_store.all_known(conn))
    return report
