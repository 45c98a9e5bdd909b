"""Key rotation on running nodes (T9): nothing in flight is lost or duplicated, the old
key is accepted only within the receiver's grace period and never back-dated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from hotline.protocol.envelope import Header, new_envelope_id, seal
from hotline.protocol.keys import PartyKeys
from tests.calls import place, us_and_ru, wait_for_event, wait_for_state
from tests.nodes import PASSPHRASE, NodeProcess, link, wait_until
from tests.peers import ENVELOPES

Make = Callable[..., NodeProcess]


def hotline(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "hotline", *args], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "HOTLINE_PASSPHRASE": PASSPHRASE})


def rotate(node: NodeProcess) -> dict[str, Any]:
    result = hotline("key", "rotate", "--dir", str(node.dir), "--json")
    assert result.returncode == 0, result.stderr + result.stdout
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def history(node: NodeProcess, party: str) -> list[Any]:
    return node.query("SELECT kid, retired_at, rotated_at, revoked_at FROM key_history "
                      "WHERE party = :party ORDER BY id", party=party)


def texts(node: NodeProcess, sender: str) -> list[str]:
    return [m["text"] for m in node.inbox() if m["from"] == sender and m["type"] == "message"]


def post(target: NodeProcess, sender: str, keys: PartyKeys, seq: int, ts: int,
         envelope_id: str | None = None) -> tuple[dict[str, Any], bytes]:
    """One envelope to ``target`` as ``sender`` signed by ``keys`` at signed time ``ts``;
    the per-envelope result and the bytes sent."""
    head = Header(id=envelope_id or new_envelope_id(), sender=sender,
                  recipient=target.party, kid=keys.public.key_id, seq=seq, ts=ts,
                  type="message")
    raw = seal(head, {"text": f"hostile {seq}"}, keys, target.public_keys())
    return resend(target, raw), raw


def resend(target: NodeProcess, raw: bytes) -> dict[str, Any]:
    r = httpx.post(target.url + ENVELOPES, content=raw, timeout=30.0,
                   headers={"content-type": "application/x-ndjson"})
    result: dict[str, Any] = r.json()["results"][0]
    return result


def test_rotation_with_messages_and_a_ringing_call_in_flight_loses_nothing(
        make_node: Make) -> None:
    us, ru = us_and_ru(make_node)
    old_kid = us.status()["key_id"]
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "in flight across a key rotation")
    wait_for_event(ru, call_id, "ringing")
    ru.stop()
    before = [f"before {i:03d}" for i in range(30)]
    us.send("RU-GS", before)                   # sealed with the old key, queued
    rotated = rotate(us)
    after = [f"after {i:03d}" for i in range(30)]
    us.send("RU-GS", after)                    # sealed with the new key at once
    assert rotated["kid"] != old_kid
    assert us.status()["key_id"] == rotated["kid"]
    assert rotated["peers"] == ["RU-GS"]
    us.stop()
    ru.start()
    from_ru = [f"ru {i:03d}" for i in range(20)]
    ru.send("US-JS", from_ru)                  # sealed to US's old encryption key
    us.start()
    wait_until(lambda: len(texts(ru, "US-JS")) >= 60, 60, what="US's 60 messages at RU")
    wait_until(lambda: len(texts(us, "RU-GS")) >= 20, 60, what="RU's 20 messages at US")
    assert texts(ru, "US-JS") == before + after      # exactly once, in order
    assert texts(us, "RU-GS") == from_ru
    # RU took the new key, kept the old one retired, and logged the signed statement
    rows = history(ru, "US-JS")
    assert [r.kid for r in rows] == [old_kid, rotated["kid"]]
    assert rows[0].retired_at is not None
    assert rows[1].retired_at is None
    logged = ru.query("SELECT entry FROM log_entries WHERE kind = 'key-rotation'")
    assert len(logged) == 1
    body = json.loads(logged[0].entry)["body"]
    assert body["statement"]["new"] == rotated["kid"]
    assert body["safety_number"] == rotated["safety_number"]
    assert len(us.query("SELECT idx FROM log_entries WHERE kind = 'key-rotation'")) == 1
    alarms = [a for a in ru.status()["alarms"] if a["kind"] == "key-rotated"]
    assert len(alarms) == 1
    assert rotated["safety_number"] in alarms[0]["message"]
    # the call still rings and is answered; its whole history verifies on both sides
    wait_for_event(ru, call_id, "ringing", "ccp-do")
    answer = ru.api("POST", f"/api/v1/calls/{call_id}/answer",
                    json={"as": "ccp-do", "operator": "ccp-1"})
    assert answer.status_code == 200, answer.text
    call = wait_for_state(us, call_id, "answered")
    assert all(e["verified"] for e in call["history"])
    wait_until(lambda: us.peer_status("RU-GS")["queued"] == 0, 30, what="US's receipts")
    wait_until(lambda: ru.peer_status("US-JS")["queued"] == 0, 30, what="RU's receipts")
    # both logs still verify, checkpoints from before the rotation included
    for node in (us, ru):
        result = hotline("log", "verify", "--dir", str(node.dir))
        assert result.returncode == 0, result.stdout + result.stderr


def test_old_key_within_grace_after_it_and_back_dated(make_node: Make) -> None:
    us, ru = make_node("US-JS"), make_node("RU-GS")
    link(us, ru)
    grace_s = 6.0
    ru.configure("delivery", key_grace_seconds=grace_s)
    us.start()
    ru.start()
    old = us.private_keys()
    us.send("RU-GS", ["under the old key"])
    wait_until(lambda: texts(ru, "US-JS") == ["under the old key"], 30, what="first message")
    rotate(us)
    wait_until(lambda: len(history(ru, "US-JS")) == 2, 30, what="RU to take the rotation")
    us.stop()  # from here the test speaks for US, with the keys it held
    new = us.private_keys()
    retired = history(ru, "US-JS")[0]
    rotated_at, retired_at = int(retired.rotated_at), int(retired.retired_at)
    seq = int(ru.query("SELECT recv_next FROM links WHERE party = 'US-JS'")[0].recv_next)

    def stored() -> int:
        return len(ru.query("SELECT id FROM inbound WHERE peer = 'US-JS'"))

    # within the grace (RU's clock, from when RU took the rotation): accepted
    assert time.time() * 1000 < retired_at + grace_s * 1000 - 1000, "the test ran too slowly"
    ok, kept = post(ru, "US-JS", old, seq, ts=rotated_at)
    assert "receipt" in ok, ok
    count = stored()
    # back-dated: the old key claiming a time after its own rotation, at once
    lines = len(ru.log_lines("key-backdated"))
    refused, _ = post(ru, "US-JS", old, seq + 1, ts=rotated_at + 1)
    assert refused["error"] == "key-backdated", refused
    assert stored() == count
    assert len(ru.log_lines("key-backdated")) == lines + 1
    # after the grace: refused, and nothing stored; a copy of what was stored still
    # earns its receipt (exactly once, nothing new kept)
    wait_until(lambda: time.time() * 1000 > retired_at + grace_s * 1000 + 50, grace_s + 5,
               what="the grace period to end")
    lines = len(ru.log_lines("key-retired"))
    late, _ = post(ru, "US-JS", old, seq + 1, ts=rotated_at)
    assert late["error"] == "key-retired", late
    assert len(ru.log_lines("key-retired")) == lines + 1
    assert stored() == count
    again = resend(ru, kept)
    assert again.get("duplicate") is True, again
    assert stored() == count
    # the new key goes on
    fresh, _ = post(ru, "US-JS", new, seq + 1, ts=int(time.time() * 1000))
    assert "receipt" in fresh, fresh
    assert stored() == count + 1


def export_evidence(node: NodeProcess, call_id: str, path: str) -> None:
    def exported() -> bool:
        result = hotline("export", "evidence", "--dir", str(node.dir), "--call", call_id,
                         "--out", path)
        assert result.returncode == 0 or "no-covering-checkpoint" in result.stderr, \
            result.stderr
        return result.returncode == 0
    wait_until(exported, 60, interval=0.5, what="a cosigned checkpoint covering the call")


def verify(bundle: str, keys: str) -> subprocess.CompletedProcess[str]:
    return hotline("verify-bundle", bundle, "--keys", keys, "--json")


def test_an_evidence_bundle_from_before_a_rotation_verifies_after_it(
        make_node: Make, tmp_path: Any) -> None:
    us, ru = us_and_ru(make_node)
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "evidence across a rotation")
    wait_for_event(ru, call_id, "ringing", "ccp-do")
    answer = ru.api("POST", f"/api/v1/calls/{call_id}/answer",
                    json={"as": "ccp-do", "operator": "ccp-1"})
    assert answer.status_code == 200, answer.text
    wait_for_state(us, call_id, "answered")
    old_bundle = str(tmp_path / "before.json")
    export_evidence(us, call_id, old_bundle)
    old_keys = str(tmp_path / "keys-before.json")
    assert hotline("export", "keys", "--dir", str(us.dir), "--out", old_keys).returncode == 0
    assert verify(old_bundle, old_keys).returncode == 0
    # both parties rotate: the bundle's checkpoint (US) and call states (RU) were signed
    # by keys that are no longer current
    us_new, ru_new = rotate(us), rotate(ru)
    wait_until(lambda: len(history(ru, "US-JS")) == 2, 30, what="RU to take US's rotation")
    wait_until(lambda: len(history(us, "RU-GS")) == 2, 30, what="US to take RU's rotation")
    keys_now = str(tmp_path / "keys-after.json")
    assert hotline("export", "keys", "--dir", str(us.dir), "--out", keys_now).returncode == 0
    trusted = json.loads((tmp_path / "keys-after.json").read_text())
    assert trusted["US-JS"]["kid"] == us_new["kid"]
    assert trusted["RU-GS"]["kid"] == ru_new["kid"]
    # the old bundle verifies against the keys in force now, through the signed history
    result = verify(old_bundle, keys_now)
    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["ok"]
    assert any("key history" in note for note in report["notes"])
    # without the history the old keys are not the trusted ones: refused
    bare = {party: {"sign": k["sign"]} for party, k in trusted.items()}
    (tmp_path / "bare.json").write_text(json.dumps(bare))
    assert verify(old_bundle, str(tmp_path / "bare.json")).returncode == 1
    # a bundle exported now carries the histories itself: current keys suffice
    new_bundle = str(tmp_path / "after.json")
    export_evidence(us, call_id, new_bundle)
    assert "key_history" in json.loads((tmp_path / "after.json").read_text())
    result = verify(new_bundle, str(tmp_path / "bare.json"))
    assert result.returncode == 0, result.stdout


def test_bad_key_commands_say_why_and_change_nothing(make_sqlite_node: Make,
                                                     tmp_path: Any) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    stopped = hotline("key", "rotate", "--dir", str(us.dir))
    assert stopped.returncode == 1
    assert "error[node-not-running]" in stopped.stderr
    us.start()
    kid = us.status()["key_id"]
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"v": 1, "type": "key-revocation"}')
    theirs = next(ru.dir.glob("revocation-cert-*.json"))  # RU's certificate, not US's
    for cert, why in ((garbage, "cert: a key-revocation statement must have"),
                      (theirs, "cert: the certificate is RU-GS's"),
                      (tmp_path / "absent.json", "cert: cannot read")):
        result = hotline("key", "revoke", "--dir", str(us.dir), "--cert", str(cert))
        assert result.returncode == 1, result.stdout
        assert "error[bad-revocation-cert]" in result.stderr
        assert why in " ".join(result.stderr.split()), result.stderr
    assert us.status()["key_id"] == kid
    assert us.query("SELECT kid FROM key_history") == []
    assert us.query("SELECT id FROM outbox WHERE type LIKE 'key.%'") == []
