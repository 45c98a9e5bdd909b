"""Evidence bundles: a slice of the log that a third party can check on its own.

A bundle carries entries of the node's log (the exact stored text), an inclusion proof
for each against one checkpoint the node signed, the cosignatures peers made of that
checkpoint, and the public signing keys of everyone whose signature it relies on. A
verifier needs nothing else: no node, no database, no network.

What a verified bundle proves:

* the origin logged each of these entries, with exactly these bytes, at these positions
  of its log, before the checkpoint: the origin signed the tree root that includes them,
  and a peer (a witness other than the origin) cosigned that same root, so the origin
  cannot later present a log without them, or with them changed, without the rewrite
  showing against a cosignature it does not control;
* every call-state and message-receipt statement in the entries was signed by the party
  named as its signer (for a call: the callee party signed each state it reached, the
  caller each state it caused), and every delivery receipt was signed by the peer for the
  very message digest the origin logged when it sent the envelope;
* every entry lies within the bundle's scope: its body (or, for an envelope, the payload
  the bundle carries and the logged digest binds) names the call or conversation, or its
  logged time lies in the time range.

What it does not prove:

* that the log holds nothing else about the call or conversation: the exporter chooses
  the entries, and an entry left out (or one whose envelope never named the subject)
  cannot be detected from the bundle;
* anything about entries after the checkpoint, or about the origin's log beyond the
  checkpoint's size;
* the truth of free text (a decline reason, a message), the accuracy of the clocks that
  stamped the entries and statements, or who the people behind a role were;
* without a keys file, that the keys are the parties' real keys: the bundle then vouches
  for itself, and the verifier must compare the key ids (or safety numbers) out of band.

Bundle format (JSON, ``v`` 1)::

    {"v": 1, "kind": "hotline-evidence", "origin": "US-JS",
     "scope": {"call": id} | {"conversation": id} | {"incident": id} |
              {"from": ms, "to": ms},
     "exported_at": ms,
     "keys": {"US-JS": {"sign": b64url, "kid": hex}, ...},
     "checkpoint": {signed checkpoint}, "cosignatures": [{signed cosignature}, ...],
     "entries": [{"index": i, "entry": "<entry JSON text as stored>",
                  "proof": [b64url hash, ...], "payload": "<message JSON>"?}, ...]}

``payload`` is present on "sent" and "received" entries of call and conversation
bundles only: an envelope's log entry holds the message digest, not the call it concerns,
so the bundle carries the message itself (as canonical JSON) and the verifier recomputes
the digest to tie the envelope to the subject. A conversation bundle therefore discloses
the text of the messages whose envelopes it includes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import Connection, select

from hotline.errors import HotlineError
from hotline.log.keychain import judge, parse_histories, signed_fields, trusted_histories
from hotline.log.merkle import HASH_SIZE, leaf_hash, node_hash, verify_inclusion
from hotline.protocol import canonical
from hotline.protocol.canonical import MAX_SAFE_INTEGER
from hotline.protocol.checkpoint import Checkpoint, verify_checkpoint, verify_cosignature
from hotline.protocol.envelope import KID_RE, PARTY_RE
from hotline.protocol.keyhistory import KeyHistory
from hotline.protocol.keys import PublicKeys, b64d, b64e, key_id
from hotline.protocol.receipt import message_digest, verify_receipt
from hotline.protocol.statement import verify_call_state, verify_message_receipt
from hotline.store import keys as key_store
from hotline.store import log as log_store
from hotline.store.log import StoredEntry
from hotline.store.schema import inbound, log_checkpoints, outbox

BUNDLE_KIND = "hotline-evidence"
BUNDLE_FIELDS = frozenset({"v", "kind", "origin", "scope", "exported_at", "keys", "checkpoint",
                           "cosignatures", "entries"})
#: Optional: the signed key histories of parties that rotated (``log/keychain.py``).
OPTIONAL_FIELDS = frozenset({"key_history"})
ENTRY_FIELDS = frozenset({"index", "entry", "proof"})
LOG_ENTRY_FIELDS = frozenset({"v", "i", "at", "kind", "body", "prev"})
ENVELOPE_KINDS = frozenset({"sent", "received"})
NO_CHECKPOINT_HINT = "checkpoints are exchanged with peers every few seconds; try again shortly"

#: The verifier checks signatures only, so keys read from a bundle or a keys file have no
#: encryption key; this placeholder fills the slot of ``PublicKeys`` and is never used.
_NO_ENC_KEY = X25519PublicKey.from_public_bytes(bytes(32))


def signing_keys(sign: bytes) -> PublicKeys:
    """Public keys holding only a signing key (ValueError if it is no Ed25519 key)."""
    return PublicKeys(Ed25519PublicKey.from_public_bytes(sign), _NO_ENC_KEY)


def _key_entry(public: PublicKeys) -> dict[str, str]:
    return {"sign": b64e(public.sign_bytes), "kid": public.key_id}


# ---------------------------------------------------------------------------- export --

def _scope(call: str | None, conversation: str | None, start_ms: int | None,
           end_ms: int | None, incident: str | None = None) -> dict[str, Any]:
    given = [call is not None, conversation is not None, incident is not None,
             start_ms is not None or end_ms is not None]
    if sum(given) != 1:
        raise HotlineError("bad-scope", "give exactly one scope: a call, a conversation, an "
                                        "incident, or a time range (from and to)")
    if incident is not None:
        return {"incident": incident}
    if call is not None:
        return {"call": call}
    if conversation is not None:
        return {"conversation": conversation}
    if start_ms is None or end_ms is None:
        raise HotlineError("bad-scope", "a time range needs both its start and its end")
    if start_ms > end_ms:
        raise HotlineError("bad-scope", "the time range ends before it starts")
    return {"from": start_ms, "to": end_ms}


def _payload(conn: Connection, kind: str, body: dict[str, Any]) -> str | None:
    """The plaintext message of a logged envelope, as the node stored it."""
    table = outbox if kind == "sent" else inbound
    row = conn.execute(select(table.c.payload).where(
        table.c.peer == body.get("peer"), table.c.envelope_id == body.get("id"))).first()
    return None if row is None else str(row.payload)


def _signers(kind: str, body: dict[str, Any]) -> list[str]:
    """Parties whose signature an entry of this kind carries."""
    if kind in ("call-state", "message-receipt"):
        return [str(body.get("signer"))]
    if kind == "receipt":
        return [str(body.get("peer"))]
    return []


def export_bundle(conn: Connection, *, me: str, own_public: PublicKeys,
                  peer_keys: dict[str, PublicKeys], call: str | None = None,
                  conversation: str | None = None, start_ms: int | None = None,
                  end_ms: int | None = None, now_ms: int,
                  incident: str | None = None) -> dict[str, Any]:
    """Build the evidence bundle of one scope from the node's log (see the module doc).

    The newest checkpoint of our log that a peer cosigned and that covers every selected
    entry anchors the proofs; the stored leaves are checked against its root and each
    entry against its leaf first, so a log damaged behind the node's back is reported
    here (``log-broken``) rather than exported as a bundle no one could verify.
    """
    scope = _scope(call, conversation, start_ms, end_ms, incident)
    subject = call if call is not None else conversation if conversation is not None \
        else incident
    if subject is not None:
        rows: list[StoredEntry] = log_store.by_subject(conn, subject)
    else:
        rows = log_store.between(conn, scope["from"], scope["to"])
    if not rows:
        raise HotlineError("no-entries", f"the log holds no entries for {_describe(scope)}")
    last = max(r.idx for r in rows)
    newest = conn.execute(select(log_checkpoints).where(
        log_checkpoints.c.origin == me, log_checkpoints.c.size > last)
        .order_by(log_checkpoints.c.id.desc()).limit(1)).first()
    if newest is None:
        raise HotlineError("no-covering-checkpoint",
                           f"no peer has cosigned a checkpoint of this log that includes "
                           f"entry {last} yet", hint=NO_CHECKPOINT_HINT)
    size, root = int(newest.size), bytes(newest.root)
    cosigned = conn.execute(select(log_checkpoints.c.witness, log_checkpoints.c.cosignature)
                            .where(log_checkpoints.c.origin == me,
                                   log_checkpoints.c.size == size,
                                   log_checkpoints.c.root == root)
                            .order_by(log_checkpoints.c.id)).all()
    cosignatures: list[dict[str, Any]] = []
    needed = {me}
    for row in cosigned:
        obj = json.loads(row.cosignature)
        if obj not in cosignatures:
            cosignatures.append(obj)
            needed.add(str(row.witness))
    leaves = log_store.leaves(conn, size)
    levels = _levels(leaves) if len(leaves) == size else []
    if not levels or levels[-1][0] != root:
        raise HotlineError("log-broken", f"the stored log no longer matches the checkpoint "
                                         f"of size {size} a peer cosigned",
                           hint="run `hotline log verify` to find the entry that changed")
    entries: list[dict[str, Any]] = []
    for r in rows:
        if leaf_hash(r.entry.encode()) != leaves[r.idx]:
            raise HotlineError("log-broken", f"entry {r.idx} no longer hashes to its leaf",
                               hint="run `hotline log verify` to see where the log breaks")
        parsed = json.loads(r.entry)
        kind, body = parsed["kind"], parsed["body"]
        needed.update(_signers(kind, body))
        item: dict[str, Any] = {"index": r.idx, "entry": r.entry,
                                "proof": [b64e(h) for h in _path(levels, r.idx)]}
        if subject is not None and kind in ENVELOPE_KINDS:
            payload = _payload(conn, kind, body)
            if payload is None:
                raise HotlineError("log-broken", f"entry {r.idx} logs envelope "
                                                 f"{body.get('id')} but the node no longer "
                                                 "holds its message")
            item["payload"] = payload
        entries.append(item)
    keys: dict[str, dict[str, str]] = {}
    for party in sorted(needed):
        public = own_public if party == me else peer_keys.get(party)
        if public is None:
            raise HotlineError("unknown-key", f"the bundle needs {party}'s public key, but "
                                              f"{party} is not linked",
                               hint="link the party again, or export a narrower scope")
        keys[party] = _key_entry(public)
    bundle = {"v": 1, "kind": BUNDLE_KIND, "origin": me, "scope": scope,
              "exported_at": now_ms, "keys": keys, "checkpoint": json.loads(newest.checkpoint),
              "cosignatures": cosignatures, "entries": entries}
    histories = {party: h for party in sorted(needed)
                 if (h := key_store.export_history(conn, party)) is not None}
    if histories:
        bundle["key_history"] = histories
    return bundle


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree over ``leaves``, the leaves first and the root last.

    ``merkle.inclusion_proof`` rehashes about n nodes for every proof; a bundle of a busy
    log's time range holds thousands of entries, so the tree is built once (n - 1 node
    hashes, as ``root_from_leaf_hashes`` does: pair neighbours, carry a lone last node up,
    which is the RFC 6962 tree) and each proof is read off it in O(log n).
    """
    levels = [leaves]
    while len(levels[-1]) > 1:
        level = levels[-1]
        upper = [node_hash(a, b) for a, b in zip(level[0::2], level[1::2], strict=False)]
        if len(level) & 1:
            upper.append(level[-1])
        levels.append(upper)
    return levels


