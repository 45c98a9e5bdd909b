"""Evidence bundles: an honest bundle verifies on its own; any tampering is refused.

The log is real: migrated SQLite, entries appended by ``hotline.store.log``, statements
and delivery receipts signed by two generated parties, a checkpoint signed by the origin
and cosigned by the peer. The command line is run in fresh processes, the verifier in a
directory that holds no node at all.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, insert

from hotline.errors import HotlineError
from hotline.log.evidence import export_bundle, parse_keys, verify_bundle
from hotline.protocol import canonical
from hotline.protocol.checkpoint import make_checkpoint, make_cosignature, verify_checkpoint
from hotline.protocol.keys import PartyKeys, PublicKeys, b64e
from hotline.protocol.offer import make_offer, parse_offer
from hotline.protocol.receipt import make_receipt, message_digest
from hotline.protocol.statement import sign_call_state, sign_message_receipt
from hotline.store import links as link_store
from hotline.store import log as log_store
from hotline.store.engine import create_engine, sqlite_url
from hotline.store.log import Record
from hotline.store.migrate import upgrade
from hotline.store.schema import calls, inbound, log_checkpoints, outbox

ME, PEER = "US-JS", "RU-GS"
CALL = "c0ffee0000000001"
OTHER_CALL = "c0ffee0000000002"
T0 = 1_668_520_000_000
ME_KEYS, PEER_KEYS = PartyKeys.generate(), PartyKeys.generate()
PUBLIC = {ME: ME_KEYS.public, PEER: PEER_KEYS.public}


# --------------------------------------------------------------------------- the log --

def _state(n: int, state: str, signer: str, keys: PartyKeys, at: int, **extra: Any) -> Record:
    stmt = sign_call_state(call=CALL, signer=signer, n=n, state=state, at=at, caller=ME,
                           callee=PEER, keys=keys, **extra)
    return Record("call-state", {"call": CALL, "signer": signer, "n": n, "state": state,
                                 "statement": stmt.raw}, at, CALL)


def _envelope(conn: Connection, kind: str, envelope_id: str, seq: int, type_: str,
              payload: dict[str, Any], at: int) -> Record:
    """Store an envelope's message as the node does, and the log record of it."""
    sender, recipient = (ME, PEER) if kind == "sent" else (PEER, ME)
    body = canonical.encode(payload).decode()
    if kind == "sent":
        conn.execute(insert(outbox).values(peer=PEER, envelope_id=envelope_id, seq=seq,
                                           type=type_, subject=CALL, payload=body,
                                           envelope=b"sealed", created_at=at, sealed_at=at))
    else:
        conn.execute(insert(inbound).values(peer=PEER, envelope_id=envelope_id, seq=seq,
                                            type=type_, payload=body, envelope=b"sealed",
                                            sent_at=at, received_at=at))
    digest = message_digest(envelope_id=envelope_id, sender=sender, recipient=recipient,
                            seq=seq, type_=type_, payload=payload)
    return Record(kind, {"peer": PEER, "id": envelope_id, "seq": seq, "type": type_,
                         "digest": digest}, at, CALL)


