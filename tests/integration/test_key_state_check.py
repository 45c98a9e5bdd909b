"""The key history a node acts on, checked against its log at start-up and by ``log
verify``: an edit that would make a revoked or retired key trusted again, or point a
link at another key, is named and refused (docs/log.md, the start-up state check)."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.integration.test_key_rotation import history, rotate, texts
from tests.nodes import NodeProcess, link, wait_until
from tests.state import edit, findings, hotline, serve_refused

Make = Callable[..., NodeProcess]


def _tables(found: list[dict[str, object]]) -> set[tuple[object, object]]:
    return {(f["table"], f["row"]) for f in found}


def test_key_history_edits_are_named_and_repaired_from_the_log(
        make_sqlite_node: Make) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    us.start()
    ru.start()
    first = us.private_keys().public.key_id
    cert = us.dir / f"revocation-cert-{first}.json"
    rotated = rotate(us)
    us.send("RU-GS", ["under the second key"])
    wait_until(lambda: texts(ru, "US-JS") == ["under the second key"], 30,
               what="the message under the rotated key")
    revoked = hotline(us, "key", "revoke", "--cert", str(cert), "--json")
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert json.loads(revoked.stdout)["kid"] == rotated["kid"]  # the current key stays
    wait_until(lambda: history(ru, "US-JS")[0].revoked_at is not None, 30,
               what="RU to take the revocation")
    us.stop()
    ru.stop()
    assert findings(ru) == []
    assert findings(us) == []
    second = rotated["kid"]
    link_keys = ru.query("SELECT sign_key, enc_key, kid FROM links WHERE party = 'US-JS'")[0]
    assert link_keys.kid == second

    # an attacker with the database trusts the revoked key again, ...
    assert edit(ru, "UPDATE key_history SET revoked_at = NULL, retired_at = NULL, "
                    "rotated_at = NULL WHERE party = 'US-JS' AND kid = :k", k=first) == 1
    # ... ends the real one, and points the link at the revoked key
    assert edit(ru, "UPDATE key_history SET retired_at = 1, rotated_at = 1 "
                    "WHERE party = 'US-JS' AND kid = :k", k=second) == 1
    old = ru.query("SELECT sign_key, enc_key FROM key_history WHERE kid = :k", k=first)[0]
    assert edit(ru, "UPDATE links SET sign_key = :s, enc_key = :e, kid = :k "
                    "WHERE party = 'US-JS'", s=old.sign_key, e=old.enc_key, k=first) == 1
    # and on US's own side, its revoked first key is made current again
    assert edit(us, "UPDATE key_history SET revoked_at = NULL WHERE party = 'US-JS' "
                    "AND kid = :k", k=first) == 1

    found = findings(ru)
    rows = _tables(found)
    assert ("key_history", f"party=US-JS kid={first}") in rows, found
    assert ("key_history", f"party=US-JS kid={second}") in rows, found
    assert ("links", "party=US-JS") in rows, found
    assert all(f["repairable"] for f in found), found
    assert ("key_history", f"party=US-JS kid={first}") in _tables(findings(us))
    said = serve_refused(ru)
    assert "state-disagrees" in said

    for node in (ru, us):
        done = hotline(node, "repair", "--from-log", "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        assert findings(node) == []
        again = hotline(node, "repair", "--from-log", "--yes")  # nothing left to change
        assert again.returncode == 0, again.stdout + again.stderr
        assert findings(node) == []
    assert [r.revoked_at is not None for r in history(ru, "US-JS")] == [True, False]
    assert ru.query("SELECT kid FROM links WHERE party = 'US-JS'")[0].kid == second
    us.start()
    ru.start()
    us.send("RU-GS", ["after the repair"])
    wait_until(lambda: texts(ru, "US-JS")[-1:] == ["after the repair"], 30,
               what="the line after the repair")


def test_revoking_a_retired_key_from_before_its_rotation_replaces_the_current_key(
        make_sqlite_node: Make) -> None:
    """The owner learns its first key leaked before it rotated away from it: the
    revocation from then takes the successor too, so a fresh key must replace it."""
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    us.start()
    ru.start()
    first = us.private_keys().public.key_id
    cert = us.dir / f"revocation-cert-{first}.json"
    leaked_since = int(us.query("SELECT min(at) AS at FROM log_entries")[0].at)
    second = rotate(us)["kid"]
    revoked = hotline(us, "key", "revoke", "--cert", str(cert), "--from", str(leaked_since),
                      "--json")
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    third = json.loads(revoked.stdout)["kid"]
    assert third not in (first, second)
    wait_until(lambda: [r.kid for r in history(ru, "US-JS")] == [first, second, third], 30,
               what="RU to take the rotation and the revocation")
    rows = history(ru, "US-JS")
    assert [r.revoked_at is not None for r in rows] == [True, True, False]
    us.send("RU-GS", ["under the fresh key"])
    wait_until(lambda: texts(ru, "US-JS") == ["under the fresh key"], 30,
               what="a message under the fresh key")
    us.stop()
    ru.stop()
    assert findings(us) == []
    assert findings(ru) == []