def _path(levels: list[list[bytes]], index: int) -> list[bytes]:
    """The inclusion proof of leaf ``index``, bottom-up: the sibling at every level where
    there is one (a lone last node is carried up and has none)."""
    path: list[bytes] = []
    for level in levels[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index >>= 1
    return path


def _describe(scope: dict[str, Any]) -> str:
    if "call" in scope:
        return f"call {scope['call']}"
    if "conversation" in scope:
        return f"conversation {scope['conversation']}"
    if "incident" in scope:
        return f"incident {scope['incident']}"
    return f"the time range {scope['from']}..{scope['to']} ms"


# ---------------------------------------------------------------------------- verify --

@dataclass
class BundleReport:
    """The outcome of ``verify_bundle``: what is wrong, or what the bundle proves."""

    keys_from_bundle: bool
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    origin: str | None = None
    scope: dict[str, Any] | None = None
    size: int | None = None
    root: str | None = None
    witnesses: list[str] = field(default_factory=list)
    entries: int = 0
    keys: dict[str, str] = field(default_factory=dict)  # party -> key id relied on
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": list(self.problems), "notes": list(self.notes),
                "keys_from_bundle": self.keys_from_bundle, "origin": self.origin,
                "scope": self.scope, "checkpoint": {"size": self.size, "root": self.root},
                "witnesses": list(self.witnesses), "entries": self.entries,
                "keys": dict(self.keys), "timeline": list(self.timeline)}