def build_log(conn: Connection) -> None:
    """A call from ME to PEER, as ME's log records it, among unrelated entries."""
    pub = ME_KEYS.public
    log_store.append_one(conn, "keys", {"party": ME, "kid": pub.key_id,
                                        "sign_key": b64e(pub.sign_bytes),
                                        "enc_key": b64e(pub.enc_bytes)}, T0)
    offer = make_offer(party=PEER, name="Russia", keys=PEER_KEYS,
                       endpoints=["http://127.0.0.1:7101"], at_ms=T0)
    link_store.accept_offer(conn, parse_offer(offer), ME, T0 + 1)
    place = {"call": CALL, "caller_role": "nmcc-do", "callee_role": "cgs", "reason": "drill",
             "placed_at": T0 + 10, "budget_ms": 600_000, "parent": None}
    sent = _envelope(conn, "sent", "e-place", 1, "call.place", place, T0 + 10)
    receipt = make_receipt(envelope_id="e-place", signer=PEER, sender=ME, seq=1,
                           digest=sent.body["digest"], at_ms=T0 + 20, keys=PEER_KEYS)
    delivered = sign_call_state(call=CALL, signer=PEER, n=1, state="delivered", at=T0 + 20,
                                caller=ME, callee=PEER, keys=PEER_KEYS)
    ack = sign_message_receipt(message="m-1", conversation=CALL, author=ME, signer=PEER,
                               receipt="read", at=T0 + 60, keys=PEER_KEYS, role="cgs-do")
    other = sign_call_state(call=OTHER_CALL, signer=ME, n=1, state="placed", at=T0 + 35,
                            caller=ME, callee=PEER, keys=ME_KEYS)
    log_store.append(conn, [
        _state(1, "placed", ME, ME_KEYS, T0 + 10, role="nmcc-do"),
        sent,
        Record("directory", {"version": 1, "digest": "00" * 32}, T0 + 15),
        _envelope(conn, "received", "e-state-1", 1, "call.state",
                  {"statement": delivered.raw}, T0 + 21),
        Record("receipt", {"peer": PEER, "id": "e-place", "seq": 1,
                           "receipt": receipt.decode()}, T0 + 21, CALL),
        Record("call-state", {"call": CALL, "signer": PEER, "n": 1, "state": "delivered",
                              "statement": delivered.raw}, T0 + 21, CALL),
        _state(2, "ringing", PEER, PEER_KEYS, T0 + 30, step=0, role="cgs-do"),
        Record("call-state", {"call": OTHER_CALL, "signer": ME, "n": 1, "state": "placed",
                              "statement": other.raw}, T0 + 35, OTHER_CALL),
        _state(3, "answered", PEER, PEER_KEYS, T0 + 40, step=0, role="cgs-do",
               operator="ccp-1"),
        Record("conversation-message", {"conversation": CALL, "message": "m-1", "party": ME,
                                        "role": "nmcc-do", "operator": None,
                                        "text_sha256": "ab" * 32}, T0 + 50, CALL),
        Record("message-receipt", {"conversation": CALL, "message": "m-1", "signer": PEER,
                                   "receipt": "read", "statement": ack.raw}, T0 + 60, CALL),
    ])


def add_checkpoint(conn: Connection, at: int) -> None:
    """ME signs its log's current state; PEER cosigns it (as a checkpoint exchange does)."""
    state = log_store.read_state(conn)
    signed = make_checkpoint(ME, state.size, state.frontier.root(), at, ME_KEYS)
    checkpoint = verify_checkpoint(signed, ME_KEYS.public, ME)
    cosig = make_cosignature(checkpoint, PEER, at + 1, PEER_KEYS)
    conn.execute(insert(log_checkpoints).values(
        origin=ME, witness=PEER, size=checkpoint.size, root=checkpoint.root,
        checkpoint=canonical.encode(signed).decode(), cosignature=canonical.encode(cosig).decode(),
        at=at))


@dataclass(frozen=True)
class World:
    engine: Engine
    bundle: dict[str, Any]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    engine = create_engine(sqlite_url(tmp_path_factory.mktemp("evidence") / "hotline.db"))
    upgrade(engine)
    with engine.begin() as conn:
        build_log(conn)
        add_checkpoint(conn, T0 + 100)
    yield World(engine, export(engine, call=CALL))
    engine.dispose()


