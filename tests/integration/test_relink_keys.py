"""A link removed, a key rotated meanwhile, the link accepted again: between real nodes
(docs/protocol.md, "Removing a link" and "Key history")."""

from __future__ import annotations

from collections.abc import Callable

from hotline.admin import make_link_offer
from tests.integration.test_key_rotation import history, rotate, texts
from tests.integration.test_link_removal import _remove
from tests.nodes import PASSPHRASE, NodeProcess, link, wait_until
from tests.state import findings, hotline

Make = Callable[..., NodeProcess]


def test_a_party_that_rotated_while_its_link_was_removed_can_link_again(
        make_sqlite_node: Make) -> None:
    us, ru = make_sqlite_node("US-JS"), make_sqlite_node("RU-GS")
    link(us, ru)
    us.start()
    ru.start()
    us.send("RU-GS", ["before"])
    wait_until(lambda: texts(ru, "US-JS") == ["before"], 30, what="the first message")
    old_kid = us.status()["key_id"]
    _remove(us, "RU-GS")
    wait_until(lambda: ru.peer_status("US-JS")["state"] == "removed", 30,
               what="RU to take the removal")
    first = rotate(us)               # no linked peer: nobody to tell
    second = rotate(us)              # twice, before RU hears of either
    assert first["peers"] == []
    assert second["peers"] == []
    offer = us.dir / "us.offer"
    offer.write_bytes(make_link_offer(us.dir, PASSPHRASE)[0] + b"\n")
    ru_offer = ru.dir / "ru.offer"
    ru_offer.write_bytes(make_link_offer(ru.dir, PASSPHRASE)[0] + b"\n")
    entries = len(ru.query("SELECT idx FROM log_entries"))

    # without the signed history the new key is refused, and nothing changes
    refused = hotline(ru, "link", "accept", str(offer), "--yes")
    assert refused.returncode != 0
    assert "link-key-mismatch" in refused.stdout + refused.stderr
    assert "--keys" in refused.stdout + refused.stderr
    # a keys file from the wrong party (RU's own) leads nowhere: refused, nothing kept
    wrong = ru.dir / "ru.keys"
    assert hotline(ru, "export", "keys", "--out", str(wrong)).returncode == 0
    refused = hotline(ru, "link", "accept", str(offer), "--yes", "--keys", str(wrong))
    assert refused.returncode != 0, refused.stdout
    assert "link-key-mismatch" in refused.stdout + refused.stderr
    assert len(ru.query("SELECT idx FROM log_entries")) == entries
    assert [r.kid for r in history(ru, "US-JS")] in ([], [old_kid])

    keys = us.dir / "us.keys"
    assert hotline(us, "export", "keys", "--out", str(keys)).returncode == 0
    taken = hotline(ru, "link", "accept", str(offer), "--yes", "--keys", str(keys))
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert hotline(us, "link", "accept", str(ru_offer), "--yes").returncode == 0
    for node, peer in ((us, "RU-GS"), (ru, "US-JS")):
        wait_until(lambda n=node, p=peer: n.peer_status(p)["state"] != "removed", 30,
                   what=f"{node.party} to take the new link")
    assert [r.kid for r in history(ru, "US-JS")] == [old_kid, first["kid"], second["kid"]]
    assert len(ru.query("SELECT idx FROM log_entries WHERE kind = 'key-rotation'")) == 2
    us.send("RU-GS", ["after"])
    wait_until(lambda: texts(ru, "US-JS") == ["before", "after"], 30,
               what="the message under the new key")
    ru.send("US-JS", ["back"])
    wait_until(lambda: texts(us, "RU-GS") == ["back"], 30, what="RU's message")
    for node in (us, ru):
        node.stop()
        assert findings(node) == []      # the start-up check passes: nothing refused
        node.start()