class _Stop(Exception):
    """A problem after which nothing else in the bundle can be checked meaningfully."""


@dataclass(frozen=True)
class _Entry:
    """One bundle entry whose shape, index and inclusion were checked."""

    pos: int
    index: int
    at: int
    kind: str
    body: dict[str, Any]
    payload: str | None

    @property
    def where(self) -> str:
        return f"entry {self.index} (entries[{self.pos}], {self.kind})"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: object) -> bool:
    return type(value) is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


def parse_keys(obj: object, what: str, *, strict: bool = False) -> dict[str, PublicKeys]:
    """Parse a keys map ``{"PARTY": {"sign": b64url, "kid": hex?, "enc": b64url?}}``.

    Used for a verifier's keys file and (``strict``: exactly ``sign`` and ``kid``, as the
    exporter writes them) for a bundle's ``keys``. A ``kid`` must be the id of the
    ``sign`` key, so a hand-edited id cannot make a key look like the one compared out of
    band. Raises ValueError naming the bad party and field.
    """
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{what} must be a non-empty JSON object of party -> keys")
    out: dict[str, PublicKeys] = {}
    for party, entry in obj.items():
        if not isinstance(party, str) or not PARTY_RE.fullmatch(party):
            raise ValueError(f"{what}: {_show(party)} is not a party id")
        fields = set(entry) if isinstance(entry, dict) else set()
        if strict and fields != {"sign", "kid"}:
            raise ValueError(f"{what}.{party} must be an object with exactly 'sign' and 'kid'")
        if "sign" not in fields or not fields <= {"sign", "kid", "enc", "history"}:
            raise ValueError(f"{what}.{party} must be an object with 'sign' (and optionally "
                             "'kid', 'enc', 'history')")
        assert isinstance(entry, dict)
        sign = entry["sign"]
        try:
            if not isinstance(sign, str):
                raise ValueError("not a string")
            raw = b64d(sign, expect_len=32, what="sign key")
            public = signing_keys(raw)
            enc = entry.get("enc")
            if enc is not None:
                if not isinstance(enc, str):
                    raise ValueError("'enc' is not a string")
                public = PublicKeys(public.sign, X25519PublicKey.from_public_bytes(
                    b64d(enc, expect_len=32, what="enc key")))
        except (HotlineError, ValueError) as exc:
            raise ValueError(f"{what}.{party}: not a valid public key ({exc})") from None
        kid = entry.get("kid")
        if (strict or kid is not None) and (not isinstance(kid, str) or not KID_RE.fullmatch(kid)
                                or kid != key_id(raw)):
            raise ValueError(f"{what}.{party}.kid {_show(kid)} is not the id of its sign key "
                             f"({key_id(raw)})")
        out[party] = public
    return out


