"""The scenario's call as evidence: exported from the caller's node, checked by a third
party in a fresh process with nothing but the bundle and the parties' keys."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hotline.protocol.keys import b64e
from tests.calls import apply_scenario, place, wait_for_desks, wait_for_event, wait_for_state
from tests.e2e.test_cli import hotline
from tests.nodes import NodeProcess, link, wait_until

Make = Callable[..., NodeProcess]


def test_a_call_exported_as_evidence_verifies_anywhere_and_tampering_fails(
        make_sqlite_node: Make, tmp_path: Path) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    for node in (us, ru):
        node.configure("log", checkpoint_seconds=0.3)
        apply_scenario(node)
        node.start()
    wait_for_desks(us, "RU-GS")
    call_id = place(us, "cgs@RU-GS", "nmcc-do", "Przewodow")
    wait_for_event(ru, call_id, "ringing", "ccp-do")
    ru.api("POST", f"/api/v1/calls/{call_id}/decline",
           json={"as": "ccp-do", "reason": "principal unavailable, will call back"})
    wait_for_state(us, call_id, "declined")

    bundle_path = tmp_path / "evidence.json"

    def exported() -> bool:
        result = hotline("export", "evidence", "--dir", str(us.dir), "--call", call_id,
                         "--out", str(bundle_path), check=False)
        return result.returncode == 0
    wait_until(exported, 30, interval=0.5, what="a checkpoint covering the call")
    bundle = json.loads(bundle_path.read_text())
    keys = {node.party: {"sign": b64e(node.public_keys().sign_bytes)} for node in (us, ru)}
    keys_path = tmp_path / "keys.json"
    keys_path.write_text(json.dumps(keys))

    # a third party: another directory, no node, no network
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()

    def verify(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hotline", "verify-bundle", str(path),
                               "--keys", str(keys_path), "--json"], cwd=elsewhere,
                              capture_output=True, text=True, timeout=60, check=False,
                              env={"PATH": "", "HOME": str(elsewhere)})
    honest = verify(bundle_path)
    assert honest.returncode == 0, honest.stdout + honest.stderr
    report = json.loads(honest.stdout)
    timeline = [(e["state"], e["signed_by"]) for e in report["timeline"]]
    assert ("placed", "US-JS") in timeline
    assert ("delivered", "RU-GS") in timeline
    assert ("declined", "RU-GS") in timeline
    declined = next(e for e in report["timeline"] if e["state"] == "declined")
    assert declined["reason"] == "principal unavailable, will call back"
    assert {"RU-GS"} <= set(report["witnesses"])

    # the decline's reason rewritten in the bundle: the signature no longer holds
    forged = json.loads(json.dumps(bundle))
    for item in forged["entries"]:
        if "principal unavailable" in item["entry"]:
            item["entry"] = item["entry"].replace("principal unavailable", "line busy")
    forged_path = tmp_path / "forged.json"
    forged_path.write_text(json.dumps(forged))
    refused = verify(forged_path)
    assert refused.returncode == 1
    assert "bad-bundle" in refused.stderr or not json.loads(refused.stdout)["ok"]
    # and an entry dropped from the bundle loses nothing it claims, but one claimed
    # out of another log position fails its inclusion proof
    moved = json.loads(json.dumps(bundle))
    moved["entries"][0]["index"] += 1
    moved_path = tmp_path / "moved.json"
    moved_path.write_text(json.dumps(moved))
    assert verify(moved_path).returncode == 1