def export(engine: Engine, **scope: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        return export_bundle(conn, me=ME, own_public=ME_KEYS.public,
                             peer_keys={PEER: PEER_KEYS.public}, now_ms=T0 + 1000, **scope)


# ------------------------------------------------------------------------ honest use --

def test_an_honest_call_bundle_verifies_and_proves_the_timeline(world: World) -> None:
    bundle = world.bundle
    assert bundle["origin"] == ME
    assert bundle["scope"] == {"call": CALL}
    assert set(bundle["keys"]) == {ME, PEER}
    kinds = [json.loads(e["entry"])["kind"] for e in bundle["entries"]]
    assert kinds == ["call-state", "sent", "received", "receipt", "call-state", "call-state",
                     "call-state", "conversation-message", "message-receipt"]
    assert all("payload" in e for e in bundle["entries"]
               if json.loads(e["entry"])["kind"] in ("sent", "received"))

    report = verify_bundle(json.loads(json.dumps(bundle)))
    assert report.ok, report.problems
    assert report.keys_from_bundle
    assert report.notes
    assert report.witnesses == [PEER]
    timeline = [(t["state"], t["signed_by"], t["role"], t["operator"])
                for t in report.timeline]
    assert timeline == [("placed", ME, "nmcc-do", None), ("delivered", PEER, None, None),
                        ("ringing", PEER, "cgs-do", None),
                        ("answered", PEER, "cgs-do", "ccp-1")]

    trusted = verify_bundle(bundle, PUBLIC)
    assert trusted.ok, trusted.problems
    assert not trusted.keys_from_bundle
    assert trusted.as_dict()["timeline"] == report.as_dict()["timeline"]


def test_conversation_and_time_range_bundles_verify(world: World) -> None:
    conversation = export(world.engine, conversation=CALL)
    report = verify_bundle(conversation, PUBLIC)
    assert report.ok, report.problems
    assert report.timeline == []  # a timeline is a call's

    ranged = export(world.engine, start_ms=T0 + 15, end_ms=T0 + 40)
    kinds = [json.loads(e["entry"])["kind"] for e in ranged["entries"]]
    assert "directory" in kinds
    assert "sent" not in kinds
    report = verify_bundle(ranged, PUBLIC)
    assert report.ok, report.problems
    assert any("before the time range" in n for n in report.notes)


def test_entries_outside_the_scope_are_refused(world: World) -> None:
    bundle = export(world.engine, start_ms=T0 + 15, end_ms=T0 + 40)
    # Honest entries, but presented as evidence about the call: the directory entry and
    # the other call's statement do not concern it.
    bundle["scope"] = {"call": CALL}
    report = verify_bundle(bundle, PUBLIC)
    assert not report.ok
    assert any("'directory' entry does not concern" in p for p in report.problems)
    # Narrowing the stated time range leaves entries outside it.
    bundle = export(world.engine, start_ms=T0 + 15, end_ms=T0 + 40)
    bundle["scope"] = {"from": T0 + 20, "to": T0 + 40}
    report = verify_bundle(bundle, PUBLIC)
    assert any("outside the scope's time range" in p for p in report.problems)


def test_keys_that_disagree_with_the_keys_file_are_refused(world: World) -> None:
    impostor = PartyKeys.generate().public
    report = verify_bundle(world.bundle, {ME: ME_KEYS.public, PEER: impostor})
    assert not report.ok
    assert any(p.startswith(f"keys.{PEER}: the bundle's key") for p in report.problems)


def test_a_bundle_resigned_by_an_impostor_passes_only_on_its_own_keys(world: World) -> None:
    """Whoever forges every signature and embeds their own keys makes a self-consistent
    bundle: only keys obtained independently tell it apart, which the report says."""
    fake_me, fake_peer = PartyKeys.generate(), PartyKeys.generate()
    bundle = copy.deepcopy(world.bundle)
    cp = bundle["checkpoint"]
    from hotline.protocol.keys import b64d

    signed = make_checkpoint(ME, cp["size"], b64d(cp["root"]), cp["at"], fake_me)
    bundle["checkpoint"] = signed
    bundle["cosignatures"] = [make_cosignature(verify_checkpoint(signed, fake_me.public, ME),
                                               PEER, cp["at"], fake_peer)]
    for party, keys in ((ME, fake_me), (PEER, fake_peer)):
        bundle["keys"][party] = {"sign": b64e(keys.public.sign_bytes),
                                 "kid": keys.public.key_id}
    own = verify_bundle(bundle)
    assert own.keys_from_bundle
    assert not own.ok  # the statements inside are still signed by the real PEER
    assert any("statement" in p or "receipt" in p for p in own.problems)
    assert not verify_bundle(bundle, PUBLIC).ok


# ------------------------------------------------------------------------- tampering --

def _targets(bundle: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every field a forger could touch: entry texts, proof hashes, indices, payloads,
    every checkpoint and cosignature field, every embedded key."""
    paths: list[tuple[Any, ...]] = []
    for k, e in enumerate(bundle["entries"]):
        paths += [("entries", k, "entry"), ("entries", k, "index")]
        paths += [("entries", k, "proof", j) for j in range(len(e["proof"]))]
        if "payload" in e:
            paths.append(("entries", k, "payload"))
    paths += [("checkpoint", f) for f in bundle["checkpoint"]]
    paths += [("cosignatures", n, f) for n, c in enumerate(bundle["cosignatures"]) for f in c]
    paths += [("keys", p, f) for p in bundle["keys"] for f in ("sign", "kid")]
    return paths


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        obj = obj[step]
    return obj


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        obj = obj[step]
    obj[path[-1]] = value


@st.composite
def tampered(draw: st.DrawFn, bundle: dict[str, Any]) -> tuple[tuple[Any, ...], Any]:
    path = draw(st.sampled_from(_targets(bundle)))
    old = _get(bundle, path)
    if isinstance(old, str) and old:
        how = draw(st.sampled_from(["char", "replace", "cut"]))
        if how == "char":
            pos = draw(st.integers(0, len(old) - 1))
            ch = draw(st.characters(codec="utf-8").filter(lambda c: c != old[pos]))
            new: Any = old[:pos] + ch + old[pos + 1:]
        elif how == "cut":
            new = old[:draw(st.integers(0, len(old) - 1))]
        else:
            new = draw(st.one_of(st.text(max_size=90), st.integers(), st.none())
                       .filter(lambda v: v != old))
    else:
        new = draw(st.one_of(st.integers(-(2**53), 2**53), st.text(max_size=8),
                             st.booleans()).filter(lambda v: v != old or type(v) is not
                                                   type(old)))
    return path, new


@settings(max_examples=300, deadline=None)
@given(data=st.data(), trusted=st.booleans())
def test_tampering_with_any_field_is_detected(world: World, data: st.DataObject,
                                              trusted: bool) -> None:
    honest = world.bundle
    path, new = data.draw(tampered(honest))
    bundle = copy.deepcopy(honest)
    _set(bundle, path, new)
    report = verify_bundle(bundle, PUBLIC if trusted else None)
    assert not report.ok, (path, new)
    assert report.problems
    assert report.timeline == []


def test_problems_name_the_entry(world: World) -> None:
    bundle = copy.deepcopy(world.bundle)
    k = 5
    index = bundle["entries"][k]["index"]
    text = bundle["entries"][k]["entry"]
    assert '"state":"ringing"' in text
    bundle["entries"][k]["entry"] = text.replace("ringing", "answered")
    report = verify_bundle(bundle, PUBLIC)
    assert report.problems == [
        f"entry {index} (entries[{k}]): not included at index {index} in the checkpoint's "
        f"tree (size {bundle['checkpoint']['size']}): the entry text or its proof was altered"]

    bundle = copy.deepcopy(world.bundle)
    bundle["entries"][k]["index"] += 1
    assert any(p.startswith(f"entry {index + 1} (entries[{k}])")
               for p in verify_bundle(bundle, PUBLIC).problems)


@pytest.mark.parametrize("broken", [None, [], "x", {"v": 1}, {**{"v": 2}}])
def test_malformed_bundles_are_reported_not_raised(broken: Any) -> None:
    report = verify_bundle(broken)
    assert not report.ok
    assert report.problems


def test_dropping_all_cosignatures_is_refused(world: World) -> None:
    bundle = copy.deepcopy(world.bundle)
    bundle["cosignatures"] = []
    report = verify_bundle(bundle, PUBLIC)
    assert any("cosignature" in p for p in report.problems)


# --------------------------------------------------------------------------- export --

def test_no_covering_checkpoint_until_a_peer_cosigns(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path / "hotline.db"))
    try:
        upgrade(engine)
        with engine.begin() as conn:
            build_log(conn)
            add_checkpoint(conn, T0 + 100)
            log_store.append(conn, [_state(4, "answered", PEER, PEER_KEYS, T0 + 200,
                                           role="cgs-do")])
        with pytest.raises(HotlineError) as caught:
            export(engine, call=CALL)
        assert caught.value.error_id == "no-covering-checkpoint"
        assert caught.value.hint
        assert "try again" in caught.value.hint
        with pytest.raises(HotlineError) as caught:
            export(engine, call="no-such-call")
        assert caught.value.error_id == "no-entries"
        with engine.begin() as conn:
            add_checkpoint(conn, T0 + 300)
        report = verify_bundle(export(engine, call=CALL), PUBLIC)
        assert report.ok, report.problems
        assert [t["state"] for t in report.timeline][-1] == "answered"
    finally:
        engine.dispose()


def test_proofs_are_those_of_the_merkle_module() -> None:
    """The exporter reads proofs off a tree built once; they must be RFC 6962's PATH."""
    from hotline.log.evidence import _levels, _path
    from hotline.log.merkle import inclusion_proof, leaf_hash, root_from_leaf_hashes

    for size in [*range(1, 70), 127, 128, 129, 257]:
        leaves = [leaf_hash(b"%d" % i) for i in range(size)]
        levels = _levels(leaves)
        assert levels[-1] == [root_from_leaf_hashes(leaves)]
        for index in range(size):
            assert _path(levels, index) == inclusion_proof(leaves, index, size), (size, index)


def test_parse_keys_checks_the_key_id() -> None:
    pub = PEER_KEYS.public
    keys = parse_keys({PEER: {"sign": b64e(pub.sign_bytes), "kid": pub.key_id}}, "keys")
    assert keys[PEER].sign_bytes == pub.sign_bytes
    with pytest.raises(ValueError, match="kid"):
        parse_keys({PEER: {"sign": b64e(pub.sign_bytes), "kid": "0" * 16}}, "keys")


# ------------------------------------------------------------------------------ CLI --

_SHIM = ("import sys\nfrom hotline.cli.main import app, main\n"
         "from hotline.cli.log import register\nregister(app)\nsys.argv[0] = 'hotline'\nmain()")


def _log_commands_registered() -> bool:
    from hotline.cli.main import app

    return any(c.name == "verify-bundle" for c in app.registered_commands)


def hotline(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process. Until ``hotline.cli.main`` registers the log
    commands, a shim registers them the same way ``register`` does."""
    prefix = ["-m", "hotline"] if _log_commands_registered() else ["-c", _SHIM]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, *prefix, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _keys_file(path: Path, public: dict[str, PublicKeys]) -> Path:
    path.write_text(json.dumps({p: {"sign": b64e(k.sign_bytes)} for p, k in public.items()}))
    return path


def test_verify_bundle_in_a_fresh_process_without_a_node(world: World, tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(world.bundle, indent=2))
    keys = _keys_file(tmp_path / "keys.json", PUBLIC)

    run = hotline("verify-bundle", str(bundle), "--keys", str(keys), "--json", cwd=empty)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["ok"]
    assert not report["keys_from_bundle"]
    assert [t["state"] for t in report["timeline"]] == ["placed", "delivered", "ringing",
                                                         "answered"]
    run = hotline("verify-bundle", str(bundle), "--keys", str(keys), cwd=empty)
    assert run.returncode == 0, run.stderr
    assert "VERIFIED" in run.stdout
    assert "answered" in run.stdout

    wrong = _keys_file(tmp_path / "wrong.json", {ME: ME_KEYS.public,
                                                 PEER: PartyKeys.generate().public})
    run = hotline("verify-bundle", str(bundle), "--keys", str(wrong), cwd=empty)
    assert run.returncode == 1
    assert "NOT VERIFIED" in run.stdout
    assert "[bad-bundle]" in run.stderr

    forged = copy.deepcopy(world.bundle)
    forged["entries"][0]["entry"] = forged["entries"][0]["entry"].replace("placed", "expired")
    bundle.write_text(json.dumps(forged))
    run = hotline("verify-bundle", str(bundle), "--keys", str(keys), "--json", cwd=empty)
    assert run.returncode == 1
    assert not json.loads(run.stdout)["ok"]

    (tmp_path / "garbage.json").write_text("{not json")
    run = hotline("verify-bundle", str(tmp_path / "garbage.json"), cwd=empty)
    assert run.returncode == 1
    assert "[bad-bundle]" in run.stderr
    run = hotline("verify-bundle", str(bundle), "--keys", str(tmp_path / "none.json"),
                  cwd=empty)
    assert run.returncode == 1
    assert "[unreadable-file]" in run.stderr
    (tmp_path / "badkeys.json").write_text('{"RU-GS": {"sign": "nope"}}')
    run = hotline("verify-bundle", str(bundle), "--keys", str(tmp_path / "badkeys.json"),
                  cwd=empty)
    assert run.returncode == 1
    assert "[bad-keys-file]" in run.stderr


def test_log_verify_and_export_on_a_real_node_directory(tmp_path: Path) -> None:
    from hotline.admin import init_node
    from hotline.nodedir.config import DB_NAME, KEYSTORE_NAME
    from hotline.nodedir.keystore import unlock

    node = tmp_path / "node"
    init_node(node, party=ME, name=None, listen="127.0.0.1:7990", endpoints=[], db=None,
              passphrase="correct horse")
    own = unlock(node / KEYSTORE_NAME, "correct horse")
    engine = create_engine(sqlite_url(node / DB_NAME))
    try:
        with engine.begin() as conn:
            offer = make_offer(party=PEER, name="Russia", keys=PEER_KEYS,
                               endpoints=["http://127.0.0.1:7101"], at_ms=T0)
            link_store.accept_offer(conn, parse_offer(offer), ME, T0 + 1)
            log_store.append(conn, [_state(1, "placed", ME, own, T0 + 10),
                                    _state(1, "delivered", PEER, PEER_KEYS, T0 + 20),
                                    _state(2, "ringing", PEER, PEER_KEYS, T0 + 30)])
            # the call's row, as its statements leave it (the state check compares them)
            conn.execute(insert(calls).values(
                id=CALL, direction="out", peer=PEER, caller_role="nmcc-do",
                callee_role="cgs", state="ringing", placed_at=T0 + 10, statements=1,
                updated_at=T0 + 30))
    finally:
        engine.dispose()

    run = hotline("log", "verify", "--dir", str(node), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Log OK: 5 entries" in run.stdout

    run = hotline("export", "evidence", "--dir", str(node), "--call", CALL, cwd=tmp_path)
    assert run.returncode == 1
    assert "[no-covering-checkpoint]" in run.stderr

    engine = create_engine(sqlite_url(node / DB_NAME))
    try:
        with engine.begin() as conn:
            state = log_store.read_state(conn)
            signed = make_checkpoint(ME, state.size, state.frontier.root(), T0 + 50, own)
            cosig = make_cosignature(verify_checkpoint(signed, own.public, ME), PEER, T0 + 51,
                                     PEER_KEYS)
            conn.execute(insert(log_checkpoints).values(
                origin=ME, witness=PEER, size=state.size, root=state.frontier.root(),
                checkpoint=canonical.encode(signed).decode(),
                cosignature=canonical.encode(cosig).decode(), at=T0 + 50))
    finally:
        engine.dispose()
    run = hotline("log", "verify", "--dir", str(node), "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["checkpoints_checked"] == 1

    bundle = tmp_path / "call.json"
    run = hotline("export", "evidence", "--dir", str(node), "--call", CALL, "--out",
                  str(bundle), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "3 entries" in run.stderr
    keys = _keys_file(tmp_path / "keys.json", {ME: own.public, PEER: PEER_KEYS.public})
    run = hotline("verify-bundle", str(bundle), "--keys", str(keys), "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert [t["state"] for t in json.loads(run.stdout)["timeline"]] == ["placed", "delivered",
                                                                        "ringing"]
    run = hotline("export", "evidence", "--dir", str(node), "--from", "2022-11-15T13:46:40Z",
                  "--to", "2022-11-15T13:46:41", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["scope"] == {"from": T0, "to": T0 + 1000}

    db = sqlite3.connect(node / DB_NAME)
    try:
        with db:
            db.execute("UPDATE log_entries SET entry = replace(entry, 'ringing', 'answered') "
                       "WHERE idx = 4")
    finally:
        db.close()
    run = hotline("log", "verify", "--dir", str(node), cwd=tmp_path)
    assert run.returncode == 1
    assert "entry 4" in run.stdout
    assert "[log-broken]" in run.stderr
    run = hotline("log", "verify", "--dir", str(node), "--json", cwd=tmp_path)
    assert run.returncode == 1
    assert json.loads(run.stdout)["first_bad_entry"] == 4
    run = hotline("export", "evidence", "--dir", str(node), "--call", CALL, cwd=tmp_path)
    assert run.returncode == 1
    assert "[log-broken]" in run.stderr