def verify_bundle(bundle: object, keys: dict[str, PublicKeys] | None = None,
                  histories: dict[str, KeyHistory] | None = None) -> BundleReport:
    """Check an evidence bundle with nothing but itself and, if given, trusted ``keys``.

    Pure: no database, no node, no network. With ``keys`` (a verifier's keys file) only
    those keys are used, and a bundle embedding a different key for any of those parties
    is refused. Without, the bundle's own keys are used and the report says so
    (``keys_from_bundle``): the verifier must then compare the key ids out of band.

    Never raises on a malformed bundle: every failure is a problem in the report, naming
    the entry (by log index and position in ``entries``) or the field that is wrong. The
    timeline is filled only for a bundle that verifies, since nothing else is proven.
    """
    report = BundleReport(keys_from_bundle=keys is None)
    try:
        _Verifier(report, keys, histories or {}).run(bundle)
    except _Stop as stop:
        report.problems.append(str(stop))
    if report.problems:
        report.timeline = []
    return report


class _Verifier:
    def __init__(self, report: BundleReport, given: dict[str, PublicKeys] | None,
                 given_histories: dict[str, KeyHistory]) -> None:
        self.report = report
        self.given = given
        self.given_histories = given_histories
        self.histories: dict[str, KeyHistory] = {}
        self.keys: dict[str, PublicKeys] = {}
        self.origin = ""
        self.subject: str | None = None
        self.range: tuple[int, int] | None = None

    def problem(self, message: str) -> None:
        self.report.problems.append(message)

    # -- structure ------------------------------------------------------------------------
    def run(self, bundle: object) -> None:
        if not isinstance(bundle, dict):
            raise _Stop(f"the bundle must be a JSON object, got {type(bundle).__name__}")
        if not BUNDLE_FIELDS <= set(bundle) <= BUNDLE_FIELDS | OPTIONAL_FIELDS:
            missing = sorted(BUNDLE_FIELDS - set(bundle))
            extra = sorted(_show(k) for k in set(bundle) - BUNDLE_FIELDS - OPTIONAL_FIELDS)
            raise _Stop(f"the bundle has the wrong fields (missing {missing}, unexpected "
                        f"{extra})")
        if type(bundle["v"]) is not int or bundle["v"] != 1:
            raise _Stop(f"unsupported bundle version {_show(bundle['v'])}, expected 1")
        if bundle["kind"] != BUNDLE_KIND:
            raise _Stop(f"field 'kind' is {_show(bundle['kind'])}, expected {BUNDLE_KIND!r}")
        origin = bundle["origin"]
        if not isinstance(origin, str) or not PARTY_RE.fullmatch(origin):
            raise _Stop(f"field 'origin' is not a party id: {_show(origin)}")
        self.origin = self.report.origin = origin
        if not _is_int(bundle["exported_at"]):
            self.problem(f"field 'exported_at' is not an integer: "
                         f"{_show(bundle['exported_at'])}")
        self._scope(bundle["scope"])
        self._keys(bundle["keys"], bundle.get("key_history", {}))
        checkpoint = self._checkpoint(bundle["checkpoint"])
        self._cosignatures(bundle["cosignatures"], checkpoint)
        entries = self._entries(bundle["entries"], checkpoint)
        self._contents(entries)

    def _scope(self, scope: object) -> None:
        if not isinstance(scope, dict):
            raise _Stop("field 'scope' must be an object")
        if set(scope) in ({"call"}, {"conversation"}, {"incident"}):
            (name, value), = scope.items()
            if not isinstance(value, str) or not value:
                raise _Stop(f"scope.{name} must be a non-empty string")
            self.subject = value
        elif set(scope) == {"from", "to"}:
            start, end = scope["from"], scope["to"]
            if not (_is_int(start) and _is_int(end)) or start > end:
                raise _Stop(f"scope 'from'/'to' must be integers (ms) with from <= to, got "
                            f"{_show(start)}/{_show(end)}")
            self.range = (start, end)
        else:
            raise _Stop(f"scope must be {{'call': id}}, {{'conversation': id}}, "
                        f"{{'incident': id}} or "
                        f"{{'from': ms, 'to': ms}}, got fields {sorted(map(str, scope))}")
        self.report.scope = dict(scope)

    def _keys(self, embedded_obj: object, history_obj: object) -> None:
        try:
            embedded = parse_keys(embedded_obj, "keys", strict=True)
            in_bundle = parse_histories(history_obj, "key_history")
        except ValueError as exc:
            raise _Stop(str(exc)) from None
        self.histories, problems, notes = trusted_histories(
            embedded, self.given, in_bundle, self.given_histories)
        self.report.problems.extend(problems)
        self.report.notes.extend(notes)
        if self.given is None:
            self.keys = embedded
            self.report.notes.append(
                "the keys were taken from the bundle itself: it proves only that the holders "
                "of these keys signed; compare the key ids with the parties out of band")
            return
        self.keys = dict(self.given)
        for party, public in sorted(embedded.items()):
            trusted = self.given.get(party)
            if trusted is not None and trusted.sign_bytes != public.sign_bytes \
                    and party not in self.histories:
                self.problem(f"keys.{party}: the bundle's key for {party} (kid "
                             f"{public.key_id}) differs from the trusted key (kid "
                             f"{trusted.key_id})")

    def key(self, party: str, needed_for: str, signed: object = None) -> PublicKeys | None:
        """``party``'s key for the signature on ``signed`` (an object or its JSON text):
        the one it names in the party's trusted key history, if it has one, else the
        party's only key."""
        history = self.histories.get(party)
        kid, at = signed_fields(signed)
        if history is not None and kid is not None:
            public, why = judge(history, kid, at)
            if why is not None or public is None:
                self.problem(f"{needed_for}: {why}")
                return None
            self.report.keys[party] = kid
            return public
        public = self.keys.get(party)
        if public is None:
            source = "the bundle" if self.given is None else "the keys file"
            self.problem(f"{needed_for}: {source} holds no key for {party}")
            return None
        self.report.keys[party] = public.key_id
        return public

    def _checkpoint(self, obj: object) -> Checkpoint:
        public = self.key(self.origin, "checkpoint", obj)
        if public is None:
            raise _Stop(self.report.problems.pop())
        try:
            checkpoint = verify_checkpoint(obj, public, self.origin)
        except HotlineError as exc:
            raise _Stop(exc.message) from None
        self.report.size = checkpoint.size
        self.report.root = b64e(checkpoint.root)
        return checkpoint

    def _cosignatures(self, items: object, checkpoint: Checkpoint) -> None:
        if not isinstance(items, list) or not items:
            raise _Stop("field 'cosignatures' must be a non-empty list: without a peer's "
                        "cosignature the checkpoint is only the origin's word")
        for n, obj in enumerate(items):
            witness = obj.get("witness") if isinstance(obj, dict) else None
            if not isinstance(witness, str) or not PARTY_RE.fullmatch(witness):
                self.problem(f"cosignatures[{n}]: field 'witness' is not a party id: "
                             f"{_show(witness)}")
                continue
            if witness == self.origin:
                self.problem(f"cosignatures[{n}]: {witness} cannot witness its own log")
                continue
            public = self.key(witness, f"cosignatures[{n}]", obj)
            if public is None:
                continue
            try:
                verify_cosignature(obj, public, checkpoint, expect_witness=witness)
            except HotlineError as exc:
                self.problem(f"cosignatures[{n}] (by {witness}): {exc.message}")
                continue
            if witness not in self.report.witnesses:
                self.report.witnesses.append(witness)

    def _entries(self, items: object, checkpoint: Checkpoint) -> list[_Entry]:
        if not isinstance(items, list) or not items:
            raise _Stop("field 'entries' must be a non-empty list")
        out: list[_Entry] = []
        leaves: dict[int, str] = {}  # index -> hex leaf hash, to check the 'prev' links
        last = -1
        for pos, item in enumerate(items):
            checked = self._entry(pos, item, checkpoint)
            if checked is None:
                continue
            entry, leaf, prev = checked
            if entry.index <= last:
                self.problem(f"{entry.where}: index {entry.index} is not above the previous "
                             f"entry's index {last}: entries must be in log order, once each")
            last = max(last, entry.index)
            if leaves.get(entry.index - 1, prev) != prev:
                self.problem(f"{entry.where}: field 'prev' does not name entry "
                             f"{entry.index - 1}'s leaf hash")
            leaves[entry.index] = leaf
            out.append(entry)
        self.report.entries = len(out)
        return out

    def _entry(self, pos: int, item: object,
               checkpoint: Checkpoint) -> tuple[_Entry, str, str] | None:
        """Check one entry's shape, index and inclusion; None (with a problem) if bad.

        Inclusion is checked on the exact text before anything in it is believed: the
        index, kind and body mean something only once the checkpoint's tree holds them.
        """
        where = f"entries[{pos}]"
        if not isinstance(item, dict) or ENTRY_FIELDS - set(item) \
                or set(item) - ENTRY_FIELDS - {"payload"}:
            self.problem(f"{where} must be an object with 'index', 'entry', 'proof' (and "
                         "optionally 'payload')")
            return None
        index, text, proof = item["index"], item["entry"], item["proof"]
        payload = item.get("payload")
        if not _is_int(index) or index < 0:
            self.problem(f"{where}: field 'index' is not a log index: {_show(index)}")
            return None
        where = f"entry {index} ({where})"
        if index >= checkpoint.size:
            self.problem(f"{where}: index {index} is beyond the checkpoint's size "
                         f"{checkpoint.size}")
            return None
        if not isinstance(text, str):
            self.problem(f"{where}: field 'entry' is not a string")
            return None
        if payload is not None and not isinstance(payload, str):
            self.problem(f"{where}: field 'payload' is not a string")
            return None
        hashes = self._proof(where, proof)
        if hashes is None:
            return None
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            self.problem(f"{where}: field 'entry' is not encodable as UTF-8")
            return None
        leaf = leaf_hash(data)
        if not verify_inclusion(leaf, index, checkpoint.size, hashes, checkpoint.root):
            self.problem(f"{where}: not included at index {index} in the checkpoint's tree "
                         f"(size {checkpoint.size}): the entry text or its proof was altered")
            return None
        try:
            obj = canonical.decode(data)
        except HotlineError as exc:
            self.problem(f"{where}: field 'entry' is not a canonical log entry: {exc.message}")
            return None
        if not isinstance(obj, dict) or set(obj) != LOG_ENTRY_FIELDS:
            self.problem(f"{where}: the entry does not have the fields of a log entry")
            return None
        if type(obj["v"]) is not int or obj["v"] != 1:
            self.problem(f"{where}: unsupported entry version {_show(obj['v'])}")
            return None
        if type(obj["i"]) is not int or obj["i"] != index:
            self.problem(f"{where}: the entry carries index {_show(obj['i'])}, not {index}")
            return None
        if not _is_int(obj["at"]) or not isinstance(obj["kind"], str) \
                or not isinstance(obj["body"], dict) or not isinstance(obj["prev"], str):
            self.problem(f"{where}: fields 'at', 'kind', 'body' or 'prev' have the wrong type")
            return None
        entry = _Entry(pos, index, obj["at"], obj["kind"], obj["body"], payload)
        return entry, leaf.hex(), obj["prev"]

    def _proof(self, where: str, proof: object) -> list[bytes] | None:
        if not isinstance(proof, list):
            self.problem(f"{where}: field 'proof' is not a list")
            return None
        hashes: list[bytes] = []
        for n, h in enumerate(proof):
            try:
                if not isinstance(h, str):
                    raise ValueError
                hashes.append(b64d(h, expect_len=HASH_SIZE, what="proof hash"))
            except (HotlineError, ValueError):
                self.problem(f"{where}: proof[{n}] is not a base64url {HASH_SIZE}-byte hash")
                return None
        return hashes

    # -- contents -------------------------------------------------------------------------
    def _contents(self, entries: list[_Entry]) -> None:
        sent = {e.body["id"]: e for e in entries
                if e.kind == "sent" and isinstance(e.body.get("id"), str)}
        checks: dict[str, Callable[[_Entry], None]] = {
            "call-state": self._call_state, "message-receipt": self._message_receipt,
            "receipt": lambda e: self._receipt(e, sent), "sent": self._envelope,
            "received": self._envelope, "conversation-message": self._names_subject,
            "undeliverable": lambda e: self._given_up(e, sent),
            "incident": self._names_subject, "incident-entry": self._names_subject}
        for entry in entries:
            if self.range is not None and not self.range[0] <= entry.at <= self.range[1]:
                self.problem(f"{entry.where}: logged at {entry.at}, outside the scope's time "
                             f"range {self.range[0]}..{self.range[1]}")
            check = checks.get(entry.kind)
            if check is not None:
                try:
                    check(entry)
                except _BadField as exc:
                    self.problem(f"{entry.where}: {exc}")
            elif self.subject is not None:
                self.problem(f"{entry.where}: a {entry.kind!r} entry does not concern "
                             f"{self.subject}")

    def _names_subject(self, entry: _Entry) -> None:
        """In a call or conversation bundle, the entry's body must name the subject.

        A call's conversation has the call's id, so either field may name it.
        """
        if self.subject is None:
            return
        named = [entry.body.get(k) for k in ("call", "conversation", "incident")
                 if k in entry.body]
        if self.subject not in named:
            raise _BadField(f"its body names {_show(named)}, not {self.subject}")

    def _call_state(self, entry: _Entry) -> None:
        self._names_subject(entry)
        body = entry.body
        signer, statement = _text(body, "signer"), _text(body, "statement")
        public = self.key(signer, entry.where, statement)
        if public is None:
            return
        try:
            state = verify_call_state(statement, signer=signer, public=public,
                                      call=_text(body, "call"))
        except HotlineError as exc:
            raise _BadField(f"statement: {exc.message}") from None
        if (body.get("n"), body.get("state")) != (state.n, state.state):
            raise _BadField("fields 'n'/'state' differ from the signed statement's")
        if self.report.scope is not None and "call" in self.report.scope:
            self.report.timeline.append({
                "index": entry.index, "state": state.state, "role": state.role,
                "operator": state.operator, "at": state.at, "signed_by": state.signer,
                "step": state.step, "reason": state.reason, "logged_at": entry.at})

    def _message_receipt(self, entry: _Entry) -> None:
        self._names_subject(entry)
        body = entry.body
        signer, statement = _text(body, "signer"), _text(body, "statement")
        public = self.key(signer, entry.where, statement)
        if public is None:
            return
        try:
            stmt = verify_message_receipt(statement, signer=signer, public=public)
        except HotlineError as exc:
            raise _BadField(f"statement: {exc.message}") from None
        logged = (body.get("conversation"), body.get("message"), body.get("receipt"))
        if logged != (stmt.conversation, stmt.message, stmt.receipt):
            raise _BadField("fields 'conversation'/'message'/'receipt' differ from the "
                            "signed statement's")

    def _envelope(self, entry: _Entry) -> None:
        """A "sent" or "received" entry: in a subject bundle, its payload must be the
        message the logged digest names, and that message must concern the subject."""
        body = entry.body
        peer, envelope_id, type_ = _text(body, "peer"), _text(body, "id"), _text(body, "type")
        seq, digest = _int_field(body, "seq"), _text(body, "digest")
        if self.subject is None:
            return
        if entry.payload is None:
            raise _BadField(f"a {entry.kind!r} entry in a {self._subject_kind()} bundle "
                            "needs its 'payload' to show which call it concerns")
        try:
            payload = canonical.decode(entry.payload.encode("utf-8"))
        except (HotlineError, UnicodeEncodeError):
            raise _BadField("field 'payload' is not canonical JSON") from None
        if not isinstance(payload, dict):
            raise _BadField("field 'payload' is not a JSON object")
        sender, recipient = (self.origin, peer) if entry.kind == "sent" else (peer, self.origin)
        try:
            computed = message_digest(envelope_id=envelope_id, sender=sender,
                                      recipient=recipient, seq=seq, type_=type_,
                                      payload=payload)
        except HotlineError as exc:
            raise _BadField(f"field 'payload': {exc.message}") from None
        if computed != digest:
            raise _BadField("field 'payload' is not the message whose digest was logged")
        if self.subject not in _payload_subjects(payload):
            raise _BadField(f"its message does not concern {self.subject}")

    def _subject_kind(self) -> str:
        scope = self.report.scope or {}
        return next((k for k in ("call", "conversation", "incident") if k in scope),
                    "conversation")

    def _given_up(self, entry: _Entry, sent: dict[str, _Entry]) -> None:
        """An envelope marked undeliverable (its link removed): in a call or conversation
        bundle, it concerns the subject through the bundle's ``sent`` entry for it."""
        envelope_id = _text(entry.body, "id")
        original = sent.get(envelope_id)
        if original is None:
            if self.subject is not None:
                raise _BadField(f"the bundle holds no 'sent' entry for envelope {envelope_id}")
            return
        if (original.body.get("peer"), original.body.get("seq")) != \
                (entry.body.get("peer"), entry.body.get("seq")):
            raise _BadField(f"'peer'/'seq' differ from those of entry {original.index} "
                            f"that sent envelope {envelope_id}")

    def _receipt(self, entry: _Entry, sent: dict[str, _Entry]) -> None:
        body = entry.body
        peer, envelope_id, raw = _text(body, "peer"), _text(body, "id"), _text(body, "receipt")
        seq = _int_field(body, "seq")
        original = sent.get(envelope_id)
        if original is None:
            if self.subject is not None:
                raise _BadField(f"the bundle holds no 'sent' entry for envelope {envelope_id}, "
                                "so neither the receipt nor its subject can be checked")
            digest = _receipt_digest(raw)
            self.report.notes.append(
                f"entry {entry.index}: envelope {envelope_id} was sent before the time range; "
                "its receipt is checked against the digest it names")
        else:
            if (original.body.get("peer"), original.body.get("seq")) != (peer, seq):
                raise _BadField(f"'peer'/'seq' differ from those of entry {original.index} "
                                f"that sent envelope {envelope_id}")
            digest = _text(original.body, "digest")
        public = self.key(peer, entry.where, raw)
        if public is None:
            return
        try:
            verify_receipt(raw.encode("utf-8"), signer=public, signer_party=peer,
                           envelope_id=envelope_id, sender=self.origin, seq=seq, digest=digest)
        except (HotlineError, UnicodeEncodeError) as exc:
            detail = exc.message if isinstance(exc, HotlineError) else "not UTF-8"
            raise _BadField(f"delivery receipt: {detail}") from None


class _BadField(Exception):
    """An entry whose contents do not hold up; the message names the field."""


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise _BadField(f"body field {name!r} is not a string")
    return value


def _int_field(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not _is_int(value):
        raise _BadField(f"body field {name!r} is not an integer")
    assert isinstance(value, int)
    return value


def _receipt_digest(raw: str) -> str:
    try:
        obj = canonical.decode(raw.encode("utf-8"))
    except (HotlineError, UnicodeEncodeError):
        raise _BadField("delivery receipt is not canonical JSON") from None
    digest = obj.get("digest") if isinstance(obj, dict) else None
    if not isinstance(digest, str):
        raise _BadField("delivery receipt names no digest")
    return digest


def _payload_subjects(payload: dict[str, Any]) -> list[object]:
    """The call / conversation ids a message names: directly, or through the statement it
    carries (a call-state or message-receipt statement names its call or conversation)."""
    named: list[object] = [payload.get("call"), payload.get("conversation"),
                           payload.get("incident")]
    statement = payload.get("statement")
    if isinstance(statement, str):
        try:
            inner = canonical.decode(statement.encode("utf-8"))
        except (HotlineError, UnicodeEncodeError):
            inner = None
        if isinstance(inner, dict):
            named += [inner.get("call"), inner.get("conversation")]
    return [n for n in named if n is not None]


def load_bundle(data: bytes) -> object:
    """Parse a bundle file: JSON with no duplicate keys (two values for one field would let
    two readers see two different bundles). Raises ``bad-bundle``."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise HotlineError("bad-bundle", f"the bundle is not valid JSON: {exc}") from None
